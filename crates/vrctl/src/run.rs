//! The commands: build requests, send them, print the answers.

use std::io::Write;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Context, Result};
use dp_core::nexthop::{nh_type, AF_BRIDGE, AF_INET, AF_INET6};
use dp_core::route::{be_flags, rt_flags};
use dp_core::{NhFlags, VifFlags, VROUTER_MAC};
use ksync::convert::{ipv4_to_wire, ipv6_to_wire};
use sandesh::{
    FlowOp, Message, SandeshOp, VrDropStatsReq, VrFlowTableData, VrInterfaceReq, VrMplsReq,
    VrNexthopReq, VrRouteReq, VrVrfReq, VrVxlanReq, VrouterOps,
};

use crate::cli::*;
use crate::client::{Client, Transport};
use crate::print;

/// Run `cmd` against the datapath behind `client`, printing to `out`.
pub fn run<T: Transport>(cmd: &Cmd, client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    match cmd {
        Cmd::Vif(a) => vif(a, client, out),
        Cmd::Nh(a) => nh(a, client, out),
        Cmd::Rt(a) => rt(a, client, out),
        Cmd::Mpls(a) => mpls(a, client, out),
        Cmd::Vxlan(a) => vxlan(a, client, out),
        Cmd::Vrf(a) => vrf(a, client, out),
        Cmd::Flow(_) => flow_list(client, out),
        Cmd::Dropstats(a) => dropstats(a, client, out),
        Cmd::Vrouter(_) => vrouter_info(client, out),
    }
}

// ---- vif --------------------------------------------------------------------

fn vif_req(op: SandeshOp, idx: i32) -> VrInterfaceReq {
    VrInterfaceReq {
        h_op: op,
        vifr_idx: idx,
        ..Default::default()
    }
}

/// Vif `i` by its vif index only (os_idx -1: an index beyond the table
/// would otherwise match by OS index, as upstream).
fn vif_get<T: Transport>(client: &mut Client<T>, i: u16) -> Result<VrInterfaceReq> {
    let m = client.get(VrInterfaceReq {
        vifr_os_idx: -1,
        ..vif_req(SandeshOp::Get, i32::from(i))
    })?;
    let Message::Interface(v) = m else {
        bail!("vif --get answered with {}", m.name());
    };
    Ok(v)
}

fn vif_dump<T: Transport>(client: &mut Client<T>) -> Result<Vec<VrInterfaceReq>> {
    let all = client.dump(ksync::dump::vifs)?;
    Ok(all
        .into_iter()
        .filter_map(|m| match m {
            Message::Interface(v) => Some(v),
            _ => None,
        })
        .collect())
}

fn vif<T: Transport>(a: &VifArgs, client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    if a.list {
        let vifs = vif_dump(client)?;
        write!(out, "{}", print::vif_header())?;
        for v in &vifs {
            write!(out, "{}", print::vif(v))?;
        }
    } else if let Some(i) = a.get {
        let v = vif_get(client, i)?;
        write!(out, "{}{}", print::vif_header(), print::vif(&v))?;
    } else if let Some(name) = &a.add {
        let kind = a.kind.ok_or_else(|| anyhow!("vif --add needs --type"))?;
        if (kind == VifKind::VirtualVlan) != a.parent.is_some() {
            bail!("--parent and --vlan go with --type virtual-vlan, and it needs them");
        }
        let idx = match a.idx {
            Some(i) => i,
            None => {
                let used: Vec<i32> = vif_dump(client)?.iter().map(|v| v.vifr_idx).collect();
                (0..=u16::MAX)
                    .find(|i| !used.contains(&i32::from(*i)))
                    .ok_or_else(|| anyhow!("no free vif index"))?
            }
        };
        let mut flags = VifFlags::L3_ENABLED | VifFlags::L2_ENABLED;
        flags.set(VifFlags::POLICY_ENABLED, a.policy);
        flags.set(VifFlags::VHOST_PHYS, a.vhost_phys);
        flags.set(VifFlags::DHCP_ENABLED, a.dhcp_enable);
        flags.set(VifFlags::XCONNECT, a.xconnect.is_some());
        let (ip6_u, ip6_l) = ipv6_to_wire(a.ip6.map_or([0; 16], |x| x.octets()));
        let req = VrInterfaceReq {
            h_op: SandeshOp::Add,
            vifr_idx: i32::from(idx),
            vifr_type: match kind {
                VifKind::Host => 0,
                VifKind::Agent => 1,
                VifKind::Physical => 2,
                VifKind::Virtual => 3,
                VifKind::VirtualVlan => 7,
            },
            vifr_parent_vif_idx: a.parent.map_or(-1, i32::from),
            vifr_vlan_id: a.vlan.map_or(-1, |v| v as i16),
            vifr_ovlan_id: a.ovlan.or(a.vlan).map_or(-1, |v| v as i16),
            vifr_name: name.clone(),
            vifr_os_idx: a.os_idx.unwrap_or(0) as i32,
            vifr_mac: a.mac.unwrap_or(VROUTER_MAC).to_vec(),
            vifr_ip: ipv4_to_wire(a.ip.map_or([0; 4], |x| x.octets())),
            vifr_ip6_u: ip6_u,
            vifr_ip6_l: ip6_l,
            vifr_vrf: i32::from(a.vrf.unwrap_or(0)),
            // 0: the interface's own MTU, which the datapath reads.
            vifr_mtu: i32::from(a.mtu.unwrap_or(0)),
            vifr_flags: flags.bits() as i32,
            vifr_nh_id: a.nh.unwrap_or(0) as i32,
            vifr_cross_connect_idx: a.xconnect.map(i32::from).into_iter().collect(),
            vifr_if_guid: a.guid.map(|g| g.to_vec()).unwrap_or_default(),
            vifr_mcast_vrf: 65535,
            ..Default::default()
        };
        client
            .op(req)
            .with_context(|| format!("vif --add {name} as vif0/{idx}"))?;
        writeln!(out, "vif0/{idx} added ({name})")?;
    } else if let Some(which) = a.clear {
        let name = match which {
            Some(i) => {
                // The datapath clears a missing vif without complaint (as
                // upstream's does): ask first, to say so.
                let v = vif_get(client, i).with_context(|| format!("vif --clear {i}"))?;
                Some(format!("vif0/{i} ({})", v.vifr_name))
            }
            None => None,
        };
        client
            .get(vif_req(SandeshOp::Reset, which.map_or(-1, i32::from)))
            .context("vif --clear")?;
        match name {
            Some(n) => writeln!(out, "Vif stats cleared for {n}")?,
            None => writeln!(out, "Vif stats cleared for every vif")?,
        }
    } else if let Some(v) = &a.delete {
        let req = match v {
            VifRef::Index(i) => vif_req(SandeshOp::Del, i32::from(*i)),
            VifRef::Name(n) => VrInterfaceReq {
                vifr_name: n.clone(),
                ..vif_req(SandeshOp::Del, -1)
            },
        };
        client.op(req).context("vif --delete")?;
    }
    Ok(())
}

// ---- nh ---------------------------------------------------------------------

fn nh_req(op: SandeshOp, id: u32) -> VrNexthopReq {
    VrNexthopReq {
        h_op: op,
        nhr_id: id as i32,
        ..Default::default()
    }
}

fn l2_rewrite(dmac: [u8; 6], smac: [u8; 6]) -> Vec<u8> {
    let mut e = dmac.to_vec();
    e.extend_from_slice(&smac);
    e.extend_from_slice(&0x0800u16.to_be_bytes());
    e
}

fn nh<T: Transport>(a: &NhArgs, client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    if a.list {
        let all = client.dump(ksync::dump::nexthops)?;
        for m in &all {
            if let Message::Nexthop(n) = m {
                write!(out, "{}", print::nh(n))?;
            }
        }
    } else if let Some(id) = a.get {
        let Message::Nexthop(n) = client.get(nh_req(SandeshOp::Get, id))? else {
            bail!("nh --get answered with another object");
        };
        write!(out, "{}", print::nh(&n))?;
        for sub in &n.nhr_nh_list {
            if let Ok(Message::Nexthop(s)) = client.get(nh_req(SandeshOp::Get, *sub as u32)) {
                write!(out, "{}", print::nh(&s))?;
            }
        }
    } else if let Some(id) = a.create {
        let req = nh_create(a, id, client)?;
        client
            .op(req)
            .with_context(|| format!("nh --create {id}"))?;
    } else if let Some(id) = a.delete {
        client
            .op(nh_req(SandeshOp::Del, id))
            .with_context(|| format!("nh --delete {id}"))?;
    }
    Ok(())
}

fn nh_create<T: Transport>(a: &NhArgs, id: u32, client: &mut Client<T>) -> Result<VrNexthopReq> {
    let kind = a.kind.ok_or_else(|| anyhow!("nh --create needs --type"))?;
    let need = |what: &str| anyhow!("nh --create {id} --type {kind:?} needs {what}");
    let mut flags = NhFlags::VALID;
    flags.set(NhFlags::POLICY_ENABLED, a.pol);
    let mut r = VrNexthopReq {
        h_op: SandeshOp::Add,
        nhr_id: id as i32,
        nhr_family: if a.l2 { AF_BRIDGE } else { AF_INET },
        nhr_vrf: i32::from(a.vrf.unwrap_or(0)),
        ..Default::default()
    };
    match kind {
        NhKindArg::Encap => {
            let oif = a.oif.ok_or_else(|| need("--oif"))?;
            r.nhr_type = nh_type::ENCAP;
            r.nhr_encap_oif_id = vec![i32::from(oif)];
            if let Some(d) = a.dmac {
                r.nhr_encap = l2_rewrite(d, a.smac.unwrap_or(VROUTER_MAC));
            } else if !a.l2 {
                return Err(need("--dmac (the MAC of the port's peer)"));
            }
        }
        NhKindArg::Tunnel => {
            let oif = a.oif.ok_or_else(|| need("--oif (the fabric vif)"))?;
            let sip = a.sip.ok_or_else(|| need("--sip"))?;
            let dip = a.dip.ok_or_else(|| need("--dip"))?;
            let dmac = a
                .dmac
                .ok_or_else(|| need("--dmac (the fabric next hop's MAC)"))?;
            let smac = match a.smac {
                Some(m) => m,
                None => match client.get(VrInterfaceReq {
                    vifr_os_idx: -1,
                    ..vif_req(SandeshOp::Get, i32::from(oif))
                }) {
                    Ok(Message::Interface(v)) => v.vifr_mac.as_slice().try_into().unwrap_or([0; 6]),
                    _ => bail!("nh --create {id}: --oif {oif} is not a vif (give --smac to skip the lookup)"),
                },
            };
            r.nhr_type = nh_type::TUNNEL;
            r.nhr_family = AF_INET;
            flags |= if a.vxlan {
                NhFlags::TUNNEL_VXLAN
            } else if a.udp {
                NhFlags::TUNNEL_UDP_MPLS
            } else {
                NhFlags::TUNNEL_GRE
            };
            r.nhr_encap_oif_id = vec![i32::from(oif)];
            r.nhr_encap = l2_rewrite(dmac, smac);
            r.nhr_tun_sip = ipv4_to_wire(sip.octets());
            r.nhr_tun_dip = ipv4_to_wire(dip.octets());
        }
        NhKindArg::Composite => {
            let members = a
                .cni
                .as_ref()
                .ok_or_else(|| need("--cni (member next hops)"))?;
            let labels = a.lbl.clone().unwrap_or_else(|| vec![-1; members.len()]);
            if labels.len() != members.len() {
                bail!(
                    "nh --create {id}: --lbl has {} labels for {} --cni members",
                    labels.len(),
                    members.len()
                );
            }
            r.nhr_type = nh_type::COMPOSITE;
            flags.set(NhFlags::COMPOSITE_ECMP, a.ecmp);
            r.nhr_nh_list = members.iter().map(|m| *m as i32).collect();
            r.nhr_label_list = labels;
            r.nhr_nh_count = members.len() as i16;
        }
        NhKindArg::Vrf => {
            a.vrf
                .ok_or_else(|| need("--vrf (the VRF to continue in)"))?;
            r.nhr_type = nh_type::VRF_TRANSLATE;
        }
        NhKindArg::Receive => r.nhr_type = nh_type::RCV,
        NhKindArg::Discard => r.nhr_type = nh_type::DISCARD,
        NhKindArg::Resolve => r.nhr_type = nh_type::RESOLVE,
        NhKindArg::L2Receive => {
            r.nhr_type = nh_type::L2_RCV;
            r.nhr_family = AF_BRIDGE;
        }
    }
    r.nhr_flags = flags.bits();
    Ok(r)
}

// ---- rt ---------------------------------------------------------------------

fn family_of(a: &RtArgs, addr: Option<IpAddr>) -> u8 {
    match (a.family, addr) {
        (Some(FamilyArg::Inet), _) => AF_INET,
        (Some(FamilyArg::Inet6), _) => AF_INET6,
        (Some(FamilyArg::Bridge), _) => AF_BRIDGE,
        (None, Some(IpAddr::V6(_))) => AF_INET6,
        (None, Some(IpAddr::V4(_))) => AF_INET,
        (None, None) if a.mac.is_some() && a.dump.is_none() => AF_BRIDGE,
        (None, None) => AF_INET,
    }
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(x) => x.octets().to_vec(),
        IpAddr::V6(x) => x.octets().to_vec(),
    }
}

fn rt<T: Transport>(a: &RtArgs, client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    if let Some(vrf) = a.dump {
        let family = family_of(a, None);
        let all = client.dump(|last| ksync::dump::routes(vrf, family, last))?;
        write!(out, "{}", print::rt_header(family, vrf))?;
        for m in &all {
            if let Message::Route(r) = m {
                if family == AF_BRIDGE {
                    write!(out, "{}", print::rt_bridge(r))?;
                } else {
                    write!(out, "{}", print::rt_inet(r))?;
                }
            }
        }
        return Ok(());
    }
    let vrf = a
        .vrf
        .ok_or_else(|| anyhow!("rt needs --vrf for --get, --create and --delete"))?;
    let target = if a.get.is_some() { a.get } else { a.prefix };
    let family = family_of(a, target.map(|t| t.0));
    let mut r = VrRouteReq {
        rtr_vrf_id: i32::from(vrf),
        rtr_family: i32::from(family),
        rtr_index: -1,
        ..Default::default()
    };
    if family == AF_BRIDGE {
        let mac = a.mac.ok_or_else(|| anyhow!("a bridge route needs --mac"))?;
        r.rtr_mac = mac.to_vec();
    } else {
        let (addr, plen) =
            target.ok_or_else(|| anyhow!("an inet route needs --prefix ADDR/PLEN"))?;
        if (family == AF_INET) != addr.is_ipv4() {
            bail!(
                "--prefix {addr} does not belong to family {}",
                if family == AF_INET { "inet" } else { "inet6" }
            );
        }
        r.rtr_prefix = addr_bytes(addr);
        r.rtr_prefix_len = i32::from(plen);
        if let Some(m) = a.mac {
            r.rtr_mac = m.to_vec();
        }
    }
    if a.get.is_some() {
        r.h_op = SandeshOp::Get;
        let Message::Route(g) = client.get(r)? else {
            bail!("rt --get answered with another object");
        };
        write!(out, "{}", print::rt_header(family, vrf))?;
        if family == AF_BRIDGE {
            write!(out, "{}", print::rt_bridge(&g))?;
        } else {
            write!(out, "{}", print::rt_inet(&g))?;
        }
    } else if a.create {
        r.h_op = SandeshOp::Add;
        r.rtr_nh_id = a.nh.ok_or_else(|| anyhow!("rt --create needs --nh"))? as i32;
        let mut flags: u16 = 0;
        if family == AF_BRIDGE {
            if a.label.is_some() {
                flags |= be_flags::LABEL_VALID;
            }
        } else {
            if a.label.is_some() {
                flags |= u16::from(rt_flags::LABEL_VALID);
            }
            if a.proxy {
                flags |= u16::from(rt_flags::ARP_PROXY);
            }
            if a.trap {
                flags |= u16::from(rt_flags::ARP_TRAP);
            }
            if a.flood {
                flags |= u16::from(rt_flags::ARP_FLOOD);
            }
        }
        r.rtr_label_flags = flags as i16;
        r.rtr_label = a.label.map_or(-1, |l| l as i32);
        client.op(r).context("rt --create")?;
    } else if a.delete {
        r.h_op = SandeshOp::Del;
        client.op(r).context("rt --delete")?;
    }
    Ok(())
}

// ---- mpls, vxlan, vrf -------------------------------------------------------

fn mpls<T: Transport>(a: &MplsArgs, client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    let req = |op, label: u32, nh: u32| VrMplsReq {
        h_op: op,
        mr_label: label as i32,
        mr_nhid: nh as i32,
        mr_marker: -1,
        ..Default::default()
    };
    if a.dump {
        let all = client.dump(ksync::dump::labels)?;
        write!(out, "{}", print::mpls_header())?;
        for m in &all {
            if let Message::Mpls(m) = m {
                write!(out, "{}", print::mpls(m))?;
            }
        }
    } else if let Some(l) = a.get {
        let Message::Mpls(m) = client.get(req(SandeshOp::Get, l, 0))? else {
            bail!("mpls --get answered with another object");
        };
        write!(out, "{}{}", print::mpls_header(), print::mpls(&m))?;
    } else if let Some(l) = a.create {
        let nh = a.nh.ok_or_else(|| anyhow!("mpls --create needs --nh"))?;
        client
            .op(req(SandeshOp::Add, l, nh))
            .with_context(|| format!("mpls --create {l} --nh {nh}"))?;
    } else if let Some(l) = a.delete {
        client
            .op(req(SandeshOp::Del, l, 0))
            .with_context(|| format!("mpls --delete {l}"))?;
    }
    Ok(())
}

fn vxlan<T: Transport>(a: &VxlanArgs, client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    let req = |op, vni: u32, nh: u32| VrVxlanReq {
        h_op: op,
        vxlanr_vnid: vni as i32,
        vxlanr_nhid: nh as i32,
        ..Default::default()
    };
    if a.dump {
        let all = client.dump(ksync::dump::vnis)?;
        write!(out, "{}", print::vxlan_header())?;
        for m in &all {
            if let Message::Vxlan(v) = m {
                write!(out, "{}", print::vxlan(v))?;
            }
        }
    } else if let Some(v) = a.get {
        let Message::Vxlan(x) = client.get(req(SandeshOp::Get, v, 0))? else {
            bail!("vxlan --get answered with another object");
        };
        write!(out, "{}{}", print::vxlan_header(), print::vxlan(&x))?;
    } else if let Some(v) = a.create {
        let nh = a.nh.ok_or_else(|| anyhow!("vxlan --create needs --nh"))?;
        client
            .op(req(SandeshOp::Add, v, nh))
            .with_context(|| format!("vxlan --create {v} --nh {nh}"))?;
    } else if let Some(v) = a.delete {
        client
            .op(req(SandeshOp::Del, v, 0))
            .with_context(|| format!("vxlan --delete {v}"))?;
    }
    Ok(())
}

fn vrf<T: Transport>(a: &VrfArgs, client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    let req = |op, v: u16| VrVrfReq {
        h_op: op,
        vrf_idx: i32::from(v),
        vrf_marker: -1,
        ..Default::default()
    };
    if a.dump {
        let all = client.dump(|last| {
            let mut r = req(SandeshOp::Dump, 0);
            if let Some(Message::Vrf(v)) = last {
                r.vrf_marker = v.vrf_idx;
            }
            r.into()
        })?;
        write!(out, "{}", print::vrf_header())?;
        for m in &all {
            if let Message::Vrf(v) = m {
                write!(out, "{}", print::vrf(v))?;
            }
        }
    } else if let Some(v) = a.get {
        let Message::Vrf(x) = client.get(req(SandeshOp::Get, v))? else {
            bail!("vrf --get answered with another object");
        };
        write!(out, "{}{}", print::vrf_header(), print::vrf(&x))?;
    } else if let Some(v) = a.create {
        client
            .op(req(SandeshOp::Add, v))
            .with_context(|| format!("vrf --create {v}"))?;
    } else if let Some(v) = a.delete {
        client
            .op(req(SandeshOp::Del, v))
            .with_context(|| format!("vrf --delete {v}"))?;
    }
    Ok(())
}

// ---- flow, dropstats, vrouter -----------------------------------------------

fn flow_list<T: Transport>(client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    let Message::FlowTableData(d) = client.get(VrFlowTableData {
        ftable_op: FlowOp::FlowTableGet,
        ..Default::default()
    })?
    else {
        bail!("flow table request answered with another object");
    };
    if d.ftable_file_path.is_empty() {
        bail!("the vRouter does not share its flow table (vr_flow_table_data has no path)");
    }
    let shm = channels::FlowShm::open(&d.ftable_file_path)
        .with_context(|| format!("cannot map the flow table {}", d.ftable_file_path))?;
    write!(out, "{}", print::flow_header(&d, shm.capacity()))?;
    // As upstream's `flow -l`: the entries in use (ACTIVE, held ones too).
    for (i, fe) in shm.iter_valid().filter(|(_, e)| e.is_active()) {
        write!(out, "{}", print::flow_entry(i, &fe))?;
    }
    Ok(())
}

fn dropstats<T: Transport>(
    a: &DropstatsArgs,
    client: &mut Client<T>,
    out: &mut dyn Write,
) -> Result<()> {
    if a.clear {
        client.get(VrDropStatsReq {
            h_op: SandeshOp::Reset,
            ..Default::default()
        })?;
        writeln!(
            out,
            "\nDropstats counters cleared successfully on all cores \n"
        )?;
        return Ok(());
    }
    let Message::DropStats(s) = client.get(VrDropStatsReq {
        h_op: SandeshOp::Get,
        ..Default::default()
    })?
    else {
        bail!("dropstats answered with another object");
    };
    write!(out, "{}", print::dropstats(&s))?;
    Ok(())
}

fn vrouter_info<T: Transport>(client: &mut Client<T>, out: &mut dyn Write) -> Result<()> {
    let Message::VrouterOps(o) = client.get(VrouterOps {
        h_op: SandeshOp::Get,
        ..Default::default()
    })?
    else {
        bail!("vrouter --info answered with another object");
    };
    write!(out, "{}", print::vrouter_info(&o))?;
    Ok(())
}
