//! A cluster for the controller-mode tests: compute hosts as network
//! namespaces joined by a bridge (the fabric, 198.19.N.0/24), each with the
//! real `vrouter` (fabric vif on `fab`) and the real `vrouter-agent` in
//! `--config-source controller`, and control-node peers
//! (`control-node-peer`, in this process) that push the config of one
//! shared VNC store and reflect routes. The peers listen on the root
//! namespace's leg of the fabric; the agents' HTTP APIs listen on their
//! fabric addresses, so the test reaches everything from the root
//! namespace.

use super::*;
use control_node_peer::{Config as PeerConfig, Peer};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use vnc_api::Store;

/// A compute host.
pub struct Host {
    // Processes first: they stop before their namespace goes.
    pub agent: Proc,
    pub vrouter: Proc,
    pub name: String,
    pub ns: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub dir: tempfile::TempDir,
    pub port_api: u16,
    pub intro: u16,
    pub agent_args: Vec<String>,
}

impl Host {
    pub fn sock_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log(&self, what: &str) -> String {
        let s = std::fs::read_to_string(self.dir.path().join(format!("{what}.log")))
            .unwrap_or_default();
        let n = s.len().saturating_sub(8000);
        let mut i = n;
        while !s.is_char_boundary(i) {
            i += 1;
        }
        s[i..].to_string()
    }

    pub fn start_vrouter(&mut self) {
        let bin = workspace_bin("vrouter", "vrouter");
        let log = std::fs::File::create(self.dir.path().join("vrouter.log")).expect("log");
        // A killed vrouter leaves its socket behind: without this the wait
        // below ends at once and a client meets a refused connection.
        let _ = std::fs::remove_file(self.sock_dir().join("dpdk_netlink"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(bin)
            .arg("--sock-dir")
            .arg(self.sock_dir())
            .args(["--fabric", "fab", "--flow-entries", "65536"])
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
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(env!("CARGO_BIN_EXE_vrouter-agent"))
            .arg("--sock-dir")
            .arg(self.sock_dir())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--port-listen", &format!("{}:{}", self.ip, self.port_api)])
            .args([
                "--introspect-listen",
                &format!("{}:{}", self.ip, self.intro),
            ])
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

    pub fn intro_get(&self, path: &str) -> Result<Value, String> {
        http(
            "GET",
            &format!("http://{}:{}{path}", self.ip, self.intro),
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

    pub fn port_api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http(
            method,
            &format!("http://{}:{}{path}", self.ip, self.port_api),
            body,
        )
        .expect("port api")
    }

    /// Established XMPP sessions (from introspect).
    pub fn sessions(&self) -> usize {
        self.intro_get("/controller")
            .ok()
            .and_then(|v| {
                v["status"]["peers"].as_array().map(|a| {
                    a.iter()
                        .filter(|p| p["state"] == json!("established"))
                        .count()
                })
            })
            .unwrap_or(0)
    }

    pub fn wait_ready(&self, sessions: usize) {
        let t0 = Instant::now();
        loop {
            let k = self.intro_get("/ksync").is_ok_and(|v| {
                v["connected"] == json!(true) && v["reconciles"].as_u64().unwrap_or(0) > 0
            });
            if k && self.sessions() >= sessions {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{} not ready: {}",
                self.name,
                self.log("agent")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent-owned objects the datapath holds (read over ksync), in
    /// the fabric VRF and the VRFs of every network the agent knows.
    pub fn datapath_state(&self) -> agent::program::State {
        let mut vrfs: std::collections::BTreeSet<u16> = [0].into();
        if let Ok(v) = self.intro_get("/vns") {
            for n in v["virtual_networks"].as_array().into_iter().flatten() {
                if let Some(id) = n["vrf"].as_u64() {
                    vrfs.insert(id as u16);
                }
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut k = agent::ksync::KsyncClient::connect(&self.sock_dir().join("dpdk_netlink"))
                .await
                .unwrap();
            agent::program::dump(&mut k, &vrfs).await.unwrap()
        })
    }
}

/// Hosts, peers and the config store they share.
pub struct Cluster {
    pub hosts: Vec<Host>,
    pub peers: Vec<Option<Peer>>,
    pub peer_addrs: Vec<SocketAddr>,
    pub store: Arc<Store>,
    pub rt: tokio::runtime::Runtime,
    /// 198.19.<net>.0/24.
    pub net: u8,
    pub ns: Namespaces,
    pub bridge: String,
    pub root_if: String,
    pub dir: tempfile::TempDir,
    pub containers: u32,
    pub peer_tls: Option<native_tls::TlsAcceptor>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Agents and datapaths first, then the peers, then the links.
        self.hosts.clear();
        for p in &mut self.peers {
            if let Some(p) = p.take() {
                self.rt.block_on(p.stop());
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_if])
            .output();
    }
}

pub fn fab_ip(net: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, net, 10 + i as u8)
}

impl Cluster {
    /// `hosts` compute hosts, `peers` control nodes; `agent_args` are added
    /// to every agent.
    pub fn new(hosts: usize, peers: usize, agent_args: &[&str]) -> Cluster {
        Self::with_peer_tls(hosts, peers, agent_args, None)
    }

    /// [`Cluster::new`] with control nodes that require STARTTLS.
    pub fn with_peer_tls(
        hosts: usize,
        peers: usize,
        agent_args: &[&str],
        tls: Option<native_tls::TlsAcceptor>,
    ) -> Cluster {
        let serial = super::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut ns = Namespaces::new();
        let net = (std::process::id() % 200) as u8 + 20;
        let bridge = ns.add("br");
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        // The root namespace's leg: the peers listen there.
        let root_if = format!("cp{}", std::process::id() % 100_000);
        let _ = Command::new("ip").args(["link", "del", &root_if]).output();
        ip(&[
            "link", "add", "name", &root_if, "type", "veth", "peer", "name", "cproot",
        ]);
        ip(&["link", "set", "cproot", "netns", &bridge]);
        ip(&[
            "-n", &bridge, "link", "set", "cproot", "master", "br0", "up",
        ]);
        ip(&[
            "addr",
            "add",
            &format!("198.19.{net}.254/24"),
            "dev",
            &root_if,
        ]);
        ip(&["link", "set", &root_if, "up"]);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("config.redb")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut c = Cluster {
            hosts: Vec::new(),
            peers: Vec::new(),
            peer_addrs: Vec::new(),
            store,
            rt,
            net,
            ns,
            bridge,
            root_if,
            dir,
            containers: 0,
            peer_tls: None,
            _serial: serial,
        };
        c.peer_tls = tls;
        for _ in 0..peers {
            let addr: SocketAddr = format!("198.19.{net}.254:0").parse().unwrap();
            let cfg = c.peer_config();
            let p =
                c.rt.block_on(Peer::start(addr, Arc::clone(&c.store), cfg))
                    .unwrap();
            c.peer_addrs.push(p.addr());
            c.peers.push(Some(p));
        }
        let servers = c
            .peer_addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        for i in 0..hosts {
            c.add_host(i, &servers, agent_args);
        }
        for h in &c.hosts {
            h.wait_ready(peers.min(1));
        }
        c
    }

    fn add_host(&mut self, i: usize, servers: &str, agent_args: &[&str]) {
        let name = format!("compute-{i}");
        let ns = self.ns.add(&format!("h{i}"));
        let leg = format!("h{i}");
        ip(&[
            "-n", &ns, "link", "add", "name", "fab", "type", "veth", "peer", "name", &leg,
        ]);
        ip(&["-n", &ns, "link", "set", &leg, "netns", &self.bridge]);
        ip(&[
            "-n",
            &self.bridge,
            "link",
            "set",
            &leg,
            "master",
            "br0",
            "up",
        ]);
        let mac = format!("02:19:{:02x}:00:00:{:02x}", self.net, 10 + i);
        let addr = fab_ip(self.net, i);
        ip(&["-n", &ns, "link", "set", "fab", "address", &mac, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "fab",
        ]);
        // The virtual-router object the operator creates for each node.
        self.store
            .create(
                "virtual-router",
                json!({"fq_name": ["default-global-system-config", name], "parent_type": "global-system-config",
                    "virtual_router_ip_address": addr.to_string()}),
            )
            .unwrap();
        let mut args: Vec<String> = vec![
            "--config-source".into(),
            "controller".into(),
            "--CONTROL-NODE.servers".into(),
            servers.into(),
            "--DEFAULT.agent_name".into(),
            name.clone(),
            "--NETWORKS.control_network_ip".into(),
            addr.to_string(),
            "--xmpp-reconnect-max".into(),
            "1".into(),
        ];
        args.extend(agent_args.iter().map(|s| s.to_string()));
        let mut h = Host {
            agent: Proc {
                child: None,
                what: "agent",
            },
            vrouter: Proc {
                child: None,
                what: "vrouter",
            },
            name,
            ns,
            ip: addr,
            mac,
            dir: tempfile::tempdir().unwrap(),
            port_api: 9091,
            intro: 8085,
            agent_args: args,
        };
        h.start_vrouter();
        h.start_agent();
        self.hosts.push(h);
    }

    pub fn stop_peer(&mut self, i: usize) {
        if let Some(p) = self.peers[i].take() {
            self.rt.block_on(p.stop());
        }
    }

    pub fn start_peer(&mut self, i: usize) {
        let p = self
            .rt
            .block_on(Peer::start(
                self.peer_addrs[i],
                Arc::clone(&self.store),
                self.peer_config(),
            ))
            .unwrap();
        self.peers[i] = Some(p);
    }

    pub fn peer(&self, i: usize) -> &Peer {
        self.peers[i].as_ref().expect("peer running")
    }

    pub fn inject(&self, peer: usize, agent: &str, text: &str) {
        self.rt.block_on(self.peer(peer).inject(agent, text));
    }

    // ---- config, as the config API would take it ------------------------

    pub fn project(&self, name: &str) -> String {
        let v = self
            .store
            .create(
                "project",
                json!({"fq_name": ["default-domain", name], "parent_type": "domain"}),
            )
            .unwrap();
        v["uuid"].as_str().unwrap().to_string()
    }

    /// A VN with one subnet; its uuid and gateway.
    pub fn vn(&self, proj: &str, name: &str, prefix: &str, plen: u8) -> (String, String) {
        let v = self
            .store
            .create(
                "virtual-network",
                json!({
                    "fq_name": ["default-domain", proj, name],
                    "parent_type": "project",
                    "network_ipam_refs": [{
                        "to": ["default-domain", "default-project", "default-network-ipam"],
                        "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": prefix, "ip_prefix_len": plen}}]}
                    }]
                }),
            )
            .unwrap();
        let gw = v["network_ipam_refs"][0]["attr"]["ipam_subnets"][0]["default_gateway"]
            .as_str()
            .unwrap()
            .to_string();
        (v["uuid"].as_str().unwrap().to_string(), gw)
    }

    /// What the Docker driver does for one endpoint on host `h`: VM, VMI,
    /// instance IP in the store, a container namespace with a 1500-byte
    /// `eth0` (its address and default route set), the port API call.
    pub fn attach(
        &mut self,
        h: usize,
        tag: &str,
        proj: &str,
        vn: &str,
        gw: &str,
        plen: u8,
    ) -> ClusterContainer {
        self.containers += 1;
        let n = self.containers;
        let vm = self
            .store
            .create(
                "virtual-machine",
                json!({"fq_name": [format!("vm-{tag}-{n}-{}", std::process::id())]}),
            )
            .unwrap();
        let vm = vm["uuid"].as_str().unwrap().to_string();
        let vmi = self
            .store
            .create(
                "virtual-machine-interface",
                json!({
                    "fq_name": ["default-domain", proj, format!("vmi-{tag}-{n}")],
                    "parent_type": "project",
                    "virtual_network_refs": [{"uuid": vn}],
                    "virtual_machine_refs": [{"uuid": vm}],
                    "security_group_refs": [{"to": ["default-domain", proj, "default"]}],
                }),
            )
            .unwrap();
        let mac = vmi["virtual_machine_interface_mac_addresses"]["mac_address"][0]
            .as_str()
            .unwrap()
            .to_string();
        let vmi = vmi["uuid"].as_str().unwrap().to_string();
        let iip = self
            .store
            .create(
                "instance-ip",
                json!({
                    "fq_name": [format!("iip-{tag}-{n}-{}", std::process::id())],
                    "virtual_network_refs": [{"uuid": vn}],
                    "virtual_machine_interface_refs": [{"uuid": vmi}],
                }),
            )
            .unwrap();
        let addr: Ipv4Addr = iip["instance_ip_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let host = &self.hosts[h];
        let cns = self.ns.add(&format!("c{n}"));
        let tap = format!("tap{}", &vmi[..11]);
        let tmp = format!("t{n}x{}", std::process::id() % 10000);
        ip(&[
            "-n", &host.ns, "link", "add", "name", &tap, "type", "veth", "peer", "name", &tmp,
        ]);
        ip(&["-n", &host.ns, "link", "set", &tmp, "netns", &cns]);
        ip(&["-n", &cns, "link", "set", &tmp, "name", "eth0"]);
        ip(&["-n", &cns, "link", "set", "eth0", "address", &mac, "up"]);
        ip(&["-n", &host.ns, "link", "set", &tap, "up"]);
        ip(&[
            "-n",
            &cns,
            "addr",
            "add",
            &format!("{addr}/{plen}"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &cns, "route", "add", "default", "via", gw]);
        let body = json!({
            "id": vmi, "instance-id": vm, "vn-id": vn, "vm-project-id": "",
            "mac-address": mac, "ip-address": addr.to_string(), "ip6-address": "",
            "system-name": tap, "display-name": tag, "type": 0,
            "rx-vlan-id": -1, "tx-vlan-id": -1,
        });
        let (s, b) = host.port_api("POST", "/port", Some(&body.to_string()));
        assert_eq!(s, 200, "port add: {b}");
        ClusterContainer {
            ns: cns,
            host: h,
            ip: addr,
            vmi,
            vm,
            mac,
        }
    }

    /// The port goes (as the driver's Leave + DeleteEndpoint).
    pub fn detach(&self, c: &ClusterContainer) {
        let (s, b) = self.hosts[c.host].port_api("DELETE", &format!("/port/{}", c.vmi), None);
        assert_eq!(s, 200, "port delete: {b}");
    }

    /// Wait until `f` holds (bounded).
    pub fn wait_for(&self, what: &str, limit: Duration, f: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !f() {
            if t0.elapsed() > limit {
                let logs: Vec<String> = self
                    .hosts
                    .iter()
                    .map(|h| format!("--- {} agent:\n{}", h.name, h.log("agent")))
                    .collect();
                panic!("{what}: not within {limit:?}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

pub struct ClusterContainer {
    pub ns: String,
    pub host: usize,
    pub ip: Ipv4Addr,
    pub vmi: String,
    pub vm: String,
    pub mac: String,
}

impl Cluster {
    fn peer_config(&self) -> PeerConfig {
        let mut c = PeerConfig {
            eor_delay: Duration::from_millis(500),
            ..PeerConfig::default()
        };
        c.server.tls = self.peer_tls.clone();
        c
    }
}

/// A `tshark` capture in a namespace (bounded in packets and time), to a
/// pcap file in `dir`.
pub struct Capture {
    proc: Proc,
    pub file: PathBuf,
}

impl Capture {
    pub fn start(ns: &str, iface: &str, filter: &str, dir: &std::path::Path) -> Capture {
        let file = dir.join(format!(
            "{ns}-{iface}-{}.pcap",
            Instant::now().elapsed().as_nanos()
        ));
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tshark", "-n", "-q", "-i", iface, "-f", filter,
            ])
            .args(["-s", "256", "-c", "200000", "-a", "duration:120", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark");
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
        rx.recv_timeout(Duration::from_secs(20))
            .expect("tshark did not start");
        std::thread::sleep(Duration::from_millis(300));
        Capture {
            proc: Proc {
                child: Some(child),
                what: "tshark",
            },
            file,
        }
    }

    /// Stop and decode: `fields` of the packets matching `display`.
    pub fn stop_and_read(&mut self, display: &str, fields: &[&str]) -> Vec<Vec<String>> {
        std::thread::sleep(Duration::from_millis(300));
        self.proc.signal("INT");
        self.proc.wait(Duration::from_secs(20));
        let mut cmd = Command::new("tshark");
        cmd.args(["-n", "-r"]).arg(&self.file).args([
            "-Y",
            display,
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=f",
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
}

/// Tools the multi-host tests need, or why they cannot run.
pub fn cluster_skip() -> Option<String> {
    if let Some(r) = skip_reason() {
        return Some(r);
    }
    for t in ["tshark", "busybox"] {
        if !Command::new("which")
            .arg(t)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return Some(format!("needs {t}"));
        }
    }
    None
}
