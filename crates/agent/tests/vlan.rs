#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
//! VLAN sub-interfaces end to end: a container with a VLAN device
//! (`eth0.100`) on its veth, the untagged `eth0` in one virtual network and
//! the sub-interface in another, through the real `vrouter` and the real
//! `vrouter-agent`, driven through the VNC and port APIs. The tag is on
//! the wire on the parent's veth and absent on the far side; an unknown
//! VLAN is dropped and counted.
//!
//! This machine's kernel has no 802.1Q devices (`ip link add ... type
//! vlan` answers "Unknown device type"), so the container's VLAN device is
//! done in user space ([`VlanDev`]): a TAP named `eth0.<id>` whose frames
//! go out of `eth0` tagged, and the frames `eth0` receives with that tag
//! come back in untagged, as the kernel's VLAN device does. Its tagged
//! frames cross the veth like a kernel VLAN device's do (veth moves the
//! tag out of band: the datapath reads it back from `PACKET_AUXDATA`).

mod common;

use common::cluster::{cluster_skip, Capture};
use common::*;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The config side of a port without its veth: VM, VMI, instance IP.
/// (uuid of the VMI, its VM, MAC, address.)
fn vmi_in(
    node: &Node,
    tag: &str,
    proj: &str,
    vn: &str,
    fq: &[&str],
) -> (String, String, String, Ipv4Addr) {
    let vm_name = format!("vm-{tag}-{}", std::process::id());
    let vm = node.create("virtual-machine", json!({"fq_name": [vm_name]}));
    let vmi = node.create(
        "virtual-machine-interface",
        json!({
            "fq_name": ["default-domain", proj, format!("vmi-{tag}")],
            "parent_type": "project",
            "virtual_network_refs": [{"to": fq, "uuid": vn}],
            "virtual_machine_refs": [{"uuid": vm, "to": [vm_name]}],
        }),
    );
    let mac = node.read("virtual-machine-interface", &vmi)
        ["virtual_machine_interface_mac_addresses"]["mac_address"][0]
        .as_str()
        .unwrap()
        .to_string();
    let iip = node.create(
        "instance-ip",
        json!({
            "fq_name": [format!("iip-{tag}-{}", std::process::id())],
            "virtual_network_refs": [{"to": fq, "uuid": vn}],
            "virtual_machine_interface_refs": [{"uuid": vmi}],
        }),
    );
    let addr = node.read("instance-ip", &iip)["instance_ip_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (vmi, vm, mac, addr)
}

/// A user-space VLAN device `<parent>.<vid>` in namespace `ns` (see the
/// module docs); removed (with its TAP) on drop.
struct VlanDev {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for VlanDev {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cvt(r: libc::c_int, what: &str) -> Result<libc::c_int, String> {
    if r < 0 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(r)
    }
}

/// Open the TAP and the packet socket inside `ns` (this thread's netns).
fn vlan_dev_fds(ns: &str, parent: &str, name: &str) -> Result<(OwnedFd, OwnedFd), String> {
    let nsf = std::fs::File::open(format!("/var/run/netns/{ns}")).map_err(|e| e.to_string())?;
    // SAFETY: setns(2) on an open netns file; only this thread moves.
    cvt(
        unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) },
        "setns",
    )?;
    // SAFETY: open(2) with a NUL-terminated path.
    let tun = cvt(
        unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) },
        "open /dev/net/tun",
    )?;
    // SAFETY: a fresh descriptor we own.
    let tun = unsafe { OwnedFd::from_raw_fd(tun) };
    // SAFETY: ifreq is plain old data.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF with a valid ifreq.
    cvt(
        unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut ifr) },
        "TUNSETIFF",
    )?;
    let cname = std::ffi::CString::new(parent).map_err(|e| e.to_string())?;
    // SAFETY: NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(format!("no {parent} in {ns}"));
    }
    // SAFETY: plain socket(2).
    let ps = cvt(
        unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
        },
        "socket",
    )?;
    // SAFETY: a fresh descriptor we own.
    let ps = unsafe { OwnedFd::from_raw_fd(ps) };
    let one: libc::c_int = 1;
    for opt in [libc::PACKET_AUXDATA, 23 /* PACKET_IGNORE_OUTGOING */] {
        // SAFETY: an int option.
        cvt(
            unsafe {
                libc::setsockopt(
                    ps.as_raw_fd(),
                    libc::SOL_PACKET,
                    opt,
                    (&one as *const libc::c_int).cast(),
                    4,
                )
            },
            "setsockopt",
        )?;
    }
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: a valid sockaddr_ll of the size passed.
    cvt(
        unsafe {
            libc::bind(
                ps.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        },
        "bind",
    )?;
    Ok((tun, ps))
}

/// The VLAN id of a frame the packet socket received: the tag the kernel
/// moved out of band, else one in the data (then stripped from `buf`).
fn rx_vlan(h: &libc::msghdr, buf: &mut Vec<u8>) -> Option<u16> {
    // SAFETY: the kernel filled `h` and its control buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let a: libc::tpacket_auxdata = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if a.tp_status & 0x10 != 0 {
                    return Some(a.tp_vlan_tci & 0x0fff);
                }
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    if buf.len() >= 18 && buf[12..14] == [0x81, 0x00] {
        let vid = u16::from_be_bytes([buf[14], buf[15]]) & 0x0fff;
        buf.drain(12..16);
        return Some(vid);
    }
    None
}

fn vlan_dev(ns: &str, parent: &str, vid: u16, mac: &str, addr: &str) -> VlanDev {
    let name = format!("{parent}.{vid}");
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let (ns2, parent2, name2, stop2) = (
        ns.to_string(),
        parent.to_string(),
        name.clone(),
        Arc::clone(&stop),
    );
    let thread = std::thread::spawn(move || {
        let (tun, ps) = match vlan_dev_fds(&ns2, &parent2, &name2) {
            Ok(f) => {
                let _ = tx.send(Ok(()));
                f
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut buf = vec![0u8; 65536];
        while !stop2.load(Ordering::Relaxed) {
            let mut fds = [
                libc::pollfd {
                    fd: tun.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: ps.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, 50) } <= 0 {
                continue;
            }
            // TAP -> eth0, tagged.
            loop {
                // SAFETY: read(2) into a live buffer.
                let n = unsafe { libc::read(tun.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 14 {
                    break;
                }
                let n = n as usize;
                let mut f = Vec::with_capacity(n + 4);
                f.extend_from_slice(&buf[..12]);
                f.extend_from_slice(&[0x81, 0x00]);
                f.extend_from_slice(&vid.to_be_bytes());
                f.extend_from_slice(&buf[12..n]);
                // SAFETY: send(2) of a live buffer on a bound socket.
                unsafe { libc::send(ps.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
            }
            // eth0 -> TAP, untagged, for our VLAN only.
            loop {
                let mut ctl = [0u64; 16];
                let mut iov = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                };
                // SAFETY: msghdr is plain old data.
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_iov = &mut iov;
                h.msg_iovlen = 1;
                h.msg_control = ctl.as_mut_ptr().cast();
                h.msg_controllen = std::mem::size_of_val(&ctl) as _;
                // SAFETY: recvmsg(2) into live buffers.
                let n = unsafe { libc::recvmsg(ps.as_raw_fd(), &mut h, 0) };
                if n < 14 {
                    break;
                }
                let mut f = buf[..n as usize].to_vec();
                if rx_vlan(&h, &mut f) == Some(vid) {
                    // SAFETY: write(2) of a live buffer.
                    unsafe { libc::write(tun.as_raw_fd(), f.as_ptr().cast(), f.len()) };
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("VLAN device thread")
        .unwrap_or_else(|e| panic!("VLAN device {name} in {ns}: {e}"));
    ip(&["-n", ns, "link", "set", &name, "address", mac, "up"]);
    ip(&["-n", ns, "addr", "add", addr, "dev", &name]);
    VlanDev {
        stop,
        thread: Some(thread),
    }
}

fn port_body(
    id: &str,
    vm: &str,
    vn: &str,
    mac: &str,
    addr: Ipv4Addr,
    tap: &str,
    vlan: i64,
) -> String {
    json!({
        "id": id, "instance-id": vm, "vn-id": vn, "vm-project-id": "",
        "mac-address": mac, "ip-address": addr.to_string(), "ip6-address": "",
        "system-name": tap, "display-name": format!("vlan{vlan}"), "type": 0,
        "rx-vlan-id": vlan, "tx-vlan-id": vlan,
    })
    .to_string()
}

fn drops(node: &Node, reason: &str) -> f64 {
    let page = node.metrics();
    let key = format!("vrouter_drops_total{{reason=\"{reason}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Packets of a capture matching `display`: (vlan.id, ip.src, ip.dst).
fn rows(c: &mut Capture, display: &str) -> Vec<(String, String, String)> {
    c.stop_and_read(display, &["vlan.id", "ip.src", "ip.dst"])
        .into_iter()
        .map(|r| {
            let g = |i: usize| r.get(i).cloned().unwrap_or_default();
            (g(0), g(1), g(2))
        })
        .collect()
}

#[test]
fn vlan_sub_interface_of_a_container_port_in_its_own_network() {
    if let Some(r) = cluster_skip() {
        report_skip(
            "vlan_sub_interface_of_a_container_port_in_its_own_network",
            &r,
        );
        return;
    }
    let mut node = Node::start(&[]);
    let proj = "pv";
    node.project(proj);
    let blue = node.vn(proj, "blue", "198.18.40.0", 24);
    let red = node.vn(proj, "red", "198.18.41.0", 24);
    let blue_fq = ["default-domain", proj, "blue"];
    let red_fq = ["default-domain", proj, "red"];
    // Container a: untagged eth0 in blue; b: untagged, in red.
    let a = attach(&mut node, "a", proj, &blue, &blue_fq, &[]);
    let b = attach(&mut node, "b", proj, &red, &red_fq, &[]);
    static_ip(&a, 24, "198.18.40.254");
    static_ip(&b, 24, "198.18.41.254");
    let (bip, aip) = (b.ip.unwrap().to_string(), a.ip.unwrap().to_string());

    // a's VLAN 100 sub-interface: its own VMI in red, on a's veth.
    let (sub, sub_vm, sub_mac, sub_ip) = vmi_in(&node, "a100", proj, &red, &red_fq);
    let body = port_body(&sub, &sub_vm, &red, &sub_mac, sub_ip, &a.tap, 100);
    let (s, r) = node.port_api("POST", "/port", Some(&body));
    assert_eq!(s, 200, "sub-interface port add: {r}");
    // Bad input: clear 4xx, nothing changed.
    let (x, _, xmac, xip) = vmi_in(&node, "a200", proj, &red, &red_fq);
    for (vlan, tap, want) in [
        (4095, a.tap.as_str(), 400),
        (0, a.tap.as_str(), 400),
        (200, "tapnosuchport", 404),
        (100, a.tap.as_str(), 409),
    ] {
        let (s, r) = node.port_api(
            "POST",
            "/port",
            Some(&port_body(&x, &sub_vm, &red, &xmac, xip, tap, vlan)),
        );
        assert_eq!(s, want, "vlan {vlan} on {tap}: {r}");
        let e: Value = serde_json::from_str(&r).unwrap();
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
    }

    let _dev100 = vlan_dev(&a.ns, "eth0", 100, &sub_mac, &format!("{sub_ip}/24"));
    // The datapath has the sub-interface, on a's vif, in red's VRF.
    let t0 = std::time::Instant::now();
    let (parent_vif, sub_vif) = loop {
        let st = node.datapath_state();
        let parent = st
            .vifs
            .values()
            .find(|v| v.name.as_str() == a.tap)
            .map(|v| v.idx);
        let subv = st
            .vifs
            .values()
            .find(|v| v.vif_type == dp_core::VifType::VirtualVlan)
            .cloned();
        if let (Some(p), Some(s)) = (parent, subv) {
            break (p, s);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no sub-interface vif: {st:?}\n{}",
            node.log("agent")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let subif = sub_vif.sub.unwrap();
    assert_eq!(
        (subif.parent, subif.vlan, subif.ovlan),
        (parent_vif, 100, 100)
    );
    assert_eq!(sub_vif.name.as_str(), format!("{}.100", a.tap));
    let parent_vrf = node.datapath_state().vifs[&parent_vif].vrf;
    assert_ne!(sub_vif.vrf, parent_vrf, "the sub-interface has its own VRF");

    // Captured at the containers' ends of the veths: the datapath sends
    // with PACKET_QDISC_BYPASS, which other packet sockets on the host
    // end do not see.
    let mut on_a = Capture::start(&a.ns, "eth0", "icmp or vlan", node.dir.path());
    let mut on_b = Capture::start(&b.ns, "eth0", "icmp or vlan", node.dir.path());
    // The agent answers DHCP on the sub-interface with its own address.
    let dhcp = std::process::Command::new("ip")
        .args([
            "netns", "exec", &a.ns, "busybox", "udhcpc", "-i", "eth0.100",
        ])
        .args(["-n", "-q", "-f", "-t", "5", "-T", "1", "-s", "/bin/true"])
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&dhcp.stderr).to_string() + &String::from_utf8_lossy(&dhcp.stdout);
    assert!(
        dhcp.status.success() && said.contains(&format!("lease of {sub_ip} obtained")),
        "udhcpc on eth0.100: {said}\n{}",
        node.log("agent")
    );
    // Ping both ways between a's sub-interface and b (same network).
    assert!(
        ping_until(&a.ns, &bip, Duration::from_secs(10)),
        "a.100 -> b; agent: {}\nvrouter: {}",
        node.log("agent"),
        node.log("vrouter")
    );
    assert_eq!(ping(&b.ns, &sub_ip.to_string(), 3, "0.2"), 3, "b -> a.100");
    // The untagged parent is still in blue: its gateway answers, and red
    // (another network, no policy) does not reach it.
    assert!(ping_until(&a.ns, "198.18.40.254", Duration::from_secs(5)));
    assert_eq!(ping(&b.ns, &aip, 2, "0.2"), 0, "blue and red are isolated");
    // TCP both ways.
    let _sb = tcp_server(&b.ns, 5301);
    assert!(tcp_ok(&a.ns, &bip, 5301), "TCP a.100 -> b");
    let _sa = tcp_server(&a.ns, 5302);
    assert!(tcp_ok(&b.ns, &sub_ip.to_string(), 5302), "TCP b -> a.100");

    // On a's veth the sub-interface's packets are tagged 100 both ways;
    // on b's they are not tagged.
    let a_rows = rows(&mut on_a, "icmp");
    let b_rows = rows(&mut on_b, "icmp");
    let sub_s = sub_ip.to_string();
    let tagged_out = a_rows
        .iter()
        .filter(|(v, s, d)| v == "100" && *s == sub_s && *d == bip)
        .count();
    let tagged_in = a_rows
        .iter()
        .filter(|(v, s, d)| v == "100" && *s == bip && *d == sub_s)
        .count();
    assert!(tagged_out >= 3 && tagged_in >= 3, "a's veth: {a_rows:?}");
    assert!(
        !a_rows
            .iter()
            .any(|(v, s, d)| v.is_empty() && (*s == sub_s || *d == sub_s)),
        "no untagged packet of the sub-interface on a's veth: {a_rows:?}"
    );
    let seen_b = b_rows
        .iter()
        .filter(|(_, s, d)| *s == sub_s || *d == sub_s)
        .count();
    assert!(seen_b >= 6, "b's veth: {b_rows:?}");
    assert!(
        b_rows.iter().all(|(v, _, _)| v.is_empty()),
        "tag leaked to b: {b_rows:?}"
    );
    // a's untagged traffic stays untagged on its veth.
    assert!(
        a_rows.iter().any(|(v, s, _)| v.is_empty() && *s == aip),
        "a's untagged pings: {a_rows:?}"
    );

    // A VLAN no sub-interface has: dropped and counted (vds_invalid_if).
    let before = drops(&node, "invalid_if");
    let _dev300 = vlan_dev(&a.ns, "eth0", 300, "02:00:00:00:03:00", "198.18.99.1/24");
    ip(&[
        "-n",
        &a.ns,
        "neigh",
        "add",
        "198.18.99.2",
        "lladdr",
        "00:00:5e:00:01:00",
        "dev",
        "eth0.300",
    ]);
    assert_eq!(ping(&a.ns, "198.18.99.2", 5, "0.2"), 0);
    let after = drops(&node, "invalid_if");
    assert!(
        after >= before + 5.0,
        "unknown VLAN drops: {before} -> {after}"
    );

    // Deleting the parent port: its vif goes, and the sub-interface's with
    // it (not programmed without its parent, reported); the sub-interface
    // port stays stored and comes back with the parent.
    let (_, all) = node.port_api("GET", "/ports", None);
    let all: Value = serde_json::from_str(&all).unwrap();
    let parent_rec = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == a.vmi)
        .unwrap()
        .clone();
    let (s, r) = node.port_api("DELETE", &format!("/port/{}", a.vmi), None);
    assert_eq!(s, 200, "{r}");
    let vlan_vifs = |node: &Node| {
        node.datapath_state()
            .vifs
            .values()
            .filter(|v| v.vif_type == dp_core::VifType::VirtualVlan || v.name.as_str() == a.tap)
            .count()
    };
    let t0 = std::time::Instant::now();
    while vlan_vifs(&node) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "parent or sub-interface vif left behind"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, r) = node.port_api("GET", &format!("/port/{sub}"), None);
    assert_eq!(
        s, 404,
        "a sub-interface without its parent is not programmed: {r}"
    );
    let (s, r) = node.port_api("POST", "/port", Some(&parent_rec.to_string()));
    assert_eq!(s, 200, "{r}");
    assert!(
        ping_until(&a.ns, &bip, Duration::from_secs(10)),
        "a.100 -> b once the parent is back; {}",
        node.log("agent")
    );
    let (s, r) = node.port_api("GET", &format!("/port/{sub}"), None);
    assert_eq!(s, 200, "{r}");

    // Deleting the sub-interface port removes its vif, and again is fine;
    // a's untagged port keeps working.
    for _ in 0..2 {
        let (s, r) = node.port_api("DELETE", &format!("/port/{sub}"), None);
        assert_eq!(s, 200, "{r}");
    }
    let t0 = std::time::Instant::now();
    while node
        .datapath_state()
        .vifs
        .values()
        .any(|v| v.vif_type == dp_core::VifType::VirtualVlan)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sub-interface vif left behind"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ping(&a.ns, &bip, 2, "0.2"), 0, "a.100 is gone");
    assert!(ping_until(&a.ns, "198.18.40.254", Duration::from_secs(5)));
}
