//! Request head parsing and the RFC 9112 framing rules that decide where the body ends.
//!
//! `httparse` does the tokenising over the connection's buffer; this module turns its borrowed
//! result into offsets ([`RequestHead`]) so the head can stay in the buffer while the connection
//! awaits, and applies the rules httparse leaves to us: Host, Content-Length vs
//! Transfer-Encoding, versions, limits.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::headers::{self, ConnectionOptions, Field, Kind};
use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    Other,
}

impl Method {
    fn of(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: a request that may be sent twice with the effect of once.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// The limits that apply while a head is being read.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
}

/// A parsed request head: offsets into the buffer it was parsed from.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub method_range: Range<usize>,
    /// The path as sent (origin-form, or the path of an absolute-form target), without query.
    pub path: Range<usize>,
    /// `?query` including the `?`, or an empty range.
    pub query: Range<usize>,
    pub version: Version,
    pub fields: Vec<Field>,
    /// The authority used for routing: an absolute-form target's, else the Host field's.
    pub host: Range<usize>,
    pub body: BodyFraming,
    pub connection: ConnectionOptions,
    pub expect_continue: bool,
    /// `OPTIONS *`: the asterisk-form target (RFC 9112 §3.2.4).
    pub asterisk: bool,
    /// Bytes of the head, including the blank line.
    pub len: usize,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: Method::Get,
            method_range: 0..0,
            path: 0..0,
            query: 0..0,
            version: Version::Http11,
            fields: Vec::with_capacity(16),
            host: 0..0,
            body: BodyFraming::None,
            connection: ConnectionOptions::default(),
            expect_continue: false,
            asterisk: false,
            len: 0,
        }
    }
}

impl RequestHead {
    /// Whether the client wants the connection kept open after this exchange.
    pub fn keep_alive(&self) -> bool {
        self.connection.persistent(self.version)
    }

    /// Parses the head at the start of `buf`. `Ok(false)` means more bytes are needed; the
    /// caller has already checked nothing is over a limit by calling [`check_partial`].
    pub fn parse(&mut self, buf: &[u8], limits: &HeadLimits) -> Result<bool, ParseError> {
        // The header array lives only for this call, so its size never weighs on a connection's
        // future; MAX_HEADERS_CEILING bounds what the config can ask for.
        let mut raw: [MaybeUninit<httparse::Header<'_>>; crate::config::MAX_HEADERS_CEILING + 1] =
            [const { MaybeUninit::uninit() }; crate::config::MAX_HEADERS_CEILING + 1];
        let slots = &mut raw[..limits.max_headers + 1];
        let mut req = httparse::Request::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, buf, slots)
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(classify(e, buf, limits)),
        };
        if req.headers.len() > limits.max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        if len > limits.max_header_bytes {
            return Err(ParseError::HeadTooLarge);
        }
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };

        let method = req.method.unwrap_or("").as_bytes();
        let target = req.path.unwrap_or("").as_bytes();
        self.method = Method::of(method);
        self.method_range = offset(method);
        self.version = if req.version == Some(0) {
            Version::Http10
        } else {
            Version::Http11
        };
        self.len = len;
        self.fields.clear();
        self.connection.clear();
        self.expect_continue = false;
        self.asterisk = false;

        if method == b"CONNECT" {
            return Err(ParseError::MethodNotAllowed);
        }
        if target.len() > limits.max_uri_bytes {
            return Err(ParseError::UriTooLong);
        }

        let mut host = None;
        let mut hosts = 0;
        let mut length = None;
        let mut chunked = false;
        let mut transfer_encoding = false;
        for h in req.headers.iter() {
            let field = Field {
                name: offset(h.name.as_bytes()),
                value: offset(h.value),
                kind: Kind::of(h.name.as_bytes()),
            };
            match field.kind {
                Kind::Host => {
                    hosts += 1;
                    host = Some(field.value.clone());
                }
                Kind::ContentLength => {
                    let n = headers::content_length(h.value).ok_or(ParseError::BadContentLength)?;
                    if length.is_some_and(|prev| prev != n) {
                        return Err(ParseError::BadContentLength);
                    }
                    length = Some(n);
                }
                Kind::TransferEncoding => {
                    transfer_encoding = true;
                    // Every coding but a final chunked is refused, so the only acceptable
                    // value is a single `chunked` across all Transfer-Encoding lines.
                    for coding in headers::list(h.value) {
                        if chunked {
                            return Err(ParseError::BadTransferEncoding);
                        }
                        if coding.eq_ignore_ascii_case(b"chunked") {
                            chunked = true;
                        } else {
                            return Err(ParseError::UnsupportedTransferCoding);
                        }
                    }
                }
                Kind::Connection => self.connection.add(buf, field.value.clone()),
                // RFC 9110 §10.1.1: a 1.0 client's Expect is ignored.
                Kind::Expect if self.version == Version::Http11 => {
                    if headers::trim(h.value).eq_ignore_ascii_case(b"100-continue") {
                        self.expect_continue = true;
                    } else {
                        return Err(ParseError::ExpectationFailed);
                    }
                }
                _ => {}
            }
            self.fields.push(field);
        }

        // RFC 9112 §3.2: a 1.1 request needs exactly one Host; two are a 400 in any version.
        if hosts > 1 || (hosts == 0 && self.version == Version::Http11) {
            return Err(ParseError::BadHost);
        }
        if let Some(h) = &host {
            if !valid_authority(&buf[h.clone()]) {
                return Err(ParseError::BadHost);
            }
        }

        // The request target (RFC 9112 §3.2). It has no fragment: a `#` would let a path
        // slip past a route that guards it, so it is refused as Envoy and HAProxy do.
        if target.contains(&b'#') {
            return Err(ParseError::BadTarget);
        }
        let target_range = offset(target);
        let (path_start, authority) = if target.first() == Some(&b'/') {
            (target_range.start, None)
        } else if target == b"*" {
            if self.method != Method::Options {
                return Err(ParseError::BadTarget);
            }
            self.asterisk = true;
            (target_range.start, None)
        } else if let Some(rest) = strip_scheme(target) {
            // absolute-form: its authority replaces Host for routing (RFC 9112 §3.2.2).
            let auth_len = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            let auth_start = target_range.end - rest.len();
            if auth_len == 0 || !valid_authority(&rest[..auth_len]) {
                return Err(ParseError::BadTarget);
            }
            (
                auth_start + auth_len,
                Some(auth_start..auth_start + auth_len),
            )
        } else {
            return Err(ParseError::BadTarget);
        };
        let query_start = buf[path_start..target_range.end]
            .iter()
            .position(|&b| b == b'?')
            .map_or(target_range.end, |i| path_start + i);
        self.path = path_start..query_start;
        self.query = query_start..target_range.end;
        self.host = authority.or(host).unwrap_or(0..0);

        // RFC 9112 §6.1 and §6.3: Transfer-Encoding and Content-Length together are a
        // smuggling vector; a 1.0 message with Transfer-Encoding has faulty framing.
        self.body = match (transfer_encoding, length) {
            (true, Some(_)) => return Err(ParseError::BothLengthAndChunked),
            (true, None) if self.version == Version::Http10 => {
                return Err(ParseError::BadTransferEncoding)
            }
            (true, None) if !chunked => return Err(ParseError::BadTransferEncoding),
            (true, None) => BodyFraming::Chunked,
            (false, Some(0)) | (false, None) => BodyFraming::None,
            (false, Some(n)) => BodyFraming::Length(n),
        };
        Ok(true)
    }
}

/// Checks an incomplete head against the limits, so an oversized request line or head is
/// refused as soon as it is visible instead of after the client sent all of it.
pub fn check_partial(buf: &[u8], limits: &HeadLimits) -> Result<(), ParseError> {
    // Leading empty lines are allowed before the request line (RFC 9112 §2.2).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    // Method, two spaces and "HTTP/1.1\r\n" around the target.
    let line_limit = limits.max_uri_bytes + 32;
    match line.iter().position(|&b| b == b'\n') {
        None if line.len() > line_limit => return Err(ParseError::UriTooLong),
        Some(end) if end > line_limit => return Err(ParseError::UriTooLong),
        _ => {}
    }
    if buf.len() >= limits.max_header_bytes {
        return Err(ParseError::HeadTooLarge);
    }
    Ok(())
}

/// Turns an httparse error into the answer the client gets.
fn classify(e: httparse::Error, buf: &[u8], limits: &HeadLimits) -> ParseError {
    match e {
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::Version => {
            // "HTTP/2.0", "HTTP/3.0", the h2 preface: a version we don't speak (505). A line
            // that is not `method SP target SP version` at all is just a bad request.
            let start = buf
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(buf.len());
            let line = &buf[start..];
            let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
            let line = line[..end].strip_suffix(b"\r").unwrap_or(&line[..end]);
            let mut parts = line.split(|&b| b == b' ');
            let shaped = (parts.next(), parts.next(), parts.next(), parts.next());
            match shaped {
                (Some(m), Some(t), Some(version), None) if !m.is_empty() && !t.is_empty() => {
                    match version {
                        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                            if major.is_ascii_digit() && minor.is_ascii_digit() =>
                        {
                            ParseError::VersionNotSupported
                        }
                        _ => ParseError::Malformed,
                    }
                }
                _ => ParseError::Malformed,
            }
        }
        httparse::Error::Token if check_partial(buf, limits).is_err() => ParseError::UriTooLong,
        _ => ParseError::Malformed,
    }
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    if scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https") {
        target[colon..].strip_prefix(b"://")
    } else {
        None
    }
}

/// `host[:port]` as RFC 3986 allows it in Host: reg-name, IPv4 or a bracketed IPv6 literal.
/// Userinfo (`@`) is refused: it has no place in Host and is a classic routing confusion.
fn valid_authority(v: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &rest[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&b""[..], port),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &b""[..]),
        }
    };
    let host_ok = host.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    });
    host_ok && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_headers: 8,
        max_header_bytes: 1024,
        max_uri_bytes: 64,
    };

    fn parse(raw: &[u8]) -> Result<RequestHead, ParseError> {
        let mut head = RequestHead::default();
        check_partial(raw, &LIMITS)?;
        match head.parse(raw, &LIMITS)? {
            true => Ok(head),
            false => panic!("incomplete: {:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
        let h = parse(raw).unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(&raw[h.path.clone()], b"/a/b");
        assert_eq!(&raw[h.query.clone()], b"?x=1");
        assert_eq!(&raw[h.host.clone()], b"example.com:8080");
        assert_eq!(h.body, BodyFraming::None);
        assert!(h.keep_alive());
        assert_eq!(h.len, raw.len());
    }

    #[test]
    fn absolute_form_authority_wins_over_host() {
        let raw = b"GET http://api.example.com/x?q HTTP/1.1\r\nHost: other\r\n\r\n";
        let h = parse(raw).unwrap();
        assert_eq!(&raw[h.host.clone()], b"api.example.com");
        assert_eq!(&raw[h.path.clone()], b"/x");
        assert_eq!(&raw[h.query.clone()], b"?q");
        let raw = b"GET http://api.example.com HTTP/1.1\r\nHost: other\r\n\r\n";
        let h = parse(raw).unwrap();
        assert_eq!(&raw[h.path.clone()], b"");
    }

    #[test]
    fn framing_rules() {
        use ParseError::*;
        let cases: &[(&[u8], Result<BodyFraming, ParseError>)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", Ok(BodyFraming::Length(5))),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Ok(BodyFraming::Length(5))),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Err(BadContentLength)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", Err(BadContentLength)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Ok(BodyFraming::Chunked)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", Ok(BodyFraming::Chunked)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Err(BothLengthAndChunked)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Err(BadTransferEncoding)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Err(BadTransferEncoding)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Err(UnsupportedTransferCoding)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", Err(BadTransferEncoding)),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Err(BadTransferEncoding)),
        ];
        for (raw, want) in cases {
            let got = parse(raw).map(|h| h.body);
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn rejects_bad_heads() {
        use ParseError::*;
        let cases: &[(&[u8], ParseError)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", BadHost),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n",
                Malformed,
            ),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", Malformed),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", VersionNotSupported),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", VersionNotSupported),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", VersionNotSupported),
            (b"GET / FOO/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (
                b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
                MethodNotAllowed,
            ),
            (b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            (b"GET /admin#x HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",
                ExpectationFailed,
            ),
        ];
        for (raw, want) in cases {
            let got = parse(raw).map(|_| ());
            assert_eq!(got, Err(*want), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
        assert_eq!(parse(long.as_bytes()).err(), Some(ParseError::UriTooLong));
        // Detected before the line is complete.
        let partial = format!("GET /{}", "a".repeat(200));
        assert_eq!(
            check_partial(partial.as_bytes(), &LIMITS),
            Err(ParseError::UriTooLong)
        );
        let many: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(
            parse(raw.as_bytes()).err(),
            Some(ParseError::TooManyHeaders)
        );
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "v".repeat(1100));
        assert_eq!(
            check_partial(big.as_bytes(), &LIMITS),
            Err(ParseError::HeadTooLarge)
        );
    }

    #[test]
    fn http10_keep_alive_and_expect() {
        let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive());
        let h = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(h.keep_alive());
        let h = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!h.keep_alive());
        let h = parse(
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        assert!(h.expect_continue);
        // RFC 9110 §10.1.1: a 1.0 client's Expect is ignored.
        let h =
            parse(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert!(!h.expect_continue);
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let raw = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = parse(raw).unwrap();
        assert_eq!(&raw[h.method_range.clone()], b"GET");
    }
}
