//! `vrouter-agent`: the vRouter agent, standalone (embedded config) or in
//! a Tungsten Fabric / OpenSDN cluster (config and routes over XMPP).
//!
//! The options and how they combine with the config file are here, for
//! both platforms; `main_unix.rs` runs the agent in the foreground (systemd
//! or a shell), `main_windows.rs` adds the Windows service around it.

use agent::config::File;
use agent::flows::FlowConfig;
use agent::run::Options;
use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[cfg_attr(windows, path = "main_windows.rs")]
#[cfg_attr(not(windows), path = "main_unix.rs")]
mod platform;

/// The vRouter agent: port API, datapath programming over ksync, pkt0
/// services and flows; config from the embedded VNC store or from the
/// cluster's control nodes over XMPP.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// Configuration file (TOML, upstream key names; see the docs).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kept for compatibility (standalone is `--config-source embedded`).
    #[arg(long, default_value_t = true, hide = true)]
    standalone: bool,
    /// Where the configuration comes from: the embedded store (one host,
    /// the default) or the cluster's control nodes.
    #[arg(long, value_enum)]
    config_source: Option<agent::source::Kind>,
    /// Control nodes, `ip[:port] ip[:port]` (at most two; port 5269).
    #[arg(long = "CONTROL-NODE.servers", alias = "control-nodes")]
    control_node_servers: Option<String>,
    /// The stream's xmlns (upstream's subcluster name).
    #[arg(long = "CONTROL-NODE.subcluster_name")]
    subcluster_name: Option<String>,
    /// This host's name (the agent name when none is given).
    #[arg(long = "DEFAULT.hostname")]
    hostname: Option<String>,
    /// The name this node has in the cluster: its virtual-router is
    /// `default-global-system-config:<name>`.
    #[arg(long = "DEFAULT.agent_name", alias = "agent-name")]
    agent_name: Option<String>,
    /// Tunnel source address (default: the local address of the XMPP
    /// connection).
    #[arg(long = "NETWORKS.control_network_ip", alias = "control-network-ip")]
    control_network_ip: Option<std::net::Ipv4Addr>,
    /// XMPP over TLS (STARTTLS) with the certificate files below.
    #[arg(long = "DEFAULT.xmpp_auth_enable")]
    xmpp_auth_enable: bool,
    /// Our certificate (PEM).
    #[arg(long = "DEFAULT.xmpp_server_cert")]
    xmpp_server_cert: Option<PathBuf>,
    /// Our private key (PKCS#8 PEM).
    #[arg(long = "DEFAULT.xmpp_server_key")]
    xmpp_server_key: Option<PathBuf>,
    /// The CA that signed the control nodes' certificates (PEM).
    #[arg(long = "DEFAULT.xmpp_ca_cert")]
    xmpp_ca_cert: Option<PathBuf>,
    /// XMPP hold time, seconds (keepalives every third).
    #[arg(long)]
    xmpp_hold_time: Option<u64>,
    /// Seconds a lost control node's routes are kept.
    #[arg(long)]
    stale_route_timeout: Option<u64>,
    /// Seconds after a session comes up before routes it did not re-send
    /// are swept when no end-of-RIB marker came.
    #[arg(long)]
    end_of_rib_timeout: Option<u64>,
    /// Reconnect backoff cap, seconds.
    #[arg(long)]
    xmpp_reconnect_max: Option<u64>,
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
    /// this). VRFs are this node's: a network takes its network id as VRF
    /// when it is below this and free, else a free one; with none free it
    /// is reported as not programmed.
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

fn main() -> std::process::ExitCode {
    platform::main()
}

/// The agent's options from the command line over the config file over
/// the platform's defaults, and the log filter.
fn options(args: Args) -> anyhow::Result<(Options, String)> {
    let file = match &args.config {
        Some(p) => File::load(p)?,
        None => File::default(),
    };
    let level = args
        .log_level
        .clone()
        .or(file.default.log_level.clone())
        .unwrap_or_else(|| "info".into());
    let controller = controller_options(&args, &file)?;
    let a = &file.agent;
    let intro_port = file.default.http_server_port.unwrap_or(8085);
    let opts = Options {
        sock_dir: args
            .sock_dir
            .or(a.sock_dir.clone())
            .or_else(platform::default_sock_dir),
        state_dir: args
            .state_dir
            .or(a.state_dir.clone())
            .unwrap_or_else(platform::default_state_dir),
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
        config_source: args.config_source.or(a.config_source).unwrap_or_default(),
        controller,
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
    if opts.config_source == agent::source::Kind::Controller && opts.controller.is_none() {
        anyhow::bail!("--config-source controller needs the control nodes (--CONTROL-NODE.servers or [CONTROL-NODE] servers)");
    }
    if opts.config_source == agent::source::Kind::Embedded && opts.controller.is_some() {
        anyhow::bail!("control nodes are configured but the config source is embedded: add --config-source controller (or [AGENT] config_source = \"controller\")");
    }
    Ok((opts, level))
}

/// Runs the agent until `shutdown` resolves.
fn serve(opts: Options, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(agent::run::run(opts, shutdown))
}

/// The host's name (Linux: the kernel's; Windows: COMPUTERNAME).
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
}

fn controller_options(
    args: &Args,
    file: &File,
) -> anyhow::Result<Option<agent::controller::Options>> {
    let d = &file.default;
    let cn = &file.control_node;
    let Some(servers) = args
        .control_node_servers
        .clone()
        .or(cn.servers.clone())
        .filter(|s| !s.trim().is_empty())
    else {
        return Ok(None);
    };
    let servers = agent::controller::parse_servers(&servers)?;
    let agent_name = args
        .agent_name
        .clone()
        .or(d.agent_name.clone())
        .or(args.hostname.clone())
        .or(d.hostname.clone())
        .or_else(host_name)
        .context("no agent name: give --DEFAULT.agent_name (or hostname)")?;
    let mut o = agent::controller::Options::new(servers, agent_name);
    o.control_network_ip = args.control_network_ip.or(file.networks.control_network_ip);
    o.subcluster_name = args
        .subcluster_name
        .clone()
        .or(cn.subcluster_name.clone())
        .unwrap_or_default();
    if args.xmpp_auth_enable || d.xmpp_auth_enable.unwrap_or(false) {
        let need = |a: &Option<PathBuf>, b: &Option<PathBuf>, what: &str| {
            a.clone()
                .or(b.clone())
                .with_context(|| format!("xmpp_auth_enable needs {what}"))
        };
        o.tls = Some(agent::controller::TlsFiles {
            cert: need(
                &args.xmpp_server_cert,
                &d.xmpp_server_cert,
                "xmpp_server_cert",
            )?,
            key: need(&args.xmpp_server_key, &d.xmpp_server_key, "xmpp_server_key")?,
            ca: need(&args.xmpp_ca_cert, &d.xmpp_ca_cert, "xmpp_ca_cert")?,
        });
    }
    let secs =
        |a: Option<u64>, b: Option<u64>, def: Duration| a.or(b).map_or(def, Duration::from_secs);
    o.hold_time = secs(args.xmpp_hold_time, cn.hold_time, o.hold_time).max(Duration::from_secs(1));
    o.stale_timeout = secs(
        args.stale_route_timeout,
        cn.stale_route_timeout,
        o.stale_timeout,
    );
    o.eor_timeout = secs(
        args.end_of_rib_timeout,
        cn.end_of_rib_timeout,
        o.eor_timeout,
    );
    o.reconnect_max = secs(args.xmpp_reconnect_max, cn.reconnect_max, o.reconnect_max)
        .max(Duration::from_secs(1));
    Ok(Some(o))
}
