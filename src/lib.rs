//! Shardgate: a shard-per-core HTTP/1.1 API gateway and edge reverse proxy.
//!
//! # Layout
//! (filled in as the data path lands)
//!
//! ```text
//! http/chunked.rs   chunked transfer coding of request and response bodies (RFC 9112 §7.1)
//! ```

pub mod http;
