//! The admin listener over real sockets: every endpoint, the HTTP rules it keeps, and its
//! limits. A test thread plays the management side of the reload channel.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use serde_json::Value;

use super::*;
use crate::config::Config;
use crate::control::ReloadRequest;
use crate::snapshot::{Registry, Snapshot};

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]

[admin]
listen = "127.0.0.1:9901"

[[upstreams]]
name = "users"
targets = [{ addr = "127.0.0.1:9" }]

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "users"
headers = { "X-Api-Key" = "s3cret-value", "X-Env" = "prod" }
"#;

/// A guard against a hung test, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

struct Admin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    reloads: Receiver<ReloadRequest>,
}

fn start() -> Admin {
    start_with(Settings::default())
}

fn start_with(settings: Settings) -> Admin {
    let config = Config::parse(CONFIG).expect("test config is valid");
    let snapshot = Snapshot::build(
        config,
        "0123456789abcdef".into(),
        &mut Registry::new(crate::metrics::Metrics::new(1)),
        1,
    );
    let shared = Shared::new(snapshot);
    let metrics = Metrics::new(1);
    let (reload, reloads) = crossbeam_channel::unbounded();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ctx = AdminContext {
        shared: Arc::clone(&shared),
        metrics: Arc::clone(&metrics),
        reload,
        access_log_dropped: Arc::new(|| 42),
    };
    spawn_with(listener, ctx, settings).unwrap();
    Admin {
        addr,
        shared,
        metrics,
        reloads,
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, raw: &str) {
        self.stream.write_all(raw.as_bytes()).unwrap();
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).expect("read within patience");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// The next response; `bodyless` for an answer to HEAD.
    fn response(&mut self, bodyless: bool) -> Response {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = res.parse(&self.buf).unwrap() {
                let headers: Vec<(String, String)> = res
                    .headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8(h.value.to_vec()).unwrap();
                        (h.name.to_string(), value)
                    })
                    .collect();
                let status = res.code.unwrap();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .expect("every admin answer has Content-Length");
                let len = if bodyless { 0 } else { len };
                while self.buf.len() < n + len {
                    assert!(self.fill() > 0, "closed inside a body");
                }
                let body = String::from_utf8(self.buf[n..n + len].to_vec()).unwrap();
                self.buf.drain(..n + len);
                return Response {
                    status,
                    headers,
                    body,
                };
            }
            assert!(self.fill() > 0, "closed before a response");
        }
    }

    fn request(&mut self, method: &str, target: &str) -> Response {
        self.send(&format!(
            "{method} {target} HTTP/1.1\r\nHost: admin\r\n\r\n"
        ));
        self.response(method == "HEAD")
    }

    /// True once the server has closed its side (and nothing else arrived).
    fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }
}

fn get(addr: SocketAddr, target: &str) -> Response {
    Conn::open(addr).request("GET", target)
}

#[test]
fn healthz_is_ok_until_draining() {
    let admin = start();
    let r = get(admin.addr, "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("server"), Some("shardgate"));
    let date = r.header("date").expect("Date");
    httpdate::parse_http_date(date).expect("an HTTP date");

    admin.shared.start_draining();
    let r = get(admin.addr, "/healthz");
    assert_eq!((r.status, r.body.as_str()), (503, "draining\n"));
}

#[test]
fn metrics_is_the_prometheus_exposition() {
    let admin = start();
    admin
        .metrics
        .route("api")
        .record(0, 200, Duration::from_millis(3), 10, 20);
    let r = get(admin.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let version = env!("CARGO_PKG_VERSION");
    for line in [
        format!("shardgate_build_info{{version=\"{version}\"}} 1"),
        "shardgate_config_info{hash=\"0123456789abcdef\"} 1".to_string(),
        "shardgate_requests_total{route=\"api\",class=\"2xx\"} 1".to_string(),
        "shardgate_access_log_dropped_total 42".to_string(),
        "shardgate_draining 0".to_string(),
    ] {
        assert!(r.body.lines().any(|l| l == line), "{line} in:\n{}", r.body);
    }
    admin.shared.start_draining();
    let r = get(admin.addr, "/metrics");
    assert!(r.body.lines().any(|l| l == "shardgate_draining 1"));
}

#[test]
fn config_is_json_with_secrets_redacted() {
    let admin = start();
    let r = get(admin.addr, "/config");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["hash"], "0123456789abcdef");
    let loaded_at = admin.shared.snapshot.load().loaded_at;
    let secs = loaded_at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(v["loaded_at"], secs);
    let config = &v["config"];
    assert_eq!(config["server"]["listen"][0], "127.0.0.1:0");
    // Defaults are filled in: the file as parsed.
    assert_eq!(config["server"]["limits"]["keepalive_timeout"], "60s");
    assert_eq!(config["upstreams"][0]["name"], "users");
    // Targets as written in the config, and as addresses beside it.
    assert_eq!(config["upstreams"][0]["targets"][0]["addr"], "127.0.0.1:9");
    assert_eq!(v["targets"]["users"], serde_json::json!(["127.0.0.1:9"]));
    let headers = &config["routes"][0]["headers"];
    assert_eq!(headers["X-Api-Key"], "[redacted]");
    assert_eq!(headers["X-Env"], "prod");
    assert!(!r.body.contains("s3cret"), "{}", r.body);
}

#[test]
fn reload_answers_with_the_outcome() {
    let admin = start();
    let management = std::thread::spawn(move || {
        let first = admin.reloads.recv().unwrap();
        first
            .reply
            .send(Ok(vec!["server.workers: needs a restart".into()]))
            .unwrap();
        let second = admin.reloads.recv().unwrap();
        second
            .reply
            .send(Err(vec![
                "/etc/shardgate.toml: routes[0].upstream: no upstream named \"x\"".into(),
                "/etc/shardgate.toml: server.listen: empty".into(),
            ]))
            .unwrap();
    });
    let mut conn = Conn::open(admin.addr);
    let r = conn.request("POST", "/reload");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({ "status": "ok", "notes": ["server.workers: needs a restart"] })
    );
    // A body is read past, and the connection carries on.
    conn.send("POST /reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 2\r\n\r\n{}");
    let r = conn.response(false);
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errors"].as_array().unwrap().len(), 2);
    assert!(v["errors"][0]
        .as_str()
        .unwrap()
        .contains("routes[0].upstream"));
    management.join().unwrap();
}

#[test]
fn reload_without_an_answer_is_504() {
    let admin = start_with(Settings {
        reload_timeout: Duration::from_millis(200),
        ..Settings::default()
    });
    let r = Conn::open(admin.addr).request("POST", "/reload");
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["status"], "error");
    // The request reached the management side; it was just too slow.
    assert!(admin.reloads.try_recv().is_ok());
}

#[test]
fn reload_without_a_management_thread_is_503() {
    let admin = start();
    drop(admin.reloads);
    let r = Conn::open(admin.addr).request("POST", "/reload");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "error");
}

#[test]
fn head_is_get_without_the_body() {
    let admin = start();
    let mut conn = Conn::open(admin.addr);
    for path in ["/healthz", "/config", "/metrics"] {
        let got = conn.request("GET", path);
        let head = conn.request("HEAD", path);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-type"), got.header("content-type"));
        assert_eq!(
            head.header("content-length").unwrap(),
            got.body.len().to_string()
        );
    }
    // Framing held: the connection still answers.
    assert_eq!(conn.request("GET", "/healthz").status, 200);
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let admin = start();
    let mut conn = Conn::open(admin.addr);
    assert_eq!(conn.request("GET", "/nope").status, 404);
    assert_eq!(conn.request("GET", "/healthz/").status, 404);
    assert_eq!(conn.request("GET", "/healthz?verbose=1").status, 200);
    for (method, path, allow) in [
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
        ("PUT", "/config", "GET, HEAD"),
        ("GET", "/reload", "POST"),
        ("HEAD", "/reload", "POST"),
    ] {
        let r = conn.request(method, path);
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn keep_alive_pipelining_and_close() {
    let admin = start();
    let mut conn = Conn::open(admin.addr);
    conn.send(
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let a = conn.response(false);
    let b = conn.response(false);
    let c = conn.response(false);
    assert_eq!((a.status, b.status, c.status), (200, 404, 200));
    assert_eq!(a.header("connection"), None);
    assert_eq!(c.header("connection"), Some("close"));
    assert!(conn.closed());

    let mut old = Conn::open(admin.addr);
    old.send("GET /healthz HTTP/1.0\r\n\r\n");
    let r = old.response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(old.closed());
}

#[test]
fn malformed_and_oversized_requests() {
    let admin = start();
    let huge_head = format!(
        "GET /healthz HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(conn::MAX_HEAD_BYTES)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\n{}\r\n",
        (0..=conn::MAX_HEADERS)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let big_body = format!(
        "POST /reload HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        conn::MAX_BODY_BYTES + 1
    );
    for (raw, status) in [
        ("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        ("\x01\x02 nonsense\r\n\r\n", 400),
        (
            "POST /reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "POST /reload HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            400,
        ),
        ("POST /reload HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (huge_head.as_str(), 431),
        (many_headers.as_str(), 431),
        (big_body.as_str(), 413),
    ] {
        let mut conn = Conn::open(admin.addr);
        conn.send(raw);
        let r = conn.response(false);
        assert_eq!(r.status, status, "{raw:.60}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(conn.closed());
    }
    // None of that reached the management side.
    assert!(admin.reloads.try_recv().is_err());
}

#[test]
fn a_slow_client_delays_nobody_and_times_out() {
    let admin = start_with(Settings {
        io_timeout: Duration::from_millis(300),
        ..Settings::default()
    });
    let mut slow = Conn::open(admin.addr);
    slow.send("GET /heal");
    assert_eq!(get(admin.addr, "/healthz").status, 200);
    let r = slow.response(false);
    assert_eq!(r.status, 408);
    assert!(slow.closed());

    // An idle keep-alive connection is closed quietly.
    let mut idle = Conn::open(admin.addr);
    assert_eq!(idle.request("GET", "/healthz").status, 200);
    assert!(idle.closed());
}

#[test]
fn connections_past_the_cap_get_503() {
    let admin = start_with(Settings {
        max_connections: 1,
        ..Settings::default()
    });
    let mut first = Conn::open(admin.addr);
    // Answered, so its thread holds the only place.
    assert_eq!(first.request("GET", "/healthz").status, 200);

    let mut second = Conn::open(admin.addr);
    let r = second.response(false);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(second.closed());

    // The first connection still works; once it ends, its place is free again.
    assert_eq!(first.request("GET", "/healthz").status, 200);
    drop(first);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let r = get(admin.addr, "/healthz");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(
            std::time::Instant::now() < deadline,
            "the place never came back"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_public_spawn_serves() {
    let config = Config::parse(CONFIG).unwrap();
    let snapshot = Snapshot::build(
        config,
        "h".into(),
        &mut Registry::new(crate::metrics::Metrics::new(1)),
        1,
    );
    let (reload, _reloads) = crossbeam_channel::unbounded();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    spawn(
        listener,
        AdminContext {
            shared: Shared::new(snapshot),
            metrics: Metrics::new(2),
            reload,
            access_log_dropped: Arc::new(|| 0),
        },
    )
    .unwrap();
    assert_eq!(get(addr, "/healthz").status, 200);
}
