//! The `Date` field value (RFC 9110 §6.6.1), formatted at most once per second per shard.

use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

pub const DATE_LEN: usize = 29;

pub struct DateCache {
    second: Cell<u64>,
    value: RefCell<[u8; DATE_LEN]>,
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            second: Cell::new(u64::MAX),
            value: RefCell::new([b' '; DATE_LEN]),
        }
    }
}

impl DateCache {
    /// The current date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn now(&self) -> [u8; DATE_LEN] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second.get() {
            let text = httpdate::fmt_http_date(now);
            let mut value = self.value.borrow_mut();
            if text.len() == DATE_LEN {
                value.copy_from_slice(text.as_bytes());
            }
            self.second.set(second);
        }
        *self.value.borrow()
    }
}
