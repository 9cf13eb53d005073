//! The agent vif on the epoll loop: `linux::Pkt0Port` over the `channels`
//! pkt0 sockets, against a `channels::Pkt0Agent` in the role of the agent.
//! Traps reach the agent with their `agent_hdr`; frames the agent writes
//! are read when epoll reports the socket and run through the core. Needs
//! no root.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use channels::{ChannelPaths, Pkt0Agent};
use dp_core::agent::{cmd, AgentHdr, AGENT_HDR_LEN};
use dp_core::testkit::{Topo, AGENT_VIF};
use dp_core::{RouterConfig, VROUTER_MAC};
use packet::checksum;
use std::time::{Duration, Instant};
use vrouter::linux::{EpollPoller, Pkt0Port};
use vrouter::{Datapath, DatapathConfig, VnetHdr};

const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 1];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 2];
const VM1_IP: [u8; 4] = [198, 18, 0, 1];
const VM2_IP: [u8; 4] = [198, 18, 0, 2];

fn udp_frame(sport: u16) -> Vec<u8> {
    let mut f = VROUTER_MAC.to_vec();
    f.extend_from_slice(&VM1_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 38, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&VM1_IP);
    f.extend_from_slice(&VM2_IP);
    let c = checksum::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&[0x13, 0x89, 0, 18, 0, 0]);
    f.extend_from_slice(&[0xab; 10]);
    f
}

fn recv(agent: &Pkt0Agent) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 4096];
    loop {
        if let Some(n) = agent.try_recv(&mut buf).unwrap() {
            buf.truncate(n);
            return buf;
        }
        assert!(Instant::now() < deadline, "no frame on pkt0");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn traps_reach_the_agent_and_its_frames_are_forwarded() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(tmp.path());
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], false);
    let agent_cfg = t.router.vif(AGENT_VIF).unwrap().cfg.clone();
    let dp = Datapath::start(
        t.router,
        Box::new(EpollPoller::new().unwrap()),
        None,
        DatapathConfig::default(),
    )
    .unwrap();
    let port = Pkt0Port::bind(tmp.path()).unwrap();
    assert!(paths.pkt0_datapath.exists());
    dp.vif_add_port(agent_cfg, Box::new(port)).unwrap();
    let agent = Pkt0Agent::bind(&paths).unwrap();

    // A new flow on vm1's policy vif: held, and trapped to the agent.
    dp.call(|c| c.inject(3, &udp_frame(1000), VnetHdr::NONE))
        .unwrap();
    let trap = recv(&agent);
    let hdr = AgentHdr::parse(&trap[14..]).unwrap();
    assert_eq!((hdr.cmd, hdr.ifindex, hdr.vrf), (cmd::FLOW_MISS, 3, 1));
    assert_eq!(&trap[14 + AGENT_HDR_LEN..], &udp_frame(1000)[..]);

    // The agent sends a frame out of vif 4 (AGENT_CMD_SWITCH): the loop
    // reads it when epoll reports the socket. vif 4 has no port here, so
    // it shows up as a transmit without a port.
    let mut out = vec![0u8; 14];
    let mut h = [0u8; AGENT_HDR_LEN];
    AgentHdr {
        ifindex: 4,
        vrf: 1,
        cmd: cmd::SWITCH,
        ..AgentHdr::default()
    }
    .emit(&mut h);
    out.extend_from_slice(&h);
    out.extend_from_slice(&udp_frame(2000));
    agent.try_send(&out).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while dp.stats().unwrap().tx_no_port == 0 {
        assert!(Instant::now() < deadline, "the agent's frame was not read");
        std::thread::sleep(Duration::from_millis(2));
    }
    let rx = dp
        .call(|c| c.router().vif(AGENT_VIF).unwrap().stats.ipackets)
        .unwrap();
    assert_eq!(rx, 1);

    // Stopping the loop closes the port, which removes its socket file.
    dp.stop();
    assert!(!paths.pkt0_datapath.exists());
}

/// A burst of new flows larger than the agent socket's queue
/// (`net.unix.max_dgram_qlen`, 10 by default): every trap reaches the
/// agent, in order, once it reads. Before the port kept a backlog, all but
/// the first 10 were lost and their flows stayed on HOLD.
#[test]
fn a_burst_of_traps_beyond_the_socket_queue_is_not_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(tmp.path());
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], false);
    let agent_cfg = t.router.vif(AGENT_VIF).unwrap().cfg.clone();
    let dp = Datapath::start(
        t.router,
        Box::new(EpollPoller::new().unwrap()),
        None,
        DatapathConfig::default(),
    )
    .unwrap();
    let port = Pkt0Port::bind(tmp.path()).unwrap();
    dp.vif_add_port(agent_cfg, Box::new(port)).unwrap();
    let agent = Pkt0Agent::bind(&paths).unwrap();

    // 64 new flows while the agent does not read.
    dp.call(|c| {
        for sport in 2000..2064u16 {
            c.inject(3, &udp_frame(sport), VnetHdr::NONE);
        }
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for sport in 2000..2064u16 {
        let trap = recv(&agent);
        let hdr = AgentHdr::parse(&trap[14..]).unwrap();
        assert_eq!(hdr.cmd, cmd::FLOW_MISS);
        assert_eq!(
            &trap[14 + AGENT_HDR_LEN..],
            &udp_frame(sport)[..],
            "trap of {sport}"
        );
    }
}

/// Thousands of new flows at once while the agent reads slowly: more
/// traps than the socket's send buffer holds. They go in batches
/// (`sendmmsg`), the refused ones wait in the port's backlog, and every
/// trap reaches the agent intact and in order.
#[test]
fn a_flood_of_traps_reaches_a_slow_agent_whole_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(tmp.path());
    let mut t = Topo::new(RouterConfig {
        // Room for every flow (the small table's buckets would overflow).
        flow_entries: 16 * 1024,
        oflow_entries: 1024,
        ..RouterConfig::small()
    });
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], false);
    let agent_cfg = t.router.vif(AGENT_VIF).unwrap().cfg.clone();
    let dp = Datapath::start(
        t.router,
        Box::new(EpollPoller::new().unwrap()),
        None,
        DatapathConfig::default(),
    )
    .unwrap();
    dp.vif_add_port(agent_cfg, Box::new(Pkt0Port::bind(tmp.path()).unwrap()))
        .unwrap();
    let agent = Pkt0Agent::bind(&paths).unwrap();

    const FLOWS: u16 = 3000;
    // In chunks of a datapath batch, as traffic would come.
    for chunk in (0..FLOWS).collect::<Vec<_>>().chunks(32) {
        let chunk = chunk.to_vec();
        dp.call(move |c| {
            for i in chunk {
                c.inject(3, &udp_frame(10_000 + i), VnetHdr::NONE);
            }
        })
        .unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = 0u16;
    while got < FLOWS {
        assert!(Instant::now() < deadline, "{got} of {FLOWS} traps arrived");
        // Slow: a pause every 100 frames.
        if got.is_multiple_of(100) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let Some(n) = agent.try_recv(&mut buf).unwrap() else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let trap = &buf[..n];
        let hdr = AgentHdr::parse(&trap[14..]).unwrap();
        assert_eq!(hdr.cmd, cmd::FLOW_MISS);
        assert_eq!(
            &trap[14 + AGENT_HDR_LEN..],
            &udp_frame(10_000 + got)[..],
            "trap {got}"
        );
        got += 1;
    }
    let stats = dp.call(|c| c.port_stats(AGENT_VIF)).unwrap().unwrap();
    assert_eq!(stats.tx_frames, u64::from(FLOWS));
    assert_eq!(stats.tx_errors, 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(agent.try_recv(&mut buf).unwrap(), None, "no trap twice");
}

/// With the hold store full, the first packet of a new flow is neither
/// trapped nor held and its HOLD entry is removed (so the agent decides
/// only flows whose packets wait, and a retransmission starts over).
#[test]
fn new_flows_beyond_the_hold_store_are_shed_not_trapped() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(tmp.path());
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], false);
    let agent_cfg = t.router.vif(AGENT_VIF).unwrap().cfg.clone();
    let dp = Datapath::start(
        t.router,
        Box::new(EpollPoller::new().unwrap()),
        None,
        DatapathConfig {
            hold_max_total: 2,
            ..DatapathConfig::default()
        },
    )
    .unwrap();
    dp.vif_add_port(agent_cfg, Box::new(Pkt0Port::bind(tmp.path()).unwrap()))
        .unwrap();
    let agent = Pkt0Agent::bind(&paths).unwrap();
    dp.call(|c| {
        for sport in 3000..3005u16 {
            c.inject(3, &udp_frame(sport), VnetHdr::NONE);
        }
    })
    .unwrap();
    for sport in 3000..3002u16 {
        let trap = recv(&agent);
        assert_eq!(&trap[14 + AGENT_HDR_LEN..], &udp_frame(sport)[..]);
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        agent.try_recv(&mut buf).unwrap(),
        None,
        "shed flows not trapped"
    );
    let (held, shed, entries) = dp
        .call(|c| (c.held(), c.stats().shed, c.router().flows().len()))
        .unwrap();
    assert_eq!((held, shed), (2, 3));
    assert_eq!(entries, 2, "the shed flows' HOLD entries are removed");
}
