//! The ksync server: the agent's (and `vrctl`'s) configuration channel
//! into a running [`Datapath`].
//!
//! [`KsyncServer::serve`] accepts connections on a
//! [`channels::KsyncListener`] (`<sock-dir>/dpdk_netlink`, or the named pipe
//! on Windows), any number at once. Every whole netlink message a
//! connection receives is queued for the loop thread ([`Datapath::post`]),
//! where one [`ksync::Handler`], shared by all connections, applies it to
//! the [`Router`](dp_core::Router) between two packet batches; the answers
//! go back on that connection. Requests are therefore serialised with each
//! other and with forwarding, without a lock on the forwarding path.
//!
//! A connection does not wait for the loop to answer one batch before it
//! queues the next (up to [`MAX_PENDING_BYTES`] of requests and answers):
//! the loop thread hands its answers straight to the connection's writer. That saves the agent's
//! flow setup two thread wake-ups per batch (a blocking-pool thread and
//! the connection's task), and the loop's command queue keeps each
//! connection's requests in order. A batch with a malformed message marks
//! its connection broken on the loop thread, so batches queued after it
//! are not applied, as if the connection had closed right after it.
//!
//! # The host side of ksync ([`ksync::HostOps`])
//!
//! The handler changes the router itself and tells the host what to do.
//! The router is borrowed from the [`Core`] while it runs, so the host
//! records the work as events and the server applies them, in order, right
//! after the handler returns (same closure, same loop turn):
//!
//! * `vif_add` opens the port by interface name through the
//!   [`PortOpener`] *before* the router learns the vif, so a missing
//!   interface fails the request (`-ENODEV`, or the OS errno) and nothing
//!   changes. A vif re-added with the same name and type keeps its port
//!   (the agent re-sends its vifs after a restart). The opened port is
//!   attached once the router has the vif.
//! * `vif_del` closes the port (unless the same request buffer re-added
//!   the vif). A vif deleted and added again with the same interface in
//!   one buffer keeps (or, under another index, takes over) the open port
//!   instead of opening the interface a second time while the first is
//!   still open (which a TAP device refuses with `EBUSY`).
//! * After an add, an MTU or OS index of 0 is filled from the opened
//!   interface ([`Core::settle_vif`]).
//! * `flow_released` / `flow_deleted` run [`Core::release_held`] /
//!   [`Core::drop_held`]: the same code the datapath's own
//!   [`Core::flow_set`]/[`Core::flow_del`] use.
//! * `host_info` reports [`ServerConfig::info`]: the flow table's
//!   shared-memory path, which `vrctl flow -l` maps.
//!
//! # Agent presence and new flows
//!
//! A connection counts as the agent once it adds the agent vif or changes a
//! flow (FLOW_SET, delete), i.e. once it acts as upstream's agent does. While
//! at least one such connection is open, new flows are held and trapped
//! (`NewFlowPolicy::Hold`); while none is (at start, and after the last one
//! closed), [`ServerConfig::idle_policy`] applies (`vrouter --new-flows
//! hold|drop`). Nothing else changes when the agent goes away: installed
//! vifs, routes and flows keep forwarding, as upstream's datapath does, so
//! a restarted agent finds its state and reconciles it.
//!
//! # Bad input
//!
//! A request the handler refuses is answered with a negative errno, and
//! the connection goes on. A stream whose framing is lost (a netlink length
//! out of range, a message cut by a close) closes *that* connection only.

use crate::datapath::{Core, Datapath, DpError};
use crate::port::{Port, PortOpener};
use bytes::Bytes;
use channels::{KsyncConn, KsyncListener, KsyncWriter};
use dp_core::vif::heapless_name::Name;
use dp_core::{NewFlowPolicy, VifConfig, VifType};
use ksync::errno::{EBUSY, EEXIST, EINVAL, ENODEV, EPERM};
use ksync::{ConfigChange, Handled, Handler, HostInfo, HostOps};
use sandesh::VrInterfaceReq;
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

/// Most request bytes handed to the loop thread at once.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Bytes of one connection's requests queued for the loop and of its
/// answers not yet written, at most; past it the session stops reading
/// requests until the client catches up, as a socket buffer would, so a
/// client that never reads costs bounded memory (this plus one batch's
/// answers).
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// `EIO`, for open failures without a better code.
const EIO: i32 = 5;
/// Scoped changes (routes, vifs, labels) one ksync buffer may make before
/// the fast path is emptied instead of searched for the flows each one may
/// redirect (the agent sends a port's few objects together; a resync
/// sends thousands).
const SCOPED_CHANGES_MAX: usize = 64;

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// What happens to new flows while no agent is connected.
    pub idle_policy: NewFlowPolicy,
    /// Reported in `vr_flow_table_data` and `vrouter_ops`.
    pub info: HostInfo,
    /// Bytes of objects per dump page ([`ksync::VR_MESSAGE_PAGE_SIZE`]
    /// unless a test wants small pages).
    pub page_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            idle_policy: NewFlowPolicy::Hold,
            info: HostInfo::default(),
            page_size: ksync::VR_MESSAGE_PAGE_SIZE,
        }
    }
}

/// What lives on the loop thread between requests.
struct State {
    handler: Handler,
    opener: Arc<dyn PortOpener>,
    info: HostInfo,
    idle_policy: NewFlowPolicy,
    /// Open connections that act as the agent.
    agents: usize,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    // Only the loop thread locks it; a panic there stopped the datapath
    // anyway, and the next call reports `Stopped`.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// One connection's standing with the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    /// The connection has acted as the agent (see the module docs).
    pub agent: bool,
}

/// One connection as the loop thread sees it; only the loop thread
/// changes it.
#[derive(Default)]
struct ConnState {
    /// The connection has acted as the agent.
    agent: AtomicBool,
    /// A malformed message arrived: later batches are not applied.
    broken: AtomicBool,
    /// Tells the session that `broken` was set (or the writer gave up).
    broke: Notify,
    /// Request bytes queued for the loop plus answer bytes not written.
    pending: AtomicUsize,
    /// Tells the session that `pending` fell.
    drained: Notify,
}

impl ConnState {
    /// `n` bytes fewer pending.
    fn drain(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::AcqRel);
        self.drained.notify_one();
    }

    /// Resolves once fewer than [`MAX_PENDING_BYTES`] are pending.
    async fn room(&self) {
        loop {
            let drained = self.drained.notified();
            if self.pending.load(Ordering::Acquire) < MAX_PENDING_BYTES {
                return;
            }
            drained.await;
        }
    }
}

/// Answers on their way to one connection's writer.
type Answers = mpsc::UnboundedSender<Vec<u8>>;

/// The answers to one received buffer.
#[derive(Debug, Default)]
pub struct Reply {
    /// Netlink messages to send back (may be empty).
    pub out: Vec<u8>,
    pub handled: Handled,
}

/// The ksync server of one datapath (see the module docs).
pub struct KsyncServer {
    dp: Arc<Datapath>,
    state: Arc<Mutex<State>>,
    /// Mirror of `State::agents` for [`KsyncServer::agents`].
    agents: Arc<AtomicUsize>,
    sessions: AtomicUsize,
}

impl KsyncServer {
    /// A server for `dp`, opening ports through `opener`; applies
    /// `cfg.idle_policy` (no agent is connected yet).
    pub fn new(
        dp: Arc<Datapath>,
        opener: Arc<dyn PortOpener>,
        cfg: ServerConfig,
    ) -> Result<Arc<KsyncServer>, DpError> {
        let policy = cfg.idle_policy;
        dp.call(move |c| c.router_mut().set_new_flow_policy(policy))?;
        Ok(Arc::new(KsyncServer {
            dp,
            state: Arc::new(Mutex::new(State {
                handler: Handler::with_page_size(cfg.page_size),
                opener,
                info: cfg.info,
                idle_policy: policy,
                agents: 0,
            })),
            agents: Arc::new(AtomicUsize::new(0)),
            sessions: AtomicUsize::new(0),
        }))
    }

    /// Connections acting as the agent now.
    pub fn agents(&self) -> usize {
        self.agents.load(Ordering::Relaxed)
    }

    /// Open connections now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Handle one received buffer (one or more whole netlink messages) of
    /// `session` on the loop thread; blocks until it is done.
    pub fn handle(&self, session: &mut Session, input: Bytes) -> Result<Reply, DpError> {
        let state = Arc::clone(&self.state);
        let agents = Arc::clone(&self.agents);
        let was_agent = session.agent;
        let (reply, agent) = self
            .dp
            .call(move |core| serve_on_loop(&state, &agents, core, was_agent, &input))?;
        session.agent = agent;
        Ok(reply)
    }

    /// Queue one received buffer of the connection `conn` for the loop
    /// thread and return at once; its answers go to `answers`. Skipped if
    /// an earlier buffer of `conn` was malformed.
    fn submit(
        &self,
        conn: &Arc<ConnState>,
        input: Bytes,
        answers: &Answers,
        id: u64,
    ) -> Result<(), DpError> {
        let state = Arc::clone(&self.state);
        let agents = Arc::clone(&self.agents);
        let conn = Arc::clone(conn);
        let answers = answers.clone();
        conn.pending.fetch_add(input.len(), Ordering::AcqRel);
        self.dp.post(move |core| {
            if conn.broken.load(Ordering::Relaxed) {
                conn.drain(input.len());
                return;
            }
            let was_agent = conn.agent.load(Ordering::Relaxed);
            let (reply, agent) = serve_on_loop(&state, &agents, core, was_agent, &input);
            conn.agent.store(agent, Ordering::Relaxed);
            if !reply.out.is_empty() {
                conn.pending.fetch_add(reply.out.len(), Ordering::AcqRel);
                let n = reply.out.len();
                if answers.send(reply.out).is_err() {
                    // The writer gave up: the client is gone.
                    conn.drain(n);
                }
            }
            conn.drain(input.len());
            if let Some(e) = reply.handled.malformed {
                tracing::warn!(conn = id, error = ?e, "malformed ksync message: closing this connection");
                conn.broken.store(true, Ordering::Relaxed);
                conn.broke.notify_one();
            }
        })
    }

    /// `session` closed: if it was the last agent, new flows follow the
    /// idle policy again. Blocks until applied.
    pub fn end(&self, session: Session) -> Result<(), DpError> {
        if !session.agent {
            return Ok(());
        }
        let state = Arc::clone(&self.state);
        let agents = Arc::clone(&self.agents);
        self.dp.call(move |core| agent_gone(&state, &agents, core))
    }

    /// A connection closed: once its queued batches have run (the loop
    /// runs commands in order), as [`KsyncServer::end`] if it had acted as
    /// the agent. Blocks until applied.
    fn closed(&self, conn: Arc<ConnState>) -> Result<(), DpError> {
        let state = Arc::clone(&self.state);
        let agents = Arc::clone(&self.agents);
        self.dp.call(move |core| {
            if conn.agent.load(Ordering::Relaxed) {
                agent_gone(&state, &agents, core);
            }
        })
    }

    /// Accept and serve connections on `listener` until `shutdown` turns
    /// true (or its sender goes away); then stop accepting, drop the
    /// listener (removing its socket file) and wait for every connection to
    /// close. Must run inside a tokio runtime with a blocking pool (loop
    /// calls block).
    pub async fn serve(
        self: Arc<Self>,
        listener: KsyncListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut listener = listener;
        let mut sessions = JoinSet::new();
        let mut next_id: u64 = 0;
        // Each connection watches its own copy.
        let for_sessions = shutdown.clone();
        tracing::info!(addr = %listener.local_addr().display(), "ksync server listening");
        loop {
            tokio::select! {
                () = stopped(&mut shutdown) => break,
                r = listener.accept() => match r {
                    Ok(conn) => {
                        next_id += 1;
                        let rx = for_sessions.clone();
                        sessions.spawn(Arc::clone(&self).session(conn, rx, next_id));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ksync accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "ksync connection task failed");
                    }
                }
            }
        }
        drop(listener);
        while sessions.join_next().await.is_some() {}
        tracing::info!("ksync server stopped");
    }

    /// Serve one connection until it closes, breaks its framing, or
    /// `shutdown`.
    async fn session(
        self: Arc<Self>,
        conn: KsyncConn,
        mut shutdown: watch::Receiver<bool>,
        id: u64,
    ) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(conn = id, "ksync connection opened");
        let state = Arc::new(ConnState::default());
        // Answers leave from their own task: a client may write many
        // requests before it reads an answer (the agent pipelines), and a
        // session blocked on its answer write while the client is blocked
        // on its request write would wait for ever.
        let (mut conn, writer) = conn.into_split();
        let (answers, queued) = mpsc::unbounded_channel();
        let mut writer = tokio::spawn(write_answers(writer, queued, Arc::clone(&state), id));
        loop {
            let msg = tokio::select! {
                () = stopped(&mut shutdown) => break,
                () = state.broke.notified() => break,
                m = conn.recv() => m,
            };
            let first = match msg {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(conn = id, error = %e, "ksync stream unusable: closing this connection");
                    break;
                }
            };
            // Every request already read goes to the loop thread in one
            // call (an agent converging sends hundreds per write): one
            // thread hop and one answer write per batch, not per request.
            let input = match conn.recv_buffered() {
                None => first,
                Some(second) => {
                    let mut all = bytes::BytesMut::with_capacity(first.len() * 64);
                    all.extend_from_slice(&first);
                    all.extend_from_slice(&second);
                    while all.len() < MAX_BATCH_BYTES {
                        match conn.recv_buffered() {
                            Some(m) => all.extend_from_slice(&m),
                            None => break,
                        }
                    }
                    all.freeze()
                }
            };
            // A client that does not read its answers stops being read.
            tokio::select! {
                () = state.room() => {}
                () = state.broke.notified() => break,
            }
            if state.broken.load(Ordering::Relaxed) {
                break;
            }
            if let Err(e) = self.submit(&state, input, &answers, id) {
                tracing::warn!(conn = id, error = %e, "ksync request not served");
                break;
            }
        }
        drop(conn);
        // Let queued answers (a malformed request's error among them)
        // reach a client that reads them; a shutdown does not wait for one
        // that does not.
        drop(answers);
        let drained = tokio::select! {
            d = &mut writer => d.unwrap_or(false),
            () = stopped(&mut shutdown) => {
                writer.abort();
                false
            }
        };
        // Drained: every batch of this connection has run (each held a
        // sender of its answers), so `agent` is final. Otherwise the close
        // is applied on the loop after the batches still queued.
        if !drained || state.agent.load(Ordering::Relaxed) {
            let server = Arc::clone(&self);
            let closed = Arc::clone(&state);
            match tokio::task::spawn_blocking(move || server.closed(closed)).await {
                Ok(Ok(())) | Ok(Err(DpError::Stopped)) => {}
                Ok(Err(e)) => tracing::warn!(conn = id, error = %e, "agent disconnect"),
                Err(e) => tracing::error!(conn = id, error = %e, "agent disconnect task failed"),
            }
        }
        let agent = state.agent.load(Ordering::Relaxed);
        self.sessions.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(conn = id, agent, "ksync connection closed");
    }
}

/// Write one connection's answers in order until every sender is gone
/// (the session's and its queued batches': true) or the client stops
/// taking them (false); then mark the connection broken, which ends the
/// session's reading too.
async fn write_answers(
    mut writer: KsyncWriter,
    mut queued: mpsc::UnboundedReceiver<Vec<u8>>,
    conn: Arc<ConnState>,
    id: u64,
) -> bool {
    let mut drained = true;
    while let Some(out) = queued.recv().await {
        if let Err(e) = writer.send(&out).await {
            tracing::debug!(conn = id, error = %e, "ksync answer not sent");
            drained = false;
            break;
        }
        conn.drain(out.len());
    }
    conn.broken.store(true, Ordering::Relaxed);
    conn.broke.notify_one();
    drained
}

/// Resolves once `rx` says stop (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    // Only the outcome matters; the value guard is not kept.
    let _ = rx.wait_for(|stop| *stop).await.map(|_| ());
}

/// Runs on the loop thread: an agent connection closed; if it was the
/// last, new flows follow the idle policy again.
fn agent_gone(state: &Mutex<State>, agents: &AtomicUsize, core: &mut Core) {
    let mut st = lock(state);
    st.agents = st.agents.saturating_sub(1);
    agents.store(st.agents, Ordering::Relaxed);
    if st.agents == 0 {
        let p = st.idle_policy;
        core.router_mut().set_new_flow_policy(p);
        tracing::info!(policy = ?p, "no agent connected: installed state keeps forwarding; new flows follow the idle policy");
    }
}

/// Runs on the loop thread: one buffer of a connection that has (or has
/// not yet) acted as the agent, and the agent count's change. Returns the
/// answers and whether the connection is the agent now.
fn serve_on_loop(
    state: &Mutex<State>,
    agents: &AtomicUsize,
    core: &mut Core,
    was_agent: bool,
    input: &[u8],
) -> (Reply, bool) {
    let mut st = lock(state);
    let (reply, acted) = handle_on_loop(&mut st, core, input);
    let agent = was_agent || acted;
    if agent && !was_agent {
        st.agents += 1;
        agents.store(st.agents, Ordering::Relaxed);
        if st.agents == 1 {
            core.router_mut().set_new_flow_policy(NewFlowPolicy::Hold);
            tracing::info!("agent connected: new flows are held for it");
        }
    }
    (reply, agent)
}

/// Runs on the loop thread: the handler over the core's router, then the
/// host work it asked for. Also says whether the buffer acted as the agent.
fn handle_on_loop(st: &mut State, core: &mut Core, input: &[u8]) -> (Reply, bool) {
    let State {
        handler,
        opener,
        info,
        ..
    } = st;
    // Which vifs have ports matters only to interface requests; skip the
    // walk for the rest (flow requests are the agent's hot path). A false
    // positive only costs the walk.
    let (ports, dev_drops) = if mentions(input, b"vr_interface_req") {
        port_snapshot(core)
    } else {
        (BTreeMap::new(), BTreeMap::new())
    };
    let mut host = LoopHost {
        opener: opener.as_ref(),
        info,
        ports,
        dev_drops,
        closing: BTreeMap::new(),
        events: Vec::new(),
        agent_vif: false,
        config_changed: false,
        scoped: Vec::new(),
        flows_changed: Vec::new(),
    };
    let flows_before = handler.flow_stats();
    let mut reply = Reply::default();
    reply.handled = handler.handle(core.router_mut(), &mut host, input, &mut reply.out);
    let acted = host.agent_vif || handler.flow_stats() != flows_before;
    let LoopHost {
        events,
        config_changed,
        scoped,
        flows_changed,
        ..
    } = host;
    // A buffer of flow requests, routes, new objects and vifs, labels or
    // unused next hops changed only removes the fast-path entries of the
    // flows it changed and of the flows the rest may redirect; anything
    // else empties the fast path. Here, not after the command: the answers
    // leave before the command ends, and no stale entry may forward once
    // the agent has them. Before `apply`: frames it releases may install
    // their flows anew.
    if !config_changed && reply.handled.malformed.is_none() {
        core.only_changed(&flows_changed, &scoped);
    } else {
        core.flush_offloads();
    }
    apply(core, events);
    (reply, acted)
}

/// Vifs that have a port: their name and type; and the frames the kernel
/// dropped on each port before the datapath read them.
type PortSnapshot = (BTreeMap<u16, (Name, VifType)>, BTreeMap<u16, u64>);

fn port_snapshot(core: &Core) -> PortSnapshot {
    let mut ports = BTreeMap::new();
    let mut drops = BTreeMap::new();
    for v in core.router().vifs().iter() {
        if let Some(st) = core.port_stats(v.cfg.idx) {
            ports.insert(v.cfg.idx, (v.cfg.name.clone(), v.cfg.vif_type));
            drops.insert(v.cfg.idx, st.kernel_drops);
        }
    }
    (ports, drops)
}

fn mentions(hay: &[u8], needle: &[u8]) -> bool {
    // Every buffer of flow requests is searched (up to 512 requests, about
    // 100 KB): a window-by-window compare was 1.6% of the datapath
    // thread's samples under (d)'s flood of new flows, this 0.4%.
    memchr::memmem::find(hay, needle).is_some()
}

/// Host work the handler asked for, applied after it returns.
enum Event {
    /// A port opened for vif `idx` named `name`.
    Attach {
        idx: u16,
        name: Name,
        port: Box<dyn Port>,
    },
    /// Vif `idx` was deleted.
    Close(u16),
    /// The port of deleted vif `from` goes to vif `to`.
    Move {
        from: u16,
        to: u16,
    },
    /// Vif `idx` was added: fill what its request left to the device.
    Settle(u16),
    /// `vif --clear` of vif `idx` (`None`: every vif).
    ClearDrops(Option<u16>),
    Released(u32),
    Deleted(u32),
}

fn apply(core: &mut Core, events: Vec<Event>) {
    for ev in events {
        match ev {
            Event::Attach { idx, name, port } => {
                // The router has the vif unless its add failed after the
                // port opened (then the port just closes).
                let cfg = core
                    .router()
                    .vif(idx)
                    .filter(|v| v.cfg.name == name)
                    .map(|v| v.cfg.clone());
                if let Some(cfg) = cfg {
                    if let Err(e) = core.vif_add(cfg, Some(port)) {
                        tracing::error!(vif = idx, error = %e, "cannot attach the port");
                    }
                }
            }
            Event::Close(idx) => {
                if core.router().vif(idx).is_none() {
                    core.port_close(idx);
                }
            }
            Event::Move { from, to } => {
                if let Err(e) = core.port_move(from, to) {
                    tracing::error!(from, to, error = %e, "cannot move the port");
                }
            }
            Event::Settle(idx) => core.settle_vif(idx),
            Event::ClearDrops(idx) => core.port_clear_kernel_drops(idx),
            Event::Released(flow) => core.release_held(flow),
            Event::Deleted(flow) => {
                core.drop_held(flow);
            }
        }
    }
}

/// [`HostOps`] during one handler call (see the module docs).
struct LoopHost<'a> {
    opener: &'a dyn PortOpener,
    info: &'a HostInfo,
    /// Vifs with a port, as the requests handled so far leave them.
    ports: BTreeMap<u16, (Name, VifType)>,
    /// Frames each port's kernel queue dropped (as the buffer began).
    dev_drops: BTreeMap<u16, u64>,
    /// Ports of vifs deleted by this buffer, not closed yet.
    closing: BTreeMap<u16, (Name, VifType)>,
    events: Vec<Event>,
    /// The agent vif was added.
    agent_vif: bool,
    /// A request may have changed more than flows and `scoped`: every
    /// fast-path entry goes.
    config_changed: bool,
    /// Routes, vifs and labels changed (never `Unused` or `Any`).
    scoped: Vec<ConfigChange>,
    /// Flows the requests created, changed or deleted.
    flows_changed: Vec<u32>,
}

impl HostOps for LoopHost<'_> {
    fn vif_add(&mut self, cfg: &VifConfig, _req: &VrInterfaceReq) -> Result<(), i32> {
        let keep = self
            .ports
            .get(&cfg.idx)
            .is_some_and(|(name, t)| *name == cfg.name && *t == cfg.vif_type);
        // The same interface deleted earlier in this buffer: its port is
        // still open; take it over rather than open the interface again.
        let reuse = (!keep)
            .then(|| {
                self.closing
                    .iter()
                    .find(|(_, (name, t))| *name == cfg.name && *t == cfg.vif_type)
                    .map(|(i, _)| *i)
            })
            .flatten();
        if let Some(from) = reuse {
            self.closing.remove(&from);
            self.events
                .retain(|e| !matches!(e, Event::Close(i) if *i == from));
            self.ports.insert(cfg.idx, (cfg.name.clone(), cfg.vif_type));
            self.events.push(Event::Move { from, to: cfg.idx });
        } else if cfg.vif_type == VifType::VirtualVlan {
            // A sub-interface has no port: it sends through its parent's
            // (a port the index had closes when the vif settles).
            self.ports.remove(&cfg.idx);
        } else if !keep {
            if cfg.name.as_str().is_empty() {
                tracing::warn!(vif = cfg.idx, "vif add without an interface name");
                return Err(-EINVAL);
            }
            let port = self.opener.open(cfg).map_err(|e| {
                tracing::warn!(vif = cfg.idx, name = cfg.name.as_str(), error = %e, "cannot open the interface");
                open_errno(&e)
            })?;
            self.ports.insert(cfg.idx, (cfg.name.clone(), cfg.vif_type));
            self.events.push(Event::Attach {
                idx: cfg.idx,
                name: cfg.name.clone(),
                port,
            });
        }
        if cfg.vif_type == VifType::Agent {
            self.agent_vif = true;
        }
        self.events.push(Event::Settle(cfg.idx));
        Ok(())
    }

    fn vif_del(&mut self, idx: u16) {
        if let Some(p) = self.ports.remove(&idx) {
            self.closing.insert(idx, p);
        }
        self.events.push(Event::Close(idx));
    }

    fn flow_released(&mut self, idx: u32) {
        self.events.push(Event::Released(idx));
    }

    fn flow_deleted(&mut self, idx: u32) {
        self.events.push(Event::Deleted(idx));
    }

    fn flow_changed(&mut self, idx: u32) {
        self.flows_changed.push(idx);
    }

    fn dev_ierrors(&self, idx: u16) -> u64 {
        self.dev_drops.get(&idx).copied().unwrap_or(0)
    }

    fn vif_stats_cleared(&mut self, idx: Option<u16>) {
        // Also for answers later in this buffer.
        for (i, n) in self.dev_drops.iter_mut() {
            if idx.is_none_or(|x| x == *i) {
                *n = 0;
            }
        }
        self.events.push(Event::ClearDrops(idx));
    }

    fn config_changed(&mut self, change: ConfigChange) {
        match change {
            ConfigChange::Unused => {}
            ConfigChange::Any => self.config_changed = true,
            // Each scoped change costs a pass over the fast path's
            // entries; past a bound, one flush is cheaper.
            _ if self.scoped.len() >= SCOPED_CHANGES_MAX => self.config_changed = true,
            scoped => self.scoped.push(scoped),
        }
    }

    fn host_info(&self) -> HostInfo {
        self.info.clone()
    }
}

/// A negative errno for a port that would not open: the OS's code, else
/// by kind (`-ENODEV` for a missing interface).
fn open_errno(e: &io::Error) -> i32 {
    if let Some(n) = e.raw_os_error().filter(|n| *n > 0) {
        return -n;
    }
    -match e.kind() {
        io::ErrorKind::NotFound => ENODEV,
        io::ErrorKind::PermissionDenied => EPERM,
        io::ErrorKind::AddrInUse => EBUSY,
        io::ErrorKind::AlreadyExists => EEXIST,
        io::ErrorKind::InvalidInput => EINVAL,
        _ => EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_of_open_failures() {
        let missing = io::Error::new(io::ErrorKind::NotFound, "no interface vh9");
        assert_eq!(open_errno(&missing), -ENODEV);
        assert_eq!(open_errno(&io::Error::from_raw_os_error(ENODEV)), -ENODEV);
        assert_eq!(open_errno(&io::Error::from_raw_os_error(EPERM)), -EPERM);
        assert_eq!(open_errno(&io::Error::other("?")), -EIO);
    }

    #[test]
    fn mentions_finds_object_names() {
        assert!(mentions(
            b"\0\0\0\x10vr_interface_req\x08",
            b"vr_interface_req"
        ));
        assert!(!mentions(b"vr_flow_req", b"vr_interface_req"));
        assert!(!mentions(b"", b"vr_interface_req"));
    }
}
