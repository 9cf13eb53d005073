//! `vrouter`: the Linux datapath host process.
//!
//! `vrouter --sock-dir DIR [--fabric IFACE] [--flow-entries N]` starts the
//! datapath with the agent vif (pkt0 on `DIR/dpdk_pkt0`) and, if given, the
//! fabric interface as vif 0, then runs until SIGTERM or SIGINT. The ksync
//! server (configuration from the agent) plugs into the same
//! [`vrouter::Datapath`] handle.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "vrouter", about = "vRouter datapath host (Linux)")]
struct Args {
    /// Directory of the agent sockets (pkt0; ksync later).
    #[arg(long, default_value = "/var/run/vrouter")]
    sock_dir: PathBuf,
    /// Fabric interface, attached as vif 0 (the host keeps using it).
    #[arg(long)]
    fabric: Option<String>,
    /// Flow table hash entries (a multiple of 4); overflow is 1/64 of it.
    #[arg(long, default_value_t = 512 * 1024)]
    flow_entries: u32,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = host::run(args) {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

#[cfg(target_os = "linux")]
mod host {
    use super::Args;
    use dp_core::{Router, RouterConfig, VifConfig, VifType};
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use vrouter::linux::{self, OverlayGuard};
    use vrouter::DatapathConfig;

    /// Upstream's vif numbering: fabric 0, vhost 1, pkt0 2.
    const FABRIC_VIF: u16 = 0;
    const AGENT_VIF: u16 = 2;
    const AGENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];

    pub fn run(args: Args) -> Result<(), String> {
        // Register signals first so a SIGTERM during start-up is not lost.
        let mut signals =
            Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("signal handlers: {e}"))?;
        let created_dir = !args.sock_dir.exists();
        std::fs::create_dir_all(&args.sock_dir)
            .map_err(|e| format!("{}: {e}", args.sock_dir.display()))?;
        let result = serve(&args, &mut signals);
        if created_dir {
            // Only if empty: never remove what someone else put there.
            let _ = std::fs::remove_dir(&args.sock_dir);
        }
        result
    }

    fn serve(args: &Args, signals: &mut Signals) -> Result<(), String> {
        let entries = args.flow_entries.max(4) & !3;
        let cfg = RouterConfig {
            flow_entries: entries,
            oflow_entries: (entries / 64).max(64),
            ..RouterConfig::default()
        };
        let router = Router::new(cfg).map_err(|e| format!("router: {e}"))?;
        let guard = OverlayGuard::open();
        tracing::info!(udp = ?guard.udp_ports(), gre = guard.has_gre(), "overlay ports claimed");
        let dp = linux::start(router, args.sock_dir.clone(), DatapathConfig::default())
            .map_err(|e| format!("datapath: {e}"))?;
        let mut agent = VifConfig::new(AGENT_VIF, VifType::Agent);
        agent.mac = AGENT_MAC;
        agent.name = dp_core::vif::heapless_name::Name::new("pkt0").unwrap_or_default();
        dp.vif_add(agent).map_err(|e| format!("pkt0: {e}"))?;
        if let Some(fabric) = &args.fabric {
            let mut f = VifConfig::new(FABRIC_VIF, VifType::Physical);
            f.name = dp_core::vif::heapless_name::Name::new(fabric)
                .ok_or_else(|| format!("fabric name too long: {fabric}"))?;
            f.mac = linux::mac_of(fabric).map_err(|e| format!("{fabric}: {e}"))?;
            f.os_idx = linux::sys::ifindex(fabric).map_err(|e| format!("{fabric}: {e}"))?;
            dp.vif_add(f).map_err(|e| format!("fabric {fabric}: {e}"))?;
        }
        tracing::info!(sock_dir = %args.sock_dir.display(), "vrouter running");
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "stopping");
        }
        let stats = dp.stats().ok();
        dp.stop();
        drop(guard);
        tracing::info!(?stats, "stopped");
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod host {
    use super::Args;

    pub fn run(_args: Args) -> Result<(), String> {
        Err(
            "the vrouter host runs on Linux; on Windows the datapath is the kernel extension"
                .into(),
        )
    }
}
