//! The flow table's shared-memory layout: the upstream constants, the
//! flow key and the record, and how a reader in another process copies a
//! record consistently. Everything here is what the agent (or upstream's
//! agent and `flow` tool) sees in the mapping; [`super::table`] is the hash
//! table over it.
//!
//! # Record layout: upstream's `struct vr_flow_entry`, byte for byte
//!
//! [`FlowEntry`] is 256 bytes, the size of current upstream's packed
//! `struct vr_flow_entry` (tf-vrouter `include/vr_flow.h`: the fields,
//! then `fe_pack[VR_FLOW_ENTRY_PACK]` up to 256, "cache line aligned and
//! factor of 4MB page size"). Upstream packs the struct; every field
//! happens to sit at an offset its size divides except `fe_mme`, so the
//! Rust struct is `#[repr(C, align(64))]` with each field at upstream's
//! offset (the const asserts below check every one) and `fe_mme` as two
//! `u32`s. The table is an array of these from offset 0 of the mapping,
//! hash part first, overflow area after, as upstream's agent indexes it.
//!
//! Upstream's three pointers (`hentry_next`, `fe_hold_list`, `fe_mme`)
//! are kernel addresses nobody outside the datapath follows (upstream's
//! agent and `flow` tool never read them). `hentry_next` and `fe_mme` are
//! zero here; the 8 bytes of `fe_hold_list` hold the two fields of ours that
//! every packet touches (the held-packet count and `last_seen`), so a
//! forwarded packet touches the entry's first two cache lines only, as
//! upstream's own fields do; in `fe_pack` they would cost a third line per
//! packet (docs/performance.md). The rest of ours lives in `fe_pack`, which
//! upstream leaves unused and which starts in the third line. All integers are in host byte order except the
//! key's ports and addresses, which are in network order as upstream keeps
//! them.
//!
//! | offset | size | field | upstream |
//! |---:|---:|---|---|
//! | 0 | 8 | `hentry_next` (0) | `fe_hentry.hentry_next` (pointer) |
//! | 8 | 4 | `index`: the record's own index | `fe_hentry.hentry_index` |
//! | 12 | 4 | `bucket_index` | `fe_hentry.hentry_bucket_index` |
//! | 16 | 4 | `next_index` | `fe_hentry.hentry_next_index` |
//! | 20 | 1 | `hentry_flags` (`VR_HENTRY_FLAG_VALID` 0x1) | `fe_hentry.hentry_flags` |
//! | 21 | 1 | `ttl` | `fe_ttl` |
//! | 22 | 2 | `qos_id` (i16) | `fe_qos_id` |
//! | 24 | 44 | `key` ([`FlowKey`], below) | `fe_key.key_u` |
//! | 68 | 1 | `key_len`: 20 (IPv4), 44 (IPv6), 0 when freed | `fe_key.flow_key_len` |
//! | 69 | 1 | `gen_id` | `fe_gen_id` |
//! | 70 | 2 | `tcp_flags` (`VR_FLOW_TCP_*`) | `fe_tcp_flags` |
//! | 72 | 4 | `hold_count`: packets the host holds for this flow | `fe_hold_list` (pointer), low half |
//! | 76 | 4 | `last_seen`: datapath seconds of the last packet (aging) | `fe_hold_list`, high half |
//! | 80 | 4 | `tcp_seq` | `fe_tcp_seq` |
//! | 84 | 4 | `rflow` (i32, -1 none) | `fe_rflow` |
//! | 88 | 2 | `flags` (`VR_FLOW_FLAG_*`) | `fe_flags` |
//! | 90 | 2 | `flags1` | `fe_flags1` |
//! | 92 | 2 | `action` (`VR_FLOW_ACTION_*`) | `fe_action` |
//! | 94 | 2 | `vrf` | `fe_vrf` |
//! | 96 | 2 | `dvrf` | `fe_dvrf` |
//! | 98 | 1 | `mirror_id` (255 none) | `fe_mirror_id` |
//! | 99 | 1 | `sec_mirror_id` (255 none) | `fe_sec_mirror_id` |
//! | 100 | 4 | `src_nh_index` | `fe_src_nh_index` |
//! | 104 | 4 | `stats_bytes` | `fe_stats.flow_bytes` |
//! | 108 | 4 | `stats_packets` | `fe_stats.flow_packets` |
//! | 112 | 2 | `stats_bytes_oflow` (bits 32..48 of bytes) | `fe_stats.flow_bytes_oflow` |
//! | 114 | 1 | `stats_packets_oflow` (bits 32..40 of packets) | `fe_stats.flow_packets_oflow` |
//! | 115 | 1 | `ecmp_nh_index` (i8, -1 none) | `fe_ecmp_nh_index` |
//! | 116 | 1 | `drop_reason` (`VR_FLOW_DR_*`) | `fe_drop_reason` |
//! | 117 | 1 | `fe_type` (`VP_TYPE_IP` 2, `VP_TYPE_IP6` 3; 0 when freed) | `fe_type` |
//! | 118 | 2 | `udp_src_port` | `fe_udp_src_port` |
//! | 120 | 4 | `src_info` | `fe_src_info` |
//! | 124 | 8 | `mme` (0) | `fe_mme` (pointer) |
//! | 132 | 4 | `tcp_ack` | `fe_tcp_ack` |
//! | 136 | 1 | `underlay_ecmp_index` (i8, -1 none) | `fe_underlay_ecmp_index` |
//! | 137 | 1 | `bucket_lock` (unused: one writer) | `fe_bucket_lock` |
//! | 138 | 2 | zero | `fe_pack` |
//! | 140 | 4 | `seq`: write sequence, odd while the datapath rewrites the entry | `fe_pack` |
//! | 144 | 112 | zero | `fe_pack` |
//!
//! [`FlowKey`] is upstream's key union (44 bytes): `vr_inet_flow` for IPv4
//! (`key_len` 20: source address at key+12, destination at key+16, the
//! rest of the 44 bytes zero) and `vr_inet6_flow` for IPv6 (`key_len` 44).
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 1 | `family` (2 `AF_INET`, 10 `AF_INET6`: Linux values, as upstream's agent expects) |
//! | 1 | 1 | `proto` |
//! | 2 | 2 | `unused` (zero) |
//! | 4 | 2 | `sport`, network byte order |
//! | 6 | 2 | `dport`, network byte order |
//! | 8 | 4 | `nh_id`, host byte order |
//! | 12 | 4 / 16 | source address (IPv4 / IPv6) |
//! | 16 / 28 | 4 / 16 | destination address (IPv4 / IPv6) |
//!
//! # Flags as upstream sets them
//!
//! A new entry (a trapped packet's, or the agent's FLOW_SET with index -1)
//! is VALID and `VR_FLOW_FLAG_ACTIVE | VR_FLOW_FLAG_NEW_FLOW`, with action
//! HOLD until the agent decides it (`vr_flow_table_get_free_entry`):
//! upstream's agent audits the table for ACTIVE entries on HOLD, and its
//! `flow -l` lists ACTIVE entries only. Removal clears the flags, `fe_type`,
//! the key length and the statistics (`vr_flow_reset_entry`).
//!
//! # Concurrency contract (datapath writes, agent reads)
//!
//! * The datapath process is the **only writer** of every field. The agent
//!   changes flows only through ksync `vr_flow_req` messages that the datapath
//!   applies. Within the datapath the table is a plain `&mut` structure.
//! * A reader in another process copies an entry with volatile reads
//!   ([`snapshot`]) and accepts the copy only if `gen_id` and
//!   `flags & VR_FLOW_FLAG_ACTIVE` read the same before and after the copy
//!   (seqlock style), and — stronger, since an active entry can be changed in
//!   place — `seq` was even and unchanged. [`read_stable`] does all of this.
//!   (Upstream's agent reads the fields it needs directly, as it always did.)
//! * The datapath brackets every rewrite of an entry's identity or decision
//!   ([`FlowTable::insert`](super::table::FlowTable::insert),
//!   [`FlowTable::remove`](super::table::FlowTable::remove), a FLOW_SET) with
//!   [`FlowEntry::write_begin`] / [`FlowEntry::write_end`], which bump `seq`
//!   around release fences. Per-packet updates (statistics, TCP state,
//!   `last_seen`) are not bracketed: a reader may see them torn, as upstream's
//!   agent may.
//! * A decided flow is one whose action is not HOLD: the datapath writes the
//!   other fields first and the action last, inside the bracket.
//! * Removal clears ACTIVE and VALID; `gen_id` survives and is incremented by
//!   the next [`FlowTable::insert`](super::table::FlowTable::insert) into the
//!   same record, so an index held across a delete is detected as stale.
//! * Chain links (`next_index`) are written after the record they point to is
//!   complete (release fence); a reader that walks chains must bound the walk
//!   and re-check every key, since a record can be unlinked and reused under it.

use core::mem::{align_of, offset_of, size_of};
use core::sync::atomic::{fence, Ordering};

// ---- upstream constants (include/vr_flow.h, dp-core/vr_htable.c) -------

pub const VR_FLOW_ACTION_DROP: u16 = 0x0;
pub const VR_FLOW_ACTION_HOLD: u16 = 0x1;
pub const VR_FLOW_ACTION_FORWARD: u16 = 0x2;
pub const VR_FLOW_ACTION_NAT: u16 = 0x3;

pub const VR_FLOW_FLAG_ACTIVE: u16 = 0x0001;
pub const VR_FLOW_FLAG_SNAT: u16 = 0x0002;
pub const VR_FLOW_FLAG_SPAT: u16 = 0x0004;
pub const VR_FLOW_FLAG_DNAT: u16 = 0x0008;
pub const VR_FLOW_FLAG_DPAT: u16 = 0x0010;
pub const VR_FLOW_FLAG_NAT_MASK: u16 =
    VR_FLOW_FLAG_SNAT | VR_FLOW_FLAG_SPAT | VR_FLOW_FLAG_DNAT | VR_FLOW_FLAG_DPAT;
pub const VR_FLOW_FLAG_TRAP_ECMP: u16 = 0x0020;
pub const VR_FLOW_FLAG_DELETE_MARKED: u16 = 0x0040;
pub const VR_FLOW_BGP_SERVICE: u16 = 0x0080;
pub const VR_FLOW_FLAG_MODIFIED: u16 = 0x0100;
pub const VR_FLOW_FLAG_NEW_FLOW: u16 = 0x0200;
pub const VR_FLOW_FLAG_EVICT_CANDIDATE: u16 = 0x0400;
pub const VR_FLOW_FLAG_EVICTED: u16 = 0x0800;
/// Upstream `VR_RFLOW_VALID`.
pub const VR_FLOW_FLAG_RFLOW_VALID: u16 = 0x1000;
pub const VR_RFLOW_VALID: u16 = VR_FLOW_FLAG_RFLOW_VALID;
pub const VR_FLOW_FLAG_MIRROR: u16 = 0x2000;
pub const VR_FLOW_FLAG_VRFT: u16 = 0x4000;
pub const VR_FLOW_FLAG_LINK_LOCAL: u16 = 0x8000;
/// Flags owned by the datapath, which a FLOW_SET does not overwrite upstream.
pub const VR_FLOW_FLAG_DP_FLAGS: u16 = VR_FLOW_FLAG_EVICT_CANDIDATE
    | VR_FLOW_FLAG_EVICTED
    | VR_FLOW_FLAG_NEW_FLOW
    | VR_FLOW_FLAG_MODIFIED;

pub const VR_FLOW_FLAG1_HBS_LEFT: u16 = 0x1000;
pub const VR_FLOW_FLAG1_HBS_RIGHT: u16 = 0x2000;

pub const VR_FLOW_TCP_FIN: u16 = 0x0001;
pub const VR_FLOW_TCP_HALF_CLOSE: u16 = 0x0002;
pub const VR_FLOW_TCP_FIN_R: u16 = 0x0004;
pub const VR_FLOW_TCP_SYN: u16 = 0x0008;
pub const VR_FLOW_TCP_SYN_R: u16 = 0x0010;
pub const VR_FLOW_TCP_ESTABLISHED: u16 = 0x0020;
pub const VR_FLOW_TCP_ESTABLISHED_R: u16 = 0x0040;
pub const VR_FLOW_TCP_RST: u16 = 0x0080;
pub const VR_FLOW_TCP_DEAD: u16 = 0x8000;

pub const VR_FLOW_DR_UNKNOWN: u8 = 0x00;
/// Upstream spells it `VR_FLOW_DR_UNAVIALABLE_INTF`.
pub const VR_FLOW_DR_UNAVAILABLE_INTF: u8 = 0x01;
pub const VR_FLOW_DR_IPV4_FWD_DIS: u8 = 0x02;
pub const VR_FLOW_DR_UNAVAILABLE_VRF: u8 = 0x03;
pub const VR_FLOW_DR_NO_SRC_ROUTE: u8 = 0x04;
pub const VR_FLOW_DR_NO_DST_ROUTE: u8 = 0x05;
pub const VR_FLOW_DR_AUDIT_ENTRY: u8 = 0x06;
pub const VR_FLOW_DR_VRF_CHANGE: u8 = 0x07;
pub const VR_FLOW_DR_NO_REVERSE_FLOW: u8 = 0x08;
pub const VR_FLOW_DR_REVERSE_FLOW_CHANGE: u8 = 0x09;
pub const VR_FLOW_DR_NAT_CHANGE: u8 = 0x0a;
pub const VR_FLOW_DR_FLOW_LIMIT: u8 = 0x0b;
pub const VR_FLOW_DR_LINKLOCAL_SRC_NAT: u8 = 0x0c;
pub const VR_FLOW_DR_FAILED_VROUTER_INSTALL: u8 = 0x0d;
pub const VR_FLOW_DR_INVALID_L2_FLOW: u8 = 0x0e;
pub const VR_FLOW_DR_FLOW_ON_TSN: u8 = 0x0f;
pub const VR_FLOW_DR_NO_MIRROR_ENTRY: u8 = 0x10;
pub const VR_FLOW_DR_SAME_FLOW_RFLOW_KEY: u8 = 0x11;
pub const VR_FLOW_DR_PORT_MAP_DROP: u8 = 0x12;
pub const VR_FLOW_DR_NO_SRC_ROUTE_L2RPF: u8 = 0x13;
pub const VR_FLOW_DR_FAT_FLOW_NAT_CONFLICT: u8 = 0x14;
pub const VR_FLOW_DR_POLICY: u8 = 0x15;
pub const VR_FLOW_DR_OUT_POLICY: u8 = 0x16;
pub const VR_FLOW_DR_SG: u8 = 0x17;
pub const VR_FLOW_DR_OUT_SG: u8 = 0x18;
pub const VR_FLOW_DR_REVERSE_SG: u8 = 0x19;
pub const VR_FLOW_DR_REVERSE_OUT_SG: u8 = 0x1a;
pub const VR_FLOW_DR_FW_POLICY: u8 = 0x1b;
pub const VR_FLOW_DR_OUT_FW_POLICY: u8 = 0x1c;
pub const VR_FLOW_DR_REVERSE_FW_POLICY: u8 = 0x1d;
pub const VR_FLOW_DR_REVERSE_OUT_FW_POLICY: u8 = 0x1e;
pub const VR_FLOW_DR_FWAAS_POLICY: u8 = 0x1f;
pub const VR_FLOW_DR_OUT_FWAAS_POLICY: u8 = 0x20;
pub const VR_FLOW_DR_REVERSE_FWAAS_POLICY: u8 = 0x21;
pub const VR_FLOW_DR_REVERSE_OUT_FWAAS_POLICY: u8 = 0x22;

/// `hentry_flags` bit of an in-use record (upstream `VR_HENTRY_FLAG_VALID`).
pub const VR_HENTRY_FLAG_VALID: u8 = 0x1;
/// "No record" in `next_index` / `bucket_index` (upstream `VR_INVALID_HENTRY_INDEX`).
pub const VR_INVALID_HENTRY_INDEX: u32 = u32::MAX;
/// "No mirror" in `mirror_id` / `sec_mirror_id` (upstream `VR_MAX_MIRROR_INDICES`).
pub const VR_MAX_MIRROR_INDICES: u8 = 255;
/// Slots per hash bucket (upstream `VR_HENTRIES_PER_BUCKET`).
pub const FLOW_BUCKET_SIZE: u32 = 4;

/// Linux `AF_INET`, the key family of IPv4 flows.
pub const AF_INET: u8 = 2;
/// Linux `AF_INET6`, the key family of IPv6 flows.
pub const AF_INET6: u8 = 10;

// ---- key ---------------------------------------------------------------

/// `fe_type` of an IPv4 flow (upstream `VP_TYPE_IP`).
pub const VP_TYPE_IP: u8 = 2;
/// `fe_type` of an IPv6 flow (upstream `VP_TYPE_IP6`).
pub const VP_TYPE_IP6: u8 = 3;

/// A flow key: 44 bytes, upstream's `vr_flow` key union. An IPv4 key
/// (`vr_inet_flow`, 20 significant bytes) holds the source address in
/// `addr[0..4]` and the destination in `addr[4..8]`; an IPv6 key
/// (`vr_inet6_flow`) the source in `addr[0..16]`, the destination in
/// `addr[16..32]`. Unused bytes are zero, so two keys are equal exactly when
/// all 44 bytes are.
///
/// `sport`/`dport` are stored in network byte order and `nh_id` in host
/// order, as upstream does; use [`FlowKey::new`], [`FlowKey::sport`],
/// [`FlowKey::src`] and the like so callers never deal with it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub family: u8,
    pub proto: u8,
    pub unused: u16,
    /// Network byte order.
    pub sport: u16,
    /// Network byte order.
    pub dport: u16,
    pub nh_id: u32,
    /// Source then destination address, packed per family (see above).
    pub addr: [u8; 32],
}

const _: () = {
    assert!(size_of::<FlowKey>() == 44);
    assert!(offset_of!(FlowKey, family) == 0);
    assert!(offset_of!(FlowKey, proto) == 1);
    assert!(offset_of!(FlowKey, unused) == 2);
    assert!(offset_of!(FlowKey, sport) == 4);
    assert!(offset_of!(FlowKey, dport) == 6);
    assert!(offset_of!(FlowKey, nh_id) == 8);
    assert!(offset_of!(FlowKey, addr) == 12);
};

impl FlowKey {
    /// The all-zero key (a free entry's, usable in `const` contexts).
    pub const EMPTY: Self = Self {
        family: 0,
        proto: 0,
        unused: 0,
        sport: 0,
        dport: 0,
        nh_id: 0,
        addr: [0; 32],
    };

    /// `key_len` of an IPv4 key (`sizeof(struct vr_inet_flow)`).
    pub const LEN_V4: u8 = 20;
    /// `key_len` of an IPv6 key (`sizeof(struct vr_inet6_flow)`).
    pub const LEN_V6: u8 = 44;

    /// A key from host-order ports and 16-byte addresses (an IPv4 address
    /// in the first 4 bytes, as [`FlowKey::src`] returns it).
    #[inline]
    pub fn new(
        family: u8,
        proto: u8,
        sport: u16,
        dport: u16,
        nh_id: u32,
        src: [u8; 16],
        dst: [u8; 16],
    ) -> Self {
        let mut addr = [0u8; 32];
        let (s, d) = addr.split_at_mut(if family == AF_INET6 { 16 } else { 4 });
        if family == AF_INET6 {
            s.copy_from_slice(&src);
            d.copy_from_slice(&dst);
        } else {
            s.copy_from_slice(src.first_chunk::<4>().unwrap_or(&[0; 4]));
            d.get_mut(..4)
                .unwrap_or_default()
                .copy_from_slice(dst.first_chunk::<4>().unwrap_or(&[0; 4]));
        }
        Self {
            family,
            proto,
            unused: 0,
            sport: sport.to_be(),
            dport: dport.to_be(),
            nh_id,
            addr,
        }
    }

    /// Make this the IPv4 key [`Self::new_v4`] builds, in place, its
    /// first eight bytes and its two addresses each with one store: the
    /// lookup that follows reads the key as words (the hash module's
    /// `key_eq`), and a word loaded from narrower stores waits for them
    /// all (no store forwarding: the largest cost of a decapsulated
    /// packet's lookup). In place, because a key built as a value and then
    /// moved is moved field by field.
    #[inline]
    pub fn set_v4(
        &mut self,
        proto: u8,
        sport: u16,
        dport: u16,
        nh_id: u32,
        src: [u8; 4],
        dst: [u8; 4],
    ) {
        let [head, addr] = v4_words(proto, sport, dport, src, dst);
        let p = core::ptr::from_mut(self).cast::<u8>();
        // SAFETY: `FlowKey` is `repr(C)`, 44 bytes without padding (asserted
        // above): bytes 0..8 are `family..dport`, 8..12 `nh_id` and 12..44
        // `addr`; every write is in bounds and any bytes are valid for
        // those fields. Unaligned writes: the key is only 4-aligned.
        unsafe {
            core::ptr::write_unaligned(p.cast::<u64>(), head.to_le());
            core::ptr::write_unaligned(p.add(8).cast::<u32>(), nh_id);
            core::ptr::write_unaligned(p.add(12).cast::<u64>(), addr.to_le());
            core::ptr::write_unaligned(p.add(20).cast::<[u64; 3]>(), [0; 3]);
        }
    }

    /// An IPv4 key.
    #[inline]
    pub fn new_v4(
        proto: u8,
        sport: u16,
        dport: u16,
        nh_id: u32,
        src: [u8; 4],
        dst: [u8; 4],
    ) -> Self {
        Self::new(AF_INET, proto, sport, dport, nh_id, widen(src), widen(dst))
    }

    /// An IPv6 key.
    #[inline]
    pub fn new_v6(
        proto: u8,
        sport: u16,
        dport: u16,
        nh_id: u32,
        src: [u8; 16],
        dst: [u8; 16],
    ) -> Self {
        Self::new(AF_INET6, proto, sport, dport, nh_id, src, dst)
    }

    /// The same flow seen from the other end: addresses and ports swapped.
    #[inline]
    pub fn reversed(&self) -> Self {
        Self::new(
            self.family,
            self.proto,
            self.dport(),
            self.sport(),
            self.nh_id,
            self.dst(),
            self.src(),
        )
    }

    /// Source port, host order.
    #[inline]
    pub const fn sport(&self) -> u16 {
        u16::from_be(self.sport)
    }

    /// Destination port, host order.
    #[inline]
    pub const fn dport(&self) -> u16 {
        u16::from_be(self.dport)
    }

    #[inline]
    pub fn set_sport(&mut self, port: u16) {
        self.sport = port.to_be();
    }

    #[inline]
    pub fn set_dport(&mut self, port: u16) {
        self.dport = port.to_be();
    }

    #[inline]
    pub const fn nh_id(&self) -> u32 {
        self.nh_id
    }

    #[inline]
    pub const fn is_ipv4(&self) -> bool {
        self.family == AF_INET
    }

    #[inline]
    pub const fn is_ipv6(&self) -> bool {
        self.family == AF_INET6
    }

    /// `key_len` for this key's family (upstream `VR_FLOW_HASH_SIZE`).
    #[inline]
    pub const fn key_len(&self) -> u8 {
        if self.family == AF_INET6 {
            Self::LEN_V6
        } else {
            Self::LEN_V4
        }
    }

    /// Upstream's `fe_type` for this key's family.
    #[inline]
    pub const fn vp_type(&self) -> u8 {
        if self.family == AF_INET6 {
            VP_TYPE_IP6
        } else {
            VP_TYPE_IP
        }
    }

    /// Source address, 16 bytes (IPv4 in the first 4, rest zero).
    #[inline]
    pub const fn src(&self) -> [u8; 16] {
        let [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, ..] = self.addr;
        if self.family == AF_INET6 {
            [
                a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
            ]
        } else {
            widen([a0, a1, a2, a3])
        }
    }

    /// Destination address, 16 bytes (IPv4 in the first 4, rest zero).
    #[inline]
    pub const fn dst(&self) -> [u8; 16] {
        if self.family == AF_INET6 {
            let [.., b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] =
                self.addr;
            [
                b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15,
            ]
        } else {
            widen(self.dst_v4())
        }
    }

    /// IPv4 source address (meaningful for `AF_INET` keys).
    #[inline]
    pub const fn src_v4(&self) -> [u8; 4] {
        [self.addr[0], self.addr[1], self.addr[2], self.addr[3]]
    }

    /// IPv4 destination address (meaningful for `AF_INET` keys).
    #[inline]
    pub const fn dst_v4(&self) -> [u8; 4] {
        [self.addr[4], self.addr[5], self.addr[6], self.addr[7]]
    }
}

/// Bytes 0..8 and the address bytes 0..8 of the IPv4 key of these fields
/// (ports in host order), each read as a little-endian word: assembled in
/// registers, for [`FlowKey::set_v4`] and the hash of a key not built yet.
#[inline(always)]
pub(crate) fn v4_words(proto: u8, sport: u16, dport: u16, src: [u8; 4], dst: [u8; 4]) -> [u64; 2] {
    // The key stores the ports big-endian.
    let [s0, s1] = sport.to_be_bytes();
    let [d0, d1] = dport.to_be_bytes();
    let [a0, a1, a2, a3] = src;
    let [b0, b1, b2, b3] = dst;
    [
        u64::from_le_bytes([AF_INET, proto, 0, 0, s0, s1, d0, d1]),
        u64::from_le_bytes([a0, a1, a2, a3, b0, b1, b2, b3]),
    ]
}

const fn widen(a: [u8; 4]) -> [u8; 16] {
    let mut w = [0u8; 16];
    w[0] = a[0];
    w[1] = a[1];
    w[2] = a[2];
    w[3] = a[3];
    w
}

// ---- entry -------------------------------------------------------------

/// One flow record: 256 bytes, upstream `struct vr_flow_entry` field for
/// field (see the module docs for the offsets).
///
/// Fields are public for the datapath and for dumps, but the hash-table
/// fields (`index`, `next_index`, `bucket_index`, `hentry_flags`) and the
/// `key`/`key_len` of a valid entry belong to
/// [`FlowTable`](super::table::FlowTable): changing them corrupts the table.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    /// Upstream's `hentry_next` pointer: always 0 here.
    pub hentry_next: u64,
    /// The record's own index (upstream `hentry_index`).
    pub index: u32,
    pub bucket_index: u32,
    pub next_index: u32,
    pub hentry_flags: u8,
    pub ttl: u8,
    pub qos_id: i16,
    pub key: FlowKey,
    pub key_len: u8,
    pub gen_id: u8,
    pub tcp_flags: u16,
    /// Packets the host holds for this flow (upstream's `fe_hold_list`
    /// pointer, low half).
    pub hold_count: u32,
    /// Datapath seconds of the last packet, for aging (`fe_hold_list`, high
    /// half).
    pub last_seen: u32,
    pub tcp_seq: u32,
    pub rflow: i32,
    pub flags: u16,
    pub flags1: u16,
    pub action: u16,
    pub vrf: u16,
    pub dvrf: u16,
    pub mirror_id: u8,
    pub sec_mirror_id: u8,
    pub src_nh_index: u32,
    pub stats_bytes: u32,
    pub stats_packets: u32,
    pub stats_bytes_oflow: u16,
    pub stats_packets_oflow: u8,
    pub ecmp_nh_index: i8,
    pub drop_reason: u8,
    pub fe_type: u8,
    pub udp_src_port: u16,
    pub src_info: u32,
    /// Upstream's `fe_mme` pointer (at a 4-byte offset): always 0 here.
    pub mme: [u32; 2],
    pub tcp_ack: u32,
    pub underlay_ecmp_index: i8,
    pub bucket_lock: u8,
    // ---- upstream's `fe_pack`, ours from here ----
    pub pad0: [u8; 2],
    /// Write sequence: odd while the datapath rewrites the entry.
    pub seq: u32,
    pub pad1: [u8; 112],
}

const _: () = {
    assert!(size_of::<FlowEntry>() == 256);
    assert!(align_of::<FlowEntry>() == 64);
    assert!(offset_of!(FlowEntry, hentry_next) == 0);
    assert!(offset_of!(FlowEntry, index) == 8);
    assert!(offset_of!(FlowEntry, bucket_index) == 12);
    assert!(offset_of!(FlowEntry, next_index) == 16);
    assert!(offset_of!(FlowEntry, hentry_flags) == 20);
    assert!(offset_of!(FlowEntry, ttl) == 21);
    assert!(offset_of!(FlowEntry, qos_id) == 22);
    assert!(offset_of!(FlowEntry, key) == 24);
    assert!(offset_of!(FlowEntry, key_len) == 68);
    assert!(offset_of!(FlowEntry, gen_id) == 69);
    assert!(offset_of!(FlowEntry, tcp_flags) == 70);
    assert!(offset_of!(FlowEntry, hold_count) == 72);
    assert!(offset_of!(FlowEntry, last_seen) == 76);
    assert!(offset_of!(FlowEntry, tcp_seq) == 80);
    assert!(offset_of!(FlowEntry, rflow) == 84);
    assert!(offset_of!(FlowEntry, flags) == 88);
    assert!(offset_of!(FlowEntry, flags1) == 90);
    assert!(offset_of!(FlowEntry, action) == 92);
    assert!(offset_of!(FlowEntry, vrf) == 94);
    assert!(offset_of!(FlowEntry, dvrf) == 96);
    assert!(offset_of!(FlowEntry, mirror_id) == 98);
    assert!(offset_of!(FlowEntry, sec_mirror_id) == 99);
    assert!(offset_of!(FlowEntry, src_nh_index) == 100);
    assert!(offset_of!(FlowEntry, stats_bytes) == 104);
    assert!(offset_of!(FlowEntry, stats_packets) == 108);
    assert!(offset_of!(FlowEntry, stats_bytes_oflow) == 112);
    assert!(offset_of!(FlowEntry, stats_packets_oflow) == 114);
    assert!(offset_of!(FlowEntry, ecmp_nh_index) == 115);
    assert!(offset_of!(FlowEntry, drop_reason) == 116);
    assert!(offset_of!(FlowEntry, fe_type) == 117);
    assert!(offset_of!(FlowEntry, udp_src_port) == 118);
    assert!(offset_of!(FlowEntry, src_info) == 120);
    assert!(offset_of!(FlowEntry, mme) == 124);
    assert!(offset_of!(FlowEntry, tcp_ack) == 132);
    assert!(offset_of!(FlowEntry, underlay_ecmp_index) == 136);
    assert!(offset_of!(FlowEntry, bucket_lock) == 137);
    // `fe_pack`: upstream's first 138 bytes are the fields above.
    assert!(offset_of!(FlowEntry, pad0) == 138);
    assert!(offset_of!(FlowEntry, seq) == 140);
    assert!(offset_of!(FlowEntry, pad1) == 144);
};

impl Default for FlowEntry {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl FlowEntry {
    /// A free record: all zero except the "none" links and reverse flow.
    pub const EMPTY: Self = Self {
        hentry_next: 0,
        index: 0,
        bucket_index: VR_INVALID_HENTRY_INDEX,
        next_index: VR_INVALID_HENTRY_INDEX,
        hentry_flags: 0,
        ttl: 0,
        qos_id: 0,
        key: FlowKey::EMPTY,
        key_len: 0,
        gen_id: 0,
        tcp_flags: 0,
        hold_count: 0,
        last_seen: 0,
        tcp_seq: 0,
        rflow: -1,
        flags: 0,
        flags1: 0,
        action: VR_FLOW_ACTION_DROP,
        vrf: 0,
        dvrf: 0,
        mirror_id: 0,
        sec_mirror_id: 0,
        src_nh_index: 0,
        stats_bytes: 0,
        stats_packets: 0,
        stats_bytes_oflow: 0,
        stats_packets_oflow: 0,
        ecmp_nh_index: 0,
        drop_reason: 0,
        fe_type: 0,
        udp_src_port: 0,
        src_info: 0,
        mme: [0; 2],
        tcp_ack: 0,
        underlay_ecmp_index: 0,
        bucket_lock: 0,
        pad0: [0; 2],
        seq: 0,
        pad1: [0; 112],
    };

    /// A free record at `index` (upstream initialises `hentry_index` of
    /// every record when it creates the table).
    pub const fn empty_at(index: u32) -> Self {
        let mut e = Self::EMPTY;
        e.index = index;
        e
    }

    #[inline]
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// The record is in use (it holds a key and is reachable by lookup).
    #[inline]
    pub fn is_valid(&self) -> bool {
        self.hentry_flags & VR_HENTRY_FLAG_VALID != 0
    }

    /// `VR_FLOW_FLAG_ACTIVE`: the entry is in use (upstream sets it on a
    /// new, held entry too; see [`Self::is_decided`]).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.flags & VR_FLOW_FLAG_ACTIVE != 0
    }

    #[inline]
    pub fn is_hold(&self) -> bool {
        self.action == VR_FLOW_ACTION_HOLD
    }

    /// In use and decided by the agent: ACTIVE with an action other than
    /// HOLD.
    #[inline]
    pub fn is_decided(&self) -> bool {
        self.is_valid() && self.is_active() && !self.is_hold()
    }

    /// The reverse flow's index, if any.
    #[inline]
    pub fn rflow(&self) -> Option<u32> {
        u32::try_from(self.rflow).ok()
    }

    /// Count one packet of `bytes`, carrying into the overflow fields like
    /// upstream (`fe_stats.flow_*_oflow`).
    #[inline]
    pub fn add_stats(&mut self, bytes: u32) {
        let (b, carry) = self.stats_bytes.overflowing_add(bytes);
        self.stats_bytes = b;
        if carry {
            self.stats_bytes_oflow = self.stats_bytes_oflow.wrapping_add(1);
        }
        let (p, carry) = self.stats_packets.overflowing_add(1);
        self.stats_packets = p;
        if carry {
            self.stats_packets_oflow = self.stats_packets_oflow.wrapping_add(1);
        }
    }

    /// Count `packets` packets of `bytes` bytes in all, carrying into the
    /// overflow fields (the totals wrap at 40 and 48 bits).
    #[inline]
    pub fn add_totals(&mut self, packets: u64, bytes: u64) {
        let p = self.packets().wrapping_add(packets);
        let b = self.bytes().wrapping_add(bytes);
        self.stats_packets = p as u32;
        self.stats_packets_oflow = (p >> 32) as u8;
        self.stats_bytes = b as u32;
        self.stats_bytes_oflow = (b >> 32) as u16;
    }

    /// Packets seen (40 bits: 32 + 8 overflow).
    #[inline]
    pub fn packets(&self) -> u64 {
        packet_count(self.stats_packets, self.stats_packets_oflow)
    }

    /// Bytes seen (48 bits: 32 + 16 overflow).
    #[inline]
    pub fn bytes(&self) -> u64 {
        u64::from(self.stats_bytes) | (u64::from(self.stats_bytes_oflow) << 32)
    }

    /// Upstream's `fresp_stats_oflow`: bytes overflow | packets overflow << 16.
    #[inline]
    pub fn stats_oflow(&self) -> u32 {
        u32::from(self.stats_bytes_oflow) | (u32::from(self.stats_packets_oflow) << 16)
    }

    /// Start rewriting this entry: `seq` becomes odd, so readers in another
    /// process discard copies taken meanwhile. Pair with [`Self::write_end`].
    #[inline]
    pub fn write_begin(&mut self) {
        self.seq = self.seq.wrapping_add(1) | 1;
        // The odd `seq` must be visible before any of the new field values.
        fence(Ordering::Release);
    }

    /// Finish a rewrite started by [`Self::write_begin`]: `seq` becomes even.
    #[inline]
    pub fn write_end(&mut self) {
        // Every new field value must be visible before the even `seq`.
        fence(Ordering::Release);
        self.seq = self.seq.wrapping_add(1) & !1;
    }

    /// Set `VR_FLOW_FLAG_ACTIVE` after the other fields, which become
    /// visible to readers before the flag does.
    #[inline]
    pub fn set_active(&mut self) {
        fence(Ordering::Release);
        self.flags |= VR_FLOW_FLAG_ACTIVE;
    }
}

/// One copy of `*entry` by volatile reads: for a reader that maps the
/// datapath's table memory. The copy may be torn; see [`read_stable`].
///
/// # Safety
///
/// `entry` must be valid for reads of a `FlowEntry` and aligned.
#[inline]
pub unsafe fn snapshot(entry: *const FlowEntry) -> FlowEntry {
    // SAFETY: the caller guarantees `entry` is readable and aligned; every
    // bit pattern is a valid `FlowEntry` (plain integers and arrays).
    unsafe { core::ptr::read_volatile(entry) }
}

/// A consistent copy of `*entry` written concurrently by the datapath in
/// another process (the module-level contract), or `None` after `tries`
/// attempts that all overlapped a rewrite. Counters may still be torn.
///
/// # Safety
///
/// As [`snapshot`].
pub unsafe fn read_stable(entry: *const FlowEntry, tries: u32) -> Option<FlowEntry> {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { read_stable_with(entry, tries, |e| snapshot(e)) }
}

/// What a sweep over many flows (the agent's aging) needs of an entry:
/// read by [`read_activity`] without copying the whole 256-byte record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowActivity {
    /// `hentry_flags` has `VR_HENTRY_FLAG_VALID`.
    pub valid: bool,
    pub gen_id: u8,
    pub tcp_flags: u16,
    /// As [`FlowEntry::packets`].
    pub packets: u64,
}

/// [`FlowActivity`] of `*entry`, checked as [`read_stable`] checks a
/// copy. A full copy reads four cache lines and 256 bytes; an aging sweep
/// visits every flow every few seconds, so under a flood of new flows the
/// copies were most of the agent's aging cost.
///
/// # Safety
///
/// As [`snapshot`].
pub unsafe fn read_activity(entry: *const FlowEntry, tries: u32) -> Option<FlowActivity> {
    // SAFETY: field projections of a readable, aligned `FlowEntry` (the
    // caller's guarantee), read volatile.
    unsafe {
        read_stable_with(entry, tries, |e| {
            use core::ptr::{addr_of, read_volatile};
            let hflags = read_volatile(addr_of!((*e).hentry_flags));
            let packets = packet_count(
                read_volatile(addr_of!((*e).stats_packets)),
                read_volatile(addr_of!((*e).stats_packets_oflow)),
            );
            FlowActivity {
                valid: hflags & VR_HENTRY_FLAG_VALID != 0,
                gen_id: read_volatile(addr_of!((*e).gen_id)),
                tcp_flags: read_volatile(addr_of!((*e).tcp_flags)),
                packets,
            }
        })
    }
}

/// A packet count from its low 32 bits and its overflow bits.
#[inline]
fn packet_count(low: u32, oflow: u8) -> u64 {
    u64::from(low) | (u64::from(oflow) << 32)
}

/// `read(entry)` between two reads of the entry's write guard, retried up
/// to `tries` times until no rewrite overlapped it.
///
/// # Safety
///
/// As [`snapshot`]; `read` may only read through the pointer.
#[inline]
unsafe fn read_stable_with<T>(
    entry: *const FlowEntry,
    tries: u32,
    read: impl Fn(*const FlowEntry) -> T,
) -> Option<T> {
    for _ in 0..tries {
        // SAFETY: the caller guarantees `entry` is readable and aligned.
        let (seq0, gen0, flags0) = unsafe { read_guard(entry) };
        if seq0 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        fence(Ordering::Acquire);
        let value = read(entry);
        fence(Ordering::Acquire);
        // SAFETY: as above.
        let (seq1, gen1, flags1) = unsafe { read_guard(entry) };
        if seq0 == seq1
            && gen0 == gen1
            && (flags0 & VR_FLOW_FLAG_ACTIVE) == (flags1 & VR_FLOW_FLAG_ACTIVE)
        {
            return Some(value);
        }
    }
    None
}

/// `seq`, `gen_id` and `flags` of `*entry`, read volatile.
///
/// # Safety
///
/// As [`snapshot`].
#[inline]
unsafe fn read_guard(entry: *const FlowEntry) -> (u32, u8, u16) {
    // SAFETY: field projections of a readable, aligned `FlowEntry`.
    unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*entry).seq)),
            core::ptr::read_volatile(core::ptr::addr_of!((*entry).gen_id)),
            core::ptr::read_volatile(core::ptr::addr_of!((*entry).flags)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(e: &FlowEntry) -> [u8; 256] {
        // SAFETY: `FlowEntry` is 256 bytes of plain integers, no padding
        // (every byte is a field or an explicit pad array).
        unsafe { core::mem::transmute_copy(e) }
    }

    /// The bytes of IPv4 and IPv6 entries where upstream's packed
    /// `vr_flow_entry` has each field (offsets counted from vr_flow.h:
    /// `vr_hentry_t` is 8+4+4+4+1 bytes, then the fields in order).
    #[test]
    fn add_totals_carries_like_add_stats() {
        let mut one = FlowEntry::EMPTY;
        one.stats_packets = u32::MAX;
        one.stats_bytes = u32::MAX - 10;
        let mut many = one;
        one.add_stats(100);
        one.add_stats(100);
        many.add_totals(2, 200);
        assert_eq!((many.packets(), many.bytes()), (one.packets(), one.bytes()));
        assert_eq!(many.packets(), (1 << 32) + 1);
        assert_eq!(many.stats_oflow(), one.stats_oflow());
    }

    #[test]
    fn bytes_sit_at_upstream_offsets() {
        let mut e = FlowEntry::empty_at(0x0102_0304);
        e.key = FlowKey::new_v4(6, 1000, 80, 77, [10, 0, 0, 1], [10, 0, 0, 2]);
        e.key_len = e.key.key_len();
        e.fe_type = e.key.vp_type();
        e.gen_id = 9;
        e.flags = VR_FLOW_FLAG_ACTIVE | VR_FLOW_FLAG_NEW_FLOW;
        e.action = VR_FLOW_ACTION_HOLD;
        e.rflow = 0x0a0b_0c0d;
        e.stats_bytes = 0x1111_2222;
        e.stats_packets = 0x3333_4444;
        e.stats_bytes_oflow = 0x5566;
        e.stats_packets_oflow = 0x77;
        e.tcp_ack = 0x8899_aabb;
        e.underlay_ecmp_index = -1;
        let b = bytes(&e);
        assert_eq!(&b[0..8], &[0; 8]);
        assert_eq!(&b[8..12], &0x0102_0304u32.to_ne_bytes());
        assert_eq!(&b[12..16], &u32::MAX.to_ne_bytes());
        assert_eq!(&b[16..20], &u32::MAX.to_ne_bytes());
        // key: family, proto, unused, ports (network order), nh, sip, dip.
        assert_eq!(&b[24..28], &[AF_INET, 6, 0, 0]);
        assert_eq!(&b[28..32], &[0x03, 0xe8, 0, 80]);
        assert_eq!(&b[32..36], &77u32.to_ne_bytes());
        assert_eq!(&b[36..40], &[10, 0, 0, 1]);
        assert_eq!(&b[40..44], &[10, 0, 0, 2]);
        assert_eq!(&b[44..68], &[0; 24]);
        assert_eq!((b[68], b[69]), (20, 9));
        assert_eq!(&b[84..88], &0x0a0b_0c0du32.to_ne_bytes());
        assert_eq!(&b[88..90], &(0x0201u16).to_ne_bytes());
        assert_eq!(&b[92..94], &VR_FLOW_ACTION_HOLD.to_ne_bytes());
        assert_eq!(&b[104..108], &0x1111_2222u32.to_ne_bytes());
        assert_eq!(&b[108..112], &0x3333_4444u32.to_ne_bytes());
        assert_eq!(&b[112..114], &0x5566u16.to_ne_bytes());
        assert_eq!(b[114], 0x77);
        assert_eq!(b[117], VP_TYPE_IP);
        assert_eq!(&b[124..132], &[0; 8]);
        assert_eq!(&b[132..136], &0x8899_aabbu32.to_ne_bytes());
        assert_eq!(b[136], 0xff);
        let k6 = FlowKey::new_v6(17, 1, 2, 3, [0xaa; 16], [0xbb; 16]);
        assert_eq!(k6.key_len(), 44);
        e.key = k6;
        let b = bytes(&e);
        assert_eq!(&b[36..52], &[0xaa; 16]);
        assert_eq!(&b[52..68], &[0xbb; 16]);
        assert_eq!(k6.vp_type(), VP_TYPE_IP6);
    }

    #[test]
    fn key_byte_order() {
        let k = FlowKey::new_v4(17, 0x1234, 53, 0x0102_0304, [1, 2, 3, 4], [5, 6, 7, 8]);
        assert_eq!(k.sport.to_ne_bytes(), [0x12, 0x34]);
        assert_eq!(k.dport.to_ne_bytes(), [0, 53]);
        assert_eq!(k.nh_id.to_ne_bytes(), 0x0102_0304u32.to_ne_bytes());
        assert_eq!((k.sport(), k.dport(), k.nh_id()), (0x1234, 53, 0x0102_0304));
        assert_eq!(k.family, AF_INET);
        assert!(k.is_ipv4() && !k.is_ipv6());
        assert_eq!(k.src()[..4], [1, 2, 3, 4]);
        assert_eq!(k.src()[4..], [0; 12]);
        assert_eq!(k.addr[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(k.addr[8..], [0; 24]);
        assert_eq!((k.src_v4(), k.dst_v4()), ([1, 2, 3, 4], [5, 6, 7, 8]));
        assert_eq!(k.key_len(), 20);
        let r = k.reversed();
        assert_eq!(
            (r.src_v4(), r.sport(), r.dport()),
            ([5, 6, 7, 8], 53, 0x1234)
        );
        assert_eq!(r.reversed(), k);
        let k6 = FlowKey::new_v6(6, 1, 2, 3, [9; 16], [8; 16]);
        assert_eq!((k6.src(), k6.dst()), ([9; 16], [8; 16]));
        assert_eq!(k6.reversed().src(), [8; 16]);
        let mut k2 = k;
        k2.set_sport(1);
        k2.set_dport(2);
        assert_eq!((k2.sport(), k2.dport()), (1, 2));
        assert_eq!(
            FlowKey::new_v6(6, 1, 2, 3, [9; 16], [8; 16]).family,
            AF_INET6
        );
    }

    #[test]
    fn constants_match_upstream() {
        assert_eq!(
            [
                VR_FLOW_ACTION_DROP,
                VR_FLOW_ACTION_HOLD,
                VR_FLOW_ACTION_FORWARD,
                VR_FLOW_ACTION_NAT
            ],
            [0, 1, 2, 3]
        );
        assert_eq!(VR_FLOW_FLAG_NAT_MASK, 0x1e);
        assert_eq!(VR_FLOW_FLAG_DP_FLAGS, 0x0f00);
        assert_eq!(VR_RFLOW_VALID, 0x1000);
        assert_eq!(VR_FLOW_FLAG_LINK_LOCAL, 0x8000);
        assert_eq!(VR_FLOW_TCP_RST, 0x80);
        assert_eq!(VR_FLOW_TCP_DEAD, 0x8000);
        assert_eq!(VR_FLOW_DR_SG, 0x17);
        assert_eq!(VR_FLOW_DR_REVERSE_OUT_FWAAS_POLICY, 0x22);
    }

    #[test]
    fn stats_carry() {
        let mut e = FlowEntry::EMPTY;
        e.stats_bytes = u32::MAX - 10;
        e.stats_packets = u32::MAX;
        e.add_stats(20);
        assert_eq!(e.stats_bytes, 9);
        assert_eq!(e.stats_bytes_oflow, 1);
        assert_eq!(e.stats_packets, 0);
        assert_eq!(e.stats_packets_oflow, 1);
        assert_eq!(e.bytes(), (1u64 << 32) + 9);
        assert_eq!(e.packets(), 1u64 << 32);
        assert_eq!(e.stats_oflow(), 0x0001_0001);
    }

    #[test]
    fn read_activity_agrees_with_the_copy_and_rejects_a_rewrite() {
        let mut e = FlowEntry::EMPTY;
        e.write_begin();
        e.hentry_flags = VR_HENTRY_FLAG_VALID;
        e.gen_id = 7;
        e.tcp_flags = VR_FLOW_TCP_SYN;
        e.stats_packets = 0xdead_beef;
        e.stats_packets_oflow = 3;
        // SAFETY: `e` is a live local.
        assert!(unsafe { read_activity(&e, 3) }.is_none());
        e.write_end();
        // SAFETY: as above.
        let a = unsafe { read_activity(&e, 1) }.unwrap();
        assert_eq!(
            a,
            FlowActivity {
                valid: e.is_valid(),
                gen_id: e.gen_id,
                tcp_flags: e.tcp_flags,
                packets: e.packets(),
            }
        );
        assert_eq!(a.packets, 0x3_dead_beef);
        assert!(a.valid);
    }

    #[test]
    fn read_stable_rejects_write_in_progress() {
        let mut e = FlowEntry::EMPTY;
        e.write_begin();
        // SAFETY: `e` is a live local.
        assert!(unsafe { read_stable(&e, 3) }.is_none());
        e.write_end();
        // SAFETY: as above.
        assert_eq!(unsafe { read_stable(&e, 1) }, Some(e));
        assert_eq!(e.seq, 2);
    }

    proptest::proptest! {
        /// The in-place writer makes every byte of the key `new_v4` builds,
        /// whatever the key held before.
        #[test]
        fn set_v4_writes_the_key_new_v4_builds(
            proto: u8, sport: u16, dport: u16, nh: u32, src: [u8; 4], dst: [u8; 4],
            old in proptest::collection::vec(proptest::prelude::any::<u8>(), 32),
        ) {
            let mut k = FlowKey::new_v6(6, 1, 2, 3, [0xff; 16], [0xee; 16]);
            k.addr.copy_from_slice(&old);
            k.set_v4(proto, sport, dport, nh, src, dst);
            proptest::prop_assert_eq!(k, FlowKey::new_v4(proto, sport, dport, nh, src, dst));
        }
    }
}
