//! DHCPv6 server (RFC 8415) for container ports, as upstream's agent serves
//! it (`Dhcpv6Handler`): the address is the port's IPv6 instance-ip; the
//! server keeps no state.
//!
//! | client message | answer |
//! |---|---|
//! | SOLICIT | ADVERTISE (upstream ignores rapid commit, and so do we) |
//! | REQUEST, CONFIRM, RENEW, REBIND | REPLY with the address |
//! | RELEASE, DECLINE | REPLY, status success (nothing to free) |
//! | INFORMATION-REQUEST | REPLY without an address |
//! | others, relay messages | ignored |
//!
//! An answer carries the server id (DUID-LL of the vRouter MAC), the
//! client's id, each IA_NA / IA_TA the client sent with the port's address
//! (preferred and valid lifetime infinite, as upstream; the client's T1/T2
//! echoed), and the DNS servers option (the subnet's IPv6 DNS address, else
//! its gateway). A message naming another server id is not ours (RFC 8415
//! 16.4) and is ignored. The answer goes from the DNS (else gateway)
//! address, UDP 547 -> 546, to the client's address and MAC, hop limit 64.
//!
//! Deliberate difference: the DUID's hardware type is 1 (Ethernet, as RFC
//! 8415 11.4 has it); upstream writes 0. Clients treat the DUID as opaque.

use std::net::Ipv6Addr;

use dp_core::VROUTER_MAC;
use packet::checksum;
use packet::dhcpv6::{self, message_type as mt, option, Ia, OptionsWriter, Packet};
use packet::parse::{Family, PacketInfo};

use super::{Outcome, PortInfo, ServiceContext, Trap};

/// The server DUID: DUID-LL (type 3), hardware type 1, the vRouter MAC.
pub const SERVER_DUID: [u8; 10] = {
    let m = VROUTER_MAC;
    [0, 3, 0, 1, m[0], m[1], m[2], m[3], m[4], m[5]]
};
/// Address lifetimes (upstream: -1, infinite).
pub const LIFETIME: u32 = u32::MAX;
const MAX_ANSWER: usize = 512;

/// A UDP datagram to the DHCPv6 server port in an IPv6 frame.
pub(crate) fn is_dhcp6(frame: &[u8]) -> bool {
    matches!(PacketInfo::parse(frame), Ok(i) if i.family == Family::Ipv6 && i.proto == 17 && i.dport == dhcpv6::SERVER_PORT)
}

/// Answers a DHCPv6 message trapped with `cmd::L3_PROTOCOLS`.
pub(crate) fn answer(t: &Trap<'_>, ctx: &impl ServiceContext, out: &mut Vec<u8>) -> Outcome {
    let Ok(info) = PacketInfo::parse(t.frame) else {
        return Outcome::Ignored("malformed IPv6");
    };
    if info.family != Family::Ipv6 || info.proto != 17 || info.l4_offset == 0 {
        return Outcome::Ignored("not UDP over IPv6");
    }
    let udp = info.l4(t.frame);
    let (Some(ulen), Some(csum)) = (packet::be::u16_at(udp, 4), packet::be::u16_at(udp, 6)) else {
        return Outcome::Ignored("truncated UDP");
    };
    if usize::from(ulen) != udp.len() || ulen < 8 {
        return Outcome::Ignored("bad UDP length");
    }
    if csum == 0 || checksum::l4_checksum_v6(&info.src, &info.dst, 17, udp) != 0 {
        return Outcome::Ignored("bad UDP checksum");
    }
    let Ok(msg) = Packet::new_checked(udp.get(8..).unwrap_or(&[])) else {
        return Outcome::Ignored("truncated DHCPv6 message");
    };
    let Some(port) = ctx.port(t.hdr.ifindex) else {
        return Outcome::Ignored("DHCPv6 on an unknown port");
    };
    if !port.dhcp6_enabled {
        return Outcome::Ignored("DHCPv6 disabled on the port's subnet");
    }
    let Some(ip6) = port.ip6 else {
        return Outcome::Ignored("port has no IPv6 address");
    };
    let Some(server) = port.dns6.or(port.gateway6) else {
        return Outcome::Ignored("no IPv6 gateway or DNS address to serve from");
    };
    let out_type = match msg.msg_type() {
        mt::SOLICIT => mt::ADVERTISE,
        mt::REQUEST
        | mt::CONFIRM
        | mt::RENEW
        | mt::REBIND
        | mt::RELEASE
        | mt::DECLINE
        | mt::INFORMATION_REQUEST => mt::REPLY,
        _ => return Outcome::Ignored("DHCPv6 message type the server does not answer"),
    };
    let opts = msg.options();
    if opts.truncated() || opts.clone().count() == 0 && msg.msg_type() != mt::INFORMATION_REQUEST {
        return Outcome::Ignored("DHCPv6 message without options");
    }
    if let Some(sid) = opts.get(option::SERVERID) {
        if sid != SERVER_DUID {
            return Outcome::Ignored("DHCPv6 message for another server");
        }
    }
    let client_id = opts.get(option::CLIENTID);
    if client_id.is_none() && msg.msg_type() != mt::INFORMATION_REQUEST {
        return Outcome::Ignored("DHCPv6 message without a client id");
    }
    let mut m = [0u8; MAX_ANSWER];
    let Some(mlen) = message(&msg, out_type, client_id, &port, ip6, &mut m) else {
        return Outcome::Ignored("DHCPv6 answer does not fit");
    };
    t.begin_reply(out);
    emit(
        out,
        info.src_mac,
        server,
        Ipv6Addr::from(info.src),
        m.get(..mlen).unwrap_or(&[]),
    );
    Outcome::Reply
}

/// The answer's DHCPv6 message in `m`; its length.
fn message(
    req: &Packet<&[u8]>,
    out_type: u8,
    client_id: Option<&[u8]>,
    port: &PortInfo,
    ip6: Ipv6Addr,
    m: &mut [u8; MAX_ANSWER],
) -> Option<usize> {
    let mut p = Packet::new_unchecked(&mut m[..]);
    p.set_msg_type(out_type);
    p.set_transaction_id(req.transaction_id());
    let mut w = OptionsWriter::new(p.options_mut());
    w.option(option::SERVERID, &SERVER_DUID).ok()?;
    if let Some(cid) = client_id {
        w.option(option::CLIENTID, cid).ok()?;
    }
    let give_address = !matches!(
        req.msg_type(),
        mt::INFORMATION_REQUEST | mt::RELEASE | mt::DECLINE
    );
    for o in req.options() {
        let temporary = match o.code {
            option::IA_NA => false,
            option::IA_TA => true,
            _ => continue,
        };
        let Ok(ia) = Ia::parse(o.data, temporary) else {
            continue;
        };
        let mut fixed = [0u8; 12];
        fixed[0..4].copy_from_slice(&ia.iaid);
        let (t1, t2) = ia.times.unwrap_or((0, 0));
        fixed[4..8].copy_from_slice(&t1.to_be_bytes());
        fixed[8..12].copy_from_slice(&t2.to_be_bytes());
        let at = w
            .begin(o.code, &fixed[..if temporary { 4 } else { 12 }])
            .ok()?;
        if give_address {
            w.ia_addr(ip6.octets(), LIFETIME, LIFETIME).ok()?;
        } else {
            w.status(dhcpv6::status::SUCCESS, "released").ok()?;
        }
        w.finish(at).ok()?;
    }
    if let Some(d) = port.dns6.or(port.gateway6) {
        w.dns_servers(&[d.octets()]).ok()?;
    }
    Some(dhcpv6::HEADER_LEN + w.len())
}

/// Ethernet + IPv6 + UDP (547 -> 546) + the message.
fn emit(out: &mut Vec<u8>, dmac: [u8; 6], src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) {
    out.extend_from_slice(&dmac);
    out.extend_from_slice(&VROUTER_MAC);
    out.extend_from_slice(&[0x86, 0xdd]);
    let ulen = 8 + msg.len();
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
    h[6] = 17;
    h[7] = 64;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    out.extend_from_slice(&h);
    let at = out.len();
    out.extend_from_slice(&dhcpv6::SERVER_PORT.to_be_bytes());
    out.extend_from_slice(&dhcpv6::CLIENT_PORT.to_be_bytes());
    out.extend_from_slice(&(ulen as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(msg);
    let mut c = checksum::l4_checksum_v6(
        &src.octets(),
        &dst.octets(),
        17,
        out.get(at..).unwrap_or(&[]),
    );
    if c == 0 {
        c = 0xffff;
    }
    if let Some(b) = out.get_mut(at + 6..at + 8) {
        b.copy_from_slice(&c.to_be_bytes());
    }
}
