//! A shard's control task: the one place a shard hears from the management thread. It polls a
//! channel (never blocking the shard) for listener changes and the drain order, runs periodic
//! housekeeping, and ends the shard once a drain has closed every connection.

use std::rc::Rc;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};

use super::Shard;

/// Listeners are named by the management thread; the id survives reloads that keep the address.
pub type ListenerId = usize;

pub enum Command {
    /// New sockets, already bound and listening; the shard starts accepting on them.
    AddListeners(Vec<(ListenerId, std::net::TcpListener)>),
    /// Stop accepting on these; their connections finish what they are doing and close.
    RemoveListeners(Vec<ListenerId>),
    /// Graceful shutdown: stop accepting everywhere, close idle connections, let busy ones
    /// finish with `Connection: close`.
    Drain,
}

/// How often the channel is checked (changes land within this, at no cost to requests), and
/// how late an idle connection's deadline may fire.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often idle upstream connections past their timeout are closed.
const POOL_SWEEP_EVERY: u32 = 20;

/// Runs until the shard has drained.
pub async fn run(shard: Rc<Shard>, commands: Receiver<Command>) {
    let mut ticks = 0u32;
    loop {
        monoio::time::sleep(POLL_INTERVAL).await;
        loop {
            match commands.try_recv() {
                Ok(Command::AddListeners(listeners)) => {
                    for (id, listener) in listeners {
                        if let Err(e) = shard.adopt(id, listener) {
                            crate::log::error(format_args!(
                                "shard {}: cannot accept on a new listener: {e}",
                                shard.id
                            ));
                        }
                    }
                }
                Ok(Command::RemoveListeners(ids)) => {
                    for id in ids {
                        shard.retire(id);
                    }
                }
                Ok(Command::Drain) => shard.drain(),
                Err(TryRecvError::Empty) => break,
                // The management thread is gone: nobody can order a drain any more, so drain.
                Err(TryRecvError::Disconnected) => {
                    shard.drain();
                    break;
                }
            }
        }
        if shard.is_draining() && shard.active_connections() == 0 {
            return;
        }
        shard.idle.fire_due(std::time::Instant::now());
        ticks += 1;
        if ticks % POOL_SWEEP_EVERY == 0 {
            shard.pool.sweep();
        }
    }
}
