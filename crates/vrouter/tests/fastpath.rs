//! The kernel fast path (`--fast-path tc`) on real interfaces: two
//! containers (namespaces + veth) behind a datapath with policy on, so
//! every packet goes through a flow entry. A helper thread plays the agent
//! (sets each new flow to FORWARD, as the agent does for allowed flows).
//!
//! Asserts: traffic flows with offload; the BPF entries forwarded packets
//! (the test fails if nothing was offloaded); the shared flow table's
//! counters still rise while only the kernel forwards (the agent ages
//! flows by them) and stop when the flow is idle; TCP FIN reaches the core;
//! a policy change to DROP or a flow deletion stops traffic at once.
//!
//! Needs root, iproute2 and a kernel with TC BPF; skips with a reason
//! otherwise.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[macro_use]
mod common;

use common::*;
use dp_core::flow::table::{
    VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD, VR_FLOW_TCP_FIN,
};
use dp_core::{FlowKey, FlowSet, VifFlags};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vrouter::linux::TcFastPath;
use vrouter::Datapath;

const C1_MAC: [u8; 6] = [0x02, 0x12, 0, 0, 0, 1];
const C2_MAC: [u8; 6] = [0x02, 0x12, 0, 0, 0, 2];
const C1_IP: [u8; 4] = [198, 18, 0, 1];
const C2_IP: [u8; 4] = [198, 18, 0, 2];

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

/// Entries on HOLD (a read-only command: offloaded flows stay).
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

/// The flow entry for `key`-like match: (index, packets, tcp flags).
fn flow_of(dp: &Datapath, proto: u8, src: [u8; 4], dport: u16) -> Option<(u32, FlowKey, u64, u16)> {
    dp.call(move |c| {
        c.mark_read_only();
        c.router()
            .flows()
            .iter_valid()
            .find(|(_, f)| {
                let k = f.key();
                k.proto == proto && k.src()[..4] == src && k.dport() == dport
            })
            .map(|(i, f)| (i, *f.key(), f.packets(), f.tcp_flags))
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

fn offloaded(dp: &Datapath) -> vrouter::offload::OffloadStats {
    dp.offload_stats().unwrap().expect("fast path on")
}

/// Send `n` UDP datagrams c1 -> c2:9000 from port 40000; how many arrived
/// within `wait`.
fn udp_burst(c1: &str, c2: &str, n: usize, wait: Duration) -> usize {
    let rx = in_ns(c2, || {
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(C2_IP), 9000)).unwrap()
    });
    rx.set_nonblocking(true).unwrap();
    let tx = in_ns(c1, || {
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(C1_IP), 40000)).unwrap()
    });
    let dst = SocketAddrV4::new(Ipv4Addr::from(C2_IP), 9000);
    let mut got = 0;
    let mut buf = [0u8; 2048];
    for i in 0..n {
        tx.send_to(&[i as u8; 200], dst).unwrap();
        if i % 8 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
    }
    let end = Instant::now() + wait;
    while Instant::now() < end {
        if rx.recv(&mut buf).is_ok() {
            got += 1;
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

#[test]
fn fast_path_offloads_counts_and_obeys_the_core() {
    require_env!();
    if let Some(r) = skip_reason(&["clang"]) {
        report_skip("fastpath: BPF object needs clang at build time", &r);
        return;
    }
    let mut ns = Namespaces::new();
    let host = ns.add("h");
    let c1 = ns.add("c1");
    let c2 = ns.add("c2");
    container(&host, "vh1", &c1, C1_MAC, C1_IP, 1500);
    container(&host, "vh2", &c2, C2_MAC, C2_IP, 1500);
    let (dp, _guard) = start_dp(&host, |dp| {
        let fp = TcFastPath::load().expect("load the BPF fast path (root, TC BPF)");
        dp.enable_fast_path(Box::new(fp)).unwrap();
        for (vif, name, mac, ip) in [(3, "vh1", C1_MAC, C1_IP), (4, "vh2", C2_MAC, C2_IP)] {
            let vm = Vm {
                vif,
                name,
                vrf: 1,
                mac,
                ip,
            };
            add_vm_with(dp, &vm, VifFlags::POLICY_ENABLED);
        }
    });
    let dp = Arc::new(dp);
    let stop = Arc::new(AtomicBool::new(false));
    let agent = allow_all(dp.clone(), stop.clone());

    // ICMP takes the user-space path (not offloaded) and works.
    assert_eq!(
        ping(&c1, C2_IP, 3, Duration::from_secs(2)).len(),
        3,
        "ping c1 -> c2"
    );

    // TCP: the bulk is offloaded, the data is intact, FIN reaches the core.
    let size = tcp_bytes(64);
    let (got, gbps) = tcp_transfer(&c2, &c1, C2_IP, size);
    assert_eq!(got, size);
    let st = offloaded(&dp);
    eprintln!(
        "fast path TCP c1->c2: {gbps:.2} Gbit/s; offload {st:?}; datapath {:?}",
        dp.stats().unwrap()
    );
    assert!(st.installed >= 2, "both directions installed: {st:?}");
    assert!(
        st.packets > 0,
        "the kernel forwarded packets of the flow: {st:?}"
    );
    let (_, _, tcp_pkts, tcp_flags) = flow_of(&dp, 6, C1_IP, 5201).expect("TCP flow entry");
    assert!(
        tcp_pkts >= st.packets / 2,
        "offloaded packets counted in the flow table ({tcp_pkts} vs {st:?})"
    );
    assert!(
        tcp_flags & VR_FLOW_TCP_FIN != 0,
        "FIN reached the core (tcp_flags {tcp_flags:#x})"
    );

    // UDP: offloaded packets keep the shared flow entry counting while the
    // user-space path sees none of them; an idle flow stops counting.
    // The first datagram waits for the (helper) agent's decision.
    let first = udp_burst(&c1, &c2, 1, Duration::from_millis(300));
    let warm = udp_burst(&c1, &c2, 50, Duration::from_millis(200));
    assert!(first == 1 && warm >= 45, "UDP warm-up: {first}, {warm}");
    let (uidx, ukey, p0, _) = flow_of(&dp, 17, C1_IP, 9000).expect("UDP flow entry");
    let rx0 = dp
        .call(|c| {
            c.mark_read_only();
            c.port_stats(3)
        })
        .unwrap()
        .unwrap();
    let off0 = offloaded(&dp).packets;
    assert_eq!(
        udp_burst(&c1, &c2, 400, Duration::from_millis(200)),
        400,
        "UDP offloaded"
    );
    let off1 = offloaded(&dp).packets;
    let (_, _, p1, _) = flow_of(&dp, 17, C1_IP, 9000).unwrap();
    let rx1 = dp
        .call(|c| {
            c.mark_read_only();
            c.port_stats(3)
        })
        .unwrap()
        .unwrap();
    eprintln!("UDP: offloaded {off0}->{off1}, flow packets {p0}->{p1}, port rx {rx0:?} -> {rx1:?}");
    assert!(
        off1 - off0 >= 390,
        "the kernel forwarded the burst ({off0} -> {off1})"
    );
    assert!(p1 - p0 >= 400, "the flow entry counted them ({p0} -> {p1})");
    std::thread::sleep(Duration::from_millis(1500));
    let (_, _, p2, _) = flow_of(&dp, 17, C1_IP, 9000).unwrap();
    assert_eq!(
        p2, p1,
        "an idle flow's counters stay (so the agent ages it)"
    );

    // The agent denies the flow: traffic stops at once.
    stop.store(true, Ordering::Release);
    agent.join().unwrap();
    set_flow(&dp, uidx, ukey, VR_FLOW_ACTION_DROP);
    assert_eq!(
        udp_burst(&c1, &c2, 100, Duration::from_millis(300)),
        0,
        "a dropped flow's offload is gone"
    );
    // Allowed again, offloaded again; then deleted: held, not delivered.
    set_flow(&dp, uidx, ukey, VR_FLOW_ACTION_FORWARD);
    assert!(udp_burst(&c1, &c2, 100, Duration::from_millis(200)) >= 95);
    assert!(offloaded(&dp).active > 0, "re-installed");
    dp.flow_del(uidx, None).unwrap();
    assert_eq!(offloaded(&dp).active, 0, "a deleted flow's offload is gone");
    assert_eq!(
        udp_burst(&c1, &c2, 100, Duration::from_millis(300)),
        0,
        "a deleted flow goes back to the agent (held), not through the kernel"
    );
    match Arc::try_unwrap(dp) {
        Ok(dp) => dp.stop(),
        Err(_) => panic!("datapath still shared"),
    }
}
