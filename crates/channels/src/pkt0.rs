//! The pkt0 channel: whole frames between the datapath and the agent.
//!
//! A frame is what upstream puts on pkt0 (a 14-byte Ethernet header, the
//! 30-byte `agent_hdr`, then the packet); this module only moves it, one
//! frame per datagram or pipe message, at most [`PKT0_MAX_FRAME`] bytes.
//!
//! * **Linux**: unix datagram sockets with upstream's DPDK names. The
//!   datapath binds `dpdk_pkt0` and sends to `agent_pkt0`; the agent binds
//!   `agent_pkt0` and sends to `dpdk_pkt0`. Each end sends through its own
//!   socket *connected* to the peer's path, so a full peer queue blocks an
//!   async send (or fails a Linux-only `Pkt0Datapath::try_send` with
//!   [`Error::WouldBlock`]) instead of spinning; a peer that restarted is
//!   reconnected on the next send. A missing peer is
//!   [`Error::PeerNotPresent`]: the datapath counts the drop, the agent
//!   retries. Bound socket files are mode `0600`, replace a stale file and
//!   are removed on drop. The agent's receive socket connects back to the
//!   socket its frames come from, which lifts the kernel's 10-datagram
//!   queue limit for them (see `sys::unix::pkt0`; [`Pkt0Agent::refresh_peer`]);
//!   `try_send_many` sends a batch with one `sendmmsg`.
//! * **Windows**: one message-mode named pipe (`\\.\pipe\vrouterPkt0`),
//!   served by the datapath (one instance, first-instance flag, remote
//!   clients rejected, [`crate::WINDOWS_SDDL`]); the agent is its client.
//!   The datapath accepts (and re-accepts after the agent goes away) inside
//!   [`Pkt0Datapath::recv`], so it must keep a receive going; a send while
//!   no agent is connected is [`Error::PeerNotPresent`]. The agent connects
//!   on first use, and its `recv` retries every 100 ms until the datapath
//!   appears.
//!
//!   tokio (mio) reads pipe messages through an internal buffer that is 4
//!   KiB for the first read after a connect and sized like the caller's
//!   buffer (at most 64 KiB) afterwards, and it does not report a message
//!   cut by a too-small read. So both ends read through a 64 KiB buffer,
//!   frames are limited to 64 KiB, and each end writes one zero-length
//!   message right after connecting, which absorbs the peer's small first
//!   read; an empty first message is skipped by the reader. Real frames are
//!   never empty. Pipe writes also complete in the background, so a frame
//!   sent just as the peer goes away can be lost without an error; a later
//!   send reports [`Error::PeerNotPresent`]. A pipe instance closes once its
//!   pending I/O is cancelled, so re-binding the datapath in the *same*
//!   process right after dropping it can briefly see
//!   [`Error::AddrInUse`].
//!
//! A received frame longer than the caller's buffer is consumed and
//! reported as [`Error::BufferTooSmall`] on both platforms (Linux asks the
//! kernel for the real length with `MSG_TRUNC`); the endpoint stays usable.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys;
use crate::ChannelPaths;

/// Largest frame a pkt0 endpoint sends or receives: 64 KiB, the largest
/// single read tokio makes on a Windows pipe. A jumbo frame plus the 44
/// bytes of headers fits easily.
pub const PKT0_MAX_FRAME: usize = 64 * 1024;

/// The most frames one `try_send_many` sends (Linux: one `sendmmsg`).
pub const SEND_BATCH: usize = 64;

/// `frame` checked against `1..=PKT0_MAX_FRAME`.
pub(crate) fn check_frame(frame: &[u8]) -> Result<()> {
    if (1..=PKT0_MAX_FRAME).contains(&frame.len()) {
        Ok(())
    } else {
        Err(Error::FrameTooLarge {
            len: frame.len(),
            max: PKT0_MAX_FRAME,
        })
    }
}

/// The datapath's pkt0 endpoint.
#[derive(Debug)]
pub struct Pkt0Datapath {
    pub(crate) inner: Arc<sys::pkt0::Endpoint>,
}

/// The agent's pkt0 endpoint.
#[derive(Debug)]
pub struct Pkt0Agent {
    pub(crate) inner: Arc<sys::pkt0::Endpoint>,
}

/// A send-only handle on either endpoint, for other tasks or threads.
#[derive(Clone, Debug)]
pub struct Pkt0Sender {
    pub(crate) inner: Arc<sys::pkt0::Endpoint>,
}

macro_rules! endpoint_api {
    ($ty:ident) => {
        impl $ty {
            /// Receive one frame into `buf`; its length. Waits for a frame
            /// (and, on Windows, for the peer to connect). Cancel-safe.
            pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
                self.inner.recv(buf).await
            }

            /// Send one frame (`1..=PKT0_MAX_FRAME` bytes), waiting while
            /// the peer's queue is full.
            pub async fn send(&self, frame: &[u8]) -> Result<()> {
                check_frame(frame)?;
                self.inner.send(frame).await
            }

            /// A handle that sends through this endpoint.
            pub fn sender(&self) -> Pkt0Sender {
                Pkt0Sender {
                    inner: Arc::clone(&self.inner),
                }
            }
        }
    };
}

endpoint_api!(Pkt0Datapath);
endpoint_api!(Pkt0Agent);

impl Pkt0Datapath {
    /// Bind the datapath end at `paths.pkt0_datapath`, sending to
    /// `paths.pkt0_agent` (Linux). On Windows this creates the pipe server
    /// and must run inside a tokio runtime; on Linux it needs none until an
    /// async method is called.
    pub fn bind(paths: &ChannelPaths) -> Result<Self> {
        let inner = sys::pkt0::Endpoint::bind_datapath(paths)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }
}

impl Pkt0Agent {
    /// Bind the agent end at `paths.pkt0_agent`, sending to
    /// `paths.pkt0_datapath` (Linux); on Windows, prepare to connect to the
    /// pipe `paths.pkt0_datapath` (lazily: the datapath need not run yet).
    pub fn bind(paths: &ChannelPaths) -> Result<Self> {
        let inner = sys::pkt0::Endpoint::bind_agent(paths)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Call now and then (the agent: every aging tick, and after its ksync
    /// reconnected). Linux: the receive socket, connected to the sender of
    /// the frames so that more than `net.unix.max_dgram_qlen` of them can
    /// queue, connects again, or forgets a sender that is gone so that a
    /// restarted datapath is heard (see `sys::unix::pkt0`). Windows:
    /// nothing to do.
    pub fn refresh_peer(&self) {
        self.inner.refresh_peer();
    }
}

impl Pkt0Sender {
    /// As the endpoint's `send`.
    pub async fn send(&self, frame: &[u8]) -> Result<()> {
        check_frame(frame)?;
        self.inner.send(frame).await
    }
}
