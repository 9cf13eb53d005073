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
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::tc::{SchedClassifierLinkId, TcAttachType};
use aya::programs::{SchedClassifier, SocketFilter};
use aya::Ebpf;
use dp_core::{OffloadHint, TunnelKind};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// ([`FP_DECAP`]): a fabric entry (`fp_tc_fab`): `hdr[0..4]` the
    /// outer IPv4 destination, `hdr[4..8]` the label or VNI (big-endian),
    /// `encap_len` the outer bytes to strip.
    pub rewrite: u8,
    pub gen: u8,
    /// 0: no tunnel; else the bytes of `hdr` to push.
    pub encap_len: u8,
    /// `FP_GRE` 1, `FP_MPLS_UDP` 2, `FP_VXLAN` 3.
    pub encap_kind: u8,
    pub l2: u8,
    /// Being removed: the socket filter treats it as a miss, TC still
    /// forwards a frame the filter kept from the socket.
    pub dead: u8,
    /// The entry's counters in `FP_COUNTS`.
    pub slot: u32,
    pub pad: u32,
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
            dead: 0,
            slot: 0,
            pad: 0,
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
    /// The slot of each entry in `flows` (live or dead) ...
    slots: HashMap<FpKey, u32>,
    /// ... and the slots no entry holds.
    free: Vec<u32>,
}

/// The entries `FP_FLOWS` and `FP_COUNTS` hold (`max_entries` in
/// fastpath.c).
const FP_MAX: u32 = 65536;

/// `FP_COUNTS` mapped into our memory (`BPF_F_MMAPABLE`): `struct
/// fp_count { u64 packets, bytes; }` per slot, added to atomically by the
/// programs; read and zeroed here without a system call.
struct Counts {
    base: std::ptr::NonNull<AtomicU64>,
    slots: u32,
    /// Keeps the map alive as long as the mapping (and says whose it is).
    _map: MapData,
}

// SAFETY: the mapping is shared memory accessed only through atomics; the
// owner moves between threads with the datapath, never shares `&mut`.
unsafe impl Send for Counts {}

impl Counts {
    fn new(map: MapData, slots: u32) -> io::Result<Counts> {
        let len = slots as usize * 16;
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a shared mapping of the array map's values (page-aligned
        // at offset 0 for BPF_F_MMAPABLE arrays), `len` bytes as sized by
        // its max_entries; unmapped in Drop.
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
            return Err(bpf_err("mapping FP_COUNTS", io::Error::last_os_error()));
        }
        let base = std::ptr::NonNull::new(p.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mapping FP_COUNTS: null"))?;
        Ok(Counts {
            base,
            slots,
            _map: map,
        })
    }

    /// The packets and bytes cells of `slot`.
    fn cells(&self, slot: u32) -> Option<(&AtomicU64, &AtomicU64)> {
        if slot >= self.slots {
            return None;
        }
        let i = slot as usize * 2;
        // SAFETY: `slot` is in range, so cells `i` and `i + 1` lie in the
        // mapping, which lives as long as `self`; 8-byte aligned (page
        // base, 16-byte values).
        unsafe { Some((&*self.base.as_ptr().add(i), &*self.base.as_ptr().add(i + 1))) }
    }

    fn read(&self, slot: u32) -> Option<(u64, u64)> {
        let (p, b) = self.cells(slot)?;
        Some((p.load(Ordering::Relaxed), b.load(Ordering::Relaxed)))
    }

    fn zero(&self, slot: u32) {
        if let Some((p, b)) = self.cells(slot) {
            p.store(0, Ordering::Relaxed);
            b.store(0, Ordering::Relaxed);
        }
    }
}

impl Drop for Counts {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with its length; no reference
        // into it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.slots as usize * 16);
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
            Some(aya::maps::Map::Array(m)) => Counts::new(m, FP_MAX)?,
            _ => return Err(io::Error::other("the BPF object has no FP_COUNTS array")),
        };
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
            slots: HashMap::new(),
            free: (0..FP_MAX).rev().collect(),
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
        let (flows, slots, free) = (&mut self.flows, &mut self.slots, &mut self.free);
        self.dead.retain(|key, since| {
            if now.duration_since(*since) < DEAD_GRACE {
                return true;
            }
            let _ = flows.remove(key);
            free.extend(slots.remove(key));
            false
        });
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
        // A live entry replaces a dead one of the same key (and its slot).
        self.dead.remove(&key);
        let mut v = FpValue::of(out_os, h);
        if self.peer_of(out_os) {
            v.rewrite |= FP_PEER;
        }
        let held = self.slots.get(&key).copied();
        if held.is_none() && self.free.is_empty() {
            // Full of dead entries, perhaps: delete those past their grace.
            self.purge_dead();
        }
        let Some(slot) = held.or_else(|| self.free.pop()) else {
            return Err(io::Error::other("FP_FLOWS insert: all 65536 entries taken"));
        };
        // Counted from 0, as the entry is new to the fold.
        self.counts.zero(slot);
        v.slot = slot;
        let mut r = self.flows.insert(key, v, 0);
        if r.is_err() && !self.dead.is_empty() {
            self.purge_dead();
            r = self.flows.insert(key, v, 0);
        }
        match r {
            Ok(()) => {
                self.slots.insert(key, slot);
                Ok(())
            }
            Err(e) => {
                if held.is_none() {
                    self.free.push(slot);
                }
                Err(bpf_err("FP_FLOWS insert", e))
            }
        }
    }

    /// Marks the entry `dead` (see fastpath.c: a frame the socket filter
    /// kept from user space just before must still be forwarded by TC);
    /// [`FastPath::tick`] deletes it after [`DEAD_GRACE`].
    fn remove(&mut self, in_os: u32, h: &OffloadHint) {
        let key = FpKey::of(in_os, h);
        match self.flows.get(&key, 0) {
            Ok(mut v) if v.dead == 0 => {
                v.dead = 1;
                if self.flows.insert(key, v, 0).is_ok() {
                    self.dead.insert(key, Instant::now());
                } else {
                    let _ = self.flows.remove(&key);
                    self.free.extend(self.slots.remove(&key));
                }
            }
            Ok(_) => {}
            // Gone from the map already: only its slot is left to free.
            Err(_) => {
                if !self.dead.contains_key(&key) {
                    self.free.extend(self.slots.remove(&key));
                }
            }
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
