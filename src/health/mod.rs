//! Active health checks: probe each target over HTTP off the shards, and publish the verdict in
//! one relaxed atomic per target that the balancers read.
//!
//! - `config.rs`    [`CheckConfig`]: what a check asks (path, Host, interval, timeout,
//!   thresholds, expected statuses), `expected_statuses` parsing and validation
//! - `target.rs`    [`TargetHealth`]: the flag shards read, and the counters for metrics
//! - `probe.rs`     one probe on a blocking socket: connect, `GET`, read the status line
//! - `schedule.rs`  who is due when, runs of passes and failures, transitions (no threads)
//! - `checker.rs`   [`HealthChecker`]: the scheduler thread and the probe threads
//!
//! # Threads
//!
//! One scheduler thread (`health`) owns all the bookkeeping: it starts each probe when it
//! falls due, takes results back over a channel, updates the target's [`TargetHealth`] and
//! logs transitions; it never does network I/O itself, so it is never held up by a target.
//! Probes run on a pool of `health-probe` threads with plain blocking `std::net` sockets and
//! one deadline per probe. The pool starts with one thread and grows only when every thread is
//! busy, up to [`MAX_PROBE_THREADS`]: healthy targets answer in well under a millisecond, so a
//! thread serves many of them, and threads pile up only for targets that hang, each for at most
//! its `timeout`. That keeps the thread count bounded whatever the number of targets (one
//! thread per target would not be, once discovery can add addresses), while a hanging target
//! delays nobody else until more than `MAX_PROBE_THREADS` hang at once. A target has at most one
//! probe in flight, so a hanging target costs one thread and one connection, not a growing pile.
//!
//! # Wiring
//!
//! The registry (`snapshot.rs`) keeps one `Arc<TargetHealth>` per (upstream, address), like
//! the metrics handles, and each snapshot's targets hold a clone for the balancer to read with
//! [`TargetHealth::is_healthy`]. After every snapshot build (start-up in `control/mod.rs`, each
//! reload and address swap in `control/reload.rs`) the checker gets
//! `Snapshot::health_probes`: one [`Probe`] per target of each upstream with a
//! `health_check`. A target that leaves the list turns healthy if it was not, since nothing
//! would ever turn it back. `config/validate.rs` refuses what [`CheckConfig::validate`] does.

mod checker;
mod config;
mod probe;
mod schedule;
mod target;

#[cfg(test)]
mod tests;

pub use checker::{HealthChecker, Probe, MAX_PROBE_THREADS};
pub use config::CheckConfig;
pub use target::{FailureKind, TargetHealth};
