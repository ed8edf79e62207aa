//! Connections to upstream targets: dialing with a timeout, and each shard's idle pool.

pub mod breaker;
pub mod outlier;
mod pool;
pub mod retry;

pub use pool::Pool;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

/// Why an exchange with an upstream failed. [`UpstreamError::status`] maps each to the answer
/// a client gets when no response byte has reached it yet.
#[derive(Debug)]
pub enum UpstreamError {
    /// 503: the upstream has no target to send to.
    NoTarget,
    /// 502: the target refused or reset the connection attempt.
    Connect(io::Error),
    /// 504: the connection was not established within `connect_timeout`.
    ConnectTimeout,
    /// 504: no progress within `read_timeout` / `write_timeout`.
    Timeout,
    /// 502: the connection failed or closed before a complete response head.
    Broken(io::Error),
    /// 502: the response head was invalid or oversized.
    BadResponse(crate::http::response::BadResponse),
}

impl UpstreamError {
    pub fn kind(&self) -> crate::proxy::UpstreamErrorKind {
        use crate::proxy::UpstreamErrorKind as Kind;
        match self {
            UpstreamError::NoTarget | UpstreamError::Connect(_) => Kind::Connect,
            UpstreamError::ConnectTimeout | UpstreamError::Timeout => Kind::Timeout,
            UpstreamError::Broken(_) => Kind::Reset,
            UpstreamError::BadResponse(_) => Kind::BadResponse,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            UpstreamError::NoTarget => 503,
            UpstreamError::ConnectTimeout | UpstreamError::Timeout => 504,
            UpstreamError::Connect(_)
            | UpstreamError::Broken(_)
            | UpstreamError::BadResponse(_) => 502,
        }
    }
}

/// A target address as a Host value. Not `addr.to_string()`: a v6 address's zone (`%eth0`)
/// has no place in a Host header.
pub fn host_of(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(Ok(stream)) => {
            // Heads and small bodies go out in one write; Nagle would only delay them.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(UpstreamError::Connect(e)),
        Err(_) => Err(UpstreamError::ConnectTimeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV6};

    #[test]
    fn host_of_brackets_v6_and_drops_its_zone() {
        let zoned = SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 80, 0, 2);
        assert_eq!(SocketAddr::V6(zoned).to_string(), "[fe80::1%2]:80");
        assert_eq!(host_of(SocketAddr::V6(zoned)), "[fe80::1]:80");
        assert_eq!(host_of("10.0.0.7:8080".parse().unwrap()), "10.0.0.7:8080");
    }
}
