//! Per-route series: requests by status class, duration, bytes in and out.

use std::time::Duration;

use super::histogram::{Histogram, HistogramTotals};
use super::per_shard::{Counter, PerShard};

/// The `class` label of `shardgate_requests_total`, by `status / 100 - 1`.
pub(crate) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The series of one route name, shared by every snapshot that has a route of that name.
pub struct RouteMetrics {
    name: String,
    shards: PerShard<RouteShard>,
}

#[derive(Default)]
struct RouteShard {
    requests: [Counter; CLASSES.len()],
    duration: Histogram,
    bytes_received: Counter,
    bytes_sent: Counter,
    timeouts: Counter,
}

impl RouteMetrics {
    pub(crate) fn new(name: &str, shards: usize) -> RouteMetrics {
        RouteMetrics {
            name: name.to_string(),
            shards: PerShard::new(shards),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// One request answered, from its first byte read to its last byte written. Called by
    /// `shard` only: lock-free and allocation-free.
    #[inline]
    pub fn record(
        &self,
        shard: usize,
        status: u16,
        duration: Duration,
        bytes_received: u64,
        bytes_sent: u64,
    ) {
        let s = self.shards.get(shard);
        s.requests[class(status)].add(1);
        s.duration.observe(duration);
        s.bytes_received.add(bytes_received);
        s.bytes_sent.add(bytes_sent);
    }

    /// The route's `timeout` fired on `shard`.
    #[inline]
    pub fn timed_out(&self, shard: usize) {
        self.shards.get(shard).timeouts.add(1);
    }

    pub(crate) fn totals(&self) -> RouteTotals {
        let mut t = RouteTotals::default();
        for s in self.shards.iter() {
            for (total, n) in t.requests.iter_mut().zip(&s.requests) {
                *total = total.wrapping_add(n.get());
            }
            t.duration.add(&s.duration);
            t.bytes_received = t.bytes_received.wrapping_add(s.bytes_received.get());
            t.bytes_sent = t.bytes_sent.wrapping_add(s.bytes_sent.get());
            t.timeouts = t.timeouts.wrapping_add(s.timeouts.get());
        }
        t
    }
}

/// Index into [`CLASSES`]. Statuses outside 100–599 cannot reach a client from the gateway
/// (httparse takes any three digits from an upstream, which the proxy answers 502), so they
/// are clamped rather than given a series of their own.
#[inline]
fn class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, CLASSES.len()) - 1
}

/// A route's series summed over shards.
#[derive(Debug, Default)]
pub(crate) struct RouteTotals {
    pub requests: [u64; CLASSES.len()],
    pub duration: HistogramTotals,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub timeouts: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(class(100), 0);
        assert_eq!(class(199), 0);
        assert_eq!(class(200), 1);
        assert_eq!(class(308), 2);
        assert_eq!(class(404), 3);
        assert_eq!(class(599), 4);
        assert_eq!(class(0), 0);
        assert_eq!(class(999), 4);
    }

    #[test]
    fn totals_sum_every_shard() {
        let r = RouteMetrics::new("api", 3);
        r.record(0, 200, Duration::from_millis(1), 10, 100);
        r.record(1, 201, Duration::from_millis(2), 20, 200);
        r.record(2, 503, Duration::from_millis(3), 30, 300);
        r.record(2, 404, Duration::from_millis(4), 40, 400);
        let t = r.totals();
        assert_eq!(t.requests, [0, 2, 0, 1, 1]);
        assert_eq!(t.duration.count(), 4);
        assert_eq!(t.duration.sum_seconds(), 0.01);
        assert_eq!(t.bytes_received, 100);
        assert_eq!(t.bytes_sent, 1000);
    }
}
