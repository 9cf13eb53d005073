//! [`OnFirstUse`]: an [`Hcn`] that opens the real one when first needed.
//!
//! The Docker driver's service must come up, serve its plugin pipe and
//! write its spec file even where HNS cannot be loaded (the Containers
//! feature not installed yet, or Wine): Docker then gets HNS's error on
//! the calls that need it instead of finding no plugin, and the service
//! does not fail in a restart loop. Opening is retried on every call until
//! it succeeds once.

use std::sync::OnceLock;

use crate::schema::{HostComputeEndpoint, HostComputeNetwork, HostComputeQuery};
use crate::{Hcn, HcnError, Uuid};

/// Opens `H` with `open` on the first call that needs it.
pub struct OnFirstUse<H> {
    open: fn() -> Result<H, HcnError>,
    cell: OnceLock<H>,
}

impl<H: Hcn> OnFirstUse<H> {
    pub fn new(open: fn() -> Result<H, HcnError>) -> Self {
        Self {
            open,
            cell: OnceLock::new(),
        }
    }

    /// The opened `H`, opening it now if no call has yet.
    pub fn get(&self) -> Result<&H, HcnError> {
        if let Some(h) = self.cell.get() {
            return Ok(h);
        }
        let h = (self.open)()?;
        // A racing call may have opened it first: either one will do.
        let _ = self.cell.set(h);
        self.cell
            .get()
            .ok_or_else(|| HcnError::Unavailable("opened but not kept".into()))
    }
}

impl<H: Hcn> Hcn for OnFirstUse<H> {
    fn create_network(&self, s: &HostComputeNetwork) -> Result<HostComputeNetwork, HcnError> {
        self.get()?.create_network(s)
    }
    fn get_network(&self, id: &Uuid) -> Result<Option<HostComputeNetwork>, HcnError> {
        self.get()?.get_network(id)
    }
    fn list_networks(&self, q: &HostComputeQuery) -> Result<Vec<HostComputeNetwork>, HcnError> {
        self.get()?.list_networks(q)
    }
    fn delete_network(&self, id: &Uuid) -> Result<(), HcnError> {
        self.get()?.delete_network(id)
    }
    fn create_endpoint(
        &self,
        n: &Uuid,
        s: &HostComputeEndpoint,
    ) -> Result<HostComputeEndpoint, HcnError> {
        self.get()?.create_endpoint(n, s)
    }
    fn get_endpoint(&self, id: &Uuid) -> Result<Option<HostComputeEndpoint>, HcnError> {
        self.get()?.get_endpoint(id)
    }
    fn list_endpoints(&self, q: &HostComputeQuery) -> Result<Vec<HostComputeEndpoint>, HcnError> {
        self.get()?.list_endpoints(q)
    }
    fn delete_endpoint(&self, id: &Uuid) -> Result<(), HcnError> {
        self.get()?.delete_endpoint(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHcn;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static OPENS: AtomicUsize = AtomicUsize::new(0);
    static FAIL_UNTIL: AtomicUsize = AtomicUsize::new(0);

    fn open() -> Result<FakeHcn, HcnError> {
        let n = OPENS.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= FAIL_UNTIL.load(Ordering::SeqCst) {
            Err(HcnError::Unavailable(
                "computenetwork.dll: not found".into(),
            ))
        } else {
            Ok(FakeHcn::new())
        }
    }

    #[test]
    fn fails_with_the_open_error_until_open_succeeds_then_keeps_it() {
        FAIL_UNTIL.store(2, Ordering::SeqCst);
        let h = OnFirstUse::new(open);
        for _ in 0..2 {
            let e = h
                .list_networks(&HostComputeQuery::default())
                .expect_err("not open yet");
            assert!(e.to_string().contains("computenetwork.dll"), "{e}");
        }
        assert!(h
            .list_networks(&HostComputeQuery::default())
            .expect("opened")
            .is_empty());
        h.list_endpoints(&HostComputeQuery::default())
            .expect("still open");
        assert_eq!(OPENS.load(Ordering::SeqCst), 3, "opened once it worked");
    }
}
