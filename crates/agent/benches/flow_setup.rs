//! Flow setup rate: new flows per second from the FLOW_MISS trap to the
//! released packet.
//!
//! The agent side is the agent's own pkt0/flow task (`run::pkt0_task`:
//! pkt0 receive, policy and security-group evaluation, batched FLOW_SETs
//! over ksync). The datapath side is the real forwarding core and ksync
//! handler with its flow table in the shared mapping, behind the real
//! channels (unix sockets), in this process: a generator thread sends new
//! flows (one UDP packet each, distinct source ports) through
//! `Router::process` and forwards the traps on pkt0. A flow counts when the
//! datapath releases its held packet.
//!
//! Baseline, same run: the same agent code with one request per ksync
//! write (`max_batch = 1`), so the report is the ratio batching buys.
//!
//! `cargo bench -p vrouter-agent --bench flow_setup` (FLOWS=N to change
//! the 100 000 default).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use agent::flows::FlowConfig;
use agent::model::{Model, Port, Subnet, Vn};
use agent::program::Ids;
use channels::{ChannelPaths, FlowShm, KsyncListener, Pkt0Agent, Pkt0Datapath};
use dp_core::{Action, Actions, Packet, Router, RouterConfig, VifConfig, VifType, HEADROOM};
use ksync::{Handler, HostInfo, HostOps};
use sandesh::VrInterfaceReq;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const AGENT_VIF: u16 = 2;

struct Host {
    released: Arc<AtomicU64>,
    info: HostInfo,
}

impl HostOps for Host {
    fn vif_add(&mut self, _: &VifConfig, _: &VrInterfaceReq) -> Result<(), i32> {
        Ok(())
    }
    fn vif_del(&mut self, _: u16) {}
    fn flow_released(&mut self, _: u32) {
        self.released.fetch_add(1, Ordering::Relaxed);
    }
    fn flow_deleted(&mut self, _: u32) {}
    fn host_info(&self) -> HostInfo {
        self.info.clone()
    }
}

struct Dp {
    router: Router,
    handler: Handler,
    host: Host,
}

fn model() -> Model {
    let vn = Uuid::from_u128(1);
    let mut m = Model {
        revision: 1,
        ..Model::default()
    };
    m.vns.insert(
        vn,
        Vn {
            uuid: vn,
            fq_name: "default-domain:bench:blue".into(),
            vrf: 1,
            vni: 1,
            subnets: vec![Subnet {
                prefix: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)),
                plen: 16,
                gateway: None,
                dns: None,
                dhcp: false,
                dhcp_mtu: None,
            }],
            has_policy: false,
            ri: String::new(),
        },
    );
    for (vif, last) in [(3u16, 3u8), (4, 4)] {
        let p = Port {
            uuid: Uuid::from_u128(u128::from(vif)),
            vif,
            name: format!("bench{vif}"),
            mac: [2, 0, 0, 0, 0, last],
            ip4: Some(Ipv4Addr::new(198, 18, 0, last)),
            ip6: None,
            vn,
            vrf: 1,
            sgs: vec!["default-domain:bench:default".into()],
            policy: true,
            dhcp: false,
            mtu: 1500,
            display_name: String::new(),
            sub: None,
        };
        m.by_addr.insert((1, IpAddr::V4(p.ip4.unwrap())), vif);
        m.ports.insert(vif, p);
    }
    m.vrf_members.insert(1, vec![vn]);
    let sg = serde_json::json!({
        "fq_name": ["default-domain", "bench", "default"],
        "security_group_entries": {"policy_rule": [
            {"direction": ">", "protocol": "any", "ethertype": "IPv4",
             "src_addresses": [{"security_group": "default-domain:bench:default"}],
             "dst_addresses": [{"security_group": "local"}]},
            {"direction": ">", "protocol": "any", "ethertype": "IPv4",
             "src_addresses": [{"security_group": "local"}],
             "dst_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}]}
        ]}
    });
    let id = Uuid::from_u128(9);
    m.policy = Some(policy::PolicySet::build([], [], [(&id, &sg)]).0);
    m
}

/// The datapath objects of the two ports, straight into the router.
fn program(router: &mut Router, m: &Model, ids: &Ids) {
    let want = agent::program::desired(m, ids);
    for v in want.vifs.values() {
        router.vif_add(v.clone()).unwrap();
    }
    for n in want.nhs.values() {
        router.nh_add(n.clone()).unwrap();
    }
    for (k, d) in &want.routes {
        if k.family == dp_core::nexthop::AF_INET {
            router.route_add(k.vrf, k.prefix().unwrap(), *d).unwrap();
        }
    }
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut f = dp_core::VROUTER_MAC.to_vec();
    f.extend_from_slice(&[2, 0, 0, 0, 0, 3, 0x08, 0x00]);
    let mut ip = vec![
        0x45, 0, 0, 38, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 3, 198, 18, 0, 4,
    ];
    let c = packet::checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 18, 0, 0]);
    f.extend_from_slice(&[0x5a; 10]);
    f
}

/// One run: `flows` new flows; flows per second.
fn run(flows: u32, max_batch: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let paths = ChannelPaths::new(dir.path());
        let entries = (flows * 4).next_power_of_two().max(4096);
        let cfg = RouterConfig {
            flow_entries: entries,
            oflow_entries: entries / 16,
            ..RouterConfig::small()
        };
        let table = FlowShm::create(&paths.flow_shm, cfg.flow_entries, cfg.oflow_entries)
            .unwrap()
            .into_flow_table()
            .unwrap();
        let mut router = Router::with_flow_table(cfg, table);
        let mut agent_vif = VifConfig::new(AGENT_VIF, VifType::Agent);
        agent_vif.mac = [2, 0, 0, 0, 0, 0xfe];
        router.vif_add(agent_vif).unwrap();
        let ids = Ids { max_vifs: 64 };
        let m = model();
        program(&mut router, &m, &ids);
        let released = Arc::new(AtomicU64::new(0));
        let dp = Arc::new(Mutex::new(Dp {
            router,
            handler: Handler::new(),
            host: Host {
                released: Arc::clone(&released),
                info: HostInfo::default(),
            },
        }));
        let mut listener = KsyncListener::bind(&paths.ksync).unwrap();
        let sdp = Arc::clone(&dp);
        tokio::spawn(async move {
            while let Ok(conn) = listener.accept().await {
                let dp = Arc::clone(&sdp);
                // Answers each request before reading the next, its writes
                // not reading ahead (split halves): like upstream's DPDK
                // vRouter, which reads nothing while its answers wait for
                // room, and which the agent must not deadlock with.
                let (mut rx, mut tx) = conn.into_split();
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    while let Ok(Some(msg)) = rx.recv().await {
                        out.clear();
                        {
                            let mut d = dp.lock().unwrap();
                            let Dp {
                                router,
                                handler,
                                host,
                            } = &mut *d;
                            handler.handle(router, host, &msg, &mut out);
                        }
                        if !out.is_empty() && tx.send(&out).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let mut pkt0_dp = Pkt0Datapath::bind(&paths).unwrap();
        let pkt0_tx = pkt0_dp.sender();
        // The datapath end keeps a receive going: on Windows that accepts
        // the agent's pipe connection.
        tokio::spawn(async move {
            let mut buf = vec![0u8; channels::pkt0::PKT0_MAX_FRAME];
            while pkt0_dp.recv(&mut buf).await.is_ok() {}
        });
        let pkt0_agent = Pkt0Agent::bind(&paths).unwrap();
        let (_model_tx, model_rx) = tokio::sync::watch::channel(Arc::new(m));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let fcfg = FlowConfig {
            max_batch,
            ..FlowConfig::default()
        };
        tokio::spawn(agent::run::pkt0_task(
            pkt0_agent,
            paths.clone(),
            ids,
            fcfg,
            model_rx,
            agent::run::shared(),
            stop_rx,
        ));
        // Let the agent connect and adopt (nothing to adopt).
        tokio::time::sleep(Duration::from_millis(300)).await;

        let t0 = Instant::now();
        let mut sent = 0u32;
        let mut acts = Actions::with_capacity(256);
        let mut traps: Vec<Vec<u8>> = Vec::with_capacity(64);
        while sent < flows {
            // A batch of 32 new flows through the core, as the datapath
            // loop would run it.
            let n = (flows - sent).min(32);
            {
                let frames: Vec<Vec<u8>> = (0..n)
                    .map(|i| {
                        let f = sent + i;
                        udp(1024 + (f % 60000) as u16, 5000 + (f / 60000) as u16)
                    })
                    .collect();
                let mut bufs: Vec<Vec<u8>> = frames
                    .iter()
                    .map(|f| {
                        let mut b = vec![0u8; HEADROOM + f.len() + 64];
                        b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                        b
                    })
                    .collect();
                let mut pkts: Vec<Packet<'_>> = bufs
                    .iter_mut()
                    .zip(&frames)
                    .map(|(b, f)| Packet::new(b, HEADROOM, f.len()).unwrap())
                    .collect();
                acts.clear();
                dp.lock().unwrap().router.process(3, &mut pkts, &mut acts);
                for a in acts.as_slice() {
                    if let Action::TxCopy {
                        pkt,
                        vif: AGENT_VIF,
                        prepend,
                        from,
                        to,
                    } = *a
                    {
                        let mut b = acts.prepend(prepend).to_vec();
                        b.extend_from_slice(&pkts[pkt as usize].data()[from as usize..to as usize]);
                        traps.push(b);
                    }
                }
            }
            for t in traps.drain(..) {
                // A stuck agent stops reading pkt0: fail, do not hang.
                // (Windows: the agent connects its pipe on first use.)
                loop {
                    match tokio::time::timeout(Duration::from_secs(20), pkt0_tx.send(&t))
                        .await
                        .expect("pkt0 full for 20 s: the agent is stuck")
                    {
                        Err(channels::Error::PeerNotPresent { .. })
                            if t0.elapsed() < Duration::from_secs(20) =>
                        {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        r => break r.unwrap(),
                    }
                }
            }
            sent += n;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while released.load(Ordering::Relaxed) < u64::from(flows) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let took = t0.elapsed();
        let done = released.load(Ordering::Relaxed);
        let _ = stop_tx.send(true);
        assert_eq!(
            done,
            u64::from(flows),
            "not every flow was released in 60 s"
        );
        f64::from(flows) / took.as_secs_f64()
    })
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful: run a tiny smoke instead there.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let flows: u32 = std::env::var("FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 3000 } else { 100_000 });
    let base = run(flows.min(20_000), 1);
    let batched = run(flows, 512);
    println!("flow setup, miss -> released packet, {flows} new flows (in-process datapath, real channels):");
    println!("  baseline, one request per ksync write: {base:>10.0} flows/s");
    println!("  agent, batched (max 512 per write):    {batched:>10.0} flows/s");
    println!(
        "  ratio batched / baseline:              {:>10.2}",
        batched / base
    );
}
