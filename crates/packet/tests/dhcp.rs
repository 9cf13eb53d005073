//! DHCPv4 option iterator and writer, with smoltcp's `DhcpPacket`/`DhcpRepr`
//! on the other side.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use packet::dhcp::{self, message_type, DhcpOptions, OptionsWriter};
use packet::wire::*;
use packet::Error;
use proptest::prelude::*;

/// A DHCPDISCOVER as sent by ISC dhclient: options 53, 61, 50, 12, 55, end,
/// then padding.
fn discover() -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[0] = 1; // BOOTREQUEST
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&[0x3d, 0x1d, 0x2c, 0x5a]);
    m[28..34].copy_from_slice(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
    m[236..240].copy_from_slice(&dhcp::MAGIC_COOKIE);
    m.extend_from_slice(&[
        53, 1, 1, // DISCOVER
        61, 7, 1, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, // client id: type 1 + MAC
        50, 4, 192, 0, 2, 10, // requested IP
        0, 0, // pads in the middle
        12, 3, b'v', b'm', b'1', // hostname
        55, 6, 1, 3, 6, 15, 26, 51, // parameter request list
        255, 0, 0, 0,
    ]);
    m
}

#[test]
fn iterate_discover() {
    let m = discover();
    let pkt = DhcpPacket::new_checked(&m[..]).unwrap();
    assert_eq!(pkt.transaction_id(), 0x3d1d2c5a);
    let opts = DhcpOptions::from_packet(&pkt).unwrap();
    let kinds: Vec<u8> = opts.clone().map(|o| o.kind).collect();
    assert_eq!(kinds, [53, 61, 50, 12, 55]);
    assert_eq!(opts.message_type(), Some(message_type::DISCOVER));
    assert_eq!(opts.requested_ip(), Some([192, 0, 2, 10]));
    assert_eq!(opts.hostname(), Some(&b"vm1"[..]));
    assert_eq!(
        opts.client_id(),
        Some(&[1, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02][..])
    );
    assert_eq!(
        opts.parameter_request_list(),
        Some(&[1, 3, 6, 15, 26, 51][..])
    );
    assert_eq!(opts.server_id(), None);
    assert!(!opts.truncated());
    // smoltcp agrees on the message.
    let r = DhcpRepr::parse(&pkt).unwrap();
    assert_eq!(r.message_type, DhcpMessageType::Discover);
    assert_eq!(r.requested_ip, Some(Ipv4Address::new(192, 0, 2, 10)));
}

#[test]
fn iterator_tolerates_bad_input() {
    // Length running past the end.
    let mut o = DhcpOptions::new(&[53, 1, 5, 12, 10, b'a']);
    assert_eq!(o.next().map(|x| x.kind), Some(53));
    assert_eq!(o.next(), None);
    assert!(o.truncated());
    // No end option; lone kind byte at the end.
    let mut o = DhcpOptions::new(&[0, 0, 53, 1, 2, 54]);
    assert_eq!(o.next().map(|x| (x.kind, x.data)), Some((53, &[2u8][..])));
    assert_eq!(o.next(), None);
    assert!(o.truncated());
    assert_eq!(DhcpOptions::new(&[]).count(), 0);
    assert_eq!(DhcpOptions::new(&[255, 53, 1, 1]).count(), 0);
    // Bad cookie / short message.
    let mut m = discover();
    m[236] = 0;
    assert_eq!(DhcpOptions::from_message(&m).err(), Some(Error::Malformed));
    assert_eq!(
        DhcpOptions::from_message(&m[..239]).err(),
        Some(Error::Truncated)
    );
}

#[test]
fn write_offer_and_parse_with_smoltcp() {
    let mut m = vec![0u8; 240 + 128];
    {
        let mut p = DhcpPacket::new_unchecked(&mut m[..]);
        p.set_opcode(smoltcp::wire::DhcpOpCode::Reply);
        p.set_hardware_type(ArpHardware::Ethernet);
        p.set_hardware_len(6);
        p.set_transaction_id(0x3d1d2c5a);
        p.set_your_ip(Ipv4Address::new(192, 0, 2, 10));
        p.set_client_hardware_address(EthernetAddress([2, 0x42, 0xac, 0x11, 0, 2]));
        p.set_sname_and_boot_file_to_zero();
        p.set_magic_number(0x63825363);
    }
    let n = {
        let mut w = OptionsWriter::new(&mut m[dhcp::OPTIONS_OFFSET..]);
        w.message_type(message_type::OFFER).unwrap();
        w.server_id([192, 0, 2, 1]).unwrap();
        w.lease_time(86400).unwrap();
        w.renewal_time(43200).unwrap();
        w.rebinding_time(75600).unwrap();
        w.subnet_mask([255, 255, 255, 0]).unwrap();
        w.routers(&[[192, 0, 2, 1]]).unwrap();
        w.dns_servers(&[[192, 0, 2, 53], [198, 18, 0, 53]]).unwrap();
        w.domain_name("example.test").unwrap();
        w.hostname("vm1").unwrap();
        w.interface_mtu(1450).unwrap();
        w.end().unwrap()
    };
    m.truncate(dhcp::OPTIONS_OFFSET + n);
    let pkt = DhcpPacket::new_checked(&m[..]).unwrap();
    let r = DhcpRepr::parse(&pkt).unwrap();
    assert_eq!(r.message_type, DhcpMessageType::Offer);
    assert_eq!(r.server_identifier, Some(Ipv4Address::new(192, 0, 2, 1)));
    assert_eq!(r.lease_duration, Some(86400));
    assert_eq!(r.renew_duration, Some(43200));
    assert_eq!(r.rebind_duration, Some(75600));
    assert_eq!(r.subnet_mask, Some(Ipv4Address::new(255, 255, 255, 0)));
    assert_eq!(r.router, Some(Ipv4Address::new(192, 0, 2, 1)));
    let dns = r.dns_servers.unwrap();
    assert_eq!(
        dns.as_slice(),
        &[
            Ipv4Address::new(192, 0, 2, 53),
            Ipv4Address::new(198, 18, 0, 53)
        ]
    );
    assert_eq!(r.your_ip, Ipv4Address::new(192, 0, 2, 10));
    // And our iterator reads the rest.
    let o = DhcpOptions::from_message(&m).unwrap();
    assert_eq!(o.get(dhcp::OPT_DOMAIN_NAME), Some(&b"example.test"[..]));
    assert_eq!(o.get(dhcp::OPT_INTERFACE_MTU), Some(&[0x05, 0xaa][..]));
    assert_eq!(o.count(), 11);
}

#[test]
fn writer_limits() {
    let mut b = [0u8; 8];
    let mut w = OptionsWriter::new(&mut b);
    w.lease_time(1).unwrap();
    assert_eq!(w.len(), 6);
    // 6 + 6 > 8: refused, position unchanged.
    assert_eq!(w.server_id([1, 2, 3, 4]), Err(Error::NoSpace));
    assert_eq!(w.len(), 6);
    w.message_type(1).unwrap_err();
    assert_eq!(w.end(), Ok(7));
    let mut big = [0u8; 600];
    let mut w = OptionsWriter::new(&mut big);
    assert_eq!(w.option(12, &[b'a'; 256]), Err(Error::InvalidArgument));
    assert_eq!(w.routers(&[]), Err(Error::InvalidArgument));
    assert_eq!(w.interface_mtu(67), Err(Error::InvalidArgument));
    w.requested_ip([1, 2, 3, 4]).unwrap();
    w.parameter_request_list(&[1, 3]).unwrap();
    w.client_id(&[1, 2, 3]).unwrap();
    assert!(!w.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the writer writes, the iterator reads back in order.
    #[test]
    fn write_then_iterate(opts in prop::collection::vec((1u8..255, prop::collection::vec(any::<u8>(), 0..40)), 0..12)) {
        let mut b = vec![0u8; 600];
        let n = {
            let mut w = OptionsWriter::new(&mut b);
            for (k, d) in &opts {
                w.option(*k, d).unwrap();
            }
            w.end().unwrap()
        };
        let back: Vec<(u8, Vec<u8>)> = DhcpOptions::new(&b[..n]).map(|o| (o.kind, o.data.to_vec())).collect();
        prop_assert_eq!(back, opts);
    }
}
