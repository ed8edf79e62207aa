//! The management side: everything off the shards. Signals, reload, graceful drain, the admin
//! listener and stats aggregation live here; shards learn of changes through the snapshot,
//! relaxed atomics and their control channels, never by waiting on this thread.

pub mod systemd;

/// A reload asked for by the admin listener (`POST /reload`). The reply comes when the reload
/// is done: the new snapshot is live, or it was refused and the old one still serves.
pub struct ReloadRequest {
    pub reply: crossbeam_channel::Sender<ReloadOutcome>,
}

/// `Ok` with notes for the operator (e.g. keys that need a restart), or every error, each as
/// `file: key.path: reason`.
pub type ReloadOutcome = Result<Vec<String>, Vec<String>>;
