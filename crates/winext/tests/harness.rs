//! The shim's real callbacks on a fake Hyper-V switch: lists fabricated as
//! NDIS lays them out, the extension programmed over its ksync device, and
//! every list the switch hands over accounted for (see `winext::fake`).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use dp_core::agent::{cmd, AgentHdr};
use dp_core::flow::table::VR_FLOW_ACTION_FORWARD;
use dp_core::TunnelKind;
use packet::parse::PacketInfo;
use winext::fake::{Layout, NbSpec, NblSpec, Sent};
use winext::ndis::types::*;
use winext::PortNic;

fn one(sent: &[Sent]) -> &Sent {
    assert_eq!(sent.len(), 1, "{sent:#?}");
    &sent[0]
}

#[test]
fn container_to_container_forwards_the_switch_list_in_place() {
    let n = Node::new(Opts::default());
    let f = a_to_b(4000, b"hello");
    let id = n.send(NIC_A, &f);
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert_eq!(s.dests, vec![NIC_B]);
    assert_eq!(s.original, Some(id), "the switch's own list, not a copy");
    assert!(!s.ours);
    assert_eq!(s.frames, vec![routed(&f, MAC_B)]);
    assert_eq!(
        n.sw.completed(),
        vec![id],
        "completed back once, after the send"
    );
    let st = *n.sw.driver.lock().ext.stats();
    assert_eq!((st.zero_copy, st.forwarded), (1, 1));
    assert_eq!(
        st.copied_no_backfill + st.copied_fragmented + st.copied_untrusted,
        0
    );
    // And back.
    let r = b_to_a(4000, b"world");
    let id2 = n.send(NIC_B, &r);
    let sent = n.sw.take_sent();
    assert_eq!(one(&sent).dests, vec![NIC_A]);
    assert_eq!(one(&sent).frames, vec![routed(&r, MAC_A)]);
    assert_eq!(n.sw.completed(), vec![id, id2]);
    n.sw.audit().unwrap();
}

/// The outer headers of an encapsulated frame, parsed independently.
fn outer(frame: &[u8]) -> (PacketInfo, Vec<u8>) {
    let info = PacketInfo::parse(frame).unwrap();
    (info, frame.to_vec())
}

#[test]
fn container_to_fabric_encapsulates_in_the_backfill_and_back() {
    for kind in [
        TunnelKind::MplsOverUdp,
        TunnelKind::MplsOverGre,
        TunnelKind::Vxlan,
    ] {
        let n = Node::new(Opts {
            tunnel: kind,
            ..Opts::default()
        });
        // VXLAN carries bridged traffic (to C's MAC); MPLS routed traffic.
        let f = match kind {
            TunnelKind::Vxlan => udp(MAC_C, MAC_A, IP_A, IP_C, 4001, 5001, b"over the fabric"),
            _ => a_to_c(4001, b"over the fabric"),
        };
        let id = n.send(NIC_A, &f);
        let sent = n.sw.take_sent();
        let s = one(&sent);
        assert_eq!(s.dests, vec![EXTERNAL], "{kind:?}: to the external NIC");
        assert_eq!(s.original, Some(id), "{kind:?}: encapsulated in place");
        let out = &s.frames[0];
        let (info, _) = outer(out);
        assert_eq!(&out[0..6], &dp_core::testkit::PEER_MAC);
        assert_eq!(&info.dst[..4], &dp_core::testkit::PEER_IP);
        let inner_at = out.len() - (f.len() - 14);
        // L3 tunnels carry the IP packet, VXLAN the inner Ethernet frame.
        match kind {
            TunnelKind::Vxlan => {
                assert_eq!(&out[out.len() - f.len()..], &f[..], "inner frame unchanged")
            }
            _ => assert_eq!(&out[inner_at + 9..inner_at + 10], &[17], "inner UDP"),
        }
        let label_or_vni = match kind {
            TunnelKind::MplsOverUdp => {
                assert_eq!(u16::from_be_bytes([out[36], out[37]]), 6635);
                u32::from_be_bytes([out[42], out[43], out[44], 0]) >> 12
            }
            TunnelKind::MplsOverGre => {
                assert_eq!(out[23], 47);
                assert_eq!(u16::from_be_bytes([out[36], out[37]]), 0x8847);
                u32::from_be_bytes([out[38], out[39], out[40], 0]) >> 12
            }
            TunnelKind::Vxlan => {
                assert_eq!(u16::from_be_bytes([out[36], out[37]]), 4789);
                u32::from_be_bytes([out[46], out[47], out[48], 0]) >> 8
            }
        };
        assert_eq!(label_or_vni, LABEL_C, "{kind:?}");
        // The peer answers C -> A through the same tunnel: it arrives on the
        // physical adapter's index and leaves decapsulated to A.
        let back = encapsulate_reply(
            kind,
            n.a.label,
            &udp(dp_core::VROUTER_MAC, MAC_C, IP_C, IP_A, 5001, 4001, b"back"),
        );
        let id2 = n.send(PHYS, &back);
        let sent = n.sw.take_sent();
        let s = one(&sent);
        assert_eq!(s.dests, vec![NIC_A], "{kind:?}: decapsulated to A");
        assert_eq!(s.original, Some(id2));
        assert_eq!(&s.frames[0][0..6], &MAC_A);
        assert_eq!(n.sw.completed(), vec![id, id2]);
        n.sw.audit().unwrap();
    }
}

/// A frame from the peer to this host: outer Ethernet/IPv4 + the tunnel.
fn encapsulate_reply(kind: TunnelKind, label: u32, inner: &[u8]) -> Vec<u8> {
    use dp_core::testkit::{FABRIC_IP, FABRIC_MAC, PEER_IP, PEER_MAC};
    let mut payload = Vec::new();
    let proto;
    match kind {
        TunnelKind::MplsOverUdp => {
            proto = 17;
            let body_len = 4 + inner.len() - 14;
            payload.extend_from_slice(&50000u16.to_be_bytes());
            payload.extend_from_slice(&6635u16.to_be_bytes());
            payload.extend_from_slice(&((8 + body_len) as u16).to_be_bytes());
            payload.extend_from_slice(&[0, 0]);
            payload.extend_from_slice(&((label << 12) | 0x100 | 64).to_be_bytes());
            payload.extend_from_slice(&inner[14..]);
        }
        TunnelKind::MplsOverGre => {
            proto = 47;
            payload.extend_from_slice(&[0, 0, 0x88, 0x47]);
            payload.extend_from_slice(&((label << 12) | 0x100 | 64).to_be_bytes());
            payload.extend_from_slice(&inner[14..]);
        }
        TunnelKind::Vxlan => {
            proto = 17;
            payload.extend_from_slice(&50000u16.to_be_bytes());
            payload.extend_from_slice(&4789u16.to_be_bytes());
            payload.extend_from_slice(&((16 + inner.len()) as u16).to_be_bytes());
            payload.extend_from_slice(&[0, 0]);
            payload.extend_from_slice(&[0x08, 0, 0, 0]);
            payload.extend_from_slice(&(LABEL_C << 8).to_be_bytes());
            let mut e = inner.to_vec();
            e[0..6].copy_from_slice(&MAC_A);
            payload.extend_from_slice(&e);
        }
    }
    let total = 20 + payload.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ];
    ip.extend_from_slice(&PEER_IP);
    ip.extend_from_slice(&FABRIC_IP);
    let c = packet::checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = FABRIC_MAC.to_vec();
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend(ip);
    f.extend(payload);
    f
}

#[test]
fn flow_miss_traps_to_pkt0_and_the_agent_answer_releases_the_held_list() {
    let mut n = Node::new(Opts {
        policy: true,
        ..Opts::default()
    });
    let f = a_to_b(4002, b"first packet");
    let id = n.send(NIC_A, &f);
    assert!(n.sw.take_sent().is_empty(), "held, not sent");
    assert!(
        n.sw.completed().is_empty(),
        "the switch's list stays with the extension"
    );
    let (hdr, body) = n.pkt0().expect("a FLOW_MISS trap on pkt0");
    assert_eq!(hdr.cmd, cmd::FLOW_MISS);
    assert_eq!(hdr.ifindex, 3);
    assert_eq!(&body[..], &f[..body.len()]);
    assert_eq!(n.sw.driver.lock().ext.held(), 1);
    // The agent's FLOW_SET over the ksync device.
    assert_eq!(n.decide(&hdr, VR_FLOW_ACTION_FORWARD), 0);
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert_eq!(s.original, Some(id), "the held list itself goes out");
    assert_eq!(s.dests, vec![NIC_B]);
    assert_eq!(s.frames, vec![routed(&f, MAC_B)]);
    assert_eq!(n.sw.completed(), vec![id]);
    assert_eq!(n.sw.driver.lock().ext.held(), 0);
    n.sw.audit().unwrap();
}

#[test]
fn agent_injection_on_pkt0_leaves_through_the_switch() {
    let n = Node::new(Opts::default());
    let reply = udp(
        MAC_A,
        dp_core::VROUTER_MAC,
        [198, 18, 0, 1],
        IP_A,
        67,
        68,
        b"dhcp offer",
    );
    let hdr = AgentHdr {
        ifindex: 3,
        vrf: VRF,
        cmd: cmd::SWITCH,
        ..AgentHdr::default()
    };
    n.sw.driver.pkt0_write(&agent_frame(&hdr, &reply)).unwrap();
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert!(s.ours, "a list of the extension's own");
    assert_eq!(s.dests, vec![NIC_A]);
    assert_eq!(s.src, PortNic::new(0, 0), "from the switch's default port");
    assert_eq!(s.frames, vec![reply]);
    n.sw.audit().unwrap();
}

#[test]
fn multi_nb_lists_go_whole_or_split_without_copying() {
    let n = Node::new(Opts::default());
    n.sw.set_auto_complete(false);
    let nb = |f: Vec<u8>| NbSpec {
        frame: f,
        layout: Layout::Contiguous {
            backfill: dp_core::HEADROOM,
        },
    };
    // Both to B: the list goes whole.
    let whole = NblSpec {
        src: NIC_A,
        nbs: vec![nb(a_to_b(1, b"x")), nb(a_to_b(2, b"y"))],
        safe_len: None,
        native: false,
        tci: 0,
    };
    // One to B, one to C over the fabric, one dropped (bad IP version).
    let mut bad = a_to_b(3, b"bad");
    bad[14] = 0x65;
    let mixed = NblSpec {
        src: NIC_A,
        nbs: vec![nb(a_to_b(4, b"b")), nb(a_to_c(5, b"c")), nb(bad)],
        safe_len: None,
        native: false,
        tci: 0,
    };
    let ids = n.sw.send(&[whole, mixed]);
    let sent = n.sw.take_sent();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_eq!(sent[0].original, Some(ids[0]));
    assert_eq!(sent[0].frames.len(), 2);
    assert_eq!(sent[0].dests, vec![NIC_B]);
    assert!(
        sent[1].ours && sent[2].ours,
        "split children are the extension's lists"
    );
    assert_eq!(sent[1].dests, vec![NIC_B]);
    assert_eq!(sent[2].dests, vec![EXTERNAL]);
    let st = *n.sw.driver.lock().ext.stats();
    assert_eq!(st.split, 1);
    assert_eq!(st.zero_copy, 5, "no frame copied");
    // The split parent waits for its children.
    assert!(n.sw.completed().is_empty());
    n.sw.complete_below();
    assert_eq!(n.sw.completed().len(), 2);
    assert!(n.sw.completed().contains(&ids[1]));
    n.sw.audit().unwrap();
}

#[test]
fn fragmented_unbackfilled_and_untrusted_frames_are_copied_once_and_counted() {
    let n = Node::new(Opts::default());
    let f = a_to_b(7, b"0123456789abcdef");
    let lists = [
        NblSpec {
            src: NIC_A,
            nbs: vec![NbSpec {
                frame: f.clone(),
                layout: Layout::Split {
                    backfill: 64,
                    cuts: vec![14, 20],
                },
            }],
            safe_len: None,
            native: false,
            tci: 0,
        },
        NblSpec::frame(NIC_A, &f, 0),
        NblSpec {
            safe_len: Some(32),
            ..NblSpec::frame(NIC_A, &f, 64)
        },
    ];
    let ids = n.sw.send(&lists);
    let sent = n.sw.take_sent();
    assert_eq!(sent.len(), 3);
    for s in &sent {
        assert!(s.ours, "a copy");
        assert!(s.data_safe, "the copy is in the extension's memory");
        assert_eq!(s.dests, vec![NIC_B]);
        assert_eq!(s.frames, vec![routed(&f, MAC_B)]);
        assert_eq!(s.src, NIC_A, "the copy keeps the source port");
    }
    let mut done = n.sw.completed();
    done.sort();
    assert_eq!(done, ids, "originals completed once copied");
    let st = *n.sw.driver.lock().ext.stats();
    assert_eq!(
        (
            st.copied_fragmented,
            st.copied_no_backfill,
            st.copied_untrusted,
            st.zero_copy
        ),
        (1, 1, 1, 0)
    );
    n.sw.audit().unwrap();
}

#[test]
fn nic_disconnect_with_packets_in_flight_and_held() {
    let mut n = Node::new(Opts {
        policy: true,
        ..Opts::default()
    });
    // A flow A -> B decided, a second flow from A held.
    let f = a_to_b(4100, b"one");
    let first = n.send(NIC_A, &f);
    let (hdr, _) = n.pkt0().unwrap();
    n.sw.set_auto_complete(false);
    assert_eq!(n.decide(&hdr, VR_FLOW_ACTION_FORWARD), 0);
    assert_eq!(n.sw.below(), 1, "in flight below the filter");
    let held = n.send(NIC_A, &a_to_b(4101, b"two"));
    assert_eq!(n.sw.driver.lock().ext.held(), 1);
    assert_eq!(n.pkt0().unwrap().0.ifindex, 3, "its FLOW_MISS");
    // A's NIC goes away.
    n.sw.remove_nic(NIC_A);
    assert_eq!(
        n.sw.completed(),
        vec![held],
        "its held list is given back at disconnect"
    );
    assert_eq!(n.sw.driver.lock().ext.held(), 0);
    // Nothing more goes to A: B's answer is a new flow, held, and once
    // decided finds no destination.
    let back = n.send(NIC_B, &b_to_a(4100, b"reply"));
    let (trap, _) = n.pkt0().unwrap();
    assert_eq!(n.decide(&trap, VR_FLOW_ACTION_FORWARD), 0);
    assert!(n.sw.take_sent().iter().all(|s| !s.dests.contains(&NIC_A)));
    assert!(n.sw.completed().contains(&back));
    assert!(n.sw.driver.lock().ext.stats().no_destination >= 1);
    // The in-flight list completes normally afterwards.
    n.sw.complete_below();
    assert!(n.sw.completed().contains(&first));
    n.sw.audit().unwrap();
}

#[test]
fn pause_gives_back_held_lists_and_waits_for_its_own() {
    let mut n = Node::new(Opts {
        policy: true,
        ..Opts::default()
    });
    n.sw.set_auto_complete(false);
    // One of the extension's lists below (an injection), one held.
    let hdr = AgentHdr {
        ifindex: 4,
        vrf: VRF,
        cmd: cmd::SWITCH,
        ..AgentHdr::default()
    };
    n.sw.driver
        .pkt0_write(&agent_frame(
            &hdr,
            &udp(
                MAC_B,
                dp_core::VROUTER_MAC,
                [198, 18, 0, 1],
                IP_B,
                67,
                68,
                b"x",
            ),
        ))
        .unwrap();
    let held = n.send(NIC_A, &a_to_b(4200, b"held"));
    let (trap, _) = n.pkt0().unwrap();
    assert_eq!(n.sw.pause(), NDIS_STATUS_PENDING, "our list is still below");
    assert_eq!(n.sw.completed(), vec![held], "held lists go back at pause");
    // Paused: new lists come straight back, nothing is sent.
    let during = n.send(NIC_A, &a_to_b(4201, b"paused"));
    assert!(n.sw.completed().contains(&during));
    // The agent's answer finds nothing to release.
    assert_eq!(n.decide(&trap, VR_FLOW_ACTION_FORWARD), 0);
    assert_eq!(n.sw.take_sent().len(), 1, "only the injection");
    assert_eq!(n.sw.pause_completions(), 0);
    n.sw.complete_below();
    assert_eq!(
        n.sw.pause_completions(),
        1,
        "NdisFPauseComplete once the last came back"
    );
    n.sw.audit().unwrap();
    // Restart: the decided flow forwards.
    n.sw.set_auto_complete(true);
    assert_eq!(n.sw.restart().0, NDIS_STATUS_SUCCESS);
    let again = n.send(NIC_A, &a_to_b(4200, b"again"));
    assert_eq!(one(&n.sw.take_sent()).original, Some(again));
    n.sw.audit().unwrap();
}

#[test]
fn ksync_answers_framed_as_upstreams_windows_driver() {
    use sandesh::frame::{self, Frame, NLM_F_MULTI};
    let mut n = Node::new(Opts::default());
    // Two requests in one message: two answers.
    let req = request(
        &[
            ksync::dump::vifs(None),
            sandesh::Message::Interface(sandesh::VrInterfaceReq {
                h_op: sandesh::SandeshOp::Get,
                vifr_idx: 3,
                ..Default::default()
            }),
        ],
        77,
    );
    n.sw.ksync(&mut n.ksync, &req).unwrap();
    let mut out = vec![0u8; 1 << 20];
    let mut got = Vec::new();
    loop {
        let k = n.ksync.read(&mut out);
        if k == 0 {
            break;
        }
        got.extend_from_slice(&out[..k]);
    }
    let frames: Vec<Frame> = frame::parse_all(&got).map(|f| f.unwrap()).collect();
    assert!(frames.len() >= 3, "{frames:?}");
    let (last, parts) = frames.split_last().unwrap();
    assert!(matches!(last, Frame::Done(_)), "closed by NLMSG_DONE");
    for f in parts {
        let Frame::Sandesh { header, .. } = f else {
            panic!("{f:?}");
        };
        assert_eq!(header.len % 4, 0, "padded");
        assert_ne!(header.flags & NLM_F_MULTI, 0, "NLM_F_MULTI on every part");
        assert_eq!(header.seq, 77);
    }
}

#[test]
fn native_forwarding_lists_pass_down_untouched() {
    let n = Node::new(Opts {
        policy: true,
        ..Opts::default()
    });
    let f = a_to_b(4300, b"hnv");
    let id = n.sw.send(&[NblSpec {
        native: true,
        ..NblSpec::frame(NIC_A, &f, dp_core::HEADROOM)
    }])[0];
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert!(s.native && s.dests.is_empty(), "{s:?}");
    assert_eq!(s.original, Some(id));
    assert_eq!(s.frames, vec![f], "not rewritten");
    assert!(
        n.pkt0().is_none(),
        "no flow, no trap: the core never saw it"
    );
    assert_eq!(n.sw.completed(), vec![id]);
    assert_eq!(n.sw.driver.lock().ext.stats().native_forwarded, 1);
    assert!(n.sw.violations().is_empty(), "{:?}", n.sw.violations());
    n.sw.audit().unwrap();
}

/// A container frame on A's VLAN 100 interface, routed to B.
fn s_to_b(sport: u16, payload: &[u8]) -> Vec<u8> {
    udp(
        dp_core::VROUTER_MAC,
        MAC_S,
        IP_S,
        IP_B,
        sport,
        5001,
        payload,
    )
}

fn tagged(src: PortNic, frame: &[u8], tci: u16) -> NblSpec {
    NblSpec {
        tci,
        ..NblSpec::frame(src, frame, dp_core::HEADROOM)
    }
}

fn ipackets(n: &Node, vif: u16) -> u64 {
    n.sw.driver
        .lock()
        .ext
        .router()
        .vif(vif)
        .unwrap()
        .stats
        .ipackets
}

#[test]
fn vlan_tags_travel_out_of_band_as_ndis_carries_them() {
    let n = Node::new(Opts {
        vlan_sub: true,
        ..Opts::default()
    });
    // In: the tag beside A's untagged frame (priority 1 with VLAN 100)
    // selects the sub-interface; B gets the frame untagged, no tag beside.
    let f = s_to_b(4100, b"from vlan 100");
    let id = n.sw.send(&[tagged(NIC_A, &f, (1 << 13) | SUB_VLAN)])[0];
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert_eq!(
        (s.dests.clone(), s.original, s.tci),
        (vec![NIC_B], Some(id), 0)
    );
    assert_eq!(s.frames, vec![routed(&f, MAC_B)]);
    assert_eq!(ipackets(&n, SUB_VIF), 1, "the sub-interface received it");
    assert_eq!(ipackets(&n, 3), 0, "not the parent");

    // Out: B's answer to the sub-interface leaves through A's NIC with the
    // tag beside the frame, not in it.
    let r = udp(dp_core::VROUTER_MAC, MAC_B, IP_B, IP_S, 5001, 4100, b"back");
    n.send(NIC_B, &r);
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert_eq!((s.dests.clone(), s.tci), (vec![NIC_A], SUB_VLAN));
    assert_eq!(s.frames, vec![routed(&r, MAC_S)], "untagged data");

    // Untagged traffic of the parent is unchanged, and clears no tag it
    // never had.
    let g = a_to_b(4101, b"parent");
    n.send(NIC_A, &g);
    let sent = n.sw.take_sent();
    assert_eq!(
        (one(&sent).tci, one(&sent).frames.clone()),
        (0, vec![routed(&g, MAC_B)])
    );

    // A tag of a VLAN with no sub-interface is the switch's (an
    // access-mode port's): it stays beside the frame, which is the
    // parent's untagged traffic.
    let h = a_to_b(4104, b"access port");
    n.sw.send(&[tagged(NIC_A, &h, 300)]);
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert_eq!((s.dests.clone(), s.tci), (vec![NIC_B], 300));
    assert_eq!(s.frames, vec![routed(&h, MAC_B)]);
    assert_eq!(ipackets(&n, 3), 2, "the parent's (with the untagged one)");

    let st = *n.sw.driver.lock().ext.stats();
    assert_eq!(
        (st.vlan_tag_in, st.vlan_tag_out, st.vlan_no_room),
        (1, 1, 0)
    );
    n.sw.audit().unwrap();
}

#[test]
fn a_held_vlan_frame_is_released_to_its_sub_interface() {
    let mut n = Node::new(Opts {
        policy: true,
        vlan_sub: true,
        ..Opts::default()
    });
    let f = s_to_b(4102, b"held on vlan 100");
    let id = n.sw.send(&[tagged(NIC_A, &f, SUB_VLAN)])[0];
    assert!(n.sw.take_sent().is_empty(), "held");
    let (hdr, _) = n.pkt0().expect("a FLOW_MISS trap");
    assert_eq!(hdr.cmd, cmd::FLOW_MISS);
    assert_eq!(hdr.ifindex, SUB_VIF, "the sub-interface's flow");
    assert_eq!(n.decide(&hdr, VR_FLOW_ACTION_FORWARD), 0);
    // The held list, re-injected with the tag in its frame, goes out
    // untagged to B.
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert_eq!((s.dests.clone(), s.tci), (vec![NIC_B], 0));
    assert_eq!(s.frames, vec![routed(&f, MAC_B)]);
    assert!(n.sw.completed().contains(&id));
    n.sw.audit().unwrap();
}

#[test]
fn a_copied_vlan_frame_keeps_its_tag() {
    let n = Node::new(Opts {
        vlan_sub: true,
        ..Opts::default()
    });
    // Fragmented and with no room in front: the shim copies it (with the
    // core's headroom) and the copy must carry the list's tag.
    let f = s_to_b(4103, b"copied");
    let spec = NblSpec {
        tci: SUB_VLAN,
        nbs: vec![NbSpec {
            frame: f.clone(),
            layout: Layout::Split {
                backfill: 0,
                cuts: vec![20],
            },
        }],
        ..NblSpec::frame(NIC_A, &f, 0)
    };
    n.sw.send(&[spec]);
    let sent = n.sw.take_sent();
    let s = one(&sent);
    assert!(s.ours, "a copy");
    assert_eq!((s.dests.clone(), s.tci), (vec![NIC_B], 0));
    assert_eq!(s.frames, vec![routed(&f, MAC_B)]);
    assert_eq!(ipackets(&n, SUB_VIF), 1);
    n.sw.audit().unwrap();
}
