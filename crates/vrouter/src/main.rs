//! `vrouter`: the Linux datapath host process.
//!
//! `vrouter [--sock-dir DIR] [--fabric IFACE] [--flow-entries N]
//! [--new-flows hold|drop]` starts the datapath and serves the agent:
//!
//! * ksync on `DIR/dpdk_netlink` ([`vrouter::KsyncServer`]): the agent and
//!   `vrctl` add vifs (by interface name), next hops, routes, labels and
//!   flows;
//! * pkt0 on `DIR/dpdk_pkt0` (to the agent's `DIR/agent_pkt0`): the agent
//!   vif, index 2, added at start;
//! * the flow table in shared memory, `DIR/flow`, which the agent (and
//!   `vrctl flow -l`) maps; created at start, sized by `--flow-entries`.
//!
//! The fabric interface, if given, is vif 0. SIGTERM or SIGINT stops the
//! listener, the connections, the loop and every port, removes the socket
//! files and the flow table file, and exits 0. If the forwarding loop ends
//! by itself (its poll failed, it panicked) or the ksync server does, the
//! process cleans up the same way and exits 1, so that a supervisor
//! (systemd `Restart=on-failure`) restarts it rather than leave a process
//! that forwards nothing. `VROUTER_FAULT_INJECT=panic:FILE` (or
//! `poll-error:FILE`) makes the loop fail once FILE exists (tests).
//!
//! Table sizes follow upstream's parameters (`--interfaces`, `--vrfs`,
//! `--nexthops`, `--mpls-labels`, `--bridge-entries`, `--flow-entries`);
//! labels and next hops default to what the agent's id layout needs for
//! the interface and VRF counts ([`dp_core::sizing`]), and the agent
//! checks them when it connects.
//!
//! The datapath thread runs at nice -10 (`--datapath-nice`), ahead of the
//! containers' processes, on every CPU or on those `--datapath-cpus`
//! names (`vrouter::linux::ThreadPlacement`).

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "vrouter", about = "vRouter datapath host (Linux)")]
struct Args {
    /// Directory of the agent channels: ksync (dpdk_netlink), pkt0
    /// (dpdk_pkt0) and the flow table (flow).
    #[arg(long, default_value = "/var/run/vrouter")]
    sock_dir: PathBuf,
    /// Fabric interface, attached as vif 0 (the host keeps using it).
    #[arg(long)]
    fabric: Option<String>,
    /// Flow table hash entries (a multiple of 4); the overflow area is a
    /// fifth of it, rounded up to 1024 records (upstream's default).
    #[arg(long, default_value_t = 512 * 1024)]
    flow_entries: u32,
    /// Interface (vif) table size (upstream `vr_interfaces`); the agent's
    /// `--max-vifs` must not exceed it.
    #[arg(long, default_value_t = dp_core::sizing::DEFAULT_INTERFACES)]
    interfaces: u16,
    /// VRF table size (upstream `vr_vrfs`): virtual networks whose network
    /// id is at least this cannot be programmed (the agent's
    /// `--max-vrfs` must not exceed it).
    #[arg(long, default_value_t = dp_core::sizing::DEFAULT_VRFS)]
    vrfs: u16,
    /// Next-hop table size (upstream `vr_nexthops`). Default: 65536, or
    /// more if the agent's layout needs it (16 + 2 x interfaces + vrfs,
    /// and with a control node 16 + 2 x interfaces + 4096 VRF, 4096 tunnel
    /// and 8192 ECMP next hops).
    #[arg(long)]
    nexthops: Option<u32>,
    /// MPLS label table size (upstream `vr_mpls_labels`). Default: two per
    /// interface from 16 (16 + 2 x interfaces), what the agent uses.
    #[arg(long)]
    mpls_labels: Option<u32>,
    /// Bridge table entries (upstream `vr_bridge_entries`).
    #[arg(long, default_value_t = 262_144)]
    bridge_entries: u32,
    /// Where VM vifs send and receive: `interface` (the named host
    /// interface, AF_PACKET) or `memory` (nowhere: for control-plane scale
    /// benchmarks that program thousands of ports without interfaces).
    #[arg(long, value_enum, default_value_t = VmPorts::Interface, hide = true)]
    vm_ports: VmPorts,
    /// What happens to new flows while no agent is connected: hold them
    /// (and trap them to pkt0, as when the agent is there) or drop them.
    #[arg(long, value_enum, default_value_t = NewFlows::Hold)]
    new_flows: NewFlows,
    /// Seconds a flow may stay on hold (waiting for the agent) before the
    /// datapath drops its held packets and removes the entry, so its next
    /// packet traps again (a lost trap must not black-hole a flow).
    #[arg(long, default_value_t = 10)]
    hold_timeout: u64,
    /// Traps pkt0 keeps, in order, while the agent's socket queue is full
    /// (0: a trap the queue refuses is lost at once, as upstream loses it;
    /// the agent's hold audit then finds its flow).
    #[arg(long, default_value_t = vrouter::linux::pkt0_backlog_default())]
    pkt0_backlog: usize,
    /// Kernel fast path for flows the core has decided: `auto` (the
    /// default: `tc-encap-gso` where it can be loaded, else without),
    /// `off`, `tc` (Linux: TC BPF on VM ports redirects established
    /// same-host IPv4 TCP/UDP flows port to port; everything else takes
    /// the user-space path), `tc-encap` (also flows into and out of
    /// tunnels to other hosts: encapsulation and decapsulation in the
    /// kernel, tunnel GSO turned off on the fabric) or `tc-encap-gso` (the
    /// same, tunnel GSO left on the fabric: tunnel super-packets cross it
    /// whole). If it cannot be loaded the datapath says why and runs
    /// without it.
    #[arg(long, value_enum, default_value_t = FastPathMode::Auto)]
    fast_path: FastPathMode,
    /// CPUs the datapath thread runs on, in the kernel's list format
    /// (`1`, `2-3`, `0,4`). Default: every CPU the process may use. Give
    /// it CPUs the containers' workloads do not use, as upstream's DPDK
    /// datapath is given its cores.
    #[arg(long, value_name = "LIST")]
    datapath_cpus: Option<String>,
    /// Nice value of the datapath thread, -20 to 19 (default -10: ahead
    /// of the containers' processes, as upstream's datapath in the
    /// kernel's softirq is; without root or CAP_SYS_NICE the default is
    /// skipped with a warning, a value given here is an error).
    #[arg(long, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    datapath_nice: Option<i32>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum VmPorts {
    Interface,
    Memory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FastPathMode {
    /// `tc-encap-gso` if it loads (root, a kernel with TC BPF, a build
    /// with clang), else off, said once at start.
    Auto,
    Off,
    /// Same-host flows only (VM port to VM port).
    Tc,
    /// `tc`, and flows into MPLSoUDP/MPLSoGRE/VXLAN tunnels encapsulated
    /// and flows out of them decapsulated in the kernel too (turns tunnel
    /// GSO off on the fabric while it runs: the kernel segments on the
    /// fabric; see docs/performance.md).
    TcEncap,
    /// `tc-encap`, leaving the fabric's tunnel GSO as it is: tunnel
    /// super-packets cross the fabric whole. A receiver that does not
    /// decapsulate the flow in its kernel (ours while the flow is not
    /// installed, or without the fast path) takes them in user space
    /// (docs/performance.md).
    TcEncapGso,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum NewFlows {
    Hold,
    Drop,
}

/// Table sizes: the given ones, else defaults derived from the interface
/// and VRF counts the way the agent lays out its ids.
fn sizes(args: &Args) -> (u16, u16, u32, u32) {
    let interfaces = args.interfaces.max(8);
    let vrfs = args.vrfs.max(1);
    let labels = args
        .mpls_labels
        .unwrap_or_else(|| dp_core::sizing::labels(interfaces))
        .max(16);
    let nexthops = args
        .nexthops
        .unwrap_or_else(|| {
            dp_core::sizing::nexthops(interfaces, vrfs)
                .max(dp_core::sizing::nexthops_with_remote(interfaces))
                .max(65536)
        })
        .max(16);
    (interfaces, vrfs, labels, nexthops)
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
    use super::{sizes, Args, FastPathMode, NewFlows, VmPorts};
    use channels::{ChannelPaths, FlowShm, KsyncListener};
    use dp_core::{NewFlowPolicy, Router, RouterConfig, VifConfig, VifType};
    use ksync::HostInfo;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::signal::unix::{signal, SignalKind};
    use tokio::sync::watch;
    use vrouter::linux::{self, LinuxPorts, OverlayGuard};
    use vrouter::{DatapathConfig, KsyncServer, ServerConfig};

    /// VM vifs on in-memory ports (nothing is sent or received), the others
    /// as [`LinuxPorts`] opens them.
    struct MemoryVmPorts(LinuxPorts);

    impl vrouter::port::PortOpener for MemoryVmPorts {
        fn open(&self, cfg: &VifConfig) -> std::io::Result<Box<dyn vrouter::port::Port>> {
            if cfg.vif_type == VifType::Virtual {
                let (port, _) = vrouter::mem::MemPort::new(
                    cfg.name.as_str(),
                    vrouter::port::Offloads::default(),
                );
                return Ok(Box::new(port));
            }
            self.0.open(cfg)
        }
    }

    /// Upstream's vif numbering: fabric 0, vhost 1, pkt0 2.
    const FABRIC_VIF: u16 = 0;
    const AGENT_VIF: u16 = 2;
    const AGENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
    /// `--datapath-nice` by default (docs/performance.md, "The seventh
    /// session": the threads it wakes no longer preempt it).
    const DATAPATH_NICE: i32 = -10;
    /// How long connections get to finish after a signal.
    const DRAIN: Duration = Duration::from_secs(5);

    pub fn run(args: Args) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        rt.block_on(async {
            // Signals first, so a SIGTERM during start-up is not lost.
            let term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
            let int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
            let created_dir = !args.sock_dir.exists();
            std::fs::create_dir_all(&args.sock_dir)
                .map_err(|e| format!("{}: {e}", args.sock_dir.display()))?;
            let result = serve(&args, term, int).await;
            if created_dir {
                // Only if empty: never remove what someone else put there.
                let _ = std::fs::remove_dir(&args.sock_dir);
            }
            result
        })
    }

    /// Say whether the flow table got 2 MiB pages: with many flows each
    /// lookup is a TLB miss on 4 KiB pages (docs/performance.md, "Huge
    /// pages for the flow table").
    fn log_flow_pages(flows: &FlowShm) {
        let len = flows.records_len() as u64;
        match flows.huge_page_bytes() {
            Some(0) => tracing::info!(
                path = %flows.name().display(),
                "flow table on 4 KiB pages: a tmpfs mounted with huge=within_size \
                 on --sock-dir (scripts/run-node.sh and the package's vrouter.service \
                 mount one) gives it 2 MiB pages"
            ),
            Some(huge) => {
                tracing::info!(huge_bytes = huge, bytes = len, "flow table on 2 MiB pages")
            }
            None => {}
        }
    }

    /// `--datapath-cpus` and `--datapath-nice`, applied on the loop thread.
    fn place_datapath_thread(args: &Args, dp: &vrouter::Datapath) -> Result<(), String> {
        let cpus = args
            .datapath_cpus
            .as_deref()
            .map(str::parse::<linux::CpuList>)
            .transpose()
            .map_err(|e| format!("--datapath-cpus: {e}"))?;
        let place = |placement: linux::ThreadPlacement| {
            dp.call(move |_| placement.apply_here())
                .map_err(|e| format!("datapath: {e}"))
        };
        if cpus.is_some() {
            place(linux::ThreadPlacement { cpus, nice: None })?
                .map_err(|e| format!("--datapath-cpus: {e}"))?;
        }
        let nice = Some(args.datapath_nice.unwrap_or(DATAPATH_NICE));
        match place(linux::ThreadPlacement { cpus: None, nice })? {
            Ok(()) => {}
            Err(e) if args.datapath_nice.is_none() => tracing::warn!(
                error = %e,
                "the datapath thread keeps the process's priority: the threads it wakes can preempt it"
            ),
            Err(e) => return Err(format!("--datapath-nice: {e}")),
        }
        if let Ok(Ok((cpus, nice))) = dp.call(|_| linux::ThreadPlacement::of_this_thread()) {
            tracing::info!(%cpus, nice, "datapath thread placed");
        }
        Ok(())
    }

    async fn serve(
        args: &Args,
        mut term: tokio::signal::unix::Signal,
        mut int: tokio::signal::unix::Signal,
    ) -> Result<(), String> {
        let paths = ChannelPaths::new(&args.sock_dir);
        // First: a live vrouter on this directory makes this one fail here,
        // before it replaces that one's flow table.
        let listener = KsyncListener::bind(&paths.ksync).map_err(|e| format!("ksync: {e}"))?;

        let entries = args.flow_entries.max(4) & !3;
        let oflow = dp_core::sizing::oflow_for(entries);
        let flows = FlowShm::create(&paths.flow_shm, entries, oflow)
            .map_err(|e| format!("flow table: {e}"))?;
        log_flow_pages(&flows);
        let flows = flows
            .into_flow_table()
            .map_err(|e| format!("flow table: {e}"))?;
        let (interfaces, vrfs, labels, nexthops) = sizes(args);
        let cfg = RouterConfig {
            flow_entries: entries,
            oflow_entries: oflow,
            max_vifs: interfaces,
            max_vrfs: vrfs,
            max_nexthops: nexthops,
            max_labels: labels,
            bridge_entries: args.bridge_entries.max(16),
            ..RouterConfig::default()
        };
        let router = Router::with_flow_table(cfg, flows);

        let guard = OverlayGuard::open();
        tracing::info!(udp = ?guard.udp_ports(), gre = guard.has_gre(), "overlay ports claimed");
        let fault = std::env::var("VROUTER_FAULT_INJECT")
            .ok()
            .map(|v| {
                vrouter::Fault::parse(&v).ok_or(format!(
                    "VROUTER_FAULT_INJECT: {v:?}: want panic:FILE or poll-error:FILE"
                ))
            })
            .transpose()?;
        if let Some(f) = &fault {
            tracing::warn!(fault = ?f, "fault injection armed (tests only)");
        }
        let dcfg = DatapathConfig {
            hold_timeout: Duration::from_secs(args.hold_timeout.max(1)),
            fault,
            ..DatapathConfig::default()
        };
        let dp = linux::start_with(
            router,
            LinuxPorts {
                sock_dir: args.sock_dir.clone(),
                pkt0_backlog: args.pkt0_backlog,
            },
            dcfg,
        )
        .map_err(|e| format!("datapath: {e}"))?;
        place_datapath_thread(args, &dp)?;
        if args.fast_path != FastPathMode::Off {
            match linux::TcFastPath::load() {
                Ok(mut fp) => {
                    let encap = args.fast_path != FastPathMode::Tc;
                    let keep_gso = matches!(
                        args.fast_path,
                        FastPathMode::Auto | FastPathMode::TcEncapGso
                    );
                    fp.set_encap(encap);
                    fp.set_keep_tunnel_gso(keep_gso);
                    dp.enable_fast_path(Box::new(fp))
                        .map_err(|e| format!("fast path: {e}"))?;
                    tracing::info!(
                        encap,
                        tunnel_gso = keep_gso,
                        "fast path tc on: decided IPv4 TCP/UDP flows between VM ports, and with encap into and out of tunnels, are forwarded in the kernel"
                    );
                }
                Err(e) if args.fast_path == FastPathMode::Auto => tracing::info!(
                    error = %e,
                    "no kernel fast path (it needs root or CAP_BPF + CAP_NET_ADMIN, a kernel with TC BPF and a build with clang); every frame takes the user-space path"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "--fast-path tc: the BPF fast path cannot be loaded (needs root or CAP_BPF + CAP_NET_ADMIN and a kernel with TC BPF); every frame takes the user-space path"
                ),
            }
        }
        let dp = Arc::new(dp);
        if args.fast_path != FastPathMode::Off {
            // What the kernel forwarded, for operators and scripts/perf.
            // A weak reference: shutdown must be able to take the datapath
            // back (and stop it in order) while this task sleeps.
            let dp = Arc::downgrade(&dp);
            tokio::spawn(async move {
                let mut last = None;
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    let Some(dp) = dp.upgrade() else { break };
                    let st = match dp.offload_stats() {
                        Ok(Some(st)) => st,
                        _ => break,
                    };
                    drop(dp);
                    if last != Some(st) {
                        tracing::info!(?st, "fast path");
                        last = Some(st);
                    }
                }
            });
        }
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
            // The tunnel MTU checks and the TCP MSS adjustment work from it.
            f.mtu = linux::sys::mtu_of(fabric).map_err(|e| format!("{fabric}: {e}"))?;
            dp.vif_add(f).map_err(|e| format!("fabric {fabric}: {e}"))?;
        }

        let idle_policy = match args.new_flows {
            NewFlows::Hold => NewFlowPolicy::Hold,
            NewFlows::Drop => NewFlowPolicy::Drop,
        };
        let info = HostInfo {
            flow_table_path: paths.flow_shm.display().to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            ..HostInfo::default()
        };
        let server = KsyncServer::new(
            Arc::clone(&dp),
            match args.vm_ports {
                VmPorts::Interface => Arc::new(LinuxPorts {
                    sock_dir: args.sock_dir.clone(),
                    pkt0_backlog: args.pkt0_backlog,
                }) as Arc<dyn vrouter::port::PortOpener>,
                VmPorts::Memory => Arc::new(MemoryVmPorts(LinuxPorts {
                    sock_dir: args.sock_dir.clone(),
                    pkt0_backlog: args.pkt0_backlog,
                })),
            },
            ServerConfig {
                idle_policy,
                info,
                ..ServerConfig::default()
            },
        )
        .map_err(|e| format!("ksync: {e}"))?;
        let (stop, stopped) = watch::channel(false);
        let mut serving = tokio::spawn(Arc::clone(&server).serve(listener, stopped));
        tracing::info!(
            sock_dir = %args.sock_dir.display(),
            flow_table = %paths.flow_shm.display(),
            entries,
            oflow,
            interfaces,
            vrfs,
            labels,
            nexthops,
            new_flows = ?idle_policy,
            "vrouter running"
        );

        let mut loop_end = None;
        let early_end = tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); false }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); false }
            r = &mut serving => { tracing::error!(result = ?r, "ksync server ended"); true }
            why = dp.ended() => {
                tracing::error!(reason = %why, "the datapath loop ended: exiting so that a supervisor restarts the vrouter");
                loop_end = Some(why);
                true
            }
        };
        let _ = stop.send(true);
        // (The server's task is done already if it is what ended.)
        let server_running = !early_end || loop_end.is_some();
        if server_running && tokio::time::timeout(DRAIN, &mut serving).await.is_err() {
            tracing::warn!("ksync connections did not close in time");
            serving.abort();
        }
        drop(server);
        let stats = dp.stats().ok();
        match Arc::try_unwrap(dp) {
            // Joins the loop thread: ports close, the flow table (and with
            // it the shared-memory file) is released.
            Ok(dp) => dp.stop(),
            Err(_) => tracing::warn!("datapath still referenced; stopping on exit"),
        }
        drop(guard);
        tracing::info!(?stats, "stopped");
        if let Some(why) = loop_end {
            return Err(format!("the datapath loop ended: {why}"));
        }
        if early_end {
            return Err("the ksync server ended unexpectedly".into());
        }
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
