//! Per-target series: upstream exchanges, their duration and errors, and pool gauges.

use std::net::SocketAddr;
use std::time::Duration;

use super::histogram::{Histogram, HistogramTotals};
use super::per_shard::{Counter, Gauge, PerShard};

/// Why an upstream exchange failed, as the `kind` label of `shardgate_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// The connection could not be established (refused, unreachable, connect timeout).
    Connect,
    /// The target stopped answering: response head or body read timed out.
    Timeout,
    /// The target closed or reset the connection mid-exchange.
    Reset,
    /// The target answered something that is not acceptable HTTP/1.1.
    BadResponse,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::BadResponse,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::BadResponse => "bad_response",
        }
    }
}

/// Which timeout fired, as the `phase` label of `shardgate_upstream_timeouts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// `connect_timeout`.
    Connect,
    /// `write_timeout`: sending the request.
    Write,
    /// `read_timeout`: waiting for the response.
    Read,
    /// A retry policy's `per_try_timeout`.
    PerTry,
}

impl TimeoutPhase {
    /// In label order.
    pub const ALL: [TimeoutPhase; 4] = [
        TimeoutPhase::Connect,
        TimeoutPhase::PerTry,
        TimeoutPhase::Read,
        TimeoutPhase::Write,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::PerTry => "per_try",
            TimeoutPhase::Read => "read",
            TimeoutPhase::Write => "write",
        }
    }

    fn index(self) -> usize {
        match self {
            TimeoutPhase::Connect => 0,
            TimeoutPhase::PerTry => 1,
            TimeoutPhase::Read => 2,
            TimeoutPhase::Write => 3,
        }
    }
}

/// The series of one (upstream name, target address), shared by every snapshot that has it.
pub struct TargetMetrics {
    upstream: String,
    addr: SocketAddr,
    shards: PerShard<TargetShard>,
    /// Outlier ejections, written only by the management thread as it observes them.
    ejections: std::sync::atomic::AtomicU64,
    ejected: std::sync::atomic::AtomicBool,
    /// The target's active-check state, attached once by the registry; read on scrape.
    health: std::sync::OnceLock<std::sync::Arc<crate::health::TargetHealth>>,
}

#[derive(Default)]
struct TargetShard {
    /// Its count is `shardgate_upstream_requests_total`: one observation per exchange.
    duration: Histogram,
    errors: [Counter; UpstreamErrorKind::ALL.len()],
    pool_idle: Gauge,
    pool_active: Gauge,
    /// Indexed by `TimeoutPhase::index`.
    timeouts: [Counter; TimeoutPhase::ALL.len()],
    /// Tries at this target that failed and were made again (on another target if possible).
    retries: Counter,
    /// Failed tries the policy would have retried but the retry budget refused.
    retries_over_budget: Counter,
}

impl TargetMetrics {
    pub(crate) fn new(upstream: &str, addr: SocketAddr, shards: usize) -> TargetMetrics {
        TargetMetrics {
            upstream: upstream.to_string(),
            addr,
            shards: PerShard::new(shards),
            ejections: Default::default(),
            ejected: Default::default(),
            health: std::sync::OnceLock::new(),
        }
    }

    /// Links the target's health state, so scrapes report it. Later calls keep the first.
    pub fn attach_health(&self, health: &std::sync::Arc<crate::health::TargetHealth>) {
        let _ = self.health.set(std::sync::Arc::clone(health));
    }

    /// (healthy, checks passed, checks failed), when health state is attached.
    fn health_totals(&self) -> Option<(bool, u64, u64)> {
        self.health
            .get()
            .map(|h| (h.is_healthy(), h.checks_passed(), h.checks_failed()))
    }

    /// Management thread: `n` more outlier ejections seen, and whether the target is out now.
    pub fn ejections_observed(&self, n: u64, ejected: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.ejections.fetch_add(n, Relaxed);
        self.ejected.store(ejected, Relaxed);
    }

    fn ejection_totals(&self) -> (u64, bool) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.ejections.load(Relaxed), self.ejected.load(Relaxed))
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One upstream exchange done (request sent, response received), counted in
    /// `shardgate_upstream_requests_total` and timed in the duration histogram. Failures are
    /// counted by [`TargetMetrics::error`] instead.
    #[inline]
    pub fn record(&self, shard: usize, duration: Duration) {
        self.shards.get(shard).duration.observe(duration);
    }

    #[inline]
    pub fn error(&self, shard: usize, kind: UpstreamErrorKind) {
        self.shards.get(shard).errors[kind as usize].add(1);
    }

    #[inline]
    pub fn timeout(&self, shard: usize, phase: TimeoutPhase) {
        self.shards.get(shard).timeouts[phase.index()].add(1);
    }

    /// A failed try at this target is made again.
    #[inline]
    pub fn retried(&self, shard: usize) {
        self.shards.get(shard).retries.add(1);
    }

    /// A failed try at this target could not be made again: the retry budget was spent.
    #[inline]
    pub fn over_retry_budget(&self, shard: usize) {
        self.shards.get(shard).retries_over_budget.add(1);
    }

    /// Moves the idle-connections gauge; only the shard owning the pool calls it.
    #[inline]
    pub fn pool_idle(&self, shard: usize, delta: i64) {
        self.shards.get(shard).pool_idle.add(delta);
    }

    /// Moves the in-use connections gauge; only the shard owning the connection calls it.
    #[inline]
    pub fn pool_active(&self, shard: usize, delta: i64) {
        self.shards.get(shard).pool_active.add(delta);
    }

    pub(crate) fn totals(&self) -> TargetTotals {
        let mut t = TargetTotals::default();
        for s in self.shards.iter() {
            t.duration.add(&s.duration);
            for (total, n) in t.errors.iter_mut().zip(&s.errors) {
                *total = total.wrapping_add(n.get());
            }
            t.pool_idle = t.pool_idle.wrapping_add(s.pool_idle.get());
            t.pool_active = t.pool_active.wrapping_add(s.pool_active.get());
            for (total, n) in t.timeouts.iter_mut().zip(&s.timeouts) {
                *total = total.wrapping_add(n.get());
            }
            t.retries = t.retries.wrapping_add(s.retries.get());
            t.retries_over_budget = t
                .retries_over_budget
                .wrapping_add(s.retries_over_budget.get());
        }
        (t.ejections, t.ejected) = self.ejection_totals();
        t.health = self.health_totals();
        t
    }
}

/// A target's series summed over shards.
#[derive(Debug, Default)]
pub(crate) struct TargetTotals {
    pub duration: HistogramTotals,
    /// Indexed by `UpstreamErrorKind as usize`.
    pub errors: [u64; UpstreamErrorKind::ALL.len()],
    pub pool_idle: i64,
    pub pool_active: i64,
    /// In `TimeoutPhase::ALL` (label) order.
    pub timeouts: [u64; TimeoutPhase::ALL.len()],
    pub retries: u64,
    pub retries_over_budget: u64,
    pub ejections: u64,
    pub ejected: bool,
    /// (healthy, checks passed, checks failed) for targets with active checks.
    pub health: Option<(bool, u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_index_in_order() {
        for (i, kind) in UpstreamErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
        }
    }

    #[test]
    fn gauges_sum_signed_deltas_across_shards() {
        let t = TargetMetrics::new("users", "127.0.0.1:80".parse().unwrap(), 2);
        t.pool_idle(0, 3);
        t.pool_idle(1, 2);
        t.pool_idle(0, -1);
        t.pool_active(1, 1);
        t.pool_active(1, -1);
        t.pool_active(0, 1);
        t.error(1, UpstreamErrorKind::Reset);
        t.error(0, UpstreamErrorKind::Reset);
        t.error(0, UpstreamErrorKind::BadResponse);
        t.record(0, Duration::from_millis(7));
        let totals = t.totals();
        assert_eq!(totals.pool_idle, 4);
        assert_eq!(totals.pool_active, 1);
        assert_eq!(totals.errors, [0, 0, 2, 1]);
        assert_eq!(totals.duration.count(), 1);
    }
}
