//! Output in the layout of upstream's tools (`utils/vif.c`, `nh.c`,
//! `rt.c`, `mpls.c`, `vxlan.c`, `flow.c`, `dropstats.c`, `vrouter.c`), so
//! operators find what they know. Every function returns the text; the
//! commands print it.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use dp_core::flow::table::*;
use dp_core::nexthop::{nh_type, AF_BRIDGE, AF_INET, AF_INET6};
use ksync::convert::{ipv4_from_wire, ipv6_from_wire};
use sandesh::{
    VrDropStatsReq, VrFlowTableData, VrInterfaceReq, VrMplsReq, VrNexthopReq, VrRouteReq, VrVrfReq,
    VrVxlanReq, VrouterOps,
};

/// `%02x:%02x:...`; anything but 6 bytes prints as zeros.
pub fn mac(b: &[u8]) -> String {
    let m: [u8; 6] = b.try_into().unwrap_or([0; 6]);
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Upstream's `ether_ntoa` (no leading zeros), used by `rt` for bridge
/// entries.
pub fn mac_short(b: &[u8]) -> String {
    let m: [u8; 6] = b.try_into().unwrap_or([0; 6]);
    format!(
        "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn ip4(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(ipv4_from_wire(v))
}

// ---- vif --------------------------------------------------------------------

/// `VIF_FLAG_*`: bit, symbol, legend.
const VIF_FLAGS: &[(u32, &str, &str)] = &[
    (0x1, "P", "Policy"),
    (0x2, "X", "Cross Connect"),
    (0x4, "S", "Service Chain"),
    (0x8, "Mr", "Receive Mirror"),
    (0x10, "Mt", "Transmit Mirror"),
    (0x20, "Tc", "Transmit Checksum Offload"),
    (0x40, "L3", "Layer 3"),
    (0x80, "L2", "Layer 2"),
    (0x100, "D", "DHCP"),
    (0x200, "Vp", "Vhost Physical"),
    (0x400, "Pr", "Promiscuous"),
    (0x800, "Vnt", "Native Vlan Tagged"),
    (0x1000, "Mnp", "No MAC Proxy"),
    (0x2000, "Dpdk", "DPDK PMD Interface"),
    (0x4000, "Rfl", "Receive Filtering Offload"),
    (0x8000, "Mon", "Interface is Monitored"),
    (0x10000, "Uuf", "Unknown Unicast Flood"),
    (0x20000, "Vof", "VLAN insert/strip offload"),
    (0x40000, "Df", "Drop New Flows"),
    (0x80000, "L", "MAC Learning Enabled"),
    (0x100000, "Proxy", "MAC Requests Proxied Always"),
    (0x200000, "Er", "Etree Root"),
    (0x1000000, "Mn", "Mirror without Vlan Tag"),
    (0x8000000, "HbsL", "HBS Left Intf"),
    (0x10000000, "HbsR", "HBS Right Intf"),
    (0x2000000, "Ig", "Igmp Trap Enabled"),
    (0x40000000, "Ml", "MAC-IP Learning Enabled"),
];

/// `vif --list` / `--get` header with the flag legend, four per line.
pub fn vif_header() -> String {
    let mut s = String::from("Vrouter Interface Table\n\nFlags: ");
    for (i, (_, sym, what)) in VIF_FLAGS.iter().enumerate() {
        if i > 0 {
            s.push_str(if i % 4 == 0 { "\n       " } else { ", " });
        }
        let _ = write!(s, "{sym}={what}");
    }
    s.push_str("\n\n");
    s
}

/// The flag symbols of `flags` run together (`PL3L2`), or `NULL`.
pub fn vif_flags(flags: i32) -> String {
    if flags == 0 {
        return "NULL".into();
    }
    VIF_FLAGS
        .iter()
        .filter(|(bit, _, _)| flags as u32 & bit != 0)
        .map(|(_, sym, _)| *sym)
        .collect()
}

pub fn vif_type(t: i32) -> &'static str {
    match t {
        0 => "Host",
        1 => "Agent",
        2 => "Physical",
        3 => "Virtual",
        4 => "XenLL",
        5 => "Gateway",
        6 => "Stats",
        7 => "Virtual(Vlan)",
        8 => "Monitoring",
        _ => "Invalid",
    }
}

const HEAD: &str = "            ";

/// One vif, as `vif --list` prints it (blank line after).
pub fn vif(r: &VrInterfaceReq) -> String {
    let mut s = String::new();
    let id = format!("vif{}/{}", r.vifr_rid, r.vifr_idx);
    let _ = write!(s, "{id:<12}");
    if r.vifr_name.is_empty() {
        let _ = write!(s, "OS: -");
    } else {
        let _ = write!(s, "OS: {}", r.vifr_name);
    }
    if let Some(x) = r.vifr_cross_connect_idx.first() {
        let _ = write!(s, " Xconnect: vif0/{x}");
    }
    if r.vifr_parent_vif_idx >= 0 {
        let _ = write!(s, " Parent:vif0/{}", r.vifr_parent_vif_idx);
    }
    if r.vifr_nh_id != 0 {
        let _ = write!(s, " NH: {}", r.vifr_nh_id);
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "{HEAD}Type:{} HWaddr:{} IPaddr:{}",
        vif_type(r.vifr_type),
        mac(&r.vifr_mac),
        ip4(r.vifr_ip)
    );
    if r.vifr_type == 7 {
        let _ = writeln!(s, "{HEAD}Vlan(o/i): {}/{}", r.vifr_ovlan_id, r.vifr_vlan_id);
    }
    if r.vifr_ip6_u != 0 || r.vifr_ip6_l != 0 {
        let a = Ipv6Addr::from(ipv6_from_wire(r.vifr_ip6_u, r.vifr_ip6_l));
        let _ = writeln!(s, "{HEAD}IP6addr:{a}");
    }
    if r.vifr_if_guid.len() == 16 {
        let _ = writeln!(s, "{HEAD}Guid:{}", guid(&r.vifr_if_guid));
    }
    let _ = writeln!(
        s,
        "{HEAD}Vrf:{} Mcast Vrf:{} Flags:{} QOS:{} Ref:{}",
        r.vifr_vrf,
        r.vifr_mcast_vrf,
        vif_flags(r.vifr_flags),
        r.vifr_qos_map_index,
        r.vifr_ref_cnt
    );
    let _ = writeln!(
        s,
        "{HEAD}RX packets:{}  bytes:{} errors:{}",
        r.vifr_ipackets, r.vifr_ibytes, r.vifr_ierrors
    );
    let _ = writeln!(
        s,
        "{HEAD}TX packets:{}  bytes:{} errors:{}",
        r.vifr_opackets, r.vifr_obytes, r.vifr_oerrors
    );
    if r.vifr_dev_ierrors != 0 {
        // Dropped by the OS before the datapath read them (upstream prints
        // its NIC's counters on this line).
        let _ = writeln!(s, "{HEAD}RX device errors:{}", r.vifr_dev_ierrors);
    }
    let _ = writeln!(s, "{HEAD}Drops:{}", r.vifr_dpackets);
    let _ = writeln!(s, "{HEAD}MTU:{}", r.vifr_mtu);
    s.push('\n');
    s
}

/// The GUID bytes of `vifr_if_guid` in the usual text form.
pub fn guid(b: &[u8]) -> String {
    let g: [u8; 16] = b.try_into().unwrap_or([0; 16]);
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]
    )
}

// ---- nh ---------------------------------------------------------------------

pub fn nh_type_name(t: u8) -> &'static str {
    match t {
        nh_type::DEAD => "Dead",
        nh_type::RCV => "Receive",
        nh_type::ENCAP => "Encap",
        nh_type::TUNNEL => "Tunnel",
        nh_type::RESOLVE => "Resolve",
        nh_type::DISCARD => "Drop",
        nh_type::COMPOSITE => "Composite",
        nh_type::VRF_TRANSLATE => "Vrf_Translate",
        nh_type::L2_RCV => "L2 Receive",
        _ => "Invalid",
    }
}

fn family_name(f: u8) -> &'static str {
    match f {
        AF_INET => "AF_INET",
        AF_INET6 => "AF_INET6",
        AF_BRIDGE => "AF_BRIDGE",
        0 => "AF_UNSPEC",
        _ => "N/A",
    }
}

/// `NH_FLAG_*` names as upstream `nh` lists them (some only for their
/// next hop type).
pub fn nh_flags(flags: u32, ty: u8) -> String {
    if flags == 0 {
        return "None".into();
    }
    let mut s = String::new();
    for i in 0..32 {
        let bit = 1u32 << i;
        if flags & bit == 0 {
            continue;
        }
        let tunnel = ty == nh_type::TUNNEL;
        let comp = ty == nh_type::COMPOSITE;
        let name = match bit {
            0x1 => "Valid",
            0x2 => "Policy",
            0x100 => "Policy(R)",
            0x40000 => "Flow Lookup",
            0x8 if tunnel => "MPLSoGRE",
            0x40 if tunnel => "MPLSoUDP",
            0x10 if tunnel => "Udp",
            0x400 if comp => "Ecmp",
            0x200 if comp => "Fabric",
            0x1000 if comp => "Evpn",
            0x4000 if comp => "Tor",
            0x2000 if comp => "Encap",
            0x20 => "Multicast",
            0x8000 => "RouteLookup",
            0x2000000 => "l3_vxlan",
            0x80 => "Vxlan",
            0x10000 => "Unicast Flood",
            0x20000 => "Copy SIP",
            0x80000 => "Pbb",
            0x400000 => "Indirect",
            0x200000 => "Etree Root",
            0x100000 => "Mac Learn",
            0x800000 => "Evpn Control Word",
            0x1000000 => "Encrypt Traffic",
            0x10000000 => "Underlay Ecmp",
            _ => continue,
        };
        let _ = write!(s, "{name}, ");
    }
    s
}

const NH_NL: &str = "\n              ";

/// One next hop, as `nh --list` prints it.
pub fn nh(r: &VrNexthopReq) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "Id:{:<9}  Type:{:<13}  Fmly:{:>8}  Rid:{}  Ref_cnt:{:<10} Vrf:{}",
        r.nhr_id,
        nh_type_name(r.nhr_type),
        family_name(r.nhr_family),
        r.nhr_rid,
        r.nhr_ref_cnt,
        r.nhr_vrf
    );
    let _ = write!(s, "{NH_NL}Flags:{}", nh_flags(r.nhr_flags, r.nhr_type));
    let oif = r.nhr_encap_oif_id.first().copied().unwrap_or(0);
    let data = |s: &mut String| {
        for b in &r.nhr_encap {
            let _ = write!(s, "{b:02x} ");
        }
    };
    match r.nhr_type {
        nh_type::RCV => {
            let _ = write!(s, "{NH_NL}Oif:{oif}");
        }
        nh_type::ENCAP => {
            let _ = write!(
                s,
                "{NH_NL}EncapFmly:{:04x} Oif:{oif} Len:{}",
                r.nhr_encap_family,
                r.nhr_encap.len()
            );
            let _ = write!(s, "{NH_NL}Encap Data: ");
            data(&mut s);
        }
        nh_type::TUNNEL => {
            let _ = write!(s, "{NH_NL}Oif:{oif} Len:{} Data:", r.nhr_encap.len());
            data(&mut s);
            let _ = write!(
                s,
                "{NH_NL}Sip:{} Dip:{}",
                ip4(r.nhr_tun_sip),
                ip4(r.nhr_tun_dip)
            );
        }
        nh_type::VRF_TRANSLATE => {
            let _ = write!(s, "{NH_NL}Vrf:{}", r.nhr_vrf);
        }
        nh_type::COMPOSITE => {
            let _ = write!(s, "{NH_NL}Sub NH(label):");
            let mut printed = 0;
            for (i, n) in r.nhr_nh_list.iter().enumerate() {
                if printed > 60 {
                    let _ = write!(s, "{NH_NL}{:14}", "");
                    printed = 0;
                }
                let item = match r.nhr_label_list.get(i) {
                    Some(l) if *l >= 0 => format!(" {n}({l})"),
                    _ => format!(" {n}"),
                };
                printed += item.len();
                s.push_str(&item);
            }
        }
        _ => {}
    }
    s.push_str("\n\n");
    s
}

// ---- rt ---------------------------------------------------------------------

/// `rt --dump` header: legend, table name, columns.
pub fn rt_header(family: u8, vrf: u16) -> String {
    match family {
        AF_BRIDGE => format!(
            "Flags: L=Label Valid, Df=DHCP flood, Mm=Mac Moved, L2c=L2 Evpn Control Word, \
             N=New Entry, Ec=EvpnControlProcessing\n\
             vRouter bridge table 0/{vrf}\n\
             Index       DestMac                  Flags           Label/VNID      Nexthop           Stats\n"
        ),
        _ => format!(
            "Flags: L=Label Valid, P=Proxy ARP, T=Trap ARP, F=Flood ARP, Ml=MAC-IP learnt route\n\
             vRouter inet{} routing table 0/{vrf}/unicast\n\
             Destination           PPL        Flags        Label         Nexthop    Stitched MAC(Index)\n",
            if family == AF_INET6 { '6' } else { '4' }
        ),
    }
}

/// One inet/inet6 route row.
pub fn rt_inet(r: &VrRouteReq) -> String {
    let addr = match r.rtr_prefix.len() {
        4 => {
            let a: [u8; 4] = r.rtr_prefix.as_slice().try_into().unwrap_or([0; 4]);
            Ipv4Addr::from(a).to_string()
        }
        16 => {
            let a: [u8; 16] = r.rtr_prefix.as_slice().try_into().unwrap_or([0; 16]);
            Ipv6Addr::from(a).to_string()
        }
        _ => String::new(),
    };
    let dest = format!("{addr}/{:<2}", r.rtr_prefix_len);
    let mut flags = String::new();
    for (bit, sym) in [(0x1, "L"), (0x2, "P"), (0x4, "T"), (0x8, "F"), (0x10, "Ml")] {
        if r.rtr_label_flags & bit != 0 {
            flags.push_str(sym);
        }
    }
    let label = if r.rtr_label_flags & 0x1 != 0 {
        format!("{:5}", r.rtr_label)
    } else {
        format!("{:>5}", "-")
    };
    let stitched = if r.rtr_mac.len() == 6 {
        format!("{}({})", mac_short(&r.rtr_mac), r.rtr_index)
    } else {
        "-".into()
    };
    format!(
        "{dest:<21}{:4}{:8}{flags:>5}{:6}{label}{:8}{:7}{:8}{stitched}\n",
        r.rtr_replace_plen, "", "", "", r.rtr_nh_id, ""
    )
}

/// One bridge entry row (`Index` is `-` : dp-core has no bridge index).
pub fn rt_bridge(r: &VrRouteReq) -> String {
    let mut flags = String::new();
    for (bit, sym) in [
        (0x2, "L"),
        (0x4, "Df"),
        (0x8, "Mm"),
        (0x10, "L2c"),
        (0x20, "N"),
        (0x40, "Ec"),
    ] {
        if r.rtr_label_flags & bit != 0 {
            flags.push_str(sym);
        }
    }
    let index = if r.rtr_index >= 0 {
        r.rtr_index.to_string()
    } else {
        "-".into()
    };
    let label = if r.rtr_label_flags & 0x2 != 0 {
        format!("{:9}", r.rtr_label)
    } else {
        format!("{:>9}", "-")
    };
    format!(
        "{index:<12}{:<20} {flags:>9}{:11} {label}{:6}{:7}{:4}{:12}\n",
        mac_short(&r.rtr_mac),
        "",
        "",
        r.rtr_nh_id,
        "",
        0
    )
}

// ---- mpls, vxlan, vrf -------------------------------------------------------

pub fn mpls_header() -> &'static str {
    "MPLS Input Label Map\n\n   Label    NextHop\n-------------------\n"
}

pub fn mpls(r: &VrMplsReq) -> String {
    format!("{:8}    {:6}\n", r.mr_label, r.mr_nhid)
}

pub fn vxlan_header() -> &'static str {
    "VXLAN Table\n\n VNID    NextHop\n----------------\n"
}

pub fn vxlan(r: &VrVxlanReq) -> String {
    format!("{:7}    {}\n", r.vxlanr_vnid, r.vxlanr_nhid)
}

pub fn vrf_header() -> &'static str {
    "VRF Table\n\n   Vrf    Flags\n-------------------\n"
}

pub fn vrf(r: &VrVrfReq) -> String {
    let flags = if r.vrf_flags & 0x1 != 0 { "V" } else { "-" };
    format!("{:6}    {flags}\n", r.vrf_idx)
}

// ---- dropstats --------------------------------------------------------------

/// The non-zero counters, `%-28s  %d`, in upstream's order and words
/// (`dropstats` prints nothing for a zero counter).
pub fn dropstats(s: &VrDropStatsReq) -> String {
    let rows: &[(&str, i64)] = &[
        ("Invalid IF", s.vds_invalid_if),
        ("Invalid ARP", s.vds_invalid_arp),
        ("Trap No IF", s.vds_trap_no_if),
        ("IF TX Discard", s.vds_interface_tx_discard),
        ("IF Drop", s.vds_interface_drop),
        ("IF RX Discard", s.vds_interface_rx_discard),
        ("Flow Unusable", s.vds_flow_unusable),
        ("Flow No Memory", s.vds_flow_no_memory),
        ("Flow Table Full", s.vds_flow_table_full),
        ("Flow NAT no rflow", s.vds_flow_nat_no_rflow),
        ("Flow Action Drop", s.vds_flow_action_drop),
        ("Flow Action Invalid", s.vds_flow_action_invalid),
        ("Flow Invalid Protocol", s.vds_flow_invalid_protocol),
        ("Flow Queue Limit Exceeded", s.vds_flow_queue_limit_exceeded),
        ("New Flow Drops", s.vds_drop_new_flow),
        ("Flow Unusable (Eviction)", s.vds_flow_evict),
        ("Original Packet Trapped", s.vds_trap_original),
        ("Discards", s.vds_discard),
        ("TTL Exceeded", s.vds_ttl_exceeded),
        ("Mcast Clone Fail", s.vds_mcast_clone_fail),
        ("Invalid NH", s.vds_invalid_nh),
        ("Invalid Label", s.vds_invalid_label),
        ("Invalid Protocol", s.vds_invalid_protocol),
        ("Etree Leaf to Leaf", s.vds_leaf_to_leaf),
        ("Bmac/ISID Mismatch", s.vds_bmac_isid_mismatch),
        ("Rewrite Fail", s.vds_rewrite_fail),
        ("Invalid Mcast Source", s.vds_invalid_mcast_source),
        ("Packet Loop", s.vds_pkt_loop),
        ("Push Fails", s.vds_push),
        ("Pull Fails", s.vds_pull),
        ("Duplicate", s.vds_duplicated),
        ("Head Alloc Fails", s.vds_head_alloc_fail),
        ("PCOW fails", s.vds_pcow_fail),
        ("Invalid Packets", s.vds_invalid_packet),
        ("Misc", s.vds_misc),
        ("Nowhere to go", s.vds_nowhere_to_go),
        ("Checksum errors", s.vds_cksum_err),
        ("No Fmd", s.vds_no_fmd),
        ("Invalid VNID", s.vds_invalid_vnid),
        ("Fragment errors", s.vds_frag_err),
        ("Invalid Source", s.vds_invalid_source),
        ("Jumbo Mcast Pkt with DF Bit", s.vds_mcast_df_bit),
        ("No L2 Route", s.vds_l2_no_route),
        ("Memory Failures", s.vds_no_memory),
        ("Fragment Queueing Failures", s.vds_fragment_queue_fail),
        ("No Encrypt Path Failures", s.vds_no_crypt_path),
        ("Invalid HBS received packet", s.vds_invalid_hbs_pkt),
        ("No Fragment Entries", s.vds_no_frag_entry),
        ("ICMP errors", s.vds_icmp_error),
        ("Clone Failures", s.vds_clone_fail),
        ("Invalid underlay ECMP", s.vds_invalid_underlay_ecmp),
        ("Cloned Original", s.vds_cloned_original),
        ("VLAN fwd intf failed TX", s.vds_vlan_fwd_tx),
        ("VLAN fwd intf failed enq", s.vds_vlan_fwd_enq),
    ];
    let mut out = String::new();
    for (what, n) in rows {
        if *n != 0 {
            let _ = writeln!(out, "{what:<28}  {n}");
        }
    }
    out
}

// ---- vrouter --info ---------------------------------------------------------

/// The value of `"key" : "value"` in upstream's build-info JSON.
fn build_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    let at = info.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = info.get(at..)?.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.get(..rest.find('"')?)
}

/// `vrouter --info`.
pub fn vrouter_info(o: &VrouterOps) -> String {
    let mut s = String::from("vRouter module version      ");
    let b = &o.vo_build_info;
    let _ = write!(
        s,
        " {}",
        build_field(b, "build-version").unwrap_or("unknown")
    );
    let _ = write!(
        s,
        " (Built by {}",
        build_field(b, "build-user").unwrap_or("unknown")
    );
    if let Some(h) = build_field(b, "build-hostname").filter(|h| !h.is_empty()) {
        let _ = write!(s, "@{h}");
    }
    if let Some(t) = build_field(b, "build-time").filter(|t| !t.is_empty()) {
        let _ = write!(s, " on {t}");
    }
    s.push_str(")\n\n");
    let rows: &[(&str, i64)] = &[
        ("Interfaces limit", o.vo_interfaces.into()),
        ("VRF tables limit", o.vo_vrfs.into()),
        ("NextHops limit", o.vo_nexthops.into()),
        ("MPLS Labels limit", o.vo_mpls_labels.into()),
        ("Bridge Table limit", o.vo_bridge_entries.into()),
        (
            "Bridge Table Overflow limit",
            o.vo_oflow_bridge_entries.into(),
        ),
        ("Flow Table limit", o.vo_flow_entries.into()),
        ("Flow Table overflow limit", o.vo_oflow_entries.into()),
        ("Mirror entries limit", o.vo_mirror_entries.into()),
    ];
    s.push_str("Startup parameters\n");
    for (k, v) in rows {
        let _ = writeln!(s, "    {k:<37}{v}");
    }
    s.push_str("\nRuntime parameters\n");
    let rows: &[(&str, i64)] = &[
        ("Flow hold limit:", o.vo_flow_hold_limit.into()),
        ("MPLS over UDP globally", o.vo_mudp.into()),
        ("Used Flow entries", o.vo_flow_used_entries.into()),
        ("Used Over Flow entries", o.vo_flow_used_oentries.into()),
        ("Used Bridge entries", o.vo_bridge_used_entries.into()),
        (
            "Used Over Flow bridge entries",
            o.vo_bridge_used_oentries.into(),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "    {k:<37}{v}");
    }
    s
}

// ---- flow -l ----------------------------------------------------------------

/// Short name of a `VR_FLOW_DR_*` drop reason, as upstream `flow` shows it.
pub fn flow_drop_reason(code: u8) -> Option<&'static str> {
    Some(match code {
        0x00 => "Unknown",
        0x01 => "IntfErr",
        0x02 => "Ipv4Dis",
        0x03 => "VrfErr",
        0x04 => "NoSrcRt",
        0x05 => "NoDstRt",
        0x06 => "Audit",
        0x07 => "VrfChange",
        0x08 => "NoRevFlow",
        0x09 => "RevFlowChng",
        0x0a => "NatChng",
        0x0b => "FlowLim",
        0x0c => "LinkSrcNatErr",
        0x0d => "VrouterInstallFail",
        0x0e => "InvalidL2Flow",
        0x0f => "TSNFlow",
        0x10 => "NoMirrorentry",
        0x11 => "SameFlowRflowKey",
        0x12 => "NoFipPortMap",
        0x13 => "NoSrcRtRpfNh",
        0x14 => "FatFlowNatConflict",
        0x15 => "Policy",
        0x16 => "OutPolicy",
        0x17 => "SG",
        0x18 => "OutSG",
        0x19 => "RevSG",
        0x1a => "RevOutSG",
        0x1b => "FwPolicy",
        0x1c => "OutFwPolicy",
        0x1d => "RevFwPolicy",
        0x1e => "RevOutFwPolicy",
        0x1f => "FWAASPolicy",
        0x20 => "OutFWAASPolicy",
        0x21 => "RevFWAASPolicy",
        0x22 => "RevOutFWAASPolicy",
        _ => return None,
    })
}

/// `flow -l` header: table summary, legend, columns.
pub fn flow_header(d: &VrFlowTableData, entries: u32) -> String {
    let mut s = format!("Flow table(size {}, entries {entries})\n\n", d.ftable_size);
    let _ = writeln!(
        s,
        "Entries: Created {} Added {} Deleted {} Changed {} Processed {} Used Overflow entries {}",
        d.ftable_created,
        d.ftable_added,
        d.ftable_deleted,
        d.ftable_changed,
        d.ftable_processed,
        d.ftable_oflow_entries
    );
    let per_cpu: Vec<String> = d.ftable_hold_stat.iter().map(u32::to_string).collect();
    let _ = write!(
        s,
        "(Created Flows/CPU: {})(oflows {})\n\n",
        per_cpu.join(" "),
        d.ftable_hold_oflows
    );
    // Ours (field 101): entries the datapath removed after its hold
    // timeout (their trap was lost, or no agent answered).
    if d.ftable_hold_expired > 0 {
        let _ = write!(
            s,
            "Hold entries {} (removed after the hold timeout: {})\n\n",
            d.ftable_hold_entries, d.ftable_hold_expired
        );
    }
    s.push_str(
        "Action:F=Forward, D=Drop N=NAT(S=SNAT, D=DNAT, Ps=SPAT, Pd=DPAT, L=Link Local Port)\n \
         Other:K(nh)=Key_Nexthop, S(nh)=RPF_Nexthop\n \
         Flags:E=Evicted, Ec=Evict Candidate, N=New Flow, M=Modified Dm=Delete Marked\n\
         TCP(r=reverse):S=SYN, F=FIN, R=RST, C=HalfClose, E=Established, D=Dead\n\n",
    );
    s.push_str(
        "    Index                Source:Port/Destination:Port                      Proto(V)\n",
    );
    s.push_str(
        "-----------------------------------------------------------------------------------\n",
    );
    s
}

/// One flow entry of the mapped table.
pub fn flow_entry(idx: u32, fe: &FlowEntry) -> String {
    let mut s = String::new();
    let k = &fe.key;
    let (src, dst) = if k.is_ipv6() {
        (
            Ipv6Addr::from(k.src()).to_string(),
            Ipv6Addr::from(k.dst()).to_string(),
        )
    } else {
        (
            Ipv4Addr::from(k.src_v4()).to_string(),
            Ipv4Addr::from(k.dst_v4()).to_string(),
        )
    };
    let _ = write!(s, "{idx:9}");
    match fe.rflow() {
        Some(r) => {
            let _ = write!(s, "<=>{r:<9}");
        }
        None => s.push_str(&" ".repeat(12)),
    }
    s.push_str("    ");
    let first = format!("{src}:{:<5}", k.sport());
    let _ = write!(s, "{first:<46}    {:3} ({}", k.proto, fe.vrf);
    if fe.flags & VR_FLOW_FLAG_VRFT != 0 {
        let _ = write!(s, "->{}", fe.dvrf);
    }
    s.push_str(")\n");
    let _ = writeln!(s, "{:25}{dst}:{:<5}", "", k.dport());
    let action = match fe.action {
        VR_FLOW_ACTION_HOLD => "H".to_string(),
        VR_FLOW_ACTION_FORWARD => "F".to_string(),
        VR_FLOW_ACTION_DROP => format!(
            "D({})",
            flow_drop_reason(fe.drop_reason)
                .map(str::to_string)
                .unwrap_or_else(|| fe.drop_reason.to_string())
        ),
        VR_FLOW_ACTION_NAT => {
            let mut f = String::new();
            for (bit, sym) in [
                (VR_FLOW_FLAG_SNAT, "S"),
                (VR_FLOW_FLAG_DNAT, "D"),
                (VR_FLOW_FLAG_SPAT, "Ps"),
                (VR_FLOW_FLAG_DPAT, "Pd"),
                (VR_FLOW_FLAG_LINK_LOCAL, "L"),
            ] {
                if fe.flags & bit != 0 {
                    f.push_str(sym);
                }
            }
            format!("N({f})")
        }
        _ => "U".to_string(),
    };
    let mut flags = String::new();
    for (bit, sym) in [
        (VR_FLOW_FLAG_EVICTED, "E"),
        (VR_FLOW_FLAG_EVICT_CANDIDATE, "Ec"),
        (VR_FLOW_FLAG_NEW_FLOW, "N"),
        (VR_FLOW_FLAG_MODIFIED, "M"),
        (VR_FLOW_FLAG_DELETE_MARKED, "Dm"),
    ] {
        if fe.flags & bit != 0 {
            flags.push_str(sym);
        }
    }
    let _ = write!(
        s,
        "(Gen: {}, K(nh):{}, Action:{action}, Flags:{flags}, ",
        fe.gen_id,
        k.nh_id()
    );
    if k.proto == 6 {
        let mut t = String::new();
        for (bit, sym) in [
            (VR_FLOW_TCP_SYN, "S"),
            (VR_FLOW_TCP_SYN_R, "Sr"),
            (VR_FLOW_TCP_ESTABLISHED, "E"),
            (VR_FLOW_TCP_ESTABLISHED_R, "Er"),
            (VR_FLOW_TCP_FIN, "F"),
            (VR_FLOW_TCP_FIN_R, "Fr"),
            (VR_FLOW_TCP_RST, "R"),
            (VR_FLOW_TCP_HALF_CLOSE, "C"),
            (VR_FLOW_TCP_DEAD, "D"),
        ] {
            if fe.tcp_flags & bit != 0 {
                t.push_str(sym);
            }
        }
        let _ = write!(s, "TCP:{t}, ");
    }
    if fe.ecmp_nh_index >= 0 {
        let _ = write!(s, "E:{}, ", fe.ecmp_nh_index);
    }
    let _ = write!(
        s,
        "QOS:{}, S(nh):{},\n Stats:{}/{}, SPort {}, TTL {})\n\n",
        fe.qos_id,
        fe.src_nh_index,
        fe.packets(),
        fe.bytes(),
        fe.udp_src_port,
        fe.ttl
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksync::convert::ipv4_to_wire;
    use sandesh::SandeshOp;

    #[test]
    fn vif_like_upstream() {
        let r = VrInterfaceReq {
            vifr_idx: 3,
            vifr_type: 3,
            vifr_name: "tap1".into(),
            vifr_mac: vec![0, 0, 0x5e, 0, 1, 0],
            vifr_ip: ipv4_to_wire([10, 1, 1, 3]),
            vifr_vrf: 1,
            vifr_mcast_vrf: 65535,
            vifr_flags: 0x41 | 0x80,
            vifr_nh_id: 12,
            vifr_ref_cnt: 1,
            vifr_ipackets: 5,
            vifr_ibytes: 500,
            vifr_parent_vif_idx: -1,
            vifr_mtu: 1500,
            ..Default::default()
        };
        let want = "\
vif0/3      OS: tap1 NH: 12
            Type:Virtual HWaddr:00:00:5e:00:01:00 IPaddr:10.1.1.3
            Vrf:1 Mcast Vrf:65535 Flags:PL3L2 QOS:0 Ref:1
            RX packets:5  bytes:500 errors:0
            TX packets:0  bytes:0 errors:0
            Drops:0
            MTU:1500

";
        assert_eq!(vif(&r), want);
        assert!(vif_header().starts_with("Vrouter Interface Table\n\nFlags: P=Policy, X=Cross Connect, S=Service Chain, Mr=Receive Mirror\n       Mt="));
        assert_eq!(vif_flags(0), "NULL");
    }

    #[test]
    fn nh_like_upstream() {
        let r = VrNexthopReq {
            h_op: SandeshOp::Get,
            nhr_id: 21,
            nhr_type: nh_type::TUNNEL,
            nhr_family: AF_INET,
            nhr_flags: 0x1 | 0x40,
            nhr_encap_oif_id: vec![0],
            nhr_encap: vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0],
            nhr_tun_sip: ipv4_to_wire([192, 0, 2, 1]),
            nhr_tun_dip: ipv4_to_wire([192, 0, 2, 2]),
            ..Default::default()
        };
        let want = "\
Id:21         Type:Tunnel         Fmly: AF_INET  Rid:0  Ref_cnt:0          Vrf:0
              Flags:Valid, MPLSoUDP, 
              Oif:0 Len:14 Data:02 00 00 00 00 02 02 00 00 00 00 01 08 00 
              Sip:192.0.2.1 Dip:192.0.2.2

";
        assert_eq!(nh(&r), want);
        let c = VrNexthopReq {
            nhr_id: 5,
            nhr_type: nh_type::COMPOSITE,
            nhr_family: AF_INET,
            nhr_flags: 0x1 | 0x400,
            nhr_nh_list: vec![3, 4],
            nhr_label_list: vec![-1, 100],
            ..Default::default()
        };
        assert!(nh(&c).contains("Flags:Valid, Ecmp, \n              Sub NH(label): 3 4(100)\n"));
        assert_eq!(nh_flags(0, 1), "None");
    }

    #[test]
    fn routes_like_upstream() {
        let r = VrRouteReq {
            rtr_family: 2,
            rtr_prefix: vec![10, 1, 1, 0],
            rtr_prefix_len: 24,
            rtr_replace_plen: 24,
            rtr_label_flags: 0x3,
            rtr_label: 17,
            rtr_nh_id: 21,
            rtr_mac: vec![2, 0, 0, 0, 0, 0x0a],
            rtr_index: -1,
            ..Default::default()
        };
        assert_eq!(
            rt_inet(&r),
            "10.1.1.0/24            24           LP         17             21        2:0:0:0:0:a(-1)\n"
        );
        let b = VrRouteReq {
            rtr_family: 7,
            rtr_mac: vec![2, 0, 0, 0, 0, 0x0a],
            rtr_label_flags: 0x3,
            rtr_label: 5000,
            rtr_nh_id: 3,
            rtr_index: -1,
            ..Default::default()
        };
        assert_eq!(
            rt_bridge(&b),
            "-           2:0:0:0:0:a                  L                 5000            3               0\n"
        );
        assert!(rt_header(AF_INET6, 2).contains("vRouter inet6 routing table 0/2/unicast"));
    }

    #[test]
    fn small_tables() {
        let m = VrMplsReq {
            mr_label: 16,
            mr_nhid: 21,
            ..Default::default()
        };
        assert_eq!(mpls(&m), "      16        21\n");
        let v = VrVxlanReq {
            vxlanr_vnid: 4096,
            vxlanr_nhid: 7,
            ..Default::default()
        };
        assert_eq!(vxlan(&v), "   4096    7\n");
        let d = VrDropStatsReq {
            vds_invalid_if: 3,
            vds_discard: 1,
            ..Default::default()
        };
        assert_eq!(
            dropstats(&d),
            "Invalid IF                    3\nDiscards                      1\n"
        );
        assert_eq!(dropstats(&VrDropStatsReq::default()), "");
    }

    #[test]
    fn vrouter_info_reads_build_json() {
        let o = VrouterOps {
            vo_build_info: ksync::default_build_info(),
            vo_interfaces: 4096,
            ..Default::default()
        };
        let s = vrouter_info(&o);
        assert!(
            s.starts_with(&format!(
                "vRouter module version       {} (Built by vrouter-rs)\n\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{s}"
        );
        assert!(s.contains("    Interfaces limit                     4096\n"));
    }

    #[test]
    fn flow_rows() {
        let mut fe = FlowEntry::EMPTY;
        fe.key = FlowKey::new_v4(6, 40000, 80, 12, [10, 1, 1, 3], [10, 1, 1, 4]);
        fe.action = VR_FLOW_ACTION_FORWARD;
        fe.rflow = 7;
        fe.vrf = 1;
        fe.gen_id = 2;
        fe.tcp_flags = VR_FLOW_TCP_SYN;
        let s = flow_entry(5, &fe);
        assert!(
            s.starts_with("        5<=>7            10.1.1.3:40000"),
            "{s}"
        );
        assert!(s.contains("  6 (1)\n"));
        assert!(s.contains("10.1.1.4:80   \n"));
        assert!(s.contains("(Gen: 2, K(nh):12, Action:F, Flags:, TCP:S, "));
        fe.action = VR_FLOW_ACTION_DROP;
        fe.drop_reason = 0x15;
        assert!(flow_entry(5, &fe).contains("Action:D(Policy)"));
    }
}
