//! The checker's bookkeeping, with time passed in: which targets are checked, when each is
//! next due, the run of successes or failures each is on, and the transitions they cause.
//! No threads and no clock here, so the rules are tested on their own.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::probe::{self, Failure};
use super::{CheckConfig, Probe, TargetHealth};

/// New targets' first probes are spread over this long (or their interval, if shorter), so
/// that a config with hundreds of targets does not open hundreds of connections in the same
/// millisecond, while a new target is still checked within a second. Each keeps its offset
/// afterwards, so later rounds stay spread too.
pub(super) const START_SPREAD: Duration = Duration::from_secs(1);

/// The shortest interval honoured; a zero interval (which config validation should refuse)
/// would otherwise probe in a loop.
pub(super) const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The longest interval honoured, so that `Instant` arithmetic cannot overflow (and panic)
/// on an absurd one. A target checked less than daily is not being checked.
pub(super) const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

type Key = (String, SocketAddr);

/// One probe to run now.
pub(super) struct Job {
    pub(super) entry: u64,
    pub(super) addr: SocketAddr,
    pub(super) request: Result<Arc<[u8]>, Failure>,
    pub(super) timeout: Duration,
}

/// A health change to log.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Transition {
    pub(super) upstream: String,
    pub(super) addr: SocketAddr,
    pub(super) cause: Cause,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Cause {
    /// Turned unhealthy: this many failures in a row, the last for `reason`.
    Failed { run: u32, reason: String },
    /// Turned healthy: this many passes in a row, the last with `status`.
    Passed { run: u32, status: u16 },
    /// Turned healthy because nothing checks it any more (its upstream's check was removed,
    /// or the target itself): an unchecked target must not stay out of rotation for good.
    Unchecked,
}

impl Transition {
    pub(super) fn healthy(&self) -> bool {
        !matches!(self.cause, Cause::Failed { .. })
    }
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Transition { upstream, addr, .. } = self;
        write!(f, "health check: upstream {upstream:?} target {addr} ")?;
        match &self.cause {
            Cause::Failed { run, reason } => {
                write!(f, "is unhealthy after {run} failed checks: {reason}")
            }
            Cause::Passed { run, status } => {
                write!(
                    f,
                    "is healthy again after {run} passed checks (status {status})"
                )
            }
            Cause::Unchecked => f.write_str("is no longer checked: healthy again"),
        }
    }
}

struct Entry {
    key: Key,
    health: Arc<TargetHealth>,
    config: CheckConfig,
    request: Result<Arc<[u8]>, Failure>,
    /// When the next probe starts (or the one in flight was due).
    due: Instant,
    in_flight: bool,
    /// The current run: consecutive passes, or consecutive failures; one of them is zero.
    passes: u32,
    failures: u32,
}

impl Entry {
    fn interval(&self) -> Duration {
        self.config.interval.clamp(MIN_INTERVAL, MAX_INTERVAL)
    }
}

#[derive(Default)]
pub(super) struct Schedule {
    entries: HashMap<u64, Entry>,
    by_key: HashMap<Key, u64>,
    /// Entry ids by due time, soonest first. Stale items (an entry removed or rescheduled
    /// since) are skipped when they come up, which is cheaper than finding them in the heap.
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
}

impl Schedule {
    /// Replaces the set of targets. One that stays (same upstream and address) keeps its
    /// run, its due time and any probe in flight; one that goes is forgotten, and the result
    /// of its probe in flight ignored, and if it was unhealthy it turns healthy (returned, to
    /// log); new ones start within [`START_SPREAD`].
    pub(super) fn update(&mut self, probes: Vec<Probe>, now: Instant) -> Vec<Transition> {
        let mut wanted: HashMap<Key, Probe> = HashMap::with_capacity(probes.len());
        for p in probes {
            // A target listed twice in one upstream is one target; the last entry wins.
            wanted.insert((p.upstream.clone(), p.addr), p);
        }
        let gone: Vec<Key> = self
            .by_key
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        let mut transitions = Vec::new();
        for key in gone {
            let Some(entry) = self
                .by_key
                .remove(&key)
                .and_then(|id| self.entries.remove(&id))
            else {
                continue;
            };
            if !entry.health.is_healthy() {
                entry.health.mark(true);
                transitions.push(Transition {
                    upstream: key.0,
                    addr: key.1,
                    cause: Cause::Unchecked,
                });
            }
        }
        let mut fresh = Vec::new();
        for (key, p) in wanted {
            let id = self.by_key.get(&key).copied();
            match id.and_then(|id| Some((id, self.entries.get_mut(&id)?))) {
                Some((id, entry)) => {
                    if let Some(due) = entry.restate(p, now) {
                        self.queue.push(Reverse((due, id)));
                    }
                }
                None => fresh.push(p),
            }
        }
        // Sorted, so the spread (and the tests) do not depend on hash order.
        fresh.sort_by(|a, b| (&a.upstream, a.addr).cmp(&(&b.upstream, b.addr)));
        let n = fresh.len() as u32;
        for (i, p) in fresh.into_iter().enumerate() {
            let id = self.next_id;
            self.next_id += 1;
            let mut entry = Entry {
                key: (p.upstream, p.addr),
                request: probe::request(&p.config, p.addr).map(Arc::from),
                health: p.health,
                config: p.config,
                due: now,
                in_flight: false,
                passes: 0,
                failures: 0,
            };
            entry.due = now + entry.interval().min(START_SPREAD) / n * i as u32;
            self.queue.push(Reverse((entry.due, id)));
            self.by_key.insert(entry.key.clone(), id);
            self.entries.insert(id, entry);
        }
        transitions
    }

    /// When the next probe is due, if any target is waiting for one.
    pub(super) fn next_due(&mut self) -> Option<Instant> {
        while let Some(&Reverse((due, id))) = self.queue.peek() {
            if self.is_current(due, id) {
                return Some(due);
            }
            self.queue.pop();
        }
        None
    }

    /// The next probe due by `now`, marked in flight until [`Schedule::complete`].
    pub(super) fn take_due(&mut self, now: Instant) -> Option<Job> {
        let due = self.next_due()?;
        if due > now {
            return None;
        }
        let Reverse((_, id)) = self.queue.pop()?;
        let entry = self.entries.get_mut(&id)?;
        entry.in_flight = true;
        Some(Job {
            entry: id,
            addr: entry.key.1,
            request: entry.request.clone(),
            timeout: entry.config.timeout,
        })
    }

    /// Applies a probe's result: counts it, moves the run along, reschedules the target, and
    /// returns the transition to log if the run crossed a threshold. `None` too for a target
    /// removed while its probe was in flight.
    pub(super) fn complete(
        &mut self,
        entry: u64,
        result: Result<u16, Failure>,
        now: Instant,
    ) -> Option<Transition> {
        let id = entry;
        let entry = self.entries.get_mut(&id)?;
        if !entry.in_flight {
            return None;
        }
        entry.in_flight = false;
        // On the schedule the target was started on, unless the probe outlasted the interval;
        // then the next starts at once (one probe per target at a time, never two).
        entry.due = (entry.due + entry.interval()).max(now);
        self.queue.push(Reverse((entry.due, id)));
        let result = result.and_then(|status| {
            if entry.config.expects(status) {
                Ok(status)
            } else {
                Err(Failure::Status(status))
            }
        });
        let health = &entry.health;
        match result {
            Ok(status) => {
                health.count_pass();
                entry.failures = 0;
                entry.passes = entry.passes.saturating_add(1);
                let threshold = entry.config.healthy_threshold.max(1);
                (!health.is_healthy() && entry.passes >= threshold).then(|| {
                    health.mark(true);
                    entry.transition(Cause::Passed {
                        run: entry.passes,
                        status,
                    })
                })
            }
            Err(failure) => {
                health.count_failure(failure.kind());
                crate::log::debug(format_args!(
                    "health check: upstream {:?} target {} failed: {failure}",
                    entry.key.0, entry.key.1
                ));
                entry.passes = 0;
                entry.failures = entry.failures.saturating_add(1);
                let threshold = entry.config.unhealthy_threshold.max(1);
                (health.is_healthy() && entry.failures >= threshold).then(|| {
                    health.mark(false);
                    entry.transition(Cause::Failed {
                        run: entry.failures,
                        reason: failure.to_string(),
                    })
                })
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_current(&self, due: Instant, id: u64) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|e| !e.in_flight && e.due == due)
    }
}

impl Entry {
    /// Takes the new config and health handle of a target that stays. Returns the new due
    /// time if it moved.
    fn restate(&mut self, p: Probe, now: Instant) -> Option<Instant> {
        if !Arc::ptr_eq(&self.health, &p.health) {
            // Someone else's idea of this target's health: its run says nothing about ours.
            self.health = p.health;
            self.passes = 0;
            self.failures = 0;
        }
        if self.config == p.config {
            return None;
        }
        self.request = probe::request(&p.config, p.addr).map(Arc::from);
        self.config = p.config;
        // A shorter interval applies within one (new) interval; a longer one from the next
        // probe on. Either way the target is not probed early because of the reload.
        let sooner = now + self.interval();
        if !self.in_flight && sooner < self.due {
            self.due = sooner;
            return Some(sooner);
        }
        None
    }

    fn transition(&self, cause: Cause) -> Transition {
        Transition {
            upstream: self.key.0.clone(),
            addr: self.key.1,
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(100);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn config() -> CheckConfig {
        CheckConfig {
            interval: INTERVAL,
            timeout: Duration::from_millis(50),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            ..CheckConfig::default()
        }
    }

    fn probe(port: u16, health: &Arc<TargetHealth>) -> Probe {
        Probe {
            upstream: "users".into(),
            addr: addr(port),
            health: Arc::clone(health),
            config: config(),
        }
    }

    /// Every job due by `now`, by port.
    fn due(s: &mut Schedule, now: Instant) -> Vec<(u64, u16)> {
        std::iter::from_fn(|| s.take_due(now))
            .map(|job| (job.entry, job.addr.port()))
            .collect()
    }

    #[test]
    fn new_targets_start_spread_within_their_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let h = TargetHealth::new();
        s.update((1..=4).map(|p| probe(p, &h)).collect(), t0);
        // 100 ms spread over 4: at 0, 25, 50, 75 ms.
        assert_eq!(due(&mut s, t0).len(), 1);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(25)));
        assert_eq!(due(&mut s, t0 + Duration::from_millis(74)).len(), 2);
        assert_eq!(due(&mut s, t0 + Duration::from_millis(75)).len(), 1);
        assert_eq!(s.next_due(), None, "all in flight");
    }

    #[test]
    fn one_probe_in_flight_per_target_and_the_next_on_schedule() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let h = TargetHealth::new();
        s.update(vec![probe(1, &h)], t0);
        let [(id, 1)] = due(&mut s, t0)[..] else {
            panic!("one job")
        };
        assert!(due(&mut s, t0 + 3 * INTERVAL).is_empty(), "still in flight");
        // Done quickly: the next is one interval after the first started.
        s.complete(id, Ok(200), t0 + Duration::from_millis(5));
        assert_eq!(s.next_due(), Some(t0 + INTERVAL));
        // Outlasting the interval: the next starts as soon as it is done.
        assert_eq!(due(&mut s, t0 + INTERVAL).len(), 1);
        s.complete(id, Err(Failure::Timeout), t0 + 5 * INTERVAL);
        assert_eq!(s.next_due(), Some(t0 + 5 * INTERVAL));
    }

    #[test]
    fn runs_cross_thresholds_once_each_way() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let h = TargetHealth::new();
        s.update(vec![probe(1, &h)], t0);
        let mut now = t0;
        let mut step = |s: &mut Schedule, result: Result<u16, Failure>| {
            let [(id, _)] = due(s, now)[..] else {
                panic!("one job")
            };
            now += INTERVAL;
            s.complete(id, result, now)
        };
        // Failures interrupted by a pass start over.
        assert_eq!(step(&mut s, Err(Failure::Refused)), None);
        assert_eq!(step(&mut s, Err(Failure::Refused)), None);
        assert_eq!(step(&mut s, Ok(204)), None);
        assert_eq!(step(&mut s, Err(Failure::Timeout)), None);
        assert_eq!(step(&mut s, Ok(500)), None);
        assert!(h.is_healthy());
        let down = step(&mut s, Ok(503)).expect("third failure in a row");
        assert!(!h.is_healthy());
        assert_eq!(
            down.to_string(),
            "health check: upstream \"users\" target 127.0.0.1:1 is unhealthy after 3 failed \
             checks: status 503"
        );
        assert_eq!(step(&mut s, Err(Failure::Refused)), None, "already down");
        assert_eq!(step(&mut s, Ok(200)), None);
        let up = step(&mut s, Ok(200)).expect("second pass in a row");
        assert!(h.is_healthy());
        assert_eq!(
            up.cause,
            Cause::Passed {
                run: 2,
                status: 200
            }
        );
        assert_eq!(step(&mut s, Ok(200)), None, "already up");
        assert_eq!((h.marked_unhealthy(), h.marked_healthy()), (1, 1));
        assert_eq!((h.checks_passed(), h.checks_failed()), (4, 6));
        assert_eq!(h.failures(super::super::FailureKind::Status), 2);
    }

    #[test]
    fn a_target_that_stays_keeps_its_run_and_its_schedule() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let (a, b) = (TargetHealth::new(), TargetHealth::new());
        s.update(vec![probe(1, &a)], t0);
        let [(id, 1)] = due(&mut s, t0)[..] else {
            panic!("one job")
        };
        s.complete(id, Err(Failure::Refused), t0 + Duration::from_millis(1));
        let [(id, 1)] = due(&mut s, t0 + INTERVAL)[..] else {
            panic!("one job")
        };
        s.complete(id, Err(Failure::Refused), t0 + INTERVAL);
        // A reload keeps port 1 (and adds port 2) mid-interval.
        let t1 = t0 + INTERVAL + INTERVAL / 2;
        s.update(vec![probe(2, &b), probe(1, &a)], t1);
        assert_eq!(
            due(&mut s, t1),
            vec![(id + 1, 2)],
            "only the new one at once"
        );
        let [(same, 1)] = due(&mut s, t0 + 2 * INTERVAL)[..] else {
            panic!("port 1 on its old schedule")
        };
        assert_eq!(same, id);
        let down = s.complete(id, Err(Failure::Refused), t0 + 2 * INTERVAL);
        assert!(down.is_some(), "the run went on: third failure");
    }

    #[test]
    fn a_shorter_interval_applies_within_one_new_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let h = TargetHealth::new();
        let mut p = probe(1, &h);
        p.config.interval = Duration::from_secs(60);
        s.update(vec![p], t0);
        let [(id, _)] = due(&mut s, t0)[..] else {
            panic!("one job")
        };
        s.complete(id, Ok(200), t0);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(60)));
        let t1 = t0 + Duration::from_secs(1);
        s.update(vec![probe(1, &h)], t1);
        assert_eq!(s.next_due(), Some(t1 + INTERVAL));
    }

    #[test]
    fn a_removed_target_is_not_probed_and_its_late_result_ignored() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let (a, b) = (TargetHealth::new(), TargetHealth::new());
        s.update(vec![probe(1, &a), probe(2, &b)], t0);
        let jobs = due(&mut s, t0 + INTERVAL);
        assert_eq!(jobs.len(), 2);
        s.update(vec![probe(2, &b)], t0 + INTERVAL);
        assert_eq!(s.len(), 1);
        for (id, _) in &jobs {
            s.complete(*id, Err(Failure::Refused), t0 + INTERVAL);
        }
        assert_eq!(a.checks_failed(), 0, "removed before its result came");
        assert_eq!(b.checks_failed(), 1);
        assert_eq!(due(&mut s, t0 + 10 * INTERVAL).len(), 1);
        // Back after removal: a new entry, probed at once, its old result still ignored.
        s.update(vec![probe(1, &a)], t0 + 10 * INTERVAL);
        s.complete(jobs[0].0, Ok(200), t0 + 10 * INTERVAL);
        assert_eq!(a.checks_passed(), 0);
        assert_eq!(due(&mut s, t0 + 10 * INTERVAL).len(), 1);
    }

    #[test]
    fn an_unhealthy_target_that_is_no_longer_checked_turns_healthy() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let (a, b) = (TargetHealth::new(), TargetHealth::new());
        let mut p = probe(1, &a);
        p.config.unhealthy_threshold = 1;
        s.update(vec![p, probe(2, &b)], t0);
        let jobs = due(&mut s, t0 + INTERVAL);
        for (id, _) in jobs {
            let down = s.complete(id, Err(Failure::Refused), t0 + INTERVAL);
            assert_eq!(down.is_some(), id == 0);
        }
        assert!(!a.is_healthy() && b.is_healthy());
        let transitions = s.update(vec![], t0 + INTERVAL);
        assert_eq!(
            transitions,
            vec![Transition {
                upstream: "users".into(),
                addr: addr(1),
                cause: Cause::Unchecked
            }]
        );
        assert!(a.is_healthy() && transitions[0].healthy());
        assert_eq!(a.marked_healthy(), 1);
    }

    #[test]
    fn a_new_health_handle_starts_a_new_run() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let (old, new) = (TargetHealth::new(), TargetHealth::new());
        s.update(vec![probe(1, &old)], t0);
        let mut now = t0;
        for _ in 0..2 {
            let [(id, _)] = due(&mut s, now)[..] else {
                panic!("one job")
            };
            s.complete(id, Err(Failure::Refused), now);
            now += INTERVAL;
        }
        s.update(vec![probe(1, &new)], now);
        let [(id, _)] = due(&mut s, now)[..] else {
            panic!("one job")
        };
        assert_eq!(s.complete(id, Err(Failure::Refused), now), None);
        assert!(old.is_healthy() && new.is_healthy());
        assert_eq!(new.checks_failed(), 1);
    }

    #[test]
    fn an_absurd_interval_is_capped_rather_than_overflowing() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let h = TargetHealth::new();
        let mut p = probe(1, &h);
        p.config.interval = Duration::MAX;
        s.update(vec![p], t0);
        let [(id, _)] = due(&mut s, t0)[..] else {
            panic!("one job")
        };
        s.complete(id, Ok(200), t0);
        assert_eq!(s.next_due(), Some(t0 + MAX_INTERVAL));
    }

    #[test]
    fn zero_interval_and_thresholds_are_raised_not_obeyed() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let h = TargetHealth::new();
        let mut p = probe(1, &h);
        p.config.interval = Duration::ZERO;
        p.config.unhealthy_threshold = 0;
        s.update(vec![p], t0);
        let [(id, _)] = due(&mut s, t0)[..] else {
            panic!("one job")
        };
        assert!(s.complete(id, Err(Failure::Refused), t0).is_some());
        assert_eq!(s.next_due(), Some(t0 + MIN_INTERVAL));
    }
}
