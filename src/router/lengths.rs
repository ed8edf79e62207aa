//! Which key lengths a lookup table holds, so a lookup can skip hashing a probe that cannot hit.
//!
//! A request path offers one probe per segment boundary and a host one per label; most of them
//! have a length no configured key has. Testing a bit is far cheaper than hashing and probing.

/// Lengths at or above this are not tracked and always probed.
const TRACKED: usize = 256;

#[derive(Debug, Clone, Default)]
pub(crate) struct LengthSet {
    bits: [u64; TRACKED / 64],
    /// Some key is at least `TRACKED` long.
    any_long: bool,
}

impl LengthSet {
    pub(crate) fn insert(&mut self, len: usize) {
        match self.bits.get_mut(len / 64) {
            Some(word) => *word |= 1 << (len % 64),
            None => self.any_long = true,
        }
    }

    /// False only when no key of this length exists.
    #[inline]
    pub(crate) fn may_contain(&self, len: usize) -> bool {
        match self.bits.get(len / 64) {
            Some(word) => word & (1 << (len % 64)) != 0,
            None => self.any_long,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_lengths() {
        let mut set = LengthSet::default();
        for len in [0, 1, 63, 64, 200, 255] {
            assert!(!set.may_contain(len));
            set.insert(len);
            assert!(set.may_contain(len));
        }
        assert!(!set.may_contain(2));
        assert!(!set.may_contain(65));
        assert!(!set.may_contain(256));
        assert!(!set.may_contain(10_000));
    }

    #[test]
    fn long_lengths_are_one_bucket() {
        let mut set = LengthSet::default();
        set.insert(300);
        assert!(set.may_contain(256));
        assert!(set.may_contain(300));
        assert!(set.may_contain(9_999));
        assert!(!set.may_contain(255));
    }
}
