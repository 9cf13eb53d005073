//! DHCPv4 server (RFC 2131) for VM/container ports.
//!
//! The lease is the port's instance-ip; there is no address pool, so the
//! server keeps no state: every answer is computed from the request and
//! the [`PortInfo`]. Only the port's own MAC (as `chaddr`) is served.
//!
//! | request | answer |
//! |---|---|
//! | DISCOVER | OFFER of the port address |
//! | REQUEST with server id (SELECTING) | ACK, or NAK if the server id or the requested address is not ours |
//! | REQUEST with requested address (INIT-REBOOT) | ACK, or NAK for a wrong address |
//! | REQUEST with `ciaddr` (RENEWING/REBINDING) | ACK unicast to `ciaddr`, or NAK for a wrong address |
//! | RELEASE | [`Outcome::Released`] |
//! | INFORM | ACK without lease (no `yiaddr`, no 51/58/59) unicast to `ciaddr` |
//! | DECLINE, others | ignored |
//!
//! Options in OFFER/ACK: 53, 54 (server identifier = the gateway, else the
//! DNS address), 51/58/59 (lease, T1 = 1/2, T2 = 7/8), 1, 3, 26, 12,
//! 255 (not 6: nothing serves DNS on the subnet's DNS address yet); NAK carries 53 and 54 only. Destination per RFC 2131 4.1: `giaddr`
//! (port 67) if relayed, NAK broadcast, `ciaddr` unicast if set, broadcast
//! if the client set the broadcast flag, else unicast to `yiaddr` and
//! `chaddr`. The reply comes from [`VROUTER_MAC`] and the server id, UDP
//! 67 -> 68, with IPv4 and UDP checksums.
//!
//! The fixed BOOTP header is written by hand (offsets below) rather than
//! through smoltcp's `DhcpRepr`, which cannot carry options 26, 12, 58 and
//! 59 nor a NAK's empty `yiaddr` with a kept `giaddr`.

use std::net::Ipv4Addr;

use dp_core::VROUTER_MAC;
use packet::dhcp::{message_type as mt, DhcpOptions, OptionsWriter, MAGIC_COOKIE, OPTIONS_OFFSET};
use packet::wire::{
    ChecksumCapabilities, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, DHCP_CLIENT_PORT,
    DHCP_SERVER_PORT, IPV4_HEADER_LEN, UDP_HEADER_LEN,
};
use packet::ETHERNET_HEADER_LEN;

use super::{Outcome, PortInfo, ServiceContext, Trap, DEFAULT_LEASE_SECS};

// BOOTP fixed-header offsets (RFC 2131 figure 1).
const OP: usize = 0;
const HTYPE: usize = 1;
const HLEN: usize = 2;
const XID: usize = 4;
const FLAGS: usize = 10;
const CIADDR: usize = 12;
const YIADDR: usize = 16;
const GIADDR: usize = 24;
const CHADDR: usize = 28;
const COOKIE: usize = 236;
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
const FLAG_BROADCAST: u16 = 0x8000;
/// BOOTP messages are at least 300 bytes (RFC 1542 3.1.2): some clients
/// drop shorter ones.
const MIN_MESSAGE: usize = 300;
/// Room for the options we write (a 255-byte host name at most).
const MAX_MESSAGE: usize = 576;
const TTL: u8 = 64;

/// The parts of a request the answer depends on.
struct Request {
    mtype: u8,
    xid: [u8; 4],
    flags: u16,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: [u8; 6],
    src_mac: EthernetAddress,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
}

fn ip_at(b: &[u8], off: usize) -> Option<Ipv4Addr> {
    packet::be::u32_at(b, off).map(Ipv4Addr::from)
}

fn parse(frame: &[u8]) -> Result<Request, &'static str> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| "truncated Ethernet header")?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return Err("not IPv4");
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| "malformed IPv4")?;
    if !ip.verify_checksum() {
        return Err("bad IPv4 checksum");
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err("IPv4 fragment");
    }
    if ip.next_header() != IpProtocol::Udp {
        return Err("not UDP");
    }
    let udp = UdpPacket::new_checked(ip.payload()).map_err(|_| "malformed UDP")?;
    if udp.dst_port() != DHCP_SERVER_PORT {
        return Err("not to the DHCP server port");
    }
    let msg = udp.payload();
    let opts = DhcpOptions::from_message(msg).map_err(|_| "not a DHCP message")?;
    if msg.get(OP) != Some(&BOOTREQUEST) {
        return Err("not a BOOTREQUEST");
    }
    if msg.get(HTYPE) != Some(&HTYPE_ETHERNET) || msg.get(HLEN) != Some(&6) {
        return Err("not an Ethernet client");
    }
    let mtype = opts.message_type().ok_or("no DHCP message type")?;
    let field = |r: std::ops::Range<usize>| msg.get(r).ok_or("truncated DHCP message");
    Ok(Request {
        mtype,
        xid: field(XID..XID + 4)?
            .try_into()
            .map_err(|_| "truncated DHCP message")?,
        flags: packet::be::u16_at(msg, FLAGS).ok_or("truncated DHCP message")?,
        ciaddr: ip_at(msg, CIADDR).ok_or("truncated DHCP message")?,
        giaddr: ip_at(msg, GIADDR).ok_or("truncated DHCP message")?,
        chaddr: field(CHADDR..CHADDR + 6)?
            .try_into()
            .map_err(|_| "truncated DHCP message")?,
        src_mac: eth.src_addr(),
        requested: opts.requested_ip().map(Ipv4Addr::from),
        server_id: opts.server_id().map(Ipv4Addr::from),
    })
}

/// What to answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Offer,
    Ack,
    /// ACK to DHCPINFORM: configuration only.
    InformAck,
    Nak,
}

/// Answers a DHCPv4 request trapped with `cmd::L3_PROTOCOLS` (or L2).
pub(crate) fn answer(t: &Trap<'_>, ctx: &impl ServiceContext, out: &mut Vec<u8>) -> Outcome {
    let req = match parse(t.frame) {
        Ok(r) => r,
        Err(why) => return Outcome::Ignored(why),
    };
    let Some(port) = ctx.port(t.hdr.ifindex) else {
        return Outcome::Ignored("DHCP on an unknown port");
    };
    if !port.dhcp_enabled {
        return Outcome::Ignored("DHCP disabled on the port's subnet");
    }
    let Some(ip) = port.ip else {
        return Outcome::Ignored("port has no IPv4 address");
    };
    if req.chaddr != port.mac {
        return Outcome::Ignored("client MAC is not the port's");
    }
    let Some(server) = port.gateway.or(port.dns) else {
        return Outcome::Ignored("no gateway or DNS address to serve from");
    };
    let ans = match req.mtype {
        mt::DISCOVER => Answer::Offer,
        mt::REQUEST => {
            let ours = req.server_id.is_none_or(|s| s == server);
            match (req.requested, req.ciaddr) {
                _ if !ours => Answer::Nak,
                (Some(r), _) if r != ip => Answer::Nak,
                (Some(_), _) => Answer::Ack,
                (None, c) if c == ip => Answer::Ack,
                (None, _) => Answer::Nak,
            }
        }
        mt::INFORM => Answer::InformAck,
        mt::RELEASE if req.ciaddr == ip => {
            return Outcome::Released {
                vif: t.hdr.ifindex,
                ip,
            }
        }
        mt::RELEASE => return Outcome::Ignored("release of an address that is not the port's"),
        mt::DECLINE => return Outcome::Ignored("client declined the address"),
        _ => return Outcome::Ignored("DHCP message type the server does not answer"),
    };
    let lease = match ctx.lease_secs() {
        0 => DEFAULT_LEASE_SECS,
        l => l,
    };
    match emit(t, &req, &port, ip, server, lease, ans, out) {
        Some(()) => Outcome::Reply,
        None => Outcome::Ignored("reply does not fit"),
    }
}

/// Writes the BOOTP message of the answer into `m` and returns its length.
fn message(
    req: &Request,
    port: &PortInfo,
    ip: Ipv4Addr,
    server: Ipv4Addr,
    lease: u32,
    ans: Answer,
    m: &mut [u8; MAX_MESSAGE],
) -> Option<usize> {
    m.fill(0);
    m[OP] = BOOTREPLY;
    m[HTYPE] = HTYPE_ETHERNET;
    m[HLEN] = 6;
    m.get_mut(XID..XID + 4)?.copy_from_slice(&req.xid);
    packet::be::put_u16(m, FLAGS, req.flags)?;
    // RFC 2131 table 3: ciaddr echoed in ACKs (renew / inform), yiaddr
    // only when an address is handed out, giaddr always kept.
    let ciaddr = match ans {
        Answer::Ack | Answer::InformAck => req.ciaddr,
        Answer::Offer | Answer::Nak => Ipv4Addr::UNSPECIFIED,
    };
    let yiaddr = match ans {
        Answer::Offer | Answer::Ack => ip,
        Answer::InformAck | Answer::Nak => Ipv4Addr::UNSPECIFIED,
    };
    packet::be::put_u32(m, CIADDR, ciaddr.into())?;
    packet::be::put_u32(m, YIADDR, yiaddr.into())?;
    packet::be::put_u32(m, GIADDR, req.giaddr.into())?;
    // chaddr is 16 bytes; only the 6 of an Ethernet client are copied.
    m.get_mut(CHADDR..CHADDR + 6)?.copy_from_slice(&req.chaddr);
    m.get_mut(COOKIE..OPTIONS_OFFSET)?
        .copy_from_slice(&MAGIC_COOKIE);

    let mut w = OptionsWriter::new(m.get_mut(OPTIONS_OFFSET..)?);
    w.message_type(match ans {
        Answer::Offer => mt::OFFER,
        Answer::Ack | Answer::InformAck => mt::ACK,
        Answer::Nak => mt::NAK,
    })
    .ok()?;
    w.server_id(server.octets()).ok()?;
    if ans != Answer::Nak {
        if ans != Answer::InformAck {
            w.lease_time(lease).ok()?;
            w.renewal_time(lease / 2).ok()?;
            w.rebinding_time(u32::try_from(u64::from(lease) * 7 / 8).unwrap_or(u32::MAX))
                .ok()?;
        }
        let plen = u32::from(port.plen.min(32));
        let mask = u32::MAX.checked_shl(32 - plen).unwrap_or(0);
        w.subnet_mask(mask.to_be_bytes()).ok()?;
        if let Some(g) = port.gateway {
            w.routers(&[g.octets()]).ok()?;
        }
        // No option 6: the subnet's DNS address answers ARP and ping but no
        // DNS server runs behind it yet, and advertising it would leave
        // clients timing out on every lookup (they keep the resolvers
        // their runtime gives them, e.g. Docker's).
        if port.mtu >= 68 {
            w.interface_mtu(port.mtu).ok()?;
        }
        if let Some(h) = port.hostname.as_deref().filter(|h| !h.is_empty()) {
            // Over-long names are left out rather than failing the answer.
            let _ = w.hostname(h);
        }
    }
    let len = OPTIONS_OFFSET + w.end().ok()?;
    Some(len.max(MIN_MESSAGE))
}

#[allow(clippy::too_many_arguments)]
fn emit(
    t: &Trap<'_>,
    req: &Request,
    port: &PortInfo,
    ip: Ipv4Addr,
    server: Ipv4Addr,
    lease: u32,
    ans: Answer,
    out: &mut Vec<u8>,
) -> Option<()> {
    let mut m = [0u8; MAX_MESSAGE];
    let mlen = message(req, port, ip, server, lease, ans, &mut m)?;
    let msg = m.get(..mlen)?;

    // RFC 2131 4.1, "If the 'giaddr' field ... is zero" ladder.
    let bcast = (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST);
    let chaddr = EthernetAddress(req.chaddr);
    let ((dst_ip, dst_mac), dst_port) = if !req.giaddr.is_unspecified() {
        ((req.giaddr, req.src_mac), DHCP_SERVER_PORT)
    } else if ans == Answer::Nak {
        (bcast, DHCP_CLIENT_PORT)
    } else if !req.ciaddr.is_unspecified() {
        ((req.ciaddr, chaddr), DHCP_CLIENT_PORT)
    } else if req.flags & FLAG_BROADCAST != 0 {
        (bcast, DHCP_CLIENT_PORT)
    } else {
        ((ip, chaddr), DHCP_CLIENT_PORT)
    };

    t.begin_reply(out);
    let start = out.len();
    let udp_len = UDP_HEADER_LEN + msg.len();
    out.resize(start + ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + udp_len, 0);
    let buf = out.get_mut(start..)?;
    EthernetRepr {
        src_addr: EthernetAddress(VROUTER_MAC),
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut *buf));
    let caps = ChecksumCapabilities::default();
    let ipb = buf.get_mut(ETHERNET_HEADER_LEN..)?;
    Ipv4Repr {
        src_addr: server,
        dst_addr: dst_ip,
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: TTL,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut *ipb), &caps);
    let udpb = ipb.get_mut(IPV4_HEADER_LEN..)?;
    UdpRepr {
        src_port: DHCP_SERVER_PORT,
        dst_port,
    }
    .emit(
        &mut UdpPacket::new_unchecked(udpb),
        &IpAddress::Ipv4(server),
        &IpAddress::Ipv4(dst_ip),
        msg.len(),
        |p| p.copy_from_slice(msg),
        &caps,
    );
    Some(())
}
