//! Test DSL for black-box integration tests of the `shardgate` binary.
//!
//! * `Gateway` / `Conf`: write a config, start the binary, wait for its
//!   `listening` line, stop it with SIGTERM. `for_each_driver` runs a test
//!   body under io_uring (when the machine has it, loudly skipped if not) and
//!   epoll.
//! * `Origin`: upstream servers on std::net, well-behaved or scripted.
//! * `Client`: raw bytes out, parsed responses in, every read guarded.
//! * `Admin`: the admin listener (`/healthz`, `/metrics`, `/config`,
//!   `/reload`) and a reader for the Prometheus text format (`metric`).
//!
//! Nothing here uses the gateway's own code: only its CLI and config contract.
#![allow(dead_code, unused_imports)]

pub mod admin;
pub mod client;
pub mod dns;
pub mod gateway;
pub mod origin;
pub mod wire;

pub use admin::{label_values, metric, Admin};
pub use client::{Client, Response};
pub use gateway::{
    check, drivers, for_each_driver, io_uring_available, run_cli, Conf, Gateway, TempConfig,
    TempPath, BIN,
};
pub use origin::{BodyFraming, Gate, Origin, RawConn, Reply, Request};
pub use wire::{checksum, pattern};

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for an expected event (a reload, a log line, a
/// closed listener) before it fails.
pub const EVENT_GUARD: Duration = Duration::from_secs(10);

/// An address that refuses connections. The port stays bound (never listening) for the rest of
/// the test process, so no parallel test can be handed it and start accepting there.
pub fn dead_addr() -> SocketAddr {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    std::mem::forget(socket);
    addr
}

/// An address where a connection is never established: a listener that never accepts, with
/// its backlog already full, so the kernel drops further SYNs and `connect` hangs (as behind
/// a firewall that drops). Keep the returned guard alive for as long as the address is used.
pub fn blackhole_addr() -> (SocketAddr, Vec<socket2::Socket>) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut held = vec![listener];
    // A backlog of 0 still queues one connection; two more leave no room.
    for _ in 0..3 {
        let filler = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        filler.set_nonblocking(true).unwrap();
        let _ = filler.connect(&addr.into());
        held.push(filler);
    }
    (addr, held)
}

/// A port free right now on `ip` (bound, then released), for configs that
/// need a known address. `ip` is a loopback address such as "127.0.0.2".
///
/// Drawn below the kernel's ephemeral range (32768-60999): a port from
/// there could be handed to another test's outgoing connection or `:0`
/// listener between this check and the gateway's bind.
pub fn free_addr(ip: &str) -> SocketAddr {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..1000 {
        let draw = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = 20_000 + (draw % 12_000) as u16;
        if let Ok(listener) = TcpListener::bind((ip, port)) {
            return listener.local_addr().unwrap();
        }
    }
    panic!("no free port below the ephemeral range on {ip}");
}

/// Sends `GET /slow` through `gw` and returns once `origin` (an [`Origin::held`]) holds it:
/// a request in flight until the gate opens. Its response is still to read.
pub fn hold(gw: &Gateway, origin: &Origin) -> Client {
    let mut client = Client::connect(gw.addr());
    client.send(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(origin.recv().target, "/slow");
    client
}

/// Polls `probe` every 10 ms until it returns Some, for at most EVENT_GUARD;
/// panics naming `what` when it never does.
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + EVENT_GUARD;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not seen within {EVENT_GUARD:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A connection attempt to `addr`: Ok when accepted into a backlog, the
/// error otherwise (ConnectionRefused when nothing listens).
pub fn try_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500))
}

/// Polls until connecting to `addr` is refused (guarded).
pub fn wait_refused(addr: SocketAddr, why: &str) {
    eventually(
        &format!("{why}: connect to {addr} refused"),
        || match try_connect(addr) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        },
    )
}
