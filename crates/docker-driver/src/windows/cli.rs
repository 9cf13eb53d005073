//! `contrail-docker-driver` on Windows: `run` (as the service), `console`
//! (in the foreground until Ctrl-C), `install`, `uninstall`.

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use service_host::LogTarget;

use super::{run_plugin, service_install, service_run, service_uninstall, PluginConfig};
use crate::backend::windows::{HcnBackend, HcnConfig};
use crate::cli::DriverArgs;
use crate::Driver;

#[derive(Parser)]
#[command(
    name = "contrail-docker-driver",
    version,
    about = "Contrail Docker network + IPAM driver (Windows service)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run as the Windows service (what the service control manager starts).
    Run(WindowsArgs),
    /// Run in this console until Ctrl-C (debugging).
    Console(WindowsArgs),
    /// Register the service to start `run` with these options at boot.
    Install(WindowsArgs),
    /// Stop and remove the service.
    Uninstall,
}

#[derive(Debug, Clone, clap::Args)]
struct WindowsArgs {
    #[command(flatten)]
    driver: DriverArgs,
    /// The dataplane adapter our Transparent networks bind to.
    #[arg(long, default_value = "Ethernet0")]
    adapter: String,
    /// `Id` of the switch extension to enable (the vRouter extension).
    #[arg(long, default_value = hcn::VROUTER_EXTENSION_ID)]
    extension_id: String,
    /// Log to daily files `contrail-docker-driver.YYYY-MM-DD.log` in this
    /// directory (the newest 14 kept) instead of stderr; a service has none.
    #[arg(long)]
    log_dir: Option<std::path::PathBuf>,
    /// Log filter (tracing env-filter syntax), e.g. `info` or
    /// `docker_driver=debug`; `RUST_LOG` when not given.
    #[arg(long)]
    log_level: Option<String>,
}

/// The Windows `main` (called by `src/main.rs`).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => init_logging(&args).and_then(|()| {
            service_run(move |shutdown| serve(args, shutdown.wait()).map_err(|e| format!("{e:#}")))
                .map_err(anyhow::Error::from)
        }),
        Cmd::Console(args) => init_logging(&args).and_then(|()| {
            serve(args, async {
                let _ = tokio::signal::ctrl_c().await;
            })
        }),
        Cmd::Install(_) => {
            // The options exactly as typed after `install` (already
            // validated by the parse above) become the service's.
            let args: Vec<OsString> = std::env::args_os().skip(2).collect();
            service_install(&args).map_err(anyhow::Error::from)
        }
        Cmd::Uninstall => service_uninstall().map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("contrail-docker-driver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &WindowsArgs) -> anyhow::Result<()> {
    let filter = match &args.log_level {
        Some(l) => tracing_subscriber::EnvFilter::try_new(l).context("--log-level")?,
        None => {
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
        }
    };
    let target = match &args.log_dir {
        Some(dir) => LogTarget::Files {
            dir,
            name: "contrail-docker-driver",
            keep: service_host::DEFAULT_KEEP,
        },
        None => LogTarget::Stderr,
    };
    Ok(service_host::init_logging(filter, target)?)
}

/// Builds the driver on HNS and serves it on the pipe until `shutdown`.
fn serve(args: WindowsArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async move {
            let (vnc, agent) = args.driver.clients()?;
            // Opened on first use: the plugin API is served (and Docker
            // gets HNS's error) even where HNS cannot be loaded yet.
            let hcn = hcn::OnFirstUse::new(hcn::ComputeNetwork::new);
            if let Err(e) = hcn.get() {
                tracing::warn!(error = %e, "HNS not available yet; network calls will fail until it is");
            }
            let backend = HcnBackend::new(
                hcn,
                HcnConfig {
                    adapter: args.adapter.clone(),
                    extensions: vec![args.extension_id.clone()],
                },
            );
            let driver = Arc::new(Driver::new(vnc, agent, backend, args.driver.config()));
            let bg = Arc::clone(&driver);
            let interval = args.driver.reconcile_interval;
            let reconciler = tokio::spawn(async move {
                loop {
                    match bg.reconcile().await {
                        Ok(r) if r != Default::default() => tracing::info!(?r, "reconciled"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("reconcile: {e}"),
                    }
                    if interval == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(interval)).await;
                }
            });
            let served = run_plugin(crate::app(driver), &PluginConfig::default(), shutdown).await;
            reconciler.abort();
            tracing::info!("stopped");
            Ok(served?)
        })
}
