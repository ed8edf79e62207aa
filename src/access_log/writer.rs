//! The writer thread: the only place an access log line touches a file descriptor. It takes
//! lines off the shards' queue in batches, writes them through a `BufWriter`, hands the
//! buffers back for reuse, and applies the management thread's commands between batches.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{select, Receiver, Sender};

use super::{State, RECYCLE_MAX};

/// One `write(2)` per this many bytes under load; a quiet queue flushes sooner.
const WRITE_BUFFER: usize = 64 * 1024;

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
        loop {
            select! {
                recv(lines) -> line => match line {
                    Ok(line) => {
                        self.write(line);
                        self.drain(&lines);
                        self.flush();
                    }
                    // Only if every sender is gone, which `Shutdown` comes before.
                    Err(_) => return self.flush(),
                },
                recv(control) -> command => {
                    self.drain(&lines);
                    match command {
                        Ok(command) => {
                            if !self.apply(command) {
                                return;
                            }
                        }
                        Err(_) => return self.flush(),
                    }
                }
            }
        }
    }

    /// Takes what is queued, up to one batch.
    fn drain(&mut self, lines: &Receiver<Vec<u8>>) {
        for _ in 0..self.batch {
            match lines.try_recv() {
                Ok(line) => self.write(line),
                Err(_) => break,
            }
        }
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
