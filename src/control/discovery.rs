//! The reload thread's side of service discovery: it starts the resolver thread when some
//! upstream has a `resolve_interval` (and stops it when none has), tells it what to watch
//! after each load, and receives the address sets it finds.

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::discovery::{self, Resolved, Resolver};

pub struct Discovery {
    resolver: Option<Resolver>,
    found_tx: Sender<Resolved>,
    /// New address sets from the resolver, for the reload thread to swap in.
    pub found: Receiver<Resolved>,
    /// Bumped on each [`Discovery::watch`]; answers carrying an older one are stale.
    generation: u64,
}

impl Discovery {
    pub fn new() -> Discovery {
        let (found_tx, found) = crossbeam_channel::unbounded();
        Discovery {
            resolver: None,
            found_tx,
            found,
            generation: 0,
        }
    }

    /// Watches the names of `config`, the config now live.
    pub fn watch(&mut self, config: &Config) -> std::io::Result<()> {
        let watches = discovery::watches(config);
        self.generation += 1;
        if watches.is_empty() {
            self.resolver = None;
            return Ok(());
        }
        let resolver = match self.resolver.take() {
            Some(running) => running,
            None => Resolver::start(self.found_tx.clone())?,
        };
        resolver.update(self.generation, watches);
        self.resolver = Some(resolver);
        Ok(())
    }

    /// Whether `found` answers the config now live, not one a reload has since replaced.
    pub fn is_current(&self, found: &Resolved) -> bool {
        found.generation == self.generation
    }
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery::new()
    }
}
