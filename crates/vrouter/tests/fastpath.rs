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
use dp_core::{ConfigChange, FlowKey, FlowSet, Prefix, RouteData, VifFlags};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vrouter::linux::TcFastPath;
use vrouter::offload::FastPath;
use vrouter::Datapath;

const C1_MAC: [u8; 6] = [0x02, 0x12, 0, 0, 0, 1];
const C2_MAC: [u8; 6] = [0x02, 0x12, 0, 0, 0, 2];
const C1_IP: [u8; 4] = [198, 18, 0, 1];
const C2_IP: [u8; 4] = [198, 18, 0, 2];

/// The agent's FLOW_SET of flow `index` to `action`.
fn flow_req(index: u32, key: FlowKey, action: u16) -> FlowSet {
    FlowSet {
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
    }
}

fn set_flow(dp: &Datapath, index: u32, key: FlowKey, action: u16) {
    dp.flow_set(flow_req(index, key, action)).unwrap();
}

/// [`set_flow`] as a ksync flow request does it: only that flow's offloaded
/// entry goes (a `Datapath` command would empty the whole fast path).
fn set_flow_as_ksync(dp: &Datapath, index: u32, key: FlowKey, action: u16) {
    dp.call(move |c| {
        let r = c.flow_set(&flow_req(index, key, action));
        c.only_flows_changed(&[index]);
        r
    })
    .unwrap()
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

/// Two containers behind a datapath with the fast path on and policy on
/// both ports (every packet goes through a flow entry).
struct Rig {
    _ns: Namespaces,
    host: String,
    c1: String,
    c2: String,
    dp: Arc<Datapath>,
    _guard: vrouter::linux::OverlayGuard,
    _slow: Option<std::os::fd::OwnedFd>,
}

/// `slow`: a packet tap on c1's port, older than the datapath's, with a
/// slow filter ([`slow_tap`]).
fn rig(slow: bool) -> Rig {
    let mut ns = Namespaces::new();
    let host = ns.add("h");
    let c1 = ns.add("c1");
    let c2 = ns.add("c2");
    container(&host, "vh1", &c1, C1_MAC, C1_IP, 1500);
    container(&host, "vh2", &c2, C2_MAC, C2_IP, 1500);
    let _slow = slow.then(|| in_ns(&host, || slow_tap("vh1")));
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
    Rig {
        _ns: ns,
        host,
        c1,
        c2,
        dp: Arc::new(dp),
        _guard,
        _slow,
    }
}

/// Frames user space received on vif `vif`'s port.
fn port_stats(dp: &Datapath, vif: u16) -> Option<vrouter::port::PortStats> {
    dp.call(move |c| {
        c.mark_read_only();
        c.port_stats(vif)
    })
    .unwrap()
}

fn port_rx(dp: &Datapath, vif: u16) -> u64 {
    port_stats(dp, vif).unwrap().rx_frames
}

/// `dev`'s transmitted packets, in namespace `ns`.
fn tx_packets(ns: &str, dev: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/{dev}/statistics/tx_packets"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Only a veth whose other end is in another namespace is taken for a
/// container's port that frames may be handed to directly: not a veth
/// with both ends here (`bpf_redirect_peer` would drop its frames), not
/// loopback; and the answer is this namespace's, not sysfs's.
#[test]
fn a_veth_peer_is_seen_in_another_namespace_only() {
    require_env!();
    let mut ns = Namespaces::new();
    let a = ns.add("pa");
    let b = ns.add("pb");
    ip(&[
        "-n", &a, "link", "add", "pe0", "type", "veth", "peer", "name", "pe1",
    ]);
    let here = |dev: &'static str| in_ns(&a, move || vrouter::linux::sys::veth_peer_elsewhere(dev));
    assert!(!here("pe0"), "both ends in one namespace");
    assert!(!here("pe1"), "both ends in one namespace");
    assert!(!here("lo"), "loopback");
    ip(&["-n", &a, "link", "set", "pe1", "netns", &b]);
    assert!(here("pe0"), "the other end moved away");
    assert!(!here("nosuchdev"), "no such device");
}

fn offloaded(dp: &Datapath) -> vrouter::offload::OffloadStats {
    dp.offload_stats().unwrap().expect("fast path on")
}

/// The UDP flow c1:40000 -> c2:9000, its two sockets bound once per test.
/// (Binding them afresh for every burst raced other tests' `ip` commands:
/// a child between fork and exec holds a copy of the closed socket, and
/// the port stays taken until it execs.)
struct Udp {
    rx: UdpSocket,
    tx: UdpSocket,
    dst: SocketAddrV4,
}

impl Udp {
    fn new(c1: &str, c2: &str) -> Udp {
        let dst = SocketAddrV4::new(Ipv4Addr::from(C2_IP), 9000);
        let rx = in_ns(c2, move || UdpSocket::bind(dst).expect("bind c2:9000"));
        let tx = in_ns(c1, || {
            UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(C1_IP), 40000)).expect("bind c1:40000")
        });
        Udp { rx, tx, dst }
    }

    /// Send `n` datagrams; how many arrived within `wait` after the last.
    /// Whatever an earlier burst left queued is dropped first.
    fn burst(&self, n: usize, wait: Duration) -> usize {
        let mut buf = [0u8; 2048];
        self.rx.set_nonblocking(true).unwrap();
        while self.rx.recv(&mut buf).is_ok() {}
        let mut got = 0;
        for i in 0..n {
            self.tx.send_to(&[i as u8; 200], self.dst).unwrap();
            if i % 8 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            while self.rx.recv(&mut buf).is_ok() {
                got += 1;
            }
        }
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if self.rx.recv(&mut buf).is_ok() {
                got += 1;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        got
    }
}

/// Set `SO_RCVBUF` past `net.core.rmem_max` (root: `SO_RCVBUFFORCE`).
fn set_rcvbuf(s: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and a c_int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
}

#[test]
fn fast_path_offloads_counts_and_obeys_the_core() {
    require_env!();
    if let Some(r) = skip_reason(&["clang"]) {
        report_skip("fastpath: BPF object needs clang at build time", &r);
        return;
    }
    let Rig {
        _ns,
        host,
        c1,
        c2,
        dp,
        _guard,
        ..
    } = rig(false);
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
    let udp = Udp::new(&c1, &c2);
    let inst0 = offloaded(&dp).installed;
    let first = udp.burst(1, Duration::from_millis(300));
    // A flow of one datagram (a DNS query's kind) installs nothing.
    assert_eq!(offloaded(&dp).installed, inst0, "one datagram, no entry");
    let warm = udp.burst(50, Duration::from_millis(200));
    assert!(first == 1 && warm >= 45, "UDP warm-up: {first}, {warm}");
    assert!(
        offloaded(&dp).installed > inst0,
        "the second datagram installs"
    );
    let (uidx, ukey, p0, _) = flow_of(&dp, 17, C1_IP, 9000).expect("UDP flow entry");
    let rx0 = dp
        .call(|c| {
            c.mark_read_only();
            c.port_stats(3)
        })
        .unwrap()
        .unwrap();
    let off0 = offloaded(&dp).packets;
    let tx0 = tx_packets(&host, "vh2");
    assert_eq!(
        udp.burst(400, Duration::from_millis(200)),
        400,
        "UDP offloaded"
    );
    let off1 = offloaded(&dp).packets;
    // Handed to c2's end of the veth directly (bpf_redirect_peer): the
    // host end did not transmit them.
    let tx1 = tx_packets(&host, "vh2");
    assert!(
        tx1 - tx0 < 40,
        "offloaded frames skip the host end's transmit ({tx0} -> {tx1})"
    );
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

    // Any configuration change (here a command that is not a read) empties
    // the fast path at once: the next datagram is user space's again, which
    // installs the flow again.
    let inst0 = offloaded(&dp).installed;
    dp.call(|_| ()).unwrap();
    assert!(
        udp.burst(50, Duration::from_millis(200)) >= 45,
        "UDP after a flush"
    );
    let rx2 = dp
        .call(|c| {
            c.mark_read_only();
            c.port_stats(3)
        })
        .unwrap()
        .unwrap();
    let inst1 = offloaded(&dp).installed;
    assert!(
        rx2.rx_frames > rx1.rx_frames && inst1 > inst0,
        "after a flush user space forwards again and re-installs: rx {} -> {}, installed {inst0} -> {inst1}",
        rx1.rx_frames,
        rx2.rx_frames
    );

    // Routes as ksync changes them (the cluster adds and removes routes
    // all the time): a route elsewhere leaves the entries, the burst stays
    // in the kernel; C2's /32 to the discard next hop removes the entries
    // of the flows it redirects and the next datagrams follow the new
    // route, dropped; the route back delivers them again.
    let route_as_ksync = |dp: &Datapath, prefix: Prefix, data: RouteData| {
        dp.call(move |c| {
            c.router_mut().route_add(1, prefix, data).unwrap();
            c.only_changed(&[], &[ConfigChange::Route { vrf: 1, prefix }]);
        })
        .unwrap();
    };
    let c2_32 = Prefix::V4(C2_IP, 32);
    let c2_route = dp
        .call(move |c| {
            c.mark_read_only();
            c.router().route_get(1, c2_32)
        })
        .unwrap()
        .expect("C2's /32");
    let discard = RouteData {
        nh: DISCARD_NH,
        label: 0,
        flags: 0,
        mac: [0; 6],
    };
    let st0 = offloaded(&dp);
    route_as_ksync(&dp, Prefix::V4([10, 99, 0, 0], 16), discard);
    let rx3 = port_rx(&dp, 3);
    assert_eq!(
        udp.burst(200, Duration::from_millis(200)),
        200,
        "UDP after a route elsewhere"
    );
    let rx4 = port_rx(&dp, 3);
    let st1 = offloaded(&dp);
    assert!(
        rx4 - rx3 < 20 && st1.active == st0.active && st1.rerouted == st0.rerouted,
        "a route elsewhere leaves the entries: user space took {} frames; {st0:?} -> {st1:?}",
        rx4 - rx3
    );
    route_as_ksync(&dp, c2_32, discard);
    assert!(
        offloaded(&dp).rerouted > st1.rerouted,
        "{:?}",
        offloaded(&dp)
    );
    assert_eq!(
        udp.burst(100, Duration::from_millis(300)),
        0,
        "the new route discards, also what the kernel forwarded before"
    );
    route_as_ksync(&dp, c2_32, c2_route);
    assert!(
        udp.burst(100, Duration::from_millis(200)) >= 95,
        "the route back delivers again"
    );
    assert_eq!(offloaded(&dp).flushes, st0.flushes, "no flush for routes");

    // The agent denies the flow: traffic stops at once. (As a ksync flow
    // request does: only that flow's entry goes, marked dead in its slot.)
    stop.store(true, Ordering::Release);
    agent.join().unwrap();
    let forgotten = offloaded(&dp).forgotten;
    set_flow_as_ksync(&dp, uidx, ukey, VR_FLOW_ACTION_DROP);
    assert!(
        offloaded(&dp).forgotten > forgotten,
        "removed by itself, not flushed"
    );
    assert_eq!(
        udp.burst(100, Duration::from_millis(300)),
        0,
        "a dropped flow's offload is gone"
    );
    // Allowed again, offloaded again; then deleted: held, not delivered.
    set_flow(&dp, uidx, ukey, VR_FLOW_ACTION_FORWARD);
    assert!(udp.burst(100, Duration::from_millis(200)) >= 95);
    assert!(offloaded(&dp).active > 0, "re-installed");
    dp.flow_del(uidx, None).unwrap();
    assert_eq!(offloaded(&dp).active, 0, "a deleted flow's offload is gone");
    assert_eq!(
        udp.burst(100, Duration::from_millis(300)),
        0,
        "a deleted flow goes back to the agent (held), not through the kernel"
    );
    match Arc::try_unwrap(dp) {
        Ok(dp) => dp.stop(),
        Err(_) => panic!("datapath still shared"),
    }
}

/// Fast-path entries come and go under traffic (every datapath command
/// that is not a read empties the fast path; the next packet of the flow
/// re-installs it), and no datagram may be lost or delivered twice: the
/// socket filter (which keeps offloaded frames from user space) and the TC
/// program (which forwards them) must agree on every frame, also when an
/// entry appears or goes between the two.
#[test]
fn fast_path_entries_changing_under_traffic_lose_and_duplicate_nothing() {
    require_env!();
    if let Some(r) = skip_reason(&["clang"]) {
        report_skip("fastpath: BPF object needs clang at build time", &r);
        return;
    }
    // A slow tap widens the interval between the filter and TC.
    let Rig {
        _ns,
        c1,
        c2,
        dp,
        _guard,
        _slow,
        ..
    } = rig(true);
    let stop = Arc::new(AtomicBool::new(false));
    let agent = allow_all(dp.clone(), stop.clone());
    let udp = Udp::new(&c1, &c2);
    assert_eq!(
        udp.burst(1, Duration::from_millis(300)),
        1,
        "first datagram (decided by the helper agent)"
    );

    const N: u32 = 60_000;
    let Udp { rx, tx, dst } = udp;
    rx.set_nonblocking(false).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Room for the whole stream: a receiver thread not scheduled for a
    // few milliseconds on a loaded machine must not lose datagrams that
    // the datapath delivered (the kernel's drops are reported below).
    set_rcvbuf(&rx, 16 << 20);
    let udp_drops0 = net_counter(&c2, "snmp", "Udp:", "RcvbufErrors");
    let receiver = std::thread::spawn(move || {
        let mut seen = vec![0u8; N as usize];
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf) {
            if n >= 4 {
                let i = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if let Some(c) = seen.get_mut(i as usize) {
                    *c = c.saturating_add(1);
                }
            }
        }
        seen
    });
    // Empties the fast path about every 200 µs while the stream runs.
    let churn_stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (dp, stop) = (dp.clone(), churn_stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                dp.call(|_| ()).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            n
        })
    };
    for i in 0..N {
        let mut d = [0u8; 200];
        d[..4].copy_from_slice(&i.to_be_bytes());
        tx.send_to(&d, dst).unwrap();
        if i % 4 == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    churn_stop.store(true, Ordering::Release);
    let flushes_asked = churn.join().unwrap();
    let seen = receiver.join().unwrap();
    stop.store(true, Ordering::Release);
    agent.join().unwrap();
    let st = offloaded(&dp);
    let lost: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    let twice = seen.iter().filter(|&&c| c > 1).count();
    let udp_drops = net_counter(&c2, "snmp", "Udp:", "RcvbufErrors") - udp_drops0;
    eprintln!(
        "churn: {flushes_asked} commands, offload {st:?}; lost {} (first {:?}), delivered twice {twice}; \
         receiver's socket dropped {udp_drops}; datapath {:?}; ports {:?}",
        lost.len(),
        &lost[..lost.len().min(10)],
        dp.stats().unwrap(),
        [3u16, 4].map(|v| port_stats(&dp, v))
    );
    assert!(
        st.flushes >= 100 && st.installed >= 100,
        "the fast path was emptied and refilled under traffic: {st:?}"
    );
    assert!(
        st.packets > u64::from(N) / 10,
        "the kernel forwarded part of the stream: {st:?}"
    );
    assert_eq!(twice, 0, "datagrams delivered twice");
    assert!(lost.is_empty(), "datagrams lost: {}", lost.len());
    match Arc::try_unwrap(dp) {
        Ok(dp) => dp.stop(),
        Err(_) => panic!("datapath still shared"),
    }
}

/// A packet socket on `ifname` whose classic filter runs 4 000 additions
/// and then refuses every frame: as the oldest tap of the interface it
/// runs last, between the datapath's filter and TC ingress, and stretches
/// that interval from well under a microsecond to a few.
fn slow_tap(ifname: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: plain libc calls on a NUL-terminated name and a new socket.
    unsafe {
        let idx = libc::if_nametoindex(name.as_ptr());
        assert!(idx > 0, "no {ifname}");
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        );
        assert!(fd >= 0, "packet socket");
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = idx as i32;
        let r = libc::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(r, 0, "bind the tap");
        // BPF_ALU|BPF_ADD|BPF_K, then BPF_RET|BPF_K 0.
        let mut insns = vec![
            libc::sock_filter {
                code: 0x04,
                jt: 0,
                jf: 0,
                k: 1,
            };
            4000
        ];
        insns.push(libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0,
        });
        let prog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_mut_ptr(),
        };
        let r = libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        );
        assert_eq!(r, 0, "attach the slow filter");
        fd
    }
}

/// A vrouter that died on a kernel before 6.6 (TC programs attached
/// through netlink, not as links that end with their process) leaves its
/// classifier on the port; the next one removes it before attaching its
/// own. Left in front, the stale program would decide, with its stale map,
/// the frames the new socket filter hands to the kernel.
#[test]
fn a_stale_netlink_classifier_is_removed_before_attaching() {
    require_env!();
    if let Some(r) = skip_reason(&["clang", "tc"]) {
        report_skip("fastpath: BPF object needs clang at build time", &r);
        return;
    }
    let mut ns = Namespaces::new();
    let host = ns.add("h");
    let c1 = ns.add("c1");
    container(&host, "vh1", &c1, C1_MAC, C1_IP, 1500);
    let classifiers = |ns: &str| {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", ns, "tc", "filter", "show", "dev", "vh1", "ingress",
            ])
            .output()
            .unwrap();
        fp_tc_lines(&out.stdout)
    };
    let port = in_ns(&host, || {
        vrouter::linux::AfPacketPort::open("vh1", Default::default()).unwrap()
    });
    let mut dead = TcFastPath::load().expect("load the BPF fast path");
    dead.set_netlink_attach(true);
    in_ns(&host, move || {
        dead.attach(&port).unwrap();
        // Dies: nothing detached.
        std::mem::forget(dead);
        port
    });
    assert_eq!(classifiers(&host), 1, "the dead vrouter's classifier");
    let port = in_ns(&host, || {
        vrouter::linux::AfPacketPort::open("vh1", Default::default()).unwrap()
    });
    let n = in_ns(&host, move || {
        let mut fp = TcFastPath::load().expect("load the BPF fast path");
        fp.set_netlink_attach(true);
        fp.attach(&port).unwrap();
        let n = classifiers_here();
        drop(fp);
        n
    });
    assert_eq!(n, 1, "only the new vrouter's classifier");
    assert_eq!(classifiers(&host), 0, "detached when the new one stops");
}

/// `fp_tc` classifiers on vh1 of the current namespace.
fn classifiers_here() -> usize {
    let out = std::process::Command::new("tc")
        .args(["filter", "show", "dev", "vh1", "ingress"])
        .output()
        .unwrap();
    fp_tc_lines(&out.stdout)
}

/// Lines of `tc filter show` naming an `fp_tc` classifier (one per filter).
fn fp_tc_lines(out: &[u8]) -> usize {
    let s = String::from_utf8_lossy(out);
    eprintln!("{s}");
    s.lines().filter(|l| l.contains("fp_tc")).count()
}

/// Every entry holds one counter slot of the mapped array, and slots come
/// back: a full map refuses the next entry with a reason, entries removed
/// (marked dead, deleted after their grace) give their slots back, and
/// the map fills again; a fresh entry counts from zero; entries replaced
/// give theirs back too.
#[test]
fn counter_slots_are_taken_and_given_back() {
    require_env!();
    if let Some(r) = skip_reason(&["clang"]) {
        report_skip("fastpath: BPF object needs clang at build time", &r);
        return;
    }
    let mut fp = TcFastPath::load().expect("load the BPF fast path (root, TC BPF)");
    let hint = |i: u32| dp_core::OffloadHint {
        flow: i,
        gen: 1,
        in_vif: 3,
        out_vif: 4,
        key: FlowKey::new_v4(
            17,
            (i & 0xffff) as u16,
            9000,
            1,
            C1_IP,
            [10, 0, (i >> 16) as u8, 1],
        ),
        in_macs: [0; 12],
        mtu: 1500,
        macs: None,
        tunnel: None,
        decap: None,
    };
    const MAX: u32 = 65536;
    for round in 0..2 {
        for i in 0..MAX {
            fp.insert(7, 8, &hint(i))
                .unwrap_or_else(|e| panic!("round {round}: entry {i}: {e}"));
        }
        assert_eq!(fp.counters(7, &hint(5)), Some((0, 0)), "a fresh entry");
        let e = fp.insert(7, 8, &hint(MAX)).unwrap_err();
        assert!(e.to_string().contains("FP_FLOWS insert"), "full: {e}");
        for i in 0..MAX {
            fp.remove(7, &hint(i));
        }
        assert_eq!(
            fp.counters(7, &hint(5)),
            Some((0, 0)),
            "dead, not deleted yet"
        );
        std::thread::sleep(Duration::from_millis(150));
        fp.tick();
        assert_eq!(fp.counters(7, &hint(5)), None, "deleted after the grace");
    }
    // An entry replaced (the same key installed again) gives its slot back
    // after the grace too: more replacements than there are slots.
    for n in 0..140_000u32 {
        fp.insert(7, 8, &hint(1))
            .unwrap_or_else(|e| panic!("replacement {n}: {e}"));
    }
    assert_eq!(fp.counters(7, &hint(1)), Some((0, 0)));
}
