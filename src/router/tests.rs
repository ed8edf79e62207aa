//! The routing contract, line by line, through the public API.

use super::*;

/// Request headers as (name, value) pairs; names compare case-insensitively as on the wire.
pub(super) struct Fields<'a>(pub(super) &'a [(&'a str, &'a [u8])]);

impl HeaderLookup for Fields<'_> {
    fn contains(&self, name: &str, value: &[u8]) -> bool {
        self.0
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && *v == value)
    }
}

/// A rule built up field by field: `route().host("a.com").prefix("/api")`.
fn route() -> RouteRule {
    RouteRule {
        hosts: Vec::new(),
        path: PathRule::Any,
        methods: Vec::new(),
        headers: Vec::new(),
    }
}

trait Build {
    fn host(self, host: &str) -> Self;
    fn exact(self, path: &str) -> Self;
    fn prefix(self, path: &str) -> Self;
    fn method(self, method: &str) -> Self;
    fn header(self, name: &str, value: &str) -> Self;
}

impl Build for RouteRule {
    fn host(mut self, host: &str) -> Self {
        self.hosts.push(host.into());
        self
    }
    fn exact(mut self, path: &str) -> Self {
        self.path = PathRule::Exact(path.into());
        self
    }
    fn prefix(mut self, path: &str) -> Self {
        self.path = PathRule::Prefix(path.into());
        self
    }
    fn method(mut self, method: &str) -> Self {
        self.methods.push(method.into());
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn router(rules: &[RouteRule]) -> Router {
    match Router::build(rules) {
        Ok(router) => router,
        Err(errors) => panic!("rules should build: {errors:?}"),
    }
}

fn find(router: &Router, host: &[u8], path: &[u8]) -> Option<usize> {
    find_with(router, host, path, b"GET", &[])
}

fn find_with(
    router: &Router,
    host: &[u8],
    path: &[u8],
    method: &[u8],
    headers: &[(&str, &[u8])],
) -> Option<usize> {
    router.find(&RouteRequest {
        host,
        path,
        method,
        headers: &Fields(headers),
    })
}

fn errors(rules: &[RouteRule]) -> Vec<(usize, String)> {
    match Router::build(rules) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| (e.route, e.field)).collect(),
    }
}

#[test]
fn empty_router_finds_nothing() {
    let r = router(&[]);
    assert_eq!(find(&r, b"example.com", b"/"), None);
    assert_eq!(find(&r, b"", b"/"), None);
}

#[test]
fn exact_host_is_case_insensitive_and_ignores_port_and_trailing_dot() {
    let r = router(&[route().host("API.example.com")]);
    for host in [
        &b"api.example.com"[..],
        b"API.EXAMPLE.COM",
        b"api.example.com:8080",
        b"api.example.com.",
        b"Api.Example.Com.:443",
    ] {
        assert_eq!(find(&r, host, b"/"), Some(0), "{host:?}");
    }
    for host in [
        &b"example.com"[..],
        b"x.api.example.com",
        b"api.example.com..",
        b"api.example.co",
        b"",
    ] {
        assert_eq!(find(&r, host, b"/"), None, "{host:?}");
    }
}

#[test]
fn ipv6_and_ipv4_hosts() {
    let r = router(&[route().host("[::1]"), route().host("127.0.0.1")]);
    assert_eq!(find(&r, b"[::1]:8080", b"/"), Some(0));
    assert_eq!(find(&r, b"[::1]", b"/"), Some(0));
    assert_eq!(find(&r, b"127.0.0.1:8080", b"/"), Some(1));
    assert_eq!(find(&r, b"[::2]:8080", b"/"), None);
}

#[test]
fn wildcard_matches_one_or_more_labels_but_not_the_bare_suffix() {
    let r = router(&[route().host("*.example.com")]);
    assert_eq!(find(&r, b"a.example.com", b"/"), Some(0));
    assert_eq!(find(&r, b"a.b.example.com", b"/"), Some(0));
    assert_eq!(find(&r, b"A.Example.COM:80", b"/"), Some(0));
    assert_eq!(find(&r, b"a.example.com.", b"/"), Some(0));
    assert_eq!(find(&r, b"example.com", b"/"), None);
    assert_eq!(find(&r, b".example.com", b"/"), None);
    assert_eq!(find(&r, b"aexample.com", b"/"), None);
    assert_eq!(find(&r, b"a.example.org", b"/"), None);
}

#[test]
fn no_hosts_means_any_host_even_none() {
    let r = router(&[route()]);
    assert_eq!(find(&r, b"whatever.test", b"/"), Some(0));
    assert_eq!(find(&r, b"", b"/"), Some(0));
    assert_eq!(find(&r, b"[::1]:1", b"/"), Some(0));
}

#[test]
fn overlong_host_only_reaches_any_host_routes() {
    let long = format!("{}.example.com", "a".repeat(250));
    let r = router(&[route().host("*.example.com"), route().prefix("/")]);
    assert_eq!(find(&r, long.as_bytes(), b"/"), Some(1));
    assert_eq!(find(&r, b"a.example.com", b"/"), Some(0));
}

#[test]
fn host_tiers_come_before_path_specificity() {
    let r = router(&[
        route().exact("/api/users"),
        route().host("*.com").prefix("/"),
        route().host("*.example.com").prefix("/api"),
        route().host("api.example.com").prefix("/"),
    ]);
    assert_eq!(find(&r, b"api.example.com", b"/api/users"), Some(3));
    assert_eq!(find(&r, b"www.example.com", b"/api/users"), Some(2));
    assert_eq!(find(&r, b"www.example.com", b"/other"), Some(1));
    assert_eq!(find(&r, b"shop.com", b"/api/users"), Some(1));
    assert_eq!(find(&r, b"example.org", b"/api/users"), Some(0));
    assert_eq!(find(&r, b"example.org", b"/api"), None);
}

#[test]
fn longer_wildcard_suffix_wins() {
    let r = router(&[
        route().host("*.com"),
        route().host("*.example.com"),
        route().host("*.b.example.com"),
    ]);
    assert_eq!(find(&r, b"a.b.example.com", b"/"), Some(2));
    assert_eq!(find(&r, b"b.example.com", b"/"), Some(1));
    assert_eq!(find(&r, b"x.example.com", b"/"), Some(1));
    assert_eq!(find(&r, b"example.com", b"/"), Some(0));
    assert_eq!(find(&r, b"com", b"/"), None);
}

#[test]
fn exact_path_then_longest_prefix_then_config_order() {
    let r = router(&[
        route(),
        route().prefix("/api"),
        route().prefix("/api/v1/"),
        route().exact("/api/v1/users"),
        route().prefix("/api"),
        route().prefix("/"),
    ]);
    assert_eq!(find(&r, b"h", b"/api/v1/users"), Some(3));
    assert_eq!(find(&r, b"h", b"/api/v1/users/7"), Some(2));
    assert_eq!(find(&r, b"h", b"/api/v1"), Some(2));
    assert_eq!(find(&r, b"h", b"/api/v2"), Some(1));
    assert_eq!(find(&r, b"h", b"/apiv1"), Some(0));
    assert_eq!(find(&r, b"h", b"/"), Some(0));
}

#[test]
fn any_and_root_prefix_tie_on_config_order() {
    let r = router(&[route().prefix("/"), route()]);
    assert_eq!(find(&r, b"h", b"/x"), Some(0));
    let r = router(&[route(), route().prefix("/")]);
    assert_eq!(find(&r, b"h", b"/x"), Some(0));
}

#[test]
fn prefix_is_segment_aware() {
    let r = router(&[route().prefix("/api")]);
    assert_eq!(find(&r, b"h", b"/api"), Some(0));
    assert_eq!(find(&r, b"h", b"/api/"), Some(0));
    assert_eq!(find(&r, b"h", b"/api/x"), Some(0));
    assert_eq!(find(&r, b"h", b"/apix"), None);
    assert_eq!(find(&r, b"h", b"/"), None);
    let r = router(&[route().prefix("/api/")]);
    assert_eq!(find(&r, b"h", b"/api"), Some(0));
    assert_eq!(find(&r, b"h", b"/api/x"), Some(0));
    assert_eq!(find(&r, b"h", b"/apix"), None);
}

#[test]
fn root_prefix_matches_everything() {
    let r = router(&[route().prefix("/")]);
    assert_eq!(find(&r, b"h", b"/"), Some(0));
    assert_eq!(find(&r, b"h", b"/a/b/c"), Some(0));
    assert_eq!(find(&r, b"h", b"//"), Some(0));
}

#[test]
fn exact_path_is_exact() {
    let r = router(&[route().exact("/health")]);
    assert_eq!(find(&r, b"h", b"/health"), Some(0));
    assert_eq!(find(&r, b"h", b"/health/"), None);
    assert_eq!(find(&r, b"h", b"/health/x"), None);
    assert_eq!(find(&r, b"h", b"/Health"), None);
}

#[test]
fn configured_paths_are_normalised_like_requests() {
    let r = router(&[
        route().exact("/%7Euser/./x"),
        route().prefix("/a/b/../c%2f"),
    ]);
    assert_eq!(find(&r, b"h", b"/~user/x"), Some(0));
    assert_eq!(find(&r, b"h", b"/a/c%2F/d"), Some(1));
}

#[test]
fn methods_are_exact_and_case_sensitive() {
    let r = router(&[route().method("GET").method("POST")]);
    assert_eq!(find_with(&r, b"h", b"/", b"GET", &[]), Some(0));
    assert_eq!(find_with(&r, b"h", b"/", b"POST", &[]), Some(0));
    assert_eq!(find_with(&r, b"h", b"/", b"get", &[]), None);
    assert_eq!(find_with(&r, b"h", b"/", b"DELETE", &[]), None);
}

#[test]
fn headers_match_names_in_any_case_and_values_exactly() {
    let r = router(&[route().header("X-Canary", "1")]);
    assert_eq!(
        find_with(&r, b"h", b"/", b"GET", &[("x-canary", b"1")]),
        Some(0)
    );
    assert_eq!(
        find_with(&r, b"h", b"/", b"GET", &[("X-CANARY", b"1")]),
        Some(0)
    );
    assert_eq!(
        find_with(&r, b"h", b"/", b"GET", &[("x-canary", b"2")]),
        None
    );
    assert_eq!(
        find_with(&r, b"h", b"/", b"GET", &[("x-canary", b"1 ")]),
        None
    );
    assert_eq!(find_with(&r, b"h", b"/", b"GET", &[]), None);
}

#[test]
fn refused_candidate_falls_through_within_and_across_tiers() {
    let r = router(&[
        route().host("api.example.com").exact("/x").method("POST"),
        route()
            .host("api.example.com")
            .prefix("/")
            .header("x-canary", "1"),
        route().host("*.example.com").method("PUT"),
        route().method("DELETE"),
        route().exact("/x"),
    ]);
    let canary: &[(&str, &[u8])] = &[("x-canary", b"1")];
    let host = b"api.example.com";
    assert_eq!(find_with(&r, host, b"/x", b"POST", &[]), Some(0));
    assert_eq!(find_with(&r, host, b"/x", b"GET", canary), Some(1));
    assert_eq!(find_with(&r, host, b"/x", b"PUT", &[]), Some(2));
    assert_eq!(find_with(&r, host, b"/y", b"DELETE", &[]), Some(3));
    assert_eq!(find_with(&r, host, b"/x", b"GET", &[]), Some(4));
    assert_eq!(find_with(&r, host, b"/y", b"GET", &[]), None);
}

#[test]
fn a_route_with_several_hosts_serves_each() {
    let r = router(&[
        route().host("a.test").host("*.b.test").prefix("/p"),
        route(),
    ]);
    assert_eq!(find(&r, b"a.test", b"/p"), Some(0));
    assert_eq!(find(&r, b"x.b.test", b"/p/q"), Some(0));
    assert_eq!(find(&r, b"b.test", b"/p"), Some(1));
    assert_eq!(find(&r, b"a.test", b"/q"), Some(1));
}

#[test]
fn valid_rules_build() {
    assert_eq!(
        errors(&[
            route()
                .host("api.example.com")
                .host("*.example.com")
                .prefix("/api")
                .method("GET")
                .header("x-canary", "1"),
            route().exact("/"),
        ]),
        Vec::new()
    );
}

#[test]
fn every_invalid_field_of_every_rule_is_reported() {
    let got = errors(&[
        route().host("ok.test").host("*").host("a.*.test"),
        route().prefix("api"),
        route().exact("/a b").method("GET").method("G T"),
        route().header("x canary", "1").header("x-ok", "\n"),
        route(),
        route().host("").exact("/../x"),
    ]);
    let want = [
        (0, "hosts[1]"),
        (0, "hosts[2]"),
        (1, "path_prefix"),
        (2, "path"),
        (2, "methods[1]"),
        (3, "headers.x canary"),
        (3, "headers.x-ok"),
        (5, "hosts[0]"),
        (5, "path"),
    ];
    let want: Vec<(usize, String)> = want.iter().map(|&(r, f)| (r, f.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn rule_error_displays_its_key_path() {
    let err = Router::build(&[route(), route().host("a b")]).unwrap_err();
    assert_eq!(err.len(), 1);
    let text = err[0].to_string();
    assert!(text.starts_with("routes[1].hosts[0]: "), "{text}");
}

#[test]
fn ten_thousand_routes_find_the_right_one() {
    let mut rules = Vec::new();
    for i in 0..10_000 {
        rules.push(match i % 4 {
            0 => route().host(&format!("svc{i}.example.com")),
            1 => route()
                .host(&format!("*.tenant{i}.example.com"))
                .prefix("/app"),
            2 => route().prefix(&format!("/api/v{i}")),
            _ => route().exact(&format!("/static/{i}.css")),
        });
    }
    let r = router(&rules);
    assert_eq!(find(&r, b"svc400.example.com", b"/x"), Some(400));
    assert_eq!(find(&r, b"a.b.tenant401.example.com", b"/app/x"), Some(401));
    assert_eq!(find(&r, b"a.tenant401.example.com", b"/other"), None);
    assert_eq!(find(&r, b"nope.test", b"/api/v402/users"), Some(402));
    assert_eq!(find(&r, b"nope.test", b"/static/403.css"), Some(403));
    assert_eq!(find(&r, b"nope.test", b"/static/404.css"), None);
}
