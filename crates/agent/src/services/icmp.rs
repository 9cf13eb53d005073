//! Echo replies for the addresses the vRouter owns in a subnet (gateway,
//! DNS), as upstream's agent answers them: the datapath routes them to its
//! receive next hop and traps them (`cmd::L3_PROTOCOLS`).

use super::{Outcome, ServiceContext, Trap};
use dp_core::VROUTER_MAC;
use packet::checksum;

const ETH: usize = 14;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;

/// Answers an IPv4 ICMP echo request to the port's gateway or DNS address.
pub(crate) fn answer(t: &Trap<'_>, ctx: &impl ServiceContext, out: &mut Vec<u8>) -> Outcome {
    let f = t.frame;
    if f.get(12..14) != Some(&[0x08, 0x00]) {
        return Outcome::Ignored("not IPv4");
    }
    let Some(&vihl) = f.get(ETH) else {
        return Outcome::Ignored("truncated IPv4");
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 {
        return Outcome::Ignored("bad IPv4 header");
    }
    let Some(ip) = f.get(ETH..ETH + ihl) else {
        return Outcome::Ignored("truncated IPv4");
    };
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    // Fragments and options-carrying oddities are not worth answering.
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    if ip[9] != 1 || frag != 0 || total < ihl + 8 {
        return Outcome::Ignored("not an unfragmented ICMP packet");
    }
    let Some(icmp) = f.get(ETH + ihl..ETH + total) else {
        return Outcome::Ignored("truncated ICMP");
    };
    if icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 {
        return Outcome::Ignored("ICMP that is not an echo request");
    }
    if !checksum::verify(icmp) {
        return Outcome::Ignored("bad ICMP checksum");
    }
    let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let Some(port) = ctx.port(t.hdr.ifindex) else {
        return Outcome::Ignored("ICMP on an unknown port");
    };
    if port.gateway != Some(dst) && port.dns != Some(dst) {
        return Outcome::Ignored("echo request to an address the vRouter does not own");
    }
    t.begin_reply(out);
    let start = out.len();
    // Ethernet: back to the sender, from the vRouter.
    out.extend_from_slice(&f[6..12]);
    out.extend_from_slice(&VROUTER_MAC);
    out.extend_from_slice(&[0x08, 0x00]);
    // IPv4: a fresh 20-byte header, addresses swapped.
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&ip[4..6]);
    h[8] = 64;
    h[9] = 1;
    h[12..16].copy_from_slice(&ip[16..20]);
    h[16..20].copy_from_slice(&ip[12..16]);
    let c = checksum::ipv4_header_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&h);
    let at = out.len();
    out.extend_from_slice(icmp);
    if let Some(b) = out.get_mut(at..at + 4) {
        b[0] = ICMP_ECHO_REPLY;
        b[2] = 0;
        b[3] = 0;
    }
    let c = !checksum::sum(out.get(at..).unwrap_or(&[]));
    if let Some(b) = out.get_mut(at + 2..at + 4) {
        b.copy_from_slice(&c.to_be_bytes());
    }
    // Ethernet minimum.
    while out.len() - start < 60 {
        out.push(0);
    }
    Outcome::Reply
}
