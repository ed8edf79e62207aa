//! Service discovery: targets written as `name:port`, resolved when the config loads and, with
//! `resolve_interval`, again and again on the resolver thread, whose new address sets the
//! reload thread swaps in (see `control::reload`). Shards only ever see the snapshot.
//!
//! Names go to the system resolver (getaddrinfo, on a thread of its own so a timeout can be
//! kept) or, with a `resolver` key, straight to that nameserver over UDP, as nginx's `resolver`
//! does. TTLs are not used: `resolve_interval` says when to ask again.

pub mod dns;
mod resolver;
mod system;
mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use resolver::{Resolved, Resolver, Watch};

use crate::config::Config;

/// A target as written: a DNS name and the port every address it resolves to gets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetName {
    pub host: String,
    pub port: u16,
}

impl TargetName {
    /// `name:port`; an `ip:port` is not a name and is refused here.
    pub fn parse(spec: &str) -> Result<TargetName, String> {
        let Some((host, port)) = spec.rsplit_once(':') else {
            return Err(format!("{spec:?} needs a port, as in \"{spec}:80\""));
        };
        if host.contains(':') || host.starts_with('[') {
            return Err(format!(
                "{spec:?} is neither ip:port nor name:port (an IPv6 address goes in brackets: \"[::1]:80\")"
            ));
        }
        let port = match port.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "{spec:?}: the port must be a number from 1 to 65535"
                ))
            }
            Ok(port) => port,
        };
        dns::check_name(host).map_err(|e| format!("{spec:?} is not a valid name: {e}"))?;
        Ok(TargetName {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Who answers for names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nameserver {
    /// getaddrinfo: /etc/hosts, nsswitch, resolv.conf (search domains included).
    System,
    /// This DNS server, asked over UDP for A and AAAA records of the name as written.
    Udp(SocketAddr),
}

/// How an upstream's named targets are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// The targets written as names, in `targets[]` order.
    pub names: Vec<NamedTarget>,
    /// None: resolved when the config loads, and only then.
    pub interval: Option<Duration>,
    /// How long one lookup may take.
    pub timeout: Duration,
    pub nameserver: Nameserver,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTarget {
    /// Its index in the upstream's `targets[]`.
    pub entry: usize,
    pub name: TargetName,
    /// What every address it resolves to weighs.
    pub weight: u32,
}

/// The addresses of `name`, sorted and without repeats, never empty; a lookup that takes
/// longer than `timeout` fails.
pub fn lookup(
    name: &TargetName,
    nameserver: Nameserver,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, String> {
    let found = match nameserver {
        Nameserver::System => system::lookup_within(name, timeout),
        Nameserver::Udp(server) => udp_lookup(name, server, Instant::now() + timeout),
    };
    address_set(found)
}

/// [`lookup`] with no deadline of its own for the system resolver: for threads whose waiter
/// keeps the time.
fn lookup_blocking(
    name: &TargetName,
    nameserver: Nameserver,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, String> {
    let found = match nameserver {
        Nameserver::System => system::lookup(name),
        Nameserver::Udp(server) => udp_lookup(name, server, deadline),
    };
    address_set(found)
}

fn udp_lookup(
    name: &TargetName,
    server: SocketAddr,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, String> {
    udp::lookup(server, &name.host, deadline).map(|ips| {
        ips.into_iter()
            .map(|ip| SocketAddr::new(ip, name.port))
            .collect()
    })
}

/// Sorted, so that a server rotating its records (round-robin DNS) is not taken for a change.
fn address_set(found: Result<Vec<SocketAddr>, String>) -> Result<Vec<SocketAddr>, String> {
    let mut addrs = found?;
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.is_empty() {
        return Err("the answer has no address".into());
    }
    Ok(addrs)
}

/// What the resolver thread should watch for `config`: every named target of every upstream
/// with a `resolve_interval`, with the addresses it has now.
pub fn watches(config: &Config) -> Vec<Watch> {
    let mut watches = Vec::new();
    for u in &config.upstreams {
        let Some(interval) = u.resolve.interval else {
            continue;
        };
        for named in &u.resolve.names {
            watches.push(Watch {
                upstream: u.name.clone(),
                entry: named.entry,
                name: named.name.clone(),
                nameserver: u.resolve.nameserver,
                interval,
                timeout: u.resolve.timeout,
                current: u.addresses_of(named.entry),
            });
        }
    }
    watches
}

/// `[a, b]`, for log lines.
pub fn show(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!("[{}]", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_checked_as_written() {
        assert_eq!(
            TargetName::parse("api.internal:8080"),
            Ok(TargetName {
                host: "api.internal".into(),
                port: 8080
            })
        );
        for (spec, says) in [
            ("api.internal", "needs a port"),
            ("api.internal:http", "port must be a number"),
            ("api.internal:0", "port must be a number"),
            ("api.internal:70000", "port must be a number"),
            ("::1:80", "IPv6 address goes in brackets"),
            ("[::1]:80", "IPv6 address goes in brackets"),
            ("api..internal:80", "not a valid name"),
            (":80", "not a valid name"),
            ("a b:80", "not a valid name"),
        ] {
            let err = TargetName::parse(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }

    #[test]
    fn address_sets_are_sorted_unique_and_never_empty() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(address_set(Ok(vec![b, a, b])), Ok(vec![a, b]));
        assert!(address_set(Ok(vec![])).is_err());
    }
}
