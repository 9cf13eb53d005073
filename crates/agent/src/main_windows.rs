//! The agent on Windows: the service `ContrailAgent` (what the MSI
//! installs) around the same options as on Linux.
//!
//! ```text
//! vrouter-agent.exe run [options] [--log-dir DIR]       what the service manager starts
//! vrouter-agent.exe console [options] [--log-dir DIR]   in this console until Ctrl-C
//! vrouter-agent.exe install [options] [--log-dir DIR]   register the service with these options
//! vrouter-agent.exe uninstall                           stop and remove it
//! ```
//!
//! Defaults differ from Linux: the datapath channels are the forwarding
//! extension's devices (`channels::ChannelPaths::default`), state goes to
//! `%ProgramData%\Contrail\var\lib\contrail`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use service_host::windows::AGENT;
use service_host::LogTarget;

#[derive(Parser)]
#[command(
    name = "vrouter-agent",
    version,
    about = "The vRouter agent (Windows service ContrailAgent)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run as the Windows service (what the service control manager starts).
    Run(WindowsArgs),
    /// Run in this console until Ctrl-C.
    Console(WindowsArgs),
    /// Register the service to start `run` with these options at boot.
    Install(WindowsArgs),
    /// Stop and remove the service.
    Uninstall,
}

#[derive(Debug, Clone, clap::Args)]
struct WindowsArgs {
    #[command(flatten)]
    agent: super::Args,
    /// Log to daily files `contrail-vrouter-agent.YYYY-MM-DD.log` in this
    /// directory (the newest 14 kept) instead of stderr; a service has none.
    #[arg(long)]
    log_dir: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => prepare(args).and_then(|opts| {
            service_host::windows::run(&AGENT, move |shutdown| {
                super::serve(opts, shutdown.wait()).map_err(|e| format!("{e:#}"))
            })
            .map_err(anyhow::Error::from)
        }),
        Cmd::Console(args) => prepare(args).and_then(|opts| {
            super::serve(opts, async {
                let _ = tokio::signal::ctrl_c().await;
            })
        }),
        Cmd::Install(_) => {
            // The options exactly as typed after `install` (already
            // validated by the parse above) become the service's.
            let args: Vec<OsString> = std::env::args_os().skip(2).collect();
            service_host::windows::install(&AGENT, &args).map_err(anyhow::Error::from)
        }
        Cmd::Uninstall => service_host::windows::uninstall(&AGENT).map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("vrouter-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Options and logging; errors here happen before the service connects to
/// the service manager, which then reports that it did not start.
fn prepare(args: WindowsArgs) -> anyhow::Result<agent::run::Options> {
    let (opts, level) = super::options(args.agent)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&level).context("--log-level")?;
    let target = match &args.log_dir {
        Some(dir) => LogTarget::Files {
            dir,
            name: "contrail-vrouter-agent",
            keep: service_host::DEFAULT_KEEP,
        },
        None => LogTarget::Stderr,
    };
    service_host::init_logging(filter, target)?;
    Ok(opts)
}

/// No directory: the forwarding extension's devices and flow section
/// (`channels::ChannelPaths::default`).
pub fn default_sock_dir() -> Option<PathBuf> {
    None
}

/// `%ProgramData%\Contrail\var\lib\contrail` (upstream's Windows layout
/// keeps everything under `%ProgramData%\Contrail`).
pub fn default_state_dir() -> PathBuf {
    service_host::windows::program_data().join(r"Contrail\var\lib\contrail")
}
