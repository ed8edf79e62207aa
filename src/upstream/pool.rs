//! Each shard's idle keep-alive connections, by target id. Shard-local: no locks, no sharing.
//!
//! Most recently used first, so a quiet period lets the oldest connections age out while the
//! warm ones keep serving.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use monoio::net::TcpStream;

use super::breaker::OwnedPermit;
use crate::metrics::TargetMetrics;
use crate::snapshot::TargetRef;

struct Idle {
    stream: TcpStream,
    /// Its place under the target's `max_connections`, held while the connection is open.
    permit: OwnedPermit,
    expires: Instant,
}

/// One target's idle connections, and the gauge that reports them.
#[derive(Default)]
struct Slot {
    idle: VecDeque<Idle>,
    metrics: Option<std::sync::Arc<TargetMetrics>>,
}

impl Slot {
    fn gauge(&self, shard: usize, delta: i64) {
        if let Some(m) = &self.metrics {
            m.pool_idle(shard, delta);
        }
    }
}

pub struct Pool {
    shard: usize,
    targets: RefCell<Vec<Slot>>,
}

impl Pool {
    pub fn new(shard: usize) -> Pool {
        Pool {
            shard,
            targets: RefCell::new(Vec::new()),
        }
    }

    /// The most recently returned connection to `target` that has not expired. With
    /// `check_alive`, connections the upstream has closed (or written to) while idle are
    /// skipped, for requests that could not be retried if sent on a dead one.
    pub fn take(&self, target: &TargetRef, check_alive: bool) -> Option<(TcpStream, OwnedPermit)> {
        let mut targets = self.targets.borrow_mut();
        let slot = targets.get_mut(target.id)?;
        let now = Instant::now();
        while let Some(conn) = slot.idle.pop_back() {
            slot.gauge(self.shard, -1);
            if conn.expires > now && (!check_alive || is_quiet(&conn.stream)) {
                return Some((conn.stream, conn.permit));
            }
        }
        None
    }

    pub fn put(
        &self,
        target: &TargetRef,
        stream: TcpStream,
        permit: OwnedPermit,
        max_idle: usize,
        idle_timeout: Duration,
    ) {
        if max_idle == 0 {
            return;
        }
        let mut targets = self.targets.borrow_mut();
        if targets.len() <= target.id {
            targets.resize_with(target.id + 1, Slot::default);
        }
        let slot = &mut targets[target.id];
        if slot.metrics.is_none() {
            slot.metrics = Some(std::sync::Arc::clone(&target.metrics));
        }
        while slot.idle.len() >= max_idle {
            slot.idle.pop_front();
            slot.gauge(self.shard, -1);
        }
        slot.idle.push_back(Idle {
            stream,
            permit,
            expires: Instant::now() + idle_timeout,
        });
        slot.gauge(self.shard, 1);
    }

    /// Closes connections idle past their timeout; run periodically by the shard.
    pub fn sweep(&self) {
        let now = Instant::now();
        for slot in self.targets.borrow_mut().iter_mut() {
            let before = slot.idle.len();
            slot.idle.retain(|c| c.expires > now);
            slot.gauge(self.shard, slot.idle.len() as i64 - before as i64);
        }
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
