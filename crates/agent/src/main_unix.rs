//! The agent in the foreground: a shell, or systemd (`vrouter-agent.service`),
//! logging to stderr; SIGTERM or SIGINT stops it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

pub fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let (opts, level) = super::options(super::Args::parse())?;
    let filter = tracing_subscriber::EnvFilter::try_new(&level).context("--log-level")?;
    service_host::init_logging(filter, service_host::LogTarget::Stderr)?;
    super::serve(opts, shutdown())
}

/// The datapath's default `--sock-dir`.
pub fn default_sock_dir() -> Option<PathBuf> {
    Some(PathBuf::from("/var/run/vrouter"))
}

pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/vrouter-rs")
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
