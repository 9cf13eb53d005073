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

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
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

#[derive(Debug)]
pub(crate) struct Endpoint {
    rx: Sock,
    tx: Mutex<Option<Arc<Sock>>>,
    local: PathBuf,
    peer: PathBuf,
    id: Option<FileId>,
}

impl Endpoint {
    pub(crate) fn bind_datapath(paths: &ChannelPaths) -> Result<Self> {
        Self::bind(&paths.pkt0_datapath, &paths.pkt0_agent)
    }

    pub(crate) fn bind_agent(paths: &ChannelPaths) -> Result<Self> {
        Self::bind(&paths.pkt0_agent, &paths.pkt0_datapath)
    }

    fn bind(local: &Path, peer: &Path) -> Result<Self> {
        prepare_socket_path(local, |p| UnixDatagram::unbound()?.connect(p))?;
        let sock = UnixDatagram::bind(local).map_err(|e| Error::io("bind", local, e))?;
        let id = FileId::of(local);
        let this = Self {
            rx: Sock::new(sock),
            tx: Mutex::new(None),
            local: local.to_owned(),
            peer: peer.to_owned(),
            id,
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
            let mut ready = reg
                .readable()
                .await
                .map_err(|e| Error::io("poll", &self.local, e))?;
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
    /// when it was longer than `buf` (std cannot tell).
    fn raw_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
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

    /// The send socket, connected to the peer; made if there is none.
    fn tx(&self) -> Result<Arc<Sock>> {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = tx.as_ref() {
            return Ok(Arc::clone(s));
        }
        let sock = UnixDatagram::unbound().map_err(|e| Error::io("socket", &self.peer, e))?;
        sock.connect(&self.peer)
            .map_err(|e| self.send_error("connect", e))?;
        sock.set_nonblocking(true)
            .map_err(|e| Error::io("set non-blocking", &self.peer, e))?;
        let s = Arc::new(Sock::new(sock));
        *tx = Some(Arc::clone(&s));
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
        } else if e.kind() == io::ErrorKind::WouldBlock {
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

    pub(crate) async fn send(&self, frame: &[u8]) -> Result<()> {
        loop {
            match self.try_send(frame) {
                Err(Error::WouldBlock { .. }) => {}
                other => return other,
            }
            // The peer's queue is full: wait until it has room.
            let tx = self.tx()?;
            let reg = tx.reg(Interest::WRITABLE, &self.peer).await?;
            let mut ready = reg
                .writable()
                .await
                .map_err(|e| Error::io("poll", &self.peer, e))?;
            match ready.try_io(|_| tx.sock.send(frame)) {
                Ok(Ok(_)) => return Ok(()),
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
