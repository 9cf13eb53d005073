//! The programming task: owns one ksync connection; on every
//! (re)connection it dumps the datapath, keeps the vif index of every port
//! whose interface it finds there, builds the model and converges the
//! datapath to it; then it waits for a config or port change (and
//! rebuilds, converging from what it last applied) or for the connection to
//! close (the datapath restarted: connect again and converge from a fresh
//! dump).

use crate::ksync::{KsyncClient, KsyncError};
use crate::model::{self, Model};
use crate::ports::PortStore;
use crate::program::{self, Ids, State};
use crate::run::{connect, stopped};
use crate::status::{lock, SharedRef};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;
use vnc_api::Store;

fn rebuild(
    store: &Store,
    ports: &PortStore,
    vifs: &mut BTreeMap<Uuid, u16>,
    ids: &Ids,
) -> anyhow::Result<Model> {
    let snap = store.snapshot()?;
    Ok(model::build(&snap, &ports.all(), vifs, ids.max_vifs))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn programming(
    store: Arc<Store>,
    ports: Arc<PortStore>,
    ksync_path: PathBuf,
    ids: Ids,
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
        lock(&shared).ksync_connected = true;
        tracing::info!(path = %ksync_path.display(), "ksync connected: reconciling");
        // Full reconcile from a dump.
        let mut applied = match reconcile(
            &mut k,
            &store,
            &ports,
            &mut vifs,
            &ids,
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
            let m = match rebuild(&store, &ports, &mut vifs, &ids) {
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
    known_vrfs: &BTreeSet<u16>,
    model_tx: &watch::Sender<Arc<Model>>,
    shared: &SharedRef,
) -> anyhow::Result<Arc<State>> {
    let t0 = Instant::now();
    let cur = program::dump(k, known_vrfs).await?;
    // Keep the vif index of every port whose interface the datapath has.
    let recs = ports.all();
    for (u, r) in &recs {
        if vifs.contains_key(u) {
            continue;
        }
        if let Some((i, _)) = cur
            .vifs
            .iter()
            .find(|(_, c)| c.name.as_str() == r.system_name)
        {
            if !vifs.values().any(|v| v == i) {
                vifs.insert(*u, *i);
            }
        }
    }
    let m = rebuild(store, ports, vifs, ids)?;
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
