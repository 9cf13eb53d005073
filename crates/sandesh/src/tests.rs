//! Property tests over every message (unit tests: the `Arbitrary` impls the
//! message macro generates exist only under `cfg(test)`).

use alloc::vec::Vec;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::*;

/// Decoding `bytes` must not panic; if it succeeds, what it decoded must
/// survive encode -> decode unchanged.
fn check_decode_is_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((m, n)) = Message::decode_one(bytes) {
        prop_assert!(n <= bytes.len());
        let again = m.to_bytes();
        let (m2, n2) = Message::decode_one(&again).expect("re-encoded message decodes");
        prop_assert_eq!(n2, again.len());
        prop_assert_eq!(m2, m);
    }
    for r in Messages::new(bytes) {
        let _ = r;
    }
    Ok(())
}

macro_rules! per_message {
    ($($test:ident: $ty:ty,)*) => {
        proptest! {
            $(
                #[test]
                fn $test(m in any::<$ty>()) {
                    // Typed API.
                    let bytes = m.to_bytes();
                    let (d, n) = <$ty as Sandesh>::decode(&bytes).expect("decodes");
                    prop_assert_eq!(n, bytes.len());
                    prop_assert_eq!(&d, &m);
                    // Enum API gives the same bytes and value.
                    let msg = Message::from(m);
                    prop_assert_eq!(msg.name(), <$ty as Sandesh>::NAME);
                    prop_assert_eq!(msg.to_bytes(), bytes.clone());
                    let (d, n) = Message::decode_one(&bytes).expect("decodes");
                    prop_assert_eq!(n, bytes.len());
                    prop_assert_eq!(d, msg);
                    // Every strict prefix is truncated, never a panic or a
                    // bogus success (the last byte is the STOP).
                    for cut in [0, 1, 4, bytes.len() / 2, bytes.len() - 1] {
                        prop_assert_eq!(
                            Message::decode_one(&bytes[..cut]),
                            Err(DecodeError::Truncated)
                        );
                    }
                }
            )*
        }
    };
}

per_message! {
    roundtrip_nexthop: VrNexthopReq,
    roundtrip_interface: VrInterfaceReq,
    roundtrip_vxlan: VrVxlanReq,
    roundtrip_route: VrRouteReq,
    roundtrip_mpls: VrMplsReq,
    roundtrip_mirror: VrMirrorReq,
    roundtrip_vrf: VrVrfReq,
    roundtrip_flow: VrFlowReq,
    roundtrip_vrf_assign: VrVrfAssignReq,
    roundtrip_vrf_stats: VrVrfStatsReq,
    roundtrip_response: VrResponse,
    roundtrip_vrouter_ops: VrouterOps,
    roundtrip_mem_stats: VrMemStatsReq,
    roundtrip_info: VrInfoReq,
    roundtrip_pkt_drop_log: VrPktDropLogReq,
    roundtrip_drop_stats: VrDropStatsReq,
    roundtrip_qos_map: VrQosMapReq,
    roundtrip_fc_map: VrFcMapReq,
    roundtrip_flow_response: VrFlowResponse,
    roundtrip_flow_table_data: VrFlowTableData,
    roundtrip_bridge_table_data: VrBridgeTableData,
    roundtrip_hugepage_config: VrHugepageConfig,
}

#[test]
fn every_name_is_covered() {
    assert_eq!(NAMES.len(), 22);
    for name in NAMES {
        let mut buf = Vec::new();
        wire::write_sandesh_begin(&mut buf, name);
        wire::write_stop(&mut buf);
        let (m, n) = Message::decode_one(&buf).expect("empty object decodes");
        assert_eq!((m.name(), n), (*name, buf.len()));
    }
}

proptest! {
    #[test]
    fn several_objects_in_one_buffer(ms in vec(Message::arbitrary(), 0..5)) {
        let mut buf = Vec::new();
        for m in &ms {
            m.encode(&mut buf);
        }
        prop_assert_eq!(Message::decode_all(&buf).expect("decodes"), ms);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        check_decode_is_stable(&bytes)?;
    }

    /// Garbage after a valid name reaches the field decoders.
    #[test]
    fn arbitrary_fields_never_panic(
        name in proptest::sample::select(NAMES),
        body in vec(any::<u8>(), 0..512),
    ) {
        let mut buf = Vec::new();
        wire::write_sandesh_begin(&mut buf, name);
        buf.extend_from_slice(&body);
        check_decode_is_stable(&buf)?;
    }

    /// Valid encodings with a few bytes changed: deep, mostly-valid input.
    #[test]
    fn mutated_encodings_never_panic(
        m in Message::arbitrary(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = m.to_bytes();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        check_decode_is_stable(&bytes)?;
        check_decode_is_stable(&bytes[..cut.index(bytes.len() + 1)])?;
    }
}

proptest! {
    #[test]
    fn frames_roundtrip(
        batches in vec(vec(Message::arbitrary(), 0..3), 1..4),
        family in 0x11u16..,
        seq in any::<u32>(),
        pid in any::<u32>(),
        version in any::<u8>(),
        response in any::<bool>(),
    ) {
        let style = if response { frame::Style::Response } else { frame::Style::Request };
        let mut out = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let meta = frame::Meta { family, flags: i as u16, seq, pid, version };
            let r = frame::write_sandesh(&mut out, &meta, style, |o| b.iter().for_each(|m| m.encode(o)));
            if r.is_err() {
                return Ok(()); // more than 64 KiB of messages: not representable
            }
        }
        let frames: Vec<_> = frame::parse_all(&out).collect::<Result<_, _>>().expect("parses");
        prop_assert_eq!(frames.len(), batches.len());
        for (i, (f, b)) in frames.iter().zip(&batches).enumerate() {
            let frame::Frame::Sandesh { header, cmd, version: v, payload } = f else {
                return Err(TestCaseError::fail("not a sandesh frame"));
            };
            prop_assert_eq!((header.msg_type, header.flags, header.seq, header.pid), (family, i as u16, seq, pid));
            prop_assert_eq!((*cmd, *v), (frame::SANDESH_REQUEST, version));
            prop_assert_eq!(&Message::decode_all(payload).expect("decodes"), b);
        }
    }

    #[test]
    fn frame_parse_never_panics(bytes in vec(any::<u8>(), 0..256)) {
        for f in frame::parse_all(&bytes) {
            if let Ok(frame::Frame::Sandesh { payload, .. }) = f {
                check_decode_is_stable(payload)?;
            }
        }
        if let Ok((f, n)) = frame::Frame::parse(&bytes) {
            prop_assert!(n <= bytes.len());
            let _ = frame::ctrl_family_id(&f);
        }
    }
}
