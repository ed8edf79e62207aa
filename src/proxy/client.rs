//! One client connection from accept to close.
//!
//! Between requests the connection holds no buffer: it waits for readability and borrows a
//! buffer from the shard only when bytes arrive, which keeps idle keep-alive connections cheap.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;
use monoio::time::Instant;

use super::body::RequestBody;
use super::io::{read_more, read_ready, write_range, IoError};
use super::{forward, Scratch};
use crate::config::Action;
use crate::http::answers::{self, Answer};
use crate::http::headers::{self, Field, Kind};
use crate::http::request::RequestHead;
use crate::http::request::{check_partial, BodyFraming, Method, Version};
use crate::http::{path, ParseError};
use crate::router::{HeaderLookup, RouteRequest};
use crate::shard::{Shard, Trigger};
use crate::shared::ConnectionSlot;
use crate::snapshot::Snapshot;

/// After an error answer, how long and how much the client may keep sending before the
/// socket is closed. Closing with unread data makes the kernel send a reset that can destroy
/// the answer before the client reads it (RFC 9112 §9.6).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// What happens to the connection after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request was consumed entirely; read the next one.
    KeepAlive,
    /// Close now.
    Close,
    /// Stop writing, drain what the client still sends for a while, then close.
    Linger,
}

pub struct Client {
    pub stream: TcpStream,
    /// The peer address as text, for X-Forwarded-For; formatted once per connection.
    ip: [u8; 46],
    ip_len: usize,
    /// Bytes read from the client. A request's head starts at 0 and stays in place until the
    /// exchange ends.
    pub buf: Vec<u8>,
    /// Fires when this connection's listener is removed or the process drains: the connection
    /// then closes when idle, or after its current response, which says `Connection: close`.
    stop: Trigger,
    /// Bytes written to the client on this connection, for metrics and the access log.
    sent: u64,
    /// A write to the client began and has not finished: if it is dropped now (a route
    /// timeout), the client holds part of a message and only a close can follow.
    writing: bool,
    /// How much of `buf` the finished exchange used. Dropped only after the exchange has been
    /// logged, since the log reads the head where it lies.
    pub consumed: usize,
    /// `send_timeout` of the snapshot serving the current request; every write to the client
    /// is bounded by it.
    send_timeout: Duration,
}

impl Client {
    /// Writes `buf[range]` to the client, within `send_timeout`.
    pub async fn send(&mut self, buf: &mut Vec<u8>, range: Range<usize>) -> Result<(), IoError> {
        let n = range.len() as u64;
        self.writing = true;
        write_range(&mut self.stream, buf, range, self.send_timeout).await?;
        self.writing = false;
        self.sent += n;
        Ok(())
    }

    pub async fn send_all(&mut self, buf: &mut Vec<u8>) -> Result<(), IoError> {
        let len = buf.len();
        self.send(buf, 0..len).await
    }

    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// Whether the connection carries another request after this one.
    pub fn keep_alive(&self, head: &RequestHead) -> bool {
        head.keep_alive() && !self.stop.fired()
    }

    pub fn ip(&self) -> &[u8] {
        &self.ip[..self.ip_len]
    }
}

pub async fn serve(
    shard: Rc<Shard>,
    stream: TcpStream,
    peer: SocketAddr,
    _slot: ConnectionSlot,
    stop: Trigger,
) {
    let _active = shard.open_connection();
    let mut ip = [0u8; 46];
    let ip_len = {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(&mut ip[..]);
        let addr: IpAddr = match peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let _ = write!(cursor, "{addr}");
        cursor.position() as usize
    };
    let mut conn = Client {
        stream,
        ip,
        ip_len,
        buf: Vec::new(),
        stop,
        sent: 0,
        writing: false,
        consumed: 0,
        send_timeout: Duration::ZERO,
    };
    let mut served = 0u64;
    loop {
        if conn.buf.is_empty() {
            if conn.buf.capacity() > 0 {
                shard.give_buffer(std::mem::take(&mut conn.buf));
            }
            let idle = {
                let limits = &shard.snapshot().config.server.limits;
                if served == 0 {
                    limits.header_read_timeout
                } else {
                    limits.keepalive_timeout
                }
            };
            // Strict readiness: epoll's relaxed flag is still set from the last read, which
            // would take a buffer early and skip the keep-alive timeout.
            let stop = conn.stop.clone();
            let readable = monoio::select! {
                _ = stop.wait() => false,
                _ = shard.idle.sleep_until(std::time::Instant::now() + idle) => false,
                r = conn.stream.readable(false) => r.is_ok(),
            };
            if !readable {
                break;
            }
            conn.buf = shard.take_buffer();
            // Take what arrived right away, rather than through a read the driver holds the
            // buffer for: when thousands of idle clients hang up at once, each would pin a
            // buffer until its end-of-stream came back, and the allocator keeps that peak.
            match read_ready(&conn.stream, &mut conn.buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        // Loaded when the request arrives, not before the idle wait: a reload during the wait
        // applies to this request.
        let snap = shard.snapshot();
        conn.send_timeout = snap.config.server.limits.send_timeout;
        let mut scratch = shard.take_scratch();
        scratch.record = super::Record::default();
        scratch.request_id.clear();
        // Boxed so the large request future is allocated only while a request is in flight and
        // an idle connection's task stays small.
        let started = std::time::Instant::now();
        let sent_before = conn.bytes_sent();
        let outcome = Box::pin(exchange(&shard, &snap, &mut conn, &mut scratch)).await;
        observe(
            &shard,
            &snap,
            &conn,
            &scratch,
            started.elapsed(),
            conn.bytes_sent() - sent_before,
        );
        // Pipelined bytes after the request stay for the next one.
        let consumed = std::mem::take(&mut conn.consumed).min(conn.buf.len());
        conn.buf.drain(..consumed);
        shard.give_scratch(scratch);
        served += 1;
        match outcome {
            Outcome::KeepAlive => {}
            Outcome::Close => break,
            Outcome::Linger => {
                // Boxed: its timers would otherwise grow every connection's task, idle or not.
                Box::pin(linger(&mut conn)).await;
                break;
            }
        }
    }
    let _ = conn.stream.shutdown().await;
    if conn.buf.capacity() > 0 {
        shard.give_buffer(conn.buf);
    }
}

/// Counts a finished exchange in the metrics and writes its access log line.
fn observe(
    shard: &Shard,
    snap: &Snapshot,
    conn: &Client,
    s: &Scratch,
    elapsed: Duration,
    sent: u64,
) {
    let r = &s.record;
    if r.status == 0 {
        // Nothing was asked or answered: a connection that closed between requests.
        return;
    }
    let route = r.route.map_or(&snap.no_route, |i| &snap.route_metrics[i]);
    route.record(shard.id, r.status, elapsed, r.bytes_received, sent);
    if let Some(u) = &r.upstream {
        let target = &snap.upstreams[u.upstream].targets[u.target].metrics;
        match u.error {
            Some(kind) => target.error(shard.id, kind),
            None => target.record(shard.id, u.duration),
        }
    }
    if let Some((log, format)) = &snap.access_log {
        if log.enabled() {
            log.log(*format, &access_entry(snap, conn, s, elapsed, sent));
        }
    }
}

fn access_entry<'a>(
    snap: &'a Snapshot,
    conn: &'a Client,
    s: &'a Scratch,
    elapsed: Duration,
    sent: u64,
) -> crate::access_log::Entry<'a> {
    let r = &s.record;
    let buf = &conn.buf;
    // A head that was never parsed leaves the scratch describing an earlier request, and a read
    // that timed out took the buffer (and the head in it) along.
    let head = (r.parsed && buf.len() >= s.head.len).then_some(&s.head);
    let field = |kind: Kind| {
        head.and_then(|h| h.fields.iter().find(|f| f.kind == kind))
            .map_or(&b""[..], |f| f.value(buf))
    };
    let upstream = r.upstream.as_ref();
    crate::access_log::Entry {
        time: std::time::SystemTime::now() - elapsed,
        client: conn.ip(),
        method: head.map_or(&b""[..], |h| &buf[h.method_range.clone()]),
        target: head.map_or(&b""[..], |h| &buf[h.path.start..h.query.end]),
        version: match head.map(|h| h.version) {
            Some(Version::Http10) => b"HTTP/1.0",
            Some(Version::Http11) => b"HTTP/1.1",
            None => b"",
        },
        host: head.map_or(&b""[..], |h| &buf[h.host.clone()]),
        status: r.status,
        bytes_sent: sent,
        bytes_received: r.bytes_received,
        duration: elapsed,
        upstream_duration: upstream.map(|u| u.duration),
        upstream_target: upstream.map(|u| snap.upstreams[u.upstream].targets[u.target].addr),
        upstream_tries: upstream.map_or(0, |u| u.tries),
        route: r.route.map_or(crate::metrics::NO_ROUTE, |i| {
            snap.config.routes[i].name.as_str()
        }),
        request_id: &s.request_id,
        referer: field(Kind::Referer),
        user_agent: field(Kind::UserAgent),
    }
}

/// Longest client-supplied X-Request-Id kept; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// The id that ties a request's upstream exchange, its response and its log line together:
/// the client's own X-Request-Id when it is sane, otherwise a new one.
fn assign_request_id(shard: &Shard, buf: &[u8], s: &mut Scratch) {
    s.request_id.clear();
    let theirs = s
        .head
        .fields
        .iter()
        .find(|f| f.kind == Kind::XRequestId)
        .map(|f| f.value(buf));
    match theirs {
        Some(v) if !v.is_empty() && v.len() <= MAX_REQUEST_ID => s.request_id.extend_from_slice(v),
        _ => s.request_id.extend_from_slice(&shard.request_ids.next()),
    }
}

/// Reads one request head, routes it and serves it.
async fn exchange(
    shard: &Shard,
    snap: &Arc<Snapshot>,
    conn: &mut Client,
    s: &mut Scratch,
) -> Outcome {
    let limits = &snap.config.server.limits;
    let deadline = Instant::now() + limits.header_read_timeout;
    loop {
        match s.head.parse(&conn.buf, &snap.head_limits) {
            Ok(true) => break,
            Ok(false) => {
                if let Err(e) = check_partial(&conn.buf, &snap.head_limits) {
                    return refuse(shard, conn, s, e.status()).await;
                }
            }
            Err(e) => return refuse(shard, conn, s, e.status()).await,
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        // Checked before the read: a read that times out takes the buffer with it.
        let started = !conn.buf.iter().all(|b| matches!(b, b'\r' | b'\n'));
        match read_more(&mut conn.stream, &mut conn.buf, wait).await {
            Ok(_) => {}
            // Slowloris: a head that does not complete in time is answered and dropped.
            Err(IoError::Timeout) if started => return refuse(shard, conn, s, 408).await,
            Err(_) => return Outcome::Close,
        }
    }

    s.record.parsed = true;
    assign_request_id(shard, &conn.buf, s);
    let head = &s.head;
    let raw_path = &conn.buf[head.path.clone()];
    let normalised = if head.asterisk || raw_path.is_empty() {
        s.path.clear();
        s.path.push(b'/');
        Ok(())
    } else {
        path::normalize(raw_path, &mut s.path)
    };
    if normalised.is_err() {
        return refuse(shard, conn, s, ParseError::BadPath.status()).await;
    }

    let lookup = FieldLookup {
        buf: &conn.buf,
        fields: &head.fields,
    };
    let request = RouteRequest {
        host: &conn.buf[head.host.clone()],
        path: &s.path,
        method: &conn.buf[head.method_range.clone()],
        headers: &lookup,
    };
    let Some(route) = snap.config.router.find(&request) else {
        return answer_error(shard, conn, s, 404).await;
    };
    s.record.route = Some(route);
    if let BodyFraming::Length(n) = head.body {
        if n > limits.max_body_bytes {
            // Refused before any 100 Continue: the client never sends the body.
            return answer_error(shard, conn, s, 413).await;
        }
    }

    match &snap.config.routes[route].action {
        Action::Direct {
            status,
            body,
            content_type,
        } => {
            direct_with(
                shard,
                snap,
                conn,
                s,
                *status,
                body,
                content_type.as_bytes(),
                &[],
            )
            .await
        }
        Action::Proxy { .. } if last_hop(&conn.buf, &s.head) => {
            let status = if s.head.method == Method::Options {
                200
            } else {
                405
            };
            direct_with(
                shard,
                snap,
                conn,
                s,
                status,
                b"",
                b"",
                &[(b"Allow", LAST_HOP_ALLOW)],
            )
            .await
        }
        Action::Proxy { upstream, rewrite } => {
            match rewrite {
                Some((prefix, replacement)) => {
                    crate::router::rewrite_prefix(&s.path, prefix, replacement, &mut s.rewritten)
                }
                None => s.rewritten.clear(),
            }
            match snap.config.routes[route].timeout {
                None => forward::proxy(shard, snap, conn, s, *upstream).await,
                Some(limit) => {
                    match monoio::time::timeout(
                        limit,
                        forward::proxy(shard, snap, conn, s, *upstream),
                    )
                    .await
                    {
                        Ok(outcome) => outcome,
                        // The exchange was dropped where it stood, upstream connection and all.
                        // Before a final status went out the client gets 504 (after a whole
                        // 1xx, if one went); after, or in the middle of a write, only a close
                        // can tell it the response is incomplete.
                        Err(_) if s.record.status == 0 && !conn.writing => {
                            snap.route_metrics[route].timed_out(shard.id);
                            s.head.connection.close = true;
                            answer_error(shard, conn, s, 504).await
                        }
                        Err(_) => {
                            snap.route_metrics[route].timed_out(shard.id);
                            Outcome::Close
                        }
                    }
                }
            }
        }
    }
}

/// OPTIONS and TRACE with `Max-Forwards: 0` stop here (RFC 9110 §7.6.2): the gateway answers
/// as the final recipient. TRACE is refused rather than echoed, so it can't reflect cookies.
fn last_hop(buf: &[u8], head: &crate::http::request::RequestHead) -> bool {
    matches!(head.method, Method::Options | Method::Trace)
        && head.fields.iter().any(|f| {
            f.kind == Kind::MaxForwards && super::head::max_forwards(f.value(buf)) == Some(0)
        })
}

const LAST_HOP_ALLOW: &[u8] = b"GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

/// The gateway answers itself (a `direct` route, or the last hop). A request body is read and
/// discarded first, so the connection can carry the next request.
#[allow(clippy::too_many_arguments)]
async fn direct_with(
    shard: &Shard,
    snap: &Snapshot,
    conn: &mut Client,
    s: &mut Scratch,
    status: u16,
    body: &[u8],
    content_type: &[u8],
    extra: &[(&[u8], &[u8])],
) -> Outcome {
    let limits = &snap.config.server.limits;
    let mut keep_alive = conn.keep_alive(&s.head);
    let mut consumed = s.head.len;
    if s.head.body != BodyFraming::None {
        if s.head.expect_continue {
            // No 100 Continue: the client may skip the body, so the connection can't be reused.
            keep_alive = false;
        } else {
            match discard_body(conn, s, limits.max_body_bytes, limits.body_read_timeout).await {
                Ok((end, body_bytes)) => {
                    consumed = end;
                    s.record.bytes_received = s.head.len as u64 + body_bytes;
                }
                Err(status) => return answer_error(shard, conn, s, status).await,
            }
        }
    }
    s.record.status = status;
    s.record.bytes_received = s.record.bytes_received.max(s.head.len as u64);
    let date = shard.date.now();
    s.out.clear();
    Answer {
        status,
        content_type,
        body,
        send_body: s.head.method != Method::Head,
        close: !keep_alive,
        http10: s.head.version == Version::Http10,
        request_id: Some(&s.request_id),
        extra,
    }
    .write(&mut s.out, &date);
    if conn.send_all(&mut s.out).await.is_err() {
        return Outcome::Close;
    }
    if !keep_alive {
        return if consumed == conn.buf.len() && s.head.body == BodyFraming::None {
            Outcome::Close
        } else {
            Outcome::Linger
        };
    }
    conn.consumed = consumed;
    Outcome::KeepAlive
}

/// Reads the request body to its end and drops it. Returns where it ended in `conn.buf` and
/// its size, or the status to answer with.
async fn discard_body(
    conn: &mut Client,
    s: &Scratch,
    limit: u64,
    timeout: Duration,
) -> Result<(usize, u64), u16> {
    let mut body = RequestBody::new(s.head.body, limit);
    let mut cursor = s.head.len;
    loop {
        cursor += body.advance(&conn.buf[cursor..]).map_err(|e| e.status())?;
        if body.is_done() {
            return Ok((cursor, body.consumed()));
        }
        conn.buf.truncate(s.head.len);
        cursor = s.head.len;
        match read_more(&mut conn.stream, &mut conn.buf, timeout).await {
            Ok(_) => {}
            Err(IoError::Timeout) => return Err(408),
            Err(_) => return Err(400),
        }
    }
}

/// Answers a request that could not be read or accepted, and closes behind it.
async fn refuse(shard: &Shard, conn: &mut Client, s: &mut Scratch, status: u16) -> Outcome {
    let date = shard.date.now();
    s.out.clear();
    // Unparsed, so nothing of the client's can be trusted: a fresh id ties answer and log.
    s.request_id.clear();
    s.request_id.extend_from_slice(&shard.request_ids.next());
    answers::write_error(
        &mut s.out,
        status,
        &date,
        true,
        false,
        true,
        &s.request_id,
        &[],
    );
    s.record.status = status;
    s.record.bytes_received = conn.buf.len() as u64;
    let _ = conn.send_all(&mut s.out).await;
    Outcome::Linger
}

/// Answers a parsed request with an error status. The connection stays open only when the
/// request carried no body (an unread body would be taken for the next request).
pub async fn answer_error(
    shard: &Shard,
    conn: &mut Client,
    s: &mut Scratch,
    status: u16,
) -> Outcome {
    answer_error_with(shard, conn, s, status, &[]).await
}

/// 503 from a circuit breaker, marked so that clients and dashboards can tell an overload
/// from a dead upstream.
pub async fn answer_overloaded(shard: &Shard, conn: &mut Client, s: &mut Scratch) -> Outcome {
    answer_error_with(shard, conn, s, 503, &[(b"x-shardgate-overloaded", b"true")]).await
}

async fn answer_error_with(
    shard: &Shard,
    conn: &mut Client,
    s: &mut Scratch,
    status: u16,
    extra: &[(&[u8], &[u8])],
) -> Outcome {
    let keep_alive = conn.keep_alive(&s.head) && s.head.body == BodyFraming::None;
    s.record.status = status;
    s.record.bytes_received = s.record.bytes_received.max(s.head.len as u64);
    let date = shard.date.now();
    s.out.clear();
    answers::write_error(
        &mut s.out,
        status,
        &date,
        !keep_alive,
        s.head.version == Version::Http10,
        s.head.method != Method::Head,
        &s.request_id,
        extra,
    );
    if conn.send_all(&mut s.out).await.is_err() {
        return Outcome::Close;
    }
    if keep_alive {
        let len = s.head.len.min(conn.buf.len());
        conn.consumed = len;
        Outcome::KeepAlive
    } else {
        Outcome::Linger
    }
}

async fn linger(conn: &mut Client) {
    let _ = conn.stream.shutdown().await;
    let deadline = Instant::now() + LINGER_TIME;
    let mut drained = 0;
    conn.buf.clear();
    while drained < LINGER_BYTES {
        let wait = deadline.saturating_duration_since(Instant::now());
        match read_more(&mut conn.stream, &mut conn.buf, wait).await {
            Ok(n) => {
                drained += n;
                conn.buf.clear();
            }
            Err(_) => break,
        }
    }
}

/// Header matching for the router, over the parsed head's offsets.
struct FieldLookup<'a> {
    buf: &'a [u8],
    fields: &'a [Field],
}

impl HeaderLookup for FieldLookup<'_> {
    fn contains(&self, name: &str, value: &[u8]) -> bool {
        let kind = Kind::of(name.as_bytes());
        self.fields.iter().any(|f| {
            (kind == Kind::Other || f.kind == kind)
                && f.name(self.buf).eq_ignore_ascii_case(name.as_bytes())
                && headers::trim(f.value(self.buf)) == value
        })
    }
}
