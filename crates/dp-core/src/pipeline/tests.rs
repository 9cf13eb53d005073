//! Pipeline properties that need the crate's internals: how many times a
//! packet's flow key is hashed, and the HOLD bound.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::flow::hash::test_count::hashes;
use crate::flow::table::{VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD};
use crate::testkit::{Output, Topo};
use crate::{RouterConfig, VROUTER_MAC};
use alloc::vec::Vec;
use packet::checksum;

const VM1_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 1];
const VM2_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 2];
const VM1_IP: [u8; 4] = [198, 18, 0, 1];
const VM2_IP: [u8; 4] = [198, 18, 0, 2];

/// A UDP/IPv4 frame from VM1 to VM2 (routed: to the vRouter MAC).
fn udp(sport: u16) -> Vec<u8> {
    udp_to(sport, VM2_IP)
}

/// A UDP/IPv4 frame from VM1 to `dst` (routed: to the vRouter MAC).
fn udp_to(sport: u16, dst: [u8; 4]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&53u16.to_be_bytes());
    u.extend_from_slice(&12u16.to_be_bytes());
    u.extend_from_slice(&[0, 0, 1, 2, 3, 4]);
    ipv4_from_vm1(dst, 17, u, 6)
}

/// A frame from VM1 to `dst` (routed) carrying `l4` of `proto`, whose
/// checksum (at `csum_at` in `l4`) is filled in.
fn ipv4_from_vm1(dst: [u8; 4], proto: u8, mut l4: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&VROUTER_MAC);
    f.extend_from_slice(&VM1_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let len = (20 + l4.len()) as u16;
    let mut ip = alloc::vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&VM1_IP);
    ip.extend_from_slice(&dst);
    let c = checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let c = checksum::l4_checksum_v4(&VM1_IP, &dst, proto, &l4);
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&l4);
    f
}

fn topo() -> Topo {
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], true);
    t
}

#[test]
fn flow_key_is_hashed_once_per_packet() {
    let mut t = topo();
    let frames: Vec<Vec<u8>> = (0..8).map(|i| udp(1000 + i)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();

    // New flows: prefetch, lookup and insertion share one hash.
    let before = hashes();
    let outs = t.run_batch(3, &refs);
    assert_eq!(hashes() - before, 8, "one hash per new-flow packet");
    let flows: Vec<u32> = outs
        .iter()
        .map(|o| match o.last() {
            Some(Output::Hold { flow }) => *flow,
            o => panic!("not held: {o:?}"),
        })
        .collect();
    for f in &flows {
        t.decide_flow(*f, VR_FLOW_ACTION_FORWARD).unwrap();
    }

    // Decided flows: prefetch and lookup share one hash.
    let before = hashes();
    let outs = t.run_batch(3, &refs);
    assert_eq!(hashes() - before, 8, "one hash per forwarded packet");
    assert!(outs
        .iter()
        .all(|o| matches!(o.last(), Some(Output::Tx { vif: 4, .. }))));
}

#[test]
fn hold_entries_expire_after_the_bound() {
    let mut t = topo();
    t.router.set_time(100);
    let out = t.run(3, &udp(7));
    let Some(Output::Hold { flow }) = out.last() else {
        panic!("not held: {out:?}")
    };
    let flow = *flow;
    // A decided flow is never expired, however old.
    let out2 = t.run(3, &udp(8));
    let Some(Output::Hold { flow: decided }) = out2.last() else {
        panic!("not held: {out2:?}")
    };
    let decided = *decided;
    t.decide_flow(decided, VR_FLOW_ACTION_FORWARD).unwrap();
    let cap = t.router.flows().capacity();

    let mut gone = Vec::new();
    t.router.set_time(109);
    assert_eq!(t.router.expire_holds(10, cap, |i| gone.push(i)), 0);
    assert!(t.router.flows().get_valid(flow).is_some(), "young: kept");

    t.router.set_time(110);
    // A small budget scans part of the table per call and goes on from
    // there: a whole sweep takes cap / budget calls.
    let budget = cap / 4;
    let mut n = 0;
    for _ in 0..4 {
        n += t.router.expire_holds(10, budget, |i| gone.push(i));
    }
    assert_eq!(n, 1);
    assert_eq!(gone, [flow]);
    assert!(t.router.flows().get_valid(flow).is_none(), "expired");
    assert!(
        t.router.flows().get_valid(decided).is_some(),
        "decided: kept"
    );
    assert_eq!(t.router.holds_expired(), 1);

    // The flow's next packet makes a new entry and traps again.
    let out = t.run(3, &udp(7));
    assert!(
        out.iter().any(|o| matches!(o, Output::Tx { vif: 2, .. })),
        "trapped again: {out:?}"
    );

    // An entry set back to hold counts from that moment.
    t.router.set_time(500);
    let fe = *t.router.flows().get_valid(decided).unwrap();
    t.router
        .flow_set(&crate::FlowSet {
            index: Some(decided),
            gen_id: Some(fe.gen_id),
            key: *fe.key(),
            action: VR_FLOW_ACTION_HOLD,
            flags: 0,
            rflow: None,
            dvrf: None,
            ecmp_nh_index: -1,
            drop_reason: 0,
            src_nh_index: 0,
        })
        .unwrap();
    let mut gone = Vec::new();
    assert_eq!(t.router.expire_holds(10, cap, |i| gone.push(i)), 1);
    assert_ne!(gone, [decided], "only the entry held since 110 went");
    t.router.set_time(510);
    assert_eq!(t.router.expire_holds(10, cap, |i| gone.push(i)), 1);
    assert_eq!(gone.last(), Some(&decided));
    assert_eq!(t.router.holds_expired(), 3);
}

#[test]
fn offload_hints_only_for_plain_forwarded_flows_and_fold_counts() {
    use crate::flow::table::VR_FLOW_ACTION_DROP;
    let mut t = topo();
    t.router.set_offload_hints(true);
    let f = udp(2000);
    let flow = match t.run(3, &f).last() {
        Some(Output::Hold { flow }) => *flow,
        o => panic!("not held: {o:?}"),
    };
    let mut hints = Vec::new();
    t.router.take_offload_hints(|h| hints.push(*h));
    assert!(hints.is_empty(), "a held flow is not offloadable");

    t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    t.run(3, &f);
    t.router.take_offload_hints(|h| hints.push(*h));
    assert!(
        hints.is_empty(),
        "a UDP flow's first forwarded datagram installs nothing (one-datagram flows)"
    );
    t.run(3, &f);
    t.router.take_offload_hints(|h| hints.push(*h));
    let h = *hints.last().expect("a forwarded flow is reported");
    assert_eq!((h.flow, h.in_vif, h.out_vif), (flow, 3, 4));
    assert_eq!(h.key.sport(), 2000);
    let macs = h.macs.expect("routed: MAC rewrite");
    assert_eq!(&macs[0..6], &VM2_MAC);
    assert_eq!(&macs[6..12], &VROUTER_MAC);
    assert_eq!(
        &h.in_macs[0..6],
        &VROUTER_MAC,
        "offloaded only for this header"
    );
    assert_eq!(&h.in_macs[6..12], &VM1_MAC);

    // Folding adds to the flow entry and keeps it alive.
    let before = t.router.flows().get(flow).unwrap().packets();
    assert!(t.router.fold_offloaded(&h, 10, 1000));
    assert_eq!(t.router.flows().get(flow).unwrap().packets(), before + 10);

    // A policy change: the hint no longer holds, nothing is counted.
    t.decide_flow(flow, VR_FLOW_ACTION_DROP).unwrap();
    assert!(!t.router.offload_still_valid(&h));
    assert!(!t.router.fold_offloaded(&h, 5, 500));
    hints.clear();
    t.run(3, &f);
    t.router.take_offload_hints(|h| hints.push(*h));
    assert!(hints.is_empty(), "a dropped flow is not offloadable");

    // Off: nothing recorded.
    t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    t.router.set_offload_hints(false);
    t.run(3, &f);
    t.router.take_offload_hints(|h| hints.push(*h));
    assert!(hints.is_empty());
}

/// A hint recorded before its flow or the configuration changed is not
/// handed out (the host takes hints after each batch; commands, such as
/// the DROP of a flow whose held frame was just released, may run first).
#[test]
fn stale_offload_hints_are_not_handed_out() {
    use crate::flow::table::VR_FLOW_ACTION_DROP;
    let mut t = topo();
    t.router.set_offload_hints(true);
    let f = udp(2200);
    let flow = match t.run(3, &f).last() {
        Some(Output::Hold { flow }) => *flow,
        o => panic!("not held: {o:?}"),
    };
    t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    let mut hints = Vec::new();
    // The flow changed after the hint was recorded.
    t.run(3, &f);
    t.decide_flow(flow, VR_FLOW_ACTION_DROP).unwrap();
    t.router.take_offload_hints(|h| hints.push(*h));
    assert!(hints.is_empty(), "a hint of a flow now dropped");
    // The configuration changed after the hint was recorded.
    t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    t.run(3, &f);
    let vm2 = t.router.vif(4).unwrap().cfg.clone();
    t.router.vif_add(vm2).unwrap();
    t.router.take_offload_hints(|h| hints.push(*h));
    assert!(hints.is_empty(), "a hint from before a vif change");
    // Nothing changed: handed out.
    t.run(3, &f);
    t.router.take_offload_hints(|h| hints.push(*h));
    assert_eq!(hints.len(), 1);
}

/// A TCP/IPv4 frame from VM1 to VM2 with `flags`.
fn tcp(sport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&80u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    ipv4_from_vm1(VM2_IP, 6, t, 16)
}

/// SYN, FIN and RST never take the fast path: a TCP flow is reported from
/// its first other packet, so half-open connections install nothing.
#[test]
fn tcp_flows_are_offloadable_from_their_first_packet_without_syn_fin_rst() {
    let mut t = topo();
    t.router.set_offload_hints(true);
    let syn = tcp(2100, 0x02);
    let flow = match t.run(3, &syn).last() {
        Some(Output::Hold { flow }) => *flow,
        o => panic!("not held: {o:?}"),
    };
    t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    let mut hints = Vec::new();
    for flags in [0x02, 0x01 | 0x10, 0x04] {
        let out = t.run(3, &tcp(2100, flags));
        assert!(
            matches!(out.last(), Some(Output::Tx { vif: 4, .. })),
            "{flags:#x}: {out:?}"
        );
        t.router.take_offload_hints(|h| hints.push(*h));
        assert!(hints.is_empty(), "flags {flags:#x} reported");
    }
    t.run(3, &tcp(2100, 0x10));
    t.router.take_offload_hints(|h| hints.push(*h));
    assert_eq!(hints.len(), 1, "a plain ACK reports the flow");
    assert_eq!(hints[0].flow, flow);
}

#[test]
fn offload_hint_into_a_tunnel_carries_the_cores_outer_headers() {
    use crate::testkit::FABRIC_VIF;
    use crate::TunnelKind;
    const REMOTE_IP: [u8; 4] = [198, 18, 0, 9];
    const REMOTE_MAC: [u8; 6] = [0x02, 0, 0, 0, 9, 9];
    for kind in [
        TunnelKind::MplsOverUdp,
        TunnelKind::MplsOverGre,
        TunnelKind::Vxlan,
    ] {
        let mut t = topo();
        t.add_remote_vm(1, REMOTE_MAC, REMOTE_IP, [0; 16], kind, 77);
        t.router.set_offload_hints(true);
        let f = udp_to(3000, REMOTE_IP);
        let flow = match t.run(3, &f).last() {
            Some(Output::Hold { flow }) => *flow,
            o => panic!("{kind:?}: not held: {o:?}"),
        };
        t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
        // (A UDP flow is reported from its second forwarded datagram.)
        t.run(3, &f);
        let out = t.run(3, &f);
        let Some(Output::Tx { vif, bytes }) = out.last() else {
            panic!("{kind:?}: not sent: {out:?}")
        };
        assert_eq!(*vif, FABRIC_VIF);
        let mut hints = Vec::new();
        t.router.take_offload_hints(|h| hints.push(*h));
        let h = hints.last().expect("an encapsulated flow is reported");
        assert_eq!((h.flow, h.in_vif, h.out_vif), (flow, 3, FABRIC_VIF));
        let tun = h.tunnel.expect("with its tunnel headers");
        assert_eq!(tun.kind, kind);
        let n = tun.len as usize;
        // The core's bytes, except what changes per packet: IP total
        // length, identification, checksum, and the UDP length.
        let mut wire = bytes[..n].to_vec();
        let mut tmpl = tun.hdr[..n].to_vec();
        for r in [16..18, 18..20, 24..26] {
            wire[r.clone()].fill(0);
            tmpl[r].fill(0);
        }
        if kind != TunnelKind::MplsOverGre {
            wire[38..40].fill(0);
            tmpl[38..40].fill(0);
        }
        assert_eq!(wire, tmpl, "{kind:?}: outer headers");
        // What follows is the inner frame (VXLAN) or packet (MPLS).
        let inner = if tun.l2 { 0 } else { 14 };
        assert_eq!(bytes.len() - n, f.len() - inner, "{kind:?}");
        assert_eq!(tun.l2, kind == TunnelKind::Vxlan, "{kind:?}");
    }
}

/// An MPLSoUDP frame from the peer to this host: `label`, TTL `ttl`,
/// around a UDP packet from `src` to VM2.
fn mpls_udp_to_vm2(label: u32, ttl: u8, src: [u8; 4]) -> Vec<u8> {
    use crate::testkit::{FABRIC_IP, FABRIC_MAC, PEER_IP, PEER_MAC};
    let inner = udp_to(4000, VM2_IP);
    let mut ip_in = inner[14..].to_vec();
    ip_in[12..16].copy_from_slice(&src);
    ip_in[10..12].fill(0);
    let c = checksum::ipv4_header_checksum(&ip_in[..20]);
    ip_in[10..12].copy_from_slice(&c.to_be_bytes());
    // The inner UDP checksum 0: not checked.
    ip_in[26..28].fill(0);
    let mut f = Vec::new();
    f.extend_from_slice(&FABRIC_MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + 4 + ip_in.len()) as u16;
    let mut ip = alloc::vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&PEER_IP);
    ip.extend_from_slice(&FABRIC_IP);
    let c = checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&5000u16.to_be_bytes());
    f.extend_from_slice(&6635u16.to_be_bytes());
    f.extend_from_slice(&(total - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&((label << 12) | 0x100 | u32::from(ttl)).to_be_bytes());
    f.extend_from_slice(&ip_in);
    f
}

#[test]
fn offload_hint_out_of_a_tunnel_says_what_the_core_matched_and_wrote() {
    use crate::testkit::{FABRIC_IP, FABRIC_VIF};
    use crate::TunnelKind;
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], true);
    t.router.set_offload_hints(true);
    let remote = [198, 18, 0, 9];
    let f = mpls_udp_to_vm2(vm2.label, 64, remote);
    let flow = match t.run(FABRIC_VIF, &f).last() {
        Some(Output::Hold { flow }) => *flow,
        o => panic!("not held: {o:?}"),
    };
    t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    // (A UDP flow is reported from its second forwarded datagram.)
    t.run(FABRIC_VIF, &f);
    let out = t.run(FABRIC_VIF, &f);
    let Some(Output::Tx { vif: 4, bytes }) = out.last() else {
        panic!("not delivered to VM2: {out:?}")
    };
    let mut hints = Vec::new();
    t.router.take_offload_hints(|h| hints.push(*h));
    let h = hints.last().expect("a decapsulated flow is reported");
    assert_eq!((h.flow, h.in_vif, h.out_vif), (flow, FABRIC_VIF, 4));
    assert_eq!(h.key.src()[..4], remote);
    let d = h.decap.expect("with what was decapsulated");
    assert_eq!(d.kind, TunnelKind::MplsOverUdp);
    assert_eq!((d.dst, d.label, d.outer_len), (FABRIC_IP, vm2.label, 46));
    assert!(!d.l2 && !d.ttl_dec && h.tunnel.is_none());
    // The Ethernet header the fast path writes is the one the core did.
    assert_eq!(d.eth.map(|e| e.to_vec()), Some(bytes[..14].to_vec()));
    assert_eq!(&bytes[14..], &f[46..], "the inner packet unchanged");

    // Two labels (the "no label" one on top): not the plain layout, so
    // still delivered but not reported.
    let mut two = f[..42].to_vec();
    two.extend_from_slice(&((0xFFFFFu32 << 12) | 64).to_be_bytes());
    two.extend_from_slice(&f[42..]);
    let total = (two.len() - 14) as u16;
    two[16..18].copy_from_slice(&total.to_be_bytes());
    two[24..26].fill(0);
    let c = checksum::ipv4_header_checksum(&two[14..34]);
    two[24..26].copy_from_slice(&c.to_be_bytes());
    two[38..40].copy_from_slice(&(total - 20).to_be_bytes());
    hints.clear();
    let out = t.run(FABRIC_VIF, &two);
    assert!(
        matches!(out.last(), Some(Output::Tx { vif: 4, .. })),
        "{out:?}"
    );
    t.router.take_offload_hints(|h| hints.push(*h));
    assert!(hints.is_empty(), "two labels: {hints:?}");
}

#[test]
fn a_fabric_batch_prefetches_the_bucket_its_flow_lookup_reads() {
    use crate::flow::table::FlowTable;
    use crate::testkit::FABRIC_VIF;
    use packet::parse::PacketInfo;
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], true);
    let frames: Vec<Vec<u8>> = (0..8u8)
        .map(|i| mpls_udp_to_vm2(vm2.label, 64, [198, 18, 0, 20 + i]))
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let outs = t.run_batch(FABRIC_VIF, &refs);
    for (f, o) in frames.iter().zip(&outs) {
        let Some(Output::Hold { flow }) = o.last() else {
            panic!("not held: {o:?}")
        };
        // The walk's key (of the entry it made) hashes to what phase 1
        // prefetched.
        let key = *t.router.flows().get(*flow).unwrap().key();
        let info = PacketInfo::parse(f).unwrap();
        let hint = t.router.fabric_prefetch(f, &info).expect("prefetched");
        assert_eq!(
            (hint.hash, hint.src_nh),
            (FlowTable::hash(&key), key.nh_id())
        );
        t.decide_flow(*flow, VR_FLOW_ACTION_FORWARD).unwrap();
    }
    let outs = t.run_batch(FABRIC_VIF, &refs);
    assert!(outs
        .iter()
        .all(|o| matches!(o.last(), Some(Output::Tx { vif: 4, .. }))));
}

#[test]
fn a_fabric_batch_whose_inner_l4_header_the_walk_does_not_see_is_dropped() {
    // Phase 1 reads the inner ports from the bytes; the walk's parse stops
    // at the inner IP length. Where they disagree the walk decides (and in
    // debug builds it asserts that the key it uses is the one hashed).
    use crate::testkit::FABRIC_VIF;
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], true);
    let whole = mpls_udp_to_vm2(vm2.label, 64, [198, 18, 0, 30]);
    // Offset of the inner IP header: Ethernet, IP, UDP, one label.
    let inner = 14 + 20 + 8 + 4;
    // The inner IP length set to `len` (header checksum fixed), the frame's
    // bytes left as they are.
    let with_inner_len = |len: u16| {
        let mut f = mpls_udp_to_vm2(vm2.label, 64, [198, 18, 0, 31]);
        f[inner + 2..inner + 4].copy_from_slice(&len.to_be_bytes());
        f[inner + 10..inner + 12].fill(0);
        let c = checksum::ipv4_header_checksum(&f[inner..inner + 20]);
        f[inner + 10..inner + 12].copy_from_slice(&c.to_be_bytes());
        f
    };
    // No L4 header within the IP length, though the bytes follow it.
    let no_l4 = with_inner_len(20);
    // Four bytes of UDP header (both ports, no length) within it.
    let cut_l4 = with_inner_len(24);
    let frames: Vec<&[u8]> = alloc::vec![&whole, &no_l4, &cut_l4, &whole];
    let outs = t.run_batch(FABRIC_VIF, &frames);
    assert!(
        matches!(outs[0].last(), Some(Output::Hold { .. })),
        "{outs:?}"
    );
    for o in &outs[1..3] {
        assert!(
            matches!(
                o.last(),
                Some(Output::Drop(crate::DropReason::InvalidPacket))
            ),
            "{outs:?}"
        );
    }
    assert!(
        matches!(outs[3].last(), Some(Output::Hold { .. })),
        "{outs:?}"
    );
}
