//! `X-Request-Id` values: 32 hex digits, unique per process run, made without locks or
//! syscalls: a per-process random seed, the shard id and a shard-local counter, mixed.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

pub const REQUEST_ID_LEN: usize = 32;

pub struct RequestIds {
    seed: u64,
    counter: Cell<u64>,
}

impl RequestIds {
    pub fn new(shard: usize) -> RequestIds {
        // RandomState is seeded from the OS once per process; good enough to keep ids from
        // two runs apart, and it spares a dependency.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(shard);
        RequestIds {
            seed: h.finish(),
            counter: Cell::new((shard as u64) << 48),
        }
    }

    pub fn next(&self) -> [u8; REQUEST_ID_LEN] {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let mut out = [0u8; REQUEST_ID_LEN];
        hex(splitmix(self.seed ^ n), &mut out[..16]);
        hex(
            splitmix(n.wrapping_add(self.seed.rotate_left(32))),
            &mut out[16..],
        );
        out
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hex(v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_hex() {
        let ids = RequestIds::new(0);
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert!(a.iter().all(u8::is_ascii_hexdigit));
        assert_ne!(RequestIds::new(1).next(), RequestIds::new(2).next());
    }
}
