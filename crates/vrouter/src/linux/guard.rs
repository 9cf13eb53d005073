//! Keeps the host kernel quiet about overlay traffic.
//!
//! The fabric port reads *copies* of what arrives on the fabric interface;
//! the kernel still receives every frame. Overlay packets addressed to the
//! host (MPLSoUDP 6635, VXLAN 4789, MPLSoGRE) would make it answer ICMP
//! port/protocol unreachable. We open sockets that claim those ports and the
//! GRE protocol and attach a drop-all BPF filter: the kernel finds a
//! listener, so it sends no ICMP, and the filter discards the data before it
//! is queued. Unlike an nftables rule this needs no tooling, cannot leak:
//! the sockets close with the process, and does not touch host firewall
//! state.

use super::sys;
use std::net::UdpSocket;
use std::os::fd::OwnedFd;

/// UDP ports of the overlays the core decapsulates.
pub const OVERLAY_UDP_PORTS: [u16; 2] = [6635, 4789];
const IPPROTO_GRE: libc::c_int = 47;

pub struct OverlayGuard {
    udp: Vec<UdpSocket>,
    gre: Option<OwnedFd>,
}

impl OverlayGuard {
    /// Claim the overlay ports in the caller's network namespace. Each
    /// claim is best effort (another listener may already own a port, which
    /// also keeps the kernel quiet); failures are logged.
    pub fn open() -> OverlayGuard {
        // linux/udp.h; not in the libc crate for every target.
        const UDP_GRO: libc::c_int = 104;
        let mut udp = Vec::new();
        for port in OVERLAY_UDP_PORTS {
            match UdpSocket::bind(("0.0.0.0", port)).and_then(|s| {
                sys::attach_drop_all(&s)?;
                // UDP_GRO: the kernel hands GSO super-packets to this
                // drop-all socket whole instead of splitting each one
                // (measured +10-20% cross-host TCP). Best effort.
                let one: libc::c_int = 1;
                let _ = sys::setsockopt(&s, libc::SOL_UDP, UDP_GRO, &one);
                Ok(s)
            }) {
                Ok(s) => udp.push(s),
                Err(e) => tracing::warn!(port, error = %e, "cannot claim overlay UDP port"),
            }
        }
        // SAFETY: plain socket(2).
        let gre = sys::owned(unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                IPPROTO_GRE,
            )
        })
        .and_then(|fd| {
            sys::attach_drop_all(&fd)?;
            Ok(fd)
        });
        let gre = match gre {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim GRE");
                None
            }
        };
        OverlayGuard { udp, gre }
    }

    /// UDP ports actually claimed.
    pub fn udp_ports(&self) -> Vec<u16> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok().map(|a| a.port()))
            .collect()
    }

    pub fn has_gre(&self) -> bool {
        self.gre.is_some()
    }
}
