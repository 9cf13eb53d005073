//! Golden bytes for the types Sandesh adds to Thrift (U16, U32, U64, IPV4,
//! UUID, IPADDR), which no reference Rust implementation knows. The layout
//! mirrors contrail-sandesh's own C test object (`abc_sandesh` with a nested
//! `abc_inner`), with the same values.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sandesh::wire::{Reader, AF_INET6_WINDOWS};
use sandesh::*;

sandesh! {
    /// Every Sandesh scalar type, as a plain struct.
    pub struct AbcInner {
        1: i32 inner_a: i32,
        2: i16 inner_b: i16,
        3: i64 inner_c: i64,
        5: u16 inner_e: u16,
        6: u32 inner_f: u32,
        7: u64 inner_g: u64,
        9: ipv4 inner_i: Ipv4,
        10: uuid_t inner_j: Uuid,
        11: ipaddr inner_k: IpAddress,
        12: ipaddr inner_l: IpAddress,
        13: string inner_m: String,
        14: string inner_n: String,
    }
}

sandesh! {
    pub struct Abc {
        1: abc_inner nested: AbcInner,
    }
}

sandesh! {
    pub struct AbcSandesh = "abc_sandesh" {
        1: abc elem: Abc,
        2: list<byte> rwinfo: Vec<u8>,
    }
}

fn value() -> AbcSandesh {
    AbcSandesh {
        elem: Abc {
            nested: AbcInner {
                inner_a: 3,
                inner_b: 4,
                inner_c: 5,
                inner_e: 65535,
                inner_f: 4294967295,
                inner_g: u64::MAX,
                inner_i: Ipv4(Ipv4Addr::new(20, 1, 1, 3)),
                inner_j: Uuid([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]),
                inner_k: IpAddress(IpAddr::V4(Ipv4Addr::new(20, 1, 1, 2))),
                inner_l: IpAddress(IpAddr::V6(Ipv6Addr::new(0x2001, 0xabce, 0, 0, 0, 0, 0, 4))),
                inner_m: "def".into(),
                inner_n: String::new(),
            },
        },
        rwinfo: vec![0, 1, 2, 3, 4],
    }
}

#[rustfmt::skip]
const GOLDEN: &[u8] = &[
    0, 0, 0, 11, b'a', b'b', b'c', b'_', b's', b'a', b'n', b'd', b'e', b's', b'h',
    12, 0, 1,                                   // elem: struct abc
      12, 0, 1,                                 // nested: struct abc_inner
        8, 0, 1, 0, 0, 0, 3,                    // i32
        6, 0, 2, 0, 4,                          // i16
        10, 0, 3, 0, 0, 0, 0, 0, 0, 0, 5,       // i64
        19, 0, 5, 0xff, 0xff,                   // u16
        20, 0, 6, 0xff, 0xff, 0xff, 0xff,       // u32
        9, 0, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // u64
        22, 0, 9, 20, 1, 1, 3,                  // ipv4, network order
        23, 0, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, // uuid_t
        24, 0, 11, 2, 20, 1, 1, 2,              // ipaddr v4: AF_INET, address
        24, 0, 12, 10,                          // ipaddr v6: AF_INET6 (Linux)
          0x20, 0x01, 0xab, 0xce, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4,
        11, 0, 13, 0, 0, 0, 3, b'd', b'e', b'f', // string
        11, 0, 14, 0, 0, 0, 0,                  // empty (NULL) string
        0,                                      // end of abc_inner
      0,                                        // end of abc
    15, 0, 2, 3, 0, 0, 0, 5, 0, 1, 2, 3, 4,     // list<byte>
    0,
];

#[test]
fn sandesh_types_golden() {
    assert_eq!(value().to_bytes(), GOLDEN);
    assert_eq!(AbcSandesh::decode(GOLDEN).unwrap(), (value(), GOLDEN.len()));
}

#[test]
fn scalar_goldens() {
    let enc = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = Vec::new();
        f(&mut v);
        v
    };
    assert_eq!(enc(&|o| 0x1234u16.encode(o)), [0x12, 0x34]);
    assert_eq!(enc(&|o| 0x1234_5678u32.encode(o)), [0x12, 0x34, 0x56, 0x78]);
    assert_eq!(
        enc(&|o| 0x0102_0304_0506_0708u64.encode(o)),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        enc(&|o| Ipv4(Ipv4Addr::new(192, 0, 2, 1)).encode(o)),
        [192, 0, 2, 1]
    );
    assert_eq!(enc(&|o| Uuid([7; 16]).encode(o)), [7; 16]);
    assert_eq!(
        enc(&|o| IpAddress("198.18.0.1".parse().unwrap()).encode(o)),
        [2, 198, 18, 0, 1]
    );
    assert_eq!(enc(&|o| true.encode(o)), [1]);
    assert_eq!(enc(&|o| (-2i8).encode(o)), [0xfe]);
    assert_eq!(enc(&|o| SandeshOp::Dump.encode(o)), [0, 0, 0, 3]);
    assert_eq!(enc(&|o| FlowOp::FlowTableGet.encode(o)), [0, 0, 0, 2]);
    assert_eq!(
        enc(&|o| vec![1u16, 2].encode(o)),
        [19, 0, 0, 0, 2, 0, 1, 0, 2]
    );
}

#[test]
fn ipaddr_families() {
    // A Windows peer writes its own AF_INET6 (23).
    let mut v6 = vec![AF_INET6_WINDOWS];
    v6.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let got = IpAddress::decode(&mut Reader::new(&v6)).unwrap();
    assert_eq!(got, IpAddress("fe80::1".parse().unwrap()));
    assert_eq!(
        IpAddress::decode(&mut Reader::new(&[0, 1, 2, 3, 4])),
        Err(DecodeError::BadAddressFamily(0))
    );
    assert_eq!(
        IpAddress::decode(&mut Reader::new(&[2, 1, 2, 3])),
        Err(DecodeError::Truncated)
    );
    // Bool: any non-zero byte is true, as in the C reader.
    assert!(bool::decode(&mut Reader::new(&[0x80])).unwrap());
}

#[test]
fn enums_keep_unknown_values() {
    assert_eq!(SandeshOp::from(4), SandeshOp::Response);
    assert_eq!(SandeshOp::from(9), SandeshOp::Unknown(9));
    assert_eq!(i32::from(SandeshOp::Unknown(-7)), -7);
    assert_eq!(FlowOp::from(1), FlowOp::FlowList);
    assert_eq!(SandeshOp::default(), SandeshOp::Add);
}
