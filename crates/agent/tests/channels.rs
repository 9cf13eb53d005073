//! The agent's ksync and pkt0 clients and its view of the flow mapping,
//! against the datapath-side endpoints of the `channels` crate: unix
//! sockets and a `/dev/shm`-style file on Linux, named pipes and a named
//! file mapping on Windows (the Windows lane runs this under Wine).
//!
//! The "datapath" is the real forwarding core (`dp_core::Router` with its
//! flow table in the shared mapping) behind the real ksync handler, served
//! on `channels::KsyncListener` and `Pkt0Datapath`. The agent side is the
//! agent's own code: it programs a model by dump + converge, reconverges
//! to nothing new, and sets up a flow from a trapped FLOW_MISS.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod model;

use model::{model, udp, MAC_A, MAC_B};

use agent::flows::{Batch, FlowConfig, FlowEngine};
use agent::ksync::KsyncClient;
use agent::program::{self, Ids};
use channels::pkt0::PKT0_MAX_FRAME;
use channels::{ChannelPaths, FlowShm, KsyncListener, Pkt0Agent, Pkt0Datapath};
use dp_core::agent::{cmd, AgentHdr};
use dp_core::flow::table::{VR_FLOW_ACTION_FORWARD, VR_FLOW_FLAG_ACTIVE};
use dp_core::{Action, Actions, Packet, Router, RouterConfig, VifConfig, VifType, HEADROOM};
use ksync::{Handler, HostInfo, HostOps};
use sandesh::VrInterfaceReq;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AGENT_VIF: u16 = 2;

#[derive(Default)]
struct Host {
    released: Vec<u32>,
    info: HostInfo,
}

impl HostOps for Host {
    fn vif_add(&mut self, _cfg: &VifConfig, _req: &VrInterfaceReq) -> Result<(), i32> {
        Ok(())
    }
    fn vif_del(&mut self, _idx: u16) {}
    fn flow_released(&mut self, idx: u32) {
        self.released.push(idx);
    }
    fn flow_deleted(&mut self, _idx: u32) {}
    fn host_info(&self) -> HostInfo {
        self.info.clone()
    }
}

struct Dp {
    router: Router,
    handler: Handler,
    host: Host,
}

impl Dp {
    /// The ksync handler over this datapath: `msg` in, answers to `out`.
    fn handle(&mut self, msg: &[u8], out: &mut Vec<u8>) {
        let Dp {
            router,
            handler,
            host,
        } = self;
        handler.handle(router, host, msg, out);
    }
}

type Shared = Arc<Mutex<Dp>>;

/// A datapath over a fresh shared flow table at `paths`, with the agent
/// vif.
fn datapath(paths: &ChannelPaths) -> Shared {
    let cfg = RouterConfig::small();
    let table = FlowShm::create(&paths.flow_shm, cfg.flow_entries, cfg.oflow_entries)
        .unwrap()
        .into_flow_table()
        .unwrap();
    let mut router = Router::with_flow_table(cfg, table);
    router
        .vif_add(VifConfig::new(AGENT_VIF, VifType::Agent))
        .unwrap();
    Arc::new(Mutex::new(Dp {
        router,
        handler: Handler::with_page_size(600),
        host: Host::default(),
    }))
}

async fn serve(mut l: KsyncListener, dp: Shared) {
    while let Ok(mut conn) = l.accept().await {
        let dp = Arc::clone(&dp);
        tokio::spawn(async move {
            while let Ok(Some(msg)) = conn.recv().await {
                let mut out = Vec::new();
                dp.lock().unwrap().handle(&msg, &mut out);
                if !out.is_empty() && conn.send(&out).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Run a frame from `vif` through the core: the trap copies for pkt0 and
/// whether the packet was held.
fn inject(dp: &Shared, vif: u16, frame: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut d = dp.lock().unwrap();
    let mut buf = vec![0u8; HEADROOM + frame.len() + 64];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut pkts = [Packet::new(&mut buf, HEADROOM, frame.len()).unwrap()];
    let mut acts = Actions::with_capacity(16);
    d.router.process(vif, &mut pkts, &mut acts);
    let mut traps = Vec::new();
    let mut held = false;
    for a in acts.as_slice() {
        match *a {
            Action::TxCopy {
                pkt,
                vif: AGENT_VIF,
                prepend,
                from,
                to,
            } => {
                let mut b = acts.prepend(prepend).to_vec();
                b.extend_from_slice(&pkts[pkt as usize].data()[from as usize..to as usize]);
                traps.push(b);
            }
            Action::Hold { .. } => held = true,
            _ => {}
        }
    }
    (traps, held)
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("step timed out")
}

#[tokio::test]
async fn agent_programs_converges_and_sets_up_flows_over_the_channels() {
    let dir = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(dir.path());
    let cfg = RouterConfig::small();
    let table = FlowShm::create(&paths.flow_shm, cfg.flow_entries, cfg.oflow_entries)
        .unwrap()
        .into_flow_table()
        .unwrap();
    let mut router = Router::with_flow_table(cfg, table);
    let mut agent_vif = VifConfig::new(AGENT_VIF, VifType::Agent);
    agent_vif.mac = [0x02, 0, 0, 0, 0, 0xfe];
    router.vif_add(agent_vif).unwrap();
    let dp: Shared = Arc::new(Mutex::new(Dp {
        router,
        handler: Handler::with_page_size(600),
        host: Host {
            info: HostInfo {
                flow_table_path: paths.flow_shm.display().to_string(),
                ..HostInfo::default()
            },
            ..Host::default()
        },
    }));
    let listener = KsyncListener::bind(&paths.ksync).unwrap();
    let server = tokio::spawn(serve(listener, Arc::clone(&dp)));
    let pkt0_dp = Pkt0Datapath::bind(&paths).unwrap();
    let mut pkt0_agent = Pkt0Agent::bind(&paths).unwrap();

    // ---- programming: dump, converge, converge again to nothing -----------
    let ids = Ids { max_vifs: 64 };
    let m = model();
    let mut k = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    let none = BTreeSet::new();
    let cur = within(program::dump(&mut k, &none)).await.unwrap();
    assert_eq!(
        cur.object_count(),
        0,
        "the agent's view of a fresh datapath"
    );
    let want = program::desired(&m, &ids);
    let plan: Vec<_> = program::plan(&cur, &want).collect();
    // 2 vifs, 2 base + 4 port + 1 VRF next hops, 4 labels, 1 VNI, 2 + 2 +
    // 2 routes (gateway/DNS, /32s, bridge entries).
    assert_eq!(plan.len(), 2 + 7 + 4 + 1 + 6, "{plan:#?}");
    within(k.apply(&plan)).await.unwrap();
    let after = within(program::dump(&mut k, &none)).await.unwrap();
    assert!(
        program::same(&after, &want),
        "dump after converge:\n{after:#?}\nwant:\n{want:#?}"
    );
    assert!(
        program::plan(&after, &want).next().is_none(),
        "a second converge changes nothing"
    );
    // A leftover the agent does not want (a stale route) is removed.
    let mut less = want.clone();
    let stale = less.routes.keys().next().cloned().unwrap();
    less.routes.remove(&stale);
    let fix: Vec<_> = program::plan(&after, &less).collect();
    assert_eq!(fix.len(), 1);
    within(k.apply(&fix)).await.unwrap();
    assert!(program::same(
        &within(program::dump(&mut k, &none)).await.unwrap(),
        &less
    ));
    let back: Vec<_> = program::plan(&less, &want).collect();
    within(k.apply(&back)).await.unwrap();

    // ---- a new flow: trap on pkt0, decided over ksync, seen in the mapping --
    let (traps, held) = inject(
        &dp,
        3,
        &udp(MAC_A, [198, 18, 0, 3], [198, 18, 0, 4], 4000, 5001),
    );
    assert!(held, "the first packet of a new flow is held");
    assert_eq!(traps.len(), 1);
    // On Windows the agent connects to the pipe inside `recv` and the
    // datapath accepts inside its own `recv`: both wait while the trap is
    // sent (retried until the pipe is connected).
    let sender = pkt0_dp.sender();
    let mut pkt0_dp = pkt0_dp;
    let accept = tokio::spawn(async move {
        let mut b = vec![0u8; PKT0_MAX_FRAME];
        while pkt0_dp.recv(&mut b).await.is_ok() {}
    });
    let got = tokio::spawn(async move {
        let mut buf = vec![0u8; PKT0_MAX_FRAME];
        let n = pkt0_agent.recv(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    });
    let t0 = std::time::Instant::now();
    loop {
        match sender.send(&traps[0]).await {
            Ok(()) => break,
            Err(e) if e.is_peer_not_present() && t0.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("pkt0 send: {e}"),
        }
    }
    let buf = within(got).await.unwrap();
    let n = buf.len();
    let hdr = AgentHdr::parse(&buf[14..n]).unwrap();
    assert_eq!(hdr.cmd, cmd::FLOW_MISS);
    assert_eq!(hdr.ifindex, 3);

    let mut engine = FlowEngine::new(FlowConfig::default(), ids, paths.flow_shm.clone());
    let mut batch = Batch::default();
    engine.miss(&m, &hdr, &mut batch);
    assert_eq!(batch.len(), 2, "reverse create + forward set in one write");
    let mut fk = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    within(engine.flush(&mut fk, &mut batch)).await.unwrap();
    within(engine.settle(&mut fk)).await.unwrap();
    assert_eq!(engine.stats.setups, 1);
    assert_eq!(
        dp.lock().unwrap().host.released,
        vec![hdr.param],
        "held packets released"
    );

    // The agent reads both entries back from the shared mapping.
    let shm = FlowShm::open(&paths.flow_shm).unwrap();
    let t = engine.tracked.get(&hdr.param).unwrap();
    let (rev, _) = t.rev.expect("reverse entry");
    let fwd = shm.entry(hdr.param).unwrap();
    let rv = shm.entry(rev).unwrap();
    assert_eq!(fwd.action, VR_FLOW_ACTION_FORWARD);
    assert_eq!(rv.action, VR_FLOW_ACTION_FORWARD);
    assert!(fwd.flags & VR_FLOW_FLAG_ACTIVE != 0 && rv.flags & VR_FLOW_FLAG_ACTIVE != 0);
    assert_eq!(fwd.rflow(), Some(rev));
    assert_eq!(rv.rflow(), Some(hdr.param));
    assert_eq!(rv.key().sport(), 5001, "reverse key swaps the ports");
    assert_eq!(
        rv.key().nh_id(),
        ids.l3_nh(4),
        "reverse key: the answer comes from vif 4"
    );

    // The answer now passes without a trap.
    let (_, held) = inject(
        &dp,
        4,
        &udp(MAC_B, [198, 18, 0, 4], [198, 18, 0, 3], 5001, 4000),
    );
    assert!(!held, "the reverse flow forwards");
    server.abort();
    accept.abort();
}

/// Traps lost on their way (pkt0 full, a clone failure: here never read)
/// leave entries on HOLD that no packet traps again. The agent's hold
/// audit reads the shared table and decides every such entry at its
/// second visit, one audit period later; an entry whose trap arrives in
/// between is decided once, by the trap. Before, these flows stayed
/// black-holed until the agent restarted.
#[tokio::test]
async fn the_hold_audit_decides_flows_whose_traps_were_lost() {
    let dir = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(dir.path());
    let dp = datapath(&paths);
    let server = tokio::spawn(serve(
        KsyncListener::bind(&paths.ksync).unwrap(),
        Arc::clone(&dp),
    ));
    let ids = Ids { max_vifs: 64 };
    let m = model();
    let mut k = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    let cur = within(program::dump(&mut k, &BTreeSet::new()))
        .await
        .unwrap();
    let plan: Vec<_> = program::plan(&cur, &program::desired(&m, &ids)).collect();
    within(k.apply(&plan)).await.unwrap();

    // 20 new flows: held, their traps dropped.
    const LOST: u16 = 20;
    for sport in 0..LOST {
        let f = udp(MAC_A, [198, 18, 0, 3], [198, 18, 0, 4], 4000 + sport, 5001);
        let (traps, held) = inject(&dp, 3, &f);
        assert!(held && traps.len() == 1, "flow {sport} held and trapped");
    }
    // One more, whose trap does arrive (after the audit's first visit).
    let (traps, _) = inject(
        &dp,
        3,
        &udp(MAC_A, [198, 18, 0, 3], [198, 18, 0, 4], 9999, 5001),
    );
    let on_time = AgentHdr::parse(&traps[0][14..]).unwrap();
    let shm = FlowShm::open(&paths.flow_shm).unwrap();
    let holds = || shm.iter_valid().filter(|(_, e)| e.is_hold()).count();
    assert_eq!(holds(), usize::from(LOST) + 1);

    let fcfg = FlowConfig {
        audit_period: Duration::from_secs(1),
        ..FlowConfig::default()
    };
    let mut engine = FlowEngine::new(fcfg, ids, paths.flow_shm.clone());
    let mut batch = Batch::default();
    let mut fk = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    // First visit (the whole table: a 1 s period): noted, not decided (a
    // trap may still be on its way).
    assert_eq!(engine.audit(&m, &mut batch), 0);
    assert!(batch.is_empty());
    engine.miss(&m, &on_time, &mut batch);
    within(engine.flush(&mut fk, &mut batch)).await.unwrap();
    within(engine.settle(&mut fk)).await.unwrap();
    assert_eq!(holds(), usize::from(LOST));
    // Second visit: every entry still on hold is decided.
    assert_eq!(engine.audit(&m, &mut batch), u32::from(LOST));
    within(engine.flush(&mut fk, &mut batch)).await.unwrap();
    within(engine.settle(&mut fk)).await.unwrap();
    assert_eq!(holds(), 0, "no entry left on hold");
    assert_eq!(engine.stats.audited, u64::from(LOST));
    assert_eq!(engine.stats.setups, u64::from(LOST) + 1);
    assert_eq!(
        dp.lock().unwrap().host.released.len(),
        usize::from(LOST) + 1,
        "every flow's held packet released"
    );
    // And they forward now: the next packet of each passes untrapped.
    for sport in 0..LOST {
        let f = udp(MAC_A, [198, 18, 0, 3], [198, 18, 0, 4], 4000 + sport, 5001);
        let (traps, held) = inject(&dp, 3, &f);
        assert!(!held && traps.is_empty(), "flow {sport} forwards");
    }
    assert_eq!(engine.audit(&m, &mut batch), 0, "nothing left to audit");
    server.abort();
}

/// Aging visits a slice of the tracked flows per tick, every flow once
/// per sweep (before: every flow, both entries, every second, which cost
/// the flow task a quarter of its time under a flood of new flows). Idle
/// flows still go, and their deletions reach the datapath.
#[tokio::test]
async fn aging_walks_a_slice_per_tick_and_ages_every_idle_flow_in_two_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(dir.path());
    let dp = datapath(&paths);
    let server = tokio::spawn(serve(
        KsyncListener::bind(&paths.ksync).unwrap(),
        Arc::clone(&dp),
    ));
    let ids = Ids { max_vifs: 64 };
    let m = model();
    let mut k = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    let cur = within(program::dump(&mut k, &BTreeSet::new()))
        .await
        .unwrap();
    let plan: Vec<_> = program::plan(&cur, &program::desired(&m, &ids)).collect();
    within(k.apply(&plan)).await.unwrap();

    let fcfg = FlowConfig {
        idle_timeout: Duration::from_secs(1),
        tcp_close_timeout: Duration::from_secs(1),
        ..FlowConfig::default()
    };
    let mut engine = FlowEngine::new(fcfg, ids, paths.flow_shm.clone());
    assert_eq!(engine.age_sweep(), Duration::from_secs(1));
    let mut batch = Batch::default();
    let mut fk = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    const FLOWS: u16 = 20;
    for sport in 0..FLOWS {
        let f = udp(MAC_A, [198, 18, 0, 3], [198, 18, 0, 4], 4000 + sport, 5001);
        let (traps, held) = inject(&dp, 3, &f);
        assert!(held && traps.len() == 1, "flow {sport} trapped");
        let hdr = AgentHdr::parse(&traps[0][14..]).unwrap();
        engine.miss(&m, &hdr, &mut batch);
    }
    within(engine.flush(&mut fk, &mut batch)).await.unwrap();
    within(engine.settle(&mut fk)).await.unwrap();
    assert_eq!(engine.stats.setups, u64::from(FLOWS));
    let shm = FlowShm::open(&paths.flow_shm).unwrap();
    let active = || shm.iter_valid().filter(|(_, e)| e.is_active()).count();
    assert_eq!(active(), 2 * usize::from(FLOWS));

    // A 250 ms tick against a 1 s sweep: 5 of the 20 flows per call.
    let tick = Duration::from_millis(250);
    let t = std::time::Instant::now() + Duration::from_secs(10);
    engine.age(t, tick, &mut batch);
    let first = engine.stats.aged;
    assert!(first <= 5, "one call visits one slice, aged {first}");
    for _ in 1..4 {
        engine.age(t, tick, &mut batch);
    }
    // Two sweeps later every flow was seen idle for longer than 1 s.
    let later = t + Duration::from_secs(10);
    for _ in 0..4 {
        engine.age(later, tick, &mut batch);
    }
    assert_eq!(engine.stats.aged, u64::from(FLOWS), "every idle flow aged");
    assert!(engine.tracked.is_empty());
    assert_eq!(batch.len(), 2 * usize::from(FLOWS), "both entries deleted");
    within(engine.flush(&mut fk, &mut batch)).await.unwrap();
    within(engine.settle(&mut fk)).await.unwrap();
    assert_eq!(active(), 0, "the datapath's entries are gone");
    server.abort();
}

/// The agent reads the datapath's table sizes (`vrouter_ops`) when it
/// connects: a datapath too small for the agent's limits (here labels for
/// 64 vifs but an agent allowed 4096) is refused at once, naming each
/// table, and `run` fails (the binary exits 1). Before, every port past
/// the label table was refused one by one, each refusal a re-dump. A
/// datapath sized from the same limits passes.
#[tokio::test]
async fn a_datapath_too_small_for_the_agents_limits_is_refused_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(dir.path());
    let cfg = RouterConfig::small();
    let table = FlowShm::create(&paths.flow_shm, cfg.flow_entries, cfg.oflow_entries)
        .unwrap()
        .into_flow_table()
        .unwrap();
    let router = Router::with_flow_table(cfg.clone(), table);
    let dp: Shared = Arc::new(Mutex::new(Dp {
        router,
        handler: Handler::with_page_size(600),
        host: Host::default(),
    }));
    let server = tokio::spawn(serve(
        KsyncListener::bind(&paths.ksync).unwrap(),
        Arc::clone(&dp),
    ));

    // What the datapath says fits what it was sized for.
    let mut k = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    let r = within(
        k.call(&[sandesh::VrouterOps {
            h_op: sandesh::SandeshOp::Get,
            ..Default::default()
        }
        .into()]),
    )
    .await
    .unwrap();
    let Some(sandesh::Message::VrouterOps(ops)) = r[0].objects.first().cloned() else {
        panic!("no vrouter_ops answer");
    };
    // 64 vifs need 16 + 128 labels (1024 here) and 16 + 128 + 64 next hops.
    assert_eq!(
        agent::run::check_limits(&ops, &Ids { max_vifs: 64 }, 64, false),
        Ok(())
    );
    // With a control node the tunnel and ECMP ranges come on top:
    // 16 + 128 + 4096 + 4096 + 8192 next hops.
    let e = agent::run::check_limits(&ops, &Ids { max_vifs: 64 }, 64, true).unwrap_err();
    assert!(e.contains("next hops 1024 < 16528"), "{e}");
    assert!(
        !e.contains("interfaces 64 <") && !e.contains("VRFs 64 <"),
        "{e}"
    );
    let e = agent::run::check_limits(&ops, &Ids { max_vifs: 4096 }, 4096, false).unwrap_err();
    for what in [
        "interfaces 64 < 4096",
        "MPLS labels 1024 < 8208",
        "next hops 1024 < 12304",
        "VRFs 64 < 4096",
    ] {
        assert!(e.contains(what), "{what}: {e}");
    }

    // The whole agent against it, with its default limits: refused.
    let opts = agent::run::Options {
        sock_dir: Some(dir.path().to_path_buf()),
        state_dir: dir.path().join("state"),
        vnc_listen: "127.0.0.1:0".parse().unwrap(),
        port_listen: "127.0.0.1:0".parse().unwrap(),
        introspect_listen: "127.0.0.1:0".parse().unwrap(),
        flows: FlowConfig::default(),
        max_vifs: 4096,
        max_vrfs: 4096,
        port_api: agent::ports::PortApiOptions {
            stale_timeout: Duration::from_secs(60),
        },
        config_source: Default::default(),
        controller: None,
        fault: None,
    };
    let res = within(agent::run::run(opts, std::future::pending())).await;
    let e = format!("{:#}", res.unwrap_err());
    assert!(
        e.contains("too small") && e.contains("MPLS labels 1024 < 8208"),
        "{e}"
    );
    assert!(
        dp.lock().unwrap().router.vifs().iter().count() == 0,
        "nothing programmed"
    );
    server.abort();
}

/// Like [`serve`], but holds its answers back until `want` requests have
/// arrived (or none came for a second), and reports how many requests it
/// had read when it sent its first answer.
async fn serve_held(
    mut l: KsyncListener,
    dp: Shared,
    want: usize,
    seen: Arc<Mutex<Option<usize>>>,
) {
    let mut conn = l.accept().await.unwrap();
    let mut held = Vec::new();
    let mut n = 0;
    loop {
        let msg = if seen.lock().unwrap().is_none() && n < want {
            match tokio::time::timeout(Duration::from_secs(1), conn.recv()).await {
                Ok(r) => r,
                Err(_) => Ok(Some(bytes::Bytes::new())),
            }
        } else {
            conn.recv().await
        };
        let Ok(Some(msg)) = msg else { return };
        if !msg.is_empty() {
            n += 1;
            dp.lock().unwrap().handle(&msg, &mut held);
        }
        if seen.lock().unwrap().is_none() && n < want && !msg.is_empty() {
            continue;
        }
        seen.lock().unwrap().get_or_insert(n);
        if !held.is_empty() && conn.send(&std::mem::take(&mut held)).await.is_err() {
            return;
        }
    }
}

/// The flow engine writes its next batch while the datapath still owes
/// the answers to the last one (two writes in flight), and records every
/// answer in order afterwards: both flows set up, both held packets
/// released. Before, each flush waited for all its answers, so the
/// datapath saw one batch at a time.
#[tokio::test]
async fn flow_batches_are_pipelined() {
    let dir = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(dir.path());
    let dp = datapath(&paths);
    let ids = Ids { max_vifs: 64 };
    let m = model();
    // Program over an ordinary server first.
    let prog = ChannelPaths::new(dir.path().join("prog"));
    std::fs::create_dir_all(dir.path().join("prog")).unwrap();
    let server = tokio::spawn(serve(
        KsyncListener::bind(&prog.ksync).unwrap(),
        Arc::clone(&dp),
    ));
    let mut k = within(KsyncClient::connect(&prog.ksync)).await.unwrap();
    let cur = within(program::dump(&mut k, &BTreeSet::new()))
        .await
        .unwrap();
    let plan: Vec<_> = program::plan(&cur, &program::desired(&m, &ids)).collect();
    within(k.apply(&plan)).await.unwrap();

    let mut hdrs = Vec::new();
    for sport in [4000, 4001] {
        let (traps, held) = inject(
            &dp,
            3,
            &udp(MAC_A, [198, 18, 0, 3], [198, 18, 0, 4], sport, 5001),
        );
        assert!(held && traps.len() == 1);
        hdrs.push(AgentHdr::parse(&traps[0][14..]).unwrap());
    }
    let seen = Arc::new(Mutex::new(None));
    let held_server = tokio::spawn(serve_held(
        KsyncListener::bind(&paths.ksync).unwrap(),
        Arc::clone(&dp),
        4,
        Arc::clone(&seen),
    ));
    let mut engine = FlowEngine::new(FlowConfig::default(), ids, paths.flow_shm.clone());
    let mut fk = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    for hdr in &hdrs {
        let mut batch = Batch::default();
        engine.miss(&m, hdr, &mut batch);
        assert_eq!(batch.len(), 2);
        within(engine.flush(&mut fk, &mut batch)).await.unwrap();
    }
    assert!(engine.in_flight());
    within(engine.settle(&mut fk)).await.unwrap();
    assert!(!engine.in_flight());
    assert_eq!(
        *seen.lock().unwrap(),
        Some(4),
        "both batches written before the first answer"
    );
    assert_eq!(engine.stats.setups, 2);
    assert_eq!(engine.stats.errors, 0);
    let mut released = dp.lock().unwrap().host.released.clone();
    released.sort_unstable();
    let mut want: Vec<u32> = hdrs.iter().map(|h| h.param).collect();
    want.sort_unstable();
    assert_eq!(released, want, "held packets released");
    for h in &hdrs {
        assert!(engine.tracked.get(&h.param).unwrap().rev.is_some());
    }
    // A plain call on the same connection still works after pipelining.
    let r = within(fk.call(&[sandesh::Message::Flow(Default::default())]))
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    server.abort();
    held_server.abort();
}
