//! Peak EWMA (Finagle, linkerd): power of two choices on each target's latency estimate times
//! its requests in flight plus one, so a slow target and a busy one both look expensive.
//!
//! The estimate, per shard and per target:
//! - a response slower than the estimate replaces it at once (the "peak": latency spikes
//!   count immediately);
//! - a faster one pulls it down as an exponentially weighted average over time, with weight
//!   `1 - e^(-Δt/τ)` for Δt since the last response and τ = [`DECAY`] (recovery is cautious);
//! - between responses, the estimate a pick sees decays towards zero with the same τ, so a
//!   target shunned for being slow is tried again after a while instead of never;
//! - before the first response it is [`UNKNOWN_RTT`], small, so new targets are tried early,
//!   while the `(pending + 1)` factor caps how many requests they draw before one answers
//!   (it decays from the build's time as a measured estimate does from its response's);
//! - a failed request counts as at least twice the current estimate: a target that fails fast
//!   must not look fast.
//!
//! Weights decide how often a target is one of the two candidates (drawn as for p2c) but not
//! the comparison: dividing the cost by weight would send every request of a quiet upstream to
//! the heaviest target, since `(pending + 1)` never ties at zero. A target with more capacity
//! shows it through lower latency under load. With equal costs the first draw wins, so with no
//! latency known yet the picks follow the weights exactly.
//!
//! O(1) per pick at any size, with no clock read (see `Ewma::cheaper`); one per finish.

use std::time::{Duration, Instant};

use super::alias::AliasTable;
use super::cells::{ShardCells, Words};
use super::Balance;

/// The time constant of the average and of the idle decay.
pub const DECAY: Duration = Duration::from_secs(10);
/// The estimate of a target with no response yet on this shard.
pub const UNKNOWN_RTT: Duration = Duration::from_millis(5);

/// The shard's words: the generator, then per target its estimate (f64 nanoseconds), the time
/// of its last response (nanoseconds since `epoch`, plus one so that 0 means never) and its
/// requests in flight.
const RNG: usize = 0;
const WORDS_PER_TARGET: usize = 3;
const COST: usize = 1;
const STAMP: usize = 2;
const PENDING: usize = 3;

pub struct Ewma {
    table: AliasTable,
    epoch: Instant,
    cells: ShardCells,
}

impl Ewma {
    /// Weights below 1 count as 1.
    pub fn new(weights: &[u32], shards: usize, seed: u64) -> Ewma {
        Ewma {
            table: AliasTable::new(weights),
            epoch: Instant::now(),
            cells: ShardCells::seeded(shards, 1 + WORDS_PER_TARGET * weights.len(), RNG, seed),
        }
    }

    fn now(&self) -> u64 {
        // 584 years of nanoseconds fit in u64.
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// Target `i`'s estimate as seen at `now`, in nanoseconds. Unmeasured targets decay from
    /// the build (stamp 0) as the others from their last response: otherwise, with every
    /// measured target decaying below the default, a target never picked never would be.
    fn cost(words: Words<'_>, i: usize, now: u64) -> f64 {
        let (cost, stamp, _) = Self::state(words, i);
        cost * decay(now.saturating_sub(stamp))
    }

    /// Whether target `a` costs less than target `b` right now. Both estimates decay by the
    /// same factor from their stamps to now, so that factor cancels: comparing
    /// `cost_a·(pending_a + 1)·e^((stamp_a − stamp_b)/τ)` with `cost_b·(pending_b + 1)` needs
    /// one `exp` and no clock read (benches/balancer.rs: 96 → 40 ns a pick).
    fn cheaper(words: Words<'_>, a: usize, b: usize) -> bool {
        let (ca, sa, pa) = Self::state(words, a);
        let (cb, sb, pb) = Self::state(words, b);
        // Clamped so that a zero cost times e^±big stays finite, never NaN.
        let x = ((sa as i64).wrapping_sub(sb as i64) as f64 / DECAY.as_nanos() as f64)
            .clamp(-600.0, 600.0);
        ca * (pa as f64 + 1.0) * x.exp() < cb * (pb as f64 + 1.0)
    }

    /// Target `i`'s estimate (as of its stamp), stamp and requests in flight.
    #[inline]
    fn state(words: Words<'_>, i: usize) -> (f64, u64, u64) {
        let at = WORDS_PER_TARGET * i;
        let stamp = words.get(at + STAMP);
        let cost = if stamp == 0 {
            UNKNOWN_RTT.as_nanos() as f64
        } else {
            f64::from_bits(words.get(at + COST))
        };
        (cost, stamp, words.get(at + PENDING))
    }

    pub(crate) fn finished_at(
        &self,
        shard: usize,
        i: usize,
        latency: Duration,
        ok: bool,
        now: u64,
    ) {
        let words = self.cells.shard(shard);
        let at = WORDS_PER_TARGET * i;
        words.decrement(at + PENDING);
        let mut rtt = latency.as_nanos() as f64;
        let stamp = words.get(at + STAMP);
        if !ok {
            rtt = rtt.max(2.0 * Self::cost(words, i, now));
        }
        let cost = if stamp == 0 {
            // The first response replaces the default outright.
            rtt
        } else {
            let old = f64::from_bits(words.get(at + COST));
            if rtt > old {
                rtt
            } else {
                // Written as a step from `old` so that a steady latency stays exactly put.
                old + (rtt - old) * (1.0 - decay(now.saturating_sub(stamp)))
            }
        };
        words.set(at + COST, cost.to_bits());
        words.set(at + STAMP, now.max(1));
    }
}

/// e^(-Δt/τ) for Δt in nanoseconds.
#[inline]
fn decay(elapsed: u64) -> f64 {
    if elapsed == 0 {
        return 1.0;
    }
    (-(elapsed as f64) / DECAY.as_nanos() as f64).exp()
}

impl Balance for Ewma {
    fn pick(
        &self,
        shard: usize,
        _key: Option<u64>,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let words = self.cells.shard(shard);
        // Ties go to the first draw, so targets that cannot be told apart share by weight.
        self.table.pick_of_two(words, RNG, usable, |first, second| {
            Self::cheaper(words, second, first)
        })
    }

    fn started(&self, shard: usize, i: usize) {
        self.cells
            .shard(shard)
            .increment(WORDS_PER_TARGET * i + PENDING);
    }

    fn finished(&self, shard: usize, i: usize, latency: Duration, ok: bool) {
        self.finished_at(shard, i, latency, ok, self.now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const SECOND: u64 = 1_000 * MS;

    fn cost_ms(e: &Ewma, i: usize, now: u64) -> f64 {
        Ewma::cost(e.cells.shard(0), i, now) / MS as f64
    }

    #[test]
    fn prefers_the_faster_target() {
        let e = Ewma::new(&[1, 1], 1, 11);
        let latency = [Duration::from_millis(40), Duration::from_millis(8)];
        let mut count = [0u32; 2];
        for _ in 0..2_000 {
            let i = e.pick(0, None, &|_| true).unwrap();
            e.started(0, i);
            e.finished(0, i, latency[i], true);
            count[i] += 1;
        }
        // Only the first picks (before both are measured) may go to the slow one.
        assert!(count[0] <= 2, "{count:?}");
    }

    #[test]
    fn pending_requests_outweigh_a_small_latency_edge() {
        let e = Ewma::new(&[1, 1], 1, 11);
        e.finished_at(0, 0, Duration::from_millis(10), true, 1);
        e.finished_at(0, 1, Duration::from_millis(12), true, 1);
        assert_eq!(e.pick(0, None, &|_| true), Some(0));
        e.started(0, 0);
        // 10 ms × 2 in flight > 12 ms × 1.
        assert_eq!(e.pick(0, None, &|_| true), Some(1));
    }

    #[test]
    fn peaks_at_once_and_recovers_with_time() {
        let e = Ewma::new(&[1], 1, 1);
        e.finished_at(0, 0, Duration::from_millis(10), true, 1);
        e.finished_at(0, 0, Duration::from_millis(200), true, 1 + MS);
        assert_eq!(cost_ms(&e, 0, 1 + MS), 200.0, "a spike counts at once");
        // A fast answer right after barely moves the estimate...
        e.finished_at(0, 0, Duration::from_millis(10), true, 1 + 2 * MS);
        assert!(cost_ms(&e, 0, 1 + 2 * MS) > 199.0);
        // ...one after τ moves it most of the way, 1 - 1/e.
        e.finished_at(
            0,
            0,
            Duration::from_millis(10),
            true,
            1 + 2 * MS + 10 * SECOND,
        );
        let c = cost_ms(&e, 0, 1 + 2 * MS + 10 * SECOND);
        assert!(
            (c - (10.0 + 190.0 / std::f64::consts::E)).abs() < 0.1,
            "{c}"
        );
    }

    #[test]
    fn an_idle_estimate_decays_so_the_target_is_tried_again() {
        let e = Ewma::new(&[1, 1], 1, 4);
        e.finished_at(0, 0, Duration::from_millis(500), true, 1);
        e.finished_at(0, 1, Duration::from_millis(20), true, 1);
        // Target 1 keeps answering in 20 ms; target 0 is not picked, so not measured.
        let mut t = 1;
        while e.pick(0, None, &|_| true) == Some(1) {
            e.finished_at(0, 1, Duration::from_millis(20), true, t);
            t += 100 * MS;
            assert!(t < 60 * SECOND, "target 0 was never retried");
        }
        // 500 ms decays below 20 ms after τ·ln(25) ≈ 32 s.
        assert!(t > 30 * SECOND && t < 34 * SECOND, "{t}");
    }

    #[test]
    fn a_fast_failure_does_not_look_fast() {
        let e = Ewma::new(&[1], 1, 1);
        e.finished_at(0, 0, Duration::from_millis(10), true, 1);
        e.finished_at(0, 0, Duration::from_micros(50), false, 1);
        assert_eq!(cost_ms(&e, 0, 1), 20.0);
        e.finished_at(0, 0, Duration::from_micros(50), false, 1);
        assert_eq!(cost_ms(&e, 0, 1), 40.0);
        let fresh = Ewma::new(&[1], 1, 1);
        fresh.finished_at(0, 0, Duration::from_micros(50), false, 0);
        assert_eq!(cost_ms(&fresh, 0, 0), 2.0 * UNKNOWN_RTT.as_millis() as f64);
    }

    #[test]
    fn unknown_targets_start_at_the_default() {
        let e = Ewma::new(&[1, 1], 1, 1);
        assert_eq!(cost_ms(&e, 0, 0), UNKNOWN_RTT.as_millis() as f64);
        e.finished_at(0, 1, Duration::from_millis(50), true, 0);
        assert_eq!(e.pick(0, None, &|_| true), Some(0));
        // The first response replaces the default, even when faster.
        e.finished_at(0, 0, Duration::from_millis(1), true, 0);
        assert_eq!(cost_ms(&e, 0, 0), 1.0);
    }

    #[test]
    fn a_target_never_picked_is_tried_once_the_others_answer_as_fast() {
        // The measured targets answer in exactly the default; the unmeasured one must still
        // win a comparison eventually (it is the stalest), not starve.
        let e = Ewma::new(&[1, 1, 1], 1, 8);
        let mut picked = [0u32; 3];
        for t in 1..=300 {
            let i = e.pick(0, None, &|_| true).unwrap();
            e.started(0, i);
            e.finished_at(0, i, UNKNOWN_RTT, true, t * MS);
            picked[i] += 1;
        }
        assert!(picked.iter().all(|&n| n >= 50), "{picked:?}");
    }
}
