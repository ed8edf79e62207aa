//! Header fields the proxy treats specially, classified once at parse time so the forwarding
//! code matches on an enum instead of comparing names again.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    // Hop-by-hop fields (RFC 9110 §7.6.1) that are always dropped when forwarding.
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Via,
    XRequestId,
    Date,
    Server,
    MaxForwards,
    // Read for the access log.
    Referer,
    UserAgent,
}

impl Kind {
    pub fn of(name: &[u8]) -> Kind {
        // Dispatch on length first: most names are rejected by one integer compare.
        let is = |lit: &[u8]| name.eq_ignore_ascii_case(lit);
        match name.len() {
            2 if is(b"te") => Kind::Te,
            3 if is(b"via") => Kind::Via,
            4 if is(b"host") => Kind::Host,
            4 if is(b"date") => Kind::Date,
            6 if is(b"expect") => Kind::Expect,
            6 if is(b"server") => Kind::Server,
            7 if is(b"trailer") => Kind::Trailer,
            7 if is(b"referer") => Kind::Referer,
            7 if is(b"upgrade") => Kind::Upgrade,
            10 if is(b"connection") => Kind::Connection,
            10 if is(b"keep-alive") => Kind::KeepAlive,
            10 if is(b"user-agent") => Kind::UserAgent,
            12 if is(b"x-request-id") => Kind::XRequestId,
            12 if is(b"max-forwards") => Kind::MaxForwards,
            14 if is(b"content-length") => Kind::ContentLength,
            15 if is(b"x-forwarded-for") => Kind::XForwardedFor,
            16 if is(b"proxy-connection") => Kind::ProxyConnection,
            16 if is(b"x-forwarded-host") => Kind::XForwardedHost,
            17 if is(b"transfer-encoding") => Kind::TransferEncoding,
            17 if is(b"x-forwarded-proto") => Kind::XForwardedProto,
            _ => Kind::Other,
        }
    }

    /// Fields that describe one connection and never cross the proxy (RFC 9110 §7.6.1).
    /// Content-Length is not among them: it is re-emitted from the validated framing.
    pub fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Kind::Connection
                | Kind::KeepAlive
                | Kind::ProxyConnection
                | Kind::Te
                | Kind::Trailer
                | Kind::Upgrade
                | Kind::TransferEncoding
        )
    }
}

/// A header field as offsets into the connection's read buffer.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
    pub kind: Kind,
}

impl Field {
    pub fn name<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.name.clone()]
    }
    pub fn value<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.value.clone()]
    }
}

/// Splits a comma-separated field value into trimmed, non-empty elements (RFC 9110 §5.6.1).
pub fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|e| !e.is_empty())
}

pub fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Parses a Content-Length value: 1*DIGIT, or a list of identical ones (RFC 9112 §6.3 rule 5
/// allows a recipient to accept `5, 5`). Anything else is None.
pub fn content_length(value: &[u8]) -> Option<u64> {
    let mut found = None;
    for element in value.split(|&b| b == b',').map(trim) {
        if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // 1*DIGIT allows any zero padding; 19 significant digits always fit in a u64.
        let significant = element
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(element.len() - 1);
        let element = &element[significant..];
        if element.len() > 19 {
            return None;
        }
        let n = element
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        match found {
            Some(prev) if prev != n => return None,
            _ => found = Some(n),
        }
    }
    found
}

/// Names listed in a Connection field, which are hop-by-hop for this message.
#[derive(Debug, Default)]
pub struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    /// Offsets of other listed names; nearly always empty, so this never allocates in practice.
    pub extra: Vec<Range<usize>>,
}

impl ConnectionOptions {
    pub fn clear(&mut self) {
        self.close = false;
        self.keep_alive = false;
        self.extra.clear();
    }

    /// Records the options of one Connection field whose value sits at `value` in `buf`.
    pub fn add(&mut self, buf: &[u8], value: Range<usize>) {
        let base = value.start;
        let v = &buf[value];
        let mut start = 0;
        for part in v.split(|&b| b == b',') {
            let offset = start;
            start += part.len() + 1;
            let token = trim(part);
            if token.is_empty() {
                continue;
            }
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else {
                let lead = part.len() - part.trim_ascii_start().len();
                let s = base + offset + lead;
                self.extra.push(s..s + token.len());
            }
        }
    }

    /// RFC 9112 §9.3: HTTP/1.1 connections persist unless `close` is listed; HTTP/1.0 ones
    /// only when `keep-alive` is.
    pub fn persistent(&self, version: super::request::Version) -> bool {
        match version {
            super::request::Version::Http11 => !self.close,
            super::request::Version::Http10 => self.keep_alive && !self.close,
        }
    }

    /// Whether `name` was listed, so the field it names is hop-by-hop too.
    pub fn names(&self, buf: &[u8], name: &[u8]) -> bool {
        self.extra
            .iter()
            .any(|r| buf[r.clone()].eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_case_insensitively() {
        assert_eq!(Kind::of(b"Content-Length"), Kind::ContentLength);
        assert_eq!(Kind::of(b"TRANSFER-ENCODING"), Kind::TransferEncoding);
        assert_eq!(Kind::of(b"x-forwarded-for"), Kind::XForwardedFor);
        assert_eq!(Kind::of(b"User-Agent"), Kind::UserAgent);
        assert_eq!(Kind::of(b"referer"), Kind::Referer);
        assert_eq!(Kind::of(b"content-type"), Kind::Other);
        assert!(Kind::of(b"Keep-Alive").is_hop_by_hop());
        assert!(!Kind::of(b"Content-Length").is_hop_by_hop());
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"000"), Some(0));
        assert_eq!(content_length(b"00000000000000000005"), Some(5));
        assert_eq!(content_length(b"42"), Some(42));
        assert_eq!(content_length(b"42, 42"), Some(42));
        assert_eq!(content_length(b"42, 43"), None);
        assert_eq!(content_length(b"+42"), None);
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"4 2"), None);
        assert_eq!(content_length(b"0x10"), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
    }

    #[test]
    fn connection_options() {
        let buf = b"close, X-Secret ,keep-alive";
        let mut o = ConnectionOptions::default();
        o.add(buf, 0..buf.len());
        assert!(o.close && o.keep_alive);
        assert!(o.names(buf, b"x-secret"));
        assert!(!o.names(buf, b"x-other"));
    }
}
