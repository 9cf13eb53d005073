//! The in-memory state, its indices, snapshots and the redb persistence.
//!
//! Every object lives in memory (the agent's scale is 10k ports, a few MB
//! of JSON) with indices for what the API needs to answer in O(log n):
//! fq_name -> uuid, back-references, children, addresses in use per VN,
//! MACs in use, allocated VN and SG ids. redb holds one table per type,
//! `uuid (u128) -> JSON bytes` of the stored object, plus a `meta` table
//! with the revision.
//!
//! A write runs a closure on a [`Txn`] that changes the in-memory state
//! directly and keeps an undo log. If the closure fails, the undo log is
//! replayed backwards and nothing else happens; if it succeeds, the changed
//! objects are written to redb in one write transaction, and only when that
//! commits is the revision bumped and announced. Writers are serialised by
//! the state lock, so the undo log is always exact.

use crate::error::{ApiError, StoreError};
use crate::schema::{Ty, NTYPES};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use tokio::sync::watch;
use uuid::Uuid;

type ObjMap = BTreeMap<Uuid, Arc<Value>>;
type FqMap = HashMap<Vec<String>, Uuid>;

const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

fn table(ty: Ty) -> TableDefinition<'static, u128, &'static [u8]> {
    TableDefinition::new(ty.name())
}

/// Everything in memory. The object and fq maps are behind `Arc`s so that a
/// [`Snapshot`] is a handful of pointer copies; a write after a snapshot
/// clones only the maps of the types it touches.
#[derive(Default)]
pub(crate) struct State {
    pub revision: u64,
    pub objs: [Arc<ObjMap>; NTYPES],
    pub fq: [Arc<FqMap>; NTYPES],
    pub kind: HashMap<Uuid, Ty>,
    /// Target uuid -> the objects holding a reference to it.
    pub back: HashMap<Uuid, BTreeSet<(Ty, Uuid)>>,
    /// Parent uuid -> children.
    pub children: HashMap<Uuid, BTreeSet<(Ty, Uuid)>>,
    /// (VN uuid, address) -> instance-ip uuid.
    pub ips: HashMap<(Uuid, IpAddr), Uuid>,
    /// Normalised MAC -> VMI uuid.
    pub macs: HashMap<String, Uuid>,
    pub vn_ids: BTreeSet<u64>,
    pub sg_ids: BTreeSet<u64>,
    /// Subnet uuid -> last address handed out, where the next search
    /// starts, so that allocation stays O(1) amortised. Not persisted: after
    /// a restart the search starts at the beginning again.
    pub hints: HashMap<String, u128>,
}

// ---- JSON accessors shared by the indices and the operations -------------

pub(crate) fn fq_of(obj: &Value) -> Vec<String> {
    obj.get("fq_name")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn uuid_at(v: &Value, key: &str) -> Option<Uuid> {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// Uuids of the entries of `<field>` (stored refs always carry a uuid).
pub(crate) fn ref_uuids<'a>(obj: &'a Value, field: &str) -> impl Iterator<Item = Uuid> + 'a {
    obj.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| uuid_at(r, "uuid"))
}

pub(crate) fn iip_key(obj: &Value) -> Option<(Uuid, IpAddr)> {
    let vn = ref_uuids(obj, "virtual_network_refs").next()?;
    let ip = obj
        .get("instance_ip_address")
        .and_then(Value::as_str)?
        .parse()
        .ok()?;
    Some((vn, ip))
}

pub(crate) fn vmi_macs(obj: &Value) -> Vec<String> {
    obj.get("virtual_machine_interface_mac_addresses")
        .and_then(|m| m.get("mac_address"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl State {
    pub fn get(&self, ty: Ty, uuid: &Uuid) -> Option<&Arc<Value>> {
        self.objs[ty.index()].get(uuid)
    }

    pub fn by_fq(&self, ty: Ty, fq: &[String]) -> Option<Uuid> {
        self.fq[ty.index()].get(fq).copied()
    }

    pub fn iter(&self, ty: Ty) -> impl Iterator<Item = (&Uuid, &Arc<Value>)> {
        self.objs[ty.index()].iter()
    }

    /// Replace (or remove) one object, keeping every index right. Returns
    /// the previous version.
    fn raw_set(&mut self, ty: Ty, uuid: Uuid, new: Option<Arc<Value>>) -> Option<Arc<Value>> {
        let old = match &new {
            Some(v) => Arc::make_mut(&mut self.objs[ty.index()]).insert(uuid, Arc::clone(v)),
            None => Arc::make_mut(&mut self.objs[ty.index()]).remove(&uuid),
        };
        if let Some(o) = &old {
            self.unindex(ty, uuid, o);
        }
        if let Some(n) = &new {
            self.index(ty, uuid, n);
        }
        old
    }

    fn index(&mut self, ty: Ty, uuid: Uuid, obj: &Value) {
        Arc::make_mut(&mut self.fq[ty.index()]).insert(fq_of(obj), uuid);
        self.kind.insert(uuid, ty);
        for t in ty.refs() {
            for r in ref_uuids(obj, &Ty::ref_field(*t)) {
                self.back.entry(r).or_default().insert((ty, uuid));
            }
        }
        if let Some(p) = uuid_at(obj, "parent_uuid") {
            self.children.entry(p).or_default().insert((ty, uuid));
        }
        match ty {
            Ty::InstanceIp => {
                if let Some(k) = iip_key(obj) {
                    self.ips.insert(k, uuid);
                }
            }
            Ty::VirtualMachineInterface => {
                for m in vmi_macs(obj) {
                    self.macs.insert(m, uuid);
                }
            }
            Ty::VirtualNetwork => {
                if let Some(id) = obj
                    .get("virtual_network_network_id")
                    .and_then(Value::as_u64)
                {
                    self.vn_ids.insert(id);
                }
            }
            Ty::SecurityGroup => {
                if let Some(id) = obj.get("security_group_id").and_then(Value::as_u64) {
                    self.sg_ids.insert(id);
                }
            }
            _ => {}
        }
    }

    fn unindex(&mut self, ty: Ty, uuid: Uuid, obj: &Value) {
        let fq = fq_of(obj);
        let fqm = Arc::make_mut(&mut self.fq[ty.index()]);
        if fqm.get(&fq) == Some(&uuid) {
            fqm.remove(&fq);
        }
        self.kind.remove(&uuid);
        for t in ty.refs() {
            for r in ref_uuids(obj, &Ty::ref_field(*t)) {
                if let Some(s) = self.back.get_mut(&r) {
                    s.remove(&(ty, uuid));
                    if s.is_empty() {
                        self.back.remove(&r);
                    }
                }
            }
        }
        if let Some(p) = uuid_at(obj, "parent_uuid") {
            if let Some(s) = self.children.get_mut(&p) {
                s.remove(&(ty, uuid));
                if s.is_empty() {
                    self.children.remove(&p);
                }
            }
        }
        match ty {
            Ty::InstanceIp => {
                if let Some(k) = iip_key(obj) {
                    if self.ips.get(&k) == Some(&uuid) {
                        self.ips.remove(&k);
                    }
                }
            }
            Ty::VirtualMachineInterface => {
                for m in vmi_macs(obj) {
                    if self.macs.get(&m) == Some(&uuid) {
                        self.macs.remove(&m);
                    }
                }
            }
            Ty::VirtualNetwork => {
                if let Some(id) = obj
                    .get("virtual_network_network_id")
                    .and_then(Value::as_u64)
                {
                    self.vn_ids.remove(&id);
                }
            }
            Ty::SecurityGroup => {
                if let Some(id) = obj.get("security_group_id").and_then(Value::as_u64) {
                    self.sg_ids.remove(&id);
                }
            }
            _ => {}
        }
    }
}

/// The write context of one API operation: changes go straight into the
/// state and are undone if the operation fails. See the module docs.
pub(crate) struct Txn<'a> {
    st: &'a mut State,
    undo: Vec<(Ty, Uuid, Option<Arc<Value>>)>,
    /// Allocation hints replaced, so that a failed operation does not even
    /// move where the next allocation starts.
    hint_undo: Vec<(String, Option<u128>)>,
}

impl Txn<'_> {
    pub(crate) fn st(&self) -> &State {
        self.st
    }

    pub(crate) fn set_hint(&mut self, subnet: String, last: u128) {
        let old = self.st.hints.insert(subnet.clone(), last);
        self.hint_undo.push((subnet, old));
    }

    pub(crate) fn put(&mut self, ty: Ty, uuid: Uuid, obj: Value) {
        let old = self.st.raw_set(ty, uuid, Some(Arc::new(obj)));
        self.undo.push((ty, uuid, old));
    }

    pub(crate) fn remove(&mut self, ty: Ty, uuid: Uuid) {
        let old = self.st.raw_set(ty, uuid, None);
        self.undo.push((ty, uuid, old));
    }

    fn rollback(self) {
        let Txn {
            st,
            undo,
            hint_undo,
        } = self;
        for (ty, uuid, old) in undo.into_iter().rev() {
            st.raw_set(ty, uuid, old);
        }
        for (k, old) in hint_undo.into_iter().rev() {
            match old {
                Some(v) => st.hints.insert(k, v),
                None => st.hints.remove(&k),
            };
        }
    }
}

/// A consistent, immutable view of every object at one revision.
#[derive(Clone)]
pub struct Snapshot {
    /// The revision this view shows (bumped by every committed write).
    pub revision: u64,
    objs: [Arc<ObjMap>; NTYPES],
    fq: [Arc<FqMap>; NTYPES],
}

impl Snapshot {
    /// The stored object (no envelope, no `href`s or back-refs), with its
    /// forward refs `{to, uuid, attr}`.
    pub fn get(&self, ty: &str, uuid: &Uuid) -> Option<&Value> {
        let t = Ty::from_name(ty)?;
        self.objs[t.index()].get(uuid).map(|v| &**v)
    }

    /// Every object of a type, ordered by uuid. Unknown types are empty.
    pub fn iter(&self, ty: &str) -> impl Iterator<Item = (&Uuid, &Value)> {
        Ty::from_name(ty)
            .map(|t| &self.objs[t.index()])
            .into_iter()
            .flat_map(|m| m.iter().map(|(u, v)| (u, &**v)))
    }

    pub fn by_fq_name(&self, ty: &str, fq: &[String]) -> Option<(&Uuid, &Value)> {
        let t = Ty::from_name(ty)?;
        let u = self.fq[t.index()].get(fq)?;
        self.objs[t.index()]
            .get_key_value(u)
            .map(|(u, v)| (u, &**v))
    }

    /// Number of objects of a type.
    pub fn len(&self, ty: &str) -> usize {
        Ty::from_name(ty).map_or(0, |t| self.objs[t.index()].len())
    }

    pub fn is_empty(&self) -> bool {
        self.objs.iter().all(|m| m.is_empty())
    }
}

/// Builds a [`Snapshot`] from objects that come from somewhere else than
/// this store (the agent's controller mode: config learned over XMPP), so
/// that one model reads both the same way.
pub struct SnapshotBuilder {
    revision: u64,
    objs: [ObjMap; NTYPES],
    fq: [FqMap; NTYPES],
}

impl SnapshotBuilder {
    /// Add (or replace) an object of type `ty` (upstream's hyphenated
    /// name); `false` if the type is not one this crate knows.
    pub fn insert(&mut self, ty: &str, uuid: Uuid, obj: Value) -> bool {
        let Some(t) = Ty::from_name(ty) else {
            return false;
        };
        self.fq[t.index()].insert(fq_of(&obj), uuid);
        self.objs[t.index()].insert(uuid, Arc::new(obj));
        true
    }

    pub fn build(self) -> Snapshot {
        Snapshot {
            revision: self.revision,
            objs: self.objs.map(Arc::new),
            fq: self.fq.map(Arc::new),
        }
    }
}

impl Snapshot {
    /// An empty builder for a snapshot at `revision`.
    pub fn builder(revision: u64) -> SnapshotBuilder {
        SnapshotBuilder {
            revision,
            objs: Default::default(),
            fq: Default::default(),
        }
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision && self.objs == other.objs
    }
}

impl core::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut m = f.debug_map();
        m.entry(&"revision", &self.revision);
        for t in Ty::ALL {
            m.entry(&t.name(), &self.objs[t.index()]);
        }
        m.finish()
    }
}

/// The config store: redb on disk, everything in memory. `Send + Sync`;
/// share it as `Arc<Store>`.
pub struct Store {
    db: redb::Database,
    state: RwLock<State>,
    tx: watch::Sender<u64>,
}

impl Store {
    /// Open (creating if needed) the database at `path` and load it; the
    /// public `Store::open` (in `ops`) also seeds upstream's defaults.
    pub(crate) fn open_unseeded(path: &Path) -> Result<Arc<Store>, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // The whole config is also held in memory (the maps snapshots
        // share), so redb's page cache only speeds up commits: keep it
        // small instead of redb's default of up to 1 GiB.
        let db = redb::Database::builder()
            .set_cache_size(16 * 1024 * 1024)
            .create(path)?;
        {
            // Create the tables so that reads never meet a missing one.
            let w = db.begin_write()?;
            w.open_table(META)?;
            for t in Ty::ALL {
                w.open_table(table(t))?;
            }
            w.commit()?;
        }
        let mut st = State::default();
        {
            let r = db.begin_read()?;
            st.revision = r
                .open_table(META)?
                .get("revision")?
                .map_or(0, |g| g.value());
            for t in Ty::ALL {
                let tab = r.open_table(table(t))?;
                for row in tab.iter()? {
                    let (k, v) = row?;
                    let uuid = Uuid::from_u128(k.value());
                    let obj: Value = serde_json::from_slice(v.value())
                        .map_err(|e| StoreError::Corrupt(format!("{} {uuid}: {e}", t.name())))?;
                    if st.kind.contains_key(&uuid) {
                        return Err(StoreError::Corrupt(format!(
                            "uuid {uuid} stored under two types"
                        )));
                    }
                    st.raw_set(t, uuid, Some(Arc::new(obj)));
                }
            }
        }
        let (tx, _) = watch::channel(st.revision);
        Ok(Arc::new(Store {
            db,
            state: RwLock::new(st),
            tx,
        }))
    }

    /// Receives the revision after each commit.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// A consistent view of everything (cheap: shares the maps).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let st = self.read_state();
        Ok(Snapshot {
            revision: st.revision,
            objs: st.objs.clone(),
            fq: st.fq.clone(),
        })
    }

    /// Current revision.
    pub fn revision(&self) -> u64 {
        self.read_state().revision
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run one operation as one transaction: `f` changes the state through
    /// the [`Txn`]; on `Err` every change is undone, on `Ok` the changed
    /// objects are committed to redb in one write transaction (and undone if
    /// that fails), then the revision is bumped and announced. An operation
    /// that changed nothing commits nothing.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let mut txn = Txn {
            st: &mut guard,
            undo: Vec::new(),
            hint_undo: Vec::new(),
        };
        let r = match f(&mut txn) {
            Ok(r) => r,
            Err(e) => {
                txn.rollback();
                return Err(e);
            }
        };
        if txn.undo.is_empty() {
            return Ok(r);
        }
        let rev = txn.st.revision + 1;
        if let Err(e) = persist(&self.db, txn.st, &txn.undo, rev) {
            tracing::error!("config store commit failed: {e}");
            txn.rollback();
            return Err(e.into());
        }
        txn.st.revision = rev;
        drop(guard);
        self.tx.send_replace(rev);
        Ok(r)
    }
}

fn persist(
    db: &redb::Database,
    st: &State,
    changed: &[(Ty, Uuid, Option<Arc<Value>>)],
    rev: u64,
) -> Result<(), StoreError> {
    let keys: BTreeSet<(Ty, Uuid)> = changed.iter().map(|(t, u, _)| (*t, *u)).collect();
    let w = db.begin_write()?;
    {
        let mut meta = w.open_table(META)?;
        meta.insert("revision", rev)?;
        for t in Ty::ALL {
            let mut tab = None;
            for (_, u) in keys.range((t, Uuid::nil())..=(t, Uuid::max())) {
                let tab = match &mut tab {
                    Some(x) => x,
                    None => tab.insert(w.open_table(table(t))?),
                };
                match st.get(t, u) {
                    Some(v) => {
                        let bytes = serde_json::to_vec(&**v)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        tab.insert(u.as_u128(), bytes.as_slice())?;
                    }
                    None => {
                        tab.remove(u.as_u128())?;
                    }
                }
            }
        }
    }
    w.commit()?;
    Ok(())
}
