//! The route cache: the result of the IPv4 longest-prefix match and of the
//! next-hop walk, kept per (VRF, address) so that established traffic skips
//! both (they were the largest share of a forwarded packet's time).
//!
//! Two direct-mapped arrays, allocated once at creation (no allocation
//! per packet):
//! - `dst`: (VRF, destination) → the output decision [`Out`] of
//!   `resolve_l3` and whether the output vif asks for flow checks;
//! - `lpm`: (VRF, address) → the route found ([`RouteData`]), for the
//!   lookups whose next hop only names something (the flow key's source
//!   next hop of decapsulated packets, "is this fabric address ours").
//!
//! Correctness rests on one generation counter: every change of a vif,
//! next hop, route, VRF, MPLS label or VNI ([`Router`]'s configuration
//! API, the only way to change them) bumps it, and a slot is valid only
//! with the current generation, so no change is ever missed. A change
//! costs O(1); the rare wrap of the counter clears the arrays.
//!
//! Not cached, because the answer depends on the packet or on more than
//! the destination: ECMP (a composite next hop picks a member by the
//! packet's hash), VRF-translate chains, and every outcome that is not a
//! plain output (traps, drops). Those take the full walk each time.

use super::*;
use alloc::vec;
use alloc::vec::Vec;

/// Slots of each array (a power of two). 16k slots cover a VRF of 10k
/// remote hosts with few collisions; the two arrays take about 1.5 MiB,
/// allocated once with the router (in the Windows kernel: non-paged pool).
const SLOTS: usize = 16 * 1024;
const SHIFT: u32 = 32 - SLOTS.trailing_zeros();

#[derive(Clone, Copy)]
#[repr(align(64))]
struct DstSlot {
    /// 0: empty (the live generation is never 0).
    gen: u32,
    vrf: u16,
    addr: [u8; 4],
    /// The output vif has the policy flag.
    out_policy: bool,
    out: Out,
}

#[derive(Clone, Copy)]
struct LpmSlot {
    gen: u32,
    vrf: u16,
    addr: [u8; 4],
    rt: Option<RouteData>,
}

pub(crate) struct RouteCache {
    gen: u32,
    dst: Vec<DstSlot>,
    lpm: Vec<LpmSlot>,
    /// The last (generation, VRF, address) found to be one of this host's
    /// fabric addresses: nearly every packet from the fabric is addressed
    /// to the same one, so this answers before the `lpm` slot does.
    ours: (u32, u16, [u8; 4]),
    hits: u64,
    misses: u64,
}

#[inline]
fn slot(vrf: u16, addr: &[u8; 4]) -> usize {
    let k = u32::from_ne_bytes(*addr) ^ (u32::from(vrf) << 16 | u32::from(vrf));
    (k.wrapping_mul(0x9e37_79b1) >> SHIFT) as usize
}

impl RouteCache {
    pub(crate) fn new() -> RouteCache {
        RouteCache {
            gen: 1,
            dst: vec![
                DstSlot {
                    gen: 0,
                    vrf: 0,
                    addr: [0; 4],
                    out_policy: false,
                    out: Out::Bridged { oif: 0 },
                };
                SLOTS
            ],
            lpm: vec![
                LpmSlot {
                    gen: 0,
                    vrf: 0,
                    addr: [0; 4],
                    rt: None,
                };
                SLOTS
            ],
            ours: (0, 0, [0; 4]),
            hits: 0,
            misses: 0,
        }
    }

    /// Forget everything: the forwarding state changed.
    #[inline]
    pub(crate) fn invalidate(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            // After 2^32 changes an old slot's generation could match again.
            for s in self.dst.iter_mut() {
                s.gen = 0;
            }
            for s in self.lpm.iter_mut() {
                s.gen = 0;
            }
            self.ours.0 = 0;
            self.gen = 1;
        }
    }

    /// The cached output toward `addr` in `vrf`, and the output vif's
    /// policy flag.
    #[inline]
    pub(super) fn out(&mut self, vrf: u16, addr: &[u8; 4]) -> Option<(Out, bool)> {
        let s = self.dst.get(slot(vrf, addr))?;
        if s.gen == self.gen && s.vrf == vrf && s.addr == *addr {
            self.hits += 1;
            Some((s.out, s.out_policy))
        } else {
            self.misses += 1;
            None
        }
    }

    #[inline]
    pub(super) fn put_out(&mut self, vrf: u16, addr: &[u8; 4], out: Out, out_policy: bool) {
        let gen = self.gen;
        if let Some(s) = self.dst.get_mut(slot(vrf, addr)) {
            *s = DstSlot {
                gen,
                vrf,
                addr: *addr,
                out_policy,
                out,
            };
        }
    }

    /// Hint the CPU to load the `dst` slot of `addr` (a batch's prefetch).
    #[inline]
    pub(super) fn prefetch_out(&self, vrf: u16, addr: &[u8; 4]) {
        if let Some(s) = self.dst.get(slot(vrf, addr)) {
            crate::flow::table::prefetch_read(core::ptr::from_ref(s).cast::<u8>());
        }
    }

    /// The cached route for `addr` in `vrf` (`Some(None)`: known to have
    /// none). Always inlined: returned through memory, the answer was
    /// written in parts and read back whole, a load that waits for the
    /// stores (no store forwarding).
    #[inline(always)]
    pub(super) fn route(&self, vrf: u16, addr: &[u8; 4]) -> Option<Option<RouteData>> {
        let s = self.lpm.get(slot(vrf, addr))?;
        (s.gen == self.gen && s.vrf == vrf && s.addr == *addr).then_some(s.rt)
    }

    #[inline]
    pub(super) fn put_route(&mut self, vrf: u16, addr: &[u8; 4], rt: Option<RouteData>) {
        let gen = self.gen;
        if let Some(s) = self.lpm.get_mut(slot(vrf, addr)) {
            *s = LpmSlot {
                gen,
                vrf,
                addr: *addr,
                rt,
            };
        }
    }

    /// `addr` in `vrf` is the fabric address last found to be ours
    /// ([`Self::note_ours`]) under the current configuration.
    #[inline]
    pub(super) fn known_ours(&self, vrf: u16, addr: &[u8; 4]) -> bool {
        self.ours == (self.gen, vrf, *addr)
    }

    #[inline]
    pub(super) fn note_ours(&mut self, vrf: u16, addr: &[u8; 4]) {
        self.ours = (self.gen, vrf, *addr);
    }

    /// The configuration generation (changes with every [`Self::invalidate`]).
    #[inline]
    pub(crate) fn generation(&self) -> u32 {
        self.gen
    }

    /// Lookups of output decisions answered from the cache, and not.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}
