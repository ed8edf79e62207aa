//! The access log: one line per request, written off the shards.
//!
//! A shard formats the line ([`format`]) into a buffer it takes from a pool of spare ones and
//! hands it to the writer thread ([`writer`]) with a non-blocking `try_send` into a bounded
//! queue. When the queue is full (the disk fell behind) the line is dropped and counted in
//! [`AccessLog::dropped`]: a slow disk never slows requests. The writer sends each buffer back
//! once written, so in steady state a line costs no allocation.
//!
//! The management thread switches destinations on start and reload ([`AccessLog::configure`])
//! and reopens the file on SIGUSR1 ([`AccessLog::reopen`]), for logrotate.

pub mod format;
mod timestamp;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// What a line says about one request. Fields are borrowed from the connection's buffers.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// When the request head was complete.
    pub time: SystemTime,
    /// Client IP text.
    pub client: &'a [u8],
    /// `-` when unknown (an unparseable request).
    pub method: &'a [u8],
    /// The request target as received (path and query).
    pub target: &'a [u8],
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: &'a [u8],
    pub host: &'a [u8],
    pub status: u16,
    /// Response bytes written to the client, head and body.
    pub bytes_sent: u64,
    /// Request bytes read, head and body.
    pub bytes_received: u64,
    pub duration: Duration,
    pub upstream_duration: Option<Duration>,
    pub upstream_target: Option<SocketAddr>,
    /// `-` when no route matched.
    pub route: &'a str,
    /// May be empty.
    pub request_id: &'a [u8],
    /// May be empty.
    pub referer: &'a [u8],
    /// May be empty.
    pub user_agent: &'a [u8],
}

