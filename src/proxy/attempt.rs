//! One try at one target: a connection (pooled, or new within the breaker's cap), the request
//! written, its body streamed, the response head read. Whether the response is relayed, the
//! request tried again or an error answered is for `forward.rs` to decide.

use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::body::{BodyError, RequestBody};
use super::client::Client;
use super::head::{self, ClientFraming, Forwarding, Responding};
use super::io::{read_more, write_all, write_range, IoError};
use super::Scratch;
use crate::config::{CircuitBreaker, Upstream};
use crate::http::request::{Method, Version};
use crate::http::response::ResponseHead;
use crate::metrics::TimeoutPhase;
use crate::shard::Shard;
use crate::snapshot::{Snapshot, TargetRef, UpstreamState};
use crate::upstream::breaker::OwnedPermit;
use crate::upstream::{self, UpstreamError};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why a try ended before a response head was in hand.
pub(super) enum Failure {
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

pub(super) struct Failed {
    pub failure: Failure,
    /// A byte of the request may have reached the upstream.
    pub sent: bool,
    /// A timed-out write took the client's buffer with it: the connection cannot go on, so
    /// neither can the request.
    pub buffer_lost: bool,
}

impl Failed {
    fn before_sending(failure: Failure) -> Failed {
        Failed {
            failure,
            sent: false,
            buffer_lost: false,
        }
    }

    fn after_sending(failure: Failure) -> Failed {
        Failed {
            failure,
            sent: true,
            buffer_lost: false,
        }
    }
}

/// A try whose response head is at the start of `ubuf` and parsed into `s.response`.
pub(super) struct Answered<'t> {
    pub stream: TcpStream,
    pub permit: OwnedPermit,
    pub in_use: InUse<'t>,
}

/// The time a try may take: each step's own timeout, cut short by the policy's
/// `per_try_timeout` when there is one.
#[derive(Clone, Copy)]
pub(super) struct TryClock {
    deadline: Option<Instant>,
}

impl TryClock {
    pub fn start(per_try: Option<Duration>) -> TryClock {
        TryClock {
            deadline: per_try.map(|d| Instant::now() + d),
        }
    }

    /// The timeout for a step whose own limit is `step`.
    pub fn limit(&self, step: Duration) -> Duration {
        match self.deadline {
            Some(d) => step.min(d.saturating_duration_since(Instant::now())),
            None => step,
        }
    }

    /// Which timeout fired, when a step bounded by `limit(..)` of `step` timed out.
    pub fn phase(&self, step: TimeoutPhase) -> TimeoutPhase {
        match self.deadline {
            Some(d) if Instant::now() >= d => TimeoutPhase::PerTry,
            _ => step,
        }
    }
}

/// Where the request body sent so far can be found for another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// No other try will be made: keep nothing.
    Off,
    /// The body so far arrived with the head and is still in `conn.buf[head_len..cursor]`.
    InBuffer,
    /// The body streamed past the first buffer; what was sent so far is in `s.replay`.
    Kept,
    /// More than `max_replay_body` was sent: a try that sent it can't be made again.
    Overflowed,
}

/// The request as it crosses tries: its body's progress and its copy for a replay.
pub(super) struct Upload {
    pub body: RequestBody,
    pub head_len: usize,
    /// End of this request's bytes in `conn.buf`.
    pub cursor: usize,
    pub replay: Replay,
    /// `max_replay_body`.
    pub replay_cap: u64,
    /// 100 Continue went out already.
    pub continued: bool,
    /// A 103 from an upstream reached the client: its response has begun, so no other try
    /// may follow.
    pub hinted: bool,
}

impl Upload {
    /// Whether every body byte a try sent is at hand to send again.
    pub fn replayable(&self) -> bool {
        matches!(self.replay, Replay::InBuffer | Replay::Kept)
    }

    fn keep(&mut self, kept: &mut Vec<u8>, bytes: &[u8]) {
        if self.replay == Replay::Kept {
            if (kept.len() + bytes.len()) as u64 <= self.replay_cap {
                kept.extend_from_slice(bytes);
            } else {
                kept.clear();
                self.replay = Replay::Overflowed;
            }
        }
    }
}

/// What a try needs from its surroundings.
pub(super) struct Context<'a> {
    pub shard: &'a Shard,
    pub snap: &'a Snapshot,
    pub upstream: &'a Upstream,
    pub state: &'a UpstreamState,
}

impl Context<'_> {
    /// Sends the request to `target` and reads the response head into `ubuf`.
    ///
    /// A pooled connection found dead before any response byte is replaced by a fresh one
    /// within the same try when the request may be sent twice (`resendable`); otherwise the
    /// pooled connection is checked before use.
    #[allow(clippy::too_many_arguments)]
    pub async fn run<'t>(
        &self,
        conn: &mut Client,
        s: &mut Scratch,
        up: &mut Upload,
        ubuf: &mut Vec<u8>,
        target: &'t TargetRef,
        clock: TryClock,
        resendable: bool,
    ) -> Result<Answered<'t>, Failed> {
        let upstream = self.upstream;
        let mut stale_retried = false;
        loop {
            let pooled = if stale_retried {
                None
            } else {
                self.shard.pool.take(target, !resendable)
            };
            let reused = pooled.is_some();
            let (mut stream, permit) = match pooled {
                Some(pooled) => pooled,
                None => self.connect(target, clock).await?,
            };
            let in_use = InUse::new(&target.metrics, self.shard.id);
            if up.continued || !s.head.expect_continue || up.body.is_done() {
                // Nothing to say to the client first.
            } else {
                s.out.clear();
                s.out.extend_from_slice(CONTINUE);
                if conn.send_all(&mut s.out).await.is_err() {
                    return Err(Failed::before_sending(Failure::ClientGone));
                }
                up.continued = true;
            }
            self.request_bytes(conn, s, up, target);
            let write = write_all(&mut stream, &mut s.out, clock.limit(upstream.write_timeout));
            match write.await {
                Ok(()) => {}
                // A pooled connection that refuses the first write most likely delivered
                // nothing, but part of a large first write may have gone: resend only what
                // may be sent twice.
                Err(IoError::Eof | IoError::Io(_)) if reused && !stale_retried && resendable => {
                    stale_retried = true;
                    continue;
                }
                Err(e) => {
                    let e = self.step_failed(e, target, clock, TimeoutPhase::Write);
                    return Err(Failed::after_sending(Failure::Upstream(e)));
                }
            }
            if !up.body.is_done() {
                self.send_body(conn, &mut stream, s, up, target, clock)
                    .await?;
            }
            ubuf.clear();
            match self
                .read_response_head(
                    conn,
                    &mut stream,
                    ubuf,
                    &mut s.response,
                    (s.head.method, s.head.version),
                    &mut up.hinted,
                    target,
                    clock,
                )
                .await
            {
                Ok(()) => {
                    return Ok(Answered {
                        stream,
                        permit,
                        in_use,
                    })
                }
                Err(HeadError::Stale) if reused && !stale_retried && resendable => {
                    stale_retried = true;
                    continue;
                }
                Err(HeadError::Stale) => {
                    return Err(Failed::after_sending(Failure::Upstream(
                        UpstreamError::Broken(std::io::ErrorKind::UnexpectedEof.into()),
                    )))
                }
                Err(HeadError::Upstream(e)) => {
                    return Err(Failed::after_sending(Failure::Upstream(e)))
                }
                Err(HeadError::ClientGone) => {
                    return Err(Failed::after_sending(Failure::ClientGone))
                }
            }
        }
    }

    /// A new connection to `target`, within its `max_connections`.
    async fn connect(
        &self,
        target: &TargetRef,
        clock: TryClock,
    ) -> Result<(TcpStream, OwnedPermit), Failed> {
        let limit = clock.limit(self.upstream.connect_timeout);
        let breaker = &self.upstream.circuit_breaker;
        match connection_slot(self.shard, target, self.state, breaker, limit).await {
            Some(Slot::Pooled(stream, permit)) => Ok((stream, permit)),
            Some(Slot::Fresh(permit)) => match upstream::connect(target.addr, limit).await {
                Ok(stream) => Ok((stream, permit)),
                Err(e) => {
                    if matches!(e, UpstreamError::ConnectTimeout) {
                        let phase = clock.phase(TimeoutPhase::Connect);
                        target.metrics.timeout(self.shard.id, phase);
                    }
                    Err(Failed::before_sending(Failure::Upstream(e)))
                }
            },
            None => Err(Failed::before_sending(Failure::Overloaded)),
        }
    }

    /// Lays the request as `target` gets it into `s.out`: its head, then the body sent so far.
    fn request_bytes(&self, conn: &Client, s: &mut Scratch, up: &Upload, target: &TargetRef) {
        s.out.clear();
        head::upstream_request(
            &mut s.out,
            &conn.buf,
            &s.head,
            &Forwarding {
                // Empty when the route rewrites nothing.
                path: match s.rewritten.is_empty() {
                    true => &s.path,
                    false => &s.rewritten,
                },
                host_header: &self.upstream.host_header,
                target_host: &target.host,
                client_ip: conn.ip(),
                request_id: &s.request_id,
                via: self.snap.config.server.via,
            },
        );
        match up.replay {
            Replay::Kept => s.out.extend_from_slice(&s.replay),
            _ => s.out.extend_from_slice(&conn.buf[up.head_len..up.cursor]),
        }
    }

    /// Counts a step's timeout and says what it means for the exchange.
    fn step_failed(
        &self,
        e: IoError,
        target: &TargetRef,
        clock: TryClock,
        step: TimeoutPhase,
    ) -> UpstreamError {
        if let IoError::Timeout = e {
            target.metrics.timeout(self.shard.id, clock.phase(step));
        }
        upstream_io(e)
    }

    /// Streams the rest of the request body from the client to the upstream. The head stays
    /// at the start of `conn.buf`; body bytes are read in after it, sent, and overwritten,
    /// after a copy into `s.replay` while the body fits `max_replay_body`.
    async fn send_body(
        &self,
        conn: &mut Client,
        stream: &mut TcpStream,
        s: &mut Scratch,
        up: &mut Upload,
        target: &TargetRef,
        clock: TryClock,
    ) -> Result<(), Failed> {
        let head_len = up.head_len;
        if up.replay == Replay::InBuffer {
            // The first buffer's body bytes are about to be overwritten.
            s.replay.clear();
            up.replay = Replay::Kept;
            up.keep(&mut s.replay, &conn.buf[head_len..up.cursor]);
        }
        let body_read_timeout = self.snap.config.server.limits.body_read_timeout;
        while !up.body.is_done() {
            conn.buf.truncate(head_len);
            up.cursor = head_len;
            match read_more(&mut conn.stream, &mut conn.buf, body_read_timeout).await {
                Ok(_) => {}
                Err(IoError::Timeout) => return Err(Failed::after_sending(Failure::Client(408))),
                Err(_) => return Err(Failed::after_sending(Failure::ClientGone)),
            }
            let n = up
                .body
                .advance(&conn.buf[head_len..])
                .map_err(|e| Failed::after_sending(e.into()))?;
            up.keep(&mut s.replay, &conn.buf[head_len..head_len + n]);
            // Set before the write: if it fails and another try sends the replay, bytes after
            // `cursor` are the next pipelined request, not this body.
            up.cursor = head_len + n;
            let limit = clock.limit(self.upstream.write_timeout);
            if let Err(e) = write_range(stream, &mut conn.buf, head_len..head_len + n, limit).await
            {
                let buffer_lost = matches!(e, IoError::Timeout);
                let e = self.step_failed(e, target, clock, TimeoutPhase::Write);
                return Err(Failed {
                    failure: Failure::Upstream(e),
                    sent: true,
                    buffer_lost,
                });
            }
        }
        Ok(())
    }

    /// Reads up to the final response head, relaying 103 Early Hints and dropping 100 Continue
    /// (the gateway sent its own). Leaves the head at the start of `ubuf`.
    #[allow(clippy::too_many_arguments)]
    async fn read_response_head(
        &self,
        conn: &mut Client,
        stream: &mut TcpStream,
        ubuf: &mut Vec<u8>,
        resp: &mut ResponseHead,
        (method, client_version): (Method, Version),
        hinted: &mut bool,
        target: &TargetRef,
        clock: TryClock,
    ) -> Result<(), HeadError> {
        let limits = &self.snap.config.server.limits;
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
                        *hinted = true;
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
            let limit = clock.limit(self.upstream.read_timeout);
            match read_more(stream, ubuf, limit).await {
                Ok(_) => received_any = true,
                Err(IoError::Eof | IoError::Io(_)) if !received_any && ubuf.is_empty() => {
                    return Err(HeadError::Stale)
                }
                Err(e) => {
                    let e = self.step_failed(e, target, clock, TimeoutPhase::Read);
                    return Err(HeadError::Upstream(e));
                }
            }
        }
    }
}

enum HeadError {
    /// The connection ended before any response byte: maybe a stale pooled connection.
    Stale,
    Upstream(UpstreamError),
    ClientGone,
}

pub(super) fn upstream_io(e: IoError) -> UpstreamError {
    match e {
        IoError::Timeout => UpstreamError::Timeout,
        IoError::Eof => UpstreamError::Broken(std::io::ErrorKind::UnexpectedEof.into()),
        IoError::Io(e) => UpstreamError::Broken(e),
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
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
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

/// Counts an upstream connection as active (for the pool gauge) for as long as it lives.
pub(super) struct InUse<'a> {
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
