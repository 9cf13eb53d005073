//! Offload hints: flows the core just forwarded with an action a host's
//! in-kernel fast path can reproduce exactly (Linux `vrouter --fast-path
//! tc`). The core only reports them; the host decides what to install,
//! keeps it in step with configuration and folds the fast path's counters
//! back into the flow entries ([`Router::fold_offloaded`]).
//!
//! A hint is recorded only for: an IPv4 TCP or UDP packet without IP
//! options that is not a fragment, from a virtual vif to another local
//! virtual vif, through a flow entry whose action is plain FORWARD (no
//! NAT, no VRF translation), routed (MAC rewrite + TTL decrement) or
//! bridged (unchanged), that passed the MTU check. Not for TCP SYN, FIN or
//! RST (the core tracks TCP state), and not for a UDP flow's first
//! forwarded datagram (a flow of one datagram each way, as DNS makes
//! them, would cost an entry installed and removed for nothing).
//!
//! Or, for the same packets and flows, from a virtual vif into a tunnel
//! next hop out of a physical (fabric) vif: MPLSoUDP, MPLSoGRE or VXLAN.
//! The hint then carries the outer headers the core wrote
//! ([`OffloadTunnel`]), so the fast path pushes the same bytes: only the
//! outer IP total length, identification and checksum (and the UDP
//! length) change per packet.
//!
//! Or, the other way, for the same packets and flows decapsulated from a
//! physical (fabric) vif and delivered to a local virtual vif, when the
//! outer headers had the plain layout (no VLAN, no IP options, one MPLS
//! label, GRE without options): the hint then says which outer headers
//! the decision holds for and what replaces them ([`OffloadDecap`]).

use crate::flow::table::{FlowKey, VR_FLOW_ACTION_FORWARD, VR_FLOW_FLAG_VRFT};
use crate::nexthop::AF_INET;
use crate::{Prefix, Router};

/// Bound on hints kept between two [`Router::take_offload_hints`] calls;
/// more are dropped (the flow's next packet reports it again).
pub const OFFLOAD_HINTS_MAX: usize = 256;

/// One flow a host may offload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OffloadHint {
    pub flow: u32,
    pub gen: u8,
    pub in_vif: u16,
    pub out_vif: u16,
    /// The flow entry's key (IPv4 TCP or UDP; ports in host order through
    /// [`FlowKey::sport`]/[`FlowKey::dport`]).
    pub key: FlowKey,
    /// The frame's destination + source MACs as received: the decision
    /// holds only for frames with this Ethernet header.
    pub in_macs: [u8; 12],
    /// The output vif's MTU (0: unknown): larger packets take the core's
    /// path (ICMP too big, fragmentation).
    pub mtu: u16,
    /// Routed: the new destination + source MACs, and TTL decremented.
    /// Bridged: `None`, the frame leaves unchanged. With `tunnel`: the
    /// inner Ethernet header's new MACs (routed into VXLAN), if any.
    pub macs: Option<[u8; 12]>,
    /// Encapsulated to a remote host (`mtu` is then the fabric's).
    pub tunnel: Option<OffloadTunnel>,
    /// Decapsulated from the fabric (`in_vif` is the physical vif; the
    /// key and `in_macs` are the inner packet's).
    pub decap: Option<OffloadDecap>,
}

/// The outer headers a decapsulated flow arrives with, and what the core
/// makes of the inner packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadDecap {
    pub kind: crate::TunnelKind,
    /// Outer IPv4 destination (one of this host's receive addresses).
    pub dst: [u8; 4],
    /// The MPLS label or the VXLAN VNI.
    pub label: u32,
    /// Bytes from the outer Ethernet header to the inner packet (L3) or
    /// the inner Ethernet header (L2): 42 MPLSoGRE, 46 MPLSoUDP, 50 VXLAN.
    pub outer_len: u16,
    /// The inner packet is an Ethernet frame (VXLAN, L2 MPLS).
    pub l2: bool,
    /// L3: the Ethernet header the core puts in front of the inner IP
    /// packet (the interface next hop's, ethertype IPv4).
    pub eth: Option<[u8; 14]>,
    /// L2 routed: the inner TTL is decremented (and `macs` written).
    pub ttl_dec: bool,
}

impl OffloadDecap {
    /// `outer_len` for `kind` with the plain layout, the only one a fast
    /// path matches.
    pub const fn plain_len(kind: crate::TunnelKind) -> u16 {
        match kind {
            crate::TunnelKind::MplsOverGre => 14 + 20 + 4 + 4,
            crate::TunnelKind::MplsOverUdp => 14 + 20 + 8 + 4,
            crate::TunnelKind::Vxlan => 14 + 20 + 8 + 8,
        }
    }
}

/// The outer headers of an encapsulated flow, as the core writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadTunnel {
    pub kind: crate::TunnelKind,
    /// Outer Ethernet + IPv4 + UDP/GRE + MPLS/VXLAN, written for an empty
    /// payload with IP identification 0 (`hdr[..len]`).
    pub hdr: [u8; 50],
    pub len: u8,
    /// The inner frame keeps its Ethernet header (VXLAN); else the inner
    /// IP packet follows the label (L3 MPLS).
    pub l2: bool,
    /// The inner IPv4 TTL is decremented (routed).
    pub ttl_dec: bool,
}

/// What a configuration request may change in the decisions the core took
/// before it, and so which offloaded copies of them must go (see
/// [`Router::offload_depends_on`]). Worked out before the request is
/// applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    /// Nothing a decision taken before can have used: a vif, next hop,
    /// MPLS label or VXLAN VNI added at a free index or written again
    /// unchanged, a VRF added, or a next hop no lookup leads to
    /// ([`Router::nh_in_use`]) deleted.
    Unused,
    /// The route of `prefix` in VRF `vrf` was added, replaced or deleted.
    Route { vrf: u16, prefix: Prefix },
    /// Vif `idx` was changed or deleted.
    Vif(u16),
    /// An MPLS label (`vxlan` false) or a VXLAN VNI was changed or
    /// deleted.
    Label { vxlan: bool, label: u32 },
    /// Anything may have changed.
    Any,
}

/// A fixed ring of hints (no allocation per packet).
pub(crate) struct OffloadHints {
    pub(crate) enabled: bool,
    len: usize,
    /// The configuration generation when the first pending hint was
    /// recorded: a change since makes every pending hint stale.
    cfg_gen: u32,
    buf: [OffloadHint; OFFLOAD_HINTS_MAX],
}

impl OffloadHints {
    pub(crate) const fn new() -> Self {
        OffloadHints {
            enabled: false,
            len: 0,
            cfg_gen: 0,
            buf: [OffloadHint {
                flow: 0,
                gen: 0,
                in_vif: 0,
                out_vif: 0,
                key: FlowKey::EMPTY,
                in_macs: [0; 12],
                mtu: 0,
                macs: None,
                tunnel: None,
                decap: None,
            }; OFFLOAD_HINTS_MAX],
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, h: OffloadHint, cfg_gen: u32) {
        if self.len == 0 {
            self.cfg_gen = cfg_gen;
        }
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = h;
            self.len += 1;
        }
    }
}

impl Router {
    /// Note flow `flow` as offloadable if the packet and the flow qualify
    /// (see the module docs); called after the core decided to transmit.
    pub(crate) fn note_offload(
        &mut self,
        info: &packet::parse::PacketInfo,
        in_vif: u16,
        out_vif: u16,
        flow: u32,
        macs: Option<[u8; 12]>,
    ) {
        use crate::VifType::Virtual;
        if in_vif == out_vif || !self.vif_types_are(in_vif, out_vif, Virtual, Virtual) {
            return;
        }
        self.note_offload_to(info, in_vif, out_vif, flow, macs, None, None);
    }

    /// Note flow `flow`, just encapsulated by the core with `tunnel` out of
    /// the physical vif `out_vif`, as offloadable (see the module docs).
    pub(crate) fn note_offload_encap(
        &mut self,
        info: &packet::parse::PacketInfo,
        in_vif: u16,
        out_vif: u16,
        flow: u32,
        macs: Option<[u8; 12]>,
        tunnel: OffloadTunnel,
    ) {
        use crate::VifType::{Physical, Virtual};
        if !self.vif_types_are(in_vif, out_vif, Virtual, Physical) {
            return;
        }
        self.note_offload_to(info, in_vif, out_vif, flow, macs, Some(tunnel), None);
    }

    /// Note flow `flow`, just decapsulated by the core from the physical
    /// vif `in_vif` and delivered to the virtual vif `out_vif`, as
    /// offloadable (see the module docs). `info` is the inner packet's,
    /// as delivered (Ethernet header at 0).
    pub(crate) fn note_offload_decap(
        &mut self,
        info: &packet::parse::PacketInfo,
        in_vif: u16,
        out_vif: u16,
        flow: u32,
        macs: Option<[u8; 12]>,
        decap: OffloadDecap,
    ) {
        use crate::VifType::{Physical, Virtual};
        if !self.hints.enabled
            || !self.vif_types_are(in_vif, out_vif, Physical, Virtual)
            || decap.outer_len != OffloadDecap::plain_len(decap.kind)
            || decap.l2 == decap.eth.is_some()
        {
            return;
        }
        self.note_offload_to(info, in_vif, out_vif, flow, macs, None, Some(decap));
    }

    /// Whether vifs `in_vif` and `out_vif` exist with these types.
    fn vif_types_are(
        &self,
        in_vif: u16,
        out_vif: u16,
        in_ty: crate::VifType,
        out_ty: crate::VifType,
    ) -> bool {
        let ty = |v: u16| self.vifs.get(v).map(|v| v.cfg.vif_type);
        ty(in_vif) == Some(in_ty) && ty(out_vif) == Some(out_ty)
    }

    #[allow(clippy::too_many_arguments)]
    fn note_offload_to(
        &mut self,
        info: &packet::parse::PacketInfo,
        in_vif: u16,
        out_vif: u16,
        flow: u32,
        macs: Option<[u8; 12]>,
        tunnel: Option<OffloadTunnel>,
        decap: Option<OffloadDecap>,
    ) {
        use packet::parse::Family;
        if info.family != Family::Ipv4
            || !matches!(info.proto, 6 | 17)
            || info.frag.is_fragment
            || info.l3_offset != 14
            || info.l4_offset != 34
        {
            return;
        }
        // SYN, FIN and RST stay with the core (the fast path passes them
        // up): a TCP flow is offloaded from its first other packet, so
        // half-open connections (a SYN flood) install nothing.
        if info.proto == 6 && info.tcp_flags & 0x07 != 0 {
            return;
        }
        let Some(fe) = self.flows.get_valid(flow) else {
            return;
        };
        // A UDP flow from its second forwarded packet (this one counted):
        // a flow of one datagram each way (a DNS query and its answer, the
        // commonest UDP flows of a container host) installs nothing.
        if info.proto == 17 && fe.packets() < 2 {
            return;
        }
        let mut in_macs = [0u8; 12];
        in_macs[..6].copy_from_slice(&info.dst_mac);
        in_macs[6..].copy_from_slice(&info.src_mac);
        let h = OffloadHint {
            flow,
            gen: fe.gen_id,
            in_vif,
            out_vif,
            key: *fe.key(),
            in_macs,
            mtu: self.vifs.get(out_vif).map_or(0, |v| v.cfg.mtu),
            macs,
            tunnel,
            decap,
        };
        if self.offload_still_valid(&h) {
            let cfg_gen = self.rcache.generation();
            self.hints.push(h, cfg_gen);
        }
    }

    /// Record [`OffloadHint`]s from now on (off by default: the cost is a
    /// few compares per forwarded packet).
    pub fn set_offload_hints(&mut self, on: bool) {
        self.hints.enabled = on;
        self.hints.len = 0;
    }

    /// Hand the hints recorded since the last call to `f`, oldest first.
    ///
    /// Only hints still exact now: a hint recorded before its flow changed
    /// (a frame released from hold, then a DROP before the host took it),
    /// or before any configuration change, is not handed out.
    pub fn take_offload_hints(&mut self, mut f: impl FnMut(&OffloadHint)) {
        let n = self.hints.len;
        self.hints.len = 0;
        if self.hints.cfg_gen != self.rcache.generation() {
            return;
        }
        for h in self.hints.buf.iter().take(n) {
            if self.offload_still_valid(h) {
                f(h);
            }
        }
    }

    /// Whether flow `flow` still has the key, generation and plain
    /// FORWARD action of `h`, i.e. an offloaded copy of it is still exact.
    pub fn offload_still_valid(&self, h: &OffloadHint) -> bool {
        let Some(fe) = self.flows.get_valid(h.flow) else {
            return false;
        };
        fe.is_decided()
            && fe.gen_id == h.gen
            && fe.action == VR_FLOW_ACTION_FORWARD
            && fe.flags & VR_FLOW_FLAG_VRFT == 0
            && *fe.key() == h.key
    }

    /// Whether `change` may change what the core decided for the flow of
    /// `h`, so that an offloaded copy must go.
    ///
    /// - A route: see [`Router::offload_depends_on_route`].
    /// - A vif: the flow comes in or goes out through it (a tunnelled flow
    ///   through the fabric vif). A decision reads the configuration of
    ///   these two vifs only; the source vif's next hop id is a number in
    ///   the flow key, which the change leaves as it is.
    /// - A label or VNI: the flow was decapsulated with it (the core looks
    ///   labels and VNIs up for packets from the fabric only; a tunnel's
    ///   label comes from the route).
    pub fn offload_depends_on(&self, h: &OffloadHint, change: &ConfigChange) -> bool {
        match *change {
            ConfigChange::Unused => false,
            ConfigChange::Route { vrf, ref prefix } => {
                self.offload_depends_on_route(h, vrf, prefix)
            }
            ConfigChange::Vif(idx) => h.in_vif == idx || h.out_vif == idx,
            ConfigChange::Label { vxlan, label } => h
                .decap
                .is_some_and(|d| d.label == label && (d.kind == crate::TunnelKind::Vxlan) == vxlan),
            ConfigChange::Any => true,
        }
    }

    /// Whether adding, replacing or deleting the route of `prefix` in VRF
    /// `vrf` may change what the core decided for the flow of `h`, so that
    /// an offloaded copy must go (a host that copies decisions calls this
    /// instead of dropping every copy on each route change: in a cluster
    /// routes come and go with every container anywhere).
    ///
    /// The core's lookups for an offloaded flow are all keyed by the
    /// packet: the inet routes of its source (the flow key's source next
    /// hop) and destination, the bridge route of its destination MAC (the
    /// gateway MAC's sends it to the inet lookup), and for a tunnel the
    /// fabric's own VRF (the outer destination's receive route). A route
    /// that covers neither address and names no MAC of the frame cannot
    /// change them. VRFs are not told apart except the fabric's: a flow
    /// with the same addresses in another VRF goes too, and is only set up
    /// again. Everything else a decision copies (vifs, next hops, labels)
    /// changes through other requests ([`Router::offload_depends_on`]).
    pub fn offload_depends_on_route(&self, h: &OffloadHint, vrf: u16, prefix: &Prefix) -> bool {
        let fabric = if h.decap.is_some() {
            Some(h.in_vif)
        } else if h.tunnel.is_some() {
            Some(h.out_vif)
        } else {
            None
        };
        if let Some(f) = fabric {
            match self.vifs.get(f) {
                Some(v) if v.cfg.vrf != vrf => {}
                _ => return true,
            }
        }
        let v4 = h.key.family == AF_INET;
        match *prefix {
            Prefix::V4(a, plen) => {
                !v4 || covers(a, plen, h.key.src_v4()) || covers(a, plen, h.key.dst_v4())
            }
            Prefix::V6(..) => !v4,
            Prefix::Mac(m) => {
                let dst = h.in_macs.first_chunk::<6>().copied().unwrap_or_default();
                // Multicast destinations are looked up as broadcast.
                (m == [0xff; 6] && dst[0] & 1 != 0)
                    || h.in_macs.chunks(6).any(|c| c == m)
                    || h.macs.is_some_and(|x| x.chunks(6).any(|c| c == m))
            }
        }
    }

    /// Add what the fast path forwarded for the flow of `h` to its entry
    /// (the agent ages flows by these counters) and to the vifs' counters.
    /// False, and nothing counted, if the offload is no longer exact.
    pub fn fold_offloaded(&mut self, h: &OffloadHint, packets: u64, bytes: u64) -> bool {
        if !self.offload_still_valid(h) {
            return false;
        }
        if packets == 0 {
            return true;
        }
        let now = self.now;
        if let Some(fe) = self.flows.get_valid_mut(h.flow) {
            fe.write_begin();
            fe.add_totals(packets, bytes);
            fe.last_seen = now;
            fe.write_end();
        }
        if let Some(v) = self.vifs.get_mut(h.in_vif) {
            v.stats.ipackets += packets;
            v.stats.ibytes += bytes;
        }
        if let Some(v) = self.vifs.get_mut(h.out_vif) {
            v.stats.opackets += packets;
            v.stats.obytes += bytes;
        }
        true
    }
}

/// Whether the IPv4 prefix `net`/`plen` covers `addr`.
fn covers(net: [u8; 4], plen: u8, addr: [u8; 4]) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(plen.min(32)))
        .unwrap_or(0);
    (u32::from_be_bytes(net) ^ u32::from_be_bytes(addr)) & mask == 0
}
