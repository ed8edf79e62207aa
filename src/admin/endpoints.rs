//! What each admin path answers. Every function here runs on a connection's own thread.

use std::time::UNIX_EPOCH;

use crossbeam_channel::{RecvTimeoutError, SendTimeoutError};
use serde_json::{json, Value};

use super::redact::redact;
use super::{AdminContext, Settings};
use crate::control::ReloadRequest;
use crate::metrics::ProcessInfo;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
/// The exposition format's own media type (Prometheus text format 0.0.4).
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A response before it is framed.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// For 405 (RFC 9110 §15.5.6).
    pub allow: Option<&'static str>,
}

impl Reply {
    pub(super) fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: TEXT,
            body: body.as_bytes().to_vec(),
            allow: None,
        }
    }

    fn json(status: u16, value: &Value) -> Reply {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Reply {
            status,
            content_type: JSON,
            body,
            allow: None,
        }
    }

    fn method_not_allowed(allow: &'static str) -> Reply {
        Reply {
            allow: Some(allow),
            ..Reply::text(405, "method not allowed\n")
        }
    }
}

/// Routes one request. `HEAD` is answered as `GET` (the connection drops the body).
pub(super) fn answer(ctx: &AdminContext, settings: &Settings, method: &str, target: &str) -> Reply {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let read_only = matches!(method, "GET" | "HEAD");
    match path {
        "/healthz" | "/metrics" | "/config" | "/upstreams" if !read_only => {
            Reply::method_not_allowed("GET, HEAD")
        }
        "/healthz" => healthz(ctx),
        "/metrics" => metrics(ctx),
        "/config" => config(ctx),
        "/upstreams" => upstreams(ctx),
        "/reload" if method != "POST" => Reply::method_not_allowed("POST"),
        "/reload" => reload(ctx, settings),
        _ => Reply::text(404, "not found\n"),
    }
}

/// 200 while serving; 503 once draining, so a load balancer stops sending new connections.
fn healthz(ctx: &AdminContext) -> Reply {
    if ctx.shared.is_draining() {
        Reply::text(503, "draining\n")
    } else {
        Reply::text(200, "ok\n")
    }
}

fn metrics(ctx: &AdminContext) -> Reply {
    let snapshot = ctx.shared.snapshot.load_full();
    let info = ProcessInfo {
        version: env!("CARGO_PKG_VERSION"),
        config_hash: &snapshot.hash,
        config_loaded_at: snapshot.loaded_at,
        access_log_dropped: (ctx.access_log_dropped)(),
        draining: ctx.shared.is_draining(),
    };
    let mut text = String::with_capacity(16 * 1024);
    ctx.metrics.render(&mut text, &info);
    Reply {
        status: 200,
        content_type: PROMETHEUS,
        body: text.into_bytes(),
        allow: None,
    }
}

/// The file as parsed (defaults filled in), secrets redacted, with its hash and load time, and
/// each upstream's target addresses as they are now: names as last resolved.
fn config(ctx: &AdminContext) -> Reply {
    let snapshot = ctx.shared.snapshot.load_full();
    let mut config = match serde_json::to_value(&snapshot.config.source) {
        Ok(v) => v,
        Err(e) => return Reply::text(500, &format!("cannot show the config: {e}\n")),
    };
    redact(&mut config);
    let loaded_at = snapshot
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let targets: serde_json::Map<String, Value> = snapshot
        .config
        .upstreams
        .iter()
        .map(|u| {
            let addrs: Vec<String> = u.targets.iter().map(|t| t.addr.to_string()).collect();
            (u.name.clone(), json!(addrs))
        })
        .collect();
    Reply::json(
        200,
        &json!({ "hash": snapshot.hash, "loaded_at": loaded_at, "config": config, "targets": targets }),
    )
}

/// Each upstream's targets as requests see them now: active-check health, outlier ejection,
/// and what is open to them, across shards. What an operator polls while a target drains.
fn upstreams(ctx: &AdminContext) -> Reply {
    let snapshot = ctx.shared.snapshot.load_full();
    let now = crate::upstream::outlier::now_ms();
    let upstreams: Vec<Value> = snapshot
        .config
        .upstreams
        .iter()
        .zip(&snapshot.upstreams)
        .map(|(u, state)| {
            let targets: Vec<Value> = u
                .targets
                .iter()
                .zip(&state.targets)
                .map(|(t, live)| {
                    let healthy = live.health.is_healthy();
                    let ejected = u.outlier.is_some() && live.outlier.is_ejected(now);
                    json!({
                        "addr": live.addr.to_string(),
                        "weight": t.weight,
                        "usable": healthy && !ejected,
                        "healthy": healthy,
                        "ejected": ejected,
                        "ejections": live.outlier.ejections(),
                        "connections": live.connections.current(),
                    })
                })
                .collect();
            json!({
                "name": u.name,
                "balancer": u.balancer.name(),
                "health_checks": u.health_check.is_some(),
                "outlier_detection": u.outlier.is_some(),
                // Counted only when a breaker or a retry budget needs it.
                "requests_in_flight": state.count_requests.then(|| state.requests.current()),
                "retries_in_flight": state.retries.current(),
                // Waiting for a connection while a target is at max_connections.
                "pending": state.pending.current(),
                "targets": targets,
            })
        })
        .collect();
    Reply::json(200, &json!({ "upstreams": upstreams }))
}

/// Asks the management thread to reload and answers with its outcome: 200 with notes, 400
/// with every error, 504 if it takes longer than `reload_timeout`, 503 if nobody listens.
fn reload(ctx: &AdminContext, settings: &Settings) -> Reply {
    let error = |status, message: &str| {
        Reply::json(status, &json!({ "status": "error", "errors": [message] }))
    };
    let timed_out = format!(
        "the reload did not finish within {}",
        humantime::format_duration(settings.reload_timeout)
    );
    let (reply, outcome) = crossbeam_channel::bounded(1);
    match ctx
        .reload
        .send_timeout(ReloadRequest { reply }, settings.reload_timeout)
    {
        Ok(()) => {}
        Err(SendTimeoutError::Timeout(_)) => return error(504, &timed_out),
        Err(SendTimeoutError::Disconnected(_)) => {
            return error(503, "reloads are not being served (management thread gone)")
        }
    }
    match outcome.recv_timeout(settings.reload_timeout) {
        Ok(Ok(notes)) => Reply::json(200, &json!({ "status": "ok", "notes": notes })),
        Ok(Err(errors)) => Reply::json(400, &json!({ "status": "error", "errors": errors })),
        Err(RecvTimeoutError::Timeout) => error(504, &timed_out),
        Err(RecvTimeoutError::Disconnected) => {
            error(503, "the reload was dropped before it finished")
        }
    }
}
