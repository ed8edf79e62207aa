//! `Router::find` against a naive model of the precedence rules, on generated rules and
//! requests. The model shares no code with the router: it scans every route, ranks the ones
//! whose host and path match, and takes the first whose method and headers admit the request.

use super::tests::Fields;
use super::*;

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMES: &[&str] = &[
    "example.com",
    "a.example.com",
    "b.a.example.com",
    "www.example.com",
    "example.org",
    "a.example.org",
    "com",
    "localhost",
];
const SEGMENTS: &[&str] = &["a", "b", "ab", "api", "v1", ""];
const METHODS: &[&str] = &["GET", "POST", "get"];
const HEADERS: &[(&str, &str)] = &[("x-a", "1"), ("X-B", "2"), ("x-a", "2")];

fn gen_path(rng: &mut Rng) -> String {
    let depth = rng.below(4);
    let mut path = String::from("/");
    for i in 0..depth {
        if i > 0 {
            path.push('/');
        }
        path.push_str(rng.pick(SEGMENTS));
    }
    if depth > 0 && rng.chance(20) {
        path.push('/');
    }
    path
}

fn gen_rule(rng: &mut Rng) -> RouteRule {
    let hosts = (0..rng.below(3))
        .map(|_| {
            let name = rng.pick(NAMES);
            match rng.below(3) {
                0 => format!("*.{name}"),
                1 => name.to_ascii_uppercase(),
                _ => name.to_string(),
            }
        })
        .collect();
    let path = match rng.below(4) {
        0 => PathRule::Any,
        1 => PathRule::Exact(gen_path(rng)),
        _ => PathRule::Prefix(gen_path(rng)),
    };
    let methods = if rng.chance(30) {
        (0..1 + rng.below(2))
            .map(|_| rng.pick(METHODS).to_string())
            .collect()
    } else {
        Vec::new()
    };
    let headers = if rng.chance(20) {
        let (n, v) = rng.pick(HEADERS);
        vec![(n.to_string(), v.to_string())]
    } else {
        Vec::new()
    };
    RouteRule {
        hosts,
        path,
        methods,
        headers,
    }
}

struct Request {
    host: String,
    path: String,
    method: &'static str,
    headers: Vec<(&'static str, &'static [u8])>,
}

fn gen_request(rng: &mut Rng) -> Request {
    let mut host = match rng.below(20) {
        0 | 1 => String::new(),
        2 => format!("{}.{}", "x".repeat(250), rng.pick(NAMES)),
        3 | 4 => format!("x.{}", rng.pick(NAMES)),
        _ => rng.pick(NAMES).to_string(),
    };
    if rng.chance(20) {
        host = host.to_ascii_uppercase();
    }
    if rng.chance(10) {
        host.push('.');
    }
    if rng.chance(20) {
        host.push_str(":8080");
    }
    let headers = match rng.below(4) {
        0 => vec![("x-a", &b"1"[..])],
        1 => vec![("x-b", &b"2"[..]), ("x-a", &b"2"[..])],
        _ => Vec::new(),
    };
    Request {
        host,
        path: gen_path(rng),
        method: rng.pick(&["GET", "POST", "get", "PUT"]),
        headers,
    }
}

/// The request's host as the contract describes it: no port, lowercase, no trailing dot; a
/// name over 255 bytes is no name.
fn model_host(raw: &str) -> String {
    let name = raw.split(':').next().unwrap_or("");
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 255 {
        return String::new();
    }
    name.to_ascii_lowercase()
}

/// Rank of a host pattern for `host`, lower is better: 0 exact, 1 + (MAX - suffix len)
/// wildcard, `usize::MAX` no match.
fn host_rank(pattern: &str, host: &str) -> usize {
    let pattern = pattern.to_ascii_lowercase();
    if host.is_empty() {
        return usize::MAX;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            let dotted = format!(".{suffix}");
            if host.ends_with(&dotted) && host.len() > dotted.len() {
                1 + (1000 - suffix.len())
            } else {
                usize::MAX
            }
        }
        None if pattern == host => 0,
        None => usize::MAX,
    }
}

/// Rank of a path rule for `path`, lower is better: exact, then longer prefix; or no match.
fn path_rank(rule: &PathRule, path: &str) -> Option<usize> {
    match rule {
        PathRule::Any => Some(1000),
        PathRule::Exact(p) => (p == path).then_some(0),
        PathRule::Prefix(p) => {
            let p = p.strip_suffix('/').unwrap_or(p);
            let segment_aware = path
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || p.is_empty());
            segment_aware.then(|| 1000 - p.len())
        }
    }
}

fn model_find(rules: &[RouteRule], req: &Request) -> Option<usize> {
    let host = model_host(&req.host);
    let mut ranked: Vec<(usize, usize, usize)> = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let tier = if rule.hosts.is_empty() {
            2000
        } else {
            let best = rule.hosts.iter().map(|h| host_rank(h, &host)).min();
            match best {
                Some(rank) if rank != usize::MAX => rank,
                _ => continue,
            }
        };
        if let Some(path) = path_rank(&rule.path, &req.path) {
            ranked.push((tier, path, index));
        }
    }
    ranked.sort_unstable();
    ranked
        .into_iter()
        .map(|(_, _, index)| index)
        .find(|&index| {
            let rule = &rules[index];
            let method_ok = rule.methods.is_empty() || rule.methods.iter().any(|m| m == req.method);
            let headers_ok = rule.headers.iter().all(|(n, v)| {
                req.headers
                    .iter()
                    .any(|(rn, rv)| rn.eq_ignore_ascii_case(n) && *rv == v.as_bytes())
            });
            method_ok && headers_ok
        })
}

#[test]
fn find_agrees_with_the_model() {
    let mut rng = Rng(0x5eed_f00d_5a4d_9a7e);
    let mut lookups = 0;
    let mut hits = 0;
    for _ in 0..400 {
        let rules: Vec<RouteRule> = (0..1 + rng.below(24)).map(|_| gen_rule(&mut rng)).collect();
        let router = match Router::build(&rules) {
            Ok(router) => router,
            Err(errors) => panic!("generated rules should be valid: {errors:?}"),
        };
        for _ in 0..200 {
            let req = gen_request(&mut rng);
            let got = router.find(&RouteRequest {
                host: req.host.as_bytes(),
                path: req.path.as_bytes(),
                method: req.method.as_bytes(),
                headers: &Fields(&req.headers),
            });
            let want = model_find(&rules, &req);
            assert_eq!(
                got, want,
                "host {:?} path {:?} method {} headers {:?}\nrules {rules:#?}",
                req.host, req.path, req.method, req.headers
            );
            lookups += 1;
            hits += usize::from(got.is_some());
        }
    }
    // The generator must exercise both outcomes, or the comparison proves little.
    assert!(
        hits > lookups / 5 && hits < lookups * 4 / 5,
        "{hits} of {lookups}"
    );
}
