#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
//! Docker across two compute hosts joined to a cluster: each host (a
//! network namespace on the fabric) runs the real `vrouter`, the real
//! `vrouter-agent --config-source controller`, its own `dockerd` (own data
//! root, exec root and socket) and its own `contrail-docker-driver`, which
//! talks to the cluster's config API (the store the control-node peers
//! push from) and to its host's agent. `docker run --network` on each
//! host; the containers reach each other across the fabric.
//!
//! dockerd runs in its host's network namespace (`nsenter --net`, which
//! keeps the cgroup mounts `ip netns exec` would hide) and a private mount
//! namespace where its own directory is bind-mounted on `/etc/docker`: it
//! finds its driver through the plugin spec there, so the two daemons use
//! their own drivers although `/run/docker/plugins` is shared.

mod common;

use common::cluster::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DOCKER: &str = "/usr/bin/docker";

fn driver_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args([
        "build",
        "-p",
        "docker-driver",
        "--bin",
        "contrail-docker-driver",
    ]);
    if dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    assert!(c.status().unwrap().success(), "building the driver");
    dir.join("contrail-docker-driver")
}

/// One host's dockerd and driver (stopped, and their files removed, on
/// drop).
struct DockerHost {
    ns: String,
    dir: PathBuf,
    dockerd: Proc,
    driver: Proc,
}

impl DockerHost {
    fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}/docker.sock", self.dir.display()))
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {}: {}\ndriver: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(self.dir.join("driver.log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for DockerHost {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = self.docker(&["network", "rm", "blue"]);
        // TERM the daemon itself (the launcher exec'd into it).
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("docker.pid")) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        self.dockerd.signal("TERM");
        self.dockerd.wait(Duration::from_secs(15));
        self.driver.signal("TERM");
        self.driver.wait(Duration::from_secs(5));
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("exec"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    for d in ["sbin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for t in ["sh", "ip", "ping", "sleep", "nc", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(t)).unwrap();
    }
    let tar = dir.join("busybox.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    tar
}

#[test]
fn docker_run_on_two_hosts_reaches_across_the_fabric() {
    if let Some(r) = cluster_skip() {
        eprintln!("SKIP: {r}");
        return;
    }
    if !Path::new("/usr/sbin/dockerd").exists() || !Path::new(DOCKER).exists() {
        eprintln!("SKIP: needs dockerd and the docker CLI (Debian docker.io)");
        return;
    }
    let t0 = Instant::now();
    let driver = driver_bin();
    let c = Cluster::new(2, 1, &[]);
    // The cluster's config API, for the drivers.
    let vnc_addr: std::net::SocketAddr = format!("198.19.{}.254:0", c.net).parse().unwrap();
    let listener =
        c.rt.block_on(tokio::net::TcpListener::bind(vnc_addr))
            .unwrap();
    let vnc_url = format!("http://{}", listener.local_addr().unwrap());
    let app = vnc_api::router(Arc::clone(&c.store));
    c.rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    c.project("dk");
    c.vn("dk", "blue", "198.18.30.0", 24);

    let made_etc_docker = !Path::new("/etc/docker").exists();
    std::fs::create_dir_all("/etc/docker").unwrap();
    let made_run_docker = !Path::new("/run/docker").exists();
    let made_containerd = !Path::new("/run/containerd").exists();
    let tar = busybox_tar(c.dir.path());
    let mut hosts = Vec::new();
    for h in 0..2 {
        let host = &c.hosts[h];
        let dir = c.dir.path().join(format!("docker{h}"));
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        let etc = dir.join("etc");
        std::fs::create_dir_all(etc.join("docker/plugins")).unwrap();
        std::fs::write(
            etc.join("docker/plugins/Contrail.spec"),
            format!("unix://{}/plugins/Contrail.sock\n", dir.display()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("driver.log")).unwrap();
        let drv = Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .arg(&driver)
            .args(["--vnc-url", &vnc_url])
            .args([
                "--agent-url",
                &format!("http://{}:{}", host.ip, host.port_api),
            ])
            .arg("--plugin-dir")
            .arg(dir.join("plugins"))
            .args(["--host-name", &host.name, "--reconcile-interval", "0"])
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        // Only the network namespace changes (`ip netns exec` would remount
        // /sys and hide the cgroups dockerd needs); a private mount
        // namespace gives this daemon its own /etc/docker (plugin spec).
        let dockerd = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", host.ns))
            .args(["unshare", "-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/docker && exec dockerd --iptables=false --ip6tables=false --ip-forward=false --bridge=none --storage-driver=vfs --data-root={} --exec-root={} --pidfile={} -H unix://{}/docker.sock",
                etc.join("docker").display(),
                dir.join("data").display(),
                dir.join("exec").display(),
                dir.join("docker.pid").display(),
                dir.display()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        hosts.push(DockerHost {
            ns: host.ns.clone(),
            dir,
            dockerd: Proc {
                child: Some(dockerd),
                what: "dockerd",
            },
            driver: Proc {
                child: Some(drv),
                what: "driver",
            },
        });
    }
    for d in &hosts {
        let t = Instant::now();
        while !d.docker(&["version"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "dockerd in {}: {}",
                d.ns,
                std::fs::read_to_string(d.dir.join("dockerd.log"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("level=error")
                        || l.contains("level=fatal")
                        || l.contains("failed"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let o = Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}/docker.sock", d.dir.display()))
            .args(["import", &tar.display().to_string(), "bb"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "import: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        d.ok(&[
            "network",
            "create",
            "-d",
            "Contrail",
            "--ipam-driver",
            "Contrail",
            "--opt",
            "tenant=dk",
            "--opt",
            "network=blue",
            "--ipam-opt",
            "tenant=dk",
            "--ipam-opt",
            "network=blue",
            "blue",
        ]);
    }
    let run = |d: &DockerHost, name: &str| {
        d.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "blue",
            "bb",
            "sleep",
            "600",
        ]);
        d.ok(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"blue\").IPAddress}}",
            name,
        ])
    };
    let ip0 = run(&hosts[0], "c0");
    let ip1 = run(&hosts[1], "c1");
    assert_ne!(ip0, ip1);
    // Both hosts learn each other's container from the control node.
    let ping = |d: &DockerHost, from: &str, to: &str| {
        let t = Instant::now();
        loop {
            let o = d.docker(&["exec", from, "ping", "-c", "1", "-W", "1", to]);
            if o.status.success() {
                return true;
            }
            if t.elapsed() > Duration::from_secs(20) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert!(
        ping(&hosts[0], "c0", &ip1),
        "c0 -> c1:\n{}",
        c.hosts[0].log("agent")
    );
    assert!(ping(&hosts[1], "c1", &ip0), "c1 -> c0");
    // TCP across, a line each way.
    hosts[1].ok(&[
        "exec", "-d", "c1", "nc", "-l", "-p", "7000", "-e", "echo", "hello",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let got = hosts[0].ok(&["exec", "c0", "nc", "-w", "3", &ip1, "7000"]);
    assert!(got.contains("hello"), "{got:?}");
    drop(hosts);
    if made_etc_docker {
        let _ = std::fs::remove_dir_all("/etc/docker");
    }
    // What dockerd leaves behind, when it was not there before.
    if made_run_docker {
        let _ = std::fs::remove_dir_all("/run/docker");
    }
    if made_containerd {
        let _ = std::fs::remove_dir_all("/run/containerd");
    }
    eprintln!("docker across hosts: {:?}", t0.elapsed());
}
