//! Circuit breaking: past `max_requests`, `max_connections` (+ `max_pending`) the gateway
//! answers 503 at once with `x-shardgate-overloaded: true` instead of piling requests up, other
//! routes keep serving, and the upstream is usable again once the load is gone.

mod common;

use common::*;

fn gateway(driver: &str, origin: &Origin, breaker: &str) -> Gateway {
    Conf::new(driver)
        .admin(free_addr("127.0.0.1"))
        .upstream_with(
            "o",
            &[(origin.addr(), 1)],
            &format!("connect_timeout = \"2s\"\n[upstreams.circuit_breaker]\n{breaker}"),
        )
        .direct("other", "path = \"/other\"", "other")
        .proxy_all("o")
        .start()
}

fn assert_overloaded(resp: &Response) {
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(
        resp.header("x-shardgate-overloaded"),
        Some("true"),
        "{resp:?}"
    );
    resp.assert_generated();
}

#[test]
fn max_requests_answers_503_at_once_and_other_routes_keep_serving() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let origin = Origin::held(&gate);
        let gw = gateway(driver, &origin, "max_requests = 2");
        let mut held: Vec<Client> = (0..2).map(|_| hold(&gw, &origin)).collect();

        let mut extra = Client::connect(gw.addr());
        assert_overloaded(&extra.get("/slow"));
        origin.assert_no_request();
        assert_eq!(extra.get("/other").body_str(), "other");

        gate.open();
        for client in &mut held {
            let resp = client.read_response();
            assert_eq!((resp.status, resp.body_str().as_str()), (200, "/slow"));
        }
        // The permits come back as the held exchanges finish, which the shard may record a
        // moment after the client has read the answers.
        let resp = eventually("the upstream usable again", || {
            let resp = extra.get("/after");
            (resp.status == 200).then_some(resp)
        });
        assert_eq!(resp.body_str(), "/after");
    });
}

#[test]
fn max_connections_without_pending_refuses_a_second_connection() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let origin = Origin::held(&gate);
        let gw = gateway(driver, &origin, "max_connections = 1\nmax_pending = 0");
        let mut first = hold(&gw, &origin);

        let mut second = Client::connect(gw.addr());
        assert_overloaded(&second.get("/x"));
        origin.assert_no_request();

        gate.open();
        assert_eq!(first.read_response().status, 200);
        // The one connection is pooled again and carries the next request (once the shard has
        // finished the first exchange, which the client may see a moment before).
        let resp = eventually("the pooled connection reused", || {
            let resp = second.get("/y");
            (resp.status == 200).then_some(resp)
        });
        assert_eq!(resp.body_str(), "/y");
        assert_eq!(origin.connections(), 1, "the cap of one connection held");
    });
}

#[test]
fn a_pending_request_waits_for_the_connection_and_pending_is_capped() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let origin = Origin::held(&gate);
        let gw = gateway(driver, &origin, "max_connections = 1\nmax_pending = 1");
        let mut first = hold(&gw, &origin);

        // Waits for the only connection...
        let mut waiting = Client::connect(gw.addr());
        waiting.send(b"GET /queued HTTP/1.1\r\nHost: test\r\n\r\n");
        // ...which it does asynchronously: wait until it holds the one pending place, so the
        // request after it is the one that finds the queue full.
        let admin = gw.admin();
        eventually("the queued request pending", || {
            (admin.get_json("/upstreams")["upstreams"][0]["pending"] == 1).then_some(())
        });
        let third = Client::connect(gw.addr()).get("/third");
        assert_overloaded(&third);
        third.assert_generated();

        gate.open();
        assert_eq!(first.read_response().status, 200);
        let resp = waiting.read_response();
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "/queued"));
        assert_eq!(
            origin.connections(),
            1,
            "the waiting request reused the one connection"
        );
    });
}
