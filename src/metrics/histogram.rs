//! Duration histograms with Prometheus's cumulative `le` buckets.
//!
//! Each shard counts observations per bucket (not cumulatively, so one observation is one
//! counter bump); the scrape adds the shards up and accumulates.

use std::time::Duration;

use super::per_shard::Counter;

/// Upper bounds in nanoseconds, paired with the `le` label each is exposed as.
pub(crate) const BOUNDS: [(u64, &str); 14] = [
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
];

/// The finite buckets plus `+Inf`.
const SLOTS: usize = BOUNDS.len() + 1;

/// One shard's share of a histogram.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [Counter; SLOTS],
    /// In microseconds: nanoseconds would wrap a busy shard's u64 within weeks (100k req/s
    /// at 100 ms is 10^13 ns per second), microseconds take millennia. Rounded to the nearest,
    /// so the error does not build up in one direction.
    sum_us: Counter,
}

impl Histogram {
    #[inline]
    pub(crate) fn observe(&self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        // `le` is inclusive: a value equal to a bound belongs to that bound's bucket.
        let slot = BOUNDS.partition_point(|&(bound, _)| bound < ns);
        self.buckets[slot].add(1);
        self.sum_us.add(ns.saturating_add(500) / 1_000);
    }
}

/// A histogram summed over shards, as a scrape sees it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct HistogramTotals {
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: [u64; SLOTS],
    sum_us: u64,
}

impl HistogramTotals {
    pub(crate) fn add(&mut self, shard: &Histogram) {
        for (total, bucket) in self.buckets.iter_mut().zip(&shard.buckets) {
            *total = total.wrapping_add(bucket.get());
        }
        self.sum_us = self.sum_us.wrapping_add(shard.sum_us.get());
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().fold(0, |n, b| n.wrapping_add(*b))
    }

    pub(crate) fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// `(le, cumulative count)` for every bucket, ending with `+Inf` (equal to the count).
    pub(crate) fn cumulative(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let labels = BOUNDS.iter().map(|&(_, le)| le).chain(["+Inf"]);
        labels.zip(self.buckets.iter().scan(0u64, |running, b| {
            *running = running.wrapping_add(*b);
            Some(*running)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(observations: &[Duration]) -> HistogramTotals {
        let h = Histogram::default();
        for d in observations {
            h.observe(*d);
        }
        let mut t = HistogramTotals::default();
        t.add(&h);
        t
    }

    #[test]
    fn bounds_are_inclusive_and_increasing() {
        assert!(BOUNDS.windows(2).all(|w| w[0].0 < w[1].0));
        let t = totals(&[Duration::from_micros(500), Duration::from_nanos(500_001)]);
        let c: Vec<_> = t.cumulative().collect();
        assert_eq!(c[0], ("0.0005", 1));
        assert_eq!(c[1], ("0.001", 2));
    }

    #[test]
    fn cumulative_never_decreases_and_ends_at_count() {
        let obs: Vec<Duration> = (0..200u64)
            .map(|i| Duration::from_micros(i * i * 250))
            .chain([Duration::from_secs(60), Duration::MAX])
            .collect();
        let t = totals(&obs);
        let c: Vec<_> = t.cumulative().collect();
        assert_eq!(c.len(), 15);
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(c.last(), Some(&("+Inf", obs.len() as u64)));
        assert_eq!(t.count(), obs.len() as u64);
        // Two observations lie beyond 10 s.
        assert_eq!(c[13].1 + 2, c[14].1);
    }

    #[test]
    fn sum_is_in_seconds() {
        let t = totals(&[Duration::from_millis(1500), Duration::from_micros(250)]);
        assert_eq!(t.sum_seconds(), 1.50025);
    }
}
