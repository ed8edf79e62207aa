//! Graceful shutdown: SIGTERM and SIGINT stop accepting, let requests in
//! flight finish (answered with `Connection: close`), close idle keep-alive
//! connections, turn `/healthz` to 503, and exit 0 once done or once
//! `server.drain_timeout` has passed. A second signal exits at once.
//!
//! Drain timeouts here are long (30s, longer than the test's exit guard)
//! wherever the outcome is "exits because the work is done", so a gateway
//! that merely waits for the timeout fails instead of passing slowly.

mod common;

use common::*;
use std::net::SocketAddr;

fn conf(driver: &str, admin: SocketAddr, origin: &Origin, drain_timeout: &str) -> Conf {
    Conf::new(driver)
        .server(&format!("drain_timeout = \"{drain_timeout}\""))
        .admin(admin)
        .upstream("o", &[origin.addr()])
        .proxy_all("o")
}

fn wait_draining_logged(gw: &Gateway, mark: usize) {
    assert!(
        gw.wait_for_log_since(mark, |l| l.starts_with("INFO ") && l.contains("draining"))
            .is_some(),
        "expected `INFO draining` after the signal; stderr:\n{}",
        gw.stderr()
    );
}

#[test]
fn sigterm_finishes_in_flight_closes_idle_and_refuses_new_connections() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let origin = Origin::held(&gate);
        let mut gw = conf(driver, free_addr("127.0.0.1"), &origin, "30s").start();
        let admin = gw.admin();
        assert_eq!(admin.get("/healthz").0, 200, "serving");
        assert_eq!(admin.metric("shardgate_draining", &[]), Some(0.0));

        let mut idle = Client::connect(gw.addr());
        assert_eq!(idle.get("/idle").status, 200);
        assert_eq!(origin.recv().target, "/idle");
        let mut busy = hold(&gw, &origin);

        let mark = gw.log_mark();
        gw.signal(libc::SIGTERM);
        wait_draining_logged(&gw, mark);
        idle.expect_closed();
        wait_refused(gw.addr(), "new connections while draining");
        // The request is held, so the process cannot be gone yet: no race.
        eventually("/healthz answering 503 while draining", || {
            (admin.get("/healthz").0 == 503).then_some(())
        });
        assert_eq!(admin.metric("shardgate_draining", &[]), Some(1.0));
        assert!(gw.is_running(), "exited with a request in flight");

        gate.open();
        let resp = busy.read_response();
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "/slow"));
        assert!(
            resp.says_close(),
            "the last response of a draining connection must say Connection: close: {:?}",
            resp.headers
        );
        busy.expect_closed();
        let status = gw
            .wait_exit()
            .expect("the gateway must exit once nothing is in flight");
        assert_eq!(
            status.code(),
            Some(0),
            "exit status after a drain: {status}"
        );
    });
}

#[test]
fn sigint_drains_and_idle_keep_alive_connections_do_not_hold_the_exit() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let mut gw = conf(driver, free_addr("127.0.0.1"), &origin, "30s").start();
        let mut idle: Vec<Client> = (0..4).map(|_| Client::connect(gw.addr())).collect();
        for (i, client) in idle.iter_mut().enumerate() {
            assert_eq!(client.get(&format!("/{i}")).status, 200);
        }
        let mark = gw.log_mark();
        gw.signal(libc::SIGINT);
        wait_draining_logged(&gw, mark);
        for client in &mut idle {
            client.expect_closed();
        }
        let status = gw
            .wait_exit()
            .expect("idle keep-alive connections must not hold the exit until drain_timeout");
        assert_eq!(
            status.code(),
            Some(0),
            "exit status after a drain: {status}"
        );
    });
}

#[test]
fn a_second_signal_exits_at_once() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let origin = Origin::held(&gate);
        let mut gw = conf(driver, free_addr("127.0.0.1"), &origin, "30s").start();
        let _busy = hold(&gw, &origin);

        let mark = gw.log_mark();
        gw.signal(libc::SIGTERM);
        wait_draining_logged(&gw, mark);
        assert!(gw.is_running(), "exited with a request in flight");
        gw.signal(libc::SIGTERM);
        let status = gw.wait_exit();
        gate.open();
        let status =
            status.expect("a second signal must end the process without waiting for the drain");
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "exit status after a second signal: {status}"
        );
    });
}

#[test]
fn drain_timeout_cuts_a_stuck_request() {
    for_each_driver(|driver| {
        // Reads the request and never answers.
        let origin = Origin::raw(|mut conn| {
            if conn.read_request().is_some() {
                conn.stall();
            }
        });
        let mut gw = conf(driver, free_addr("127.0.0.1"), &origin, "300ms").start();
        let mut stuck = Client::connect(gw.addr());
        stuck.send(b"GET /stuck HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(origin.recv().target, "/stuck");

        let mark = gw.log_mark();
        gw.signal(libc::SIGTERM);
        wait_draining_logged(&gw, mark);
        let status = gw
            .wait_exit()
            .expect("the gateway must exit once drain_timeout has passed");
        assert_eq!(
            status.code(),
            Some(0),
            "exit status after the drain timeout: {status}"
        );
        // Whatever it got (nothing, or an error answer), the client is let go.
        stuck.read_to_eof();
    });
}
