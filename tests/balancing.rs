//! Balancing with health: a target that fails its active checks stops getting traffic and gets
//! it back once it recovers; when every target is down, `panic_mode` decides between sending
//! anyway and 503; consistent hashing keeps a key on one target; least_conn avoids a busy one.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

/// An origin answering `name` on every path, and 503 on `/health` while `down` is set.
fn named_origin(name: &'static str, down: &Arc<AtomicBool>) -> Origin {
    let down = Arc::clone(down);
    Origin::start(move |req| {
        if req.target == "/health" && down.load(Ordering::Relaxed) {
            Reply::status(503)
        } else {
            Reply::ok(name)
        }
    })
}

fn checked(driver: &str, a: &Origin, b: &Origin, extra: &str) -> Gateway {
    Conf::new(driver)
        .upstream_with(
            "o",
            &[(a.addr(), 1), (b.addr(), 1)],
            &format!(
                "{extra}\n[upstreams.health_check]\npath = \"/health\"\ninterval = \"50ms\"\n\
                 timeout = \"200ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1"
            ),
        )
        .proxy_all("o")
        .start()
}

/// Polls until `n` requests in a row are all answered by `name`.
fn only(client: &mut Client, name: &str, n: usize) {
    eventually(&format!("{n} answers in a row from {name}"), || {
        (0..n)
            .all(|_| client.get("/x").body_str() == name)
            .then_some(())
    });
}

#[test]
fn an_unhealthy_target_gets_no_traffic_until_it_recovers() {
    for_each_driver(|driver| {
        let (a_down, b_down) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (a, b) = (named_origin("a", &a_down), named_origin("b", &b_down));
        let gw = checked(driver, &a, &b, "");
        let mut client = Client::connect(gw.addr());

        b_down.store(true, Ordering::Relaxed);
        only(&mut client, "a", 20);
        b_down.store(false, Ordering::Relaxed);
        eventually("b back in rotation", || {
            (0..10)
                .any(|_| client.get("/x").body_str() == "b")
                .then_some(())
        });
    });
}

#[test]
fn all_unhealthy_fails_open_or_closed_as_configured() {
    for_each_driver(|driver| {
        let down = Arc::new(AtomicBool::new(true));
        let (a, b) = (named_origin("a", &down), named_origin("b", &down));

        let open = checked(driver, &a, &b, "panic_mode = \"fail_open\"");
        let closed = checked(driver, &a, &b, "panic_mode = \"fail_closed\"");
        let mut closed_client = Client::connect(closed.addr());
        eventually("503 once every target is down", || {
            let resp = closed_client.get("/x");
            (resp.status == 503).then_some(resp)
        })
        .assert_generated();
        // Fail open still sends: both targets answer although both fail their checks.
        let mut open_client = Client::connect(open.addr());
        for _ in 0..4 {
            assert_eq!(open_client.get("/x").status, 200);
        }
    });
}

#[test]
fn consistent_hash_keeps_a_key_on_one_target() {
    for_each_driver(|driver| {
        let origins: Vec<Origin> = (0..4)
            .map(|i| Origin::start(move |_| Reply::ok(format!("t{i}"))))
            .collect();
        let targets: Vec<_> = origins.iter().map(|o| (o.addr(), 1)).collect();
        let gw = Conf::new(driver)
            .upstream_with(
                "o",
                &targets,
                "balancer = \"consistent_hash\"\nhash_on = \"header:x-user\"",
            )
            .proxy_all("o")
            .start();
        let mut client = Client::connect(gw.addr());
        let mut seen = std::collections::HashSet::new();
        for user in 0..16 {
            let ask = |client: &mut Client| {
                client.send(
                    format!("GET / HTTP/1.1\r\nHost: t\r\nX-User: u{user}\r\n\r\n").as_bytes(),
                );
                client.read_response().body_str()
            };
            let first = ask(&mut client);
            for _ in 0..5 {
                assert_eq!(ask(&mut client), first, "user u{user} moved");
            }
            seen.insert(first);
        }
        assert!(seen.len() > 1, "16 keys all on one of 4 targets: {seen:?}");
    });
}

#[test]
fn least_conn_avoids_the_busy_target() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let holding = |name: &'static str| {
            let gate = gate.clone();
            Origin::start(move |req| {
                if req.target == "/slow" {
                    gate.wait();
                }
                Reply::ok(name)
            })
        };
        let (a, b) = (holding("a"), holding("b"));
        let gw = Conf::new(driver)
            .upstream_with(
                "o",
                &[(a.addr(), 1), (b.addr(), 1)],
                "balancer = \"least_conn\"",
            )
            .proxy_all("o")
            .start();
        let mut held = Client::connect(gw.addr());
        held.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
        // The target holding the request is the one the gateway connected to.
        let busy = eventually("the held request reaching a target", || {
            match (a.connections(), b.connections()) {
                (0, 0) => None,
                (_, 0) => Some("a"),
                _ => Some("b"),
            }
        });
        let idle = if busy == "a" { "b" } else { "a" };
        let mut client = Client::connect(gw.addr());
        for _ in 0..6 {
            assert_eq!(
                client.get("/x").body_str(),
                idle,
                "sent to the target with a request in flight"
            );
        }
        gate.open();
        assert_eq!(held.read_response().body_str(), busy);
    });
}

fn failing_upstream(driver: &str, good: &Origin, bad: &Origin, percent: u32) -> Gateway {
    Conf::new(driver)
        .admin(free_addr("127.0.0.1"))
        .upstream_with(
            "o",
            &[(good.addr(), 1), (bad.addr(), 1)],
            &format!(
                "[upstreams.outlier]\nconsecutive_failures = 2\nbase_ejection_time = \"60s\"\n\
                 max_ejection_percent = {percent}"
            ),
        )
        .proxy_all("o")
        .start()
}

#[test]
fn a_failing_target_is_ejected_logged_and_counted() {
    for_each_driver(|driver| {
        let good = Origin::start(|_| Reply::ok("good"));
        let bad = Origin::start(|_| Reply::status(500));
        let gw = failing_upstream(driver, &good, &bad, 50);
        let mut client = Client::connect(gw.addr());
        only(&mut client, "good", 20);
        let line = gw.wait_for_log("ejected");
        assert!(line.contains(&bad.addr().to_string()), "{line}");
        let admin = gw.admin();
        let bad_addr = bad.addr().to_string();
        let labels = [("upstream", "o"), ("target", bad_addr.as_str())];
        eventually("the ejection in /metrics", || {
            (admin.metric("shardgate_upstream_ejections_total", &labels) == Some(1.0)).then_some(())
        });
        assert_eq!(
            admin.metric("shardgate_upstream_ejected", &labels),
            Some(1.0)
        );
    });
}

#[test]
fn max_ejection_percent_keeps_targets_in_rotation() {
    for_each_driver(|driver| {
        // Both fail; with a 10% cap only one of the two may be ejected.
        let a = Origin::start(|_| Reply::status(500).body("a"));
        let b = Origin::start(|_| Reply::status(500).body("b"));
        let gw = failing_upstream(driver, &a, &b, 10);
        let mut client = Client::connect(gw.addr());
        for _ in 0..10 {
            assert_eq!(client.get("/x").status, 500);
        }
        gw.wait_for_log("ejected");
        // One is out; the other keeps answering, so requests still get through to a target.
        let bodies: std::collections::HashSet<String> =
            (0..10).map(|_| client.get("/x").body_str()).collect();
        assert_eq!(
            bodies.len(),
            1,
            "exactly one target left in rotation: {bodies:?}"
        );
    });
}

#[test]
fn health_state_is_in_the_metrics() {
    for_each_driver(|driver| {
        let (a_down, b_down) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(true)),
        );
        let (a, b) = (named_origin("a", &a_down), named_origin("b", &b_down));
        let gw = Conf::new(driver)
            .admin(free_addr("127.0.0.1"))
            .upstream_with(
                "o",
                &[(a.addr(), 1), (b.addr(), 1)],
                "[upstreams.health_check]\npath = \"/health\"\ninterval = \"50ms\"\n\
                 timeout = \"200ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1",
            )
            .proxy_all("o")
            .start();
        let admin = gw.admin();
        let b_addr = b.addr().to_string();
        let b_labels = [("upstream", "o"), ("target", b_addr.as_str())];
        eventually("b reported unhealthy", || {
            (admin.metric("shardgate_upstream_healthy", &b_labels) == Some(0.0)).then_some(())
        });
        b_down.store(false, Ordering::Relaxed);
        eventually("b reported healthy again", || {
            (admin.metric("shardgate_upstream_healthy", &b_labels) == Some(1.0)).then_some(())
        });
        let failed = [
            ("upstream", "o"),
            ("target", b_addr.as_str()),
            ("result", "failed"),
        ];
        assert!(admin.metric("shardgate_upstream_health_checks_total", &failed) >= Some(1.0));
    });
}

/// The state of target `addr` in `GET /upstreams`, once `pick` accepts it.
fn target_state(
    admin: &Admin,
    addr: std::net::SocketAddr,
    pick: impl Fn(&serde_json::Value) -> bool,
) {
    eventually(
        &format!("/upstreams shows the wanted state of {addr}"),
        || {
            let state = admin.get_json("/upstreams");
            let target = state["upstreams"][0]["targets"]
                .as_array()?
                .iter()
                .find(|t| t["addr"] == addr.to_string())?
                .clone();
            pick(&target).then_some(())
        },
    );
}

#[test]
fn admin_upstreams_shows_a_target_leave_and_rejoin() {
    for_each_driver(|driver| {
        let (a_down, b_down) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (a, b) = (named_origin("a", &a_down), named_origin("b", &b_down));
        let gw = Conf::new(driver)
            .admin(free_addr("127.0.0.1"))
            .upstream_with(
                "o",
                &[(a.addr(), 1), (b.addr(), 3)],
                "[upstreams.health_check]\npath = \"/health\"\ninterval = \"50ms\"\n\
                 healthy_threshold = 1\nunhealthy_threshold = 1",
            )
            .proxy_all("o")
            .start();
        let admin = gw.admin();
        let state = admin.get_json("/upstreams");
        let upstream = &state["upstreams"][0];
        assert_eq!(upstream["name"], "o");
        assert_eq!(upstream["balancer"], "round_robin");
        assert_eq!(upstream["health_checks"], true);
        assert_eq!(upstream["targets"][1]["weight"], 3);

        b_down.store(true, Ordering::Relaxed);
        target_state(&admin, b.addr(), |t| {
            t["healthy"] == false && t["usable"] == false
        });
        // What the admin state says is what requests get.
        let mut client = Client::connect(gw.addr());
        for _ in 0..10 {
            assert_eq!(client.get("/x").body_str(), "a");
        }
        target_state(&admin, a.addr(), |t| {
            t["usable"] == true && t["connections"] == 1
        });

        b_down.store(false, Ordering::Relaxed);
        target_state(&admin, b.addr(), |t| {
            t["healthy"] == true && t["usable"] == true
        });
        assert_eq!(admin.post("/upstreams").0, 405);
    });
}

#[test]
fn clients_abandoning_downloads_do_not_eject_a_healthy_target() {
    for_each_driver(|driver| {
        let big = vec![b'x'; 8 << 20];
        let origin = Origin::start(move |_| Reply::ok(big.clone()));
        let gw = Conf::new(driver)
            .admin(free_addr("127.0.0.1"))
            .upstream_with(
                "o",
                &[(origin.addr(), 1)],
                "[upstreams.outlier]\nconsecutive_failures = 1\nbase_ejection_time = \"60s\"",
            )
            .proxy_all("o")
            .start();
        let admin = gw.admin();
        for n in 1..=3 {
            // Read the head, then hang up with most of the body still to come: the gateway's
            // next writes to this client fail.
            let mut client = Client::connect_small_window(gw.addr());
            client.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(client.read_head_only().status, 200);
            drop(client);
            eventually("the abandoned exchange is over", || {
                let done = admin
                    .metric(
                        "shardgate_requests_total",
                        &[("route", "all"), ("class", "2xx")],
                    )
                    .unwrap_or(0.0);
                (done >= f64::from(n)).then_some(())
            });
        }
        let state = admin.get_json("/upstreams");
        let target = &state["upstreams"][0]["targets"][0];
        assert_eq!(target["ejected"], false, "{state}");
        assert_eq!(target["ejections"], 0, "{state}");
        let label = origin.addr().to_string();
        for kind in ["reset", "timeout"] {
            let errors = admin.metric(
                "shardgate_upstream_errors_total",
                &[("upstream", "o"), ("target", &label), ("kind", kind)],
            );
            assert_eq!(errors, Some(0.0), "{kind}");
        }
    });
}
