//! The ksync channel: a byte stream carrying netlink-framed messages.
//!
//! Upstream frames every ksync message as a netlink message: a 16-byte
//! `nlmsghdr` (`len u32, type u16, flags u16, seq u32, pid u32`, host byte
//! order), a `genlmsghdr`, an `nlattr` and the Sandesh payload, where `len`
//! covers the whole message. Upstream's DPDK vRouter reads the header, then
//! exactly `len` bytes (`vr_dpdk_usocket.c`); we do the same, so several
//! messages may share one write and one message may span several.
//!
//! This module only splits and joins messages; the genl/nlattr/Sandesh
//! layers belong to the codec. The splitting is hand-written (a few lines)
//! rather than tokio-util's `LengthDelimitedCodec`: netlink's length counts
//! its own header, has a lower bound of 16 and is in host byte order, which
//! the codec would need an adjustment plus a separate check for, and we
//! want the explicit "desynchronised" state below.
//!
//! # Framing errors
//!
//! A header whose `len` is below 16 or above [`KSYNC_MAX_MSG`] is rejected
//! with [`Error::BadLength`] before anything is allocated for it. A byte
//! stream has no resynchronisation point after that (the next header's
//! position is unknown), so the receive side of that connection is dead:
//! every later [`KsyncConn::recv`] returns [`Error::Desynchronized`]. The
//! send side still works (a datapath may still answer before closing); the
//! owner should then drop the connection. Nothing here panics on input.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::error::{AsDisplay, Error, Result};
use crate::sys;

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDR_LEN: usize = 16;
/// Largest message accepted on receive and send (1 MiB). Upstream's
/// requests are a few hundred bytes; dump replies are paged well below this.
pub const KSYNC_MAX_MSG: u32 = 1 << 20;
/// Most bytes a [`KsyncConn`] reads ahead while one of its writes waits
/// (64 MiB: the answers to a few hundred thousand requests).
pub const KSYNC_READ_AHEAD: usize = 64 << 20;

/// A `struct nlmsghdr`, host byte order on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NlMsgHdr {
    /// Length of the whole message, header included.
    pub len: u32,
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

impl NlMsgHdr {
    /// The header at the start of `buf`, if `buf` is long enough.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let h: &[u8; NLMSG_HDR_LEN] = buf.get(..NLMSG_HDR_LEN)?.try_into().ok()?;
        let [l0, l1, l2, l3, t0, t1, f0, f1, s0, s1, s2, s3, p0, p1, p2, p3] = *h;
        Some(Self {
            len: u32::from_ne_bytes([l0, l1, l2, l3]),
            ty: u16::from_ne_bytes([t0, t1]),
            flags: u16::from_ne_bytes([f0, f1]),
            seq: u32::from_ne_bytes([s0, s1, s2, s3]),
            pid: u32::from_ne_bytes([p0, p1, p2, p3]),
        })
    }

    /// The 16 header bytes.
    pub fn to_bytes(&self) -> [u8; NLMSG_HDR_LEN] {
        let mut b = [0u8; NLMSG_HDR_LEN];
        b[0..4].copy_from_slice(&self.len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.ty.to_ne_bytes());
        b[6..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        b[12..16].copy_from_slice(&self.pid.to_ne_bytes());
        b
    }
}

/// `len` checked against `NLMSG_HDR_LEN..=KSYNC_MAX_MSG`.
fn check_len(len: u32) -> Result<usize> {
    if (NLMSG_HDR_LEN as u32..=KSYNC_MAX_MSG).contains(&len) {
        Ok(len as usize)
    } else {
        Err(Error::BadLength {
            len,
            min: NLMSG_HDR_LEN as u32,
            max: KSYNC_MAX_MSG,
        })
    }
}

/// Check that `buf` is one or more whole messages.
fn check_messages(mut buf: &[u8]) -> Result<()> {
    if buf.is_empty() {
        return Err(Error::BadMessage {
            reason: "empty buffer",
        });
    }
    while !buf.is_empty() {
        let hdr = NlMsgHdr::parse(buf).ok_or(Error::BadMessage {
            reason: "shorter than a netlink header",
        })?;
        let len = check_len(hdr.len)?;
        buf = buf.get(len..).ok_or(Error::BadMessage {
            reason: "header length exceeds the buffer",
        })?;
    }
    Ok(())
}

/// Receive-side state: bytes read but not yet returned.
#[derive(Debug)]
struct Framer {
    buf: BytesMut,
    desync: bool,
}

impl Framer {
    fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(8 * 1024),
            desync: false,
        }
    }

    /// A whole message already buffered, without reading.
    fn buffered(&mut self) -> Option<Bytes> {
        if self.desync {
            return None;
        }
        let h = NlMsgHdr::parse(&self.buf)?;
        let len = check_len(h.len).ok()?;
        (self.buf.len() >= len).then(|| self.buf.split_to(len).freeze())
    }

    /// Read what `r` has into the buffer, unparsed (framing errors show on
    /// the next [`Self::next`]). Cancel-safe. `false` at the end of the
    /// stream or on an error, which the next read meets again.
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> bool {
        self.buf.reserve(64 * 1024);
        matches!(r.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    /// The next whole message, reading from `r` as needed. Cancel-safe:
    /// bytes read before a cancellation stay buffered.
    async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R, addr: &str) -> Result<Option<Bytes>> {
        loop {
            if self.desync {
                return Err(Error::Desynchronized);
            }
            let need = match NlMsgHdr::parse(&self.buf) {
                Some(h) => {
                    let len = match check_len(h.len) {
                        Ok(len) => len,
                        Err(e) => {
                            tracing::warn!(addr, error = %e, "ksync framing lost");
                            self.desync = true;
                            return Err(e);
                        }
                    };
                    if self.buf.len() >= len {
                        return Ok(Some(self.buf.split_to(len).freeze()));
                    }
                    len - self.buf.len()
                }
                None => NLMSG_HDR_LEN - self.buf.len(),
            };
            // Room for the rest of this message, and read ahead a little.
            self.buf.reserve(need.max(4096));
            let n = r
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| Error::io("read", addr, e))?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.desync = true;
                return Err(Error::Truncated {
                    have: self.buf.len(),
                });
            }
        }
    }
}

async fn write_bytes<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8], addr: &str) -> Result<()> {
    w.write_all(bytes)
        .await
        .map_err(|e| Error::io("write", addr, e))?;
    w.flush().await.map_err(|e| Error::io("flush", addr, e))
}

/// `msgs` checked and joined into one buffer, for a single write.
fn join(msgs: &[impl AsRef<[u8]>]) -> Result<Vec<u8>> {
    let total = msgs.iter().map(|m| m.as_ref().len()).sum();
    let mut out = Vec::with_capacity(total);
    for m in msgs {
        check_messages(m.as_ref())?;
        out.extend_from_slice(m.as_ref());
    }
    Ok(out)
}

/// The datapath's ksync endpoint: accepts agent (and `vrctl`) connections.
///
/// Linux: a unix stream socket. The parent directory is created; a stale
/// socket file (nobody accepting) is removed, a live one is
/// [`Error::AddrInUse`]; the file is mode `0600` and removed when the
/// listener drops. Windows: a byte-mode named pipe with one instance per
/// connection, the first created with `FILE_FLAG_FIRST_PIPE_INSTANCE` (so a
/// second datapath, or a squatter, fails with [`Error::AddrInUse`]), remote
/// clients rejected and the [`crate::WINDOWS_SDDL`] security descriptor.
#[derive(Debug)]
pub struct KsyncListener {
    inner: sys::ksync::Listener,
    addr: PathBuf,
}

impl KsyncListener {
    /// Listen at `addr` (a socket path, or a pipe name such as
    /// `\\.\pipe\vrouterKsync`). Must be called inside a tokio runtime.
    pub fn bind(addr: impl AsRef<Path>) -> Result<Self> {
        let addr = addr.as_ref();
        sys::require_runtime("KsyncListener::bind")?;
        let inner = sys::ksync::Listener::bind(addr)?;
        tracing::debug!(addr = %addr.display(), "ksync listening");
        Ok(Self {
            inner,
            addr: addr.to_owned(),
        })
    }

    /// The next connection. Cancel-safe.
    pub async fn accept(&mut self) -> Result<KsyncConn> {
        let stream = self.inner.accept().await?;
        tracing::debug!(addr = %self.addr.display(), "ksync connection accepted");
        Ok(KsyncConn::from_stream(stream, self.addr.as_display()))
    }

    /// Where this listener listens.
    pub fn local_addr(&self) -> &Path {
        &self.addr
    }
}

/// One ksync connection: whole messages in, whole messages out.
pub struct KsyncConn {
    stream: sys::ksync::Stream,
    framer: Framer,
    addr: String,
}

impl std::fmt::Debug for KsyncConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KsyncConn")
            .field("addr", &self.addr)
            .field("buffered", &self.framer.buf.len())
            .field("desync", &self.framer.desync)
            .finish()
    }
}

impl KsyncConn {
    fn from_stream(stream: sys::ksync::Stream, addr: String) -> Self {
        Self {
            stream,
            framer: Framer::new(),
            addr,
        }
    }

    /// Connect to the datapath at `addr`. [`Error::PeerNotPresent`] when
    /// nobody listens there.
    pub async fn connect(addr: impl AsRef<Path>) -> Result<Self> {
        let addr = addr.as_ref();
        sys::require_runtime("KsyncConn::connect")?;
        let stream = sys::ksync::connect(addr).await?;
        Ok(Self::from_stream(stream, addr.as_display()))
    }

    /// The next whole message (header included), or `None` when the peer
    /// closed the connection between messages. Cancel-safe. See the module
    /// docs for what a framing error means.
    pub async fn recv(&mut self) -> Result<Option<Bytes>> {
        self.framer.next(&mut self.stream, &self.addr).await
    }

    /// The next whole message if it has already been read, without
    /// waiting: lets a server take every request of an agent's batch at
    /// once.
    pub fn recv_buffered(&mut self) -> Option<Bytes> {
        self.framer.buffered()
    }

    /// Send `msgs`: one or more whole messages back to back, each checked
    /// (`len` in range, no trailing partial message), in one write.
    ///
    /// While the write waits for room, whatever the peer sends is read and
    /// kept for [`Self::recv`] (up to [`KSYNC_READ_AHEAD`] bytes). A peer
    /// that stops reading requests while its answers wait for room would
    /// otherwise deadlock with a writer of a large batch: both sides
    /// blocked on full send buffers. Upstream's DPDK vRouter is such a
    /// peer: on `EAGAIN` it polls that socket for `POLLOUT` only until its
    /// answers are out (`vr_dpdk_usocket.c`, `__usock_write`).
    pub async fn send(&mut self, msgs: &[u8]) -> Result<()> {
        check_messages(msgs)?;
        self.write_reading(msgs).await
    }

    /// Send several messages (each possibly a batch as for [`Self::send`])
    /// joined into one write, reading meanwhile as [`Self::send`] does.
    pub async fn send_all(&mut self, msgs: &[impl AsRef<[u8]>]) -> Result<()> {
        let buf = join(msgs)?;
        self.write_reading(&buf).await
    }

    /// Write `bytes` as they are, without checking the framing: for relays
    /// and for tests that split messages across writes. Bytes that are not
    /// whole messages desynchronise the peer.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_reading(bytes).await
    }

    async fn write_reading(&mut self, bytes: &[u8]) -> Result<()> {
        let (mut r, mut w) = tokio::io::split(&mut self.stream);
        let write = write_bytes(&mut w, bytes, &self.addr);
        tokio::pin!(write);
        let mut reading = true;
        loop {
            tokio::select! {
                biased;
                done = &mut write => return done,
                more = self.framer.fill(&mut r),
                    if reading && self.framer.buf.len() < KSYNC_READ_AHEAD => {
                    reading = more;
                }
            }
        }
    }

    /// Separate receive and send halves (for an agent that pipelines
    /// requests while a task reads replies). Buffered bytes go with the
    /// reader.
    pub fn into_split(self) -> (KsyncReader, KsyncWriter) {
        let (r, w) = tokio::io::split(self.stream);
        (
            KsyncReader {
                half: r,
                framer: self.framer,
                addr: self.addr.clone(),
            },
            KsyncWriter {
                half: w,
                addr: self.addr,
            },
        )
    }
}

/// Receive half of a [`KsyncConn`].
pub struct KsyncReader {
    half: ReadHalf<sys::ksync::Stream>,
    framer: Framer,
    addr: String,
}

impl KsyncReader {
    /// As [`KsyncConn::recv`].
    pub async fn recv(&mut self) -> Result<Option<Bytes>> {
        self.framer.next(&mut self.half, &self.addr).await
    }

    /// As [`KsyncConn::recv_buffered`].
    pub fn recv_buffered(&mut self) -> Option<Bytes> {
        self.framer.buffered()
    }
}

/// Send half of a [`KsyncConn`]. Unlike [`KsyncConn::send`], its writes do
/// not read ahead: whoever holds the [`KsyncReader`] must keep reading (the
/// datapath's ksync server does, on its own task) or a peer that writes
/// while its answers wait can block both sides.
pub struct KsyncWriter {
    half: WriteHalf<sys::ksync::Stream>,
    addr: String,
}

impl KsyncWriter {
    /// As [`KsyncConn::send`].
    pub async fn send(&mut self, msgs: &[u8]) -> Result<()> {
        check_messages(msgs)?;
        write_bytes(&mut self.half, msgs, &self.addr).await
    }

    /// As [`KsyncConn::send_all`].
    pub async fn send_all(&mut self, msgs: &[impl AsRef<[u8]>]) -> Result<()> {
        let buf = join(msgs)?;
        write_bytes(&mut self.half, &buf, &self.addr).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: u32, seq: u32) -> Vec<u8> {
        let mut m = NlMsgHdr {
            len,
            ty: 0x10,
            flags: 1,
            seq,
            pid: 7,
        }
        .to_bytes()
        .to_vec();
        m.resize(len as usize, seq as u8);
        m
    }

    #[test]
    fn header_round_trip() {
        let h = NlMsgHdr {
            len: 40,
            ty: 3,
            flags: 0x302,
            seq: 99,
            pid: 1234,
        };
        assert_eq!(NlMsgHdr::parse(&h.to_bytes()), Some(h));
        assert_eq!(NlMsgHdr::parse(&[0; 15]), None);
        // Host byte order: little-endian on our targets.
        assert_eq!(&h.to_bytes()[..4], &40u32.to_ne_bytes());
    }

    #[test]
    fn batch_checks() {
        let mut b = msg(20, 1);
        b.extend(msg(16, 2));
        assert!(check_messages(&b).is_ok());
        b.push(0);
        assert!(matches!(check_messages(&b), Err(Error::BadMessage { .. })));
        assert!(matches!(check_messages(&[]), Err(Error::BadMessage { .. })));
        assert!(matches!(
            check_messages(&msg(16, 0)[..8]),
            Err(Error::BadMessage { .. })
        ));
        let mut short = msg(16, 0);
        short[0] = 8;
        assert!(matches!(
            check_messages(&short),
            Err(Error::BadLength { len: 8, .. })
        ));
        let mut long = msg(16, 0);
        long[..4].copy_from_slice(&(KSYNC_MAX_MSG + 1).to_ne_bytes());
        assert!(matches!(
            check_messages(&long),
            Err(Error::BadLength { .. })
        ));
    }
}
