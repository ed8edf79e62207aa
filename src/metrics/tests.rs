//! The exposition as a whole: its shape, sums over shards, sorted series, and `promtool`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const FAMILIES: [(&str, &str); 25] = [
    ("shardgate_build_info", "gauge"),
    ("shardgate_config_info", "gauge"),
    ("shardgate_config_loaded_timestamp_seconds", "gauge"),
    ("shardgate_reloads_total", "counter"),
    ("shardgate_requests_total", "counter"),
    ("shardgate_request_duration_seconds", "histogram"),
    ("shardgate_bytes_received_total", "counter"),
    ("shardgate_bytes_sent_total", "counter"),
    ("shardgate_route_timeouts_total", "counter"),
    ("shardgate_upstream_requests_total", "counter"),
    ("shardgate_upstream_request_duration_seconds", "histogram"),
    ("shardgate_upstream_errors_total", "counter"),
    ("shardgate_upstream_timeouts_total", "counter"),
    ("shardgate_upstream_retries_total", "counter"),
    ("shardgate_upstream_retries_over_budget_total", "counter"),
    ("shardgate_upstream_ejections_total", "counter"),
    ("shardgate_upstream_ejected", "gauge"),
    ("shardgate_upstream_healthy", "gauge"),
    ("shardgate_upstream_health_checks_total", "counter"),
    ("shardgate_upstream_pool_idle_connections", "gauge"),
    ("shardgate_upstream_pool_active_connections", "gauge"),
    ("shardgate_connections_active", "gauge"),
    ("shardgate_connections_total", "counter"),
    ("shardgate_access_log_dropped_total", "counter"),
    ("shardgate_draining", "gauge"),
];

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn info() -> ProcessInfo<'static> {
    ProcessInfo {
        version: "0.1.0",
        config_hash: "00112233aabbccdd",
        config_loaded_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
        access_log_dropped: 7,
        draining: false,
    }
}

fn render(m: &Metrics) -> String {
    let mut out = String::from("stale text that render must clear");
    m.render(&mut out, &info());
    out
}

/// The value of the one line that starts with `series ` (name and labels as rendered).
fn value(text: &str, series: &str) -> String {
    let prefix = format!("{series} ");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "exactly one {series} in:\n{text}");
    lines[0][prefix.len()..].to_string()
}

/// Two shards, a few routes and targets, something in every family.
fn populated() -> Arc<Metrics> {
    let m = Metrics::new(2);
    let api = m.route("api");
    let web = m.route("web");
    let none = m.route(NO_ROUTE);
    api.record(0, 200, Duration::from_micros(300), 100, 1000);
    api.record(1, 204, Duration::from_millis(30), 50, 10);
    api.record(1, 502, Duration::from_secs(12), 1, 2);
    web.record(0, 301, Duration::from_millis(2), 80, 120);
    none.record(1, 404, Duration::from_micros(80), 60, 150);
    none.record(0, 400, Duration::from_micros(20), 10, 90);
    let a = m.target("users", addr("10.0.0.2:8080"));
    let b = m.target("users", addr("10.0.0.1:8080"));
    let c = m.target("static", addr("[::1]:9000"));
    a.record(0, Duration::from_millis(3));
    a.record(1, Duration::from_millis(700));
    b.record(1, Duration::from_micros(900));
    b.error(0, UpstreamErrorKind::Connect);
    b.error(1, UpstreamErrorKind::Timeout);
    c.error(1, UpstreamErrorKind::BadResponse);
    a.pool_idle(0, 2);
    a.pool_idle(1, 1);
    a.pool_active(1, 1);
    m.shard(0).connection_opened();
    m.shard(0).connection_opened();
    m.shard(0).connection_closed();
    m.shard(1).connection_opened();
    m.reload(true);
    m.reload(true);
    m.reload(false);
    m
}

#[test]
fn every_family_has_help_and_type_in_order() {
    let text = render(&Metrics::new(1));
    assert!(!text.contains("stale"));
    let mut headers = text.lines().filter(|l| l.starts_with('#'));
    for (name, kind) in FAMILIES {
        let help = headers.next().unwrap();
        assert!(help.starts_with(&format!("# HELP {name} ")), "{help}");
        assert!(help.len() > format!("# HELP {name} ").len());
        assert_eq!(
            headers.next(),
            Some(format!("# TYPE {name} {kind}").as_str())
        );
    }
    assert_eq!(headers.next(), None);
    // Every sample belongs to the family announced last.
    let mut current = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap();
        } else if !line.starts_with('#') {
            let series = line.split([' ', '{']).next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| series.strip_suffix(s).filter(|b| *b == current))
                .unwrap_or(series);
            assert_eq!(base, current, "{line}");
        }
    }
    assert!(text.ends_with('\n'));
}

#[test]
fn fresh_process_series() {
    let text = render(&Metrics::new(2));
    assert_eq!(value(&text, "shardgate_build_info{version=\"0.1.0\"}"), "1");
    assert_eq!(
        value(&text, "shardgate_config_info{hash=\"00112233aabbccdd\"}"),
        "1"
    );
    assert_eq!(
        value(&text, "shardgate_config_loaded_timestamp_seconds"),
        "1700000000.25"
    );
    assert_eq!(
        value(&text, "shardgate_reloads_total{result=\"success\"}"),
        "0"
    );
    assert_eq!(
        value(&text, "shardgate_reloads_total{result=\"failure\"}"),
        "0"
    );
    // The no-route series exists before its first request, with every class.
    for class in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
        let series = format!("shardgate_requests_total{{route=\"-\",class=\"{class}\"}}");
        assert_eq!(value(&text, &series), "0");
    }
    assert_eq!(
        value(
            &text,
            "shardgate_request_duration_seconds_count{route=\"-\"}"
        ),
        "0"
    );
    assert_eq!(
        value(&text, "shardgate_connections_active{shard=\"1\"}"),
        "0"
    );
    assert_eq!(
        value(&text, "shardgate_connections_total{shard=\"0\"}"),
        "0"
    );
    assert_eq!(value(&text, "shardgate_access_log_dropped_total"), "7");
    assert_eq!(value(&text, "shardgate_draining"), "0");
    assert!(!text.contains("shardgate_upstream_requests_total{"));

    let mut out = String::new();
    let draining = ProcessInfo {
        draining: true,
        ..info()
    };
    Metrics::new(1).render(&mut out, &draining);
    assert_eq!(value(&out, "shardgate_draining"), "1");
}

#[test]
fn series_sum_over_shards() {
    let text = render(&populated());
    let v = |s: &str| value(&text, s);
    assert_eq!(
        v("shardgate_requests_total{route=\"api\",class=\"2xx\"}"),
        "2"
    );
    assert_eq!(
        v("shardgate_requests_total{route=\"api\",class=\"5xx\"}"),
        "1"
    );
    assert_eq!(
        v("shardgate_requests_total{route=\"api\",class=\"4xx\"}"),
        "0"
    );
    assert_eq!(
        v("shardgate_requests_total{route=\"-\",class=\"4xx\"}"),
        "2"
    );
    assert_eq!(v("shardgate_bytes_received_total{route=\"api\"}"), "151");
    assert_eq!(v("shardgate_bytes_sent_total{route=\"api\"}"), "1012");
    assert_eq!(
        v("shardgate_request_duration_seconds_sum{route=\"api\"}"),
        "12.0303"
    );
    assert_eq!(
        v("shardgate_request_duration_seconds_count{route=\"api\"}"),
        "3"
    );
    let users_a = "upstream=\"users\",target=\"10.0.0.2:8080\"";
    let users_b = "upstream=\"users\",target=\"10.0.0.1:8080\"";
    assert_eq!(
        v(&format!("shardgate_upstream_requests_total{{{users_a}}}")),
        "2"
    );
    assert_eq!(
        v(&format!(
            "shardgate_upstream_request_duration_seconds_sum{{{users_a}}}"
        )),
        "0.703"
    );
    assert_eq!(
        v(&format!(
            "shardgate_upstream_errors_total{{{users_b},kind=\"connect\"}}"
        )),
        "1"
    );
    assert_eq!(
        v(&format!(
            "shardgate_upstream_errors_total{{{users_b},kind=\"timeout\"}}"
        )),
        "1"
    );
    assert_eq!(
        v(&format!(
            "shardgate_upstream_errors_total{{{users_b},kind=\"reset\"}}"
        )),
        "0"
    );
    assert_eq!(
        v("shardgate_upstream_errors_total{upstream=\"static\",target=\"[::1]:9000\",kind=\"bad_response\"}"),
        "1"
    );
    assert_eq!(
        v(&format!(
            "shardgate_upstream_pool_idle_connections{{{users_a}}}"
        )),
        "3"
    );
    assert_eq!(
        v(&format!(
            "shardgate_upstream_pool_active_connections{{{users_a}}}"
        )),
        "1"
    );
    assert_eq!(v("shardgate_connections_active{shard=\"0\"}"), "1");
    assert_eq!(v("shardgate_connections_total{shard=\"0\"}"), "2");
    assert_eq!(v("shardgate_connections_active{shard=\"1\"}"), "1");
    assert_eq!(v("shardgate_reloads_total{result=\"success\"}"), "2");
    assert_eq!(v("shardgate_reloads_total{result=\"failure\"}"), "1");
}

#[test]
fn rendered_histograms_are_cumulative() {
    let text = render(&populated());
    for (series, count) in [
        ("shardgate_request_duration_seconds", "route=\"api\""),
        (
            "shardgate_upstream_request_duration_seconds",
            "upstream=\"users\",target=\"10.0.0.2:8080\"",
        ),
    ] {
        let prefix = format!("{series}_bucket{{{count},le=\"");
        let buckets: Vec<(&str, u64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|rest| {
                let (le, n) = rest.split_once("\"} ").unwrap();
                (le, n.parse().unwrap())
            })
            .collect();
        let les: Vec<&str> = buckets.iter().map(|(le, _)| *le).collect();
        assert_eq!(
            les,
            [
                "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                "0.5", "1", "2.5", "5", "10", "+Inf"
            ]
        );
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1));
        let total = value(&text, &format!("{series}_count{{{count}}}"));
        assert_eq!(buckets.last().unwrap().1.to_string(), total);
    }
    // api: 300 µs, 30 ms and 12 s.
    let api = |le: &str| {
        value(
            &text,
            &format!("shardgate_request_duration_seconds_bucket{{route=\"api\",le=\"{le}\"}}"),
        )
    };
    assert_eq!(api("0.0005"), "1");
    assert_eq!(api("0.025"), "1");
    assert_eq!(api("0.05"), "2");
    assert_eq!(api("10"), "2");
    assert_eq!(api("+Inf"), "3");
}

#[test]
fn series_come_out_sorted() {
    let text = render(&populated());
    let order = |family: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .map(|l| l.split_once(' ').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(
        order("shardgate_bytes_sent_total"),
        [
            "shardgate_bytes_sent_total{route=\"-\"}",
            "shardgate_bytes_sent_total{route=\"api\"}",
            "shardgate_bytes_sent_total{route=\"web\"}",
        ]
    );
    assert_eq!(
        order("shardgate_upstream_pool_idle_connections"),
        [
            "shardgate_upstream_pool_idle_connections{upstream=\"static\",target=\"[::1]:9000\"}",
            "shardgate_upstream_pool_idle_connections{upstream=\"users\",target=\"10.0.0.1:8080\"}",
            "shardgate_upstream_pool_idle_connections{upstream=\"users\",target=\"10.0.0.2:8080\"}",
        ]
    );
    let kinds: Vec<String> = order("shardgate_upstream_errors_total")
        .into_iter()
        .filter(|s| s.contains("static"))
        .collect();
    assert!(kinds[0].ends_with("kind=\"bad_response\"}"));
    assert!(kinds[3].ends_with("kind=\"timeout\"}"));
    assert_eq!(text, render(&populated()));
}

#[test]
fn route_names_are_escaped() {
    let m = Metrics::new(1);
    m.route("we\"ird\\route\nname")
        .record(0, 200, Duration::ZERO, 1, 2);
    let text = render(&m);
    assert_eq!(
        value(
            &text,
            "shardgate_bytes_sent_total{route=\"we\\\"ird\\\\route\\nname\"}"
        ),
        "2"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("ird")).count(),
        5 + 17 + 3
    );
}

#[test]
fn get_or_create_hands_out_the_same_series() {
    let m = Metrics::new(2);
    let a = m.route("api");
    assert!(Arc::ptr_eq(&a, &m.route("api")));
    assert!(!Arc::ptr_eq(&a, &m.route("web")));
    assert!(Arc::ptr_eq(&m.route(NO_ROUTE), &m.route("-")));
    let t = m.target("users", addr("127.0.0.1:80"));
    assert!(Arc::ptr_eq(&t, &m.target("users", addr("127.0.0.1:80"))));
    assert!(!Arc::ptr_eq(&t, &m.target("users", addr("127.0.0.1:81"))));
    assert!(!Arc::ptr_eq(&t, &m.target("admins", addr("127.0.0.1:80"))));
}

#[test]
fn counters_survive_a_snapshot_that_drops_them() {
    let m = Metrics::new(1);
    let before_reload = m.route("api");
    before_reload.record(0, 200, Duration::from_millis(1), 0, 0);
    drop(before_reload);
    // The next snapshot asks again and counts on.
    m.route("api")
        .record(0, 200, Duration::from_millis(1), 0, 0);
    let text = render(&m);
    assert_eq!(
        value(
            &text,
            "shardgate_requests_total{route=\"api\",class=\"2xx\"}"
        ),
        "2"
    );
}

#[test]
fn registry_is_shared_across_threads() {
    let m = Metrics::new(4);
    let handles: Vec<_> = (0..4)
        .map(|shard| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let r = m.route("api");
                for _ in 0..10_000 {
                    r.record(shard, 200, Duration::from_micros(10), 1, 1);
                }
                m.shard(shard).connection_opened();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let text = render(&m);
    assert_eq!(
        value(
            &text,
            "shardgate_requests_total{route=\"api\",class=\"2xx\"}"
        ),
        "40000"
    );
    assert_eq!(
        value(&text, "shardgate_bytes_sent_total{route=\"api\"}"),
        "40000"
    );
}

/// `promtool check metrics` (Debian's `prometheus` package) is the reference linter for the
/// format. Skipped, loudly, where it is not installed; CI installs it.
#[test]
fn promtool_accepts_the_exposition() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let m = populated();
    m.route("we\"ird\\route\nname")
        .record(1, 101, Duration::MAX, 0, 0);
    let mut text = String::new();
    m.render(
        &mut text,
        &ProcessInfo {
            draining: true,
            config_loaded_at: SystemTime::now(),
            ..info()
        },
    );
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "\n*** SKIPPED promtool_accepts_the_exposition: promtool is not installed \
                 (apt-get install prometheus) ***\n"
            );
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // Lint findings are printed even when the exit status is 0.
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(findings.trim().is_empty(), "promtool findings:\n{findings}");
}
