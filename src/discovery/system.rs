//! The system resolver: getaddrinfo, as `to_socket_addrs` calls it, with /etc/hosts,
//! nsswitch and resolv.conf as the machine has them.
//!
//! getaddrinfo cannot be cancelled or given a deadline, so a bounded lookup runs it on a
//! thread of its own and stops waiting at the timeout; the thread is left to finish.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::TargetName;

/// Blocks for as long as getaddrinfo takes.
pub fn lookup(name: &TargetName) -> Result<Vec<SocketAddr>, String> {
    (name.host.as_str(), name.port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| e.to_string())
}

/// [`lookup`], waiting for it at most `timeout`.
pub fn lookup_within(name: &TargetName, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let owned = name.clone();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(lookup(&owned));
        })
        .map_err(|e| format!("cannot start a thread for the lookup: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(format!(
            "the system resolver gave no answer within {}",
            humantime::format_duration(timeout)
        )),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            Err("the lookup thread ended without an answer".into())
        }
    }
}
