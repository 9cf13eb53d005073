//! The agent vif (pkt0) as a datapath [`Port`]: a thin adapter over
//! [`channels::Pkt0Datapath`], the project's one implementation of
//! upstream's pkt0 sockets (the datapath binds `DIR/dpdk_pkt0` and sends to
//! the agent's `DIR/agent_pkt0`; each datagram is one frame: Ethernet +
//! `agent_hdr` + the original frame, no offload metadata).
//!
//! The channel crate owns the socket rules (mode 0600, a live socket is
//! never stolen, a stale one is replaced, the file is removed on drop, a
//! restarted agent is reconnected, `MSG_TRUNC` detection of oversize
//! frames); this adapter only lets the epoll loop poll its descriptor and
//! move frames with the runtime-free `try_recv`/`try_send`.

use crate::port::{Offloads, Port, PortStats, RxSlot};
use crate::vnet::VnetHdr;
use channels::{ChannelPaths, Pkt0Datapath};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Socket names (upstream's DPDK vRouter names).
pub const DATAPATH_PKT0: &str = ChannelPaths::PKT0_DATAPATH_NAME;
pub const AGENT_PKT0: &str = ChannelPaths::PKT0_AGENT_NAME;

/// Frames shorter than an Ethernet header are not frames.
const MIN_FRAME: usize = 14;

pub struct Pkt0Port {
    ep: Pkt0Datapath,
    name: String,
    scratch: Vec<u8>,
    stats: PortStats,
}

impl Pkt0Port {
    /// Bind `dir/dpdk_pkt0`, sending to `dir/agent_pkt0`.
    pub fn bind(dir: &Path) -> io::Result<Pkt0Port> {
        Self::bind_paths(&ChannelPaths::new(dir))
    }

    /// Bind `paths.pkt0_datapath`, sending to `paths.pkt0_agent`.
    pub fn bind_paths(paths: &ChannelPaths) -> io::Result<Pkt0Port> {
        let ep = Pkt0Datapath::bind(paths).map_err(to_io)?;
        Ok(Pkt0Port {
            ep,
            name: paths.pkt0_datapath.display().to_string(),
            scratch: Vec::new(),
            stats: PortStats::default(),
        })
    }
}

/// A channel error as the `io::Error` the datapath counts.
fn to_io(e: channels::Error) -> io::Error {
    let kind = match &e {
        channels::Error::Io { source, .. } => source.kind(),
        channels::Error::WouldBlock { .. } => io::ErrorKind::WouldBlock,
        channels::Error::PeerNotPresent { .. } => io::ErrorKind::NotConnected,
        channels::Error::AddrInUse { .. } => io::ErrorKind::AddrInUse,
        channels::Error::FrameTooLarge { .. } => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl Port for Pkt0Port {
    fn name(&self) -> &str {
        &self.name
    }

    fn recv_batch(&mut self, slots: &mut [RxSlot]) -> io::Result<usize> {
        let mut n = 0;
        for slot in slots.iter_mut() {
            match self.ep.try_recv(slot.frame_area()) {
                Ok(None) => break,
                Ok(Some(len)) if len >= MIN_FRAME => {
                    slot.len = len;
                    slot.vnet = VnetHdr::NONE;
                }
                // Runt, or larger than a slot (consumed by the channel).
                Ok(Some(_)) | Err(channels::Error::BufferTooSmall { .. }) => {
                    slot.len = 0;
                    self.stats.rx_truncated += 1;
                }
                Err(e) if n == 0 => return Err(to_io(e)),
                Err(_) => break,
            }
            self.stats.rx_frames += 1;
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, _vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(head);
        self.scratch.extend_from_slice(body);
        match self.ep.try_send(&self.scratch) {
            Ok(()) => {
                self.stats.tx_frames += 1;
                Ok(())
            }
            Err(e) => {
                // No agent, or its queue is full: the trap is lost, as
                // upstream loses it.
                self.stats.tx_errors += 1;
                Err(to_io(e))
            }
        }
    }

    fn poll_fd(&self) -> Option<i32> {
        Some(self.ep.as_raw_fd())
    }

    fn offloads(&self) -> Offloads {
        Offloads::default()
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}
