//! The kernel extension's devices (`\\.\vrouterKsync`, `\\.\vrouterPkt0`):
//! ksync and pkt0 when the datapath is the Hyper-V forwarding extension
//! rather than a user-space process.
//!
//! A device handle is opened for overlapped I/O, and each read, write or
//! IOCTL blocks its own thread on its own `OVERLAPPED`: the extension
//! pends a read until data arrives, and a write on the same handle must
//! not wait behind it (a synchronous handle would serialise them). tokio
//! has no device type on Windows, so the async endpoints run reads on a
//! dedicated thread per handle and writes on tokio's blocking pool.
//!
//! Semantics, as the extension serves them: ksync is a byte stream (reads
//! return answer bytes as they accumulate); pkt0 returns one frame per read
//! and takes one frame per write.

use std::ffi::c_void;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_IO_PENDING, GENERIC_READ, GENERIC_WRITE, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, ReadFile, WriteFile, FILE_FLAG_OVERLAPPED, OPEN_EXISTING,
};
use windows_sys::Win32::System::Threading::CreateEventW;
use windows_sys::Win32::System::IO::{
    CancelIoEx, DeviceIoControl, GetOverlappedResult, OVERLAPPED,
};

use super::{not_found, wide};
use crate::error::{AsDisplay, Error, Result};
use crate::pkt0::PKT0_MAX_FRAME;

/// Is `name` a device path (`\\.\NAME`) rather than a pipe (`\\.\pipe\NAME`)?
pub(crate) fn is_device(name: &Path) -> bool {
    let s = name.to_string_lossy().to_ascii_lowercase();
    s.starts_with(r"\\.\") && !s.starts_with(r"\\.\pipe\")
}

/// An open device handle (see the module docs).
#[derive(Debug)]
pub struct Device {
    handle: HANDLE,
    name: PathBuf,
}

// SAFETY: a kernel handle opened for overlapped I/O; concurrent operations
// from several threads, each with its own OVERLAPPED, are what it is for.
unsafe impl Send for Device {}
// SAFETY: as above.
unsafe impl Sync for Device {}

impl Device {
    /// Open `name` (`\\.\vrouterKsync`, ...) for reading and writing.
    pub fn open(name: &Path) -> io::Result<Device> {
        let w = wide(name.as_os_str());
        // SAFETY: a NUL-terminated name; no template, no security
        // attributes (the device's own descriptor decides).
        let handle = unsafe {
            CreateFileW(
                w.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                0,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_FLAG_OVERLAPPED,
                std::ptr::null_mut(),
            )
        };
        if handle == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        Ok(Device {
            handle,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &Path {
        &self.name
    }

    /// One overlapped operation, waited for on this thread.
    fn io(&self, start: impl FnOnce(*mut OVERLAPPED) -> i32) -> io::Result<usize> {
        // SAFETY: a manual-reset event for this operation only.
        let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if event.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: all-zero is a valid OVERLAPPED (offset 0).
        let mut ov: OVERLAPPED = unsafe { std::mem::zeroed() };
        ov.hEvent = event;
        let ok = start(&mut ov);
        // SAFETY: plain call, right after the one it reports on.
        let err = if ok == 0 {
            unsafe { GetLastError() }
        } else {
            0
        };
        let res = if ok == 0 && err != ERROR_IO_PENDING {
            Err(io::Error::from_raw_os_error(err as i32))
        } else {
            let mut n = 0u32;
            // SAFETY: `ov` is the operation's, alive until it completes
            // (bWait = TRUE).
            if unsafe { GetOverlappedResult(self.handle, &ov, &mut n, 1) } == 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        };
        // SAFETY: our event, closed once.
        unsafe { CloseHandle(event) };
        res
    }

    /// Read into `buf`, waiting for data.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let p = buf.as_mut_ptr();
        // SAFETY: `buf` outlives the operation (waited for in `io`).
        self.io(|ov| unsafe { ReadFile(self.handle, p, len, std::ptr::null_mut(), ov) })
    }

    /// Write `buf`.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let len =
            u32::try_from(buf.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let p = buf.as_ptr();
        // SAFETY: as `read`.
        self.io(|ov| unsafe { WriteFile(self.handle, p, len, std::ptr::null_mut(), ov) })
    }

    /// A buffered IOCTL: `input` in, up to `out.len()` bytes back.
    pub fn ioctl(&self, code: u32, input: &[u8], out: &mut [u8]) -> io::Result<usize> {
        let il =
            u32::try_from(input.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let ol =
            u32::try_from(out.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let (ip, op) = (
            input.as_ptr().cast::<c_void>(),
            out.as_mut_ptr().cast::<c_void>(),
        );
        // SAFETY: as `read`.
        self.io(|ov| unsafe {
            DeviceIoControl(self.handle, code, ip, il, op, ol, std::ptr::null_mut(), ov)
        })
    }

    /// Cancel this handle's operations (a reader thread blocked in `read`
    /// returns `ERROR_OPERATION_ABORTED`).
    pub fn cancel(&self) {
        // SAFETY: our handle.
        unsafe { CancelIoEx(self.handle, std::ptr::null()) };
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: our handle, closed once.
        unsafe { CloseHandle(self.handle) };
    }
}

/// Map opening errors to the crate's: a missing device is a missing peer.
fn open(name: &Path) -> Result<Arc<Device>> {
    Device::open(name).map(Arc::new).map_err(|e| {
        if not_found(&e) {
            Error::PeerNotPresent {
                addr: name.as_display(),
            }
        } else {
            Error::io("open device", name, e)
        }
    })
}

/// A thread reading the device into a channel until it fails or nobody
/// listens. An empty chunk means end of stream.
fn reader(dev: Arc<Device>, chunk: usize) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || loop {
        let mut b = vec![0u8; chunk];
        match dev.read(&mut b) {
            Ok(n) => {
                b.truncate(n);
                let end = n == 0;
                if tx.blocking_send(Ok(b)).is_err() || end {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    });
    rx
}

/// The ksync device as a byte stream.
#[derive(Debug)]
pub(crate) struct DeviceStream {
    dev: Arc<Device>,
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    write: Option<JoinHandle<io::Result<usize>>>,
}

impl DeviceStream {
    pub(crate) fn open(name: &Path) -> Result<Self> {
        let dev = open(name)?;
        let rx = reader(Arc::clone(&dev), 64 * 1024);
        Ok(DeviceStream {
            dev,
            rx,
            chunk: Vec::new(),
            at: 0,
            write: None,
        })
    }
}

impl Drop for DeviceStream {
    fn drop(&mut self) {
        // Unblock the reader thread; the handle closes when it exits.
        self.dev.cancel();
    }
}

impl AsyncRead for DeviceStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.at < self.chunk.len() {
                let n = (self.chunk.len() - self.at).min(buf.remaining());
                let at = self.at;
                buf.put_slice(&self.chunk[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // End of stream: nothing filled.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Ok(v))) if v.is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Ok(v))) => {
                    self.chunk = v;
                    self.at = 0;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for DeviceStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.write.is_none() {
            let dev = Arc::clone(&self.dev);
            let data = buf.to_vec();
            self.write = Some(tokio::task::spawn_blocking(move || dev.write(&data)));
        }
        self.poll_flush(cx).map(|r| r.map(|()| buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(h) = self.write.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let r = match Pin::new(h).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        self.write = None;
        Poll::Ready(match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(io::Error::other(e)),
        })
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

use std::future::Future;

/// How often a waiting agent looks for the pkt0 device.
const RETRY: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct DevConn {
    dev: Arc<Device>,
    rx: tokio::sync::Mutex<mpsc::Receiver<io::Result<Vec<u8>>>>,
}

impl Drop for DevConn {
    fn drop(&mut self) {
        self.dev.cancel();
    }
}

/// The agent's pkt0 end on the extension's device: opened on first use,
/// reopened after the driver restarts.
#[derive(Debug)]
pub(crate) struct DevClient {
    name: PathBuf,
    conn: tokio::sync::Mutex<Option<Arc<DevConn>>>,
}

impl DevClient {
    pub(crate) fn new(name: &Path) -> Self {
        DevClient {
            name: name.to_owned(),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    async fn conn(&self) -> Result<Arc<DevConn>> {
        let mut c = self.conn.lock().await;
        if let Some(c) = c.as_ref() {
            return Ok(Arc::clone(c));
        }
        let dev = open(&self.name)?;
        let rx = reader(Arc::clone(&dev), PKT0_MAX_FRAME + 1);
        let n = Arc::new(DevConn {
            dev,
            rx: tokio::sync::Mutex::new(rx),
        });
        *c = Some(Arc::clone(&n));
        tracing::debug!(device = %self.name.display(), "pkt0 device opened");
        Ok(n)
    }

    async fn forget(&self, old: &Arc<DevConn>) {
        let mut c = self.conn.lock().await;
        if c.as_ref().is_some_and(|x| Arc::ptr_eq(x, old)) {
            *c = None;
        }
    }

    pub(crate) async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        loop {
            let c = match self.conn().await {
                Ok(c) => c,
                Err(e) if e.is_peer_not_present() => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let got = c.rx.lock().await.recv().await;
            match got {
                Some(Ok(f)) if !f.is_empty() => {
                    return match buf.get_mut(..f.len()) {
                        Some(d) => {
                            d.copy_from_slice(&f);
                            Ok(f.len())
                        }
                        None => Err(Error::BufferTooSmall {
                            len: f.len(),
                            cap: buf.len(),
                        }),
                    };
                }
                Some(Err(e)) => {
                    tracing::debug!(device = %self.name.display(), error = %e, "pkt0 device read failed");
                    self.forget(&c).await;
                    tokio::time::sleep(RETRY).await;
                }
                _ => {
                    self.forget(&c).await;
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    pub(crate) async fn send(&self, frame: &[u8]) -> Result<()> {
        let c = self.conn().await?;
        let dev = Arc::clone(&c.dev);
        let data = frame.to_vec();
        let r = tokio::task::spawn_blocking(move || dev.write(&data))
            .await
            .map_err(|e| Error::io("write", &self.name, io::Error::other(e)))?;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                self.forget(&c).await;
                Err(Error::io("write", &self.name, e))
            }
        }
    }
}
