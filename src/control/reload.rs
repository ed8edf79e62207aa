//! Reload: read and validate the file, bind new listeners, build the whole snapshot, swap it in
//! one store, then tell shards about listener changes. Runs on its own thread: DNS lookups and
//! file reads in here can take time, and they must never hold up a signal.
//!
//! The same thread swaps in the address sets the resolver finds for named targets: it owns the
//! registry and the live config, so every snapshot is built here, one at a time.

use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{select, Receiver, Sender};

use super::discovery::Discovery;
use super::listeners::Listeners;
use super::{ReloadOutcome, ReloadRequest};
use crate::config::{Admin, Config, Driver};
use crate::discovery::{show, Resolved};
use crate::log;
use crate::shard::control::Command;
use crate::shared::Shared;
use crate::snapshot::{Registry, Snapshot};

/// What a reload may not change without a restart, as the process started with it.
#[derive(Clone)]
pub struct Fixed {
    pub workers: usize,
    pub driver: Driver,
    pub admin: Option<Admin>,
}

pub struct Reloader {
    pub path: PathBuf,
    pub shared: Arc<Shared>,
    pub registry: Registry,
    pub listeners: Listeners,
    pub shards: Vec<Sender<Command>>,
    pub fixed: Fixed,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub access_log: Arc<crate::access_log::AccessLog>,
    pub health: crate::health::HealthChecker,
    pub discovery: Discovery,
}

impl Reloader {
    /// Serves reload requests until every sender is gone. Requests queued while a reload runs
    /// are each answered; SIGHUPs that pile up were already merged by the kernel.
    pub fn spawn(
        mut self,
        requests: Receiver<ReloadRequest>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || loop {
                select! {
                    recv(requests) -> request => {
                        let Ok(request) = request else { return };
                        super::systemd::reloading();
                        let outcome = self.reload();
                        super::systemd::status(match &outcome {
                            Ok(_) => "serving; last reload applied",
                            Err(_) => "serving; last reload refused (see the log)",
                        });
                        // READY=1 either way: a refused reload leaves the old config serving.
                        super::systemd::ready();
                        let _ = request.reply.send(outcome);
                    },
                    recv(self.discovery.found) -> found => {
                        if let Ok(found) = found {
                            self.swap_addresses(found);
                        }
                    },
                }
            })
    }

    /// Makes `snapshot` the live one and points the health checker at its targets.
    fn store(&mut self, snapshot: Snapshot) {
        let probes = snapshot.health_probes();
        self.shared.snapshot.store(Arc::new(snapshot));
        self.health.update(probes);
    }

    /// A named target resolves to a new set: the live config with that target's addresses
    /// replaced, the same in all else (hash and load time included, as the file did not
    /// change). Addresses that stay keep their registry state: pools, health, ejections,
    /// connection counts, metrics.
    fn swap_addresses(&mut self, found: Resolved) {
        if !self.discovery.is_current(&found) {
            return;
        }
        let live = self.shared.snapshot.load_full();
        let Some(index) = live
            .config
            .upstreams
            .iter()
            .position(|u| u.name == found.upstream)
        else {
            return;
        };
        let was = live.config.upstreams[index].addresses_of(found.entry);
        if was == found.addrs {
            return;
        }
        log::info(format_args!(
            "upstream {:?}: {} resolves to {} (was {})",
            found.upstream,
            found.name,
            show(&found.addrs),
            show(&was)
        ));
        let mut config = live.config.clone();
        config.upstreams[index].set_addresses(found.entry, &found.addrs);
        // The resolver is not told: it found this set itself, and a new watch list would
        // restart every name's schedule.
        let mut snapshot = Snapshot::build(
            config,
            live.hash.clone(),
            &mut self.registry,
            self.shards.len(),
        );
        snapshot.loaded_at = live.loaded_at;
        self.store(snapshot);
    }

    fn reload(&mut self) -> ReloadOutcome {
        let file = self.path.display().to_string();
        let (mut config, hash) = match Config::load_with_hash(&self.path) {
            Ok(loaded) => loaded,
            Err(e) => {
                let errors: Vec<String> = e.to_string().lines().map(str::to_string).collect();
                return Err(self.refuse(errors));
            }
        };
        let notes = self.keep_fixed(&mut config);
        let change = match self
            .listeners
            .prepare(&config.server.listen, self.shards.len())
        {
            Ok(change) => change,
            Err(e) => return Err(self.refuse(vec![format!("{file}: server.listen: {e}")])),
        };

        let log_path = config.access_log.as_ref().map(|l| &l.path);
        if let Err(e) = self.access_log.configure(log_path) {
            let path = log_path.map(|p| format!("{p:?}")).unwrap_or_default();
            return Err(self.refuse(vec![format!(
                "{file}: access_log.path: cannot open {path}: {e}"
            )]));
        }
        let snapshot = Snapshot::build(config, hash.clone(), &mut self.registry, self.shards.len());
        // The load just resolved every name; the resolver asks again from here.
        if let Err(e) = self.discovery.watch(&snapshot.config) {
            log::error(format_args!(
                "cannot start the resolver thread: {e}; names are not re-resolved until a reload"
            ));
        }
        self.store(snapshot);

        if !change.is_empty() {
            let (mut sockets, removed) = self.listeners.commit(change);
            for (shard, tx) in self.shards.iter().enumerate() {
                let adds = std::mem::take(&mut sockets[shard]);
                if !adds.is_empty() {
                    let _ = tx.send(Command::AddListeners(adds));
                }
                if !removed.is_empty() {
                    let _ = tx.send(Command::RemoveListeners(removed.clone()));
                }
            }
            let addrs: Vec<String> = self
                .listeners
                .bound()
                .iter()
                .map(ToString::to_string)
                .collect();
            log::info(format_args!("listening {}", addrs.join(", ")));
        }
        for note in &notes {
            log::warn(format_args!("{note}"));
        }
        self.metrics.reload(true);
        log::info(format_args!("reload ok: {file} (hash {hash})"));
        Ok(notes)
    }

    fn refuse(&self, errors: Vec<String>) -> Vec<String> {
        self.metrics.reload(false);
        log::error(format_args!(
            "reload refused: {}; the running config stays",
            self.path.display()
        ));
        for e in &errors {
            log::error(format_args!("{e}"));
        }
        errors
    }

    /// Puts back the keys that only a restart may change, and says so.
    fn keep_fixed(&self, config: &mut Config) -> Vec<String> {
        let mut notes = Vec::new();
        let file = self.path.display();
        if config.server.workers != self.fixed.workers {
            notes.push(format!(
                "{file}: server.workers: changing it from {} to {} needs a restart; still {}",
                self.fixed.workers, config.server.workers, self.fixed.workers
            ));
            config.server.workers = self.fixed.workers;
        }
        if config.server.driver != self.fixed.driver {
            notes.push(format!(
                "{file}: server.driver: changing it from {:?} to {:?} needs a restart; still {:?}",
                self.fixed.driver, config.server.driver, self.fixed.driver
            ));
            config.server.driver = self.fixed.driver;
        }
        if config.admin != self.fixed.admin {
            notes.push(format!("{file}: admin.listen: changing it needs a restart; the admin listener stays as it was"));
            config.admin = self.fixed.admin.clone();
        }
        notes
    }
}
