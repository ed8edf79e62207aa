//! Serving one client connection: read a head, route it, answer it directly or forward it
//! upstream, stream the bodies, repeat while the connection stays alive.

mod body;
mod client;
mod forward;
pub mod head;
mod io;
mod request_id;

pub use client::serve;
pub use request_id::RequestIds;

use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;

/// Per-request working memory, taken from the shard while a request is in flight and given
/// back after, so an idle keep-alive connection holds none of it.
#[derive(Default)]
pub struct Scratch {
    pub head: RequestHead,
    pub response: ResponseHead,
    /// The normalised request path.
    pub path: Vec<u8>,
    /// The path after strip_prefix / rewrite_prefix.
    pub rewritten: Vec<u8>,
    /// Heads (and small bodies) being written.
    pub out: Vec<u8>,
}
