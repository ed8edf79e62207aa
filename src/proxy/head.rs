//! Writing the heads that cross the proxy: the request as the upstream sees it, and the
//! response as the client sees it. Hop-by-hop fields stop here (RFC 9110 §7.6.1); framing is
//! re-emitted from what was validated, never copied.

use crate::config::HostHeader;
use crate::http::answers::{field, reason};
use crate::http::headers::Kind;
use crate::http::request::{BodyFraming, Method, RequestHead, Version};
use crate::http::response::ResponseHead;

/// What the upstream-bound head needs besides the parsed request.
pub struct Forwarding<'a> {
    pub path: &'a [u8],
    pub host_header: &'a HostHeader,
    /// The target's Host value (`TargetRef::host`).
    pub target_host: &'a str,
    pub client_ip: &'a [u8],
    pub request_id: &'a [u8],
    pub via: bool,
}

pub fn upstream_request(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead, f: &Forwarding<'_>) {
    out.extend_from_slice(&buf[head.method_range.clone()]);
    out.push(b' ');
    if head.asterisk {
        out.push(b'*');
    } else {
        out.extend_from_slice(f.path);
        out.extend_from_slice(&buf[head.query.clone()]);
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    let client_host = &buf[head.host.clone()];
    match f.host_header {
        HostHeader::Preserve if !client_host.is_empty() => out.extend_from_slice(client_host),
        HostHeader::Preserve | HostHeader::Target => {
            out.extend_from_slice(f.target_host.as_bytes())
        }
        HostHeader::Literal(h) => out.extend_from_slice(h.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");

    let mut forwarded_for = false;
    let decrement_max_forwards = matches!(head.method, Method::Options | Method::Trace);
    for h in &head.fields {
        match h.kind {
            // Written below from what the gateway decided, never copied.
            Kind::Host
            | Kind::ContentLength
            | Kind::XForwardedProto
            | Kind::XForwardedHost
            | Kind::XRequestId => continue,
            Kind::XForwardedFor => {
                forwarded_for = true;
                continue;
            }
            Kind::Expect if head.expect_continue => continue,
            k if k.is_hop_by_hop() => continue,
            _ => {}
        }
        let name = h.name(buf);
        if head.connection.names(buf, name) {
            continue;
        }
        if h.kind == Kind::MaxForwards && decrement_max_forwards {
            // RFC 9110 §7.6.2; a zero was answered by the gateway before getting here.
            if let Some(n) = max_forwards(h.value(buf)) {
                field(
                    out,
                    name,
                    itoa::Buffer::new().format(n.saturating_sub(1)).as_bytes(),
                );
                continue;
            }
        }
        field(out, name, h.value(buf));
    }

    // Earlier proxies' X-Forwarded-For entries are kept, in order, with the client appended.
    out.extend_from_slice(b"X-Forwarded-For: ");
    if forwarded_for {
        for h in head.fields.iter().filter(|h| h.kind == Kind::XForwardedFor) {
            out.extend_from_slice(h.value(buf));
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(f.client_ip);
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: http\r\n");
    if !client_host.is_empty() {
        field(out, b"X-Forwarded-Host", client_host);
    }
    if f.via {
        field(out, b"Via", via_value(head.version));
    }
    field(out, b"X-Request-Id", f.request_id);
    match head.body {
        BodyFraming::None => {
            // A body-less POST still tells the upstream its length is zero, as nginx does,
            // so no upstream waits for a body that will never come.
            if matches!(head.method, Method::Post | Method::Put | Method::Patch) {
                out.extend_from_slice(b"Content-Length: 0\r\n");
            }
        }
        BodyFraming::Length(n) => field(
            out,
            b"Content-Length",
            itoa::Buffer::new().format(n).as_bytes(),
        ),
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response body reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// No body, or Content-Length copied from the upstream.
    AsIs,
    /// The upstream's chunked body, passed through.
    Chunked,
    /// A close-delimited upstream body, chunked for a 1.1 client so the connection survives.
    ChunkEach,
    /// Raw bytes until close: a 1.0 client, which cannot take chunked.
    UntilClose,
}

pub struct Responding<'a> {
    pub framing: ClientFraming,
    pub keep_alive: bool,
    pub client_version: Version,
    pub request_id: &'a [u8],
    pub date: &'a [u8],
    pub via: bool,
}

pub fn client_response(out: &mut Vec<u8>, ubuf: &[u8], resp: &ResponseHead, r: &Responding<'_>) {
    write_status(out, resp.status, &ubuf[resp.reason.clone()]);
    let mut has_date = false;
    let mut has_request_id = false;
    for h in &resp.fields {
        match h.kind {
            k if k.is_hop_by_hop() => continue,
            // Re-emitted once below from the validated value ("5, 5" or two lines become one).
            Kind::ContentLength => continue,
            _ => {}
        }
        let name = h.name(ubuf);
        // Connection may name end-to-end fields; it cannot take away the framing above.
        if resp.connection.names(ubuf, name) {
            continue;
        }
        match h.kind {
            Kind::Date => has_date = true,
            Kind::XRequestId => has_request_id = true,
            _ => {}
        }
        field(out, name, h.value(ubuf));
    }
    if r.framing == ClientFraming::AsIs {
        if let Some(n) = resp.content_length {
            field(
                out,
                b"Content-Length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
    }
    // RFC 9110 §6.6.1: a recipient with a clock adds Date when forwarding a response without one.
    if !has_date && !resp.is_interim() {
        field(out, b"Date", r.date);
    }
    if !has_request_id && !resp.is_interim() {
        field(out, b"X-Request-Id", r.request_id);
    }
    if r.via {
        field(out, b"Via", via_value(resp.version));
    }
    if matches!(r.framing, ClientFraming::Chunked | ClientFraming::ChunkEach) {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if !resp.is_interim() {
        if !r.keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if r.client_version == Version::Http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn write_status(out: &mut Vec<u8>, status: u16, upstream_reason: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    if upstream_reason.is_empty() {
        out.extend_from_slice(reason(status).as_bytes());
    } else {
        out.extend_from_slice(upstream_reason);
    }
    out.extend_from_slice(b"\r\n");
}

fn via_value(received: Version) -> &'static [u8] {
    match received {
        Version::Http10 => b"1.0 shardgate",
        Version::Http11 => b"1.1 shardgate",
    }
}

/// A Max-Forwards value (RFC 9110 §7.6.2: 1*DIGIT); None when it is not one.
pub fn max_forwards(value: &[u8]) -> Option<u32> {
    crate::http::headers::content_length(value)
        .filter(|_| !value.contains(&b','))
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}
