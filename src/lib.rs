//! Shardgate: a shard-per-core HTTP/1.1 API gateway and edge reverse proxy.
//!
//! # Layout
//! (filled in as the data path lands)
//!
//! - `http/path.rs`: request path normalisation, before routing
//! - `router/`: host + path + method + header matching, compiled per snapshot

pub mod http;
pub mod router;
