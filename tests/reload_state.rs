//! What a target has learnt survives a reload that keeps it: failed health checks, an
//! ejection, the breaker's count of requests in flight. A reload that reset them would send
//! traffic back to a sick target, or let a burst past a cap.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

/// The same config with one more route, so the reload is a real one.
fn with_extra_route(conf: &Conf) -> String {
    conf.build() + "\n[[routes]]\nname = \"added\"\npath = \"/added\"\ndirect = { status = 200, body = \"added\" }\n"
}

fn counting(name: &'static str, status: u16) -> (Origin, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let origin = Origin::start(move |req| {
        if req.target != "/health" {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        Reply::status(status).body(name)
    });
    (origin, seen)
}

#[test]
fn a_target_failing_its_checks_stays_out_after_a_reload() {
    for_each_driver(|driver| {
        let (good, _) = counting("good", 200);
        let (sick, sick_seen) = counting("sick", 503);
        let admin_addr = free_addr("127.0.0.1");
        let conf = Conf::new(driver)
            .admin(admin_addr)
            .upstream_with(
                "o",
                &[(good.addr(), 1), (sick.addr(), 1)],
                "[upstreams.health_check]\npath = \"/health\"\ninterval = \"1s\"\n\
                 healthy_threshold = 1\nunhealthy_threshold = 1",
            )
            .proxy_all("o");
        let gw = conf.start();
        let admin = gw.admin();
        let sick_label = sick.addr().to_string();
        let labels = [("upstream", "o"), ("target", sick_label.as_str())];
        eventually("the sick target marked unhealthy", || {
            (admin.metric("shardgate_upstream_healthy", &labels) == Some(0.0)).then_some(())
        });
        let before = sick_seen.load(Ordering::SeqCst);

        gw.reload_by_sighup(&admin, &with_extra_route(&conf), "success");
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/added").body_str(), "added");
        for _ in 0..20 {
            assert_eq!(client.get("/x").body_str(), "good");
        }
        assert_eq!(sick_seen.load(Ordering::SeqCst), before);
        assert_eq!(
            admin.metric("shardgate_upstream_healthy", &labels),
            Some(0.0)
        );
    });
}

#[test]
fn an_ejected_target_stays_ejected_after_a_reload() {
    for_each_driver(|driver| {
        let (good, _) = counting("good", 200);
        let (bad, bad_seen) = counting("bad", 500);
        let admin_addr = free_addr("127.0.0.1");
        let conf = Conf::new(driver)
            .admin(admin_addr)
            .upstream_with(
                "o",
                &[(good.addr(), 1), (bad.addr(), 1)],
                "[upstreams.outlier]\nconsecutive_failures = 1\nbase_ejection_time = \"60s\"\n\
                 max_ejection_percent = 50",
            )
            .proxy_all("o");
        let gw = conf.start();
        let mut client = Client::connect(gw.addr());
        eventually("the bad target ejected", || {
            (0..10)
                .all(|_| client.get("/x").body_str() == "good")
                .then_some(())
        });
        let before = bad_seen.load(Ordering::SeqCst);

        let admin = gw.admin();
        gw.reload_by_sighup(&admin, &with_extra_route(&conf), "success");
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/added").body_str(), "added");
        for _ in 0..20 {
            assert_eq!(client.get("/x").body_str(), "good");
        }
        assert_eq!(bad_seen.load(Ordering::SeqCst), before);
    });
}

#[test]
fn the_breaker_keeps_counting_requests_in_flight_across_a_reload() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let origin = {
            let gate = gate.clone();
            Origin::start(move |req| {
                if req.target == "/hold" {
                    gate.wait();
                }
                Reply::ok("done")
            })
        };
        let admin_addr = free_addr("127.0.0.1");
        let conf = Conf::new(driver)
            .admin(admin_addr)
            .upstream_with(
                "o",
                &[(origin.addr(), 1)],
                "[upstreams.circuit_breaker]\nmax_requests = 1",
            )
            .proxy_all("o");
        let gw = conf.start();
        let mut held = Client::connect(gw.addr());
        held.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(origin.recv().target, "/hold");

        let admin = gw.admin();
        gw.reload_by_sighup(&admin, &with_extra_route(&conf), "success");
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/added").body_str(), "added");
        let resp = client.get("/x");
        assert_eq!(
            resp.status, 503,
            "the held request still counts against max_requests"
        );
        assert_eq!(resp.header("x-shardgate-overloaded"), Some("true"));

        gate.open();
        assert_eq!(held.read_response().body_str(), "done");
        assert_eq!(client.get("/x").body_str(), "done");
    });
}
