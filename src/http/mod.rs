//! HTTP/1.1 message framing (RFC 9112).

pub mod chunked;
