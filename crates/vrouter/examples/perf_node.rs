//! A vRouter compute node for the performance harness (`scripts/perf/run.sh`):
//! starts the datapath in the current network namespace, programs it the way
//! the agent would (until ksync/vrctl can do it), and runs until SIGTERM,
//! SIGINT or `--max-secs`.
//!
//! ```text
//! perf_node --vm VIF,IFNAME,MAC,IP [--vm ...]
//!           [--fabric IFNAME,MAC,IP --peer MAC,IP --encap mpls-udp|mpls-gre
//!            --remote IP,LABEL [--remote ...]] [--max-secs N]
//! ```
//!
//! Every VM is in VRF 1 with an L3 interface next hop `10 + 2*vif` and
//! label `16 + 2*vif` (what `tests/common` does); a remote VM is a /32 in
//! VRF 1 behind one tunnel next hop to the peer with the given label.
//! Prints `ready` on stdout once programmed, and the datapath counters on
//! exit (stderr).

#[cfg(target_os = "linux")]
fn main() {
    if let Err(e) = node::main() {
        eprintln!("perf_node: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("perf_node: Linux only");
}

#[cfg(target_os = "linux")]
mod node {
    use clap::Parser;
    use dp_core::nexthop::{AF_BRIDGE, AF_INET};
    use dp_core::route::rt_flags;
    use dp_core::{
        Nexthop, NhFlags, NhKind, Prefix, RouteData, Router, RouterConfig, TunnelKind, VifConfig,
        VifFlags, VifType, VROUTER_MAC,
    };
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use std::io::Write;
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};
    use vrouter::linux::{self, OverlayGuard};
    use vrouter::{Datapath, DatapathConfig};

    const VRF: u16 = 1;
    const DISCARD_NH: u32 = 0;
    const RECEIVE_NH: u32 = 1;
    const TUNNEL_NH: u32 = 100;

    #[derive(Parser, Debug)]
    #[command(about = "vRouter compute node for the performance harness")]
    struct Args {
        /// A local VM: VIF,IFNAME,MAC,IP (the host end of its veth).
        #[arg(long = "vm")]
        vms: Vec<String>,
        /// The fabric: IFNAME,MAC,IP.
        #[arg(long)]
        fabric: Option<String>,
        /// The other compute node: MAC,IP.
        #[arg(long)]
        peer: Option<String>,
        /// Tunnel to the peer: mpls-udp or mpls-gre.
        #[arg(long, default_value = "mpls-udp")]
        encap: String,
        /// A VM behind the peer: IP,LABEL.
        #[arg(long = "remote")]
        remotes: Vec<String>,
        /// Stop after this long at the latest.
        #[arg(long, default_value_t = 600)]
        max_secs: u64,
    }

    type Res<T> = Result<T, String>;

    fn mac(s: &str) -> Res<[u8; 6]> {
        let v: Vec<u8> = s
            .split(':')
            .map(|x| u8::from_str_radix(x, 16))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("MAC {s}: {e}"))?;
        v.try_into().map_err(|_| format!("MAC {s}: 6 bytes"))
    }

    fn ip(s: &str) -> Res<[u8; 4]> {
        s.parse::<Ipv4Addr>()
            .map(|a| a.octets())
            .map_err(|e| format!("IP {s}: {e}"))
    }

    fn fields<const N: usize>(s: &str) -> Res<[&str; N]> {
        let v: Vec<&str> = s.split(',').collect();
        v.try_into()
            .map_err(|_| format!("{s}: expected {N} comma-separated fields"))
    }

    fn name(s: &str) -> Res<dp_core::vif::heapless_name::Name> {
        dp_core::vif::heapless_name::Name::new(s).ok_or_else(|| format!("name too long: {s}"))
    }

    fn eth(dst: [u8; 6], src: [u8; 6]) -> [u8; 14] {
        let mut e = [0u8; 14];
        e[0..6].copy_from_slice(&dst);
        e[6..12].copy_from_slice(&src);
        e[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        e
    }

    fn router() -> Res<Router> {
        let mut r = Router::new(RouterConfig::small()).map_err(|e| e.to_string())?;
        for (id, kind) in [(DISCARD_NH, NhKind::Discard), (RECEIVE_NH, NhKind::Receive)] {
            r.nh_add(Nexthop {
                id,
                family: AF_INET,
                flags: NhFlags::VALID,
                vrf: 0,
                kind,
            })
            .map_err(|e| e.to_string())?;
        }
        Ok(r)
    }

    fn add_vm(dp: &Datapath, spec: &str) -> Res<()> {
        let [vif, ifname, m, a] = fields::<4>(spec)?;
        let vif: u16 = vif.parse().map_err(|e| format!("vif {vif}: {e}"))?;
        let (m, a) = (mac(m)?, ip(a)?);
        let nh = 10 + 2 * vif as u32;
        let label = 16 + 2 * vif as u32;
        let mut c = VifConfig::new(vif, VifType::Virtual);
        c.name = name(ifname)?;
        c.mac = VROUTER_MAC;
        c.ip = a;
        c.vrf = VRF;
        c.nh_id = nh;
        c.flags = VifFlags::L3_ENABLED | VifFlags::L2_ENABLED;
        dp.vif_add(c).map_err(|e| format!("vif {vif}: {e}"))?;
        for (id, family) in [(nh, AF_INET), (nh + 1, AF_BRIDGE)] {
            dp.nh_add(Nexthop {
                id,
                family,
                flags: NhFlags::VALID,
                vrf: VRF,
                kind: NhKind::Encap {
                    oif: vif,
                    encap: eth(m, VROUTER_MAC),
                },
            })
            .map_err(|e| e.to_string())?;
        }
        dp.mpls_add(label, nh).map_err(|e| e.to_string())?;
        dp.route_add(
            VRF,
            Prefix::V4(a, 32),
            RouteData {
                nh,
                label,
                flags: rt_flags::LABEL_VALID | rt_flags::ARP_PROXY,
                mac: [0; 6],
            },
        )
        .map_err(|e| e.to_string())
    }

    fn add_fabric(dp: &Datapath, fabric: &str, peer: &str, encap: &str) -> Res<()> {
        let [ifname, m, a] = fields::<3>(fabric)?;
        let (m, a) = (mac(m)?, ip(a)?);
        let [pm, pa] = fields::<2>(peer)?;
        let (pm, pa) = (mac(pm)?, ip(pa)?);
        let (kind, flag) = match encap {
            "mpls-udp" => (TunnelKind::MplsOverUdp, NhFlags::TUNNEL_UDP_MPLS),
            "mpls-gre" => (TunnelKind::MplsOverGre, NhFlags::TUNNEL_GRE),
            _ => return Err(format!("encap {encap}: mpls-udp or mpls-gre")),
        };
        let mut f = VifConfig::new(0, VifType::Physical);
        f.name = name(ifname)?;
        f.mac = m;
        f.ip = a;
        dp.vif_add(f).map_err(|e| format!("fabric: {e}"))?;
        dp.route_add(
            0,
            Prefix::V4(a, 32),
            RouteData {
                nh: RECEIVE_NH,
                ..RouteData::default()
            },
        )
        .map_err(|e| e.to_string())?;
        dp.nh_add(Nexthop {
            id: TUNNEL_NH,
            family: AF_INET,
            flags: NhFlags::VALID | flag,
            vrf: 0,
            kind: NhKind::Tunnel {
                oif: 0,
                kind,
                sip: a,
                dip: pa,
                encap: eth(pm, m),
            },
        })
        .map_err(|e| e.to_string())
    }

    fn add_remote(dp: &Datapath, spec: &str) -> Res<()> {
        let [a, label] = fields::<2>(spec)?;
        let label: u32 = label.parse().map_err(|e| format!("label {label}: {e}"))?;
        dp.route_add(
            VRF,
            Prefix::V4(ip(a)?, 32),
            RouteData {
                nh: TUNNEL_NH,
                label,
                flags: rt_flags::LABEL_VALID | rt_flags::ARP_PROXY,
                mac: [0; 6],
            },
        )
        .map_err(|e| e.to_string())
    }

    pub fn main() -> Res<()> {
        let args = Args::parse();
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|e| e.to_string())?;
        let _guard = OverlayGuard::open();
        let dir = std::env::temp_dir().join(format!("vrt-perf-{}", std::process::id()));
        let dp = linux::start(router()?, dir, DatapathConfig::default())
            .map_err(|e| format!("datapath: {e}"))?;
        for v in &args.vms {
            add_vm(&dp, v)?;
        }
        if let Some(f) = &args.fabric {
            let peer = args.peer.as_deref().ok_or("--fabric needs --peer")?;
            add_fabric(&dp, f, peer, &args.encap)?;
            for r in &args.remotes {
                add_remote(&dp, r)?;
            }
        }
        println!("ready");
        let _ = std::io::stdout().flush();
        let deadline = Instant::now() + Duration::from_secs(args.max_secs);
        while Instant::now() < deadline {
            if signals.pending().next().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = dp.stats().map_err(|e| e.to_string())?;
        eprintln!("perf_node: {stats:?}");
        dp.stop();
        Ok(())
    }
}
