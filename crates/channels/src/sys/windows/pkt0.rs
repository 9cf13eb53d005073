//! pkt0 over a message-mode named pipe: the datapath serves one instance,
//! the agent is its client. See the `pkt0` module docs for why both ends
//! read through a 64 KiB buffer and write an empty message first.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient, NamedPipeServer, PipeMode};
use windows_sys::Win32::Foundation::ERROR_PIPE_BUSY;

use super::ksync::create_server;
use super::security::SecurityAttributes;
use super::{not_found, os_error, pipe_gone};
use crate::error::{AsDisplay, Error, Result};
use crate::pkt0::PKT0_MAX_FRAME;
use crate::ChannelPaths;

/// How often a waiting agent looks for the datapath's pipe.
const RETRY: Duration = Duration::from_millis(100);

/// The message-level operations both pipe ends share.
trait Pipe {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    async fn readable(&self) -> io::Result<()>;
    async fn writable(&self) -> io::Result<()>;
}

macro_rules! pipe_impl {
    ($ty:ty) => {
        impl Pipe for $ty {
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$ty>::try_read(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$ty>::try_write(self, buf)
            }
            async fn readable(&self) -> io::Result<()> {
                <$ty>::readable(self).await
            }
            async fn writable(&self) -> io::Result<()> {
                <$ty>::writable(self).await
            }
        }
    };
}

pipe_impl!(NamedPipeServer);
pipe_impl!(NamedPipeClient);

enum Read {
    Frame(usize),
    TooBig(usize),
    Closed,
}

/// One message into `buf`. `first` marks the first read of a connection,
/// where an empty message is the peer's primer, not the end.
async fn read_frame<P: Pipe>(
    pipe: &P,
    first: &AtomicBool,
    scratch: &Mutex<Vec<u8>>,
    buf: &mut [u8],
) -> io::Result<Read> {
    loop {
        pipe.readable().await?;
        let s = &mut *scratch.lock().unwrap_or_else(PoisonError::into_inner);
        match pipe.try_read(s) {
            Ok(0) if first.swap(false, Ordering::AcqRel) => continue,
            Ok(0) => return Ok(Read::Closed),
            Ok(n) => {
                first.store(false, Ordering::Release);
                return Ok(match (buf.get_mut(..n), s.get(..n)) {
                    (Some(dst), Some(src)) => {
                        dst.copy_from_slice(src);
                        Read::Frame(n)
                    }
                    _ => Read::TooBig(n),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if pipe_gone(&e) => return Ok(Read::Closed),
            Err(e) => return Err(e),
        }
    }
}

/// One message (mio hands the whole buffer to one `WriteFile`).
async fn write_frame<P: Pipe>(pipe: &P, frame: &[u8]) -> io::Result<()> {
    loop {
        pipe.writable().await?;
        match pipe.try_write(frame) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Poll `f` once, without waiting.
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn scratch() -> Mutex<Vec<u8>> {
    Mutex::new(vec![0; PKT0_MAX_FRAME])
}

#[derive(Debug)]
pub(crate) enum Endpoint {
    Datapath(Server),
    Agent(Client),
    /// The agent's end on the kernel extension's pkt0 device.
    Device(super::device::DevClient),
}

impl Endpoint {
    pub(crate) fn bind_datapath(paths: &ChannelPaths) -> Result<Self> {
        crate::sys::require_runtime("Pkt0Datapath::bind")?;
        Server::bind(&paths.pkt0_datapath).map(Self::Datapath)
    }

    pub(crate) fn bind_agent(paths: &ChannelPaths) -> Result<Self> {
        if super::device::is_device(&paths.pkt0_datapath) {
            return Ok(Self::Device(super::device::DevClient::new(
                &paths.pkt0_datapath,
            )));
        }
        Ok(Self::Agent(Client {
            name: paths.pkt0_datapath.clone(),
            conn: tokio::sync::Mutex::new(None),
            scratch: scratch(),
        }))
    }

    pub(crate) async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        match self {
            Self::Datapath(s) => s.recv(buf).await,
            Self::Agent(c) => c.recv(buf).await,
            Self::Device(c) => c.recv(buf).await,
        }
    }

    /// Named pipes and the device have no per-sender queue limit to lift.
    pub(crate) fn refresh_peer(&self) {}

    pub(crate) async fn send(&self, frame: &[u8]) -> Result<()> {
        match self {
            Self::Datapath(s) => s.send(frame).await,
            Self::Agent(c) => c.send(frame).await,
            Self::Device(c) => c.send(frame).await,
        }
    }
}

fn frame_result(read: Read, cap: usize) -> Option<Result<usize>> {
    match read {
        Read::Frame(n) => Some(Ok(n)),
        Read::TooBig(len) => Some(Err(Error::BufferTooSmall { len, cap })),
        Read::Closed => None,
    }
}

/// The datapath's end: one pipe instance, reused across agent connections.
#[derive(Debug)]
pub(crate) struct Server {
    pipe: NamedPipeServer,
    name: PathBuf,
    /// An agent is connected and has been sent the primer.
    connected: AtomicBool,
    /// Serialises connection setup, so no frame overtakes the primer.
    setup: tokio::sync::Mutex<()>,
    first_read: AtomicBool,
    scratch: Mutex<Vec<u8>>,
}

impl Server {
    fn bind(name: &Path) -> Result<Self> {
        let mut sa = SecurityAttributes::new()?;
        let pipe = create_server(name, PipeMode::Message, true, Some(1), &mut sa)?;
        Ok(Self {
            pipe,
            name: name.to_owned(),
            connected: AtomicBool::new(false),
            setup: tokio::sync::Mutex::new(()),
            first_read: AtomicBool::new(true),
            scratch: scratch(),
        })
    }

    /// The pipe has a client: send it the primer, then mark it connected.
    async fn prime(&self) -> Result<()> {
        let _setup = self.setup.lock().await;
        if self.connected.load(Ordering::Acquire) {
            return Ok(());
        }
        self.first_read.store(true, Ordering::Release);
        match write_frame(&self.pipe, &[]).await {
            Ok(()) => {}
            // Gone already: the next read sees it.
            Err(e) if pipe_gone(&e) => {}
            Err(e) => return Err(Error::io("write", &self.name, e)),
        }
        self.connected.store(true, Ordering::Release);
        tracing::debug!(pipe = %self.name.display(), "pkt0 agent connected");
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        loop {
            if !self.connected.load(Ordering::Acquire) {
                match self.pipe.connect().await {
                    Ok(()) => self.prime().await?,
                    // The agent came and went before we saw it: re-arm.
                    Err(e) if pipe_gone(&e) => {
                        self.pipe
                            .disconnect()
                            .map_err(|e| Error::io("disconnect", &self.name, e))?;
                        continue;
                    }
                    Err(e) => return Err(Error::io("accept", &self.name, e)),
                }
            }
            let read = read_frame(&self.pipe, &self.first_read, &self.scratch, buf)
                .await
                .map_err(|e| Error::io("read", &self.name, e))?;
            if let Some(r) = frame_result(read, buf.len()) {
                return r;
            }
            tracing::debug!(pipe = %self.name.display(), "pkt0 agent disconnected");
            let _setup = self.setup.lock().await;
            self.connected.store(false, Ordering::Release);
            self.pipe
                .disconnect()
                .map_err(|e| Error::io("disconnect", &self.name, e))?;
        }
    }

    async fn send(&self, frame: &[u8]) -> Result<()> {
        let absent = || Error::PeerNotPresent {
            addr: self.name.as_display(),
        };
        if !self.connected.load(Ordering::Acquire) {
            // An agent may have connected while no receive was running.
            match poll_once(self.pipe.connect()) {
                Some(Ok(())) => self.prime().await?,
                _ => return Err(absent()),
            }
        }
        write_frame(&self.pipe, frame).await.map_err(|e| {
            if pipe_gone(&e) {
                absent()
            } else {
                Error::io("write", &self.name, e)
            }
        })
    }
}

#[derive(Debug)]
struct ClientConn {
    pipe: NamedPipeClient,
    first_read: AtomicBool,
}

/// The agent's end: connects on demand, reconnects after the datapath
/// restarts.
#[derive(Debug)]
pub(crate) struct Client {
    name: PathBuf,
    conn: tokio::sync::Mutex<Option<Arc<ClientConn>>>,
    scratch: Mutex<Vec<u8>>,
}

impl Client {
    async fn conn(&self) -> Result<Arc<ClientConn>> {
        crate::sys::require_runtime("Pkt0Agent")?;
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(Arc::clone(c));
        }
        let pipe = ClientOptions::new()
            .pipe_mode(PipeMode::Message)
            .open(&self.name)
            .map_err(|e| {
                // Busy: the single instance serves another agent, or the
                // datapath has not yet re-armed it after a disconnect.
                if not_found(&e) || os_error(&e) == Some(ERROR_PIPE_BUSY) {
                    Error::PeerNotPresent {
                        addr: self.name.as_display(),
                    }
                } else {
                    Error::io("connect", &self.name, e)
                }
            })?;
        write_frame(&pipe, &[]).await.map_err(|e| {
            // A server instance that is being closed still accepts opens
            // for a moment (tokio closes the handle once its pending I/O is
            // cancelled).
            if pipe_gone(&e) {
                Error::PeerNotPresent {
                    addr: self.name.as_display(),
                }
            } else {
                Error::io("write", &self.name, e)
            }
        })?;
        tracing::debug!(pipe = %self.name.display(), "pkt0 connected to the datapath");
        let c = Arc::new(ClientConn {
            pipe,
            first_read: AtomicBool::new(true),
        });
        *conn = Some(Arc::clone(&c));
        Ok(c)
    }

    async fn forget(&self, old: &Arc<ClientConn>) {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, old)) {
            *conn = None;
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        loop {
            let c = match self.conn().await {
                Ok(c) => c,
                Err(e) if e.is_peer_not_present() => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let read = read_frame(&c.pipe, &c.first_read, &self.scratch, buf)
                .await
                .map_err(|e| Error::io("read", &self.name, e))?;
            if let Some(r) = frame_result(read, buf.len()) {
                return r;
            }
            tracing::debug!(pipe = %self.name.display(), "pkt0 datapath went away");
            self.forget(&c).await;
        }
    }

    async fn send(&self, frame: &[u8]) -> Result<()> {
        // A second attempt on a fresh connection if the datapath restarted.
        for _ in 0..2 {
            let c = self.conn().await?;
            match write_frame(&c.pipe, frame).await {
                Ok(()) => return Ok(()),
                Err(e) if pipe_gone(&e) => self.forget(&c).await,
                Err(e) => return Err(Error::io("write", &self.name, e)),
            }
        }
        Err(Error::PeerNotPresent {
            addr: self.name.as_display(),
        })
    }
}
