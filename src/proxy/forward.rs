//! Forwarding a request to an upstream target and relaying the response.
//!
//! Before the first response byte reaches the client any failure becomes a clean status;
//! after it, a failure can only close the connection (never a second status line). A pooled
//! connection found dead before any response byte is retried once on a fresh connection when
//! the request can safely be sent again (RFC 9110 §9.2.2).

use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpStream;

use super::balance_key;
use super::body::{BodyError, RequestBody};
use super::client::{answer_error, answer_overloaded, Client, Outcome};
use super::head::{self, ClientFraming, Forwarding, Responding};
use super::io::{read_more, write_all, write_range, IoError};
use super::relay::Relay;
use super::{Scratch, UpstreamErrorKind, UpstreamRecord};
use crate::balancer::Balance;
use crate::config::{Balancer, CircuitBreaker, PanicMode};
use crate::http::request::{Method, Version};
use crate::http::response::{ResponseFraming, ResponseHead};
use crate::shard::Shard;
use crate::snapshot::Snapshot;
use crate::snapshot::{TargetRef, UpstreamState};
use crate::upstream::breaker::OwnedPermit;
use crate::upstream::outlier;
use crate::upstream::{self, UpstreamError};

/// Logged when the client went away before a status could be sent (as nginx does).
const CLIENT_GONE: u16 = 499;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why forwarding stopped before a response head was relayed.
enum Failure {
    Upstream(UpstreamError),
    /// The client's body broke a rule or stalled; answer with this status.
    Client(u16),
    /// The client went away; nobody to answer.
    ClientGone,
    /// A circuit breaker limit was reached: 503 at once, marked as an overload.
    Overloaded,
}

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Failure {
        Failure::Client(e.status())
    }
}

pub async fn proxy(
    shard: &Shard,
    snap: &Arc<Snapshot>,
    conn: &mut Client,
    s: &mut Scratch,
    up: usize,
) -> Outcome {
    let limits = &snap.config.server.limits;
    let upstream = &snap.config.upstreams[up];
    let state = &snap.upstreams[up];
    let head_len = s.head.len;

    let mut body = RequestBody::new(s.head.body, limits.max_body_bytes);
    let mut cursor = match body.advance(&conn.buf[head_len..]) {
        Ok(n) => head_len + n,
        Err(e) => return answer_error(shard, conn, s, e.status()).await,
    };

    let breaker = &upstream.circuit_breaker;
    // Uncounted when unlimited: the shared counter is the one cross-core write per request.
    let _request_permit = match breaker.max_requests {
        u32::MAX => None,
        max => match state.requests.try_acquire(max) {
            Some(permit) => Some(permit),
            None => return answer_overloaded(shard, conn, s).await,
        },
    };

    let key = match upstream.balancer {
        Balancer::ConsistentHash => balance_key::request_key(
            &upstream.hash_on,
            &conn.buf,
            &s.head.fields,
            conn.ip(),
            &s.path,
        ),
        _ => None,
    };
    let now = upstream.outlier.as_ref().map(|_| outlier::now_ms());
    let healthy = |i: usize| {
        let t = &state.targets[i];
        t.health.is_healthy() && now.is_none_or(|now| !t.outlier.is_ejected(now))
    };
    let picked =
        state
            .balancer
            .pick(shard.id, key, &healthy)
            .or_else(|| match upstream.panic_mode {
                // Every target failed its checks: trusting them all beats refusing everyone.
                PanicMode::FailOpen => state.balancer.pick(shard.id, key, &|_| true),
                PanicMode::FailClosed => None,
            });
    let Some((target_index, target)) = picked.map(|i| (i, &state.targets[i])) else {
        return answer_error(shard, conn, s, UpstreamError::NoTarget.status()).await;
    };
    let mut load = Load::start(&*state.balancer, shard.id, target_index);

    if s.head.expect_continue && !body.is_done() {
        s.out.clear();
        s.out.extend_from_slice(CONTINUE);
        if conn.send_all(&mut s.out).await.is_err() {
            return Outcome::Close;
        }
    }

    s.out.clear();
    head::upstream_request(
        &mut s.out,
        &conn.buf,
        &s.head,
        &Forwarding {
            path: &s.rewritten,
            host_header: &upstream.host_header,
            target: target.addr,
            client_ip: conn.ip(),
            request_id: &s.request_id,
            via: snap.config.server.via,
        },
    );
    s.out.extend_from_slice(&conn.buf[head_len..cursor]);
    // What sits in `out` is the whole request: it can be sent again on a fresh connection.
    let replayable = body.is_done();

    let mut ubuf = shard.take_buffer();
    let mut retried = false;
    let started = std::time::Instant::now();
    let upstream_record = |error: Option<UpstreamErrorKind>| UpstreamRecord {
        upstream: up,
        target: target_index,
        duration: started.elapsed(),
        error,
    };
    // A request that could not be sent twice checks its pooled connection first: it gets no
    // second chance if the upstream closed the connection while it was idle.
    let retryable = replayable && s.head.method.is_idempotent();
    let exchange = loop {
        let pooled = if retried {
            None
        } else {
            shard.pool.take(target, !retryable)
        };
        let reused = pooled.is_some();
        let (mut stream, permit) = match pooled {
            Some(pooled) => pooled,
            None => match connection_slot(shard, target, state, breaker, upstream.connect_timeout)
                .await
            {
                Some(Slot::Pooled(stream, permit)) => (stream, permit),
                Some(Slot::Fresh(permit)) => {
                    match upstream::connect(target.addr, upstream.connect_timeout).await {
                        Ok(stream) => (stream, permit),
                        Err(e) => break Err(Failure::Upstream(e)),
                    }
                }
                None => break Err(Failure::Overloaded),
            },
        };
        let in_use = InUse::new(&target.metrics, shard.id);
        match write_all(&mut stream, &mut s.out, upstream.write_timeout).await {
            Ok(()) => {}
            // A pooled connection that refuses the first write never delivered the request.
            Err(IoError::Eof | IoError::Io(_)) if reused => {
                retried = true;
                continue;
            }
            Err(e) => break Err(Failure::Upstream(upstream_io(e))),
        }
        if !body.is_done() {
            if let Err(f) = send_body(
                conn,
                &mut stream,
                &mut body,
                &mut cursor,
                head_len,
                limits.body_read_timeout,
                upstream.write_timeout,
            )
            .await
            {
                break Err(f);
            }
        }
        ubuf.clear();
        match read_response_head(
            conn,
            &mut stream,
            &mut ubuf,
            &mut s.response,
            snap,
            s.head.method,
            s.head.version,
            upstream.read_timeout,
        )
        .await
        {
            Ok(()) => break Ok((stream, permit, in_use)),
            Err(HeadError::Stale) if reused && !retried && retryable => {
                retried = true;
                continue;
            }
            Err(HeadError::Stale) => {
                break Err(Failure::Upstream(UpstreamError::Broken(
                    std::io::ErrorKind::UnexpectedEof.into(),
                )))
            }
            Err(HeadError::Upstream(e)) => break Err(Failure::Upstream(e)),
            Err(HeadError::ClientGone) => break Err(Failure::ClientGone),
        }
    };

    let (mut stream, permit, _in_use) = match exchange {
        Ok(exchanged) => exchanged,
        Err(failure) => {
            shard.give_buffer(ubuf);
            s.record.bytes_received = (head_len as u64) + body.consumed();
            return match failure {
                Failure::Upstream(e) => {
                    s.record.upstream = Some(upstream_record(Some(e.kind())));
                    report_outcome(upstream, state, target, false);
                    crate::log::debug(format_args!(
                        "upstream {} target {}: {e:?}",
                        upstream.name, target.addr
                    ));
                    if !body.is_done() {
                        // The rest of the body is still coming; it can't be taken as the next request.
                        s.head.connection.close = true;
                    }
                    answer_error(shard, conn, s, e.status()).await
                }
                Failure::Client(status) => {
                    s.record.upstream = Some(upstream_record(None));
                    s.head.connection.close = true;
                    answer_error(shard, conn, s, status).await
                }
                Failure::Overloaded => answer_overloaded(shard, conn, s).await,
                Failure::ClientGone => {
                    s.record.upstream = Some(upstream_record(None));
                    s.record.status = CLIENT_GONE;
                    Outcome::Close
                }
            };
        }
    };

    let resp = &s.response;
    s.record.status = resp.status;
    s.record.bytes_received = (head_len as u64) + body.consumed();
    let http11 = s.head.version == Version::Http11;
    let framing = match resp.framing {
        ResponseFraming::None | ResponseFraming::Length(_) => ClientFraming::AsIs,
        ResponseFraming::Chunked if http11 => ClientFraming::Chunked,
        ResponseFraming::Close if http11 => ClientFraming::ChunkEach,
        ResponseFraming::Chunked | ResponseFraming::Close => ClientFraming::UntilClose,
    };
    let keep_alive = conn.keep_alive(&s.head) && framing != ClientFraming::UntilClose;
    let date = shard.date.now();
    s.out.clear();
    head::client_response(
        &mut s.out,
        &ubuf,
        resp,
        &Responding {
            framing,
            keep_alive,
            client_version: s.head.version,
            request_id: &s.request_id,
            date: &date,
            via: snap.config.server.via,
        },
    );
    let relay = Relay {
        client: conn,
        upstream: &mut stream,
        ubuf: &mut ubuf,
        out: &mut s.out,
        read_timeout: upstream.read_timeout,
    };
    let result = relay.run(resp.len, resp.framing, framing).await;
    load.ok = result.is_ok() && resp.status < 500;
    report_outcome(upstream, state, target, load.ok);
    s.record.upstream = Some(upstream_record(result.as_ref().err().map(IoError::kind)));
    let reusable =
        matches!(result, Ok(true)) && resp.keep_alive() && resp.framing != ResponseFraming::Close;
    if reusable {
        shard.pool.put(
            target,
            stream,
            permit,
            upstream.pool.max_idle_per_target,
            upstream.pool.idle_timeout,
        );
    }
    shard.give_buffer(ubuf);
    match result {
        Ok(_) if keep_alive => {
            conn.consumed = cursor;
            Outcome::KeepAlive
        }
        _ => Outcome::Close,
    }
}

/// How often a request waiting for a connection slot looks again. Slots free up on any shard,
/// so there is nothing local to wait on; the wait is bounded by `connect_timeout`.
const PENDING_POLL: Duration = Duration::from_millis(5);

enum Slot {
    /// A connection this shard's pool got back while the request waited.
    Pooled(TcpStream, OwnedPermit),
    /// Room for a new connection.
    Fresh(OwnedPermit),
}

/// A connection slot under the target's `max_connections`. At the cap the request waits, if
/// `max_pending` allows, until a slot frees anywhere or this shard's pool gets a connection
/// back, for at most `wait`.
async fn connection_slot(
    shard: &Shard,
    target: &TargetRef,
    state: &UpstreamState,
    breaker: &CircuitBreaker,
    wait: Duration,
) -> Option<Slot> {
    if let Some(permit) = target
        .connections
        .try_acquire_owned(breaker.max_connections)
    {
        return Some(Slot::Fresh(permit));
    }
    let _pending = state.pending.try_acquire(breaker.max_pending)?;
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        monoio::time::sleep(PENDING_POLL).await;
        if let Some((stream, permit)) = shard.pool.take(target, true) {
            return Some(Slot::Pooled(stream, permit));
        }
        if let Some(permit) = target
            .connections
            .try_acquire_owned(breaker.max_connections)
        {
            return Some(Slot::Fresh(permit));
        }
    }
    None
}

/// Feeds passive health: one outcome per exchange with a target.
fn report_outcome(
    upstream: &crate::config::Upstream,
    state: &UpstreamState,
    target: &TargetRef,
    ok: bool,
) {
    if let Some(policy) = &upstream.outlier {
        target
            .outlier
            .report(ok, policy, state.targets.iter().map(|t| &*t.outlier));
    }
}

/// Tells the balancer a request to a target started, and (when dropped, on every path out)
/// that it finished, for the load- and latency-aware algorithms.
struct Load<'a> {
    balancer: &'a dyn Balance,
    shard: usize,
    target: usize,
    started: std::time::Instant,
    ok: bool,
}

impl<'a> Load<'a> {
    fn start(balancer: &'a dyn Balance, shard: usize, target: usize) -> Load<'a> {
        balancer.started(shard, target);
        Load {
            balancer,
            shard,
            target,
            started: std::time::Instant::now(),
            ok: false,
        }
    }
}

impl Drop for Load<'_> {
    fn drop(&mut self) {
        self.balancer
            .finished(self.shard, self.target, self.started.elapsed(), self.ok);
    }
}

/// Counts an upstream connection as active (for the pool gauge) for as long as it lives.
struct InUse<'a> {
    metrics: &'a crate::metrics::TargetMetrics,
    shard: usize,
}

impl<'a> InUse<'a> {
    fn new(metrics: &'a crate::metrics::TargetMetrics, shard: usize) -> InUse<'a> {
        metrics.pool_active(shard, 1);
        InUse { metrics, shard }
    }
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.metrics.pool_active(self.shard, -1);
    }
}

fn upstream_io(e: IoError) -> UpstreamError {
    match e {
        IoError::Timeout => UpstreamError::Timeout,
        IoError::Eof => UpstreamError::Broken(std::io::ErrorKind::UnexpectedEof.into()),
        IoError::Io(e) => UpstreamError::Broken(e),
    }
}

/// Streams the rest of the request body from the client to the upstream. The head stays at
/// the start of `conn.buf`; body bytes are read in after it, sent, and overwritten.
async fn send_body(
    conn: &mut Client,
    upstream: &mut TcpStream,
    body: &mut RequestBody,
    cursor: &mut usize,
    head_len: usize,
    body_read_timeout: Duration,
    write_timeout: Duration,
) -> Result<(), Failure> {
    while !body.is_done() {
        conn.buf.truncate(head_len);
        *cursor = head_len;
        match read_more(&mut conn.stream, &mut conn.buf, body_read_timeout).await {
            Ok(_) => {}
            Err(IoError::Timeout) => return Err(Failure::Client(408)),
            Err(_) => return Err(Failure::ClientGone),
        }
        let n = body.advance(&conn.buf[head_len..])?;
        write_range(
            upstream,
            &mut conn.buf,
            head_len..head_len + n,
            write_timeout,
        )
        .await
        .map_err(|e| Failure::Upstream(upstream_io(e)))?;
        *cursor = head_len + n;
    }
    Ok(())
}

enum HeadError {
    /// The connection ended before any response byte: maybe a stale pooled connection.
    Stale,
    Upstream(UpstreamError),
    ClientGone,
}

/// Reads up to the final response head, relaying 103 Early Hints and dropping 100 Continue
/// (the gateway sent its own). Leaves the head at the start of `ubuf`.
#[allow(clippy::too_many_arguments)]
async fn read_response_head(
    conn: &mut Client,
    upstream: &mut TcpStream,
    ubuf: &mut Vec<u8>,
    resp: &mut ResponseHead,
    snap: &Snapshot,
    method: Method,
    client_version: Version,
    read_timeout: Duration,
) -> Result<(), HeadError> {
    let limits = &snap.config.server.limits;
    let mut received_any = false;
    loop {
        match resp.parse(
            ubuf,
            limits.max_headers,
            limits.max_header_bytes.max(crate::shard::BUFFER_SIZE),
            method,
        ) {
            Ok(true) if !resp.is_interim() => return Ok(()),
            Ok(true) => {
                // RFC 9110 §15.2: never a 1xx to an HTTP/1.0 client.
                if resp.status == 103 && client_version == Version::Http11 {
                    let mut hints = Vec::with_capacity(resp.len + 64);
                    let no_id = [];
                    head::client_response(
                        &mut hints,
                        ubuf,
                        resp,
                        &Responding {
                            framing: ClientFraming::AsIs,
                            keep_alive: true,
                            client_version: Version::Http11,
                            request_id: &no_id,
                            date: b"",
                            via: false,
                        },
                    );
                    if conn.send_all(&mut hints).await.is_err() {
                        return Err(HeadError::ClientGone);
                    }
                } else if resp.status == 101 {
                    // Upgrades are not offered yet and the Upgrade field was not forwarded.
                    return Err(HeadError::Upstream(UpstreamError::BadResponse(
                        crate::http::response::BadResponse::Malformed,
                    )));
                }
                ubuf.drain(..resp.len);
                continue;
            }
            Ok(false) => {}
            Err(e) => return Err(HeadError::Upstream(UpstreamError::BadResponse(e))),
        }
        match read_more(upstream, ubuf, read_timeout).await {
            Ok(_) => received_any = true,
            Err(IoError::Timeout) => return Err(HeadError::Upstream(UpstreamError::Timeout)),
            Err(IoError::Eof | IoError::Io(_)) if !received_any && ubuf.is_empty() => {
                return Err(HeadError::Stale)
            }
            Err(IoError::Eof) => {
                return Err(HeadError::Upstream(UpstreamError::Broken(
                    std::io::ErrorKind::UnexpectedEof.into(),
                )))
            }
            Err(IoError::Io(e)) => return Err(HeadError::Upstream(UpstreamError::Broken(e))),
        }
    }
}
