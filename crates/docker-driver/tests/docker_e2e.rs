//! End to end with a real dockerd and the real node: the `vrouter`
//! datapath, the `vrouter-agent` (its VNC config API and port API) and the
//! `contrail-docker-driver` binary. Containers get the VN's addresses and
//! exchange real packets through the vrouter; bad options fail with clear
//! docker errors and change nothing; removal leaves no VNC object, veth or
//! port file; the driver survives kill -9 and dockerd a restart.
//!
//! Where things run: dockerd, the driver and the vrouter all in the root
//! network namespace. The driver creates the veth pair in its own netns
//! and libnetwork moves the container side from dockerd's netns into the
//! sandbox, so dockerd and the driver must share one; the vrouter attaches
//! to the host side `tap…` by name, so it must be in that same netns too.
//! Running dockerd in a private netns would hide the agent's loopback API
//! from the test, so the root netns it is. The vrouter is started without
//! `--fabric`: it only opens the `tap…` interfaces the agent gives it, and
//! its channels live in a temporary `--sock-dir`. dockerd runs with
//! `--ip-forward=false --iptables=false --bridge=none` (scripts/lib/docker.sh)
//! so the host's settings are untouched; container frames reach the host
//! stack only as PACKET_OTHERHOST (the vrouter's MAC), never forwarded.
//!
//! Needs root, dockerd (Debian docker.io), busybox-static and iproute2;
//! prints SKIP otherwise. Everything is cleaned up by [`Rig`]'s Drop, also
//! when an assertion fails.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vnc_client::{Client, ListQuery};

const PLUGIN_DIR: &str = "/run/docker/plugins";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn step(s: &str) {
    eprintln!("\n=== {s}");
}

/// `bash -c` with scripts/lib/docker.sh sourced and `$D` = the docker dir.
fn sh(dir: &Path, script: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source {}/scripts/lib/docker.sh; {script}",
            root().display()
        ))
        .env("D", dir)
        .output()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Builds the vrouter and agent binaries of this workspace (once), next to
/// this test's own target directory.
fn node_bins() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args([
        "build",
        "-p",
        "vrouter",
        "--bin",
        "vrouter",
        "-p",
        "vrouter-agent",
        "--bin",
        "vrouter-agent",
    ]);
    if dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    assert!(
        c.status().unwrap().success(),
        "building vrouter + vrouter-agent"
    );
    (dir.join("vrouter"), dir.join("vrouter-agent"))
}

fn stop(child: &mut Option<Child>, sig: &str) {
    if let Some(mut c) = child.take() {
        let _ = Command::new("kill")
            .args([sig, &c.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Our host-side veths: `tap…` with ifalias `contrail-docker:<vmi>`.
fn our_veths() -> Vec<String> {
    let o = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("alias contrail-docker:"))
        .filter_map(|l| {
            let name = l.split(':').nth(1)?.trim().split('@').next()?;
            Some(name.to_string())
        })
        .collect();
    v.sort();
    v
}

/// What must not change on a failed command, and must be empty at the end.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    vms: Vec<String>,
    vmis: Vec<String>,
    iips: Vec<String>,
    /// Annotation keys the driver puts on VNs (`docker-network:`, `docker-pool:`).
    vn_marks: Vec<String>,
    veths: Vec<String>,
    port_files: Vec<String>,
}

struct Rig {
    dir: PathBuf,
    rt: tokio::runtime::Runtime,
    vnc: Client,
    vnc_port: u16,
    port_api: u16,
    intro: u16,
    vrouter: Option<Child>,
    agent: Option<Child>,
    driver: Option<Child>,
    docker_started: bool,
}

/// This test thread's own view of [`PLUGIN_DIR`]: a private mount
/// namespace (inherited by every process the thread starts: dockerd, the
/// driver) in which an empty directory of the test is bind-mounted over
/// `/run/docker/plugins`, where dockerd looks for remote plugins. Another
/// Contrail driver serving the host's `Contrail.sock` (a running node, a
/// parallel run) is then neither in the test's way nor touched by it, and
/// nothing the test makes there reaches the host. Mount namespaces are per
/// thread: `unshare(CLONE_NEWNS)` here does not move the rest of the test
/// process.
struct PrivatePluginDir {
    /// Created on the host for the mount point (removed on drop).
    made: Vec<PathBuf>,
}

impl PrivatePluginDir {
    fn enter(backing: &Path) -> Result<PrivatePluginDir, String> {
        fn cstr(p: &Path) -> std::ffi::CString {
            std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
        }
        // SAFETY: plain syscalls on this thread; the strings outlive them.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(format!(
                    "unshare(CLONE_NEWNS): {}",
                    std::io::Error::last_os_error()
                ));
            }
            // Our mounts must not propagate back to the host.
            let root = cstr(Path::new("/"));
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(format!(
                    "make / private: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        let made: Vec<PathBuf> = ["/run/docker", PLUGIN_DIR]
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
        std::fs::create_dir_all(PLUGIN_DIR).map_err(|e| format!("mkdir {PLUGIN_DIR}: {e}"))?;
        std::fs::create_dir_all(backing)
            .map_err(|e| format!("mkdir {}: {e}", backing.display()))?;
        let (src, dst) = (cstr(backing), cstr(Path::new(PLUGIN_DIR)));
        // SAFETY: as above.
        if unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        } != 0
        {
            return Err(format!(
                "bind {PLUGIN_DIR}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(PrivatePluginDir { made })
    }
}

impl Drop for PrivatePluginDir {
    fn drop(&mut self) {
        let dst = std::ffi::CString::new(PLUGIN_DIR).unwrap();
        // SAFETY: unmounts our bind mount in this thread's namespace.
        unsafe { libc::umount2(dst.as_ptr(), libc::MNT_DETACH) };
        for d in self.made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Rig {
    fn sock_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }
    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
    fn docker_dir(&self) -> PathBuf {
        self.dir.join("docker")
    }
    fn log(&self, what: &str) -> String {
        let s = std::fs::read_to_string(self.dir.join(format!("{what}.log"))).unwrap_or_default();
        let n = s.len().saturating_sub(4000);
        s.get(n..).unwrap_or("").to_string()
    }

    fn start_node(&mut self) {
        let (vrouter, agent) = node_bins();
        std::fs::create_dir_all(self.sock_dir()).unwrap();
        let log = std::fs::File::create(self.dir.join("vrouter.log")).unwrap();
        self.vrouter = Some(
            Command::new(vrouter)
                .arg("--sock-dir")
                .arg(self.sock_dir())
                .args(["--flow-entries", "65536"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let ksync = self.sock_dir().join("dpdk_netlink");
        let t = Instant::now();
        while !ksync.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "vrouter did not start: {}",
                self.log("vrouter")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::File::create(self.dir.join("agent.log")).unwrap();
        self.agent = Some(
            Command::new(agent)
                .arg("--sock-dir")
                .arg(self.sock_dir())
                .arg("--state-dir")
                .arg(self.state_dir())
                .args(["--vnc-listen", &format!("127.0.0.1:{}", self.vnc_port)])
                .args(["--port-listen", &format!("127.0.0.1:{}", self.port_api)])
                .args(["--introspect-listen", &format!("127.0.0.1:{}", self.intro)])
                .args(["--log-level", "info"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let intro = Client::new(&format!("http://127.0.0.1:{}", self.intro), None).unwrap();
        let t = Instant::now();
        loop {
            let ready = self
                .rt
                .block_on(intro.call(hyper::Method::GET, "/ksync", None))
                .is_ok_and(|v| {
                    v["connected"] == json!(true) && v["reconciles"].as_u64().unwrap_or(0) > 0
                });
            if ready {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "agent not ready: {}",
                self.log("agent")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_driver(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("driver.log"))
            .unwrap();
        self.driver = Some(
            Command::new(env!("CARGO_BIN_EXE_contrail-docker-driver"))
                .args(["--vnc-url", &format!("http://127.0.0.1:{}", self.vnc_port)])
                .args([
                    "--agent-url",
                    &format!("http://127.0.0.1:{}", self.port_api),
                ])
                .args(["--plugin-dir", PLUGIN_DIR, "--host-name", "e2e-host"])
                .args(["--reconcile-interval", "0"])
                .env("RUST_LOG", "docker_driver=debug,info")
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let sock = Path::new(PLUGIN_DIR).join("Contrail.sock");
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "driver did not start: {}",
                self.log("driver")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!(
                "unix://{}/docker.sock",
                self.docker_dir().display()
            ))
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {}: {}\ndriver log: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr),
            self.log("driver")
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The command fails with `why` in docker's message and changes nothing.
    fn fails(&self, args: &[&str], why: &str) {
        let before = self.footprint();
        let o = self.docker(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "docker {} should fail", args.join(" "));
        assert!(
            err.contains(why),
            "docker {}: want {why:?} in: {err}",
            args.join(" ")
        );
        if args.first() == Some(&"run") {
            // The container was created before its network failed.
            let _ = self.docker(&["rm", "-f", "bad"]);
        }
        assert_eq!(
            self.footprint(),
            before,
            "docker {} changed something",
            args.join(" ")
        );
        eprintln!(
            "ok (nothing changed): docker {} -> {}",
            args.join(" "),
            err.trim()
        );
    }

    fn inspect(&self, what: &str, fmt: &str) -> String {
        self.ok(&["inspect", "-f", fmt, what])
    }

    fn ip_on(&self, c: &str, net: &str) -> String {
        let ip = self.inspect(
            c,
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        );
        assert!(!ip.is_empty(), "{c} has no address on {net}");
        ip
    }

    /// `from` pings `ip` within a few seconds (the first packet sets up
    /// ARP and the flow).
    fn pings(&self, from: &str, ip: &str) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(8) {
            let o = self.docker(&["exec", from, "ping", "-c", "1", "-W", "1", ip]);
            if o.status.success() {
                return true;
            }
        }
        false
    }

    fn ping_ok(&self, from: &str, ip: &str) {
        assert!(
            self.pings(from, ip),
            "{from} cannot ping {ip}\nagent log: {}",
            self.log("agent")
        );
        let o = self.docker(&["exec", from, "ping", "-c", "3", "-i", "0.2", "-W", "1", ip]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("3 packets received"), "{from} -> {ip}: {out}");
        eprintln!("ok: {from} pings {ip} (3/3)");
    }

    fn ping_blocked(&self, from: &str, ip: &str) {
        let o = self.docker(&["exec", from, "ping", "-c", "3", "-i", "0.2", "-W", "1", ip]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !o.status.success() && out.contains(" 0 packets received"),
            "{from} must not reach {ip}: {out}"
        );
        eprintln!("ok: {from} cannot reach {ip} (0/3)");
    }

    /// A TCP exchange: `server` answers "hello" on 5001, `client` reads it.
    fn tcp_ok(&self, client: &str, server: &str, ip: &str) {
        self.ok(&[
            "exec", "-d", server, "nc", "-ll", "-p", "5001", "-e", "echo", "hello",
        ]);
        let t = Instant::now();
        loop {
            let o = self.docker(&["exec", client, "nc", "-w", "3", ip, "5001"]);
            if String::from_utf8_lossy(&o.stdout).contains("hello") {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(8),
                "TCP {client} -> {ip}:5001: {} {}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("ok: TCP {client} -> {server} ({ip}:5001) got \"hello\"");
    }

    fn list(&self, ty: &str) -> Vec<Value> {
        let q = ListQuery {
            detail: true,
            ..ListQuery::default()
        };
        self.rt.block_on(self.vnc.list(ty, &q)).unwrap()
    }

    fn names(&self, ty: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .list(ty)
            .iter()
            .map(|o| vnc_client::fq_name_of(o).join(":"))
            .collect();
        v.sort();
        v
    }

    fn footprint(&self) -> Footprint {
        let mut vn_marks: Vec<String> = self
            .list("virtual-network")
            .iter()
            .flat_map(|v| {
                let name = vnc_client::fq_name_of(v).join(":");
                v.pointer("/annotations/key_value_pair")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(move |kv| {
                        let k = kv["key"].as_str()?.to_string();
                        k.starts_with("docker-").then(|| format!("{name} {k}"))
                    })
            })
            .collect();
        vn_marks.sort();
        Footprint {
            vms: self.names("virtual-machine"),
            vmis: self.names("virtual-machine-interface"),
            iips: self.names("instance-ip"),
            vn_marks,
            veths: our_veths(),
            port_files: common::port_files(&self.state_dir().join("ports"))
                .iter()
                .map(|p| p["system-name"].as_str().unwrap_or_default().to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }

    /// `n` endpoints: n of each VNC object, n veths each with its port file.
    fn endpoints(&self, n: usize, why: &str) -> Footprint {
        let f = self.footprint();
        assert_eq!(
            (f.vms.len(), f.vmis.len(), f.iips.len()),
            (n, n, n),
            "{why}: VM/VMI/IIP: {f:#?}"
        );
        assert_eq!(f.veths.len(), n, "{why}: veths {f:#?}");
        assert_eq!(f.port_files, f.veths, "{why}: a port file per veth");
        f
    }

    fn restart_dockerd(&self) {
        let o = sh(
            &self.docker_dir(),
            "p=\"$(cat \"$D/docker.pid\")\"; kill -TERM \"$p\"; \
             for i in $(seq 150); do kill -0 \"$p\" 2>/dev/null || break; sleep 0.2; done; \
             ! kill -0 \"$p\" 2>/dev/null; docker_start \"$D\"; docker_wait \"$D\" 60",
        );
        assert!(
            o.status.success(),
            "dockerd restart: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if self.docker_started {
            // With the driver still up, so docker's endpoint deletes reach it.
            if self.driver.is_some() {
                let ids = self.docker(&["ps", "-aq"]);
                for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                    let _ = self.docker(&["rm", "-f", id]);
                }
                for n in ["blue", "blue9", "red"] {
                    let _ = self.docker(&["network", "rm", n]);
                }
            }
            let _ = sh(&self.docker_dir(), "docker_stop \"$D\"");
        }
        stop(&mut self.driver, "-TERM");
        stop(&mut self.agent, "-TERM");
        stop(&mut self.vrouter, "-TERM");
        for v in our_veths() {
            let _ = Command::new("ip").args(["link", "del", &v]).output();
        }
        let _ = std::fs::remove_file(Path::new(PLUGIN_DIR).join("Contrail.sock"));
        if std::env::var_os("KEEP_E2E").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {}", self.dir.display());
        }
    }
}

fn skip_reason() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
        });
    if uid != Some(0) {
        return Some("needs root".into());
    }
    for t in ["dockerd", "docker", "ip"] {
        if Command::new(t).arg("--version").output().is_err() {
            return Some(format!(
                "needs {t} (scripts/lib/docker.sh docker_ensure_deps)"
            ));
        }
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("needs busybox-static".into());
    }
    None
}

#[test]
fn docker_end_to_end() {
    if let Some(r) = skip_reason() {
        common::report_skip("docker_e2e", &r);
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("drv-e2e-")
        .tempdir_in("/tmp")
        .unwrap()
        .keep();
    // Dropped after the rig (declared first): the plugin directory stays
    // ours until dockerd and the driver are gone.
    let _plugins = PrivatePluginDir::enter(&dir.join("plugins")).unwrap();
    let vnc_port = free_port();
    let mut rig = Rig {
        dir,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        vnc: Client::new(&format!("http://127.0.0.1:{vnc_port}"), None).unwrap(),
        vnc_port,
        port_api: free_port(),
        intro: free_port(),
        vrouter: None,
        agent: None,
        driver: None,
        docker_started: false,
    };
    let r = &mut rig;

    step("node: vrouter + vrouter-agent (root netns, temp sock/state dirs), driver, dockerd");
    r.start_node();
    r.start_driver();
    r.docker_started = true;
    let o = sh(
        &r.docker_dir(),
        "mkdir -p \"$D\"; docker_start \"$D\"; docker_wait \"$D\" 60; docker_busybox_image \"$D\" bb",
    );
    assert!(
        o.status.success(),
        "dockerd: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("up after {:?}", t0.elapsed());

    step("config: project demo, VNs blue (198.18.1.0/24, 198.18.9.0/24) and red (198.18.2.0/24) through the agent's VNC API");
    r.rt.block_on(async {
        common::seed_vn(
            &r.vnc,
            "demo",
            "blue",
            &[
                ("198.18.1.0", 24, "198.18.1.1"),
                ("198.18.9.0", 24, "198.18.9.1"),
            ],
        )
        .await;
        common::seed_vn(&r.vnc, "demo", "red", &[("198.18.2.0", 24, "198.18.2.1")]).await;
    });
    let empty = r.endpoints(0, "start");
    assert!(empty.vn_marks.is_empty());

    step("networks: --ipam-opt names the VN; the issue's exact command (--opt only); --opt + --subnet");
    let ipam = [
        "network",
        "create",
        "-d",
        "Contrail",
        "--ipam-driver",
        "Contrail",
    ];
    let cat = |extra: &[&'static str]| [&ipam[..], extra].concat();
    r.ok(&cat(&[
        "--ipam-opt",
        "tenant=demo",
        "--ipam-opt",
        "network=blue",
        "blue",
    ]));
    let cfg = "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}";
    assert_eq!(r.inspect("blue", cfg), "198.18.1.0/24 198.18.1.1");
    eprintln!("ok: docker network inspect blue -> 198.18.1.0/24 198.18.1.1");
    r.ok(&cat(&[
        "--opt",
        "tenant=demo",
        "--opt",
        "network=red",
        "red",
    ]));
    // An unbound pool (see the README): docker shows the placeholder.
    let red_cfg = r.inspect("red", cfg);
    assert!(red_cfg.starts_with("0.0.0.0/0 0."), "{red_cfg}");
    eprintln!(
        "ok: the issue's command works; docker network inspect red -> {red_cfg} (placeholder)"
    );
    r.ok(&cat(&[
        "--opt",
        "tenant=demo",
        "--opt",
        "network=blue",
        "--subnet",
        "198.18.9.0/24",
        "blue9",
    ]));
    // With --subnet docker shows the user's IPAM config (no --gateway given);
    // the VN's gateway reaches containers through Join (checked on c9).
    assert_eq!(r.inspect("blue9", cfg), "198.18.9.0/24");

    step("bad options: clear docker errors, nothing changes (VNC objects, VN marks, veths, port files)");
    r.fails(
        &cat(&["--opt", "network=red", "bad"]),
        "option \"tenant\" is required",
    );
    r.fails(
        &cat(&["--opt", "tenant=demo", "--opt", "network=nope", "bad"]),
        "virtual network default-domain:demo:nope not found",
    );
    r.fails(
        &cat(&[
            "--ipam-opt",
            "tenant=demo",
            "--ipam-opt",
            "network=nope",
            "bad",
        ]),
        "virtual network default-domain:demo:nope not found",
    );
    r.fails(
        &cat(&[
            "--ipam-opt",
            "tenant=demo",
            "--ipam-opt",
            "network=blue",
            "--subnet",
            "198.18.7.0/24",
            "bad",
        ]),
        "198.18.7.0/24 is not a subnet of virtual network default-domain:demo:blue",
    );
    let run_bad = |ip: &'static str| {
        [
            "run",
            "-d",
            "--name",
            "bad",
            "--network",
            "blue9",
            "--ip",
            ip,
            "bb",
            "sleep",
            "600",
        ]
    };
    r.fails(
        &run_bad("198.18.7.5"),
        "does not belong to any of this network's subnets",
    );
    r.fails(&run_bad("198.18.9.1"), "198.18.9.1 is reserved");

    step("two containers on blue: VN addresses, ping and TCP through the vrouter");
    for c in ["c1", "c2"] {
        r.ok(&[
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            c,
            "--network",
            "blue",
            "bb",
            "sleep",
            "3600",
        ]);
    }
    r.endpoints(2, "c1, c2");
    let (ip1, ip2) = (r.ip_on("c1", "blue"), r.ip_on("c2", "blue"));
    let iips: Vec<String> = r
        .list("instance-ip")
        .iter()
        .map(|i| i["instance_ip_address"].as_str().unwrap().to_string())
        .collect();
    assert!(iips.contains(&ip1) && iips.contains(&ip2), "{iips:?}");
    let route = r.ok(&["exec", "c1", "ip", "route"]);
    assert!(route.contains("default via 198.18.1.1"), "{route}");
    eprintln!("ok: c1 {ip1}, c2 {ip2}, default via 198.18.1.1");
    r.ping_ok("c1", &ip2);
    r.ping_ok("c2", &ip1);
    r.tcp_ok("c1", "c2", &ip2);

    step("isolation: c3 on red (the issue's network) cannot reach blue; c4 on blue + red reaches both");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "c3",
        "--network",
        "red",
        "bb",
        "sleep",
        "3600",
    ]);
    let ip3 = r.ip_on("c3", "red");
    assert!(ip3.starts_with("198.18.2."), "{ip3}");
    // The unbound pool's placeholder stays in docker's network record only:
    // the container has the VN's prefix length and gateway.
    let a3 = r.ok(&["exec", "c3", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(a3.contains(&format!("{ip3}/24")), "{a3}");
    let route = r.ok(&["exec", "c3", "ip", "route"]);
    assert!(route.contains("default via 198.18.2.1"), "{route}");
    eprintln!("ok: c3 on red {ip3}/24, default via 198.18.2.1");
    r.ping_blocked("c3", &ip1);
    r.ok(&[
        "run",
        "-d",
        "--name",
        "c4",
        "--network",
        "blue",
        "bb",
        "sleep",
        "3600",
    ]);
    r.ok(&["network", "connect", "red", "c4"]);
    r.endpoints(5, "c1..c4 (c4 twice)");
    r.ping_ok("c4", &ip1);
    r.ping_ok("c4", &ip3);
    r.ping_ok("c3", &r.ip_on("c4", "red"));
    r.ping_blocked("c3", &ip2);

    step("--ip inside the subnet (network created with --subnet)");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "c9",
        "--network",
        "blue9",
        "--ip",
        "198.18.9.50",
        "bb",
        "sleep",
        "3600",
    ]);
    assert_eq!(r.ip_on("c9", "blue9"), "198.18.9.50");
    let route = r.ok(&["exec", "c9", "ip", "route"]);
    assert!(route.contains("default via 198.18.9.1"), "{route}");
    r.ping_ok("c9", &ip1); // same VN, the other subnet: routed by the vrouter
    r.ok(&["rm", "-f", "c9"]);
    r.endpoints(5, "after rm c9");

    step("kill -9 the driver while containers run; restart it");
    let before = r.footprint();
    stop(&mut r.driver, "-KILL");
    r.ping_ok("c1", &ip2);
    r.start_driver();
    std::thread::sleep(Duration::from_millis(300)); // its start-up reconcile
    assert_eq!(r.footprint(), before, "restart changed or leaked something");
    r.ping_ok("c1", &ip2);
    r.tcp_ok("c2", "c1", &ip1);
    r.ok(&[
        "run",
        "-d",
        "--name",
        "c5",
        "--network",
        "blue",
        "bb",
        "sleep",
        "3600",
    ]);
    r.ping_ok("c5", &ip1);
    r.ok(&["network", "disconnect", "red", "c4"]);
    r.ok(&["rm", "-f", "c5", "c4"]);
    r.endpoints(3, "after rm c4, c5");

    step("restart dockerd: docker restarts c1 and c2 (--restart always) on the same networks");
    r.restart_dockerd();
    let t = Instant::now();
    while r.inspect("c1", "{{.State.Running}}") != "true"
        || r.inspect("c2", "{{.State.Running}}") != "true"
    {
        assert!(t.elapsed() < Duration::from_secs(20), "c1/c2 not restarted");
        std::thread::sleep(Duration::from_millis(200));
    }
    // c3 has no restart policy: it stays stopped, its endpoint gone.
    r.endpoints(2, "after dockerd restart");
    let (ip1, ip2) = (r.ip_on("c1", "blue"), r.ip_on("c2", "blue"));
    r.ping_ok("c1", &ip2);
    r.ok(&["start", "c3"]);
    r.ok(&[
        "run",
        "-d",
        "--name",
        "c6",
        "--network",
        "red",
        "bb",
        "sleep",
        "3600",
    ]);
    r.ping_ok("c6", &r.ip_on("c3", "red"));
    r.ping_blocked("c6", &ip1);

    step("docker rm + docker network rm: no VM/VMI/IIP, no VN marks, no veths, no port files");
    r.ok(&["rm", "-f", "c1", "c2", "c3", "c6"]);
    for n in ["blue", "blue9", "red"] {
        r.ok(&["network", "rm", n]);
    }
    assert_eq!(r.footprint(), empty, "leftovers");
    eprintln!("ok: nothing left ({empty:?})");
    stop(&mut r.driver, "-TERM");
    assert!(
        !Path::new(PLUGIN_DIR).join("Contrail.sock").exists(),
        "socket removed on exit"
    );
    eprintln!("docker e2e passed in {:?}", t0.elapsed());
}
