//! [`Handler`]: requests in, answers out (see the crate docs).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use dp_core::flow::table::{FlowTable, VR_FLOW_ACTION_HOLD};
use dp_core::route::rt_flags;
use dp_core::{ConfigError, FlowSet, NhKind, Prefix, Router, VifType};
use sandesh::frame::{
    self, Frame, FrameError, Meta, NlMsgHdr, Style, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_NOOP,
    NLM_F_MULTI, SANDESH_REQUEST,
};
use sandesh::{
    DecodeError, FlowOp, Message, Messages, Sandesh, SandeshOp, VrDropStatsReq, VrFlowReq,
    VrFlowResponse, VrFlowTableData, VrInterfaceReq, VrMemStatsReq, VrMplsReq, VrNexthopReq,
    VrResponse, VrRouteReq, VrVrfReq, VrVxlanReq, VrouterOps,
};

use crate::convert::{self, VifExtra};
use crate::errno::{EEXIST, EINVAL, EMSGSIZE, ENOENT, EOPNOTSUPP};
use crate::{
    default_build_info, HostOps, VRF_FLAG_VALID, VR_FLOW_RESP_FLAG_DELETED,
    VR_MESSAGE_DUMP_INCOMPLETE, VR_MESSAGE_PAGE_SIZE,
};

/// A negative errno.
type Errno = i32;

fn errno(e: ConfigError) -> Errno {
    e.errno()
}

fn decode_errno(e: DecodeError) -> Errno {
    match e {
        DecodeError::UnknownObject => -EOPNOTSUPP,
        _ => -EINVAL,
    }
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

/// Encoded answers of the netlink message being handled: one byte buffer
/// and the range of each answer message in it (reused across calls).
#[derive(Debug, Default)]
struct Answers {
    buf: Vec<u8>,
    parts: Vec<Range<usize>>,
    failed: u32,
}

impl Answers {
    fn clear(&mut self) {
        self.buf.clear();
        self.parts.clear();
    }

    fn push<T: Sandesh>(&mut self, code: Errno, obj: Option<&T>) {
        let start = self.buf.len();
        VrResponse {
            h_op: SandeshOp::Response,
            resp_code: code,
        }
        .encode(&mut self.buf);
        if let Some(o) = obj {
            o.encode(&mut self.buf);
        }
        self.parts.push(start..self.buf.len());
        if code < 0 {
            self.failed += 1;
        }
    }

    /// A `vr_response` alone.
    fn code(&mut self, code: Errno) {
        self.push::<VrResponse>(code, None);
    }

    fn result(&mut self, r: Result<(), Errno>) {
        self.code(r.err().unwrap_or(0));
    }

    /// `vr_response` 0 then `obj` in one message.
    fn object<T: Sandesh>(&mut self, obj: &T) {
        self.push(0, Some(obj));
    }

    /// `vr_response` `code` then `obj` in one message.
    fn code_object<T: Sandesh>(&mut self, code: Errno, obj: &T) {
        self.push(code, Some(obj));
    }

    /// GET answer: the object, or the error alone.
    fn get<T: Sandesh>(&mut self, r: Result<T, Errno>) {
        match r {
            Ok(o) => self.object(&o),
            Err(e) => self.code(e),
        }
    }

    /// One dump page of `items` (see the crate docs): the count message,
    /// then the objects' message if there are any.
    fn dump<T: Sandesh>(&mut self, page: usize, items: impl Iterator<Item = T>) {
        let start = self.buf.len();
        let mut count: i32 = 0;
        let mut more = false;
        for item in items {
            let before = self.buf.len();
            item.encode(&mut self.buf);
            // At least one object per page, so a huge object cannot stall
            // the dump (upstream would answer "0, incomplete" forever).
            if count > 0 && self.buf.len() - start > page {
                self.buf.truncate(before);
                more = true;
                break;
            }
            count += 1;
        }
        let objects = start..self.buf.len();
        let code = if more {
            count | VR_MESSAGE_DUMP_INCOMPLETE
        } else {
            count
        };
        self.code(code);
        if count > 0 {
            self.parts.push(objects);
        }
    }
}

/// The ksync request handler of one datapath (see the crate docs).
///
/// Besides its reusable buffers it keeps what the core does not: VRFs
/// added without routes yet, each vif's [`VifExtra`], flow counters.
#[derive(Debug)]
pub struct Handler {
    page_size: usize,
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
            vrfs: BTreeSet::new(),
            vif_extra: BTreeMap::new(),
            flow_stats: FlowOpStats::default(),
            answers: Answers::default(),
        }
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
            let (frame, used) = match Frame::parse(rest) {
                Ok(f) => f,
                Err(e) => {
                    let Ok(header) = NlMsgHdr::parse(rest) else {
                        done.malformed = Some(e);
                        break;
                    };
                    let len = header.len as usize;
                    self.answers.clear();
                    self.answers.code(-EINVAL);
                    self.flush(&header, 0, out);
                    done.messages += 1;
                    // A bad attribute inside a well-delimited message: skip
                    // it. A bad length: the rest cannot be delimited.
                    if e == FrameError::BadAttribute && len >= NLMSG_HDRLEN && len <= rest.len() {
                        rest = rest.get(len..).unwrap_or_default();
                        continue;
                    }
                    done.malformed = Some(e);
                    break;
                }
            };
            rest = rest.get(used..).unwrap_or_default();
            match frame {
                Frame::Sandesh {
                    header,
                    cmd,
                    version,
                    payload,
                } => {
                    done.messages += 1;
                    self.answers.clear();
                    if cmd != SANDESH_REQUEST {
                        self.answers.code(-EOPNOTSUPP);
                    } else if payload.is_empty() {
                        self.answers.code(-EINVAL);
                    } else {
                        for m in Messages::new(payload) {
                            match m {
                                Ok(msg) => {
                                    done.objects += 1;
                                    self.object(router, host, msg);
                                }
                                Err(e) => {
                                    self.answers.code(decode_errno(e));
                                    break;
                                }
                            }
                        }
                    }
                    self.flush(&header, version, out);
                }
                // Nothing a client should send; answered as netlink would
                // answer an unknown request, so the client does not wait.
                Frame::Other { header, .. } if header.msg_type != NLMSG_NOOP => {
                    done.messages += 1;
                    write_nlmsg_error(out, &header, -EOPNOTSUPP);
                    self.answers.failed += 1;
                }
                Frame::Other { .. } | Frame::Done(_) | Frame::Error { .. } => {}
            }
        }
        done.failed = self.answers.failed;
        done
    }

    /// Frames the collected answers of one request (see the crate docs).
    fn flush(&mut self, req: &NlMsgHdr, version: u8, out: &mut Vec<u8>) {
        let multi = self.answers.parts.len() > 1;
        let meta = Meta {
            family: req.msg_type,
            flags: if multi { NLM_F_MULTI } else { 0 },
            seq: req.seq,
            pid: req.pid,
            version,
        };
        for r in &self.answers.parts {
            let body = self.answers.buf.get(r.clone()).unwrap_or_default();
            let ok =
                frame::write_sandesh(out, &meta, Style::Response, |o| o.extend_from_slice(body));
            if ok.is_err() {
                // An object beyond the 64 KiB attribute limit.
                let _ = frame::write_sandesh(out, &meta, Style::Response, |o| {
                    VrResponse {
                        h_op: SandeshOp::Response,
                        resp_code: -EMSGSIZE,
                    }
                    .encode(o)
                });
                self.answers.failed += 1;
            }
        }
        if multi {
            frame::write_done(out, req.seq, req.pid);
        }
    }

    /// Apply one object, queueing its answer(s).
    fn object<H: HostOps + ?Sized>(&mut self, router: &mut Router, host: &mut H, msg: Message) {
        match msg {
            Message::Interface(r) => self.interface(router, host, &r),
            Message::Nexthop(r) => self.nexthop(router, &r),
            Message::Route(r) => self.route(router, &r),
            Message::Mpls(r) => self.mpls(router, &r),
            Message::Vxlan(r) => self.vxlan(router, &r),
            Message::Vrf(r) => self.vrf(router, &r),
            Message::Flow(r) => self.flow(router, host, &r),
            Message::FlowTableData(r) => {
                if r.ftable_op == FlowOp::FlowTableGet {
                    self.flow_table_data(router, host);
                } else {
                    self.answers.code(-EINVAL);
                }
            }
            Message::DropStats(r) => self.drop_stats(router, &r),
            Message::MemStats(r) => self.mem_stats(router, &r),
            Message::VrouterOps(r) => self.vrouter_ops(router, host, &r),
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    // ---- interfaces -------------------------------------------------------

    fn interface<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrInterfaceReq,
    ) {
        match r.h_op {
            SandeshOp::Add => {
                let res = self.vif_add(router, host, r);
                self.answers.result(res);
            }
            SandeshOp::Del => {
                let res = self.vif_del(router, host, r);
                self.answers.result(res);
            }
            SandeshOp::Get => {
                // Upstream: an index beyond the table means "by OS index".
                let vif = match u16::try_from(r.vifr_idx) {
                    Ok(i) if i < router.vifs().capacity() => router.vif(i),
                    _ => router
                        .vifs()
                        .iter()
                        .find(|v| v.cfg.os_idx == r.vifr_os_idx as u32),
                };
                let ans = vif
                    .map(|v| convert::vif_to_req(v, self.vif_extra.get(&v.cfg.idx), SandeshOp::Get))
                    .ok_or(-ENOENT);
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                let marker = i64::from(r.vifr_marker);
                let extra = &self.vif_extra;
                let items = router
                    .vifs()
                    .iter()
                    .filter(move |v| i64::from(v.cfg.idx) > marker)
                    .map(|v| convert::vif_to_req(v, extra.get(&v.cfg.idx), SandeshOp::Dump));
                self.answers.dump(self.page_size, items);
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    fn vif_add<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrInterfaceReq,
    ) -> Result<(), Errno> {
        let (cfg, extra) = convert::vif_from_req(r).map_err(errno)?;
        // Check what the core would refuse before the host acts.
        if cfg.idx >= router.vifs().capacity() {
            return Err(errno(ConfigError::OutOfRange("vif")));
        }
        if cfg.vif_type == VifType::Agent
            && router
                .vifs()
                .find_type(VifType::Agent)
                .is_some_and(|a| a.cfg.idx != cfg.idx)
        {
            return Err(errno(ConfigError::Invalid("a second agent vif")));
        }
        let existed = router.vif(cfg.idx).is_some();
        host.vif_add(&cfg, r).map_err(|e| {
            if e > 0 {
                -e
            } else if e == 0 {
                -EINVAL
            } else {
                e
            }
        })?;
        let idx = cfg.idx;
        if let Err(e) = router.vif_add(cfg) {
            if !existed {
                host.vif_del(idx);
            }
            return Err(errno(e));
        }
        self.vif_extra.insert(idx, extra);
        Ok(())
    }

    fn vif_del<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrInterfaceReq,
    ) -> Result<(), Errno> {
        // Upstream deletes by name ("vif0/N" or the OS name) when given.
        let idx = if r.vifr_name.is_empty() {
            u16::try_from(r.vifr_idx).map_err(|_| -ENOENT)?
        } else if let Some(n) = r
            .vifr_name
            .strip_prefix("vif0/")
            .and_then(|n| n.parse::<u16>().ok())
        {
            n
        } else {
            router
                .vifs()
                .iter()
                .find(|v| v.cfg.name.as_str() == r.vifr_name)
                .map(|v| v.cfg.idx)
                .ok_or(-ENOENT)?
        };
        router.vif_del(idx).map_err(errno)?;
        self.vif_extra.remove(&idx);
        host.vif_del(idx);
        Ok(())
    }

    // ---- next hops --------------------------------------------------------

    fn nexthop(&mut self, router: &mut Router, r: &VrNexthopReq) {
        match r.h_op {
            SandeshOp::Add => {
                let res = convert::nh_from_req(r)
                    .and_then(|nh| {
                        // As upstream: the outgoing vif must exist.
                        if let NhKind::Encap { oif, .. } | NhKind::Tunnel { oif, .. } = nh.kind {
                            if router.vif(oif).is_none() {
                                return Err(ConfigError::Invalid("next hop outgoing interface"));
                            }
                        }
                        router.nh_add(nh)
                    })
                    .map_err(errno);
                self.answers.result(res);
            }
            SandeshOp::Del => {
                let res = u32::try_from(r.nhr_id)
                    .map_err(|_| -ENOENT)
                    .and_then(|id| router.nh_del(id).map(|_| ()).map_err(errno));
                self.answers.result(res);
            }
            SandeshOp::Get => {
                let ans = u32::try_from(r.nhr_id)
                    .ok()
                    .and_then(|id| router.nh(id))
                    .map(|nh| convert::nh_to_req(nh, SandeshOp::Get))
                    .ok_or(-ENOENT);
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                let marker = i64::from(r.nhr_marker);
                let items = router
                    .nexthops()
                    .filter(move |nh| i64::from(nh.id) > marker)
                    .map(|nh| convert::nh_to_req(nh, SandeshOp::Dump));
                self.answers.dump(self.page_size, items);
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    // ---- routes -----------------------------------------------------------

    fn route(&mut self, router: &mut Router, r: &VrRouteReq) {
        match r.h_op {
            SandeshOp::Add => {
                let res = route_add(router, r);
                self.answers.result(res);
            }
            SandeshOp::Del => {
                let res = convert::route_target(r)
                    .and_then(|(vrf, p)| router.route_del(vrf, p))
                    .map_err(errno);
                self.answers.result(res);
            }
            SandeshOp::Get => {
                let ans = route_get(router, r);
                self.answers.get(ans);
            }
            SandeshOp::Dump => self.route_dump(router, r),
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    fn route_dump(&mut self, router: &Router, r: &VrRouteReq) {
        let Ok(vrf) = u16::try_from(r.rtr_vrf_id) else {
            return self.answers.code(-EINVAL);
        };
        let page = self.page_size;
        let op = SandeshOp::Dump;
        match r.rtr_family {
            f if f == i32::from(dp_core::nexthop::AF_INET) => {
                let Ok(marker) = inet_marker::<4>(r) else {
                    return self.answers.code(-EINVAL);
                };
                match router.routes().vrf(vrf) {
                    Some(t) => self.answers.dump(
                        page,
                        t.inet4.iter_from(marker).map(|(a, l, d)| {
                            convert::inet_route_to_req(vrf, Prefix::V4(a, l), &d, op)
                        }),
                    ),
                    None => self.answers.code(0),
                }
            }
            f if f == i32::from(dp_core::nexthop::AF_INET6) => {
                let Ok(marker) = inet_marker::<16>(r) else {
                    return self.answers.code(-EINVAL);
                };
                match router.routes().vrf(vrf) {
                    Some(t) => self.answers.dump(
                        page,
                        t.inet6.iter_from(marker).map(|(a, l, d)| {
                            convert::inet_route_to_req(vrf, Prefix::V6(a, l), &d, op)
                        }),
                    ),
                    None => self.answers.code(0),
                }
            }
            f if f == i32::from(dp_core::nexthop::AF_BRIDGE) => {
                let marker: Option<[u8; 6]> = if r.rtr_mac.is_empty() {
                    None
                } else if let Ok(m) = r.rtr_mac.as_slice().try_into() {
                    Some(m)
                } else {
                    return self.answers.code(-EINVAL);
                };
                // dp-core keeps the bridge table in a hash map: sort what
                // is left after the marker (O(n log n) per page; upstream
                // clients map the table instead of dumping it).
                let mut entries: Vec<_> = router
                    .routes()
                    .bridge_iter(vrf)
                    .filter(|(m, _)| marker.is_none_or(|k| *m > k))
                    .collect();
                entries.sort_unstable_by_key(|(m, _)| *m);
                self.answers.dump(
                    page,
                    entries
                        .iter()
                        .map(|(m, e)| convert::bridge_route_to_req(vrf, *m, e, op)),
                );
            }
            _ => self.answers.code(-EINVAL),
        }
    }

    // ---- labels -----------------------------------------------------------

    fn mpls(&mut self, router: &mut Router, r: &VrMplsReq) {
        let label = u32::try_from(r.mr_label).map_err(|_| ConfigError::OutOfRange("mpls label"));
        match r.h_op {
            SandeshOp::Add => {
                let res = label
                    .and_then(|l| {
                        let nh = u32::try_from(r.mr_nhid)
                            .ok()
                            .filter(|n| router.nh(*n).is_some())
                            .ok_or(ConfigError::Invalid("mpls next hop"))?;
                        router.mpls_add(l, nh)
                    })
                    .map_err(errno);
                self.answers.result(res);
            }
            SandeshOp::Del => {
                let res = label.and_then(|l| router.mpls_del(l)).map_err(errno);
                self.answers.result(res);
            }
            SandeshOp::Get => {
                let ans = match label {
                    Err(e) => Err(errno(e)),
                    Ok(l) => router
                        .mpls()
                        .get(l)
                        .map(|nh| mpls_req(l, nh, SandeshOp::Get))
                        .ok_or(-ENOENT),
                };
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                let marker = i64::from(r.mr_marker);
                let items = router
                    .mpls()
                    .iter()
                    .filter(move |(l, _)| i64::from(*l) > marker)
                    .map(|(l, nh)| mpls_req(l, nh, SandeshOp::Dump));
                self.answers.dump(self.page_size, items);
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    fn vxlan(&mut self, router: &mut Router, r: &VrVxlanReq) {
        let vni = u32::try_from(r.vxlanr_vnid).map_err(|_| ConfigError::Invalid("vni"));
        match r.h_op {
            SandeshOp::Add => {
                let res = vni
                    .and_then(|v| {
                        let nh = u32::try_from(r.vxlanr_nhid)
                            .ok()
                            .filter(|n| router.nh(*n).is_some())
                            .ok_or(ConfigError::Invalid("vxlan next hop"))?;
                        router.vxlan_add(v, nh)
                    })
                    .map_err(errno);
                self.answers.result(res);
            }
            SandeshOp::Del => {
                let res = vni.and_then(|v| router.vxlan_del(v)).map_err(errno);
                self.answers.result(res);
            }
            SandeshOp::Get => {
                let ans = match vni {
                    Err(e) => Err(errno(e)),
                    Ok(v) => router
                        .vxlan()
                        .get(v)
                        .map(|nh| vxlan_req(v, nh, SandeshOp::Get))
                        .ok_or(-ENOENT),
                };
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                // Upstream: the marker is the last VNI; 0 starts over.
                let start = match u32::try_from(r.vxlanr_vnid) {
                    Ok(0) | Err(_) => 0,
                    Ok(v) => u64::from(v) + 1,
                };
                let mut vnis: Vec<(u32, u32)> = router
                    .vxlan()
                    .iter()
                    .filter(|(v, _)| u64::from(*v) >= start)
                    .collect();
                vnis.sort_unstable();
                let items = vnis
                    .into_iter()
                    .map(|(v, nh)| vxlan_req(v, nh, SandeshOp::Dump));
                self.answers.dump(self.page_size, items);
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    // ---- vrfs -------------------------------------------------------------

    fn vrf_exists(&self, router: &Router, v: u16) -> bool {
        self.vrfs.contains(&v) || router.routes().vrf(v).is_some()
    }

    fn vrf(&mut self, router: &mut Router, r: &VrVrfReq) {
        let max = router.routes().max_vrfs();
        let idx = u16::try_from(r.vrf_idx).ok().filter(|v| *v < max);
        match r.h_op {
            SandeshOp::Add => match idx {
                Some(v) => {
                    self.vrfs.insert(v);
                    self.answers.code(0);
                }
                None => self.answers.code(-EINVAL),
            },
            SandeshOp::Del => match idx {
                Some(v) => {
                    router.vrf_reset(v);
                    self.vrfs.remove(&v);
                    self.answers.code(0);
                }
                None => self.answers.code(-EINVAL),
            },
            SandeshOp::Get => {
                let ans = idx
                    .filter(|v| self.vrf_exists(router, *v))
                    .map(|v| vrf_req(v, SandeshOp::Get))
                    .ok_or(-ENOENT);
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                let start = i64::from(r.vrf_marker) + 1;
                let items: Vec<VrVrfReq> = (0..max)
                    .filter(|v| i64::from(*v) >= start && self.vrf_exists(router, *v))
                    .map(|v| vrf_req(v, SandeshOp::Dump))
                    .collect();
                self.answers.dump(self.page_size, items.into_iter());
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    // ---- flows ------------------------------------------------------------

    fn flow<H: HostOps + ?Sized>(&mut self, router: &mut Router, host: &mut H, r: &VrFlowReq) {
        match r.fr_op {
            FlowOp::FlowSet => {
                let mut resp = VrFlowResponse {
                    fresp_op: FlowOp::FlowSet,
                    fresp_index: r.fr_index as u32,
                    fresp_gen_id: r.fr_gen_id,
                    ..Default::default()
                };
                let code = match self.flow_set(router, host, r, &mut resp) {
                    Ok(()) => 0,
                    Err(e) => e,
                };
                self.answers.code_object(code, &resp);
            }
            FlowOp::FlowTableGet => self.flow_table_data(router, host),
            // Upstream answers every other flow op with -EINVAL.
            _ => self.answers.code(-EINVAL),
        }
    }

    fn flow_set<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrFlowReq,
        resp: &mut VrFlowResponse,
    ) -> Result<(), Errno> {
        let flags = r.fr_flags as u16;
        if convert::flow_req_is_delete(r) {
            let idx = u32::try_from(r.fr_index).map_err(|_| -ENOENT)?;
            let held = router.flow_del(idx, Some(r.fr_gen_id)).map_err(errno)?;
            resp.fresp_flags |= VR_FLOW_RESP_FLAG_DELETED;
            self.flow_stats.deleted += 1;
            if held {
                host.flow_deleted(idx);
            }
            return Ok(());
        }
        let key = convert::flow_key(r).map_err(errno)?;
        let rflow = if flags & convert::VR_RFLOW_VALID != 0 {
            match u32::try_from(r.fr_rindex) {
                Ok(i) => Some(i),
                // Upstream finds the reverse flow by its key.
                Err(_) => {
                    let rkey = convert::rflow_key(r).map_err(errno)?;
                    Some(router.flows().lookup(&rkey).ok_or(-EINVAL)?)
                }
            }
        } else {
            None
        };
        let dvrf = if flags & convert::VR_FLOW_FLAG_VRFT != 0 {
            if r.fr_flow_dvrf >= router.routes().max_vrfs() {
                return Err(-EINVAL);
            }
            Some(r.fr_flow_dvrf)
        } else {
            None
        };
        let index = u32::try_from(r.fr_index).ok();
        let was_hold = match index {
            None => {
                // A trapped packet created it meanwhile: upstream answers
                // -EEXIST with that entry so the agent adopts it.
                if let Some(i) = router.flows().lookup(&key) {
                    resp.fresp_index = i;
                    resp.fresp_gen_id = router.flows().get(i).map_or(0, |e| e.gen_id);
                    return Err(-EEXIST);
                }
                false
            }
            Some(i) => router.flows().get_valid(i).is_some_and(|e| e.is_hold()),
        };
        let set = FlowSet {
            index,
            gen_id: index.map(|_| r.fr_gen_id),
            key,
            action: r.fr_action as u16,
            flags,
            rflow,
            dvrf,
            ecmp_nh_index: r.fr_ecmp_nh_index as u8 as i8,
            drop_reason: r.fr_drop_reason as u8,
            src_nh_index: r.fr_src_nh_index,
        };
        let out = router.flow_set(&set).map_err(errno)?;
        resp.fresp_index = out.index;
        resp.fresp_gen_id = out.gen_id;
        if let Some(e) = router.flows().get(out.index) {
            resp.fresp_bytes = e.stats_bytes;
            resp.fresp_packets = e.stats_packets;
            resp.fresp_stats_oflow = e.stats_oflow();
        }
        if index.is_none() {
            self.flow_stats.added += 1;
        } else if was_hold && set.action != VR_FLOW_ACTION_HOLD {
            self.flow_stats.processed += 1;
        } else {
            self.flow_stats.changed += 1;
        }
        if out.release_held {
            host.flow_released(out.index);
        }
        Ok(())
    }

    fn flow_table_data<H: HostOps + ?Sized>(&mut self, router: &Router, host: &H) {
        let info = host.host_info();
        let t = router.flows();
        let cpus = info.cpus.max(1);
        let size = if info.flow_table_size != 0 {
            info.flow_table_size
        } else {
            u32::try_from(FlowTable::bytes_for(t.hash_entries(), t.oflow_entries()))
                .unwrap_or(u32::MAX)
        };
        let hold = t.iter_valid().filter(|(_, e)| e.is_hold()).count();
        let data = VrFlowTableData {
            ftable_op: FlowOp::FlowTableGet,
            ftable_size: size,
            ftable_dev: info.flow_table_dev,
            ftable_file_path: info.flow_table_path,
            ftable_used_entries: u64::from(t.len()),
            ftable_processed: self.flow_stats.processed,
            ftable_deleted: self.flow_stats.deleted,
            ftable_added: self.flow_stats.added,
            ftable_changed: self.flow_stats.changed,
            ftable_cpus: cpus,
            ftable_oflow_entries: t.oflow_used(),
            // Upstream sends one counter per CPU (at most 64).
            ftable_hold_stat: vec![0; cpus.min(64) as usize],
            ftable_hold_entries: u32::try_from(hold).unwrap_or(u32::MAX),
            ..Default::default()
        };
        self.answers.object(&data);
    }

    // ---- statistics and global --------------------------------------------

    fn drop_stats(&mut self, router: &mut Router, r: &VrDropStatsReq) {
        match r.h_op {
            SandeshOp::Get => {
                let s = convert::drop_stats_to_req(router.drop_stats(), SandeshOp::Get);
                self.answers.object(&s);
            }
            SandeshOp::Reset => {
                router.drop_stats_reset();
                self.answers.object(&VrDropStatsReq {
                    h_op: SandeshOp::Reset,
                    ..Default::default()
                });
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    fn mem_stats(&mut self, router: &Router, r: &VrMemStatsReq) {
        if r.h_op != SandeshOp::Get {
            return self.answers.code(-EOPNOTSUPP);
        }
        let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
        let (mut tables, mut levels) = (0usize, 0usize);
        for v in 0..router.routes().max_vrfs() {
            if let Some(t) = router.routes().vrf(v) {
                tables += 2;
                levels += t.inet4.level_count() + t.inet6.level_count();
            }
        }
        let s = VrMemStatsReq {
            h_op: SandeshOp::Get,
            vms_interface_object: n(router.vifs().iter().count()),
            vms_nexthop_object: n(router.nexthops().count()),
            vms_mtrie_object: n(tables),
            vms_mtrie_bucket_object: n(levels),
            vms_bridge_mac_object: n(router.routes().bridge_len()),
            vms_flow_queue_object: n(router
                .flows()
                .iter_valid()
                .filter(|(_, e)| e.hold_count > 0)
                .count()),
            ..Default::default()
        };
        self.answers.object(&s);
    }

    fn vrouter_ops<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrouterOps,
    ) {
        match r.h_op {
            SandeshOp::Get => {
                let info = host.host_info();
                let cfg = router.config();
                let t = router.flows();
                let i32c = |x: u32| i32::try_from(x).unwrap_or(i32::MAX);
                let ops = VrouterOps {
                    h_op: SandeshOp::Get,
                    vo_interfaces: i32::from(router.vifs().capacity()),
                    vo_vrfs: i32::from(router.routes().max_vrfs()),
                    vo_mpls_labels: i32c(router.mpls().capacity()),
                    vo_nexthops: i32c(cfg.max_nexthops),
                    vo_bridge_entries: i32c(cfg.bridge_entries),
                    vo_flow_entries: i32c(t.hash_entries()),
                    vo_oflow_entries: i32c(t.oflow_entries()),
                    vo_build_info: if info.build_info.is_empty() {
                        default_build_info()
                    } else {
                        info.build_info
                    },
                    vo_flow_hold_limit: i32c(cfg.max_held_per_flow),
                    vo_flow_used_entries: t.len(),
                    vo_flow_used_oentries: t.oflow_used(),
                    vo_bridge_used_entries: u32::try_from(router.routes().bridge_len())
                        .unwrap_or(u32::MAX),
                    ..Default::default()
                };
                self.answers.object(&ops);
            }
            SandeshOp::Reset => {
                self.soft_reset(router, host);
                self.answers.code(0);
            }
            SandeshOp::Add => self.answers.code(0),
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    /// Upstream's soft reset: every object goes, the tables stay.
    fn soft_reset<H: HostOps + ?Sized>(&mut self, router: &mut Router, host: &mut H) {
        let flows: Vec<u32> = router.flows().iter_valid().map(|(i, _)| i).collect();
        for i in flows {
            if let Ok(true) = router.flow_del(i, None) {
                host.flow_deleted(i);
            }
        }
        for v in 0..router.routes().max_vrfs() {
            if router.routes().vrf(v).is_some() || router.routes().bridge_len() > 0 {
                router.vrf_reset(v);
            }
        }
        let labels: Vec<u32> = router.mpls().iter().map(|(l, _)| l).collect();
        for l in labels {
            let _ = router.mpls_del(l);
        }
        let vnis: Vec<u32> = router.vxlan().iter().map(|(v, _)| v).collect();
        for v in vnis {
            let _ = router.vxlan_del(v);
        }
        let nhs: Vec<u32> = router.nexthops().map(|nh| nh.id).collect();
        for id in nhs {
            let _ = router.nh_del(id);
        }
        let vifs: Vec<u16> = router.vifs().iter().map(|v| v.cfg.idx).collect();
        for idx in vifs {
            if router.vif_del(idx).is_ok() {
                host.vif_del(idx);
            }
        }
        router.drop_stats_reset();
        self.vrfs.clear();
        self.vif_extra.clear();
        self.flow_stats = FlowOpStats::default();
    }
}

fn route_add(router: &mut Router, r: &VrRouteReq) -> Result<(), Errno> {
    let (vrf, prefix, data) = convert::route_from_req(r).map_err(errno)?;
    let nh = router.nh(data.nh).ok_or(-ENOENT)?;
    if !matches!(prefix, Prefix::Mac(_))
        && matches!(nh.kind, NhKind::Tunnel { .. })
        && data.flags & rt_flags::LABEL_VALID == 0
    {
        return Err(-EINVAL);
    }
    router.route_add(vrf, prefix, data).map_err(errno)
}

fn route_get(router: &Router, r: &VrRouteReq) -> Result<VrRouteReq, Errno> {
    let (vrf, prefix) = convert::route_target(r).map_err(errno)?;
    let op = SandeshOp::Get;
    match prefix {
        Prefix::Mac(m) => router
            .routes()
            .bridge_lookup(vrf, &m)
            .map(|e| convert::bridge_route_to_req(vrf, m, &e, op))
            .ok_or(-ENOENT),
        Prefix::V4(a, l) => match router.route_get(vrf, prefix) {
            Some(d) => Ok(convert::inet_route_to_req(vrf, prefix, &d, op)),
            None => {
                let t = router.routes().vrf(vrf).ok_or(-ENOENT)?;
                let (pl, d) = t.inet4.lookup(&a).ok_or(-ENOENT)?;
                let _ = l;
                Ok(convert::inet_route_to_req(
                    vrf,
                    Prefix::V4(mask(a, pl), pl),
                    &d,
                    op,
                ))
            }
        },
        Prefix::V6(a, _) => match router.route_get(vrf, prefix) {
            Some(d) => Ok(convert::inet_route_to_req(vrf, prefix, &d, op)),
            None => {
                let t = router.routes().vrf(vrf).ok_or(-ENOENT)?;
                let (pl, d) = t.inet6.lookup(&a).ok_or(-ENOENT)?;
                Ok(convert::inet_route_to_req(
                    vrf,
                    Prefix::V6(mask(a, pl), pl),
                    &d,
                    op,
                ))
            }
        },
    }
}

/// `addr` with the bits beyond `plen` cleared.
fn mask<const N: usize>(mut addr: [u8; N], plen: u8) -> [u8; N] {
    for (i, b) in addr.iter_mut().enumerate() {
        let bits = usize::from(plen).saturating_sub(i * 8).min(8);
        *b &= !(0xffu16 >> bits) as u8;
    }
    addr
}

/// The resume point of an inet dump: `None` starts over (see the crate
/// docs); `Err` for a marker of the wrong size.
fn inet_marker<const N: usize>(r: &VrRouteReq) -> Result<Option<([u8; N], u8)>, ()> {
    if r.rtr_marker.is_empty() {
        return Ok(None);
    }
    let a: [u8; N] = r.rtr_marker.as_slice().try_into().map_err(|_| ())?;
    let plen = u8::try_from(r.rtr_marker_plen).map_err(|_| ())?;
    if plen == 0 && a == [0; N] {
        return Ok(None);
    }
    Ok(Some((a, plen)))
}

fn mpls_req(label: u32, nh: u32, op: SandeshOp) -> VrMplsReq {
    VrMplsReq {
        h_op: op,
        mr_label: label as i32,
        mr_nhid: nh as i32,
        ..Default::default()
    }
}

fn vxlan_req(vni: u32, nh: u32, op: SandeshOp) -> VrVxlanReq {
    VrVxlanReq {
        h_op: op,
        vxlanr_vnid: vni as i32,
        vxlanr_nhid: nh as i32,
        ..Default::default()
    }
}

fn vrf_req(v: u16, op: SandeshOp) -> VrVrfReq {
    VrVrfReq {
        h_op: op,
        vrf_idx: i32::from(v),
        vrf_flags: VRF_FLAG_VALID,
        vrf_hbfl_vif_idx: -1,
        vrf_hbfr_vif_idx: -1,
        ..Default::default()
    }
}

/// An `NLMSG_ERROR` answer to `req` (standard netlink: the errno, then the
/// offending header).
fn write_nlmsg_error(out: &mut Vec<u8>, req: &NlMsgHdr, error: Errno) {
    NlMsgHdr {
        len: (NLMSG_HDRLEN * 2 + 4) as u32,
        msg_type: NLMSG_ERROR,
        flags: 0,
        seq: req.seq,
        pid: req.pid,
    }
    .write(out);
    out.extend_from_slice(&error.to_ne_bytes());
    req.write(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask([10, 1, 2, 3], 16), [10, 1, 0, 0]);
        assert_eq!(mask([255; 4], 20), [255, 255, 240, 0]);
        assert_eq!(mask([255; 4], 0), [0; 4]);
        assert_eq!(mask([255; 4], 32), [255; 4]);
    }

    #[test]
    fn markers() {
        let mut r = VrRouteReq::default();
        assert_eq!(inet_marker::<4>(&r), Ok(None));
        r.rtr_marker = vec![0; 4];
        assert_eq!(inet_marker::<4>(&r), Ok(None));
        r.rtr_marker_plen = 8;
        assert_eq!(inet_marker::<4>(&r), Ok(Some(([0; 4], 8))));
        r.rtr_marker = vec![1, 2, 3];
        assert_eq!(inet_marker::<4>(&r), Err(()));
    }
}
