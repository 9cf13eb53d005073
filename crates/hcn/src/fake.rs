//! An in-memory [`Hcn`] for tests of code that drives HNS.
//!
//! This is a test double: HNS cannot run on Linux or under Wine. It keeps
//! networks and endpoints in maps, assigns ids, fills in what HNS would
//! (ids, `HostComputeNetwork` of an endpoint), answers the `Name`, `ID` and
//! `VirtualNetwork` filters, and returns HNS's HRESULTs for missing
//! objects. It records every call, and a failure can be injected into the
//! next call of a given name.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

use crate::error::hresult;
use crate::schema::{HostComputeEndpoint, HostComputeNetwork, HostComputeQuery};
use crate::{Hcn, HcnError};

#[derive(Debug, Default)]
struct State {
    networks: BTreeMap<Uuid, HostComputeNetwork>,
    endpoints: BTreeMap<Uuid, HostComputeEndpoint>,
    calls: Vec<String>,
    fail: BTreeMap<&'static str, i32>,
    next_id: u128,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct FakeHcn {
    state: Mutex<State>,
}

impl FakeHcn {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls made so far, as `"HcnCreateEndpoint"` etc.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The next call named `call` (e.g. `"HcnCreateEndpoint"`) fails with
    /// `hr`.
    pub fn fail_next(&self, call: &'static str, hr: i32) {
        self.lock().fail.insert(call, hr);
    }

    pub fn networks(&self) -> Vec<HostComputeNetwork> {
        self.lock().networks.values().cloned().collect()
    }

    pub fn endpoints(&self) -> Vec<HostComputeEndpoint> {
        self.lock().endpoints.values().cloned().collect()
    }

    /// Puts an endpoint in place as if somebody else had created it.
    pub fn insert_endpoint(&self, ep: HostComputeEndpoint) -> Uuid {
        let mut s = self.lock();
        let id = ep.id.unwrap_or_else(|| s.new_id());
        s.endpoints
            .insert(id, HostComputeEndpoint { id: Some(id), ..ep });
        id
    }
}

impl State {
    fn enter(&mut self, call: &'static str) -> Result<(), HcnError> {
        self.calls.push(call.to_owned());
        match self.fail.remove(call) {
            Some(hr) => Err(HcnError::Call {
                call,
                hresult: hr,
                record: Some(format!(
                    r#"{{"Success":false,"Error":"injected failure","ErrorCode":{}}}"#,
                    hr as u32
                )),
            }),
            None => Ok(()),
        }
    }

    fn new_id(&mut self) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(0x0f0f_0000_0000_4000_8000_0000_0000_0000 | self.next_id)
    }
}

fn not_found(call: &'static str, hr: i32) -> HcnError {
    HcnError::Call {
        call,
        hresult: hr,
        record: Some(r#"{"Success":false,"Error":"Element not found. "}"#.to_owned()),
    }
}

/// Does `filter` (the query's JSON-in-a-string) match an object with this
/// id, name and network?
fn matches(q: &HostComputeQuery, id: Option<Uuid>, name: &str, network: Option<Uuid>) -> bool {
    if q.filter.is_empty() {
        return true;
    }
    let Ok(serde_json::Value::Object(f)) = serde_json::from_str(&q.filter) else {
        return false;
    };
    f.iter().all(|(k, v)| {
        let v = v.as_str().unwrap_or_default();
        let as_id = |u: Option<Uuid>| u.is_some_and(|u| Uuid::parse_str(v).ok() == Some(u));
        match k.as_str() {
            "Name" => name == v,
            "ID" => as_id(id),
            "VirtualNetwork" | "HostComputeNetwork" => as_id(network),
            _ => false,
        }
    })
}

impl Hcn for FakeHcn {
    fn create_network(
        &self,
        settings: &HostComputeNetwork,
    ) -> Result<HostComputeNetwork, HcnError> {
        let mut s = self.lock();
        s.enter("HcnCreateNetwork")?;
        if s.networks.values().any(|n| n.name == settings.name) {
            return Err(HcnError::Call {
                call: "HcnCreateNetwork",
                hresult: hresult::HCN_E_NETWORK_ALREADY_EXISTS,
                record: None,
            });
        }
        let id = s.new_id();
        let n = HostComputeNetwork {
            id: Some(id),
            ..settings.clone()
        };
        s.networks.insert(id, n.clone());
        Ok(n)
    }

    fn get_network(&self, id: &Uuid) -> Result<Option<HostComputeNetwork>, HcnError> {
        let mut s = self.lock();
        s.enter("HcnOpenNetwork")?;
        Ok(s.networks.get(id).cloned())
    }

    fn list_networks(&self, q: &HostComputeQuery) -> Result<Vec<HostComputeNetwork>, HcnError> {
        let mut s = self.lock();
        s.enter("HcnEnumerateNetworks")?;
        Ok(s.networks
            .values()
            .filter(|n| matches(q, n.id, &n.name, None))
            .cloned()
            .collect())
    }

    fn delete_network(&self, id: &Uuid) -> Result<(), HcnError> {
        let mut s = self.lock();
        s.enter("HcnDeleteNetwork")?;
        if s.endpoints
            .values()
            .any(|e| e.host_compute_network == Some(*id))
        {
            return Err(HcnError::Call {
                call: "HcnDeleteNetwork",
                hresult: hresult::HCN_E_ENTITY_HAS_REFERENCES,
                record: None,
            });
        }
        match s.networks.remove(id) {
            Some(_) => Ok(()),
            None => Err(not_found(
                "HcnDeleteNetwork",
                hresult::HCN_E_NETWORK_NOT_FOUND,
            )),
        }
    }

    fn create_endpoint(
        &self,
        network: &Uuid,
        settings: &HostComputeEndpoint,
    ) -> Result<HostComputeEndpoint, HcnError> {
        let mut s = self.lock();
        s.enter("HcnCreateEndpoint")?;
        if !s.networks.contains_key(network) {
            return Err(not_found(
                "HcnOpenNetwork",
                hresult::HCN_E_NETWORK_NOT_FOUND,
            ));
        }
        if settings.mac_address.is_empty() || crate::parse_mac(&settings.mac_address).is_none() {
            // Our callers always set one; HNS would take one from the pool.
            return Err(HcnError::Invalid(format!(
                "fake HNS: bad MacAddress {:?}",
                settings.mac_address
            )));
        }
        let id = s.new_id();
        let ep = HostComputeEndpoint {
            id: Some(id),
            host_compute_network: Some(*network),
            ..settings.clone()
        };
        s.endpoints.insert(id, ep.clone());
        Ok(ep)
    }

    fn get_endpoint(&self, id: &Uuid) -> Result<Option<HostComputeEndpoint>, HcnError> {
        let mut s = self.lock();
        s.enter("HcnOpenEndpoint")?;
        Ok(s.endpoints.get(id).cloned())
    }

    fn list_endpoints(&self, q: &HostComputeQuery) -> Result<Vec<HostComputeEndpoint>, HcnError> {
        let mut s = self.lock();
        s.enter("HcnEnumerateEndpoints")?;
        Ok(s.endpoints
            .values()
            .filter(|e| matches(q, e.id, &e.name, e.host_compute_network))
            .cloned()
            .collect())
    }

    fn delete_endpoint(&self, id: &Uuid) -> Result<(), HcnError> {
        let mut s = self.lock();
        s.enter("HcnDeleteEndpoint")?;
        match s.endpoints.remove(id) {
            Some(_) => Ok(()),
            None => Err(not_found(
                "HcnDeleteEndpoint",
                hresult::HCN_E_ENDPOINT_NOT_FOUND,
            )),
        }
    }
}
