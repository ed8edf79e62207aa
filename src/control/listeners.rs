//! The set of listening addresses and their ids across reloads.
//!
//! A reload binds sockets for new addresses (one per shard) before anything changes, so a
//! failing bind refuses the whole reload. Addresses that stay are never re-bound: closing a
//! SO_REUSEPORT socket resets the connections queued on it.

use std::net::SocketAddr;

use crate::shard::control::ListenerId;
use crate::shard::listener;

struct Entry {
    /// As written in the config (port 0 stays 0 here, so the same line keeps its listener).
    configured: SocketAddr,
    bound: SocketAddr,
    id: ListenerId,
}

pub struct Listeners {
    entries: Vec<Entry>,
    next_id: ListenerId,
}

/// Per shard, the sockets it should start accepting on.
pub type PerShard = Vec<Vec<(ListenerId, std::net::TcpListener)>>;

/// A listener change that is bound and ready, not yet applied.
pub struct Change {
    added: Vec<Entry>,
    sockets: PerShard,
    removed: Vec<ListenerId>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl Listeners {
    pub fn new() -> Listeners {
        Listeners {
            entries: Vec::new(),
            next_id: 0,
        }
    }

    /// Binds what `addrs` adds to the current set, for every shard. Nothing changes yet.
    pub fn prepare(&mut self, addrs: &[SocketAddr], shards: usize) -> Result<Change, String> {
        let new: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| !self.entries.iter().any(|e| e.configured == *a))
            .collect();
        let removed = self
            .entries
            .iter()
            .filter(|e| !addrs.contains(&e.configured))
            .map(|e| e.id)
            .collect();
        let (bound, per_shard) = listener::bind_all(&new, shards).map_err(|e| e.to_string())?;
        let mut added = Vec::with_capacity(new.len());
        let ids: Vec<ListenerId> = (0..new.len()).map(|i| self.next_id + i).collect();
        for ((configured, bound), &id) in new.iter().zip(bound).zip(&ids) {
            added.push(Entry {
                configured: *configured,
                bound,
                id,
            });
        }
        let sockets = per_shard
            .into_iter()
            .map(|socks| ids.iter().copied().zip(socks).collect())
            .collect();
        Ok(Change {
            added,
            sockets,
            removed,
        })
    }

    /// Records the change; returns the sockets for each shard and the ids to retire.
    pub fn commit(&mut self, change: Change) -> (PerShard, Vec<ListenerId>) {
        self.next_id += change.added.len();
        self.entries.retain(|e| !change.removed.contains(&e.id));
        self.entries.extend(change.added);
        (change.sockets, change.removed)
    }

    /// The real addresses, in config order.
    pub fn bound(&self) -> Vec<SocketAddr> {
        self.entries.iter().map(|e| e.bound).collect()
    }
}
