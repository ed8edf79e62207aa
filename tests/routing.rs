//! Route matching: host, path, method and header matchers, precedence,
//! fall-through, path normalisation, prefix rewriting and direct answers.

mod common;

use common::*;

fn body_of(gw: &Gateway, host: &str, request_line: &str, extra: &str) -> (u16, String) {
    let mut client = Client::connect(gw.addr());
    client.send(format!("{request_line} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").as_bytes());
    let resp = client.read_response();
    (resp.status, resp.body_str())
}

fn route_of(gw: &Gateway, host: &str, path: &str) -> String {
    let (status, body) = body_of(gw, host, &format!("GET {path}"), "");
    assert_eq!(status, 200, "GET {path} with Host {host}: {body}");
    body
}

#[test]
fn exact_host_beats_longer_wildcard_beats_shorter_wildcard_beats_any_host() {
    for_each_driver(|driver| {
        // Config order is the reverse of precedence on purpose.
        let gw = Conf::new(driver)
            .direct("any", "path_prefix = \"/\"", "any")
            .direct("wild-short", "hosts = [\"*.example.org\"]", "wild-short")
            .direct("wild-long", "hosts = [\"*.b.example.org\"]", "wild-long")
            .direct(
                "exact",
                "hosts = [\"a.b.example.org\", \"other.example.net\"]",
                "exact",
            )
            .start();
        for (host, route) in [
            ("a.b.example.org", "exact"),
            ("other.example.net", "exact"),
            ("A.B.Example.ORG", "exact"),
            ("a.b.example.org:8080", "exact"),
            ("x.b.example.org", "wild-long"),
            ("deep.x.b.example.org", "wild-long"),
            ("b.example.org", "wild-short"),
            ("x.example.org", "wild-short"),
            ("deep.x.example.org:81", "wild-short"),
            ("example.org", "any"),
            ("notexample.org", "any"),
            ("other.test", "any"),
        ] {
            assert_eq!(route_of(&gw, host, "/"), route, "Host: {host}");
        }
    });
}

#[test]
fn exact_path_beats_longest_prefix_beats_config_order() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .direct("root", "path_prefix = \"/\"", "root")
            .direct("api", "path_prefix = \"/api\"", "api")
            .direct("v1", "path_prefix = \"/api/v1\"", "v1")
            .direct("users", "path = \"/api/v1/users\"", "users")
            .direct("first", "path_prefix = \"/same\"", "first")
            .direct("second", "path_prefix = \"/same\"", "second")
            .start();
        for (path, route) in [
            ("/api/v1/users", "users"),
            ("/api/v1/users?page=2", "users"),
            ("/api/v1/users/7", "v1"),
            ("/api/v1", "v1"),
            ("/api/v1/", "v1"),
            ("/api/v1x", "api"),
            ("/api", "api"),
            ("/api/", "api"),
            ("/api?x=/api/v1", "api"),
            ("/apix", "root"),
            ("/API", "root"),
            ("/same/thing", "first"),
            ("/", "root"),
            ("/other", "root"),
        ] {
            assert_eq!(route_of(&gw, "test", path), route, "GET {path}");
        }
    });
}

#[test]
fn host_rank_comes_before_path_rank() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .direct("exact-path-any-host", "path = \"/x\"", "path")
            .direct("host", "hosts = [\"h.test\"]\npath_prefix = \"/\"", "host")
            .start();
        assert_eq!(route_of(&gw, "h.test", "/x"), "host");
        assert_eq!(route_of(&gw, "other.test", "/x"), "path");
    });
}

#[test]
fn method_and_header_mismatches_fall_through() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .direct(
                "post-only",
                "path = \"/m\"\nmethods = [\"POST\"]",
                "post-only",
            )
            .direct(
                "canary",
                "path_prefix = \"/m\"\nheaders = { \"x-canary\" = \"1\" }",
                "canary",
            )
            .direct("m", "path_prefix = \"/m\"", "m")
            .direct(
                "exact-host-put",
                "hosts = [\"h.test\"]\nmethods = [\"PUT\"]",
                "exact-host-put",
            )
            .start();
        let cases = [
            ("POST /m", "", "post-only"),
            ("GET /m", "", "m"),
            ("GET /m", "X-Canary: 1\r\n", "canary"),
            ("GET /m", "x-canary: 2\r\n", "m"),
            ("GET /m", "x-canary: 10\r\n", "m"),
            ("POST /m/x", "X-CANARY: 1\r\n", "canary"),
            ("DELETE /m/x", "", "m"),
        ];
        for (line, extra, route) in cases {
            let (status, body) =
                body_of(&gw, "test", line, &format!("{extra}Content-Length: 0\r\n"));
            assert_eq!((status, body.as_str()), (200, route), "{line} {extra:?}");
        }
        // A host-exact candidate failing on method falls through to any host.
        let (status, body) = body_of(&gw, "h.test", "GET /m", "");
        assert_eq!((status, body.as_str()), (200, "m"));
        let (status, body) = body_of(&gw, "h.test", "PUT /m", "Content-Length: 0\r\n");
        assert_eq!((status, body.as_str()), (200, "exact-host-put"));
    });
}

#[test]
fn nothing_left_is_404() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .direct(
                "only",
                "path_prefix = \"/only\"\nmethods = [\"GET\"]",
                "only",
            )
            .direct("host", "hosts = [\"h.test\"]", "host")
            .start();
        let mut client = Client::connect(gw.addr());
        let resp = client.get("/other");
        assert_eq!(resp.status, 404);
        resp.assert_generated();
        // A 404 is no reason to close.
        assert_eq!(client.get("/only/x").body_str(), "only");
        // Method mismatch with nothing behind it is also 404.
        let mut client = Client::connect(gw.addr());
        client.send(b"POST /only HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi");
        assert_eq!(client.read_response().status, 404);
        assert_eq!(route_of(&gw, "H.TEST", "/other"), "host");
    });
}

#[test]
fn routing_uses_the_normalised_path() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .direct("root", "path_prefix = \"/\"", "root")
            .direct("ac", "path = \"/a/c\"", "a/c")
            .direct("api", "path_prefix = \"/api\"", "api")
            .start();
        for (path, route) in [
            ("/a/./b/../c", "a/c"),
            ("/a/b/../../a/c", "a/c"),
            ("/./a/c", "a/c"),
            ("/%61/%63", "a/c"),
            ("/a/%2E/c", "a/c"),
            ("/a/b/%2e%2e/c", "a/c"),
            ("/a/c?q=/../..", "a/c"),
            ("/%61pi/x", "api"),
            // An encoded slash stays encoded: this is one segment, not /api/x.
            ("/api%2Fx", "root"),
            ("/x/../api", "api"),
        ] {
            assert_eq!(route_of(&gw, "test", path), route, "GET {path}");
        }
    });
}

#[test]
fn path_climbing_above_the_root_is_400() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .proxy_all("o")
            .start();
        for path in [
            "/..",
            "/../etc/passwd",
            "/a/../..",
            "/a/../../b",
            "/%2e%2e/etc",
            "/a/%2E%2E/%2e%2E/x",
            "/./../x",
        ] {
            let mut client = Client::connect(gw.addr());
            let resp = client.get(path);
            assert_eq!(resp.status, 400, "GET {path}");
            resp.assert_generated();
        }
        origin.assert_no_request();
    });
}

#[test]
fn the_normalised_path_is_forwarded_with_the_query_untouched() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .proxy_all("o")
            .start();
        for (path, forwarded) in [
            (
                "/api/./v1/../users%7E?q=%2e%2e/../x",
                "/api/users~?q=%2e%2e/../x",
            ),
            ("/files/a%2Fb", "/files/a%2Fb"),
            ("/%41%42c", "/ABc"),
            ("/a/b/..", "/a/"),
            ("/plain?x=1&y=2", "/plain?x=1&y=2"),
        ] {
            let mut client = Client::connect(gw.addr());
            let resp = client.get(path);
            assert_eq!(resp.status, 200, "GET {path}");
            assert_eq!(origin.recv().target, forwarded, "GET {path}");
        }
    });
}

#[test]
fn strip_prefix_and_rewrite_prefix() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .route(
                "strip",
                "path_prefix = \"/api\"\nupstream = \"o\"\nstrip_prefix = true",
            )
            .route(
                "rewrite",
                "path_prefix = \"/old\"\nupstream = \"o\"\nrewrite_prefix = \"/v2/\"",
            )
            .route("plain", "path_prefix = \"/\"\nupstream = \"o\"")
            .start();
        for (path, forwarded) in [
            ("/api/users?x=1", "/users?x=1"),
            ("/api/users/7", "/users/7"),
            ("/api", "/"),
            ("/api/", "/"),
            ("/api?x=1", "/?x=1"),
            ("/old/users", "/v2/users"),
            ("/old", "/v2/"),
            ("/oldest", "/oldest"),
            ("/other/x", "/other/x"),
        ] {
            let mut client = Client::connect(gw.addr());
            let resp = client.get(path);
            assert_eq!(
                (resp.status, resp.body_str().as_str()),
                (200, forwarded),
                "GET {path}"
            );
            origin.recv();
        }
    });
}

#[test]
fn direct_route_answers_its_status_body_and_content_type() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .route(
                "tea",
                "path = \"/tea\"\ndirect = { status = 418, body = \"short and stout\", content_type = \"text/x-tea\" }",
            )
            .start();
        let mut client = Client::connect(gw.addr());
        let resp = client.get("/tea");
        assert_eq!(resp.status, 418);
        assert_eq!(resp.body_str(), "short and stout");
        assert_eq!(resp.header("content-type"), Some("text/x-tea"));
        assert_eq!(resp.header("content-length"), Some("15"));
        resp.assert_generated();

        client.send(b"HEAD /tea HTTP/1.1\r\nHost: test\r\n\r\n");
        let head = client.read_head_response();
        assert_eq!(head.status, 418);
        assert_eq!(head.header("content-type"), Some("text/x-tea"));
        // No body bytes may follow a HEAD answer: the next answer parses.
        assert_eq!(client.get("/tea").body_str(), "short and stout");
    });
}

#[test]
fn a_prefix_written_encoded_is_stripped_as_it_matches() {
    // Requests match the normalised prefix (`/%7Euser` is `/~user`, `/a/./b` is `/a/b`), so
    // the prefix a rewrite removes must be that same normalised one.
    let origin = Origin::echo_target();
    let gw = Conf::new("epoll")
        .upstream("o", &[origin.addr()])
        .route(
            "tilde",
            "path_prefix = \"/%7Euser\"\nupstream = \"o\"\nstrip_prefix = true",
        )
        .route(
            "dots",
            "path_prefix = \"/a/./b/\"\nupstream = \"o\"\nrewrite_prefix = \"/v2\"",
        )
        .start();
    for (path, forwarded) in [
        ("/~user/x", "/x"),
        ("/%7Euser/x", "/x"),
        ("/a/b/c", "/v2/c"),
    ] {
        let mut client = Client::connect(gw.addr());
        let resp = client.get(path);
        assert_eq!(
            (resp.status, resp.body_str().as_str()),
            (200, forwarded),
            "GET {path}"
        );
    }
}
