use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use dp_core::agent::{cmd, AgentHdr, AGENT_HDR_LEN, TRAP_HEADROOM};
use dp_core::VROUTER_MAC;
use packet::dhcp::{message_type as mt, DhcpOptions, OptionsWriter};
use packet::wire::{
    ArpOperation, ArpPacket, ArpRepr, ChecksumCapabilities, EthernetAddress, EthernetFrame,
    EthernetProtocol, EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, UdpPacket, UdpRepr,
};

use super::*;

const OUTER: [u8; 14] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
const MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x03];
const VM_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x04];
const IP: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 3);
const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 4);
const GW: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 2);
const VIF: u16 = 3;
const VRF: u16 = 1;
const NET6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);
const IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3);
const VM_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 4);
const GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfe);
const DNS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfd);
const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x42, 0xacff, 0xfe11, 3);

struct Ctx {
    ports: HashMap<u16, PortInfo>,
    macs: HashMap<(u16, Ipv4Addr), [u8; 6]>,
    lease: u32,
}

impl ServiceContext for Ctx {
    fn port(&self, vif: u16) -> Option<PortInfo> {
        self.ports.get(&vif).cloned()
    }
    fn mac_of(&self, vrf: u16, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.macs.get(&(vrf, ip)).copied()
    }
    fn mac_of6(&self, vrf: u16, ip: Ipv6Addr) -> Option<[u8; 6]> {
        (vrf == VRF && ip == VM_IP6).then_some(VM_MAC)
    }
    fn lease_secs(&self) -> u32 {
        self.lease
    }
}

fn port() -> PortInfo {
    PortInfo {
        vif: VIF,
        vrf: VRF,
        mac: MAC,
        ip: Some(IP),
        plen: 24,
        gateway: Some(GW),
        dns: Some(DNS),
        mtu: 1450,
        dhcp_enabled: true,
        hostname: Some("web-1".into()),
        ip6: Some(IP6),
        prefix6: Some((NET6, 64)),
        gateway6: Some(GW6),
        dns6: Some(DNS6),
        dhcp6_enabled: true,
    }
}

fn ctx_with(p: PortInfo) -> Ctx {
    let mut macs = HashMap::new();
    macs.insert((VRF, VM_IP), VM_MAC);
    macs.insert((VRF, IP), MAC);
    macs.insert((7, Ipv4Addr::new(10, 1, 1, 9)), [9; 6]);
    Ctx {
        ports: HashMap::from([(p.vif, p)]),
        macs,
        lease: 0,
    }
}

fn ctx() -> Ctx {
    ctx_with(port())
}

fn wrap(c: u16, vif: u16, frame: &[u8]) -> Vec<u8> {
    let mut v = OUTER.to_vec();
    let mut h = [0u8; AGENT_HDR_LEN];
    AgentHdr {
        ifindex: vif,
        vrf: VRF,
        cmd: c,
        param: 77,
        ..AgentHdr::default()
    }
    .emit(&mut h);
    v.extend_from_slice(&h);
    v.extend_from_slice(frame);
    v
}

/// Checks the pkt0 wrapping of a reply and returns the inner frame.
fn unwrap_reply(out: &[u8]) -> &[u8] {
    assert_eq!(&out[..14], &OUTER);
    let h = AgentHdr::parse(&out[14..]).unwrap();
    assert_eq!(
        h,
        AgentHdr {
            ifindex: VIF,
            vrf: VRF,
            cmd: cmd::SWITCH,
            ..AgentHdr::default()
        }
    );
    &out[TRAP_HEADROOM..]
}

// ---- ARP -----------------------------------------------------------------------

fn arp_frame(op: ArpOperation, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    EthernetRepr {
        src_addr: EthernetAddress(sha),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ArpRepr::EthernetIpv4 {
        operation: op,
        source_hardware_addr: EthernetAddress(sha),
        source_protocol_addr: spa,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: tpa,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..42]));
    f
}

fn ask(c: &Ctx, tpa: Ipv4Addr) -> (Outcome, Vec<u8>) {
    let mut out = vec![0xee; 3];
    let o = handle(
        &wrap(
            cmd::ARP,
            VIF,
            &arp_frame(ArpOperation::Request, MAC, IP, tpa),
        ),
        c,
        &mut out,
    );
    (o, out)
}

fn check_arp_reply(out: &[u8], mac: [u8; 6], tpa: Ipv4Addr) {
    let f = unwrap_reply(out);
    assert_eq!(f.len(), 60);
    assert_eq!(&f[0..6], &MAC);
    assert_eq!(&f[6..12], &mac);
    assert_eq!(&f[12..14], &[0x08, 0x06]);
    assert_eq!(&f[14..22], &[0, 1, 8, 0, 6, 4, 0, 2]);
    assert_eq!(&f[22..28], &mac);
    assert_eq!(&f[28..32], &tpa.octets());
    assert_eq!(&f[32..38], &MAC);
    assert_eq!(&f[38..42], &IP.octets());
    assert!(f[42..].iter().all(|&b| b == 0));
}

#[test]
fn arp_gateway_and_dns_get_the_vrouter_mac() {
    let c = ctx();
    for a in [GW, DNS] {
        let (o, out) = ask(&c, a);
        assert_eq!(o, Outcome::Reply);
        check_arp_reply(&out, VROUTER_MAC, a);
    }
}

#[test]
fn arp_proxy_for_known_vm() {
    let (o, out) = ask(&ctx(), VM_IP);
    assert_eq!(o, Outcome::Reply);
    check_arp_reply(&out, VM_MAC, VM_IP);
}

#[test]
fn arp_ignored_cases() {
    let c = ctx();
    // Unknown address, and one known only in another VRF.
    for a in [Ipv4Addr::new(10, 1, 1, 99), Ipv4Addr::new(10, 1, 1, 9)] {
        let (o, out) = ask(&c, a);
        assert_eq!(o, Outcome::Ignored("ARP for an unknown address"));
        assert!(out.is_empty());
    }
    // The port's own address (duplicate address probe).
    let mut out = Vec::new();
    let probe = arp_frame(ArpOperation::Request, MAC, Ipv4Addr::UNSPECIFIED, IP);
    assert_eq!(
        handle(&wrap(cmd::ARP, VIF, &probe), &c, &mut out),
        Outcome::Ignored("ARP for the port's own address")
    );
    let garp = arp_frame(ArpOperation::Request, MAC, IP, IP);
    assert_eq!(
        handle(&wrap(cmd::ARP, VIF, &garp), &c, &mut out),
        Outcome::Ignored("gratuitous ARP")
    );
    let reply = arp_frame(ArpOperation::Reply, MAC, IP, GW);
    assert_eq!(
        handle(&wrap(cmd::ARP, VIF, &reply), &c, &mut out),
        Outcome::Ignored("not an ARP request")
    );
    // Unknown port: no gateway known, VMs of the VRF still proxied.
    let f = arp_frame(ArpOperation::Request, MAC, IP, GW);
    assert_eq!(
        handle(&wrap(cmd::ARP, 9, &f), &c, &mut out),
        Outcome::Ignored("ARP for an unknown address")
    );
    let mut ip_frame = f.clone();
    ip_frame[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(
        handle(&wrap(cmd::ARP, VIF, &ip_frame), &c, &mut out),
        Outcome::Ignored("not ARP")
    );
    assert_eq!(
        handle(&wrap(cmd::ARP, VIF, &f[..30]), &c, &mut out),
        Outcome::Ignored("malformed ARP")
    );
}

// ---- DHCP ----------------------------------------------------------------------

#[derive(Clone)]
struct Req {
    mtype: u8,
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: [u8; 6],
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
}

fn req(mtype: u8) -> Req {
    Req {
        mtype,
        xid: 0x1234_5678,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: MAC,
        requested: None,
        server_id: None,
    }
}

fn dhcp_frame(r: &Req) -> Vec<u8> {
    let mut m = vec![0u8; 300];
    m[0] = 1;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&r.xid.to_be_bytes());
    m[8..10].copy_from_slice(&3u16.to_be_bytes()); // secs
    m[10..12].copy_from_slice(&r.flags.to_be_bytes());
    m[12..16].copy_from_slice(&r.ciaddr.octets());
    m[24..28].copy_from_slice(&r.giaddr.octets());
    m[28..34].copy_from_slice(&r.chaddr);
    m[236..240].copy_from_slice(&[99, 130, 83, 99]);
    let mut w = OptionsWriter::new(&mut m[240..]);
    w.message_type(r.mtype).unwrap();
    w.client_id(&[1, MAC[0], MAC[1], MAC[2], MAC[3], MAC[4], MAC[5]])
        .unwrap();
    if let Some(a) = r.requested {
        w.requested_ip(a.octets()).unwrap();
    }
    if let Some(a) = r.server_id {
        w.server_id(a.octets()).unwrap();
    }
    w.parameter_request_list(&[1, 3, 6, 12, 15, 26, 28, 42])
        .unwrap();
    w.end().unwrap();

    let (src, dst) = if r.ciaddr.is_unspecified() {
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
    } else {
        (r.ciaddr, GW)
    };
    let mut f = vec![0u8; 14 + 20 + 8 + m.len()];
    EthernetRepr {
        src_addr: EthernetAddress(r.chaddr),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let caps = ChecksumCapabilities::default();
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: 8 + m.len(),
        hop_limit: 64,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]), &caps);
    UdpRepr {
        src_port: 68,
        dst_port: 67,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut f[34..]),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        m.len(),
        |p| p.copy_from_slice(&m),
        &caps,
    );
    f
}

fn dhcp(c: &Ctx, r: &Req) -> (Outcome, Vec<u8>) {
    let mut out = Vec::new();
    let o = handle(&wrap(cmd::L3_PROTOCOLS, VIF, &dhcp_frame(r)), c, &mut out);
    (o, out)
}

/// A parsed, checked DHCP reply.
struct Reply {
    eth_dst: [u8; 6],
    ip_dst: Ipv4Addr,
    udp_dst: u16,
    msg: Vec<u8>,
    /// Options in order.
    opts: Vec<(u8, Vec<u8>)>,
}

impl Reply {
    fn opt(&self, k: u8) -> Option<&[u8]> {
        self.opts.iter().find(|(o, _)| *o == k).map(|(_, d)| &d[..])
    }
    fn kinds(&self) -> Vec<u8> {
        self.opts.iter().map(|(k, _)| *k).collect()
    }
    fn yiaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(<[u8; 4]>::try_from(&self.msg[16..20]).unwrap())
    }
    fn ciaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(<[u8; 4]>::try_from(&self.msg[12..16]).unwrap())
    }
}

fn parse_reply(out: &[u8], r: &Req, server: Ipv4Addr) -> Reply {
    let f = unwrap_reply(out);
    let eth = EthernetFrame::new_checked(f).unwrap();
    assert_eq!(eth.src_addr().0, VROUTER_MAC);
    assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert!(packet::checksum::verify(&eth.payload()[..20]));
    assert_eq!(ip.header_len(), 20);
    assert_eq!(ip.total_len() as usize, eth.payload().len());
    assert_eq!(ip.hop_limit(), 64);
    assert_eq!(ip.next_header(), IpProtocol::Udp);
    assert!(!ip.more_frags());
    assert_eq!(ip.frag_offset(), 0);
    assert_eq!(ip.src_addr(), server);
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(udp.src_port(), 67);
    assert_eq!(udp.len() as usize, ip.payload().len());
    assert_ne!(udp.checksum(), 0);
    assert!(udp.verify_checksum(
        &IpAddress::Ipv4(ip.src_addr()),
        &IpAddress::Ipv4(ip.dst_addr())
    ));
    // Independent check: the pseudo-header sum over the datagram is 0xffff.
    let s = packet::checksum::add(
        packet::checksum::pseudo_header_v4(
            &ip.src_addr().octets(),
            &ip.dst_addr().octets(),
            17,
            udp.len(),
        ),
        packet::checksum::sum(ip.payload()),
    );
    assert_eq!(s, 0xffff);
    let msg = udp.payload().to_vec();
    assert!(msg.len() >= 300);
    assert_eq!(msg[0], 2, "op BOOTREPLY");
    assert_eq!(msg[1], 1, "htype");
    assert_eq!(msg[2], 6, "hlen");
    assert_eq!(msg[3], 0, "hops");
    assert_eq!(&msg[4..8], &r.xid.to_be_bytes(), "xid");
    assert_eq!(&msg[8..10], &[0, 0], "secs");
    assert_eq!(&msg[10..12], &r.flags.to_be_bytes(), "flags");
    assert_eq!(&msg[20..24], &[0; 4], "siaddr");
    assert_eq!(&msg[24..28], &r.giaddr.octets(), "giaddr");
    assert_eq!(&msg[28..34], &r.chaddr, "chaddr");
    assert!(
        msg[34..236].iter().all(|&b| b == 0),
        "chaddr pad, sname, file"
    );
    assert_eq!(&msg[236..240], &[99, 130, 83, 99]);
    let mut it = DhcpOptions::from_message(&msg).unwrap();
    let opts: Vec<(u8, Vec<u8>)> = it.by_ref().map(|o| (o.kind, o.data.to_vec())).collect();
    assert!(!it.truncated());
    // End option, then zero padding only.
    let optlen: usize = opts.iter().map(|(_, d)| 2 + d.len()).sum();
    assert_eq!(msg[240 + optlen], 255);
    assert!(msg[241 + optlen..].iter().all(|&b| b == 0));
    Reply {
        eth_dst: eth.dst_addr().0,
        ip_dst: ip.dst_addr(),
        udp_dst: udp.dst_port(),
        msg,
        opts,
    }
}

fn be32(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

#[test]
fn discover_gets_offer() {
    let r = req(mt::DISCOVER);
    let (o, out) = dhcp(&ctx(), &r);
    assert_eq!(o, Outcome::Reply);
    let p = parse_reply(&out, &r, GW);
    // Unicast to the offered address and chaddr (no broadcast flag).
    assert_eq!(p.eth_dst, MAC);
    assert_eq!(p.ip_dst, IP);
    assert_eq!(p.udp_dst, 68);
    assert_eq!(p.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(p.yiaddr(), IP);
    assert_eq!(p.msg.len(), 300);
    // No 6 (DNS servers): nothing answers DNS on the subnet's DNS address.
    assert_eq!(p.kinds(), vec![53, 54, 51, 58, 59, 1, 3, 26, 12]);
    assert_eq!(p.opt(53), Some(&[mt::OFFER][..]));
    assert_eq!(p.opt(54), Some(&GW.octets()[..]));
    assert_eq!(p.opt(51), Some(&be32(86_400)[..]));
    assert_eq!(p.opt(58), Some(&be32(43_200)[..]));
    assert_eq!(p.opt(59), Some(&be32(75_600)[..]));
    assert_eq!(p.opt(1), Some(&[255, 255, 255, 0][..]));
    assert_eq!(p.opt(3), Some(&GW.octets()[..]));
    assert_eq!(p.opt(6), None, "no DNS server advertised");
    assert_eq!(p.opt(26), Some(&1450u16.to_be_bytes()[..]));
    assert_eq!(p.opt(12), Some(&b"web-1"[..]));
}

#[test]
fn broadcast_flag_is_honoured() {
    let r = Req {
        flags: 0x8000,
        ..req(mt::DISCOVER)
    };
    let (o, out) = dhcp(&ctx(), &r);
    assert_eq!(o, Outcome::Reply);
    let p = parse_reply(&out, &r, GW);
    assert_eq!(p.eth_dst, [0xff; 6]);
    assert_eq!(p.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(p.yiaddr(), IP);
}

#[test]
fn request_selecting_and_init_reboot_get_ack() {
    for sid in [Some(GW), None] {
        let r = Req {
            requested: Some(IP),
            server_id: sid,
            ..req(mt::REQUEST)
        };
        let (o, out) = dhcp(&ctx(), &r);
        assert_eq!(o, Outcome::Reply);
        let p = parse_reply(&out, &r, GW);
        assert_eq!(p.opt(53), Some(&[mt::ACK][..]));
        assert_eq!(p.yiaddr(), IP);
        assert_eq!(p.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!((p.eth_dst, p.ip_dst), (MAC, IP));
        assert_eq!(p.kinds(), vec![53, 54, 51, 58, 59, 1, 3, 26, 12]);
    }
}

#[test]
fn wrong_address_or_server_gets_broadcast_nak() {
    let wrong_ip = Req {
        requested: Some(Ipv4Addr::new(10, 1, 1, 50)),
        server_id: Some(GW),
        ..req(mt::REQUEST)
    };
    let wrong_server = Req {
        requested: Some(IP),
        server_id: Some(Ipv4Addr::new(192, 168, 0, 1)),
        ..req(mt::REQUEST)
    };
    let wrong_renew = Req {
        ciaddr: Ipv4Addr::new(10, 1, 1, 50),
        ..req(mt::REQUEST)
    };
    let nothing = req(mt::REQUEST);
    for r in [wrong_ip, wrong_server, wrong_renew, nothing] {
        let (o, out) = dhcp(&ctx(), &r);
        assert_eq!(o, Outcome::Reply);
        let p = parse_reply(&out, &r, GW);
        assert_eq!(p.kinds(), vec![53, 54]);
        assert_eq!(p.opt(53), Some(&[mt::NAK][..]));
        assert_eq!(p.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            (p.eth_dst, p.ip_dst, p.udp_dst),
            ([0xff; 6], Ipv4Addr::BROADCAST, 68)
        );
    }
}

#[test]
fn renew_is_acked_unicast_to_ciaddr() {
    let r = Req {
        ciaddr: IP,
        flags: 0x8000, // ciaddr wins over the broadcast flag
        ..req(mt::REQUEST)
    };
    let mut c = ctx();
    c.lease = 3600;
    let (o, out) = dhcp(&c, &r);
    assert_eq!(o, Outcome::Reply);
    let p = parse_reply(&out, &r, GW);
    assert_eq!(p.opt(53), Some(&[mt::ACK][..]));
    assert_eq!((p.ciaddr(), p.yiaddr()), (IP, IP));
    assert_eq!((p.eth_dst, p.ip_dst), (MAC, IP));
    assert_eq!(p.opt(51), Some(&be32(3600)[..]));
    assert_eq!(p.opt(58), Some(&be32(1800)[..]));
    assert_eq!(p.opt(59), Some(&be32(3150)[..]));
}

#[test]
fn inform_gets_ack_without_lease() {
    let r = Req {
        ciaddr: IP,
        ..req(mt::INFORM)
    };
    let (o, out) = dhcp(&ctx(), &r);
    assert_eq!(o, Outcome::Reply);
    let p = parse_reply(&out, &r, GW);
    assert_eq!(p.kinds(), vec![53, 54, 1, 3, 26, 12]);
    assert_eq!(p.opt(53), Some(&[mt::ACK][..]));
    assert_eq!((p.ciaddr(), p.yiaddr()), (IP, Ipv4Addr::UNSPECIFIED));
    assert_eq!((p.eth_dst, p.ip_dst), (MAC, IP));
}

#[test]
fn release_is_reported() {
    let r = Req {
        ciaddr: IP,
        server_id: Some(GW),
        ..req(mt::RELEASE)
    };
    let (o, out) = dhcp(&ctx(), &r);
    assert_eq!(o, Outcome::Released { vif: VIF, ip: IP });
    assert!(out.is_empty());
    let other = Req { ciaddr: VM_IP, ..r };
    assert!(matches!(dhcp(&ctx(), &other).0, Outcome::Ignored(_)));
}

#[test]
fn relayed_request_goes_to_giaddr() {
    let relay = Ipv4Addr::new(10, 9, 9, 9);
    let r = Req {
        giaddr: relay,
        ..req(mt::DISCOVER)
    };
    let (o, out) = dhcp(&ctx(), &r);
    assert_eq!(o, Outcome::Reply);
    let p = parse_reply(&out, &r, GW);
    assert_eq!((p.eth_dst, p.ip_dst, p.udp_dst), (MAC, relay, 67));
}

#[test]
fn minimal_port_options() {
    let p = PortInfo {
        gateway: None,
        dns: Some(DNS),
        mtu: 0,
        hostname: None,
        plen: 16,
        ..port()
    };
    let r = req(mt::DISCOVER);
    let (o, out) = dhcp(&ctx_with(p), &r);
    assert_eq!(o, Outcome::Reply);
    // Without a gateway the DNS address serves.
    let p = parse_reply(&out, &r, DNS);
    assert_eq!(p.kinds(), vec![53, 54, 51, 58, 59, 1]);
    assert_eq!(p.opt(54), Some(&DNS.octets()[..]));
    assert_eq!(p.opt(1), Some(&[255, 255, 0, 0][..]));

    // A host name longer than an option can hold is left out.
    let long = PortInfo {
        hostname: Some("h".repeat(300)),
        ..port()
    };
    let (o, out) = dhcp(&ctx_with(long), &r);
    assert_eq!(o, Outcome::Reply);
    assert!(parse_reply(&out, &r, GW).opt(12).is_none());
}

#[test]
fn l2_protocols_trap_also_answered() {
    let r = req(mt::DISCOVER);
    let mut out = Vec::new();
    let o = handle(
        &wrap(cmd::L2_PROTOCOLS, VIF, &dhcp_frame(&r)),
        &ctx(),
        &mut out,
    );
    assert_eq!(o, Outcome::Reply);
    parse_reply(&out, &r, GW);
}

#[test]
fn dhcp_ignored_cases() {
    let r = req(mt::DISCOVER);
    let cases: Vec<(Ctx, Req, &str)> = vec![
        (
            ctx_with(PortInfo {
                dhcp_enabled: false,
                ..port()
            }),
            r.clone(),
            "DHCP disabled on the port's subnet",
        ),
        (
            ctx_with(PortInfo { ip: None, ..port() }),
            r.clone(),
            "port has no IPv4 address",
        ),
        (
            ctx_with(PortInfo {
                gateway: None,
                dns: None,
                ..port()
            }),
            r.clone(),
            "no gateway or DNS address to serve from",
        ),
        (
            ctx(),
            Req {
                chaddr: VM_MAC,
                ..r.clone()
            },
            "client MAC is not the port's",
        ),
        (
            ctx(),
            Req {
                requested: Some(IP),
                ..req(mt::DECLINE)
            },
            "client declined the address",
        ),
        (
            ctx(),
            req(mt::OFFER),
            "DHCP message type the server does not answer",
        ),
    ];
    for (c, r, why) in cases {
        let (o, out) = dhcp(&c, &r);
        assert_eq!(o, Outcome::Ignored(why));
        assert!(out.is_empty());
    }
    let mut out = Vec::new();
    let f = dhcp_frame(&r);
    assert_eq!(
        handle(&wrap(cmd::L3_PROTOCOLS, 42, &f), &ctx(), &mut out),
        Outcome::Ignored("DHCP on an unknown port")
    );
    // Broken checksum, wrong port, BOOTREPLY, no cookie, truncated.
    let mut bad = f.clone();
    bad[24] ^= 1;
    let mut port68 = f.clone();
    port68[36..38].copy_from_slice(&68u16.to_be_bytes());
    let mut reply = f.clone();
    reply[42] = 2;
    let mut cookie = f.clone();
    cookie[42 + 236] = 0;
    for (frame, why) in [
        (bad, "bad IPv4 checksum"),
        (port68, "not to the DHCP server port"),
        (reply, "not a BOOTREQUEST"),
        (cookie, "not a DHCP message"),
        (f[..100].to_vec(), "malformed IPv4"),
    ] {
        assert_eq!(
            handle(&wrap(cmd::L3_PROTOCOLS, VIF, &frame), &ctx(), &mut out),
            Outcome::Ignored(why)
        );
    }
}

#[test]
fn garbage_traps_are_ignored() {
    let c = ctx();
    let mut out = vec![1, 2, 3];
    assert_eq!(
        handle(&[], &c, &mut out),
        Outcome::Ignored("short pkt0 frame")
    );
    assert!(out.is_empty());
    assert_eq!(
        handle(&[0; 43], &c, &mut out),
        Outcome::Ignored("short pkt0 frame")
    );
    assert_eq!(
        handle(&wrap(cmd::ARP, VIF, &[]), &c, &mut out),
        Outcome::Ignored("truncated Ethernet header")
    );
    assert_eq!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &[0; 13]), &c, &mut out),
        Outcome::Ignored("truncated Ethernet header")
    );
    let f = dhcp_frame(&req(mt::DISCOVER));
    assert_eq!(
        handle(&wrap(cmd::FLOW_MISS, VIF, &f), &c, &mut out),
        Outcome::Ignored("not a service trap")
    );
    // Every truncation of valid traps is handled.
    let arp = wrap(
        cmd::ARP,
        VIF,
        &arp_frame(ArpOperation::Request, MAC, IP, GW),
    );
    let dhcp = wrap(cmd::L3_PROTOCOLS, VIF, &f);
    for t in [&arp, &dhcp] {
        for n in 0..t.len() {
            let o = handle(&t[..n], &c, &mut out);
            if o == Outcome::Reply {
                // ARP frames carry padding: the 42 bytes that matter suffice.
                assert!(n >= TRAP_HEADROOM + 42, "reply from {n} bytes");
            } else {
                assert!(out.is_empty());
            }
        }
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn traps() -> impl Strategy<Value = Vec<u8>> {
        let valid = vec![
            wrap(
                cmd::ARP,
                VIF,
                &arp_frame(ArpOperation::Request, MAC, IP, GW),
            ),
            wrap(
                cmd::ARP,
                VIF,
                &arp_frame(ArpOperation::Request, MAC, IP, VM_IP),
            ),
            wrap(cmd::L3_PROTOCOLS, VIF, &dhcp_frame(&req(mt::DISCOVER))),
            wrap(
                cmd::L3_PROTOCOLS,
                VIF,
                &dhcp_frame(&Req {
                    requested: Some(IP),
                    server_id: Some(GW),
                    ..req(mt::REQUEST)
                }),
            ),
        ];
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..400),
            (
                prop::sample::select(valid),
                prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
                any::<prop::sample::Index>(),
            )
                .prop_map(|(mut t, flips, cut)| {
                    let n = t.len();
                    for (i, b) in flips {
                        // Keep the agent header's command mostly intact so
                        // the mutations reach the parsers.
                        let at = i.index(n);
                        if !(18..20).contains(&at) {
                            t[at] = b;
                        }
                    }
                    let keep = n - cut.index(n / 4 + 1);
                    t.truncate(keep);
                    t
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn never_panics(trap in traps()) {
            let mut out = Vec::new();
            match handle(&trap, &ctx(), &mut out) {
                Outcome::Reply => {
                    prop_assert_eq!(&out[..14], &trap[..14]);
                    let h = AgentHdr::parse(&out[14..]).unwrap();
                    prop_assert_eq!(h.cmd, cmd::SWITCH);
                }
                _ => prop_assert!(out.is_empty()),
            }
        }
    }
}

// ---- ICMP echo to the vRouter's addresses ------------------------------------

fn echo_request(dst: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&VROUTER_MAC);
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let payload = b"vrouter-rs ping!";
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&IP.octets());
    ip.extend_from_slice(&dst.octets());
    let c = packet::checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut icmp = vec![8, 0, 0, 0, 0xbe, 0xef, 0, 7];
    icmp.extend_from_slice(payload);
    let c = !packet::checksum::sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn echo_to_gateway_and_dns_is_answered() {
    let c = ctx();
    for dst in [GW, DNS] {
        let req = echo_request(dst);
        let mut out = Vec::new();
        assert_eq!(
            handle(&wrap(cmd::L3_PROTOCOLS, VIF, &req), &c, &mut out),
            Outcome::Reply
        );
        let r = unwrap_reply(&out);
        assert_eq!(&r[0..6], &MAC);
        assert_eq!(&r[6..12], &VROUTER_MAC);
        let ip = &r[14..34];
        assert!(packet::checksum::verify(ip), "IPv4 header checksum");
        assert_eq!(&ip[12..16], &dst.octets());
        assert_eq!(&ip[16..20], &IP.octets());
        let icmp = &r[34..34 + req.len() - 34];
        assert_eq!(icmp[0], 0, "echo reply");
        assert!(packet::checksum::verify(icmp), "ICMP checksum");
        assert_eq!(
            &icmp[4..],
            &req[38..],
            "identifier, sequence and payload echoed"
        );
    }
}

#[test]
fn echo_to_other_addresses_or_bad_checksum_is_ignored() {
    let c = ctx();
    let mut out = Vec::new();
    let other = echo_request(VM_IP);
    assert!(matches!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &other), &c, &mut out),
        Outcome::Ignored(_)
    ));
    let mut bad = echo_request(GW);
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    assert!(matches!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &bad), &c, &mut out),
        Outcome::Ignored(_)
    ));
    for cut in 0..echo_request(GW).len() {
        let f = &echo_request(GW)[..cut];
        let _ = handle(&wrap(cmd::L3_PROTOCOLS, VIF, f), &c, &mut out);
    }
    assert!(out.is_empty());
}

// ---- ICMP errors (HANDLE_DF, ZERO_TTL) -------------------------------------------

/// A UDP datagram from the port's container, `total` bytes of IP packet,
/// DF set.
fn big_v4(total: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + total];
    f[0..6].copy_from_slice(&VROUTER_MAC);
    f[6..12].copy_from_slice(&MAC);
    f[12..14].copy_from_slice(&[8, 0]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&(total as u16).to_be_bytes());
    f[20] = 0x40;
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&IP.octets());
    f[30..34].copy_from_slice(&[198, 18, 9, 9]);
    let c = packet::checksum::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn trap_with_param(c: u16, frame: &[u8], param: u32) -> Vec<u8> {
    let mut t = wrap(c, VIF, frame);
    t[14 + 6..14 + 10].copy_from_slice(&param.to_be_bytes());
    t
}

#[test]
fn handle_df_gets_fragmentation_needed_with_the_path_mtu() {
    let c = ctx();
    // The datapath cuts HANDLE_DF traps to 190 bytes.
    let frame = big_v4(1500);
    let trap = trap_with_param(cmd::HANDLE_DF, &frame[..190], 1450);
    let mut out = Vec::new();
    assert_eq!(handle(&trap, &c, &mut out), Outcome::Reply);
    let f = unwrap_reply(&out);
    assert_eq!(&f[0..6], &MAC);
    assert_eq!(&f[6..12], &VROUTER_MAC);
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), GW);
    assert_eq!(ip.dst_addr(), IP);
    assert_eq!(ip.next_header(), IpProtocol::Icmp);
    let icmp = ip.payload();
    assert_eq!(
        (icmp[0], icmp[1]),
        (3, 4),
        "destination unreachable, frag needed"
    );
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1450);
    assert!(packet::checksum::verify(icmp));
    // The first 128 bytes of the offending packet.
    assert_eq!(&icmp[8..], &frame[14..14 + 128]);
    // Time exceeded for ZERO_TTL.
    let trap = trap_with_param(cmd::ZERO_TTL, &frame[..190], 0);
    assert_eq!(handle(&trap, &c, &mut out), Outcome::Reply);
    let f = unwrap_reply(&out);
    assert_eq!((f[34], f[35]), (11, 0));
}

#[test]
fn handle_df_for_ipv6_gets_packet_too_big() {
    let c = ctx();
    let mut f = vec![0u8; 14 + 40 + 8 + 200];
    f[0..6].copy_from_slice(&VROUTER_MAC);
    f[6..12].copy_from_slice(&MAC);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&208u16.to_be_bytes());
    f[20] = 17;
    f[21] = 64;
    f[22..38].copy_from_slice(&IP6.octets());
    f[38..54].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 9).octets());
    let trap = trap_with_param(cmd::HANDLE_DF, &f[..190], 1430);
    let mut out = Vec::new();
    assert_eq!(handle(&trap, &c, &mut out), Outcome::Reply);
    let r = unwrap_reply(&out);
    assert_eq!(&r[12..14], &[0x86, 0xdd]);
    let ip = Ipv6Packet::new_checked(&r[14..]).unwrap();
    assert_eq!(ip.src_addr(), GW6);
    assert_eq!(ip.dst_addr(), IP6);
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    let repr = Icmpv6Repr::parse(
        &ip.src_addr(),
        &ip.dst_addr(),
        &icmp,
        &ChecksumCapabilities::default(),
    )
    .unwrap();
    match repr {
        Icmpv6Repr::PktTooBig { mtu, data, .. } => {
            assert_eq!(mtu, 1430);
            assert_eq!(data.len(), 128 - 40);
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn icmp_errors_are_not_sent_about_icmp_errors_or_for_unknown_ports() {
    let c = ctx();
    let mut f = big_v4(200);
    f[23] = 1;
    f[34] = 3;
    let c2 = packet::checksum::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c2.to_be_bytes());
    let mut out = Vec::new();
    let trap = trap_with_param(cmd::HANDLE_DF, &f, 1400);
    assert!(matches!(handle(&trap, &c, &mut out), Outcome::Ignored(_)));
    assert!(out.is_empty());
    let trap = wrap(cmd::HANDLE_DF, 9, &big_v4(200));
    assert!(matches!(handle(&trap, &c, &mut out), Outcome::Ignored(_)));
    let trap = wrap(cmd::HANDLE_DF, VIF, &big_v4(200)[..20]);
    assert!(matches!(handle(&trap, &c, &mut out), Outcome::Ignored(_)));
}

#[test]
fn dhcp_announces_the_interface_mtu() {
    // The agent fills PortInfo::mtu with the interface's MTU (or the
    // subnet's DHCP option); option 26 carries it.
    let mut p = port();
    p.mtu = 1400;
    let c = ctx_with(p);
    let r = req(mt::DISCOVER);
    let (o, out) = dhcp(&c, &r);
    assert_eq!(o, Outcome::Reply);
    let rep = parse_reply(&out, &r, GW);
    assert_eq!(rep.opt(26), Some(&1400u16.to_be_bytes()[..]));
}

// ---- ICMPv6: neighbour discovery, echo ------------------------------------------

fn icmp6_frame(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    dmac: [u8; 6],
    hlim: u8,
    repr: &Icmpv6Repr,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + repr.buffer_len()];
    f[0..6].copy_from_slice(&dmac);
    f[6..12].copy_from_slice(&MAC);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&(repr.buffer_len() as u16).to_be_bytes());
    f[20] = 58;
    f[21] = hlim;
    f[22..38].copy_from_slice(&src.octets());
    f[38..54].copy_from_slice(&dst.octets());
    let mut p = Icmpv6Packet::new_unchecked(&mut f[54..]);
    repr.emit(&src, &dst, &mut p, &ChecksumCapabilities::default());
    f
}

/// The reply's (IPv6 source, destination, destination MAC, ICMPv6 repr
/// bytes re-parsed).
fn icmp6_reply(out: &[u8]) -> (Ipv6Addr, Ipv6Addr, [u8; 6], Vec<u8>) {
    let r = unwrap_reply(out);
    let ip = Ipv6Packet::new_checked(&r[14..]).unwrap();
    assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
    (
        ip.src_addr(),
        ip.dst_addr(),
        r[0..6].try_into().unwrap(),
        ip.payload().to_vec(),
    )
}

#[test]
fn router_solicitation_gets_an_advertisement_of_the_subnet() {
    use packet::wire::{NdiscRepr, NdiscRouterFlags, RawHardwareAddress};
    let c = ctx();
    let rs = Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit {
        lladdr: Some(RawHardwareAddress::from(EthernetAddress(MAC))),
    });
    let all_routers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let f = icmp6_frame(LL, all_routers, [0x33, 0x33, 0, 0, 0, 2], 255, &rs);
    let mut out = Vec::new();
    assert_eq!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &f), &c, &mut out),
        Outcome::Reply
    );
    let (src, dst, dmac, icmp) = icmp6_reply(&out);
    assert_eq!((src, dst, dmac), (ndp::ROUTER_LINK_LOCAL, LL, MAC));
    let p = Icmpv6Packet::new_checked(&icmp[..]).unwrap();
    let repr = Icmpv6Repr::parse(&src, &dst, &p, &ChecksumCapabilities::default()).unwrap();
    let Icmpv6Repr::Ndisc(NdiscRepr::RouterAdvert {
        hop_limit,
        flags,
        router_lifetime,
        lladdr,
        prefix_info: Some(pi),
        ..
    }) = repr
    else {
        panic!("{repr:?}")
    };
    assert_eq!(hop_limit, 64);
    assert_eq!(flags, NdiscRouterFlags::MANAGED | NdiscRouterFlags::OTHER);
    assert_eq!(router_lifetime.secs(), 9000);
    assert_eq!(lladdr.unwrap().as_bytes(), &VROUTER_MAC);
    assert_eq!((pi.prefix, pi.prefix_len), (NET6, 64));
    // Not from a link-local hop limit below 255.
    let f = icmp6_frame(LL, all_routers, [0x33, 0x33, 0, 0, 0, 2], 64, &rs);
    assert!(matches!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &f), &c, &mut out),
        Outcome::Ignored(_)
    ));
}

#[test]
fn neighbour_solicitations_for_gateway_and_known_vms_are_answered() {
    use packet::wire::{NdiscNeighborFlags, NdiscRepr, RawHardwareAddress};
    let c = ctx();
    for (target, mac, router) in [(GW6, VROUTER_MAC, true), (VM_IP6, VM_MAC, false)] {
        let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: Some(RawHardwareAddress::from(EthernetAddress(MAC))),
        });
        let f = icmp6_frame(IP6, target, VROUTER_MAC, 255, &ns);
        let mut out = Vec::new();
        assert_eq!(
            handle(&wrap(cmd::L3_PROTOCOLS, VIF, &f), &c, &mut out),
            Outcome::Reply
        );
        let (src, dst, dmac, icmp) = icmp6_reply(&out);
        assert_eq!((src, dst, dmac), (target, IP6, MAC));
        let p = Icmpv6Packet::new_checked(&icmp[..]).unwrap();
        let repr = Icmpv6Repr::parse(&src, &dst, &p, &ChecksumCapabilities::default()).unwrap();
        let Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags,
            target_addr,
            lladdr,
        }) = repr
        else {
            panic!("{repr:?}")
        };
        assert_eq!(target_addr, target);
        assert_eq!(lladdr.unwrap().as_bytes(), &mac);
        assert!(flags.contains(NdiscNeighborFlags::SOLICITED));
        assert_eq!(flags.contains(NdiscNeighborFlags::ROUTER), router);
    }
    // Unknown target, and duplicate address detection (unspecified source).
    let mut out = Vec::new();
    let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x77),
        lladdr: None,
    });
    let f = icmp6_frame(IP6, GW6, VROUTER_MAC, 255, &ns);
    assert!(matches!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &f), &c, &mut out),
        Outcome::Ignored(_)
    ));
    let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: GW6,
        lladdr: None,
    });
    let f = icmp6_frame(Ipv6Addr::UNSPECIFIED, GW6, VROUTER_MAC, 255, &ns);
    assert!(matches!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &f), &c, &mut out),
        Outcome::Ignored(_)
    ));
}

#[test]
fn echo6_to_the_gateway_is_answered() {
    let c = ctx();
    let req = Icmpv6Repr::EchoRequest {
        ident: 7,
        seq_no: 3,
        data: b"hello",
    };
    let f = icmp6_frame(IP6, GW6, VROUTER_MAC, 64, &req);
    let mut out = Vec::new();
    assert_eq!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &f), &c, &mut out),
        Outcome::Reply
    );
    let (src, dst, _, icmp) = icmp6_reply(&out);
    assert_eq!((src, dst), (GW6, IP6));
    let p = Icmpv6Packet::new_checked(&icmp[..]).unwrap();
    assert_eq!(
        Icmpv6Repr::parse(&src, &dst, &p, &ChecksumCapabilities::default()).unwrap(),
        Icmpv6Repr::EchoReply {
            ident: 7,
            seq_no: 3,
            data: b"hello"
        }
    );
    let f = icmp6_frame(IP6, VM_IP6, VROUTER_MAC, 64, &req);
    assert!(matches!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &f), &c, &mut out),
        Outcome::Ignored(_)
    ));
}

// ---- DHCPv6 --------------------------------------------------------------------

fn dhcp6_frame(msg: &[u8]) -> Vec<u8> {
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
    let ulen = 8 + msg.len();
    let mut f = vec![0u8; 14 + 40 + ulen];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 1, 0, 2]);
    f[6..12].copy_from_slice(&MAC);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&(ulen as u16).to_be_bytes());
    f[20] = 17;
    f[21] = 1;
    f[22..38].copy_from_slice(&LL.octets());
    f[38..54].copy_from_slice(&dst.octets());
    f[54..56].copy_from_slice(&546u16.to_be_bytes());
    f[56..58].copy_from_slice(&547u16.to_be_bytes());
    f[58..60].copy_from_slice(&(ulen as u16).to_be_bytes());
    f[62..].copy_from_slice(msg);
    let c = packet::checksum::l4_checksum_v6(&LL.octets(), &dst.octets(), 17, &f[54..]);
    f[60..62].copy_from_slice(&c.to_be_bytes());
    f
}

fn dhcp6_msg(ty: u8, server_id: Option<&[u8]>, ia: bool) -> Vec<u8> {
    use packet::dhcpv6::{option, OptionsWriter};
    let mut b = vec![0u8; 200];
    b[0] = ty;
    b[1..4].copy_from_slice(&[9, 8, 7]);
    let mut w = OptionsWriter::new(&mut b[4..]);
    w.option(option::CLIENTID, &[0, 3, 0, 1, 2, 0x42, 0xac, 0x11, 0, 3])
        .unwrap();
    if let Some(s) = server_id {
        w.option(option::SERVERID, s).unwrap();
    }
    if ia {
        w.option(option::IA_NA, &[0xa, 0xb, 0xc, 0xd, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
    }
    let n = 4 + w.len();
    b.truncate(n);
    b
}

fn dhcp6_answer(c: &Ctx, msg: &[u8]) -> (Outcome, Vec<u8>) {
    let mut out = Vec::new();
    let o = handle(
        &wrap(cmd::L3_PROTOCOLS, VIF, &dhcp6_frame(msg)),
        c,
        &mut out,
    );
    (o, out)
}

#[test]
fn dhcpv6_solicit_request_and_information_request() {
    use packet::dhcpv6::{message_type as m6, option, Ia, Packet};
    let c = ctx();
    let (o, out) = dhcp6_answer(&c, &dhcp6_msg(m6::SOLICIT, None, true));
    assert_eq!(o, Outcome::Reply);
    let r = unwrap_reply(&out);
    assert_eq!(&r[0..6], &MAC);
    let ip = Ipv6Packet::new_checked(&r[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (DNS6, LL));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (547, 546));
    assert_eq!(
        packet::checksum::l4_checksum_v6(&DNS6.octets(), &LL.octets(), 17, ip.payload()),
        0,
        "UDP checksum"
    );
    let msg = Packet::new_checked(udp.payload()).unwrap();
    assert_eq!(msg.msg_type(), m6::ADVERTISE);
    assert_eq!(msg.transaction_id(), [9, 8, 7]);
    let opts = msg.options();
    assert_eq!(opts.get(option::SERVERID).unwrap(), &dhcp6::SERVER_DUID);
    assert_eq!(
        opts.get(option::CLIENTID).unwrap(),
        &[0, 3, 0, 1, 2, 0x42, 0xac, 0x11, 0, 3]
    );
    let ia = Ia::parse(opts.get(option::IA_NA).unwrap(), false).unwrap();
    assert_eq!(ia.iaid, [0xa, 0xb, 0xc, 0xd]);
    assert_eq!(ia.addresses().collect::<Vec<_>>(), [IP6.octets()]);
    assert_eq!(opts.get(option::DNS_SERVERS).unwrap(), &DNS6.octets());

    // REQUEST to us: REPLY; to another server: ignored.
    let (o, out) = dhcp6_answer(&c, &dhcp6_msg(m6::REQUEST, Some(&dhcp6::SERVER_DUID), true));
    assert_eq!(o, Outcome::Reply);
    let r = unwrap_reply(&out);
    let ip = Ipv6Packet::new_checked(&r[14..]).unwrap();
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        Packet::new_checked(udp.payload()).unwrap().msg_type(),
        m6::REPLY
    );
    let (o, _) = dhcp6_answer(
        &c,
        &dhcp6_msg(m6::REQUEST, Some(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]), true),
    );
    assert!(matches!(o, Outcome::Ignored(_)));
    // INFORMATION-REQUEST: REPLY without an address.
    let (o, out) = dhcp6_answer(&c, &dhcp6_msg(m6::INFORMATION_REQUEST, None, false));
    assert_eq!(o, Outcome::Reply);
    let r = unwrap_reply(&out);
    let ip = Ipv6Packet::new_checked(&r[14..]).unwrap();
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    let msg = Packet::new_checked(udp.payload()).unwrap();
    assert_eq!(msg.msg_type(), m6::REPLY);
    assert!(msg.options().get(option::IA_NA).is_none());
    // No IPv6 DHCP on the subnet, or no address: ignored.
    let mut p = port();
    p.dhcp6_enabled = false;
    let (o, _) = dhcp6_answer(&ctx_with(p), &dhcp6_msg(m6::SOLICIT, None, true));
    assert!(matches!(o, Outcome::Ignored(_)));
    let mut p = port();
    p.ip6 = None;
    let (o, _) = dhcp6_answer(&ctx_with(p), &dhcp6_msg(m6::SOLICIT, None, true));
    assert!(matches!(o, Outcome::Ignored(_)));
    // A broken UDP checksum is not answered.
    let mut f = dhcp6_frame(&dhcp6_msg(m6::SOLICIT, None, true));
    f[61] ^= 1;
    let mut out = Vec::new();
    assert!(matches!(
        handle(&wrap(cmd::L3_PROTOCOLS, VIF, &f), &c, &mut out),
        Outcome::Ignored(_)
    ));
}
