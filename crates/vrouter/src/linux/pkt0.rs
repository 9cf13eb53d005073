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
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Socket names (upstream's DPDK vRouter names).
pub const DATAPATH_PKT0: &str = ChannelPaths::PKT0_DATAPATH_NAME;
pub const AGENT_PKT0: &str = ChannelPaths::PKT0_AGENT_NAME;

/// Frames shorter than an Ethernet header are not frames.
const MIN_FRAME: usize = 14;
/// Frames kept while the agent's socket queue is full, and their bytes:
/// as many as the datapath holds (`DatapathConfig::hold_max_total`), so
/// a held frame's trap is not lost to a full queue (its flow would stay on
/// HOLD, its frame held, until the hold timeout).
pub const BACKLOG_FRAMES: usize = 16 * 1024;
const BACKLOG_BYTES: usize = 16 << 20;

/// A Unix datagram socket's receive queue holds `net.unix.max_dgram_qlen`
/// datagrams (10 by default), so a burst of new flows (32 traps from one
/// batch) overflows it long before the agent is slow: measured, 100 000
/// SYNs/s offered delivered 2 000 flows/s, the lost traps leaving their
/// flows on HOLD. Frames the socket refuses with `EAGAIN` are therefore
/// kept here, in order, and sent again at every flush (the datapath
/// flushes a port with a backlog again within a millisecond); only when
/// the backlog is full, or the agent is not there, is a trap lost.
pub struct Pkt0Port {
    ep: Pkt0Datapath,
    name: String,
    scratch: Vec<u8>,
    backlog: VecDeque<Vec<u8>>,
    backlog_bytes: usize,
    /// At most this many frames wait in the backlog (`vrouter --pkt0-backlog`).
    backlog_max: usize,
    /// Backlogged frames dropped since the last flush.
    dropped: usize,
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
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            backlog_max: BACKLOG_FRAMES,
            dropped: 0,
            stats: PortStats::default(),
        })
    }

    /// Keep at most `frames` refused traps (0: a refused trap is lost at
    /// once, as upstream loses it).
    pub fn with_backlog(mut self, frames: usize) -> Pkt0Port {
        self.backlog_max = frames;
        self
    }

    /// Send backlogged frames until the socket refuses again.
    fn drain(&mut self) {
        while let Some(f) = self.backlog.front() {
            match self.ep.try_send(f) {
                Ok(()) => self.stats.tx_frames += 1,
                Err(channels::Error::WouldBlock { .. }) => return,
                Err(_) => {
                    self.stats.tx_errors += 1;
                    self.dropped += 1;
                }
            }
            if let Some(f) = self.backlog.pop_front() {
                self.backlog_bytes -= f.len();
            }
        }
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
        let len = head.len() + body.len();
        let keep =
            |p: &Self| p.backlog.len() < p.backlog_max && p.backlog_bytes + len <= BACKLOG_BYTES;
        if !self.backlog.is_empty() {
            // Behind the backlog, in order.
            if !keep(self) {
                self.stats.tx_errors += 1;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut f = Vec::with_capacity(len);
            f.extend_from_slice(head);
            f.extend_from_slice(body);
            self.backlog_bytes += len;
            self.backlog.push_back(f);
            return Ok(());
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(head);
        self.scratch.extend_from_slice(body);
        match self.ep.try_send(&self.scratch) {
            Ok(()) => {
                self.stats.tx_frames += 1;
                Ok(())
            }
            Err(channels::Error::WouldBlock { .. }) if keep(self) => {
                self.backlog_bytes += len;
                self.backlog.push_back(std::mem::take(&mut self.scratch));
                Ok(())
            }
            Err(e) => {
                // No agent, or the backlog is full: the trap is lost.
                self.stats.tx_errors += 1;
                Err(to_io(e))
            }
        }
    }

    fn flush(&mut self) -> usize {
        self.drain();
        std::mem::take(&mut self.dropped)
    }

    fn backlog(&self) -> usize {
        self.backlog.len()
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
