//! Serving one client connection: read a head, route it, answer it directly or forward it
//! upstream, stream the bodies, repeat while the connection stays alive.

mod attempt;
mod balance_key;
mod body;
mod client;
mod forward;
pub mod head;
mod io;
mod relay;
mod request_id;

pub use client::serve;
pub use request_id::RequestIds;

use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;

/// What one exchange did, gathered as it happens and read once it ends, for metrics and the
/// access log.
#[derive(Debug, Default, Clone)]
pub struct Record {
    /// The final status sent, or 499 when the client left before one could be.
    pub status: u16,
    /// Whether a head was parsed: only then do the scratch's head and path describe it.
    pub parsed: bool,
    /// Index into the snapshot's routes.
    pub route: Option<usize>,
    /// Request head and body bytes consumed.
    pub bytes_received: u64,
    pub upstream: Option<UpstreamRecord>,
}

#[derive(Debug, Clone)]
pub struct UpstreamRecord {
    /// Tries made, the last one included.
    pub tries: u32,
    /// Index into the snapshot's upstreams, and which of its targets.
    pub upstream: usize,
    pub target: usize,
    pub duration: std::time::Duration,
    pub error: Option<UpstreamErrorKind>,
}

pub use crate::metrics::UpstreamErrorKind;

/// Per-request working memory, taken from the shard while a request is in flight and given
/// back after, so an idle keep-alive connection holds none of it.
#[derive(Default)]
pub struct Scratch {
    pub head: RequestHead,
    pub response: ResponseHead,
    /// The normalised request path.
    pub path: Vec<u8>,
    /// The path after strip_prefix / rewrite_prefix; empty when the route rewrites nothing
    /// (a rewrite is never empty: at least `/`).
    pub rewritten: Vec<u8>,
    /// Heads (and small bodies) being written.
    pub out: Vec<u8>,
    pub record: Record,
    /// The X-Request-Id sent upstream and echoed to the client.
    pub request_id: Vec<u8>,
    /// A streamed request body as sent so far, kept for another try (`max_replay_body`).
    pub replay: Vec<u8>,
}
