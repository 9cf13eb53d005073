//! Unknown fields are skipped as Thrift does: a newer peer's `vr_route_req`
//! with extra fields of every type (nested structs, lists of structs, lists
//! of lists, and the map/set/double/xml/sandesh types no ksync message has)
//! decodes to the fields we know. So do known ids that carry another type.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::{IpAddr, Ipv4Addr};

use sandesh::wire::{self, Reader, TType};
use sandesh::*;

sandesh! {
    pub struct Extra {
        1: i32 a: i32,
        2: list<string> names: Vec<String>,
        3: deeper d: Deeper,
    }
}

sandesh! {
    pub struct Deeper {
        7: list<u64> xs: Vec<u64>,
    }
}

sandesh! {
    /// `vr_route_req` as a future peer might send it.
    pub struct RouteReqV2 = "vr_route_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i32 rtr_vrf_id: i32,
        3: i32 rtr_family: i32,
        4: list<byte> rtr_prefix: Vec<u8>,
        5: i32 rtr_prefix_len: i32,
        6: i16 rtr_rid: i16,
        7: i16 rtr_label_flags: i16,
        8: i32 rtr_label: i32,
        9: i32 rtr_nh_id: i32,
        10: list<byte> rtr_marker: Vec<u8>,
        11: i32 rtr_marker_plen: i32,
        12: list<byte> rtr_mac: Vec<u8>,
        13: i32 rtr_replace_plen: i32,
        14: i32 rtr_index: i32,
        15: bool x_bool: bool,
        16: byte x_byte: i8,
        17: i16 x_i16: i16,
        18: i32 x_i32: i32,
        19: i64 x_i64: i64,
        20: u16 x_u16: u16,
        21: u32 x_u32: u32,
        22: u64 x_u64: u64,
        23: string x_string: String,
        24: ipv4 x_ipv4: Ipv4,
        25: uuid_t x_uuid: Uuid,
        26: ipaddr x_ip4: IpAddress,
        27: ipaddr x_ip6: IpAddress,
        28: extra x_struct: Extra,
        29: list<extra> x_structs: Vec<Extra>,
        30: list<list> x_lists: Vec<Vec<i16>>,
        31: list<ipaddr> x_ips: Vec<IpAddress>,
        32: list<uuid_t> x_uuids: Vec<Uuid>,
        1000: list<bool> x_bools: Vec<bool>,
    }
}

fn v2() -> RouteReqV2 {
    let extra = |a| Extra {
        a,
        names: vec!["x".into(), "yz".into()],
        d: Deeper {
            xs: vec![1, u64::MAX],
        },
    };
    RouteReqV2 {
        h_op: SandeshOp::Add,
        rtr_vrf_id: 3,
        rtr_family: 2,
        rtr_prefix: vec![198, 18, 0, 0],
        rtr_prefix_len: 15,
        rtr_label: 17,
        rtr_nh_id: 30,
        rtr_mac: vec![2, 0, 0, 0, 0, 9],
        x_bool: true,
        x_byte: -1,
        x_i16: -2,
        x_i32: -3,
        x_i64: -4,
        x_u16: 5,
        x_u32: 6,
        x_u64: 7,
        x_string: "future".into(),
        x_ipv4: Ipv4(Ipv4Addr::new(192, 0, 2, 9)),
        x_uuid: Uuid([9; 16]),
        x_ip4: IpAddress(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
        x_ip6: IpAddress("2001:db8::1".parse().unwrap()),
        x_struct: extra(1),
        x_structs: vec![extra(2), extra(3)],
        x_lists: vec![vec![1, 2], vec![], vec![3]],
        x_ips: vec![IpAddress("2001:db8::2".parse().unwrap())],
        x_uuids: vec![Uuid([1; 16]), Uuid([2; 16])],
        x_bools: vec![true, false],
        ..Default::default()
    }
}

fn expected() -> VrRouteReq {
    VrRouteReq {
        h_op: SandeshOp::Add,
        rtr_vrf_id: 3,
        rtr_family: 2,
        rtr_prefix: vec![198, 18, 0, 0],
        rtr_prefix_len: 15,
        rtr_label: 17,
        rtr_nh_id: 30,
        rtr_mac: vec![2, 0, 0, 0, 0, 9],
        ..Default::default()
    }
}

#[test]
fn newer_peer_fields_are_skipped() {
    let bytes = v2().to_bytes();
    assert_eq!(RouteReqV2::decode(&bytes).unwrap(), (v2(), bytes.len()));
    assert_eq!(
        VrRouteReq::decode(&bytes).unwrap(),
        (expected(), bytes.len())
    );
    assert_eq!(
        Message::decode_one(&bytes).unwrap(),
        (Message::Route(expected()), bytes.len())
    );
}

/// Types no message of ours uses, appended by hand, and known ids carrying
/// the wrong type (skipped, the earlier value stays), and a repeated known
/// field (the last one wins).
#[test]
fn foreign_types_and_mismatches_are_skipped() {
    let mut b = v2().to_bytes();
    assert_eq!(b.pop(), Some(0)); // reopen the struct

    // map<i32, string> {1: "a"}
    wire::write_field_header(&mut b, TType::Map, 40);
    b.extend_from_slice(&[8, 11, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, b'a']);
    // set<i16> {5}
    wire::write_field_header(&mut b, TType::Set, 41);
    b.extend_from_slice(&[6, 0, 0, 0, 1, 0, 5]);
    // double
    wire::write_field_header(&mut b, TType::Double, 42);
    b.extend_from_slice(&1.5f64.to_be_bytes());
    // xml (a string)
    wire::write_field_header(&mut b, TType::Xml, 43);
    wire::write_string(&mut b, "<a/>");
    // a nested sandesh (C++ T_SANDESH): name, fields, stop
    wire::write_field_header(&mut b, TType::Sandesh, 44);
    wire::write_string(&mut b, "inner");
    wire::write_field_header(&mut b, TType::I32, 1);
    wire::write_i32(&mut b, 5);
    wire::write_stop(&mut b);
    // Known ids with the wrong wire type: skipped.
    wire::write_field_header(&mut b, TType::I64, 2); // rtr_vrf_id is i32
    wire::write_i64(&mut b, 99);
    wire::write_field_header(&mut b, TType::List, 4); // rtr_prefix is list<byte>
    vec![1i32, 2].encode(&mut b);
    wire::write_field_header(&mut b, TType::List, 12); // rtr_mac: list<list<byte>>
    vec![vec![1u8]].encode(&mut b);
    // A repeated known field: the last value wins.
    wire::write_field_header(&mut b, TType::I32, 5);
    wire::write_i32(&mut b, 16);
    wire::write_stop(&mut b);

    let mut want = expected();
    want.rtr_prefix_len = 16;
    assert_eq!(VrRouteReq::decode(&b).unwrap(), (want, b.len()));

    // Skipping the whole object generically consumes exactly the same.
    let mut r = Reader::new(&b);
    r.read_sandesh_begin().unwrap();
    r.skip_fields().unwrap();
    assert_eq!(r.remaining(), 0);
}

#[test]
fn unknown_type_codes_are_errors() {
    for t in [1u8, 5, 7, 16, 17, 25, 0xff] {
        let mut b = VrResponse::default().to_bytes();
        b.pop();
        b.extend_from_slice(&[t, 0, 9, 0, 0, 0, 0, 0]);
        assert_eq!(
            Message::decode_one(&b),
            Err(DecodeError::UnknownType(t)),
            "type {t}"
        );
    }
}

#[test]
fn nesting_is_bounded() {
    // An unknown field of 1000 nested structs.
    let mut b = VrResponse::default().to_bytes();
    b.pop();
    for _ in 0..1000 {
        wire::write_field_header(&mut b, TType::Struct, 50);
    }
    b.extend(std::iter::repeat_n(0, 1001));
    assert_eq!(Message::decode_one(&b), Err(DecodeError::TooDeep));

    // Up to the bound is fine.
    let mut b = VrResponse::default().to_bytes();
    b.pop();
    let depth = usize::from(wire::MAX_DEPTH);
    for _ in 0..depth {
        wire::write_field_header(&mut b, TType::Struct, 50);
    }
    b.extend(std::iter::repeat_n(0, depth + 1));
    assert!(Message::decode_one(&b).is_ok());
}

#[test]
fn counts_are_checked_before_allocating() {
    // A list field claiming 2^31-1 u64 elements in a 30-byte buffer.
    let mut b = VrHugepageConfig::default().to_bytes();
    let at = b.len() - 1;
    b.truncate(at);
    wire::write_field_header(&mut b, TType::List, 2);
    b.extend_from_slice(&[9, 0x7f, 0xff, 0xff, 0xff]);
    assert_eq!(Message::decode_one(&b), Err(DecodeError::Truncated));
    // Same for an unknown field and for a string.
    let mut b = VrResponse::default().to_bytes();
    b.pop();
    b.extend_from_slice(&[15, 0, 77, 12, 0x7f, 0xff, 0xff, 0xff]);
    assert_eq!(Message::decode_one(&b), Err(DecodeError::Truncated));
    let mut b = VrResponse::default().to_bytes();
    b.pop();
    b.extend_from_slice(&[11, 0, 77, 0x7f, 0xff, 0xff, 0xff]);
    assert_eq!(Message::decode_one(&b), Err(DecodeError::Truncated));
    let mut b = VrResponse::default().to_bytes();
    b.pop();
    b.extend_from_slice(&[15, 0, 77, 3, 0x80, 0, 0, 0]);
    assert_eq!(Message::decode_one(&b), Err(DecodeError::NegativeLength));
}
