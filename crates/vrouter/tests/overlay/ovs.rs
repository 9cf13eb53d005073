//! Interop with Open vSwitch as the other compute host: OVS 3.x in user
//! space (`datapath_type=netdev`, no kernel module), its own ovsdb-server
//! and ovs-vswitchd running inside host B's namespace with every file in a
//! temporary directory.
//!
//! Host B: `br-phy` holds the fabric veth and the tunnel address (OVS's
//! user-space tunnelling routes and resolves the outer header through the
//! bridge that owns the address); `br-int` holds the container's veth and
//! the tunnel port.
//! * VXLAN: a `vxlan` port (key = our VNI) and the NORMAL action: MAC
//!   learning and flooding, as with the kernel VTEP.
//! * MPLSoGRE: a `gre` port with `packet_type=legacy_l3` and flows that
//!   push our VM's label towards us and pop B's label towards B's
//!   container (L3, as our MPLSoGRE overlay is).
//!
//! Containers have MTU 1500 on the 1500-byte fabric (the MSS adjustment
//! of our datapath makes TCP fit, OVS does none). B's container veth has
//! its offloads off: OVS's AF_PACKET ports take no TSO super-packets.
//! Host A's fabric refuses UDP GSO (OVS reads no super-packets either).
//! A's container veth runs with its offloads on and off: our datapath then
//! merges TCP towards it or sends plain segments.

use super::*;

/// B's container's gateway MAC on the MPLSoGRE (L3) side.
const GW_MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

/// ovsdb-server and ovs-vswitchd in `ns`, files under a temp dir; killed
/// on drop (the bridges' devices go with the namespace).
struct Ovs {
    ns: String,
    // Fields drop in order: the daemons before their directory.
    vswitchd: ChildGuard,
    _db: ChildGuard,
    dir: tempfile::TempDir,
}

impl Ovs {
    fn start(ns: &str) -> Ovs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        let run = |args: &[&str]| {
            let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "ovsdb-tool",
            "create",
            &format!("{d}/conf.db"),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]);
        let spawn = |args: &[String]| {
            Command::new("ip")
                .args(["netns", "exec", ns])
                .args(args)
                .env("OVS_RUNDIR", &d)
                .env("OVS_LOGDIR", &d)
                .env("OVS_DBDIR", &d)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let db = ChildGuard(Some(spawn(&[
            "ovsdb-server".into(),
            format!("{d}/conf.db"),
            format!("--remote=punix:{d}/db.sock"),
            format!("--unixctl={d}/ovsdb.ctl"),
            format!("--log-file={d}/ovsdb.log"),
            format!("--pidfile={d}/ovsdb.pid"),
        ])));
        wait_for(&format!("{d}/db.sock"));
        let mut ovs = Ovs {
            ns: ns.to_string(),
            vswitchd: ChildGuard(None),
            _db: db,
            dir,
        };
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.vswitchd = ChildGuard(Some(spawn(&[
            "ovs-vswitchd".into(),
            format!("unix:{d}/db.sock"),
            format!("--unixctl={d}/vswitchd.ctl"),
            format!("--log-file={d}/vswitchd.log"),
            format!("--pidfile={d}/vswitchd.pid"),
        ])));
        wait_for(&format!("{d}/vswitchd.ctl"));
        ovs
    }

    fn path(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }

    fn cmd(&self, tool: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, tool])
            .args(args)
            .env("OVS_RUNDIR", self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}/db.sock", self.path());
        let mut a = vec![db.as_str(), "--timeout=20"];
        a.extend_from_slice(args);
        self.cmd("ovs-vsctl", &a)
    }

    fn appctl(&self, args: &[&str]) -> String {
        let t = format!("{}/vswitchd.ctl", self.path());
        let mut a = vec!["-t", t.as_str()];
        a.extend_from_slice(args);
        self.cmd("ovs-appctl", &a)
    }

    fn ofctl(&self, args: &[&str]) -> String {
        self.cmd("ovs-ofctl", args)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("vswitchd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// What to print when something failed.
    fn diagnostics(&self) -> String {
        let flows = |br: &str| {
            Command::new("ip")
                .args(["netns", "exec", &self.ns, "ovs-ofctl", "dump-flows", br])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        format!(
            "br-int flows:\n{}\nbr-phy flows:\n{}\nvswitchd.log:\n{}",
            flows("br-int"),
            flows("br-phy"),
            self.log_tail()
        )
    }
}

fn wait_for(path: &str) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !std::path::Path::new(path).exists() {
        assert!(std::time::Instant::now() < end, "{path} did not appear");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Host B as Open vSwitch with a `kind` tunnel to host A, container `cb`
/// on `br-int`.
fn ovs_host(hb: &str, cb: &str, kind: TunnelKind) -> Ovs {
    let ovs = Ovs::start(hb);
    // The fabric veth becomes a port of br-phy, its address br-phy's.
    ip(&["-n", hb, "addr", "flush", "dev", "fab"]);
    ovs.vsctl(&[
        "add-br",
        "br-phy",
        "--",
        "set",
        "bridge",
        "br-phy",
        "datapath_type=netdev",
        &format!("other-config:hwaddr=\"{}\"", mac_str(FAB_MAC_B)),
        "--",
        "add-port",
        "br-phy",
        "fab",
    ]);
    ip(&[
        "-n",
        hb,
        "addr",
        "add",
        &format!("{}/24", ip4(FAB_B)),
        "dev",
        "br-phy",
    ]);
    ip(&["-n", hb, "link", "set", "br-phy", "up"]);
    // OVS resolves the tunnel's next hop itself: tell it A's MAC.
    ovs.appctl(&["tnl/neigh/set", "br-phy", &ip4(FAB_A), &mac_str(FAB_MAC_A)]);

    container(hb, "vb1", cb, CB_MAC, CB_IP, C_MTU);
    for dev in ["tx", "tso", "gso"] {
        ethtool(cb, &["-K", "eth0", dev, "off"]);
    }
    let tunnel = match kind {
        TunnelKind::Vxlan => format!("type=vxlan options:key={VNI}"),
        _ => "type=gre options:packet_type=legacy_l3".to_string(),
    };
    let mut args = vec![
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
        "--",
        "add-port",
        "br-int",
        "vb1",
        "--",
        "add-port",
        "br-int",
        "tun0",
        "--",
        "set",
        "interface",
        "tun0",
    ];
    let remote = format!("options:remote_ip={}", ip4(FAB_A));
    args.extend(tunnel.split(' '));
    args.push(&remote);
    ovs.vsctl(&args);
    ip(&["-n", hb, "link", "set", "br-int", "up"]);
    if matches!(kind, TunnelKind::MplsOverGre) {
        // L3: B's container reaches A's through a gateway MAC; labels as
        // our datapath gives them (A's VM label out, B's VM label in).
        ip(&[
            "-n",
            cb,
            "neigh",
            "add",
            &ip4(CA_IP),
            "lladdr",
            &mac_str(GW_MAC_B),
            "dev",
            "eth0",
        ]);
        ovs.ofctl(&["del-flows", "br-int"]);
        for flow in [
            format!(
                "in_port=vb1,ip,nw_dst={},actions=push_mpls:0x8847,set_field:{}->mpls_label,output:tun0",
                ip4(CA_IP),
                vm_label(vm_a().vif)
            ),
            format!(
                "in_port=tun0,mpls,mpls_label={},actions=pop_mpls:0x0800,set_field:{}->eth_src,set_field:{}->eth_dst,output:vb1",
                vm_label(vm_b().vif),
                mac_str(GW_MAC_B),
                mac_str(CB_MAC)
            ),
        ] {
            ovs.ofctl(&["add-flow", "br-int", &flow]);
        }
    }
    ovs
}

/// Our datapath on host A, OVS on host B, a `kind` tunnel between them:
/// ping and TCP both ways, checked on the wire; `a_offloads`: A's container
/// veth keeps its offloads (our datapath merges TCP towards it).
fn ovs_peer(kind: TunnelKind, a_offloads: bool) {
    require_env!(
        "tshark",
        "ethtool",
        "ovsdb-tool",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-ofctl",
        "ovs-appctl"
    );
    let mut ns = Namespaces::new();
    let (ha, hb) = fabric(&mut ns);
    let ca = ns.add("ca");
    let cb = ns.add("cb");
    container(&ha, "vh1", &ca, CA_MAC, CA_IP, C_MTU);
    if !a_offloads {
        ethtool(&ha, &["-K", "vh1", "tx", "off"]);
    }
    ethtool(&ha, &["-K", "fab", "tx-udp-segmentation", "off"]);
    let ovs = ovs_host(&hb, &cb, kind);

    let (dpa, _ga) = start_dp(&ha, move |dp| {
        compute_node(
            dp,
            kind,
            (FAB_A, FAB_MAC_A),
            (FAB_B, FAB_MAC_B),
            &vm_a(),
            &vm_b(),
        )
    });
    let mut caps = captures(&ha, &hb, kind);
    let (ab, ba) = match std::panic::catch_unwind(|| traffic(&ca, &cb)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("A {:?}\n{}", dpa.stats(), ovs.diagnostics());
            std::panic::resume_unwind(e);
        }
    };
    let dirs = check_captures_ab(&mut caps, kind);
    let st = dpa.stats().unwrap();
    let vifs = dpa.vifs().unwrap();
    let (_, vm_port) = vifs
        .iter()
        .find(|v| v.vif.cfg.idx == vm_a().vif)
        .and_then(|v| v.port.clone())
        .unwrap();
    eprintln!(
        "OVS {kind:?} (A's container offloads {a_offloads}): TCP A->B {ab:.3} Gbit/s, \
         B->A {ba:.3} Gbit/s; capture {dirs:?}\nA {st:?}\nA's VM port {vm_port:?}"
    );
    assert_eq!(dirs.len(), 2, "both directions captured: {dirs:?}");
    for d in dirs.values() {
        assert!(d.packets >= 6, "{dirs:?}");
    }
    // Nothing refused towards A's container, offloads or not.
    assert_eq!(vm_port.tx_errors, 0, "A's VM port {vm_port:?}");
    assert_eq!(st.tx_errors, 0);
    // TCP merged towards A's container only when its veth takes TSO.
    if a_offloads {
        assert!(st.gro_frames > 0, "{st:?}");
    } else {
        assert_eq!(st.gro_frames, 0, "{st:?}");
    }
    // A few Mbit/s would mean retransmission storms; a busy 2-core machine
    // still does far more than this.
    assert!(ab > 0.02 && ba > 0.02, "A->B {ab} B->A {ba} Gbit/s");
    dpa.stop();
    drop(ovs);
}

#[test]
fn ovs_peer_vxlan_offloads_on() {
    ovs_peer(TunnelKind::Vxlan, true);
}

#[test]
fn ovs_peer_vxlan_offloads_off() {
    ovs_peer(TunnelKind::Vxlan, false);
}

#[test]
fn ovs_peer_mpls_over_gre_offloads_on() {
    ovs_peer(TunnelKind::MplsOverGre, true);
}

#[test]
fn ovs_peer_mpls_over_gre_offloads_off() {
    ovs_peer(TunnelKind::MplsOverGre, false);
}
