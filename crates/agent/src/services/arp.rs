//! ARP answers for the gateway, the DNS address and known VMs (proxy ARP).
//!
//! Upstream's agent answers every ARP request the datapath traps for
//! addresses it owns (gateway, DNS: the vRouter MAC) or knows in the VRF
//! (the VM's MAC), so VMs never see each other's broadcasts.

use std::net::Ipv4Addr;

use dp_core::VROUTER_MAC;
use packet::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};
use packet::ETHERNET_HEADER_LEN;

use super::{Outcome, ServiceContext, Trap};

/// Ethernet frames are padded to this size (60 bytes + FCS on the wire).
const MIN_FRAME: usize = 60;
const ARP_LEN: usize = 28;

/// Answers an ARP request trapped with `cmd::ARP`.
pub(crate) fn answer(t: &Trap<'_>, ctx: &impl ServiceContext, out: &mut Vec<u8>) -> Outcome {
    let Ok(eth) = EthernetFrame::new_checked(t.frame) else {
        return Outcome::Ignored("truncated Ethernet header");
    };
    if eth.ethertype() != EthernetProtocol::Arp {
        return Outcome::Ignored("not ARP");
    }
    let Ok(repr) = ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p)) else {
        return Outcome::Ignored("malformed ARP");
    };
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_protocol_addr: tpa,
        ..
    } = repr
    else {
        return Outcome::Ignored("not Ethernet/IPv4 ARP");
    };
    if operation != ArpOperation::Request {
        return Outcome::Ignored("not an ARP request");
    }
    if spa == tpa {
        return Outcome::Ignored("gratuitous ARP");
    }
    let Some(mac) = resolve(t, ctx, tpa) else {
        return Outcome::Ignored("ARP for an unknown address");
    };
    let Some(mac) = mac else {
        return Outcome::Ignored("ARP for the port's own address");
    };

    t.begin_reply(out);
    let start = out.len();
    out.resize(start + MIN_FRAME, 0);
    let Some(buf) = out.get_mut(start..) else {
        return Outcome::Ignored("internal: reply buffer");
    };
    let mut f = EthernetFrame::new_unchecked(&mut *buf);
    EthernetRepr {
        src_addr: EthernetAddress(mac),
        dst_addr: eth.src_addr(),
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut f);
    let Some(arp) = buf.get_mut(ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ARP_LEN) else {
        return Outcome::Ignored("internal: reply buffer");
    };
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: tpa,
        target_hardware_addr: sha,
        target_protocol_addr: spa,
    }
    .emit(&mut ArpPacket::new_unchecked(arp));
    Outcome::Reply
}

/// The MAC that owns `tpa` as seen from the port: `None` if unknown,
/// `Some(None)` if it is the asking port's own address (a duplicate
/// address probe must not be answered).
fn resolve(t: &Trap<'_>, ctx: &impl ServiceContext, tpa: Ipv4Addr) -> Option<Option<[u8; 6]>> {
    if let Some(port) = ctx.port(t.hdr.ifindex) {
        if port.ip == Some(tpa) {
            return Some(None);
        }
        if port.gateway == Some(tpa) || port.dns == Some(tpa) {
            return Some(Some(VROUTER_MAC));
        }
    }
    ctx.mac_of(t.hdr.vrf, tpa).map(Some)
}
