//! Everything a shard reads to serve a request, built once per (re)load and swapped in whole.
//!
//! Long-lived state is found through a [`Registry`] keyed by name, so it survives reloads:
//! targets get process-wide ids keyed by (upstream name, address), which index each shard's
//! idle pool, and routes and targets get their metrics handles, so counters continue.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::access_log::AccessLog;
use crate::balancer::{self, Balance};
use crate::config::{AccessLogFormat, Config};
use crate::health::{Probe, TargetHealth};
use crate::http::request::HeadLimits;
use crate::metrics::{Metrics, RouteMetrics, TargetMetrics, NO_ROUTE};
use crate::upstream::breaker::Gauge;
use crate::upstream::outlier::OutlierState;

pub struct Snapshot {
    pub config: Config,
    /// Hash of the config file's bytes (16 hex digits), to tell which config is live.
    pub hash: String,
    pub loaded_at: std::time::SystemTime,
    /// Parallel to `config.upstreams`.
    pub upstreams: Vec<UpstreamState>,
    /// Parallel to `config.routes`.
    pub route_metrics: Vec<Arc<RouteMetrics>>,
    /// Where requests that matched no route are counted.
    pub no_route: Arc<RouteMetrics>,
    /// The process's metrics, the same object in every snapshot.
    pub metrics: Arc<Metrics>,
    /// The process's access log, with this config's line format; None when it is off.
    pub access_log: Option<(Arc<AccessLog>, AccessLogFormat)>,
    pub head_limits: HeadLimits,
}

pub struct UpstreamState {
    pub targets: Vec<TargetRef>,
    pub balancer: Box<dyn Balance>,
    /// Requests in flight to this upstream, across shards (circuit breaker).
    pub requests: Arc<Gauge>,
    /// Requests waiting for a connection to a target at its cap, across shards.
    pub pending: Arc<Gauge>,
    /// Retries in flight to this upstream, across shards (the retry budget).
    pub retries: Arc<Gauge>,
    /// Whether `requests` is kept: a breaker caps it or a retry budget is a share of it.
    /// Otherwise requests skip the one cross-core write it costs.
    pub count_requests: bool,
}

#[derive(Clone)]
pub struct TargetRef {
    /// Process-wide id, stable across reloads for the same (upstream, address).
    pub id: usize,
    pub addr: SocketAddr,
    /// What `host_header = "target"` sends: the target as written when that is a name
    /// (`name:port`, as Envoy's auto host rewrite does for DNS targets), else its `ip:port`.
    pub host: Arc<str>,
    pub metrics: Arc<TargetMetrics>,
    /// Open connections to this target across shards, pooled ones included.
    pub connections: Arc<Gauge>,
    /// Published by the health checker; read with one relaxed load.
    pub health: Arc<TargetHealth>,
    /// Passive health: failures seen by requests, ejection.
    pub outlier: Arc<OutlierState>,
}

/// What a target keeps across snapshots.
#[derive(Clone)]
struct TargetState {
    /// Indexes each shard's idle pool.
    id: usize,
    connections: Arc<Gauge>,
    health: Arc<TargetHealth>,
    outlier: Arc<OutlierState>,
}

/// Hands out what outlives a snapshot. Lives with whoever builds snapshots (never a shard).
pub struct Registry {
    targets: HashMap<(String, SocketAddr), TargetState>,
    /// Requests, pending requests and retries in flight, by upstream name.
    upstreams: HashMap<String, [Arc<Gauge>; 3]>,
    metrics: Arc<Metrics>,
    access_log: Option<Arc<AccessLog>>,
}

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Registry {
        Registry {
            targets: HashMap::new(),
            upstreams: HashMap::new(),
            metrics,
            access_log: None,
        }
    }

    /// Snapshots built from here write their access log lines to `log`.
    pub fn with_access_log(mut self, log: Arc<AccessLog>) -> Registry {
        self.access_log = Some(log);
        self
    }

    fn target(&mut self, upstream: &str, addr: SocketAddr, host: Arc<str>) -> TargetRef {
        let next = self.targets.len();
        let TargetState {
            id,
            connections,
            health,
            outlier,
        } = self
            .targets
            .entry((upstream.to_string(), addr))
            .or_insert_with(|| TargetState {
                id: next,
                connections: Arc::default(),
                health: TargetHealth::new(),
                outlier: Arc::default(),
            })
            .clone();
        TargetRef {
            id,
            addr,
            host,
            metrics: self.metrics.target(upstream, addr),
            connections,
            health,
            outlier,
        }
    }

    fn upstream_gauges(&mut self, upstream: &str) -> [Arc<Gauge>; 3] {
        self.upstreams
            .entry(upstream.to_string())
            .or_default()
            .clone()
    }
}

impl Snapshot {
    /// What the health checker should probe for this config: every target of every upstream
    /// with a `[health_check]`.
    pub fn health_probes(&self) -> Vec<Probe> {
        let mut probes = Vec::new();
        for (u, state) in self.config.upstreams.iter().zip(&self.upstreams) {
            if let Some(check) = &u.health_check {
                for t in &state.targets {
                    probes.push(Probe {
                        upstream: u.name.clone(),
                        addr: t.addr,
                        health: Arc::clone(&t.health),
                        config: check.clone(),
                    });
                }
            }
        }
        probes
    }

    pub fn build(config: Config, hash: String, registry: &mut Registry, shards: usize) -> Snapshot {
        // Upstreams some route retries on: their retry budget is a share of their requests.
        let retried: std::collections::HashSet<usize> = config
            .routes
            .iter()
            .filter(|r| r.retry.is_some())
            .filter_map(|r| match r.action {
                crate::config::Action::Proxy { upstream, .. } => Some(upstream),
                _ => None,
            })
            .collect();
        let upstreams = config
            .upstreams
            .iter()
            .zip(&config.source.upstreams)
            .enumerate()
            .map(|(index, (u, written))| {
                let targets: Vec<TargetRef> = u
                    .targets
                    .iter()
                    .map(|t| {
                        let host = match written.targets.get(t.entry) {
                            Some(w) if w.addr.parse::<SocketAddr>().is_err() => {
                                w.addr.as_str().into()
                            }
                            _ => crate::upstream::host_of(t.addr).into(),
                        };
                        registry.target(&u.name, t.addr, host)
                    })
                    .collect();
                let weights: Vec<u32> = u.targets.iter().map(|t| t.weight).collect();
                if u.health_check.is_some() {
                    for t in &targets {
                        t.metrics.attach_health(&t.health);
                    }
                }
                let [requests, pending, retries] = registry.upstream_gauges(&u.name);
                // Consistent hashing places targets by their address, so a target keeps its
                // keys whatever else a reload adds or removes.
                let keys: Vec<u64> = u
                    .targets
                    .iter()
                    .map(|t| balancer::hash_key(t.addr.to_string().as_bytes()))
                    .collect();
                UpstreamState {
                    targets,
                    balancer: balancer::build_with_keys(
                        u.balancer,
                        &weights,
                        &keys,
                        shards,
                        balancer::fresh_seed(),
                    ),
                    requests,
                    pending,
                    retries,
                    count_requests: u.circuit_breaker.max_requests != u32::MAX
                        || retried.contains(&index),
                }
            })
            .collect();
        let route_metrics = config
            .routes
            .iter()
            .map(|r| registry.metrics.route(&r.name))
            .collect();
        let l = &config.server.limits;
        let head_limits = HeadLimits {
            max_headers: l.max_headers,
            max_header_bytes: l.max_header_bytes,
            max_uri_bytes: l.max_uri_bytes,
        };
        let access_log = match (&registry.access_log, &config.access_log) {
            (Some(log), Some(c)) => Some((Arc::clone(log), c.format)),
            _ => None,
        };
        Snapshot {
            access_log,
            config,
            hash,
            loaded_at: std::time::SystemTime::now(),
            upstreams,
            route_metrics,
            no_route: registry.metrics.route(NO_ROUTE),
            metrics: Arc::clone(&registry.metrics),
            head_limits,
        }
    }
}
