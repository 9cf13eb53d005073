//! Frames held while the agent decides a new flow.
//!
//! The core bounds holds per flow (`RouterConfig::max_held_per_flow`, in the
//! flow entry's `hold_count`); this store bounds them again per flow, in
//! total and in bytes (a GSO super-packet is held whole, up to 64 KB), and
//! ages them out, so a silent agent cannot make the host grow.

use crate::vnet::VnetHdr;
use std::collections::HashMap;
use std::time::Instant;

/// One held frame: the original bytes as received, their offload header
/// (a GSO super-packet is held whole) and the vif to re-inject them on.
#[derive(Clone, Debug)]
pub struct Held {
    pub vif: u16,
    pub frame: Vec<u8>,
    pub vnet: VnetHdr,
    pub since: Instant,
}

pub struct HoldStore {
    map: HashMap<u32, Vec<Held>>,
    per_flow: usize,
    max_total: usize,
    max_bytes: usize,
    total: usize,
    bytes: usize,
}

impl HoldStore {
    pub fn new(per_flow: usize, max_total: usize, max_bytes: usize) -> Self {
        HoldStore {
            map: HashMap::new(),
            per_flow,
            max_total,
            max_bytes,
            total: 0,
            bytes: 0,
        }
    }

    /// Keep a copy of `frame` for `flow`; false if a bound was hit (the
    /// caller counts the drop).
    pub fn hold(&mut self, flow: u32, vif: u16, frame: &[u8], vnet: VnetHdr, now: Instant) -> bool {
        if self.total >= self.max_total || self.bytes + frame.len() > self.max_bytes {
            return false;
        }
        let q = self.map.entry(flow).or_default();
        if q.len() >= self.per_flow {
            return false;
        }
        q.push(Held {
            vif,
            frame: frame.to_vec(),
            vnet,
            since: now,
        });
        self.total += 1;
        self.bytes += frame.len();
        true
    }

    /// Whether a frame of `len` bytes of a new flow would be kept.
    pub fn has_room(&self, len: usize) -> bool {
        self.total < self.max_total && self.bytes + len <= self.max_bytes
    }

    /// Everything held for `flow`, oldest first.
    pub fn take(&mut self, flow: u32) -> Vec<Held> {
        let q = self.map.remove(&flow).unwrap_or_default();
        self.total -= q.len();
        self.bytes -= q.iter().map(|h| h.frame.len()).sum::<usize>();
        q
    }

    /// Forget `flow`'s frames; returns how many were dropped.
    pub fn drop_flow(&mut self, flow: u32) -> usize {
        self.take(flow).len()
    }

    /// Drop frames held since before `deadline`; returns how many.
    pub fn expire(&mut self, deadline: Instant) -> usize {
        let mut n = 0;
        let mut bytes = 0;
        self.map.retain(|_, q| {
            let before = q.len();
            q.retain(|h| {
                let keep = h.since >= deadline;
                if !keep {
                    bytes += h.frame.len();
                }
                keep
            });
            n += before - q.len();
            !q.is_empty()
        });
        self.total -= n;
        self.bytes -= bytes;
        n
    }

    /// Frames held in total.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Bytes held in total.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Flows with held frames.
    pub fn flows(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.map.iter().map(|(f, q)| (*f, q.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounds_and_release() {
        let t0 = Instant::now();
        let mut h = HoldStore::new(2, 3, 1 << 20);
        let n = VnetHdr::NONE;
        assert!(h.hold(5, 3, b"a", n, t0));
        assert!(h.hold(5, 3, b"b", n, t0));
        assert!(!h.hold(5, 3, b"c", n, t0), "per-flow bound");
        assert!(h.hold(6, 4, b"d", n, t0));
        assert!(!h.hold(7, 4, b"e", n, t0), "total bound");
        assert_eq!((h.len(), h.bytes()), (3, 3));
        let q = h.take(5);
        assert_eq!(
            q.iter().map(|x| x.frame.as_slice()).collect::<Vec<_>>(),
            [b"a", b"b"]
        );
        assert_eq!(h.len(), 1);
        assert!(h.take(5).is_empty());
        assert_eq!(h.drop_flow(6), 1);
        assert!(h.is_empty());
        assert_eq!(h.bytes(), 0);
    }

    #[test]
    fn byte_bound() {
        let t0 = Instant::now();
        let mut h = HoldStore::new(8, 100, 100_000);
        let big = vec![0u8; 65_000];
        assert!(h.hold(1, 3, &big, VnetHdr::NONE, t0));
        assert!(!h.hold(2, 3, &big, VnetHdr::NONE, t0), "byte bound");
        assert!(h.hold(2, 3, b"small", VnetHdr::NONE, t0));
        assert_eq!(h.expire(t0 + Duration::from_secs(1)), 2);
        assert_eq!((h.len(), h.bytes()), (0, 0));
    }

    #[test]
    fn expiry() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let mut h = HoldStore::new(4, 100, 1 << 20);
        let n = VnetHdr::NONE;
        h.hold(1, 1, b"old", n, t0);
        h.hold(1, 1, b"new", n, t1);
        h.hold(2, 1, b"old", n, t0);
        assert_eq!(h.expire(t0 + Duration::from_secs(1)), 2);
        assert_eq!(h.len(), 1);
        assert_eq!(h.flows().collect::<Vec<_>>(), [(1, 1)]);
    }
}
