//! `vrouter --fast-path tc`: the in-kernel fast path for flows the core has
//! decided, the Linux analogue of upstream's kernel module forwarding
//! established flows without a trip through user space.
//!
//! The BPF programs are in `crates/vrouter/bpf/fastpath.c`: a TC ingress
//! classifier on each VM port's host-side veth that redirects an installed
//! flow straight to the peer port (rewriting MACs and TTL as the core
//! does; for a flow into an MPLSoUDP, MPLSoGRE or VXLAN tunnel it pushes
//! the core's outer headers and redirects to the fabric instead), and a
//! socket filter on the port's AF_PACKET socket that keeps the
//! same frames from reaching user space too (packet taps run before TC
//! ingress). With `tc-encap` the same pair sits on the fabric port and
//! decapsulates the flows the core delivers to local VM ports.
//! [`crate::offload::Offloader`] decides what is installed.
//!
//! Why C and not Rust: a Rust BPF object needs `bpf-linker`, which must be
//! built against the LLVM of rustc (22 here) and Debian 12 ships LLVM 14;
//! Debian's clang-14 compiles the C program at build time (`build.rs`) and
//! aya, a pure-Rust loader, loads it. Without clang the build still works
//! and `--fast-path tc` reports that the object is missing.

use crate::offload::FastPath;
use crate::port::Port;
use aya::maps::{HashMap as BpfHashMap, IterableMap, MapData};
use aya::programs::tc::{SchedClassifierLinkId, TcAttachType};
use aya::programs::{SchedClassifier, SocketFilter};
use aya::Ebpf;
use dp_core::{OffloadHint, TunnelKind};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fastpath.o"));

/// `struct fp_key` of fastpath.c.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FpKey {
    pub ifindex: u32,
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// Network byte order.
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    pub pad: [u8; 3],
}

/// `struct fp_value` of fastpath.c.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpValue {
    pub oif: u32,
    pub flow: u32,
    pub macs: [u8; 12],
    pub in_macs: [u8; 12],
    pub mtu: u16,
    /// Bit 0: write `macs`; bit 1: decrement the IPv4 TTL; bit 2
    /// (`FP_DECAP`): a fabric entry (`fp_tc_fab`): `hdr[0..4]` the
    /// outer IPv4 destination, `hdr[4..8]` the label or VNI (big-endian),
    /// `encap_len` the outer bytes to strip.
    pub rewrite: u8,
    pub gen: u8,
    /// 0: no tunnel; else the bytes of `hdr` to push.
    pub encap_len: u8,
    /// `FP_GRE` 1, `FP_MPLS_UDP` 2, `FP_VXLAN` 3.
    pub encap_kind: u8,
    pub l2: u8,
    pub pad1: u8,
    /// The entry's counters in `FP_COUNTS`.
    pub slot: u32,
    /// The epoch it was installed in; an older one than `FP_EPOCH` is dead.
    pub epoch: u32,
    pub hdr: [u8; 56],
}

impl Default for FpValue {
    fn default() -> FpValue {
        FpValue {
            oif: 0,
            flow: 0,
            macs: [0; 12],
            in_macs: [0; 12],
            mtu: 0,
            rewrite: 0,
            gen: 0,
            encap_len: 0,
            encap_kind: 0,
            l2: 0,
            pad1: 0,
            slot: 0,
            epoch: 0,
            hdr: [0; 56],
        }
    }
}

impl FpValue {
    /// The entry forwarding the flow of `h` to `out_os`.
    pub fn of(out_os: u32, h: &OffloadHint) -> FpValue {
        let mut v = FpValue {
            oif: out_os,
            flow: h.flow,
            macs: h.macs.unwrap_or([0; 12]),
            in_macs: h.in_macs,
            mtu: h.mtu,
            gen: h.gen,
            ..FpValue::default()
        };
        if let Some(d) = &h.decap {
            v.encap_len = d.outer_len.min(255) as u8;
            v.encap_kind = kind_code(d.kind);
            v.l2 = u8::from(d.l2);
            v.hdr[0..4].copy_from_slice(&d.dst);
            v.hdr[4..8].copy_from_slice(&d.label.to_be_bytes());
            // L3: the next hop's MACs in front of the inner packet; L2
            // routed: the new MACs and TTL.
            let macs = match d.eth {
                Some(e) => {
                    let mut m = [0u8; 12];
                    m.copy_from_slice(&e[..12]);
                    Some(m)
                }
                None => h.macs,
            };
            v.macs = macs.unwrap_or([0; 12]);
            v.rewrite = FP_DECAP | u8::from(macs.is_some()) | if d.ttl_dec { 2 } else { 0 };
            return v;
        }
        match &h.tunnel {
            None => v.rewrite = if h.macs.is_some() { 3 } else { 0 },
            Some(t) => {
                v.rewrite = u8::from(h.macs.is_some()) | if t.ttl_dec { 2 } else { 0 };
                v.encap_len = t.len;
                v.encap_kind = kind_code(t.kind);
                v.l2 = u8::from(t.l2);
                let n = (t.len as usize).min(t.hdr.len());
                if let (Some(d), Some(s)) = (v.hdr.get_mut(..n), t.hdr.get(..n)) {
                    d.copy_from_slice(s);
                }
            }
        }
        v
    }
}

/// `FP_DECAP` of fastpath.c: the `rewrite` bit of a fabric entry.
pub const FP_DECAP: u8 = 4;
/// `FP_PEER` of fastpath.c: `oif` is a veth whose peer (the container's
/// end) is in another namespace; redirect to the peer's ingress.
pub const FP_PEER: u8 = 8;

/// `FP_GRE`, `FP_MPLS_UDP`, `FP_VXLAN` of fastpath.c.
fn kind_code(k: TunnelKind) -> u8 {
    match k {
        TunnelKind::MplsOverGre => 1,
        TunnelKind::MplsOverUdp => 2,
        TunnelKind::Vxlan => 3,
    }
}

const _: () = {
    assert!(size_of::<FpKey>() == 20);
    assert!(size_of::<FpValue>() == 104);
};

// SAFETY: plain old data, no padding the kernel could leave uninitialised
// (explicit pad fields), valid for any bit pattern.
unsafe impl aya::Pod for FpKey {}
// SAFETY: as above.
unsafe impl aya::Pod for FpValue {}

impl FpKey {
    pub fn of(in_os: u32, h: &OffloadHint) -> FpKey {
        let src = h.key.src();
        let dst = h.key.dst();
        FpKey {
            ifindex: in_os,
            saddr: [src[0], src[1], src[2], src[3]],
            daddr: [dst[0], dst[1], dst[2], dst[3]],
            sport: h.key.sport().to_be_bytes(),
            dport: h.key.dport().to_be_bytes(),
            proto: h.key.proto,
            pad: [0; 3],
        }
    }
}

/// How long a removed entry stays in the map marked `dead`: far longer
/// than a frame spends between the packet tap and TC ingress (the same
/// softirq, microseconds).
const DEAD_GRACE: Duration = Duration::from_millis(100);

/// The TC + socket-filter fast path.
pub struct TcFastPath {
    bpf: Ebpf,
    flows: BpfHashMap<MapData, FpKey, FpValue>,
    /// Classifier (its program's name) attached per interface.
    links: HashMap<u32, (&'static str, SchedClassifierLinkId)>,
    /// Offload flows into and out of tunnels too (`--fast-path tc-encap`).
    encap: bool,
    /// Leave the fabric's tunnel GSO on (`--fast-path tc-encap-gso`).
    keep_tunnel_gso: bool,
    /// Fabric features turned off, turned on again on drop.
    restore: Vec<(String, Vec<String>)>,
    /// Entries marked `dead`, deleted once [`DEAD_GRACE`] has passed.
    dead: HashMap<FpKey, Instant>,
    /// Attach through netlink even where TCX links exist (tests).
    netlink: bool,
    /// The VM ports attached, by ifindex: whether frames for them can go
    /// straight to the container's end of their veth.
    vm_ports: HashMap<u32, VmPort>,
    /// `FP_COUNTS`, mapped: each entry's packets and bytes.
    counts: Counts,
    /// `FP_EPOCH`, mapped, and its value: entries carry the epoch they
    /// were installed in; a flush moves it on.
    epoch: Mapped,
    cur_epoch: u32,
    /// The slot of each entry in `flows` (live or dead) ...
    slots: HashMap<FpKey, u32>,
    /// ... the slots of entries replaced, free after [`DEAD_GRACE`] (a
    /// frame in flight may still count into them) ...
    retiring: Vec<(u32, Instant)>,
    /// ... and the slots no entry holds.
    free: Vec<u32>,
}

/// The entries `FP_FLOWS` holds (`max_entries` in fastpath.c).
const FP_MAX: u32 = 65536;
/// The slots of `FP_COUNTS`: an entry replaced keeps its slot for the
/// grace besides the new one's, so up to twice the entries.
const SLOTS: u32 = 2 * FP_MAX;
/// `struct fp_count`: packets, bytes (u64), dead, pad (u32).
const COUNT_SIZE: usize = 24;

/// A BPF array created with `BPF_F_MMAPABLE`, mapped into our memory: the
/// programs and we share its values without a system call. (aya 0.13
/// reads and writes arrays only through the map's system calls.)
struct Mapped {
    base: std::ptr::NonNull<u8>,
    len: usize,
    /// Keeps the map alive as long as the mapping.
    _map: MapData,
}

// SAFETY: the mapping is shared memory accessed only through atomics; the
// owner moves between threads with the datapath, never shares `&mut`.
unsafe impl Send for Mapped {}

impl Mapped {
    fn new(map: MapData, len: usize, what: &str) -> io::Result<Mapped> {
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a shared mapping of the array map's values (page-aligned
        // at offset 0 for BPF_F_MMAPABLE arrays), `len` bytes at most its
        // max_entries' worth; unmapped in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(bpf_err(
                &format!("mapping {what}"),
                io::Error::last_os_error(),
            ));
        }
        let base = std::ptr::NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other(format!("mapping {what}: null")))?;
        Ok(Mapped {
            base,
            len,
            _map: map,
        })
    }

    /// The `i`th 8-byte cell.
    fn u64_at(&self, i: usize) -> Option<&AtomicU64> {
        if (i + 1) * 8 > self.len {
            return None;
        }
        // SAFETY: in range of the mapping, which lives as long as `self`;
        // 8-byte aligned (page base).
        Some(unsafe { &*self.base.as_ptr().cast::<AtomicU64>().add(i) })
    }

    /// The `i`th 4-byte cell.
    fn u32_at(&self, i: usize) -> Option<&AtomicU32> {
        if (i + 1) * 4 > self.len {
            return None;
        }
        // SAFETY: as in `u64_at`, 4-byte aligned.
        Some(unsafe { &*self.base.as_ptr().cast::<AtomicU32>().add(i) })
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with its length; no reference
        // into it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// `FP_COUNTS`: `struct fp_count { u64 packets, bytes; u32 dead, pad; }`
/// per slot; the programs add to the counters atomically and read `dead`.
struct Counts(Mapped);

impl Counts {
    /// The slot's first 8-byte cell.
    fn at(slot: u32) -> usize {
        slot as usize * COUNT_SIZE / 8
    }

    fn read(&self, slot: u32) -> Option<(u64, u64)> {
        let i = Counts::at(slot);
        let (p, b) = (self.0.u64_at(i)?, self.0.u64_at(i + 1)?);
        Some((p.load(Ordering::Relaxed), b.load(Ordering::Relaxed)))
    }

    /// Zero counters, not dead: before the slot's entry goes in the map.
    fn reset(&self, slot: u32) {
        let i = Counts::at(slot);
        for c in [self.0.u64_at(i), self.0.u64_at(i + 1), self.0.u64_at(i + 2)]
            .into_iter()
            .flatten()
        {
            c.store(0, Ordering::Release);
        }
    }

    /// The slot's entry is dead to the socket filter from now on.
    fn set_dead(&self, slot: u32) {
        // `dead` is the low half of the third cell: its own 4-byte cell.
        if let Some(d) = self.0.u32_at(Counts::at(slot) * 2 + 4) {
            d.store(1, Ordering::Release);
        }
    }
}

/// A VM port, for [`FP_PEER`].
struct VmPort {
    name: String,
    /// Its veth peer is in another namespace (checked, not assumed).
    peer: bool,
    /// When `peer` was last found false: the container's end may be moved
    /// into its namespace after the port is attached, so a "no" is asked
    /// again, at most once per [`PEER_RECHECK`].
    checked: Option<Instant>,
}

const PEER_RECHECK: Duration = Duration::from_secs(1);

fn bpf_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl TcFastPath {
    /// Load the programs and create the flow map. Fails without CAP_BPF /
    /// CAP_NET_ADMIN, on kernels without TC BPF, or when the build had no
    /// clang.
    pub fn load() -> io::Result<TcFastPath> {
        if OBJECT.is_empty() {
            return Err(io::Error::other(
                "this vrouter was built without the BPF object (clang was missing at build time; apt-get install clang libbpf-dev and rebuild)",
            ));
        }
        // aya's TC attach picks TCX or netlink by the kernel version and
        // panics when it cannot read it: fail here instead, with a reason.
        aya::util::KernelVersion::current()
            .map_err(|e| bpf_err("reading the kernel version (TCX or netlink attach)", e))?;
        let mut bpf = Ebpf::load(OBJECT).map_err(|e| bpf_err("loading the BPF object", e))?;
        let map = bpf
            .take_map("FP_FLOWS")
            .ok_or_else(|| io::Error::other("the BPF object has no FP_FLOWS map"))?;
        let flows = BpfHashMap::try_from(map).map_err(|e| bpf_err("FP_FLOWS", e))?;
        let counts = match bpf.take_map("FP_COUNTS") {
            Some(aya::maps::Map::Array(m)) => {
                Counts(Mapped::new(m, SLOTS as usize * COUNT_SIZE, "FP_COUNTS")?)
            }
            _ => return Err(io::Error::other("the BPF object has no FP_COUNTS array")),
        };
        let epoch = match bpf.take_map("FP_EPOCH") {
            Some(aya::maps::Map::Array(m)) => Mapped::new(m, 4, "FP_EPOCH")?,
            _ => return Err(io::Error::other("the BPF object has no FP_EPOCH array")),
        };
        // (0 is what a zeroed entry would carry.)
        epoch
            .u32_at(0)
            .ok_or_else(|| io::Error::other("FP_EPOCH: empty mapping"))?
            .store(1, Ordering::Release);
        for name in ["fp_tc", "fp_tc_fab"] {
            let p: &mut SchedClassifier = bpf
                .program_mut(name)
                .ok_or_else(|| io::Error::other(format!("no {name} program")))?
                .try_into()
                .map_err(|e| bpf_err(name, e))?;
            p.load()
                .map_err(|e| bpf_err(&format!("loading {name}"), e))?;
        }
        for name in ["fp_sock", "fp_sock_fab"] {
            let p: &mut SocketFilter = bpf
                .program_mut(name)
                .ok_or_else(|| io::Error::other(format!("no {name} program")))?
                .try_into()
                .map_err(|e| bpf_err(name, e))?;
            p.load()
                .map_err(|e| bpf_err(&format!("loading {name}"), e))?;
        }
        Ok(TcFastPath {
            bpf,
            flows,
            links: HashMap::new(),
            encap: false,
            keep_tunnel_gso: false,
            restore: Vec::new(),
            dead: HashMap::new(),
            netlink: false,
            vm_ports: HashMap::new(),
            counts,
            epoch,
            cur_epoch: 1,
            slots: HashMap::new(),
            free: (0..SLOTS).rev().collect(),
            retiring: Vec::new(),
        })
    }

    /// Offload flows into and out of MPLSoUDP/MPLSoGRE/VXLAN tunnels too
    /// (off until set; the binary's `auto` sets it, see
    /// [`FastPath::fabric`]).
    pub fn set_encap(&mut self, on: bool) {
        self.encap = on;
    }

    /// Leave tunnel GSO on the fabric as it is: tunnel super-packets
    /// cross it whole, for receivers that decapsulate them in the kernel.
    pub fn set_keep_tunnel_gso(&mut self, on: bool) {
        self.keep_tunnel_gso = on;
    }

    /// Attach the classifier through netlink, as on kernels before 6.6,
    /// also where TCX exists (tests of that path).
    pub fn set_netlink_attach(&mut self, on: bool) {
        self.netlink = on;
    }

    /// Whether frames to `os` (a VM port) may go straight to the ingress of
    /// the container's end of its veth (`bpf_redirect_peer`): one softirq
    /// pass and one queue instead of two (the veth's transmit, its
    /// backlog). Not for the fabric, whose egress segments tunnel GSO.
    fn peer_of(&mut self, os: u32) -> bool {
        let Some(p) = self.vm_ports.get_mut(&os) else {
            return false;
        };
        if !p.peer && p.checked.is_none_or(|t| t.elapsed() >= PEER_RECHECK) {
            p.peer = crate::linux::sys::veth_peer_elsewhere(&p.name);
            p.checked = Some(Instant::now());
        }
        p.peer
    }

    /// The entry of `h` arriving on `in_os` as the kernel holds it, read
    /// through the map (a system call): diagnostics, tests, and the
    /// baseline of the counter read's benchmark.
    pub fn entry(&self, in_os: u32, h: &OffloadHint) -> Option<FpValue> {
        self.flows.get(&FpKey::of(in_os, h), 0).ok()
    }

    /// Delete the dead entries past their grace.
    fn purge_dead(&mut self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        self.dead.retain(|key, since| {
            if now.duration_since(*since) < DEAD_GRACE {
                return true;
            }
            gone.push(*key);
            false
        });
        self.delete(&gone);
        for key in &gone {
            self.free.extend(self.slots.remove(key));
        }
        let free = &mut self.free;
        self.retiring.retain(|(slot, since)| {
            if now.duration_since(*since) < DEAD_GRACE {
                return true;
            }
            free.push(*slot);
            false
        });
    }

    /// Delete `keys` from `FP_FLOWS`: in batches of one system call each
    /// (`BPF_MAP_DELETE_BATCH`, kernel 5.6), key by key where refused; keys
    /// no longer there are skipped.
    fn delete(&mut self, keys: &[FpKey]) {
        let fd = self.flows.map().fd().as_fd().as_raw_fd();
        let mut rest = keys;
        while !rest.is_empty() {
            match delete_batch(fd, rest) {
                // All of them.
                Ok(n) if n >= rest.len() => return,
                // Stopped at a key that is gone: skip it.
                Ok(n) => rest = rest.get(n + 1..).unwrap_or(&[]),
                Err(_) => {
                    for key in rest {
                        let _ = self.flows.remove(key);
                    }
                    return;
                }
            }
        }
    }

    fn tc_named(&mut self, name: &str) -> io::Result<&mut SchedClassifier> {
        self.bpf
            .program_mut(name)
            .ok_or_else(|| io::Error::other(format!("no {name} program")))?
            .try_into()
            .map_err(|e| bpf_err(name, e))
    }

    /// Attach the socket filter `prog` to the port's socket and the
    /// classifier `tc` to its TC ingress.
    fn attach_pair(&mut self, port: &dyn Port, prog: &str, tc: &'static str) -> io::Result<()> {
        let (Some(os), Some(fd)) = (port.os_index(), port.poll_fd()) else {
            return Err(io::Error::other("the port has no interface or socket"));
        };
        // The filter first: from then on frames the classifier redirects
        // never reach the socket as well.
        let sf: &mut SocketFilter = self
            .bpf
            .program_mut(prog)
            .ok_or_else(|| io::Error::other(format!("no {prog} program")))?
            .try_into()
            .map_err(|e| bpf_err(prog, e))?;
        // SAFETY: the port owns `fd` and outlives this call.
        let sock = unsafe { BorrowedFd::borrow_raw(fd) };
        let id = sf
            .attach(sock)
            .map_err(|e| bpf_err(&format!("attaching {prog}"), e))?;
        // The filter lives as long as the socket: taken out of the
        // program's links, it is never detached by number later (the
        // number may belong to another socket by then).
        let _ = sf.take_link(id);
        if let Some((old_prog, old)) = self.links.remove(&os) {
            let _ = self.tc_named(old_prog)?.detach(old);
        }
        let name = port.name().to_string();
        // Needed before kernel 6.6 (netlink attach); harmless after.
        let _ = aya::programs::tc::qdisc_add_clsact(&name);
        // A netlink-attached classifier (kernels before 6.6) outlives a
        // vrouter that died without detaching it; left in front of ours,
        // it would decide, with its own stale map, the frames our socket
        // filter hands to the kernel. TCX links die with their process.
        if aya::programs::tc::qdisc_detach_program(&name, TcAttachType::Ingress, tc).is_ok() {
            tracing::info!(port = %name, "removed a stale fast-path classifier");
        }
        let netlink = self.netlink;
        let prog_tc = self.tc_named(tc)?;
        let id = if netlink {
            prog_tc.attach_with_options(
                &name,
                TcAttachType::Ingress,
                aya::programs::tc::TcAttachOptions::Netlink(Default::default()),
            )
        } else {
            prog_tc.attach(&name, TcAttachType::Ingress)
        }
        .map_err(|e| bpf_err(&format!("attaching {tc}"), e))?;
        self.links.insert(os, (tc, id));
        Ok(())
    }
}

/// `BPF_MAP_DELETE_BATCH` of `keys`: how many were deleted before the
/// kernel stopped (all, or the index of a key that is not there). By hand:
/// aya 0.13 has no batch operations.
fn delete_batch(map_fd: std::os::fd::RawFd, keys: &[FpKey]) -> io::Result<usize> {
    const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
    // union bpf_attr's batch: { u64 in_batch, out_batch, keys, values;
    // u32 count, map_fd; u64 elem_flags, flags; }
    #[repr(C)]
    struct Batch {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    let mut attr = Batch {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: 0,
        count: u32::try_from(keys.len()).unwrap_or(u32::MAX),
        map_fd: u32::try_from(map_fd).map_err(|_| io::Error::other("bad map fd"))?,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: `attr` is the batch command's structure, sized as given;
    // `keys` outlives the call and holds `count` keys of the map's size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_DELETE_BATCH,
            &mut attr as *mut Batch,
            size_of::<Batch>() as libc::c_uint,
        )
    };
    let done = attr.count as usize;
    if r == 0 {
        return Ok(keys.len());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        return Ok(done);
    }
    Err(e)
}

impl Drop for TcFastPath {
    fn drop(&mut self) {
        for (dev, feats) in self.restore.drain(..) {
            let names: Vec<&str> = feats.iter().map(String::as_str).collect();
            match crate::linux::sys::features_set(&dev, &names, true) {
                Ok(_) => tracing::info!(dev, features = ?feats, "fabric features restored"),
                Err(e) => tracing::warn!(dev, error = %e, "restoring fabric features"),
            }
        }
    }
}

impl FastPath for TcFastPath {
    fn attach(&mut self, port: &dyn Port) -> io::Result<()> {
        self.attach_pair(port, "fp_sock", "fp_tc")?;
        if let Some(os) = port.os_index() {
            self.vm_ports.insert(
                os,
                VmPort {
                    name: port.name().to_string(),
                    peer: false,
                    checked: None,
                },
            );
        }
        Ok(())
    }

    /// Attach decapsulation to the fabric, and unless tunnel GSO is kept
    /// (`auto`, `tc-encap-gso`) have the kernel segment the fast path's
    /// tunnel super-packets on the fabric device itself (`tc-encap`), as
    /// the kernel VXLAN device gets on a device without these offloads. A
    /// receiver that does not decapsulate the flow in its kernel reads
    /// the super-packet with its AF_PACKET socket as plain TCP GSO and
    /// takes it in user space (`crate::vnet::Gso`'s tunnel case). The
    /// features turned off are turned on again on drop.
    fn fabric(&mut self, port: &dyn Port) -> io::Result<()> {
        if !self.encap {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "encapsulation offload off (--fast-path tc: same-host flows only)",
            ));
        }
        let off = if self.keep_tunnel_gso {
            Vec::new()
        } else {
            crate::linux::sys::features_set(
                port.name(),
                &[
                    "tx-udp_tnl-segmentation",
                    "tx-udp_tnl-csum-segmentation",
                    "tx-gre-segmentation",
                    "tx-gre-csum-segmentation",
                ],
                false,
            )
            .map_err(|e| bpf_err(&format!("turning tunnel GSO off on {}", port.name()), e))?
        };
        if !off.is_empty() && !self.restore.iter().any(|(d, _)| d == port.name()) {
            self.restore.push((port.name().to_string(), off));
        }
        // Decapsulation of the flows the core delivers to local VMs.
        self.attach_pair(port, "fp_sock_fab", "fp_tc_fab")
            .map_err(|e| bpf_err(&format!("decapsulation on {}", port.name()), e))
    }

    fn detach(&mut self, os_index: u32) {
        self.vm_ports.remove(&os_index);
        if let Some((prog, id)) = self.links.remove(&os_index) {
            if let Ok(tc) = self.tc_named(prog) {
                if let Err(e) = tc.detach(id) {
                    tracing::debug!(os_index, error = %e, "fp_tc detach (interface gone?)");
                }
            }
        }
    }

    fn insert(&mut self, in_os: u32, out_os: u32, h: &OffloadHint) -> io::Result<()> {
        let key = FpKey::of(in_os, h);
        let mut v = FpValue::of(out_os, h);
        if self.peer_of(out_os) {
            v.rewrite |= FP_PEER;
        }
        if self.free.is_empty() {
            // Full of dead entries, perhaps: delete those past their grace.
            self.purge_dead();
        }
        let Some(slot) = self.free.pop() else {
            return Err(io::Error::other(format!(
                "FP_FLOWS insert: all {SLOTS} counter slots taken"
            )));
        };
        // A fresh slot, zeroed before the map points at it: counted from 0
        // (the entry is new to the fold) and live.
        self.counts.reset(slot);
        v.slot = slot;
        v.epoch = self.cur_epoch;
        let mut r = self.flows.insert(key, v, 0);
        if r.is_err() && !self.dead.is_empty() {
            self.purge_dead();
            r = self.flows.insert(key, v, 0);
        }
        if let Err(e) = r {
            self.free.push(slot);
            return Err(bpf_err("FP_FLOWS insert", e));
        }
        // The key's previous entry, dead or live, is replaced at once (one
        // map update); its slot retires.
        self.dead.remove(&key);
        if let Some(old) = self.slots.insert(key, slot) {
            self.retiring.push((old, Instant::now()));
        }
        Ok(())
    }

    /// Marks the entry `dead` in its slot, a write to shared memory (see
    /// fastpath.c: a frame the socket filter kept from user space just
    /// before must still be forwarded by TC); [`FastPath::tick`] deletes
    /// it after `DEAD_GRACE`.
    fn remove(&mut self, in_os: u32, h: &OffloadHint) {
        let key = FpKey::of(in_os, h);
        let Some(&slot) = self.slots.get(&key) else {
            return;
        };
        if let std::collections::hash_map::Entry::Vacant(e) = self.dead.entry(key) {
            self.counts.set_dead(slot);
            e.insert(Instant::now());
        }
    }

    /// One write: the epoch moves on, and every entry of the old one is
    /// dead to the socket filter at once (TC still forwards what the
    /// filter kept); they are deleted after the grace like any dead entry.
    fn remove_all(&mut self, entries: &mut dyn Iterator<Item = (u32, &OffloadHint)>) {
        self.cur_epoch = self.cur_epoch.wrapping_add(1).max(1);
        let Some(e) = self.epoch.u32_at(0) else {
            for (in_os, h) in entries {
                self.remove(in_os, h);
            }
            return;
        };
        e.store(self.cur_epoch, Ordering::Release);
        let now = Instant::now();
        for key in self.slots.keys() {
            self.dead.entry(*key).or_insert(now);
        }
    }

    fn tick(&mut self) {
        self.purge_dead();
    }

    /// A read of shared memory, no system call: the fold asks for every
    /// entry once a second.
    fn counters(&self, in_os: u32, h: &OffloadHint) -> Option<(u64, u64)> {
        self.counts.read(*self.slots.get(&FpKey::of(in_os, h))?)
    }
}
