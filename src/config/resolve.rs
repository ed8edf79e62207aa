//! `targets[]` as written → addresses, and the keys that say how names are resolved:
//! `resolve_interval`, `resolve_timeout`, `resolver` (and `server.resolver`).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::file::UpstreamFile;
use super::validate::Errors;
use super::{Target, Upstream};
use crate::discovery::{self, NamedTarget, Nameserver, Resolve, TargetName};

/// `"ip:port"` of a DNS server, or `"system"`; absent is `default`.
pub(super) fn nameserver(
    key: &str,
    value: Option<&str>,
    default: Nameserver,
    errs: &mut Errors,
) -> Nameserver {
    match value {
        None => default,
        Some("system") => Nameserver::System,
        Some(v) => match v.parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => Nameserver::Udp(addr),
            _ => {
                errs.push(
                    key,
                    format_args!(
                        "{v:?} is neither the ip:port of a DNS server (as in \"10.0.0.2:53\") nor \"system\""
                    ),
                );
                default
            }
        },
    }
}

/// What each (name, nameserver) of a file resolved to.
pub(super) type Answers = HashMap<(TargetName, Nameserver), Result<Vec<SocketAddr>, String>>;

/// Lookups running at once while a config loads; more names wait for the next round.
const PARALLEL_LOOKUPS: usize = 64;

/// Resolves every name the file's upstreams hold, all at once (each within its upstream's
/// `resolve_timeout`): with a nameserver that does not answer, a load then waits about one
/// timeout, not one per name. Keys that don't parse are left to [`targets`], which reports them.
pub(super) fn lookup_all(upstreams: &[UpstreamFile], default: Nameserver) -> Answers {
    let mut wanted: HashMap<(TargetName, Nameserver), std::time::Duration> = HashMap::new();
    for u in upstreams {
        let mut quiet = Errors::default();
        let nameserver = nameserver("", u.resolver.as_deref(), default, &mut quiet);
        let Ok(timeout) = humantime::parse_duration(u.resolve_timeout.trim()) else {
            continue;
        };
        if quiet.len() > 0 || timeout.is_zero() {
            continue;
        }
        for t in &u.targets {
            if t.addr.parse::<SocketAddr>().is_ok() {
                continue;
            }
            if let Ok(name) = TargetName::parse(&t.addr) {
                let longest = wanted.entry((name, nameserver)).or_insert(timeout);
                *longest = (*longest).max(timeout);
            }
        }
    }
    let wanted: Vec<_> = wanted.into_iter().collect();
    let mut answers = Answers::new();
    for round in wanted.chunks(PARALLEL_LOOKUPS) {
        std::thread::scope(|scope| {
            let asked: Vec<_> = round
                .iter()
                .map(|((name, ns), timeout)| {
                    let ask = scope.spawn(move || discovery::lookup(name, *ns, *timeout));
                    ((name.clone(), *ns), ask)
                })
                .collect();
            for (key, ask) in asked {
                let answer = ask
                    .join()
                    .unwrap_or_else(|_| Err("the lookup failed".to_string()));
                answers.insert(key, answer);
            }
        });
    }
    answers
}

/// The upstream's targets, names resolved now (blocking, each within `resolve_timeout`;
/// `answers` holds those [`lookup_all`] asked already), and how to resolve them again.
pub(super) fn targets(
    key: &dyn Fn(&str) -> String,
    u: &UpstreamFile,
    default: Nameserver,
    answers: &Answers,
    errs: &mut Errors,
) -> (Vec<Target>, Resolve) {
    let before = errs.len();
    let nameserver = nameserver(&key("resolver"), u.resolver.as_deref(), default, errs);
    let timeout = errs.duration(&key("resolve_timeout"), &u.resolve_timeout);
    // With a bad `resolver` or `resolve_timeout`, [`lookup_all`] asked nothing, and asking
    // now with a stand-in would only add confusing errors.
    let can_resolve = errs.len() == before;
    let interval = u
        .resolve_interval
        .as_deref()
        .map(|v| errs.duration(&key("resolve_interval"), v));

    let mut targets = Vec::with_capacity(u.targets.len());
    let mut names = Vec::new();
    for (j, t) in u.targets.iter().enumerate() {
        let field = |f: &str| key(&format!("targets[{j}].{f}"));
        if t.weight == 0 {
            errs.push(field("weight"), "must be at least 1");
        }
        let weight = t.weight.max(1);
        if let Ok(addr) = t.addr.parse::<SocketAddr>() {
            targets.push(Target {
                addr,
                weight,
                entry: j,
            });
            continue;
        }
        let name = match TargetName::parse(&t.addr) {
            Ok(name) => name,
            Err(e) => {
                errs.push(field("addr"), e);
                continue;
            }
        };
        if let Some(answer) = answers
            .get(&(name.clone(), nameserver))
            .filter(|_| can_resolve)
        {
            match answer.clone() {
                // A name with several addresses becomes one target per address, as in nginx's
                // `server name;`.
                Ok(addrs) => targets.extend(addrs.into_iter().map(|addr| Target {
                    addr,
                    weight,
                    entry: j,
                })),
                Err(e) => errs.push(
                    field("addr"),
                    format_args!("cannot resolve {:?}: {e}", t.addr),
                ),
            }
        }
        names.push(NamedTarget {
            entry: j,
            name,
            weight,
        });
    }
    let literal_only = u
        .targets
        .iter()
        .all(|t| t.addr.parse::<SocketAddr>().is_ok());
    if interval.is_some() && literal_only && !u.targets.is_empty() {
        errs.push(
            key("resolve_interval"),
            "every target is an ip:port; only name:port targets are resolved",
        );
    }
    let resolve = Resolve {
        names,
        interval,
        timeout,
        nameserver,
    };
    (targets, resolve)
}

impl Upstream {
    /// The addresses `targets[entry]` has now.
    pub fn addresses_of(&self, entry: usize) -> Vec<SocketAddr> {
        self.targets
            .iter()
            .filter(|t| t.entry == entry)
            .map(|t| t.addr)
            .collect()
    }

    /// Gives the named `targets[entry]` these addresses, each with its weight, in its place
    /// among the others. Does nothing for an entry that is not a name.
    pub fn set_addresses(&mut self, entry: usize, addrs: &[SocketAddr]) {
        let Some(named) = self.resolve.names.iter().find(|n| n.entry == entry) else {
            return;
        };
        let weight = named.weight;
        self.targets.retain(|t| t.entry != entry);
        let at = self
            .targets
            .iter()
            .position(|t| t.entry > entry)
            .unwrap_or(self.targets.len());
        self.targets.splice(
            at..at,
            addrs.iter().map(|&addr| Target {
                addr,
                weight,
                entry,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn config(upstream: &str) -> Result<Config, Vec<String>> {
        Config::parse(&format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[[upstreams]]\nname = \"u\"\n{upstream}\n"
        ))
    }

    fn errors(upstream: &str) -> String {
        config(upstream).unwrap_err().join("\n")
    }

    #[test]
    fn bad_keys_are_named_with_a_reason() {
        let e = errors("targets = [{ addr = \"127.0.0.1:1\" }]\nresolve_interval = \"soon\"");
        assert!(
            e.contains("upstreams[0].resolve_interval: invalid duration \"soon\""),
            "{e}"
        );
        let e = errors("targets = [{ addr = \"127.0.0.1:1\" }]\nresolve_interval = \"10s\"");
        assert!(
            e.contains("upstreams[0].resolve_interval: every target is an ip:port"),
            "{e}"
        );
        let e = errors("targets = [{ addr = \"x.test:80\" }]\nresolve_timeout = \"0s\"\nresolver = \"127.0.0.1\"");
        assert!(
            e.contains("upstreams[0].resolve_timeout: must be greater than 0"),
            "{e}"
        );
        assert!(
            e.contains(
                "upstreams[0].resolver: \"127.0.0.1\" is neither the ip:port of a DNS server"
            ),
            "{e}"
        );
        // Nothing was asked of a resolver that is wrong, so no error about the name.
        assert!(!e.contains("targets[0]"), "{e}");
        let e = errors("targets = [{ addr = \"x..test:80\" }, { addr = \"x.test\" }]");
        assert!(
            e.contains("upstreams[0].targets[0].addr: \"x..test:80\" is not a valid name"),
            "{e}"
        );
        assert!(
            e.contains("upstreams[0].targets[1].addr: \"x.test\" needs a port"),
            "{e}"
        );
    }

    #[test]
    fn new_addresses_take_the_place_and_weight_of_their_entry() {
        let mut c = config(
            "targets = [{ addr = \"127.0.0.1:1\" }, { addr = \"localhost:2\", weight = 3 }, { addr = \"127.0.0.1:3\" }]",
        )
        .unwrap();
        let u = &mut c.upstreams[0];
        assert_eq!(u.resolve.names.len(), 1);
        assert_eq!(u.resolve.interval, None);
        let new: Vec<std::net::SocketAddr> =
            vec!["10.0.0.1:2".parse().unwrap(), "10.0.0.2:2".parse().unwrap()];
        u.set_addresses(1, &new);
        let got: Vec<(String, u32, usize)> = u
            .targets
            .iter()
            .map(|t| (t.addr.to_string(), t.weight, t.entry))
            .collect();
        assert_eq!(
            got,
            [
                ("127.0.0.1:1".to_string(), 1, 0),
                ("10.0.0.1:2".to_string(), 3, 1),
                ("10.0.0.2:2".to_string(), 3, 1),
                ("127.0.0.1:3".to_string(), 1, 2),
            ]
        );
        assert_eq!(u.addresses_of(1), new);
        // A literal entry is not a name: left alone.
        u.set_addresses(0, &new);
        assert_eq!(u.addresses_of(0), ["127.0.0.1:1".parse().unwrap()]);
    }
}
