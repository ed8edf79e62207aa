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
pub fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
