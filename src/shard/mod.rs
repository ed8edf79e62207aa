//! A shard: one thread pinned to one CPU, running its own monoio runtime, accepting on its own
//! SO_REUSEPORT sockets and serving each connection to the end. Its state is `Rc`/`RefCell`;
//! it reaches other threads only through [`Shared`].

mod accept;
pub mod control;
pub mod idle;
pub mod listener;
mod trigger;

pub use trigger::Trigger;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use control::{Command, ListenerId};

use crate::config::Driver;
use crate::http::date::DateCache;
use crate::proxy::Scratch;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::upstream::Pool;

/// Submission queue size. Bounds what one loop turn submits, not how many operations are in
/// flight, so bursts of thousands of connections still fit.
const URING_ENTRIES: u32 = 4096;

/// Per-shard state, reached by every connection task of the shard through an `Rc`.
pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    // The Rc layer is deliberate: cloning it per request touches only this shard's memory,
    // where cloning the Arc would bounce its count between cores.
    #[allow(clippy::redundant_allocation)]
    snapshot: RefCell<Rc<Arc<Snapshot>>>,
    pub pool: Pool,
    /// Deadlines of connections waiting between requests, fired on the control tick.
    pub idle: idle::IdleTimers,
    /// The process's metrics; this shard writes only its own slots.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub date: DateCache,
    pub request_ids: crate::proxy::RequestIds,
    buffers: RefCell<Vec<Vec<u8>>>,
    /// Each listener's stop trigger, shared with its accept loop and its connections.
    listeners: RefCell<HashMap<ListenerId, Trigger>>,
    active: Cell<usize>,
    draining: Cell<bool>,
    // Boxed so a connection task holds a pointer, not the scratch itself, while idle.
    #[allow(clippy::vec_box)]
    scratch: RefCell<Vec<Box<Scratch>>>,
}

/// Read buffers start at this size; a head larger than it grows the buffer up to
/// `max_header_bytes`.
pub const BUFFER_SIZE: usize = 16 * 1024;
/// Buffers kept for reuse per shard; beyond this they are freed, so a burst does not pin memory.
const SPARE_BUFFERS: usize = 1024;

impl Shard {
    fn new(id: usize, shared: Arc<Shared>) -> Shard {
        let current = shared.snapshot.load_full();
        let metrics = Arc::clone(&current.metrics);
        let snapshot = RefCell::new(Rc::new(current));
        Shard {
            id,
            shared,
            snapshot,
            pool: Pool::new(id),
            idle: idle::IdleTimers::default(),
            metrics,
            date: DateCache::default(),
            request_ids: crate::proxy::RequestIds::new(id),
            buffers: RefCell::new(Vec::new()),
            listeners: RefCell::new(HashMap::new()),
            active: Cell::new(0),
            draining: Cell::new(false),
            scratch: RefCell::new(Vec::new()),
        }
    }

    /// The current snapshot. One `ArcSwap` load; the shard keeps its own reference so that
    /// the shared reference count is touched once per reload, not once per request.
    #[allow(clippy::redundant_allocation)]
    pub fn snapshot(&self) -> Rc<Arc<Snapshot>> {
        let current = self.shared.snapshot.load();
        let mut cached = self.snapshot.borrow_mut();
        if !Arc::ptr_eq(&current, &cached) {
            *cached = Rc::new(Arc::clone(&current));
        }
        Rc::clone(&cached)
    }

    /// Starts accepting on a listening socket handed over by the management thread.
    fn adopt(
        self: &Rc<Self>,
        id: ListenerId,
        listener: std::net::TcpListener,
    ) -> std::io::Result<()> {
        let listener = monoio::net::TcpListener::from_std(listener)?;
        let stop = Trigger::default();
        if self.draining.get() {
            stop.fire();
        }
        self.listeners.borrow_mut().insert(id, stop.clone());
        monoio::spawn(accept::run(Rc::clone(self), listener, stop));
        Ok(())
    }

    /// Stops accepting on a listener; its connections close once their current exchange ends.
    fn retire(&self, id: ListenerId) {
        if let Some(stop) = self.listeners.borrow_mut().remove(&id) {
            stop.fire();
        }
    }

    fn drain(&self) {
        self.draining.set(true);
        for (_, stop) in self.listeners.borrow_mut().drain() {
            stop.fire();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Counts a client connection for the drain; the guard uncounts it.
    pub fn open_connection(self: &Rc<Self>) -> ActiveConnection {
        self.active.set(self.active.get() + 1);
        self.metrics.shard(self.id).connection_opened();
        ActiveConnection(Rc::clone(self))
    }

    pub fn active_connections(&self) -> usize {
        self.active.get()
    }

    pub fn take_buffer(&self) -> Vec<u8> {
        self.buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_SIZE))
    }

    pub fn give_buffer(&self, mut buf: Vec<u8>) {
        let mut spare = self.buffers.borrow_mut();
        if spare.len() < SPARE_BUFFERS
            && buf.capacity() <= 4 * BUFFER_SIZE
            && buf.capacity() >= BUFFER_SIZE
        {
            buf.clear();
            spare.push(buf);
        }
    }

    pub fn take_scratch(&self) -> Box<Scratch> {
        self.scratch.borrow_mut().pop().unwrap_or_default()
    }

    pub fn give_scratch(&self, scratch: Box<Scratch>) {
        let mut spare = self.scratch.borrow_mut();
        if spare.len() < SPARE_BUFFERS {
            spare.push(scratch);
        }
    }
}

pub struct ActiveConnection(Rc<Shard>);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
        self.0.metrics.shard(self.0.id).connection_closed();
    }
}

/// What the management thread hands a shard thread.
pub struct ShardPlan {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub driver: Driver,
    pub listeners: Vec<(ListenerId, std::net::TcpListener)>,
    pub commands: Receiver<Command>,
}

/// Reported once per shard: the driver it runs on, or why it could not start.
pub type Ready = Result<&'static str, String>;

/// Starts a shard thread. It reports on `ready` once accepting (or why it could not start), and
/// on `exited` when it ends, after a drain.
pub fn spawn(
    plan: ShardPlan,
    shared: Arc<Shared>,
    ready: Sender<(usize, Ready)>,
    exited: Sender<usize>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("shard-{}", plan.id))
        .spawn(move || {
            if let Some(core) = plan.core {
                if !core_affinity::set_for_current(core) {
                    crate::log::warn(format_args!(
                        "shard {}: could not pin to CPU {}",
                        plan.id, core.id
                    ));
                }
            }
            let id = plan.id;
            if let Err(e) = run(plan, shared, &ready) {
                let _ = ready.send((id, Err(e)));
            }
            let _ = exited.send(id);
        })
}

fn run(plan: ShardPlan, shared: Arc<Shared>, ready: &Sender<(usize, Ready)>) -> Result<(), String> {
    use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
    let uring = || {
        // Cooperative task running (Linux 5.19+): completions are processed when the shard next
        // enters the kernel, which it does every loop turn, instead of by interrupting it. On
        // a VM each such interrupt is an exit to the hypervisor; measured here it took io_uring
        // from 14.5 to 9.9 us of CPU per proxied request (tools/bench.sh, 64 connections).
        let mut coop = io_uring::IoUring::builder();
        coop.setup_coop_taskrun().setup_taskrun_flag();
        RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .uring_builder(coop)
            .enable_timer()
            .build()
            .or_else(|_| {
                // Older kernels refuse the flags; plain io_uring still beats giving up on it.
                RuntimeBuilder::<IoUringDriver>::new()
                    .with_entries(URING_ENTRIES)
                    .enable_timer()
                    .build()
            })
    };
    match plan.driver {
        Driver::IoUring => {
            let mut rt = uring().map_err(|e| format!("io_uring unavailable: {e}"))?;
            rt.block_on(main(plan, shared, ready.clone(), "io_uring"));
        }
        Driver::Auto => match uring() {
            Ok(mut rt) => rt.block_on(main(plan, shared, ready.clone(), "io_uring")),
            Err(e) => {
                crate::log::info(format_args!(
                    "shard {}: io_uring unavailable ({e}); using epoll",
                    plan.id
                ));
                let mut rt = RuntimeBuilder::<LegacyDriver>::new()
                    .enable_timer()
                    .build()
                    .map_err(|e| format!("cannot start the epoll runtime: {e}"))?;
                rt.block_on(main(plan, shared, ready.clone(), "epoll"));
            }
        },
        Driver::Epoll => {
            let mut rt = RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .build()
                .map_err(|e| format!("cannot start the epoll runtime: {e}"))?;
            rt.block_on(main(plan, shared, ready.clone(), "epoll"));
        }
    }
    Ok(())
}

async fn main(
    plan: ShardPlan,
    shared: Arc<Shared>,
    ready: Sender<(usize, Ready)>,
    driver: &'static str,
) {
    let shard = Rc::new(Shard::new(plan.id, shared));
    for (id, listener) in plan.listeners {
        if let Err(e) = shard.adopt(id, listener) {
            let _ = ready.send((plan.id, Err(format!("cannot register listener: {e}"))));
            return;
        }
    }
    let _ = ready.send((plan.id, Ok(driver)));
    control::run(shard, plan.commands).await;
}
