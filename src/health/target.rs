//! The health of one target as the shards see it, and what the checker counted about it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

/// Why a probe failed, coarsely: the `kind` a metrics series can carry. The exact reason
/// (`connection refused`, `status 503`) goes to the log, see `probe::Failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No connection: refused, unreachable, or the connect itself failed.
    Connect,
    /// The probe's `timeout` passed before the status line arrived.
    Timeout,
    /// The target closed or reset the connection before the status line.
    Reset,
    /// The target sent something that is not an HTTP/1.x status line.
    BadResponse,
    /// A well-formed status outside `expected_statuses`.
    Status,
    /// The check's own request could not be made (a path or host that would split it).
    Config,
}

impl FailureKind {
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::Reset,
        FailureKind::BadResponse,
        FailureKind::Status,
        FailureKind::Config,
    ];

    /// The label value for metrics.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Reset => "reset",
            FailureKind::BadResponse => "bad_response",
            FailureKind::Status => "status",
            FailureKind::Config => "config",
        }
    }
}

/// Health of one target, shared by every snapshot that has the target (kept in the registry
/// by (upstream, address), so it survives reloads). Shards read it with one relaxed load.
///
/// The health checker is its only writer. Besides the flag it keeps counters, each monotonic
/// from the process start (never reset by a reload). `/metrics` exports the flag as
/// `shardgate_upstream_healthy` and [`checks_passed`] / [`checks_failed`] as
/// `shardgate_upstream_health_checks_total{result="passed"|"failed"}`; the failure kinds and
/// transition counts are kept for the checker's tests.
///
/// [`checks_passed`]: TargetHealth::checks_passed
/// [`checks_failed`]: TargetHealth::checks_failed
#[derive(Debug)]
pub struct TargetHealth {
    /// On its own cache lines: every shard reads it on every pick, and it changes only on a
    /// transition, so the checker's counter updates below never evict it from the shards'
    /// caches.
    healthy: CachePadded<AtomicBool>,
    checks_passed: AtomicU64,
    /// Indexed by `FailureKind as usize`; `checks_failed` is their sum.
    failures: [AtomicU64; FailureKind::ALL.len()],
    marked_unhealthy: AtomicU64,
    marked_healthy: AtomicU64,
}

impl TargetHealth {
    /// Starts healthy: a target gets traffic until checks say otherwise, so a reload or a
    /// restart never begins by refusing everything.
    pub fn new() -> Arc<TargetHealth> {
        Arc::new(TargetHealth {
            healthy: CachePadded::new(AtomicBool::new(true)),
            checks_passed: AtomicU64::new(0),
            failures: Default::default(),
            marked_unhealthy: AtomicU64::new(0),
            marked_healthy: AtomicU64::new(0),
        })
    }

    /// Whether the target should get traffic. One relaxed load: the request path may call it
    /// per pick. A shard may act on the previous value for a moment after a transition.
    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    /// Probes that got an expected status.
    pub fn checks_passed(&self) -> u64 {
        self.checks_passed.load(Relaxed)
    }

    /// Probes that failed, whatever the reason.
    pub fn checks_failed(&self) -> u64 {
        self.failures.iter().map(|n| n.load(Relaxed)).sum()
    }

    /// Probes that failed for reasons of `kind`.
    pub fn failures(&self, kind: FailureKind) -> u64 {
        self.failures[kind as usize].load(Relaxed)
    }

    /// Times the target turned unhealthy (was ejected by the checks).
    pub fn marked_unhealthy(&self) -> u64 {
        self.marked_unhealthy.load(Relaxed)
    }

    /// Times the target turned healthy again.
    pub fn marked_healthy(&self) -> u64 {
        self.marked_healthy.load(Relaxed)
    }

    pub(super) fn count_pass(&self) {
        self.checks_passed.fetch_add(1, Relaxed);
    }

    pub(super) fn count_failure(&self, kind: FailureKind) {
        self.failures[kind as usize].fetch_add(1, Relaxed);
    }

    /// A transition: sets the flag and counts it.
    pub(super) fn mark(&self, healthy: bool) {
        // Counted first, so whoever sees the new flag also sees the count that explains it.
        if healthy {
            self.marked_healthy.fetch_add(1, Relaxed);
        } else {
            self.marked_unhealthy.fetch_add(1, Relaxed);
        }
        self.healthy.store(healthy, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_index_in_order() {
        for (i, kind) in FailureKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
        }
    }

    #[test]
    fn starts_healthy_with_nothing_counted() {
        let h = TargetHealth::new();
        assert!(h.is_healthy());
        assert_eq!(
            (h.checks_passed(), h.checks_failed(), h.marked_unhealthy()),
            (0, 0, 0)
        );
    }

    #[test]
    fn failures_sum_over_kinds() {
        let h = TargetHealth::new();
        h.count_failure(FailureKind::Timeout);
        h.count_failure(FailureKind::Status);
        h.count_failure(FailureKind::Status);
        assert_eq!(h.checks_failed(), 3);
        assert_eq!(h.failures(FailureKind::Status), 2);
        assert_eq!(h.failures(FailureKind::Connect), 0);
        h.mark(false);
        assert!(!h.is_healthy());
        assert_eq!((h.marked_unhealthy(), h.marked_healthy()), (1, 0));
    }
}
