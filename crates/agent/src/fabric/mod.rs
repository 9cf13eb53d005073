//! The fabric as the host OS sees it: the MAC to put in front of a tunnel
//! to another compute node (the node's own, or its gateway's), from the
//! OS's routing and neighbour tables, and a way to make the OS resolve it.
//!
//! The fabric interface stays the host's (the datapath attaches to it as
//! vif 0 and the host keeps its address), so the host's ARP is the
//! natural source; upstream's agent, which owns the fabric through
//! vhost0, does its own ARP instead.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(windows)]
mod windows;

use std::net::Ipv4Addr;

/// The host's view of the fabric.
pub trait FabricOs: Send + Sync {
    /// The MAC of the fabric next hop towards `ip`, if the host knows it.
    fn lookup(&self, ip: Ipv4Addr) -> Option<[u8; 6]>;
    /// Make the host resolve the next hop towards `ip` (it may take a
    /// moment; look up again later).
    fn probe(&self, ip: Ipv4Addr);
}

/// The platform's implementation.
pub fn os() -> Box<dyn FabricOs> {
    #[cfg(target_os = "linux")]
    {
        Box::new(linux::Linux)
    }
    #[cfg(windows)]
    {
        Box::new(windows::Windows)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        Box::new(Nowhere)
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
struct Nowhere;

#[cfg(not(any(target_os = "linux", windows)))]
impl FabricOs for Nowhere {
    fn lookup(&self, _: Ipv4Addr) -> Option<[u8; 6]> {
        None
    }
    fn probe(&self, _: Ipv4Addr) {}
}

/// Send one datagram to the discard port: the host resolves the next hop
/// on the way (portable; the datagram itself is ignored).
pub(crate) fn udp_probe(ip: Ipv4Addr) {
    if let Ok(s) = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) {
        let _ = s.set_nonblocking(true);
        let _ = s.send_to(&[0], (ip, 9));
    }
}
