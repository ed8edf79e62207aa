//! The little that shards share: the snapshot behind an `ArcSwap`, and process-wide counters
//! kept in cache-padded relaxed atomics so one shard's updates never stall another's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::snapshot::Snapshot;
use crate::upstream::breaker::{Gauge, OwnedPermit};

/// A client connection's place under `max_connections`, given back when it is dropped.
pub type ConnectionSlot = OwnedPermit;

pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    /// Open client connections across all shards, for `max_connections`: the same soft cap
    /// as a circuit breaker's (a race lets through at most one connection per shard).
    connections: Arc<Gauge>,
    /// Set once a graceful shutdown begins; never cleared.
    draining: AtomicBool,
}

impl Shared {
    pub fn new(snapshot: Snapshot) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            connections: Arc::default(),
            draining: AtomicBool::new(false),
        })
    }

    /// Admits one more client connection if the process is under `max`.
    pub fn admit(&self, max: usize) -> Option<ConnectionSlot> {
        self.connections
            .try_acquire_owned(u32::try_from(max).unwrap_or(u32::MAX))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn open_connections(&self) -> usize {
        self.connections.current() as usize
    }
}
