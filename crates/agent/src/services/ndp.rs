//! IPv6 neighbour discovery and ICMPv6 echo for container ports, as
//! upstream's agent answers them (`Icmpv6Handler`):
//!
//! * router solicitation → router advertisement from `fe80::5e00:100`
//!   (upstream's `PKT0_LINKLOCAL_ADDRESS`) with the vRouter MAC as source
//!   link-layer address: hop limit 64, flags managed + other (addresses and
//!   the rest come from DHCPv6), router lifetime 9000 s when the subnet has
//!   an IPv6 gateway (0 otherwise), and the subnet as an on-link prefix
//!   (no autonomous flag: no SLAAC), infinite lifetimes;
//! * neighbour solicitation the datapath traps (a target it has no proxy
//!   route for) → neighbour advertisement for the gateway or DNS address
//!   (the vRouter MAC, router flag) or a known address of the VRF (its
//!   MAC); unknown targets are not answered;
//! * echo request to the gateway or DNS address → echo reply;
//! * neighbour advertisements from containers are not needed (the agent
//!   knows every port's address) and are ignored.

use std::net::Ipv6Addr;

use dp_core::VROUTER_MAC;
use packet::parse::{Family, PacketInfo};
use packet::wire::{
    ChecksumCapabilities, Duration, EthernetAddress, Icmpv6Packet, Icmpv6Repr, NdiscNeighborFlags,
    NdiscPrefixInfoFlags, NdiscPrefixInformation, NdiscRepr, NdiscRouterFlags, RawHardwareAddress,
};

use super::{Outcome, PortInfo, ServiceContext, Trap};

/// The link-local address the vRouter answers from (upstream's
/// `PKT0_LINKLOCAL_ADDRESS`, `fe80::5e00:100`).
pub const ROUTER_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x5e00, 0x100);
/// Router lifetime of an advertisement when the subnet has a gateway.
pub const ROUTER_LIFETIME_SECS: u64 = 9000;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ETH: usize = 14;

/// An IPv6 frame carrying ICMPv6 (next header 58 right after the fixed
/// header).
pub(crate) fn is_icmpv6(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&[0x86, 0xdd]) && frame.get(ETH + 6) == Some(&58)
}

/// Answers an ICMPv6 message trapped with `cmd::L3_PROTOCOLS`.
pub(crate) fn answer(t: &Trap<'_>, ctx: &impl ServiceContext, out: &mut Vec<u8>) -> Outcome {
    let Ok(info) = PacketInfo::parse(t.frame) else {
        return Outcome::Ignored("malformed IPv6");
    };
    if info.family != Family::Ipv6 || info.proto != 58 || info.l4_offset == 0 {
        return Outcome::Ignored("not ICMPv6");
    }
    let src = Ipv6Addr::from(info.src);
    let dst = Ipv6Addr::from(info.dst);
    let icmp = info.l4(t.frame);
    let Ok(pkt) = Icmpv6Packet::new_checked(icmp) else {
        return Outcome::Ignored("truncated ICMPv6");
    };
    let caps = ChecksumCapabilities::default();
    let Ok(repr) = Icmpv6Repr::parse(&src, &dst, &pkt, &caps) else {
        return Outcome::Ignored("bad ICMPv6 checksum or message");
    };
    // Neighbour discovery comes with hop limit 255 only (RFC 4861 6.1).
    let nd_ok = info.ttl == 255;
    let Some(port) = ctx.port(t.hdr.ifindex) else {
        return Outcome::Ignored("ICMPv6 on an unknown port");
    };
    let reply = match repr {
        Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit { .. }) if nd_ok => {
            let Some((prefix, plen)) = port.prefix6 else {
                return Outcome::Ignored("router solicitation on a port without an IPv6 subnet");
            };
            let lifetime = if port.gateway6.is_some() {
                ROUTER_LIFETIME_SECS
            } else {
                0
            };
            let ra = NdiscRepr::RouterAdvert {
                hop_limit: 64,
                flags: NdiscRouterFlags::MANAGED | NdiscRouterFlags::OTHER,
                router_lifetime: Duration::from_secs(lifetime),
                reachable_time: Duration::from_millis(0),
                retrans_time: Duration::from_millis(0),
                lladdr: Some(RawHardwareAddress::from(EthernetAddress(VROUTER_MAC))),
                mtu: None,
                prefix_info: Some(NdiscPrefixInformation {
                    prefix_len: plen,
                    flags: NdiscPrefixInfoFlags::ON_LINK,
                    valid_lifetime: Duration::from_secs(u64::from(u32::MAX)),
                    preferred_lifetime: Duration::from_secs(u64::from(u32::MAX)),
                    prefix,
                }),
            };
            // To the solicitor; from the unspecified address, to all nodes.
            let (dst_ip, dst_mac) = if src.is_unspecified() {
                (ALL_NODES, ALL_NODES_MAC)
            } else {
                (src, info.src_mac)
            };
            Some((Icmpv6Repr::Ndisc(ra), ROUTER_LINK_LOCAL, dst_ip, dst_mac))
        }
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }) if nd_ok => {
            if src.is_unspecified() {
                return Outcome::Ignored("duplicate address detection is not answered");
            }
            let (mac, router) = if is_ours(&port, target_addr) {
                (VROUTER_MAC, true)
            } else if let Some(m) = ctx.mac_of6(port.vrf, target_addr) {
                (m, false)
            } else {
                return Outcome::Ignored("neighbour solicitation for an unknown address");
            };
            let mut flags = NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE;
            if router {
                flags |= NdiscNeighborFlags::ROUTER;
            }
            let na = NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr: Some(RawHardwareAddress::from(EthernetAddress(mac))),
            };
            Some((Icmpv6Repr::Ndisc(na), target_addr, src, info.src_mac))
        }
        Icmpv6Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } => {
            if !is_ours(&port, dst) {
                return Outcome::Ignored("echo request to an address the vRouter does not own");
            }
            let r = Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            Some((r, dst, src, info.src_mac))
        }
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { .. }) => {
            return Outcome::Ignored("neighbour advertisement (not needed)")
        }
        Icmpv6Repr::Ndisc(_) => return Outcome::Ignored("neighbour discovery not answered"),
        _ => None,
    };
    let Some((repr, from, to, dmac)) = reply else {
        return Outcome::Ignored("ICMPv6 message not answered");
    };
    t.begin_reply(out);
    emit(out, &repr, from, to, dmac, &caps);
    Outcome::Reply
}

/// The gateway or DNS address of the port's IPv6 subnet.
fn is_ours(port: &PortInfo, a: Ipv6Addr) -> bool {
    port.gateway6 == Some(a) || port.dns6 == Some(a)
}

/// Ethernet + IPv6 (hop limit 255) + the ICMPv6 message.
fn emit(
    out: &mut Vec<u8>,
    repr: &Icmpv6Repr<'_>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    dmac: [u8; 6],
    caps: &ChecksumCapabilities,
) {
    out.extend_from_slice(&dmac);
    out.extend_from_slice(&VROUTER_MAC);
    out.extend_from_slice(&[0x86, 0xdd]);
    let len = repr.buffer_len();
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    h[6] = 58;
    h[7] = 255;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    out.extend_from_slice(&h);
    let at = out.len();
    out.resize(at + len, 0);
    if let Some(b) = out.get_mut(at..) {
        let mut p = Icmpv6Packet::new_unchecked(b);
        repr.emit(&src, &dst, &mut p, caps);
    }
}
