//! The ksync protocol and pkt0 over the real transports: a datapath (a
//! `Handler` over a `Router` whose flow table lives in a `FlowShm`
//! mapping, served on a `channels::KsyncListener`) and an agent exchange
//! real netlink + Sandesh bytes over a unix socket on Linux and a named
//! pipe on Windows (the Windows lane runs this under Wine):
//!
//! * the agent programs a topology (vifs, next hops, routes, labels), each
//!   kind batched into one write, and dumps it back, paged;
//! * it asks for the flow table and maps it by the path in the answer;
//! * pkt0 frames with a real `agent_hdr` go both ways: the agent switches
//!   a frame out of a vif, the datapath traps a new flow to the agent, the
//!   agent decides the flow over ksync and sees it in the shared table.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use channels::ksync::NlMsgHdr;
use channels::pkt0::PKT0_MAX_FRAME;
use channels::{ChannelPaths, FlowShm, KsyncConn, KsyncListener, Pkt0Agent, Pkt0Datapath};
use common::{answers, code, request, Answer, TestHost};
use dp_core::agent::{cmd, AgentHdr, AGENT_HDR_LEN};
use dp_core::flow::table::{VR_FLOW_ACTION_FORWARD, VR_FLOW_FLAG_ACTIVE};
use dp_core::testkit::{Topo, AGENT_MAC, AGENT_VIF};
use dp_core::{Action, Actions, Nexthop, Packet, Prefix, Router, RouterConfig, HEADROOM};
use ksync::convert::{
    bridge_route_to_req, inet_route_to_req, nh_from_req, nh_to_req, set_flow_key, vif_to_req,
};
use ksync::{Handler, HostInfo, VR_MESSAGE_DUMP_INCOMPLETE};
use sandesh::frame::{NLMSG_DONE, NLM_F_MULTI};
use sandesh::{
    FlowOp, Message, SandeshOp, VrFlowReq, VrFlowTableData, VrInterfaceReq, VrMplsReq,
    VrNexthopReq, VrRouteReq,
};

const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 1];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 2];
const VM1_IP: [u8; 4] = [198, 18, 0, 1];
const VM2_IP: [u8; 4] = [198, 18, 0, 2];

/// Fail instead of hanging.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
}

/// The datapath: what a host keeps on its loop.
struct Datapath {
    router: Router,
    handler: Handler,
    host: TestHost,
}

type Shared = Arc<Mutex<Datapath>>;

fn lock(d: &Shared) -> MutexGuard<'_, Datapath> {
    d.lock().unwrap()
}

/// Accept connections; each one's messages go through the shared handler.
async fn serve_ksync(mut listener: KsyncListener, dp: Shared) {
    while let Ok(mut conn) = listener.accept().await {
        let dp = Arc::clone(&dp);
        tokio::spawn(async move {
            while let Ok(Some(msg)) = conn.recv().await {
                let mut out = Vec::new();
                let handled = {
                    let mut d = lock(&dp);
                    let Datapath {
                        router,
                        handler,
                        host,
                    } = &mut *d;
                    handler.handle(router, host, &msg, &mut out)
                };
                if !out.is_empty() && conn.send(&out).await.is_err() {
                    break;
                }
                if handled.malformed.is_some() {
                    break;
                }
            }
        });
    }
}

/// What the core did with one frame.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Tx(u16, Vec<u8>),
    Hold(u32),
    Other,
}

/// Run `frame` through the core as received on `vif`.
fn run(dp: &Shared, vif: u16, frame: &[u8]) -> Vec<Out> {
    let mut d = lock(dp);
    let mut buf = vec![0u8; HEADROOM + frame.len()];
    buf[HEADROOM..].copy_from_slice(frame);
    let mut pkts = [Packet::new(&mut buf, HEADROOM, frame.len()).unwrap()];
    let mut acts = Actions::with_capacity(16);
    d.router.process(vif, &mut pkts, &mut acts);
    acts.as_slice()
        .iter()
        .map(|a| match *a {
            Action::Tx { pkt, vif } => Out::Tx(vif, pkts[pkt as usize].data().to_vec()),
            Action::TxCopy {
                pkt,
                vif,
                prepend,
                from,
                to,
            } => {
                let mut b = acts.prepend(prepend).to_vec();
                b.extend_from_slice(&pkts[pkt as usize].data()[from as usize..to as usize]);
                Out::Tx(vif, b)
            }
            Action::Hold { flow, .. } => Out::Hold(flow),
            _ => Out::Other,
        })
        .collect()
}

/// The agent's ksync side.
struct Agent {
    conn: KsyncConn,
    seq: u32,
}

impl Agent {
    /// Each object as its own request, all in one write; each request's
    /// answer messages.
    async fn batch(&mut self, objs: &[Message]) -> Vec<Vec<Answer>> {
        let first = self.seq + 1;
        let mut buf = Vec::new();
        for o in objs {
            self.seq += 1;
            buf.extend(request(std::slice::from_ref(o), self.seq));
        }
        within(self.conn.send(&buf)).await.unwrap();
        let mut all = Vec::new();
        for seq in first..=self.seq {
            all.push(self.answer(seq).await);
        }
        all
    }

    /// The messages answering request `seq`: one, or a multipart run up to
    /// NLMSG_DONE (framing checked by `common::answers`).
    async fn answer(&mut self, seq: u32) -> Vec<Answer> {
        let mut bytes = Vec::new();
        loop {
            let m = within(self.conn.recv()).await.unwrap().expect("open");
            let h = NlMsgHdr::parse(&m).unwrap();
            bytes.extend_from_slice(&m);
            if h.ty == NLMSG_DONE || h.flags & NLM_F_MULTI == 0 {
                break;
            }
        }
        let mut a = answers(&bytes, sandesh::frame::Framing::NATIVE);
        assert_eq!(a.len(), 1);
        let (s, group) = a.pop().unwrap();
        assert_eq!(s, seq);
        group
    }

    /// Every request in one write must succeed.
    async fn add_all(&mut self, objs: Vec<Message>) {
        let n = objs.len();
        let res = self.batch(&objs).await;
        assert_eq!(res.len(), n);
        for (o, a) in objs.iter().zip(&res) {
            assert_eq!(a.len(), 1, "{o:?}: {a:?}");
            assert_eq!(code(&a[0]), 0, "{o:?}");
        }
    }

    async fn one(&mut self, m: Message) -> Answer {
        let mut g = self.batch(&[m]).await.remove(0);
        assert_eq!(g.len(), 1);
        g.remove(0)
    }

    /// A whole dump, paged as upstream clients page it.
    async fn dump(&mut self, mut req: impl FnMut(Option<&Message>) -> Message) -> Vec<Message> {
        let mut all: Vec<Message> = Vec::new();
        let mut pages = 0;
        loop {
            let g = self.batch(&[req(all.last())]).await.remove(0);
            let c = code(&g[0]);
            assert!(c >= 0, "dump failed: {c}");
            all.extend(g.get(1).cloned().unwrap_or_default());
            pages += 1;
            if c & VR_MESSAGE_DUMP_INCOMPLETE == 0 {
                break;
            }
            assert!(pages < 100, "dump does not end");
        }
        all
    }
}

/// The IPv4 header checksum of `h` (its checksum field zero).
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn udp_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 38, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let c = ipv4_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 18, 0, 0]);
    f.extend_from_slice(&[0x5a; 10]);
    f
}

/// The topology the agent programs, built on a scratch router, as ADD
/// requests grouped by kind (in dependency order).
fn topology() -> (Topo, Vec<Vec<Message>>) {
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], false);
    let r = &t.router;
    let add = SandeshOp::Add;
    let vifs = r
        .vifs()
        .iter()
        .map(|v| vif_to_req(v, None, add).into())
        .collect();
    let nhs = r.nexthops().map(|n| nh_to_req(n, add).into()).collect();
    let mut routes: Vec<Message> = Vec::new();
    for vrf in [0u16, 1] {
        if let Some(tbl) = r.routes().vrf(vrf) {
            routes.extend(
                tbl.inet4
                    .iter_from(None)
                    .map(|(a, l, d)| inet_route_to_req(vrf, Prefix::V4(a, l), &d, add).into()),
            );
        }
        routes.extend(
            r.routes()
                .bridge_iter(vrf)
                .map(|(m, e)| bridge_route_to_req(vrf, m, &e, add).into()),
        );
    }
    let labels = r
        .mpls()
        .iter()
        .map(|(l, nh)| {
            VrMplsReq {
                h_op: add,
                mr_label: l as i32,
                mr_nhid: nh as i32,
                ..Default::default()
            }
            .into()
        })
        .collect();
    (t, vec![vifs, nhs, routes, labels])
}

#[tokio::test]
async fn ksync_and_pkt0_over_the_real_transport() {
    let dir = tempfile::tempdir().unwrap();
    let paths = ChannelPaths::new(dir.path());

    // ---- the datapath -----------------------------------------------------
    let cfg = RouterConfig::small();
    let table = FlowShm::create(&paths.flow_shm, cfg.flow_entries, cfg.oflow_entries)
        .unwrap()
        .into_flow_table()
        .unwrap();
    let host = TestHost {
        info: HostInfo {
            flow_table_path: paths.flow_shm.display().to_string(),
            ..HostInfo::default()
        },
        ..TestHost::default()
    };
    let dp: Shared = Arc::new(Mutex::new(Datapath {
        router: Router::with_flow_table(cfg, table),
        // Small pages: every dump takes several round trips.
        handler: Handler::with_page_size(400),
        host,
    }));
    let listener = KsyncListener::bind(&paths.ksync).unwrap();
    let server = tokio::spawn(serve_ksync(listener, Arc::clone(&dp)));
    let mut pkt0 = Pkt0Datapath::bind(&paths).unwrap();
    let trap_tx = pkt0.sender();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let pkt0_dp = Arc::clone(&dp);
    // Frames from the agent enter the core on the agent vif (on Windows
    // the pipe is also accepted inside this `recv`).
    let pkt0_task = tokio::spawn(async move {
        let mut buf = vec![0u8; PKT0_MAX_FRAME];
        while let Ok(n) = pkt0.recv(&mut buf).await {
            for o in run(&pkt0_dp, AGENT_VIF, &buf[..n]) {
                let _ = out_tx.send(o);
            }
        }
    });

    // ---- the agent: program the topology, dump it back -----------------------
    let mut agent = Agent {
        conn: within(KsyncConn::connect(&paths.ksync)).await.unwrap(),
        seq: 0,
    };
    let (scratch, groups) = topology();
    for g in groups {
        agent.add_all(g).await;
    }
    // A second client (an operator tool) next to the agent.
    let mut tool = Agent {
        conn: within(KsyncConn::connect(&paths.ksync)).await.unwrap(),
        seq: 100,
    };

    let vifs = tool
        .dump(|last| {
            VrInterfaceReq {
                h_op: SandeshOp::Dump,
                vifr_marker: match last {
                    Some(Message::Interface(v)) => v.vifr_idx,
                    _ => -1,
                },
                ..Default::default()
            }
            .into()
        })
        .await;
    let want: Vec<_> = scratch.router.vifs().iter().collect();
    assert_eq!(vifs.len(), want.len());
    for (m, v) in vifs.iter().zip(want) {
        let Message::Interface(got) = m else {
            panic!("{m:?}")
        };
        let w = vif_to_req(v, None, SandeshOp::Dump);
        assert_eq!(
            (got.vifr_idx, got.vifr_type, got.vifr_vrf, &got.vifr_mac),
            (w.vifr_idx, w.vifr_type, w.vifr_vrf, &w.vifr_mac)
        );
        assert_eq!(
            (got.vifr_ip, got.vifr_flags, got.vifr_nh_id),
            (w.vifr_ip, w.vifr_flags, w.vifr_nh_id)
        );
    }

    let nhs = agent
        .dump(|last| {
            VrNexthopReq {
                h_op: SandeshOp::Dump,
                nhr_marker: match last {
                    Some(Message::Nexthop(n)) => n.nhr_id,
                    _ => -1,
                },
                ..Default::default()
            }
            .into()
        })
        .await;
    let got: Vec<Nexthop> = nhs
        .iter()
        .map(|m| match m {
            Message::Nexthop(n) => nh_from_req(n).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<Nexthop> = scratch.router.nexthops().cloned().collect();
    assert_eq!(got, want);

    let routes = agent
        .dump(|last| {
            let mut r = VrRouteReq {
                h_op: SandeshOp::Dump,
                rtr_vrf_id: 1,
                rtr_family: i32::from(dp_core::nexthop::AF_INET),
                ..Default::default()
            };
            if let Some(Message::Route(l)) = last {
                r.rtr_marker = l.rtr_prefix.clone();
                r.rtr_marker_plen = l.rtr_prefix_len;
            }
            r.into()
        })
        .await;
    let got: Vec<(Vec<u8>, i32, i32, i32)> = routes
        .iter()
        .map(|m| match m {
            Message::Route(r) => (
                r.rtr_prefix.clone(),
                r.rtr_prefix_len,
                r.rtr_nh_id,
                r.rtr_label,
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let vrf1 = scratch.router.routes().vrf(1).unwrap();
    let want: Vec<(Vec<u8>, i32, i32, i32)> = vrf1
        .inet4
        .iter_from(None)
        .map(|(a, l, d)| (a.to_vec(), i32::from(l), d.nh as i32, d.label as i32))
        .collect();
    assert_eq!(got, want);
    assert_eq!(want.len(), 2);

    // ---- the flow table: its path, mapped by the agent -------------------------
    let a = agent
        .one(
            VrFlowTableData {
                ftable_op: FlowOp::FlowTableGet,
                ..Default::default()
            }
            .into(),
        )
        .await;
    assert_eq!(code(&a), 0);
    let Some(Message::FlowTableData(ft)) = a.get(1) else {
        panic!("{a:?}")
    };
    assert_eq!(ft.ftable_file_path, paths.flow_shm.display().to_string());
    assert_eq!(ft.ftable_used_entries, 0);
    let shared = FlowShm::open(&ft.ftable_file_path).unwrap();
    assert_eq!(shared.entries(), RouterConfig::small().flow_entries);

    // ---- pkt0: agent -> datapath ---------------------------------------------
    let mut pkt0_agent = Pkt0Agent::bind(&paths).unwrap();
    let inner = udp_frame(dp_core::VROUTER_MAC, VM2_MAC, VM1_IP, VM2_IP);
    let mut frame = AGENT_MAC.to_vec();
    frame.extend_from_slice(&AGENT_MAC);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut h = [0u8; AGENT_HDR_LEN];
    AgentHdr {
        ifindex: 4,
        vrf: 1,
        cmd: cmd::SWITCH,
        ..AgentHdr::default()
    }
    .emit(&mut h);
    frame.extend_from_slice(&h);
    frame.extend_from_slice(&inner);
    within(pkt0_agent.send(&frame)).await.unwrap();
    let out = within(out_rx.recv()).await.unwrap();
    assert_eq!(out, Out::Tx(4, inner), "switched out of vif 4");

    // ---- pkt0: datapath -> agent (a flow miss) --------------------------------
    let first = udp_frame(VM1_MAC, dp_core::VROUTER_MAC, VM1_IP, VM2_IP);
    let outs = run(&dp, 3, &first);
    let (trap, flow) = match outs.as_slice() {
        [Out::Tx(v, trap), Out::Hold(flow)] if *v == AGENT_VIF => (trap.clone(), *flow),
        other => panic!("expected a trap and a hold: {other:?}"),
    };
    within(trap_tx.send(&trap)).await.unwrap();
    let mut buf = vec![0u8; PKT0_MAX_FRAME];
    let n = within(pkt0_agent.recv(&mut buf)).await.unwrap();
    let got = &buf[..n];
    let hdr = AgentHdr::parse(&got[14..]).unwrap();
    assert_eq!((hdr.cmd, hdr.ifindex, hdr.vrf), (cmd::FLOW_MISS, 3, 1));
    assert_eq!(&got[14 + AGENT_HDR_LEN..], &first[..]);

    // ---- the agent decides the flow; the shared table shows it ----------------
    let held = shared.entry(flow).unwrap();
    // As upstream: a held entry is ACTIVE already, with action HOLD.
    assert!(held.is_valid() && held.is_hold() && held.is_active() && !held.is_decided());
    let mut set = VrFlowReq {
        fr_op: FlowOp::FlowSet,
        fr_index: flow as i32,
        fr_rindex: -1,
        fr_action: VR_FLOW_ACTION_FORWARD as i16,
        fr_flags: VR_FLOW_FLAG_ACTIVE as i16,
        fr_gen_id: held.gen_id,
        fr_ecmp_nh_index: u32::MAX,
        ..Default::default()
    };
    set_flow_key(&mut set, &held.key);
    let a = agent.one(set.into()).await;
    assert_eq!(code(&a), 0, "{a:?}");
    assert_eq!(lock(&dp).host.released, [flow]);
    let decided = shared.entry(flow).unwrap();
    assert!(decided.is_active());
    assert_eq!(decided.action, VR_FLOW_ACTION_FORWARD);
    // The next packet of the flow is forwarded.
    assert!(matches!(run(&dp, 3, &first).as_slice(), [Out::Tx(4, _)]));

    drop((agent, tool, pkt0_agent, shared, trap_tx));
    server.abort();
    pkt0_task.abort();
    let _ = server.await;
    let _ = pkt0_task.await;
}
