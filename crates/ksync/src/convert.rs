//! Mapping between `vr.sandesh` objects and dp-core's configuration types,
//! both ways.
//!
//! # Byte order of addresses and ports
//!
//! Upstream keeps IPv4 addresses in network byte order inside a host `u32`
//! (`inet_addr()`), IPv6 halves as the first/last 8 address bytes inside
//! a host `u64`, and flow ports in network order inside a host `u16`;
//! Sandesh then writes those integers big-endian. Every upstream peer runs
//! on little-endian x86, so on the wire an address field holds the address
//! bytes reversed. We read and write them exactly as such a peer does,
//! whatever our own byte order: an address is `value.to_le_bytes()`, a
//! port is `u16::from_be_bytes(value.to_le_bytes())`. List fields
//! (`rtr_prefix`, `vifr_mac`, `nhr_encap`) are plain bytes in order.
//!
//! # What dp-core does not keep
//!
//! Fields the forwarding core has no use for are not stored; a GET or DUMP
//! answers them with upstream's neutral values (zero, `-1` for "none"
//! indices). `vifr_if_guid` (the Windows NIC GUID) and `vifr_transport`
//! are kept beside the core in [`VifExtra`] so they are echoed back.

use alloc::vec;
use alloc::vec::Vec;

use dp_core::drop::DropReason;
use dp_core::flow::table::{FlowKey, VR_FLOW_FLAG_ACTIVE};
use dp_core::nexthop::{nh_type, AF_BRIDGE, AF_INET, AF_INET6};
use dp_core::route::{be_flags, rt_flags};
use dp_core::vif::heapless_name::Name;
use dp_core::{
    BridgeEntry, Component, ConfigError, DropStats, Nexthop, NhFlags, NhKind, Prefix, RouteData,
    SubIf, TunnelKind, Vif, VifConfig, VifFlags, VifType,
};
use sandesh::{SandeshOp, VrDropStatsReq, VrFlowReq, VrInterfaceReq, VrNexthopReq, VrRouteReq};

/// `VR_BE_INVALID_INDEX` as the `i32` of `rtr_index`.
pub const VR_BE_INVALID_INDEX: i32 = -1;
/// The label of a route without one (upstream stores `0xFFFFFF`).
pub const NO_LABEL: u32 = 0x00ff_ffff;
/// `vifr_mcast_vrf` of a vif without one (upstream's 16-bit "invalid").
pub const NO_MCAST_VRF: i32 = 65535;
/// `VR_FLOW_FLAG_RFLOW_VALID` in `fr_flags`.
pub const VR_RFLOW_VALID: u16 = dp_core::flow::table::VR_RFLOW_VALID;
/// `VR_FLOW_FLAG_VRFT` in `fr_flags`.
pub const VR_FLOW_FLAG_VRFT: u16 = dp_core::flow::table::VR_FLOW_FLAG_VRFT;

/// IPv4 address of an upstream `u32` field (see the module docs).
pub fn ipv4_from_wire(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// The upstream `u32` field value of an IPv4 address.
pub fn ipv4_to_wire(a: [u8; 4]) -> u32 {
    u32::from_le_bytes(a)
}

/// IPv6 address of upstream's `(upper, lower)` `u64` halves.
pub fn ipv6_from_wire(upper: u64, lower: u64) -> [u8; 16] {
    let mut a = [0u8; 16];
    let (hi, lo) = a.split_at_mut(8);
    hi.copy_from_slice(&upper.to_le_bytes());
    lo.copy_from_slice(&lower.to_le_bytes());
    a
}

/// Upstream's `(upper, lower)` `u64` halves of an IPv6 address.
pub fn ipv6_to_wire(a: [u8; 16]) -> (u64, u64) {
    let v = u128::from_be_bytes(a);
    let hi = ((v >> 64) as u64).to_be_bytes();
    let lo = (v as u64).to_be_bytes();
    (u64::from_le_bytes(hi), u64::from_le_bytes(lo))
}

/// Host-order port of an upstream flow port field.
pub fn port_from_wire(v: u16) -> u16 {
    u16::from_be_bytes(v.to_le_bytes())
}

/// Upstream flow port field of a host-order port.
pub fn port_to_wire(p: u16) -> u16 {
    u16::from_le_bytes(p.to_be_bytes())
}

/// A MAC from a `list<byte>`: empty means all zero.
fn mac_or_zero(b: &[u8], what: &'static str) -> Result<[u8; 6], ConfigError> {
    if b.is_empty() {
        return Ok([0; 6]);
    }
    b.try_into().map_err(|_| ConfigError::Invalid(what))
}

/// A VRF id; upstream's `-1` ("no VRF") and anything beyond 16 bits become
/// `u16::MAX`, which no table holds, so lookups in it miss.
fn vrf_or_none(v: i32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

fn vrf_to_wire(v: u16) -> i32 {
    if v == u16::MAX {
        -1
    } else {
        i32::from(v)
    }
}

// ---- interfaces -----------------------------------------------------------

/// What a vif request carries that dp-core does not keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VifExtra {
    /// `vifr_if_guid`: the Windows NIC GUID (16 bytes) of the port.
    pub if_guid: Vec<u8>,
    /// `vifr_transport` (`VIF_TRANSPORT_*`).
    pub transport: u8,
}

/// `vr_interface_req` ADD -> vif configuration.
pub fn vif_from_req(r: &VrInterfaceReq) -> Result<(VifConfig, VifExtra), ConfigError> {
    let idx = u16::try_from(r.vifr_idx).map_err(|_| ConfigError::OutOfRange("vif"))?;
    let vif_type = u16::try_from(r.vifr_type)
        .map_err(|_| ConfigError::Invalid("vif type"))
        .and_then(VifType::try_from)?;
    let mut cfg = VifConfig::new(idx, vif_type);
    cfg.name = Name::new(&r.vifr_name).ok_or(ConfigError::Invalid("vif name (too long)"))?;
    cfg.os_idx = r.vifr_os_idx as u32;
    cfg.mac = mac_or_zero(&r.vifr_mac, "vif MAC")?;
    cfg.ip = ipv4_from_wire(r.vifr_ip);
    cfg.ip6 = ipv6_from_wire(r.vifr_ip6_u, r.vifr_ip6_l);
    cfg.vrf = vrf_or_none(r.vifr_vrf);
    // 0 (or less) leaves the MTU to the host, which reads the interface's
    // when it opens the port; until it does, the core checks no MTU.
    cfg.mtu = u16::try_from(r.vifr_mtu.max(0)).unwrap_or(u16::MAX);
    cfg.flags = VifFlags::from_bits_retain(r.vifr_flags as u32);
    cfg.nh_id = u32::try_from(r.vifr_nh_id).unwrap_or(0);
    cfg.cross_connect = r
        .vifr_cross_connect_idx
        .first()
        .and_then(|x| u16::try_from(*x).ok());
    if vif_type == VifType::VirtualVlan {
        // Upstream `vlan_drv_add` reads the ids as unsigned 16-bit and
        // refuses parents beyond the table: -EINVAL either way.
        cfg.sub = Some(SubIf {
            parent: u16::try_from(r.vifr_parent_vif_idx)
                .map_err(|_| ConfigError::Invalid("sub-interface parent"))?,
            vlan: r.vifr_vlan_id as u16,
            ovlan: r.vifr_ovlan_id as u16,
        });
    }
    let extra = VifExtra {
        if_guid: r.vifr_if_guid.clone(),
        transport: r.vifr_transport,
    };
    Ok((cfg, extra))
}

/// A counter in a signed wire field: saturated, not wrapped.
pub(crate) fn sat_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// A vif and its counters -> `vr_interface_req` (GET/DUMP answer).
pub fn vif_to_req(v: &Vif, extra: Option<&VifExtra>, op: SandeshOp) -> VrInterfaceReq {
    let c = &v.cfg;
    let s = &v.stats;
    let (ip6_u, ip6_l) = ipv6_to_wire(c.ip6);
    VrInterfaceReq {
        h_op: op,
        vifr_type: i32::from(c.vif_type as u16),
        vifr_flags: c.flags.bits() as i32,
        vifr_vrf: vrf_to_wire(c.vrf),
        vifr_idx: i32::from(c.idx),
        vifr_os_idx: c.os_idx as i32,
        vifr_mtu: i32::from(c.mtu),
        vifr_name: c.name.as_str().into(),
        vifr_ibytes: sat_i64(s.ibytes),
        vifr_ipackets: sat_i64(s.ipackets),
        vifr_ierrors: sat_i64(s.ierrors),
        vifr_obytes: sat_i64(s.obytes),
        vifr_opackets: sat_i64(s.opackets),
        vifr_oerrors: sat_i64(s.oerrors),
        vifr_ref_cnt: 1,
        vifr_mac: c.mac.to_vec(),
        vifr_ip: ipv4_to_wire(c.ip),
        vifr_ip6_u: ip6_u,
        vifr_ip6_l: ip6_l,
        vifr_speed: -1,
        vifr_duplex: -1,
        vifr_parent_vif_idx: c.sub.map_or(-1, |s| i32::from(s.parent)),
        vifr_vlan_id: c.sub.map_or(0, |s| s.vlan as i16),
        vifr_ovlan_id: c.sub.map_or(0, |s| s.ovlan as i16),
        vifr_nh_id: c.nh_id as i32,
        vifr_cross_connect_idx: c.cross_connect.map(i32::from).into_iter().collect(),
        vifr_transport: extra.map_or(0, |e| e.transport),
        vifr_dpackets: s.drops,
        vifr_mcast_vrf: NO_MCAST_VRF,
        vifr_if_guid: extra.map(|e| e.if_guid.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

// ---- next hops ------------------------------------------------------------

/// 14 bytes of L2 rewrite (dmac, smac, ethertype), or zeros when absent.
fn encap14(b: &[u8]) -> Result<[u8; 14], ConfigError> {
    if b.is_empty() {
        return Ok([0; 14]);
    }
    b.try_into()
        .map_err(|_| ConfigError::Invalid("next hop encap (must be 14 bytes: dmac, smac, type)"))
}

fn oif(r: &VrNexthopReq) -> Result<u16, ConfigError> {
    r.nhr_encap_oif_id
        .first()
        .and_then(|o| u16::try_from(*o).ok())
        .ok_or(ConfigError::Invalid("next hop outgoing interface"))
}

/// An IPv6 address field that holds an address (not empty, not all zero).
fn has_v6(a: &[u8]) -> bool {
    a.iter().any(|b| *b != 0)
}

/// `vr_nexthop_req` ADD -> next hop.
pub fn nh_from_req(r: &VrNexthopReq) -> Result<Nexthop, ConfigError> {
    let id = u32::try_from(r.nhr_id).map_err(|_| ConfigError::OutOfRange("nexthop"))?;
    let flags = NhFlags::from_bits_retain(r.nhr_flags);
    let kind = match r.nhr_type {
        nh_type::DEAD => NhKind::Dead,
        nh_type::RCV => NhKind::Receive,
        nh_type::ENCAP => NhKind::Encap {
            oif: oif(r)?,
            encap: encap14(&r.nhr_encap)?,
        },
        // Tunnels are IPv4 only (the overlay headers, the fabric): an IPv6
        // endpoint is refused, never read as 0.0.0.0.
        nh_type::TUNNEL if r.nhr_family == AF_INET6 || has_v6(&r.nhr_tun_sip6) || has_v6(&r.nhr_tun_dip6) => {
            return Err(ConfigError::Invalid(
                "tunnel next hop: IPv6 tunnel endpoints are not supported (the fabric is IPv4 only)",
            ))
        }
        nh_type::TUNNEL => NhKind::Tunnel {
            oif: oif(r)?,
            kind: Nexthop::tunnel_kind_from_flags(flags)?,
            sip: ipv4_from_wire(r.nhr_tun_sip),
            dip: ipv4_from_wire(r.nhr_tun_dip),
            encap: encap14(&r.nhr_encap)?,
        },
        nh_type::RESOLVE => NhKind::Resolve,
        nh_type::DISCARD => NhKind::Discard,
        nh_type::COMPOSITE => {
            let mut components = Vec::new();
            components
                .try_reserve_exact(r.nhr_nh_list.len())
                .map_err(|_| ConfigError::NoSpace("composite components"))?;
            for (i, nh) in r.nhr_nh_list.iter().enumerate() {
                let nh =
                    u32::try_from(*nh).map_err(|_| ConfigError::Invalid("composite component"))?;
                // A missing or negative label is "none" (all ones, as the
                // upstream -1 reads back).
                let label = r.nhr_label_list.get(i).map_or(u32::MAX, |l| *l as u32);
                components.push(Component { nh, label });
            }
            NhKind::Composite { components }
        }
        nh_type::VRF_TRANSLATE => NhKind::VrfTranslate {
            vrf: vrf_or_none(r.nhr_vrf),
        },
        nh_type::L2_RCV => NhKind::L2Receive,
        _ => return Err(ConfigError::Invalid("next hop type")),
    };
    Ok(Nexthop {
        id,
        family: r.nhr_family,
        flags,
        vrf: vrf_or_none(r.nhr_vrf),
        kind,
    })
}

/// A next hop -> `vr_nexthop_req` (GET/DUMP answer).
pub fn nh_to_req(nh: &Nexthop, op: SandeshOp) -> VrNexthopReq {
    let mut r = VrNexthopReq {
        h_op: op,
        nhr_type: nh.type_id(),
        nhr_family: nh.family,
        nhr_id: nh.id as i32,
        nhr_vrf: vrf_to_wire(nh.vrf),
        nhr_flags: nh.flags.bits(),
        nhr_encap_crypt_oif_id: -1,
        ..Default::default()
    };
    match &nh.kind {
        NhKind::Encap { oif, encap } => {
            r.nhr_encap_oif_id = vec![i32::from(*oif)];
            r.nhr_encap = encap.to_vec();
            r.nhr_encap_len = encap.len() as i32;
        }
        NhKind::Tunnel {
            oif,
            sip,
            dip,
            encap,
            ..
        } => {
            r.nhr_encap_oif_id = vec![i32::from(*oif)];
            r.nhr_encap = encap.to_vec();
            r.nhr_encap_len = encap.len() as i32;
            r.nhr_tun_sip = ipv4_to_wire(*sip);
            r.nhr_tun_dip = ipv4_to_wire(*dip);
        }
        NhKind::Composite { components } => {
            r.nhr_nh_list = components.iter().map(|c| c.nh as i32).collect();
            r.nhr_label_list = components.iter().map(|c| c.label as i32).collect();
            r.nhr_nh_count = i16::try_from(components.len()).unwrap_or(i16::MAX);
        }
        NhKind::VrfTranslate { vrf } => r.nhr_vrf = vrf_to_wire(*vrf),
        NhKind::Dead | NhKind::Receive | NhKind::Resolve | NhKind::Discard | NhKind::L2Receive => {}
    }
    r
}

/// The tunnel kind of a next hop's flags, for callers that print it.
pub fn tunnel_kind(nh: &Nexthop) -> Option<TunnelKind> {
    match nh.kind {
        NhKind::Tunnel { kind, .. } => Some(kind),
        _ => None,
    }
}

// ---- routes ---------------------------------------------------------------

/// VRF and prefix of a route request (family inet: 4 address bytes,
/// inet6: 16, bridge: the MAC in `rtr_mac`).
pub fn route_target(r: &VrRouteReq) -> Result<(u16, Prefix), ConfigError> {
    let vrf = u16::try_from(r.rtr_vrf_id).map_err(|_| ConfigError::OutOfRange("vrf"))?;
    let plen = || u8::try_from(r.rtr_prefix_len).map_err(|_| ConfigError::Invalid("prefix length"));
    let prefix = match r.rtr_family {
        f if f == i32::from(AF_INET) => {
            let a = r
                .rtr_prefix
                .as_slice()
                .try_into()
                .map_err(|_| ConfigError::Invalid("inet prefix (must be 4 bytes)"))?;
            Prefix::V4(a, plen()?)
        }
        f if f == i32::from(AF_INET6) => {
            let a = r
                .rtr_prefix
                .as_slice()
                .try_into()
                .map_err(|_| ConfigError::Invalid("inet6 prefix (must be 16 bytes)"))?;
            Prefix::V6(a, plen()?)
        }
        f if f == i32::from(AF_BRIDGE) => Prefix::Mac(
            r.rtr_mac
                .as_slice()
                .try_into()
                .map_err(|_| ConfigError::Invalid("bridge route MAC (must be 6 bytes)"))?,
        ),
        _ => return Err(ConfigError::Invalid("route family")),
    };
    Ok((vrf, prefix))
}

/// `vr_route_req` ADD -> VRF, prefix and route data.
///
/// Inet routes take upstream's `VR_RT_*_FLAG`s from `rtr_label_flags`;
/// bridge entries take `VR_BE_*_FLAG`s (label valid is `0x02` there), as
/// the agent sends them. `rtr_replace_plen` is ignored: dp-core finds the
/// covering route itself when a prefix is deleted.
pub fn route_from_req(r: &VrRouteReq) -> Result<(u16, Prefix, RouteData), ConfigError> {
    let (vrf, prefix) = route_target(r)?;
    let nh = u32::try_from(r.rtr_nh_id).map_err(|_| ConfigError::Invalid("route next hop"))?;
    let label_valid = if matches!(prefix, Prefix::Mac(_)) {
        r.rtr_label_flags as u16 & be_flags::LABEL_VALID != 0
    } else {
        r.rtr_label_flags as u16 & u16::from(rt_flags::LABEL_VALID) != 0
    };
    let mut flags = if matches!(prefix, Prefix::Mac(_)) {
        0
    } else {
        (r.rtr_label_flags as u16 & 0xff) as u8
    };
    if label_valid {
        flags |= rt_flags::LABEL_VALID;
    }
    let label = if label_valid {
        r.rtr_label as u32 & NO_LABEL
    } else {
        NO_LABEL
    };
    let mac = match prefix {
        Prefix::Mac(_) => [0; 6],
        _ => mac_or_zero(&r.rtr_mac, "route stitched MAC")?,
    };
    Ok((
        vrf,
        prefix,
        RouteData {
            nh,
            label,
            flags,
            mac,
        },
    ))
}

/// An inet route -> `vr_route_req` (GET/DUMP answer; a `Prefix::Mac`
/// gives a bridge request with inet flags). `PPL`
/// (`rtr_replace_plen`) is the route's own length: dp-core holds
/// prefixes, not upstream's expanded trie buckets.
pub fn inet_route_to_req(vrf: u16, prefix: Prefix, d: &RouteData, op: SandeshOp) -> VrRouteReq {
    let (family, addr, plen, mac) = match prefix {
        Prefix::V4(a, l) => (AF_INET, a.to_vec(), l, d.mac),
        Prefix::V6(a, l) => (AF_INET6, a.to_vec(), l, d.mac),
        Prefix::Mac(m) => (AF_BRIDGE, Vec::new(), 0, m),
    };
    VrRouteReq {
        h_op: op,
        rtr_vrf_id: i32::from(vrf),
        rtr_family: i32::from(family),
        rtr_prefix: addr,
        rtr_prefix_len: i32::from(plen),
        rtr_label_flags: i16::from(d.flags),
        rtr_label: if d.flags & rt_flags::LABEL_VALID != 0 {
            d.label as i32
        } else {
            NO_LABEL as i32
        },
        rtr_nh_id: d.nh as i32,
        rtr_mac: if mac == [0; 6] {
            Vec::new()
        } else {
            mac.to_vec()
        },
        rtr_index: VR_BE_INVALID_INDEX,
        rtr_replace_plen: i32::from(plen),
        ..Default::default()
    }
}

/// A bridge entry -> `vr_route_req` (family bridge; `VR_BE_*` flags).
pub fn bridge_route_to_req(vrf: u16, mac: [u8; 6], e: &BridgeEntry, op: SandeshOp) -> VrRouteReq {
    VrRouteReq {
        h_op: op,
        rtr_vrf_id: i32::from(vrf),
        rtr_family: i32::from(AF_BRIDGE),
        rtr_label_flags: e.flags as i16,
        rtr_label: if e.flags & be_flags::LABEL_VALID != 0 {
            e.label as i32
        } else {
            NO_LABEL as i32
        },
        rtr_nh_id: e.nh as i32,
        rtr_mac: mac.to_vec(),
        rtr_index: VR_BE_INVALID_INDEX,
        ..Default::default()
    }
}

// ---- drop statistics ------------------------------------------------------

/// Every counter of `stats` in its `vds_*` field.
pub fn drop_stats_to_req(stats: &DropStats, op: SandeshOp) -> VrDropStatsReq {
    let mut r = VrDropStatsReq {
        h_op: op,
        ..Default::default()
    };
    for (reason, n) in stats.iter() {
        *drop_field(&mut r, reason) = sat_i64(n);
    }
    r
}

/// The `vds_*` field of a reason. Exhaustive, so a reason added to
/// dp-core without a field here does not compile.
pub fn drop_field(r: &mut VrDropStatsReq, reason: DropReason) -> &mut i64 {
    use DropReason as D;
    match reason {
        D::Discard => &mut r.vds_discard,
        D::Pull => &mut r.vds_pull,
        D::InvalidIf => &mut r.vds_invalid_if,
        D::InvalidArp => &mut r.vds_invalid_arp,
        D::TrapNoIf => &mut r.vds_trap_no_if,
        D::NowhereToGo => &mut r.vds_nowhere_to_go,
        D::FlowQueueLimitExceeded => &mut r.vds_flow_queue_limit_exceeded,
        D::FlowNoMemory => &mut r.vds_flow_no_memory,
        D::FlowInvalidProtocol => &mut r.vds_flow_invalid_protocol,
        D::FlowNatNoRflow => &mut r.vds_flow_nat_no_rflow,
        D::FlowActionDrop => &mut r.vds_flow_action_drop,
        D::FlowActionInvalid => &mut r.vds_flow_action_invalid,
        D::FlowUnusable => &mut r.vds_flow_unusable,
        D::FlowTableFull => &mut r.vds_flow_table_full,
        D::InterfaceTxDiscard => &mut r.vds_interface_tx_discard,
        D::InterfaceDrop => &mut r.vds_interface_drop,
        D::Duplicated => &mut r.vds_duplicated,
        D::Push => &mut r.vds_push,
        D::TtlExceeded => &mut r.vds_ttl_exceeded,
        D::InvalidNh => &mut r.vds_invalid_nh,
        D::InvalidLabel => &mut r.vds_invalid_label,
        D::InvalidProtocol => &mut r.vds_invalid_protocol,
        D::InterfaceRxDiscard => &mut r.vds_interface_rx_discard,
        D::InvalidMcastSource => &mut r.vds_invalid_mcast_source,
        D::HeadAllocFail => &mut r.vds_head_alloc_fail,
        D::PcowFail => &mut r.vds_pcow_fail,
        D::McastDfBit => &mut r.vds_mcast_df_bit,
        D::McastCloneFail => &mut r.vds_mcast_clone_fail,
        D::NoMemory => &mut r.vds_no_memory,
        D::RewriteFail => &mut r.vds_rewrite_fail,
        D::Misc => &mut r.vds_misc,
        D::InvalidPacket => &mut r.vds_invalid_packet,
        D::CksumErr => &mut r.vds_cksum_err,
        D::NoFmd => &mut r.vds_no_fmd,
        D::ClonedOriginal => &mut r.vds_cloned_original,
        D::InvalidVnid => &mut r.vds_invalid_vnid,
        D::FragErr => &mut r.vds_frag_err,
        D::InvalidSource => &mut r.vds_invalid_source,
        D::L2NoRoute => &mut r.vds_l2_no_route,
        D::FragmentQueueFail => &mut r.vds_fragment_queue_fail,
        D::VlanFwdTx => &mut r.vds_vlan_fwd_tx,
        D::VlanFwdEnq => &mut r.vds_vlan_fwd_enq,
        D::DropNewFlow => &mut r.vds_drop_new_flow,
        D::FlowEvict => &mut r.vds_flow_evict,
        D::TrapOriginal => &mut r.vds_trap_original,
        D::LeafToLeaf => &mut r.vds_leaf_to_leaf,
        D::BmacIsidMismatch => &mut r.vds_bmac_isid_mismatch,
        D::PktLoop => &mut r.vds_pkt_loop,
        D::NoCryptPath => &mut r.vds_no_crypt_path,
        D::InvalidHbsPkt => &mut r.vds_invalid_hbs_pkt,
        D::NoFragEntry => &mut r.vds_no_frag_entry,
        D::IcmpError => &mut r.vds_icmp_error,
        D::CloneFail => &mut r.vds_clone_fail,
        D::InvalidUnderlayEcmp => &mut r.vds_invalid_underlay_ecmp,
    }
}

// ---- flows ----------------------------------------------------------------

fn flow_family(r: &VrFlowReq) -> Result<u8, ConfigError> {
    match r.fr_family {
        f if f == i32::from(dp_core::flow::table::AF_INET) => Ok(dp_core::flow::table::AF_INET),
        f if f == i32::from(dp_core::flow::table::AF_INET6) => Ok(dp_core::flow::table::AF_INET6),
        _ => Err(ConfigError::Invalid("flow family")),
    }
}

fn flow_addr(family: u8, upper: u64, lower: u64) -> [u8; 16] {
    if family == dp_core::flow::table::AF_INET6 {
        ipv6_from_wire(upper, lower)
    } else {
        // Upstream takes `(uint32_t)fr_flow_sip_l` for IPv4.
        let mut a = [0u8; 16];
        if let Some(head) = a.get_mut(..4) {
            head.copy_from_slice(&ipv4_from_wire(lower as u32));
        }
        a
    }
}

/// The forward flow key of a `vr_flow_req`.
pub fn flow_key(r: &VrFlowReq) -> Result<FlowKey, ConfigError> {
    let family = flow_family(r)?;
    Ok(FlowKey::new(
        family,
        r.fr_flow_proto,
        port_from_wire(r.fr_flow_sport),
        port_from_wire(r.fr_flow_dport),
        r.fr_flow_nh_id,
        flow_addr(family, r.fr_flow_sip_u, r.fr_flow_sip_l),
        flow_addr(family, r.fr_flow_dip_u, r.fr_flow_dip_l),
    ))
}

/// The reverse flow key of a `vr_flow_req` (`fr_rflow_*`, same protocol).
pub fn rflow_key(r: &VrFlowReq) -> Result<FlowKey, ConfigError> {
    let family = flow_family(r)?;
    Ok(FlowKey::new(
        family,
        r.fr_flow_proto,
        port_from_wire(r.fr_rflow_sport),
        port_from_wire(r.fr_rflow_dport),
        r.fr_rflow_nh_id,
        flow_addr(family, r.fr_rflow_sip_u, r.fr_rflow_sip_l),
        flow_addr(family, r.fr_rflow_dip_u, r.fr_rflow_dip_l),
    ))
}

/// Sets the forward key fields of a `vr_flow_req` from `key` (for
/// clients building requests).
pub fn set_flow_key(r: &mut VrFlowReq, key: &FlowKey) {
    r.fr_family = i32::from(key.family);
    r.fr_flow_proto = key.proto;
    r.fr_flow_sport = port_to_wire(key.sport());
    r.fr_flow_dport = port_to_wire(key.dport());
    r.fr_flow_nh_id = key.nh_id();
    if key.is_ipv6() {
        (r.fr_flow_sip_u, r.fr_flow_sip_l) = ipv6_to_wire(key.src());
        (r.fr_flow_dip_u, r.fr_flow_dip_l) = ipv6_to_wire(key.dst());
    } else {
        r.fr_flow_sip_u = 0;
        r.fr_flow_dip_u = 0;
        r.fr_flow_sip_l = u64::from(ipv4_to_wire(key.src_v4()));
        r.fr_flow_dip_l = u64::from(ipv4_to_wire(key.dst_v4()));
    }
}

/// Whether a FLOW_SET request deletes its flow (upstream: `fr_flags`
/// without `VR_FLOW_FLAG_ACTIVE`).
pub fn flow_req_is_delete(r: &VrFlowReq) -> bool {
    r.fr_flags as u16 & VR_FLOW_FLAG_ACTIVE == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_match_little_endian_upstream() {
        // inet_addr("10.1.2.3") on x86 is 0x0302010a.
        assert_eq!(ipv4_to_wire([10, 1, 2, 3]), 0x0302_010a);
        assert_eq!(ipv4_from_wire(0x0302_010a), [10, 1, 2, 3]);
        // htons(80) on x86 is 0x5000.
        assert_eq!(port_to_wire(80), 0x5000);
        assert_eq!(port_from_wire(0x5000), 80);
        let a6: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
        let (u, l) = ipv6_to_wire(a6);
        assert_eq!(u, u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(l, u64::from_le_bytes([9, 10, 11, 12, 13, 14, 15, 16]));
        assert_eq!(ipv6_from_wire(u, l), a6);
    }

    #[test]
    fn vif_round_trip() {
        let req = VrInterfaceReq {
            h_op: SandeshOp::Add,
            vifr_type: 3,
            vifr_idx: 5,
            vifr_name: "tap1".into(),
            vifr_os_idx: 42,
            vifr_mac: vec![0, 0, 0x5e, 0, 1, 0],
            vifr_ip: ipv4_to_wire([10, 0, 0, 3]),
            vifr_vrf: 2,
            vifr_mtu: 9000,
            vifr_flags: 0x41,
            vifr_nh_id: 12,
            vifr_cross_connect_idx: vec![1],
            vifr_if_guid: vec![7; 16],
            vifr_transport: 1,
            ..Default::default()
        };
        let (cfg, extra) = vif_from_req(&req).unwrap();
        assert_eq!(cfg.idx, 5);
        assert_eq!(cfg.vif_type, VifType::Virtual);
        assert_eq!(cfg.ip, [10, 0, 0, 3]);
        assert_eq!(cfg.cross_connect, Some(1));
        let back = vif_to_req(
            &Vif {
                cfg,
                stats: Default::default(),
            },
            Some(&extra),
            SandeshOp::Get,
        );
        for (a, b) in [
            (back.vifr_type, req.vifr_type),
            (back.vifr_idx, req.vifr_idx),
            (back.vifr_os_idx, req.vifr_os_idx),
            (back.vifr_vrf, req.vifr_vrf),
            (back.vifr_mtu, req.vifr_mtu),
            (back.vifr_flags, req.vifr_flags),
            (back.vifr_nh_id, req.vifr_nh_id),
        ] {
            assert_eq!(a, b);
        }
        assert_eq!(back.vifr_ip, req.vifr_ip);
        assert_eq!(back.vifr_mac, req.vifr_mac);
        assert_eq!(back.vifr_name, req.vifr_name);
        assert_eq!(back.vifr_if_guid, req.vifr_if_guid);
        assert_eq!(back.vifr_cross_connect_idx, req.vifr_cross_connect_idx);
    }

    #[test]
    fn vif_errors() {
        let bad_type = VrInterfaceReq {
            vifr_type: 9,
            ..Default::default()
        };
        assert_eq!(vif_from_req(&bad_type).unwrap_err().errno(), -22);
        let bad_mac = VrInterfaceReq {
            vifr_mac: vec![1, 2, 3],
            ..Default::default()
        };
        assert_eq!(vif_from_req(&bad_mac).unwrap_err().errno(), -22);
        let neg = VrInterfaceReq {
            vifr_idx: -1,
            ..Default::default()
        };
        assert_eq!(vif_from_req(&neg).unwrap_err().errno(), -34);
        let no_vrf = VrInterfaceReq {
            vifr_vrf: -1,
            ..Default::default()
        };
        assert_eq!(vif_from_req(&no_vrf).unwrap().0.vrf, u16::MAX);
    }

    #[test]
    fn nexthops() {
        let tun = VrNexthopReq {
            nhr_type: nh_type::TUNNEL,
            nhr_family: AF_INET,
            nhr_id: 9,
            nhr_flags: (NhFlags::VALID | NhFlags::TUNNEL_UDP_MPLS).bits(),
            nhr_encap_oif_id: vec![0],
            nhr_encap: (0..14).collect(),
            nhr_tun_sip: ipv4_to_wire([192, 168, 0, 1]),
            nhr_tun_dip: ipv4_to_wire([192, 168, 0, 2]),
            ..Default::default()
        };
        let nh = nh_from_req(&tun).unwrap();
        assert!(matches!(
            nh.kind,
            NhKind::Tunnel {
                kind: TunnelKind::MplsOverUdp,
                sip: [192, 168, 0, 1],
                ..
            }
        ));
        let back = nh_to_req(&nh, SandeshOp::Get);
        assert_eq!(back.nhr_tun_dip, tun.nhr_tun_dip);
        assert_eq!(back.nhr_encap, tun.nhr_encap);
        assert_eq!(back.nhr_encap_oif_id, tun.nhr_encap_oif_id);

        let comp = VrNexthopReq {
            nhr_type: nh_type::COMPOSITE,
            nhr_family: AF_INET,
            nhr_id: 10,
            nhr_nh_list: vec![9, 3],
            nhr_label_list: vec![100, -1],
            ..Default::default()
        };
        let nh = nh_from_req(&comp).unwrap();
        let back = nh_to_req(&nh, SandeshOp::Get);
        assert_eq!(back.nhr_nh_list, comp.nhr_nh_list);
        assert_eq!(back.nhr_label_list, comp.nhr_label_list);

        for bad in [
            VrNexthopReq {
                nhr_type: 42,
                ..Default::default()
            },
            VrNexthopReq {
                nhr_type: nh_type::ENCAP,
                ..Default::default()
            },
            VrNexthopReq {
                nhr_type: nh_type::ENCAP,
                nhr_encap_oif_id: vec![1],
                nhr_encap: vec![1, 2, 3],
                ..Default::default()
            },
            VrNexthopReq {
                nhr_type: nh_type::TUNNEL,
                nhr_encap_oif_id: vec![1],
                ..Default::default()
            },
        ] {
            assert_eq!(nh_from_req(&bad).unwrap_err().errno(), -22, "{bad:?}");
        }
    }

    #[test]
    fn routes() {
        let r = VrRouteReq {
            rtr_vrf_id: 1,
            rtr_family: 2,
            rtr_prefix: vec![10, 1, 0, 0],
            rtr_prefix_len: 16,
            rtr_label_flags: 0x1 | 0x2,
            rtr_label: 0x1234_5678,
            rtr_nh_id: 7,
            ..Default::default()
        };
        let (vrf, p, d) = route_from_req(&r).unwrap();
        assert_eq!((vrf, p), (1, Prefix::V4([10, 1, 0, 0], 16)));
        assert_eq!(d.label, 0x34_5678);
        assert_eq!(d.label(), Some(0x34_5678));
        let back = inet_route_to_req(vrf, p, &d, SandeshOp::Dump);
        assert_eq!(back.rtr_prefix, r.rtr_prefix);
        assert_eq!(back.rtr_label_flags, 3);
        assert_eq!(back.rtr_replace_plen, 16);

        // Bridge: label valid is VR_BE_LABEL_VALID_FLAG.
        let b = VrRouteReq {
            rtr_family: 7,
            rtr_mac: vec![2, 0, 0, 0, 0, 1],
            rtr_label_flags: 0x2,
            rtr_label: 5000,
            rtr_nh_id: 3,
            ..Default::default()
        };
        let (_, p, d) = route_from_req(&b).unwrap();
        assert_eq!(p, Prefix::Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(d.label(), Some(5000));

        for bad in [
            VrRouteReq {
                rtr_family: 2,
                rtr_prefix: vec![1, 2, 3],
                ..Default::default()
            },
            VrRouteReq {
                rtr_family: 99,
                ..Default::default()
            },
            VrRouteReq {
                rtr_family: 7,
                ..Default::default()
            },
        ] {
            assert_eq!(route_target(&bad).unwrap_err().errno(), -22);
        }
    }

    #[test]
    fn every_drop_reason_has_its_own_field() {
        let mut r = VrDropStatsReq::default();
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            *drop_field(&mut r, *reason) = i as i64 + 1;
        }
        let mut seen = std::collections::BTreeSet::new();
        for reason in DropReason::ALL {
            assert!(
                seen.insert(*drop_field(&mut r, *reason)),
                "{reason:?} shares a field"
            );
        }
    }

    #[test]
    fn flow_keys() {
        let key = FlowKey::new_v4(6, 1234, 80, 17, [10, 0, 0, 1], [10, 0, 0, 2]);
        let mut r = VrFlowReq::default();
        set_flow_key(&mut r, &key);
        #[cfg(target_endian = "little")]
        assert_eq!(r.fr_flow_sport, 1234u16.to_be(), "htons as on x86");
        assert_eq!(flow_key(&r).unwrap(), key);
        let k6 = FlowKey::new_v6(17, 1, 2, 3, [1; 16], [2; 16]);
        set_flow_key(&mut r, &k6);
        assert_eq!(flow_key(&r).unwrap(), k6);
        r.fr_family = 7;
        assert!(flow_key(&r).is_err());
    }
}
