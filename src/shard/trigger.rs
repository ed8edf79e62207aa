//! A shard-local, one-shot event: fired once (a listener removed, a drain begun), awaited by
//! any number of tasks of the same shard. Each waiter owns one waker slot, so a connection that
//! is polled many times while idle never grows the list.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Default)]
pub struct Trigger(Rc<Inner>);

#[derive(Default)]
struct Inner {
    fired: Cell<bool>,
    slots: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Trigger {
    pub fn fire(&self) {
        if self.0.fired.replace(true) {
            return;
        }
        let wakers: Vec<Waker> = self
            .0
            .slots
            .borrow_mut()
            .wakers
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    pub fn fired(&self) -> bool {
        self.0.fired.get()
    }

    /// Resolves once the trigger has fired (at once if it already has).
    pub fn wait(&self) -> Wait {
        Wait {
            trigger: self.clone(),
            slot: None,
        }
    }
}

pub struct Wait {
    trigger: Trigger,
    slot: Option<usize>,
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.trigger.fired() {
            return Poll::Ready(());
        }
        let inner = Rc::clone(&self.trigger.0);
        let mut slots = inner.slots.borrow_mut();
        let slot = match self.slot {
            Some(slot) => slot,
            None => {
                let slot = match slots.free.pop() {
                    Some(slot) => slot,
                    None => {
                        slots.wakers.push(None);
                        slots.wakers.len() - 1
                    }
                };
                self.slot = Some(slot);
                slot
            }
        };
        slots.wakers[slot] = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let mut slots = self.trigger.0.slots.borrow_mut();
            slots.wakers[slot] = None;
            slots.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_once_fired_and_slots_are_reused() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let t = Trigger::default();
            let waiter = monoio::spawn({
                let t = t.clone();
                async move { t.wait().await }
            });
            // Many short-lived waits leave the slot table at its high-water mark.
            for _ in 0..100 {
                let w = t.wait();
                let _ = monoio::time::timeout(std::time::Duration::from_millis(1), w).await;
            }
            assert!(t.0.slots.borrow().wakers.len() <= 2);
            t.fire();
            waiter.await;
            assert!(t.fired());
            t.wait().await;
        });
    }
}
