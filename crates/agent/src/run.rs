//! The running agent: servers, the programming task and the pkt0/flow
//! task, and how they share the model.
//!
//! * **programming** owns one ksync connection. On every (re)connection it
//!   dumps the datapath, keeps the vif index of every port whose interface
//!   it finds there, builds the model and converges the datapath to it.
//!   Then it waits for a config or port change (and rebuilds, converging
//!   from what it last applied) or for the connection to close (the
//!   datapath restarted: connect again and converge from a fresh dump).
//! * **pkt0** owns the pkt0 endpoint and a second ksync connection for
//!   flows: traps are answered (ARP, DHCP) or decided (flow misses, in
//!   batches), flows are aged every second and decided again when the
//!   model changes.

use crate::flows::{Batch, FlowConfig, FlowEngine, FlowStats};
use crate::ksync::{KsyncClient, KsyncError};
use crate::model::{self, Model};
use crate::port_config::ConfigPorts;
use crate::ports::PortStore;
use crate::program::{self, Ids, State};
use channels::{ChannelPaths, Pkt0Agent};
use dp_core::agent::{cmd, AgentHdr};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;
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
    /// Fault injection for tests of what supervises the agent
    /// (`VROUTER_AGENT_FAULT_INJECT=panic:FILE`): once FILE exists, a task
    /// of the agent's set panics, as any of its tasks might.
    pub fault: Option<PathBuf>,
}

/// What the tasks report, for introspect and metrics.
#[derive(Default)]
pub struct Shared {
    pub ksync_connected: bool,
    pub reconciles: u64,
    pub last_reconcile_changes: usize,
    pub last_reconcile_ms: u64,
    pub requests_applied: u64,
    pub program_errors: u64,
    pub last_error: Option<String>,
    pub applied: Arc<State>,
    pub flow_stats: FlowStats,
    pub flows: Vec<crate::introspect::FlowView>,
    pub pkt0_rx: u64,
    pub pkt0_tx: u64,
    pub services: BTreeMap<&'static str, u64>,
    /// Why the agent cannot run against this datapath (its tables are too
    /// small for the agent's limits): the agent stops and says so.
    pub fatal: Option<String>,
}

pub type SharedRef = Arc<Mutex<Shared>>;

pub fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn shared() -> SharedRef {
    Arc::new(Mutex::new(Shared::default()))
}

/// Run until `shutdown` resolves.
pub async fn run(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(&opts.state_dir)
        .with_context(|| format!("creating state dir {}", opts.state_dir.display()))?;
    let db = opts.state_dir.join("config.redb");
    let store = Store::open(&db).with_context(|| format!("config store {}", db.display()))?;
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
    let max_vrfs = opts.max_vrfs;

    let vnc = tokio::net::TcpListener::bind(opts.vnc_listen)
        .await
        .with_context(|| format!("VNC API listen {}", opts.vnc_listen))?;
    let port_api = tokio::net::TcpListener::bind(opts.port_listen)
        .await
        .with_context(|| format!("port API listen {}", opts.port_listen))?;
    let intro = tokio::net::TcpListener::bind(opts.introspect_listen)
        .await
        .with_context(|| format!("introspect listen {}", opts.introspect_listen))?;
    let pkt0 = Pkt0Agent::bind(&paths).context("pkt0")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    // Header/idle and body timeouts on every API (a stalled client must
    // not hold a connection for the life of the agent).
    let serve = |l: tokio::net::TcpListener, app: axum::Router, mut stop: watch::Receiver<bool>| async move {
        http_serve::serve_tcp(l, app, http_serve::Timeouts::DEFAULT, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    };
    tasks.spawn(serve(
        vnc,
        vnc_api::router(Arc::clone(&store)),
        stop_rx.clone(),
    ));
    tasks.spawn(serve(
        port_api,
        crate::ports::router_with(
            Arc::clone(&ports),
            Arc::new(ConfigPorts::with_model(
                Arc::clone(&store),
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
        }),
        stop_rx.clone(),
    ));
    tasks.spawn(programming(
        Arc::clone(&store),
        Arc::clone(&ports),
        paths.ksync.clone(),
        ids,
        max_vrfs,
        model_tx,
        Arc::clone(&shared),
        stop_rx.clone(),
    ));
    tasks.spawn(pkt0_task(
        pkt0,
        paths.clone(),
        ids,
        opts.flows,
        model_rx,
        Arc::clone(&shared),
        stop_rx.clone(),
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
    tracing::info!(
        vnc = %opts.vnc_listen,
        port_api = %opts.port_listen,
        introspect = %opts.introspect_listen,
        ksync = %paths.ksync.display(),
        state_dir = %opts.state_dir.display(),
        "agent running (standalone)"
    );
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

/// Resolves once the stop flag is set (the guard is dropped inside, so
/// the caller's future stays `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn connect(path: &std::path::Path, stop: &mut watch::Receiver<bool>) -> Option<KsyncClient> {
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

fn rebuild(
    store: &Store,
    ports: &PortStore,
    vifs: &mut BTreeMap<Uuid, u16>,
    ids: &Ids,
    max_vrfs: u16,
) -> anyhow::Result<Model> {
    let snap = store.snapshot()?;
    let m = model::build(
        &snap,
        &ports.effective(&snap),
        vifs,
        model::Limits {
            max_vifs: ids.max_vifs,
            max_vrfs,
        },
    );
    for p in &m.vn_problems {
        tracing::warn!(vn = %p.uuid, name = %p.fq_name, reason = %p.reason, "virtual network not programmed");
    }
    Ok(m)
}

/// The datapath's table sizes (`vrouter_ops`) against what the agent's id
/// layout needs for its limits: `Err` names every table that is too small
/// and how to fix it.
pub fn check_limits(ops: &sandesh::VrouterOps, ids: &Ids, max_vrfs: u16) -> Result<(), String> {
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
    need(
        "next hops",
        ops.vo_nexthops,
        sizing::nexthops(ids.max_vifs, max_vrfs),
        format!(
            "16 + 2 x --max-vifs {} + --max-vrfs {max_vrfs}",
            ids.max_vifs
        ),
    );
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
async fn datapath_limits(
    k: &mut KsyncClient,
    ids: &Ids,
    max_vrfs: u16,
) -> Result<Result<(), String>, KsyncError> {
    let mut r = k
        .call(&[sandesh::VrouterOps {
            h_op: sandesh::SandeshOp::Get,
            ..Default::default()
        }
        .into()])
        .await?;
    match r.pop().and_then(|r| r.objects.into_iter().next()) {
        Some(sandesh::Message::VrouterOps(ops)) => Ok(check_limits(&ops, ids, max_vrfs)),
        _ => Err(KsyncError::Protocol(
            "vrouter_ops: the datapath answered without its table sizes".into(),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn programming(
    store: Arc<Store>,
    ports: Arc<PortStore>,
    ksync_path: PathBuf,
    ids: Ids,
    max_vrfs: u16,
    model_tx: watch::Sender<Arc<Model>>,
    shared: SharedRef,
    mut stop: watch::Receiver<bool>,
) {
    let mut cfg_rx = store.subscribe();
    let mut ports_rx = ports.subscribe();
    let mut vifs: BTreeMap<Uuid, u16> = BTreeMap::new();
    let mut known_vrfs: BTreeSet<u16> = BTreeSet::new();
    'connection: loop {
        let Some(mut k) = connect(&ksync_path, &mut stop).await else {
            return;
        };
        match datapath_limits(&mut k, &ids, max_vrfs).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                // Programming it would fail port by port (each refusal a
                // re-dump): refuse once, clearly, and stop the agent.
                tracing::error!(reason = %why, "datapath refused");
                let mut s = lock(&shared);
                s.last_error = Some(why.clone());
                s.fatal = Some(why);
                return;
            }
            Err(e) => {
                note_error(&shared, &e.into());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue 'connection;
            }
        }
        lock(&shared).ksync_connected = true;
        tracing::info!(path = %ksync_path.display(), "ksync connected: reconciling");
        // Full reconcile from a dump.
        let mut applied = match reconcile(
            &mut k,
            &store,
            &ports,
            &mut vifs,
            &ids,
            max_vrfs,
            &known_vrfs,
            &model_tx,
            &shared,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                note_error(&shared, &e);
                lock(&shared).ksync_connected = false;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue 'connection;
            }
        };
        known_vrfs.extend(applied.vrfs());
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => return,
                r = cfg_rx.changed() => if r.is_err() { return },
                r = ports_rx.changed() => if r.is_err() { return },
                _ = k.closed() => {
                    tracing::warn!("ksync closed by the datapath (restart?): reconnecting");
                    lock(&shared).ksync_connected = false;
                    continue 'connection;
                }
            }
            // Coalesce bursts (a driver creating an endpoint writes
            // several objects in a row).
            tokio::time::sleep(Duration::from_millis(5)).await;
            cfg_rx.borrow_and_update();
            ports_rx.borrow_and_update();
            let t0 = Instant::now();
            let m = match rebuild(&store, &ports, &mut vifs, &ids, max_vrfs) {
                Ok(m) => m,
                Err(e) => {
                    note_error(&shared, &e);
                    continue;
                }
            };
            let want = Arc::new(program::desired(&m, &ids));
            model_tx.send_replace(Arc::new(m));
            let res = apply(&mut k, program::plan(&applied, &want)).await;
            match res {
                Ok(n) => {
                    known_vrfs.extend(want.vrfs());
                    applied = want;
                    let mut s = lock(&shared);
                    s.requests_applied += n as u64;
                    s.applied = Arc::clone(&applied);
                    tracing::debug!(
                        changes = n,
                        ms = t0.elapsed().as_millis() as u64,
                        "converged"
                    );
                }
                Err(e) => {
                    note_error(&shared, &e);
                    if e.downcast_ref::<KsyncError>()
                        .is_some_and(KsyncError::is_fatal)
                    {
                        lock(&shared).ksync_connected = false;
                        continue 'connection;
                    }
                    // A refused request (an interface that is not there
                    // yet): converge from a fresh dump next time.
                    match program::dump(&mut k, &known_vrfs).await {
                        Ok(cur) => applied = Arc::new(cur),
                        Err(_) => continue 'connection,
                    }
                }
            }
        }
    }
}

fn note_error(shared: &SharedRef, e: &anyhow::Error) {
    tracing::warn!(error = %format!("{e:#}"), "programming the datapath");
    let mut s = lock(shared);
    s.program_errors += 1;
    s.last_error = Some(format!("{e:#}"));
}

/// Apply in chunks (one write each), continuing past refused requests so
/// one bad port does not block the others; the number of requests sent, or
/// the first refusal.
async fn apply(
    k: &mut KsyncClient,
    msgs: impl Iterator<Item = sandesh::Message>,
) -> anyhow::Result<usize> {
    let mut first: Option<anyhow::Error> = None;
    let mut n = 0;
    let mut msgs = msgs.peekable();
    let mut chunk = Vec::with_capacity(256);
    while msgs.peek().is_some() {
        chunk.clear();
        chunk.extend(msgs.by_ref().take(256));
        n += chunk.len();
        let replies = k.call(&chunk).await?;
        for (m, r) in chunk.iter().zip(replies) {
            if r.code < 0 && first.is_none() {
                first = Some(
                    KsyncError::Refused {
                        what: crate::ksync::describe(m),
                        code: r.code,
                    }
                    .into(),
                );
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

#[allow(clippy::too_many_arguments)]
async fn reconcile(
    k: &mut KsyncClient,
    store: &Store,
    ports: &PortStore,
    vifs: &mut BTreeMap<Uuid, u16>,
    ids: &Ids,
    max_vrfs: u16,
    known_vrfs: &BTreeSet<u16>,
    model_tx: &watch::Sender<Arc<Model>>,
    shared: &SharedRef,
) -> anyhow::Result<Arc<State>> {
    let t0 = Instant::now();
    let cur = program::dump(k, known_vrfs).await?;
    // Keep the vif index of every port whose interface the datapath has.
    for (u, name) in &ports.names() {
        if vifs.contains_key(u) {
            continue;
        }
        if let Some((i, _)) = cur.vifs.iter().find(|(_, c)| c.name.as_str() == name) {
            if !vifs.values().any(|v| v == i) {
                vifs.insert(*u, *i);
            }
        }
    }
    let m = rebuild(store, ports, vifs, ids, max_vrfs)?;
    let want = program::desired(&m, ids);
    model_tx.send_replace(Arc::new(m));
    let res = apply(k, program::plan(&cur, &want)).await;
    drop(cur);
    let (n, after) = match res {
        Ok(n) => (n, Arc::new(want)),
        Err(_) => (0, Arc::new(program::dump(k, known_vrfs).await?)),
    };
    let ms = t0.elapsed().as_millis() as u64;
    {
        let mut s = lock(shared);
        s.reconciles += 1;
        s.last_reconcile_changes = n;
        s.last_reconcile_ms = ms;
        s.requests_applied += n as u64;
        s.applied = Arc::clone(&after);
    }
    tracing::info!(
        changes = n,
        objects = after.object_count(),
        ms,
        "reconciled with the datapath"
    );
    if let Err(e) = res {
        note_error(shared, &e);
    }
    Ok(after)
}

// ---- pkt0 -------------------------------------------------------------------

struct Ctx<'a> {
    model: &'a Model,
    lease_secs: u32,
}

impl crate::services::ServiceContext for Ctx<'_> {
    fn port(&self, vif: u16) -> Option<crate::services::PortInfo> {
        let p = self.model.ports.get(&vif)?;
        let sn = self.model.subnet_of(p);
        let v4 = |a: Option<std::net::IpAddr>| match a {
            Some(std::net::IpAddr::V4(v)) => Some(v),
            _ => None,
        };
        Some(crate::services::PortInfo {
            vif,
            vrf: p.vrf,
            mac: p.mac,
            ip: p.ip4,
            plen: sn.map_or(32, |s| s.plen),
            gateway: sn.and_then(|s| v4(s.gateway)),
            dns: sn.and_then(|s| v4(s.dns)),
            mtu: p.mtu,
            dhcp_enabled: p.dhcp,
            hostname: (!p.display_name.is_empty()).then(|| p.display_name.clone()),
        })
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
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(2048);
    let mut batch = Batch::default();
    'connection: loop {
        let Some(mut k) = connect(&paths.ksync, &mut stop).await else {
            return;
        };
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
        if engine.flush(&mut k, &mut batch).await.is_err() {
            continue 'connection;
        }
        tracing::info!(adopted = engine.stats.adopted, "flow engine ready");
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let mut first: Option<usize> = None;
            tokio::select! {
                _ = stopped(&mut stop) => return,
                r = pkt0.recv(&mut buf) => match r {
                    Ok(n) => first = Some(n),
                    Err(e) => {
                        tracing::warn!(error = %e, "pkt0 receive");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = tick.tick() => {
                    engine.check_table();
                    engine.age(Instant::now(), &mut batch);
                    engine.audit(&model_rx.borrow(), &mut batch);
                    // The introspect copy, once a second (it sorts every
                    // tracked flow: not for every batch).
                    let views = crate::introspect::flow_views(&engine);
                    let mut s = lock(&shared);
                    s.flow_stats = engine.stats;
                    s.flows = views;
                }
                r = model_rx.changed() => {
                    if r.is_err() { return }
                    let m = Arc::clone(&model_rx.borrow_and_update());
                    engine.reevaluate(&m, &mut batch);
                }
                _ = k.closed() => {
                    tracing::warn!("flow ksync closed: reconnecting");
                    batch = Batch::default();
                    continue 'connection;
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

async fn handle_frame(
    frame: &[u8],
    model: &Model,
    engine: &mut FlowEngine,
    batch: &mut Batch,
    out: &mut Vec<u8>,
    pkt0: &Pkt0Agent,
    shared: &SharedRef,
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
            let ctx = Ctx {
                model,
                lease_secs: 86400,
            };
            out.clear();
            let outcome = crate::services::handle(frame, &ctx, out);
            let name = outcome_name(&outcome);
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

fn outcome_name(o: &crate::services::Outcome) -> &'static str {
    match o {
        crate::services::Outcome::Reply => "replied",
        crate::services::Outcome::Released { .. } => "dhcp_released",
        crate::services::Outcome::Ignored(why) => why,
    }
}
