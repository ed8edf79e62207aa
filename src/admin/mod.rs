//! The admin listener: `GET /healthz`, `GET /metrics`, `GET /config`, `GET /upstreams`,
//! `POST /reload`.
//!
//! Plain std threads, no async runtime: one thread accepts, and each connection gets its own
//! short-lived thread with read and write deadlines, so a slow admin client holds up only
//! itself and never a signal, a reload or a shard. Concurrent connections are capped; past
//! the cap a connection is answered 503 and closed by the accepting thread itself.

mod conn;
mod endpoints;
mod redact;

#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::control::ReloadRequest;
use crate::log;
use crate::metrics::Metrics;
use crate::shared::Shared;

/// Admin connections served at once; more are answered 503. Scrapers and operators need a
/// handful; the cap bounds the threads a misbehaving client can make us start.
pub const MAX_ADMIN_CONNECTIONS: usize = 16;
/// Longest an admin connection may take to send a request head and body (counted from when
/// the wait for it began, so a client trickling bytes cannot stretch it), and longest a write
/// may wait for the client to read. An idle keep-alive connection is closed after it too.
pub const ADMIN_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `POST /reload` waits for the management thread's answer before replying 504.
/// Generous: a reload resolves names and binds listeners.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What the admin endpoints read and whom they ask.
pub struct AdminContext {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    pub reload: crossbeam_channel::Sender<ReloadRequest>,
    /// Lines the access log dropped so far, for `shardgate_access_log_dropped_total`.
    pub access_log_dropped: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// The limits above, as one value so tests can shrink them.
#[derive(Debug, Clone)]
struct Settings {
    max_connections: usize,
    io_timeout: Duration,
    reload_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_connections: MAX_ADMIN_CONNECTIONS,
            io_timeout: ADMIN_IO_TIMEOUT,
            reload_timeout: RELOAD_TIMEOUT,
        }
    }
}

/// Serves the admin endpoints on `listener` until the process exits.
pub fn spawn(listener: TcpListener, ctx: AdminContext) -> std::io::Result<JoinHandle<()>> {
    spawn_with(listener, ctx, Settings::default())
}

fn spawn_with(
    listener: TcpListener,
    ctx: AdminContext,
    settings: Settings,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(false)?;
    let ctx = Arc::new(ctx);
    let settings = Arc::new(settings);
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || accept_loop(&listener, &ctx, &settings))
}

fn accept_loop(listener: &TcpListener, ctx: &Arc<AdminContext>, settings: &Arc<Settings>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or memory: pause rather than spin on the same error.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionAborted
                ) {
                    log::warn(format_args!("admin listener: accept failed: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
        };
        let Some(slot) = Slot::take(&open, settings.max_connections) else {
            refuse(stream);
            continue;
        };
        let (ctx, settings) = (Arc::clone(ctx), Arc::clone(settings));
        let spawned = std::thread::Builder::new()
            .name("admin-conn".into())
            .spawn(move || {
                let _slot = slot;
                conn::serve(stream, &ctx, &settings);
            });
        if let Err(e) = spawned {
            // The connection (moved into the closure) is closed as it is dropped.
            log::warn(format_args!("admin listener: cannot start a thread: {e}"));
        }
    }
}

/// One of `max_connections` places, given back when the connection's thread ends.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        // Only the accepting thread takes places, so load-then-add cannot overshoot.
        if open.load(Ordering::Acquire) >= max {
            return None;
        }
        open.fetch_add(1, Ordering::AcqRel);
        Some(Slot(Arc::clone(open)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// 503 for a connection past the cap, written without ever blocking the accepting thread: a
/// fresh socket's send buffer always has room for it, and nothing is waited for.
fn refuse(mut stream: TcpStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let reply = endpoints::Reply::text(503, "too many admin connections\n");
    let mut out = Vec::with_capacity(256);
    conn::write_reply(&mut out, &reply, true, true);
    let _ = stream.write_all(&out);
    // Read what already arrived: closing with unread bytes makes the kernel send a reset,
    // which can destroy the 503 before the client reads it.
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
