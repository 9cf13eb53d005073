//! `contrail-docker-driver` on Windows: `run` (as the service), `console`
//! (in the foreground until Ctrl-C), `install`, `uninstall`.

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use service_host::LogTarget;

use super::{run_plugin, service_install, service_run, service_uninstall, PluginConfig};
use crate::backend::windows::{HcnBackend, HcnConfig};
use crate::cli::{DriverArgs, Settings};
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
    /// The dataplane adapter our Transparent networks bind to [default: the
    /// file's Adapter, else Ethernet0].
    #[arg(long)]
    adapter: Option<String>,
    /// `Id` of the switch extension to enable (the vRouter extension).
    #[arg(long, default_value = hcn::VROUTER_EXTENSION_ID)]
    extension_id: String,
    /// Log to this file (appended) instead of stderr; a service has none
    /// [default: the file's LogPath].
    #[arg(long)]
    log_file: Option<std::path::PathBuf>,
    /// Log to daily files `contrail-docker-driver.YYYY-MM-DD.log` in this
    /// directory, the newest 14 kept (what the MSI sets); wins over
    /// `--log-file` and LogPath.
    #[arg(long)]
    log_dir: Option<std::path::PathBuf>,
}

/// What the service runs with: the flags over contrail-cnm-plugin.conf.
struct Resolved {
    settings: Settings,
    adapter: String,
    extension_id: String,
    log_file: Option<std::path::PathBuf>,
    log_dir: Option<std::path::PathBuf>,
}

fn resolve(args: &WindowsArgs) -> anyhow::Result<Resolved> {
    let settings = args.driver.settings()?;
    Ok(Resolved {
        adapter: args
            .adapter
            .clone()
            .or(settings.adapter.clone())
            .unwrap_or_else(|| "Ethernet0".to_owned()),
        extension_id: args.extension_id.clone(),
        log_file: args.log_file.clone().or(settings.log_path.clone()),
        log_dir: args.log_dir.clone(),
        settings,
    })
}

/// The Windows `main` (called by `src/main.rs`).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => resolve(&args).and_then(|r| {
            init_logging(&r)?;
            service_run(move |shutdown| serve(r, shutdown.wait()).map_err(|e| format!("{e:#}")))
                .map_err(anyhow::Error::from)
        }),
        Cmd::Console(args) => resolve(&args).and_then(|r| {
            init_logging(&r)?;
            serve(r, async {
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

/// Errors here happen before the service connects to the service manager,
/// which then reports that it did not start.
fn init_logging(r: &Resolved) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(r.settings.log_filter())
        .unwrap_or_else(|_| "info".into());
    let target = match (&r.log_dir, &r.log_file) {
        (Some(dir), _) => LogTarget::Files {
            dir,
            name: "contrail-docker-driver",
            keep: service_host::DEFAULT_KEEP,
        },
        (None, Some(file)) => LogTarget::File(file),
        (None, None) => LogTarget::Stderr,
    };
    service_host::init_logging(filter, target)?;
    r.settings.log();
    Ok(())
}

/// Builds the driver on HNS and serves it on the pipe until `shutdown`.
fn serve(args: Resolved, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async move {
            let (vnc, agent) = args.settings.clients()?;
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
            let driver = Arc::new(Driver::new(
                vnc,
                agent,
                backend,
                args.settings.config.clone(),
            ));
            let bg = Arc::clone(&driver);
            let interval = args.settings.reconcile_interval;
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
