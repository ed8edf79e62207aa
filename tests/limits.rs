//! Named limits and timeouts of `[server.limits]`: each one is hit once.
//! Timeouts are 300 ms here; every wait is guarded by the client's 5 s.

mod common;

use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn proxy(driver: &str, limits: &[&str]) -> (Gateway, Origin) {
    let origin = Origin::start(|req| Reply::ok(format!("{} {}", req.target, req.body.len())));
    let mut conf = Conf::new(driver)
        .upstream("o", &[origin.addr()])
        .proxy_all("o");
    for line in limits {
        conf = conf.limit(line);
    }
    (conf.start(), origin)
}

fn answer(gw: &Gateway, request: &[u8]) -> (Client, Response) {
    let mut client = Client::connect(gw.addr());
    client.send(request);
    let resp = client.read_response();
    (client, resp)
}

#[test]
fn request_line_over_max_uri_bytes_is_414() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["max_uri_bytes = 1024"]);
        let short = format!("/{}", "a".repeat(400));
        let (_, resp) = answer(
            &gw,
            format!("GET {short} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
        );
        assert_eq!(resp.status, 200);
        assert_eq!(origin.recv().target, short);

        let long = format!("/{}", "a".repeat(2048));
        let (_, resp) = answer(
            &gw,
            format!("GET {long} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
        );
        assert_eq!(resp.status, 414);
        resp.assert_generated();
        origin.assert_no_request();
    });
}

#[test]
fn long_request_line_is_414_before_the_head_is_complete() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(
            driver,
            &["max_uri_bytes = 1024", "header_read_timeout = \"30s\""],
        );
        let mut client = Client::connect(gw.addr());
        // No CRLF at all: only early detection can answer this.
        client.send(format!("GET /{}", "a".repeat(4096)).as_bytes());
        let resp = client.read_response();
        assert_eq!(resp.status, 414);
        origin.assert_no_request();
    });
}

#[test]
fn more_than_max_headers_is_431() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["max_headers = 10"]);
        let with = |n: usize| {
            let mut request = String::from("GET /h HTTP/1.1\r\nHost: test\r\n");
            for i in 1..n {
                request.push_str(&format!("X-H{i}: {i}\r\n"));
            }
            request.push_str("\r\n");
            request
        };
        let (_, resp) = answer(&gw, with(10).as_bytes());
        assert_eq!(resp.status, 200, "10 headers are within max_headers = 10");
        assert_eq!(origin.recv().target, "/h");

        let (_, resp) = answer(&gw, with(11).as_bytes());
        assert_eq!(resp.status, 431);
        resp.assert_generated();
        let (_, resp) = answer(&gw, with(500).as_bytes());
        assert_eq!(resp.status, 431);
        origin.assert_no_request();
    });
}

#[test]
fn head_over_max_header_bytes_is_431() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["max_header_bytes = 2048"]);
        let request = |value_len: usize| {
            format!(
                "GET /b HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
                "v".repeat(value_len)
            )
        };
        let (_, resp) = answer(&gw, request(500).as_bytes());
        assert_eq!(resp.status, 200);
        origin.recv();

        let (_, resp) = answer(&gw, request(4096).as_bytes());
        assert_eq!(resp.status, 431);
        resp.assert_generated();
        // Many small headers add up too.
        let mut many = String::from("GET /b HTTP/1.1\r\nHost: test\r\n");
        for i in 0..60 {
            many.push_str(&format!("X-Field-{i:02}: {}\r\n", "w".repeat(40)));
        }
        many.push_str("\r\n");
        let (_, resp) = answer(&gw, many.as_bytes());
        assert_eq!(resp.status, 431);
        origin.assert_no_request();
    });
}

#[test]
fn content_length_over_max_body_bytes_is_413_at_once() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["max_body_bytes = 1000"]);
        let (_, resp) = answer(
            &gw,
            format!(
                "POST /at HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n{}",
                "x".repeat(1000)
            )
            .as_bytes(),
        );
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "/at 1000"));
        assert_eq!(origin.recv().body.len(), 1000);

        // Only the head is sent: the answer must not wait for the body.
        let (_, resp) = answer(
            &gw,
            b"POST /over HTTP/1.1\r\nHost: test\r\nContent-Length: 1001\r\n\r\n",
        );
        assert_eq!(resp.status, 413);
        resp.assert_generated();
        origin.assert_no_request();
    });
}

#[test]
fn expect_100_continue_over_the_limit_gets_413_without_100() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["max_body_bytes = 1000"]);
        let (_, resp) = answer(
            &gw,
            b"POST /e HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!(resp.status, 413, "first answer must be the 413, not a 100");
        origin.assert_no_request();
    });
}

#[test]
fn chunked_body_crossing_the_limit_is_413() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["max_body_bytes = 1000"]);
        let mut client = Client::connect(gw.addr());
        client.send(b"POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = format!("258\r\n{}\r\n", "x".repeat(600));
        client.send(chunk.as_bytes());
        // The second chunk crosses 1000 bytes; the body never ends.
        let _ = client.try_send(chunk.as_bytes());
        let resp = client.read_response();
        assert_eq!(resp.status, 413);
        client.expect_closed();
        origin.assert_no_request();
    });
}

#[test]
fn slowloris_head_gets_408_and_close() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["header_read_timeout = \"300ms\""]);
        let mut client = Client::connect(gw.addr());
        client.send(b"GET / HTTP/1.1\r\nHost: test\r\n");
        let resp = client.read_response();
        assert_eq!(resp.status, 408);
        resp.assert_generated();
        client.expect_closed();
        origin.assert_no_request();
    });
}

#[test]
fn header_read_timeout_covers_the_whole_head_not_each_read() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["header_read_timeout = \"300ms\""]);
        let mut client = Client::connect(gw.addr());
        client.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Trickle: ");
        // One byte every 50 ms: each read is quick, the head never completes.
        let mut stream = client.stream();
        let stop = Arc::new(AtomicBool::new(false));
        let trickler = {
            let stop = stop.clone();
            thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(6);
                while !stop.load(Ordering::SeqCst)
                    && Instant::now() < until
                    && stream.write_all(b"a").is_ok()
                {
                    thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let resp = client.read_response();
        stop.store(true, Ordering::SeqCst);
        trickler.join().unwrap();
        assert_eq!(resp.status, 408);
        origin.assert_no_request();
    });
}

#[test]
fn stalled_body_is_cut_after_body_read_timeout() {
    for_each_driver(|driver| {
        let (gw, origin) = proxy(driver, &["body_read_timeout = \"300ms\""]);
        let mut client = Client::connect(gw.addr());
        client.send(b"POST /stall HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789");
        // The other 90 bytes never come.
        let answer = client.read_to_eof();
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 408 "),
            "a cut-off body may get a 408 or nothing, got {:?}",
            String::from_utf8_lossy(&answer)
        );
        origin.assert_no_request();
    });
}

#[test]
fn client_not_reading_is_cut_after_send_timeout() {
    const SIZE: usize = 32 << 20;
    for_each_driver(|driver| {
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let origin = {
            let cut = cut.clone();
            Origin::raw(move |mut conn| {
                if let Some(req) = conn.read_request() {
                    // Blocks once every buffer on the way is full, until the gateway gives up
                    // on the client and drops this connection too.
                    conn.reply(&req, &Reply::ok(vec![b'z'; SIZE]));
                }
                conn.wait_for_close();
                cut.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let gw = Conf::new(driver)
            .limit("send_timeout = \"300ms\"")
            .upstream("o", &[origin.addr()])
            .proxy_all("o")
            .start();
        let mut client = Client::connect_small_window(gw.addr());
        client.send(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n");
        origin.recv();
        // The stall the gateway has to notice: the client reads nothing until it has.
        eventually("the gateway gives up on the stalled client", || {
            cut.load(std::sync::atomic::Ordering::SeqCst).then_some(())
        });
        let got = client.read_to_eof();
        assert!(
            got.starts_with(b"HTTP/1.1 200 "),
            "{:?}",
            String::from_utf8_lossy(&got[..got.len().min(200)])
        );
        assert!(
            got.len() < SIZE,
            "the whole {SIZE}-byte response arrived: the slow reader was never cut off"
        );
    });
}

#[test]
fn idle_keepalive_connection_is_closed_after_keepalive_timeout() {
    for_each_driver(|driver| {
        let (gw, _origin) = proxy(
            driver,
            &[
                "keepalive_timeout = \"300ms\"",
                "header_read_timeout = \"30s\"",
            ],
        );
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/one").status, 200);
        client.expect_closed();
    });
}

#[test]
fn max_connections_caps_open_client_connections_per_process() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .workers(2)
            .limit("max_connections = 2")
            .direct("hi", "", "hi")
            .start();
        let mut first = Client::connect(gw.addr());
        let mut second = Client::connect(gw.addr());
        assert_eq!(first.get("/").status, 200);
        assert_eq!(second.get("/").status, 200);

        let mut third = Client::connect(gw.addr());
        let _ = third.try_send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
        let answer = third.read_to_eof();
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 503 "),
            "a connection over max_connections got {:?}",
            String::from_utf8_lossy(&answer)
        );
        // The connections inside the cap are unaffected.
        assert_eq!(first.get("/").status, 200);

        // Freeing a slot lets a new connection in. The gateway learns about
        // the close asynchronously, so poll for the visible event (guarded).
        drop(first);
        eventually("a freed slot reused", || {
            let mut next = Client::connect(gw.addr());
            let _ = next.try_send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            next.read_to_eof()
                .starts_with(b"HTTP/1.1 200 ")
                .then_some(())
        });
        assert_eq!(second.get("/").status, 200);
    });
}
