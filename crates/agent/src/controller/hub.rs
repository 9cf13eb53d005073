//! The controller's state: one task that owns everything the sessions
//! change (routes per control node, the config generations, what each
//! session was told), fed by the channel tasks and the model.
//!
//! * Both control nodes get every subscription and route (upstream's
//!   agent peers with two); routes from both are kept, merged as
//!   [`Rib::merge`] says.
//! * One session is the config peer: it gets the `virtual-router:` and
//!   `virtual-machine:` subscriptions. When it goes, the other takes over
//!   and its full config replaces the old one once it has gone quiet
//!   (upstream's end-of-config); until then the old config stays.
//! * A lost control node's routes turn stale and stay for
//!   `stale_timeout`; when it comes back, what it re-sends is fresh again
//!   and the rest goes at its end-of-RIB marker (or `eor_timeout` after
//!   the session came up, when no marker arrives). The marker of a live
//!   control node also sweeps what control nodes that are still down
//!   left stale (upstream keeps those until their own timer).
//! * A control node that has just come back only knows the compute nodes
//!   that have reconnected to it, and its marker cannot say which. So
//!   it sweeps only stale routes via compute nodes it has re-sent routes
//!   from (in the same routing instance); the rest stays until it has
//!   (swept once its route updates pause for [`SETTLE`]) or until
//!   `stale_timeout`. A compute node slower to reconnect than this agent
//!   does not lose its traffic.

use super::config::ControllerConfig;
use super::export::{self, Export, Exports};
use super::routes;
use super::{Options, PeerStatus, Status};
use crate::model::Model;
use crate::ports::PortStore;
use crate::program::Ids;
use crate::rib::Rib;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use xmpp::ifmap::graph::Graph;
use xmpp::jid::{Channel, CONTROL_NODE_JID, END_OF_RIB};
use xmpp::session::Sender;
use xmpp::stanza::{self, IqBody, Stanza};

/// After a route update from a control node past its end-of-RIB, how
/// long it must be quiet before the stale routes it now vouches for go
/// (a reconnecting compute node's routes arrive as a burst).
const SETTLE: Duration = Duration::from_secs(1);

/// What the channel tasks report.
pub(crate) enum Ev {
    Up {
        idx: usize,
        tx: Sender,
        local: Option<SocketAddr>,
    },
    Down {
        idx: usize,
        reason: String,
    },
    Failed {
        idx: usize,
        reason: String,
    },
    Stanza {
        idx: usize,
        text: String,
    },
}

/// An established session and what it was told.
struct Live {
    tx: Sender,
    subs: BTreeMap<String, u32>,
    published: BTreeMap<(String, String), Export>,
    vm_subs: BTreeSet<String>,
    up_since: Instant,
    eor_rx: bool,
    /// The last route update since end-of-RIB while stale routes remain:
    /// a sweep is due once it is [`SETTLE`] old.
    sweep_due: Option<Instant>,
}

#[derive(Default)]
struct Peer {
    live: Option<Live>,
    rib: Rib,
    stale_since: Option<Instant>,
    status: PeerStatus,
}

struct Pending {
    idx: usize,
    graph: Graph,
    started: Instant,
    last: Instant,
}

pub(crate) struct Hub {
    pub opts: Options,
    pub ids: Ids,
    pub config: Arc<ControllerConfig>,
    pub ports: Arc<PortStore>,
    pub rib_tx: watch::Sender<Arc<Rib>>,
    pub sip_tx: watch::Sender<Option<Ipv4Addr>>,
    pub status: Arc<Mutex<Status>>,
    peers: Vec<Peer>,
    config_peer: Option<usize>,
    pending: Option<Pending>,
    model: Arc<Model>,
    sip: Option<Ipv4Addr>,
    next_id: u64,
    rib_dirty: bool,
}

impl Hub {
    pub fn new(
        opts: Options,
        ids: Ids,
        config: Arc<ControllerConfig>,
        ports: Arc<PortStore>,
        rib_tx: watch::Sender<Arc<Rib>>,
        sip_tx: watch::Sender<Option<Ipv4Addr>>,
        status: Arc<Mutex<Status>>,
    ) -> Hub {
        let sip = opts.control_network_ip;
        let peers = opts
            .servers
            .iter()
            .map(|a| Peer {
                status: PeerStatus {
                    server: a.to_string(),
                    state: "connecting".into(),
                    ..PeerStatus::default()
                },
                ..Peer::default()
            })
            .collect();
        if sip.is_some() {
            sip_tx.send_replace(sip);
        }
        Hub {
            opts,
            ids,
            config,
            ports,
            rib_tx,
            sip_tx,
            status,
            peers,
            config_peer: None,
            pending: None,
            model: Arc::new(Model::default()),
            sip,
            next_id: 0,
            rib_dirty: false,
        }
    }

    fn agent(&self) -> &str {
        &self.opts.agent_name
    }

    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Ev>,
        mut model_rx: watch::Receiver<Arc<Model>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ports_rx = self.ports.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = crate::run::stopped(&mut stop) => return,
                ev = rx.recv() => {
                    let Some(ev) = ev else { return };
                    self.handle(ev).await;
                    // Take what else is queued before publishing.
                    for _ in 0..1024 {
                        match rx.try_recv() {
                            Ok(ev) => self.handle(ev).await,
                            Err(_) => break,
                        }
                    }
                }
                r = model_rx.changed() => {
                    if r.is_err() { return }
                    self.model = Arc::clone(&model_rx.borrow_and_update());
                    self.sync_all().await;
                }
                r = ports_rx.changed() => {
                    if r.is_err() { return }
                    ports_rx.borrow_and_update();
                    self.sync_vm_subs().await;
                }
                _ = tick.tick() => self.timers().await,
            }
            if self.rib_dirty {
                self.rib_dirty = false;
                let merged = Rib::merge(self.peers.iter().map(|p| &p.rib));
                self.rib_tx.send_if_modified(|cur| {
                    if **cur == merged {
                        false
                    } else {
                        *cur = Arc::new(merged);
                        true
                    }
                });
            }
            self.report();
        }
    }

    async fn send(&mut self, idx: usize, s: String) {
        let Some(live) = self.peers.get(idx).and_then(|p| p.live.as_ref()) else {
            return;
        };
        if live.tx.send(s).await.is_ok() {
            if let Some(p) = self.peers.get_mut(idx) {
                p.status.tx += 1;
            }
        }
    }

    async fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Up { idx, tx, local } => self.up(idx, tx, local).await,
            Ev::Down { idx, reason } => self.down(idx, reason).await,
            Ev::Failed { idx, reason } => {
                if let Some(p) = self.peers.get_mut(idx) {
                    p.status.state = format!("connecting ({reason})");
                }
            }
            Ev::Stanza { idx, text } => self.stanza(idx, &text),
        }
    }

    async fn up(&mut self, idx: usize, tx: Sender, local: Option<SocketAddr>) {
        let Some(p) = self.peers.get_mut(idx) else {
            return;
        };
        tracing::info!(server = %p.status.server, "XMPP session established");
        p.status.state = "established".into();
        p.status.flaps += u64::from(p.status.established_at.is_some());
        p.status.established_at = Some(std::time::SystemTime::now());
        p.live = Some(Live {
            tx,
            subs: BTreeMap::new(),
            published: BTreeMap::new(),
            vm_subs: BTreeSet::new(),
            up_since: Instant::now(),
            eor_rx: false,
            sweep_due: None,
        });
        if self.sip.is_none() {
            if let Some(SocketAddr::V4(a)) = local {
                tracing::info!(address = %a.ip(), "tunnel source (control_network_ip) taken from the XMPP connection");
                self.sip = Some(*a.ip());
                self.sip_tx.send_replace(self.sip);
            }
        }
        if self.config_peer.is_none() {
            self.become_config_peer(idx).await;
        }
        self.sync_routes(idx).await;
        let eor = stanza::end_of_rib(&self.opts.agent_name, CONTROL_NODE_JID);
        self.send(idx, eor).await;
    }

    async fn become_config_peer(&mut self, idx: usize) {
        self.config_peer = Some(idx);
        if !self.config.is_empty() {
            // A full config follows; the current one stays until it has.
            let now = Instant::now();
            self.pending = Some(Pending {
                idx,
                graph: Graph::default(),
                started: now,
                last: now,
            });
        }
        let s = stanza::vr_subscribe(self.agent());
        self.send(idx, s).await;
        if let Some(l) = self.peers.get_mut(idx).and_then(|p| p.live.as_mut()) {
            l.vm_subs.clear();
        }
        self.sync_vm_subs().await;
    }

    async fn down(&mut self, idx: usize, reason: String) {
        let Some(p) = self.peers.get_mut(idx) else {
            return;
        };
        tracing::warn!(server = %p.status.server, %reason, "XMPP session down; its routes are stale now");
        p.status.state = format!("down ({reason})");
        p.live = None;
        p.rib.mark_stale();
        p.stale_since = Some(Instant::now());
        self.rib_dirty = true;
        if self.config_peer == Some(idx) {
            self.config_peer = None;
            if self.pending.as_ref().is_some_and(|p| p.idx == idx) {
                self.pending = None;
            }
            let other = self
                .peers
                .iter()
                .enumerate()
                .find(|(_, p)| p.live.is_some())
                .map(|(i, _)| i);
            if let Some(j) = other {
                tracing::info!(server = %self.peers[j].status.server, "config now from the other control node");
                self.become_config_peer(j).await;
            }
        }
    }

    fn stanza(&mut self, idx: usize, text: &str) {
        if let Some(p) = self.peers.get_mut(idx) {
            p.status.rx += 1;
        }
        let st = match Stanza::parse(text) {
            Ok(s) => s,
            Err(e) => {
                self.bad(idx, format!("malformed stanza dropped: {e}"));
                return;
            }
        };
        match (st.channel(), st) {
            (Some(Channel::BgpPeer), Stanza::Message(m)) => {
                let Some(node) = m.items_node.as_deref() else {
                    self.bad(idx, "route event without items".into());
                    return;
                };
                if node == END_OF_RIB {
                    self.end_of_rib(idx, "marker");
                    return;
                }
                match routes::read_event(node, &m.items, &m.retracts) {
                    Ok(c) => {
                        for r in &c.rejected {
                            self.bad(idx, format!("route in {} ignored: {r}", c.ri));
                        }
                        let Some(p) = self.peers.get_mut(idx) else {
                            return;
                        };
                        let table = p.rib.ris.entry(c.ri.clone()).or_default();
                        for (id, r) in c.adds {
                            table.insert(id, r);
                        }
                        for id in c.dels {
                            table.remove(&id);
                        }
                        if table.is_empty() {
                            p.rib.ris.remove(&c.ri);
                        }
                        p.status.routes = p.rib.route_count();
                        self.rib_dirty = true;
                        if self.stale_left() {
                            if let Some(l) = self.peers[idx].live.as_mut().filter(|l| l.eor_rx) {
                                l.sweep_due = Some(Instant::now());
                            }
                        }
                    }
                    Err(e) => tracing::debug!(server = idx, error = %e, "route event not for us"),
                }
            }
            (Some(Channel::Config), Stanza::Iq(iq)) => {
                let IqBody::Config(cfg) = iq.body else {
                    self.bad(idx, "config iq without <config>".into());
                    return;
                };
                if self.config_peer != Some(idx) {
                    tracing::warn!(
                        server = idx,
                        "config from a control node that is not the config peer ignored"
                    );
                    return;
                }
                let (changes, errors) = xmpp::ifmap::parse_config(&cfg);
                for e in errors {
                    self.bad(idx, format!("config entry ignored: {e}"));
                }
                match &mut self.pending {
                    Some(p) if p.idx == idx => {
                        p.graph.apply(&changes);
                        p.last = Instant::now();
                    }
                    _ => {
                        self.config.apply(&changes);
                    }
                }
            }
            (Some(Channel::DnsPeer), _) => {
                tracing::debug!(
                    server = idx,
                    "dns-peer stanza ignored (no DNS service here)"
                )
            }
            (ch, _) => self.bad(idx, format!("unexpected stanza on channel {ch:?} dropped")),
        }
    }

    fn bad(&mut self, idx: usize, why: String) {
        tracing::warn!(server = idx, "{why}");
        if let Some(p) = self.peers.get_mut(idx) {
            p.status.dropped += 1;
            p.status.last_dropped = Some(why);
        }
    }

    fn end_of_rib(&mut self, idx: usize, why: &str) {
        let Some(l) = self.peers.get_mut(idx).and_then(|p| p.live.as_mut()) else {
            return;
        };
        l.eor_rx = true;
        let n = self.sweep_heard(idx);
        let p = &self.peers[idx];
        tracing::info!(server = %p.status.server, swept = n, kept = self.stale_count(), "end of RIB ({why})");
    }

    /// Stale routes anywhere.
    fn stale_left(&self) -> bool {
        self.peers.iter().any(|p| p.stale_since.is_some())
    }

    fn stale_count(&self) -> usize {
        self.peers.iter().map(|p| p.rib.stale_count()).sum()
    }

    /// Sweep, for live control node `idx` past its end-of-RIB, what it
    /// vouches for: its own stale routes and those of control nodes that
    /// are down (both hold the same routes; waiting for their timeout
    /// would keep routes the cluster no longer has), each only via
    /// compute nodes it has re-sent routes from. How many went.
    fn sweep_heard(&mut self, idx: usize) -> usize {
        let Some(p) = self.peers.get_mut(idx) else {
            return 0;
        };
        if let Some(l) = p.live.as_mut() {
            l.sweep_due = None;
        }
        let heard = p.rib.fresh_sources();
        let mut n = 0;
        for (j, q) in self.peers.iter_mut().enumerate() {
            if q.stale_since.is_none() || (j != idx && q.live.is_some()) {
                continue;
            }
            n += q.rib.sweep_heard(&heard);
            if q.rib.stale_count() == 0 {
                q.stale_since = None;
            }
            q.status.routes = q.rib.route_count();
        }
        if n > 0 {
            self.rib_dirty = true;
        }
        n
    }

    /// `stale_timeout` after control node `idx` went: whatever it left
    /// stale goes.
    fn stale_expired(&mut self, idx: usize) {
        let Some(p) = self.peers.get_mut(idx) else {
            return;
        };
        let n = p.rib.sweep();
        p.stale_since = None;
        p.status.routes = p.rib.route_count();
        tracing::info!(server = %p.status.server, swept = n, "stale routes timed out");
        if n > 0 {
            self.rib_dirty = true;
        }
    }

    async fn timers(&mut self) {
        let now = Instant::now();
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            let expired = p
                .stale_since
                .is_some_and(|t| now.duration_since(t) >= self.opts.stale_timeout);
            let eor_due = p.live.as_ref().is_some_and(|l| {
                !l.eor_rx && now.duration_since(l.up_since) >= self.opts.eor_timeout
            });
            let settled = p
                .live
                .as_ref()
                .and_then(|l| l.sweep_due)
                .is_some_and(|t| now.duration_since(t) >= SETTLE);
            if expired && p.live.as_ref().is_none_or(|l| l.eor_rx) {
                self.stale_expired(i);
            } else if eor_due {
                self.end_of_rib(i, "no marker within the end-of-RIB time");
            } else if settled {
                // Quiet when nothing went: with a compute node that never
                // comes back, every update would log until the timeout.
                let n = self.sweep_heard(i);
                if n > 0 {
                    tracing::info!(server = %self.peers[i].status.server, swept = n, kept = self.stale_count(), "stale routes swept for compute nodes heard from again");
                }
            }
        }
        let done = self.pending.as_ref().is_some_and(|p| {
            now.duration_since(p.last) >= self.opts.config_quiet
                || now.duration_since(p.started) >= Duration::from_secs(60)
        });
        if done {
            if let Some(p) = self.pending.take() {
                tracing::info!(
                    nodes = p.graph.node_count(),
                    links = p.graph.link_count(),
                    "config from the new config peer is complete: replacing the old"
                );
                self.config.replace(p.graph);
            }
        }
    }

    fn exports(&self) -> Exports {
        match self.sip {
            Some(sip) => export::exports(&self.model, &self.ids, sip),
            None => Exports::default(),
        }
    }

    async fn sync_all(&mut self) {
        for i in 0..self.peers.len() {
            self.sync_routes(i).await;
        }
    }

    /// Bring one session's subscriptions and routes to what the model says:
    /// subscribe, publish, withdraw, unsubscribe, in that order (the
    /// control node closes a session that publishes before subscribing).
    async fn sync_routes(&mut self, idx: usize) {
        let want = self.exports();
        let Some(live) = self.peers.get(idx).and_then(|p| p.live.as_ref()) else {
            return;
        };
        let agent = self.opts.agent_name.clone();
        let mut out: Vec<String> = Vec::new();
        let mut subs = live.subs.clone();
        let mut published = live.published.clone();
        for (ri, inst) in &want.subs {
            match subs.get(ri) {
                Some(i) if i == inst => {}
                Some(_) => {
                    out.push(stanza::instance_subscribe(
                        &agent,
                        self.next_id,
                        ri,
                        *inst,
                        false,
                    ));
                    self.next_id += 1;
                    out.push(stanza::instance_subscribe(
                        &agent,
                        self.next_id,
                        ri,
                        *inst,
                        true,
                    ));
                    self.next_id += 1;
                    subs.insert(ri.clone(), *inst);
                }
                None => {
                    out.push(stanza::instance_subscribe(
                        &agent,
                        self.next_id,
                        ri,
                        *inst,
                        true,
                    ));
                    self.next_id += 1;
                    subs.insert(ri.clone(), *inst);
                }
            }
        }
        for (k, e) in &want.routes {
            if published.get(k) == Some(e) {
                continue;
            }
            let (p, c) = stanza::publish(
                &agent,
                self.next_id,
                e.l2,
                &e.ri,
                &k.1,
                e.item.clone(),
                true,
            );
            self.next_id += 1;
            out.push(p);
            out.push(c);
            published.insert(k.clone(), e.clone());
        }
        let gone: Vec<(String, String)> = published
            .keys()
            .filter(|k| !want.routes.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(e) = published.remove(&k) {
                let (p, c) = stanza::publish(
                    &agent,
                    self.next_id,
                    e.l2,
                    &e.ri,
                    &k.1,
                    export::withdrawal(&e),
                    false,
                );
                self.next_id += 1;
                out.push(p);
                out.push(c);
            }
        }
        let unsub: Vec<(String, u32)> = subs
            .iter()
            .filter(|(ri, _)| !want.subs.contains_key(*ri))
            .map(|(r, i)| (r.clone(), *i))
            .collect();
        for (ri, inst) in unsub {
            out.push(stanza::instance_subscribe(
                &agent,
                self.next_id,
                &ri,
                inst,
                false,
            ));
            self.next_id += 1;
            subs.remove(&ri);
        }
        if let Some(l) = self.peers.get_mut(idx).and_then(|p| p.live.as_mut()) {
            l.subs = subs;
            l.published = published;
        }
        for s in out {
            self.send(idx, s).await;
        }
    }

    /// `virtual-machine:<uuid>` for each port's instance (config peer).
    async fn sync_vm_subs(&mut self) {
        let Some(idx) = self.config_peer else {
            return;
        };
        let want: BTreeSet<String> = self.ports.vm_uuids().iter().map(Uuid::to_string).collect();
        let Some(live) = self.peers.get(idx).and_then(|p| p.live.as_ref()) else {
            return;
        };
        let have = live.vm_subs.clone();
        let agent = self.opts.agent_name.clone();
        let mut out = Vec::new();
        for vm in want.difference(&have) {
            out.push(stanza::vm_subscribe(&agent, vm, true));
        }
        for vm in have.difference(&want) {
            out.push(stanza::vm_subscribe(&agent, vm, false));
        }
        if let Some(l) = self.peers.get_mut(idx).and_then(|p| p.live.as_mut()) {
            l.vm_subs = want;
        }
        for s in out {
            self.send(idx, s).await;
        }
    }

    fn report(&self) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.peers = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut st = p.status.clone();
                st.config_peer = self.config_peer == Some(i);
                st.stale_routes = p
                    .rib
                    .ris
                    .values()
                    .flat_map(|r| r.values())
                    .filter(|r| r.stale)
                    .count();
                st.subscriptions = p.live.as_ref().map_or(0, |l| l.subs.len());
                st.published = p.live.as_ref().map_or(0, |l| l.published.len());
                st
            })
            .collect();
        let (nodes, links, rev) = self.config.stats();
        s.config_nodes = nodes;
        s.config_links = links;
        s.config_revision = rev;
        s.config_pending = self.pending.is_some();
        s.tunnel_source = self.sip.map(|a| a.to_string());
    }
}
