//! Route selection: which route serves a request, from its host, path, method and headers.
//!
//! The router is compiled once per config snapshot and then only read. A lookup allocates
//! nothing and costs a handful of hash probes however many routes there are.
//!
//! # Precedence
//! Candidates are ordered, and the first whose methods and headers admit the request wins:
//!
//! 1. **Host tier.** Routes listing the request's exact host, then routes whose `*.suffix`
//!    matches it (longer suffix first), then routes with no `hosts` (any host).
//! 2. **Path, within a tier.** Exact `path`, then `path_prefix` from longest to shortest (a
//!    route without a path rule counts as the prefix `/`, the shortest).
//! 3. **Config order** breaks the remaining ties.
//!
//! A candidate refused on method or headers falls through to the next one in this order, across
//! tiers; when none is left the request gets 404.
//!
//! # Files
//! - `host.rs`: host patterns and the request's Host reduced to a name
//! - `rule.rs`: validation of paths, methods and headers
//! - `tier.rs`: per-host path tables and the probing order
//! - `guard.rs`: method and header conditions
//! - `rewrite.rs`: `strip_prefix` / `rewrite_prefix` of the forwarded path
//! - `lengths.rs`: the key lengths a lookup table holds, to skip probes that cannot hit

mod guard;
mod host;
mod lengths;
mod rewrite;
mod rule;

pub(crate) use rule::path_key;
mod tier;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
pub(crate) mod no_alloc_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use guard::Guard;
use host::{HostPattern, MAX_HOST_LEN};
use lengths::LengthSet;
pub use rewrite::rewrite_prefix;
use tier::{PathKey, Span, Tier, TierBuilder};

/// A route's path condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    /// No path condition: matches every path, as the shortest possible prefix.
    Any,
    /// `path`: the normalised request path must equal this one.
    Exact(String),
    /// `path_prefix`: segment-aware, so `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`.
    Prefix(String),
}

/// The matching part of one configured route, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Exact names and `*.suffix` wildcards; empty means any host.
    pub hosts: Vec<String>,
    pub path: PathRule,
    /// Case-sensitive method tokens; empty means any method.
    pub methods: Vec<String>,
    /// Header name (any case) and the exact value it must carry.
    pub headers: Vec<(String, String)>,
}

/// One invalid field of one route. Displays as `routes[2].hosts[1]: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Index of the route in the rules given to [`Router::build`].
    pub route: usize,
    /// Key path inside the route: `hosts[1]`, `path`, `path_prefix`, `methods[0]`,
    /// `headers.x-canary`.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "routes[{}].{}: {}", self.route, self.field, self.reason)
    }
}

impl std::error::Error for RuleError {}

/// What the router needs to know about a request.
pub struct RouteRequest<'a> {
    /// Host header value or absolute-form authority; may carry `:port`, may be `[v6]:port`,
    /// may be empty.
    pub host: &'a [u8],
    /// The normalised path ([`crate::http::path::normalize`]), without the query.
    pub path: &'a [u8],
    pub method: &'a [u8],
    pub headers: &'a dyn HeaderLookup,
}

/// Header access for route conditions, implemented over the parsed request head.
pub trait HeaderLookup {
    /// Whether any field `name` (given lowercase) has a value equal to `value` exactly.
    fn contains(&self, name: &str, value: &[u8]) -> bool;
}

/// The compiled routing table of one config snapshot.
///
/// The tables use std's keyed SipHash: an unkeyed multiply-rotate hasher measured no faster on
/// these short keys (`benches/router.rs`), and keyed hashing leaves nothing to tune against.
#[derive(Debug, Clone, Default)]
pub struct Router {
    exact_hosts: HashMap<Box<[u8]>, Tier>,
    exact_host_lengths: LengthSet,
    /// Keyed by the suffix after `*.`.
    wildcard_hosts: HashMap<Box<[u8]>, Tier>,
    wildcard_lengths: LengthSet,
    any_host: Tier,
    /// Route indices, in runs that the tiers' spans point into.
    candidates: Vec<usize>,
    /// Method and header conditions, by route index.
    guards: Vec<Guard>,
}

impl Router {
    /// Compiles `rules` (in config order). Reports every invalid field of every rule.
    pub fn build(rules: &[RouteRule]) -> Result<Router, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut exact_hosts: HashMap<Box<[u8]>, TierBuilder> = HashMap::new();
        let mut wildcard_hosts: HashMap<Box<[u8]>, TierBuilder> = HashMap::new();
        let mut any_host = TierBuilder::default();
        let mut guards = Vec::with_capacity(rules.len());

        for (index, rule) in rules.iter().enumerate() {
            let compiled = match compile(index, rule) {
                Ok(compiled) => compiled,
                Err(mut rule_errors) => {
                    errors.append(&mut rule_errors);
                    continue;
                }
            };
            if compiled.hosts.is_empty() {
                any_host.add(&compiled.path, index);
            }
            for host in compiled.hosts {
                let (tiers, name) = match host {
                    HostPattern::Exact(name) => (&mut exact_hosts, name),
                    HostPattern::Wildcard(suffix) => (&mut wildcard_hosts, suffix),
                };
                tiers.entry(name).or_default().add(&compiled.path, index);
            }
            guards.push(compiled.guard);
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let mut candidates = Vec::new();
        let mut finish = |tiers: HashMap<Box<[u8]>, TierBuilder>| -> HashMap<Box<[u8]>, Tier> {
            tiers
                .into_iter()
                .map(|(name, tier)| (name, tier.finish(&mut candidates)))
                .collect()
        };
        let exact_hosts = finish(exact_hosts);
        let wildcard_hosts = finish(wildcard_hosts);
        let lengths = |tiers: &HashMap<Box<[u8]>, Tier>| {
            let mut set = LengthSet::default();
            tiers.keys().for_each(|key| set.insert(key.len()));
            set
        };
        let any_host = any_host.finish(&mut candidates);
        candidates.shrink_to_fit();
        Ok(Router {
            exact_host_lengths: lengths(&exact_hosts),
            exact_hosts,
            wildcard_lengths: lengths(&wildcard_hosts),
            wildcard_hosts,
            any_host,
            candidates,
            guards,
        })
    }

    /// Index (into the rules given to [`Router::build`]) of the route that serves `req`, or
    /// `None` (404). See the module docs for the order in which candidates are tried.
    pub fn find(&self, req: &RouteRequest<'_>) -> Option<usize> {
        let admit = |span: Span| {
            span.of(&self.candidates).iter().copied().find(|&route| {
                self.guards
                    .get(route)
                    .is_some_and(|guard| guard.admits(req.method, req.headers))
            })
        };
        let mut buf = [0u8; MAX_HOST_LEN];
        if let Some(name) = host::canonical(req.host, &mut buf) {
            if self.exact_host_lengths.may_contain(name.len()) {
                let found = self
                    .exact_hosts
                    .get(name)
                    .and_then(|t| t.first(req.path, admit));
                if found.is_some() {
                    return found;
                }
            }
            if !self.wildcard_hosts.is_empty() {
                for suffix in host::wildcard_suffixes(name) {
                    if !self.wildcard_lengths.may_contain(suffix.len()) {
                        continue;
                    }
                    let found = self
                        .wildcard_hosts
                        .get(suffix)
                        .and_then(|t| t.first(req.path, admit));
                    if found.is_some() {
                        return found;
                    }
                }
            }
        }
        self.any_host.first(req.path, admit)
    }
}

/// A valid rule, in the forms the tables store.
struct Compiled {
    hosts: Vec<HostPattern>,
    path: PathKey,
    guard: Guard,
}

fn compile(index: usize, rule: &RouteRule) -> Result<Compiled, Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut fail = |field: String, reason: String| {
        errors.push(RuleError {
            route: index,
            field,
            reason,
        })
    };

    let mut hosts = Vec::with_capacity(rule.hosts.len());
    for (i, raw) in rule.hosts.iter().enumerate() {
        match host::parse_pattern(raw) {
            Ok(pattern) => hosts.push(pattern),
            Err(reason) => fail(format!("hosts[{i}]"), reason),
        }
    }
    let path = match &rule.path {
        PathRule::Any => Some(PathKey::Root),
        PathRule::Exact(raw) => rule::path_key(raw, false)
            .map_err(|reason| fail("path".into(), reason))
            .ok()
            .map(PathKey::Exact),
        PathRule::Prefix(raw) => rule::path_key(raw, true)
            .map_err(|reason| fail("path_prefix".into(), reason))
            .ok()
            .map(|key| {
                if key.is_empty() {
                    PathKey::Root
                } else {
                    PathKey::Prefix(key)
                }
            }),
    };
    let mut methods = Vec::with_capacity(rule.methods.len());
    for (i, raw) in rule.methods.iter().enumerate() {
        match rule::method(raw) {
            Ok(method) => methods.push(method),
            Err(reason) => fail(format!("methods[{i}]"), reason),
        }
    }
    let mut headers = Vec::with_capacity(rule.headers.len());
    for (name, value) in &rule.headers {
        match rule::header(name, value) {
            Ok(header) => headers.push(header),
            Err(reason) => fail(format!("headers.{name}"), reason),
        }
    }

    match path {
        Some(path) if errors.is_empty() => Ok(Compiled {
            hosts,
            path,
            guard: Guard {
                methods: methods.into(),
                headers: headers.into(),
            },
        }),
        _ => Err(errors),
    }
}
