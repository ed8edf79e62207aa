//! Route lookup and path normalisation, the two per-request costs before the upstream.
//!
//! `cargo bench --bench router`. Lookups run against a small config (10 routes) and a large
//! one (10,000 routes mixing exact hosts, wildcards, prefixes and exact paths); the large one
//! should cost about the same as the small one, since `find` probes hash tables instead of
//! scanning routes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use shardgate::http::path::normalize;
use shardgate::router::{HeaderLookup, PathRule, RouteRequest, RouteRule, Router};

struct Fields(&'static [(&'static str, &'static [u8])]);

impl HeaderLookup for Fields {
    fn contains(&self, name: &str, value: &[u8]) -> bool {
        self.0
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && *v == value)
    }
}

fn rule(hosts: &[&str], path: PathRule, methods: &[&str], headers: &[(&str, &str)]) -> RouteRule {
    RouteRule {
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        path,
        methods: methods.iter().map(|m| m.to_string()).collect(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn prefix(p: &str) -> PathRule {
    PathRule::Prefix(p.into())
}

fn exact(p: &str) -> PathRule {
    PathRule::Exact(p.into())
}

/// A typical small gateway: a few services by host, a canary, some paths, a catch-all.
fn small_config() -> Vec<RouteRule> {
    vec![
        rule(
            &["api.example.com"],
            prefix("/v1"),
            &["GET", "POST"],
            &[("x-canary", "1")],
        ),
        rule(&["api.example.com"], prefix("/v1"), &["GET", "POST"], &[]),
        rule(&["api.example.com"], exact("/health"), &[], &[]),
        rule(&["*.cdn.example.com"], prefix("/"), &["GET"], &[]),
        rule(
            &["www.example.com", "example.com"],
            prefix("/static"),
            &[],
            &[],
        ),
        rule(&["www.example.com", "example.com"], prefix("/"), &[], &[]),
        rule(&["*.internal"], prefix("/admin"), &[], &[]),
        rule(&[], exact("/robots.txt"), &[], &[]),
        rule(&[], prefix("/.well-known/acme-challenge"), &[], &[]),
        rule(&[], prefix("/hooks/github"), &["POST"], &[]),
    ]
}

/// 10,000 routes: 4,000 exact hosts, 2,000 wildcards, 4,000 any-host paths.
fn large_config() -> Vec<RouteRule> {
    (0..10_000)
        .map(|i| match i % 5 {
            0 | 1 => rule(
                &[&format!("svc{i}.example.com")],
                prefix(&format!("/api/v{}", i % 3)),
                &[],
                &[],
            ),
            2 => rule(
                &[&format!("*.tenant{i}.example.net")],
                prefix("/"),
                &[],
                &[],
            ),
            3 => rule(&[], prefix(&format!("/shop/{i}/items")), &["GET"], &[]),
            _ => rule(&[], exact(&format!("/static/{i}/app.js")), &[], &[]),
        })
        .collect()
}

fn build(rules: &[RouteRule]) -> Router {
    match Router::build(rules) {
        Ok(router) => router,
        Err(errors) => panic!("bench config is invalid: {errors:?}"),
    }
}

fn lookup(
    c: &mut Criterion,
    name: &str,
    router: &Router,
    host: &'static [u8],
    path: &'static [u8],
    want: Option<usize>,
) {
    let headers = Fields(&[("user-agent", b"bench"), ("accept", b"*/*")]);
    let req = RouteRequest {
        host,
        path,
        method: b"GET",
        headers: &headers,
    };
    assert_eq!(router.find(&req), want, "{name}");
    c.bench_function(name, |b| b.iter(|| router.find(black_box(&req))));
}

fn bench_lookup(c: &mut Criterion) {
    let small = build(&small_config());
    lookup(
        c,
        "find/10/exact_host_prefix",
        &small,
        b"api.example.com",
        b"/v1/users/42",
        Some(1),
    );
    lookup(
        c,
        "find/10/wildcard",
        &small,
        b"img.eu.cdn.example.com:443",
        b"/a/b.png",
        Some(3),
    );
    lookup(
        c,
        "find/10/any_host",
        &small,
        b"other.test",
        b"/robots.txt",
        Some(7),
    );
    lookup(
        c,
        "find/10/miss",
        &small,
        b"other.test",
        b"/nothing/here",
        None,
    );

    let large = build(&large_config());
    lookup(
        c,
        "find/10k/exact_host_prefix",
        &large,
        b"svc5001.example.com",
        b"/api/v0/users/42",
        Some(5001),
    );
    lookup(
        c,
        "find/10k/wildcard",
        &large,
        b"a.b.tenant7.example.net",
        b"/x/y",
        Some(7),
    );
    lookup(
        c,
        "find/10k/any_host_prefix",
        &large,
        b"other.test",
        b"/shop/9993/items/12/reviews",
        Some(9993),
    );
    lookup(
        c,
        "find/10k/any_host_exact",
        &large,
        b"other.test",
        b"/static/9994/app.js",
        Some(9994),
    );
    lookup(
        c,
        "find/10k/miss",
        &large,
        b"nobody.example.com",
        b"/api/v0/users/42/orders/7",
        None,
    );
}

fn bench_normalize(c: &mut Criterion) {
    let mut out = Vec::with_capacity(256);
    let clean: &[u8] = b"/api/v1/users/42/orders";
    let dirty: &[u8] = b"/api/./v1/%7Eadmin/../users/%34%32/orders%2fx/";
    c.bench_function("normalize/clean", |b| {
        b.iter(|| normalize(black_box(clean), &mut out))
    });
    c.bench_function("normalize/dirty", |b| {
        b.iter(|| normalize(black_box(dirty), &mut out))
    });
}

criterion_group!(benches, bench_lookup, bench_normalize);
criterion_main!(benches);
