//! What the gateway changes on the way through, and what it must not:
//! forwarding headers, hop-by-hop stripping, Host policy, interim responses,
//! bodiless responses, and bodies of every framing and size.

mod common;

use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::thread;

fn through(driver: &str, origin: &Origin) -> Gateway {
    Conf::new(driver)
        .upstream("o", &[origin.addr()])
        .proxy_all("o")
        .start()
}

#[test]
fn request_and_response_pass_through() {
    for_each_driver(|driver| {
        let origin = Origin::start(|req| {
            Reply::status(201)
                .header("X-Origin", "yes")
                .header("Set-Cookie", "a=1")
                .header("Set-Cookie", "b=2")
                .body(format!(
                    "{} {} {}",
                    req.method,
                    req.target,
                    String::from_utf8_lossy(&req.body)
                ))
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(
            b"PUT /items/7?full=1 HTTP/1.1\r\nHost: test\r\nX-One: 1\r\nX-Two: 2\r\nX-One: 3\r\n\
              Content-Type: text/plain\r\nContent-Length: 4\r\n\r\nbody",
        );
        let resp = client.read_response();
        assert_eq!(resp.status, 201);
        assert_eq!(resp.body_str(), "PUT /items/7?full=1 body");
        assert_eq!(resp.header("x-origin"), Some("yes"));
        assert_eq!(resp.headers_named("set-cookie"), ["a=1", "b=2"]);

        let seen = origin.recv();
        assert_eq!(seen.headers_named("x-one"), ["1", "3"]);
        assert_eq!(seen.header("x-two"), Some("2"));
        assert_eq!(seen.header("content-type"), Some("text/plain"));
        assert_eq!(seen.body, b"body");
    });
}

#[test]
fn forwarded_headers_are_appended_and_set() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(b"GET /plain HTTP/1.1\r\nHost: app.example.com\r\n\r\n");
        assert_eq!(client.read_response().status, 200);
        let seen = origin.recv();
        assert_eq!(seen.joined("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(seen.joined("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(
            seen.joined("x-forwarded-host").as_deref(),
            Some("app.example.com")
        );

        // A client's own values: For is appended to, Proto and Host overwritten.
        client.send(
            b"GET /spoof HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-For: 10.1.2.3\r\n\
              X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n\r\n",
        );
        assert_eq!(client.read_response().status, 200);
        let seen = origin.recv();
        assert_eq!(
            seen.joined("x-forwarded-for").as_deref(),
            Some("10.1.2.3, 127.0.0.1")
        );
        assert_eq!(seen.joined("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(
            seen.joined("x-forwarded-host").as_deref(),
            Some("app.example.com")
        );
    });
}

#[test]
fn via_is_added_unless_disabled() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/a").status, 200);
        assert_eq!(
            origin.recv().joined("via").as_deref(),
            Some("1.1 shardgate")
        );
        client.send(b"GET /b HTTP/1.1\r\nHost: test\r\nVia: 1.0 fred\r\n\r\n");
        assert_eq!(client.read_response().status, 200);
        assert_eq!(
            origin.recv().joined("via").as_deref(),
            Some("1.0 fred, 1.1 shardgate")
        );
        drop(gw);

        let gw = Conf::new(driver)
            .server("via = false")
            .upstream("o", &[origin.addr()])
            .proxy_all("o")
            .start();
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/c").status, 200);
        assert!(!origin.recv().has_header("via"));
    });
}

#[test]
fn request_id_is_added_when_absent_and_echoed() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        let mut ids = Vec::new();
        for _ in 0..2 {
            let resp = client.get("/id");
            let seen = origin.recv();
            assert_eq!(seen.headers_named("x-request-id").len(), 1);
            let id = seen.header("x-request-id").unwrap().to_string();
            assert!(!id.is_empty());
            assert_eq!(
                resp.header("x-request-id"),
                Some(id.as_str()),
                "echoed to the client"
            );
            ids.push(id);
        }
        assert_ne!(ids[0], ids[1], "request ids must differ");

        client.send(b"GET /own HTTP/1.1\r\nHost: test\r\nX-Request-Id: abc-123\r\n\r\n");
        assert_eq!(client.read_response().status, 200);
        assert_eq!(origin.recv().headers_named("x-request-id"), ["abc-123"]);
    });
}

#[test]
fn hop_by_hop_headers_are_not_forwarded_upstream() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(
            b"GET /hop HTTP/1.1\r\nHost: test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
              Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
              Trailer: X-T\r\nUpgrade: h2c\r\nX-Keep: 1\r\n\r\n",
        );
        assert_eq!(client.read_response().status, 200);
        let seen = origin.recv();
        for name in [
            "x-secret",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade",
        ] {
            assert!(
                !seen.has_header(name),
                "{name} reached the upstream: {:?}",
                seen.headers
            );
        }
        if let Some(connection) = seen.joined("connection") {
            assert!(
                !connection.to_ascii_lowercase().contains("x-secret"),
                "Connection: {connection}"
            );
        }
        assert_eq!(seen.header("x-keep"), Some("1"));
        // The connection header did not make the gateway close.
        assert_eq!(client.get("/again").status, 200);
    });
}

#[test]
fn hop_by_hop_headers_are_not_forwarded_to_the_client() {
    for_each_driver(|driver| {
        let origin = Origin::start(|_| {
            Reply::ok("0123456789")
                .header("Connection", "X-Internal")
                .header("X-Internal", "secret")
                .header("Keep-Alive", "timeout=5")
                .header("Proxy-Connection", "keep-alive")
                .header("Upgrade", "foo")
                .header("X-End", "1")
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        let resp = client.get("/hop");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), "0123456789");
        for name in ["x-internal", "keep-alive", "proxy-connection", "upgrade"] {
            assert!(
                !resp.has_header(name),
                "{name} reached the client: {:?}",
                resp.headers
            );
        }
        if let Some(connection) = resp.header("connection") {
            assert!(
                !connection.to_ascii_lowercase().contains("x-internal"),
                "Connection: {connection}"
            );
        }
        assert_eq!(resp.header("x-end"), Some("1"));
        assert_eq!(client.get("/again").status, 200);
    });
}

#[test]
fn upstream_host_header_is_preserved_or_set_per_upstream() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let target = origin.addr();
        let one: &[(SocketAddr, u32)] = &[(target, 1)];
        let gw = Conf::new(driver)
            .upstream_with("preserve", one, "")
            .upstream_with("preserve-explicit", one, "host_header = \"preserve\"")
            .upstream_with("target", one, "host_header = \"target\"")
            .upstream_with("literal", one, "host_header = \"internal.svc\"")
            .route("p", "path_prefix = \"/p\"\nupstream = \"preserve\"")
            .route(
                "pe",
                "path_prefix = \"/pe\"\nupstream = \"preserve-explicit\"",
            )
            .route("t", "path_prefix = \"/t\"\nupstream = \"target\"")
            .route("l", "path_prefix = \"/l\"\nupstream = \"literal\"")
            .start();
        let target = target.to_string();
        for (path, host) in [
            ("/p", "app.example.com:8080"),
            ("/pe", "app.example.com:8080"),
            ("/t", target.as_str()),
            ("/l", "internal.svc"),
        ] {
            let mut client = Client::connect(gw.addr());
            client.send(
                format!("GET {path} HTTP/1.1\r\nHost: app.example.com:8080\r\n\r\n").as_bytes(),
            );
            assert_eq!(client.read_response().status, 200);
            assert_eq!(origin.recv().headers_named("host"), [host], "route {path}");
        }
    });
}

#[test]
fn expect_100_continue_is_answered_by_the_gateway() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(
            b"POST /e HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        );
        // The origin never sends 100: this one is the gateway's.
        let interim = client.read_response();
        assert_eq!(interim.status, 100);
        client.send(b"hello");
        let resp = client.read_response();
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "hello"));
        let seen = origin.recv();
        assert!(
            !seen.has_header("expect"),
            "Expect was forwarded: {:?}",
            seen.headers
        );
        assert_eq!(seen.body, b"hello");
    });
}

#[test]
fn expect_100_is_not_sent_when_routing_fails() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .route("only", "path_prefix = \"/only\"\nupstream = \"o\"")
            .start();
        let mut client = Client::connect(gw.addr());
        client.send(
            b"POST /elsewhere HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!(client.read_response().status, 404, "no 100 before a 404");
        origin.assert_no_request();
    });
}

#[test]
fn interim_103_is_forwarded_and_100_dropped() {
    for_each_driver(|driver| {
        let origin = Origin::start(|_| {
            Reply::ok("final")
                .interim(100, &[])
                .interim(103, &[("Link", "</style.css>; rel=preload; as=style")])
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(b"GET /hints HTTP/1.1\r\nHost: test\r\n\r\n");
        let first = client.read_response();
        assert_eq!(first.status, 103, "the upstream's 100 must be dropped");
        assert_eq!(
            first.header("link"),
            Some("</style.css>; rel=preload; as=style")
        );
        let last = client.read_response();
        assert_eq!((last.status, last.body_str().as_str()), (200, "final"));
    });
}

#[test]
fn head_204_and_304_answers_have_no_body() {
    for_each_driver(|driver| {
        let origin = Origin::start(|req| match req.target.as_str() {
            "/204" => Reply::status(204),
            "/304" => Reply::status(304).header("ETag", "\"v1\""),
            _ => Reply::ok(vec![b'h'; 5000]),
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(b"HEAD /doc HTTP/1.1\r\nHost: test\r\n\r\n");
        let head = client.read_head_response();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), Some("5000"));
        assert_eq!(client.get("/204").status, 204);
        let not_modified = client.get("/304");
        assert_eq!(not_modified.status, 304);
        assert_eq!(not_modified.header("etag"), Some("\"v1\""));
        // Any stray body byte above would break this parse.
        let full = client.get("/doc");
        assert_eq!((full.status, full.body.len()), (200, 5000));
    });
}

/// Encodes `body` as chunks of changing sizes, to cross buffer boundaries
/// at every offset.
fn varied_chunks(body: &[u8]) -> Vec<u8> {
    let sizes = [1, 7, 4096, 65_535, 300_000, 13, 16_384, 100_003];
    let mut out = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at == body.len() {
            break;
        }
        let end = (at + size).min(body.len());
        out.extend_from_slice(format!("{:x}\r\n", end - at).as_bytes());
        out.extend_from_slice(&body[at..end]);
        out.extend_from_slice(b"\r\n");
        at = end;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn digest(body: &[u8]) -> String {
    format!("{} {:016x}", body.len(), checksum(body))
}

#[test]
fn chunked_request_body_is_forwarded_exactly() {
    for_each_driver(|driver| {
        let origin = Origin::start(|req| Reply::ok(digest(&req.body)));
        let gw = through(driver, &origin);
        let body = pattern(200_000, 7);
        let mut client = Client::connect(gw.addr());
        let mut request =
            b"POST /up HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend(varied_chunks(&body));
        client.send(&request);
        assert_eq!(client.read_response().body_str(), digest(&body));
        let seen = origin.recv();
        assert!(
            !(seen.has_header("content-length") && seen.has_header("transfer-encoding")),
            "both framings sent upstream: {:?}",
            seen.headers
        );
        assert_eq!(seen.body, body);
        assert_eq!(client.get("/after").status, 200);
    });
}

#[test]
fn chunked_and_close_delimited_responses_are_forwarded() {
    for_each_driver(|driver| {
        let body = pattern(100_000, 3);
        let origin = {
            let body = body.clone();
            Origin::start(move |req| match req.target.as_str() {
                "/chunked" => Reply::ok(body.clone()).chunked_by(777),
                _ => Reply::ok(body.clone()).close_delimited(),
            })
        };
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        let resp = client.get("/chunked");
        assert_eq!(resp.status, 200);
        assert_eq!(digest(&resp.body), digest(&body));
        assert_eq!(client.get("/close").body, body);
    });
}

#[test]
fn large_request_bodies_are_streamed_byte_exact() {
    const SIZE: usize = 6 << 20;
    for_each_driver(|driver| {
        let origin = Origin::start(|req| Reply::ok(digest(&req.body)));
        let gw = through(driver, &origin);
        let body = pattern(SIZE, 11);
        for chunked in [false, true] {
            let mut client = Client::connect(gw.addr());
            let mut stream = client.stream();
            let payload = if chunked {
                let mut p =
                    b"POST /big HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                        .to_vec();
                p.extend(varied_chunks(&body));
                p
            } else {
                let mut p =
                    format!("POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: {SIZE}\r\n\r\n")
                        .into_bytes();
                p.extend_from_slice(&body);
                p
            };
            // Written from another thread: the gateway may answer only
            // after the upstream read everything.
            println!("chunked = {chunked}");
            let writer = thread::spawn(move || stream.write_all(&payload));
            let resp = client.read_response();
            assert_eq!(resp.status, 200);
            writer.join().unwrap().unwrap();
            assert_eq!(resp.body_str(), digest(&body), "chunked = {chunked}");
            origin.recv();
        }
    });
}

#[test]
fn large_response_bodies_are_streamed_byte_exact() {
    const SIZE: usize = 6 << 20;
    for_each_driver(|driver| {
        let body = pattern(SIZE, 5);
        let origin = {
            let body = body.clone();
            Origin::start(move |req| {
                let reply = Reply::ok(body.clone());
                match req.target.as_str() {
                    "/chunked" => reply.chunked_by(100_003),
                    "/close" => reply.close_delimited(),
                    _ => reply,
                }
            })
        };
        let gw = through(driver, &origin);
        for path in ["/length", "/chunked", "/close"] {
            println!("GET {path}");
            let mut client = Client::connect(gw.addr());
            let resp = client.get(path);
            assert_eq!(resp.status, 200);
            assert_eq!(digest(&resp.body), digest(&body), "GET {path}");
        }
    });
}

#[test]
fn upstream_connections_are_pooled() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let mut first = Client::connect(gw.addr());
        for i in 0..3 {
            assert_eq!(first.get(&format!("/a{i}")).status, 200);
        }
        let mut second = Client::connect(gw.addr());
        for i in 0..3 {
            assert_eq!(second.get(&format!("/b{i}")).status, 200);
        }
        assert_eq!(
            origin.connections(),
            1,
            "sequential requests should reuse one pooled connection"
        );
    });
}

#[test]
fn http10_client_never_gets_chunked() {
    for_each_driver(|driver| {
        let body = "0123456789".repeat(100);
        let origin = {
            let body = body.clone();
            Origin::start(move |_| Reply::ok(body.clone()).chunked_by(100))
        };
        let gw = through(driver, &origin);
        for keep_alive in ["", "Connection: keep-alive\r\n"] {
            let mut client = Client::connect(gw.addr());
            client.send(format!("GET /c HTTP/1.0\r\nHost: test\r\n{keep_alive}\r\n").as_bytes());
            let resp = client.read_response();
            assert_eq!(resp.status, 200);
            assert!(
                !resp.has_header("transfer-encoding"),
                "chunked sent to HTTP/1.0: {:?}",
                resp.headers
            );
            assert_eq!(resp.body_str(), body);
        }
    });
}

#[test]
fn the_pool_keeps_at_most_max_idle_per_target() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let origin = Origin::held(&gate);
        let gw = Conf::new(driver)
            .admin(free_addr("127.0.0.1"))
            .upstream_with(
                "o",
                &[(origin.addr(), 1)],
                "pool = { max_idle_per_target = 1 }",
            )
            .proxy_all("o")
            .start();
        // Three requests in flight at once need three upstream connections.
        let mut held: Vec<Client> = (0..3).map(|_| hold(&gw, &origin)).collect();
        assert_eq!(origin.connections(), 3);
        gate.open();
        for client in &mut held {
            assert_eq!(client.read_response().status, 200);
        }
        // Back in the pool: one is kept, the other two are closed.
        let admin = gw.admin();
        let label = origin.addr().to_string();
        let labels = [("upstream", "o"), ("target", label.as_str())];
        eventually("one idle connection left", || {
            let idle = admin.metric("shardgate_upstream_pool_idle_connections", &labels);
            let open =
                admin.get_json("/upstreams")["upstreams"][0]["targets"][0]["connections"].as_u64();
            (idle == Some(1.0) && open == Some(1)).then_some(())
        });
        assert_eq!(Client::connect(gw.addr()).get("/again").status, 200);
        assert_eq!(origin.connections(), 3, "the kept connection was reused");
    });
}

#[test]
fn an_idle_pooled_connection_is_closed_after_idle_timeout() {
    for_each_driver(|driver| {
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let origin = {
            let closed = closed.clone();
            Origin::raw(move |mut conn| {
                if let Some(req) = conn.read_request() {
                    conn.reply(&req, &Reply::ok(req.target.clone()));
                }
                if conn.index == 0 {
                    // Keep-alive: the gateway pools this connection, then lets it go.
                    conn.wait_for_close();
                    closed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        let gw = Conf::new(driver)
            .upstream_with(
                "o",
                &[(origin.addr(), 1)],
                "pool = { idle_timeout = \"200ms\" }",
            )
            .proxy_all("o")
            .start();
        assert_eq!(
            Client::connect(gw.addr()).get("/first").body_str(),
            "/first"
        );
        eventually("the gateway closes its idle upstream connection", || {
            closed
                .load(std::sync::atomic::Ordering::SeqCst)
                .then_some(())
        });
        assert_eq!(
            Client::connect(gw.addr()).get("/second").body_str(),
            "/second"
        );
        assert_eq!(origin.connections(), 2);
    });
}
