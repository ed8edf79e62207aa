//! The writer thread: the only place an access log line touches a file descriptor. It takes
//! lines off the shards' queue in batches, writes them through a `BufWriter` (flushed whenever
//! the queue is empty), hands the buffers back for reuse, and applies the management thread's
//! commands between batches. Under traffic it polls the queue rather than sleeping on it; see
//! [`POLL_LONGEST`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::{State, RECYCLE_MAX};

/// One `write(2)` per this many bytes under load; a quiet queue flushes sooner.
const WRITE_BUFFER: usize = 64 * 1024;

/// While lines keep coming, the writer collects them at intervals instead of blocking on the
/// queue. A send into a channel whose receiver is blocked must wake it (crossbeam takes the
/// waker's mutex and makes a futex call on the sending shard): measured at ~7 us per line,
/// against ~0.25 us for the whole `log()` when the writer polls (`access_log/log/json_sparse`
/// in the bench). The interval adapts to the rate: it is chosen so a poll finds the queue about
/// a quarter full, between these bounds; at the shortest, 2048 lines per 50 us is 40 million
/// lines a second, past what one writer thread can write anyway.
pub(super) const POLL_LONGEST: Duration = Duration::from_millis(2);
const POLL_SHORTEST: Duration = Duration::from_micros(50);

/// After this many polls in a row find nothing (100 ms at the longest interval), the writer
/// blocks on the queue, so an idle node's writer sleeps; only the first line after a quiet
/// spell pays the wake-up.
pub(super) const IDLE_POLLS: u32 = 50;

/// Where lines go, opened by whoever asked for it (so the error reaches them).
pub(super) enum Destination {
    Off,
    Stdout,
    File(PathBuf, File),
}

/// What the management thread asks of the writer. Every command is applied after the lines
/// already queued when it arrives, so those go to the destination they were logged under.
pub(super) enum Control {
    /// Replace the destination; acknowledged once new lines go to the new one.
    Switch(Destination, Sender<()>),
    /// Close and reopen the current file at its path.
    Reopen(Sender<()>),
    /// Acknowledged once everything queued before it is written.
    Flush(Sender<()>),
    /// Tests: acknowledge, then stop taking lines until the receiver yields or disconnects.
    #[cfg(test)]
    Pause(Sender<()>, Receiver<()>),
    Shutdown,
}

/// The wait before the next poll, after one that found `taken` lines in a queue of
/// `capacity`, so the next finds it about a quarter full if the rate holds.
fn next_interval(last: Duration, taken: usize, capacity: usize) -> Duration {
    let quarter = (capacity / 4).max(1) as u128;
    let micros = last.as_micros() * quarter / taken.max(1) as u128;
    Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
        .clamp(POLL_SHORTEST, POLL_LONGEST)
}

pub(super) fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

pub(super) struct Writer {
    pub(super) state: Arc<State>,
    /// Buffers go back to the shards through here.
    pub(super) spare: Sender<Vec<u8>>,
    /// The most lines taken in one batch, so commands are never starved by a busy queue.
    pub(super) batch: usize,
    pub(super) sink: Sink,
}

pub(super) struct Sink {
    where_to: WhereTo,
    /// `None` while off, or after a write error until the next reopen or switch.
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    /// Lines in `out` since its last successful flush: what a write error loses.
    unflushed: u64,
}

#[derive(Debug)]
enum WhereTo {
    Off,
    Stdout,
    File(PathBuf),
}

impl Sink {
    pub(super) fn off() -> Sink {
        Sink {
            where_to: WhereTo::Off,
            out: None,
            unflushed: 0,
        }
    }
}

impl Writer {
    pub(super) fn run(mut self, lines: Receiver<Vec<u8>>, control: Receiver<Control>) {
        let mut empty_polls = 0;
        let mut interval = POLL_LONGEST;
        // The last drain stopped at its limit: the queue may hold more right now.
        let mut more = false;
        loop {
            let mut taken = 0;
            let command = if more {
                match control.try_recv() {
                    Ok(command) => Some(command),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => Some(Control::Shutdown),
                }
            } else if empty_polls < IDLE_POLLS {
                match control.recv_timeout(interval) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => Some(Control::Shutdown),
                }
            } else {
                select! {
                    recv(lines) -> line => match line {
                        Ok(line) => {
                            self.write(line);
                            taken = 1;
                            None
                        }
                        // Only once every sender is gone, which `Shutdown` comes before.
                        Err(_) => Some(Control::Shutdown),
                    },
                    recv(control) -> command => Some(command.unwrap_or(Control::Shutdown)),
                }
            };
            // Before a command, exactly the lines queued before it arrived: they belong to
            // the destination they were logged under, and later ones must not delay it.
            let limit = match command {
                Some(_) => lines.len(),
                None => self.batch,
            };
            let drained = self.drain(&lines, limit);
            taken += drained;
            more = command.is_none() && drained == limit;
            if !more {
                self.flush();
            }
            if taken > 0 {
                empty_polls = 0;
                interval = next_interval(interval, taken, self.batch);
            } else if command.is_none() {
                empty_polls += 1;
                interval = POLL_LONGEST;
            }
            if let Some(command) = command {
                if !self.apply(command) {
                    return;
                }
            }
        }
    }

    /// Takes up to `limit` queued lines; returns how many there were.
    fn drain(&mut self, lines: &Receiver<Vec<u8>>, limit: usize) -> usize {
        for taken in 0..limit {
            match lines.try_recv() {
                Ok(line) => self.write(line),
                Err(_) => return taken,
            }
        }
        limit
    }

    /// Applies a command; `false` once the thread should end.
    fn apply(&mut self, command: Control) -> bool {
        match command {
            Control::Switch(destination, ack) => {
                self.flush();
                let (where_to, out): (_, Option<Box<dyn Write + Send>>) = match destination {
                    Destination::Off => (WhereTo::Off, None),
                    Destination::Stdout => (WhereTo::Stdout, Some(Box::new(io::stdout()))),
                    Destination::File(path, file) => (WhereTo::File(path), Some(Box::new(file))),
                };
                self.state
                    .enabled
                    .store(!matches!(where_to, WhereTo::Off), Ordering::Relaxed);
                self.sink = Sink {
                    where_to,
                    out: out.map(|out| BufWriter::with_capacity(WRITE_BUFFER, out)),
                    unflushed: 0,
                };
                let _ = ack.send(());
            }
            Control::Reopen(ack) => {
                self.flush();
                if let WhereTo::File(path) = &self.sink.where_to {
                    match open(path) {
                        Ok(file) => {
                            let file: Box<dyn Write + Send> = Box::new(file);
                            self.sink.out = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
                        }
                        // nginx does the same: better the renamed file than no log at all.
                        Err(err) => crate::log::error(format_args!(
                            "access log: cannot reopen {}: {err}; still writing to the file \
                             that was open",
                            path.display()
                        )),
                    }
                }
                let _ = ack.send(());
            }
            Control::Flush(ack) => {
                self.flush();
                let _ = ack.send(());
            }
            #[cfg(test)]
            Control::Pause(ack, release) => {
                self.flush();
                let _ = ack.send(());
                let _ = release.recv();
            }
            Control::Shutdown => {
                self.flush();
                return false;
            }
        }
        true
    }

    fn write(&mut self, line: Vec<u8>) {
        match &mut self.sink.out {
            Some(out) => match out.write_all(&line) {
                Ok(()) => self.sink.unflushed += 1,
                Err(err) => self.fail(&err, 1),
            },
            // Turned off while the line was queued.
            None if matches!(self.sink.where_to, WhereTo::Off) => {}
            None => {
                self.state.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        // A line that grew past the limit (a huge target or user agent) is freed rather than
        // kept for the next one, so a burst of those does not stay resident in the pool.
        if line.capacity() <= RECYCLE_MAX {
            let _ = self.spare.try_send(line);
        }
    }

    fn flush(&mut self) {
        if let Some(out) = &mut self.sink.out {
            match out.flush() {
                Ok(()) => self.sink.unflushed = 0,
                Err(err) => self.fail(&err, 0),
            }
        }
    }

    /// A write failed: say so once, count what was lost, and drop lines until the
    /// destination is reopened or replaced.
    fn fail(&mut self, err: &io::Error, also_lost: u64) {
        let lost = self.sink.unflushed + also_lost;
        self.state.dropped.fetch_add(lost, Ordering::Relaxed);
        self.sink.unflushed = 0;
        if let Some(out) = self.sink.out.take() {
            // Without flushing: the buffered bytes would only fail again.
            drop(out.into_parts());
        }
        let to = match &self.sink.where_to {
            WhereTo::File(path) => path.display().to_string(),
            other => format!("{other:?}").to_lowercase(),
        };
        crate::log::warn(format_args!(
            "access log: writing to {to} failed: {err}; dropping lines until the next \
             reopen (SIGUSR1) or reload"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_interval_follows_the_rate() {
        let ms = Duration::from_millis;
        // 2048 lines in 2 ms fills a quarter of 8192: keep the interval.
        assert_eq!(next_interval(ms(2), 2048, 8192), ms(2));
        // Twice that rate: half the interval.
        assert_eq!(next_interval(ms(2), 4096, 8192), ms(1));
        // A trickle: back to the longest; a flood: no shorter than the shortest.
        assert_eq!(next_interval(ms(1), 3, 8192), POLL_LONGEST);
        assert_eq!(next_interval(ms(1), 8192, 8192), Duration::from_micros(250));
        assert_eq!(next_interval(POLL_SHORTEST, 8192, 8192), POLL_SHORTEST);
        assert_eq!(next_interval(ms(2), 100, 1), POLL_SHORTEST);
    }
}
