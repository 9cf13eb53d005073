//! The programming task: owns one ksync connection; on every
//! (re)connection it dumps the datapath, keeps the vif index of every port
//! whose interface it finds there (and, with a controller, the tunnel and
//! ECMP next hops it finds), builds the model and converges the datapath
//! to it; then it waits for a config, port or route change (and rebuilds,
//! converging from what it last applied) or for the connection to close
//! (the datapath restarted: connect again and converge from a fresh dump).
//!
//! With a controller, remote routes need the fabric MAC of each tunnel
//! destination: the host resolves it ([`crate::fabric`]); until it has,
//! that destination's routes wait and the task looks again every
//! 200 ms.

use crate::fabric::FabricOs;
use crate::ksync::{KsyncClient, KsyncError};
use crate::model::{self, Model};
use crate::ports::PortStore;
use crate::program::remote::{Fabric, TunnelIds};
use crate::program::{self, Ids, State};
use crate::rib::Rib;
use crate::run::{connect, datapath_limits, stopped};
use crate::source::ConfigView;
use crate::status::{lock, SharedRef};
use dp_core::vif::VifType;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// What the controller gives the programming task.
pub struct Remote {
    pub rib: watch::Receiver<Arc<Rib>>,
    pub sip: watch::Receiver<Option<Ipv4Addr>>,
    pub os: Box<dyn FabricOs>,
}

/// The programming task's memory across rebuilds.
struct Ctx {
    config: Arc<dyn ConfigView>,
    ports: Arc<PortStore>,
    ids: Ids,
    max_vrfs: u16,
    vifs: BTreeMap<Uuid, u16>,
    /// Where the vif indices are kept across restarts, and what it holds.
    vif_file: PathBuf,
    saved_vifs: BTreeMap<Uuid, u16>,
    /// The VRF of every network, kept the same way (`vrfs.json` beside).
    vrfs: BTreeMap<Uuid, u16>,
    vrf_file: PathBuf,
    saved_vrfs: BTreeMap<Uuid, u16>,
    known_vrfs: BTreeSet<u16>,
    remote: Option<Remote>,
    fabric: Fabric,
    tids: TunnelIds,
    /// Tunnel destinations whose fabric MAC is not known yet.
    unresolved: BTreeSet<Ipv4Addr>,
}

impl Ctx {
    fn save_vifs(&mut self) {
        use crate::vif_map::save_if_changed;
        save_if_changed(
            &self.vif_file,
            "vif index",
            &self.vifs,
            &mut self.saved_vifs,
        );
        save_if_changed(&self.vrf_file, "VRF", &self.vrfs, &mut self.saved_vrfs);
    }

    fn rebuild(&mut self) -> anyhow::Result<Model> {
        let snap = self.config.snapshot()?;
        let rib = self
            .remote
            .as_ref()
            .map(|r| Arc::clone(&r.rib.borrow()))
            .unwrap_or_default();
        let m = model::build_with_rib(
            &snap,
            &self.ports.effective(&snap),
            &mut self.vifs,
            &mut self.vrfs,
            model::Limits {
                max_vifs: self.ids.max_vifs,
                max_vrfs: self.max_vrfs,
            },
            rib,
        );
        for p in &m.vn_problems {
            tracing::warn!(vn = %p.uuid, name = %p.fq_name, reason = %p.reason, "virtual network not programmed");
        }
        Ok(m)
    }

    /// What the datapath should hold; with a controller, first asks the
    /// host for the fabric MACs it is missing.
    fn desired(&mut self, m: &Model) -> State {
        let Some(r) = &self.remote else {
            return program::desired(m, &self.ids);
        };
        self.fabric.sip = r.sip.borrow().unwrap_or(Ipv4Addr::UNSPECIFIED);
        loop {
            let (want, unresolved) =
                program::desired_with_remote(m, &self.ids, &self.fabric, &mut self.tids);
            let mut learned = false;
            for ip in &unresolved {
                if let Some(mac) = r.os.lookup(*ip) {
                    self.fabric.neighbors.insert(*ip, mac);
                    learned = true;
                } else if !self.unresolved.contains(ip) {
                    tracing::info!(address = %ip, "resolving the fabric MAC of a compute node");
                    r.os.probe(*ip);
                }
            }
            if !learned {
                self.unresolved = unresolved;
                return want;
            }
        }
    }

    /// Look again for the missing MACs (and ask the host once more);
    /// whether any arrived.
    fn retry_unresolved(&mut self) -> bool {
        let Some(r) = &self.remote else {
            return false;
        };
        let mut any = false;
        for ip in &self.unresolved {
            match r.os.lookup(*ip) {
                Some(mac) => {
                    self.fabric.neighbors.insert(*ip, mac);
                    any = true;
                }
                None => r.os.probe(*ip),
            }
        }
        any
    }

    /// Whether a cached MAC changed (a compute node replaced its NIC, a
    /// gateway moved).
    fn refresh_neighbors(&mut self) -> bool {
        let Some(r) = &self.remote else {
            return false;
        };
        let mut changed = false;
        for (ip, mac) in self.fabric.neighbors.iter_mut() {
            if let Some(now) = r.os.lookup(*ip) {
                if now != *mac {
                    *mac = now;
                    changed = true;
                }
            }
        }
        changed
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn programming(
    config: Arc<dyn ConfigView>,
    ports: Arc<PortStore>,
    ksync_path: PathBuf,
    vif_file: PathBuf,
    ids: Ids,
    max_vrfs: u16,
    model_tx: watch::Sender<Arc<Model>>,
    shared: SharedRef,
    mut stop: watch::Receiver<bool>,
    remote: Option<Remote>,
) {
    let mut cfg_rx = config.subscribe();
    let mut ports_rx = ports.subscribe();
    let (mut rib_rx, mut sip_rx) = match &remote {
        Some(r) => (Some(r.rib.clone()), Some(r.sip.clone())),
        None => (None, None),
    };
    let mut known_vrfs = BTreeSet::new();
    if remote.is_some() {
        // The fabric VRF holds the receive route for our tunnel address.
        known_vrfs.insert(0);
    }
    let saved_vifs = crate::vif_map::load(&vif_file, "vif index");
    let vrf_file = vif_file.with_file_name("vrfs.json");
    let saved_vrfs = crate::vif_map::load(&vrf_file, "VRF");
    let mut cx = Ctx {
        config,
        ports,
        ids,
        max_vrfs,
        // Indices as the last run left them (crate::vif_map).
        vifs: saved_vifs.clone(),
        vif_file,
        saved_vifs,
        vrfs: saved_vrfs.clone(),
        vrf_file,
        saved_vrfs,
        known_vrfs,
        remote,
        fabric: Fabric::default(),
        tids: TunnelIds::default(),
        unresolved: BTreeSet::new(),
    };
    let mut refresh = tokio::time::interval(Duration::from_secs(10));
    'connection: loop {
        let Some(mut k) = connect(&ksync_path, &mut stop).await else {
            return;
        };
        match datapath_limits(&mut k, &cx.ids, cx.max_vrfs, cx.remote.is_some()).await {
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
        let mut applied = match reconcile(&mut k, &mut cx, &model_tx, &shared).await {
            Ok(s) => {
                cx.save_vifs();
                s
            }
            Err(e) => {
                note_error(&shared, &e);
                lock(&shared).ksync_connected = false;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue 'connection;
            }
        };
        cx.known_vrfs.extend(applied.vrfs());
        loop {
            let retry = !cx.unresolved.is_empty();
            tokio::select! {
                _ = stopped(&mut stop) => return,
                r = cfg_rx.changed() => if r.is_err() { return },
                r = ports_rx.changed() => if r.is_err() { return },
                r = changed(&mut rib_rx) => if r.is_err() { return },
                r = changed(&mut sip_rx) => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_millis(200)), if retry => {
                    if !cx.retry_unresolved() {
                        continue;
                    }
                }
                _ = refresh.tick() => {
                    if !cx.refresh_neighbors() {
                        continue;
                    }
                }
                _ = k.closed() => {
                    tracing::warn!("ksync closed by the datapath (restart?): reconnecting");
                    lock(&shared).ksync_connected = false;
                    continue 'connection;
                }
            }
            // Coalesce bursts (a driver creating an endpoint writes
            // several objects in a row; a control node sends many routes).
            tokio::time::sleep(Duration::from_millis(5)).await;
            cfg_rx.borrow_and_update();
            ports_rx.borrow_and_update();
            if let Some(r) = rib_rx.as_mut() {
                r.borrow_and_update();
            }
            if let Some(r) = sip_rx.as_mut() {
                r.borrow_and_update();
            }
            let t0 = Instant::now();
            let m = match cx.rebuild() {
                Ok(m) => m,
                Err(e) => {
                    note_error(&shared, &e);
                    continue;
                }
            };
            cx.save_vifs();
            let want = Arc::new(cx.desired(&m));
            model_tx.send_replace(Arc::new(m));
            let res = apply(&mut k, program::plan(&applied, &want)).await;
            match res {
                Ok(n) => {
                    cx.known_vrfs.extend(want.vrfs());
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
                    match program::dump(&mut k, &cx.known_vrfs).await {
                        Ok(cur) => applied = Arc::new(cur),
                        Err(_) => continue 'connection,
                    }
                }
            }
        }
    }
}

/// `changed()` of an optional watch (never resolves without one).
async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(r) => r.changed().await,
        None => std::future::pending().await,
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

async fn reconcile(
    k: &mut KsyncClient,
    cx: &mut Ctx,
    model_tx: &watch::Sender<Arc<Model>>,
    shared: &SharedRef,
) -> anyhow::Result<Arc<State>> {
    let t0 = Instant::now();
    let cur = program::dump(k, &cx.known_vrfs).await?;
    // Keep the vif index of every port whose interface the datapath has:
    // it wins over a saved one (another port holding that index in the
    // saved map gets a new one).
    for (u, name) in &cx.ports.names() {
        if let Some((i, _)) = cur.vifs.iter().find(|(_, c)| c.name.as_str() == name) {
            if cx.vifs.get(u) != Some(i) {
                cx.vifs.retain(|other, v| other == u || v != i);
                cx.vifs.insert(*u, *i);
            }
        }
    }
    if cx.remote.is_some() {
        // Keep the tunnel next hops' ids, and learn the fabric MAC.
        cx.tids.adopt(&cx.ids, &cur);
        for r in k.dump_vifs().await? {
            if let Ok((cfg, _)) = ksync::convert::vif_from_req(&r) {
                if cfg.vif_type == VifType::Physical && cfg.idx == 0 {
                    cx.fabric.smac = cfg.mac;
                }
            }
        }
    }
    let m = cx.rebuild()?;
    let want = cx.desired(&m);
    model_tx.send_replace(Arc::new(m));
    let res = apply(k, program::plan(&cur, &want)).await;
    drop(cur);
    let (n, after) = match res {
        Ok(n) => (n, Arc::new(want)),
        Err(_) => (0, Arc::new(program::dump(k, &cx.known_vrfs).await?)),
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
