//! The admin listener from the outside: plain HTTP requests on a fresh
//! connection each, and a reader for the Prometheus text exposition.

use std::net::SocketAddr;
use std::time::Duration;

use super::client::{Client, Response};

/// How long an admin answer may take. `POST /reload` answers only once the
/// reload is done, which under load takes longer than a plain request.
pub const ADMIN_GUARD: Duration = Duration::from_secs(10);

/// The admin listener of one gateway.
#[derive(Clone, Copy, Debug)]
pub struct Admin {
    pub addr: SocketAddr,
}

impl Admin {
    pub fn new(addr: SocketAddr) -> Admin {
        Admin { addr }
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path)
    }

    /// `POST path` without a body: status and body.
    pub fn post(&self, path: &str) -> (u16, String) {
        self.request("POST", path)
    }

    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut client = Client::connect(self.addr);
        client.set_guard(ADMIN_GUARD);
        let body = if method == "POST" {
            "Content-Length: 0\r\n"
        } else {
            ""
        };
        client.send(
            format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n{body}Connection: close\r\n\r\n")
                .as_bytes(),
        );
        let resp = client
            .try_read_response()
            .unwrap_or_else(|e| panic!("admin {method} {path}: {e}"));
        (resp.status, resp.body_str())
    }

    /// `GET path` whose body must be JSON, with a 200 status.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        parse_json(&body, path)
    }

    /// `POST /reload`: the status and the JSON answer.
    pub fn reload(&self) -> (u16, serde_json::Value) {
        let (status, body) = self.post("/reload");
        (status, parse_json(&body, "POST /reload"))
    }

    /// `POST /reload` that must be applied: returns its `notes`.
    pub fn reload_ok(&self) -> Vec<String> {
        let (status, json) = self.reload();
        assert_eq!(status, 200, "POST /reload should apply: {json}");
        assert_eq!(json["status"], "ok", "POST /reload: {json}");
        strings(&json["notes"], "notes", &json)
    }

    /// `POST /reload` that must be refused: returns its `errors`.
    pub fn reload_refused(&self) -> Vec<String> {
        let (status, json) = self.reload();
        assert_eq!(status, 400, "POST /reload should be refused: {json}");
        assert_eq!(json["status"], "error", "POST /reload: {json}");
        let errors = strings(&json["errors"], "errors", &json);
        assert!(!errors.is_empty(), "a refusal without errors: {json}");
        errors
    }

    /// `GET path` as a full response (headers included).
    pub fn get_response(&self, path: &str) -> Response {
        let mut client = Client::connect(self.addr);
        client.set_guard(ADMIN_GUARD);
        client.send(
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        client
            .try_read_response()
            .unwrap_or_else(|e| panic!("admin GET {path}: {e}"))
    }

    /// The body of `GET /metrics` (which must answer 200).
    pub fn metrics(&self) -> String {
        let resp = self.get_response("/metrics");
        assert_eq!(resp.status, 200, "GET /metrics: {}", resp.body_str());
        resp.body_str()
    }

    /// One scrape, one value: see [`metric`].
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric(&self.metrics(), name, labels)
    }
}

fn parse_json(body: &str, what: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body:?}"))
}

fn strings(value: &serde_json::Value, key: &str, whole: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{key:?} is not an array in {whole}"))
        .iter()
        .map(|v| match v.as_str() {
            Some(s) => s.to_string(),
            None => v.to_string(),
        })
        .collect()
}

/// One sample of the text exposition: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// Every sample in a text exposition (comments and blank lines skipped).
/// Panics on a line that is not a sample: a malformed exposition is a
/// failure in its own right.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_sample(l).unwrap_or_else(|e| panic!("metrics line {l:?}: {e}")))
        .collect()
}

/// The value of metric `name` over the series whose labels include all of
/// `labels`, summed when several match (e.g. a counter over every shard).
/// None when no series matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples(text)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// The values label `label` takes across the series of metric `name`.
pub fn label_values(text: &str, name: &str, label: &str) -> Vec<String> {
    let mut values: Vec<String> = samples(text)
        .into_iter()
        .filter(|s| s.name == name)
        .filter_map(|s| {
            s.labels
                .into_iter()
                .find(|(k, _)| k == label)
                .map(|(_, v)| v)
        })
        .collect();
    values.sort();
    values.dedup();
    values
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after_brace)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

type Labels = Vec<(String, String)>;

/// Parses `k="v",k2="v2"}` (after the opening brace); returns the labels and
/// what follows the closing brace.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}
