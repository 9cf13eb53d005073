//! ksync conformance: the real `vrouter` process, spoken to over its unix
//! socket exactly as upstream's clients do, with every reply checked
//! against upstream's DPDK datapath framing (`dpdk/vr_dpdk_netlink.c`).
//!
//! * Requests are built here by hand, byte by byte (not with our framing
//!   code): upstream's agent style (family id 10, several Sandesh objects
//!   in one netlink message, several messages in one write, messages split
//!   across writes) and its tools' style (family `0x20`, one object per
//!   message).
//! * Replies are read as upstream's agent reads them (`ksync_sock.cc`): a
//!   16-byte header, then `nlmsg_len - 16` bytes; the Sandesh payload is
//!   `nlmsg_len - 24` bytes with no padding tolerance; `NLM_F_MULTI` means
//!   more to come; `vr_response` starts the answer to the next request
//!   object. Every framing rule is checked on every message and each
//!   violation counted; the test requires zero.
//! * Every object type goes through add, get, dump across pages and
//!   delete (flows: add, table data, delete: upstream has no flow GET or
//!   DUMP over ksync, its `flow` tool maps the table).
//!
//! The VM vifs sit on in-memory ports (`--vm-ports memory`), so this needs
//! neither root nor network namespaces.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use dp_core::nexthop::{nh_type, AF_BRIDGE, AF_INET, AF_INET6};
use dp_core::{NhFlags, VifFlags, VifType};
use ksync::convert::{ipv4_to_wire, set_flow_key};
use ksync::errno::{EBADF, ENODEV, ENOENT};
use ksync::VR_MESSAGE_DUMP_INCOMPLETE;
use sandesh::{
    FlowOp, Message, SandeshOp, VrDropStatsReq, VrFlowReq, VrFlowTableData, VrInterfaceReq,
    VrMemStatsReq, VrMplsReq, VrNexthopReq, VrResponse, VrRouteReq, VrVrfReq, VrVxlanReq,
    VrouterOps,
};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upstream's agent's family id on the DPDK socket.
const AGENT_FAMILY: u16 = 10;
/// Upstream's tools' family id (`GENL_ID_VROUTER`).
const UTIL_FAMILY: u16 = 0x20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_MULTI: u16 = 2;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Upstream agent's receive buffer (`KSyncSock::kBufLen`): no reply
/// message may be longer.
const AGENT_BUF_LEN: usize = 4096;
/// VM vifs (3..3 + N): several dump pages.
const N: i32 = 40;
/// Objects of each smaller kind (next hops, routes, labels, VNIs, VRFs):
/// several dump pages each.
const M: i32 = 300;
const VRF: i32 = 1;

struct Vrouter {
    child: Child,
    dir: tempfile::TempDir,
}

impl Vrouter {
    fn start() -> Vrouter {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("vrouter.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vrouter"))
            .arg("--sock-dir")
            .arg(dir.path())
            .args([
                "--vm-ports",
                "memory",
                "--flow-entries",
                "1024",
                "--interfaces",
                "256",
                "--nexthops",
                "1024",
                "--mpls-labels",
                "1024",
                "--bridge-entries",
                "4096",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn vrouter");
        let v = Vrouter { child, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while UnixStream::connect(v.sock()).is_err() {
            assert!(
                Instant::now() < deadline,
                "vrouter did not start:\n{}",
                v.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        v
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("dpdk_netlink")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vrouter.log")).unwrap_or_default()
    }
}

impl Drop for Vrouter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One netlink request, built field by field as upstream's `nl_build_nlh`,
/// `nl_build_genlh` and `nl_build_attr` do (host byte order; `nla_len`
/// counts its header; no padding).
fn nl_request(family: u16, seq: u32, pid: u32, objs: &[Message]) -> Vec<u8> {
    let mut payload = Vec::new();
    for m in objs {
        m.encode(&mut payload);
    }
    let total = 16 + 4 + 4 + payload.len();
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&(total as u32).to_ne_bytes());
    b.extend_from_slice(&family.to_ne_bytes());
    b.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&pid.to_ne_bytes());
    b.extend_from_slice(&[1, 0, 0, 0]); // SANDESH_REQUEST, version 0
    b.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&1u16.to_ne_bytes()); // NL_ATTR_VR_MESSAGE_PROTOCOL
    b.extend_from_slice(&payload);
    b
}

fn ne16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn ne32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The answer to one request object: its `vr_response` code and the
/// objects after it.
#[derive(Debug)]
struct Answer {
    code: i32,
    objects: Vec<Message>,
}

/// An upstream-style client with a strict reply checker.
struct Client {
    s: UnixStream,
    family: u16,
    pid: u32,
    seq: u32,
    /// Framing rules broken, with the message that broke them.
    deviations: Vec<String>,
    /// Reply messages checked.
    checked: usize,
}

impl Client {
    fn connect(v: &Vrouter, family: u16) -> Client {
        let s = UnixStream::connect(v.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            s,
            family,
            pid: std::process::id(),
            seq: 0,
            deviations: Vec::new(),
            checked: 0,
        }
    }

    fn deviation(&mut self, seq: u32, what: String) {
        self.deviations.push(format!("seq {seq}: {what}"));
    }

    /// One reply message: 16 header bytes, then `nlmsg_len - 16`.
    fn read_message(&mut self) -> Vec<u8> {
        let mut m = vec![0u8; 16];
        self.s.read_exact(&mut m).expect("reply header");
        let len = ne32(&m, 0) as usize;
        assert!(len >= 16, "nlmsg_len {len}");
        m.resize(len, 0);
        self.s.read_exact(&mut m[16..]).expect("reply body");
        m
    }

    /// The reply to request `seq` (which held `n_objects` objects): every
    /// message up to the first without `NLM_F_MULTI`, each checked, then
    /// split into one answer per request object at each `vr_response`.
    fn read_reply(&mut self, seq: u32, n_objects: usize) -> Vec<Answer> {
        let mut objects: Vec<Message> = Vec::new();
        loop {
            let m = self.read_message();
            self.checked += 1;
            let (len, ty, flags, rseq, pid) = (
                ne32(&m, 0) as usize,
                ne16(&m, 4),
                ne16(&m, 6),
                ne32(&m, 8),
                ne32(&m, 12),
            );
            if ty == NLMSG_DONE || ty == NLMSG_ERROR {
                self.deviation(seq, format!("netlink control message type {ty}"));
                if ty == NLMSG_DONE {
                    break;
                }
                continue;
            }
            if ty != self.family {
                self.deviation(seq, format!("type {ty}, request had {}", self.family));
            }
            if rseq != seq {
                self.deviation(seq, format!("seq {rseq}"));
            }
            if pid != 0 {
                self.deviation(seq, format!("pid {pid} (upstream writes 0)"));
            }
            if flags & !NLM_F_MULTI != 0 {
                self.deviation(seq, format!("flags {flags:#x}"));
            }
            if len > AGENT_BUF_LEN {
                self.deviation(seq, format!("{len} bytes: beyond the agent's 4096"));
            }
            if len < 24 {
                self.deviation(seq, format!("nlmsg_len {len} below the headers"));
                break;
            }
            if m[16..20] != [1, 0, 0, 0] {
                self.deviation(
                    seq,
                    format!("genlmsghdr {:?} not the request's", &m[16..20]),
                );
            }
            let (nla_len, nla_type) = (usize::from(ne16(&m, 20)), ne16(&m, 22));
            if nla_type != 1 {
                self.deviation(seq, format!("nla_type {nla_type}"));
            }
            // Upstream's agent decodes exactly `nlmsg_len - 24` bytes.
            let payload = &m[24..len];
            if nla_len != payload.len() {
                self.deviation(
                    seq,
                    format!("nla_len {nla_len} for {} payload bytes", payload.len()),
                );
            }
            let mut at = 0;
            while at < payload.len() {
                match Message::decode_one(&payload[at..]) {
                    Ok((msg, n)) => {
                        objects.push(msg);
                        at += n;
                    }
                    Err(e) => {
                        let what =
                            format!("{} trailing bytes do not decode: {e}", payload.len() - at);
                        self.deviation(seq, what);
                        break;
                    }
                }
            }
            if flags & NLM_F_MULTI == 0 {
                break;
            }
        }
        // vr_response delimits the answers (upstream's bulk decoder).
        let mut answers: Vec<Answer> = Vec::new();
        for m in objects {
            match m {
                Message::Response(VrResponse { resp_code, .. }) => answers.push(Answer {
                    code: resp_code,
                    objects: Vec::new(),
                }),
                other => match answers.last_mut() {
                    Some(a) => a.objects.push(other),
                    None => self.deviation(seq, format!("{} before vr_response", other.name())),
                },
            }
        }
        if answers.len() != n_objects {
            let what = format!("{} answers for {n_objects} request objects", answers.len());
            self.deviation(seq, what);
        }
        answers
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// Agent style: `batches` netlink messages (each with several objects)
    /// written in `chunks` writes of about equal size, with pauses so the
    /// datapath sees them apart; the answers of every object, in order.
    fn bulk(&mut self, batches: &[Vec<Message>], chunks: usize) -> Vec<Answer> {
        let mut buf = Vec::new();
        let mut seqs = Vec::new();
        for b in batches {
            let seq = self.next_seq();
            buf.extend(nl_request(self.family, seq, self.pid, b));
            seqs.push((seq, b.len()));
        }
        let step = buf.len().div_ceil(chunks.max(1));
        for c in buf.chunks(step) {
            self.s.write_all(c).unwrap();
            self.s.flush().unwrap();
            if chunks > 1 {
                std::thread::sleep(Duration::from_millis(15));
            }
        }
        let mut all = Vec::new();
        for (seq, n) in seqs {
            all.extend(self.read_reply(seq, n));
        }
        all
    }

    /// Tool style: one object, one message, one write.
    fn one(&mut self, m: impl Into<Message>) -> Answer {
        let seq = self.next_seq();
        self.s
            .write_all(&nl_request(self.family, seq, self.pid, &[m.into()]))
            .unwrap();
        let mut a = self.read_reply(seq, 1);
        assert_eq!(a.len(), 1, "seq {seq}: {a:?}");
        a.pop().unwrap()
    }

    fn code(&mut self, m: impl Into<Message>) -> i32 {
        let a = self.one(m);
        assert!(a.objects.is_empty(), "{a:?}");
        a.code
    }

    fn get(&mut self, m: impl Into<Message>) -> Message {
        let a = self.one(m);
        assert_eq!((a.code, a.objects.len()), (0, 1), "{a:?}");
        a.objects.into_iter().next().unwrap()
    }

    /// A dump as upstream's tools page it: the count answer, then the
    /// objects; ask again after the last one while the incomplete bit is
    /// set. Returns the objects and the number of pages.
    fn dump(&mut self, mut req: impl FnMut(Option<&Message>) -> Message) -> (Vec<Message>, usize) {
        let mut all: Vec<Message> = Vec::new();
        let mut pages = 0;
        loop {
            let seq = self.next_seq();
            let r = req(all.last());
            self.s
                .write_all(&nl_request(self.family, seq, self.pid, &[r]))
                .unwrap();
            // One request object: one answer whose objects follow the
            // count (upstream queues them as a second message).
            let mut a = self.read_reply(seq, 1);
            let a = a.pop().unwrap();
            assert!(a.code >= 0, "dump refused: {}", a.code);
            assert_eq!(
                (a.code & !VR_MESSAGE_DUMP_INCOMPLETE) as usize,
                a.objects.len()
            );
            pages += 1;
            all.extend(a.objects);
            if a.code & VR_MESSAGE_DUMP_INCOMPLETE == 0 {
                return (all, pages);
            }
            assert!(pages < 1000);
        }
    }
}

fn vif(idx: i32) -> VrInterfaceReq {
    VrInterfaceReq {
        h_op: SandeshOp::Add,
        vifr_idx: idx,
        vifr_type: VifType::Virtual as i32,
        vifr_name: format!("cf{idx}"),
        vifr_mac: vec![0x02, 0xcf, 0, 0, 0, idx as u8],
        vifr_mtu: 1500,
        vifr_vrf: VRF,
        vifr_mcast_vrf: 65535,
        vifr_ip: ipv4_to_wire([198, 18, 7, idx as u8]),
        vifr_flags: (VifFlags::L3_ENABLED | VifFlags::L2_ENABLED).bits() as i32,
        ..Default::default()
    }
}

fn vif_op(idx: i32, op: SandeshOp) -> VrInterfaceReq {
    VrInterfaceReq {
        h_op: op,
        vifr_idx: idx,
        vifr_marker: -1,
        ..Default::default()
    }
}

/// Encap next hop `100 + k` out of one of the vifs.
fn encap_nh(k: i32) -> VrNexthopReq {
    let i = 3 + k % N;
    let mut encap = vec![0x02, 0xcf, 0, 0, 0, i as u8];
    encap.extend_from_slice(&[0x00, 0x00, 0x5e, 0x00, 0x01, 0x00, 0x08, 0x00]);
    VrNexthopReq {
        h_op: SandeshOp::Add,
        nhr_id: 100 + k,
        nhr_type: nh_type::ENCAP,
        nhr_family: AF_INET,
        nhr_flags: NhFlags::VALID.bits(),
        nhr_encap_oif_id: vec![i],
        nhr_encap: encap,
        nhr_vrf: VRF,
        ..Default::default()
    }
}

fn nh_op(id: i32, op: SandeshOp) -> VrNexthopReq {
    VrNexthopReq {
        h_op: op,
        nhr_id: id,
        nhr_marker: -1,
        ..Default::default()
    }
}

fn route4(op: SandeshOp, i: i32) -> VrRouteReq {
    VrRouteReq {
        h_op: op,
        rtr_vrf_id: VRF,
        rtr_family: i32::from(AF_INET),
        rtr_prefix: vec![198, 18, 8 + (i >> 8) as u8, i as u8],
        rtr_prefix_len: 32,
        rtr_nh_id: 100 + i,
        ..Default::default()
    }
}

fn route6(op: SandeshOp, i: i32) -> VrRouteReq {
    let mut a = vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    a.extend_from_slice(&(i as u16).to_be_bytes());
    VrRouteReq {
        rtr_family: i32::from(AF_INET6),
        rtr_prefix: a,
        rtr_prefix_len: 128,
        ..route4(op, i)
    }
}

fn bridge(op: SandeshOp, i: i32) -> VrRouteReq {
    VrRouteReq {
        h_op: op,
        rtr_vrf_id: VRF,
        rtr_family: i32::from(AF_BRIDGE),
        rtr_mac: vec![0x02, 0xcf, 0, 0, (i >> 8) as u8, i as u8],
        rtr_nh_id: 100 + i,
        ..Default::default()
    }
}

fn mpls(op: SandeshOp, i: i32) -> VrMplsReq {
    VrMplsReq {
        h_op: op,
        mr_label: 16 + i,
        mr_nhid: 100 + i,
        mr_marker: -1,
        ..Default::default()
    }
}

fn vxlan(op: SandeshOp, i: i32) -> VrVxlanReq {
    VrVxlanReq {
        h_op: op,
        vxlanr_vnid: 5000 + i,
        vxlanr_nhid: 100 + i,
        ..Default::default()
    }
}

fn vrf(op: SandeshOp, i: i32) -> VrVrfReq {
    VrVrfReq {
        h_op: op,
        vrf_idx: i,
        vrf_marker: -1,
        vrf_hbfl_vif_idx: -1,
        vrf_hbfr_vif_idx: -1,
        ..Default::default()
    }
}

/// A forward flow from vif `i`'s address to vif `i + 1`'s, TCP.
fn flow(i: i32, index: i32, gen: u8, active: bool) -> VrFlowReq {
    let key = dp_core::FlowKey::new_v4(
        6,
        40000 + i as u16,
        80,
        100 + i as u32,
        [198, 18, 7, i as u8],
        [198, 18, 7, i as u8 + 1],
    );
    let mut r = VrFlowReq {
        fr_op: FlowOp::FlowSet,
        fr_index: index,
        fr_rindex: -1,
        fr_gen_id: gen,
        fr_action: dp_core::flow::VR_FLOW_ACTION_FORWARD as i16,
        fr_flags: if active {
            dp_core::flow::VR_FLOW_FLAG_ACTIVE as i16
        } else {
            0
        },
        fr_flow_vrf: VRF as u16,
        fr_ecmp_nh_index: u32::MAX,
        ..Default::default()
    };
    set_flow_key(&mut r, &key);
    r
}

fn ids(v: &[Message], f: impl Fn(&Message) -> Option<i32>) -> Vec<i32> {
    v.iter()
        .map(|m| f(m).expect("object of the dumped kind"))
        .collect()
}

/// Every object type, agent style (family 10) for changes and tool style
/// (`0x20`) for reads, on one connection each.
#[test]
fn upstream_clients_get_upstream_framing_for_every_object() {
    let v = Vrouter::start();
    let mut agent = Client::connect(&v, AGENT_FAMILY);
    let mut tool = Client::connect(&v, UTIL_FAMILY);
    let range = 3..3 + N;
    let objs = 0..M;

    // vifs: one netlink message holding every ADD (upstream's bulk),
    // split over five writes.
    let adds: Vec<Message> = range.clone().map(|i| vif(i).into()).collect();
    let a = agent.bulk(&[adds], 5);
    assert!(a.iter().all(|a| a.code == 0), "{:?}\n{}", a, v.log());
    // next hops: one message per object, all in one write.
    let nhs: Vec<Vec<Message>> = objs.clone().map(|k| vec![encap_nh(k).into()]).collect();
    assert!(agent.bulk(&nhs, 1).iter().all(|a| a.code == 0));
    // routes, labels, VNIs, VRFs: mixed bulk messages, split in seven.
    let mut batches: Vec<Vec<Message>> = Vec::new();
    for i in objs.clone() {
        batches.push(vec![
            route4(SandeshOp::Add, i).into(),
            route6(SandeshOp::Add, i).into(),
            bridge(SandeshOp::Add, i).into(),
            mpls(SandeshOp::Add, i).into(),
            vxlan(SandeshOp::Add, i).into(),
            vrf(SandeshOp::Add, 10 + i).into(),
        ]);
    }
    let a = agent.bulk(&batches, 7);
    assert_eq!(a.len(), 6 * M as usize);
    assert!(a.iter().all(|a| a.code == 0), "{a:?}");

    // GET each kind (tool style).
    for i in [range.start, range.end - 1] {
        assert!(
            matches!(tool.get(vif_op(i, SandeshOp::Get)), Message::Interface(r) if r.vifr_name == format!("cf{i}"))
        );
    }
    for i in [objs.start, objs.end - 1] {
        assert!(
            matches!(tool.get(nh_op(100 + i, SandeshOp::Get)), Message::Nexthop(r) if r.nhr_encap_oif_id == [3 + i % N])
        );
        assert!(
            matches!(tool.get(route4(SandeshOp::Get, i)), Message::Route(r) if r.rtr_nh_id == 100 + i)
        );
        assert!(
            matches!(tool.get(route6(SandeshOp::Get, i)), Message::Route(r) if r.rtr_nh_id == 100 + i)
        );
        assert!(
            matches!(tool.get(bridge(SandeshOp::Get, i)), Message::Route(r) if r.rtr_nh_id == 100 + i)
        );
        assert!(
            matches!(tool.get(mpls(SandeshOp::Get, i)), Message::Mpls(r) if r.mr_nhid == 100 + i)
        );
        assert!(
            matches!(tool.get(vxlan(SandeshOp::Get, i)), Message::Vxlan(r) if r.vxlanr_nhid == 100 + i)
        );
        assert!(
            matches!(tool.get(vrf(SandeshOp::Get, 10 + i)), Message::Vrf(r) if r.vrf_idx == 10 + i)
        );
    }
    assert!(matches!(
        tool.get(VrDropStatsReq {
            h_op: SandeshOp::Get,
            ..Default::default()
        }),
        Message::DropStats(_)
    ));
    assert!(
        matches!(tool.get(VrouterOps { h_op: SandeshOp::Get, ..Default::default() }), Message::VrouterOps(o) if o.vo_interfaces == 256)
    );
    assert!(matches!(
        tool.get(VrMemStatsReq {
            h_op: SandeshOp::Get,
            ..Default::default()
        }),
        Message::MemStats(_)
    ));

    // DUMP each kind across pages, as upstream's tools page.
    let want: Vec<i32> = range.clone().collect();
    // (vif 2 is the datapath's own pkt0.)
    let (d, pages) = tool.dump(ksync::dump::vifs);
    assert!(pages > 1, "{pages} pages");
    let mut got = ids(&d, |m| match m {
        Message::Interface(r) => Some(r.vifr_idx),
        _ => None,
    });
    got.retain(|i| range.contains(i));
    assert_eq!(got, want);
    let want: Vec<i32> = objs.clone().collect();
    let (d, pages) = tool.dump(ksync::dump::nexthops);
    assert!(pages > 1, "{pages} pages");
    assert_eq!(
        ids(&d, |m| match m {
            Message::Nexthop(r) => Some(r.nhr_id - 100),
            _ => None,
        }),
        want
    );
    for family in [AF_INET, AF_INET6, AF_BRIDGE] {
        let (d, pages) = tool.dump(|last| ksync::dump::routes(VRF as u16, family, last));
        assert!(pages > 1, "family {family}: {pages} pages");
        assert_eq!(d.len(), M as usize, "family {family}");
    }
    let (d, pages) = tool.dump(ksync::dump::labels);
    assert!(pages > 1, "{pages} pages");
    assert_eq!(
        ids(&d, |m| match m {
            Message::Mpls(r) => Some(r.mr_label - 16),
            _ => None,
        }),
        want
    );
    let (d, pages) = tool.dump(ksync::dump::vnis);
    assert!(pages > 1, "{pages} pages");
    assert_eq!(
        ids(&d, |m| match m {
            Message::Vxlan(r) => Some(r.vxlanr_vnid - 5000),
            _ => None,
        }),
        want
    );
    let (d, pages) = tool.dump(|last| {
        VrVrfReq {
            h_op: SandeshOp::Dump,
            vrf_marker: match last {
                Some(Message::Vrf(r)) => r.vrf_idx,
                _ => -1,
            },
            ..Default::default()
        }
        .into()
    });
    assert!(pages > 1, "{pages} pages");
    let vrfs = ids(&d, |m| match m {
        Message::Vrf(r) => Some(r.vrf_idx),
        _ => None,
    });
    assert!(want.iter().all(|i| vrfs.contains(&(10 + i))), "{vrfs:?}");

    // Flows: agent style, new entries (index -1), then the table data,
    // then deletes by index and generation.
    let adds: Vec<Vec<Message>> = range
        .clone()
        .map(|i| vec![flow(i, -1, 0, true).into()])
        .collect();
    let a = agent.bulk(&adds, 3);
    let mut made = Vec::new();
    for a in &a {
        assert_eq!(a.code, 0, "{a:?}");
        match &a.objects[..] {
            [Message::FlowResponse(r)] => made.push((r.fresp_index, r.fresp_gen_id)),
            other => panic!("{other:?}"),
        }
    }
    let data = tool.get(VrFlowTableData {
        ftable_op: FlowOp::FlowTableGet,
        ..Default::default()
    });
    let Message::FlowTableData(data) = data else {
        panic!()
    };
    assert_eq!(data.ftable_used_entries, N as u64);
    assert!(
        data.ftable_file_path.ends_with("flow"),
        "{}",
        data.ftable_file_path
    );
    // Upstream's checks: a stale generation is -EBADF.
    let (i0, g0) = made[0];
    let a = agent.one(flow(range.start, i0 as i32, g0.wrapping_add(1), false));
    assert_eq!(a.code, -EBADF);
    let dels: Vec<Vec<Message>> = range
        .clone()
        .zip(&made)
        .map(|(i, (idx, gen))| vec![flow(i, *idx as i32, *gen, false).into()])
        .collect();
    let a = agent.bulk(&dels, 2);
    assert!(a.iter().all(|a| a.code == 0), "{a:?}");
    let Message::FlowTableData(data) = tool.get(VrFlowTableData {
        ftable_op: FlowOp::FlowTableGet,
        ..Default::default()
    }) else {
        panic!()
    };
    assert_eq!(data.ftable_used_entries, 0);

    // Errors as upstream numbers them.
    assert_eq!(tool.code(vif_op(200, SandeshOp::Del)), -ENODEV);
    assert_eq!(tool.one(vif_op(200, SandeshOp::Get)).code, -ENOENT);
    {
        // An unknown Sandesh name: upstream's decoder fails, -1.
        let seq = tool.next_seq();
        let mut bogus = Vec::new();
        sandesh::wire::write_sandesh_begin(&mut bogus, "vr_bogus_req");
        bogus.push(0);
        let mut m = nl_request(UTIL_FAMILY, seq, 1, &[]);
        m.extend_from_slice(&bogus);
        let total = m.len() as u32;
        m[..4].copy_from_slice(&total.to_ne_bytes());
        let nla = (4 + bogus.len()) as u16;
        m[20..22].copy_from_slice(&nla.to_ne_bytes());
        tool.s.write_all(&m).unwrap();
        let a = tool.read_reply(seq, 1);
        assert_eq!(a[0].code, -1);
    }

    // Deletes (agent style, bulk), then every dump is empty.
    let mut batches: Vec<Vec<Message>> = Vec::new();
    for i in objs.clone() {
        batches.push(vec![
            route4(SandeshOp::Del, i).into(),
            route6(SandeshOp::Del, i).into(),
            bridge(SandeshOp::Del, i).into(),
            mpls(SandeshOp::Del, i).into(),
            vxlan(SandeshOp::Del, i).into(),
            vrf(SandeshOp::Del, 10 + i).into(),
        ]);
    }
    let a = agent.bulk(&batches, 4);
    assert!(a.iter().all(|a| a.code == 0), "{a:?}");
    let nh_dels: Vec<Message> = objs
        .clone()
        .map(|i| nh_op(100 + i, SandeshOp::Del).into())
        .collect();
    assert!(agent.bulk(&[nh_dels], 2).iter().all(|a| a.code == 0));
    let vif_dels: Vec<Message> = range
        .clone()
        .map(|i| vif_op(i, SandeshOp::Del).into())
        .collect();
    assert!(agent.bulk(&[vif_dels], 1).iter().all(|a| a.code == 0));
    assert!(tool
        .dump(ksync::dump::vifs)
        .0
        .iter()
        .all(|m| matches!(m, Message::Interface(r) if !range.contains(&r.vifr_idx))));
    assert!(tool.dump(ksync::dump::nexthops).0.is_empty());
    assert!(tool.dump(ksync::dump::labels).0.is_empty());
    assert!(tool.dump(ksync::dump::vnis).0.is_empty());
    for family in [AF_INET, AF_INET6, AF_BRIDGE] {
        assert!(tool
            .dump(|l| ksync::dump::routes(VRF as u16, family, l))
            .0
            .is_empty());
    }

    let mut all = agent.deviations.clone();
    all.extend(tool.deviations.iter().cloned());
    let checked = agent.checked + tool.checked;
    // Always visible: how much was checked.
    let _ = writeln!(
        std::io::stderr(),
        "conformance: {checked} reply messages checked, {} framing deviations",
        all.len()
    );
    assert!(all.is_empty(), "framing deviations:\n{}", all.join("\n"));
    assert!(checked > 500, "{checked}");
}
