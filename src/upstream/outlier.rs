//! Passive health (outlier detection, as Envoy's): failures seen by real requests (5xx, connect
//! errors, resets, timeouts) are counted per target across all shards; after
//! `consecutive_failures` in a row the target is ejected for `base_ejection_time` times the
//! number of times it has been ejected, unless that would eject more than
//! `max_ejection_percent` of the upstream (one target may always be ejected).
//!
//! Shards update the state with relaxed atomics; the management thread notices ejections and
//! returns on its tick and logs and counts them, so no shard ever writes a log line for it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::LazyLock;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::config::Outlier;

/// Milliseconds since the process started: a clock that fits an atomic.
pub fn now_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

#[derive(Default)]
pub struct OutlierState {
    consecutive: CachePadded<AtomicU32>,
    /// `now_ms()` at which the current ejection ends; 0 when not ejected.
    ejected_until: AtomicU64,
    /// How many times the target was ejected: each ejection lasts that many base times.
    ejections: AtomicU32,
}

impl OutlierState {
    pub fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Relaxed) > now
    }

    pub fn ejections(&self) -> u32 {
        self.ejections.load(Relaxed)
    }

    /// Records the outcome of one exchange. `siblings` yields the state of every target of the
    /// upstream, for the ejection cap. Returns true when this call ejected the target.
    pub fn report<'a>(
        &self,
        ok: bool,
        policy: &Outlier,
        siblings: impl Iterator<Item = &'a OutlierState> + Clone,
    ) -> bool {
        if ok {
            if self.consecutive.load(Relaxed) != 0 {
                self.consecutive.store(0, Relaxed);
            }
            return false;
        }
        let failures = self.consecutive.fetch_add(1, Relaxed) + 1;
        if failures < policy.consecutive_failures {
            return false;
        }
        let now = now_ms();
        let total = siblings.clone().count();
        let ejected = siblings.filter(|s| s.is_ejected(now)).count();
        // Envoy's rule: the cap is a percentage, but one ejection is always allowed.
        if ejected > 0 && (ejected + 1) * 100 > total * policy.max_ejection_percent as usize {
            return false;
        }
        let current = self.ejected_until.load(Relaxed);
        if current > now {
            return false;
        }
        let times = self.ejections.load(Relaxed) + 1;
        let until = now + (policy.base_ejection_time * times).as_millis() as u64;
        // One shard wins the ejection; the others see it done.
        if self
            .ejected_until
            .compare_exchange(current, until, Relaxed, Relaxed)
            .is_err()
        {
            return false;
        }
        self.ejections.store(times, Relaxed);
        self.consecutive.store(0, Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy(failures: u32, percent: u32) -> Outlier {
        Outlier {
            consecutive_failures: failures,
            base_ejection_time: Duration::from_secs(60),
            max_ejection_percent: percent,
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_and_success_resets() {
        let targets: Vec<OutlierState> = (0..4).map(|_| OutlierState::default()).collect();
        let p = policy(3, 50);
        let t = &targets[0];
        assert!(!t.report(false, &p, targets.iter()));
        assert!(!t.report(false, &p, targets.iter()));
        assert!(!t.report(true, &p, targets.iter()));
        assert!(!t.report(false, &p, targets.iter()));
        assert!(!t.report(false, &p, targets.iter()));
        assert!(t.report(false, &p, targets.iter()));
        assert!(t.is_ejected(now_ms()));
        assert_eq!(t.ejections(), 1);
    }

    #[test]
    fn the_cap_keeps_most_targets_in() {
        let targets: Vec<OutlierState> = (0..4).map(|_| OutlierState::default()).collect();
        let p = policy(1, 25);
        assert!(
            targets[0].report(false, &p, targets.iter()),
            "one is always allowed"
        );
        assert!(
            !targets[1].report(false, &p, targets.iter()),
            "a second is over 25% of 4"
        );
        assert!(!targets[1].is_ejected(now_ms()));
    }
}
