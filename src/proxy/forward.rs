//! Forwarding a request to an upstream: choosing a target, trying again while the retry
//! policy allows, relaying the response.
//!
//! Before the first response byte reaches the client any failure becomes a clean status;
//! after it, a failure can only close the connection (never a second status line). One try
//! is `attempt.rs`; the rules for another are `upstream/retry.rs`.

use std::sync::Arc;
use std::time::Instant;

use super::attempt::{Answered, Context, Failed, Failure, Replay, TryClock, Upload};
use super::balance_key;
use super::body::RequestBody;
use super::client::{answer_error, answer_overloaded, Client, Outcome};
use super::head::{self, ClientFraming, Responding};
use super::io::IoError;
use super::relay::{Relay, RelayError};
use super::{Scratch, UpstreamErrorKind, UpstreamRecord};
use crate::balancer::Balance;
use crate::config::{Balancer, PanicMode, Upstream};
use crate::http::request::Version;
use crate::http::response::ResponseFraming;
use crate::metrics::TimeoutPhase;
use crate::shard::Shard;
use crate::snapshot::Snapshot;
use crate::snapshot::{TargetRef, UpstreamState};
use crate::upstream::outlier;
use crate::upstream::retry::{self, Condition, MAX_ATTEMPTS};
use crate::upstream::UpstreamError;

/// Logged when the client went away before a status could be sent (as nginx does).
const CLIENT_GONE: u16 = 499;

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
    let policy = s
        .record
        .route
        .and_then(|r| snap.config.routes[r].retry.as_ref());
    let head_len = s.head.len;

    let mut body = RequestBody::new(s.head.body, limits.max_body_bytes);
    let cursor = match body.advance(&conn.buf[head_len..]) {
        Ok(n) => head_len + n,
        Err(e) => return answer_error(shard, conn, s, e.status()).await,
    };

    // Uncounted when nothing reads it: the shared counter is a cross-core write per request.
    let _request_permit = match state.count_requests {
        false => None,
        true => match state
            .requests
            .try_acquire(upstream.circuit_breaker.max_requests)
        {
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
    let chooser = Chooser {
        state,
        upstream,
        shard: shard.id,
        key,
        now: upstream.outlier.as_ref().map(|_| outlier::now_ms()),
    };
    let replay_cap = policy.map_or(0, |p| p.max_replay_body);
    let mut upload = Upload {
        body,
        head_len,
        cursor,
        replay: match policy {
            None => Replay::Off,
            Some(_) if (cursor - head_len) as u64 > replay_cap => Replay::Overflowed,
            Some(_) => Replay::InBuffer,
        },
        replay_cap,
        continued: false,
        hinted: false,
    };
    let ctx = Context {
        shard,
        snap,
        upstream,
        state,
    };
    let idempotent = s.head.method.is_idempotent();
    let mut ubuf = shard.take_buffer();
    let started = Instant::now();
    let mut tried = Tried::default();
    // This request's retry in flight, counted against the upstream's retry budget.
    let mut retry_permit = None;

    let (answered, target_index, clock, mut load) = loop {
        let Some(target_index) = chooser.choose(tried.as_slice()) else {
            shard.give_buffer(ubuf);
            return answer_error(shard, conn, s, UpstreamError::NoTarget.status()).await;
        };
        let target = &state.targets[target_index];
        tried.push(target_index);
        let load = Load::start(&*state.balancer, shard.id, target_index);
        let clock = TryClock::start(policy.and_then(|p| p.per_try_timeout));
        // A stale pooled connection may be swapped for a fresh one mid-try when the whole
        // request is at hand to send again and sending it twice is harmless.
        let resendable = idempotent && upload.body.is_done() && upload.replay != Replay::Overflowed;
        let result = ctx
            .run(conn, s, &mut upload, &mut ubuf, target, clock, resendable)
            .await;

        let why = match &result {
            _ if upload.hinted => None,
            Ok(_) => Some((Condition::Status(s.response.status), true)),
            Err(Failed {
                failure: Failure::Upstream(e),
                sent,
                buffer_lost: false,
            }) => Some((condition(e), *sent)),
            // The client's side failed, or a breaker refused: another target changes nothing.
            Err(_) => None,
        };
        let again = match (policy, why) {
            (Some(p), Some((why, sent))) => {
                let attempt = retry::Attempt {
                    tries: tried.len,
                    sent,
                    idempotent,
                    replayable: upload.replayable(),
                };
                p.allows(why, attempt) && {
                    // The retry this request had in flight is over; its next one must fit.
                    retry_permit.take();
                    match state
                        .retries
                        .try_acquire(p.budget(state.requests.current()))
                    {
                        Some(permit) => {
                            let _ = retry_permit.insert(permit);
                            true
                        }
                        None => {
                            target.metrics.over_retry_budget(shard.id);
                            false
                        }
                    }
                }
            }
            _ => false,
        };
        let Some(p) = policy.filter(|_| again) else {
            match result {
                Ok(answered) => break (answered, target_index, clock, load),
                Err(failed) => {
                    shard.give_buffer(ubuf);
                    let last = (target_index, tried.len);
                    return fail(&ctx, conn, s, up, last, failed, &upload, started).await;
                }
            }
        };

        // This try is over: count it as an exchange of its own.
        match result {
            Ok(answered) => {
                // A response we won't relay: its connection goes, body unread.
                drop(answered);
                target.metrics.record(shard.id, load.started.elapsed());
            }
            Err(Failed {
                failure: Failure::Upstream(e),
                ..
            }) => {
                crate::log::debug(format_args!(
                    "upstream {} target {}: {e:?}; trying again",
                    upstream.name, target.addr
                ));
                target.metrics.error(shard.id, e.kind());
            }
            Err(_) => {}
        }
        report_outcome(upstream, state, target, false);
        drop(load);
        target.metrics.retried(shard.id);
        let wait = p.backoff(tried.len);
        if !wait.is_zero() {
            monoio::time::sleep(wait).await;
        }
    };

    let target = &state.targets[target_index];
    let Answered {
        mut stream,
        permit,
        in_use: _in_use,
    } = answered;
    let resp = &s.response;
    s.record.status = resp.status;
    s.record.bytes_received = (head_len as u64) + upload.body.consumed();
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
        clock,
    };
    let result = relay.run(resp.len, resp.framing, framing).await;
    let upstream_error = match &result {
        Err(RelayError::Upstream(e)) => {
            if let IoError::Timeout = e {
                target
                    .metrics
                    .timeout(shard.id, clock.phase(TimeoutPhase::Read));
            }
            Some(e.kind())
        }
        Ok(_) | Err(RelayError::Client) => None,
    };
    load.ok = upstream_error.is_none() && resp.status < 500;
    report_outcome(upstream, state, target, load.ok);
    s.record.upstream = Some(UpstreamRecord {
        tries: tried.len,
        upstream: up,
        target: target_index,
        duration: started.elapsed(),
        error: upstream_error,
    });
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
            conn.consumed = upload.cursor;
            Outcome::KeepAlive
        }
        _ => Outcome::Close,
    }
}

/// The last try failed and no other follows: answer for it.
#[allow(clippy::too_many_arguments)]
async fn fail(
    ctx: &Context<'_>,
    conn: &mut Client,
    s: &mut Scratch,
    up: usize,
    (target_index, tries): (usize, u32),
    failed: Failed,
    upload: &Upload,
    started: Instant,
) -> Outcome {
    let Context {
        shard,
        upstream,
        state,
        ..
    } = *ctx;
    let target = &state.targets[target_index];
    let record = |error: Option<UpstreamErrorKind>| UpstreamRecord {
        tries,
        upstream: up,
        target: target_index,
        duration: started.elapsed(),
        error,
    };
    s.record.bytes_received = (upload.head_len as u64) + upload.body.consumed();
    if !upload.body.is_done() || failed.buffer_lost {
        // The rest of the body is still coming (or gone with the buffer): it can't be taken
        // for the next request.
        s.head.connection.close = true;
    }
    match failed.failure {
        Failure::Upstream(e) => {
            s.record.upstream = Some(record(Some(e.kind())));
            report_outcome(upstream, state, target, false);
            crate::log::debug(format_args!(
                "upstream {} target {}: {e:?}",
                upstream.name, target.addr
            ));
            answer_error(shard, conn, s, e.status()).await
        }
        Failure::Client(status) => {
            s.record.upstream = Some(record(None));
            s.head.connection.close = true;
            answer_error(shard, conn, s, status).await
        }
        Failure::Overloaded => answer_overloaded(shard, conn, s).await,
        Failure::ClientGone => {
            s.record.upstream = Some(record(None));
            s.record.status = CLIENT_GONE;
            Outcome::Close
        }
    }
}

/// The retry condition a failed try meets.
fn condition(e: &UpstreamError) -> Condition {
    match e {
        UpstreamError::NoTarget | UpstreamError::Connect(_) | UpstreamError::ConnectTimeout => {
            Condition::ConnectFailure
        }
        UpstreamError::Timeout => Condition::Timeout,
        UpstreamError::Broken(_) | UpstreamError::BadResponse(_) => Condition::Reset,
    }
}

/// The targets a request has tried, in order; no allocation.
#[derive(Default)]
struct Tried {
    targets: [usize; MAX_ATTEMPTS as usize],
    len: u32,
}

impl Tried {
    fn push(&mut self, target: usize) {
        if let Some(slot) = self.targets.get_mut(self.len as usize) {
            *slot = target;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[usize] {
        &self.targets[..self.len as usize]
    }
}

/// Picks a target for each try: a healthy one not tried yet, else a healthy one again, else
/// (in `fail_open` panic mode) any.
struct Chooser<'a> {
    state: &'a UpstreamState,
    upstream: &'a Upstream,
    shard: usize,
    key: Option<u64>,
    /// Outlier clock, read once per request; None when the upstream has no outlier policy.
    now: Option<u64>,
}

impl Chooser<'_> {
    fn choose(&self, tried: &[usize]) -> Option<usize> {
        let healthy = |i: usize| {
            let t = &self.state.targets[i];
            t.health.is_healthy() && self.now.is_none_or(|now| !t.outlier.is_ejected(now))
        };
        let pick =
            |usable: &dyn Fn(usize) -> bool| self.state.balancer.pick(self.shard, self.key, usable);
        let fresh = |i: usize| !tried.contains(&i);
        let found = match tried.is_empty() {
            true => pick(&healthy),
            false => pick(&|i| fresh(i) && healthy(i)).or_else(|| pick(&healthy)),
        };
        found.or_else(|| match self.upstream.panic_mode {
            // Every target failed its checks: trusting them all beats refusing everyone.
            PanicMode::FailOpen => pick(&fresh).or_else(|| pick(&|_| true)),
            PanicMode::FailClosed => None,
        })
    }
}

/// Feeds passive health: one outcome per exchange with a target.
fn report_outcome(upstream: &Upstream, state: &UpstreamState, target: &TargetRef, ok: bool) {
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
    started: Instant,
    ok: bool,
}

impl<'a> Load<'a> {
    fn start(balancer: &'a dyn Balance, shard: usize, target: usize) -> Load<'a> {
        balancer.started(shard, target);
        Load {
            balancer,
            shard,
            target,
            started: Instant::now(),
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
