//! Helpers shared by the end-to-end tests (`netns.rs`, `overlay.rs`):
//! namespaces with a cleanup guard, containers on veth, router programming
//! the way the agent would do it over ksync, and traffic (ping, TCP) run
//! from threads that entered a namespace.
//!
//! Every item is used by some test file but not by all, hence the
//! `dead_code` allowance.

#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use dp_core::nexthop::{AF_BRIDGE, AF_INET};
use dp_core::route::rt_flags;
use dp_core::{
    Nexthop, NhFlags, NhKind, Prefix, RouteData, Router, RouterConfig, VifConfig, VifFlags,
    VifType, VROUTER_MAC,
};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vrouter::linux::{self, OverlayGuard};
use vrouter::{Datapath, DatapathConfig};

// ---- environment ---------------------------------------------------------

/// Why the e2e tests cannot run here (not root, or a tool in `tools`
/// besides `ip` is missing), if so.
pub fn skip_reason(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, AF_PACKET)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("iproute2 `ip` not found".into()),
    }
    tools
        .iter()
        .find(|t| !have_tool(t))
        .map(|t| format!("`{t}` not found (install it: see scripts/lib/deps.sh)"))
}

/// `tool` runs (`tool --version` or `-v` exits, whatever the status).
pub fn have_tool(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// Report a test that cannot run here. The line goes straight to the
/// process's stderr (libtest captures only the print macros, and hides
/// what a passing test printed), so every skip is seen, and the test
/// command counts the `SKIP:` lines. Under `CI=true` a skip is a failure:
/// the test command installs every tool, so a skip there is a broken step.
pub fn report_skip(test: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: would SKIP, which CI=true does not allow: {reason}");
    }
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("SKIP: {test}: {reason}\n"),
    );
}

/// Return from the test with a visible `SKIP:` line ([`report_skip`]) when
/// the environment lacks root, `ip`, or one of the listed tools.
macro_rules! require_env {
    ($($tool:expr),* $(,)?) => {
        if let Some(r) = $crate::common::skip_reason(&[$($tool),*]) {
            $crate::common::report_skip(&format!("{}:{}", module_path!(), line!()), &r);
            return;
        }
    };
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Network namespaces deleted on drop (also on panic). Namespaces left by
/// a killed earlier run (owner pid gone) are removed on creation.
pub struct Namespaces {
    names: Vec<String>,
    prefix: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Namespaces {
    pub fn new() -> Namespaces {
        reap_stale();
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Namespaces {
            names: Vec::new(),
            prefix: format!("vrt{pid}x{n}"),
        }
    }

    pub fn add(&mut self, tag: &str) -> String {
        let name = format!("{}-{tag}", self.prefix);
        ip(&["netns", "add", &name]);
        self.names.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

pub fn reap_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("vrt") else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Run `f` in a new thread inside namespace `ns`.
pub fn in_ns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        linux::enter_netns(&ns).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

pub fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A container: namespace `ns` whose `eth0` pairs with `host_if` in `host`.
pub fn container(host: &str, host_if: &str, ns: &str, mac: [u8; 6], ip4: [u8; 4], mtu: u16) {
    ip(&[
        "-n", host, "link", "add", "name", host_if, "type", "veth", "peer", "name", "eth0",
        "netns", ns,
    ]);
    ip(&["-n", host, "link", "set", host_if, "up"]);
    let m = mac_str(mac);
    let mtu = mtu.to_string();
    ip(&[
        "-n", ns, "link", "set", "eth0", "address", &m, "mtu", &mtu, "up",
    ]);
    let a = format!("{}/24", Ipv4Addr::from(ip4));
    ip(&["-n", ns, "addr", "add", &a, "dev", "eth0"]);
}

// ---- router programming (what the agent would send over ksync) ----------

pub const DISCARD_NH: u32 = 0;
pub const RECEIVE_NH: u32 = 1;

pub struct Vm {
    pub vif: u16,
    pub name: &'static str,
    pub vrf: u16,
    pub mac: [u8; 6],
    pub ip: [u8; 4],
}

/// Next hop and label ids of a local VM: L3 nh `10 + 2*vif`, L2 nh + 1;
/// L3 label `16 + 2*vif`.
pub fn vm_nh(vif: u16) -> u32 {
    10 + 2 * vif as u32
}
pub fn vm_label(vif: u16) -> u32 {
    16 + 2 * vif as u32
}

pub fn base_router() -> Router {
    let mut r = Router::new(RouterConfig::small()).unwrap();
    for (id, kind) in [(DISCARD_NH, NhKind::Discard), (RECEIVE_NH, NhKind::Receive)] {
        r.nh_add(Nexthop {
            id,
            family: AF_INET,
            flags: NhFlags::VALID,
            vrf: 0,
            kind,
        })
        .unwrap();
    }
    r
}

pub fn vif_cfg(idx: u16, t: VifType, name: &str) -> VifConfig {
    let mut c = VifConfig::new(idx, t);
    c.name = dp_core::vif::heapless_name::Name::new(name).unwrap();
    c
}

/// Program a local VM: vif, interface next hops, label, /32 route whose
/// proxy-ARP answer is the vRouter MAC (so traffic is routed, L3).
pub fn add_vm(dp: &Datapath, vm: &Vm) {
    add_vm_with(dp, vm, VifFlags::empty());
}

/// [`add_vm`] with `extra` vif flags (e.g. policy: flows for everything).
pub fn add_vm_with(dp: &Datapath, vm: &Vm, extra: VifFlags) {
    let mut c = vif_cfg(vm.vif, VifType::Virtual, vm.name);
    c.mac = VROUTER_MAC;
    c.ip = vm.ip;
    c.vrf = vm.vrf;
    c.nh_id = vm_nh(vm.vif);
    c.flags = VifFlags::L3_ENABLED | VifFlags::L2_ENABLED | extra;
    dp.vif_add(c).unwrap();
    let mut encap = [0u8; 14];
    encap[0..6].copy_from_slice(&vm.mac);
    encap[6..12].copy_from_slice(&VROUTER_MAC);
    encap[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    for (id, family) in [(vm_nh(vm.vif), AF_INET), (vm_nh(vm.vif) + 1, AF_BRIDGE)] {
        dp.nh_add(Nexthop {
            id,
            family,
            flags: NhFlags::VALID,
            vrf: vm.vrf,
            kind: NhKind::Encap { oif: vm.vif, encap },
        })
        .unwrap();
    }
    dp.mpls_add(vm_label(vm.vif), vm_nh(vm.vif)).unwrap();
    dp.route_add(
        vm.vrf,
        Prefix::V4(vm.ip, 32),
        RouteData {
            nh: vm_nh(vm.vif),
            label: vm_label(vm.vif),
            flags: rt_flags::LABEL_VALID | rt_flags::ARP_PROXY,
            mac: [0; 6],
        },
    )
    .unwrap();
}

/// Start a datapath inside `host_ns` (ports are opened there) with the
/// overlay guard claimed in that namespace.
pub fn start_dp(
    host_ns: &str,
    setup: impl FnOnce(&Datapath) + Send + 'static,
) -> (Datapath, OverlayGuard) {
    in_ns(host_ns, move || {
        let guard = OverlayGuard::open();
        let dir = std::env::temp_dir().join(format!("vrt-sock-{}", std::process::id()));
        let dp = linux::start(base_router(), dir, DatapathConfig::default()).unwrap();
        setup(&dp);
        (dp, guard)
    })
}

// ---- traffic inside namespaces --------------------------------------------

/// ICMP echo from namespace `ns` to `dst`: RTTs of the replies received.
pub fn ping(ns: &str, dst: [u8; 4], count: u16, wait: Duration) -> Vec<Duration> {
    in_ns(ns, move || {
        // SAFETY: plain socket(2); the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        assert!(fd >= 0, "raw ICMP socket");
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: valid option pointer and size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes(dst);
        let id = (std::process::id() & 0xffff) as u16;
        let mut rtts = Vec::new();
        for seq in 1..=count {
            let mut req = vec![8u8, 0, 0, 0];
            req.extend_from_slice(&id.to_be_bytes());
            req.extend_from_slice(&seq.to_be_bytes());
            req.extend((0..56).map(|i| i as u8));
            let c = packet::checksum::sum(&req);
            req[2..4].copy_from_slice(&(!c).to_be_bytes());
            let t0 = Instant::now();
            // SAFETY: valid buffer and address.
            unsafe {
                libc::sendto(
                    fd,
                    req.as_ptr().cast(),
                    req.len(),
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                );
            }
            while t0.elapsed() < wait {
                let mut buf = [0u8; 2048];
                // SAFETY: valid buffer.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 28 {
                    continue;
                }
                let ihl = (buf[0] & 0xf) as usize * 4;
                let icmp = &buf[ihl..n as usize];
                if icmp[0] == 0
                    && icmp[4..6] == id.to_be_bytes()
                    && icmp[6..8] == seq.to_be_bytes()
                    && buf[12..16] == dst
                {
                    rtts.push(t0.elapsed());
                    break;
                }
            }
        }
        // SAFETY: we own fd.
        unsafe { libc::close(fd) };
        rtts
    })
}

/// TCP: a listener in `server_ns` on `addr`, a client in `client_ns`
/// sending `bytes` of a pattern; returns the verified byte count and the
/// goodput in Gbit/s.
pub fn tcp_transfer(server_ns: &str, client_ns: &str, addr: [u8; 4], bytes: usize) -> (usize, f64) {
    let sa = SocketAddrV4::new(Ipv4Addr::from(addr), 5201);
    let listener = in_ns(server_ns, move || TcpListener::bind(sa).unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        let mut ok = true;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for (i, b) in buf[..n].iter().enumerate() {
                        ok &= *b == ((total + i) % 251) as u8;
                    }
                    total += n;
                }
                Err(e) => panic!("server read after {total} bytes: {e}"),
            }
        }
        assert!(ok, "payload corrupted");
        total
    });
    let t0 = Instant::now();
    in_ns(client_ns, move || {
        let mut s = TcpStream::connect_timeout(&sa.into(), Duration::from_secs(5)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let chunk: Vec<u8> = (0..251 * 1024).map(|i| (i % 251) as u8).collect();
        let mut sent = 0;
        while sent < bytes {
            let n = chunk.len().min(bytes - sent);
            s.write_all(&chunk[..n]).unwrap();
            sent += n;
        }
    });
    let got = server.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    (got, got as f64 * 8.0 / secs / 1e9)
}

pub fn tcp_connect_fails(ns: &str, addr: [u8; 4]) -> bool {
    let sa = SocketAddrV4::new(Ipv4Addr::from(addr), 5202);
    in_ns(ns, move || {
        TcpStream::connect_timeout(&sa.into(), Duration::from_millis(800)).is_err()
    })
}

/// Counter `name` of the `prefix` lines (`"Udp:"`, `"TcpExt:"`) in
/// `/proc/net/<file>` (`snmp`, `netstat`) of namespace `ns`.
pub fn net_counter(ns: &str, file: &'static str, prefix: &'static str, name: &'static str) -> u64 {
    in_ns(ns, move || {
        let path = format!("/proc/thread-self/net/{file}");
        let s = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut lines = s.lines().filter(|l| l.starts_with(prefix));
        let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
            panic!("no {prefix} lines in {path}: {s}");
        };
        h.split_whitespace()
            .zip(v.split_whitespace())
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} {name} in {path}"))
    })
}

/// `Icmp: OutDestUnreachs` of namespace `ns`.
pub fn icmp_out_unreach(ns: &str) -> u64 {
    net_counter(ns, "snmp", "Icmp:", "OutDestUnreachs")
}

/// Bytes of the TCP transfers: `VRT_TCP_MB` (MiB) or the default.
pub fn tcp_bytes(default_mb: usize) -> usize {
    std::env::var("VRT_TCP_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_mb)
        .clamp(1, 4096)
        << 20
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

// ---- processes and captures -------------------------------------------------

/// A child process killed (and reaped) on drop, also when a test fails.
pub struct ChildGuard(pub Option<std::process::Child>);

impl ChildGuard {
    /// Wait for the child to exit, at most `limit`; kill it after that.
    pub fn wait_bounded(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.0.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    self.0 = None;
                    return Some(s);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.0 = None;
                    return None;
                }
            }
        }
    }

    /// Send `sig` to the child (a process we started, by its pid).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.0 {
            // SAFETY: kill(2) on our own child's pid, which is not reaped
            // yet (so not reused).
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `tshark` capture running in a namespace, bounded in packets and time,
/// writing a pcap file that is removed on drop.
pub struct Capture {
    child: ChildGuard,
    pub file: std::path::PathBuf,
}

impl Capture {
    /// Capture on `iface` in namespace `ns` with the BPF `filter`; returns
    /// once tshark reports that it is capturing.
    pub fn start(ns: &str, iface: &str, filter: &str) -> Capture {
        let file = std::env::temp_dir().join(format!("{ns}-{iface}.pcap"));
        let _ = std::fs::remove_file(&file);
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "tshark", "-n", "-q", "-i", iface, "-f"])
            .arg(filter)
            // Headers only; bounded in packets and seconds.
            .args(["-s", "256", "-c", "400000", "-a", "duration:120", "-w"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tshark");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("Capturing on") {
                    let _ = tx.send(());
                }
            }
        });
        let cap = Capture {
            child: ChildGuard(Some(child)),
            file,
        };
        rx.recv_timeout(Duration::from_secs(20))
            .expect("tshark did not start capturing");
        // dumpcap reports before its first read; give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        cap
    }

    /// Stop capturing (SIGINT: tshark finishes the file) and return the
    /// decoded packets as tab-separated `fields` (occurrences joined by
    /// commas), one line per packet.
    pub fn stop_and_read(&mut self, fields: &[&str]) -> Vec<Vec<String>> {
        // Let the last frames of the test reach the capture.
        std::thread::sleep(Duration::from_millis(300));
        self.child.signal(libc::SIGINT);
        self.child.wait_bounded(Duration::from_secs(20));
        let mut cmd = Command::new("tshark");
        cmd.args(["-n", "-r"]).arg(&self.file).args([
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
        ]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let out = cmd.output().expect("tshark -r");
        assert!(
            out.status.success(),
            "tshark -r: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// The full decode (`tshark -V`) of the first `count` packets.
    pub fn verbose(&self, count: usize) -> String {
        let out = Command::new("tshark")
            .args(["-n", "-V", "-c", &count.to_string(), "-r"])
            .arg(&self.file)
            .output()
            .expect("tshark -V");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.child.signal(libc::SIGINT);
        self.child.wait_bounded(Duration::from_secs(5));
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Fabric addresses and MACs of the two compute-host namespaces.
pub const FAB_A: [u8; 4] = [192, 0, 2, 1];
pub const FAB_B: [u8; 4] = [192, 0, 2, 2];
pub const FAB_MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const FAB_MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Two host namespaces joined by a veth `fab` with the fabric addresses.
pub fn fabric(ns: &mut Namespaces) -> (String, String) {
    let ha = ns.add("ha");
    let hb = ns.add("hb");
    ip(&[
        "-n", &ha, "link", "add", "name", "fab", "type", "veth", "peer", "name", "fab", "netns",
        &hb,
    ]);
    for (h, mac, a) in [(&ha, FAB_MAC_A, FAB_A), (&hb, FAB_MAC_B, FAB_B)] {
        ip(&[
            "-n",
            h,
            "link",
            "set",
            "fab",
            "address",
            &mac_str(mac),
            "up",
        ]);
        ip(&[
            "-n",
            h,
            "addr",
            "add",
            &format!("{}/24", std::net::Ipv4Addr::from(a)),
            "dev",
            "fab",
        ]);
    }
    (ha, hb)
}
