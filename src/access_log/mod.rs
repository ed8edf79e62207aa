//! The access log: one line per request, written off the shards.
//!
//! A shard formats the line ([`format`](mod@format)) into a buffer it takes from a pool of
//! spare ones and hands it to the writer thread (`writer.rs`) with a non-blocking `try_send`
//! into a bounded queue. When the queue is full (the disk fell behind) the line is dropped and
//! counted in [`AccessLog::dropped`]: a slow disk never slows requests. The writer sends each
//! buffer back once written, so in steady state a line costs no allocation.
//!
//! The management thread switches destinations on start and reload ([`AccessLog::configure`])
//! and reopens the file on SIGUSR1 ([`AccessLog::reopen`]), for logrotate.

mod escape;
pub mod format;
mod timestamp;
mod writer;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use crossbeam_utils::CachePadded;

use crate::config::{AccessLogFormat, AccessLogPath};
use writer::{Control, Destination, Sink, Writer};

/// Lines that may wait for the writer before new ones are dropped: at ~300 bytes a line,
/// 2.4 MiB, or a quarter second of a 32-shard node logging 32k requests per second.
pub const LINE_QUEUE: usize = 8192;

/// A fresh line buffer's size: a typical line fits without growing.
const LINE_CAPACITY: usize = 512;

/// Buffers that grew beyond this are not reused; see `Writer::write`.
const RECYCLE_MAX: usize = 8 * 1024;

/// How long `configure` and `reopen` wait for the writer to confirm. Normally microseconds;
/// the bound only matters when the writer is stuck in a write to a hung disk, which must not
/// hold up the management thread's signal handling.
const CONTROL_WAIT: Duration = Duration::from_secs(1);

/// What a line says about one request. Fields are borrowed from the connection's buffers.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// When the request head was complete.
    pub time: SystemTime,
    /// Client IP text.
    pub client: &'a [u8],
    /// `-` when unknown (an unparseable request).
    pub method: &'a [u8],
    /// The request target as received (path and query).
    pub target: &'a [u8],
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: &'a [u8],
    pub host: &'a [u8],
    pub status: u16,
    /// Response bytes written to the client, head and body.
    pub bytes_sent: u64,
    /// Request bytes read, head and body.
    pub bytes_received: u64,
    pub duration: Duration,
    pub upstream_duration: Option<Duration>,
    /// The target of the last try.
    pub upstream_target: Option<SocketAddr>,
    /// Tries made at the upstream, more than 1 when the request was retried; 0 without one.
    pub upstream_tries: u32,
    /// `-` when no route matched.
    pub route: &'a str,
    /// May be empty.
    pub request_id: &'a [u8],
    /// May be empty.
    pub referer: &'a [u8],
    /// May be empty.
    pub user_agent: &'a [u8],
}

/// The process-wide access log, shared by all shards through an `Arc`.
pub struct AccessLog {
    lines: Sender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
    /// For a dropped line's buffer to go back to the pool.
    spare_return: Sender<Vec<u8>>,
    control: Sender<Control>,
    state: Arc<State>,
    writer: Option<JoinHandle<()>>,
}

/// What the writer thread updates and shards read.
struct State {
    /// Read on every request; written by the writer thread as it applies `configure`.
    enabled: CachePadded<AtomicBool>,
    /// Written only when a line is lost, so it never shares a line with `enabled`.
    dropped: CachePadded<AtomicU64>,
}

impl AccessLog {
    /// Spawns the writer thread. Starts with no destination: [`AccessLog::enabled`] is false
    /// and lines are discarded before they are formatted.
    pub fn start() -> io::Result<Arc<AccessLog>> {
        AccessLog::start_with_capacity(LINE_QUEUE)
    }

    /// As [`AccessLog::start`], with room for `lines` queued lines (at least one).
    pub fn start_with_capacity(lines: usize) -> io::Result<Arc<AccessLog>> {
        let lines = lines.max(1);
        let (line_tx, line_rx) = bounded(lines);
        let (spare_tx, spare_rx) = bounded(lines);
        let (control_tx, control_rx) = unbounded();
        let state = Arc::new(State {
            enabled: CachePadded::new(AtomicBool::new(false)),
            dropped: CachePadded::new(AtomicU64::new(0)),
        });
        let writer = Writer {
            state: Arc::clone(&state),
            spare: spare_tx.clone(),
            batch: lines,
            sink: Sink::off(),
        };
        let handle = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run(line_rx, control_rx))?;
        Ok(Arc::new(AccessLog {
            lines: line_tx,
            spare: spare_rx,
            spare_return: spare_tx,
            control: control_tx,
            state,
            writer: Some(handle),
        }))
    }

    /// Sets the destination, at start and on every reload: `None` turns the log off; a file
    /// is opened for appending (created if missing), and replaces the current destination,
    /// closing the old file, even when it is the same path. On an error opening the file,
    /// the previous destination stays. Lines logged before the call go to the previous
    /// destination; once it returns, new lines go to the new one (a writer stuck in a write
    /// for longer than a second gets there when the write returns).
    pub fn configure(&self, dest: Option<&AccessLogPath>) -> io::Result<()> {
        let destination = match dest {
            None => Destination::Off,
            Some(AccessLogPath::Stdout) => Destination::Stdout,
            Some(AccessLogPath::File(path)) => Destination::File(path.clone(), writer::open(path)?),
        };
        if self.command(|ack| Control::Switch(destination, ack)) {
            Ok(())
        } else {
            Err(io::Error::other("the access log writer thread has stopped"))
        }
    }

    /// On SIGUSR1: closes and reopens the current file at its path (logrotate's `create`
    /// mode: rename the file, then signal). Lines logged before the call stay in the renamed
    /// file. A failure to reopen is logged and the old file kept. Does nothing for stdout or
    /// when off.
    pub fn reopen(&self) {
        self.command(Control::Reopen);
    }

    /// Whether lines are wanted at all: one relaxed load, so a shard can skip gathering an
    /// entry's fields when the log is off.
    pub fn enabled(&self) -> bool {
        self.state.enabled.load(Ordering::Relaxed)
    }

    /// On the request path: formats the line and queues it for the writer. Never blocks and
    /// never waits for a lock (the one exception: the first line after the writer went idle
    /// wakes it, briefly taking crossbeam's waker mutex); when the queue is full the line is
    /// dropped and counted.
    pub fn log(&self, format: AccessLogFormat, entry: &Entry<'_>) {
        if !self.enabled() {
            return;
        }
        let mut line = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(LINE_CAPACITY));
        line.clear();
        format::line(format, entry, &mut line);
        if let Err(err) = self.lines.try_send(line) {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            if let TrySendError::Full(line) = err {
                let _ = self.spare_return.try_send(line);
            }
        }
    }

    /// Lines lost since start: queue full, or the destination failing to take them.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Blocks until every line queued before the call is written and flushed: for graceful
    /// shutdown and tests.
    pub fn flush(&self) {
        let (ack, done) = bounded(1);
        if self.control.send(Control::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }

    /// Sends a command and waits, at most [`CONTROL_WAIT`], for the writer to apply it.
    /// `false` if the writer thread is gone.
    fn command(&self, make: impl FnOnce(Sender<()>) -> Control) -> bool {
        let (ack, done) = bounded(1);
        if self.control.send(make(ack)).is_err() {
            return false;
        }
        let _ = done.recv_timeout(CONTROL_WAIT);
        true
    }

    /// Tests: stops the writer taking lines until the returned sender is dropped.
    #[cfg(test)]
    fn pause(&self) -> Sender<()> {
        let (release, wait) = bounded(0);
        let (ack, done) = bounded(1);
        self.control
            .send(Control::Pause(ack, wait))
            .expect("writer running");
        done.recv().expect("writer paused");
        release
    }
}

impl Drop for AccessLog {
    /// Writes what is queued and ends the writer thread, waiting for it.
    fn drop(&mut self) {
        let _ = self.control.send(Control::Shutdown);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests;
