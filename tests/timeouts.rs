//! Route `timeout` bounds the whole upstream exchange: before a final status went out the client
//! gets 504, after it the connection is closed (never a second status line). And a read that
//! times out (it takes the connection's buffer with it) never breaks what comes after.

mod common;

use common::*;

fn gateway(driver: &str, origin: &Origin) -> Gateway {
    Conf::new(driver)
        .upstream_with("o", &[(origin.addr(), 1)], "read_timeout = \"30s\"")
        .route("slow", "upstream = \"o\"\ntimeout = \"300ms\"")
        .start()
}

#[test]
fn route_timeout_before_the_response_is_504() {
    for_each_driver(|driver| {
        // Reads the request and never answers; read_timeout (30s) is not what ends it.
        let origin = Origin::raw(|mut conn| {
            conn.read_request();
            conn.stall();
        });
        let gw = gateway(driver, &origin);
        let mut client = Client::connect(gw.addr());
        let resp = client.get("/hang");
        assert_eq!(resp.status, 504, "{resp:?}");
        resp.assert_generated();
    });
}

#[test]
fn route_timeout_after_the_head_closes_the_connection() {
    for_each_driver(|driver| {
        // Sends the head and half the body, then stalls.
        let origin = Origin::raw(|mut conn| {
            conn.read_request();
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
            conn.stall();
        });
        let gw = gateway(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(b"GET /half HTTP/1.1\r\nHost: test\r\n\r\n");
        let all = client.read_to_eof();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
        assert!(
            text.ends_with("hello"),
            "the partial body, then the close: {text:?}"
        );
        assert_eq!(
            text.matches("HTTP/1.1 ").count(),
            1,
            "one status line only: {text:?}"
        );
    });
}

#[test]
fn a_stalled_body_with_the_access_log_on_leaves_the_gateway_serving() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let log = TempPath::new("access.log");
        let mut gw = Conf::new(driver)
            .limit("body_read_timeout = \"200ms\"")
            .access_log("json", log.path())
            .upstream("o", &[origin.addr()])
            .proxy_all("o")
            .start();
        let mut stalled = Client::connect(gw.addr());
        stalled
            .send(b"POST /stall HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789");
        // Cut off once the body stalls past body_read_timeout (408 or nothing).
        let _ = stalled.read_to_eof();
        let mut next = Client::connect(gw.addr());
        assert_eq!(next.get("/fine").body_str(), "/fine");
        assert!(gw.is_running());
    });
}

/// One request to an upstream at `addr` with `timeouts` set: it gets 504, and of the step
/// timeouts only `fired` is counted, once.
fn step_timeout(driver: &str, addr: std::net::SocketAddr, timeouts: &str, fired: &str) {
    let gw = Conf::new(driver)
        .admin(free_addr("127.0.0.1"))
        .upstream_with("o", &[(addr, 1)], timeouts)
        .proxy_all("o")
        .start();
    let resp = Client::connect(gw.addr()).get("/");
    assert_eq!(resp.status, 504, "{resp:?}");
    resp.assert_generated();
    let admin = gw.admin();
    let label = addr.to_string();
    for phase in ["connect", "read", "write", "per_try"] {
        let count = admin.metric(
            "shardgate_upstream_timeouts_total",
            &[("upstream", "o"), ("target", &label), ("phase", phase)],
        );
        let want = if phase == fired { 1.0 } else { 0.0 };
        assert_eq!(count, Some(want), "phase {phase}");
    }
}

#[test]
fn connect_timeout_is_504_and_counted_as_a_connect_timeout() {
    for_each_driver(|driver| {
        let (addr, _held) = blackhole_addr();
        step_timeout(driver, addr, "connect_timeout = \"200ms\"", "connect");
    });
}

#[test]
fn read_timeout_is_504_and_counted_as_a_read_timeout() {
    for_each_driver(|driver| {
        let origin = Origin::raw(|mut conn| {
            conn.read_request();
            conn.stall();
        });
        step_timeout(driver, origin.addr(), "read_timeout = \"200ms\"", "read");
    });
}
