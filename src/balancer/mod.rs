//! Choosing a target within an upstream. One file per algorithm, all behind [`Balance`].
//!
//! A balancer is built per upstream per snapshot ([`build`]) and read by every shard. It keeps
//! per-shard state only (each shard's words on their own cache lines, `cells.rs`), so a pick
//! takes no lock, allocates nothing and shares no cache line with another shard. Which targets
//! may be picked (health checks, outlier ejection) is not its business: the caller passes
//! `usable`.
//!
//! | algorithm         | per pick                                 | state per shard          |
//! |-------------------|------------------------------------------|--------------------------|
//! | `round_robin`     | O(1) equal weights; O(n) smooth weighted up to 64 targets; O(log n) EDF above | cursor / current weights / EDF heap |
//! | `least_conn`      | O(n)                                     | active + tie-break weight per target |
//! | `random`          | O(1), alias table                        | RNG                      |
//! | `p2c`             | O(1), two alias-table draws              | RNG + active per target  |
//! | `ewma`            | O(1), two alias-table draws              | RNG + estimate, stamp, pending per target |
//! | `consistent_hash` | O(1), one Maglev table load              | none (round robin for keyless requests) |
//!
//! "O(1)" assumes most targets are usable: a drawn or probed unusable target costs another
//! draw, and after a bounded number of misses each algorithm falls back to an O(n) scan, which
//! is also how it learns that none is usable.
//!
//! Files:
//! ```text
//! round_robin.rs      smooth weighted round robin; edf.rs beside it for large upstreams
//! least_conn.rs       fewest active per weight, ties round robin
//! random.rs           weighted random
//! p2c.rs              power of two choices on active requests
//! ewma.rs             power of two choices on peak-EWMA latency × (pending + 1)
//! consistent_hash.rs  Maglev table
//! alias.rs            O(1) weighted draws (random, p2c, ewma)
//! rng.rs              SplitMix64, per shard, seeded
//! cells.rs            per-shard words, cache-line aligned
//! ```

mod alias;
mod cells;
mod consistent_hash;
mod edf;
mod ewma;
mod least_conn;
mod p2c;
mod random;
mod rng;
mod round_robin;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use consistent_hash::ConsistentHash;
pub use ewma::Ewma;
pub use least_conn::LeastConn;
pub use p2c::P2c;
pub use random::Random;
pub use round_robin::RoundRobin;

pub(crate) use rng::{below as random_below, fresh_seed, step};

/// One upstream's way of choosing a target, shared by every shard.
///
/// Calls for a shard come from that shard's thread: its state has that one writer (other
/// threads' calls would lose updates, not corrupt memory). `started` and `finished` go to the
/// balancer that made the pick, i.e. the snapshot the exchange holds, even if a reload swapped
/// in another meanwhile; a `finished` the balancer never saw start is harmless.
pub trait Balance: Send + Sync {
    /// Index of the target for the next request on `shard`, among those for which `usable(i)`
    /// is true (health checks and outlier ejection decide that); None when no target is usable.
    /// No allocation, no lock. `key` is the request's hash key for consistent_hash (None → fall
    /// back to round robin among usable).
    fn pick(&self, shard: usize, key: Option<u64>, usable: &dyn Fn(usize) -> bool)
        -> Option<usize>;

    /// The request sent to target `i` on `shard` started / finished. Load- and latency-aware
    /// algorithms keep per-shard state; others ignore these.
    fn started(&self, _shard: usize, _i: usize) {}

    fn finished(&self, _shard: usize, _i: usize, _latency: Duration, _ok: bool) {}
}

/// `upstreams[].balancer` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastConn,
    Random,
    P2c,
    Ewma,
    ConsistentHash,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] = [
        Algorithm::RoundRobin,
        Algorithm::LeastConn,
        Algorithm::Random,
        Algorithm::P2c,
        Algorithm::Ewma,
        Algorithm::ConsistentHash,
    ];

    /// The algorithm a config names, None for an unknown name.
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastConn => "least_conn",
            Algorithm::Random => "random",
            Algorithm::P2c => "p2c",
            Algorithm::Ewma => "ewma",
            Algorithm::ConsistentHash => "consistent_hash",
        }
    }
}

/// Builds the balancer for one upstream in one snapshot. `seed` seeds every RNG (tests pass a
/// fixed one; production passes a random one). Weights below 1 count as 1.
///
/// For consistent_hash this identifies targets by their index, so removing a target other than
/// the last one remaps the keys of every target after it; [`build_with_keys`] with a stable
/// key per target (e.g. [`hash_key`] of its address) avoids that.
pub fn build(algorithm: Algorithm, weights: &[u32], shards: usize, seed: u64) -> Box<dyn Balance> {
    let keys: Vec<u64> = (0..weights.len() as u64).collect();
    build_with_keys(algorithm, weights, &keys, shards, seed)
}

/// [`build`], with `target_keys[i]` identifying target `i` across snapshots: consistent_hash
/// derives each target's place in its table from it, so a target keeps its keys whatever
/// else is added, removed or reordered. The other algorithms ignore it. The table does not
/// depend on `seed`, so every process and every reload maps a key the same way.
pub fn build_with_keys(
    algorithm: Algorithm,
    weights: &[u32],
    target_keys: &[u64],
    shards: usize,
    seed: u64,
) -> Box<dyn Balance> {
    match algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::new(weights, shards)),
        Algorithm::LeastConn => Box::new(LeastConn::new(weights, shards)),
        Algorithm::Random => Box::new(Random::new(weights, shards, seed)),
        Algorithm::P2c => Box::new(P2c::new(weights, shards, seed)),
        Algorithm::Ewma => Box::new(Ewma::new(weights, shards, seed)),
        Algorithm::ConsistentHash => Box::new(ConsistentHash::new(weights, target_keys, shards)),
    }
}

/// Hash of a request key for consistent_hash: 64-bit FNV-1a, fixed forever (it decides which
/// target owns a key, so it must agree across processes, restarts and releases; std's
/// `RandomState` does not). FNV-1a's weak low bits do not matter: the table scatters the hash
/// again before reducing it.
pub fn hash_key(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}
