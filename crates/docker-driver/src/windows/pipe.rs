//! The plugin API on a byte-mode named pipe, one pipe instance per Docker
//! connection, each served by the crate's `serve_connection`.

use std::future::Future;
use std::io;

use tokio::net::windows::named_pipe::{NamedPipeServer, PipeMode, ServerOptions};

/// Upstream's pipe, the one Docker finds through the spec file.
pub const PIPE_NAME: &str = r"\\.\pipe\Contrail";

/// The pipe's security: [`channels::WINDOWS_SDDL`] (SYSTEM and
/// Administrators, nothing inherited), as for the vRouter's own pipes:
/// Docker runs as SYSTEM. Upstream's driver also let in the local service
/// accounts; nothing needs them.
type Security = channels::WindowsSecurity;

/// The listening side of the pipe: always one instance waiting.
pub struct PipeListener {
    name: String,
    next: NamedPipeServer,
    security: Security,
}

impl std::fmt::Debug for PipeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeListener")
            .field("name", &self.name)
            .finish()
    }
}

impl PipeListener {
    /// Creates the first instance of `name`. Fails if another process
    /// serves the name already (`FILE_FLAG_FIRST_PIPE_INSTANCE`).
    pub fn bind(name: &str) -> io::Result<Self> {
        let mut security = Security::new().map_err(io::Error::other)?;
        let next = Self::instance(name, &mut security, true)?;
        Ok(Self {
            name: name.to_owned(),
            next,
            security,
        })
    }

    fn instance(name: &str, sec: &mut Security, first: bool) -> io::Result<NamedPipeServer> {
        let mut opts = ServerOptions::new();
        opts.pipe_mode(PipeMode::Byte)
            .first_pipe_instance(first)
            .reject_remote_clients(true);
        // SAFETY: a valid SECURITY_ATTRIBUTES whose descriptor lives as
        // long as `sec`; only read during the call.
        unsafe { opts.create_with_security_attributes_raw(name, sec.as_void()) }
    }

    /// Waits for a client; returns its connected instance, or `None` if
    /// the client went away while connecting (the waiting instance is
    /// replaced). An error means no new instance could be created.
    pub async fn accept(&mut self) -> io::Result<Option<NamedPipeServer>> {
        let connected = self.next.connect().await;
        // The next client's instance exists before this one is handed out.
        let fresh = Self::instance(&self.name, &mut self.security, false)?;
        let conn = std::mem::replace(&mut self.next, fresh);
        match connected {
            Ok(()) => Ok(Some(conn)),
            Err(e) => {
                tracing::debug!(error = %e, pipe = %self.name, "client left while connecting");
                Ok(None)
            }
        }
    }
}

/// Serves `app` on every connection of `listener` until `shutdown`, each
/// with the header/idle and body limits `timeouts`.
/// Connections in flight when `shutdown` fires are dropped with the
/// runtime; Docker retries plugin calls.
pub async fn serve_pipe(
    mut listener: PipeListener,
    app: axum::Router,
    timeouts: http_serve::Timeouts,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            conn = listener.accept() => {
                let Some(conn) = conn? else { continue };
                let app = app.clone();
                tokio::spawn(async move {
                    if let Err(e) = crate::serve_connection(conn, app, timeouts).await {
                        tracing::debug!(error = %e, "plugin pipe connection ended");
                    }
                });
            }
        }
    }
}
