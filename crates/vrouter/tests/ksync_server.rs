//! The ksync server over a real `channels` socket, driven by `vrctl`'s
//! client library, with in-memory ports: ports opened by name (and refused
//! when the interface is missing), several connections at once, a broken
//! stream closing only itself, agent presence switching the new-flow
//! policy, and held frames following the agent's flow decisions. Needs no
//! root; runs wherever unix sockets do.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use channels::{KsyncConn, KsyncListener};
use dp_core::agent::{cmd, AgentHdr};
use dp_core::flow::table::{
    FlowEntry, VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_FLAG_ACTIVE,
};
use dp_core::testkit::{Topo, AGENT_VIF};
use dp_core::{DropReason, NewFlowPolicy, OffloadHint, RouterConfig, VifConfig, VROUTER_MAC};
use ksync::convert::{set_flow_key, vif_to_req};
use ksync::HostInfo;
use packet::checksum;
use sandesh::{
    FlowOp, Message, SandeshOp, VrFlowReq, VrFlowTableData, VrInterfaceReq, VrMplsReq,
    VrNexthopReq, VrRouteReq, VrVrfReq,
};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vrctl::client::SocketTransport;
use vrctl::{Client, ClientError};
use vrouter::mem::{MemPoller, MemPort, MemPortHandle};
use vrouter::offload::FastPath;
use vrouter::{Datapath, DatapathConfig, KsyncServer, Offloads, Port, PortOpener, ServerConfig};

const VRF: u16 = 1;
const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 1];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 2];
const VM1_IP: [u8; 4] = [198, 18, 0, 1];
const VM2_IP: [u8; 4] = [198, 18, 0, 2];
const FLOW_FILE: &str = "/dev/shm/test-flow-table";

/// Opens in-memory ports for the interface names it knows.
#[derive(Default)]
struct MemOpener {
    handles: Mutex<HashMap<String, MemPortHandle>>,
    opens: AtomicUsize,
}

impl MemOpener {
    const KNOWN: [&'static str; 3] = ["vm1", "vm2", "pkt0"];

    fn handle(&self, name: &str) -> MemPortHandle {
        self.handles.lock().unwrap()[name].clone()
    }
}

impl PortOpener for MemOpener {
    fn open(&self, cfg: &VifConfig) -> io::Result<Box<dyn Port>> {
        let name = cfg.name.as_str();
        if !Self::KNOWN.contains(&name) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface {name}"),
            ));
        }
        let (port, h) = MemPort::new(name, Offloads::default());
        // Numbered as interfaces: the recording fast path keys by it.
        let os = 10 + Self::KNOWN.iter().position(|k| *k == name).unwrap_or(0) as u32;
        let port = port.with_os_index(os);
        self.handles.lock().unwrap().insert(name.into(), h);
        self.opens.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(port))
    }
}

struct Rig {
    dp: Arc<Datapath>,
    server: Arc<KsyncServer>,
    opener: Arc<MemOpener>,
    sock: PathBuf,
    stop: watch::Sender<bool>,
    serving: Option<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Runtime,
    _tmp: tempfile::TempDir,
}

/// vm1 (vif 3, policy) and vm2 (vif 4, no policy) in VRF 1, configured in
/// the core but without ports until ksync adds them by name.
fn rig(idle_policy: NewFlowPolicy) -> Rig {
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, VRF, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, VRF, VM2_MAC, VM2_IP, [0; 16], false);
    let dp = Arc::new(
        Datapath::start(
            t.router,
            Box::new(MemPoller::new(Duration::from_millis(1))),
            None,
            DatapathConfig::default(),
        )
        .unwrap(),
    );
    let opener = Arc::new(MemOpener::default());
    let server = KsyncServer::new(
        Arc::clone(&dp),
        opener.clone(),
        ServerConfig {
            idle_policy,
            info: HostInfo {
                flow_table_path: FLOW_FILE.into(),
                ..HostInfo::default()
            },
            // Small pages: dumps take several round trips.
            page_size: 256,
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("dpdk_netlink");
    let listener = rt.block_on(async { KsyncListener::bind(&sock) }).unwrap();
    let (stop, stopped) = watch::channel(false);
    let serving = rt.spawn(Arc::clone(&server).serve(listener, stopped));
    Rig {
        dp,
        server,
        opener,
        sock,
        stop,
        serving: Some(serving),
        rt,
        _tmp: tmp,
    }
}

impl Rig {
    fn client(&self) -> Client<SocketTransport> {
        Client::connect(&self.sock).unwrap()
    }

    /// The ADD request of vif `idx` as the core has it, named `name`.
    fn vif_add_req(&self, idx: u16, name: &str) -> VrInterfaceReq {
        let v = self
            .dp
            .call(move |c| {
                c.mark_read_only();
                c.router().vif(idx).cloned()
            })
            .unwrap()
            .unwrap();
        VrInterfaceReq {
            vifr_name: name.into(),
            ..vif_to_req(&v, None, SandeshOp::Add)
        }
    }

    fn port_name(&self, idx: u16) -> Option<String> {
        self.dp.call(move |c| c.port_name(idx)).unwrap()
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.dp.drop_stats().unwrap().get(r)
    }

    /// The first flow entry in HOLD.
    fn held_flow(&self) -> Option<(u32, FlowEntry)> {
        self.dp
            .call(|c| {
                c.mark_read_only();
                c.router()
                    .flows()
                    .iter_valid()
                    .find(|(_, e)| e.is_hold())
                    .map(|(i, e)| (i, *e))
            })
            .unwrap()
    }

    /// Inject a frame on `h`'s port and wait until the loop has read it.
    fn inject(&self, h: &MemPortHandle, frame: &[u8]) {
        let before = self.dp.stats().unwrap().rx_frames;
        h.inject(vrouter::VnetHdr::NONE, frame);
        wait_until("the frame is read", || {
            self.dp.stats().unwrap().rx_frames > before
        });
    }

    fn shutdown(mut self) {
        self.stop.send(true).unwrap();
        let serving = self.serving.take().unwrap();
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), serving).await })
            .expect("serve ends on shutdown")
            .unwrap();
        assert!(!self.sock.exists(), "the socket file is removed");
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn udp_frame(src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], sport: u16) -> Vec<u8> {
    let mut f = VROUTER_MAC.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let payload = 18usize;
    let tot = (20 + 8 + payload) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&tot.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let c = checksum::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&5001u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend((0..payload).map(|i| i as u8));
    f
}

fn flow_set(fe: &FlowEntry, idx: u32, action: u16, flags: u16) -> VrFlowReq {
    let mut r = VrFlowReq {
        fr_op: FlowOp::FlowSet,
        fr_index: idx as i32,
        fr_rindex: -1,
        fr_action: action as i16,
        fr_flags: flags as i16,
        fr_gen_id: fe.gen_id,
        fr_ecmp_nh_index: u32::MAX,
        ..Default::default()
    };
    set_flow_key(&mut r, &fe.key);
    r
}

#[test]
fn vif_add_opens_ports_by_name_and_refuses_missing_interfaces() {
    let rig = rig(NewFlowPolicy::Hold);
    let mut c = rig.client();

    // No such interface: -ENODEV, and nothing changed.
    let before = rig.dp.call(|c| c.router().vif(3).cloned()).unwrap();
    let e = c.op(rig.vif_add_req(3, "nosuch0")).unwrap_err();
    assert!(matches!(e, ClientError::Vrouter(-19)), "{e}");
    assert_eq!(rig.dp.call(|c| c.router().vif(3).cloned()).unwrap(), before);
    assert_eq!(rig.port_name(3), None);
    assert_eq!(rig.opener.opens.load(Ordering::Relaxed), 0);

    c.op(rig.vif_add_req(3, "vm1")).unwrap();
    c.op(rig.vif_add_req(4, "vm2")).unwrap();
    assert_eq!(rig.port_name(3).as_deref(), Some("vm1"));
    assert_eq!(rig.port_name(4).as_deref(), Some("vm2"));
    assert_eq!(rig.opener.opens.load(Ordering::Relaxed), 2);

    // The agent re-sending a vif (here with a new MTU) keeps its port.
    let mut again = rig.vif_add_req(3, "vm1");
    again.vifr_mtu = 1400;
    c.op(again).unwrap();
    assert_eq!(rig.opener.opens.load(Ordering::Relaxed), 2);
    assert_eq!(
        rig.dp
            .call(|c| c.router().vif(3).map(|v| v.cfg.mtu))
            .unwrap(),
        Some(1400)
    );

    // A frame from a port ksync opened enters the datapath. vm2 has no
    // policy but vm1 has: as upstream (the destination's policy flag), the
    // frame waits for a flow decision, held while no agent decides it.
    let (vm1, vm2) = (rig.opener.handle("vm1"), rig.opener.handle("vm2"));
    rig.inject(&vm2, &udp_frame(VM2_MAC, VM2_IP, VM1_IP, 1000));
    assert!(
        vm1.take_tx().is_empty(),
        "not forwarded before a flow decision"
    );
    assert_eq!(rig.dp.stats().unwrap().held, 1, "held for the agent");

    // Delete: the port closes; the dump (paged) no longer lists the vif.
    c.op(VrInterfaceReq {
        h_op: SandeshOp::Del,
        vifr_idx: 4,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(rig.port_name(4), None);
    let vifs = c
        .dump(|last| {
            let marker = match last {
                Some(Message::Interface(v)) => v.vifr_idx,
                _ => -1,
            };
            VrInterfaceReq {
                h_op: SandeshOp::Dump,
                vifr_marker: marker,
                ..Default::default()
            }
            .into()
        })
        .unwrap();
    let idx: Vec<i32> = vifs
        .iter()
        .filter_map(|m| match m {
            Message::Interface(v) => Some(v.vifr_idx),
            _ => None,
        })
        .collect();
    assert_eq!(idx, [0, 1, 2, 3]);
    drop(c);
    rig.shutdown();
}

#[test]
fn connections_are_independent_and_a_broken_stream_closes_only_itself() {
    let rig = rig(NewFlowPolicy::Hold);
    let mut a = rig.client();
    let mut b = rig.client();
    let get = |c: &mut Client<SocketTransport>| {
        c.get(VrFlowTableData {
            ftable_op: FlowOp::FlowTableGet,
            ..Default::default()
        })
    };
    assert!(get(&mut a).is_ok() && get(&mut b).is_ok());
    wait_until("two sessions", || rig.server.sessions() == 2);

    // A request whose Sandesh payload is garbage: refused, connection kept.
    let mut bad = Vec::new();
    sandesh::frame::write_sandesh(
        &mut bad,
        &sandesh::frame::Meta {
            family: sandesh::frame::GENL_ID_VROUTER,
            flags: sandesh::frame::NLM_F_REQUEST,
            seq: 77,
            pid: 1,
            version: 0,
        },
        sandesh::frame::Style::Request,
        |o| o.extend_from_slice(&[0, 0, 0, 3, b'x', b'y', b'z', 0xff]),
    )
    .unwrap();
    let (answer, still_open) = rig.rt.block_on(async {
        let mut raw = KsyncConn::connect(&rig.sock).await.unwrap();
        raw.send(&bad).await.unwrap();
        let answer = raw.recv().await.unwrap().unwrap();
        // Then a netlink length below the header: framing lost.
        raw.write_raw(&[8, 0, 0, 0, 0x20, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let after = tokio::time::timeout(Duration::from_secs(5), raw.recv()).await;
        (answer, after)
    });
    let frames: Vec<_> = sandesh::frame::parse_all(&answer)
        .collect::<Result<_, _>>()
        .unwrap();
    let sandesh::frame::Frame::Sandesh {
        header, payload, ..
    } = &frames[0]
    else {
        panic!("{frames:?}")
    };
    assert_eq!(header.seq, 77);
    match Message::decode_all(payload).unwrap().first() {
        Some(Message::Response(r)) => assert!(r.resp_code < 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(still_open, Ok(Ok(None)) | Ok(Err(_))),
        "the broken stream is closed: {still_open:?}"
    );

    // The others never noticed. (The broken session's count drops after
    // its socket closes, which the client may see first.)
    assert!(get(&mut a).is_ok() && get(&mut b).is_ok());
    wait_until("the broken session ends", || rig.server.sessions() == 2);
    drop((a, b));
    wait_until("sessions end", || rig.server.sessions() == 0);
    assert_eq!(rig.server.agents(), 0);
    rig.shutdown();
}

#[test]
fn agent_presence_sets_the_new_flow_policy_and_held_frames_follow_flow_sets() {
    let rig = rig(NewFlowPolicy::Drop);
    // An operator (not an agent) wires the ports.
    let mut op = rig.client();
    op.op(rig.vif_add_req(3, "vm1")).unwrap();
    op.op(rig.vif_add_req(4, "vm2")).unwrap();
    assert_eq!(rig.server.agents(), 0);
    let (vm1, vm2) = (rig.opener.handle("vm1"), rig.opener.handle("vm2"));
    let from_vm1 = |sport| udp_frame(VM1_MAC, VM1_IP, VM2_IP, sport);

    // No agent, idle policy drop: a new flow is dropped, no entry made.
    rig.inject(&vm1, &from_vm1(1000));
    assert_eq!(rig.drops(DropReason::DropNewFlow), 1);
    assert!(rig.held_flow().is_none());

    // The agent connects and adds its vif: new flows are held and trapped.
    let mut agent = rig.client();
    agent.op(rig.vif_add_req(AGENT_VIF, "pkt0")).unwrap();
    assert_eq!(rig.server.agents(), 1);
    let pkt0 = rig.opener.handle("pkt0");
    rig.inject(&vm1, &from_vm1(1001));
    let (idx, fe) = rig.held_flow().expect("a HOLD entry");
    assert_eq!(rig.dp.stats().unwrap().held, 1);
    let traps = pkt0.take_tx();
    assert_eq!(traps.len(), 1);
    let hdr = AgentHdr::parse(&traps[0].1[14..]).unwrap();
    assert_eq!((hdr.cmd, hdr.ifindex), (cmd::FLOW_MISS, 3));

    // FLOW_SET forward: the held frame is re-injected and reaches vm2.
    agent
        .op(flow_set(
            &fe,
            idx,
            VR_FLOW_ACTION_FORWARD,
            VR_FLOW_FLAG_ACTIVE,
        ))
        .unwrap();
    let out = vm2.take_tx();
    assert_eq!(out.len(), 1, "the held frame was released");
    assert_eq!(rig.dp.stats().unwrap().reinjected, 1);

    // A second flow, deleted by the agent: its held frame is dropped.
    rig.inject(&vm1, &from_vm1(1002));
    let (idx2, fe2) = rig.held_flow().expect("a second HOLD entry");
    agent
        .op(flow_set(&fe2, idx2, VR_FLOW_ACTION_DROP, 0))
        .unwrap();
    assert_eq!(rig.dp.stats().unwrap().hold_dropped, 1);
    assert!(vm2.take_tx().is_empty());

    // The host's facts reach the agent (where to map the flow table).
    let Message::FlowTableData(d) = agent
        .get(VrFlowTableData {
            ftable_op: FlowOp::FlowTableGet,
            ..Default::default()
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(d.ftable_file_path, FLOW_FILE);
    assert_eq!(d.ftable_added, 0);
    assert_eq!((d.ftable_processed, d.ftable_deleted), (1, 1));

    // The agent goes away: installed flows keep forwarding, new ones follow
    // the idle policy again.
    drop(agent);
    wait_until("the agent is gone", || rig.server.agents() == 0);
    rig.inject(&vm1, &from_vm1(1001));
    assert_eq!(vm2.take_tx().len(), 1, "the installed flow forwards");
    rig.inject(&vm1, &from_vm1(1003));
    assert_eq!(rig.drops(DropReason::DropNewFlow), 2);
    assert!(vm2.take_tx().is_empty());

    // An operator connection never counts as the agent.
    op.op(rig.vif_add_req(4, "vm2")).unwrap();
    assert_eq!(rig.server.agents(), 0);
    drop(op);
    rig.shutdown();
}

/// A fast path that records the entries the datapath installs (interface,
/// flow index), in place of the kernel's map.
#[derive(Clone, Default)]
struct RecordingFastPath {
    entries: Arc<Mutex<HashSet<(u32, u32)>>>,
}

impl RecordingFastPath {
    fn flows(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.entries.lock().unwrap().iter().map(|e| e.1).collect();
        v.sort_unstable();
        v
    }
}

impl FastPath for RecordingFastPath {
    fn attach(&mut self, _port: &dyn Port) -> io::Result<()> {
        Ok(())
    }
    fn detach(&mut self, os_index: u32) {
        self.entries.lock().unwrap().retain(|e| e.0 != os_index);
    }
    fn insert(&mut self, in_os: u32, _out_os: u32, h: &OffloadHint) -> io::Result<()> {
        self.entries.lock().unwrap().insert((in_os, h.flow));
        Ok(())
    }
    fn remove(&mut self, in_os: u32, h: &OffloadHint) {
        self.entries.lock().unwrap().remove(&(in_os, h.flow));
    }
    fn counters(&self, _in_os: u32, _h: &OffloadHint) -> Option<(u64, u64)> {
        Some((0, 0))
    }
}

/// `fp` enabled, the agent connected with vm1 and vm2 added through ksync,
/// and per source port a flow from vm1 to vm2 decided FORWARD and
/// offloaded (its next frame installs it): the agent's client and each
/// flow's index and entry.
fn agent_with_offloaded_flows(
    rig: &Rig,
    fp: &RecordingFastPath,
    sports: &[u16],
) -> (Client<SocketTransport>, Vec<(u32, FlowEntry)>) {
    rig.dp.enable_fast_path(Box::new(fp.clone())).unwrap();
    let mut agent = rig.client();
    agent.op(rig.vif_add_req(AGENT_VIF, "pkt0")).unwrap();
    agent.op(rig.vif_add_req(3, "vm1")).unwrap();
    agent.op(rig.vif_add_req(4, "vm2")).unwrap();
    let vm1 = rig.opener.handle("vm1");
    let mut flows = Vec::new();
    for &sport in sports {
        let frame = udp_frame(VM1_MAC, VM1_IP, VM2_IP, sport);
        rig.inject(&vm1, &frame);
        let (idx, fe) = rig.held_flow().expect("a HOLD entry");
        agent
            .op(flow_set(
                &fe,
                idx,
                VR_FLOW_ACTION_FORWARD,
                VR_FLOW_FLAG_ACTIVE,
            ))
            .unwrap();
        rig.inject(&vm1, &frame);
        wait_until("the flow is offloaded", || fp.flows().contains(&idx));
        flows.push((idx, fe));
    }
    (agent, flows)
}

/// The agent sets up flows all the time: a buffer of flow requests removes
/// only its own flows' fast-path entries (and a DROP takes effect at
/// once); reads leave every entry; a configuration request empties the
/// fast path.
#[test]
fn flow_requests_forget_only_their_flows_in_the_fast_path_and_config_empties_it() {
    let rig = rig(NewFlowPolicy::Hold);
    let fp = RecordingFastPath::default();
    let (mut agent, flows) = agent_with_offloaded_flows(&rig, &fp, &[3001, 3002]);
    let [(a, fe_a), (b, _)] = flows[..] else {
        panic!()
    };
    let (vm1, vm2) = (rig.opener.handle("vm1"), rig.opener.handle("vm2"));
    let from_vm1 = |sport| udp_frame(VM1_MAC, VM1_IP, VM2_IP, sport);
    let stats = || rig.dp.offload_stats().unwrap().unwrap();
    assert_eq!(fp.flows(), vec![a.min(b), a.max(b)], "setting up b kept a");
    assert_eq!(stats().flushes, 0, "{:?}", stats());
    assert_eq!(vm2.take_tx().len(), 4, "held and next frames delivered");

    // The agent drops flow a: its entry goes with the request, b's stays,
    // and a's next frame is dropped by the core.
    agent
        .op(flow_set(&fe_a, a, VR_FLOW_ACTION_DROP, VR_FLOW_FLAG_ACTIVE))
        .unwrap();
    assert_eq!(fp.flows(), vec![b]);
    assert_eq!(stats().forgotten, 1, "{:?}", stats());
    rig.inject(&vm1, &from_vm1(3001));
    assert!(vm2.take_tx().is_empty(), "a dropped flow delivers nothing");
    assert_eq!(fp.flows(), vec![b], "a DROP flow is not offloaded");

    // Reads leave the fast path alone.
    let _ = agent
        .get(VrInterfaceReq {
            h_op: SandeshOp::Get,
            vifr_idx: 4,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(fp.flows(), vec![b]);
    assert_eq!(stats().flushes, 0, "{:?}", stats());

    // A vif written again changed removes the entries of the flows
    // through it (b goes to vm2), without a flush.
    agent
        .op(VrInterfaceReq {
            vifr_mtu: 1400,
            ..rig.vif_add_req(4, "vm2")
        })
        .unwrap();
    assert!(fp.flows().is_empty(), "{:?}", stats());
    assert_eq!((stats().flushes, stats().rerouted), (0, 1), "{:?}", stats());
    rig.inject(&vm1, &from_vm1(3002));
    wait_until("b offloaded again", || fp.flows() == vec![b]);

    // A configuration request not scoped (a VRF deleted) empties it; the
    // VRF's add left the entry.
    let vrf = |h_op| VrVrfReq {
        h_op,
        vrf_idx: 2,
        ..Default::default()
    };
    agent.op(vrf(SandeshOp::Add)).unwrap();
    assert_eq!(fp.flows(), vec![b]);
    agent.op(vrf(SandeshOp::Del)).unwrap();
    assert!(fp.flows().is_empty(), "config change flushed the fast path");
    assert_eq!(stats().flushes, 1, "{:?}", stats());
    drop(agent);
    rig.shutdown();
}

/// In a cluster routes come and go with every container started anywhere:
/// a buffer of route requests (and objects added at free indexes) removes
/// only the fast-path entries of flows the routes may redirect, and the
/// redirected flow follows the new route at once.
#[test]
fn route_requests_forget_only_the_flows_they_may_redirect() {
    let rig = rig(NewFlowPolicy::Hold);
    let fp = RecordingFastPath::default();
    let (mut agent, flows) = agent_with_offloaded_flows(&rig, &fp, &[3001, 3002]);
    let mut flows: Vec<u32> = flows.iter().map(|f| f.0).collect();
    let (vm1, vm2) = (rig.opener.handle("vm1"), rig.opener.handle("vm2"));
    let from_vm1 = |sport| udp_frame(VM1_MAC, VM1_IP, VM2_IP, sport);
    let stats = || rig.dp.offload_stats().unwrap().unwrap();
    flows.sort_unstable();
    assert_eq!(vm2.take_tx().len(), 4);
    let route = |prefix: [u8; 4], plen: i32, nh: i32| VrRouteReq {
        h_op: SandeshOp::Add,
        rtr_family: 2,
        rtr_vrf_id: i32::from(VRF),
        rtr_prefix: prefix.to_vec(),
        rtr_prefix_len: plen,
        rtr_nh_id: nh,
        ..Default::default()
    };

    // A receive next hop at a free index (60), added, rewritten, changed.
    let nh60 = VrNexthopReq {
        h_op: SandeshOp::Add,
        nhr_type: 1,
        nhr_family: 2,
        nhr_id: 60,
        nhr_vrf: i32::from(VRF),
        nhr_flags: 1,
        ..Default::default()
    };

    // Routes elsewhere, a MAC route, a new next hop and label: nothing goes.
    agent.op(route([10, 99, 0, 0], 16, 0)).unwrap();
    agent.op(route([198, 18, 0, 77], 32, 0)).unwrap();
    agent
        .op(VrRouteReq {
            h_op: SandeshOp::Add,
            rtr_family: 7,
            rtr_vrf_id: i32::from(VRF),
            rtr_mac: vec![0x02, 0x33, 0, 0, 0, 1],
            rtr_nh_id: 0,
            ..Default::default()
        })
        .unwrap();
    agent.op(nh60.clone()).unwrap();
    agent
        .op(VrMplsReq {
            h_op: SandeshOp::Add,
            mr_label: 90,
            mr_nhid: 60,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(fp.flows(), flows, "{:?}", stats());
    let st = stats();
    assert_eq!((st.flushes, st.rerouted), (0, 0), "{st:?}");
    assert!(st.scoped_changes >= 3, "{st:?}");
    rig.inject(&vm1, &from_vm1(3001));
    assert_eq!(vm2.take_tx().len(), 1, "still forwarded");

    // A next hop written again unchanged leaves the fast path; changed in
    // place, it empties it, and the flows' next frames install them again.
    agent.op(nh60.clone()).unwrap();
    assert_eq!(fp.flows(), flows, "written again unchanged: {:?}", stats());
    agent.op(VrNexthopReq { nhr_vrf: 2, ..nh60 }).unwrap();
    assert!(fp.flows().is_empty(), "{:?}", stats());
    assert_eq!(stats().flushes, 1, "{:?}", stats());
    for sport in [3001, 3002] {
        rig.inject(&vm1, &from_vm1(sport));
    }
    wait_until("both flows offloaded again", || fp.flows() == flows);
    assert_eq!(vm2.take_tx().len(), 2);

    // VM2's /32 to the discard next hop: both flows go to VM2, both
    // entries go, and the core drops the next frame by the new route.
    agent.op(route(VM2_IP, 32, 0)).unwrap();
    assert!(fp.flows().is_empty(), "{:?}", stats());
    let st = stats();
    assert_eq!((st.flushes, st.rerouted), (1, 2), "{st:?}");
    rig.inject(&vm1, &from_vm1(3001));
    assert!(vm2.take_tx().is_empty(), "the new route discards");
    assert!(fp.flows().is_empty(), "not installed again");
    drop(agent);
    rig.shutdown();
}

/// A client that writes a long run of requests before reading any answer
/// (a pipelining agent, or `vrctl` fed a script) must get every answer:
/// the server keeps reading while its answers wait for the client to read.
/// Before answers were written from their own task, the server blocked on
/// its answer write once the socket buffers filled, stopped reading, and
/// both sides waited for ever.
#[test]
fn a_client_that_writes_before_reading_gets_every_answer() {
    const N: usize = 20_000;
    let rig = rig(NewFlowPolicy::Hold);
    let mut req = Vec::new();
    for seq in 0..N {
        sandesh::frame::write_sandesh(
            &mut req,
            &sandesh::frame::Meta {
                family: sandesh::frame::GENL_ID_VROUTER,
                flags: sandesh::frame::NLM_F_REQUEST,
                seq: seq as u32,
                pid: 1,
                version: 0,
            },
            sandesh::frame::Style::Request,
            |o| {
                Message::FlowTableData(VrFlowTableData {
                    ftable_op: FlowOp::FlowTableGet,
                    ..Default::default()
                })
                .encode(o)
            },
        )
        .unwrap();
    }
    let answered = rig.rt.block_on(async {
        let conn = KsyncConn::connect(&rig.sock).await.unwrap();
        let (mut rx, mut tx) = conn.into_split();
        // Every request is written before a single answer is read.
        let written = tokio::time::timeout(Duration::from_secs(20), tx.send(&req)).await;
        assert!(
            matches!(written, Ok(Ok(()))),
            "the server stopped reading: {} bytes of requests not taken ({written:?})",
            req.len()
        );
        let mut seqs = Vec::with_capacity(N);
        while seqs.len() < N {
            let m = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("answers keep coming")
                .unwrap()
                .expect("connection open");
            for f in sandesh::frame::parse_all(&m) {
                seqs.push(f.unwrap().header().seq);
            }
        }
        seqs
    });
    assert_eq!(answered.len(), N);
    assert!(
        answered.iter().enumerate().all(|(i, s)| *s == i as u32),
        "answers in request order"
    );
    rig.shutdown();
}

/// One request as the agent writes it.
fn request(seq: u32, m: Message) -> Vec<u8> {
    let mut out = Vec::new();
    sandesh::frame::write_sandesh(
        &mut out,
        &sandesh::frame::Meta {
            family: sandesh::frame::GENL_ID_VROUTER,
            flags: sandesh::frame::NLM_F_REQUEST,
            seq,
            pid: 1,
            version: 0,
        },
        sandesh::frame::Style::Request,
        |o| m.encode(o),
    )
    .unwrap();
    out
}

/// A connection does not wait for the loop before it queues its next
/// batch. Batches written while the loop is busy run in order once it is
/// free: a FLOW_SET and the configuration read written after it are
/// answered in order and the read sees the flow set; the held frame is
/// released exactly once although its FLOW_SET comes twice; and a
/// connection that closed before its FLOW_SET ran counts as the agent
/// only until then (its close is applied after its batches).
#[test]
fn batches_queued_while_the_loop_is_busy_run_in_order_and_a_close_after_them() {
    let rig = rig(NewFlowPolicy::Drop);
    let mut op = rig.client();
    op.op(rig.vif_add_req(3, "vm1")).unwrap();
    op.op(rig.vif_add_req(4, "vm2")).unwrap();
    let (vm1, vm2) = (rig.opener.handle("vm1"), rig.opener.handle("vm2"));
    let mut agent = rig.client();
    agent.op(rig.vif_add_req(AGENT_VIF, "pkt0")).unwrap();
    assert_eq!(rig.server.agents(), 1);
    rig.inject(&vm1, &udp_frame(VM1_MAC, VM1_IP, VM2_IP, 2001));
    rig.inject(&vm1, &udp_frame(VM1_MAC, VM1_IP, VM2_IP, 2002));
    let held: Vec<(u32, FlowEntry)> = rig
        .dp
        .call(|c| {
            c.mark_read_only();
            c.router()
                .flows()
                .iter_valid()
                .filter(|(_, e)| e.is_hold())
                .map(|(i, e)| (i, *e))
                .collect()
        })
        .unwrap();
    let from = |sport: u16| {
        *held
            .iter()
            .find(|(_, e)| e.key.sport == sport.to_be())
            .expect("a HOLD entry per flow")
    };
    let ((idx1, fe1), (idx2, fe2)) = (from(2001), from(2002));
    let set = |seq, idx, fe: &FlowEntry| {
        request(
            seq,
            Message::Flow(flow_set(
                fe,
                idx,
                VR_FLOW_ACTION_FORWARD,
                VR_FLOW_FLAG_ACTIVE,
            )),
        )
    };
    let table = |seq| {
        request(
            seq,
            Message::FlowTableData(VrFlowTableData {
                ftable_op: FlowOp::FlowTableGet,
                ..Default::default()
            }),
        )
    };

    // The loop is busy until `go`.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    rig.dp
        .post(move |_| {
            let _ = wait.recv_timeout(Duration::from_secs(10));
        })
        .unwrap();
    let answers = rig.rt.block_on(async {
        let gap = Duration::from_millis(100);
        let mut a = KsyncConn::connect(&rig.sock).await.unwrap();
        // Three writes, each read as a batch of its own.
        a.send(&set(1, idx1, &fe1)).await.unwrap();
        tokio::time::sleep(gap).await;
        a.send(&table(2)).await.unwrap();
        tokio::time::sleep(gap).await;
        a.send(&set(3, idx1, &fe1)).await.unwrap();
        // Another connection sets the second flow and closes at once.
        let mut b = KsyncConn::connect(&rig.sock).await.unwrap();
        b.send(&set(7, idx2, &fe2)).await.unwrap();
        drop(b);
        tokio::time::sleep(gap).await;
        assert!(
            vm2.take_tx().is_empty(),
            "nothing ran while the loop was busy"
        );
        go.send(()).unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            let m = tokio::time::timeout(Duration::from_secs(5), a.recv())
                .await
                .expect("answers come")
                .unwrap()
                .expect("connection open");
            for f in sandesh::frame::parse_all(&m) {
                let sandesh::frame::Frame::Sandesh {
                    header, payload, ..
                } = f.unwrap()
                else {
                    panic!("not a Sandesh answer")
                };
                got.push((header.seq, Message::decode_all(payload).unwrap()));
            }
        }
        got
    });
    let seqs: Vec<u32> = answers.iter().map(|a| a.0).collect();
    assert_eq!(seqs, [1, 2, 3], "answers in request order");
    // The read written after the first FLOW_SET saw it, and not the
    // second connection's FLOW_SET written after the read. (A connection
    // that waited for each batch's answer before reading the next left
    // the read in its socket while the other connection's FLOW_SET was
    // queued: 2.)
    let processed = answers[1]
        .1
        .iter()
        .find_map(|m| match m {
            Message::FlowTableData(d) => Some(d.ftable_processed),
            _ => None,
        })
        .expect("flow table data");
    assert_eq!(processed, 1);
    wait_until("both held frames are out", || {
        rig.dp.stats().unwrap().reinjected >= 2
    });
    assert_eq!(rig.dp.stats().unwrap().reinjected, 2, "each once");
    assert_eq!(vm2.take_tx().len(), 2);
    // The closed connection acted as the agent, then left.
    wait_until("the closed agent is gone", || {
        rig.server.sessions() == 2 && rig.server.agents() == 1
    });
    drop(agent);
    wait_until("no agent", || rig.server.agents() == 0);
    rig.inject(&vm1, &udp_frame(VM1_MAC, VM1_IP, VM2_IP, 2003));
    assert_eq!(
        rig.drops(DropReason::DropNewFlow),
        1,
        "the idle policy is back"
    );
    drop(op);
    rig.shutdown();
}
