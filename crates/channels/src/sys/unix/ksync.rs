//! ksync over a unix stream socket.

use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use super::{peer_absent, prepare_socket_path, restrict, FileId};
use crate::error::{AsDisplay, Error, Result};

pub(crate) type Stream = UnixStream;

#[derive(Debug)]
pub(crate) struct Listener {
    listener: UnixListener,
    path: PathBuf,
    id: Option<FileId>,
}

impl Listener {
    pub(crate) fn bind(path: &Path) -> Result<Self> {
        prepare_socket_path(path, |p| {
            std::os::unix::net::UnixStream::connect(p).map(drop)
        })?;
        let std =
            std::os::unix::net::UnixListener::bind(path).map_err(|e| Error::io("bind", path, e))?;
        let id = FileId::of(path);
        // Do not leave the socket file behind when setup fails.
        let cleanup = |e: Error| {
            if let Some(id) = id {
                id.remove_if_same(path);
            }
            e
        };
        restrict(path).map_err(cleanup)?;
        std.set_nonblocking(true)
            .map_err(|e| cleanup(Error::io("set non-blocking", path, e)))?;
        let listener =
            UnixListener::from_std(std).map_err(|e| cleanup(Error::io("register", path, e)))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            id,
        })
    }

    pub(crate) async fn accept(&mut self) -> Result<Stream> {
        let (s, _) = self
            .listener
            .accept()
            .await
            .map_err(|e| Error::io("accept", &self.path, e))?;
        Ok(s)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            id.remove_if_same(&self.path);
        }
    }
}

pub(crate) async fn connect(path: &Path) -> Result<Stream> {
    UnixStream::connect(path).await.map_err(|e| {
        if peer_absent(&e) {
            Error::PeerNotPresent {
                addr: path.as_display(),
            }
        } else {
            Error::io("connect", path, e)
        }
    })
}
