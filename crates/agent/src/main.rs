//! `vrouter-agent`: the vRouter agent in standalone mode.

use agent::config::File;
use agent::flows::FlowConfig;
use agent::run::Options;
use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The vRouter agent: embedded VNC config store, port API, datapath
/// programming over ksync, pkt0 services and flows.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file (TOML, upstream key names; see the docs).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Standalone mode: the embedded config store, no controller (the
    /// only mode so far, and the default).
    #[arg(long, default_value_t = true)]
    standalone: bool,
    /// Where the datapath's channels are (its `--sock-dir`). Default: Linux
    /// `/var/run/vrouter`; Windows the forwarding extension's devices.
    #[arg(long)]
    sock_dir: Option<PathBuf>,
    /// Config database and ports directory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// VNC config API listen address.
    #[arg(long)]
    vnc_listen: Option<SocketAddr>,
    /// Port API listen address.
    #[arg(long)]
    port_listen: Option<SocketAddr>,
    /// Introspect and metrics listen address.
    #[arg(long)]
    introspect_listen: Option<SocketAddr>,
    /// Idle seconds before a flow is removed.
    #[arg(long)]
    flow_timeout: Option<u64>,
    /// Largest vif index + 1 the agent uses (default 4096). The datapath's
    /// tables must fit it (checked at connect): interfaces >= this, MPLS
    /// labels >= 16 + 2 x this, next hops >= 16 + 2 x this + --max-vrfs.
    #[arg(long)]
    max_vifs: Option<u16>,
    /// VRFs the agent uses (default 4096; the datapath's must be at least
    /// this): a virtual network whose network id is not below it is
    /// reported as not programmed.
    #[arg(long)]
    max_vrfs: Option<u16>,
    /// Seconds between two visits of the hold audit to a flow entry: an
    /// entry on hold at two visits in a row (its trap lost) is decided.
    #[arg(long)]
    hold_audit_period: Option<u64>,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `agent=debug`.
    #[arg(long)]
    log_level: Option<String>,
}

/// Linux: the user-space datapath's socket directory. Windows: none, the
/// kernel extension's devices (`channels::ChannelPaths::default`).
fn default_sock_dir() -> Option<PathBuf> {
    if cfg!(windows) {
        None
    } else {
        Some(PathBuf::from("/var/run/vrouter"))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = match &args.config {
        Some(p) => File::load(p)?,
        None => File::default(),
    };
    let level = args
        .log_level
        .clone()
        .or(file.default.log_level.clone())
        .unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&level).context("--log-level")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let a = &file.agent;
    let intro_port = file.default.http_server_port.unwrap_or(8085);
    let opts = Options {
        sock_dir: args
            .sock_dir
            .or(a.sock_dir.clone())
            .or_else(default_sock_dir),
        state_dir: args
            .state_dir
            .or(a.state_dir.clone())
            .unwrap_or_else(|| PathBuf::from("/var/lib/vrouter-rs")),
        vnc_listen: args
            .vnc_listen
            .or(a.vnc_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8082))),
        port_listen: args
            .port_listen
            .or(a.port_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9091))),
        introspect_listen: args
            .introspect_listen
            .or(a.introspect_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], intro_port))),
        flows: FlowConfig {
            idle_timeout: Duration::from_secs(
                args.flow_timeout
                    .or(file.default.flow_cache_timeout)
                    .unwrap_or(180)
                    .max(1),
            ),
            tcp_close_timeout: Duration::from_secs(a.tcp_close_timeout.unwrap_or(2)),
            audit_period: Duration::from_secs(
                args.hold_audit_period
                    .or(a.hold_audit_period)
                    .unwrap_or(4)
                    .max(1),
            ),
            ..FlowConfig::default()
        },
        max_vifs: args
            .max_vifs
            .or(a.max_vifs)
            .unwrap_or(dp_core::sizing::DEFAULT_INTERFACES),
        max_vrfs: args
            .max_vrfs
            .or(a.max_vrfs)
            .unwrap_or(dp_core::sizing::DEFAULT_VRFS)
            .max(1),
        fault: match std::env::var("VROUTER_AGENT_FAULT_INJECT") {
            Ok(v) => Some(
                v.strip_prefix("panic:")
                    .filter(|f| !f.is_empty())
                    .map(PathBuf::from)
                    .with_context(|| {
                        format!("VROUTER_AGENT_FAULT_INJECT={v:?}: want panic:FILE")
                    })?,
            ),
            Err(_) => None,
        },
        port_api: agent::ports::PortApiOptions {
            stale_timeout: Duration::from_secs(
                file.default.stale_interface_cleanup_timeout.unwrap_or(60),
            ),
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(agent::run::run(opts, shutdown()))
}

#[cfg(unix)]
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

#[cfg(windows)]
async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}
