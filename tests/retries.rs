//! Retries: a failed try is made again on another target when the policy, the method, the
//! replay buffer and the budget allow it, and never once the client has response bytes.

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One upstream "o" over `targets`, every request routed to it, with `retry` as its
/// `[upstreams.retry]` table and `route` as extra route lines.
fn gateway(driver: &str, targets: &[SocketAddr], retry: &str, route: &str) -> Gateway {
    let weighted: Vec<_> = targets.iter().map(|&a| (a, 1)).collect();
    Conf::new(driver)
        .upstream_with(
            "o",
            &weighted,
            &format!("read_timeout = \"5s\"\n[upstreams.retry]\nbackoff_base = \"0s\"\n{retry}"),
        )
        .route("all", &format!("upstream = \"o\"\n{route}"))
        .admin(free_addr("127.0.0.1"))
        .start()
}

/// An origin answering `status` to everything, counting the requests it read.
fn counting(status: u16) -> (Origin, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let origin = Origin::start(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Reply::status(status).body(format!("answered {status}"))
    });
    (origin, seen)
}

/// An origin that reads each request and never answers, until the gateway gives up.
fn hanging() -> Origin {
    Origin::raw(|mut conn| {
        if conn.read_request().is_some() {
            conn.wait_for_close();
        }
    })
}

/// An origin whose first connection reads a request and closes without an answer (a
/// reset before the response, as the gateway sees it); later ones answer with `answer`.
fn drops_the_first_request(answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Origin {
    Origin::raw(move |mut conn| {
        let first = conn.index == 0;
        while let Some(req) = conn.read_request() {
            if first || !conn.reply(&req, &answer(&req)) {
                break;
            }
        }
        conn.close();
    })
}

fn target_metric(gw: &Gateway, name: &str, target: SocketAddr) -> f64 {
    gw.admin()
        .metric(name, &[("upstream", "o"), ("target", &target.to_string())])
        .unwrap_or(0.0)
}

#[test]
fn a_refused_connection_is_tried_again_on_the_other_target() {
    for_each_driver(|driver| {
        let (good, seen) = counting(200);
        let dead = dead_addr();
        let gw = gateway(
            driver,
            &[dead, good.addr()],
            "on = [\"connect_failure\"]",
            "",
        );
        let mut client = Client::connect(gw.addr());
        for i in 0..8 {
            // A POST too: nothing was sent to the dead target, so nothing can be duplicated.
            let resp = if i % 2 == 0 {
                client.get("/a")
            } else {
                client.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
                client.read_response()
            };
            assert_eq!(resp.status, 200, "request {i}: {}", resp.body_str());
        }
        assert_eq!(
            seen.load(Ordering::SeqCst),
            8,
            "each request reached the live target once"
        );
        // Round robin offered the dead target first about half the time.
        assert!(target_metric(&gw, "shardgate_upstream_retries_total", dead) >= 1.0);
        assert_eq!(
            target_metric(&gw, "shardgate_upstream_retries_total", good.addr()),
            0.0
        );
    });
}

#[test]
fn without_a_retry_policy_the_refusal_reaches_the_client() {
    for_each_driver(|driver| {
        // The control for the test above: the same upstream with no [retry] gives 502s.
        let good = Origin::named("good");
        let gw = Conf::new(driver)
            .upstream("o", &[dead_addr(), good.addr()])
            .proxy_all("o")
            .start();
        let mut client = Client::connect(gw.addr());
        let statuses: Vec<u16> = (0..4).map(|_| client.get("/").status).collect();
        assert!(statuses.contains(&502), "{statuses:?}");
        assert!(statuses.contains(&200), "{statuses:?}");
    });
}

#[test]
fn a_503_is_tried_again_on_another_target_and_counted() {
    for_each_driver(|driver| {
        let (sick, sick_seen) = counting(503);
        let (good, good_seen) = counting(200);
        let gw = gateway(driver, &[sick.addr(), good.addr()], "on = [\"503\"]", "");
        let mut client = Client::connect(gw.addr());
        for i in 0..6 {
            let resp = client.get("/");
            assert_eq!(resp.status, 200, "request {i}");
            assert_eq!(resp.body_str(), "answered 200");
        }
        let sick_tries = sick_seen.load(Ordering::SeqCst);
        assert!(sick_tries >= 1);
        assert_eq!(good_seen.load(Ordering::SeqCst), 6);
        assert_eq!(
            target_metric(&gw, "shardgate_upstream_retries_total", sick.addr()),
            sick_tries as f64
        );
    });
}

#[test]
fn a_post_that_was_sent_is_never_sent_again() {
    for_each_driver(|driver| {
        let (sick, sick_seen) = counting(503);
        let (good, good_seen) = counting(200);
        let gw = gateway(
            driver,
            &[sick.addr(), good.addr()],
            "on = [\"503\", \"reset\", \"timeout\"]\nattempts = 3",
            "",
        );
        let mut client = Client::connect(gw.addr());
        let mut statuses = Vec::new();
        for _ in 0..6 {
            client.send(b"POST /order HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
            statuses.push(client.read_response().status);
        }
        // The sick target's answers went back as they were, not retried elsewhere.
        assert!(statuses.contains(&503), "{statuses:?}");
        let total = sick_seen.load(Ordering::SeqCst) + good_seen.load(Ordering::SeqCst);
        assert_eq!(total, 6, "6 POSTs reached upstreams {total} times");
        assert_eq!(
            target_metric(&gw, "shardgate_upstream_retries_total", sick.addr()),
            0.0
        );
    });
}

#[test]
fn a_route_may_allow_retrying_a_post() {
    for_each_driver(|driver| {
        let (sick, sick_seen) = counting(503);
        let (good, good_seen) = counting(200);
        let gw = gateway(
            driver,
            &[sick.addr(), good.addr()],
            "on = [\"503\"]",
            "retry_non_idempotent = true",
        );
        let mut client = Client::connect(gw.addr());
        for _ in 0..6 {
            client.send(b"POST /order HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
            assert_eq!(client.read_response().status, 200);
        }
        assert_eq!(good_seen.load(Ordering::SeqCst), 6);
        assert!(sick_seen.load(Ordering::SeqCst) >= 1);
    });
}

#[test]
fn a_route_retry_table_overrides_its_upstream_key_by_key() {
    for_each_driver(|driver| {
        // The upstream retries only connect failures; the route adds 503 and keeps the rest.
        let (sick, _) = counting(503);
        let (good, good_seen) = counting(200);
        let gw = Conf::new(driver)
            .upstream_with(
                "o",
                &[(sick.addr(), 1), (good.addr(), 1)],
                "[upstreams.retry]\non = [\"connect_failure\"]\nattempts = 2",
            )
            .route(
                "retrying",
                "path_prefix = \"/r\"\nupstream = \"o\"\n[routes.retry]\non = [\"503\"]",
            )
            .route("plain", "upstream = \"o\"")
            .start();
        let mut client = Client::connect(gw.addr());
        for _ in 0..4 {
            assert_eq!(client.get("/r").status, 200);
        }
        assert_eq!(good_seen.load(Ordering::SeqCst), 4);
        let plain: Vec<u16> = (0..4).map(|_| client.get("/p").status).collect();
        assert!(plain.contains(&503), "{plain:?}");
    });
}

#[test]
fn a_reset_before_the_response_is_retried_with_the_same_body() {
    for_each_driver(|driver| {
        // One target: its first connection takes the request and drops it; later ones echo.
        let origin = drops_the_first_request(|req| Reply::ok(req.body.clone()));
        let gw = gateway(driver, &[origin.addr()], "on = [\"reset\"]", "");
        // Larger than one read buffer, so the body streams and the replay copy is used.
        let body: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut client = Client::connect(gw.addr());
        client.send(
            format!(
                "PUT /doc HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        client.send(&body[..10_000]);
        // The next request rides right behind the body: it must not be taken for body bytes.
        let mut rest = body[10_000..].to_vec();
        rest.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
        client.send(&rest);
        let resp = client.read_response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, body, "the second try carried the whole body");
        let after = client.read_response();
        assert_eq!(
            after.status, 200,
            "the pipelined request after the retried one"
        );
        let first = origin.recv();
        let second = origin.recv();
        assert_eq!(first.body, body);
        assert_eq!(second.body, body);
        assert_eq!(origin.recv().target, "/after");
        assert_eq!(origin.connections(), 2);
    });
}

#[test]
fn a_body_larger_than_max_replay_body_is_not_retried_once_sent() {
    for_each_driver(|driver| {
        let origin = drops_the_first_request(|_| Reply::ok("second"));
        let gw = gateway(
            driver,
            &[origin.addr()],
            "on = [\"reset\"]\nmax_replay_body = 1024",
            "",
        );
        let body = vec![b'x'; 40_000];
        let mut client = Client::connect(gw.addr());
        client.send(
            format!(
                "PUT /doc HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        client.send(&body);
        assert_eq!(client.read_response().status, 502);
        assert_eq!(origin.recv().body.len(), body.len());
        assert_eq!(origin.connections(), 1, "no second try");
    });
}

#[test]
fn nothing_is_retried_once_response_bytes_reached_the_client() {
    for_each_driver(|driver| {
        // The first connection sends a head and half a body, then dies.
        let origin = Origin::raw(|mut conn| {
            if conn.index == 0 {
                if conn.read_request().is_some() {
                    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf");
                }
                conn.reset();
                return;
            }
            while let Some(req) = conn.read_request() {
                if !conn.reply(&req, &Reply::ok("whole")) {
                    break;
                }
            }
            conn.close();
        });
        let gw = gateway(driver, &[origin.addr()], "", "");
        let mut client = Client::connect(gw.addr());
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let head = client.read_head_only();
        assert_eq!(head.status, 200);
        let rest = client.read_to_eof();
        assert!(rest.len() < 100, "the body was cut short, not completed");
        assert_eq!(
            origin.connections(),
            1,
            "no second try after the head went out"
        );
    });
}

#[test]
fn per_try_timeout_moves_on_from_a_hanging_target() {
    for_each_driver(|driver| {
        let hanging = hanging();
        let (good, good_seen) = counting(200);
        let gw = gateway(
            driver,
            &[hanging.addr(), good.addr()],
            "on = [\"timeout\"]\nper_try_timeout = \"200ms\"",
            "",
        );
        let mut client = Client::connect(gw.addr());
        for _ in 0..4 {
            assert_eq!(client.get("/").status, 200);
        }
        assert_eq!(good_seen.load(Ordering::SeqCst), 4);
        let admin = gw.admin();
        let hanging_label = hanging.addr().to_string();
        let per_try = admin
            .metric(
                "shardgate_upstream_timeouts_total",
                &[
                    ("upstream", "o"),
                    ("target", &hanging_label),
                    ("phase", "per_try"),
                ],
            )
            .unwrap_or(0.0);
        assert!(per_try >= 1.0, "per-try timeouts counted: {per_try}");
        assert_eq!(
            target_metric(&gw, "shardgate_upstream_retries_total", hanging.addr()),
            per_try
        );
    });
}

#[test]
fn the_route_timeout_bounds_all_tries_together() {
    for_each_driver(|driver| {
        let (a, b) = (hanging(), hanging());
        let gw = gateway(
            driver,
            &[a.addr(), b.addr()],
            "on = [\"timeout\"]\nattempts = 10\nper_try_timeout = \"150ms\"",
            "timeout = \"400ms\"",
        );
        let mut client = Client::connect(gw.addr());
        let resp = client.get("/");
        assert_eq!(resp.status, 504);
        resp.assert_generated();
        let admin = gw.admin();
        assert_eq!(
            admin.metric("shardgate_route_timeouts_total", &[("route", "all")]),
            Some(1.0)
        );
    });
}

#[test]
fn the_budget_refuses_a_retry_beyond_its_share() {
    for_each_driver(|driver| {
        // One target: the first try of each request gets 503; a second try of /hold waits
        // at the gate, so one retry stays in flight while the next request fails.
        let gate = Gate::new();
        let tries = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let origin = {
            let gate = gate.clone();
            Origin::start(move |req| {
                let n = {
                    let mut tries = tries.lock().unwrap();
                    let n = tries.entry(req.target.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                if n == 1 {
                    return Reply::status(503);
                }
                gate.wait();
                Reply::ok("retried")
            })
        };
        let gw = gateway(
            driver,
            &[origin.addr()],
            "on = [\"503\"]\nbudget_percent = 0.0\nmin_retry_concurrency = 1",
            "",
        );
        let mut first = Client::connect(gw.addr());
        first.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
        // Its retry is in flight once the origin has seen /hold twice.
        assert_eq!(origin.recv().target, "/hold");
        assert_eq!(origin.recv().target, "/hold");

        let mut second = Client::connect(gw.addr());
        let resp = second.get("/other");
        assert_eq!(
            resp.status, 503,
            "no budget left: the 503 goes back as it was"
        );
        assert_eq!(
            target_metric(
                &gw,
                "shardgate_upstream_retries_over_budget_total",
                origin.addr()
            ),
            1.0
        );

        gate.open();
        let resp = first.read_response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), "retried");
        // With the retry done the budget is free again.
        let resp = second.get("/third");
        assert_eq!(resp.status, 200);
    });
}

#[test]
fn early_hints_that_reached_the_client_end_the_retrying() {
    for_each_driver(|driver| {
        // The first try sends 103 Early Hints, then 503; another try would answer 200.
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let origin = Origin::start(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(503).interim(103, &[("Link", "</a.css>; rel=preload")]),
            _ => Reply::ok("second"),
        });
        let gw = gateway(driver, &[origin.addr()], "on = [\"503\"]", "");
        let mut client = Client::connect(gw.addr());
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(client.read_response().status, 103);
        let last = client.read_response();
        assert_eq!(
            last.status, 503,
            "the response had begun: its final status is the first try's"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_client_that_stops_reading_is_not_its_targets_per_try_timeout() {
    for_each_driver(|driver| {
        let big = vec![b'x'; 32 << 20];
        let origin = Origin::start(move |_| Reply::ok(big.clone()));
        let gw = Conf::new(driver)
            .limit("send_timeout = \"500ms\"")
            .admin(free_addr("127.0.0.1"))
            .upstream_with(
                "o",
                &[(origin.addr(), 1)],
                "[upstreams.retry]\nper_try_timeout = \"300ms\"\n\
                 [upstreams.outlier]\nconsecutive_failures = 1\nbase_ejection_time = \"60s\"",
            )
            .proxy_all("o")
            .start();
        let admin = gw.admin();
        // Asks for the body and never reads it: the gateway's writes back up until send_timeout.
        let mut client = Client::connect_small_window(gw.addr());
        client.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
        eventually("the stalled exchange is over", || {
            admin
                .metric(
                    "shardgate_requests_total",
                    &[("route", "all"), ("class", "2xx")],
                )
                .filter(|n| *n >= 1.0)
        });
        let label = origin.addr().to_string();
        let per_try = admin.metric(
            "shardgate_upstream_timeouts_total",
            &[("upstream", "o"), ("target", &label), ("phase", "per_try")],
        );
        assert_eq!(per_try, Some(0.0), "the client was slow, not the target");
        let state = admin.get_json("/upstreams");
        assert_eq!(
            state["upstreams"][0]["targets"][0]["ejected"], false,
            "{state}"
        );
        drop(client);
    });
}

#[test]
fn the_access_log_counts_the_tries() {
    for_each_driver(|driver| {
        // One target whose first connection drops the request: the second try answers.
        let origin = drops_the_first_request(|_| Reply::ok("second"));
        let log = TempPath::new("retries-access-log");
        let gw = Conf::new(driver)
            .access_log("json", log.path())
            .upstream_with(
                "o",
                &[(origin.addr(), 1)],
                "[upstreams.retry]\non = [\"reset\"]\nbackoff_base = \"0s\"",
            )
            .proxy_all("o")
            .start();
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/retried").body_str(), "second");
        let line = eventually("the request's log line", || {
            let text = std::fs::read_to_string(log.path()).ok()?;
            text.lines()
                .find(|l| l.contains("\"/retried\""))
                .map(str::to_string)
        });
        let line: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(line["upstream_tries"], 2, "{line}");
        assert_eq!(line["upstream"], origin.addr().to_string(), "{line}");
    });
}
