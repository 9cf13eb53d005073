//! pkt0 over unix datagram sockets.
//!
//! Each endpoint has a bound receive socket and, for sending, an unbound
//! socket connected to the peer's path: on a connected unix datagram socket
//! Linux reports writability by the *peer's* queue, so an async send can
//! wait for room instead of polling. The send socket is (re)made on demand,
//! which also follows a peer that restarted.
//!
//! Sockets are non-blocking and usable without a runtime (`try_*`); the
//! async methods register them with the tokio reactor of their first call
//! (through `AsyncFd` over the borrowed descriptor).
//!
//! **Queue depth.** A unix datagram socket queues at most
//! `net.unix.max_dgram_qlen` (10) datagrams from senders it is not
//! connected to, so a burst of traps (one batch of new flows) meets
//! `EAGAIN` after ten; but the kernel skips that limit for a sender the
//! receiver is itself connected to (only the sender's send buffer bounds
//! it then, about 280 small frames by default). So the send socket is
//! auto-bound (an abstract address, so the peer can name it), and the
//! agent, when a frame arrives on its unconnected receive socket from a
//! sender with an address, connects its receive socket to that sender.
//! A connected receive socket takes datagrams from that peer only: the
//! agent connects again every [`Endpoint::refresh_peer`] (its 250 ms
//! tick, and after its ksync reconnects) and forgets a peer that is gone,
//! so a restarted datapath (a new send socket) is heard again. Until
//! then the new datapath's sends fail with `EPERM`, reported as
//! [`Error::WouldBlock`] (the datapath keeps the frames and retries).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::OnceCell;

use super::{peer_absent, prepare_socket_path, restrict, FileId};
use crate::error::{AsDisplay, Error, Result};
use crate::pkt0::{check_frame, Pkt0Agent, Pkt0Datapath, Pkt0Sender};
use crate::ChannelPaths;

/// A descriptor owned elsewhere, for `AsyncFd` (which then only registers
/// and deregisters it, never closes it).
#[derive(Debug)]
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A socket plus its lazily made reactor registration. The registration is
/// declared first so it is dropped (deregistered) before the socket closes.
#[derive(Debug)]
struct Sock {
    reg: OnceCell<AsyncFd<Fd>>,
    sock: UnixDatagram,
}

impl Sock {
    fn new(sock: UnixDatagram) -> Self {
        Self {
            reg: OnceCell::new(),
            sock,
        }
    }

    async fn reg(&self, interest: Interest, addr: &Path) -> Result<&AsyncFd<Fd>> {
        crate::sys::require_runtime("pkt0 async I/O")?;
        let fd = self.sock.as_raw_fd();
        self.reg
            .get_or_try_init(|| async move {
                // SAFETY: `fd` is `self.sock`'s descriptor, which stays open
                // and unchanged until `self` drops; `reg` is declared before
                // `sock`, so the `AsyncFd` is dropped first.
                unsafe { AsyncFd::register_with_interest(Fd(fd), interest) }
                    .map_err(io::Error::from)
            })
            .await
            .map_err(|e| Error::io("register with tokio", &addr.to_owned(), e))
    }
}

use crate::pkt0::SEND_BATCH;

/// How often a receive socket that follows its sender checks that the
/// sender is still there, while nothing arrives.
const REFRESH_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// A sender's address as `recvfrom` reported it.
#[derive(Clone, Copy)]
struct PeerAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl std::fmt::Debug for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAddr").field("len", &self.len).finish()
    }
}

#[derive(Debug)]
pub(crate) struct Endpoint {
    rx: Sock,
    tx: Mutex<Option<Arc<Sock>>>,
    local: PathBuf,
    peer: PathBuf,
    id: Option<FileId>,
    /// The agent's end: connect the receive socket to the sender of the
    /// frames (see the module docs).
    follow_sender: bool,
    /// Whether the receive socket is connected to a sender (read on every
    /// receive; `rx_peer` holds its address).
    rx_connected: AtomicBool,
    rx_peer: Mutex<Option<PeerAddr>>,
}

impl Endpoint {
    pub(crate) fn bind_datapath(paths: &ChannelPaths) -> Result<Self> {
        Self::bind(&paths.pkt0_datapath, &paths.pkt0_agent, false)
    }

    pub(crate) fn bind_agent(paths: &ChannelPaths) -> Result<Self> {
        Self::bind(&paths.pkt0_agent, &paths.pkt0_datapath, true)
    }

    fn bind(local: &Path, peer: &Path, follow_sender: bool) -> Result<Self> {
        prepare_socket_path(local, |p| UnixDatagram::unbound()?.connect(p))?;
        let sock = UnixDatagram::bind(local).map_err(|e| Error::io("bind", local, e))?;
        let id = FileId::of(local);
        let this = Self {
            rx: Sock::new(sock),
            tx: Mutex::new(None),
            local: local.to_owned(),
            peer: peer.to_owned(),
            id,
            follow_sender,
            rx_connected: AtomicBool::new(false),
            rx_peer: Mutex::new(None),
        };
        // From here on, dropping `this` removes the socket file.
        restrict(local)?;
        this.rx
            .sock
            .set_nonblocking(true)
            .map_err(|e| Error::io("set non-blocking", local, e))?;
        tracing::debug!(local = %local.display(), peer = %peer.display(), "pkt0 bound");
        Ok(this)
    }

    /// One datagram into `buf`: `Ok(Some(len))`, `Ok(None)` if none is
    /// queued.
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        match self.raw_recv(buf) {
            Ok(n) => self.fit(n, buf.len()).map(Some),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Error::io("recv", &self.local, e)),
        }
    }

    /// The bound receive socket's descriptor.
    pub(crate) fn rx_fd(&self) -> RawFd {
        self.rx.sock.as_raw_fd()
    }

    pub(crate) async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let reg = self.rx.reg(Interest::READABLE, &self.local).await?;
        loop {
            // While following a sender, look again now and then whether it
            // is still there (a restarted datapath cannot reach us before).
            let ready = if self.rx_connected.load(Ordering::Relaxed) {
                match tokio::time::timeout(REFRESH_PERIOD, reg.readable()).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.refresh_peer();
                        continue;
                    }
                }
            } else {
                reg.readable().await
            };
            let mut ready = ready.map_err(|e| Error::io("poll", &self.local, e))?;
            match ready.try_io(|_| self.raw_recv(buf)) {
                Ok(Ok(n)) => return self.fit(n, buf.len()),
                Ok(Err(e)) => return Err(Error::io("recv", &self.local, e)),
                // Readiness was stale and is cleared: wait again.
                Err(_) => continue,
            }
        }
    }

    fn fit(&self, len: usize, cap: usize) -> Result<usize> {
        if len > cap {
            Err(Error::BufferTooSmall { len, cap })
        } else {
            Ok(len)
        }
    }

    /// `recv(MSG_TRUNC | MSG_DONTWAIT)`: the datagram's real length, even
    /// when it was longer than `buf` (std cannot tell). On the agent's end,
    /// while the receive socket is not connected, also learn the sender and
    /// connect to it.
    fn raw_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.follow_sender && !self.rx_connected.load(Ordering::Relaxed) {
            return self.recv_and_follow(buf);
        }
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes; the
            // kernel writes at most that many.
            let n = unsafe {
                libc::recv(
                    self.rx.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(n) {
                Ok(n) => return Ok(n),
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// `recvfrom`: one datagram and, if the sender has an address,
    /// connect the receive socket to it.
    fn recv_and_follow(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: all-zero is a valid `sockaddr_un`.
            let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes and
            // `addr` for `len` bytes; the kernel writes at most that much.
            let n = unsafe {
                libc::recvfrom(
                    self.rx.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                    (&raw mut addr).cast(),
                    &mut len,
                )
            };
            match usize::try_from(n) {
                Ok(n) => {
                    // An unbound sender reports only the family.
                    if len as usize > std::mem::size_of::<libc::sa_family_t>() {
                        self.follow(PeerAddr { addr, len });
                    }
                    return Ok(n);
                }
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Connect the receive socket to `peer` (lifts the queue limit for it).
    fn follow(&self, peer: PeerAddr) {
        let mut cur = self.rx_peer.lock().unwrap_or_else(|p| p.into_inner());
        if cur.is_some() {
            return;
        }
        match connect_raw(self.rx.sock.as_raw_fd(), &peer) {
            Ok(()) => {
                *cur = Some(peer);
                self.rx_connected.store(true, Ordering::Relaxed);
                tracing::debug!(local = %self.local.display(), "pkt0 receive socket follows its sender");
            }
            Err(e) => {
                tracing::debug!(local = %self.local.display(), error = %e, "pkt0: cannot follow the sender")
            }
        }
    }

    /// Connect the receive socket to its sender again, or forget a sender
    /// that is gone (so any sender is heard again). Cheap: one `connect`.
    pub(crate) fn refresh_peer(&self) {
        let mut cur = self.rx_peer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(peer) = *cur else {
            return;
        };
        if let Err(e) = connect_raw(self.rx.sock.as_raw_fd(), &peer) {
            // SAFETY: all-zero is a valid `sockaddr`; `AF_UNSPEC`
            // dissolves a datagram socket's association.
            let mut unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
            unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
            // SAFETY: `unspec` is valid for its size.
            let r = unsafe {
                libc::connect(
                    self.rx.sock.as_raw_fd(),
                    &raw const unspec,
                    std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
                )
            };
            if r != 0 {
                tracing::warn!(local = %self.local.display(), error = %io::Error::last_os_error(), "pkt0: cannot disconnect the receive socket");
                return;
            }
            *cur = None;
            self.rx_connected.store(false, Ordering::Relaxed);
            tracing::info!(local = %self.local.display(), error = %e, "pkt0: the sender went away; receiving from any sender");
        }
    }

    /// The send socket, connected to the peer; made if there is none.
    fn tx(&self) -> Result<Arc<Sock>> {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = tx.as_ref() {
            return Ok(Arc::clone(s));
        }
        let sock = UnixDatagram::unbound().map_err(|e| Error::io("socket", &self.peer, e))?;
        autobind(&sock).map_err(|e| Error::io("bind (auto)", &self.peer, e))?;
        sock.connect(&self.peer)
            .map_err(|e| self.send_error("connect", e))?;
        sock.set_nonblocking(true)
            .map_err(|e| Error::io("set non-blocking", &self.peer, e))?;
        let s = Arc::new(Sock::new(sock));
        *tx = Some(Arc::clone(&s));
        if self.follow_sender {
            // Our peer is back (or new): so may be its sender.
            self.refresh_peer();
        }
        Ok(s)
    }

    /// Forget `old` (its peer went away) unless it was replaced already.
    fn drop_tx(&self, old: &Arc<Sock>) {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.as_ref().is_some_and(|s| Arc::ptr_eq(s, old)) {
            *tx = None;
        }
    }

    fn send_error(&self, op: &'static str, e: io::Error) -> Error {
        if peer_absent(&e) {
            Error::PeerNotPresent {
                addr: self.peer.as_display(),
            }
        } else if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EPERM) {
            // EPERM: the peer's receive socket still follows our
            // predecessor; it connects again within its refresh period.
            Error::WouldBlock {
                addr: self.peer.as_display(),
            }
        } else {
            Error::io(op, &self.peer, e)
        }
    }

    pub(crate) fn try_send(&self, frame: &[u8]) -> Result<()> {
        // A second attempt on a fresh socket if the peer restarted.
        for attempt in 0..2 {
            let tx = self.tx()?;
            match tx.sock.send(frame) {
                Ok(_) => return Ok(()),
                Err(e) if peer_absent(&e) && attempt == 0 => self.drop_tx(&tx),
                Err(e) => {
                    if peer_absent(&e) {
                        self.drop_tx(&tx);
                    }
                    return Err(self.send_error("send", e));
                }
            }
        }
        Err(Error::PeerNotPresent {
            addr: self.peer.as_display(),
        })
    }

    /// Send up to [`SEND_BATCH`] of `frames` with one `sendmmsg`; how many
    /// went (all frames must be checked already). An error only when none
    /// went; a refusal after the first frame ends the batch early and shows
    /// again on the next call.
    pub(crate) fn try_send_many<'a>(
        &self,
        frames: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize> {
        // SAFETY: all-zero `iovec`s and `mmsghdr`s are valid (null
        // pointers, zero lengths).
        let mut iov: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        for f in frames.into_iter().take(SEND_BATCH) {
            iov[n] = libc::iovec {
                iov_base: f.as_ptr().cast_mut().cast(),
                iov_len: f.len(),
            };
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        for (h, v) in hdrs.iter_mut().zip(iov.iter_mut()).take(n) {
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
        }
        for attempt in 0..2 {
            let tx = self.tx()?;
            // SAFETY: `hdrs[..n]` point at `iov[..n]`, which point at the
            // caller's frames; all outlive the call; the kernel only reads
            // them (and writes `msg_len`).
            let r = unsafe {
                libc::sendmmsg(
                    tx.sock.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if let Ok(sent) = usize::try_from(r) {
                return Ok(sent);
            }
            let e = io::Error::last_os_error();
            match e {
                ref e if e.kind() == io::ErrorKind::Interrupted => {}
                ref e if peer_absent(e) && attempt == 0 => self.drop_tx(&tx),
                e => {
                    if peer_absent(&e) {
                        self.drop_tx(&tx);
                    }
                    return Err(self.send_error("sendmmsg", e));
                }
            }
        }
        Err(Error::PeerNotPresent {
            addr: self.peer.as_display(),
        })
    }

    pub(crate) async fn send(&self, frame: &[u8]) -> Result<()> {
        loop {
            match self.try_send(frame) {
                Err(Error::WouldBlock { .. }) => {}
                other => return other,
            }
            // The peer's queue is full: wait until it has room.
            let tx = match self.tx() {
                Ok(tx) => tx,
                Err(Error::WouldBlock { .. }) => {
                    // The peer follows our predecessor still.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let reg = tx.reg(Interest::WRITABLE, &self.peer).await?;
            let mut ready = reg
                .writable()
                .await
                .map_err(|e| Error::io("poll", &self.peer, e))?;
            match ready.try_io(|_| tx.sock.send(frame)) {
                Ok(Ok(_)) => return Ok(()),
                // The peer follows our predecessor still (see the module
                // docs): it connects again within its refresh period.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EPERM) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Ok(Err(e)) => {
                    if peer_absent(&e) {
                        self.drop_tx(&tx);
                    }
                    return Err(self.send_error("send", e));
                }
                Err(_) => continue,
            }
        }
    }
}

/// `connect` a datagram socket to a recorded address.
fn connect_raw(fd: RawFd, peer: &PeerAddr) -> io::Result<()> {
    // SAFETY: `peer.addr` is valid for `peer.len` bytes (as `recvfrom`
    // filled it).
    let r = unsafe { libc::connect(fd, (&raw const peer.addr).cast(), peer.len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Give `sock` an abstract address of the kernel's choosing (Linux
/// autobind), so the peer can connect back to it.
fn autobind(sock: &UnixDatagram) -> io::Result<()> {
    // SAFETY: all-zero is a valid `sockaddr_un`.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // SAFETY: binding with only the family is the documented autobind.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            id.remove_if_same(&self.local);
        }
    }
}

// Runtime-free access, Linux only (the Windows pipes are driven by tokio).
macro_rules! try_api {
    ($ty:ident) => {
        impl $ty {
            /// Receive one frame if one is queued: `Ok(None)` when none is.
            /// Needs no runtime. Linux only.
            pub fn try_recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
                self.inner.try_recv(buf)
            }

            /// Send one frame without waiting: [`Error::WouldBlock`] when
            /// the peer's queue is full, [`Error::PeerNotPresent`] when it
            /// is not there. Needs no runtime. Linux only.
            pub fn try_send(&self, frame: &[u8]) -> Result<()> {
                check_frame(frame)?;
                self.inner.try_send(frame)
            }

            /// Send the first frames of `frames` (at most
            /// [`crate::pkt0::SEND_BATCH`]) with one system call, without
            /// waiting: how many went, in order. Fewer than given when the
            /// peer's queue filled (send the rest later); an error only
            /// when none went (as [`Self::try_send`]), or when the first
            /// frame is not a valid size. Needs no runtime. Linux only.
            pub fn try_send_many<'a>(
                &self,
                frames: impl IntoIterator<Item = &'a [u8]>,
            ) -> Result<usize> {
                let mut bad = None;
                let n = self.inner.try_send_many(frames.into_iter().map_while(
                    |f| match check_frame(f) {
                        Ok(()) => Some(f),
                        Err(e) => {
                            bad = Some(e);
                            None
                        }
                    },
                ))?;
                match bad {
                    Some(e) if n == 0 => Err(e),
                    _ => Ok(n),
                }
            }
        }

        impl AsRawFd for $ty {
            /// The receive socket: it polls readable (epoll, level
            /// triggered) while a frame is queued, for a packet loop that
            /// waits on its own poller and then calls `try_recv`. Linux
            /// only.
            fn as_raw_fd(&self) -> RawFd {
                self.inner.rx_fd()
            }
        }
    };
}

try_api!(Pkt0Datapath);
try_api!(Pkt0Agent);

impl Pkt0Sender {
    /// Send one frame without waiting, as [`Pkt0Datapath::try_send`].
    /// Linux only.
    pub fn try_send(&self, frame: &[u8]) -> Result<()> {
        check_frame(frame)?;
        self.inner.try_send(frame)
    }
}
