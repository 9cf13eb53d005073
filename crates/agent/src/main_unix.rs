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
    keep_heap();
    let (opts, level) = super::options(super::Args::parse())?;
    let filter = tracing_subscriber::EnvFilter::try_new(&level).context("--log-level")?;
    service_host::init_logging(filter, service_host::LogTarget::Stderr)?;
    super::serve(opts, shutdown())
}

/// glibc gives freed memory at the top of a thread's heap back to the
/// kernel (`madvise`) once 128 KiB are free, and the next batch of flows
/// faults the same pages in again: measured in a new-flow flood, 40% of the
/// flow task's CPU went to `sysmalloc` page faults and the trims. Keep up
/// to 64 MiB (`M_TRIM_THRESHOLD`; allocations of up to 32 MiB from the heap,
/// not `mmap`, as glibc's own adaptive threshold would reach).
fn keep_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
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
