//! A single-host node for the agent's end-to-end tests: the real `vrouter`
//! datapath in its own network namespace, the real `vrouter-agent`, and
//! containers as network namespaces joined by veth pairs. Everything is
//! driven through the VNC API and the port API, as the Docker driver does.
#![allow(dead_code, clippy::unwrap_used)]

pub mod cluster;

use serde_json::{json, Value};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix_is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for t in ["ip", "ping"] {
        if Command::new("which")
            .arg(t)
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            return Some(format!("needs {t}"));
        }
    }
    None
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
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

#[macro_export]
macro_rules! require_rig {
    () => {
        if let Some(r) = common::skip_reason() {
            common::report_skip(&format!("{}:{}", module_path!(), line!()), &r);
            return;
        }
    };
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

/// The workspace's build of another package's binary (built on demand).
pub fn workspace_bin(pkg: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().expect("exe");
    // target/<profile>/deps/<test> -> target/<profile>/<bin>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned();
    let path = dir.join(bin);
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "-p", pkg, "--bin", bin]);
        if dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        let st = c.status().expect("cargo build");
        assert!(st.success(), "building {bin}");
    });
    path
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Network namespaces and the links in them, removed on drop.
pub struct Namespaces {
    tag: String,
    names: Vec<String>,
}

impl Namespaces {
    pub fn new() -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        Namespaces {
            tag: format!("ag{}x{n}", std::process::id() % 100_000),
            names: Vec::new(),
        }
    }

    pub fn add(&mut self, what: &str) -> String {
        let name = format!("{}{what}", self.tag);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        self.names.push(name.clone());
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Option<Child>,
    pub what: &'static str,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }

    /// Wait for exit (after a signal), bounded.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        let c = self.child.as_mut()?;
        while t0.elapsed() < limit {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One node at a time: the restart tests measure loss and latency, which
/// a second node's processes on the same 2 cores would disturb.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The node: datapath + agent, with their directories and ports.
pub struct Node {
    // Fields drop in order: the processes stop, then the namespaces and
    // files go, then the next test may start.
    pub agent: Proc,
    pub vrouter: Proc,
    pub ns: Namespaces,
    pub host: String,
    pub dir: tempfile::TempDir,
    pub vnc: u16,
    pub port_api: u16,
    pub intro: u16,
    pub agent_args: Vec<String>,
    pub vrouter_args: Vec<String>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Node {
    pub fn sock_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn start(extra_agent_args: &[&str]) -> Node {
        Self::start_with(&[], extra_agent_args)
    }

    pub fn start_with(vrouter_args: &[&str], extra_agent_args: &[&str]) -> Node {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut ns = Namespaces::new();
        let host = ns.add("h");
        let dir = tempfile::tempdir().expect("tmp");
        let mut n = Node {
            agent: Proc {
                child: None,
                what: "agent",
            },
            vrouter: Proc {
                child: None,
                what: "vrouter",
            },
            ns,
            host,
            dir,
            vnc: free_port(),
            port_api: free_port(),
            intro: free_port(),
            agent_args: extra_agent_args.iter().map(|s| s.to_string()).collect(),
            vrouter_args: vrouter_args.iter().map(|s| s.to_string()).collect(),
            _serial: serial,
        };
        n.start_vrouter();
        n.start_agent();
        n.wait_ready();
        n
    }

    pub fn start_vrouter(&mut self) {
        let bin = workspace_bin("vrouter", "vrouter");
        let log = std::fs::File::create(self.dir.path().join("vrouter.log")).expect("log");
        // A killed vrouter leaves its socket behind: without this the wait
        // below ends at once and a client meets a refused connection.
        let _ = std::fs::remove_file(self.sock_dir().join("dpdk_netlink"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.host])
            .arg(bin)
            .arg("--sock-dir")
            .arg(self.sock_dir())
            .args(["--flow-entries", "65536"])
            .args(&self.vrouter_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("vrouter");
        self.vrouter.child = Some(child);
        let ksync = self.sock_dir().join("dpdk_netlink");
        let t0 = Instant::now();
        while !ksync.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "vrouter did not start: {}",
                self.log("vrouter")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_vrouter-agent"))
            .arg("--sock-dir")
            .arg(self.sock_dir())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--vnc-listen", &format!("127.0.0.1:{}", self.vnc)])
            .args(["--port-listen", &format!("127.0.0.1:{}", self.port_api)])
            .args(["--introspect-listen", &format!("127.0.0.1:{}", self.intro)])
            .args(if self.agent_args.iter().any(|a| a == "--log-level") {
                &[][..]
            } else {
                &["--log-level", "info,agent=debug"][..]
            })
            .args(&self.agent_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent");
        self.agent.child = Some(child);
    }

    pub fn wait_ready(&self) {
        let t0 = Instant::now();
        loop {
            if let Ok(v) = self.intro_get("/ksync") {
                if v["connected"] == json!(true) && v["reconciles"].as_u64().unwrap_or(0) > 0 {
                    return;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "agent not ready: {}",
                self.log("agent")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent-owned objects the datapath holds now (read over ksync).
    pub fn datapath_state(&self) -> agent::program::State {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut k = agent::ksync::KsyncClient::connect(&self.sock_dir().join("dpdk_netlink"))
                .await
                .unwrap();
            agent::program::dump(
                &mut k,
                &(0..64).collect::<std::collections::BTreeSet<u16>>(),
            )
            .await
            .unwrap()
        })
    }

    pub fn log(&self, what: &str) -> String {
        let s = std::fs::read_to_string(self.dir.path().join(format!("{what}.log")))
            .unwrap_or_default();
        let n = s.len().saturating_sub(6000);
        s.get(n..).unwrap_or("").to_string()
    }

    // ---- HTTP ---------------------------------------------------------

    pub fn vnc_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.vnc)
    }

    pub fn intro_get(&self, path: &str) -> Result<Value, String> {
        http(
            "GET",
            &format!("http://127.0.0.1:{}{path}", self.intro),
            None,
        )
        .and_then(|(s, b)| {
            if s == 200 {
                serde_json::from_str(&b).map_err(|e| e.to_string())
            } else {
                Err(b)
            }
        })
    }

    pub fn metrics(&self) -> String {
        http(
            "GET",
            &format!("http://127.0.0.1:{}/metrics", self.intro),
            None,
        )
        .map(|(_, b)| b)
        .unwrap_or_default()
    }

    /// A VNC call: (status, body).
    pub fn vnc(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (s, b) = http(
            method,
            &self.vnc_url(path),
            body.map(|b| b.to_string()).as_deref(),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (s, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }

    pub fn vnc_raw(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http(method, &self.vnc_url(path), Some(body)).expect("http")
    }

    /// POST `/<ty>s` and return the created object's uuid.
    pub fn create(&self, ty: &str, obj: Value) -> String {
        let (s, b) = self.vnc("POST", &format!("/{ty}s"), Some(&json!({ ty: obj })));
        assert_eq!(s, 200, "create {ty}: {b}");
        b[ty]["uuid"].as_str().expect("uuid").to_string()
    }

    pub fn read(&self, ty: &str, uuid: &str) -> Value {
        let (s, b) = self.vnc("GET", &format!("/{ty}/{uuid}"), None);
        assert_eq!(s, 200, "read {ty} {uuid}: {b}");
        b[ty].clone()
    }

    pub fn port_api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http(
            method,
            &format!("http://127.0.0.1:{}{path}", self.port_api),
            body,
        )
        .expect("port api")
    }

    // ---- config helpers ---------------------------------------------------

    pub fn project(&self, name: &str) -> String {
        self.create(
            "project",
            json!({"fq_name": ["default-domain", name], "parent_type": "domain"}),
        )
    }

    /// A VN with one subnet `prefix/plen` in project `proj`.
    pub fn vn(&self, proj: &str, name: &str, prefix: &str, plen: u8) -> String {
        self.vn_with(proj, name, prefix, plen, json!({}))
    }

    /// [`Node::vn`] with more of the VN's fields (`extra`, an object).
    pub fn vn_with(&self, proj: &str, name: &str, prefix: &str, plen: u8, extra: Value) -> String {
        let mut obj = json!({
            "fq_name": ["default-domain", proj, name],
            "parent_type": "project",
            "network_ipam_refs": [{
                "to": ["default-domain", "default-project", "default-network-ipam"],
                "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": prefix, "ip_prefix_len": plen}}]}
            }]
        });
        if let (Some(o), Value::Object(more)) = (obj.as_object_mut(), extra) {
            o.extend(more);
        }
        self.create("virtual-network", obj)
    }
}

/// Minimal HTTP/1.1 client over TCP (tests only): (status, body).
pub fn http(method: &str, url: &str, body: Option<&str>) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or("url")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(hostport).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("status")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A container: a netns with `eth0`, the host side `tap…` in the node's
/// namespace. Returns the host-side name.
pub struct Container {
    pub ns: String,
    pub tap: String,
    pub vmi: String,
    pub mac: String,
    pub ip: Option<Ipv4Addr>,
}

pub fn mk_container(node: &mut Node, tag: &str, vmi: &str, mac: &str) -> Container {
    let ns = node.ns.add(tag);
    let tap = format!("tap{}", &vmi[..11]);
    let tmp = format!("t{}{}", tag, std::process::id() % 10000);
    ip(&[
        "-n", &node.host, "link", "add", "name", &tap, "type", "veth", "peer", "name", &tmp,
    ]);
    ip(&["-n", &node.host, "link", "set", &tmp, "netns", &ns]);
    ip(&["-n", &ns, "link", "set", &tmp, "name", "eth0"]);
    ip(&["-n", &ns, "link", "set", "eth0", "address", mac, "up"]);
    ip(&["-n", &node.host, "link", "set", &tap, "up"]);
    Container {
        ns,
        tap,
        vmi: vmi.to_string(),
        mac: mac.to_string(),
        ip: None,
    }
}

/// What the Docker driver does for one endpoint: VM, VMI (with `sgs`),
/// instance IP, a veth, and the port API call. Returns the container.
pub fn attach(
    node: &mut Node,
    tag: &str,
    proj: &str,
    vn_uuid: &str,
    vn_fq: &[&str],
    sgs: &[Vec<String>],
) -> Container {
    let vm = node.create(
        "virtual-machine",
        json!({"fq_name": [format!("vm-{tag}-{}", std::process::id())]}),
    );
    let sg_refs: Vec<Value> = sgs.iter().map(|fq| json!({"to": fq})).collect();
    let vmi = node.create(
        "virtual-machine-interface",
        json!({
            "fq_name": ["default-domain", proj, format!("vmi-{tag}")],
            "parent_type": "project",
            "virtual_network_refs": [{"to": vn_fq, "uuid": vn_uuid}],
            "virtual_machine_refs": [{"uuid": vm, "to": [format!("vm-{tag}-{}", std::process::id())]}],
            "security_group_refs": sg_refs,
        }),
    );
    let vmi_obj = node.read("virtual-machine-interface", &vmi);
    let mac = vmi_obj["virtual_machine_interface_mac_addresses"]["mac_address"][0]
        .as_str()
        .expect("mac")
        .to_string();
    let iip = node.create(
        "instance-ip",
        json!({
            "fq_name": [format!("iip-{tag}-{}", std::process::id())],
            "virtual_network_refs": [{"to": vn_fq, "uuid": vn_uuid}],
            "virtual_machine_interface_refs": [{"uuid": vmi}],
        }),
    );
    let addr: Ipv4Addr = node.read("instance-ip", &iip)["instance_ip_address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("v4");
    let mut c = mk_container(node, tag, &vmi, &mac);
    c.ip = Some(addr);
    let body = json!({
        "id": vmi, "instance-id": vm, "vn-id": vn_uuid, "vm-project-id": "",
        "mac-address": mac, "ip-address": addr.to_string(), "ip6-address": "",
        "system-name": c.tap, "display-name": tag, "type": 0,
        "rx-vlan-id": -1, "tx-vlan-id": -1,
    });
    let (s, b) = node.port_api("POST", "/port", Some(&body.to_string()));
    assert_eq!(s, 200, "port add: {b}");
    c
}

/// Give the container its address statically (with the gateway route).
pub fn static_ip(c: &Container, plen: u8, gw: &str) {
    let a = format!("{}/{plen}", c.ip.expect("ip"));
    ip(&["-n", &c.ns, "addr", "add", &a, "dev", "eth0"]);
    ip(&["-n", &c.ns, "route", "add", "default", "via", gw]);
}

/// `ping -c count` from `ns` to `dst`: replies received.
pub fn ping(ns: &str, dst: &str, count: u32, interval: &str) -> u32 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "1",
            dst,
        ])
        .output()
        .expect("ping");
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines()
        .find(|l| l.contains("received"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|x| x.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Retry `ping -c 1` until it answers or `limit` passes.
pub fn ping_until(ns: &str, dst: &str, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if ping(ns, dst, 1, "0.2") == 1 {
            return true;
        }
    }
    false
}

/// A TCP listener in `ns` on `port` answering one line per connection
/// (busybox nc), killed on drop.
pub struct TcpServer(Proc);

pub fn tcp_server(ns: &str, port: u16) -> TcpServer {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "busybox",
            "nc",
            "-ll",
            "-p",
            &port.to_string(),
            "-e",
            "echo",
            "hello",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nc -l");
    std::thread::sleep(Duration::from_millis(200));
    TcpServer(Proc {
        child: Some(child),
        what: "nc",
    })
}

/// Whether a TCP connection from `ns` to `dst:port` gets the server's line
/// within 3 s.
pub fn tcp_ok(ns: &str, dst: &str, port: u16) -> bool {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "busybox",
            "nc",
            "-w",
            "3",
            dst,
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("nc");
    String::from_utf8_lossy(&out.stdout).contains("hello")
}
