//! ICMP errors for packets the datapath could not forward, as upstream's
//! agent sends them (`IcmpErrorHandler`, `Icmpv6ErrorHandler`,
//! `DiagPktHandler` for traceroute):
//!
//! * `HANDLE_DF`: a packet too big for the path (the tunnel, or a local
//!   port with a smaller MTU) that may not be fragmented (IPv4 with DF, or
//!   any IPv6 packet). The sender gets ICMP destination unreachable /
//!   fragmentation needed (type 3 code 4) or ICMPv6 packet too big (type 2)
//!   carrying the MTU the datapath put in the trap (`agent_hdr.param`), so
//!   path MTU discovery works across the overlay.
//! * `ZERO_TTL`: a routed packet whose TTL (hop limit) ran out here: ICMP
//!   time exceeded (type 11 / ICMPv6 type 3), so traceroute shows the
//!   vRouter hop.
//!
//! The error comes from the subnet's default gateway (IPv6: the IPv6
//! gateway, else the IPv4-mapped gateway, as upstream falls back to a
//! mapped address), goes to the packet's source MAC and address, and quotes
//! at most 128 bytes of the original packet (upstream's
//! `ICMP_PAYLOAD_LEN`). It leaves with `cmd SWITCH` on the vif the packet
//! came in on.
//!
//! Deliberate difference: upstream's agent answers only when the trap names
//! a flow whose key matches the packet (it always has one: every packet
//! of upstream's datapath has a flow); here flows exist only on policy
//! ports, so the answer is built from the trapped packet's own headers,
//! which are the container's (the datapath rewrote nothing before the
//! trap but the TTL).

use std::net::{Ipv4Addr, Ipv6Addr};

use dp_core::agent::cmd;
use dp_core::VROUTER_MAC;
use packet::checksum;
use packet::ETHERNET_HEADER_LEN as ETH;

use super::{Outcome, ServiceContext, Trap};

/// Bytes of the offending packet an error quotes (upstream's
/// `ICMP_PAYLOAD_LEN` / `ICMPV6_PAYLOAD_LEN`).
pub const QUOTE_LEN: usize = 128;
const ICMP_HDR: usize = 8;

/// Answers a `HANDLE_DF` or `ZERO_TTL` trap.
pub(crate) fn answer(t: &Trap<'_>, ctx: &impl ServiceContext, out: &mut Vec<u8>) -> Outcome {
    let f = t.frame;
    let Some(et) = packet::be::u16_at(f, 12) else {
        return Outcome::Ignored("truncated Ethernet header");
    };
    let Some(port) = ctx.port(t.hdr.ifindex) else {
        return Outcome::Ignored("ICMP error for an unknown port");
    };
    let src_mac: [u8; 6] = match f.get(6..12).and_then(|m| m.try_into().ok()) {
        Some(m) => m,
        None => return Outcome::Ignored("truncated Ethernet header"),
    };
    let too_big = t.hdr.cmd == cmd::HANDLE_DF;
    match et {
        0x0800 => {
            let Some(ip) = f.get(ETH..) else {
                return Outcome::Ignored("truncated IPv4");
            };
            let Some(&vihl) = ip.first() else {
                return Outcome::Ignored("truncated IPv4");
            };
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || ip.len() < ihl {
                return Outcome::Ignored("bad IPv4 header");
            }
            // Never answer an ICMP error with one (RFC 1122 3.2.2).
            if ip.get(9) == Some(&1)
                && ip
                    .get(ihl)
                    .is_some_and(|ty| matches!(ty, 3 | 4 | 5 | 11 | 12))
            {
                return Outcome::Ignored("ICMP error about an ICMP error");
            }
            let dst = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let Some(src) = port.gateway.or(port.dns) else {
                return Outcome::Ignored("no gateway to send the ICMP error from");
            };
            let (ty, code, rest) = if too_big {
                // Fragmentation needed: next-hop MTU in the low 16 bits.
                let mtu = u16::try_from(t.hdr.param).unwrap_or(u16::MAX);
                (3, 4, u32::from(mtu))
            } else {
                (11, 0, 0)
            };
            let quote = ip.get(..ip.len().min(QUOTE_LEN)).unwrap_or(&[]);
            t.begin_reply(out);
            emit_v4(out, src_mac, src, dst, ty, code, rest, quote);
            Outcome::Reply
        }
        0x86dd => {
            let Some(ip) = f.get(ETH..ETH + 40) else {
                return Outcome::Ignored("truncated IPv6");
            };
            if ip[0] >> 4 != 6 {
                return Outcome::Ignored("bad IPv6 header");
            }
            // ICMPv6 errors (types below 128) are not answered (RFC 4443).
            let inner = f.get(ETH..).unwrap_or(&[]);
            if ip[6] == 58 && inner.get(40).is_some_and(|t| *t < 128) {
                return Outcome::Ignored("ICMPv6 error about an ICMPv6 error");
            }
            let mut dst = [0u8; 16];
            dst.copy_from_slice(&ip[8..24]);
            let src = match (port.gateway6, port.gateway) {
                (Some(g), _) => g,
                (None, Some(g4)) => g4.to_ipv6_mapped(),
                (None, None) => {
                    return Outcome::Ignored("no gateway to send the ICMPv6 error from")
                }
            };
            let (ty, rest) = if too_big {
                // The path's MTU as the datapath measured it (upstream
                // sends it as is, even below the IPv6 minimum).
                (2, t.hdr.param)
            } else {
                (3, 0)
            };
            let quote = inner.get(..inner.len().min(QUOTE_LEN)).unwrap_or(&[]);
            t.begin_reply(out);
            emit_v6(out, src_mac, src, Ipv6Addr::from(dst), ty, 0, rest, quote);
            Outcome::Reply
        }
        _ => Outcome::Ignored("ICMP error for a packet that is not IP"),
    }
}

#[allow(clippy::too_many_arguments)]
fn emit_v4(
    out: &mut Vec<u8>,
    dmac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ty: u8,
    code: u8,
    rest: u32,
    quote: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&dmac);
    out.extend_from_slice(&VROUTER_MAC);
    out.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + ICMP_HDR + quote.len();
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[8] = 64;
    h[9] = 1;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum::ipv4_header_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&h);
    let at = out.len();
    out.extend_from_slice(&[ty, code, 0, 0]);
    out.extend_from_slice(&rest.to_be_bytes());
    out.extend_from_slice(quote);
    let c = !checksum::sum(out.get(at..).unwrap_or(&[]));
    if let Some(b) = out.get_mut(at + 2..at + 4) {
        b.copy_from_slice(&c.to_be_bytes());
    }
    while out.len() - start < 60 {
        out.push(0);
    }
}

#[allow(clippy::too_many_arguments)]
fn emit_v6(
    out: &mut Vec<u8>,
    dmac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    code: u8,
    rest: u32,
    quote: &[u8],
) {
    out.extend_from_slice(&dmac);
    out.extend_from_slice(&VROUTER_MAC);
    out.extend_from_slice(&[0x86, 0xdd]);
    let plen = ICMP_HDR + quote.len();
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    h[6] = 58;
    h[7] = 255;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    out.extend_from_slice(&h);
    let at = out.len();
    out.extend_from_slice(&[ty, code, 0, 0]);
    out.extend_from_slice(&rest.to_be_bytes());
    out.extend_from_slice(quote);
    let c = checksum::l4_checksum_v6(
        &src.octets(),
        &dst.octets(),
        58,
        out.get(at..).unwrap_or(&[]),
    );
    if let Some(b) = out.get_mut(at + 2..at + 4) {
        b.copy_from_slice(&c.to_be_bytes());
    }
}
