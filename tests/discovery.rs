//! Service discovery: a `name:port` target re-resolved every `resolve_interval` through a
//! nameserver the test runs (`resolver = "ip:port"`). Origins listen on 127.0.0.2, .3, .4 with
//! one port, as the addresses of one name; the nameserver's answer decides which of them get
//! traffic, with no reload.

mod common;

use std::net::Ipv4Addr;

use common::dns::{Dns, DnsMode};
use common::*;

const NAME: &str = "svc.test";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Origins answering their name on every path (and 500 on `/health` for the sick ones), on
/// 127.0.0.2, 127.0.0.3, ... all on one port, which is returned.
fn origins(names: &[(&'static str, bool)]) -> (u16, Vec<Origin>) {
    let start = |addr, name: &'static str, sick: bool| {
        Origin::try_start_on(addr, move |req| {
            if sick && req.target == "/health" {
                Reply::status(500)
            } else {
                Reply::ok(name)
            }
        })
    };
    'again: for _ in 0..50 {
        let (first, sick) = names[0];
        let Ok(origin) = start((ip(2), 0).into(), first, sick) else {
            continue;
        };
        let port = origin.addr().port();
        let mut all = vec![origin];
        for (i, &(name, sick)) in names.iter().enumerate().skip(1) {
            // The port is free on 127.0.0.2 only: another test may hold it elsewhere.
            match start((ip(2 + i as u8), port).into(), name, sick) {
                Ok(o) => all.push(o),
                Err(_) => continue 'again,
            }
        }
        return (port, all);
    }
    panic!("no port free on 127.0.0.2-{} at once", 1 + names.len());
}

/// A gateway with an admin listener and one upstream "svc" whose only target is
/// `svc.test:PORT`, resolved by `dns`; `extra` goes into the upstream's table.
fn conf(driver: &str, admin: std::net::SocketAddr, dns: &Dns, port: u16, extra: &str) -> String {
    Conf::new(driver)
        .admin(admin)
        .section(&format!(
            "[[upstreams]]\nname = \"svc\"\ntargets = [{{ addr = \"{NAME}:{port}\" }}]\n\
             resolver = \"{}\"\n{extra}",
            dns.addr()
        ))
        .proxy_all("svc")
        .build()
}

/// A running test world: see [`start`].
struct World {
    gw: Gateway,
    dns: Dns,
    origins: Vec<Origin>,
    port: u16,
    admin: std::net::SocketAddr,
}

/// Origins for `names` on 127.0.0.2, .3, ..., a nameserver answering `answer`, and a gateway
/// resolving `svc.test` through it with `extra` in the upstream's table.
fn start(driver: &str, names: &[(&'static str, bool)], answer: &[Ipv4Addr], extra: &str) -> World {
    let (port, origins) = origins(names);
    let dns = Dns::start(answer);
    let admin = free_addr("127.0.0.1");
    let gw = Gateway::start(&conf(driver, admin, &dns, port, extra));
    World {
        gw,
        dns,
        origins,
        port,
        admin,
    }
}

const EVERY_50MS: &str = "resolve_interval = \"50ms\"\nresolve_timeout = \"500ms\"";

/// Polls until `n` requests in a row are all answered by `name`.
fn only(client: &mut Client, name: &str, n: usize) {
    eventually(&format!("{n} answers in a row from {name}"), || {
        (0..n)
            .all(|_| client.get("/x").body_str() == name)
            .then_some(())
    });
}

fn reloads(admin: &Admin) -> f64 {
    ["success", "failure"]
        .iter()
        .map(|r| {
            admin
                .metric("shardgate_reloads_total", &[("result", r)])
                .unwrap_or(0.0)
        })
        .sum()
}

#[test]
fn traffic_moves_to_the_new_address_without_a_reload() {
    for_each_driver(|driver| {
        let w = start(driver, &[("a", false), ("b", false)], &[ip(2)], EVERY_50MS);
        let port = w.port;
        let admin = w.gw.admin();
        let mut client = Client::connect(w.gw.addr());
        only(&mut client, "a", 5);

        w.dns.answer(&[ip(3)]);
        only(&mut client, "b", 5);
        w.gw.wait_for_log(&format!(
            "upstream \"svc\": {NAME}:{port} resolves to [127.0.0.3:{port}] (was [127.0.0.2:{port}])"
        ));
        assert_eq!(reloads(&admin), 0.0, "no reload was involved");

        // /config shows the target as written, and what it resolves to now.
        let config = admin.get_json("/config");
        assert_eq!(
            config["config"]["upstreams"][0]["targets"][0]["addr"],
            format!("{NAME}:{port}")
        );
        assert_eq!(
            config["targets"]["svc"],
            serde_json::json!([format!("127.0.0.3:{port}")])
        );
    });
}

#[test]
fn an_address_that_stays_keeps_its_pooled_connection() {
    for_each_driver(|driver| {
        let w = start(driver, &[("a", false), ("b", false)], &[ip(2)], EVERY_50MS);
        let mut client = Client::connect(w.gw.addr());
        only(&mut client, "a", 3);
        assert_eq!(w.origins[0].connections(), 1);

        w.dns.answer(&[ip(2), ip(3)]);
        eventually("b in rotation", || {
            (client.get("/x").body_str() == "b").then_some(())
        });
        let answers: Vec<String> = (0..10).map(|_| client.get("/x").body_str()).collect();
        assert!(answers.iter().any(|a| a == "a"), "{answers:?}");
        // Round robin sent a's share over the connection pooled before the new set came.
        assert_eq!(w.origins[0].connections(), 1, "a was dialled again");
    });
}

#[test]
fn an_address_that_stays_keeps_its_health_and_a_new_one_is_checked() {
    for_each_driver(|driver| {
        // Each target is probed once at its start and then not for an hour: a target whose
        // state were lost across the swap would be healthy (the initial state) for that hour.
        let health = "[upstreams.health_check]\npath = \"/health\"\ninterval = \"1h\"\n\
                      timeout = \"1s\"\nhealthy_threshold = 1\nunhealthy_threshold = 1";
        let sick = [("a", true), ("b", false), ("c", true)];
        let w = start(
            driver,
            &sick,
            &[ip(2), ip(3)],
            &format!("{EVERY_50MS}\n{health}"),
        );
        let port = w.port;
        let admin = w.gw.admin();
        let healthy = |last: u8| {
            let target = format!("127.0.0.{last}:{port}");
            admin.metric(
                "shardgate_upstream_healthy",
                &[("upstream", "svc"), ("target", &target)],
            )
        };
        eventually("a checked and unhealthy", || {
            (healthy(2) == Some(0.0)).then_some(())
        });
        let mut client = Client::connect(w.gw.addr());
        only(&mut client, "b", 5);

        w.dns.answer(&[ip(2), ip(3), ip(4)]);
        eventually("c, the new address, checked and unhealthy", || {
            (healthy(4) == Some(0.0)).then_some(())
        });
        let answers: Vec<String> = (0..20).map(|_| client.get("/x").body_str()).collect();
        assert!(answers.iter().all(|a| a == "b"), "{answers:?}");
        assert_eq!(healthy(2), Some(0.0));
    });
}

#[test]
fn a_failing_nameserver_keeps_the_last_good_set_serving() {
    for_each_driver(|driver| {
        let w = start(
            driver,
            &[("a", false), ("b", false)],
            &[ip(2)],
            "resolve_interval = \"50ms\"\nresolve_timeout = \"200ms\"",
        );
        let port = w.port;
        let mut client = Client::connect(w.gw.addr());
        only(&mut client, "a", 3);

        for (mode, reason) in [
            (DnsMode::Silent, "no answer"),
            (DnsMode::ServFail, "SERVFAIL"),
            (DnsMode::NxDomain, "NXDOMAIN"),
            (DnsMode::Empty, "no address"),
            (DnsMode::Truncated, "truncated"),
        ] {
            let mark = w.gw.log_mark();
            w.dns.set_mode(mode.clone());
            let warning = w.gw.wait_for_log_since(mark, |l| {
                l.starts_with("WARN")
                    && l.contains(&format!("upstream \"svc\": cannot resolve {NAME}:{port}"))
                    && l.contains(reason)
            });
            let warning = warning.unwrap_or_else(|| {
                panic!(
                    "no warning with {reason:?} for {mode:?}:\n{}",
                    w.gw.stderr()
                )
            });
            assert!(
                warning.ends_with(&format!("; keeping [127.0.0.2:{port}]")),
                "{warning}"
            );
            only(&mut client, "a", 3);
        }

        let mark = w.gw.log_mark();
        w.dns.answer(&[ip(3)]);
        only(&mut client, "b", 3);
        assert!(w
            .gw
            .wait_for_log_since(mark, |l| l
                .contains(&format!("{NAME}:{port} resolves again")))
            .is_some());

        // No nameserver at all: the w.port refuses.
        let mark = w.gw.log_mark();
        drop(w.dns);
        assert!(w
            .gw
            .wait_for_log_since(mark, |l| l.contains("cannot resolve")
                && l.contains(&format!("keeping [127.0.0.3:{port}]")))
            .is_some());
        only(&mut client, "b", 3);
    });
}

#[test]
fn a_reload_resolves_again_and_the_resolver_follows_the_new_config() {
    for_each_driver(|driver| {
        let w = start(driver, &[("a", false), ("b", false)], &[ip(2)], "");
        let conf = |extra| conf(driver, w.admin, &w.dns, w.port, extra);
        let once = conf("");
        let admin = w.gw.admin();
        let mut client = Client::connect(w.gw.addr());
        only(&mut client, "a", 3);

        // Without resolve_interval, only a load resolves the name.
        w.dns.answer(&[ip(3)]);
        w.gw.reload_by_sighup(&admin, &once, "success");
        only(&mut client, "b", 3);

        // A reload that adds resolve_interval starts the resolver.
        w.gw.reload_by_sighup(&admin, &conf(EVERY_50MS), "success");
        w.dns.answer(&[ip(2)]);
        only(&mut client, "a", 3);
    });
}

#[test]
fn shutdown_does_not_wait_for_a_hanging_lookup() {
    for_each_driver(|driver| {
        let w = start(
            driver,
            &[("a", false)],
            &[ip(2)],
            "resolve_interval = \"50ms\"\nresolve_timeout = \"1h\"",
        );
        w.dns.set_mode(DnsMode::Silent);
        let asked = w.dns.queries();
        // A query read while silent is a lookup that now waits for an hour.
        eventually("a query the nameserver leaves unanswered", || {
            (w.dns.queries() > asked).then_some(())
        });
        let mut client = Client::connect(w.gw.addr());
        only(&mut client, "a", 3);
        drop(client);
        let status = w.gw.terminate().expect("the gateway did not exit");
        assert!(status.success(), "{status:?}");
    });
}

fn check_errors(config: &str) -> String {
    let out = check(config);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    stderr
}

#[test]
fn check_names_each_bad_discovery_setting() {
    let upstream = |lines: &str| {
        Conf::new("epoll")
            .section(&format!("[[upstreams]]\nname = \"svc\"\n{lines}"))
            .proxy_all("svc")
            .build()
    };
    for (lines, says) in [
        (
            "targets = [{ addr = \"127.0.0.1:1\" }]\nresolve_interval = \"10s\"",
            "upstreams[0].resolve_interval: every target is an ip:port",
        ),
        (
            "targets = [{ addr = \"localhost:1\" }]\nresolve_interval = \"often\"",
            "upstreams[0].resolve_interval: invalid duration \"often\"",
        ),
        (
            "targets = [{ addr = \"localhost:1\" }]\nresolve_timeout = \"0s\"",
            "upstreams[0].resolve_timeout: must be greater than 0",
        ),
        (
            "targets = [{ addr = \"localhost:1\" }]\nresolver = \"dns.example:53\"",
            "upstreams[0].resolver: \"dns.example:53\" is neither the ip:port of a DNS server",
        ),
        (
            "targets = [{ addr = \"svc..test:80\" }]",
            "upstreams[0].targets[0].addr: \"svc..test:80\" is not a valid name",
        ),
        (
            "targets = [{ addr = \"svc.test:http\" }]",
            "upstreams[0].targets[0].addr: \"svc.test:http\": the port must be a number",
        ),
    ] {
        let stderr = check_errors(&upstream(lines));
        assert!(stderr.contains(says), "{lines}\nstderr: {stderr}");
    }
    let bad_server = Conf::new("epoll")
        .server("resolver = \"10.0.0.2\"")
        .direct("d", "", "d")
        .build();
    let stderr = check_errors(&bad_server);
    assert!(
        stderr.contains("server.resolver: \"10.0.0.2\" is neither the ip:port"),
        "{stderr}"
    );
}

#[test]
fn check_resolves_through_the_resolver_and_names_what_failed() {
    let dns = Dns::start(&[ip(2)]);
    let with = |extra: &str| {
        Conf::new("epoll")
            .server(&format!("resolver = \"{}\"", dns.addr()))
            .section(&format!(
                "[[upstreams]]\nname = \"svc\"\ntargets = [{{ addr = \"{NAME}:80\" }}]\n\
                 resolve_timeout = \"200ms\"\n{extra}"
            ))
            .proxy_all("svc")
            .build()
    };
    let out = check(&with("resolve_interval = \"5s\""));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dns.queries() > 0, "server.resolver was not asked");

    dns.set_mode(DnsMode::NxDomain);
    let stderr = check_errors(&with(""));
    assert!(
        stderr.contains(&format!(
            "upstreams[0].targets[0].addr: cannot resolve \"{NAME}:80\": {}: no such name (NXDOMAIN)",
            dns.addr()
        )),
        "{stderr}"
    );
    dns.set_mode(DnsMode::Silent);
    let stderr = check_errors(&with(""));
    assert!(
        stderr.contains("upstreams[0].targets[0].addr: cannot resolve")
            && stderr.contains("no answer"),
        "{stderr}"
    );
}

#[test]
fn host_header_target_sends_the_name_as_written() {
    for_each_driver(|driver| {
        // Virtual-hosted origins know themselves by name, not by the address it resolves to.
        let w = start(
            driver,
            &[("a", false)],
            &[ip(2)],
            "host_header = \"target\"",
        );
        let mut client = Client::connect(w.gw.addr());
        assert_eq!(client.get("/x").body_str(), "a");
        let seen = w.origins[0].recv();
        assert_eq!(
            seen.header("host"),
            Some(format!("{NAME}:{}", w.port).as_str())
        );
    });
}
