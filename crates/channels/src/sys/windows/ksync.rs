//! ksync over a byte-mode named pipe, one instance per connection.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::windows::named_pipe::{
    ClientOptions, NamedPipeClient, NamedPipeServer, PipeMode, ServerOptions,
};
use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY};

use super::security::SecurityAttributes;
use super::{not_found, os_error};
use crate::error::{AsDisplay, Error, Result};

/// Either end of a pipe connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Server(NamedPipeServer),
    Client(NamedPipeClient),
    /// The kernel extension's ksync device.
    Device(super::device::DeviceStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Server(p) => Pin::new(p).poll_read(cx, buf),
            Self::Client(p) => Pin::new(p).poll_read(cx, buf),
            Self::Device(d) => Pin::new(d).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Server(p) => Pin::new(p).poll_write(cx, buf),
            Self::Client(p) => Pin::new(p).poll_write(cx, buf),
            Self::Device(d) => Pin::new(d).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Server(p) => Pin::new(p).poll_flush(cx),
            Self::Client(p) => Pin::new(p).poll_flush(cx),
            Self::Device(d) => Pin::new(d).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Server(p) => Pin::new(p).poll_shutdown(cx),
            Self::Client(p) => Pin::new(p).poll_shutdown(cx),
            Self::Device(d) => Pin::new(d).poll_shutdown(cx),
        }
    }
}

/// Creates a server instance of `name`.
pub(crate) fn create_server(
    name: &Path,
    mode: PipeMode,
    first: bool,
    max_instances: Option<usize>,
    sa: &mut SecurityAttributes,
) -> Result<NamedPipeServer> {
    if first && super::pipe_served(name) {
        return Err(Error::AddrInUse {
            addr: name.as_display(),
        });
    }
    let mut opts = ServerOptions::new();
    opts.pipe_mode(mode)
        .first_pipe_instance(first)
        .reject_remote_clients(true);
    if let Some(n) = max_instances {
        opts.max_instances(n);
    }
    // SAFETY: `sa` is a valid SECURITY_ATTRIBUTES whose descriptor lives
    // while `sa` does; CreateNamedPipeW only reads it during the call.
    unsafe { opts.create_with_security_attributes_raw(name, sa.as_void()) }.map_err(|e| {
        if first && os_error(&e) == Some(ERROR_ACCESS_DENIED) {
            // FILE_FLAG_FIRST_PIPE_INSTANCE: somebody serves this name.
            Error::AddrInUse {
                addr: name.as_display(),
            }
        } else {
            Error::io("create pipe", name, e)
        }
    })
}

#[derive(Debug)]
pub(crate) struct Listener {
    /// The instance the next client connects to.
    next: NamedPipeServer,
    name: PathBuf,
    sa: SecurityAttributes,
}

impl Listener {
    pub(crate) fn bind(name: &Path) -> Result<Self> {
        let mut sa = SecurityAttributes::new()?;
        let next = create_server(name, PipeMode::Byte, true, None, &mut sa)?;
        Ok(Self {
            next,
            name: name.to_owned(),
            sa,
        })
    }

    pub(crate) async fn accept(&mut self) -> Result<Stream> {
        self.next
            .connect()
            .await
            .map_err(|e| Error::io("accept", &self.name, e))?;
        // A fresh instance for the next client before handing this one out.
        let fresh = create_server(&self.name, PipeMode::Byte, false, None, &mut self.sa)?;
        Ok(Stream::Server(std::mem::replace(&mut self.next, fresh)))
    }
}

/// How long a client waits for a free instance.
const BUSY_WAIT: Duration = Duration::from_secs(5);

pub(crate) async fn connect(name: &Path) -> Result<Stream> {
    if super::device::is_device(name) {
        return super::device::DeviceStream::open(name).map(Stream::Device);
    }
    let start = Instant::now();
    loop {
        match ClientOptions::new().open(name) {
            Ok(c) => return Ok(Stream::Client(c)),
            Err(e) if not_found(&e) => {
                return Err(Error::PeerNotPresent {
                    addr: name.as_display(),
                })
            }
            // Every instance is taken for a moment (the listener is between
            // accepting and creating the next one).
            Err(e) if os_error(&e) == Some(ERROR_PIPE_BUSY) && start.elapsed() < BUSY_WAIT => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(Error::io("connect", name, e)),
        }
    }
}
