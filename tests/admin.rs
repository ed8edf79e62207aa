//! The admin listener: `/healthz`, `/config`, and `/metrics` in the
//! Prometheus text format (checked by promtool), with counters keyed by route
//! and target so they carry on across reloads.

mod common;

use common::*;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// Every series family the contract names, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("shardgate_reloads_total", "counter"),
    ("shardgate_requests_total", "counter"),
    ("shardgate_request_duration_seconds", "histogram"),
    ("shardgate_config_info", "gauge"),
    ("shardgate_connections_active", "gauge"),
    ("shardgate_connections_total", "counter"),
    ("shardgate_upstream_requests_total", "counter"),
    ("shardgate_upstream_errors_total", "counter"),
    ("shardgate_access_log_dropped_total", "counter"),
    ("shardgate_draining", "gauge"),
];

/// Route "api" (`/api/...`) to `origin`, route "dead" (`/dead`) to a target
/// nothing listens on, route "hello" answered directly.
fn conf(driver: &str, admin: SocketAddr, origin: &Origin, dead: SocketAddr) -> Conf {
    Conf::new(driver)
        .admin(admin)
        .upstream("o", &[origin.addr()])
        .upstream("gone", &[dead])
        .route("api", "path_prefix = \"/api\"\nupstream = \"o\"")
        .route("dead", "path = \"/dead\"\nupstream = \"gone\"")
        .direct("hello", "path = \"/hello\"", "hello")
}

fn requests(admin: &Admin, route: &str, class: &str) -> f64 {
    admin
        .metric(
            "shardgate_requests_total",
            &[("route", route), ("class", class)],
        )
        .unwrap_or(0.0)
}

/// Waits until `read` reaches at least `want`, then returns its value.
fn reaches(what: &str, want: f64, read: impl Fn() -> f64) -> f64 {
    eventually(&format!("{what} >= {want}"), || {
        let v = read();
        (v >= want).then_some(v)
    })
}

#[test]
fn healthz_answers_200_while_serving() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = conf(driver, free_addr("127.0.0.1"), &origin, dead_addr()).start();
        let (status, _) = gw.admin().get("/healthz");
        assert_eq!(status, 200);
    });
}

#[test]
fn admin_endpoints_are_not_on_the_data_listener() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .admin(free_addr("127.0.0.1"))
            .direct("data", "", "data")
            .start();
        let admin = gw.admin();
        assert_ne!(admin.addr, gw.addr());
        for path in ["/healthz", "/metrics", "/config"] {
            let mut client = Client::connect(gw.addr());
            assert_eq!(client.get(path).body_str(), "data", "GET {path} on data");
        }
        let mut client = Client::connect(gw.addr());
        client.send(b"POST /reload HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(client.read_response().body_str(), "data");
    });
}

#[test]
fn config_reports_the_hash_that_metrics_report_before_and_after_a_reload() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let admin_addr = free_addr("127.0.0.1");
        let dead = dead_addr();
        let gw = conf(driver, admin_addr, &origin, dead).start();
        let admin = gw.admin();

        let mut hashes = Vec::new();
        for step in 0..2 {
            let json = admin.get_json("/config");
            let hash = json["hash"]
                .as_str()
                .unwrap_or_else(|| panic!("no string \"hash\" in {json}"))
                .to_string();
            assert!(
                hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "hash {hash:?} is not 16 hex digits"
            );
            assert!(
                !json["loaded_at"].is_null(),
                "no \"loaded_at\" in /config: {json}"
            );
            let routes: Vec<&str> = json["config"]["routes"]
                .as_array()
                .unwrap_or_else(|| panic!("no config.routes array in /config: {json}"))
                .iter()
                .filter_map(|r| r["name"].as_str())
                .collect();
            assert!(routes.contains(&"api"), "routes in /config: {routes:?}");
            assert_eq!(routes.contains(&"added"), step == 1, "{routes:?}");

            let metrics = admin.metrics();
            assert_eq!(
                label_values(&metrics, "shardgate_config_info", "hash"),
                std::slice::from_ref(&hash),
                "shardgate_config_info must carry the hash /config reports, and only it"
            );
            assert_eq!(
                metric(&metrics, "shardgate_config_info", &[("hash", &hash)]),
                Some(1.0)
            );
            hashes.push(hash);

            if step == 0 {
                gw.rewrite_config(
                    &conf(driver, admin_addr, &origin, dead)
                        .direct("added", "path = \"/added\"", "added")
                        .build(),
                );
                admin.reload_ok();
            }
        }
        assert_ne!(hashes[0], hashes[1], "another file, another hash");
    });
}

/// `promtool check metrics` on `text`: None when promtool is not installed.
fn promtool_check(text: &str) -> Option<(bool, String)> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[test]
fn metrics_are_prometheus_text_that_promtool_accepts() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let log = TempPath::new("access.log");
        let gw = conf(driver, free_addr("127.0.0.1"), &origin, dead_addr())
            .access_log("json", log.path())
            .start();
        let admin = gw.admin();
        // Something in every family: 2xx, 4xx, 5xx, direct, proxied, failed.
        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/api/x").status, 200);
        assert_eq!(client.get("/hello").status, 200);
        assert_eq!(client.get("/nowhere").status, 404);
        assert!(client.get("/dead").status >= 500);
        reaches("requests on route api", 1.0, || {
            requests(&admin, "api", "2xx")
        });

        let resp = admin.get_response("/metrics");
        assert_eq!(resp.status, 200);
        let content_type = resp.header("content-type").unwrap_or("");
        assert!(
            content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
            "Content-Type {content_type:?} is not the text format 0.0.4"
        );
        let text = resp.body_str();
        // Every line parses as a comment or a sample.
        let _ = metric(&text, "", &[]);
        for (name, kind) in FAMILIES {
            let type_line = format!("# TYPE {name} {kind}");
            assert!(
                text.lines().any(|l| l == type_line),
                "missing {type_line:?} in:\n{text}"
            );
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "missing # HELP for {name}"
            );
        }

        match promtool_check(&text) {
            Some((passed, said)) => {
                assert!(
                    passed,
                    "promtool check metrics failed:\n{said}\n---\n{text}"
                )
            }
            None => {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!!!!!!!\n!!!!!!!! promtool not installed: SKIPPING `promtool check metrics` \
                     (apt-get install prometheus)\n!!!!!!!!\n"
                );
            }
        }
    });
}

#[test]
fn request_counters_are_keyed_by_route_and_survive_a_reload() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let admin_addr = free_addr("127.0.0.1");
        let dead = dead_addr();
        let gw = conf(driver, admin_addr, &origin, dead).start();
        let admin = gw.admin();
        let target = origin.addr().to_string();
        let upstream_requests = || {
            admin
                .metric(
                    "shardgate_upstream_requests_total",
                    &[("upstream", "o"), ("target", &target)],
                )
                .unwrap_or(0.0)
        };

        let mut client = Client::connect(gw.addr());
        for i in 0..5 {
            assert_eq!(client.get(&format!("/api/{i}")).status, 200);
        }
        assert_eq!(client.get("/hello").status, 200);
        assert_eq!(
            reaches("api 2xx", 5.0, || requests(&admin, "api", "2xx")),
            5.0
        );
        assert_eq!(
            reaches("hello 2xx", 1.0, || requests(&admin, "hello", "2xx")),
            1.0
        );
        assert_eq!(requests(&admin, "api", "5xx"), 0.0);
        assert_eq!(reaches("upstream requests", 5.0, upstream_requests), 5.0);

        let metrics = admin.metrics();
        let buckets = histogram(&metrics, "api");
        assert_eq!(
            buckets.last().map(|(le, n)| (*le, *n)),
            Some((f64::INFINITY, 5.0)),
            "le=\"+Inf\" bucket of route api: {buckets:?}"
        );
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "buckets must be cumulative: {buckets:?}"
        );
        assert_eq!(
            metric(
                &metrics,
                "shardgate_request_duration_seconds_count",
                &[("route", "api")]
            ),
            Some(5.0)
        );
        assert!(
            metric(&metrics, "shardgate_connections_total", &[]).unwrap_or(0.0) >= 1.0,
            "connections_total over all shards"
        );
        assert!(
            metric(&metrics, "shardgate_connections_active", &[]).unwrap_or(0.0) >= 1.0,
            "one client connection is open"
        );

        gw.rewrite_config(
            &conf(driver, admin_addr, &origin, dead)
                .direct("added", "path = \"/added\"", "added")
                .build(),
        );
        admin.reload_ok();
        assert!(
            requests(&admin, "api", "2xx") >= 5.0,
            "the api counter went back after a reload"
        );
        assert!(upstream_requests() >= 5.0, "the target counter went back");
        assert_eq!(client.get("/api/after").status, 200);
        assert_eq!(
            reaches("api 2xx after the reload", 6.0, || requests(
                &admin, "api", "2xx"
            )),
            6.0,
            "the counter carries on across the reload"
        );
        assert_eq!(
            reaches("upstream requests after the reload", 6.0, upstream_requests),
            6.0
        );
    });
}

/// The `(le, count)` buckets of route `route`'s duration histogram, by le.
fn histogram(metrics: &str, route: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> =
        label_values(metrics, "shardgate_request_duration_seconds_bucket", "le")
            .into_iter()
            .map(|le| {
                let count = metric(
                    metrics,
                    "shardgate_request_duration_seconds_bucket",
                    &[("route", route), ("le", &le)],
                )
                .unwrap_or_else(|| panic!("no bucket le={le:?} for route {route:?}"));
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or_else(|_| panic!("bad le label {le:?}"))
                };
                (bound, count)
            })
            .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

#[test]
fn upstream_errors_and_4xx_5xx_classes_are_counted() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let dead = dead_addr();
        let gw = conf(driver, free_addr("127.0.0.1"), &origin, dead).start();
        let admin = gw.admin();
        let mut client = Client::connect(gw.addr());
        let status = client.get("/dead").status;
        assert!(status == 502 || status == 504, "to a dead target: {status}");

        let dead_target = dead.to_string();
        reaches("upstream errors of gone", 1.0, || {
            admin
                .metric(
                    "shardgate_upstream_errors_total",
                    &[("upstream", "gone"), ("target", &dead_target)],
                )
                .unwrap_or(0.0)
        });
        let metrics = admin.metrics();
        assert!(
            !label_values(&metrics, "shardgate_upstream_errors_total", "kind").is_empty(),
            "upstream errors carry a kind"
        );
        assert_eq!(
            metric(
                &metrics,
                "shardgate_requests_total",
                &[("route", "dead"), ("class", "5xx")]
            ),
            Some(1.0)
        );

        let mut client = Client::connect(gw.addr());
        assert_eq!(client.get("/nowhere").status, 404);
        reaches("4xx requests", 1.0, || {
            admin
                .metric("shardgate_requests_total", &[("class", "4xx")])
                .unwrap_or(0.0)
        });
    });
}

#[test]
fn metric_reader_reads_the_text_format() {
    let text = "# HELP x_total X.\n# TYPE x_total counter\n\
                x_total{shard=\"0\",route=\"a\\\"b\"} 2\n\
                x_total{shard=\"1\",route=\"a\\\"b\"} 3.5\n\
                x_total{shard=\"1\",route=\"c\"} 7\n\
                y_bucket{le=\"+Inf\"} 4 1700000000\n\
                z 1\n";
    assert_eq!(metric(text, "x_total", &[("route", "a\"b")]), Some(5.5));
    assert_eq!(metric(text, "x_total", &[]), Some(12.5));
    assert_eq!(metric(text, "x_total", &[("route", "d")]), None);
    assert_eq!(metric(text, "y_bucket", &[("le", "+Inf")]), Some(4.0));
    assert_eq!(metric(text, "z", &[]), Some(1.0));
    assert_eq!(label_values(text, "x_total", "shard"), ["0", "1"]);
}
