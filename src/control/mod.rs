//! The management side: everything off the shards. Signals, reload, graceful drain, the admin
//! listener and stats aggregation live here; shards learn of changes through the snapshot,
//! relaxed atomics and their control channels, never by waiting on this thread.
//!
//! Threads: `main` runs [`run`] (start-up, then the event loop and the drain); `signals`
//! forwards signals; `reload` does the slow part of reloads (file, DNS, binds) and swaps in
//! the address sets that `resolver` finds when some upstream has a `resolve_interval`.

mod discovery;
mod listeners;
mod reload;
mod signals;
pub mod systemd;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{select, Receiver};

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::log;
use crate::metrics::Metrics;
use crate::shard::{self, ShardPlan};
use crate::shared::Shared;
use crate::snapshot::{Registry, Snapshot};
use listeners::Listeners;
use reload::{Fixed, Reloader};
use signals::Signal;

/// A reload asked for by the admin listener (`POST /reload`) or SIGHUP. The reply comes when
/// the reload is done: the new snapshot is live, or it was refused and the old one still serves.
pub struct ReloadRequest {
    pub reply: crossbeam_channel::Sender<ReloadOutcome>,
}

/// `Ok` with notes for the operator (e.g. keys that need a restart), or every error, each as
/// `file: key.path: reason`.
pub type ReloadOutcome = Result<Vec<String>, Vec<String>>;

pub struct Options {
    pub config_path: PathBuf,
    /// `--workers`, overriding `server.workers`.
    pub workers: Option<usize>,
}

/// Starts the shards on `config` and manages them until a stop signal has drained them.
pub fn run(options: Options, config: Config, hash: String) -> Result<(), String> {
    // First, so a stop signal during start-up still ends the process cleanly.
    let signals = signals::listen().map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let shards = match options.workers.unwrap_or(config.server.workers) {
        0 => cores.len().max(1),
        n => n,
    };
    let fixed = Fixed {
        workers: config.server.workers,
        driver: config.server.driver,
        admin: config.admin.clone(),
    };
    let driver = config.server.driver;

    let mut listeners = Listeners::new();
    let change = listeners.prepare(&config.server.listen, shards)?;
    let (mut sockets, _) = listeners.commit(change);

    let metrics = Metrics::new(shards);
    let access_log =
        AccessLog::start().map_err(|e| format!("cannot start the access log writer: {e}"))?;
    if let Some(log) = &config.access_log {
        access_log
            .configure(Some(&log.path))
            .map_err(|e| format!("access_log.path: cannot open {:?}: {e}", log.path))?;
    }
    let mut registry = Registry::new(Arc::clone(&metrics)).with_access_log(Arc::clone(&access_log));
    let admin = config.admin.clone();
    let shared = Shared::new(Snapshot::build(config, hash, &mut registry, shards));
    let health = crate::health::HealthChecker::start()
        .map_err(|e| format!("cannot start the health checker: {e}"))?;
    health.update(shared.snapshot.load().health_probes());
    let mut discovery = discovery::Discovery::new();
    discovery
        .watch(&shared.snapshot.load().config)
        .map_err(|e| format!("cannot start the resolver thread: {e}"))?;

    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let (exited_tx, exited_rx) = crossbeam_channel::unbounded();
    let mut commands = Vec::with_capacity(shards);
    for id in 0..shards {
        let (tx, rx) = crossbeam_channel::unbounded();
        commands.push(tx);
        let plan = ShardPlan {
            id,
            core: (!cores.is_empty()).then(|| cores[id % cores.len()]),
            driver,
            listeners: std::mem::take(&mut sockets[id]),
            commands: rx,
        };
        shard::spawn(
            plan,
            Arc::clone(&shared),
            ready_tx.clone(),
            exited_tx.clone(),
        )
        .map_err(|e| format!("cannot start shard {id}: {e}"))?;
    }
    drop((ready_tx, exited_tx));
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok((id, Ok(driver))) => {
                log::info(format_args!("shard {id}: accepting, driver {driver}"))
            }
            Ok((id, Err(e))) => return Err(format!("shard {id}: {e}")),
            Err(_) => return Err("a shard exited during start-up".into()),
        }
    }
    let (reload_tx, reload_rx) = crossbeam_channel::unbounded::<ReloadRequest>();
    if let Some(admin) = admin {
        // Up before the `listening` line, so whoever waits for that line can use it.
        let listener = std::net::TcpListener::bind(admin.listen)
            .map_err(|e| format!("admin.listen: cannot listen on {}: {e}", admin.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let context = crate::admin::AdminContext {
            shared: Arc::clone(&shared),
            metrics: Arc::clone(&metrics),
            reload: reload_tx.clone(),
            access_log_dropped: {
                let log = Arc::clone(&access_log);
                Arc::new(move || log.dropped())
            },
        };
        crate::admin::spawn(listener, context)
            .map_err(|e| format!("cannot start the admin listener: {e}"))?;
        eprintln!("admin listening {addr}");
    }
    let addrs: Vec<String> = listeners.bound().iter().map(ToString::to_string).collect();
    eprintln!("listening {}", addrs.join(", "));
    systemd::ready();

    Reloader {
        path: options.config_path,
        shared: Arc::clone(&shared),
        registry,
        listeners,
        shards: commands.clone(),
        fixed,
        metrics,
        access_log: Arc::clone(&access_log),
        health,
        discovery,
    }
    .spawn(reload_rx)
    .map_err(|e| format!("cannot start the reload thread: {e}"))?;

    let tick = crossbeam_channel::tick(OBSERVE_INTERVAL);
    let mut outliers = HashMap::new();
    loop {
        select! {
            recv(tick) -> _ => observe_outliers(&shared, &mut outliers),
            recv(signals) -> signal => match signal {
                Ok(Signal::Reload) => {
                    // Nobody waits for the answer: the reload thread logs the outcome.
                    let (reply, _) = crossbeam_channel::bounded(1);
                    let _ = reload_tx.send(ReloadRequest { reply });
                }
                Ok(Signal::ReopenLogs) => {
                    log::info(format_args!("SIGUSR1: reopening the access log"));
                    access_log.reopen();
                }
                Ok(Signal::Stop) | Err(_) => break,
            },
        }
    }
    drain(&shared, &commands, &signals, &exited_rx, shards);
    access_log.flush();
    Ok(())
}

/// How often the management thread looks for outlier ejections and returns to log and count.
const OBSERVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Logs and counts outlier ejections and returns. Shards only flip atomics; noticing the
/// change here keeps log writes (and their lock) off the request path.
fn observe_outliers(shared: &Shared, seen: &mut HashMap<(String, SocketAddr), (u32, bool)>) {
    let snapshot = shared.snapshot.load();
    let now = crate::upstream::outlier::now_ms();
    for (upstream, state) in snapshot.config.upstreams.iter().zip(&snapshot.upstreams) {
        let Some(policy) = &upstream.outlier else {
            continue;
        };
        for target in &state.targets {
            let ejections = target.outlier.ejections();
            let ejected = target.outlier.is_ejected(now);
            let last = seen
                .entry((upstream.name.clone(), target.addr))
                .or_insert((0, false));
            if ejections > last.0 {
                log::warn(format_args!(
                    "outlier: upstream {:?} target {} ejected after {} failures in a row (ejection {ejections}, for {})",
                    upstream.name,
                    target.addr,
                    policy.consecutive_failures,
                    humantime::format_duration(policy.base_ejection_time * ejections)
                ));
            } else if last.1 && !ejected {
                log::info(format_args!(
                    "outlier: upstream {:?} target {} is back",
                    upstream.name, target.addr
                ));
            }
            target
                .metrics
                .ejections_observed(u64::from(ejections.saturating_sub(last.0)), ejected);
            *last = (ejections, ejected);
        }
    }
}

/// Graceful shutdown: shards stop accepting, close idle connections and finish busy ones with
/// `Connection: close`; returns when all shards are done, at `drain_timeout`, or at a second
/// stop signal.
fn drain(
    shared: &Shared,
    commands: &[crossbeam_channel::Sender<shard::control::Command>],
    signals: &Receiver<Signal>,
    exited: &Receiver<usize>,
    shards: usize,
) {
    let timeout = shared.snapshot.load().config.server.drain_timeout;
    log::info(format_args!(
        "draining: {} open connections, up to {}",
        shared.open_connections(),
        humantime::format_duration(timeout)
    ));
    systemd::stopping();
    shared.start_draining();
    for tx in commands {
        let _ = tx.send(shard::control::Command::Drain);
    }
    let deadline = crossbeam_channel::after(timeout);
    let mut remaining = shards;
    while remaining > 0 {
        select! {
            recv(exited) -> done => match done {
                Ok(_) => remaining -= 1,
                Err(_) => break,
            },
            recv(signals) -> signal => {
                if matches!(signal, Ok(Signal::Stop)) {
                    log::warn(format_args!("second stop signal: exiting now"));
                    return;
                }
            },
            recv(deadline) -> _ => {
                log::warn(format_args!(
                    "drain timeout: closing {} connections still open",
                    shared.open_connections()
                ));
                return;
            },
        }
    }
    log::info(format_args!("drained: exiting"));
}
