//! The real `vrctl` binary against a real ksync server: a
//! `channels::KsyncListener` on a temp socket dir feeding a
//! `ksync::Handler` over a `dp_core::Router` whose flow table lives in a
//! `channels::FlowShm` mapping, as in the datapath host.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use channels::{ChannelPaths, FlowShm, KsyncListener};
use dp_core::flow::table::{FlowKey, FlowTable, VR_FLOW_ACTION_FORWARD};
use dp_core::{FlowSet, NhKind, Prefix, Router, RouterConfig, TunnelKind};
use ksync::{Handler, HostInfo, HostOps};
use sandesh::VrInterfaceReq;

/// Counts host callbacks.
#[derive(Default)]
struct Host {
    info: HostInfo,
    added: Vec<String>,
}

impl HostOps for Host {
    fn vif_add(&mut self, cfg: &dp_core::VifConfig, _: &VrInterfaceReq) -> Result<(), i32> {
        if cfg.name.as_str() == "missing0" {
            return Err(-19);
        }
        self.added.push(cfg.name.as_str().into());
        Ok(())
    }
    fn vif_del(&mut self, _: u16) {}
    fn flow_released(&mut self, _: u32) {}
    fn flow_deleted(&mut self, _: u32) {}
    fn host_info(&self) -> HostInfo {
        self.info.clone()
    }
}

/// Router first: its flow table points into the mapping, which must
/// outlive it (fields drop in order).
struct State {
    router: Router,
    handler: Handler,
    host: Host,
    _shm: FlowShm,
}

struct Server {
    dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let paths = ChannelPaths::new(dir.path());
        let shm = FlowShm::create(&paths.flow_shm, 256, 64).unwrap();
        // SAFETY: the mapping holds `capacity` aligned records, stays
        // mapped while `State` lives (it drops after the router), and
        // nothing else in this process writes it.
        let table =
            unsafe { FlowTable::from_raw(shm.as_mut_ptr(), shm.entries(), shm.oflow_entries()) }
                .unwrap();
        let state = Arc::new(Mutex::new(State {
            router: Router::with_flow_table(RouterConfig::small(), table),
            // Small pages, so listings span several requests.
            handler: Handler::with_page_size(1024),
            host: Host {
                info: HostInfo {
                    flow_table_path: paths.flow_shm.display().to_string(),
                    cpus: 2,
                    ..HostInfo::default()
                },
                ..Host::default()
            },
            _shm: shm,
        }));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let addr = paths.ksync.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut listener = KsyncListener::bind(&addr).unwrap();
                ready_tx.send(()).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        conn = listener.accept() => {
                            let mut conn = conn.unwrap();
                            let st = st.clone();
                            tokio::spawn(async move {
                                while let Ok(Some(msg)) = conn.recv().await {
                                    let mut out = Vec::new();
                                    {
                                        let mut s = st.lock().unwrap();
                                        let State { router, handler, host, .. } = &mut *s;
                                        handler.handle(router, host, &msg, &mut out);
                                    }
                                    if out.is_empty() || conn.send(&out).await.is_err() {
                                        break;
                                    }
                                }
                            });
                        }
                    }
                }
            });
        });
        ready_rx.recv().unwrap();
        Server {
            dir,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn sock_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `vrctl --sock-dir <dir> <args>`.
    fn vrctl(&self, args: &str) -> Output {
        vrctl_in(self.sock_dir(), args)
    }

    /// Runs it and expects success; returns stdout.
    fn ok(&self, args: &str) -> String {
        let o = self.vrctl(args);
        assert!(
            o.status.success(),
            "vrctl {args} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs it and expects failure; returns stderr.
    fn fails(&self, args: &str) -> String {
        let o = self.vrctl(args);
        assert!(!o.status.success(), "vrctl {args} succeeded");
        String::from_utf8(o.stderr).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn vrctl_in(dir: &Path, args: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrctl"))
        .arg("--sock-dir")
        .arg(dir)
        .args(args.split_whitespace())
        .output()
        .unwrap()
}

#[test]
fn build_a_topology_through_the_binary_and_list_it() {
    let srv = Server::start();
    // Fabric, host and two container ports.
    srv.ok("vif --add eth0 --type physical --mac 02:00:00:00:00:01 --ip 192.0.2.1");
    srv.ok("vif --add vhost0 --type host --mac 02:00:00:00:00:01 --ip 192.0.2.1 --xconnect 0");
    assert_eq!(
        srv.ok("vif --add veth1 --type virtual --vrf 1 --ip 10.1.1.3 --nh 10 --policy"),
        "vif0/2 added (veth1)\n"
    );
    srv.ok("vif --add veth2 --type virtual --vrf 1 --ip 10.1.1.4 --nh 11 --policy");
    srv.ok("nh --create 10 --type encap --oif 2 --dmac 02:11:00:00:00:03");
    srv.ok("nh --create 11 --type encap --oif 3 --dmac 02:11:00:00:00:04");
    srv.ok("nh --create 20 --type tunnel --oif 0 --sip 192.0.2.1 --dip 192.0.2.2 --dmac 02:00:00:00:00:02 --udp");
    srv.ok("nh --create 1 --type receive");
    srv.ok("rt --create --vrf 1 --prefix 10.1.1.3/32 --nh 10 --proxy --mac 02:11:00:00:00:03");
    srv.ok("rt --create --vrf 1 --prefix 10.1.1.4/32 --nh 11 --proxy --mac 02:11:00:00:00:04");
    srv.ok("rt --create --vrf 1 --prefix 10.1.2.0/24 --nh 20 --label 17");
    srv.ok("rt --create --vrf 1 --family bridge --mac 02:11:00:00:00:03 --nh 10");
    srv.ok("mpls --create 16 --nh 10");
    srv.ok("mpls --create 17 --nh 11");
    srv.ok("vxlan --create 4096 --nh 10");
    // Enough routes for several dump pages.
    for i in 0..30 {
        srv.ok(&format!(
            "rt --create --vrf 1 --prefix 10.9.{i}.0/24 --nh 20 --label {}",
            100 + i
        ));
    }

    // The router state behind the socket.
    {
        let s = srv.state.lock().unwrap();
        let r = &s.router;
        assert_eq!(r.vif(2).unwrap().cfg.vrf, 1);
        assert_eq!(r.vif(1).unwrap().cfg.cross_connect, Some(0));
        assert!(matches!(
            r.nh(20).unwrap().kind,
            NhKind::Tunnel {
                kind: TunnelKind::MplsOverUdp,
                ..
            }
        ));
        assert_eq!(
            r.route_get(1, Prefix::V4([10, 9, 29, 0], 24))
                .unwrap()
                .label(),
            Some(129)
        );
        assert_eq!(r.mpls().get(17), Some(11));
        assert_eq!(s.host.added, ["eth0", "vhost0", "veth1", "veth2"]);
    }

    let vifs = srv.ok("vif --list");
    assert!(vifs.starts_with("Vrouter Interface Table\n\n"));
    assert!(vifs.contains(
        "vif0/2      OS: veth1 NH: 10\n            Type:Virtual HWaddr:00:00:5e:00:01:00 IPaddr:10.1.1.3\n            Vrf:1 Mcast Vrf:65535 Flags:PL3L2 QOS:0 Ref:1\n"
    ), "{vifs}");
    assert!(vifs.contains("vif0/1      OS: vhost0 Xconnect: vif0/0\n            Type:Host"));
    assert_eq!(vifs.matches("vif0/").count(), 5, "{vifs}"); // 4 vifs + one Xconnect mention
    let one = srv.ok("vif --get 3");
    assert!(one.contains("vif0/3      OS: veth2 NH: 11\n"));

    let nhs = srv.ok("nh --list");
    assert_eq!(nhs.matches("Id:").count(), 4);
    assert!(nhs.contains("Id:20         Type:Tunnel         Fmly: AF_INET  Rid:0  Ref_cnt:0          Vrf:0\n              Flags:Valid, MPLSoUDP, \n              Oif:0 Len:14 Data:02 00 00 00 00 02 02 00 00 00 00 01 08 00 \n              Sip:192.0.2.1 Dip:192.0.2.2\n"), "{nhs}");

    let rt = srv.ok("rt --dump 1");
    assert!(rt.contains("vRouter inet4 routing table 0/1/unicast\nDestination           PPL        Flags        Label         Nexthop    Stitched MAC(Index)\n"));
    assert!(rt.contains("10.1.1.3/32            32            P          -             10        2:11:0:0:0:3(-1)\n"), "{rt}");
    assert!(
        rt.contains("10.1.2.0/24            24            L         17             20        -\n"),
        "{rt}"
    );
    assert_eq!(
        rt.matches("10.9.").count(),
        30,
        "every route once across pages"
    );
    let br = srv.ok("rt --dump 1 --family bridge");
    assert!(br.contains("2:11:0:0:0:3"), "{br}");
    let mpls = srv.ok("mpls --dump");
    assert_eq!(mpls, "MPLS Input Label Map\n\n   Label    NextHop\n-------------------\n      16        10\n      17        11\n");
    assert!(srv.ok("vxlan --dump").ends_with("   4096    10\n"));
    let info = srv.ok("vrouter --info");
    assert!(info.starts_with("vRouter module version"), "{info}");
    assert!(
        info.contains("Flow Table limit                     256\n"),
        "{info}"
    );

    // A flow in the shared table, listed from the mapping like upstream.
    {
        let mut s = srv.state.lock().unwrap();
        let key = FlowKey::new_v4(6, 40000, 80, 10, [10, 1, 1, 3], [10, 1, 1, 4]);
        s.router
            .flow_set(&FlowSet {
                index: None,
                gen_id: None,
                key,
                action: VR_FLOW_ACTION_FORWARD,
                flags: 0,
                rflow: None,
                dvrf: None,
                ecmp_nh_index: -1,
                drop_reason: 0,
                src_nh_index: 10,
            })
            .unwrap();
    }
    let flows = srv.ok("flow -l");
    assert!(
        flows.starts_with("Flow table(size 81920, entries 320)\n"),
        "{flows}"
    );
    assert!(flows.contains("10.1.1.3:40000"), "{flows}");
    assert!(flows.contains("10.1.1.4:80"), "{flows}");
    assert!(flows.contains("K(nh):10, Action:F"), "{flows}");

    assert_eq!(srv.ok("dropstats"), "");
    assert!(srv.ok("dropstats --clear").contains("cleared"));

    // Deletes, and the listing shows it.
    srv.ok("rt --delete --vrf 1 --prefix 10.1.2.0/24");
    srv.ok("mpls --delete 17");
    srv.ok("vxlan --delete 4096");
    srv.ok("nh --delete 20");
    srv.ok("vif --delete veth2");
    let s = srv.state.lock().unwrap();
    assert!(s.router.vif(3).is_none());
    assert!(s.router.nh(20).is_none());
    assert!(s
        .router
        .route_get(1, Prefix::V4([10, 1, 2, 0], 24))
        .is_none());
    drop(s);
    assert!(!srv.ok("vif --list").contains("veth2"));
    assert!(!srv.ok("rt --dump 1").contains("10.1.2.0/24"));
}

#[test]
fn every_command_fails_clearly() {
    let srv = Server::start();
    srv.ok("vif --add eth0 --type physical");
    srv.ok("nh --create 1 --type receive");

    // vif: bad type and MAC are refused before connecting; the datapath's
    // refusals come back with upstream's wording; the host's failure too.
    let e = srv.fails("vif --add tap1 --type bogus");
    assert!(
        e.contains("invalid value 'bogus' for '--type <TYPE>'"),
        "{e}"
    );
    assert!(
        e.contains("[possible values: virtual, physical, agent, host, virtual-vlan]"),
        "{e}"
    );
    let e = srv.fails("vif --add tap1 --type virtual --mac 02:00:zz:00:00:01");
    assert!(e.contains("invalid MAC address '02:00:zz:00:00:01'"), "{e}");
    let e = srv.fails("vif --get 9");
    assert_eq!(
        e,
        "vrctl: vRouter(Response): No such file or directory (2)\n"
    );
    let e = srv.fails("vif --add missing0 --type virtual");
    assert!(
        e.contains("vif --add missing0 as vif0/1: vRouter(Response): No such device (19)"),
        "{e}"
    );
    // nh
    let e = srv.fails("nh --create 2 --type encap --oif 7 --dmac 02:00:00:00:00:09");
    assert!(
        e.contains("nh --create 2: vRouter(Response): Invalid argument (22)"),
        "{e}"
    );
    // Upstream `vr_nexthop_delete`: a missing next hop is -EINVAL.
    let e = srv.fails("nh --delete 99");
    assert!(e.contains("Invalid argument (22)"), "{e}");
    // rt
    let e = srv.fails("rt --delete --vrf 0 --prefix 10.0.0.0/8");
    assert!(
        e.contains("rt --delete: vRouter(Response): No such file or directory (2)"),
        "{e}"
    );
    let e = srv.fails("rt --create --vrf 0 --prefix 10.0.0.0/8 --nh 99");
    assert!(e.contains("No such file or directory (2)"), "{e}");
    // mpls, vxlan, vrf
    let e = srv.fails("mpls --create 16 --nh 99");
    assert!(
        e.contains("mpls --create 16 --nh 99: vRouter(Response): Invalid argument (22)"),
        "{e}"
    );
    let e = srv.fails("vxlan --get 5");
    assert!(e.contains("No such file or directory (2)"), "{e}");
    let e = srv.fails("vrf --create 4096");
    assert!(e.contains("Invalid argument"), "{e}");
    // flow, dropstats, vrouter: option errors.
    let e = srv.fails("flow");
    assert!(e.contains("--list"), "{e}");
    let e = srv.fails("dropstats --bogus");
    assert!(e.contains("unexpected argument '--bogus'"), "{e}");
    let e = srv.fails("vrouter");
    assert!(e.contains("--info"), "{e}");
    // Nothing changed behind the failures.
    let s = srv.state.lock().unwrap();
    assert_eq!(s.router.vifs().iter().count(), 1);
    assert_eq!(s.router.nexthops().count(), 1);
}

#[test]
fn no_vrouter_running() {
    let dir = tempfile::tempdir().unwrap();
    let sock: PathBuf = ChannelPaths::new(dir.path()).ksync;
    for cmd in [
        "vif --list",
        "nh --list",
        "rt --dump 0",
        "mpls --dump",
        "vxlan --dump",
        "flow -l",
        "dropstats",
        "vrouter --info",
    ] {
        let o = vrctl_in(dir.path(), cmd);
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            format!(
                "vrctl: cannot connect to the vRouter at {}: nobody is listening there (is `vrouter` running?)\n",
                sock.display()
            ),
            "{cmd}"
        );
    }
    // The default socket dir is upstream's.
    let o = Command::new(env!("CARGO_BIN_EXE_vrctl"))
        .args(["vif", "--list"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    #[cfg(unix)]
    assert!(e.contains("/var/run/vrouter/dpdk_netlink"), "{e}");
    #[cfg(windows)]
    assert!(e.contains(r"\\.\vrouterKsync"), "{e}");
}

#[test]
fn ext_counters_are_the_windows_extensions() {
    // winext::stats::IOCTL_VROUTER_EXT_STATS.
    assert_eq!(vrctl::ext::IOCTL_VROUTER_EXT_STATS, 0x0012_2404);
    #[cfg(unix)]
    {
        let o = Command::new(env!("CARGO_BIN_EXE_vrctl"))
            .args(["vrouter", "--ext"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("only on Windows"), "{e}");
    }
}
