//! Connection persistence: keep-alive, pipelining, HTTP/1.0 and
//! `Connection: close` on either side.

mod common;

use common::*;
use std::thread;
use std::time::Duration;

/// `/direct` answered by the gateway, everything else by an origin that
/// echoes the target (or the body, for requests with one). `/slow` is
/// answered late, so that answering out of order would show.
fn mixed(driver: &str) -> (Gateway, Origin) {
    let origin = Origin::start(|req| {
        if req.target == "/slow" {
            thread::sleep(Duration::from_millis(200));
        }
        if req.body.is_empty() {
            Reply::ok(req.target.clone())
        } else {
            Reply::ok(req.body.clone())
        }
    });
    let gw = Conf::new(driver)
        .upstream("o", &[origin.addr()])
        .direct("direct", "path = \"/direct\"", "direct")
        .proxy_all("o")
        .start();
    (gw, origin)
}

#[test]
fn many_requests_share_one_connection() {
    for_each_driver(|driver| {
        let (gw, origin) = mixed(driver);
        let mut client = Client::connect(gw.addr());
        for i in 0..20 {
            let path = if i % 3 == 0 {
                "/direct".to_string()
            } else {
                format!("/r{i}")
            };
            let want = if i % 3 == 0 {
                "direct".to_string()
            } else {
                path.clone()
            };
            assert_eq!(client.get(&path).body_str(), want);
        }
        assert_eq!(origin.connections(), 1);
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for_each_driver(|driver| {
        let (gw, _origin) = mixed(driver);
        let mut client = Client::connect(gw.addr());
        client.send(
            b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n\
              GET /direct HTTP/1.1\r\nHost: test\r\n\r\n\
              POST /post HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello\
              HEAD /head HTTP/1.1\r\nHost: test\r\n\r\n\
              GET /get HTTP/1.1\r\nHost: test\r\n\r\n\
              POST /chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
              GET /last HTTP/1.1\r\nHost: test\r\n\r\n",
        );
        assert_eq!(client.read_response().body_str(), "/slow");
        assert_eq!(client.read_response().body_str(), "direct");
        assert_eq!(client.read_response().body_str(), "hello");
        let head = client.read_head_response();
        assert_eq!(
            (head.status, head.header("content-length")),
            (200, Some("5"))
        );
        assert_eq!(client.read_response().body_str(), "/get");
        assert_eq!(client.read_response().body_str(), "abc");
        assert_eq!(client.read_response().body_str(), "/last");
    });
}

#[test]
fn a_burst_of_pipelined_requests_keeps_order() {
    for_each_driver(|driver| {
        let (gw, _origin) = mixed(driver);
        let mut client = Client::connect(gw.addr());
        let mut burst = Vec::new();
        for i in 0..100 {
            burst.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        }
        client.send(&burst);
        for i in 0..100 {
            assert_eq!(client.read_response().body_str(), format!("/p{i}"));
        }
    });
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    for_each_driver(|driver| {
        let (gw, _origin) = mixed(driver);
        for path in ["/direct", "/proxied"] {
            let mut client = Client::connect(gw.addr());
            client.send(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
            assert_eq!(client.read_response().status, 200);
            client.expect_closed();

            let mut client = Client::connect(gw.addr());
            for _ in 0..2 {
                client.send(
                    format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
                );
                let resp = client.read_response();
                assert_eq!(resp.status, 200);
                assert!(
                    resp.has_header("content-length"),
                    "{path}: {:?}",
                    resp.headers
                );
                assert!(
                    resp.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
                    "{path}: an HTTP/1.0 client needs Connection: keep-alive to keep the connection: {:?}",
                    resp.headers
                );
            }
        }
    });
}

#[test]
fn connection_close_from_the_client_ends_the_connection() {
    for_each_driver(|driver| {
        let (gw, origin) = mixed(driver);
        for path in ["/direct", "/proxied"] {
            let mut client = Client::connect(gw.addr());
            // The second request comes after the close and must be ignored.
            client.send(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n\
                     GET /ignored HTTP/1.1\r\nHost: test\r\n\r\n"
                )
                .as_bytes(),
            );
            assert_eq!(client.read_response().status, 200);
            client.expect_closed();
        }
        let seen = origin.recv();
        assert_eq!(seen.target, "/proxied");
        origin.assert_no_request();
    });
}

#[test]
fn connection_close_from_the_upstream_keeps_the_client() {
    for_each_driver(|driver| {
        let origin =
            Origin::start(|req| Reply::ok(req.target.clone()).header("Connection", "close"));
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .proxy_all("o")
            .start();
        let mut client = Client::connect(gw.addr());
        for path in ["/1", "/2", "/3"] {
            let resp = client.get(path);
            assert_eq!(resp.body_str(), path);
            assert!(
                !resp
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close")),
                "the upstream's Connection: close leaked to the client"
            );
        }
        assert_eq!(origin.connections(), 3);
    });
}
