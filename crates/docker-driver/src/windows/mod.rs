//! The driver on Windows: the plugin API on the named pipe
//! `\\.\pipe\Contrail` (SYSTEM and Administrators only), Docker's plugin
//! spec file pointing at it, and the Windows service around both.
//!
//! Docker on Windows discovers plugins by `%ProgramData%\docker\plugins\
//! <name>.spec` files holding an address; `npipe://` addresses are named
//! pipes. Upstream's driver served the same pipe name and wrote the same
//! file (removing it on stop).

mod cli;
mod pipe;
mod service;
mod spec;

pub use cli::main;

pub use pipe::{serve_pipe, PipeListener, PIPE_NAME};
pub use service::{
    service_install, service_run, service_uninstall, ServiceError, Shutdown, SERVICE_DISPLAY_NAME,
    SERVICE_NAME,
};
pub use spec::{default_program_data, spec_path, SpecFile, PLUGIN_NAME};

use std::future::Future;
use std::path::PathBuf;

/// Where the plugin listens and announces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The pipe, [`PIPE_NAME`] in production.
    pub pipe_name: String,
    /// `%ProgramData%` (the spec file goes to `<this>\docker\plugins`);
    /// [`default_program_data`] in production, a temp dir in tests.
    pub program_data: PathBuf,
    /// Header/idle and body limits of each pipe connection.
    pub timeouts: http_serve::Timeouts,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            pipe_name: PIPE_NAME.to_owned(),
            program_data: default_program_data(),
            timeouts: http_serve::Timeouts::DEFAULT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("named pipe {pipe}: {source}")]
    Pipe {
        pipe: String,
        #[source]
        source: std::io::Error,
    },
    #[error("spec file {path}: {source}")]
    Spec {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Serves `app` (the plugin API) on the pipe until `shutdown` completes:
/// binds the pipe, then writes the spec file (so Docker never reads an
/// address nobody serves), and removes the spec file on the way out.
pub async fn run_plugin(
    app: axum::Router,
    cfg: &PluginConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PluginError> {
    let pipe_err = |source| PluginError::Pipe {
        pipe: cfg.pipe_name.clone(),
        source,
    };
    let listener = PipeListener::bind(&cfg.pipe_name).map_err(pipe_err)?;
    let spec =
        SpecFile::write(&cfg.program_data, &cfg.pipe_name).map_err(|source| PluginError::Spec {
            path: spec_path(&cfg.program_data),
            source,
        })?;
    tracing::info!(pipe = %cfg.pipe_name, spec = %spec.path().display(), "serving the plugin API");
    let served = serve_pipe(listener, app, cfg.timeouts, shutdown)
        .await
        .map_err(pipe_err);
    let removed = spec.remove().map_err(|source| PluginError::Spec {
        path: spec_path(&cfg.program_data),
        source,
    });
    served.and(removed)
}
