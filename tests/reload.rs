//! Reload: SIGHUP and `POST /reload` re-read the config file. The next
//! request on an open keep-alive connection sees the new config; a broken
//! file is refused and the old config keeps serving; keys that need a
//! restart are reported while the rest applies; listeners come and go; and
//! no request fails across a hundred reloads under load.

mod common;

use common::*;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

/// An admin listener and a catch-all route answering "fallback".
fn base(driver: &str, admin: SocketAddr) -> Conf {
    Conf::new(driver)
        .admin(admin)
        .direct("fallback", "", "fallback")
}

fn reload_counter(admin: &Admin, result: &str) -> f64 {
    admin
        .metric("shardgate_reloads_total", &[("result", result)])
        .unwrap_or(0.0)
}

/// The hash in `INFO reload ok: <file> (hash <16 hex>)`, logged after `mark`.
fn reload_ok_hash(gw: &Gateway, mark: usize) -> String {
    let file = gw.config_path().display().to_string();
    let line = gw
        .wait_for_log_since(mark, |l| l.contains("reload ok"))
        .unwrap_or_else(|| panic!("no `reload ok` line; stderr:\n{}", gw.stderr()));
    assert!(
        line.starts_with("INFO ") && line.contains(&format!("reload ok: {file} (hash ")),
        "expected `INFO reload ok: {file} (hash <16 hex>)`, got {line:?}"
    );
    let hash = line
        .split("(hash ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no `(hash ...)` at the end of {line:?}"));
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "hash {hash:?} is not 16 hex digits in {line:?}"
    );
    hash.to_string()
}

/// Waits for `reload refused` after `mark`, then for a line naming the config
/// file followed by `detail` (a key path, or key path and reason).
fn assert_refusal_logged(gw: &Gateway, mark: usize, detail: &str) {
    let file = gw.config_path().display().to_string();
    let refused = gw.wait_for_log_since(mark, |l| l.contains("reload refused:"));
    assert!(
        refused.as_deref().is_some_and(|l| l.starts_with("ERROR ")),
        "expected `ERROR reload refused:`; stderr:\n{}",
        gw.stderr()
    );
    let want = format!("{file}: {detail}");
    assert!(
        gw.wait_for_log_since(mark, |l| l.contains(&want)).is_some(),
        "the refusal should name file, key path and reason ({want:?}); stderr:\n{}",
        gw.stderr()
    );
}

#[test]
fn sighup_reload_reaches_the_next_request_on_an_open_connection() {
    for_each_driver(|driver| {
        let admin_addr = free_addr("127.0.0.1");
        let gw = base(driver, admin_addr).start();
        let admin = gw.admin();
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/new").body_str(), "fallback");

        let mark = gw.log_mark();
        let next = base(driver, admin_addr)
            .direct("new", "path = \"/new\"", "new")
            .build();
        gw.reload_by_sighup(&admin, &next, "success");
        assert_eq!(
            client.get("/new").body_str(),
            "new",
            "the next request on the same keep-alive connection must see the new route"
        );
        assert_eq!(client.get("/other").body_str(), "fallback");
        let hash = reload_ok_hash(&gw, mark);
        assert_eq!(admin.get_json("/config")["hash"], hash.as_str());
    });
}

#[test]
fn post_reload_reaches_the_next_request_on_an_open_connection() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let admin_addr = free_addr("127.0.0.1");
        let gw = base(driver, admin_addr).start();
        let admin = gw.admin();
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/new/x").body_str(), "fallback");
        let successes = reload_counter(&admin, "success");

        // A new upstream and a route to it, in one reload.
        let mark = gw.log_mark();
        gw.rewrite_config(
            &base(driver, admin_addr)
                .upstream("added", &[origin.addr()])
                .route("new", "path_prefix = \"/new\"\nupstream = \"added\"")
                .build(),
        );
        admin.reload_ok();
        // POST /reload answers once the reload is done: no waiting here.
        assert_eq!(
            client.get("/new/x").body_str(),
            "/new/x",
            "the next request on the same keep-alive connection must see the new route"
        );
        assert_eq!(origin.recv().target, "/new/x");
        assert_eq!(client.get("/other").body_str(), "fallback");
        assert_eq!(reload_counter(&admin, "success"), successes + 1.0);
        reload_ok_hash(&gw, mark);
    });
}

/// A config that must be refused, what the errors must name, and the line
/// the log must carry after the file name.
struct Broken {
    what: &'static str,
    text: String,
    key: &'static str,
    log: String,
}

fn broken_configs(driver: &str, admin: SocketAddr) -> Vec<Broken> {
    let good = base(driver, admin);
    vec![
        Broken {
            what: "a TOML syntax error",
            text: format!("{}\n[[routes]\nname = \"new\"\n", good.build()),
            // No key path to name in a file that does not parse: the line does.
            key: "line ",
            log: String::new(),
        },
        Broken {
            what: "a value of the wrong type",
            text: base(driver, admin).limit("max_headers = \"many\"").build(),
            key: "server.limits.max_headers",
            log: "server.limits.max_headers: ".into(),
        },
        Broken {
            what: "a route to an unknown upstream",
            text: base(driver, admin)
                .route("new", "path = \"/new\"\nupstream = \"nope\"")
                .build(),
            key: "routes[1].upstream",
            log: "routes[1].upstream: no upstream named \"nope\"".into(),
        },
    ]
}

#[test]
fn a_broken_config_is_refused_by_post_reload_and_the_old_one_serves() {
    for_each_driver(|driver| {
        let admin_addr = free_addr("127.0.0.1");
        let gw = base(driver, admin_addr)
            .direct("old", "path = \"/old\"", "old")
            .start();
        let admin = gw.admin();
        let hash = admin.get_json("/config")["hash"].clone();
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/old").body_str(), "old");

        for broken in broken_configs(driver, admin_addr) {
            let what = broken.what;
            let failures = reload_counter(&admin, "failure");
            let successes = reload_counter(&admin, "success");
            let mark = gw.log_mark();
            gw.rewrite_config(&broken.text);
            let errors = admin.reload_refused();
            assert!(
                errors.iter().any(|e| e.contains(broken.key)),
                "{what}: the errors should name {:?}: {errors:?}",
                broken.key
            );
            assert_eq!(
                reload_counter(&admin, "failure"),
                failures + 1.0,
                "{what}: failed-reload counter"
            );
            assert_eq!(reload_counter(&admin, "success"), successes, "{what}");
            assert_refusal_logged(&gw, mark, &broken.log);

            // The old config serves on, on old and new connections alike.
            assert_eq!(client.get("/old").body_str(), "old", "{what}");
            assert_eq!(client.get("/new").body_str(), "fallback", "{what}");
            let mut fresh = Client::connect(gw.addr());
            assert_eq!(fresh.get("/old").body_str(), "old", "{what}");
            assert_eq!(admin.get_json("/config")["hash"], hash, "{what}");
        }
    });
}

#[test]
fn a_broken_config_is_refused_on_sighup_and_the_old_one_serves() {
    for_each_driver(|driver| {
        let admin_addr = free_addr("127.0.0.1");
        let gw = base(driver, admin_addr)
            .direct("old", "path = \"/old\"", "old")
            .start();
        let admin = gw.admin();
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/old").body_str(), "old");

        for broken in broken_configs(driver, admin_addr) {
            let what = broken.what;
            let successes = reload_counter(&admin, "success");
            let mark = gw.log_mark();
            gw.reload_by_sighup(&admin, &broken.text, "failure");
            assert_refusal_logged(&gw, mark, &broken.log);
            assert_eq!(reload_counter(&admin, "success"), successes, "{what}");
            assert_eq!(client.get("/old").body_str(), "old", "{what}");
            assert_eq!(client.get("/new").body_str(), "fallback", "{what}");
        }
        let mut fresh = Client::connect(gw.addr());
        assert_eq!(fresh.get("/old").body_str(), "old");
    });
}

#[test]
fn restart_only_keys_are_reported_and_the_rest_applies() {
    for_each_driver(|driver| {
        let admin_addr = free_addr("127.0.0.1");
        let other_driver = if driver == "epoll" { "auto" } else { "epoll" };
        let moved_admin = free_addr("127.0.0.1");
        let gw = Conf::new(driver)
            .workers(1)
            .admin(admin_addr)
            .direct("fallback", "", "fallback")
            .start();
        let admin = gw.admin();

        // Each step keeps the previous changes and adds one restart-only key
        // and one route.
        let steps: [(&str, Conf); 3] = [
            (
                "server.workers",
                Conf::new(driver)
                    .workers(2)
                    .admin(admin_addr)
                    .direct("fallback", "", "fallback")
                    .direct("r1", "path = \"/r1\"", "r1"),
            ),
            (
                "server.driver",
                Conf::new(other_driver)
                    .workers(2)
                    .admin(admin_addr)
                    .direct("fallback", "", "fallback")
                    .direct("r1", "path = \"/r1\"", "r1")
                    .direct("r2", "path = \"/r2\"", "r2"),
            ),
            (
                "admin.listen",
                Conf::new(other_driver)
                    .workers(2)
                    .admin(moved_admin)
                    .direct("fallback", "", "fallback")
                    .direct("r1", "path = \"/r1\"", "r1")
                    .direct("r2", "path = \"/r2\"", "r2")
                    .direct("r3", "path = \"/r3\"", "r3"),
            ),
        ];
        for (i, (key, conf)) in steps.iter().enumerate() {
            let mark = gw.log_mark();
            gw.rewrite_config(&conf.build());
            let notes = admin.reload_ok();
            assert!(
                notes.iter().any(|n| n.contains(key)),
                "{key}: the reload notes should say it needs a restart: {notes:?}"
            );
            let warn = gw.wait_for_log_since(mark, |l| {
                l.starts_with("WARN ") && l.contains("needs a restart") && l.contains(key)
            });
            assert!(
                warn.is_some(),
                "{key}: expected a WARN line saying it needs a restart; stderr:\n{}",
                gw.stderr()
            );
            for n in 1..=i + 1 {
                let route = format!("r{n}");
                // A new connection each time: this test is about what
                // applies, not about open connections (tested above).
                let mut client = Client::connect(gw.addr());
                assert_eq!(
                    client.get(&format!("/{route}")).body_str(),
                    route,
                    "after the {key} change: the rest of the config must apply"
                );
            }
        }

        // None of the three took effect: still one shard, the admin listener
        // where it was (it answered every reload above), nothing on the new one.
        let metrics = admin.metrics();
        let shards = label_values(&metrics, "shardgate_connections_total", "shard");
        assert!(
            !shards.is_empty() && shards.iter().all(|s| s == "0"),
            "workers must stay 1 until a restart; shards in metrics: {shards:?}"
        );
        assert_eq!(admin.get("/healthz").0, 200);
        assert!(
            TcpStream::connect(moved_admin).is_err(),
            "admin.listen must not move before a restart"
        );
    });
}

/// Load test body: 64 keep-alive connections (16 threads x 4) send requests
/// without pause while the test applies 100 reloads alternating two configs.
/// Every response is counted; any non-2xx, `Connection: close`, reset, EOF or
/// timeout is a failure.
fn hundred_reloads_under_load(driver: &str) {
    const THREADS: usize = 16;
    const CONNS_PER_THREAD: usize = 4;
    const RELOADS: usize = 100;

    let one = Origin::named("one");
    let two = Origin::named("two");
    let admin_addr = free_addr("127.0.0.1");
    let config = |flip: bool| {
        let conf = Conf::new(driver).workers(2).admin(admin_addr);
        let conf = if flip {
            conf.upstream("o", &[one.addr(), two.addr()])
                .direct("b", "path = \"/b\"", "b")
        } else {
            conf.upstream("o", &[one.addr()])
                .direct("a", "path = \"/a\"", "a")
        };
        conf.proxy_all("o").build()
    };
    let gw = Gateway::start(&config(false));
    let admin = gw.admin();
    let successes = reload_counter(&admin, "success");

    let stop = Arc::new(AtomicBool::new(false));
    let loaded = Arc::new(Barrier::new(THREADS + 1));
    // Connected here, so that nothing in a load thread can panic before the
    // barrier and leave the test waiting.
    let connections: Vec<Vec<Client>> = (0..THREADS)
        .map(|_| {
            (0..CONNS_PER_THREAD)
                .map(|_| Client::connect(gw.addr()))
                .collect()
        })
        .collect();
    let workers: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(t, mut conns)| {
            let stop = stop.clone();
            let loaded = loaded.clone();
            thread::spawn(move || -> (usize, Vec<String>) {
                let mut ok = 0;
                let mut failures = Vec::new();
                let mut send = |conn: &mut Client, c: usize, n: usize| -> bool {
                    let path = format!("/load/{t}/{c}/{n}");
                    match conn.try_get(&path) {
                        Ok(resp) if !(200..300).contains(&resp.status) => {
                            failures.push(format!("{path}: status {}", resp.status))
                        }
                        Ok(resp) if resp.says_close() => {
                            failures.push(format!("{path}: Connection: close"))
                        }
                        Ok(_) => ok += 1,
                        Err(e) => failures.push(format!("{path}: {e}")),
                    }
                    failures.is_empty()
                };
                // Every connection is up and served once before reloads start.
                let warm = conns
                    .iter_mut()
                    .enumerate()
                    .all(|(c, conn)| send(conn, c, 0));
                loaded.wait();
                let mut n = 1;
                while warm && !stop.load(Ordering::Relaxed) {
                    let all_ok = conns
                        .iter_mut()
                        .enumerate()
                        .all(|(c, conn)| send(conn, c, n));
                    if !all_ok {
                        break;
                    }
                    n += 1;
                }
                (ok, failures)
            })
        })
        .collect();

    loaded.wait();
    let reloads_result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..RELOADS {
            gw.rewrite_config(&config(i % 2 == 0));
            admin.reload_ok();
        }
    }));
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    let mut failures = Vec::new();
    for worker in workers {
        let (n, f) = worker.join().expect("load thread panicked");
        ok += n;
        failures.extend(f);
    }
    if let Err(panic) = reloads_result {
        std::panic::resume_unwind(panic);
    }
    println!("{driver}: {ok} responses across {RELOADS} reloads");
    assert!(
        failures.is_empty(),
        "{} failed requests across {RELOADS} reloads ({ok} succeeded); first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    assert!(ok > THREADS * CONNS_PER_THREAD, "the load never ran: {ok}");
    assert_eq!(
        reload_counter(&admin, "success"),
        successes + RELOADS as f64
    );
}

#[test]
fn no_request_fails_across_a_hundred_reloads_under_load() {
    for_each_driver(hundred_reloads_under_load);
}

/// A gateway on `listen` with an admin listener, proxying all to `origin`.
fn listeners_conf(driver: &str, admin: SocketAddr, origin: &Origin, listen: &[&str]) -> String {
    Conf::new(driver)
        .workers(2)
        .listen(listen)
        .admin(admin)
        .upstream("o", &[origin.addr()])
        .proxy_all("o")
        .build()
}

#[test]
fn reload_adds_a_listener() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let admin_addr = free_addr("127.0.0.1");
        let added = free_addr("127.0.0.2");
        let gw = Gateway::start(&listeners_conf(
            driver,
            admin_addr,
            &origin,
            &["127.0.0.1:0"],
        ));
        let admin = gw.admin();
        let mut before = Client::connect(gw.addr());
        assert_eq!(before.get("/before").status, 200);
        assert!(try_connect(added).is_err(), "{added} is not configured yet");

        gw.rewrite_config(&listeners_conf(
            driver,
            admin_addr,
            &origin,
            &["127.0.0.1:0", &added.to_string()],
        ));
        admin.reload_ok();
        // Several connections, so that with two shards each gets its share.
        for i in 0..8 {
            let path = format!("/added/{i}");
            let mut client = Client::connect(added);
            assert_eq!(client.get(&path).body_str(), path, "via {added}");
        }
        // The unchanged listener was left alone: old connection and new ones.
        assert_eq!(before.get("/still").body_str(), "/still");
        assert_eq!(
            Client::connect(gw.addr()).get("/kept").body_str(),
            "/kept",
            "the unchanged listener {} must keep accepting",
            gw.addr()
        );
    });
}

#[test]
fn reload_removes_a_listener_and_its_in_flight_request_completes() {
    for_each_driver(|driver| {
        let gate = Gate::new();
        let origin = {
            let gate = gate.clone();
            Origin::start(move |req| {
                if req.target == "/slow" {
                    gate.wait();
                }
                Reply::ok(req.target.clone())
            })
        };
        let admin_addr = free_addr("127.0.0.1");
        let removed = free_addr("127.0.0.2");
        let gw = Gateway::start(&listeners_conf(
            driver,
            admin_addr,
            &origin,
            &["127.0.0.1:0", &removed.to_string()],
        ));
        assert_eq!(gw.addrs().len(), 2, "listening on {:?}", gw.addrs());
        let admin = gw.admin();
        let mut held = Client::connect(removed);
        held.send(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(origin.recv().target, "/slow");

        gw.rewrite_config(&listeners_conf(
            driver,
            admin_addr,
            &origin,
            &["127.0.0.1:0"],
        ));
        admin.reload_ok();
        wait_refused(removed, "a listener removed by reload");
        gate.open();
        let resp = held.read_response();
        assert_eq!(
            (resp.status, resp.body_str().as_str()),
            (200, "/slow"),
            "the request in flight on the removed listener must complete"
        );
        assert_eq!(Client::connect(gw.addr()).get("/kept").body_str(), "/kept");
    });
}

#[test]
fn a_failing_bind_refuses_the_whole_reload() {
    for_each_driver(|driver| {
        let admin_addr = free_addr("127.0.0.1");
        // Held without SO_REUSEPORT, so the gateway cannot bind it too.
        let taken = TcpListener::bind("127.0.0.2:0").unwrap();
        let taken_addr = taken.local_addr().unwrap();
        let conf = |listen: &[&str], new_route: bool| {
            let conf = Conf::new(driver)
                .workers(2)
                .listen(listen)
                .admin(admin_addr)
                .direct("fallback", "", "fallback");
            if new_route {
                conf.direct("new", "path = \"/new\"", "new").build()
            } else {
                conf.build()
            }
        };
        let gw = Gateway::start(&conf(&["127.0.0.1:0"], false));
        let admin = gw.admin();
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/new").body_str(), "fallback");
        let failures = reload_counter(&admin, "failure");

        let mark = gw.log_mark();
        gw.rewrite_config(&conf(&["127.0.0.1:0", &taken_addr.to_string()], true));
        let errors = admin.reload_refused();
        assert!(
            errors.iter().any(|e| e.contains("server.listen")),
            "the errors should name server.listen: {errors:?}"
        );
        assert_eq!(reload_counter(&admin, "failure"), failures + 1.0);
        assert_refusal_logged(&gw, mark, "server.listen");

        // Nothing of the refused file applies: not the route, not the listener.
        assert_eq!(client.get("/new").body_str(), "fallback");
        assert_eq!(
            Client::connect(gw.addr()).get("/new").body_str(),
            "fallback"
        );
        let probe = TcpStream::connect(taken_addr).unwrap();
        let (accepted, peer) = taken.accept().unwrap();
        assert_eq!(peer, probe.local_addr().unwrap());
        drop((accepted, probe));
    });
}
