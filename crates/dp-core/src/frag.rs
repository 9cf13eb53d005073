//! Fragment table: remembers the ports of a first fragment so that later
//! fragments of the same datagram hit the same flow (upstream `vr_fragment`).

use alloc::vec::Vec;

#[derive(Clone, Copy, Default)]
struct Entry {
    valid: bool,
    family: u8,
    vrf: u16,
    id: u32,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    /// Seconds (router clock) when stored.
    time: u32,
}

/// Key of a datagram being fragmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragKey {
    pub family: u8,
    pub vrf: u16,
    pub id: u32,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

const WAYS: usize = 4;
/// Seconds a first fragment's ports are kept.
pub const FRAG_TIMEOUT: u32 = 10;

/// A 4-way set-associative table; a new datagram evicts the oldest entry
/// of its set, so the table never grows and never needs a sweep.
pub struct FragTable {
    entries: Vec<Entry>,
    mask: usize,
}

impl FragTable {
    /// `size` is rounded up to a power of two, at least one set.
    pub fn new(size: u32) -> Self {
        let n = (size as usize).max(WAYS).next_power_of_two();
        let mut entries = Vec::with_capacity(n);
        entries.resize(n, Entry::default());
        FragTable {
            entries,
            mask: n - 1,
        }
    }

    #[inline]
    fn set(&self, k: &FragKey) -> usize {
        let mut h = (k.id as u64) ^ ((k.vrf as u64) << 32) ^ ((k.family as u64) << 48);
        for c in k.src.chunks_exact(8).chain(k.dst.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        (h as usize) & self.mask & !(WAYS - 1)
    }

    #[inline]
    fn matches(e: &Entry, k: &FragKey) -> bool {
        e.valid
            && e.id == k.id
            && e.vrf == k.vrf
            && e.family == k.family
            && e.src == k.src
            && e.dst == k.dst
    }

    /// Record the ports of a first fragment.
    pub fn insert(&mut self, k: &FragKey, sport: u16, dport: u16, now: u32) {
        let base = self.set(k);
        let Some(set) = self.entries.get_mut(base..base + WAYS) else {
            return;
        };
        let mut victim = 0;
        for (i, e) in set.iter().enumerate() {
            if Self::matches(e, k) || !e.valid {
                victim = i;
                break;
            }
            if set.get(victim).is_some_and(|v| e.time < v.time) {
                victim = i;
            }
        }
        let Some(slot) = set.get_mut(victim) else {
            return;
        };
        *slot = Entry {
            valid: true,
            family: k.family,
            vrf: k.vrf,
            id: k.id,
            src: k.src,
            dst: k.dst,
            sport,
            dport,
            time: now,
        };
    }

    /// Ports of a datagram whose first fragment was seen recently.
    pub fn lookup(&self, k: &FragKey, now: u32) -> Option<(u16, u16)> {
        let base = self.set(k);
        self.entries
            .get(base..base + WAYS)?
            .iter()
            .find(|e| Self::matches(e, k) && now.wrapping_sub(e.time) <= FRAG_TIMEOUT)
            .map(|e| (e.sport, e.dport))
    }

    /// Forget a datagram once its last fragment went through.
    pub fn remove(&mut self, k: &FragKey) {
        let base = self.set(k);
        if let Some(set) = self.entries.get_mut(base..base + WAYS) {
            for e in set.iter_mut().filter(|e| Self::matches(e, k)) {
                e.valid = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey {
        FragKey {
            family: 2,
            vrf: 1,
            id,
            src: [1; 16],
            dst: [2; 16],
        }
    }

    #[test]
    fn insert_lookup_expire_remove() {
        let mut t = FragTable::new(16);
        t.insert(&key(7), 1000, 53, 100);
        assert_eq!(t.lookup(&key(7), 101), Some((1000, 53)));
        assert_eq!(t.lookup(&key(8), 101), None);
        assert_eq!(t.lookup(&key(7), 100 + FRAG_TIMEOUT + 1), None);
        t.remove(&key(7));
        assert_eq!(t.lookup(&key(7), 101), None);
    }

    #[test]
    fn full_set_evicts_oldest() {
        let mut t = FragTable::new(4); // a single set of 4
        for i in 0..4 {
            t.insert(&key(i), i as u16, 0, 10 + i);
        }
        t.insert(&key(99), 99, 0, 20);
        assert_eq!(t.lookup(&key(0), 20), None);
        assert_eq!(t.lookup(&key(99), 20), Some((99, 0)));
        assert_eq!(t.lookup(&key(3), 20), Some((3, 0)));
    }
}
