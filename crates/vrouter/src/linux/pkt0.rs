//! The agent vif (pkt0) over unix datagram sockets, as upstream's DPDK
//! vRouter does: the datapath binds `DIR/dpdk_pkt0` and sends to the
//! agent's `DIR/agent_pkt0`. Each datagram is one frame (Ethernet +
//! `agent_hdr` + original frame); no offload metadata.

use super::sys;
use crate::port::{Offloads, Port, PortStats, RxSlot};
use crate::vnet::VnetHdr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

pub const DATAPATH_PKT0: &str = "dpdk_pkt0";
pub const AGENT_PKT0: &str = "agent_pkt0";

pub struct Pkt0Port {
    sock: UnixDatagram,
    local: PathBuf,
    peer: PathBuf,
    name: String,
    scratch: Vec<u8>,
    stats: PortStats,
}

impl Pkt0Port {
    /// Bind `dir/dpdk_pkt0` (replacing a stale socket file) and address
    /// `dir/agent_pkt0`.
    pub fn bind(dir: &Path) -> io::Result<Pkt0Port> {
        let local = dir.join(DATAPATH_PKT0);
        match std::fs::remove_file(&local) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let sock = UnixDatagram::bind(&local)?;
        sock.set_nonblocking(true)?;
        Ok(Pkt0Port {
            sock,
            name: local.display().to_string(),
            local,
            peer: dir.join(AGENT_PKT0),
            scratch: Vec::new(),
            stats: PortStats::default(),
        })
    }
}

impl Drop for Pkt0Port {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.local);
    }
}

impl Port for Pkt0Port {
    fn name(&self) -> &str {
        &self.name
    }

    fn recv_batch(&mut self, slots: &mut [RxSlot]) -> io::Result<usize> {
        let mut n = 0;
        for slot in slots.iter_mut() {
            let area = slot.frame_area();
            // MSG_TRUNC: the return value is the datagram's real length.
            // SAFETY: `area` is a live writable buffer of the length passed.
            let r = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    area.as_mut_ptr().cast(),
                    area.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            let len = match sys::cvt_size(r) {
                Ok(l) => l,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            };
            self.stats.rx_frames += 1;
            if len > area.len() || len < 14 {
                slot.len = 0;
                self.stats.rx_truncated += 1;
            } else {
                slot.len = len;
                slot.vnet = VnetHdr::NONE;
            }
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, _vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(head);
        self.scratch.extend_from_slice(body);
        match self.sock.send_to(&self.scratch, &self.peer) {
            Ok(_) => {
                self.stats.tx_frames += 1;
                Ok(())
            }
            Err(e) => {
                // No agent listening yet: the trap is lost, like upstream.
                self.stats.tx_errors += 1;
                Err(e)
            }
        }
    }

    fn poll_fd(&self) -> Option<i32> {
        Some(self.sock.as_raw_fd())
    }

    fn offloads(&self) -> Offloads {
        Offloads::default()
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}
