//! The datapath loop with in-memory ports: offload handling (whole GSO
//! forwarding, segmentation before encapsulation, checksum completion),
//! holds and re-injection, and the control handle. Runs on any OS.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use dp_core::agent::AgentHdr;
use dp_core::flow::table::VR_FLOW_ACTION_FORWARD;
use dp_core::testkit::{Topo, AGENT_VIF, FABRIC_IP, FABRIC_MAC, FABRIC_VIF, PEER_IP, PEER_MAC};
use dp_core::{FlowSet, RouterConfig, TunnelKind, VROUTER_MAC};
use packet::checksum;
use std::time::{Duration, Instant};
use vrouter::mem::{MemPoller, MemPort, MemPortHandle};
use vrouter::vnet::{flags, gso};
use vrouter::{Datapath, DatapathConfig, Offloads, VnetHdr};

const VRF: u16 = 1;
const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 1];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 2];
const VM1_IP: [u8; 4] = [198, 18, 0, 1];
const VM2_IP: [u8; 4] = [198, 18, 0, 2];
const REMOTE_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 9];
const REMOTE_IP: [u8; 4] = [198, 18, 0, 9];
const VNET: Offloads = Offloads::ALL;

struct Rig {
    dp: Datapath,
    fabric: MemPortHandle,
    agent: MemPortHandle,
    vm1: MemPortHandle,
    vm2: MemPortHandle,
}

/// vm1 (vif 3) and vm2 (vif 4) in one VRF, a remote VM over MPLSoUDP.
fn rig(policy: bool, vm2_offloads: Offloads) -> Rig {
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, VRF, VM1_MAC, VM1_IP, [0; 16], policy);
    t.add_vm(4, VRF, VM2_MAC, VM2_IP, [0; 16], policy);
    t.add_remote_vm(
        VRF,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        100,
    );
    let cfgs: Vec<_> = [FABRIC_VIF, AGENT_VIF, 3, 4]
        .iter()
        .map(|i| t.router.vif(*i).unwrap().cfg.clone())
        .collect();
    let dp = Datapath::start(
        t.router,
        Box::new(MemPoller::new(Duration::from_millis(1))),
        None,
        DatapathConfig::default(),
    )
    .unwrap();
    let mut handles = Vec::new();
    for (cfg, off) in
        cfgs.into_iter()
            .zip([Offloads::default(), Offloads::default(), VNET, vm2_offloads])
    {
        let (port, h) = MemPort::new(&format!("mem{}", cfg.idx), off);
        dp.vif_add_port(cfg, Box::new(port)).unwrap();
        handles.push(h);
    }
    let mut it = handles.into_iter();
    Rig {
        dp,
        fabric: it.next().unwrap(),
        agent: it.next().unwrap(),
        vm1: it.next().unwrap(),
        vm2: it.next().unwrap(),
    }
}

/// Wait (bounded) until `h` has sent at least `n` frames; return them.
fn wait_tx(h: &MemPortHandle, n: usize) -> Vec<(VnetHdr, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(h.take_tx());
        std::thread::sleep(Duration::from_millis(2));
    }
    got.extend(h.take_tx());
    got
}

fn eth(dst: [u8; 6], src: [u8; 6], et: u16) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&et.to_be_bytes());
    f
}

fn ipv4(f: &mut Vec<u8>, proto: u8, src: [u8; 4], dst: [u8; 4], l4_len: usize) {
    let tot = (20 + l4_len) as u16;
    let start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&tot.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let c = checksum::ipv4_header_checksum(&f[start..start + 20]);
    f[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
}

/// A TCP super-packet with a partial checksum, as a veth hands it over.
fn tcp_super(dst: [u8; 4], payload: usize, mss: u16) -> (Vec<u8>, VnetHdr) {
    let mut f = eth(VROUTER_MAC, VM1_MAC, 0x0800);
    ipv4(&mut f, 6, VM1_IP, dst, 20 + payload);
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    f.extend_from_slice(&5000u32.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..payload).map(|i| (i % 251) as u8));
    let ph = checksum::pseudo_header_v4(&VM1_IP, &dst, 6, (20 + payload) as u16);
    f[50..52].copy_from_slice(&ph.to_be_bytes());
    let h = VnetHdr {
        flags: flags::NEEDS_CSUM,
        gso_type: gso::TCPV4,
        hdr_len: 54,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
    };
    (f, h)
}

fn udp_frame(dst: [u8; 4], payload: usize) -> Vec<u8> {
    let mut f = eth(VROUTER_MAC, VM1_MAC, 0x0800);
    ipv4(&mut f, 17, VM1_IP, dst, 8 + payload);
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89]);
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend((0..payload).map(|i| i as u8));
    f
}

/// Verify the L4 checksum of the IPv4 packet at `ip`.
fn l4_ok(ip: &[u8]) -> bool {
    let ihl = (ip[0] & 0xf) as usize * 4;
    let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let l4 = &ip[ihl..tot];
    let ph = checksum::pseudo_header_v4(
        ip[12..16].try_into().unwrap(),
        ip[16..20].try_into().unwrap(),
        ip[9],
        l4.len() as u16,
    );
    checksum::add(ph, checksum::sum(l4)) == 0xffff
}

#[test]
fn gso_to_local_vm_leaves_whole_with_header() {
    let r = rig(false, VNET);
    let (f, h) = tcp_super(VM2_IP, 20000, 1448);
    r.vm1.inject(h, &f);
    let out = wait_tx(&r.vm2, 1);
    assert_eq!(out.len(), 1, "one super-packet, not segments");
    let (vh, g) = &out[0];
    assert_eq!(*vh, h, "virtio header travels unchanged");
    assert_eq!(g.len(), f.len());
    assert_eq!(&g[0..6], &VM2_MAC);
    assert_eq!(&g[6..12], &VROUTER_MAC);
    assert_eq!(g[22], 63, "TTL decremented");
    assert!(checksum::verify(&g[14..34]));
    assert_eq!(
        &g[34..],
        &f[34..],
        "L4 header, partial checksum and payload untouched"
    );
    let st = r.dp.stats().unwrap();
    assert_eq!((st.gso_frames, st.gso_whole, st.gso_segmented), (1, 1, 0));
}

#[test]
fn gso_to_port_without_gso_is_segmented() {
    let r = rig(false, Offloads::default());
    let (f, h) = tcp_super(VM2_IP, 5000, 1448);
    r.vm1.inject(h, &f);
    let out = wait_tx(&r.vm2, 4);
    assert_eq!(out.len(), 4);
    let mut payload = Vec::new();
    for (i, (vh, s)) in out.iter().enumerate() {
        assert_eq!(*vh, VnetHdr::NONE);
        assert_eq!(&s[0..6], &VM2_MAC);
        assert!(checksum::verify(&s[14..34]));
        assert!(l4_ok(&s[14..]), "segment {i}");
        assert_eq!(
            u32::from_be_bytes(s[38..42].try_into().unwrap()),
            5000 + 1448 * i as u32
        );
        payload.extend_from_slice(&s[54..]);
    }
    assert_eq!(payload, f[54..]);
    let st = r.dp.stats().unwrap();
    assert_eq!((st.gso_segmented, st.gso_segments), (1, 4));
}

#[test]
fn gso_into_tunnel_is_segmented_then_encapsulated() {
    let r = rig(false, VNET);
    // Segments must fit the fabric MTU with the 32 bytes of MPLSoUDP.
    let (f, h) = tcp_super(REMOTE_IP, 6000, 1400);
    r.vm1.inject(h, &f);
    let out = wait_tx(&r.fabric, 5);
    assert_eq!(out.len(), 5);
    let mut payload = Vec::new();
    for (vh, s) in &out {
        assert_eq!(*vh, VnetHdr::NONE);
        assert_eq!(u16::from_be_bytes([s[12], s[13]]), 0x0800);
        assert_eq!(s[23], 17, "outer UDP");
        assert_eq!(u16::from_be_bytes([s[36], s[37]]), 6635);
        let label = u32::from_be_bytes(s[42..46].try_into().unwrap()) >> 12;
        assert_eq!(label, 100);
        let inner = &s[46..];
        assert!(checksum::verify(&inner[..20]));
        assert!(l4_ok(inner));
        assert_eq!(inner[8], 63);
        payload.extend_from_slice(&inner[40..]);
    }
    assert_eq!(payload, f[54..]);
}

/// vm2's L3 label in [`rig`] (the second VM the testkit adds).
const VM2_LABEL: u32 = 18;

/// A tunnel super-packet from the peer: MPLSoUDP (`label`) around a TCP
/// super-packet from the remote VM to `dst`, as a packet socket hands over
/// a tunnel GSO skb (the sender's kernel kept tunnel GSO on the fabric):
/// plain TCPv4 GSO in the virtio header, the partial checksum at the
/// inner TCP header, outer UDP checksum 0.
fn mpls_udp_super(label: u32, dst: [u8; 4], payload: usize, mss: u16) -> (Vec<u8>, VnetHdr) {
    let mut f = eth(FABRIC_MAC, PEER_MAC, 0x0800);
    let inner = 20 + 20 + payload;
    ipv4(&mut f, 17, PEER_IP, FABRIC_IP, 8 + 4 + inner);
    f[20] = 0; // no DF, as the core and the BPF encapsulation write it
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&6635u16.to_be_bytes());
    f.extend_from_slice(&((8 + 4 + inner) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&((label << 12) | 0x100 | 64).to_be_bytes());
    let l3 = f.len();
    ipv4(&mut f, 6, REMOTE_IP, dst, 20 + payload);
    f.extend_from_slice(&[0x14, 0x51, 0x9c, 0x40]);
    f.extend_from_slice(&7000u32.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..payload).map(|i| (i % 251) as u8));
    let ph = checksum::pseudo_header_v4(&REMOTE_IP, &dst, 6, (20 + payload) as u16);
    f[l3 + 36..l3 + 38].copy_from_slice(&ph.to_be_bytes());
    let h = VnetHdr {
        flags: flags::NEEDS_CSUM,
        gso_type: gso::TCPV4,
        hdr_len: (l3 + 40) as u16,
        gso_size: mss,
        csum_start: (l3 + 20) as u16,
        csum_offset: 16,
    };
    (f, h)
}

#[test]
fn tunnel_gso_from_the_fabric_leaves_whole_decapsulated() {
    let r = rig(false, VNET);
    let (f, h) = mpls_udp_super(VM2_LABEL, VM2_IP, 20000, 1400);
    let inner = 14 + 20 + 8 + 4;
    r.fabric.inject(h, &f);
    let out = wait_tx(&r.vm2, 1);
    let st = r.dp.stats().unwrap();
    assert_eq!(out.len(), 1, "one inner super-packet, not segments: {st:?}");
    let (vh, g) = &out[0];
    assert_eq!(
        *vh,
        VnetHdr {
            flags: flags::NEEDS_CSUM,
            gso_type: gso::TCPV4,
            hdr_len: 54,
            gso_size: 1400,
            csum_start: 34,
            csum_offset: 16,
        }
    );
    assert_eq!(g.len(), f.len() - inner + 14);
    assert_eq!(&g[0..6], &VM2_MAC);
    assert_eq!(&g[6..12], &VROUTER_MAC);
    assert_eq!(&g[12..14], &[8, 0]);
    assert_eq!(u16::from_be_bytes([g[16], g[17]]) as usize, g.len() - 14);
    assert!(checksum::verify(&g[14..34]), "inner IP checksum");
    assert_eq!(&g[26..34], &f[inner + 12..inner + 20], "inner addresses");
    assert_eq!(
        &g[34..],
        &f[inner + 20..],
        "TCP header, partial checksum and payload untouched"
    );
    assert_eq!(
        (
            st.gso_tunnel,
            st.gso_whole,
            st.gso_segmented,
            st.offload_errors
        ),
        (1, 1, 0, 0)
    );
}

#[test]
fn tunnel_gso_to_a_port_without_gso_is_segmented() {
    let r = rig(false, Offloads::default());
    let (f, h) = mpls_udp_super(VM2_LABEL, VM2_IP, 5000, 1400);
    let inner = 14 + 20 + 8 + 4;
    r.fabric.inject(h, &f);
    let out = wait_tx(&r.vm2, 4);
    assert_eq!(out.len(), 4);
    let mut payload = Vec::new();
    for (i, (vh, s)) in out.iter().enumerate() {
        assert_eq!(*vh, VnetHdr::NONE);
        assert_eq!(&s[0..6], &VM2_MAC);
        assert!(checksum::verify(&s[14..34]));
        assert!(l4_ok(&s[14..]), "segment {i}");
        assert_eq!(
            u32::from_be_bytes(s[38..42].try_into().unwrap()),
            7000 + 1400 * i as u32
        );
        payload.extend_from_slice(&s[54..]);
    }
    assert_eq!(payload, f[inner + 40..]);
    let st = r.dp.stats().unwrap();
    assert_eq!(
        (
            st.gso_tunnel,
            st.gso_segmented,
            st.gso_segments,
            st.offload_errors
        ),
        (1, 1, 4, 0)
    );
}

#[test]
fn partial_checksum_is_completed() {
    let r = rig(false, VNET);
    let (mut f, mut h) = tcp_super(VM2_IP, 300, 1448);
    h.gso_type = gso::NONE;
    h.gso_size = 0;
    // A non-GSO frame: lengths already final.
    f.truncate(54 + 300);
    r.vm1.inject(h, &f);
    let out = wait_tx(&r.vm2, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, VnetHdr::NONE);
    assert!(l4_ok(&out[0].1[14..]));
    assert_eq!(r.dp.stats().unwrap().csum_completed, 1);
}

#[test]
fn broken_offload_metadata_is_dropped_not_fatal() {
    let r = rig(false, VNET);
    let (f, mut h) = tcp_super(VM2_IP, 3000, 1448);
    h.gso_size = 0;
    r.vm1.inject(h, &f);
    let (f2, mut h2) = tcp_super(VM2_IP, 300, 1448);
    h2.gso_type = gso::NONE;
    h2.csum_start = 9000;
    r.vm1.inject(h2, &f2[..354]);
    // A good frame afterwards still flows.
    r.vm1.inject(VnetHdr::NONE, &udp_frame(VM2_IP, 10));
    let out = wait_tx(&r.vm2, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(r.dp.stats().unwrap().offload_errors, 2);
}

fn flow_of_trap(trap: &[u8]) -> u32 {
    AgentHdr::parse(&trap[14..]).unwrap().param
}

#[test]
fn held_frames_are_released_by_flow_set() {
    let r = rig(true, VNET);
    let f = udp_frame(VM2_IP, 32);
    r.vm1.inject(VnetHdr::NONE, &f);
    r.vm1.inject(VnetHdr::NONE, &f);
    let traps = wait_tx(&r.agent, 1);
    assert_eq!(traps.len(), 1, "one FLOW_MISS trap");
    let flow = flow_of_trap(&traps[0].1);
    // Wait until both are held.
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.dp.call(|c| c.held()).unwrap() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(r.dp.call(|c| c.held()).unwrap(), 2);
    assert!(r.vm2.take_tx().is_empty());
    let key =
        r.dp.call(move |c| *c.router().flows().get(flow).unwrap().key())
            .unwrap();
    let out =
        r.dp.flow_set(FlowSet {
            index: Some(flow),
            gen_id: None,
            key,
            action: VR_FLOW_ACTION_FORWARD,
            flags: 0,
            rflow: None,
            dvrf: None,
            ecmp_nh_index: -1,
            drop_reason: 0,
            src_nh_index: 0,
        })
        .unwrap();
    assert!(out.release_held);
    // Re-injected synchronously by flow_set.
    let sent = r.vm2.take_tx();
    assert_eq!(sent.len(), 2);
    assert_eq!(&sent[0].1[0..6], &VM2_MAC);
    let st = r.dp.stats().unwrap();
    assert_eq!((st.held, st.reinjected), (2, 2));
    assert_eq!(r.dp.call(|c| c.held()).unwrap(), 0);
}

#[test]
fn held_frames_are_dropped_by_flow_del() {
    let r = rig(true, VNET);
    r.vm1.inject(VnetHdr::NONE, &udp_frame(VM2_IP, 32));
    let traps = wait_tx(&r.agent, 1);
    let flow = flow_of_trap(&traps[0].1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.dp.call(|c| c.held()).unwrap() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(r.dp.flow_del(flow, None).unwrap());
    assert_eq!(r.dp.call(|c| c.held()).unwrap(), 0);
    assert_eq!(r.dp.stats().unwrap().hold_dropped, 1);
    assert!(r.vm2.take_tx().is_empty());
}

#[test]
fn control_handle_dumps_and_deletes() {
    let r = rig(false, VNET);
    let vifs = r.dp.vifs().unwrap();
    assert!(vifs
        .iter()
        .any(|v| v.vif.cfg.idx == 3 && v.port.as_ref().unwrap().0 == "mem3"));
    assert!(vifs.iter().any(|v| v.vif.cfg.idx == 1 && v.port.is_none()));
    assert!(!r.dp.nexthops().unwrap().is_empty());
    r.dp.vif_del(4).unwrap();
    assert!(r.dp.vif_del(4).is_err(), "second delete fails cleanly");
    // Frames to the deleted vif are dropped and counted by the core.
    r.vm1.inject(VnetHdr::NONE, &udp_frame(VM2_IP, 10));
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.dp.drop_stats().unwrap().total() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(r.dp.drop_stats().unwrap().total() > 0);
    // vif_add by name needs an opener.
    let cfg = dp_core::VifConfig::new(9, dp_core::VifType::Virtual);
    assert!(r.dp.vif_add(cfg).is_err());
    r.dp.stop();
}

/// A UDP GSO (USO) super-packet, as a veth hands over what a sender with
/// `UDP_SEGMENT` wrote: `payload` bytes cut into `seg`-byte datagrams.
fn udp_super(dst: [u8; 4], payload: usize, seg: u16) -> (Vec<u8>, VnetHdr) {
    let mut f = eth(VROUTER_MAC, VM1_MAC, 0x0800);
    ipv4(&mut f, 17, VM1_IP, dst, 8 + payload);
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89]);
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    let ph = checksum::pseudo_header_v4(&VM1_IP, &dst, 17, (8 + payload) as u16);
    f.extend_from_slice(&ph.to_be_bytes());
    f.extend((0..payload).map(|i| (i % 241) as u8));
    let h = VnetHdr {
        flags: flags::NEEDS_CSUM,
        gso_type: gso::UDP_L4,
        hdr_len: 42,
        gso_size: seg,
        csum_start: 34,
        csum_offset: 6,
    };
    (f, h)
}

/// The agent's answer to a trap: FORWARD for the flow it names.
fn forward(r: &Rig, flow: u32) -> dp_core::FlowSetOutcome {
    let key =
        r.dp.call(move |c| *c.router().flows().get(flow).unwrap().key())
            .unwrap();
    r.dp.flow_set(FlowSet {
        index: Some(flow),
        gen_id: None,
        key,
        action: VR_FLOW_ACTION_FORWARD,
        flags: 0,
        rflow: None,
        dvrf: None,
        ecmp_nh_index: -1,
        drop_reason: 0,
        src_nh_index: 0,
    })
    .unwrap()
}

/// A flow whose first packet is a GSO super-packet, on a policy-enabled
/// vif: the FLOW_MISS trap reaches the agent, the super-packet is held
/// whole and, once the agent decides, delivered whole (a TSO/USO peer) or
/// as every one of its segments. Before, the trap went with the probe's
/// discarded actions and the segments overflowed the hold queue: the flow
/// stayed on HOLD with nothing asking the agent.
fn first_packet_super(f: Vec<u8>, h: VnetHdr, segs: usize, vm2: Offloads) {
    let r = rig(true, vm2);
    r.vm1.inject(h, &f);
    let traps = wait_tx(&r.agent, 1);
    assert_eq!(traps.len(), 1, "one FLOW_MISS trap for the super-packet");
    let trap = &traps[0].1;
    let hdr = AgentHdr::parse(&trap[14..]).unwrap();
    assert_eq!(hdr.cmd, dp_core::agent::cmd::FLOW_MISS);
    assert_eq!(hdr.ifindex, 3);
    // Upstream cuts a trap of a GSO packet to 190 bytes.
    assert_eq!(trap.len(), 14 + 30 + 190);
    let flow = hdr.param;
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.dp.call(|c| c.held()).unwrap() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let st = r.dp.stats().unwrap();
    assert_eq!((st.held, st.gso_held, st.hold_overflow), (1, 1, 0));
    assert_eq!(
        r.dp.drop_stats().unwrap().total(),
        0,
        "no segment dropped (FlowQueueLimitExceeded before)"
    );
    assert!(
        r.vm2.take_tx().is_empty(),
        "nothing passes before the decision"
    );

    assert!(forward(&r, flow).release_held);
    let out = wait_tx(&r.vm2, if vm2.tx_gso { 1 } else { segs });
    let payload_in = f.len() - h.hdr_len as usize;
    if vm2.tx_gso {
        assert_eq!(out.len(), 1, "the super-packet leaves whole");
        assert_eq!(out[0].0, h);
        assert_eq!(out[0].1.len(), f.len());
    } else {
        assert_eq!(out.len(), segs, "every segment arrives");
        let got: usize = out.iter().map(|(_, s)| s.len() - h.hdr_len as usize).sum();
        assert_eq!(got, payload_in);
        for (_, s) in &out {
            assert!(l4_ok(&s[14..]));
        }
    }
    assert!(r.agent.take_tx().is_empty(), "one trap only");
}

#[test]
fn tcp_gso_first_packet_on_policy_vif_traps_and_is_held_whole() {
    let (f, h) = tcp_super(VM2_IP, 10 * 1448, 1448);
    first_packet_super(f.clone(), h, 10, VNET);
    first_packet_super(f, h, 10, Offloads::default());
}

#[test]
fn udp_gso_first_packet_on_policy_vif_traps_and_is_held_whole() {
    let (f, h) = udp_super(VM2_IP, 8 * 1000, 1000);
    first_packet_super(f.clone(), h, 8, Offloads::ALL);
    first_packet_super(f, h, 8, Offloads::default());
}

/// A flow left on hold (its trap lost) is removed by the datapath after
/// `hold_timeout`, with what it held; its next packet traps again.
#[test]
fn hold_entries_of_lost_traps_are_removed_after_the_timeout() {
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, VRF, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, VRF, VM2_MAC, VM2_IP, [0; 16], true);
    let cfgs: Vec<_> = [AGENT_VIF, 3]
        .iter()
        .map(|i| t.router.vif(*i).unwrap().cfg.clone())
        .collect();
    let dp = Datapath::start(
        t.router,
        Box::new(MemPoller::new(Duration::from_millis(1))),
        None,
        DatapathConfig {
            hold_timeout: Duration::from_secs(1),
            ..DatapathConfig::default()
        },
    )
    .unwrap();
    let mut h = Vec::new();
    for cfg in cfgs {
        let (port, ph) = MemPort::new(&format!("mem{}", cfg.idx), Offloads::default());
        dp.vif_add_port(cfg, Box::new(port)).unwrap();
        h.push(ph);
    }
    let (agent, vm1) = (&h[0], &h[1]);
    vm1.inject(VnetHdr::NONE, &udp_frame(VM2_IP, 32));
    let first = wait_tx(agent, 1);
    assert_eq!(first.len(), 1);
    let flow = flow_of_trap(&first[0].1);
    // The agent never answers (the trap was lost on its way).
    let deadline = Instant::now() + Duration::from_secs(5);
    while dp.stats().unwrap().hold_flows_expired == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = dp.stats().unwrap();
    assert_eq!(st.hold_flows_expired, 1);
    assert_eq!(dp.call(|c| c.held()).unwrap(), 0);
    assert!(dp
        .call(move |c| c.router().flows().get_valid(flow).is_none())
        .unwrap());
    assert_eq!(dp.call(|c| c.router().holds_expired()).unwrap(), 1);
    vm1.inject(VnetHdr::NONE, &udp_frame(VM2_IP, 32));
    assert_eq!(wait_tx(agent, 1).len(), 1, "the next packet traps again");
}
