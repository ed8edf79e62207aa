//! Circuit breaking: process-wide caps on what one upstream may have open at once, counted in
//! cache-padded relaxed atomics shared by all shards (the one place shards count together; a
//! race can let a shard or two past the cap by one, which a breaker tolerates).
//!
//! The counters live in the registry by upstream name and by (upstream, target), so a reload
//! neither resets them nor loses the permits of requests still in flight.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

#[derive(Default)]
pub struct Gauge(CachePadded<AtomicU32>);

impl Gauge {
    /// Takes one unit if fewer than `max` are taken; the permit gives it back when dropped.
    pub fn try_acquire(&self, max: u32) -> Option<Permit<'_>> {
        self.take(max).then(|| Permit(self))
    }

    /// Like [`Gauge::try_acquire`], for a permit that outlives the request (a pooled connection).
    pub fn try_acquire_owned(self: &Arc<Self>, max: u32) -> Option<OwnedPermit> {
        self.take(max).then(|| OwnedPermit(Arc::clone(self)))
    }

    fn take(&self, max: u32) -> bool {
        if self.0.fetch_add(1, Relaxed) >= max {
            self.0.fetch_sub(1, Relaxed);
            return false;
        }
        true
    }

    pub fn current(&self) -> u32 {
        self.0.load(Relaxed)
    }
}

pub struct Permit<'a>(&'a Gauge);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Relaxed);
    }
}

pub struct OwnedPermit(Arc<Gauge>);

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_cap_and_return() {
        let g = Arc::new(Gauge::default());
        let a = g.try_acquire(2).expect("first");
        let b = g.try_acquire_owned(2).expect("second");
        assert!(g.try_acquire(2).is_none());
        assert_eq!(g.current(), 2);
        drop(a);
        let c = g.try_acquire(2).expect("freed");
        drop((b, c));
        assert_eq!(g.current(), 0);
        assert!(g.try_acquire(0).is_none());
    }
}
