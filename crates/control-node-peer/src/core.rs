//! The peer's state, owned by one task: agents and their subscriptions,
//! routes by (routing instance, family, id) and agent, what each agent was
//! sent (routes and IF-MAP config), and the reflection rules.
//!
//! As upstream's control node:
//! * a subscribe to an instance already subscribed, an unsubscribe from
//!   one that is not, or a route for an instance the agent did not
//!   subscribe to closes the session;
//! * a publish is taken with the collection iq that follows it
//!   (associate: add, dissociate: delete);
//! * a route goes to every other agent subscribed to its instance, and to
//!   the agents subscribed to the instances of networks a policy connects
//!   to it (what the schema transformer's route targets do); routes for
//!   one prefix from several agents go out as one item with all next hops
//!   (ECMP); nothing goes back to the agent it came from;
//! * after an agent's subscriptions settle, it gets the end-of-RIB marker;
//! * when a session closes, its routes are withdrawn from the others
//!   (graceful restart is off, upstream's default).

use crate::ifmap::{self, View};
use crate::validate::{self, Checked};
use crate::Stats;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use vnc_api::{Snapshot, Store};
use xmpp::enet::EnetItem;
use xmpp::jid::{Channel, CONTROL_NODE_JID, END_OF_RIB};
use xmpp::session::Sender;
use xmpp::stanza::{self, IqBody, Stanza};
use xmpp::unicast::InetItem;
use xmpp::xml::Element;

pub(crate) enum Ev {
    Connected {
        conn: u64,
        name: String,
        tx: Sender,
        close: tokio::sync::oneshot::Sender<String>,
    },
    Stanza {
        conn: u64,
        text: String,
    },
    Closed {
        conn: u64,
    },
    Inject {
        agent: String,
        text: String,
    },
}

/// (routing instance, family node prefix `1/1`, route id).
type Key = (String, String, String);

/// Rendered items by id, and retract ids, waiting for one items node.
type Pending = (BTreeMap<String, Arc<str>>, BTreeSet<String>);

struct Agent {
    name: String,
    tx: Sender,
    close: Option<tokio::sync::oneshot::Sender<String>>,
    subs: BTreeMap<String, i64>,
    vr: Option<String>,
    vms: BTreeSet<String>,
    config_sent: View,
    /// What the agent was sent for each route it sees (the rendered item).
    sent: BTreeMap<Key, Arc<str>>,
    pending: Option<(String, Vec<Element>)>,
    last_sub: Option<Instant>,
    eor_sent: bool,
}

pub(crate) struct Core {
    store: Arc<Store>,
    cfg: watch::Receiver<u64>,
    snap: Snapshot,
    /// VN fq name -> the VNs a policy connects it to.
    leaks: BTreeMap<String, Vec<String>>,
    agents: BTreeMap<u64, Agent>,
    routes: BTreeMap<Key, BTreeMap<u64, Checked>>,
    stats: Arc<Mutex<Stats>>,
    eor_delay: Duration,
    /// Route updates waiting to go out, per (session, items node): they
    /// are sent together after each batch of events, up to 64 per
    /// message, as upstream's update sender batches.
    outbox: BTreeMap<(u64, String), Pending>,
}

/// The VN of a routing instance named `<vn fq>:<vn name>`.
fn vn_of_ri(ri: &str) -> &str {
    ri.rsplit_once(':').map_or(ri, |(v, _)| v)
}

fn ri_of_vn(vn: &str) -> String {
    let name = vn.rsplit(':').next().unwrap_or_default();
    format!("{vn}:{name}")
}

fn leaks(snap: &Snapshot) -> BTreeMap<String, Vec<String>> {
    let (p, _) = policy::PolicySet::build(
        snap.iter("virtual-network"),
        snap.iter("network-policy"),
        snap.iter("security-group"),
    );
    let mut out = BTreeMap::new();
    for (_, vn) in snap.iter("virtual-network") {
        let fq = vn["fq_name"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(serde_json::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        let c = p.connected_vns(&fq);
        if !c.is_empty() {
            out.insert(fq, c);
        }
    }
    out
}

impl Core {
    pub fn new(store: Arc<Store>, stats: Arc<Mutex<Stats>>, eor_delay: Duration) -> Core {
        // Subscribed before the first snapshot: no change can fall between.
        let cfg = store.subscribe();
        let snap = store
            .snapshot()
            .unwrap_or_else(|_| Snapshot::builder(0).build());
        Core {
            cfg,
            leaks: leaks(&snap),
            store,
            snap,
            agents: BTreeMap::new(),
            routes: BTreeMap::new(),
            stats,
            eor_delay,
            outbox: BTreeMap::new(),
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Ev>, mut stop: watch::Receiver<bool>) {
        let mut cfg = self.cfg.clone();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        self.handle(ev).await;
                        for _ in 0..4096 {
                            match rx.try_recv() {
                                Ok(ev) => self.handle(ev).await,
                                Err(_) => break,
                            }
                        }
                    }
                    None => return,
                },
                r = cfg.changed() => {
                    if r.is_err() { return }
                    cfg.borrow_and_update();
                    self.config_changed().await;
                }
                _ = tick.tick() => self.timers().await,
            }
            self.flush().await;
        }
    }

    async fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Connected {
                conn,
                name,
                tx,
                close,
            } => {
                self.stats().sessions += 1;
                self.agents.insert(
                    conn,
                    Agent {
                        name,
                        tx,
                        close: Some(close),
                        subs: BTreeMap::new(),
                        vr: None,
                        vms: BTreeSet::new(),
                        config_sent: View::default(),
                        sent: BTreeMap::new(),
                        pending: None,
                        last_sub: None,
                        eor_sent: false,
                    },
                );
                self.report();
            }
            Ev::Closed { conn } => {
                self.agents.remove(&conn);
                let keys: Vec<Key> = self
                    .routes
                    .iter()
                    .filter(|(_, paths)| paths.contains_key(&conn))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in keys {
                    if let Some(p) = self.routes.get_mut(&k) {
                        p.remove(&conn);
                        if p.is_empty() {
                            self.routes.remove(&k);
                        }
                    }
                    self.propagate(&k).await;
                }
                self.report();
            }
            Ev::Stanza { conn, text } => self.stanza(conn, &text).await,
            Ev::Inject { agent, text } => {
                for a in self.agents.values().filter(|a| a.name == agent) {
                    let _ = a.tx.send(text.clone()).await;
                }
            }
        }
    }

    fn close(&mut self, conn: u64, why: String) {
        tracing::warn!(conn, %why, "closing the session, as upstream's control node");
        self.stats().closed_by_peer.push(why.clone());
        if let Some(c) = self.agents.get_mut(&conn).and_then(|a| a.close.take()) {
            let _ = c.send(why);
        }
    }

    async fn stanza(&mut self, conn: u64, text: &str) {
        let Ok(st) = Stanza::parse(text) else {
            self.stats().malformed += 1;
            return;
        };
        let ch = st.channel();
        match (ch, st) {
            (Some(Channel::Config), Stanza::Iq(iq)) => match iq.body {
                IqBody::Subscribe { node, .. } => {
                    if let Some(vr) = node.strip_prefix("virtual-router:") {
                        if let Some(a) = self.agents.get_mut(&conn) {
                            a.vr = Some(vr.to_string());
                        }
                    } else if let Some(vm) = node.strip_prefix("virtual-machine:") {
                        if let Some(a) = self.agents.get_mut(&conn) {
                            a.vms.insert(vm.to_string());
                        }
                    }
                    self.push_config(conn).await;
                }
                IqBody::Unsubscribe { node } => {
                    if let Some(vm) = node.strip_prefix("virtual-machine:") {
                        if let Some(a) = self.agents.get_mut(&conn) {
                            a.vms.remove(vm);
                        }
                    }
                    self.push_config(conn).await;
                }
                _ => {}
            },
            (Some(Channel::BgpPeer), Stanza::Iq(iq)) => match iq.body {
                IqBody::Subscribe { node, instance_id } => {
                    let Some(a) = self.agents.get_mut(&conn) else {
                        return;
                    };
                    if a.subs.contains_key(&node) {
                        self.close(
                            conn,
                            format!("duplicate subscribe for routing instance {node}"),
                        );
                        return;
                    }
                    a.subs.insert(node.clone(), instance_id.unwrap_or(-1));
                    a.last_sub = Some(Instant::now());
                    self.send_instance(conn, &node).await;
                    self.report();
                }
                IqBody::Unsubscribe { node } => {
                    let Some(a) = self.agents.get_mut(&conn) else {
                        return;
                    };
                    if a.subs.remove(&node).is_none() {
                        self.close(
                            conn,
                            format!("spurious unsubscribe for routing instance {node}"),
                        );
                        return;
                    }
                    a.sent.retain(|k, _| k.0 != node);
                    a.last_sub = Some(Instant::now());
                    // Routes it still has there are withdrawn, as
                    // upstream's membership manager does.
                    let keys: Vec<Key> = self
                        .routes
                        .iter()
                        .filter(|(k, p)| k.0 == node && p.contains_key(&conn))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        if let Some(p) = self.routes.get_mut(&k) {
                            p.remove(&conn);
                            if p.is_empty() {
                                self.routes.remove(&k);
                            }
                        }
                        self.propagate(&k).await;
                    }
                    self.report();
                }
                IqBody::Publish { node, items } => {
                    if let Some(a) = self.agents.get_mut(&conn) {
                        a.pending = Some((node, items));
                    }
                }
                IqBody::Collection {
                    node: vrf,
                    associate,
                    dissociate,
                } => {
                    let add = associate.is_some();
                    let Some(asn) = associate.or(dissociate) else {
                        return;
                    };
                    let pending = self.agents.get_mut(&conn).and_then(|a| a.pending.take());
                    let Some((pnode, items)) = pending.filter(|(n, _)| *n == asn) else {
                        tracing::warn!(conn, node = %asn, "collection without its publish ignored");
                        return;
                    };
                    self.publish(conn, &vrf, &pnode, &items, add).await;
                }
                _ => {}
            },
            (Some(Channel::BgpPeer), Stanza::Message(m)) => {
                if m.items_node.as_deref() == Some(END_OF_RIB) {
                    self.stats().eor_received += 1;
                }
            }
            _ => self.stats().ignored += 1,
        }
    }

    async fn publish(&mut self, conn: u64, vrf: &str, node: &str, items: &[Element], add: bool) {
        if items.is_empty() {
            self.stats().eor_received += 1;
            return;
        }
        let subscribed = self
            .agents
            .get(&conn)
            .is_some_and(|a| a.subs.contains_key(vrf));
        for item in items {
            let checked = match validate::check(node, item, add, false) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(conn, %node, error = %e, "route rejected");
                    self.stats().rejected.push(e);
                    continue;
                }
            };
            if !subscribed {
                self.close(conn, format!("route for {vrf} without subscribe"));
                return;
            }
            let (fam, id) = match &checked {
                Checked::Inet(i) => (
                    format!("{}/{}", i.nlri.af, i.nlri.safi),
                    i.nlri.address.clone(),
                ),
                Checked::Enet(e) => {
                    let tag = if e.nlri.ethernet_tag != 0 {
                        format!("{}-", e.nlri.ethernet_tag)
                    } else {
                        String::new()
                    };
                    (
                        "25/242".to_string(),
                        format!("{tag}{},{}", e.nlri.mac, e.nlri.address),
                    )
                }
                // Multicast trees are not built here: accepted, not reflected.
                Checked::Mcast(_) => continue,
            };
            let key = (vrf.to_string(), fam, id);
            if add {
                self.routes
                    .entry(key.clone())
                    .or_default()
                    .insert(conn, checked);
                self.stats().accepted += 1;
            } else if let Some(p) = self.routes.get_mut(&key) {
                p.remove(&conn);
                if p.is_empty() {
                    self.routes.remove(&key);
                }
                self.stats().withdrawn += 1;
            }
            self.propagate(&key).await;
        }
        self.report();
    }

    /// The routing instances whose routes `ri`'s subscribers see.
    fn sources(&self, ri: &str) -> Vec<String> {
        let mut v = vec![ri.to_string()];
        if let Some(c) = self.leaks.get(vn_of_ri(ri)) {
            v.extend(c.iter().map(|vn| ri_of_vn(vn)));
        }
        v
    }

    /// The item `to` should have for `key` as seen in `ri`, if any.
    fn item_for(&self, to: u64, key: &Key, ri: &str) -> Option<Element> {
        let paths: Vec<&Checked> = self
            .routes
            .get(key)?
            .iter()
            .filter(|(c, _)| **c != to)
            .map(|(_, p)| p)
            .collect();
        let first = paths.first()?;
        let vn = vn_of_ri(&key.0).to_string();
        let _ = ri;
        match first {
            Checked::Inet(t) => {
                let mut it = InetItem {
                    id: Some(key.2.clone()),
                    next_hops: Vec::new(),
                    version: 1,
                    ..(*t).clone()
                };
                if it.local_preference == 0 {
                    it.local_preference = 100;
                }
                for p in &paths {
                    if let Checked::Inet(i) = p {
                        for n in &i.next_hops {
                            let mut n = n.clone();
                            if n.virtual_network.is_empty() {
                                n.virtual_network = vn.clone();
                            }
                            it.next_hops.push(n);
                        }
                    }
                }
                if it.virtual_network.is_empty() {
                    it.virtual_network = vn;
                }
                Some(it.encode())
            }
            Checked::Enet(t) => {
                let mut it = EnetItem {
                    id: Some(key.2.clone()),
                    next_hops: Vec::new(),
                    virtual_network: vn,
                    ..(*t).clone()
                };
                for p in &paths {
                    if let Checked::Enet(e) = p {
                        it.next_hops.extend(e.next_hops.iter().cloned());
                    }
                }
                Some(it.encode())
            }
            Checked::Mcast(_) => None,
        }
    }

    /// Bring every agent that sees `key` up to date with it.
    async fn propagate(&mut self, key: &Key) {
        let mut sends: Vec<(u64, String, Option<Arc<str>>)> = Vec::new();
        // The instances whose subscribers see `key` (policy leaking is
        // mutual: both networks carry the policy).
        let mut targets: Vec<String> = vec![key.0.clone()];
        if let Some(c) = self.leaks.get(vn_of_ri(&key.0)) {
            targets.extend(c.iter().map(|vn| ri_of_vn(vn)));
        }
        // What every agent without a path of its own gets: rendered once.
        let origins: Vec<u64> = self
            .routes
            .get(key)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        let render = |e: Option<Element>| e.map(|e| Arc::<str>::from(stanza::render_item(&e)));
        let common = render(self.item_for(u64::MAX, key, &key.0));
        for (conn, a) in &self.agents {
            let mine = origins
                .contains(conn)
                .then(|| render(self.item_for(*conn, key, &key.0)));
            for ri in &targets {
                if !a.subs.contains_key(ri) {
                    continue;
                }
                let seen: Key = (ri.clone(), key.1.clone(), key.2.clone());
                let want = match &mine {
                    Some(w) => w.clone(),
                    None => common.clone(),
                };
                let have = a.sent.get(&seen);
                let node = format!("{}/{ri}", key.1);
                match (want, have) {
                    (Some(w), Some(h)) if w == *h => {}
                    (Some(w), _) => sends.push((*conn, node, Some(w))),
                    (None, Some(_)) => sends.push((*conn, node, None)),
                    (None, None) => {}
                }
            }
        }
        // Record what is sent, and queue it.
        for (conn, node, item) in sends {
            let ri = node.splitn(3, '/').nth(2).unwrap_or_default().to_string();
            let seen: Key = (ri, key.1.clone(), key.2.clone());
            if let Some(a) = self.agents.get_mut(&conn) {
                let q = self.outbox.entry((conn, node)).or_default();
                match item {
                    Some(w) => {
                        a.sent.insert(seen, Arc::clone(&w));
                        q.1.remove(&key.2);
                        q.0.insert(key.2.clone(), w);
                    }
                    None => {
                        a.sent.remove(&seen);
                        q.0.remove(&key.2);
                        q.1.insert(key.2.clone());
                    }
                }
            }
        }
    }

    /// Send what [`Self::propagate`] queued.
    async fn flush(&mut self) {
        let out = std::mem::take(&mut self.outbox);
        for ((conn, node), (items, retracts)) in out {
            let Some(a) = self.agents.get(&conn) else {
                continue;
            };
            let items: Vec<Arc<str>> = items.into_values().collect();
            let retracts: Vec<String> = retracts.into_iter().collect();
            for chunk in items.chunks(64) {
                let refs: Vec<&str> = chunk.iter().map(|s| &**s).collect();
                let _ =
                    a.tx.send(stanza::route_event_rendered(&a.name, &node, &refs, &[]))
                        .await;
                self.stats().updates_sent += 1;
            }
            for chunk in retracts.chunks(64) {
                let _ =
                    a.tx.send(stanza::route_event(&a.name, &node, &[], chunk))
                        .await;
                self.stats().updates_sent += 1;
            }
        }
    }

    /// Everything `conn` should see in `ri`, sent in messages of up to 64
    /// items (upstream batches too).
    async fn send_instance(&mut self, conn: u64, ri: &str) {
        let sources = self.sources(ri);
        let keys: Vec<Key> = self
            .routes
            .keys()
            .filter(|k| sources.contains(&k.0))
            .cloned()
            .collect();
        let mut by_family: BTreeMap<String, Vec<Arc<str>>> = BTreeMap::new();
        let mut record = Vec::new();
        for k in keys {
            if let Some(w) = self.item_for(conn, &k, ri) {
                let w: Arc<str> = Arc::from(stanza::render_item(&w));
                record.push(((ri.to_string(), k.1.clone(), k.2.clone()), Arc::clone(&w)));
                by_family.entry(k.1.clone()).or_default().push(w);
            }
        }
        let Some(a) = self.agents.get_mut(&conn) else {
            return;
        };
        for (k, w) in record {
            a.sent.insert(k, w);
        }
        for (fam, items) in by_family {
            for chunk in items.chunks(64) {
                let refs: Vec<&str> = chunk.iter().map(|s| &**s).collect();
                let msg = stanza::route_event_rendered(&a.name, &format!("{fam}/{ri}"), &refs, &[]);
                let _ = a.tx.send(msg).await;
            }
        }
    }

    async fn push_config(&mut self, conn: u64) {
        let Some(a) = self.agents.get_mut(&conn) else {
            return;
        };
        let Some(vr) = a.vr.clone() else {
            return;
        };
        let want = ifmap::view(&self.snap, &vr, &a.vms);
        let changes = ifmap::diff(&a.config_sent, &want);
        a.config_sent = want;
        for chunk in changes.chunks(16) {
            let cfg = xmpp::ifmap::encode_config(chunk);
            let _ = a.tx.send(stanza::config_iq(&vr, cfg)).await;
        }
        if !changes.is_empty() {
            self.stats().config_messages += changes.len().div_ceil(16) as u64;
        }
    }

    async fn config_changed(&mut self) {
        if let Ok(s) = self.store.snapshot() {
            self.snap = s;
        }
        let new_leaks = leaks(&self.snap);
        let leaks_changed = new_leaks != self.leaks;
        self.leaks = new_leaks;
        let conns: Vec<u64> = self.agents.keys().copied().collect();
        for c in &conns {
            self.push_config(*c).await;
        }
        if leaks_changed {
            // Re-evaluate what every subscription sees.
            let keys: Vec<Key> = self.routes.keys().cloned().collect();
            for c in &conns {
                let ris: Vec<String> = self
                    .agents
                    .get(c)
                    .map(|a| a.subs.keys().cloned().collect())
                    .unwrap_or_default();
                // Withdraw what is no longer visible.
                let stale: Vec<Key> = self
                    .agents
                    .get(c)
                    .map(|a| a.sent.keys().cloned().collect())
                    .unwrap_or_default();
                for k in stale {
                    let visible = self
                        .routes
                        .keys()
                        .any(|rk| rk.1 == k.1 && rk.2 == k.2 && self.sources(&k.0).contains(&rk.0));
                    if !visible {
                        if let Some(a) = self.agents.get_mut(c) {
                            a.sent.remove(&k);
                            let msg = stanza::route_event(
                                &a.name,
                                &format!("{}/{}", k.1, k.0),
                                &[],
                                std::slice::from_ref(&k.2),
                            );
                            let _ = a.tx.send(msg).await;
                        }
                    }
                }
                let _ = ris;
            }
            for k in keys {
                self.propagate(&k).await;
            }
        }
    }

    async fn timers(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                !a.eor_sent
                    && a.last_sub
                        .is_some_and(|t| now.duration_since(t) >= self.eor_delay)
            })
            .map(|(c, _)| *c)
            .collect();
        for c in due {
            if let Some(a) = self.agents.get_mut(&c) {
                a.eor_sent = true;
                let _ =
                    a.tx.send(stanza::end_of_rib(CONTROL_NODE_JID, &a.name))
                        .await;
            }
        }
    }

    fn report(&self) {
        let mut s = self.stats();
        s.agents = self.agents.values().map(|a| a.name.clone()).collect();
        s.routes = self
            .routes
            .iter()
            .map(|(k, p)| (k.clone(), p.len()))
            .collect();
        s.subscriptions = self
            .agents
            .values()
            .map(|a| (a.name.clone(), a.subs.keys().cloned().collect()))
            .collect();
    }
}
