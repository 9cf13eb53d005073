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
    // target/<profile>/vrouter: build vrctl into the same directory, once
    // per run and even when one is there (a stale vrctl from an older
    // build sent the MTU this test expects the datapath to fill in).
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
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
    });
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

/// `vrouter` on `sock` in namespace `ns`, run through `wrapper` (a command
/// that execs the rest, e.g. `setpriv ... --`; empty: none).
fn vrouter_cmd(ns: &str, wrapper: &[&str], sock: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .args(wrapper)
        .arg(env!("CARGO_BIN_EXE_vrouter"))
        .arg("--sock-dir")
        .arg(sock)
        .args(["--flow-entries", "4096", "--log-level", "debug"])
        .args(extra)
        .stdin(Stdio::null());
    c
}

impl Vrouter {
    fn start(ns: &str, sock: &Path, log: &Path, extra: &[&str]) -> Vrouter {
        Self::start_via(ns, &[], sock, log, extra)
    }

    /// [`Vrouter::start`] through `wrapper` ([`vrouter_cmd`]).
    fn start_via(ns: &str, wrapper: &[&str], sock: &Path, log: &Path, extra: &[&str]) -> Vrouter {
        let out = std::fs::File::create(log).unwrap();
        let child = vrouter_cmd(ns, wrapper, sock, extra)
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
    for f in ["dpdk_netlink", "dpdk_pkt0", "flow", "flow.meta"] {
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
    for f in ["dpdk_netlink", "dpdk_pkt0", "flow", "flow.meta"] {
        assert!(!sock.join(f).exists(), "{f} left behind");
    }
}

// ---- the shared flow table, read as upstream's agent reads it ----------------

/// Upstream's `struct vr_flow_entry` (tf-vrouter `include/vr_flow.h`, with
/// `vr_hentry_t` from `include/vr_htable.h` and the key union's members),
/// transcribed field by field as upstream declares them: packed, x86-64
/// pointers, `fe_pack` filling up to 256 bytes (`VR_FLOW_ENTRY_PACK`).
/// Declared here from upstream's header, not taken from our code.
mod upstream {
    #[repr(C, packed)]
    #[derive(Clone, Copy)]
    pub struct VrHentry {
        pub hentry_next: u64,
        pub hentry_index: u32,
        pub hentry_bucket_index: u32,
        pub hentry_next_index: u32,
        pub hentry_flags: u8,
    }

    /// `struct vr_inet_flow` (the IPv4 member of `vr_flow.key_u`).
    #[repr(C, packed)]
    #[derive(Clone, Copy)]
    pub struct VrInetFlow {
        pub ip4_family: u8,
        pub ip4_proto: u8,
        pub ip4_unused: u16,
        pub ip4_sport: u16,
        pub ip4_dport: u16,
        pub ip4_nh_id: u32,
        pub ip4_sip: u32,
        pub ip4_dip: u32,
    }

    /// `struct vr_flow`: the key union (44 bytes, `vr_inet6_flow` being the
    /// largest member) and `vr_flow_keylen`.
    #[repr(C, packed)]
    #[derive(Clone, Copy)]
    pub struct VrFlow {
        pub key_u: [u8; 44],
        pub vr_flow_keylen: u8,
    }

    #[repr(C, packed)]
    #[derive(Clone, Copy)]
    pub struct VrFlowStats {
        pub flow_bytes: u32,
        pub flow_packets: u32,
        pub flow_bytes_oflow: u16,
        pub flow_packets_oflow: u8,
    }

    /// `sizeof(struct vr_dummy_flow_entry)`: the fields before `fe_pack`.
    pub const DUMMY_LEN: usize = 138;
    /// `VR_FLOW_ENTRY_PACK`.
    pub const PACK: usize = 256 - DUMMY_LEN;

    #[repr(C, packed)]
    #[derive(Clone, Copy)]
    pub struct VrFlowEntry {
        pub fe_hentry: VrHentry,
        pub fe_ttl: u8,
        pub fe_qos_id: i16,
        pub fe_key: VrFlow,
        pub fe_gen_id: u8,
        pub fe_tcp_flags: u16,
        pub fe_hold_list: u64,
        pub fe_tcp_seq: u32,
        pub fe_rflow: i32,
        pub fe_flags: u16,
        pub fe_flags1: u16,
        pub fe_action: u16,
        pub fe_vrf: u16,
        pub fe_dvrf: u16,
        pub fe_mirror_id: u8,
        pub fe_sec_mirror_id: u8,
        pub fe_src_nh_index: u32,
        pub fe_stats: VrFlowStats,
        pub fe_ecmp_nh_index: i8,
        pub fe_drop_reason: u8,
        pub fe_type: u8,
        pub fe_udp_src_port: u16,
        pub fe_src_info: u32,
        pub fe_mme: u64,
        pub fe_tcp_ack: u32,
        pub fe_underlay_ecmp_index: i8,
        pub fe_bucket_lock: u8,
        pub fe_pack: [u8; PACK],
    }

    const _: () = assert!(std::mem::size_of::<VrHentry>() == 21);
    const _: () = assert!(std::mem::size_of::<VrInetFlow>() == 20);
    const _: () = assert!(std::mem::size_of::<VrFlow>() == 45);
    const _: () = assert!(std::mem::size_of::<VrFlowStats>() == 11);
    const _: () = assert!(std::mem::size_of::<VrFlowEntry>() == 256);

    // include/vr_flow.h, include/vr_packet.h, dp-core/vr_htable.c
    pub const VR_FLOW_ACTION_HOLD: u16 = 0x1;
    pub const VR_FLOW_ACTION_FORWARD: u16 = 0x2;
    pub const VR_FLOW_FLAG_ACTIVE: u16 = 0x1;
    pub const VR_RFLOW_VALID: u16 = 0x1000;
    pub const VR_FLOW_FLAG_VRFT: u16 = 0x4000;
    pub const VR_HENTRY_FLAG_VALID: u8 = 0x1;
    pub const VR_INVALID_HENTRY_INDEX: u32 = u32::MAX;
    pub const VP_TYPE_IP: u8 = 2;
    pub const AF_INET: u8 = 2;
}

/// The table as upstream's agent gets it: `vr_flow_table_data` over ksync
/// (`ftable_file_path`, `ftable_size`), that many bytes mapped from offset
/// 0, `ftable_size / sizeof(vr_flow_entry)` entries.
struct UpstreamView {
    base: *const upstream::VrFlowEntry,
    len: usize,
    count: usize,
}

impl UpstreamView {
    fn map(path: &str, size: usize) -> UpstreamView {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(path).unwrap();
        // SAFETY: a read-only shared mapping of `size` bytes of a regular
        // file; read through raw pointers only (the datapath writes it).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap {path}");
        UpstreamView {
            base: p.cast(),
            len: size,
            count: size / std::mem::size_of::<upstream::VrFlowEntry>(),
        }
    }

    fn get(&self, i: usize) -> upstream::VrFlowEntry {
        assert!(i < self.count);
        // SAFETY: in the mapping; a packed struct has alignment 1.
        unsafe { std::ptr::read_volatile(self.base.add(i)) }
    }

    /// Indices of the active entries, as upstream's agent and `flow -l`
    /// select them.
    fn active(&self) -> Vec<usize> {
        (0..self.count)
            .filter(|&i| {
                let f = self.get(i).fe_flags;
                f & upstream::VR_FLOW_FLAG_ACTIVE != 0
            })
            .collect()
    }
}

impl Drop for UpstreamView {
    fn drop(&mut self) {
        // SAFETY: the mapping `map` made.
        unsafe { libc::munmap(self.base.cast_mut().cast(), self.len) };
    }
}

/// The IPv4 key of an upstream entry: (proto, sport, dport, nh, sip, dip).
fn inet_key(e: &upstream::VrFlowEntry) -> (u8, u16, u16, u32, [u8; 4], [u8; 4]) {
    let kb = e.fe_key.key_u;
    // SAFETY: `vr_inet_flow` is the union's IPv4 member, 20 of its 44 bytes.
    let k: upstream::VrInetFlow = unsafe { std::ptr::read_unaligned(kb.as_ptr().cast()) };
    assert_eq!(k.ip4_family, upstream::AF_INET);
    assert_eq!({ k.ip4_unused }, 0);
    (
        k.ip4_proto,
        u16::from_be(k.ip4_sport),
        u16::from_be(k.ip4_dport),
        k.ip4_nh_id,
        // ntohl(ip4_sip), as the agent's VrFlowToIp does.
        u32::from_be(k.ip4_sip).to_be_bytes(),
        u32::from_be(k.ip4_dip).to_be_bytes(),
    )
}

/// Real traffic from a policy-enabled vif, no agent: a held ICMP flow and
/// a held TCP flow. Then, as an agent does over ksync, the ICMP flow is
/// decided (FORWARD, a reverse entry linked, VRF-translated) and more
/// traffic counted. Every field of the entries is read through the
/// upstream declaration above and checked.
#[test]
fn shared_flow_table_reads_as_upstream_vr_flow_entry() {
    require_env!();
    use sandesh::{FlowOp, Message, SandeshOp, VrFlowReq, VrFlowTableData, VrouterOps};
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("run");
    let mut ns = Namespaces::new();
    let [host, _c1, _c2, c3] = topology(&mut ns);
    let mut vr = Vrouter::start(&host, &sock, &tmp.path().join("vrouter.log"), &[]);
    program(&sock);
    let mut client = vrctl::Client::connect(&sock.join("dpdk_netlink")).unwrap();

    // Sizes as upstream's agent learns them.
    let Message::FlowTableData(d) = client
        .get(VrFlowTableData {
            ftable_op: FlowOp::FlowTableGet,
            ..Default::default()
        })
        .unwrap()
    else {
        panic!()
    };
    let Message::VrouterOps(o) = client
        .get(VrouterOps {
            h_op: SandeshOp::Get,
            ..Default::default()
        })
        .unwrap()
    else {
        panic!()
    };
    let view = UpstreamView::map(&d.ftable_file_path, d.ftable_size as usize);
    assert_eq!(
        view.count,
        (o.vo_flow_entries + o.vo_oflow_entries) as usize,
        "ftable_size / 256 is the table"
    );
    assert_eq!(
        std::fs::metadata(&d.ftable_file_path).unwrap().len(),
        u64::from(d.ftable_size),
        "the file is the records, from offset 0"
    );
    assert!(view.active().is_empty());
    let c3_nh = nh_of(PORTS[2].vif);

    // A held ICMP flow (echo: identifier as sport, dport 0).
    let _ = ping(&c3, FLOW_IP, 1, Duration::from_millis(300));
    // A held TCP flow (a SYN to port 5202).
    assert!(tcp_connect_fails(&c3, FLOW_IP));
    let active = view.active();
    assert_eq!(active.len(), 2, "two held flows");
    let mut icmp = None;
    for &i in &active {
        let e = view.get(i);
        let (proto, sport, dport, nh, sip, dip) = inet_key(&e);
        // hentry: index is the position, VALID, no chain here.
        assert_eq!({ e.fe_hentry.hentry_index } as usize, i);
        assert_eq!({ e.fe_hentry.hentry_next }, 0);
        assert_eq!(e.fe_hentry.hentry_flags & upstream::VR_HENTRY_FLAG_VALID, 1);
        if i < o.vo_flow_entries as usize {
            assert_eq!(
                { e.fe_hentry.hentry_bucket_index },
                upstream::VR_INVALID_HENTRY_INDEX
            );
        }
        // key: IPv4, key_len 20, the addresses at key+12 and key+16.
        assert_eq!(e.fe_key.vr_flow_keylen, 20);
        assert_eq!(&e.fe_key.key_u[20..], &[0; 24]);
        assert_eq!((nh, sip, dip), (c3_nh, C3_IP, FLOW_IP));
        assert_eq!(e.fe_type, upstream::VP_TYPE_IP);
        // Held: ACTIVE, action HOLD, as upstream's agent audits them.
        assert_eq!({ e.fe_action }, upstream::VR_FLOW_ACTION_HOLD);
        assert_eq!({ e.fe_flags } & upstream::VR_FLOW_FLAG_ACTIVE, 1);
        assert_eq!(e.fe_gen_id, 1);
        assert_eq!(({ e.fe_vrf }, { e.fe_dvrf }), (2, 2));
        assert_eq!({ e.fe_rflow }, -1);
        assert_eq!((e.fe_mirror_id, e.fe_sec_mirror_id), (255, 255));
        assert_eq!((e.fe_ecmp_nh_index, e.fe_underlay_ecmp_index), (-1, -1));
        // `fe_mme` is zero; `fe_hold_list`'s 8 bytes carry our held-packet
        // count (low half) and last-seen second (high half), which no
        // upstream reader dereferences.
        assert_eq!({ e.fe_mme }, 0);
        let held = { e.fe_hold_list } as u32;
        assert!((1..=3).contains(&held), "packets held: {held}");
        assert_eq!(
            ({ e.fe_tcp_seq }, { e.fe_tcp_ack }, { e.fe_flags1 }),
            (0, 0, 0)
        );
        assert_eq!((e.fe_ttl, { e.fe_qos_id }, e.fe_drop_reason), (0, 0, 0));
        assert_eq!(
            ({ e.fe_src_nh_index }, { e.fe_src_info }, {
                e.fe_udp_src_port
            }),
            (0, 0, 0)
        );
        assert_eq!(e.fe_bucket_lock, 0);
        match proto {
            1 => {
                assert_eq!(dport, 0, "echo: dport 0");
                icmp = Some((i, sport));
            }
            6 => assert_eq!(dport, 5202, "tcp_connect_fails dials 5202"),
            p => panic!("unexpected protocol {p}"),
        }
    }
    let (fi, echo_id) = icmp.expect("the held ICMP flow");

    // Decide the ICMP flow as an agent would: a reverse entry (index -1),
    // then the held forward entry, FORWARD, linked, translated to VRF 2.
    let key_req = |index: i32, gen: u8, sip: [u8; 4], dip: [u8; 4], flags: u16| {
        let mut r = VrFlowReq {
            fr_op: FlowOp::FlowSet,
            fr_index: index,
            fr_gen_id: gen,
            fr_rindex: -1,
            fr_action: upstream::VR_FLOW_ACTION_FORWARD as i16,
            fr_flags: flags as i16,
            fr_flow_dvrf: 2,
            fr_src_nh_index: c3_nh,
            fr_ecmp_nh_index: u32::MAX,
            ..Default::default()
        };
        let k = dp_core::FlowKey::new_v4(1, echo_id, 0, c3_nh, sip, dip);
        ksync::convert::set_flow_key(&mut r, &k);
        r
    };
    let mut rev = key_req(
        -1,
        0,
        FLOW_IP,
        C3_IP,
        upstream::VR_FLOW_FLAG_ACTIVE | upstream::VR_RFLOW_VALID,
    );
    rev.fr_rindex = fi as i32;
    let a = client.request(&rev.into()).unwrap();
    assert_eq!(a.code, 0, "{a:?}");
    let Some(Message::FlowResponse(rr)) = a.objects.first() else {
        panic!("{a:?}")
    };
    let ri = rr.fresp_index as usize;
    let mut fwd = key_req(
        fi as i32,
        1,
        C3_IP,
        FLOW_IP,
        upstream::VR_FLOW_FLAG_ACTIVE | upstream::VR_RFLOW_VALID | upstream::VR_FLOW_FLAG_VRFT,
    );
    fwd.fr_rindex = ri as i32;
    assert_eq!(client.request(&fwd.into()).unwrap().code, 0);

    // More real traffic on the decided flow.
    let _ = ping(&c3, FLOW_IP, 3, Duration::from_millis(300));
    let e = view.get(fi);
    assert_eq!({ e.fe_action }, upstream::VR_FLOW_ACTION_FORWARD);
    assert_eq!({ e.fe_rflow }, ri as i32);
    let flags = { e.fe_flags };
    assert_eq!(
        flags
            & (upstream::VR_FLOW_FLAG_ACTIVE
                | upstream::VR_RFLOW_VALID
                | upstream::VR_FLOW_FLAG_VRFT),
        upstream::VR_FLOW_FLAG_ACTIVE | upstream::VR_RFLOW_VALID | upstream::VR_FLOW_FLAG_VRFT
    );
    assert_eq!({ e.fe_dvrf }, 2);
    assert_eq!({ e.fe_src_nh_index }, c3_nh);
    // Three echo requests of 98 bytes (Ethernet + IPv4 + ICMP + 56).
    let (bytes, packets) = ({ e.fe_stats.flow_bytes }, { e.fe_stats.flow_packets });
    assert!(packets >= 3, "{packets} packets counted");
    assert_eq!(bytes, packets * 98, "{bytes} bytes for {packets} packets");
    assert_eq!(
        (e.fe_stats.flow_bytes_oflow, e.fe_stats.flow_packets_oflow),
        (0, 0)
    );
    let r = view.get(ri);
    assert_eq!({ r.fe_flags } & upstream::VR_FLOW_FLAG_ACTIVE, 1);
    assert_eq!({ r.fe_rflow }, fi as i32);
    assert_eq!({ r.fe_hentry.hentry_index } as usize, ri);
    let (_, _, _, _, rs, rd) = inet_key(&r);
    assert_eq!((rs, rd), (FLOW_IP, C3_IP));

    // Deleted: upstream's agent sees the entry go inactive.
    let mut del = key_req(fi as i32, 1, C3_IP, FLOW_IP, 0);
    del.fr_rindex = ri as i32;
    assert_eq!(client.request(&del.into()).unwrap().code, 0);
    let e = view.get(fi);
    assert_eq!({ e.fe_flags } & upstream::VR_FLOW_FLAG_ACTIVE, 0);
    assert_eq!(e.fe_key.vr_flow_keylen, 0);
    assert_eq!(e.fe_type, 0);

    drop(view);
    drop(client);
    let status = vr.terminate().expect("vrouter did not exit on SIGTERM");
    assert!(status.success(), "exit status {status:?}:\n{}", vr.log());
    assert_cleaned(&sock);
}

/// One netlink request carrying `objs`, as upstream's utilities frame it.
fn nl_request(seq: u32, objs: &[sandesh::Message]) -> Vec<u8> {
    let mut payload = Vec::new();
    for m in objs {
        m.encode(&mut payload);
    }
    let total = 16 + 4 + 4 + payload.len();
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&(total as u32).to_ne_bytes());
    b.extend_from_slice(&0x20u16.to_ne_bytes());
    b.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&[1, 0, 0, 0]);
    b.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&1u16.to_ne_bytes());
    b.extend_from_slice(&payload);
    b
}

/// `vrctl vif --add` without `--id` or `--mtu`: the vif gets the
/// interface's OS index and MTU. A TAP vif deleted and added again in one
/// request buffer (as an agent converging writes it) keeps working instead
/// of failing with EBUSY (the TAP device was still open when the second
/// add tried to open it).
#[test]
fn vif_takes_os_index_and_mtu_and_a_tap_readds_in_one_buffer() {
    require_env!();
    use sandesh::{Message, SandeshOp, VrInterfaceReq};
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("run");
    let mut ns = Namespaces::new();
    let host = ns.add("h");
    let c = ns.add("c");
    container(&host, "vh9", &c, C1_MAC, C1_IP, 1400);
    ip(&["-n", &host, "link", "set", "vh9", "mtu", "1400"]);
    let mut vr = Vrouter::start(&host, &sock, &tmp.path().join("vrouter.log"), &[]);
    ctl(
        &sock,
        &["vif", "--add", "vh9", "--type", "virtual", "--vif", "6"],
    );
    let out = Command::new("ip")
        .args(["-n", &host, "-o", "link", "show", "vh9"])
        .output()
        .unwrap();
    let ifindex: i32 = String::from_utf8_lossy(&out.stdout)
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut client = vrctl::Client::connect(&sock.join("dpdk_netlink")).unwrap();
    let get = |client: &mut vrctl::Client<vrctl::client::SocketTransport>,
               idx: i32|
     -> Option<VrInterfaceReq> {
        match client.get(VrInterfaceReq {
            h_op: SandeshOp::Get,
            vifr_idx: idx,
            vifr_os_idx: -1,
            ..Default::default()
        }) {
            Ok(Message::Interface(v)) => Some(v),
            _ => None,
        }
    };
    let v = get(&mut client, 6).unwrap();
    assert_eq!((v.vifr_os_idx, v.vifr_mtu), (ifindex, 1400), "{v:?}");
    let listed = ctl(&sock, &["vif", "--get", "6"]);
    assert!(listed.contains("MTU:1400"), "{listed}");
    // An explicit MTU is kept.
    ctl(
        &sock,
        &[
            "vif", "--add", "vh9", "--type", "virtual", "--vif", "6", "--mtu", "1300",
        ],
    );
    assert_eq!(get(&mut client, 6).unwrap().vifr_mtu, 1300);

    // A TAP vif (the datapath creates the device), then delete + add of
    // it in one write.
    ctl(
        &sock,
        &["vif", "--add", "vtap9", "--type", "host", "--vif", "7"],
    );
    let tap = get(&mut client, 7).unwrap();
    assert!(tap.vifr_os_idx > 0, "{tap:?}");
    let del = VrInterfaceReq {
        h_op: SandeshOp::Del,
        vifr_idx: 7,
        ..Default::default()
    };
    let add = VrInterfaceReq {
        h_op: SandeshOp::Add,
        ..tap.clone()
    };
    let mut raw = std::os::unix::net::UnixStream::connect(sock.join("dpdk_netlink")).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = nl_request(100, &[del.into()]);
    buf.extend_from_slice(&nl_request(101, &[add.into()]));
    raw.write_all(&buf).unwrap();
    // Two answers, each a vr_response with its code.
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let mut h = [0u8; 16];
        raw.read_exact(&mut h).unwrap();
        let len = u32::from_ne_bytes(h[0..4].try_into().unwrap()) as usize;
        let mut rest = vec![0u8; len - 16];
        raw.read_exact(&mut rest).unwrap();
        let msgs = sandesh::Message::decode_all(&rest[8..]).unwrap();
        for m in msgs {
            if let Message::Response(r) = m {
                codes.push(r.resp_code);
            }
        }
    }
    assert_eq!(codes, [0, 0], "delete + add in one buffer:\n{}", vr.log());
    let again = get(&mut client, 7).unwrap();
    assert_eq!(again.vifr_name, "vtap9");
    let link = Command::new("ip")
        .args(["-n", &host, "link", "show", "vtap9"])
        .output()
        .unwrap();
    assert!(link.status.success(), "the TAP device is gone");
    let status = vr.terminate().expect("vrouter did not exit on SIGTERM");
    assert!(status.success(), "{}", vr.log());
}

/// Frames the kernel drops on a port's receive queue while the datapath
/// does not read it (here: the vrouter stopped with SIGSTOP while c1
/// floods) show in `vif --get` as the vif's device receive errors
/// (`vifr_dev_ierrors`), and nowhere else would: the datapath never saw
/// them.
#[test]
fn a_port_queue_overflow_shows_as_device_receive_errors() {
    require_env!();
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("run");
    let mut ns = Namespaces::new();
    let [host, c1, _c2, _c3] = topology(&mut ns);
    let vr = Vrouter::start(&host, &sock, &tmp.path().join("vrouter.log"), &[]);
    program(&sock);
    assert_eq!(ping(&c1, C2_IP, 2, Duration::from_secs(2)).len(), 2);
    let before = ctl(&sock, &["vif", "--get", "3"]);
    assert!(!before.contains("RX device errors"), "{before}");

    // c1 keeps the vrouter's MAC for c2 while nothing answers ARP.
    let neigh = Command::new("ip")
        .args([
            "-n",
            &c1,
            "neigh",
            "show",
            &Ipv4Addr::from(C2_IP).to_string(),
        ])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    let mac = neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_else(|| panic!("c1 has no neighbour entry for c2: {neigh}"))
        .to_string();
    ip(&[
        "-n",
        &c1,
        "neigh",
        "replace",
        &Ipv4Addr::from(C2_IP).to_string(),
        "lladdr",
        &mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);

    // 4 MiB of receive queue holds a few thousand small frames.
    const SENT: u32 = 30_000;
    vr.child.signal(libc::SIGSTOP);
    let sent = in_ns(&c1, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let dst = std::net::SocketAddrV4::new(Ipv4Addr::from(C2_IP), 9);
        (0..SENT)
            .filter(|_| s.send_to(&[0u8; 18], dst).is_ok())
            .count()
    });
    vr.child.signal(libc::SIGCONT);
    eprintln!("c1 sent {sent} datagrams while the vrouter was stopped");
    let deadline = Instant::now() + Duration::from_secs(10);
    let errors = loop {
        let out = ctl(&sock, &["vif", "--get", "3"]);
        if let Some(n) = vif_counter(&out, "RX device errors:") {
            eprintln!("{out}");
            break n;
        }
        assert!(Instant::now() < deadline, "no device errors:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(errors > 0 && errors < u64::from(SENT), "{errors}");
    // The queue's survivors are read and counted as received: together
    // with the drops, every datagram c1 sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rx = ctl(&sock, &["vif", "--get", "3"]);
        let rx_packets = vif_counter(&rx, "RX packets:").unwrap_or(0);
        if rx_packets + errors >= sent as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "received {rx_packets} + dropped {errors} < sent {sent}:\n{rx}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another vif's queue did not overflow; the dump says the same.
    let other = ctl(&sock, &["vif", "--get", "4"]);
    assert!(!other.contains("RX device errors"), "{other}");
    let list = ctl(&sock, &["vif", "--list"]);
    assert_eq!(
        list.matches(&format!("RX device errors:{errors}")).count(),
        1,
        "{list}"
    );

    // `vif --clear 3` zeroes vif 3's counters, the device's errors too,
    // and they count again from there; vif 4's stay.
    let rx4 = vif_counter(&ctl(&sock, &["vif", "--get", "4"]), "RX packets:").unwrap();
    assert!(rx4 > 0);
    let said = ctl(&sock, &["vif", "--clear", "3"]);
    assert!(said.contains("cleared for vif0/3"), "{said}");
    let cleared = ctl(&sock, &["vif", "--get", "3"]);
    assert!(!cleared.contains("RX device errors"), "{cleared}");
    assert_eq!(vif_counter(&cleared, "RX packets:"), Some(0), "{cleared}");
    let four = ctl(&sock, &["vif", "--get", "4"]);
    assert!(vif_counter(&four, "RX packets:").unwrap() >= rx4, "{four}");
    assert_eq!(ping(&c1, C2_IP, 2, Duration::from_secs(2)).len(), 2);
    let again = ctl(&sock, &["vif", "--get", "3"]);
    let rx = vif_counter(&again, "RX packets:").unwrap();
    assert!((2..100).contains(&rx), "{again}");
    // A vif that does not exist is an error; without a vif, every one.
    let e = vrctl(&sock, &["vif", "--clear", "99"]).unwrap_err();
    assert!(e.contains("vif --clear 99"), "{e}");
    let said = ctl(&sock, &["vif", "--clear"]);
    assert!(said.contains("every vif"), "{said}");
    let four = ctl(&sock, &["vif", "--get", "4"]);
    assert_eq!(vif_counter(&four, "RX packets:"), Some(0), "{four}");
}

/// The number after `label` in `vrctl vif` output (`RX packets:12  bytes:..`).
fn vif_counter(out: &str, label: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The CPU list (as /proc/.../status has it) and nice value (field 19 of
/// stat) of the task whose /proc directory is `dir`.
fn placement_in(dir: &Path) -> (String, i32) {
    let status = std::fs::read_to_string(dir.join("status")).unwrap();
    let cpus = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is
    // field 3, nice field 19.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    (cpus, rest.split(' ').nth(16).unwrap().parse().unwrap())
}

/// [`placement_in`] of process `pid`'s `vrouter-dp` thread.
fn dp_thread_placement(pid: u32) -> (String, i32) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "vrouter-dp" {
            return placement_in(&t.path());
        }
    }
    panic!("no vrouter-dp thread in process {pid}");
}

/// [`placement_in`] of process `pid`'s main thread, for comparison.
fn main_thread_placement(pid: u32) -> (String, i32) {
    placement_in(Path::new(&format!("/proc/{pid}")))
}

#[test]
fn the_datapath_thread_runs_where_and_as_urgently_as_it_is_told() {
    require_env!("setpriv");
    let tmp = tempfile::tempdir().unwrap();
    let mut ns = Namespaces::new();
    let host = ns.add("place");

    // Default: nice -10 on the datapath thread only, every CPU.
    let sock = tmp.path().join("run-default");
    let mut vr = Vrouter::start(&host, &sock, &tmp.path().join("default.log"), &[]);
    let pid = vr.child.0.as_ref().unwrap().id();
    let (main_cpus, main_nice) = main_thread_placement(pid);
    assert_eq!(main_nice, 0);
    assert_eq!(dp_thread_placement(pid), (main_cpus.clone(), -10));
    assert!(vr.log().contains("datapath thread placed"), "{}", vr.log());
    assert!(vr.terminate().is_some_and(|s| s.success()));

    // Given: the thread moves to CPU 0 at nice -3; the rest stay.
    let sock = tmp.path().join("run-given");
    let mut vr = Vrouter::start(
        &host,
        &sock,
        &tmp.path().join("given.log"),
        &["--datapath-cpus", "0", "--datapath-nice", "-3"],
    );
    let pid = vr.child.0.as_ref().unwrap().id();
    assert_eq!(dp_thread_placement(pid), ("0".to_string(), -3));
    assert_eq!(main_thread_placement(pid), (main_cpus, 0));
    // It still forwards and answers ksync from there.
    assert!(ctl(&sock, &["vrouter", "--info"]).contains("vrouter"));
    assert!(vr.terminate().is_some_and(|s| s.success()));
    assert_cleaned(&sock);

    // Refused: each exits non-zero, naming the option and the reason, and
    // leaves nothing behind.
    for (args, says) in [
        (
            &["--datapath-cpus", "4-2"][..],
            "--datapath-cpus: CPU range 4-2 runs backwards",
        ),
        (
            &["--datapath-cpus", "1000"][..],
            "--datapath-cpus: CPUs 1000",
        ),
        (&["--datapath-nice", "20"][..], "--datapath-nice"),
    ] {
        let sock = tmp.path().join("run-refused");
        let out = vrouter_cmd(&host, &[], &sock, args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_cleaned(&sock);
    }

    // Without CAP_SYS_NICE (root with it taken out of the bounding set):
    // the default is skipped with a warning and the node runs; a value
    // given on the command line is refused.
    const NO_NICE: &[&str] = &["setpriv", "--bounding-set=-sys_nice", "--"];
    let sock = tmp.path().join("run-no-nice");
    let mut vr = Vrouter::start_via(&host, NO_NICE, &sock, &tmp.path().join("no-nice.log"), &[]);
    let pid = vr.child.0.as_ref().unwrap().id();
    assert_eq!(dp_thread_placement(pid).1, 0);
    assert!(
        vr.log()
            .contains("the datapath thread keeps the process's priority"),
        "{}",
        vr.log()
    );
    assert!(vr.terminate().is_some_and(|s| s.success()));
    assert_cleaned(&sock);
    let out = vrouter_cmd(&host, NO_NICE, &sock, &["--datapath-nice", "-3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "nice -3 without CAP_SYS_NICE was accepted"
    );
    assert!(
        err.contains("--datapath-nice: nice -3") && err.contains("CAP_SYS_NICE"),
        "{err}"
    );
    assert_cleaned(&sock);
}
