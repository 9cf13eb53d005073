//! The real `vrouter` binary, programmed only through the real `vrctl`
//! binary over ksync: the one-host topology of `netns.rs` (two containers
//! in VRF 1, a third in VRF 2), the views (`vif --list`, `nh --list`,
//! `rt --dump`, `dropstats`, `flow -l` over the shared flow table), a
//! clean SIGTERM, and a restart after a crash.
//!
//! Needs root and iproute2; without them each test prints a SKIP line.
//! Namespaces and processes are removed by guards, also when a test fails.
//!
//! `vrctl` is another crate's binary, so cargo does not hand its path to
//! this test: it is looked for next to `vrouter` (where `cargo test
//! --workspace` puts it), built with `cargo build -p vrctl` if missing, or
//! taken from `VRCTL_BIN`. Note that `cargo test -p vrouter` alone does not
//! rebuild an existing, possibly stale, `vrctl`.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[macro_use]
mod common;

use common::*;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const C1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 1];
const C2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 2];
const C3_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 3];
const C1_IP: [u8; 4] = [198, 18, 0, 1];
const C2_IP: [u8; 4] = [198, 18, 0, 2];
const C3_IP: [u8; 4] = [198, 18, 0, 3];
/// Routed back to c3's own next hop in VRF 2 (a stand-in for any routed
/// destination): traffic to it from c3's policy vif needs a flow entry.
const FLOW_IP: [u8; 4] = [198, 18, 0, 9];

/// The `vrctl` binary (see the crate docs).
fn vrctl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VRCTL_BIN") {
        return p.into();
    }
    let vrouter = Path::new(env!("CARGO_BIN_EXE_vrouter"));
    let dir = vrouter.parent().unwrap();
    let bin = dir.join(format!("vrctl{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        // target/<profile>/vrouter: build vrctl into the same directory.
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(p) => p,
        };
        let target = dir.parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let _ = Command::new(cargo)
            .args([
                "build",
                "-p",
                "vrctl",
                "--bin",
                "vrctl",
                "--profile",
                profile,
            ])
            .env("CARGO_TARGET_DIR", target)
            .status();
    }
    assert!(
        bin.exists(),
        "the vrctl binary is not at {} and `cargo build -p vrctl` did not put it there: \
         run `cargo build -p vrctl` (same profile and target dir) or set VRCTL_BIN",
        bin.display()
    );
    bin
}

/// A running `vrouter` in namespace `ns`; killed on drop.
struct Vrouter {
    child: ChildGuard,
    log: PathBuf,
}

impl Vrouter {
    fn start(ns: &str, sock: &Path, log: &Path, extra: &[&str]) -> Vrouter {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_vrouter")])
            .arg("--sock-dir")
            .arg(sock)
            .args(["--flow-entries", "4096", "--log-level", "debug"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn vrouter");
        let v = Vrouter {
            child: ChildGuard(Some(child)),
            log: log.to_owned(),
        };
        // Ready once ksync answers.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = Command::new(vrctl_bin())
                .arg("--sock-dir")
                .arg(sock)
                .args(["vrouter", "--info"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "vrouter did not start:\n{}",
                v.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit status (None: it had to be killed).
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.child.signal(libc::SIGTERM);
        self.child.wait_bounded(Duration::from_secs(15))
    }

    /// SIGKILL: a crash, which cleans up nothing.
    fn crash(&mut self) {
        self.child.signal(libc::SIGKILL);
        self.child.wait_bounded(Duration::from_secs(5));
    }
}

/// `vrctl --sock-dir SOCK args...`: its stdout, or its stderr as `Err`.
fn vrctl(sock: &Path, args: &[&str]) -> Result<String, String> {
    let o = Command::new(vrctl_bin())
        .arg("--sock-dir")
        .arg(sock)
        .args(args)
        .output()
        .expect("run vrctl");
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// `vrctl` that must succeed.
fn ctl(sock: &Path, args: &[&str]) -> String {
    vrctl(sock, args).unwrap_or_else(|e| panic!("vrctl {}: {e}", args.join(" ")))
}

struct Port {
    vif: u16,
    name: &'static str,
    vrf: u16,
    mac: [u8; 6],
    ip: [u8; 4],
    policy: bool,
}

/// Next hop and label ids as `tests/common` numbers them.
fn nh_of(vif: u16) -> u32 {
    10 + 2 * u32::from(vif)
}
fn label_of(vif: u16) -> u32 {
    16 + 2 * u32::from(vif)
}

const PORTS: [Port; 3] = [
    Port {
        vif: 3,
        name: "vh1",
        vrf: 1,
        mac: C1_MAC,
        ip: C1_IP,
        policy: false,
    },
    Port {
        vif: 4,
        name: "vh2",
        vrf: 1,
        mac: C2_MAC,
        ip: C2_IP,
        policy: false,
    },
    Port {
        vif: 5,
        name: "vh3",
        vrf: 2,
        mac: C3_MAC,
        ip: C3_IP,
        policy: true,
    },
];

/// The one-host topology, through vrctl only: what `common::add_vm` does
/// through the Rust API (vif, L3 and L2 encap next hops, label, /32 route
/// with proxy ARP), plus [`FLOW_IP`] in VRF 2 and the base next hops.
fn program(sock: &Path) {
    ctl(sock, &["nh", "--create", "0", "--type", "discard"]);
    ctl(sock, &["nh", "--create", "1", "--type", "receive"]);
    for p in &PORTS {
        let (vif, vrf, nh, label) = (
            p.vif.to_string(),
            p.vrf.to_string(),
            nh_of(p.vif).to_string(),
            label_of(p.vif).to_string(),
        );
        let ip = Ipv4Addr::from(p.ip).to_string();
        let mut add = vec![
            "vif", "--add", p.name, "--type", "virtual", "--vif", &vif, "--vrf", &vrf, "--ip", &ip,
            "--nh", &nh,
        ];
        if p.policy {
            add.push("--policy");
        }
        ctl(sock, &add);
        let mac = mac_str(p.mac);
        let l2 = (nh_of(p.vif) + 1).to_string();
        for (id, l2_flag) in [(&nh, None), (&l2, Some("--l2"))] {
            let mut a = vec![
                "nh", "--create", id, "--type", "encap", "--oif", &vif, "--dmac", &mac, "--vrf",
                &vrf,
            ];
            a.extend(l2_flag);
            ctl(sock, &a);
        }
        ctl(sock, &["mpls", "--create", &label, "--nh", &nh]);
        let prefix = format!("{ip}/32");
        ctl(
            sock,
            &[
                "rt", "--create", "--vrf", &vrf, "--prefix", &prefix, "--nh", &nh, "--label",
                &label, "--proxy",
            ],
        );
    }
    let prefix = format!("{}/32", Ipv4Addr::from(FLOW_IP));
    let c3_nh = nh_of(PORTS[2].vif).to_string();
    ctl(
        sock,
        &[
            "rt", "--create", "--vrf", "2", "--prefix", &prefix, "--nh", &c3_nh, "--proxy",
        ],
    );
}

/// Namespaces: a host and three containers on veth.
fn topology(ns: &mut Namespaces) -> [String; 4] {
    let host = ns.add("h");
    let c = [ns.add("c1"), ns.add("c2"), ns.add("c3")];
    for (p, cn) in PORTS.iter().zip(&c) {
        container(&host, p.name, cn, p.mac, p.ip, 1500);
    }
    let [c1, c2, c3] = c;
    [host, c1, c2, c3]
}

/// Same-VRF traffic works both ways; VRF 2 reaches nothing in VRF 1.
fn check_traffic(c1: &str, c2: &str, c3: &str, tcp_mb: usize) {
    let rtts = ping(c1, C2_IP, 3, Duration::from_secs(2));
    assert_eq!(rtts.len(), 3, "ping c1 -> c2");
    assert_eq!(
        ping(c2, C1_IP, 3, Duration::from_secs(2)).len(),
        3,
        "ping c2 -> c1"
    );
    let size = tcp_bytes(tcp_mb);
    let (got, gbps) = tcp_transfer(c2, c1, C2_IP, size);
    assert_eq!(got, size);
    eprintln!(
        "vrctl-programmed vrouter: ping median {:?}, TCP {gbps:.2} Gbit/s",
        median(rtts)
    );
    assert!(
        ping(c3, C1_IP, 2, Duration::from_millis(400)).is_empty(),
        "VRF 2 -> VRF 1"
    );
    assert!(
        ping(c1, C3_IP, 2, Duration::from_millis(400)).is_empty(),
        "VRF 1 -> VRF 2"
    );
    assert!(tcp_connect_fails(c3, C2_IP), "TCP VRF 2 -> VRF 1");
}

/// The lines of `vrctl flow -l`'s entry from `src` to `dst`, if listed
/// (source on the entry's first line, destination on the second).
fn flow_of(list: &str, src: [u8; 4], dst: [u8; 4]) -> Option<String> {
    let lines: Vec<&str> = list.lines().collect();
    let (s, d) = (
        format!(" {}:", Ipv4Addr::from(src)),
        format!(" {}:", Ipv4Addr::from(dst)),
    );
    (0..lines.len().saturating_sub(1))
        .find(|&i| lines[i].contains(&s) && lines[i + 1].contains(&d))
        .map(|i| lines[i..(i + 4).min(lines.len())].join("\n"))
}

/// The socket files and the flow table are gone, and the directory the
/// vrouter created too.
fn assert_cleaned(sock: &Path) {
    for f in ["dpdk_netlink", "dpdk_pkt0", "flow"] {
        assert!(!sock.join(f).exists(), "{f} left behind");
    }
    assert!(!sock.exists(), "socket directory left behind");
}

#[test]
fn one_host_programmed_by_vrctl() {
    require_env!();
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("run");
    let mut ns = Namespaces::new();
    let [host, c1, c2, c3] = topology(&mut ns);
    let mut vr = Vrouter::start(&host, &sock, &tmp.path().join("vrouter.log"), &[]);
    // A missing interface is refused and changes nothing.
    let e = vrctl(
        &sock,
        &["vif", "--add", "nosuch0", "--type", "virtual", "--vif", "9"],
    )
    .unwrap_err();
    assert!(e.contains("No such device"), "{e}");
    program(&sock);
    assert!(
        vrctl(&sock, &["vif", "--get", "9"]).is_err(),
        "the failed add left a vif"
    );

    check_traffic(&c1, &c2, &c3, 16);

    let vifs = ctl(&sock, &["vif", "--list"]);
    for (p, os) in PORTS.iter().zip(["OS: vh1", "OS: vh2", "OS: vh3"]) {
        let head = format!("vif0/{}", p.vif);
        let at = vifs
            .find(&head)
            .unwrap_or_else(|| panic!("{head}:\n{vifs}"));
        let block = &vifs[at..];
        assert!(block.starts_with(&format!("{head}      {os}")), "{vifs}");
        assert!(block.contains(&format!("Vrf:{}", p.vrf)), "{vifs}");
        assert!(
            block.contains(&format!("IPaddr:{}", Ipv4Addr::from(p.ip))),
            "{vifs}"
        );
    }
    assert!(vifs.contains("vif0/2      OS: pkt0"), "{vifs}");
    // Traffic shows up in the counters of c1's and c2's vifs.
    let rx = vifs
        .split("vif0/")
        .filter(|b| b.starts_with("3 ") || b.starts_with("4 "))
        .filter(|b| !b.contains("RX packets:0 "))
        .count();
    assert_eq!(rx, 2, "{vifs}");

    let nhs = ctl(&sock, &["nh", "--list"]);
    for p in &PORTS {
        let id = format!("Id:{:<9}  Type:Encap", nh_of(p.vif));
        assert!(nhs.contains(&id), "{id}:\n{nhs}");
    }
    assert!(nhs.contains("Id:0          Type:Drop"), "{nhs}");

    let rt1 = ctl(&sock, &["rt", "--dump", "1", "--family", "inet"]);
    assert!(rt1.contains("routing table 0/1/unicast"), "{rt1}");
    for (ip, there) in [(C1_IP, true), (C2_IP, true), (C3_IP, false)] {
        let dest = format!("{}/32", Ipv4Addr::from(ip));
        assert_eq!(rt1.contains(&dest), there, "{dest}:\n{rt1}");
    }
    let rt2 = ctl(&sock, &["rt", "--dump", "2", "--family", "inet"]);
    assert!(
        rt2.contains("198.18.0.3/32") && rt2.contains("198.18.0.9/32"),
        "{rt2}"
    );

    // A new flow from the policy vif (default --new-flows hold, no agent):
    // a HOLD entry in the shared table.
    let _ = ping(&c3, FLOW_IP, 1, Duration::from_millis(300));
    let flows = ctl(&sock, &["flow", "-l"]);
    eprintln!("{flows}");
    let entry = flow_of(&flows, C3_IP, FLOW_IP)
        .unwrap_or_else(|| panic!("no flow 198.18.0.3 -> 198.18.0.9:\n{flows}"));
    assert!(entry.contains("  1 (2)"), "ICMP in VRF 2: {entry}");
    assert!(entry.contains("Action:H,"), "held for the agent: {entry}");

    // The isolation checks above were dropped and counted.
    let drops = ctl(&sock, &["dropstats"]);
    eprintln!("{drops}");
    assert!(!drops.trim().is_empty(), "no drop counted");

    let status = vr.terminate().expect("vrouter did not exit on SIGTERM");
    assert!(status.success(), "exit status {status:?}:\n{}", vr.log());
    assert!(vr.log().contains("SIGTERM"), "{}", vr.log());
    assert_cleaned(&sock);
}

#[test]
fn restart_after_crash_and_reprogram() {
    require_env!();
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("run");
    let mut ns = Namespaces::new();
    let [host, c1, c2, c3] = topology(&mut ns);

    let mut vr = Vrouter::start(&host, &sock, &tmp.path().join("vrouter-1.log"), &[]);
    program(&sock);
    assert_eq!(ping(&c1, C2_IP, 2, Duration::from_secs(2)).len(), 2);
    vr.crash();
    assert!(
        sock.join("dpdk_netlink").exists(),
        "a crash leaves its files"
    );
    assert!(
        ping(&c1, C2_IP, 1, Duration::from_millis(300)).is_empty(),
        "nothing forwards while the vrouter is down"
    );

    // The new instance replaces the stale files and starts empty; this
    // one drops new flows while no agent is connected.
    let mut vr = Vrouter::start(
        &host,
        &sock,
        &tmp.path().join("vrouter-2.log"),
        &["--new-flows", "drop"],
    );
    let vifs = ctl(&sock, &["vif", "--list"]);
    assert!(
        !vifs.contains("vif0/3"),
        "state survived the restart:\n{vifs}"
    );
    program(&sock);
    check_traffic(&c1, &c2, &c3, 4);

    // No agent and --new-flows drop: no entry, a new-flow drop instead.
    let _ = ping(&c3, FLOW_IP, 1, Duration::from_millis(300));
    let flows = ctl(&sock, &["flow", "-l"]);
    assert!(flow_of(&flows, C3_IP, FLOW_IP).is_none(), "{flows}");
    let drops = ctl(&sock, &["dropstats"]);
    let new_flow = drops
        .lines()
        .find(|l| l.contains("New Flow Drops"))
        .unwrap_or_else(|| panic!("{drops}"));
    assert!(!new_flow.trim_end().ends_with(" 0"), "{new_flow}");

    let status = vr.terminate().expect("vrouter did not exit on SIGTERM");
    assert!(status.success(), "exit status {status:?}:\n{}", vr.log());
    // The directory was not created by this instance: it stays, empty.
    for f in ["dpdk_netlink", "dpdk_pkt0", "flow"] {
        assert!(!sock.join(f).exists(), "{f} left behind");
    }
}
