//! The resolver thread: asks again for each watched name every `resolve_interval`, and sends
//! a changed address set to the reload thread, which swaps in a snapshot with it.
//!
//! Same shape as the health checker: one scheduler thread owns all the bookkeeping and never
//! blocks on a lookup; each lookup runs on a short-lived thread of its own, so a hanging
//! nameserver delays no other name and no shutdown. A name has at most one lookup running:
//! while a timed-out one still hangs (getaddrinfo cannot be cancelled), its turns are skipped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use super::{lookup_blocking, show, Nameserver, TargetName};
use crate::log;

/// One named target to re-resolve, as [`Resolver::update`] takes it.
#[derive(Debug, Clone)]
pub struct Watch {
    pub upstream: String,
    /// Index of the target in the upstream's `targets[]`.
    pub entry: usize,
    pub name: TargetName,
    pub nameserver: Nameserver,
    pub interval: Duration,
    pub timeout: Duration,
    /// The addresses the live snapshot has for it.
    pub current: Vec<SocketAddr>,
}

/// A new address set for one named target.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The [`Resolver::update`] it answers; older ones are stale.
    pub generation: u64,
    pub upstream: String,
    pub entry: usize,
    pub name: TargetName,
    pub addrs: Vec<SocketAddr>,
}

/// Handle to the resolver thread. Dropping it stops the thread at its next wake-up; lookups in
/// flight finish on their own threads and their answers are dropped. Nothing waits for them.
pub struct Resolver {
    updates: Sender<(u64, Vec<Watch>)>,
}

impl Resolver {
    /// Starts the thread; new address sets go to `out`.
    pub fn start(out: Sender<Resolved>) -> std::io::Result<Resolver> {
        let (updates, updates_rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("resolver".into())
            .spawn(move || run(&updates_rx, &out))?;
        Ok(Resolver { updates })
    }

    /// Replaces what is watched (at start and after each reload, whose load just resolved
    /// every name: each is asked again one interval from now). Answers to lookups started
    /// before this are dropped, so only `generation`'s answers arrive from now on.
    pub fn update(&self, generation: u64, watches: Vec<Watch>) {
        // Fails only if the thread is gone, which it never is while this handle lives.
        let _ = self.updates.send((generation, watches));
    }
}

/// Identifies a watch across updates: the same name for the same target, asked of the same
/// nameserver.
type Key = (String, usize, TargetName, Nameserver);

struct Entry {
    watch: Watch,
    /// When the next lookup starts, unless one is still running then.
    due: Instant,
    running: Option<Running>,
    /// The last failure, so that a lasting one is logged once, not every interval.
    failing: Option<String>,
}

struct Running {
    ticket: u64,
    deadline: Instant,
    /// Timed out already (and logged), or started before the last update: its answer is
    /// dropped when it comes.
    discard: bool,
}

fn key(w: &Watch) -> Key {
    (w.upstream.clone(), w.entry, w.name.clone(), w.nameserver)
}

fn run(updates: &Receiver<(u64, Vec<Watch>)>, out: &Sender<Resolved>) {
    let (done_tx, done) = crossbeam_channel::unbounded::<(u64, Result<Vec<SocketAddr>, String>)>();
    let mut entries: HashMap<Key, Entry> = HashMap::new();
    let mut generation = 0;
    let mut tickets = 0u64;
    loop {
        let now = Instant::now();
        for entry in entries.values_mut() {
            if let Some(running) = &mut entry.running {
                if !running.discard && now >= running.deadline {
                    running.discard = true;
                    let timeout = humantime::format_duration(entry.watch.timeout);
                    entry.failed(format!("no answer within {timeout}"));
                    entry.due = now + entry.watch.interval;
                }
            }
            if now < entry.due {
                continue;
            }
            entry.due = now + entry.watch.interval;
            if entry.running.is_some() {
                log::debug(format_args!(
                    "upstream {:?}: the last lookup of {} still hangs; not asking again yet",
                    entry.watch.upstream, entry.watch.name
                ));
                continue;
            }
            tickets += 1;
            match spawn_lookup(tickets, &entry.watch, &done_tx) {
                Ok(deadline) => {
                    entry.running = Some(Running {
                        ticket: tickets,
                        deadline,
                        discard: false,
                    });
                    // The next turn is set when it ends or times out.
                    entry.due = deadline;
                }
                Err(e) => entry.failed(format!("cannot start a lookup thread: {e}")),
            }
        }

        let wake = entries
            .values()
            .map(|e| match &e.running {
                Some(r) if !r.discard => r.deadline,
                _ => e.due,
            })
            .min()
            .map_or_else(crossbeam_channel::never, crossbeam_channel::at);
        select! {
            recv(updates) -> update => match update {
                Ok((next, watches)) => {
                    generation = next;
                    entries = replace(std::mem::take(&mut entries), watches, Instant::now());
                    log::debug(format_args!("resolver: watching {} names", entries.len()));
                }
                Err(_) => return,
            },
            recv(done) -> finished => {
                let Ok((ticket, result)) = finished else { continue };
                let Some(entry) = entries
                    .values_mut()
                    .find(|e| e.running.as_ref().is_some_and(|r| r.ticket == ticket))
                else {
                    continue;
                };
                let Some(running) = entry.running.take() else { continue };
                if running.discard {
                    continue;
                }
                entry.due = Instant::now() + entry.watch.interval;
                match result {
                    Ok(addrs) => {
                        if entry.failing.take().is_some() {
                            log::info(format_args!(
                                "upstream {:?}: {} resolves again",
                                entry.watch.upstream, entry.watch.name
                            ));
                        }
                        if addrs != entry.watch.current {
                            let resolved = Resolved {
                                generation,
                                upstream: entry.watch.upstream.clone(),
                                entry: entry.watch.entry,
                                name: entry.watch.name.clone(),
                                addrs: addrs.clone(),
                            };
                            if out.send(resolved).is_err() {
                                return;
                            }
                            entry.watch.current = addrs;
                        }
                    }
                    Err(e) => entry.failed(e),
                }
            },
            recv(wake) -> _ => {},
        }
    }
}

/// The entries for `watches`: a name watched before keeps its failure state and any lookup
/// still running (whose answer is now dropped), so a hanging one is not started twice.
fn replace(mut old: HashMap<Key, Entry>, watches: Vec<Watch>, now: Instant) -> HashMap<Key, Entry> {
    watches
        .into_iter()
        .map(|watch| {
            let k = key(&watch);
            let due = now + watch.interval;
            let entry = match old.remove(&k) {
                Some(mut kept) => {
                    if let Some(running) = &mut kept.running {
                        running.discard = true;
                    }
                    Entry {
                        watch,
                        due,
                        running: kept.running,
                        failing: kept.failing,
                    }
                }
                None => Entry {
                    watch,
                    due,
                    running: None,
                    failing: None,
                },
            };
            (k, entry)
        })
        .collect()
}

impl Entry {
    /// Keeps the last good set; says so once per distinct reason.
    fn failed(&mut self, why: String) {
        let w = &self.watch;
        if self.failing.as_deref() != Some(why.as_str()) {
            log::warn(format_args!(
                "upstream {:?}: cannot resolve {}: {why}; keeping {}",
                w.upstream,
                w.name,
                show(&w.current)
            ));
        } else {
            log::debug(format_args!(
                "upstream {:?}: still cannot resolve {}: {why}",
                w.upstream, w.name
            ));
        }
        self.failing = Some(why);
    }
}

/// Starts one lookup on its own thread; returns its deadline.
fn spawn_lookup(
    ticket: u64,
    watch: &Watch,
    done: &Sender<(u64, Result<Vec<SocketAddr>, String>)>,
) -> std::io::Result<Instant> {
    let deadline = Instant::now() + watch.timeout;
    let (name, nameserver, done) = (watch.name.clone(), watch.nameserver, done.clone());
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = done.send((ticket, lookup_blocking(&name, nameserver, deadline)));
        })?;
    Ok(deadline)
}
