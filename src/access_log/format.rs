//! The two line formats, appended into a reused buffer with `itoa` and byte copies: no
//! `format!` and no allocation once the buffer has grown to a line's size.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::escape::{bare_field, json_string, quoted_field};
use super::timestamp::{self, three_digits};
use super::Entry;
use crate::config::AccessLogFormat;

/// Appends one line, `\n` included, in `format`.
pub fn line(format: AccessLogFormat, entry: &Entry<'_>, out: &mut Vec<u8>) {
    match format {
        AccessLogFormat::Json => json(entry, out),
        AccessLogFormat::Combined => combined(entry, out),
    }
}

/// One JSON object:
/// `{"time":"2026-11-21T06:24:19.123Z","client":"203.0.113.9",...,"user_agent":"curl/8.5.0"}`.
/// Empty fields are empty strings; a missing upstream is `null`.
pub fn json(e: &Entry<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    timestamp::rfc3339(out, e.time);
    out.extend_from_slice(b"\",\"client\":");
    json_string(e.client, out);
    out.extend_from_slice(b",\"method\":");
    json_string(e.method, out);
    out.extend_from_slice(b",\"target\":");
    json_string(e.target, out);
    out.extend_from_slice(b",\"version\":");
    json_string(e.version, out);
    out.extend_from_slice(b",\"host\":");
    json_string(e.host, out);
    out.extend_from_slice(b",\"status\":");
    integer(e.status, out);
    out.extend_from_slice(b",\"bytes_sent\":");
    integer(e.bytes_sent, out);
    out.extend_from_slice(b",\"bytes_received\":");
    integer(e.bytes_received, out);
    out.extend_from_slice(b",\"duration_ms\":");
    milliseconds(e.duration, out);
    out.extend_from_slice(b",\"upstream_duration_ms\":");
    match e.upstream_duration {
        Some(d) => milliseconds(d, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"upstream\":");
    match e.upstream_target {
        Some(addr) => {
            out.push(b'"');
            socket_addr(addr, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"upstream_tries\":");
    integer(e.upstream_tries, out);
    out.extend_from_slice(b",\"route\":");
    json_string(e.route.as_bytes(), out);
    out.extend_from_slice(b",\"request_id\":");
    json_string(e.request_id, out);
    out.extend_from_slice(b",\"referer\":");
    json_string(e.referer, out);
    out.extend_from_slice(b",\"user_agent\":");
    json_string(e.user_agent, out);
    out.extend_from_slice(b"}\n");
}

/// nginx's `combined` with Shardgate's fields after it, as nginx users usually add them:
/// `203.0.113.9 - - [21/Nov/2026:06:24:19 +0000] "GET /a?b=1 HTTP/1.1" 200 512 "-" "curl/8.5.0"
/// rt=0.003 urt=0.002 upstream=10.0.0.7:8080 tries=1 route=api id=4bf92f35`. Empty fields are `-`; times are seconds with
/// millisecond resolution, like `$request_time` and `$upstream_response_time`.
pub fn combined(e: &Entry<'_>, out: &mut Vec<u8>) {
    bare_field(e.client, out);
    out.extend_from_slice(b" - - [");
    timestamp::clf(out, e.time);
    out.extend_from_slice(b"] \"");
    quoted_field(e.method, out);
    out.push(b' ');
    quoted_field(e.target, out);
    out.push(b' ');
    quoted_field(e.version, out);
    out.extend_from_slice(b"\" ");
    integer(e.status, out);
    out.push(b' ');
    integer(e.bytes_sent, out);
    out.extend_from_slice(b" \"");
    quoted_field(e.referer, out);
    out.extend_from_slice(b"\" \"");
    quoted_field(e.user_agent, out);
    out.extend_from_slice(b"\" rt=");
    seconds(e.duration, out);
    out.extend_from_slice(b" urt=");
    match e.upstream_duration {
        Some(d) => seconds(d, out),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" upstream=");
    match e.upstream_target {
        Some(addr) => socket_addr(addr, out),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" tries=");
    match e.upstream_tries {
        0 => out.push(b'-'),
        n => integer(n, out),
    }
    out.extend_from_slice(b" route=");
    bare_field(e.route.as_bytes(), out);
    out.extend_from_slice(b" id=");
    bare_field(e.request_id, out);
    out.push(b'\n');
}

fn integer(n: impl itoa::Integer, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `3.042`: milliseconds with microsecond precision.
fn milliseconds(d: Duration, out: &mut Vec<u8>) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    integer(micros / 1000, out);
    out.push(b'.');
    three_digits(out, (micros % 1000) as u32);
}

/// `0.003`: seconds with millisecond precision, truncated as nginx does.
fn seconds(d: Duration, out: &mut Vec<u8>) {
    integer(d.as_secs(), out);
    out.push(b'.');
    three_digits(out, d.subsec_millis());
}

fn socket_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            integer(a, out);
            out.push(b'.');
            integer(b, out);
            out.push(b'.');
            integer(c, out);
            out.push(b'.');
            integer(d, out);
            out.push(b':');
            integer(v4.port(), out);
        }
        // `[2001:db8::1]:8080`: zero compression is `Display`'s job; writing into a `Vec`
        // cannot fail and does not allocate beyond the line's growth.
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
    use std::time::UNIX_EPOCH;

    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_795_242_259_123),
            client: b"203.0.113.9",
            method: b"GET",
            target: b"/v1/users?id=7",
            version: b"HTTP/1.1",
            host: b"api.example.com",
            status: 200,
            bytes_sent: 512,
            bytes_received: 87,
            duration: Duration::from_micros(3_042),
            upstream_duration: Some(Duration::from_micros(2_500)),
            upstream_target: Some(SocketAddr::from((Ipv4Addr::new(10, 0, 0, 7), 8080))),
            upstream_tries: 1,
            route: "users",
            request_id: b"4bf92f3577b34da6",
            referer: b"https://example.com/",
            user_agent: b"curl/8.5.0",
        }
    }

    fn render(f: fn(&Entry<'_>, &mut Vec<u8>), e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        f(e, &mut out);
        String::from_utf8(out).expect("lines are UTF-8")
    }

    #[test]
    fn json_line() {
        assert_eq!(
            render(json, &entry()),
            concat!(
                r#"{"time":"2026-11-21T06:24:19.123Z","client":"203.0.113.9","method":"GET","#,
                r#""target":"/v1/users?id=7","version":"HTTP/1.1","host":"api.example.com","#,
                r#""status":200,"bytes_sent":512,"bytes_received":87,"duration_ms":3.042,"#,
                r#""upstream_duration_ms":2.500,"upstream":"10.0.0.7:8080","upstream_tries":1,"route":"users","#,
                r#""request_id":"4bf92f3577b34da6","referer":"https://example.com/","#,
                r#""user_agent":"curl/8.5.0"}"#,
                "\n"
            )
        );
    }

    /// A request that never reached an upstream: nulls, empty strings, `-` for the method.
    #[test]
    fn json_line_without_upstream() {
        let e = Entry {
            method: b"-",
            target: b"",
            version: b"",
            host: b"",
            status: 400,
            bytes_sent: 0,
            bytes_received: 12,
            duration: Duration::from_nanos(999),
            upstream_duration: None,
            upstream_target: None,
            upstream_tries: 0,
            route: "-",
            request_id: b"",
            referer: b"",
            user_agent: b"",
            ..entry()
        };
        assert_eq!(
            render(json, &e),
            concat!(
                r#"{"time":"2026-11-21T06:24:19.123Z","client":"203.0.113.9","method":"-","#,
                r#""target":"","version":"","host":"","status":400,"bytes_sent":0,"#,
                r#""bytes_received":12,"duration_ms":0.000,"upstream_duration_ms":null,"#,
                r#""upstream":null,"upstream_tries":0,"route":"-","request_id":"","referer":"","user_agent":""}"#,
                "\n"
            )
        );
    }

    /// Whatever the bytes, the line parses as JSON and every string round-trips to the text a
    /// Latin-1 reading of the invalid bytes gives.
    #[test]
    fn json_lines_always_parse() {
        let nasty: Vec<u8> = (0..=255u8).chain("€\"\\".bytes()).collect();
        let e = Entry {
            target: &nasty,
            user_agent: &nasty,
            request_id: b"\xff\"",
            ..entry()
        };
        let line = render(json, &e);
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value["request_id"], "\u{ff}\"");
        let want: String = nasty[..256]
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            + "€\"\\";
        assert_eq!(value["target"], want.as_str());
        assert_eq!(value["duration_ms"], 3.042);
        assert_eq!(value["status"], 200);
    }

    #[test]
    fn combined_line() {
        assert_eq!(
            render(combined, &entry()),
            concat!(
                r#"203.0.113.9 - - [21/Nov/2026:06:24:19 +0000] "GET /v1/users?id=7 HTTP/1.1" "#,
                r#"200 512 "https://example.com/" "curl/8.5.0" rt=0.003 urt=0.002 upstream=10.0.0.7:8080 tries=1 route=users "#,
                "id=4bf92f3577b34da6\n"
            )
        );
    }

    #[test]
    fn combined_line_with_empty_fields() {
        let e = Entry {
            method: b"-",
            target: b"",
            version: b"",
            status: 400,
            bytes_sent: 0,
            duration: Duration::from_millis(1_250),
            upstream_duration: None,
            upstream_target: None,
            upstream_tries: 0,
            route: "-",
            request_id: b"",
            referer: b"",
            user_agent: b"",
            ..entry()
        };
        assert_eq!(
            render(combined, &e),
            concat!(
                r#"203.0.113.9 - - [21/Nov/2026:06:24:19 +0000] "- - -" 400 0 "-" "-" "#,
                "rt=1.250 urt=- upstream=- tries=- route=- id=-\n"
            )
        );
    }

    /// nginx's `escape=default`: `"` is `\x22`, `\` is `\x5C`, control and non-ASCII bytes
    /// are `\xXX`; unquoted fields escape a space too.
    #[test]
    fn combined_escaping() {
        let e = Entry {
            target: b"/a\"b\\c",
            referer: b"x\" y",
            user_agent: "Mozilla/5.0 (ü)\t\x7f".as_bytes(),
            request_id: b"id with space",
            route: "r\"1",
            ..entry()
        };
        assert_eq!(
            render(combined, &e),
            concat!(
                r#"203.0.113.9 - - [21/Nov/2026:06:24:19 +0000] "GET /a\x22b\x5Cc HTTP/1.1" "#,
                r#"200 512 "x\x22 y" "Mozilla/5.0 (\xC3\xBC)\x09\x7F" rt=0.003 urt=0.002 upstream=10.0.0.7:8080 "#,
                r#"tries=1 route=r\x221 id=id\x20with\x20space"#,
                "\n"
            )
        );
    }

    #[test]
    fn ipv6_upstream() {
        let addr = SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            443,
            0,
            0,
        ));
        let e = Entry {
            client: b"2001:db8::9",
            upstream_target: Some(addr),
            upstream_tries: 2,
            ..entry()
        };
        let line = render(json, &e);
        assert!(line.contains(r#""client":"2001:db8::9""#), "{line}");
        assert!(line.contains(r#""upstream":"[2001:db8::1]:443""#), "{line}");
    }

    #[test]
    fn long_durations() {
        let e = Entry {
            duration: Duration::from_secs(3_600) + Duration::from_micros(1),
            upstream_duration: Some(Duration::from_secs(59) + Duration::from_micros(999_999)),
            ..entry()
        };
        let line = render(json, &e);
        assert!(line.contains(r#""duration_ms":3600000.001,"#), "{line}");
        assert!(
            line.contains(r#""upstream_duration_ms":59999.999,"#),
            "{line}"
        );
        let line = render(combined, &e);
        assert!(line.contains(" rt=3600.000 urt=59.999 "), "{line}");
    }
}
