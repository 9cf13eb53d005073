//! The same operations on a Store, for in-process callers.

use crate::error::{not_found, ApiError};
use crate::ops::common::join;
use crate::ops::create::create;
use crate::ops::delete::delete;
use crate::ops::read::{render, ReadOpts};
use crate::ops::ref_update::ref_update;
use crate::ops::update::update;
use crate::schema::Ty;
use crate::store::{fq_of, Store};
use serde_json::Value;
use uuid::Uuid;

pub(crate) fn ty_of(name: &str) -> Result<Ty, ApiError> {
    Ty::from_name(name).ok_or_else(|| not_found(format!("unknown resource type \"{name}\"")))
}

impl Store {
    /// Open (creating if needed) the database at `path`, load it, and seed
    /// upstream's defaults (`default-domain`, `default-project` with its
    /// `default` security group, `default-network-ipam`) if they are missing.
    pub fn open(path: &std::path::Path) -> Result<std::sync::Arc<Store>, crate::StoreError> {
        let store = Store::open_unseeded(path)?;
        store
            .write(super::seed)
            .map_err(|e| crate::StoreError::Corrupt(format!("seeding defaults: {e}")))?;
        Ok(store)
    }

    /// Create an object of type `ty` (upstream's hyphenated name) from its
    /// inner JSON (no envelope), in one transaction. Returns the stored
    /// object with its uuid, fq_name and allocated fields.
    pub fn create(&self, ty: &str, obj: Value) -> Result<Value, ApiError> {
        let t = ty_of(ty)?;
        self.write(|txn| create(txn, t, obj))
    }

    /// Update (merge) an object; see [`crate`] docs for the semantics.
    pub fn update(&self, ty: &str, uuid: &Uuid, obj: Value) -> Result<Value, ApiError> {
        let t = ty_of(ty)?;
        self.write(|txn| update(txn, t, *uuid, obj))
    }

    /// Delete an object (409 while referred to or with children).
    pub fn delete(&self, ty: &str, uuid: &Uuid) -> Result<(), ApiError> {
        let t = ty_of(ty)?;
        self.write(|txn| delete(txn, t, *uuid))
    }

    /// Apply a `ref-update` body (`{"type","uuid","ref-type","ref-uuid"|
    /// "ref-fq-name","operation","attr"}`).
    pub fn ref_update(&self, body: &Value) -> Result<Value, ApiError> {
        self.write(|txn| ref_update(txn, body))
    }

    /// The API form of one object (with hrefs relative to `base`, back-refs
    /// and children).
    pub fn read(&self, ty: &str, uuid: &Uuid, opts: &ReadOpts) -> Result<Value, ApiError> {
        let t = ty_of(ty)?;
        let st = self.read_state();
        let obj = st
            .get(t, uuid)
            .ok_or_else(|| not_found(format!("{ty} {uuid} not found")))?;
        Ok(render(&st, t, uuid, obj, opts))
    }

    /// uuid of `(type, fq_name)`.
    pub fn fq_name_to_id(&self, ty: &str, fq: &[String]) -> Result<Uuid, ApiError> {
        let t = ty_of(ty)?;
        self.read_state()
            .by_fq(t, fq)
            .ok_or_else(|| not_found(format!("{ty} {} not found", join(fq))))
    }

    /// `(type, fq_name)` of a uuid.
    pub fn id_to_fq_name(&self, uuid: &Uuid) -> Result<(&'static str, Vec<String>), ApiError> {
        let st = self.read_state();
        let t = st
            .kind
            .get(uuid)
            .copied()
            .ok_or_else(|| not_found(format!("ID {uuid} not found")))?;
        let fq = st.get(t, uuid).map(|o| fq_of(o)).unwrap_or_default();
        Ok((t.name(), fq))
    }
}
