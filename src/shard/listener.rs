//! Listening sockets: one per (shard, address), all sharing the port through SO_REUSEPORT so
//! the kernel spreads new connections across shards without any user-space hand-off.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

const BACKLOG: i32 = 4096;

/// Binds `shards` sockets for every address. A port of 0 is resolved by the first bind and
/// reused for the rest, so every shard listens on the same port. Returns the real addresses
/// and, per shard, its sockets (in the order of `addrs`).
pub fn bind_all(
    addrs: &[SocketAddr],
    shards: usize,
) -> io::Result<(Vec<SocketAddr>, Vec<Vec<std::net::TcpListener>>)> {
    let mut bound = Vec::with_capacity(addrs.len());
    let mut per_shard: Vec<Vec<std::net::TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    for &addr in addrs {
        let mut real = addr;
        for listeners in per_shard.iter_mut() {
            let l = bind(real)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            real = l.local_addr()?;
            listeners.push(l);
        }
        bound.push(real);
    }
    Ok((bound, per_shard))
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // The epoll driver needs non-blocking sockets, and monoio's from_std does not set it.
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
