//! The little that shards share: the snapshot behind an `ArcSwap`, and process-wide counters
//! kept in cache-padded relaxed atomics so one shard's updates never stall another's.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

use crate::snapshot::Snapshot;

pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    /// Open client connections across all shards, for `max_connections`.
    connections: CachePadded<AtomicUsize>,
    /// Set once a graceful shutdown begins; never cleared.
    draining: AtomicBool,
}

impl Shared {
    pub fn new(snapshot: Snapshot) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            connections: CachePadded::new(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
        })
    }

    /// Admits one more client connection if the process is under `max`. The returned guard
    /// gives the slot back when the connection ends.
    pub fn admit(self: &Arc<Self>, max: usize) -> Option<ConnectionSlot> {
        // Relaxed is enough: the limit is a soft ceiling, and a race lets through at most one
        // connection per shard.
        let before = self.connections.fetch_add(1, Ordering::Relaxed);
        if before >= max {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(ConnectionSlot(Arc::clone(self)))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

pub struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
