//! The flow table: record layout and hash-table mechanics.
//!
//! Like upstream vRouter's kernel flow table (which the agent `mmap`s), the
//! table lives in memory the *host* hands in ([`FlowTable::from_raw`]): the
//! Linux datapath host puts it in a shared-memory file the agent maps too, a
//! Windows host in a named file mapping. [`FlowTable::new`] puts it on the
//! heap instead (tests, benches). The module uses only `core` and `alloc`.
//!
//! # Index space and hashing
//!
//! `entries + oflow` records of 128 bytes each, numbered as upstream does:
//! `0..entries` is the hash part, grouped in buckets of 4 consecutive slots;
//! `entries..entries + oflow` is the overflow area. A key whose bucket is full
//! takes a free overflow record, which is linked at the head of a chain that
//! hangs off the **last** slot of its bucket (upstream `vr_htable`): that slot's
//! `next_index` is the first overflow record, each overflow record's
//! `bucket_index` is that slot's index. `u32::MAX` means "none".
//!
//! The bucket of a key is `((hash(key) as u64 * (entries / 4)) >> 32) * 4`
//! with [`FlowTable::hash`], a deterministic multiply-xorshift over the 44
//! key bytes (upstream uses Jenkins' hash with seed 0; ours is faster and
//! equally unkeyed, so like upstream it does not resist crafted collisions:
//! the bounded buckets and overflow area limit the damage to `TableFull`).
//! It is hand-written because it must be stable across processes and
//! versions (the agent may compute it too), which general-purpose hashers do
//! not promise.
//!
//! # Record layout
//!
//! [`FlowEntry`] is `#[repr(C, align(64))]`, 128 bytes, with the field order of
//! upstream `struct vr_flow_entry` at natural alignment; pointers are replaced
//! by fixed-size integers (`fe_hold_list` by `hold_count`, `fe_mme` by
//! `last_seen`, the `hentry_next` pointer and `hentry_index` are dropped: the
//! index is the position). All integers are in host byte order except the key
//! ports, which are in network order as upstream keeps them.
//!
//! | offset | size | field | upstream |
//! |---:|---:|---|---|
//! | 0 | 4 | `next_index` | `fe_hentry.hentry_next_index` |
//! | 4 | 4 | `bucket_index` | `fe_hentry.hentry_bucket_index` |
//! | 8 | 1 | `hentry_flags` (`VR_HENTRY_FLAG_VALID` 0x1) | `fe_hentry.hentry_flags` |
//! | 9 | 1 | `ttl` | `fe_ttl` |
//! | 10 | 2 | `qos_id` (i16) | `fe_qos_id` |
//! | 12 | 44 | `key` ([`FlowKey`], below) | `fe_key` (`vr_inet6_flow`) |
//! | 56 | 1 | `key_len` (44 for a valid entry, 0 when freed) | `fe_key.flow_key_len` |
//! | 57 | 1 | `gen_id` | `fe_gen_id` |
//! | 58 | 2 | `tcp_flags` (`VR_FLOW_TCP_*`) | `fe_tcp_flags` |
//! | 60 | 4 | `hold_count`: packets the host holds for this flow | `fe_hold_list` |
//! | 64 | 4 | `tcp_seq` | `fe_tcp_seq` |
//! | 68 | 4 | `rflow` (i32, -1 none) | `fe_rflow` |
//! | 72 | 2 | `flags` (`VR_FLOW_FLAG_*`) | `fe_flags` |
//! | 74 | 2 | `flags1` | `fe_flags1` |
//! | 76 | 2 | `action` (`VR_FLOW_ACTION_*`) | `fe_action` |
//! | 78 | 2 | `vrf` | `fe_vrf` |
//! | 80 | 2 | `dvrf` | `fe_dvrf` |
//! | 82 | 1 | `mirror_id` (255 none) | `fe_mirror_id` |
//! | 83 | 1 | `sec_mirror_id` (255 none) | `fe_sec_mirror_id` |
//! | 84 | 4 | `src_nh_index` | `fe_src_nh_index` |
//! | 88 | 4 | `stats_bytes` | `fe_stats.flow_bytes` |
//! | 92 | 4 | `stats_packets` | `fe_stats.flow_packets` |
//! | 96 | 2 | `stats_bytes_oflow` (bits 32..48 of bytes) | `fe_stats.flow_bytes_oflow` |
//! | 98 | 1 | `stats_packets_oflow` (bits 32..40 of packets) | `fe_stats.flow_packets_oflow` |
//! | 99 | 1 | `ecmp_nh_index` (i8, -1 none) | `fe_ecmp_nh_index` |
//! | 100 | 1 | `drop_reason` (`VR_FLOW_DR_*`) | `fe_drop_reason` |
//! | 101 | 1 | `fe_type` | `fe_type` |
//! | 102 | 2 | `udp_src_port` | `fe_udp_src_port` |
//! | 104 | 4 | `src_info` | `fe_src_info` |
//! | 108 | 4 | `last_seen`: datapath seconds of the last packet (aging) | `fe_mme` |
//! | 112 | 4 | `tcp_ack` | `fe_tcp_ack` |
//! | 116 | 1 | `underlay_ecmp_index` (i8, -1 none) | `fe_underlay_ecmp_index` |
//! | 117 | 1 | `bucket_lock` (unused: one writer) | `fe_bucket_lock` |
//! | 118 | 2 | padding (zero) | `fe_pack` |
//! | 120 | 4 | `seq`: write sequence, odd while the datapath rewrites the entry | `fe_pack` |
//! | 124 | 4 | padding (zero) | `fe_pack` |
//!
//! [`FlowKey`] (44 bytes, upstream `struct vr_inet6_flow`; an IPv4 key uses
//! the first 4 bytes of each address, the rest is zero — unlike upstream's
//! 20-byte `vr_inet_flow`, so `key_len` is always 44), offsets within the key:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 1 | `family` (2 `AF_INET`, 10 `AF_INET6`: Linux values, as upstream's agent expects) |
//! | 1 | 1 | `proto` |
//! | 2 | 2 | `unused` (zero) |
//! | 4 | 2 | `sport`, network byte order |
//! | 6 | 2 | `dport`, network byte order |
//! | 8 | 4 | `nh_id`, host byte order |
//! | 12 | 16 | `src` |
//! | 28 | 16 | `dst` |
//!
//! # Performance
//!
//! A lookup costs one cache miss on the bucket (the flags and key of a slot
//! share its first cache line), so a lone lookup in a large table is bound by
//! memory latency. A batch should hash every key, [`FlowTable::prefetch`]
//! its bucket, then [`FlowTable::lookup_hashed`] them: the misses overlap.
//! A host that can back the table with huge pages (hugetlbfs, or
//! `MADV_HUGEPAGE` where the kernel allows it for its mapping) saves the TLB
//! misses too.
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
//! * The datapath brackets every rewrite of an entry's identity or decision
//!   ([`FlowTable::insert`], [`FlowTable::remove`], a FLOW_SET) with
//!   [`FlowEntry::write_begin`] / [`FlowEntry::write_end`], which bump `seq`
//!   around release fences. Per-packet updates (statistics, TCP state,
//!   `last_seen`) are not bracketed: a reader may see them torn, as upstream's
//!   agent may.
//! * A new entry is VALID with action HOLD and not ACTIVE (upstream marks it
//!   ACTIVE at once; here ACTIVE means "decided by the agent"). It becomes ACTIVE
//!   when the datapath applies the agent's FLOW_SET with a FORWARD, DROP or NAT
//!   action: it writes the action and the other fields first, then
//!   [`FlowEntry::set_active`] issues a release fence and sets the flag.
//! * Removal clears ACTIVE and VALID; `gen_id` survives and is incremented by
//!   the next [`FlowTable::insert`] into the same record, so an index held
//!   across a delete is detected as stale.
//! * Chain links (`next_index`) are written after the record they point to is
//!   complete (release fence); a reader that walks chains must bound the walk
//!   and re-check every key, since a record can be unlinked and reused under it.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::NonNull;
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

/// A flow key: 44 bytes, like upstream `struct vr_inet6_flow`. An IPv4 key
/// uses the first 4 bytes of each address; the rest is zero.
///
/// `sport`/`dport` are stored in network byte order and `nh_id` in host
/// order, as upstream does; use [`FlowKey::new`], [`FlowKey::sport`] and
/// [`FlowKey::dport`] so callers never deal with it.
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
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

const _: () = {
    assert!(size_of::<FlowKey>() == 44);
    assert!(offset_of!(FlowKey, family) == 0);
    assert!(offset_of!(FlowKey, proto) == 1);
    assert!(offset_of!(FlowKey, unused) == 2);
    assert!(offset_of!(FlowKey, sport) == 4);
    assert!(offset_of!(FlowKey, dport) == 6);
    assert!(offset_of!(FlowKey, nh_id) == 8);
    assert!(offset_of!(FlowKey, src) == 12);
    assert!(offset_of!(FlowKey, dst) == 28);
};

impl FlowKey {
    /// Size of the key in bytes (the `key_len` of a valid entry).
    pub const LEN: u8 = 44;

    /// A key from host-order ports; addresses are 16 bytes (IPv4 in the
    /// first 4, rest zero).
    #[inline]
    pub const fn new(
        family: u8,
        proto: u8,
        sport: u16,
        dport: u16,
        nh_id: u32,
        src: [u8; 16],
        dst: [u8; 16],
    ) -> Self {
        Self {
            family,
            proto,
            unused: 0,
            sport: sport.to_be(),
            dport: dport.to_be(),
            nh_id,
            src,
            dst,
        }
    }

    /// An IPv4 key.
    #[inline]
    pub const fn new_v4(
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
    pub const fn new_v6(
        proto: u8,
        sport: u16,
        dport: u16,
        nh_id: u32,
        src: [u8; 16],
        dst: [u8; 16],
    ) -> Self {
        Self::new(AF_INET6, proto, sport, dport, nh_id, src, dst)
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

    /// IPv4 source address (meaningful for `AF_INET` keys).
    #[inline]
    pub const fn src_v4(&self) -> [u8; 4] {
        [self.src[0], self.src[1], self.src[2], self.src[3]]
    }

    /// IPv4 destination address (meaningful for `AF_INET` keys).
    #[inline]
    pub const fn dst_v4(&self) -> [u8; 4] {
        [self.dst[0], self.dst[1], self.dst[2], self.dst[3]]
    }

    /// The key as six little-endian words: the bytes 0..8, `nh_id`, and the
    /// two halves of each address. Compiles to plain loads; used by the hash
    /// and by the branch-free comparison on the lookup path.
    #[inline(always)]
    fn words(&self) -> [u64; 6] {
        let head = u64::from(self.family)
            | (u64::from(self.proto) << 8)
            | (u64::from(self.unused) << 16)
            | (u64::from(u16::from_ne_bytes(self.sport.to_le_bytes())) << 32)
            | (u64::from(u16::from_ne_bytes(self.dport.to_le_bytes())) << 48);
        let src = u128::from_le_bytes(self.src);
        let dst = u128::from_le_bytes(self.dst);
        [
            head,
            u64::from(self.nh_id),
            src as u64,
            (src >> 64) as u64,
            dst as u64,
            (dst >> 64) as u64,
        ]
    }
}

const fn widen(a: [u8; 4]) -> [u8; 16] {
    let mut w = [0u8; 16];
    w[0] = a[0];
    w[1] = a[1];
    w[2] = a[2];
    w[3] = a[3];
    w
}

/// Branch-free key equality for the hot path.
#[inline(always)]
fn key_eq(a: &FlowKey, b: &FlowKey) -> bool {
    let (x, y) = (a.words(), b.words());
    ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]) | (x[5] ^ y[5]))
        == 0
}

// ---- entry -------------------------------------------------------------

/// One flow record: 128 bytes, upstream `struct vr_flow_entry`'s field order
/// at natural alignment (see the module docs for the offsets).
///
/// Fields are public for the datapath and for dumps, but the hash-table
/// fields (`next_index`, `bucket_index`, `hentry_flags`) and the `key` of a
/// valid entry belong to [`FlowTable`]: changing them corrupts the table.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    pub next_index: u32,
    pub bucket_index: u32,
    pub hentry_flags: u8,
    pub ttl: u8,
    pub qos_id: i16,
    pub key: FlowKey,
    pub key_len: u8,
    pub gen_id: u8,
    pub tcp_flags: u16,
    pub hold_count: u32,
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
    pub last_seen: u32,
    pub tcp_ack: u32,
    pub underlay_ecmp_index: i8,
    pub bucket_lock: u8,
    pub pad0: [u8; 2],
    pub seq: u32,
    pub pad1: [u8; 4],
}

const _: () = {
    assert!(size_of::<FlowEntry>() == 128);
    assert!(align_of::<FlowEntry>() == 64);
    assert!(offset_of!(FlowEntry, next_index) == 0);
    assert!(offset_of!(FlowEntry, bucket_index) == 4);
    assert!(offset_of!(FlowEntry, hentry_flags) == 8);
    assert!(offset_of!(FlowEntry, ttl) == 9);
    assert!(offset_of!(FlowEntry, qos_id) == 10);
    assert!(offset_of!(FlowEntry, key) == 12);
    assert!(offset_of!(FlowEntry, key_len) == 56);
    assert!(offset_of!(FlowEntry, gen_id) == 57);
    assert!(offset_of!(FlowEntry, tcp_flags) == 58);
    assert!(offset_of!(FlowEntry, hold_count) == 60);
    assert!(offset_of!(FlowEntry, tcp_seq) == 64);
    assert!(offset_of!(FlowEntry, rflow) == 68);
    assert!(offset_of!(FlowEntry, flags) == 72);
    assert!(offset_of!(FlowEntry, flags1) == 74);
    assert!(offset_of!(FlowEntry, action) == 76);
    assert!(offset_of!(FlowEntry, vrf) == 78);
    assert!(offset_of!(FlowEntry, dvrf) == 80);
    assert!(offset_of!(FlowEntry, mirror_id) == 82);
    assert!(offset_of!(FlowEntry, sec_mirror_id) == 83);
    assert!(offset_of!(FlowEntry, src_nh_index) == 84);
    assert!(offset_of!(FlowEntry, stats_bytes) == 88);
    assert!(offset_of!(FlowEntry, stats_packets) == 92);
    assert!(offset_of!(FlowEntry, stats_bytes_oflow) == 96);
    assert!(offset_of!(FlowEntry, stats_packets_oflow) == 98);
    assert!(offset_of!(FlowEntry, ecmp_nh_index) == 99);
    assert!(offset_of!(FlowEntry, drop_reason) == 100);
    assert!(offset_of!(FlowEntry, fe_type) == 101);
    assert!(offset_of!(FlowEntry, udp_src_port) == 102);
    assert!(offset_of!(FlowEntry, src_info) == 104);
    assert!(offset_of!(FlowEntry, last_seen) == 108);
    assert!(offset_of!(FlowEntry, tcp_ack) == 112);
    assert!(offset_of!(FlowEntry, underlay_ecmp_index) == 116);
    assert!(offset_of!(FlowEntry, bucket_lock) == 117);
    assert!(offset_of!(FlowEntry, pad0) == 118);
    assert!(offset_of!(FlowEntry, seq) == 120);
    assert!(offset_of!(FlowEntry, pad1) == 124);
};

impl Default for FlowEntry {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl FlowEntry {
    /// A free record: all zero except the "none" links and reverse flow.
    pub const EMPTY: Self = Self {
        next_index: VR_INVALID_HENTRY_INDEX,
        bucket_index: VR_INVALID_HENTRY_INDEX,
        hentry_flags: 0,
        ttl: 0,
        qos_id: 0,
        key: FlowKey::new(0, 0, 0, 0, 0, [0; 16], [0; 16]),
        key_len: 0,
        gen_id: 0,
        tcp_flags: 0,
        hold_count: 0,
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
        last_seen: 0,
        tcp_ack: 0,
        underlay_ecmp_index: 0,
        bucket_lock: 0,
        pad0: [0; 2],
        seq: 0,
        pad1: [0; 4],
    };

    #[inline]
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// The record is in use (it holds a key and is reachable by lookup).
    #[inline]
    pub fn is_valid(&self) -> bool {
        self.hentry_flags & VR_HENTRY_FLAG_VALID != 0
    }

    /// The agent has decided this flow (`VR_FLOW_FLAG_ACTIVE`).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.flags & VR_FLOW_FLAG_ACTIVE != 0
    }

    #[inline]
    pub fn is_hold(&self) -> bool {
        self.action == VR_FLOW_ACTION_HOLD
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

    /// Packets seen (40 bits: 32 + 8 overflow).
    #[inline]
    pub fn packets(&self) -> u64 {
        u64::from(self.stats_packets) | (u64::from(self.stats_packets_oflow) << 32)
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

    /// Mark the flow decided: the caller has written the action and the
    /// other fields; they become visible to readers before the flag does.
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
    for _ in 0..tries {
        // SAFETY: the caller guarantees `entry` is readable and aligned.
        let (seq0, gen0, flags0) = unsafe { read_guard(entry) };
        if seq0 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        fence(Ordering::Acquire);
        // SAFETY: as above.
        let copy = unsafe { snapshot(entry) };
        fence(Ordering::Acquire);
        // SAFETY: as above.
        let (seq1, gen1, flags1) = unsafe { read_guard(entry) };
        if seq0 == seq1
            && gen0 == gen1
            && (flags0 & VR_FLOW_FLAG_ACTIVE) == (flags1 & VR_FLOW_FLAG_ACTIVE)
        {
            return Some(copy);
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

// ---- table -------------------------------------------------------------

/// Why a flow table could not be built or an entry not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowTableError {
    /// The hash part is zero or not a multiple of 4, or the total does not
    /// fit the `i32` reverse-flow index.
    BadSize,
    /// Host memory not aligned to 64 bytes, or null.
    Misaligned,
    /// The heap could not provide the table.
    NoMemory,
    /// No free slot in the key's bucket and no free overflow record.
    TableFull,
}

impl fmt::Display for FlowTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadSize => "flow table size must be a non-zero multiple of 4 below 2^31",
            Self::Misaligned => "flow table memory must be non-null and 64-byte aligned",
            Self::NoMemory => "out of memory for the flow table",
            Self::TableFull => "flow table full",
        })
    }
}

impl core::error::Error for FlowTableError {}

/// The flow hash table over `entries + oflow` [`FlowEntry`] records.
pub struct FlowTable {
    base: NonNull<FlowEntry>,
    /// Hash part (multiple of 4).
    entries: u32,
    /// Overflow area.
    oflow: u32,
    /// `base` came from `Box::into_raw` in [`FlowTable::new`].
    owned: bool,
    /// Whatever keeps host-provided memory alive (a shared mapping), so the
    /// table can own it safely; dropped after the table.
    keeper: Option<Box<dyn core::any::Any + Send + Sync>>,
    /// Free overflow indices; capacity `oflow`, never reallocated.
    free_oflow: Vec<u32>,
    /// Valid entries.
    used: u32,
}

// SAFETY: `FlowTable` is the only user of its records in this process
// (`new` owns them; `from_raw`'s caller promises exclusivity), so moving it
// to another thread or sharing `&FlowTable` (read-only) is sound.
unsafe impl Send for FlowTable {}
// SAFETY: as above; `&FlowTable` gives no interior mutability.
unsafe impl Sync for FlowTable {}

impl fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTable")
            .field("entries", &self.entries)
            .field("oflow", &self.oflow)
            .field("used", &self.used)
            .field("oflow_used", &self.oflow_used())
            .finish()
    }
}

impl Drop for FlowTable {
    fn drop(&mut self) {
        if self.owned {
            let slice = core::ptr::slice_from_raw_parts_mut(self.base.as_ptr(), self.total());
            // SAFETY: `base`/`total` are exactly the boxed slice `new` leaked.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

/// `entries + oflow`, checked: non-zero multiple of 4, total below 2^31.
fn check_size(entries: u32, oflow: u32) -> Result<usize, FlowTableError> {
    if entries == 0 || !entries.is_multiple_of(FLOW_BUCKET_SIZE) {
        return Err(FlowTableError::BadSize);
    }
    match entries.checked_add(oflow) {
        Some(t) if t <= i32::MAX as u32 => Ok(t as usize),
        _ => Err(FlowTableError::BadSize),
    }
}

impl FlowTable {
    /// A heap-backed table of `entries` hash slots (a non-zero multiple of
    /// 4) and `oflow_entries` overflow records.
    pub fn new(entries: u32, oflow_entries: u32) -> Result<Self, FlowTableError> {
        let total = check_size(entries, oflow_entries)?;
        let mut v: Vec<FlowEntry> = Vec::new();
        v.try_reserve_exact(total)
            .map_err(|_| FlowTableError::NoMemory)?;
        v.resize(total, FlowEntry::EMPTY);
        let raw = Box::into_raw(v.into_boxed_slice()).cast::<FlowEntry>();
        let base = NonNull::new(raw).ok_or(FlowTableError::NoMemory)?;
        let mut t = Self::with_base(base, entries, oflow_entries)?;
        t.owned = true;
        Ok(t)
    }

    /// A table over host-provided memory (a shared mapping). Every record is
    /// (re)initialised to free.
    ///
    /// # Safety
    ///
    /// `base` must point to [`FlowTable::bytes_for`]`(entries, oflow_entries)`
    /// writable bytes, aligned to 64 (a mapping's page alignment suffices),
    /// that stay valid for the table's lifetime and that nothing else in this
    /// process accesses meanwhile (other processes may read them as the
    /// module docs describe). The table does not free the memory.
    pub unsafe fn from_raw(
        base: *mut FlowEntry,
        entries: u32,
        oflow_entries: u32,
    ) -> Result<Self, FlowTableError> {
        let total = check_size(entries, oflow_entries)?;
        let base = NonNull::new(base).ok_or(FlowTableError::Misaligned)?;
        if !base.as_ptr().is_aligned() {
            return Err(FlowTableError::Misaligned);
        }
        for i in 0..total {
            // SAFETY: in bounds of the caller's region; the memory may hold
            // anything, so write without reading or dropping the old value.
            unsafe { base.as_ptr().add(i).write(FlowEntry::EMPTY) };
        }
        fence(Ordering::Release);
        Self::with_base(base, entries, oflow_entries)
    }

    /// [`FlowTable::from_raw`] over memory that `keeper` owns (e.g. the
    /// mapping object): the table keeps it alive, so a host can hand the
    /// table to a `Router` and forget about the mapping.
    ///
    /// # Safety
    ///
    /// As [`FlowTable::from_raw`], with "valid for the table's lifetime"
    /// guaranteed by `keeper` (the memory must stay mapped while `keeper`
    /// lives and nothing may reach it through `keeper` meanwhile).
    pub unsafe fn from_raw_kept(
        base: *mut FlowEntry,
        entries: u32,
        oflow_entries: u32,
        keeper: Box<dyn core::any::Any + Send + Sync>,
    ) -> Result<Self, FlowTableError> {
        // SAFETY: forwarded from the caller.
        let mut t = unsafe { Self::from_raw(base, entries, oflow_entries) }?;
        t.keeper = Some(keeper);
        Ok(t)
    }

    /// The object passed to [`FlowTable::from_raw_kept`], for read-side
    /// accessors (downcast it to the host's mapping type).
    pub fn keeper(&self) -> Option<&(dyn core::any::Any + Send + Sync)> {
        self.keeper.as_deref()
    }

    fn with_base(
        base: NonNull<FlowEntry>,
        entries: u32,
        oflow: u32,
    ) -> Result<Self, FlowTableError> {
        let mut free_oflow = Vec::new();
        free_oflow
            .try_reserve_exact(oflow as usize)
            .map_err(|_| FlowTableError::NoMemory)?;
        // Popped from the end: the lowest overflow index is used first.
        free_oflow.extend((entries..entries + oflow).rev());
        Ok(Self {
            base,
            entries,
            oflow,
            owned: false,
            keeper: None,
            free_oflow,
            used: 0,
        })
    }

    /// Bytes of memory a table of this size needs (saturates on overflow).
    pub const fn bytes_for(entries: u32, oflow_entries: u32) -> usize {
        (entries as usize + oflow_entries as usize).saturating_mul(size_of::<FlowEntry>())
    }

    /// The flow hash: deterministic across processes and builds (two lanes
    /// of multiply-xorshift over the key words, then a final avalanche).
    #[inline]
    pub fn hash(key: &FlowKey) -> u32 {
        const M: u64 = 0x9e37_79b9_7f4a_7c15;
        const M2: u64 = 0xd6e8_feb8_6659_fd93;
        #[inline(always)]
        fn mix(h: u64, w: u64) -> u64 {
            let x = (h ^ w).wrapping_mul(M);
            x ^ (x >> 32)
        }
        let w = key.words();
        let a = mix(mix(mix(0x243f_6a88_85a3_08d3, w[0]), w[2]), w[3]);
        let b = mix(mix(mix(0x1319_8a2e_0370_7344, w[1]), w[4]), w[5]);
        let mut h = (a ^ b.rotate_left(29)).wrapping_mul(M2);
        h ^= h >> 31;
        h = h.wrapping_mul(M);
        (h >> 32) as u32
    }

    /// Index of the first slot of `key`'s bucket.
    #[inline]
    pub fn bucket_of(&self, key: &FlowKey) -> u32 {
        self.bucket_start(Self::hash(key))
    }

    #[inline(always)]
    fn bucket_start(&self, hash: u32) -> u32 {
        let buckets = u64::from(self.entries / FLOW_BUCKET_SIZE);
        // Multiply-shift range reduction: any bucket count, no division.
        (((u64::from(hash) * buckets) >> 32) as u32) * FLOW_BUCKET_SIZE
    }

    #[inline(always)]
    fn total(&self) -> usize {
        self.entries as usize + self.oflow as usize
    }

    #[inline(always)]
    fn slots(&self) -> &[FlowEntry] {
        // SAFETY: `base` points to `total` initialised records that this
        // table uses exclusively (see `new` / `from_raw`).
        unsafe { core::slice::from_raw_parts(self.base.as_ptr(), self.total()) }
    }

    #[inline(always)]
    fn slots_mut(&mut self) -> &mut [FlowEntry] {
        // SAFETY: as `slots`, and `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), self.total()) }
    }

    /// Start loading the bucket of a key with this [`FlowTable::hash`] into
    /// the cache. A batch of packets hashes and prefetches all its keys
    /// first, then looks them up with [`FlowTable::lookup_hashed`]: the
    /// cache misses of the batch overlap instead of adding up.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let first = self.bucket_start(hash) as usize;
            // The key and flags of the first two slots: where most hits are.
            for slot in self.slots().get(first..first + 2).unwrap_or(&[]) {
                let p = core::ptr::from_ref(slot).cast::<i8>();
                // SAFETY: a prefetch never faults and `p` is in bounds anyway.
                unsafe {
                    core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p)
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// Index of the valid entry with `key`: the 4 slots of its bucket, then
    /// the overflow chain. No allocation.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        self.lookup_hashed(key, Self::hash(key))
    }

    /// [`FlowTable::lookup`] with the key's [`FlowTable::hash`] already
    /// computed (see [`FlowTable::prefetch`]).
    #[inline]
    pub fn lookup_hashed(&self, key: &FlowKey, hash: u32) -> Option<u32> {
        let first = self.bucket_start(hash);
        let slots = self.slots();
        let bucket = slots.get(first as usize..first as usize + 4)?;
        for (i, e) in bucket.iter().enumerate() {
            if e.is_valid() && key_eq(&e.key, key) {
                return Some(first + i as u32);
            }
        }
        let mut next = bucket.last()?.next_index;
        // A chain is at most `oflow` long; the bound guards a corrupt link.
        let mut budget = self.oflow;
        while next != VR_INVALID_HENTRY_INDEX && budget > 0 {
            let e = slots.get(next as usize)?;
            if e.is_valid() && key_eq(&e.key, key) {
                return Some(next);
            }
            next = e.next_index;
            budget -= 1;
        }
        None
    }

    /// Find or add the entry for `key`: `(index, created)`. A new entry is
    /// zeroed with the key set, VALID, action HOLD, `NEW_FLOW`, reverse flow,
    /// ECMP and mirror indices "none", and `gen_id` one more than the
    /// record's previous generation. It takes a free slot of the bucket, else
    /// an overflow record linked into the bucket's chain.
    pub fn insert(&mut self, key: &FlowKey) -> Result<(u32, bool), FlowTableError> {
        let hash = Self::hash(key);
        if let Some(i) = self.lookup_hashed(key, hash) {
            return Ok((i, false));
        }
        let first = self.bucket_start(hash);
        let head = first + FLOW_BUCKET_SIZE - 1;
        let free_slot = self
            .slots()
            .get(first as usize..=head as usize)
            .and_then(|b| b.iter().position(|e| !e.is_valid()));
        let idx = match free_slot {
            Some(i) => first + i as u32,
            None => self.free_oflow.pop().ok_or(FlowTableError::TableFull)?,
        };
        let is_oflow = idx >= self.entries;
        let slots = self.slots_mut();
        let chain = slots
            .get(head as usize)
            .map_or(VR_INVALID_HENTRY_INDEX, |h| h.next_index);
        let Some(e) = slots.get_mut(idx as usize) else {
            return Err(FlowTableError::TableFull);
        };
        e.write_begin();
        *e = FlowEntry {
            // A bucket slot keeps its links (the last slot holds the chain).
            next_index: if is_oflow { chain } else { e.next_index },
            bucket_index: if is_oflow {
                head
            } else {
                VR_INVALID_HENTRY_INDEX
            },
            hentry_flags: VR_HENTRY_FLAG_VALID,
            key: *key,
            key_len: FlowKey::LEN,
            gen_id: e.gen_id.wrapping_add(1),
            action: VR_FLOW_ACTION_HOLD,
            flags: VR_FLOW_FLAG_NEW_FLOW,
            mirror_id: VR_MAX_MIRROR_INDICES,
            sec_mirror_id: VR_MAX_MIRROR_INDICES,
            ecmp_nh_index: -1,
            underlay_ecmp_index: -1,
            seq: e.seq,
            ..FlowEntry::EMPTY
        };
        e.write_end();
        if is_oflow {
            // The record is complete before it becomes reachable.
            fence(Ordering::Release);
            if let Some(h) = slots.get_mut(head as usize) {
                h.next_index = idx;
            }
        }
        self.used += 1;
        Ok((idx, true))
    }

    /// Free the valid entry at `idx`: clear ACTIVE and VALID, unlink an
    /// overflow record from its chain and return it to the free list. The
    /// `gen_id` survives so a stale index is detected. False if `idx` is out
    /// of range or not valid.
    pub fn remove(&mut self, idx: u32) -> bool {
        let entries = self.entries;
        let oflow = self.oflow;
        let slots = self.slots_mut();
        let Some(e) = slots.get_mut(idx as usize) else {
            return false;
        };
        if !e.is_valid() {
            return false;
        }
        e.write_begin();
        e.flags = 0;
        e.hentry_flags &= !VR_HENTRY_FLAG_VALID;
        e.hold_count = 0;
        e.key_len = 0;
        e.write_end();
        if idx >= entries {
            let (head, next) = (e.bucket_index, e.next_index);
            e.next_index = VR_INVALID_HENTRY_INDEX;
            e.bucket_index = VR_INVALID_HENTRY_INDEX;
            // Find the predecessor, from the bucket's last slot.
            let mut prev = head;
            let mut budget = oflow;
            while budget > 0 {
                let Some(p) = slots.get_mut(prev as usize) else {
                    break;
                };
                if p.next_index == idx {
                    p.next_index = next;
                    break;
                }
                prev = p.next_index;
                budget -= 1;
            }
            debug_assert!(budget > 0, "overflow record {idx} not in its chain");
            self.free_oflow.push(idx);
        }
        self.used -= 1;
        true
    }

    /// The record at `idx`, valid or not.
    #[inline]
    pub fn get(&self, idx: u32) -> Option<&FlowEntry> {
        self.slots().get(idx as usize)
    }

    /// The record at `idx`, valid or not (see [`FlowEntry`] for the fields
    /// callers must leave alone).
    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> Option<&mut FlowEntry> {
        self.slots_mut().get_mut(idx as usize)
    }

    /// The record at `idx` if it is valid.
    #[inline]
    pub fn get_valid(&self, idx: u32) -> Option<&FlowEntry> {
        self.get(idx).filter(|e| e.is_valid())
    }

    /// The record at `idx` if it is valid.
    #[inline]
    pub fn get_valid_mut(&mut self, idx: u32) -> Option<&mut FlowEntry> {
        self.get_mut(idx).filter(|e| e.is_valid())
    }

    /// Total records (hash part + overflow area): the index space.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.entries + self.oflow
    }

    /// Records in the hash part.
    #[inline]
    pub fn hash_entries(&self) -> u32 {
        self.entries
    }

    /// Records in the overflow area.
    #[inline]
    pub fn oflow_entries(&self) -> u32 {
        self.oflow
    }

    /// Valid entries.
    #[inline]
    pub fn len(&self) -> u32 {
        self.used
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Overflow records in use.
    #[inline]
    pub fn oflow_used(&self) -> u32 {
        self.oflow - self.free_oflow.len() as u32
    }

    /// Start of the records (for a host that maps them elsewhere too).
    #[inline]
    pub fn as_ptr(&self) -> *const FlowEntry {
        self.base.as_ptr()
    }

    /// Valid entries in index order (dumps).
    pub fn iter_valid(&self) -> impl Iterator<Item = (u32, &FlowEntry)> {
        self.iter_valid_from(0)
    }

    /// Valid entries with index `>= marker`, in index order (a dump resumed
    /// after the last index it returned, like upstream's `fr_marker`).
    pub fn iter_valid_from(&self, marker: u32) -> impl Iterator<Item = (u32, &FlowEntry)> {
        let rest = self.slots().get(marker as usize..).unwrap_or(&[]);
        rest.iter()
            .enumerate()
            .filter(|(_, e)| e.is_valid())
            .map(move |(i, e)| (marker + i as u32, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    fn k4(sport: u16, dport: u16, src: u32) -> FlowKey {
        FlowKey::new_v4(6, sport, dport, 7, src.to_be_bytes(), [10, 0, 0, 1])
    }

    /// Keys that all fall in bucket `bucket` of `t`.
    fn colliding(t: &FlowTable, bucket: u32, n: usize) -> Vec<FlowKey> {
        (0u32..)
            .map(|i| k4(i as u16, 80, i))
            .filter(|k| t.bucket_of(k) == bucket)
            .take(n)
            .collect()
    }

    /// Every chain is consistent and every valid overflow record is on the
    /// chain of its bucket exactly once.
    fn check_chains(t: &FlowTable) {
        let mut seen = vec![false; t.capacity() as usize];
        for b in (0..t.hash_entries()).step_by(4) {
            let head = b + 3;
            let mut next = t.get(head).unwrap().next_index;
            while next != VR_INVALID_HENTRY_INDEX {
                assert!(next >= t.hash_entries(), "chain into hash part");
                assert!(!seen[next as usize], "record on two chains or a loop");
                seen[next as usize] = true;
                let e = t.get(next).unwrap();
                assert!(e.is_valid());
                assert_eq!(e.bucket_index, head);
                assert_eq!(t.bucket_of(&e.key), b);
                next = e.next_index;
            }
        }
        let mut valid_oflow = 0;
        for i in t.hash_entries()..t.capacity() {
            let e = t.get(i).unwrap();
            if e.is_valid() {
                valid_oflow += 1;
                assert!(seen[i as usize], "valid overflow record {i} unreachable");
            }
        }
        assert_eq!(valid_oflow, t.oflow_used());
        assert_eq!(t.iter_valid().count() as u32, t.len());
    }

    #[test]
    fn layout() {
        assert_eq!(size_of::<FlowKey>(), 44);
        assert_eq!(size_of::<FlowEntry>(), 128);
        assert_eq!(align_of::<FlowEntry>(), 64);
        let offsets = [
            (offset_of!(FlowEntry, next_index), 0),
            (offset_of!(FlowEntry, bucket_index), 4),
            (offset_of!(FlowEntry, hentry_flags), 8),
            (offset_of!(FlowEntry, ttl), 9),
            (offset_of!(FlowEntry, qos_id), 10),
            (offset_of!(FlowEntry, key), 12),
            (offset_of!(FlowEntry, key) + offset_of!(FlowKey, sport), 16),
            (offset_of!(FlowEntry, key) + offset_of!(FlowKey, nh_id), 20),
            (offset_of!(FlowEntry, key) + offset_of!(FlowKey, src), 24),
            (offset_of!(FlowEntry, key) + offset_of!(FlowKey, dst), 40),
            (offset_of!(FlowEntry, key_len), 56),
            (offset_of!(FlowEntry, gen_id), 57),
            (offset_of!(FlowEntry, tcp_flags), 58),
            (offset_of!(FlowEntry, hold_count), 60),
            (offset_of!(FlowEntry, tcp_seq), 64),
            (offset_of!(FlowEntry, rflow), 68),
            (offset_of!(FlowEntry, flags), 72),
            (offset_of!(FlowEntry, flags1), 74),
            (offset_of!(FlowEntry, action), 76),
            (offset_of!(FlowEntry, vrf), 78),
            (offset_of!(FlowEntry, dvrf), 80),
            (offset_of!(FlowEntry, mirror_id), 82),
            (offset_of!(FlowEntry, sec_mirror_id), 83),
            (offset_of!(FlowEntry, src_nh_index), 84),
            (offset_of!(FlowEntry, stats_bytes), 88),
            (offset_of!(FlowEntry, stats_packets), 92),
            (offset_of!(FlowEntry, stats_bytes_oflow), 96),
            (offset_of!(FlowEntry, stats_packets_oflow), 98),
            (offset_of!(FlowEntry, ecmp_nh_index), 99),
            (offset_of!(FlowEntry, drop_reason), 100),
            (offset_of!(FlowEntry, fe_type), 101),
            (offset_of!(FlowEntry, udp_src_port), 102),
            (offset_of!(FlowEntry, src_info), 104),
            (offset_of!(FlowEntry, last_seen), 108),
            (offset_of!(FlowEntry, tcp_ack), 112),
            (offset_of!(FlowEntry, underlay_ecmp_index), 116),
            (offset_of!(FlowEntry, bucket_lock), 117),
            (offset_of!(FlowEntry, seq), 120),
        ];
        for (i, (got, want)) in offsets.iter().enumerate() {
            assert_eq!(got, want, "offset #{i}");
        }
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
        assert_eq!(k.src[..4], [1, 2, 3, 4]);
        assert_eq!(k.src[4..], [0; 12]);
        assert_eq!((k.src_v4(), k.dst_v4()), ([1, 2, 3, 4], [5, 6, 7, 8]));
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
    fn bad_sizes() {
        assert_eq!(FlowTable::new(0, 8).unwrap_err(), FlowTableError::BadSize);
        assert_eq!(FlowTable::new(6, 8).unwrap_err(), FlowTableError::BadSize);
        assert_eq!(
            FlowTable::new(1 << 31, 0).unwrap_err(),
            FlowTableError::BadSize
        );
        assert_eq!(
            FlowTable::new(4, u32::MAX).unwrap_err(),
            FlowTableError::BadSize
        );
        assert!(FlowTable::new(4, 0).is_ok());
        assert_eq!(FlowTable::bytes_for(16, 8), 24 * 128);
        assert!(!FlowTableError::TableFull.to_string().is_empty());
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = FlowTable::new(1024, 64).unwrap();
        assert!(t.is_empty());
        let k = k4(1000, 80, 0x0a00_0002);
        assert_eq!(t.lookup(&k), None);
        let (i, created) = t.insert(&k).unwrap();
        assert!(created);
        assert!(i < 1024);
        assert_eq!(t.insert(&k).unwrap(), (i, false));
        assert_eq!(t.lookup(&k), Some(i));
        assert_eq!(t.len(), 1);
        let e = t.get_valid(i).unwrap();
        assert_eq!(*e.key(), k);
        assert_eq!(e.key_len, 44);
        assert_eq!(e.action, VR_FLOW_ACTION_HOLD);
        assert_eq!(e.rflow, -1);
        assert_eq!(e.rflow(), None);
        assert_eq!(e.gen_id, 1);
        assert_eq!(e.flags, VR_FLOW_FLAG_NEW_FLOW);
        assert!(e.is_valid() && !e.is_active() && e.is_hold());
        assert_eq!(e.seq % 2, 0);

        let fe = t.get_valid_mut(i).unwrap();
        fe.write_begin();
        fe.action = VR_FLOW_ACTION_FORWARD;
        fe.rflow = 5;
        fe.set_active();
        fe.write_end();
        assert!(t.get(i).unwrap().is_active());
        assert_eq!(t.get(i).unwrap().rflow(), Some(5));

        assert!(t.remove(i));
        assert!(!t.remove(i));
        assert!(!t.remove(u32::MAX));
        assert_eq!(t.lookup(&k), None);
        assert!(t.get_valid(i).is_none());
        let e = t.get(i).unwrap();
        assert!(!e.is_valid() && !e.is_active());
        assert_eq!(e.gen_id, 1);
        assert_eq!(t.len(), 0);
        assert!(t.get(t.capacity()).is_none());
    }

    #[test]
    fn stale_index_detected_by_gen_id() {
        let mut t = FlowTable::new(4, 0).unwrap();
        let (i, _) = t.insert(&k4(1, 1, 1)).unwrap();
        let gen = t.get(i).unwrap().gen_id;
        assert!(t.remove(i));
        // A one-bucket table: the next key takes the same (first free) slot.
        let (j, _) = t.insert(&k4(2, 2, 2)).unwrap();
        assert_eq!(i, j);
        let e = t.get_valid(j).unwrap();
        assert_ne!(e.gen_id, gen);
        assert_eq!(e.gen_id, gen.wrapping_add(1));
    }

    #[test]
    fn overflow_chain_and_unlink() {
        let mut t = FlowTable::new(16, 8).unwrap();
        let keys = colliding(&t, 8, 9);
        let mut idx = Vec::new();
        for k in &keys {
            let (i, created) = t.insert(k).unwrap();
            assert!(created);
            idx.push(i);
        }
        assert_eq!(&idx[..4], &[8, 9, 10, 11]);
        assert!(idx[4..].iter().all(|&i| i >= 16));
        assert_eq!(t.oflow_used(), 5);
        // Newest overflow record is the chain head.
        assert_eq!(t.get(11).unwrap().next_index, idx[8]);
        check_chains(&t);
        for (k, &i) in keys.iter().zip(&idx) {
            assert_eq!(t.lookup(k), Some(i));
        }
        // Chain is idx[8] -> idx[7] -> idx[6] -> idx[5] -> idx[4].
        for (victim, pos) in [(idx[6], "middle"), (idx[8], "head"), (idx[4], "tail")] {
            assert!(t.remove(victim), "{pos}");
            check_chains(&t);
        }
        assert_eq!(t.oflow_used(), 2);
        for (k, &i) in keys.iter().zip(&idx) {
            let want = if [idx[4], idx[6], idx[8]].contains(&i) {
                None
            } else {
                Some(i)
            };
            assert_eq!(t.lookup(k), want);
        }
        // A freed bucket slot is reused before the overflow area.
        assert!(t.remove(9));
        let (i, _) = t.insert(&keys[1]).unwrap();
        assert_eq!(i, 9);
        // Slot 11 keeps its chain across remove + reuse.
        assert!(t.remove(11));
        check_chains(&t);
        let (i, _) = t.insert(&keys[3]).unwrap();
        assert_eq!(i, 11);
        check_chains(&t);
        assert_eq!(t.lookup(&keys[5]), Some(idx[5]));
        assert_eq!(t.lookup(&keys[7]), Some(idx[7]));
    }

    #[test]
    fn table_full() {
        let mut t = FlowTable::new(16, 2).unwrap();
        let keys = colliding(&t, 4, 7);
        for k in &keys[..6] {
            t.insert(k).unwrap();
        }
        assert_eq!(t.insert(&keys[6]), Err(FlowTableError::TableFull));
        assert_eq!(t.len(), 6);
        // Another bucket still has room.
        let other = colliding(&t, 0, 1);
        assert!(t.insert(&other[0]).unwrap().1);
        // Existing keys are still found when full.
        assert!(!t.insert(&keys[5]).unwrap().1);
        check_chains(&t);
    }

    #[test]
    fn from_raw_over_byte_buffer() {
        let (entries, oflow) = (64, 16);
        let bytes = FlowTable::bytes_for(entries, oflow);
        let mut buf = vec![0xa5u8; bytes + 64];
        let off = buf.as_ptr().align_offset(64);
        // SAFETY: `buf` holds `bytes` bytes from `off`, 64-aligned, unused
        // elsewhere while the table lives.
        let base = unsafe { buf.as_mut_ptr().add(off) }.cast::<FlowEntry>();
        {
            // SAFETY: as above.
            let mut t = unsafe { FlowTable::from_raw(base, entries, oflow) }.unwrap();
            assert_eq!(t.len(), 0);
            assert_eq!(t.iter_valid().count(), 0);
            let keys: Vec<_> = (0..40).map(|i| k4(i, 443, i.into())).collect();
            for k in &keys {
                t.insert(k).unwrap();
            }
            for k in &keys {
                let i = t.lookup(k).unwrap();
                // A second "process" reads the same memory.
                // SAFETY: `i` is in range of the mapping.
                let copy = unsafe { read_stable(base.add(i as usize), 4) }.unwrap();
                assert_eq!(copy.key, *k);
                assert_eq!(copy, *t.get(i).unwrap());
            }
            check_chains(&t);
        }
        // The bytes are the records, laid out as documented.
        let rec = &buf[off..off + bytes];
        let first = rec
            .chunks_exact(128)
            .position(|r| r[8] == VR_HENTRY_FLAG_VALID)
            .unwrap();
        let r = &rec[first * 128..][..128];
        assert_eq!(r[12], AF_INET);
        assert_eq!(r[13], 6);
        assert_eq!(r[56], 44);
        assert_eq!(&r[18..20], &443u16.to_be_bytes());
        assert_eq!(&r[76..78], &VR_FLOW_ACTION_HOLD.to_ne_bytes());
        assert_eq!(&r[68..72], &(-1i32).to_ne_bytes());
        // SAFETY: misaligned pointer is rejected before any access.
        let e = unsafe { FlowTable::from_raw(base.cast::<u8>().add(4).cast(), 4, 0) };
        assert_eq!(e.unwrap_err(), FlowTableError::Misaligned);
        // SAFETY: null is rejected.
        let e = unsafe { FlowTable::from_raw(core::ptr::null_mut(), 4, 0) };
        assert_eq!(e.unwrap_err(), FlowTableError::Misaligned);
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

    #[test]
    fn iter_valid_from_marker() {
        let mut t = FlowTable::new(64, 8).unwrap();
        for i in 0..20 {
            t.insert(&k4(i, 1, 1)).unwrap();
        }
        let all: Vec<u32> = t.iter_valid().map(|(i, _)| i).collect();
        assert_eq!(all.len(), 20);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let from: Vec<u32> = t.iter_valid_from(all[10]).map(|(i, _)| i).collect();
        assert_eq!(from, all[10..]);
        assert_eq!(t.iter_valid_from(t.capacity() + 5).count(), 0);
    }

    /// splitmix64: a deterministic test PRNG.
    fn next(s: &mut u64) -> u64 {
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Chi-square of `n` hashes over 65536 bins, through `bin`.
    fn chi2(keys: &[FlowKey], bin: impl Fn(u32) -> usize) -> f64 {
        let mut counts = vec![0u32; 65536];
        for k in keys {
            counts[bin(FlowTable::hash(k))] += 1;
        }
        let exp = keys.len() as f64 / 65536.0;
        counts
            .iter()
            .map(|&c| (f64::from(c) - exp).powi(2) / exp)
            .sum()
    }

    fn assert_uniform(name: &str, keys: &[FlowKey]) {
        // 65535 degrees of freedom: mean 65535, sd ~362. Allow 6 sd.
        let bins: [(&str, &dyn Fn(u32) -> usize); 3] = [
            ("low", &|h| (h & 0xffff) as usize),
            ("high", &|h| (h >> 16) as usize),
            ("range", &|h| ((u64::from(h) * 65536) >> 32) as usize),
        ];
        for (bname, f) in bins {
            let c = chi2(keys, f);
            assert!(
                (c - 65535.0).abs() < 6.0 * 362.0,
                "{name}/{bname}: chi2 {c}"
            );
        }
    }

    #[test]
    fn hash_distribution() {
        let mut s = 1u64;
        let random: Vec<FlowKey> = (0..100_000)
            .map(|_| {
                let (a, b) = (next(&mut s), next(&mut s));
                FlowKey::new_v4(
                    (a & 0xff) as u8,
                    (a >> 8) as u16,
                    (a >> 24) as u16,
                    (a >> 40) as u32,
                    (b as u32).to_ne_bytes(),
                    ((b >> 32) as u32).to_ne_bytes(),
                )
            })
            .collect();
        assert_uniform("random", &random);
        // Structured traffic: one client, sequential source ports to a few servers.
        let ports: Vec<FlowKey> = (0..100_000u32)
            .map(|i| k4(i as u16, 80 + (i >> 16) as u16, 0x0a00_0001))
            .collect();
        assert_uniform("ports", &ports);
        // Sequential IPv6 sources in one /64.
        let v6: Vec<FlowKey> = (0..100_000u32)
            .map(|i| {
                let mut src = [0u8; 16];
                src[0] = 0xfd;
                src[12..].copy_from_slice(&i.to_be_bytes());
                FlowKey::new_v6(17, 5000, 53, 3, src, [0xfd; 16])
            })
            .collect();
        assert_uniform("v6", &v6);
        // Deterministic: a fixed key always hashes the same (agent and
        // datapath compute it independently).
        assert_eq!(FlowTable::hash(&k4(1, 2, 3)), FlowTable::hash(&k4(1, 2, 3)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8),
        Remove(u8),
        RemoveIdx(u8),
        Lookup(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::Insert),
            2 => any::<u8>().prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::RemoveIdx),
            2 => any::<u8>().prop_map(Op::Lookup),
        ]
    }

    /// 48 distinct keys, a v4/v6 mix.
    fn pool_key(n: u8) -> FlowKey {
        let n = n % 48;
        if n.is_multiple_of(3) {
            FlowKey::new_v6(17, n.into(), 53, 1, [n; 16], [0xfe; 16])
        } else {
            k4(n.into(), 80, u32::from(n) * 7)
        }
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut t = FlowTable::new(16, 8).unwrap();
            let mut model: BTreeMap<FlowKey, u32> = BTreeMap::new();
            let mut gens = vec![0u8; t.capacity() as usize];
            for op in ops {
                match op {
                    Op::Insert(n) => {
                        let k = pool_key(n);
                        match t.insert(&k) {
                            Ok((i, created)) => {
                                prop_assert_eq!(created, !model.contains_key(&k));
                                if created {
                                    gens[i as usize] = gens[i as usize].wrapping_add(1);
                                    prop_assert!(!model.values().any(|&v| v == i));
                                    model.insert(k, i);
                                }
                                prop_assert_eq!(model.get(&k), Some(&i));
                            }
                            Err(e) => {
                                prop_assert_eq!(e, FlowTableError::TableFull);
                                prop_assert!(!model.contains_key(&k));
                                prop_assert_eq!(t.oflow_used(), t.oflow_entries());
                                let b = t.bucket_of(&k);
                                prop_assert!((b..b + 4).all(|i| t.get(i).unwrap().is_valid()));
                            }
                        }
                    }
                    Op::Remove(n) => {
                        let k = pool_key(n);
                        let want = model.remove(&k);
                        prop_assert_eq!(t.lookup(&k), want);
                        if let Some(i) = want {
                            prop_assert!(t.remove(i));
                        }
                    }
                    Op::RemoveIdx(n) => {
                        let i = u32::from(n) % (t.capacity() + 2);
                        let k = model.iter().find(|(_, &v)| v == i).map(|(k, _)| *k);
                        prop_assert_eq!(t.remove(i), k.is_some());
                        if let Some(k) = k {
                            model.remove(&k);
                        }
                    }
                    Op::Lookup(n) => {
                        let k = pool_key(n);
                        prop_assert_eq!(t.lookup(&k), model.get(&k).copied());
                    }
                }
                prop_assert_eq!(t.len() as usize, model.len());
                for i in 0..t.capacity() {
                    prop_assert_eq!(t.get(i).unwrap().gen_id, gens[i as usize]);
                }
            }
            for (k, &i) in &model {
                prop_assert_eq!(t.lookup(k), Some(i));
                prop_assert_eq!(t.get_valid(i).map(|e| e.key), Some(*k));
            }
            check_chains(&t);
        }
    }
}
