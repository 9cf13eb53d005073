//! The kernel fast path (`--fast-path tc`) into the overlay: both hosts
//! run it, policy is on (every packet goes through a flow entry; a thread
//! per host plays the agent and allows new flows), and the bulk of a TCP
//! stream is encapsulated by the BPF program on the VM port's TC ingress
//! and redirected to the fabric. The receiving host's BPF program on the
//! fabric's TC ingress decapsulates it and redirects it to the VM port.
//!
//! Asserts: TCP both ways intact; the sending hosts' fast paths
//! encapsulated packets and the receiving hosts' decapsulated them (a UDP
//! burst's frames do not reach the receiver's user space); every packet on the fabric decodes in tshark as
//! the right encapsulation with the right label/VNI and inner addresses;
//! within a TCP connection the packets the core encapsulated (SYN, FIN)
//! and those the kernel did carry the same outer UDP source port, TTL,
//! flags and UDP checksum 0; FIN still reaches the core; a DROP on the
//! flow stops it at once, on the sending and on the receiving host, and
//! deletes leave nothing offloaded on either.

use super::*;
use dp_core::flow::table::{
    VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD, VR_FLOW_TCP_FIN,
};
use dp_core::{FlowKey, FlowSet};
use std::collections::BTreeSet;
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use vrouter::linux::{OverlayGuard, TcFastPath};

fn set_flow(dp: &Datapath, index: u32, key: FlowKey, action: u16) {
    dp.flow_set(FlowSet {
        index: Some(index),
        gen_id: None,
        key,
        action,
        flags: 0,
        rflow: None,
        dvrf: None,
        ecmp_nh_index: -1,
        drop_reason: 0,
        src_nh_index: 0,
    })
    .unwrap();
}

fn held(dp: &Datapath) -> Vec<(u32, FlowKey)> {
    dp.call(|c| {
        c.mark_read_only();
        c.router()
            .flows()
            .iter_valid()
            .filter(|(_, f)| f.action == VR_FLOW_ACTION_HOLD)
            .map(|(i, f)| (i, *f.key()))
            .collect()
    })
    .unwrap()
}

/// Index, key and TCP flags of the flow `proto` from `src` to port `dport`.
fn flow_of(dp: &Datapath, proto: u8, src: [u8; 4], dport: u16) -> Option<(u32, FlowKey, u16)> {
    dp.call(move |c| {
        c.mark_read_only();
        c.router()
            .flows()
            .iter_valid()
            .find(|(_, f)| {
                let k = f.key();
                k.proto == proto && k.src()[..4] == src && k.dport() == dport
            })
            .map(|(i, f)| (i, *f.key(), f.tcp_flags))
    })
    .unwrap()
}

/// Plays the agent: every new flow is allowed, until `stop`.
fn allow_all(dp: Arc<Datapath>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            for (i, k) in held(&dp) {
                set_flow(&dp, i, k, VR_FLOW_ACTION_FORWARD);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// A UDP socket on `addr`:`port` in namespace `ns`. The previous step's
/// socket on the same port was closed; a bind refused with "address in
/// use" is tried again for up to 2 s (CI once saw it refused right after
/// such a close) before the test fails.
fn bind_udp(ns: &str, addr: [u8; 4], port: u16) -> UdpSocket {
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        let r = in_ns(ns, move || {
            UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(addr), port))
        });
        match r {
            Ok(s) => return s,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                let ss = std::process::Command::new("ip")
                    .args(["netns", "exec", ns, "ss", "-uanp"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                panic!(
                    "bind {}:{port} in {ns}: {e}; UDP sockets there:\n{ss}",
                    Ipv4Addr::from(addr)
                )
            }
        }
    }
}

/// Send `n` UDP datagrams from `src`:40000 in `c1` to `dst`:9000 in
/// `c2`; how many arrived.
fn udp_burst(c1: &str, src: [u8; 4], c2: &str, dst: [u8; 4], n: usize) -> usize {
    let rx = bind_udp(c2, dst, 9000);
    rx.set_nonblocking(true).unwrap();
    let tx = bind_udp(c1, src, 40000);
    let to = SocketAddrV4::new(Ipv4Addr::from(dst), 9000);
    let mut got = 0;
    let mut buf = [0u8; 2048];
    for i in 0..n {
        tx.send_to(&[i as u8; 200], to).unwrap();
        if i % 8 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
    }
    let end = Instant::now() + Duration::from_millis(400);
    while Instant::now() < end {
        if rx.recv(&mut buf).is_ok() {
            got += 1;
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

/// Send `n` UDP GSO super-packets (8 segments of 200 bytes each, the
/// `UDP_SEGMENT` socket option) from `src`:40000 in `c1` to `dst`:9000 in
/// `c2`: (segments sent, datagrams arrived).
fn udp_gso_burst(c1: &str, src: [u8; 4], c2: &str, dst: [u8; 4], n: usize) -> (usize, usize) {
    use std::os::fd::AsRawFd;
    let rx = bind_udp(c2, dst, 9000);
    rx.set_nonblocking(true).unwrap();
    let tx = bind_udp(c1, src, 40000);
    let seg: libc::c_int = 200;
    // SAFETY: setsockopt on a live socket with an int option.
    let r = unsafe {
        libc::setsockopt(
            tx.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&seg as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "UDP_SEGMENT");
    let to = SocketAddrV4::new(Ipv4Addr::from(dst), 9000);
    let mut got = 0;
    let mut buf = [0u8; 2048];
    for i in 0..n {
        tx.send_to(&[i as u8; 1600], to).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
    }
    let end = Instant::now() + Duration::from_millis(400);
    while Instant::now() < end {
        if rx.recv(&mut buf).is_ok() {
            got += 1;
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (n * 8, got)
}

/// Whether the BPF object was built (else the skip is reported).
fn bpf_builds() -> bool {
    match skip_reason(&["clang"]) {
        Some(r) => {
            report_skip(
                "overlay fast path: BPF object needs clang at build time",
                &r,
            );
            false
        }
        None => true,
    }
}

/// Hosts A and B on one fabric, container `ca` on A and `cb` on B, each
/// host a compute node with policy on: with the kernel fast path and its
/// fabric's tunnel GSO kept or not (`Some(gso)`), or user space only
/// (`None`). Returns the namespaces and overlay guards (kept for the
/// test's length: bound first, they drop last), the names
/// `[ha, hb, ca, cb]` and both datapaths.
#[allow(clippy::type_complexity)]
fn two_hosts(
    kind: TunnelKind,
    fast_a: Option<bool>,
    fast_b: Option<bool>,
) -> (
    Namespaces,
    [OverlayGuard; 2],
    [String; 4],
    Arc<Datapath>,
    Arc<Datapath>,
) {
    let mut ns = Namespaces::new();
    let (ha, hb) = fabric(&mut ns);
    let ca = ns.add("ca");
    let cb = ns.add("cb");
    container(&ha, "vh1", &ca, CA_MAC, CA_IP, C_MTU);
    container(&hb, "vh1", &cb, CB_MAC, CB_IP, C_MTU);
    let node = move |me, peer, local: Vm, remote: Vm, fast: Option<bool>| {
        move |dp: &Datapath| {
            if let Some(gso) = fast {
                let mut fp = TcFastPath::load().expect("load the BPF fast path (root, TC BPF)");
                fp.set_encap(true);
                fp.set_keep_tunnel_gso(gso);
                dp.enable_fast_path(Box::new(fp)).unwrap();
            }
            compute_node_with(
                dp,
                kind,
                me,
                peer,
                &local,
                &remote,
                VifFlags::POLICY_ENABLED,
            );
        }
    };
    let (dpa, ga) = start_dp(
        &ha,
        node(
            (FAB_A, FAB_MAC_A),
            (FAB_B, FAB_MAC_B),
            vm_a(),
            vm_b(),
            fast_a,
        ),
    );
    let (dpb, gb) = start_dp(
        &hb,
        node(
            (FAB_B, FAB_MAC_B),
            (FAB_A, FAB_MAC_A),
            vm_b(),
            vm_a(),
            fast_b,
        ),
    );
    (ns, [ga, gb], [ha, hb, ca, cb], Arc::new(dpa), Arc::new(dpb))
}

/// `gso`: `--fast-path tc-encap-gso` (the fabric keeps tunnel GSO: the
/// super-packets cross it whole and the receiver decapsulates them whole).
fn fast_two_hosts(kind: TunnelKind, gso: bool) {
    // (ethtool: to check what the node did to the fabric's tunnel GSO.)
    require_env!("tshark", "ethtool");
    if !bpf_builds() {
        return;
    }
    let (_ns, _guards, [ha, hb, ca, cb], dpa, dpb) = two_hosts(kind, Some(gso), Some(gso));
    let stop = Arc::new(AtomicBool::new(false));
    let agents = [
        allow_all(dpa.clone(), stop.clone()),
        allow_all(dpb.clone(), stop.clone()),
    ];
    let mut caps = captures(&ha, &hb, kind);
    // The node turned tunnel GSO off on the fabric: the receiving host's
    // user-space path cannot take tunnel super-packets.
    let state = if gso { "on" } else { "off" };
    for h in [&ha, &hb] {
        let k = fabric_features(h);
        assert!(
            k.contains(&format!("tx-udp_tnl-segmentation: {state}")),
            "{k}"
        );
        assert!(k.contains(&format!("tx-gre-segmentation: {state}")), "{k}");
    }

    // Datagrams first (no GSO): the flow is offloaded after its first.
    let warm = udp_burst(&ca, CA_IP, &cb, CB_IP, 50);
    let got = udp_burst(&ca, CA_IP, &cb, CB_IP, 200);
    eprintln!("warm-up {warm}/50");
    eprintln!(
        "{kind:?} UDP burst: {got}/200; A {:?}; B {:?}",
        dpa.offload_stats().unwrap(),
        dpb.stats().unwrap()
    );
    assert!(got >= 190, "UDP A -> B through the fast path");
    let (ab, ba) = traffic(&ca, &cb);
    let (sa, sb) = (
        dpa.offload_stats().unwrap().unwrap(),
        dpb.offload_stats().unwrap().unwrap(),
    );
    eprintln!(
        "{kind:?} fast path: TCP A->B {ab:.2} Gbit/s, B->A {ba:.2} Gbit/s\nA {sa:?}\nB {sb:?}"
    );
    dpa.offload_fold().unwrap();
    dpb.offload_fold().unwrap();
    let (sa, sb) = (
        dpa.offload_stats().unwrap().unwrap(),
        dpb.offload_stats().unwrap().unwrap(),
    );
    assert!(
        sa.installed > 0 && sa.packets > 0,
        "host A's fast path encapsulated: {sa:?}"
    );
    assert!(
        sb.installed > 0 && sb.packets > 0,
        "host B's fast path encapsulated: {sb:?}"
    );
    // Each host decapsulated the other's stream in the kernel: the TCP
    // data one way, its ACKs the other.
    // (Super-packets count one each when they cross whole.)
    let min = if gso { 100 } else { 1000 };
    for (h, s) in [("A", sa), ("B", sb)] {
        assert!(
            s.decap_installed > 0 && s.decap_packets > min,
            "host {h}'s fast path decapsulated: {s:?}"
        );
    }
    // FIN reached the core on the sending host (the server's port 5201).
    let (_, _, flags) = flow_of(&dpa, 6, CA_IP, 5201).expect("A's TCP flow");
    assert!(
        flags & VR_FLOW_TCP_FIN != 0,
        "FIN seen by A's core: {flags:#x}"
    );

    let dirs = check_captures_ab(&mut caps, kind);
    eprintln!("{kind:?} fast path: capture {dirs:?}");
    assert_eq!(dirs.len(), 2, "both directions captured: {dirs:?}");
    if gso {
        // Tunnel super-packets crossed the fabric whole, both ways, and
        // the receivers decapsulated them (the TCP data arrived intact).
        for d in dirs.values() {
            assert!(d.super_packets > 0, "tunnel super-packets: {dirs:?}");
        }
    }
    // Within each TCP connection and direction, the outer header fields
    // that do not change per packet are one set, whether the core (SYN,
    // FIN) or the kernel (the bulk) encapsulated.
    let udp = kind != TunnelKind::MplsOverGre;
    // Each host's capture: what arrived from the other (the sending
    // host's own tap also sees the kernel's super-packets before they
    // are segmented).
    for (cap, from) in caps.iter_mut().zip([FAB_B, FAB_A]) {
        let rows = cap.stop_and_read(&[
            "ip.src",
            "ip.ttl",
            "ip.flags",
            "udp.srcport",
            "udp.checksum",
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.fin",
        ]);
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut syn_fin = 0;
        let mut csum0 = 0;
        let first = |s: &str| s.split(',').next().unwrap_or("").to_string();
        for r in rows
            .iter()
            .filter(|r| !r[5].is_empty() && first(&r[0]) == ip4(from))
        {
            let conn = format!("{} {}>{}", first(&r[0]), r[5], r[6]);
            // The UDP checksum is not compared: the kernel fast path
            // leaves the core's 0, but the user-space path's UDP GSO has
            // the kernel fill it in.
            let outer = format!("ttl={} flags={} sport={}", first(&r[1]), first(&r[2]), r[3]);
            if r[4] == "0x0000" {
                csum0 += 1;
            }
            if r[7] == "1" || r[8] == "1" {
                syn_fin += 1;
            }
            seen.entry(conn).or_default().insert(outer);
        }
        eprintln!("{kind:?} outer headers per connection: {seen:?}");
        assert!(syn_fin >= 2, "SYN/FIN captured: {seen:?}");
        for (conn, outer) in &seen {
            assert_eq!(outer.len(), 1, "{conn}: one outer header, not {outer:?}");
            let o = outer.iter().next().unwrap();
            assert!(o.starts_with("ttl=64 flags=0x00"), "{conn}: {o}");
        }
        if udp {
            // (Fewer frames on the wire when super-packets cross whole.)
            let min = if gso { 50 } else { 1000 };
            assert!(csum0 > min, "the fast path's UDP checksum 0: {csum0}");
        }
    }

    // A container running its own VXLAN tunnel over the overlay (a nested
    // overlay: Docker or Kubernetes inside the container). Its packets are
    // a tunnel's already, which the kernel refuses to encapsulate again:
    // the fast path hands them back to user space, which does, and the
    // TCP stream inside arrives.
    for (me, peer, addr) in [(&ca, CB_IP, "10.77.0.1/24"), (&cb, CA_IP, "10.77.0.2/24")] {
        let peer = Ipv4Addr::from(peer).to_string();
        ip(&[
            "-n", me, "link", "add", "nv0", "type", "vxlan", "id", "42", "remote", &peer,
            "dstport", "4789", "dev", "eth0",
        ]);
        ip(&["-n", me, "addr", "add", addr, "dev", "nv0"]);
        ip(&["-n", me, "link", "set", "nv0", "up"]);
    }
    let size = 16 << 20;
    let (got, gbps) = tcp_transfer(&cb, &ca, [10, 77, 0, 2], size);
    eprintln!(
        "{kind:?} nested VXLAN TCP: {gbps:.2} Gbit/s; A {:?}",
        dpa.stats().unwrap()
    );
    assert_eq!(got, size, "TCP over a container's own VXLAN");

    // UDP across: offloaded; then DROP on A stops it at once.
    assert!(udp_burst(&ca, CA_IP, &cb, CB_IP, 200) >= 190, "UDP A -> B");
    // The same flow's datagrams as UDP GSO super-packets (UDP_SEGMENT), as
    // QUIC stacks send them: every segment arrives.
    let (sent, got) = udp_gso_burst(&ca, CA_IP, &cb, CB_IP, 50);
    eprintln!(
        "{kind:?} UDP GSO: {got}/{sent}; A {:?}\nA {:?}\nB {:?}",
        dpa.offload_stats().unwrap(),
        dpa.stats().unwrap(),
        dpb.stats().unwrap()
    );
    assert!(got >= sent * 95 / 100, "UDP GSO A -> B: {got}/{sent}");
    dpa.offload_fold().unwrap();
    let (uidx, ukey, _) = flow_of(&dpa, 17, CA_IP, 9000).expect("A's UDP flow");
    let before = dpa.offload_stats().unwrap().unwrap().packets;
    assert!(
        udp_burst(&ca, CA_IP, &cb, CB_IP, 200) >= 190,
        "UDP A -> B again"
    );
    dpa.offload_fold().unwrap();
    let after = dpa.offload_stats().unwrap().unwrap().packets;
    assert!(after - before >= 150, "UDP offloaded ({before} -> {after})");

    // The receiving side alone: the same stream, decapsulated by B's
    // kernel; B's user space does not see its frames.
    let (bidx, bkey, _) = flow_of(&dpb, 17, CA_IP, 9000).expect("B's UDP flow");
    dpb.offload_fold().unwrap();
    let sb0 = dpb.offload_stats().unwrap().unwrap();
    let d0 = sb0.decap_packets;
    let rx0 = dpb.stats().unwrap().rx_frames;
    assert!(
        udp_burst(&ca, CA_IP, &cb, CB_IP, 200) >= 190,
        "UDP A -> B, decapsulated by B's kernel"
    );
    dpb.offload_fold().unwrap();
    let sb1 = dpb.offload_stats().unwrap().unwrap();
    let d1 = sb1.decap_packets;
    let rx1 = dpb.stats().unwrap().rx_frames;
    eprintln!("{kind:?} B decap: kernel {d0} -> {d1}, user-space rx frames {rx0} -> {rx1}\nB before {sb0:?}\nB after {sb1:?}");
    assert!(d1 - d0 >= 190, "B's kernel decapsulated ({d0} -> {d1})");
    assert!(
        rx1 - rx0 < 20,
        "B's user space saw the offloaded stream ({rx0} -> {rx1})"
    );
    stop.store(true, Ordering::Release);
    for a in agents {
        a.join().unwrap();
    }
    set_flow(&dpa, uidx, ukey, VR_FLOW_ACTION_DROP);
    assert_eq!(
        udp_burst(&ca, CA_IP, &cb, CB_IP, 100),
        0,
        "a dropped flow's offload is gone"
    );
    assert!(!dpa.offloaded(uidx).unwrap(), "A's dropped flow offloaded");
    dpa.flow_del(uidx, None).unwrap();
    assert!(!dpa.offloaded(uidx).unwrap(), "A's deleted flow offloaded");
    // The same on the receiving side: A forwards again (its flow set back
    // to FORWARD; its agent is gone, so the new entry is set by hand), B
    // drops at once, then a delete leaves B nothing offloaded.
    let (nidx, nkey) = loop {
        let _ = udp_burst(&ca, CA_IP, &cb, CB_IP, 1);
        if let Some((i, k)) = held(&dpa).into_iter().find(|(_, k)| k.proto == 17) {
            break (i, k);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    set_flow(&dpa, nidx, nkey, VR_FLOW_ACTION_FORWARD);
    assert!(
        udp_burst(&ca, CA_IP, &cb, CB_IP, 200) >= 190,
        "UDP A -> B before B's DROP"
    );
    assert!(
        dpb.offloaded(bidx).unwrap(),
        "B's decapsulation installed: {:?}",
        dpb.offload_stats().unwrap()
    );
    set_flow(&dpb, bidx, bkey, VR_FLOW_ACTION_DROP);
    assert!(!dpb.offloaded(bidx).unwrap(), "B's dropped flow offloaded");
    let d0 = dpb.offload_stats().unwrap().unwrap().decap_packets;
    assert_eq!(
        udp_burst(&ca, CA_IP, &cb, CB_IP, 100),
        0,
        "B's dropped flow's decapsulation is gone"
    );
    dpb.offload_fold().unwrap();
    assert_eq!(
        dpb.offload_stats().unwrap().unwrap().decap_packets,
        d0,
        "nothing decapsulated by B's kernel after its DROP"
    );
    dpb.flow_del(bidx, None).unwrap();
    assert!(!dpb.offloaded(bidx).unwrap(), "B's deleted flow offloaded");
    for dp in [dpa, dpb] {
        match Arc::try_unwrap(dp) {
            Ok(dp) => dp.stop(),
            Err(_) => panic!("datapath still shared"),
        }
    }
    // The node gave the fabric its tunnel GSO back when it stopped.
    for h in [&ha, &hb] {
        let k = fabric_features(h);
        assert!(k.contains("tx-udp_tnl-segmentation: on"), "{k}");
        assert!(k.contains("tx-gre-segmentation: on"), "{k}");
    }
}

fn fabric_features(h: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", h, "ethtool", "-k", "fab"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn fast_path_two_hosts_mpls_over_udp() {
    fast_two_hosts(TunnelKind::MplsOverUdp, false);
}

#[test]
fn fast_path_two_hosts_vxlan() {
    fast_two_hosts(TunnelKind::Vxlan, false);
}

#[test]
fn fast_path_two_hosts_mpls_over_gre() {
    fast_two_hosts(TunnelKind::MplsOverGre, false);
}

#[test]
fn fast_path_two_hosts_gso_mpls_over_udp() {
    fast_two_hosts(TunnelKind::MplsOverUdp, true);
}

#[test]
fn fast_path_two_hosts_gso_vxlan() {
    fast_two_hosts(TunnelKind::Vxlan, true);
}

#[test]
fn fast_path_two_hosts_gso_mpls_over_gre() {
    fast_two_hosts(TunnelKind::MplsOverGre, true);
}

/// TCP/UDP counters of namespace `ns` from `/proc/net/netstat` and
/// `/proc/net/snmp`: (TCPTimeouts, RetransSegs).
fn tcp_timeouts(ns: &str) -> (u64, u64) {
    (
        net_counter(ns, "netstat", "TcpExt:", "TCPTimeouts"),
        net_counter(ns, "snmp", "Tcp:", "RetransSegs"),
    )
}

/// A sender that keeps tunnel GSO on the fabric (`tc-encap-gso`) and a
/// receiver whose kernel does not decapsulate the flow: `receiver_fast`
/// false, a receiver without the fast path (every frame through its user
/// space); true, a `tc-encap-gso` receiver whose entries are all removed
/// every 20 ms during the stream (each removal sends the flow's next
/// frames, tunnel super-packets, to user space until the flow is
/// installed again). The receiver's user space must take the tunnel
/// super-packets (decapsulate once, hand the container the inner one):
/// the TCP stream completes intact without a retransmission timeout, and
/// the receiver counted tunnel super-packets and no offload error.
fn gso_sender_to_user_space(kind: TunnelKind, receiver_fast: bool) {
    // (ethtool: to check what the node did to the fabric's tunnel GSO.)
    require_env!("tshark", "ethtool");
    if !bpf_builds() {
        return;
    }
    let (_ns, _guards, [ha, _hb, ca, cb], dpa, dpb) =
        two_hosts(kind, Some(true), receiver_fast.then_some(true));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = vec![
        allow_all(dpa.clone(), stop.clone()),
        allow_all(dpb.clone(), stop.clone()),
    ];
    let k = fabric_features(&ha);
    assert!(k.contains("tx-udp_tnl-segmentation: on"), "{k}");
    let rtts = ping(&ca, CB_IP, 3, Duration::from_secs(2));
    assert_eq!(rtts.len(), 3, "ping A -> B");
    if receiver_fast {
        // Every control command empties the fast path.
        let (dp, stop) = (dpb.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                dp.call(|_| ()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    let b0 = dpb.stats().unwrap();
    let (to0, re0) = tcp_timeouts(&ca);
    let size = tcp_bytes(32);
    let t0 = Instant::now();
    let (got, gbps) = tcp_transfer(&cb, &ca, CB_IP, size);
    let secs = t0.elapsed().as_secs_f64();
    let (to1, re1) = tcp_timeouts(&ca);
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    let b1 = dpb.stats().unwrap();
    let sa = dpa.offload_stats().unwrap().unwrap();
    eprintln!(
        "{kind:?} tc-encap-gso -> {}: TCP {got}/{size} bytes in {secs:.2} s ({gbps:.2} Gbit/s), \
         sender's TCP timeouts {}, retransmitted segments {}\nA {sa:?}\nB {b1:?}\nB offload {:?}",
        if receiver_fast {
            "tc-encap-gso emptied every 20 ms"
        } else {
            "user space"
        },
        to1 - to0,
        re1 - re0,
        dpb.offload_stats().unwrap(),
    );
    assert_eq!(got, size, "TCP A -> B intact");
    assert!(sa.packets > 0, "A's kernel encapsulated: {sa:?}");
    assert!(
        b1.gso_tunnel > b0.gso_tunnel,
        "B's user space took tunnel super-packets: {b1:?}"
    );
    assert_eq!(
        b1.offload_errors, b0.offload_errors,
        "B refused no offloaded frame: {b1:?}"
    );
    assert_eq!(to1 - to0, 0, "no retransmission timeout (a stall)");
    for dp in [dpa, dpb] {
        match Arc::try_unwrap(dp) {
            Ok(dp) => dp.stop(),
            Err(_) => panic!("datapath still shared"),
        }
    }
}

#[test]
fn gso_sender_to_user_space_receiver_mpls_over_udp() {
    gso_sender_to_user_space(TunnelKind::MplsOverUdp, false);
}

#[test]
fn gso_sender_to_user_space_receiver_mpls_over_gre() {
    gso_sender_to_user_space(TunnelKind::MplsOverGre, false);
}

#[test]
fn gso_sender_to_user_space_receiver_vxlan() {
    gso_sender_to_user_space(TunnelKind::Vxlan, false);
}

#[test]
fn gso_sender_to_receiver_losing_its_entries_mpls_over_udp() {
    gso_sender_to_user_space(TunnelKind::MplsOverUdp, true);
}

#[test]
fn gso_sender_to_receiver_losing_its_entries_mpls_over_gre() {
    gso_sender_to_user_space(TunnelKind::MplsOverGre, true);
}

#[test]
fn gso_sender_to_receiver_losing_its_entries_vxlan() {
    gso_sender_to_user_space(TunnelKind::Vxlan, true);
}
