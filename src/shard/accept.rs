//! The accept loop of one listener on one shard.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use monoio::net::TcpListener;

use super::{Shard, Trigger};

/// How long to stop accepting when the process is out of file descriptors: long enough for
/// connections to close, short enough that a burst is not refused for long.
const FD_EXHAUSTED_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts until `stop` fires; dropping the listener then closes the socket.
pub async fn run(shard: Rc<Shard>, listener: TcpListener, stop: Trigger) {
    let mut stopped = std::pin::pin!(stop.wait());
    loop {
        let accepted = monoio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let max = shard.snapshot().config.server.limits.max_connections;
                // Over the limit the connection is closed at once: cheaper than a response,
                // and the client sees a clear reset instead of a hang.
                let Some(slot) = shard.shared.admit(max) else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                monoio::spawn(crate::proxy::serve(
                    Rc::clone(&shard),
                    stream,
                    peer,
                    slot,
                    stop.clone(),
                ));
            }
            Err(e) if is_fd_exhaustion(&e) => {
                // Accepting again at once would spin: the queue still holds the connection.
                crate::log::warn(format_args!(
                    "shard {}: accept: {e}; pausing accepts",
                    shard.id
                ));
                monoio::time::sleep(FD_EXHAUSTED_BACKOFF).await;
            }
            // The peer gave up before we accepted it; nothing to do.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
                ) => {}
            Err(e) => {
                crate::log::error(format_args!("shard {}: accept: {e}", shard.id));
                monoio::time::sleep(FD_EXHAUSTED_BACKOFF).await;
            }
        }
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
