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
//! move frames with the runtime-free `try_recv`/`try_send_many`.

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
/// Spent frame buffers kept for reuse.
const SPARE_MAX: usize = 1024;

/// Traps are queued by [`Port::send`] and sent at [`Port::flush`] (after
/// every batch), [`channels::pkt0::SEND_BATCH`] per `sendmmsg`, in order.
///
/// The agent's socket may refuse some (`EAGAIN`: a Unix datagram socket
/// queues only `net.unix.max_dgram_qlen` = 10 datagrams from a sender it
/// does not follow; our agent follows ours, see `channels`, so that limit
/// is lifted, but its send buffer still bounds what is in flight):
/// measured before either, 100 000 SYNs/s offered delivered 2 000 flows/s,
/// the lost traps leaving their flows on HOLD. Refused frames stay queued,
/// in order, and go at the next flush (the datapath flushes a port with a
/// backlog again within a millisecond); only when the backlog is full, or
/// the agent is not there, is a trap lost.
pub struct Pkt0Port {
    ep: Pkt0Datapath,
    name: String,
    /// Frames not sent yet, oldest first.
    queue: VecDeque<Vec<u8>>,
    queue_bytes: usize,
    /// Buffers of sent frames, reused so a trap allocates nothing once warm.
    spare: Vec<Vec<u8>>,
    /// At most this many frames wait after a flush (`vrouter --pkt0-backlog`).
    backlog_max: usize,
    /// Queued frames dropped since the last flush.
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
            queue: VecDeque::new(),
            queue_bytes: 0,
            spare: Vec::new(),
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

    /// Remove the oldest (`front`) or newest queued frame, keeping its buffer.
    fn pop(&mut self, front: bool) {
        let f = if front {
            self.queue.pop_front()
        } else {
            self.queue.pop_back()
        };
        if let Some(mut f) = f {
            self.queue_bytes -= f.len();
            if self.spare.len() < SPARE_MAX {
                f.clear();
                self.spare.push(f);
            }
        }
    }

    /// Send queued frames until the socket refuses or none are left.
    fn drain(&mut self) {
        while !self.queue.is_empty() {
            let want = self.queue.len().min(channels::pkt0::SEND_BATCH);
            match self.ep.try_send_many(self.queue.iter().map(Vec::as_slice)) {
                Ok(n) => {
                    self.stats.tx_frames += n as u64;
                    for _ in 0..n {
                        self.pop(true);
                    }
                    if n < want {
                        // The agent's queue (or our send buffer) is full.
                        return;
                    }
                }
                Err(channels::Error::WouldBlock { .. }) => return,
                Err(channels::Error::PeerNotPresent { .. }) => {
                    // No agent: every queued trap is lost (as upstream's).
                    let n = self.queue.len();
                    self.stats.tx_errors += n as u64;
                    self.dropped += n;
                    while !self.queue.is_empty() {
                        self.pop(true);
                    }
                }
                Err(_) => {
                    // This frame cannot go; the next ones may.
                    self.stats.tx_errors += 1;
                    self.dropped += 1;
                    self.pop(true);
                }
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
        // Room for a batch's traps even without a backlog.
        let room = self.backlog_max.max(channels::pkt0::SEND_BATCH);
        if self.queue.len() >= room || self.queue_bytes + len > BACKLOG_BYTES {
            self.stats.tx_errors += 1;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut f = self.spare.pop().unwrap_or_default();
        f.extend_from_slice(head);
        f.extend_from_slice(body);
        self.queue_bytes += len;
        self.queue.push_back(f);
        Ok(())
    }

    fn flush(&mut self) -> usize {
        self.drain();
        // What is left beyond the backlog's size is lost, newest first.
        while self.queue.len() > self.backlog_max {
            self.pop(false);
            self.stats.tx_errors += 1;
            self.dropped += 1;
        }
        std::mem::take(&mut self.dropped)
    }

    fn backlog(&self) -> usize {
        self.queue.len()
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
