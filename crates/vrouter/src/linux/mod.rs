//! Linux implementations: AF_PACKET and TAP ports, the pkt0 unix socket,
//! epoll, the overlay guard, and network-namespace helpers.

mod afpacket;
mod epoll;
mod fastpath;
mod guard;
mod pkt0;
mod sched;
pub mod sys;
mod tap;

pub use afpacket::{AfPacketOptions, AfPacketPort};
pub use epoll::EpollPoller;
pub use fastpath::{FpKey, FpValue, TcFastPath};
pub use guard::{OverlayGuard, OVERLAY_UDP_PORTS};
pub use pkt0::{Pkt0Port, AGENT_PKT0, DATAPATH_PKT0};
pub use sched::{CpuList, CpuListError, ThreadPlacement};
pub use sys::{enter_netns, mac_of};
pub use tap::TapPort;

use crate::datapath::{Datapath, DatapathConfig, DpError};
use crate::port::{Port, PortOpener};
use dp_core::{Router, VifConfig, VifType};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The default of `vrouter --pkt0-backlog`.
pub const fn pkt0_backlog_default() -> usize {
    pkt0::BACKLOG_FRAMES
}

/// Opens vif ports the way the Linux host maps them: the agent vif is the
/// pkt0 socket in `sock_dir`, a host vif is a TAP device the datapath
/// creates, every other vif an AF_PACKET socket on the existing interface
/// of that name (VM ports promiscuous, the fabric not). VM interfaces get
/// [`sys::isolate_host_stack`].
pub struct LinuxPorts {
    pub sock_dir: PathBuf,
    /// Refused traps pkt0 keeps for the agent ([`Pkt0Port::with_backlog`]).
    pub pkt0_backlog: usize,
}

impl PortOpener for LinuxPorts {
    fn open(&self, cfg: &VifConfig) -> io::Result<Box<dyn Port>> {
        let name = cfg.name.as_str();
        Ok(match cfg.vif_type {
            VifType::Agent => {
                Box::new(Pkt0Port::bind(&self.sock_dir)?.with_backlog(self.pkt0_backlog))
            }
            VifType::Host => Box::new(TapPort::create(name)?),
            VifType::Virtual => {
                let port = AfPacketPort::open(
                    name,
                    AfPacketOptions {
                        // Containers' VLAN sub-interfaces: veth hands
                        // their tags over out of band.
                        vlan_tags: true,
                        ..AfPacketOptions::default()
                    },
                )?;
                if let Err(e) = sys::isolate_host_stack(name) {
                    tracing::warn!(port = name, error = %e, "cannot keep the host stack off");
                }
                Box::new(port)
            }
            VifType::VirtualVlan => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a VLAN sub-interface has no port of its own",
                ))
            }
            VifType::Physical => Box::new(AfPacketPort::open(
                name,
                AfPacketOptions {
                    promisc: false,
                    ..AfPacketOptions::default()
                },
            )?),
        })
    }
}

/// Start a datapath on epoll with [`LinuxPorts`] (default pkt0 backlog).
pub fn start(router: Router, sock_dir: PathBuf, cfg: DatapathConfig) -> Result<Datapath, DpError> {
    start_with(
        router,
        LinuxPorts {
            sock_dir,
            pkt0_backlog: pkt0::BACKLOG_FRAMES,
        },
        cfg,
    )
}

/// Start a datapath on epoll with `ports`.
pub fn start_with(
    router: Router,
    ports: LinuxPorts,
    cfg: DatapathConfig,
) -> Result<Datapath, DpError> {
    let poller = EpollPoller::new()?;
    Datapath::start(router, Box::new(poller), Some(Arc::new(ports)), cfg)
}
