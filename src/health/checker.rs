//! The checker's threads: one scheduler that owns all the bookkeeping, and a pool of probe
//! threads that do the blocking I/O. See the module docs for why this shape.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{select, Receiver, Sender};

use super::probe::{self, Failure};
use super::schedule::{Job, Schedule, Transition};
use super::{CheckConfig, TargetHealth};
use crate::log;

/// Probe threads at most. Threads are started only when every one is busy (the pool grows to
/// the number of probes in flight at once, which is the number of slow targets, not of
/// targets) and are kept once started. A probe holds its thread for at most its `timeout`;
/// past this many slow or hanging targets at once, the probes of the others wait for a
/// thread, and are delayed (never failed) by up to one `timeout`.
pub const MAX_PROBE_THREADS: usize = 64;

/// One target to check, as [`HealthChecker::update`] takes it.
#[derive(Debug, Clone)]
pub struct Probe {
    pub upstream: String,
    pub addr: SocketAddr,
    /// Where the results go: the registry's handle for (upstream, addr).
    pub health: Arc<TargetHealth>,
    pub config: CheckConfig,
}

/// Runs active checks off the shards, on its own threads: a scheduler and a bounded pool of
/// probe threads with blocking sockets. Dropping it stops the checks (a probe in flight
/// finishes within its timeout, and its result is dropped).
pub struct HealthChecker {
    /// `None` only while dropping, so the scheduler sees the channel close.
    updates: Option<Sender<Vec<Probe>>>,
    scheduler: Option<JoinHandle<()>>,
}

impl HealthChecker {
    pub fn start() -> io::Result<HealthChecker> {
        let (updates, updates_rx) = crossbeam_channel::unbounded();
        // The first probe thread is started here, so a process that cannot start threads
        // finds out now rather than by checks that never run.
        let pool = Pool::start(MAX_PROBE_THREADS)?;
        let scheduler = std::thread::Builder::new()
            .name("health".into())
            .spawn(move || run(&updates_rx, pool))?;
        Ok(HealthChecker {
            updates: Some(updates),
            scheduler: Some(scheduler),
        })
    }

    /// Replaces the set of probes (called at start and after every reload). Targets that
    /// stay, by (upstream, address), keep their state and their schedule; removed ones stop
    /// being probed; new ones are probed at once (within `schedule::START_SPREAD`, spread so
    /// they do not all connect in the same instant). Returns without waiting for the checker.
    pub fn update(&self, probes: Vec<Probe>) {
        if let Some(updates) = &self.updates {
            // Fails only if the scheduler is gone, which happens only on drop.
            let _ = updates.send(probes);
        }
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.updates = None;
        if let Some(scheduler) = self.scheduler.take() {
            // Prompt: the scheduler never blocks on a probe, only on its channels.
            let _ = scheduler.join();
        }
    }
}

/// A probe's result, on its way back to the scheduler.
struct Done {
    entry: u64,
    result: Result<u16, Failure>,
}

/// The scheduler: starts probes as they fall due, applies results, logs transitions. The
/// only thread that touches the [`Schedule`], so none of it needs a lock.
fn run(updates: &Receiver<Vec<Probe>>, mut pool: Pool) {
    let mut schedule = Schedule::default();
    loop {
        let now = Instant::now();
        while let Some(job) = schedule.take_due(now) {
            pool.dispatch(job);
        }
        let wake = match schedule.next_due() {
            Some(due) => crossbeam_channel::at(due),
            None => crossbeam_channel::never(),
        };
        select! {
            recv(updates) -> probes => match probes {
                Ok(probes) => {
                    for t in schedule.update(probes, Instant::now()) {
                        report(&t);
                    }
                    log::debug(format_args!("health check: {} targets", schedule.len()));
                }
                Err(_) => return,
            },
            recv(pool.results) -> done => {
                if let Ok(done) = done {
                    pool.busy -= 1;
                    if let Some(t) = schedule.complete(done.entry, done.result, Instant::now()) {
                        report(&t);
                    }
                }
            },
            recv(wake) -> _ => {},
        }
    }
}

fn report(t: &Transition) {
    if t.healthy() {
        log::info(format_args!("{t}"));
    } else {
        log::warn(format_args!("{t}"));
    }
}

/// Probe threads and the scheduler's count of them; only the scheduler uses it.
struct Pool {
    jobs: Sender<Job>,
    jobs_rx: Receiver<Job>,
    results_tx: Sender<Done>,
    results: Receiver<Done>,
    threads: usize,
    /// Jobs sent and not yet answered.
    busy: usize,
    max: usize,
    /// Whether the last attempt to start a thread failed, so a lasting failure is logged once.
    spawn_failing: bool,
}

impl Pool {
    fn start(max: usize) -> io::Result<Pool> {
        let (jobs, jobs_rx) = crossbeam_channel::unbounded();
        let (results_tx, results) = crossbeam_channel::unbounded();
        let mut pool = Pool {
            jobs,
            jobs_rx,
            results_tx,
            results,
            threads: 0,
            busy: 0,
            max,
            spawn_failing: false,
        };
        pool.spawn()?;
        Ok(pool)
    }

    fn dispatch(&mut self, job: Job) {
        if self.busy >= self.threads && self.threads < self.max {
            match self.spawn() {
                Ok(()) => self.spawn_failing = false,
                Err(e) => {
                    // The job waits for a busy thread instead (there is at least one).
                    if !self.spawn_failing {
                        log::warn(format_args!(
                            "health check: cannot start a probe thread ({} running): {e}",
                            self.threads
                        ));
                    }
                    self.spawn_failing = true;
                }
            }
        }
        self.busy += 1;
        // Cannot fail: `self` holds a receiver.
        let _ = self.jobs.send(job);
    }

    fn spawn(&mut self) -> io::Result<()> {
        let (jobs, results) = (self.jobs_rx.clone(), self.results_tx.clone());
        std::thread::Builder::new()
            .name("health-probe".into())
            .spawn(move || probe_thread(&jobs, &results))?;
        self.threads += 1;
        Ok(())
    }
}

/// Runs probes until the scheduler goes away (its `Pool`, and so every job sender, dropped).
fn probe_thread(jobs: &Receiver<Job>, results: &Sender<Done>) {
    for job in jobs {
        let result = match &job.request {
            Ok(request) => probe::run(job.addr, request, job.timeout),
            Err(failure) => Err(failure.clone()),
        };
        if results
            .send(Done {
                entry: job.entry,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}
