//! No input makes the handler panic, and every well-delimited request
//! message is answered with well-formed frames.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use dp_core::nexthop::nh_type;
use proptest::prelude::*;
use sandesh::frame::{self, Meta, Style, GENL_ID_VROUTER, NLM_F_REQUEST};
use sandesh::{Message, SandeshOp, VrInterfaceReq, VrNexthopReq, VrRouteReq};

fn valid_requests() -> Vec<Message> {
    vec![
        VrInterfaceReq {
            h_op: SandeshOp::Add,
            vifr_idx: 1,
            vifr_type: 3,
            vifr_name: "tap1".into(),
            ..Default::default()
        }
        .into(),
        VrNexthopReq {
            h_op: SandeshOp::Add,
            nhr_id: 2,
            nhr_type: nh_type::ENCAP,
            nhr_family: 2,
            nhr_encap_oif_id: vec![1],
            nhr_encap: vec![0; 14],
            ..Default::default()
        }
        .into(),
        VrRouteReq {
            h_op: SandeshOp::Add,
            rtr_family: 2,
            rtr_prefix: vec![10, 0, 0, 0],
            rtr_prefix_len: 8,
            rtr_nh_id: 2,
            ..Default::default()
        }
        .into(),
        VrRouteReq {
            h_op: SandeshOp::Dump,
            rtr_family: 2,
            ..Default::default()
        }
        .into(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes: no panic.
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut dp = Dp::new();
        let _ = dp.raw(&bytes);
    }

    /// Random payloads in valid frames: one well-formed answer per message.
    #[test]
    fn arbitrary_payloads(payloads in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..300), 1..5)) {
        let mut dp = Dp::new();
        let mut buf = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let meta = Meta { family: GENL_ID_VROUTER, flags: NLM_F_REQUEST, seq: i as u32, pid: 4242, version: 0 };
            frame::write_sandesh(&mut buf, &meta, Style::Request, |o| o.extend_from_slice(p)).unwrap();
        }
        let a = dp.answers(&buf);
        prop_assert_eq!(a.len(), payloads.len());
        for (i, (seq, _)) in a.iter().enumerate() {
            prop_assert_eq!(*seq, i as u32);
        }
    }

    /// Valid requests with bytes flipped: answered, never a panic.
    #[test]
    fn mutated_requests(which in 0usize..4, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut dp = Dp::new();
        let reqs = valid_requests();
        let mut payload = reqs[which].to_bytes();
        for (at, x) in flips {
            let n = payload.len();
            payload[at % n] ^= x;
        }
        let mut buf = Vec::new();
        let meta = Meta { family: GENL_ID_VROUTER, flags: NLM_F_REQUEST, seq: 1, pid: 4242, version: 0 };
        for r in &reqs {
            frame::write_sandesh(&mut buf, &meta, Style::Request, |o| r.encode(o)).unwrap();
        }
        frame::write_sandesh(&mut buf, &meta, Style::Request, |o| o.extend_from_slice(&payload)).unwrap();
        let a = dp.answers(&buf);
        prop_assert_eq!(a.len(), reqs.len() + 1);
    }
}
