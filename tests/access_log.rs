//! The access log: one line per request, as JSON or in the combined format,
//! written to a file that SIGUSR1 reopens (for logrotate).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

/// JSON keys every line carries.
const KEYS: &[&str] = &[
    "time",
    "client",
    "method",
    "target",
    "version",
    "host",
    "status",
    "bytes_sent",
    "bytes_received",
    "duration_ms",
    "upstream_duration_ms",
    "upstream",
    "route",
    "request_id",
    "referer",
    "user_agent",
];

/// Route "known" (`/known...`) proxied to `origin`, route "hello" answered
/// directly, an access log in `format` at `path`.
fn start(driver: &str, origin: &Origin, format: &str, path: &Path) -> Gateway {
    Conf::new(driver)
        .admin(free_addr("127.0.0.1"))
        .upstream("o", &[origin.addr()])
        .route("known", "path_prefix = \"/known\"\nupstream = \"o\"")
        .direct("hello", "path = \"/hello\"", "hello")
        .access_log(format, path)
        .start()
}

/// The complete lines of a file (a last line still being written is left
/// out); empty while the file does not exist.
fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The lines of a JSON access log, each of which must be a JSON object.
fn json_lines(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l:?}"));
            assert!(v.is_object(), "access log line is not an object: {l:?}");
            v
        })
        .collect()
}

fn lines_with_id(path: &Path, id: &str) -> usize {
    json_lines(path)
        .iter()
        .filter(|v| v["request_id"] == id)
        .count()
}

/// Waits (guarded) for the line of request `id` in `path`.
fn wait_json_line(path: &Path, id: &str) -> Value {
    eventually(
        &format!("access log line for request {id} in {}", path.display()),
        || json_lines(path).into_iter().find(|v| v["request_id"] == id),
    )
}

fn request_id(resp: &Response) -> String {
    resp.header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id in {:?}", resp.headers))
        .to_string()
}

fn number(line: &Value, key: &str) -> f64 {
    line[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key:?} is not a number in {line}"))
}

#[test]
fn a_known_request_makes_one_json_line() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let log = TempPath::new("access.log");
        let gw = start(driver, &origin, "json", log.path());
        let mut client = Client::connect(gw.addr());
        client.send(
            b"GET /known/x?q=1 HTTP/1.1\r\nHost: log.test\r\nUser-Agent: agent/1.0\r\n\
              Referer: https://ref.test/page\r\n\r\n",
        );
        let resp = client.read_response();
        assert_eq!(resp.status, 200);
        let id = request_id(&resp);

        let line = wait_json_line(log.path(), &id);
        for key in KEYS {
            assert!(line.get(key).is_some(), "no {key:?} in {line}");
        }
        for (key, want) in [
            ("method", "GET"),
            ("target", "/known/x?q=1"),
            ("version", "HTTP/1.1"),
            ("host", "log.test"),
            ("route", "known"),
            ("referer", "https://ref.test/page"),
            ("user_agent", "agent/1.0"),
        ] {
            assert_eq!(line[key], want, "{key} in {line}");
        }
        assert!(
            line["status"] == 200 || line["status"] == "200",
            "status in {line}"
        );
        assert!(
            line["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1")),
            "client in {line}"
        );
        assert!(
            line["upstream"]
                .as_str()
                .is_some_and(|u| u.contains(&origin.addr().to_string())),
            "upstream should name the target {} in {line}",
            origin.addr()
        );
        assert!(
            line["time"].as_str().is_some_and(|t| !t.is_empty()),
            "time in {line}"
        );
        assert!(
            number(&line, "bytes_sent") >= "/known/x?q=1".len() as f64,
            "bytes_sent in {line}"
        );
        number(&line, "bytes_received");
        let total = number(&line, "duration_ms");
        let upstream = number(&line, "upstream_duration_ms");
        assert!(total >= 0.0 && upstream >= 0.0, "durations in {line}");

        // A later request's line proves the first one was written only once.
        let later = request_id(&client.get("/hello"));
        let hello = wait_json_line(log.path(), &later);
        assert_eq!(hello["route"], "hello", "{hello}");
        assert_eq!(lines_with_id(log.path(), &id), 1, "lines for request {id}");
        assert_eq!(
            gw.admin().metric("shardgate_access_log_dropped_total", &[]),
            Some(0.0)
        );
    });
}

/// One combined-format line, as nginx writes it:
/// `client - user [time] "request" status bytes "referer" "user_agent"`,
/// then Shardgate's own fields as ` key=value` extras (nginx users add theirs
/// the same way): `rt= urt= upstream= route= id=`.
#[derive(Debug)]
struct Combined {
    client: String,
    user: String,
    time: String,
    request: String,
    status: u16,
    bytes: u64,
    referer: String,
    user_agent: String,
    extras: Vec<(String, String)>,
}

impl Combined {
    fn extra(&self, key: &str) -> Option<&str> {
        self.extras
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

fn parse_combined(line: &str) -> Option<Combined> {
    let (client, rest) = line.split_once(' ')?;
    let rest = rest.strip_prefix("- ")?;
    let (user, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('[')?;
    let (time, rest) = rest.split_once("] ")?;
    let (request, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (status, rest) = rest.split_once(' ')?;
    let (bytes, rest) = rest.split_once(' ')?;
    let (referer, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (user_agent, rest) = quoted(rest)?;
    // The NCSA fields come first, so combined-format tools read the line; the fields the
    // issue asks for beyond them follow as ` key=value` extras.
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let extras = rest
        .split_whitespace()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Combined {
        client: client.to_string(),
        user: user.to_string(),
        time: time.to_string(),
        request,
        status: status.parse().ok()?,
        bytes: bytes.parse().ok()?,
        referer,
        user_agent,
        extras,
    })
}

/// `10/Oct/2000:13:55:36 -0700`.
fn is_clf_time(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && b[3..6].iter().all(u8::is_ascii_alphabetic)
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && (b[21] == b'+' || b[21] == b'-')
        && digits(22..26)
}

#[test]
fn a_known_request_makes_one_combined_line() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let log = TempPath::new("access.log");
        let gw = start(driver, &origin, "combined", log.path());
        let mut client = Client::connect(gw.addr());
        client.send(
            b"GET /known/combined?q=1 HTTP/1.1\r\nHost: log.test\r\nUser-Agent: agent/1.0\r\n\
              Referer: https://ref.test/page\r\n\r\n",
        );
        let resp = client.read_response();
        assert_eq!(resp.status, 200);
        let known_id = request_id(&resp);
        // No referer, no user agent: both "-".
        let resp = client.get("/hello");
        assert_eq!(resp.status, 200);
        let hello_id = request_id(&resp);

        let find = |path_and_query: &str| {
            let needle = format!("\"GET {path_and_query} HTTP/1.1\"");
            eventually(&format!("a combined line for {path_and_query}"), || {
                lines(log.path()).into_iter().find(|l| l.contains(&needle))
            })
        };
        let raw = find("/known/combined?q=1");
        let line =
            parse_combined(&raw).unwrap_or_else(|| panic!("not in the combined format: {raw:?}"));
        assert!(line.client.starts_with("127.0.0.1"), "{raw:?}");
        assert_eq!(line.user, "-", "{raw:?}");
        assert!(is_clf_time(&line.time), "time {:?} in {raw:?}", line.time);
        assert_eq!(line.request, "GET /known/combined?q=1 HTTP/1.1");
        assert_eq!(line.status, 200);
        assert!(
            line.bytes >= "/known/combined?q=1".len() as u64,
            "bytes in {raw:?}"
        );
        assert_eq!(line.referer, "https://ref.test/page");
        assert_eq!(line.user_agent, "agent/1.0");
        let target = origin.addr().to_string();
        for (key, want) in [
            ("route", "known"),
            ("id", known_id.as_str()),
            ("upstream", target.as_str()),
        ] {
            assert_eq!(line.extra(key), Some(want), "{key}= in {raw:?}");
        }
        for key in ["rt", "urt"] {
            assert!(
                line.extra(key).is_some_and(|v| v.parse::<f64>().is_ok()),
                "{key}= is not a number of seconds in {raw:?}"
            );
        }

        let raw = find("/hello");
        let line =
            parse_combined(&raw).unwrap_or_else(|| panic!("not in the combined format: {raw:?}"));
        assert_eq!(
            (line.referer.as_str(), line.user_agent.as_str()),
            ("-", "-")
        );
        assert_eq!(line.status, 200);
        assert_eq!(line.extra("route"), Some("hello"), "{raw:?}");
        assert_eq!(line.extra("id"), Some(hello_id.as_str()), "{raw:?}");
        assert_eq!(
            line.extra("upstream"),
            Some("-"),
            "a direct answer: {raw:?}"
        );
    });
}

#[test]
fn sigusr1_reopens_the_log_file() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let log = TempPath::new("access.log");
        let gw = start(driver, &origin, "json", log.path());
        let mut client = Client::connect(gw.addr());
        let mut ids = vec![request_id(&client.get("/known/before"))];
        wait_json_line(log.path(), &ids[0]);

        // What logrotate does: move the file away, then signal.
        let rotated = log.rotated();
        std::fs::rename(log.path(), &rotated).unwrap();
        gw.signal(libc::SIGUSR1);
        // Requests until one lands in a new file at the original path.
        eventually("a line in a new file at the original path", || {
            ids.push(request_id(&client.get("/known/during")));
            (!json_lines(log.path()).is_empty()).then_some(())
        });
        let last = request_id(&client.get("/known/after"));
        ids.push(last.clone());
        wait_json_line(log.path(), &last);

        assert_eq!(lines_with_id(&rotated, &ids[0]), 1, "the rotated file");
        assert_eq!(lines_with_id(log.path(), &ids[0]), 0, "the new file");
        for id in &ids {
            assert_eq!(
                lines_with_id(&rotated, id) + lines_with_id(log.path(), id),
                1,
                "request {id}: one line across the rotated and the new file"
            );
        }
    });
}
