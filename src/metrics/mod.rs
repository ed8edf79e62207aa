//! Metrics: counters the shards bump on the request path, summed into a Prometheus exposition
//! when `/metrics` is scraped.
//!
//! The rules that keep this off the shards' backs:
//! - each shard writes only its own cache-padded slot (`per_shard.rs`), with relaxed atomics,
//!   and the scrape adds the slots up;
//! - the `record*` methods take no lock and allocate nothing (`tests/no_alloc.rs`);
//! - series live in a registry keyed by route name and by (upstream name, target address),
//!   filled at snapshot build time; snapshots hold the `Arc`s it hands out, so a reload that
//!   keeps a route or target keeps counting on the same series instead of resetting it.
//!
//! A series outlives the config that created it: once exposed, a counter is kept (and keeps
//! its last value) so that Prometheus never sees it vanish and come back as a reset.

mod histogram;
mod per_shard;
mod render;
mod route;
mod target;
mod text;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use per_shard::{Counter, Gauge, PerShard};

pub use route::RouteMetrics;
pub use target::{TargetMetrics, TimeoutPhase, UpstreamErrorKind};

/// The route name for requests answered without a route: no route matched (404), or the
/// request could not be parsed far enough to route it.
pub const NO_ROUTE: &str = "-";

pub struct Metrics {
    shards: PerShard<ShardMetrics>,
    shard_count: usize,
    /// Ordered maps, so the exposition comes out sorted and diffs well between scrapes.
    routes: Mutex<BTreeMap<String, Arc<RouteMetrics>>>,
    targets: Mutex<BTreeMap<(String, SocketAddr), Arc<TargetMetrics>>>,
    reloads_succeeded: AtomicU64,
    reloads_failed: AtomicU64,
}

/// What the scrape reports about the process besides the counters.
#[derive(Debug, Clone, Copy)]
pub struct ProcessInfo<'a> {
    pub version: &'a str,
    pub config_hash: &'a str,
    pub config_loaded_at: SystemTime,
    pub access_log_dropped: u64,
    pub draining: bool,
}

/// One shard's client connections.
#[derive(Default)]
pub struct ShardMetrics {
    active: Gauge,
    total: Counter,
}

impl ShardMetrics {
    /// A client connection was accepted. Called by the owning shard only.
    #[inline]
    pub fn connection_opened(&self) {
        self.active.add(1);
        self.total.add(1);
    }

    /// A client connection ended. Called by the shard that opened it.
    #[inline]
    pub fn connection_closed(&self) {
        self.active.add(-1);
    }
}

impl Metrics {
    pub fn new(shards: usize) -> Arc<Metrics> {
        let shard_count = shards.max(1);
        let metrics = Metrics {
            shards: PerShard::new(shard_count),
            shard_count,
            routes: Mutex::default(),
            targets: Mutex::default(),
            reloads_succeeded: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        };
        // Present from the first scrape, so a 404 rate can be computed before the first 404.
        metrics.route(NO_ROUTE);
        Arc::new(metrics)
    }

    /// The series of route `name`, created on first use; the same `Arc` every time after.
    /// Takes a lock: call it when building a snapshot, never per request.
    pub fn route(&self, name: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(route) = routes.get(name) {
            return Arc::clone(route);
        }
        let route = Arc::new(RouteMetrics::new(name, self.shard_count));
        routes.insert(name.to_string(), Arc::clone(&route));
        route
    }

    /// The series of target `addr` in upstream `upstream`, created on first use; the same
    /// `Arc` every time after. Takes a lock: call it when building a snapshot.
    pub fn target(&self, upstream: &str, addr: SocketAddr) -> Arc<TargetMetrics> {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            targets
                .entry((upstream.to_string(), addr))
                .or_insert_with(|| Arc::new(TargetMetrics::new(upstream, addr, self.shard_count))),
        )
    }

    /// The connection counters of `shard` (below the count given to [`Metrics::new`]).
    #[inline]
    pub fn shard(&self, shard: usize) -> &ShardMetrics {
        self.shards.get(shard)
    }

    /// A reload finished: `shardgate_reloads_total{result="success"|"failure"}`.
    pub fn reload(&self, success: bool) {
        let counter = if success {
            &self.reloads_succeeded
        } else {
            &self.reloads_failed
        };
        // Not a shard's slot: reloads come from the management thread and the admin listener.
        counter.fetch_add(1, Relaxed);
    }

    /// Every route's series, sorted by name; the lock is held only to copy the `Arc`s.
    fn routes(&self) -> Vec<Arc<RouteMetrics>> {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.values().cloned().collect()
    }

    /// Every target's series, sorted by upstream name, then address.
    fn targets(&self) -> Vec<Arc<TargetMetrics>> {
        let targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        targets.values().cloned().collect()
    }
}
