//! The running agent: servers, the programming task, the pkt0/flow task
//! and (with `--config-source controller`) the controller, and how they
//! share the model.
//!
//! * **programming** ([`crate::programming`]) owns one ksync connection
//!   and converges the datapath to the model.
//! * **pkt0** owns the pkt0 endpoint and a second ksync connection for
//!   flows: traps are answered (ARP, DHCP) or decided (flow misses, in
//!   batches), flows are aged every second and decided again when the
//!   model changes.
//! * **controller** ([`crate::controller`]) talks XMPP to the control
//!   nodes: config in (IF-MAP), routes both ways.
//!
//! The configuration comes from the embedded store (which then serves
//! the VNC API) or from the control nodes; the model is the same.

use crate::flows::{Batch, FlowConfig, FlowEngine};
use crate::ksync::{KsyncClient, KsyncError};
use crate::model::Model;
use crate::port_config::ConfigPorts;
use crate::ports::PortStore;
use crate::program::Ids;
use crate::source::{ConfigView, Kind};
use crate::status::{lock, SharedRef};
pub use crate::status::{shared, Shared};
use channels::{ChannelPaths, Pkt0Agent};
use dp_core::agent::{cmd, AgentHdr};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vnc_api::Store;

/// Everything the agent needs to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// The datapath's channels under a directory (`--sock-dir`, the Linux
    /// datapath's or a test's); `None`: the platform's default channels
    /// (`ChannelPaths::default()`: on Windows the kernel extension's
    /// devices and flow section).
    pub sock_dir: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub vnc_listen: SocketAddr,
    pub port_listen: SocketAddr,
    pub introspect_listen: SocketAddr,
    pub flows: FlowConfig,
    pub max_vifs: u16,
    /// VRFs the agent uses: VNs with a network id at or above it are
    /// reported (introspect, metrics, the port API) and not programmed.
    pub max_vrfs: u16,
    /// Port API settings (upstream's `stale_interface_cleanup_timeout`).
    pub port_api: crate::ports::PortApiOptions,
    pub config_source: Kind,
    /// With [`Kind::Controller`]: the cluster.
    pub controller: Option<crate::controller::Options>,
    /// Fault injection for tests of what supervises the agent
    /// (`VROUTER_AGENT_FAULT_INJECT=panic:FILE`): once FILE exists, a task
    /// of the agent's set panics, as any of its tasks might.
    pub fault: Option<PathBuf>,
}

/// Run until `shutdown` resolves.
pub async fn run(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(&opts.state_dir)
        .with_context(|| format!("creating state dir {}", opts.state_dir.display()))?;
    let ports = PortStore::open(&opts.state_dir.join("ports"))?;
    let shared: SharedRef = Arc::new(Mutex::new(Shared::default()));
    let (model_tx, model_rx) = watch::channel(Arc::new(Model::default()));
    let paths = match &opts.sock_dir {
        Some(d) => ChannelPaths::new(d),
        None => ChannelPaths::default(),
    };
    let ids = Ids {
        max_vifs: opts.max_vifs,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let max_vrfs = opts.max_vrfs;

    // Where the configuration comes from.
    let (config, store, remote, controller): (Arc<dyn ConfigView>, _, _, _) =
        match opts.config_source {
            Kind::Embedded => {
                let db = opts.state_dir.join("config.redb");
                let store =
                    Store::open(&db).with_context(|| format!("config store {}", db.display()))?;
                (store.clone(), Some(store), None, None)
            }
            Kind::Controller => {
                let copts = opts
                    .controller
                    .clone()
                    .context("--config-source controller needs CONTROL-NODE.servers")?;
                let c = crate::controller::spawn(
                    copts,
                    ids,
                    &opts.state_dir,
                    Arc::clone(&ports),
                    model_rx.clone(),
                    stop_rx.clone(),
                    &mut tasks,
                )?;
                let remote = crate::programming::Remote {
                    rib: c.rib.clone(),
                    sip: c.sip.clone(),
                    os: crate::fabric::os(),
                };
                (
                    c.config.clone() as Arc<dyn ConfigView>,
                    None,
                    Some(remote),
                    Some(Arc::clone(&c.status)),
                )
            }
        };

    let vnc = match &store {
        Some(_) => Some(
            tokio::net::TcpListener::bind(opts.vnc_listen)
                .await
                .with_context(|| format!("VNC API listen {}", opts.vnc_listen))?,
        ),
        None => None,
    };
    let port_api = tokio::net::TcpListener::bind(opts.port_listen)
        .await
        .with_context(|| format!("port API listen {}", opts.port_listen))?;
    let intro = tokio::net::TcpListener::bind(opts.introspect_listen)
        .await
        .with_context(|| format!("introspect listen {}", opts.introspect_listen))?;
    let pkt0 = Pkt0Agent::bind(&paths).context("pkt0")?;

    // Header/idle and body timeouts on every API (a stalled client must
    // not hold a connection for the life of the agent).
    let serve = |l: tokio::net::TcpListener, app: axum::Router, mut stop: watch::Receiver<bool>| async move {
        http_serve::serve_tcp(l, app, http_serve::Timeouts::DEFAULT, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    };
    if let (Some(l), Some(store)) = (vnc, &store) {
        tasks.spawn(serve(
            l,
            vnc_api::router(Arc::clone(store)),
            stop_rx.clone(),
        ));
    }
    tasks.spawn(serve(
        port_api,
        crate::ports::router_with(
            Arc::clone(&ports),
            Arc::new(ConfigPorts::with_model(
                Arc::clone(&config),
                model_rx.clone(),
            )),
            opts.port_api,
        ),
        stop_rx.clone(),
    ));
    tasks.spawn(serve(
        intro,
        crate::introspect::router(crate::introspect::Introspect {
            model: model_rx.clone(),
            shared: Arc::clone(&shared),
            ksync_path: paths.ksync.clone(),
            controller,
        }),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::programming::programming(
        config,
        Arc::clone(&ports),
        paths.ksync.clone(),
        opts.state_dir.join("vifs.json"),
        ids,
        max_vrfs,
        model_tx,
        Arc::clone(&shared),
        stop_rx.clone(),
        remote,
    ));
    tasks.spawn(on_own_thread(
        "vrouter-agent-flows",
        pkt0_task(
            pkt0,
            paths.clone(),
            ids,
            opts.flows,
            model_rx,
            Arc::clone(&shared),
            stop_rx.clone(),
        ),
    ));
    if let Some(trigger) = opts.fault.clone() {
        tracing::warn!(trigger = %trigger.display(), "fault injection armed (tests only)");
        tasks.spawn(async move {
            while !trigger.exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("fault injected: an agent task panics");
        });
    }
    match &opts.controller {
        Some(c) if opts.config_source == Kind::Controller => tracing::info!(
            servers = ?c.servers,
            agent_name = %c.agent_name,
            port_api = %opts.port_listen,
            introspect = %opts.introspect_listen,
            ksync = %paths.ksync.display(),
            state_dir = %opts.state_dir.display(),
            "agent running (config and routes from the control nodes)"
        ),
        _ => tracing::info!(
            vnc = %opts.vnc_listen,
            port_api = %opts.port_listen,
            introspect = %opts.introspect_listen,
            ksync = %paths.ksync.display(),
            state_dir = %opts.state_dir.display(),
            "agent running (standalone)"
        ),
    }
    // Every task runs for the life of the agent: one that ends (returned
    // or panicked) leaves a part of the agent dead, so the agent stops and
    // exits non-zero for its supervisor (systemd, the Windows service
    // manager) to restart it, rather than look alive.
    let died = tokio::select! {
        _ = shutdown => { tracing::info!("stopping"); None }
        Some(r) = tasks.join_next() => {
            let why = match r {
                Ok(()) => "a task returned".to_string(),
                Err(e) if e.is_panic() => format!("a task panicked: {e}"),
                Err(e) => format!("a task was cancelled: {e}"),
            };
            tracing::error!(reason = %why, "an agent task ended unexpectedly: stopping, exit status 1");
            Some(why)
        }
    };
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        tracing::warn!("tasks did not stop in time");
    }
    let fatal = lock(&shared).fatal.take();
    match (died, fatal) {
        (Some(_), Some(f)) => Err(anyhow::anyhow!("{f}")),
        (Some(why), None) => Err(anyhow::anyhow!("the agent stopped because {why}")),
        (None, _) => Ok(()),
    }
}

/// Run `fut` to its end on a thread of its own, in a current-thread
/// runtime; a panic in it panics the caller (the task set sees it).
///
/// For the pkt0/flow task: its sockets (pkt0, its ksync connection) are
/// then polled by the thread that runs it, so a trap or a ksync answer
/// wakes that thread only, instead of the runtime's I/O driver waking the
/// task on one worker and often a second worker besides.
async fn on_own_thread<F>(name: &str, fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(fut))
            }));
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        panic!("cannot start thread {name}: {e}");
    }
    match rx.await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => panic!("thread {name}: cannot build its runtime: {e}"),
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("thread {name} ended without a result"),
    }
}

/// The datapath's table sizes (`vrouter_ops`) against what the agent's id
/// layout needs for its limits: `Err` names every table that is too small
/// and how to fix it. With `remote_routes` (a control node's routes) the
/// next hops must also hold the tunnel and ECMP composite ranges placed
/// after the VRFs' (`Ids::tunnel_base`, `Ids::composite_base`): a datapath
/// sized for local ports only would refuse remote routes one by one.
pub fn check_limits(
    ops: &sandesh::VrouterOps,
    ids: &Ids,
    max_vrfs: u16,
    remote_routes: bool,
) -> Result<(), String> {
    use dp_core::sizing;
    let mut short = Vec::new();
    let mut need = |what: &str, have: i32, want: u32, why: String| {
        if i64::from(have) < i64::from(want) {
            short.push(format!("{what} {have} < {want} ({why})"));
        }
    };
    need(
        "interfaces",
        ops.vo_interfaces,
        u32::from(ids.max_vifs),
        format!("--max-vifs {}", ids.max_vifs),
    );
    need(
        "MPLS labels",
        ops.vo_mpls_labels,
        sizing::labels(ids.max_vifs),
        format!("16 + 2 x --max-vifs {}", ids.max_vifs),
    );
    if remote_routes {
        need(
            "next hops",
            ops.vo_nexthops,
            sizing::nexthops_with_remote(ids.max_vifs),
            format!(
                "16 + 2 x --max-vifs {} + {} VRF, {} tunnel and {} ECMP next hops with a control node",
                ids.max_vifs,
                crate::program::MAX_VRFS,
                crate::program::TUNNEL_NHS,
                crate::program::COMPOSITE_NHS
            ),
        );
    } else {
        need(
            "next hops",
            ops.vo_nexthops,
            sizing::nexthops(ids.max_vifs, max_vrfs),
            format!(
                "16 + 2 x --max-vifs {} + --max-vrfs {max_vrfs}",
                ids.max_vifs
            ),
        );
    }
    need(
        "VRFs",
        ops.vo_vrfs,
        u32::from(max_vrfs),
        format!("--max-vrfs {max_vrfs}"),
    );
    if short.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the datapath's tables are too small for the agent's limits: {}; start the datapath with larger tables (vrouter --interfaces, --mpls-labels, --nexthops, --vrfs) or lower the agent's --max-vifs/--max-vrfs",
            short.join(", ")
        ))
    }
}

/// Read `vrouter_ops` and check it; `Ok(Err(_))`: the datapath is too
/// small (fatal), `Err(_)`: the channel failed (reconnect).
pub(crate) async fn datapath_limits(
    k: &mut KsyncClient,
    ids: &Ids,
    max_vrfs: u16,
    remote_routes: bool,
) -> Result<Result<(), String>, KsyncError> {
    let mut r = k
        .call(&[sandesh::VrouterOps {
            h_op: sandesh::SandeshOp::Get,
            ..Default::default()
        }
        .into()])
        .await?;
    match r.pop().and_then(|r| r.objects.into_iter().next()) {
        Some(sandesh::Message::VrouterOps(ops)) => {
            Ok(check_limits(&ops, ids, max_vrfs, remote_routes))
        }
        _ => Err(KsyncError::Protocol(
            "vrouter_ops: the datapath answered without its table sizes".into(),
        )),
    }
}

/// Resolves once the stop flag is set (the guard is dropped inside, so
/// the caller's future stays `Send`).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

pub(crate) async fn connect(
    path: &std::path::Path,
    stop: &mut watch::Receiver<bool>,
) -> Option<KsyncClient> {
    let mut logged = false;
    loop {
        match KsyncClient::connect(path).await {
            Ok(k) => return Some(k),
            Err(e) => {
                if !logged {
                    tracing::warn!(error = %e, "datapath not reachable; retrying");
                    logged = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stopped(stop) => return None,
        }
    }
}

// ---- pkt0 -------------------------------------------------------------------

struct Ctx<'a> {
    model: &'a Model,
    lease_secs: u32,
    /// The MTU of the port's interface, as the datapath read it (for DHCP
    /// option 26), when known.
    iface_mtu: Option<u16>,
}

impl crate::services::ServiceContext for Ctx<'_> {
    fn port(&self, vif: u16) -> Option<crate::services::PortInfo> {
        let p = self.model.ports.get(&vif)?;
        let sn = self.model.subnet_of(p);
        let v4 = |a: Option<std::net::IpAddr>| match a {
            Some(std::net::IpAddr::V4(v)) => Some(v),
            _ => None,
        };
        let v6 = |a: Option<std::net::IpAddr>| match a {
            Some(std::net::IpAddr::V6(v)) => Some(v),
            _ => None,
        };
        let sn6 = self.model.subnet6_of(p);
        Some(crate::services::PortInfo {
            vif,
            vrf: p.vrf,
            mac: p.mac,
            ip: p.ip4,
            plen: sn.map_or(32, |s| s.plen),
            gateway: sn.and_then(|s| v4(s.gateway)),
            dns: sn.and_then(|s| v4(s.dns)),
            // Configured among the subnet's DHCP options, else the
            // interface's.
            mtu: sn
                .and_then(|s| s.dhcp_mtu)
                .or(self.iface_mtu)
                .unwrap_or(p.mtu),
            dhcp_enabled: p.dhcp,
            hostname: (!p.display_name.is_empty()).then(|| p.display_name.clone()),
            ip6: p.ip6,
            prefix6: sn6.and_then(|s| match s.prefix {
                std::net::IpAddr::V6(a) => Some((a, s.plen)),
                _ => None,
            }),
            gateway6: sn6.and_then(|s| v6(s.gateway)),
            dns6: sn6.and_then(|s| v6(s.dns)),
            dhcp6_enabled: sn6.is_some_and(|s| s.dhcp),
        })
    }

    fn mac_of6(&self, vrf: u16, ip: std::net::Ipv6Addr) -> Option<[u8; 6]> {
        self.model
            .port_by_addr(vrf, std::net::IpAddr::V6(ip))
            .map(|p| p.mac)
    }

    fn mac_of(&self, vrf: u16, ip: std::net::Ipv4Addr) -> Option<[u8; 6]> {
        let a = std::net::IpAddr::V4(ip);
        if let Some(p) = self.model.port_by_addr(vrf, a) {
            return Some(p.mac);
        }
        let vn = self.model.vn_by_vrf(vrf)?;
        vn.subnets
            .iter()
            .any(|s| s.gateway == Some(a) || s.dns == Some(a))
            .then_some(dp_core::VROUTER_MAC)
    }

    fn lease_secs(&self) -> u32 {
        self.lease_secs
    }
}

/// How often aging visits its next slice of the tracked flows.
const AGE_TICK: Duration = Duration::from_millis(250);
const TICKS_PER_SECOND: u32 = 4;

/// One pkt0 frame, without waiting: `None` when none is queued.
async fn try_recv(p: &mut Pkt0Agent, buf: &mut [u8]) -> Option<channels::Result<usize>> {
    tokio::select! {
        biased;
        r = p.recv(buf) => Some(r),
        _ = std::future::ready(()) => None,
    }
}

/// The pkt0 and flow task (public for the flow-setup benchmark, which
/// runs it against an in-process datapath).
pub async fn pkt0_task(
    mut pkt0: Pkt0Agent,
    paths: ChannelPaths,
    ids: Ids,
    fcfg: FlowConfig,
    mut model_rx: watch::Receiver<Arc<Model>>,
    shared: SharedRef,
    mut stop: watch::Receiver<bool>,
) {
    let mut engine = FlowEngine::new(fcfg, ids, paths.flow_shm.clone());
    let (query_tx, mut queries) = tokio::sync::mpsc::channel(16);
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(2048);
    let mut batch = Batch::default();
    let mut mtus: std::collections::HashMap<u16, u16> = std::collections::HashMap::new();
    'connection: loop {
        // Until the flows are adopted again there are none to show: `/flows`
        // answers at once with an empty list instead of waiting for us.
        lock(&shared).flow_query = None;
        let Some(mut k) = connect(&paths.ksync, &mut stop).await else {
            return;
        };
        mtus.clear();
        // Wait for the first model from the programming task.
        while model_rx.borrow().revision == 0 && model_rx.borrow().ports.is_empty() {
            tokio::select! {
                r = model_rx.changed() => if r.is_err() { return },
                _ = stopped(&mut stop) => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => break,
            }
        }
        engine.reset();
        {
            let m = Arc::clone(&model_rx.borrow_and_update());
            engine.adopt(&m, &mut batch);
        }
        if engine.flush(&mut k, &mut batch).await.is_err() || engine.settle(&mut k).await.is_err() {
            continue 'connection;
        }
        // A new ksync connection may mean a new datapath.
        pkt0.refresh_peer();
        tracing::info!(adopted = engine.stats.adopted, "flow engine ready");
        lock(&shared).flow_query = Some(query_tx.clone());
        // Aging walks a slice of the flows every tick (all of them once
        // per sweep); the audit and the stats go once a second.
        let mut tick = tokio::time::interval(AGE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        loop {
            let mut first: Option<usize> = None;
            // Biased: the rare branches first (a flood of misses must not
            // starve aging and the stats), the answers to flows in flight
            // last (they are taken while pkt0 has nothing to read).
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => return,
                _ = tick.tick() => {
                    // A restarted datapath is heard within a tick.
                    pkt0.refresh_peer();
                    ticks = ticks.wrapping_add(1);
                    let second = ticks.is_multiple_of(TICKS_PER_SECOND);
                    if second {
                        engine.check_table();
                    }
                    engine.age(Instant::now(), AGE_TICK, &mut batch);
                    if second {
                        engine.audit(&model_rx.borrow(), &mut batch);
                    }
                    let mut s = lock(&shared);
                    s.flow_stats = engine.stats;
                    s.tracked_flows = engine.tracked.len();
                }
                Some(reply) = queries.recv() => {
                    let _ = reply.send(crate::introspect::flow_views(&engine));
                }
                r = model_rx.changed() => {
                    if r.is_err() { return }
                    let m = Arc::clone(&model_rx.borrow_and_update());
                    engine.reevaluate(&m, &mut batch);
                    mtus.clear();
                }
                r = pkt0.recv(&mut buf) => match r {
                    Ok(n) => first = Some(n),
                    Err(e) => {
                        tracing::warn!(error = %e, "pkt0 receive");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = k.closed(), if !engine.in_flight() => {
                    tracing::warn!("flow ksync closed: reconnecting");
                    batch = Batch::default();
                    continue 'connection;
                }
                // pkt0 is drained: take the outstanding answers.
                _ = std::future::ready(()), if engine.in_flight() => {
                    if let Err(e) = engine.settle(&mut k).await {
                        tracing::warn!(error = %e, "flow ksync");
                        batch = Batch::default();
                        continue 'connection;
                    }
                    lock(&shared).flow_stats = engine.stats;
                }
            }
            if let Some(mut n) = first {
                let model = Arc::clone(&model_rx.borrow());
                let mut rx = 0u64;
                loop {
                    rx += 1;
                    handle_frame(
                        &buf[..n],
                        &model,
                        &mut engine,
                        &mut batch,
                        &mut out,
                        &pkt0,
                        &shared,
                        &mut k,
                        &mut mtus,
                    )
                    .await;
                    if batch.len() >= fcfg.max_batch.max(1) {
                        break;
                    }
                    match try_recv(&mut pkt0, &mut buf).await {
                        Some(Ok(m)) => n = m,
                        _ => break,
                    }
                }
                lock(&shared).pkt0_rx += rx;
            }
            if !batch.is_empty() {
                if let Err(e) = engine.flush(&mut k, &mut batch).await {
                    tracing::warn!(error = %e, "flow ksync");
                    batch = Batch::default();
                    if e.is_fatal() {
                        continue 'connection;
                    }
                }
                lock(&shared).flow_stats = engine.stats;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle_frame(
    frame: &[u8],
    model: &Model,
    engine: &mut FlowEngine,
    batch: &mut Batch,
    out: &mut Vec<u8>,
    pkt0: &Pkt0Agent,
    shared: &SharedRef,
    k: &mut KsyncClient,
    mtus: &mut std::collections::HashMap<u16, u16>,
) {
    let Some(hdr) = frame.get(14..).and_then(AgentHdr::parse) else {
        return;
    };
    match hdr.cmd {
        cmd::FLOW_MISS => engine.miss(model, &hdr, batch),
        // A flow set back to hold (by another ksync client, or a flow the
        // datapath reuses) that a packet hit: decide it again, as for a miss.
        cmd::FLOW_ACTION_HOLD => engine.action_hold(model, &hdr, batch),
        _ => {
            // DHCP answers announce the interface's MTU: ask the datapath
            // once per port (and again after the model changed).
            let dhcp4 = matches!(hdr.cmd, cmd::L2_PROTOCOLS | cmd::L3_PROTOCOLS)
                && frame.get(14 + 30 + 12..14 + 30 + 14) == Some(&[0x08, 0x00]);
            if dhcp4 && !mtus.contains_key(&hdr.ifindex) {
                if let Some(m) = vif_mtu(k, hdr.ifindex).await {
                    mtus.insert(hdr.ifindex, m);
                }
            }
            let ctx = Ctx {
                model,
                lease_secs: 86400,
                iface_mtu: mtus.get(&hdr.ifindex).copied(),
            };
            out.clear();
            let outcome = crate::services::handle(frame, &ctx, out);
            let name = match (&outcome, hdr.cmd) {
                (crate::services::Outcome::Reply, cmd::HANDLE_DF) => "icmp_too_big_sent",
                (crate::services::Outcome::Reply, cmd::ZERO_TTL) => "icmp_time_exceeded_sent",
                (o, _) => outcome_name(o),
            };
            if matches!(outcome, crate::services::Outcome::Reply) {
                match pkt0.send(out).await {
                    Ok(()) => lock(shared).pkt0_tx += 1,
                    Err(e) => tracing::warn!(error = %e, "pkt0 send"),
                }
            }
            *lock(shared).services.entry(name).or_default() += 1;
        }
    }
}

/// The MTU the datapath has for vif `idx` (the interface's).
async fn vif_mtu(k: &mut KsyncClient, idx: u16) -> Option<u16> {
    let req = sandesh::VrInterfaceReq {
        h_op: sandesh::SandeshOp::Get,
        vifr_idx: i32::from(idx),
        vifr_os_idx: -1,
        ..Default::default()
    };
    let replies = k.call(&[req.into()]).await.ok()?;
    match replies.first()?.objects.first()? {
        sandesh::Message::Interface(v) => u16::try_from(v.vifr_mtu).ok().filter(|m| *m >= 68),
        _ => None,
    }
}

fn outcome_name(o: &crate::services::Outcome) -> &'static str {
    match o {
        crate::services::Outcome::Reply => "replied",
        crate::services::Outcome::Released { .. } => "dhcp_released",
        crate::services::Outcome::Ignored(why) => why,
    }
}
