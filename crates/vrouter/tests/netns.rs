//! End-to-end tests on real interfaces: network namespaces as containers
//! and hosts, veth pairs, the datapath on AF_PACKET with offloads left ON.
//!
//! Needs root and iproute2 (`ip`); without them each test prints a SKIP
//! line and returns. Every namespace is deleted by a guard, also when a test
//! fails. Ping and TCP run inside the namespaces from threads that entered
//! them (`setns`), so no ping/nc binaries are needed.
//!
//! Addresses: containers 198.18.0.0/24, fabric 192.0.2.0/24, only inside
//! namespaces created here.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[macro_use]
mod common;

use common::*;
use dp_core::nexthop::AF_INET;
use dp_core::route::rt_flags;
use dp_core::{
    Nexthop, NhFlags, NhKind, Prefix, RouteData, TunnelKind, VifFlags, VifType, VROUTER_MAC,
};
use std::process::Command;
use std::time::{Duration, Instant};
use vrouter::linux;
use vrouter::Datapath;

// ---- tests ----------------------------------------------------------------

const C1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 1];
const C2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 2];
const C3_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 3];
const C1_IP: [u8; 4] = [198, 18, 0, 1];
const C2_IP: [u8; 4] = [198, 18, 0, 2];
const C3_IP: [u8; 4] = [198, 18, 0, 3];

/// Two containers in VRF 1 reach each other (ping, TCP with offloads on);
/// a third in VRF 2 reaches neither.
#[test]
fn one_host_same_vrf_ping_tcp_and_isolation() {
    require_env!();
    let mut ns = Namespaces::new();
    let host = ns.add("h");
    let c1 = ns.add("c1");
    let c2 = ns.add("c2");
    let c3 = ns.add("c3");
    container(&host, "vh1", &c1, C1_MAC, C1_IP, 1500);
    container(&host, "vh2", &c2, C2_MAC, C2_IP, 1500);
    container(&host, "vh3", &c3, C3_MAC, C3_IP, 1500);
    let (dp, _guard) = start_dp(&host, |dp| {
        for vm in [
            Vm {
                vif: 3,
                name: "vh1",
                vrf: 1,
                mac: C1_MAC,
                ip: C1_IP,
            },
            Vm {
                vif: 4,
                name: "vh2",
                vrf: 1,
                mac: C2_MAC,
                ip: C2_IP,
            },
            Vm {
                vif: 5,
                name: "vh3",
                vrf: 2,
                mac: C3_MAC,
                ip: C3_IP,
            },
        ] {
            add_vm(dp, &vm);
        }
    });

    let rtts = ping(&c1, C2_IP, 3, Duration::from_secs(2));
    assert_eq!(rtts.len(), 3, "ping c1 -> c2");
    let back = ping(&c2, C1_IP, 3, Duration::from_secs(2));
    assert_eq!(back.len(), 3, "ping c2 -> c1");
    eprintln!(
        "one-host ping c1->c2 median RTT {:?} ({rtts:?})",
        median(rtts.clone())
    );

    let size = tcp_bytes(64);
    let (got, gbps) = tcp_transfer(&c2, &c1, C2_IP, size);
    assert_eq!(got, size);
    let st = dp.stats().unwrap();
    let ports: Vec<_> = [3u16, 4]
        .iter()
        .map(|v| dp.call(move |c| c.port_stats(*v)).unwrap())
        .collect();
    eprintln!("one-host TCP c1->c2: {gbps:.2} Gbit/s; datapath {st:?}; ports {ports:?}");
    assert!(
        st.gso_whole > 0,
        "offloads on: super-packets forwarded whole"
    );

    assert!(
        ping(&c3, C1_IP, 2, Duration::from_millis(500)).is_empty(),
        "VRF 2 -> VRF 1"
    );
    assert!(
        ping(&c1, C3_IP, 2, Duration::from_millis(500)).is_empty(),
        "VRF 1 -> VRF 2"
    );
    assert!(tcp_connect_fails(&c3, C2_IP));
    dp.stop();
}

/// Program one compute node: fabric vif 0 on `fab`, a receive route for
/// its fabric address, its local VM, and the peer's VM behind an MPLSoUDP
/// tunnel with the peer's L3 label.
fn compute_node(
    dp: &Datapath,
    me: ([u8; 4], [u8; 6]),
    peer: ([u8; 4], [u8; 6]),
    local: Vm,
    remote: &Vm,
) {
    let mut f = vif_cfg(0, VifType::Physical, "fab");
    f.mac = me.1;
    f.ip = me.0;
    dp.vif_add(f).unwrap();
    dp.route_add(
        0,
        Prefix::V4(me.0, 32),
        RouteData {
            nh: RECEIVE_NH,
            ..RouteData::default()
        },
    )
    .unwrap();
    add_vm(dp, &local);
    let mut encap = [0u8; 14];
    encap[0..6].copy_from_slice(&peer.1);
    encap[6..12].copy_from_slice(&me.1);
    encap[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let tnh = 100;
    dp.nh_add(Nexthop {
        id: tnh,
        family: AF_INET,
        flags: NhFlags::VALID | NhFlags::TUNNEL_UDP_MPLS,
        vrf: 0,
        kind: NhKind::Tunnel {
            oif: 0,
            kind: TunnelKind::MplsOverUdp,
            sip: me.0,
            dip: peer.0,
            encap,
        },
    })
    .unwrap();
    dp.route_add(
        remote.vrf,
        Prefix::V4(remote.ip, 32),
        RouteData {
            nh: tnh,
            label: vm_label(remote.vif),
            flags: rt_flags::LABEL_VALID | rt_flags::ARP_PROXY,
            mac: [0; 6],
        },
    )
    .unwrap();
}

/// Two compute nodes joined by a veth fabric, one container behind each,
/// MPLSoUDP between them: ping and TCP, and the host kernels stay quiet.
#[test]
fn two_hosts_mpls_over_udp() {
    require_env!();
    let mut ns = Namespaces::new();
    let (ha, hb) = fabric(&mut ns);
    let ca = ns.add("ca");
    let cb = ns.add("cb");
    // 1500-byte containers on the 1500-byte fabric: TCP fits because the
    // datapath adjusts the MSS for the 46 bytes of outer headers.
    container(&ha, "vh1", &ca, C1_MAC, C1_IP, 1500);
    container(&hb, "vh1", &cb, C2_MAC, C2_IP, 1500);
    let vm_a = || Vm {
        vif: 3,
        name: "vh1",
        vrf: 1,
        mac: C1_MAC,
        ip: C1_IP,
    };
    let vm_b = || Vm {
        vif: 3,
        name: "vh1",
        vrf: 1,
        mac: C2_MAC,
        ip: C2_IP,
    };
    let (dpa, _ga) = start_dp(&ha, move |dp| {
        compute_node(dp, (FAB_A, FAB_MAC_A), (FAB_B, FAB_MAC_B), vm_a(), &vm_b())
    });
    let (dpb, gb) = start_dp(&hb, move |dp| {
        compute_node(dp, (FAB_B, FAB_MAC_B), (FAB_A, FAB_MAC_A), vm_b(), &vm_a())
    });
    assert_eq!(gb.udp_ports(), vec![6635, 4789]);
    let unreach_before = icmp_out_unreach(&hb);

    let rtts = ping(&ca, C2_IP, 3, Duration::from_secs(2));
    assert_eq!(rtts.len(), 3, "ping across the fabric");
    eprintln!("two-host ping median RTT {:?}", median(rtts.clone()));
    // The host's own traffic on the fabric still works (pass-through).
    assert_eq!(
        ping(&ha, FAB_B, 2, Duration::from_secs(2)).len(),
        2,
        "host ping on fabric"
    );

    let size = tcp_bytes(32);
    let (got, gbps) = tcp_transfer(&cb, &ca, C2_IP, size);
    assert_eq!(got, size);
    let sa = dpa.stats().unwrap();
    let sb = dpb.stats().unwrap();
    eprintln!("two-host TCP over MPLSoUDP: {gbps:.2} Gbit/s; A {sa:?}; B {sb:?}");
    assert!(
        sa.gso_segmented > 0,
        "super-packets segmented before encapsulation"
    );
    assert_eq!(
        icmp_out_unreach(&hb),
        unreach_before,
        "host B's kernel sent no ICMP unreachable for overlay packets"
    );
    dpa.stop();
    dpb.stop();
}

/// A TAP port (created by the datapath, IFF_VNET_HDR) as a VM port: the
/// host namespace's own stack behind the TAP talks to a veth container,
/// ping and TCP both ways through GSO-capable TAP reads and writes.
#[test]
fn tap_port_as_vm() {
    require_env!();
    let mut ns = Namespaces::new();
    let host = ns.add("h");
    let c1 = ns.add("c1");
    container(&host, "vh1", &c1, C1_MAC, C1_IP, 1500);
    const TAP_IP: [u8; 4] = [198, 18, 0, 5];
    let host2 = host.clone();
    let (dp, _guard) = start_dp(&host, move |dp| {
        add_vm(
            dp,
            &Vm {
                vif: 3,
                name: "vh1",
                vrf: 1,
                mac: C1_MAC,
                ip: C1_IP,
            },
        );
        let tap = vrouter::linux::TapPort::create("vtap0").unwrap();
        let mac = linux::mac_of("vtap0").unwrap();
        ip(&["-n", &host2, "addr", "add", "198.18.0.5/24", "dev", "vtap0"]);
        let mut c = vif_cfg(6, VifType::Virtual, "vtap0");
        c.mac = VROUTER_MAC;
        c.vrf = 1;
        c.ip = TAP_IP;
        c.nh_id = vm_nh(6);
        c.flags = VifFlags::L3_ENABLED | VifFlags::L2_ENABLED;
        dp.vif_add_port(c, Box::new(tap)).unwrap();
        add_vm(
            dp,
            &Vm {
                vif: 6,
                name: "vtap0",
                vrf: 1,
                mac,
                ip: TAP_IP,
            },
        );
    });
    assert_eq!(
        ping(&c1, TAP_IP, 3, Duration::from_secs(2)).len(),
        3,
        "c1 -> tap"
    );
    assert_eq!(
        ping(&host, C1_IP, 3, Duration::from_secs(2)).len(),
        3,
        "tap -> c1"
    );
    let size = tcp_bytes(32);
    let (got, gbps) = tcp_transfer(&host, &c1, TAP_IP, size);
    assert_eq!(got, size);
    let (got2, gbps2) = tcp_transfer(&c1, &host, C1_IP, size);
    assert_eq!(got2, size);
    let st = dp.stats().unwrap();
    let drops: Vec<_> = dp
        .drop_stats()
        .unwrap()
        .iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    eprintln!(
        "tap TCP veth->tap {gbps:.2} Gbit/s, tap->veth {gbps2:.2} Gbit/s; {st:?}; drops {drops:?}"
    );
    assert!(st.gso_whole > 0);
    assert_eq!(
        st.gso_whole, st.gso_frames,
        "no super-packet dropped or segmented"
    );
    dp.stop();
}

/// The `vrouter` binary: starts with a fabric, claims the overlay ports,
/// creates pkt0, and on SIGTERM stops and removes what it created.
#[test]
fn binary_starts_and_stops_cleanly() {
    require_env!();
    let mut ns = Namespaces::new();
    let host = ns.add("h");
    ip(&[
        "-n", &host, "link", "add", "name", "fab0", "type", "veth", "peer", "name", "fab1",
    ]);
    ip(&["-n", &host, "link", "set", "fab0", "up"]);
    let dir = std::env::temp_dir().join(format!("vrt-bin-{}-{}", std::process::id(), host));
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &host,
            env!("CARGO_BIN_EXE_vrouter"),
            "--fabric",
            "fab0",
        ])
        .arg("--sock-dir")
        .arg(&dir)
        .args(["--flow-entries", "4096"])
        .spawn()
        .unwrap();
    let sock = dir.join("dpdk_pkt0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = sock.exists();
    // The overlay guard: UDP 6635 is taken in the host namespace.
    let claimed = in_ns(&host, || {
        std::net::UdpSocket::bind(("0.0.0.0", 6635)).is_err()
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(started, "pkt0 socket created");
    assert!(claimed, "overlay UDP port claimed");
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit on SIGTERM: {status:?}"
    );
    assert!(!dir.exists(), "socket directory removed");
}

/// The `vrouter` binary exits non-zero (and cleans up) when its forwarding
/// loop ends by itself: a poll error or a panic, injected once the process
/// runs. Before, the process stayed up forwarding nothing, and a
/// supervisor restarting on failure never saw it.
#[test]
fn binary_exits_nonzero_when_its_loop_dies() {
    require_env!();
    for fault in ["panic", "poll-error"] {
        let mut ns = Namespaces::new();
        let host = ns.add("f");
        let dir = std::env::temp_dir().join(format!("vrt-fault-{}-{}", std::process::id(), host));
        let trigger =
            std::env::temp_dir().join(format!("vrt-fault-{}-{fault}", std::process::id()));
        let _ = std::fs::remove_file(&trigger);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &host, env!("CARGO_BIN_EXE_vrouter")])
            .arg("--sock-dir")
            .arg(&dir)
            .args(["--flow-entries", "4096"])
            .env(
                "VROUTER_FAULT_INJECT",
                format!("{fault}:{}", trigger.display()),
            )
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let sock = dir.join("dpdk_netlink");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(sock.exists(), "{fault}: vrouter started");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{fault}: runs until the fault"
        );
        std::fs::write(&trigger, b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = std::fs::remove_file(&trigger);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "{fault}: the process exits 1 when its loop dies"
        );
        assert!(!dir.exists(), "{fault}: socket directory removed");
    }
}
