//! Everything a shard reads to serve a request, built once per (re)load and swapped in whole.
//!
//! Targets get process-wide ids from a [`TargetRegistry`] keyed by (upstream name, address), so
//! per-target state (each shard's idle pool today) survives a reload that keeps the target.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::balancer::RoundRobin;
use crate::config::Config;
use crate::http::request::HeadLimits;

pub struct Snapshot {
    pub config: Config,
    /// Hash of the config file's bytes (16 hex digits), to tell which config is live.
    pub hash: String,
    pub loaded_at: std::time::SystemTime,
    /// Parallel to `config.upstreams`.
    pub upstreams: Vec<UpstreamState>,
    pub head_limits: HeadLimits,
}

pub struct UpstreamState {
    pub targets: Vec<TargetRef>,
    pub balancer: RoundRobin,
}

#[derive(Debug, Clone, Copy)]
pub struct TargetRef {
    /// Process-wide id, stable across reloads for the same (upstream, address).
    pub id: usize,
    pub addr: SocketAddr,
}

/// Hands out target ids. Lives with whoever builds snapshots (never on a shard).
#[derive(Default)]
pub struct TargetRegistry {
    ids: HashMap<(String, SocketAddr), usize>,
}

impl TargetRegistry {
    fn id(&mut self, upstream: &str, addr: SocketAddr) -> usize {
        let next = self.ids.len();
        *self.ids.entry((upstream.to_string(), addr)).or_insert(next)
    }
}

impl Snapshot {
    pub fn build(
        config: Config,
        hash: String,
        registry: &mut TargetRegistry,
        shards: usize,
    ) -> Snapshot {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let targets = u
                    .targets
                    .iter()
                    .map(|t| TargetRef {
                        id: registry.id(&u.name, t.addr),
                        addr: t.addr,
                    })
                    .collect();
                let weights: Vec<u32> = u.targets.iter().map(|t| t.weight).collect();
                UpstreamState {
                    targets,
                    balancer: RoundRobin::new(&weights, shards),
                }
            })
            .collect();
        let l = &config.server.limits;
        let head_limits = HeadLimits {
            max_headers: l.max_headers,
            max_header_bytes: l.max_header_bytes,
            max_uri_bytes: l.max_uri_bytes,
        };
        Snapshot {
            config,
            hash,
            loaded_at: std::time::SystemTime::now(),
            upstreams,
            head_limits,
        }
    }
}
