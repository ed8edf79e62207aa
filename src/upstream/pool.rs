//! Each shard's idle keep-alive connections, by target id. Shard-local: no locks, no sharing.
//!
//! Most recently used first, so a quiet period lets the oldest connections age out while the
//! warm ones keep serving.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use monoio::net::TcpStream;

struct Idle {
    stream: TcpStream,
    expires: Instant,
}

#[derive(Default)]
pub struct Pool {
    targets: RefCell<Vec<VecDeque<Idle>>>,
}

impl Pool {
    /// The most recently returned connection to `target` that has not expired. With
    /// `check_alive`, connections the upstream has closed (or written to) while idle are
    /// skipped, for requests that could not be retried if sent on a dead one.
    pub fn take(&self, target: usize, check_alive: bool) -> Option<TcpStream> {
        let mut targets = self.targets.borrow_mut();
        let idle = targets.get_mut(target)?;
        let now = Instant::now();
        while let Some(conn) = idle.pop_back() {
            if conn.expires > now && (!check_alive || is_quiet(&conn.stream)) {
                return Some(conn.stream);
            }
        }
        None
    }

    pub fn put(&self, target: usize, stream: TcpStream, max_idle: usize, idle_timeout: Duration) {
        if max_idle == 0 {
            return;
        }
        let mut targets = self.targets.borrow_mut();
        if targets.len() <= target {
            targets.resize_with(target + 1, VecDeque::new);
        }
        let idle = &mut targets[target];
        while idle.len() >= max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            stream,
            expires: Instant::now() + idle_timeout,
        });
    }

    /// Closes connections idle past their timeout; run periodically by the shard.
    pub fn sweep(&self) {
        let now = Instant::now();
        for idle in self.targets.borrow_mut().iter_mut() {
            idle.retain(|c| c.expires > now);
        }
    }

    pub fn idle_count(&self) -> usize {
        self.targets.borrow().iter().map(VecDeque::len).sum()
    }
}

/// An idle connection is usable when reading from it would block: not closed, not reset, and
/// no stray bytes waiting (which would be taken for the next response).
fn is_quiet(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local; the descriptor is owned by `stream`.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0
        && matches!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EAGAIN)
        )
}
