//! Test DSL for black-box integration tests of the `shardgate` binary.
//!
//! * `Gateway` / `Conf`: write a config, start the binary, wait for its
//!   `listening` line, stop it with SIGTERM. `for_each_driver` runs a test
//!   body under io_uring (when the machine has it, loudly skipped if not) and
//!   epoll.
//! * `Origin`: upstream servers on std::net, well-behaved or scripted.
//! * `Client`: raw bytes out, parsed responses in, every read guarded.
//!
//! Nothing here uses the gateway's own code: only its CLI and config contract.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod gateway;
pub mod origin;
pub mod wire;

pub use client::{Client, Response};
pub use gateway::{check, for_each_driver, run_cli, Conf, Gateway, TempConfig, BIN};
pub use origin::{BodyFraming, Origin, RawConn, Reply, Request};
pub use wire::{checksum, pattern};

use std::net::{SocketAddr, TcpListener};

/// An address nothing listens on (bound, then released).
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
