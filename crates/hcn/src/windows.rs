//! [`ComputeNetwork`]: the [`Hcn`] calls on `computenetwork.dll`.
//!
//! The DLL is loaded at run time (`LoadLibraryExW`, system32 only) rather
//! than imported: an import would stop every exe that links this crate
//! from even starting where the DLL is missing (Wine, Windows before
//! 1809), whereas here only [`ComputeNetwork::new`] fails, with
//! [`HcnError::Unavailable`]. hcsshim resolves these functions lazily for
//! the same reason.
//!
//! Every call is synchronous: HNS has finished (or failed) when it
//! returns, so nothing here waits or polls.

use std::ffi::c_void;
use std::ptr;

use uuid::Uuid;
use windows_sys::core::{GUID, HRESULT, PCWSTR, PWSTR};
use windows_sys::Win32::Foundation::{FreeLibrary, HMODULE};
use windows_sys::Win32::System::Com::CoTaskMemFree;
use windows_sys::Win32::System::LibraryLoader::{
    GetProcAddress, LoadLibraryExW, LOAD_LIBRARY_SEARCH_SYSTEM32,
};

use crate::schema::{HostComputeEndpoint, HostComputeNetwork, HostComputeQuery};
use crate::{Hcn, HcnError};

type Handle = *mut c_void;
type EnumerateFn = unsafe extern "system" fn(PCWSTR, *mut PWSTR, *mut PWSTR) -> HRESULT;
type CreateNetworkFn =
    unsafe extern "system" fn(*const GUID, PCWSTR, *mut Handle, *mut PWSTR) -> HRESULT;
type OpenFn = unsafe extern "system" fn(*const GUID, *mut Handle, *mut PWSTR) -> HRESULT;
type QueryFn = unsafe extern "system" fn(Handle, PCWSTR, *mut PWSTR, *mut PWSTR) -> HRESULT;
type DeleteFn = unsafe extern "system" fn(*const GUID, *mut PWSTR) -> HRESULT;
type CloseFn = unsafe extern "system" fn(Handle) -> HRESULT;
type CreateEndpointFn =
    unsafe extern "system" fn(Handle, *const GUID, PCWSTR, *mut Handle, *mut PWSTR) -> HRESULT;

struct Api {
    enumerate_networks: EnumerateFn,
    create_network: CreateNetworkFn,
    open_network: OpenFn,
    query_network: QueryFn,
    delete_network: DeleteFn,
    close_network: CloseFn,
    enumerate_endpoints: EnumerateFn,
    create_endpoint: CreateEndpointFn,
    open_endpoint: OpenFn,
    query_endpoint: QueryFn,
    delete_endpoint: DeleteFn,
    close_endpoint: CloseFn,
}

/// The real HNS, through `computenetwork.dll`.
pub struct ComputeNetwork {
    module: HMODULE,
    api: Api,
}

impl std::fmt::Debug for ComputeNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ComputeNetwork(computenetwork.dll)")
    }
}

// SAFETY: the module handle and function pointers are immutable after
// `new`; the HCN functions are documented as callable from any thread.
unsafe impl Send for ComputeNetwork {}
// SAFETY: as above.
unsafe impl Sync for ComputeNetwork {}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn guid(id: &Uuid) -> GUID {
    GUID::from_u128(id.as_u128())
}

/// Takes a string HNS allocated with `CoTaskMemAlloc`: reads and frees it.
///
/// # Safety
/// `p` is null or a NUL-terminated UTF-16 string from CoTaskMemAlloc that
/// nobody else frees.
unsafe fn take(p: PWSTR) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let mut len = 0usize;
    // SAFETY: NUL-terminated per the contract.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units were just read.
    let s = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) });
    // SAFETY: CoTaskMemAlloc'd, freed once.
    unsafe { CoTaskMemFree(p as *const c_void) };
    Some(s)
}

/// hcsshim's `checkForErrors`: a failing HRESULT, or a non-empty error
/// record even with success, is an error.
///
/// # Safety
/// As for [`take`] on `record`.
unsafe fn check(call: &'static str, hr: HRESULT, record: PWSTR) -> Result<(), HcnError> {
    // SAFETY: forwarded contract.
    let record = unsafe { take(record) }.filter(|r| !r.trim().is_empty());
    if hr < 0 || record.is_some() {
        return Err(HcnError::Call {
            call,
            hresult: if hr < 0 {
                hr
            } else {
                crate::error::hresult::E_FAIL
            },
            record,
        });
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(call: &'static str, s: &str) -> Result<T, HcnError> {
    serde_json::from_str(s).map_err(|source| HcnError::Json { call, source })
}

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u16>, HcnError> {
    serde_json::to_string(v)
        .map(|s| wide(&s))
        .map_err(|source| HcnError::Encode { what, source })
}

/// An open network or endpoint handle, closed on drop.
struct Opened {
    handle: Handle,
    close: CloseFn,
}

impl Drop for Opened {
    fn drop(&mut self) {
        // SAFETY: `handle` came from the matching open/create call and is
        // closed once. A close failure leaks a handle; nothing to do.
        let _ = unsafe { (self.close)(self.handle) };
    }
}

impl ComputeNetwork {
    /// Loads `computenetwork.dll` from system32 and resolves the calls.
    pub fn new() -> Result<Self, HcnError> {
        let name = wide("computenetwork.dll");
        // SAFETY: `name` is NUL-terminated UTF-16.
        let module =
            unsafe { LoadLibraryExW(name.as_ptr(), ptr::null_mut(), LOAD_LIBRARY_SEARCH_SYSTEM32) };
        if module.is_null() {
            return Err(HcnError::Unavailable(format!(
                "computenetwork.dll: {}",
                std::io::Error::last_os_error()
            )));
        }
        match Self::resolve(module) {
            Ok(api) => Ok(Self { module, api }),
            Err(e) => {
                // SAFETY: loaded above, not used afterwards.
                unsafe { FreeLibrary(module) };
                Err(e)
            }
        }
    }

    fn resolve(module: HMODULE) -> Result<Api, HcnError> {
        macro_rules! proc {
            ($name:literal, $ty:ty) => {{
                // SAFETY: `module` is loaded; the name is NUL-terminated.
                let p = unsafe { GetProcAddress(module, concat!($name, "\0").as_ptr()) };
                match p {
                    // SAFETY: the signature is the documented one of
                    // `$name` (computenetwork.h), as windows-sys declares it.
                    Some(f) => unsafe {
                        std::mem::transmute::<unsafe extern "system" fn() -> isize, $ty>(f)
                    },
                    None => {
                        return Err(HcnError::Unavailable(format!(
                            "computenetwork.dll has no {}",
                            $name
                        )))
                    }
                }
            }};
        }
        Ok(Api {
            enumerate_networks: proc!("HcnEnumerateNetworks", EnumerateFn),
            create_network: proc!("HcnCreateNetwork", CreateNetworkFn),
            open_network: proc!("HcnOpenNetwork", OpenFn),
            query_network: proc!("HcnQueryNetworkProperties", QueryFn),
            delete_network: proc!("HcnDeleteNetwork", DeleteFn),
            close_network: proc!("HcnCloseNetwork", CloseFn),
            enumerate_endpoints: proc!("HcnEnumerateEndpoints", EnumerateFn),
            create_endpoint: proc!("HcnCreateEndpoint", CreateEndpointFn),
            open_endpoint: proc!("HcnOpenEndpoint", OpenFn),
            query_endpoint: proc!("HcnQueryEndpointProperties", QueryFn),
            delete_endpoint: proc!("HcnDeleteEndpoint", DeleteFn),
            close_endpoint: proc!("HcnCloseEndpoint", CloseFn),
        })
    }

    fn enumerate(
        &self,
        call: &'static str,
        f: EnumerateFn,
        q: &HostComputeQuery,
    ) -> Result<Vec<Uuid>, HcnError> {
        let query = wide(&q.to_json());
        let (mut out, mut record) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: valid query string and out-pointers.
        let hr = unsafe { f(query.as_ptr(), &mut out, &mut record) };
        // SAFETY: both out strings are CoTaskMemAlloc'd or null, ours now.
        let out = unsafe { take(out) };
        // SAFETY: as above.
        unsafe { check(call, hr, record) }?;
        match out {
            None => Ok(Vec::new()),
            Some(s) if s.trim().is_empty() || s.trim() == "null" => Ok(Vec::new()),
            Some(s) => parse(call, &s),
        }
    }

    fn open(
        &self,
        call: &'static str,
        open: OpenFn,
        close: CloseFn,
        id: &Uuid,
    ) -> Result<Option<Opened>, HcnError> {
        let g = guid(id);
        let (mut handle, mut record) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: valid GUID and out-pointers.
        let hr = unsafe { open(&g, &mut handle, &mut record) };
        // SAFETY: `record` is ours.
        match unsafe { check(call, hr, record) } {
            Ok(()) => Ok(Some(Opened { handle, close })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn query<T: serde::de::DeserializeOwned>(
        &self,
        call: &'static str,
        f: QueryFn,
        h: &Opened,
        q: &HostComputeQuery,
    ) -> Result<T, HcnError> {
        let query = wide(&q.to_json());
        let (mut props, mut record) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: `h` is open; valid query and out-pointers.
        let hr = unsafe { f(h.handle, query.as_ptr(), &mut props, &mut record) };
        // SAFETY: ours.
        let props = unsafe { take(props) };
        // SAFETY: ours.
        unsafe { check(call, hr, record) }?;
        parse(call, props.as_deref().unwrap_or("{}"))
    }

    fn delete(&self, call: &'static str, f: DeleteFn, id: &Uuid) -> Result<(), HcnError> {
        let g = guid(id);
        let mut record = ptr::null_mut();
        // SAFETY: valid GUID and out-pointer.
        let hr = unsafe { f(&g, &mut record) };
        // SAFETY: ours.
        unsafe { check(call, hr, record) }
    }
}

impl Drop for ComputeNetwork {
    fn drop(&mut self) {
        // SAFETY: loaded in `new`; no handle outlives `self` (they borrow
        // it), so no function of the module runs after this.
        unsafe { FreeLibrary(self.module) };
    }
}

impl Hcn for ComputeNetwork {
    fn create_network(
        &self,
        settings: &HostComputeNetwork,
    ) -> Result<HostComputeNetwork, HcnError> {
        let doc = encode("network", settings)?;
        let zero = GUID::from_u128(0); // HNS picks the id
        let (mut handle, mut record) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: valid GUID, settings and out-pointers.
        let hr =
            unsafe { (self.api.create_network)(&zero, doc.as_ptr(), &mut handle, &mut record) };
        // SAFETY: ours.
        unsafe { check("HcnCreateNetwork", hr, record) }?;
        let h = Opened {
            handle,
            close: self.api.close_network,
        };
        self.query(
            "HcnQueryNetworkProperties",
            self.api.query_network,
            &h,
            &HostComputeQuery::all(),
        )
    }

    fn get_network(&self, id: &Uuid) -> Result<Option<HostComputeNetwork>, HcnError> {
        let Some(h) = self.open(
            "HcnOpenNetwork",
            self.api.open_network,
            self.api.close_network,
            id,
        )?
        else {
            return Ok(None);
        };
        self.query(
            "HcnQueryNetworkProperties",
            self.api.query_network,
            &h,
            &HostComputeQuery::all(),
        )
        .map(Some)
    }

    fn list_networks(&self, q: &HostComputeQuery) -> Result<Vec<HostComputeNetwork>, HcnError> {
        let ids = self.enumerate("HcnEnumerateNetworks", self.api.enumerate_networks, q)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // Gone between enumerate and open: skip it.
            if let Some(h) = self.open(
                "HcnOpenNetwork",
                self.api.open_network,
                self.api.close_network,
                &id,
            )? {
                out.push(self.query("HcnQueryNetworkProperties", self.api.query_network, &h, q)?);
            }
        }
        Ok(out)
    }

    fn delete_network(&self, id: &Uuid) -> Result<(), HcnError> {
        self.delete("HcnDeleteNetwork", self.api.delete_network, id)
    }

    fn create_endpoint(
        &self,
        network: &Uuid,
        settings: &HostComputeEndpoint,
    ) -> Result<HostComputeEndpoint, HcnError> {
        let Some(net) = self.open(
            "HcnOpenNetwork",
            self.api.open_network,
            self.api.close_network,
            network,
        )?
        else {
            return Err(HcnError::Call {
                call: "HcnOpenNetwork",
                hresult: crate::error::hresult::HCN_E_NETWORK_NOT_FOUND,
                record: None,
            });
        };
        let doc = encode("endpoint", settings)?;
        let zero = GUID::from_u128(0);
        let (mut handle, mut record) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: `net` is open; valid GUID, settings and out-pointers.
        let hr = unsafe {
            (self.api.create_endpoint)(net.handle, &zero, doc.as_ptr(), &mut handle, &mut record)
        };
        // SAFETY: ours.
        unsafe { check("HcnCreateEndpoint", hr, record) }?;
        let h = Opened {
            handle,
            close: self.api.close_endpoint,
        };
        self.query(
            "HcnQueryEndpointProperties",
            self.api.query_endpoint,
            &h,
            &HostComputeQuery::all(),
        )
    }

    fn get_endpoint(&self, id: &Uuid) -> Result<Option<HostComputeEndpoint>, HcnError> {
        let Some(h) = self.open(
            "HcnOpenEndpoint",
            self.api.open_endpoint,
            self.api.close_endpoint,
            id,
        )?
        else {
            return Ok(None);
        };
        self.query(
            "HcnQueryEndpointProperties",
            self.api.query_endpoint,
            &h,
            &HostComputeQuery::all(),
        )
        .map(Some)
    }

    fn list_endpoints(&self, q: &HostComputeQuery) -> Result<Vec<HostComputeEndpoint>, HcnError> {
        let ids = self.enumerate("HcnEnumerateEndpoints", self.api.enumerate_endpoints, q)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(h) = self.open(
                "HcnOpenEndpoint",
                self.api.open_endpoint,
                self.api.close_endpoint,
                &id,
            )? {
                out.push(self.query(
                    "HcnQueryEndpointProperties",
                    self.api.query_endpoint,
                    &h,
                    q,
                )?);
            }
        }
        Ok(out)
    }

    fn delete_endpoint(&self, id: &Uuid) -> Result<(), HcnError> {
        self.delete("HcnDeleteEndpoint", self.api.delete_endpoint, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under Wine (and on Windows without HNS) the DLL is missing: `new`
    /// must say so instead of the exe failing to load.
    #[test]
    fn new_loads_or_reports_unavailable() {
        match ComputeNetwork::new() {
            Ok(_) => {} // a real Windows host with HNS
            Err(HcnError::Unavailable(msg)) => assert!(msg.contains("computenetwork"), "{msg}"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn take_reads_and_frees() {
        // SAFETY: null is allowed.
        assert_eq!(unsafe { take(ptr::null_mut()) }, None);
    }

    #[test]
    fn guid_layout_matches_uuid_text() {
        let id = Uuid::parse_str("56553588-1538-4be6-b8e0-cb46402dc205").unwrap();
        let g = guid(&id);
        assert_eq!(g.data1, 0x5655_3588);
        assert_eq!(g.data2, 0x1538);
        assert_eq!(g.data3, 0x4BE6);
        assert_eq!(g.data4, [0xB8, 0xE0, 0xCB, 0x46, 0x40, 0x2D, 0xC2, 0x05]);
    }
}
