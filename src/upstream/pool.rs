//! Each shard's idle keep-alive connections, by target id. Shard-local: no locks, no sharing.
//!
//! Most recently used first, so a quiet period lets the oldest connections age out while the
//! warm ones keep serving.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
    /// The most recently returned live connection to `target`, if any.
    pub fn take(&self, target: usize) -> Option<TcpStream> {
        let mut targets = self.targets.borrow_mut();
        let idle = targets.get_mut(target)?;
        let now = Instant::now();
        while let Some(conn) = idle.pop_back() {
            if conn.expires > now {
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
