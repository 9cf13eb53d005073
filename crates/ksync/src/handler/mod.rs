//! [`Handler`]: requests in, answers out (see the crate docs).
//!
//! One file per object, as upstream's `vr_*_req_process`: this one frames
//! requests and answers and dispatches each object to its file.

mod answers;
mod flow;
mod global;
mod interface;
mod label;
mod nexthop;
mod route;
mod vrf;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use dp_core::{ConfigError, Router};
use sandesh::frame::{
    self, FrameError, Framing, Meta, NlMsgHdr, GENL_HDRLEN, NLMSG_HDRLEN, NLM_F_MULTI,
    SANDESH_REQUEST,
};
use sandesh::{Message, Messages, Sandesh, SandeshOp, VrResponse};

use crate::convert::{self, VifExtra};
use crate::errno::{EINVAL, EMSGSIZE, EOPNOTSUPP};
use crate::{ConfigChange, HostOps, VR_MESSAGE_PAGE_SIZE};
use answers::Answers;

/// A negative errno.
type Errno = i32;

fn errno(e: ConfigError) -> Errno {
    e.errno()
}

/// A next hop ADD refused by the core, numbered as upstream: an id beyond
/// the table is -EINVAL (`vr_nexthop_valid_request`).
fn nh_errno(e: ConfigError) -> Errno {
    match e {
        ConfigError::OutOfRange(_) => -EINVAL,
        e => errno(e),
    }
}

/// What upstream answers a request its Sandesh decoder cannot read (an
/// unknown object name, bad bytes): `sandesh_decode` fails with -1 and the
/// datapath sends that as the `resp_code`.
pub const UNDECODABLE: Errno = -1;

/// The `genlmsghdr` bytes of a message whose header could not be parsed
/// further (zeros where the message is too short).
fn default_genl(msg: &[u8]) -> [u8; GENL_HDRLEN] {
    let mut g = [SANDESH_REQUEST, 0, 0, 0];
    for (d, s) in g.iter_mut().zip(msg.iter().skip(NLMSG_HDRLEN)) {
        *d = *s;
    }
    g
}

/// What one [`Handler::handle`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handled {
    /// Netlink messages answered.
    pub messages: u32,
    /// Sandesh objects decoded.
    pub objects: u32,
    /// Answers with a negative `resp_code`.
    pub failed: u32,
    /// The buffer ended with a netlink header whose length is unusable;
    /// the bytes from there on were not processed. On a stream this means
    /// the framing is lost: the host should close the connection.
    pub malformed: Option<FrameError>,
}

/// Flow request counters (`vr_flow_table_data` `ftable_added`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowOpStats {
    /// Flows the agent created.
    pub added: u64,
    /// Flows deleted.
    pub deleted: u64,
    /// FLOW_SETs of existing flows that were not on hold.
    pub changed: u64,
    /// FLOW_SETs that decided a held flow.
    pub processed: u64,
}

/// The ksync request handler of one datapath (see the crate docs).
///
/// Besides its reusable buffers it keeps what the core does not: VRFs
/// added without routes yet, each vif's [`VifExtra`], flow counters.
#[derive(Debug)]
pub struct Handler {
    page_size: usize,
    framing: Framing,
    vrfs: BTreeSet<u16>,
    vif_extra: BTreeMap<u16, VifExtra>,
    flow_stats: FlowOpStats,
    answers: Answers,
}

impl Default for Handler {
    fn default() -> Self {
        Self::new()
    }
}

impl Handler {
    /// A handler with upstream's dump page size.
    pub fn new() -> Self {
        Self::with_page_size(VR_MESSAGE_PAGE_SIZE)
    }

    /// A handler whose dump pages hold `page_size` bytes of objects (small
    /// pages exercise paging in tests).
    pub fn with_page_size(page_size: usize) -> Self {
        Handler {
            page_size,
            framing: Framing::NATIVE,
            vrfs: BTreeSet::new(),
            vif_extra: BTreeMap::new(),
            flow_stats: FlowOpStats::default(),
            answers: Answers::default(),
        }
    }

    /// The same handler answering with `framing` instead of this
    /// platform's ([`Framing::NATIVE`]; see the crate docs).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// The answer framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Flow request counters so far.
    pub fn flow_stats(&self) -> FlowOpStats {
        self.flow_stats
    }

    /// What ksync recorded for vif `idx` beside the core.
    pub fn vif_extra(&self, idx: u16) -> Option<&VifExtra> {
        self.vif_extra.get(&idx)
    }

    /// Handle every netlink message in `input` (one or more, back to back)
    /// and append the answers to `out`.
    pub fn handle<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Handled {
        let mut done = Handled::default();
        self.answers.failed = 0;
        let mut rest = input;
        while !rest.is_empty() {
            let (req, used) = match frame::parse_request(rest, self.framing) {
                Ok(r) => r,
                Err(e) => {
                    let Ok(header) = NlMsgHdr::parse(rest) else {
                        done.malformed = Some(e);
                        break;
                    };
                    let len = header.len as usize;
                    self.answers.clear();
                    // Delimited but undecodable: what upstream's Sandesh
                    // decoder answers. Not delimited: the buffer ends here.
                    let delimited = e == FrameError::BadAttribute;
                    self.answers
                        .code(if delimited { UNDECODABLE } else { -EINVAL });
                    self.flush(&header, default_genl(rest), out);
                    done.messages += 1;
                    if delimited && len >= NLMSG_HDRLEN && len <= rest.len() {
                        rest = rest.get(len..).unwrap_or_default();
                        continue;
                    }
                    done.malformed = Some(e);
                    break;
                }
            };
            rest = rest.get(used..).unwrap_or_default();
            done.messages += 1;
            self.answers.clear();
            if req.payload.is_empty() {
                // Upstream sends nothing back (its decoder loop never
                // runs); we answer, so no client waits forever.
                self.answers.code(UNDECODABLE);
            }
            for m in Messages::new(req.payload) {
                match m {
                    Ok(msg) => {
                        done.objects += 1;
                        self.object(router, host, msg);
                    }
                    Err(_) => {
                        // Upstream's `sandesh_decode` stops at the first
                        // object it cannot read (unknown name or bad
                        // bytes) and the datapath answers -1.
                        self.answers.code(UNDECODABLE);
                        break;
                    }
                }
            }
            self.flush(&req.header, req.genl, out);
        }
        done.failed = self.answers.failed;
        done
    }

    /// Frames the collected answers of one request as upstream's datapath
    /// of [`Self::framing`] does (see the crate docs).
    fn flush(&mut self, req: &NlMsgHdr, genl: [u8; GENL_HDRLEN], out: &mut Vec<u8>) {
        let n = self.answers.parts.len();
        let style = self.framing.style();
        for (i, r) in self.answers.parts.iter().enumerate() {
            let more = match self.framing {
                Framing::Dpdk => i + 1 < n,
                Framing::Windows => n > 1,
            };
            let meta = Meta {
                family: req.msg_type,
                flags: if more { NLM_F_MULTI } else { 0 },
                seq: req.seq,
                pid: 0,
                version: 0,
            };
            let body = self.answers.buf.get(r.clone()).unwrap_or_default();
            let ok =
                frame::write_sandesh_genl(out, &meta, genl, style, |o| o.extend_from_slice(body));
            if ok.is_err() {
                // An object beyond the 64 KiB attribute limit.
                let _ = frame::write_sandesh_genl(out, &meta, genl, style, |o| {
                    VrResponse {
                        h_op: SandeshOp::Response,
                        resp_code: -EMSGSIZE,
                    }
                    .encode(o)
                });
                self.answers.failed += 1;
            }
        }
        if self.framing == Framing::Windows && n > 1 {
            frame::write_done(out, req.seq, 0);
        }
    }

    /// Apply one object, queueing its answer(s).
    fn object<H: HostOps + ?Sized>(&mut self, router: &mut Router, host: &mut H, msg: Message) {
        if let Some(change) = change_of(router, &msg) {
            host.config_changed(change);
        }
        match msg {
            Message::Interface(r) => self.interface(router, host, &r),
            Message::Nexthop(r) => self.nexthop(router, &r),
            Message::Route(r) => self.route(router, &r),
            Message::Mpls(r) => self.mpls(router, &r),
            Message::Vxlan(r) => self.vxlan(router, &r),
            Message::Vrf(r) => self.vrf(router, &r),
            Message::Flow(r) => self.flow(router, host, &r),
            // Upstream answers whatever `ftable_op` says.
            Message::FlowTableData(r) => self.flow_table_data(router, host, r.ftable_op),
            Message::DropStats(r) => self.drop_stats(router, &r),
            Message::MemStats(r) => self.mem_stats(router, &r),
            Message::VrouterOps(r) => self.vrouter_ops(router, host, &r),
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }
}

/// What `msg`, about to be applied to `router`, may change beyond flows:
/// `None` for flow requests and reads (see [`HostOps::config_changed`]).
fn change_of(router: &Router, msg: &Message) -> Option<ConfigChange> {
    use ConfigChange::{Any, Unused};
    let op = match msg {
        Message::Flow(_)
        | Message::FlowTableData(_)
        | Message::DropStats(_)
        | Message::MemStats(_) => return None,
        Message::Interface(r) => r.h_op,
        Message::Nexthop(r) => r.h_op,
        Message::Mpls(r) => r.h_op,
        Message::Vxlan(r) => r.h_op,
        Message::Vrf(r) => r.h_op,
        Message::Route(r) => r.h_op,
        Message::VrouterOps(r) => r.h_op,
        // Not served (answered -EOPNOTSUPP); counted as a change anyway.
        _ => return Some(Any),
    };
    let add = match op {
        SandeshOp::Get | SandeshOp::Dump => return None,
        SandeshOp::Add => true,
        SandeshOp::Del => false,
        _ => return Some(Any),
    };
    // A request that adds at a free index, writes the same object again
    // (the agent re-sends what it already programmed) or deletes nothing
    // changes no decision; the others change those `scope` names (worked
    // out only for them: a next hop's is a walk of the tables).
    let object = |exists: bool, same: bool, scope: &dyn Fn() -> ConfigChange| {
        if !exists || (add && same) {
            Unused
        } else {
            scope()
        }
    };
    Some(match msg {
        Message::Interface(r) => match u16::try_from(r.vifr_idx) {
            Err(_) => Any,
            Ok(i) => {
                let cur = router.vif(i);
                let new = convert::vif_from_req(r).ok().map(|(c, _)| c);
                let same = cur.is_some_and(|v| new.as_ref() == Some(&v.cfg));
                // A sub-interface shares its parent's port: not scoped.
                let sub = cur.is_some_and(|v| v.cfg.sub.is_some())
                    || new.is_some_and(|c| c.sub.is_some());
                object(cur.is_some(), same, &|| {
                    if sub {
                        Any
                    } else {
                        ConfigChange::Vif(i)
                    }
                })
            }
        },
        Message::Nexthop(r) => match u32::try_from(r.nhr_id) {
            Err(_) => Any,
            Ok(i) => {
                let cur = router.nh(i);
                let same = cur.is_some_and(|nh| {
                    convert::nh_from_req(r).is_ok_and(|n| n == *nh)
                        && router
                            .nh_l3_vxlan_mac(i)
                            .is_none_or(|m| r.nhr_rw_dst_mac.as_slice() == m.as_slice())
                });
                // A next hop no route, label, VNI or composite leads to
                // (a tunnel whose last route went) is in no decision.
                object(cur.is_some(), same, &|| {
                    if router.nh_in_use(i) {
                        Any
                    } else {
                        Unused
                    }
                })
            }
        },
        Message::Mpls(r) => match u32::try_from(r.mr_label) {
            Err(_) => Any,
            Ok(l) => {
                let cur = router.mpls().get(l);
                let label = ConfigChange::Label {
                    vxlan: false,
                    label: l,
                };
                object(cur.is_some(), cur == u32::try_from(r.mr_nhid).ok(), &|| {
                    label
                })
            }
        },
        Message::Vxlan(r) => match u32::try_from(r.vxlanr_vnid) {
            Err(_) => Any,
            Ok(v) => {
                let cur = router.vxlan().get(v);
                let label = ConfigChange::Label {
                    vxlan: true,
                    label: v,
                };
                object(
                    cur.is_some(),
                    cur == u32::try_from(r.vxlanr_nhid).ok(),
                    &|| label,
                )
            }
        },
        // A VRF of its own changes no lookup; deleting one empties it.
        Message::Vrf(_) if add => Unused,
        Message::Route(r) => match convert::route_target(r) {
            Ok((vrf, prefix)) => ConfigChange::Route { vrf, prefix },
            Err(_) => Any,
        },
        _ => Any,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_request_may_change() {
        use alloc::vec;
        use dp_core::testkit::{Topo, RECEIVE_NH};
        use dp_core::{Prefix, RouterConfig};
        use sandesh::{
            VrDropStatsReq, VrFlowReq, VrInterfaceReq, VrMplsReq, VrNexthopReq, VrRouteReq,
            VrVrfReq, VrVxlanReq, VrouterOps,
        };
        let mut t = Topo::new(RouterConfig::small());
        let vm = t.add_vm(3, 1, [2, 0, 0, 0, 0, 3], [10, 0, 0, 3], [0; 16], false);
        let r = &t.router;
        let route = |h_op, prefix: Vec<u8>| {
            Message::Route(VrRouteReq {
                h_op,
                rtr_family: 2,
                rtr_vrf_id: 1,
                rtr_prefix: prefix,
                rtr_prefix_len: 24,
                ..Default::default()
            })
        };
        let v4 = Some(ConfigChange::Route {
            vrf: 1,
            prefix: Prefix::V4([10, 0, 0, 0], 24),
        });
        assert_eq!(change_of(r, &route(SandeshOp::Add, vec![10, 0, 0, 0])), v4);
        assert_eq!(change_of(r, &route(SandeshOp::Del, vec![10, 0, 0, 0])), v4);
        assert_eq!(
            change_of(r, &route(SandeshOp::Get, vec![10, 0, 0, 0])),
            None
        );
        assert_eq!(change_of(r, &route(SandeshOp::Dump, vec![])), None);
        // A prefix that does not parse: refused, but say "anything".
        assert_eq!(
            change_of(r, &route(SandeshOp::Add, vec![10, 0])),
            Some(ConfigChange::Any)
        );

        let nh = |h_op, nhr_id| {
            Message::Nexthop(VrNexthopReq {
                h_op,
                nhr_id,
                ..Default::default()
            })
        };
        let (any, unused) = (Some(ConfigChange::Any), Some(ConfigChange::Unused));
        assert_eq!(change_of(r, &nh(SandeshOp::Add, RECEIVE_NH as i32)), any);
        assert_eq!(change_of(r, &nh(SandeshOp::Add, 50)), unused);
        assert_eq!(change_of(r, &nh(SandeshOp::Add, -1)), any);
        // Deleting nothing changes nothing; a next hop routes and labels
        // lead to is in decisions.
        assert_eq!(change_of(r, &nh(SandeshOp::Del, 50)), unused);
        assert_eq!(change_of(r, &nh(SandeshOp::Del, vm.nh as i32)), any);
        assert_eq!(change_of(r, &nh(SandeshOp::Get, 50)), None);

        let vif = |h_op, vifr_idx| {
            Message::Interface(VrInterfaceReq {
                h_op,
                vifr_idx,
                ..Default::default()
            })
        };
        let vif3 = Some(ConfigChange::Vif(3));
        assert_eq!(change_of(r, &vif(SandeshOp::Add, 3)), vif3);
        assert_eq!(change_of(r, &vif(SandeshOp::Add, 9)), unused);
        assert_eq!(change_of(r, &vif(SandeshOp::Del, 9)), unused);
        assert_eq!(change_of(r, &vif(SandeshOp::Del, 3)), vif3);
        assert_eq!(change_of(r, &vif(SandeshOp::Add, -1)), any);
        // Written again unchanged: nothing changes; changed: the decisions
        // of flows through it may.
        let v3 = r.vif(3).unwrap();
        let same = convert::vif_to_req(v3, None, SandeshOp::Add);
        assert_eq!(change_of(r, &Message::Interface(same.clone())), unused);
        let mtu = VrInterfaceReq {
            vifr_mtu: same.vifr_mtu + 1,
            ..same.clone()
        };
        assert_eq!(change_of(r, &Message::Interface(mtu)), vif3);
        // Made a sub-interface (it would share a parent's port): anything.
        let sub = VrInterfaceReq {
            vifr_type: 7,
            vifr_parent_vif_idx: 4,
            vifr_vlan_id: 10,
            ..same
        };
        assert!(convert::vif_from_req(&sub).is_ok_and(|(c, _)| c.sub.is_some()));
        assert_eq!(change_of(r, &Message::Interface(sub)), any);
        let same = convert::nh_to_req(r.nh(vm.nh).unwrap(), SandeshOp::Add);
        assert_eq!(change_of(r, &Message::Nexthop(same.clone())), unused);
        let moved = VrNexthopReq {
            nhr_encap_oif_id: vec![4],
            ..same
        };
        assert_eq!(change_of(r, &Message::Nexthop(moved)), any);

        let mpls = |mr_label, mr_nhid| {
            Message::Mpls(VrMplsReq {
                h_op: SandeshOp::Add,
                mr_label,
                mr_nhid,
                ..Default::default()
            })
        };
        let label = Some(ConfigChange::Label {
            vxlan: false,
            label: vm.label,
        });
        assert_eq!(change_of(r, &mpls(vm.label as i32, 0)), label);
        assert_eq!(change_of(r, &mpls(vm.label as i32, vm.nh as i32)), unused);
        assert_eq!(change_of(r, &mpls(vm.label as i32 + 10, 0)), unused);
        let mpls_del = |mr_label| {
            Message::Mpls(VrMplsReq {
                h_op: SandeshOp::Del,
                mr_label,
                ..Default::default()
            })
        };
        assert_eq!(change_of(r, &mpls_del(vm.label as i32)), label);
        assert_eq!(change_of(r, &mpls_del(vm.label as i32 + 10)), unused);
        let vxlan = |h_op, vxlanr_vnid, vxlanr_nhid| {
            Message::Vxlan(VrVxlanReq {
                h_op,
                vxlanr_vnid,
                vxlanr_nhid,
                ..Default::default()
            })
        };
        assert_eq!(change_of(r, &vxlan(SandeshOp::Add, 77, 0)), unused);
        assert_eq!(change_of(r, &vxlan(SandeshOp::Del, 77, 0)), unused);

        // Once nothing leads to the VM's next hop any more (its routes and
        // label gone, as the agent deletes a port), deleting it or
        // changing it changes no decision.
        let mut t2 = Topo::new(RouterConfig::small());
        let vm2 = t2.add_vm(3, 1, [2, 0, 0, 0, 0, 3], [10, 0, 0, 3], [0; 16], false);
        t2.router.mpls_del(vm2.label).unwrap();
        assert_eq!(
            change_of(&t2.router, &nh(SandeshOp::Del, vm2.nh as i32)),
            any
        );
        let routed: Vec<_> = t2
            .router
            .routes()
            .vrf(1)
            .map(|v| v.inet4.iter().filter(|(_, _, d)| d.nh == vm2.nh).collect())
            .unwrap_or_default();
        assert!(!routed.is_empty());
        for (a, l, _) in routed {
            t2.router.route_del(1, Prefix::V4(a, l)).unwrap();
        }
        let bridged: Vec<_> = t2
            .router
            .routes()
            .bridge_iter(1)
            .filter(|(_, e)| e.nh == vm2.nh)
            .map(|(m, _)| m)
            .collect();
        for m in bridged {
            t2.router.route_del(1, Prefix::Mac(m)).unwrap();
        }
        assert!(!t2.router.nh_in_use(vm2.nh));
        assert_eq!(
            change_of(&t2.router, &nh(SandeshOp::Del, vm2.nh as i32)),
            unused
        );

        let vrf = |h_op| {
            Message::Vrf(VrVrfReq {
                h_op,
                ..Default::default()
            })
        };
        assert_eq!(change_of(r, &vrf(SandeshOp::Add)), unused);
        assert_eq!(change_of(r, &vrf(SandeshOp::Del)), any);

        let ops = |h_op| {
            Message::VrouterOps(VrouterOps {
                h_op,
                ..Default::default()
            })
        };
        assert_eq!(change_of(r, &ops(SandeshOp::Add)), any);
        assert_eq!(change_of(r, &ops(SandeshOp::Get)), None);
        assert_eq!(change_of(r, &Message::Flow(VrFlowReq::default())), None);
        assert_eq!(
            change_of(r, &Message::DropStats(VrDropStatsReq::default())),
            None
        );
    }
}
