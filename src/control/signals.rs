//! Signals arrive on their own thread (signal-hook) and are forwarded as values on a channel,
//! so the management loop handles them with `select!` alongside admin requests.

use crossbeam_channel::Receiver;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: reload the config file.
    Reload,
    /// SIGUSR1: reopen the access log file.
    ReopenLogs,
    /// SIGTERM or SIGINT: drain, then exit; a second one exits at once.
    Stop,
}

/// Installs the handlers now (so a signal during start-up is not lost) and forwards them.
pub fn listen() -> std::io::Result<Receiver<Signal>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1])?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for raw in signals.forever() {
                let signal = match raw {
                    SIGHUP => Signal::Reload,
                    SIGUSR1 => Signal::ReopenLogs,
                    _ => Signal::Stop,
                };
                if tx.send(signal).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}
