//! Linux backend: one veth pair per endpoint, through rtnetlink.
//!
//! The host side is named like upstream's taps (`tap` + 11 uuid chars) so the
//! vRouter attaches to it by the port API's `system-name`; the container side
//! gets the endpoint's MAC and MTU and a temporary name (`ctn` + 11 uuid
//! chars) until docker moves it into the sandbox and renames it `ethN`.
//! Ours are recognised by the host side's ifalias `contrail-docker:<vmi>`,
//! which survives a driver restart, so the host itself is the record.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};
use uuid::Uuid;

use super::{tap_name, BackendError, ContainerNetworking, EndpointSpec, HostEndpoint};

/// ifalias prefix marking our host-side veths.
pub const ALIAS_PREFIX: &str = "contrail-docker:";

/// Container-side temporary name.
pub fn container_name(vmi: &Uuid) -> String {
    format!("ctn{}", &tap_name(vmi)[3..])
}

/// One of our host-side veths as found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVeth {
    pub vmi: Uuid,
    pub index: u32,
    pub name: String,
    /// The peer is in another network namespace (a container's).
    pub peer_in_other_netns: bool,
}

pub struct LinuxBackend {
    handle: Handle,
}

fn nl(op: &str, e: rtnetlink::Error) -> BackendError {
    BackendError::failed(op, e)
}

impl LinuxBackend {
    /// Opens an rtnetlink socket; must run inside a tokio runtime.
    pub fn new() -> Result<Self, BackendError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| BackendError::failed("netlink socket", e))?;
        tokio::spawn(conn);
        Ok(LinuxBackend { handle })
    }

    async fn index_of(&self, name: &str) -> Result<Option<u32>, BackendError> {
        let mut s = self.handle.link().get().match_name(name).execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(Some(m.header.index)),
            Ok(None) => Ok(None),
            // ENODEV: no such link.
            Err(rtnetlink::Error::NetlinkError(e))
                if e.code.map(|c| c.get()) == Some(-libc::ENODEV) =>
            {
                Ok(None)
            }
            Err(e) => Err(nl("get link", e)),
        }
    }

    async fn del_name(&self, name: &str) -> Result<(), BackendError> {
        if let Some(i) = self.index_of(name).await? {
            match self.handle.link().del(i).execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e))
                    if e.code.map(|c| c.get()) == Some(-libc::ENODEV) => {}
                Err(e) => return Err(nl(&format!("delete {name}"), e)),
            }
        }
        Ok(())
    }

    /// Our host-side veths.
    pub async fn veths(&self) -> Result<Vec<HostVeth>, BackendError> {
        let mut out = Vec::new();
        let mut s = self.handle.link().get().execute();
        while let Some(m) = s.try_next().await.map_err(|e| nl("dump links", e))? {
            if let Some(v) = parse_ours(&m) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Deletes our veths whose container side never left the host namespace
    /// (CreateEndpoint happened, Join did not): at start-up no Join can be
    /// pending for them, as docker rolls back an endpoint whose Join failed.
    pub async fn prune_unjoined(&self) -> Result<Vec<Uuid>, BackendError> {
        let mut gone = Vec::new();
        for v in self.veths().await? {
            if !v.peer_in_other_netns {
                self.del_name(&v.name).await?;
                gone.push(v.vmi);
            }
        }
        Ok(gone)
    }
}

fn parse_ours(m: &LinkMessage) -> Option<HostVeth> {
    let mut name = None;
    let mut vmi = None;
    let mut other_ns = false;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::IfAlias(s) => {
                vmi = s.strip_prefix(ALIAS_PREFIX).and_then(|u| u.parse().ok())
            }
            LinkAttribute::LinkNetNsId(_) => other_ns = true,
            _ => {}
        }
    }
    let (name, vmi) = (name?, vmi?);
    (name == tap_name(&vmi)).then_some(HostVeth {
        vmi,
        index: m.header.index,
        name,
        peer_in_other_netns: other_ns,
    })
}

impl ContainerNetworking for LinuxBackend {
    async fn create(&self, spec: &EndpointSpec) -> Result<HostEndpoint, BackendError> {
        let host = tap_name(&spec.vmi);
        let ctn = container_name(&spec.vmi);
        // A retry after a crash may find the pair: start clean.
        self.del_name(&host).await?;
        self.del_name(&ctn).await?;
        let peer = LinkUnspec::new_with_name(&ctn)
            .address(spec.mac.to_vec())
            .mtu(u32::from(spec.mtu))
            .build();
        let msg = LinkVeth::new(&host, &ctn)
            .mtu(u32::from(spec.mtu))
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| nl(&format!("create veth {host}/{ctn}"), e))?;
        let up = LinkUnspec::new_with_name(&host)
            .alias(format!("{ALIAS_PREFIX}{}", spec.vmi))
            .up()
            .build();
        if let Err(e) = self.handle.link().set(up).execute().await {
            let _ = self.del_name(&host).await;
            return Err(nl(&format!("set {host} up"), e));
        }
        Ok(HostEndpoint {
            system_name: host,
            container_ifname: Some(ctn),
            hcn_endpoint: None,
        })
    }

    async fn delete(&self, vmi: &Uuid) -> Result<(), BackendError> {
        // Deleting either side removes both; the container side may still be
        // in the host namespace (before Join).
        self.del_name(&tap_name(vmi)).await?;
        self.del_name(&container_name(vmi)).await
    }

    async fn list(&self) -> Result<Vec<Uuid>, BackendError> {
        Ok(self.veths().await?.into_iter().map(|v| v.vmi).collect())
    }
}
