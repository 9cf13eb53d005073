//! [`Handler`]: requests in, answers out (see the crate docs).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use dp_core::flow::table::{FlowTable, VR_FLOW_ACTION_HOLD, VR_FLOW_FLAG_ACTIVE};
use dp_core::route::rt_flags;
use dp_core::{
    ConfigError, FlowSet, Nexthop, NhFlags, NhKind, Prefix, Router, TunnelKind, VifType,
};
use sandesh::frame::{
    self, FrameError, Framing, Meta, NlMsgHdr, GENL_HDRLEN, NLMSG_HDRLEN, NLM_F_MULTI,
    SANDESH_REQUEST,
};
use sandesh::{
    FlowOp, Message, Messages, Sandesh, SandeshOp, VrDropStatsReq, VrFlowReq, VrFlowResponse,
    VrFlowTableData, VrInterfaceReq, VrMemStatsReq, VrMplsReq, VrNexthopReq, VrResponse,
    VrRouteReq, VrVrfReq, VrVxlanReq, VrouterOps,
};

use crate::convert::{self, VifExtra};
use crate::errno::{EBADF, EEXIST, EFAULT, EINVAL, EMSGSIZE, ENODEV, ENOENT, ENOMEM, EOPNOTSUPP};
use crate::{
    default_build_info, HostOps, VRF_FLAG_VALID, VR_FLOW_RESP_FLAG_DELETED,
    VR_MESSAGE_DUMP_INCOMPLETE, VR_MESSAGE_PAGE_SIZE,
};

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

/// A flow request refused by the core, numbered as upstream
/// (`vr_flow_set`): a stale generation is -EBADF, a reverse flow out of
/// range -EINVAL.
fn flow_errno(e: &ConfigError) -> Errno {
    match e {
        ConfigError::Stale(_) => -EBADF,
        ConfigError::OutOfRange(_) => -EINVAL,
        e => e.errno(),
    }
}

/// A route ADD/DEL refused by the core, numbered as upstream
/// (`inet_route_add`, `bridge_entry_add`, `mtrie_add`): a VRF beyond the
/// table or a bad prefix is -EINVAL, a full bridge table -ENOMEM (its hash
/// table has no free entry), a missing next hop -ENOENT.
fn route_errno(e: ConfigError) -> Errno {
    match e {
        ConfigError::NoSpace(_) => -ENOMEM,
        ConfigError::OutOfRange(_) | ConfigError::Invalid(_) => -EINVAL,
        e => errno(e),
    }
}

/// Is `family` one upstream keeps route tables for?
fn route_family_known(family: i32) -> bool {
    [AF_INET, AF_INET6, AF_BRIDGE].contains(&family)
}

const AF_INET: i32 = dp_core::nexthop::AF_INET as i32;
const AF_INET6: i32 = dp_core::nexthop::AF_INET6 as i32;
const AF_BRIDGE: i32 = dp_core::nexthop::AF_BRIDGE as i32;

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
        if may_change_config(&msg) {
            host.config_changed();
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
            SandeshOp::Reset => {
                // Upstream `vr_interface_clear_stats`: -1 means every vif.
                let idx = match r.vifr_idx {
                    -1 => None,
                    i => match u16::try_from(i) {
                        Ok(i) if i < router.vifs().capacity() => Some(i),
                        _ => return self.answers.code(-EINVAL),
                    },
                };
                router.vif_stats_reset(idx);
                let name = idx
                    .and_then(|i| router.vif(i))
                    .map(|v| alloc::string::String::from(v.cfg.name.as_str()))
                    .unwrap_or_default();
                self.answers.object(&VrInterfaceReq {
                    h_op: SandeshOp::Reset,
                    vifr_core: r.vifr_core,
                    vifr_idx: r.vifr_idx,
                    vifr_name: name,
                    ..Default::default()
                });
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
        // Upstream: an index beyond the table is -EINVAL.
        if cfg.idx >= router.vifs().capacity() {
            return Err(-EINVAL);
        }
        if cfg.vif_type == VifType::Agent
            && router
                .vifs()
                .find_type(VifType::Agent)
                .is_some_and(|a| a.cfg.idx != cfg.idx)
        {
            return Err(errno(ConfigError::Invalid("a second agent vif")));
        }
        // Upstream `vlan_drv_add`: no parent, or a VLAN taken, refuses the
        // sub-interface before anything changes.
        router.vifs().check_sub_interface(&cfg).map_err(errno)?;
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
            return Err(match e {
                ConfigError::OutOfRange(_) => -EINVAL,
                e => errno(e),
            });
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
        // Upstream deletes by name ("vif0/N" or the OS name) when given;
        // whatever names no vif is -ENODEV.
        let idx = if r.vifr_name.is_empty() {
            u16::try_from(r.vifr_idx).map_err(|_| -ENODEV)?
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
                .ok_or(-ENODEV)?
        };
        router.vif_del(idx).map_err(|_| -ENODEV)?;
        self.vif_extra.remove(&idx);
        host.vif_del(idx);
        Ok(())
    }

    // ---- next hops --------------------------------------------------------

    fn nexthop(&mut self, router: &mut Router, r: &VrNexthopReq) {
        match r.h_op {
            SandeshOp::Add => {
                let res = convert::nh_from_req(r).map_err(nh_errno).and_then(|nh| {
                    // As upstream: the outgoing vif must exist (-EINVAL
                    // for an encap, -ENODEV for a tunnel).
                    match nh.kind {
                        NhKind::Encap { oif, .. } if router.vif(oif).is_none() => {
                            return Err(-EINVAL)
                        }
                        NhKind::Tunnel { oif, .. } if router.vif(oif).is_none() => {
                            return Err(-ENODEV)
                        }
                        _ => {}
                    }
                    // Upstream: an L3 VXLAN next hop needs its router MAC.
                    let l3_mac = if nh.flags.contains(NhFlags::L3_VXLAN)
                        && convert::tunnel_kind(&nh) == Some(TunnelKind::Vxlan)
                    {
                        match <[u8; 6]>::try_from(r.nhr_rw_dst_mac.as_slice()) {
                            Ok(m) if m != [0; 6] => Some(m),
                            _ => return Err(-EINVAL),
                        }
                    } else {
                        None
                    };
                    let id = nh.id;
                    router.nh_add(nh).map_err(nh_errno)?;
                    match l3_mac {
                        Some(m) => router.nh_set_l3_vxlan_mac(id, m).map_err(nh_errno),
                        None => Ok(()),
                    }
                });
                self.answers.result(res);
            }
            SandeshOp::Del => {
                // Upstream: a missing next hop is -EINVAL.
                let res = u32::try_from(r.nhr_id)
                    .ok()
                    .and_then(|id| router.nh_del(id).ok())
                    .map(|_| ())
                    .ok_or(-EINVAL);
                self.answers.result(res);
            }
            SandeshOp::Get => {
                // Upstream: beyond the table -ENODEV, a hole -ENOENT.
                let ans = match u32::try_from(r.nhr_id) {
                    Ok(id) if id < router.config().max_nexthops => router
                        .nh(id)
                        .map(|nh| nh_answer(router, nh, SandeshOp::Get))
                        .ok_or(-ENOENT),
                    _ => Err(-ENODEV),
                };
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                let marker = i64::from(r.nhr_marker);
                let items = router
                    .nexthops()
                    .filter(move |nh| i64::from(nh.id) > marker)
                    .map(|nh| nh_answer(router, nh, SandeshOp::Dump));
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
                let res = route_del(router, r);
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
        // Upstream: a label beyond the table is -EINVAL for every op.
        let label = u32::try_from(r.mr_label)
            .ok()
            .filter(|l| *l < router.mpls().capacity())
            .ok_or(-EINVAL);
        match r.h_op {
            SandeshOp::Add => {
                let res = label.and_then(|l| {
                    let nh = u32::try_from(r.mr_nhid)
                        .ok()
                        .filter(|n| router.nh(*n).is_some())
                        .ok_or(-EINVAL)?;
                    router.mpls_add(l, nh).map_err(|_| -EINVAL)
                });
                self.answers.result(res);
            }
            SandeshOp::Del => {
                // Upstream: deleting an unset label succeeds.
                let res = label.map(|l| {
                    let _ = router.mpls_del(l);
                });
                self.answers.result(res);
            }
            SandeshOp::Get => {
                let ans = label.and_then(|l| {
                    router
                        .mpls()
                        .get(l)
                        .map(|nh| mpls_req(l, nh, SandeshOp::Get))
                        .ok_or(-ENOENT)
                });
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
                // Upstream: deleting an unset VNI succeeds.
                let res = vni
                    .map(|v| {
                        let _ = router.vxlan_del(v);
                    })
                    .map_err(errno);
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
            // Upstream: deleting a VRF that is not there is -EINVAL.
            SandeshOp::Del => match idx.filter(|v| self.vrf_exists(router, *v)) {
                Some(v) => {
                    router.vrf_reset(v);
                    self.vrfs.remove(&v);
                    self.answers.code(0);
                }
                None => self.answers.code(-EINVAL),
            },
            SandeshOp::Get => {
                let ans = match idx {
                    None => Err(-ENODEV),
                    Some(v) if self.vrf_exists(router, v) => Ok(vrf_req(v, SandeshOp::Get)),
                    Some(_) => Err(-ENOENT),
                };
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
            // Upstream answers every other flow op (FLOW_TABLE_GET is a
            // `vr_flow_table_data` request) with -EINVAL and an empty
            // `vr_flow_response`.
            op => self.answers.code_object(
                -EINVAL,
                &VrFlowResponse {
                    fresp_op: op,
                    ..Default::default()
                },
            ),
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
        // Upstream's checks, in its order (`vr_flow_set_req_is_invalid`):
        // an existing entry must have the request's generation (-EBADF)
        // and key (-EFAULT); a decided flow must exist (-ENOENT).
        let existing = u32::try_from(r.fr_index)
            .ok()
            .and_then(|i| router.flows().get_valid(i));
        match existing {
            Some(e) if e.gen_id != r.fr_gen_id => return Err(-EBADF),
            Some(e) if convert::flow_key(r).ok().as_ref() != Some(e.key()) => return Err(-EFAULT),
            Some(_) => {}
            None if flags & VR_FLOW_FLAG_ACTIVE != 0 && r.fr_index >= 0 => return Err(-ENOENT),
            None => {}
        }
        if convert::flow_req_is_delete(r) {
            let idx = u32::try_from(r.fr_index).map_err(|_| -ENOENT)?;
            let held = router
                .flow_del(idx, Some(r.fr_gen_id))
                .map_err(|e| flow_errno(&e))?;
            resp.fresp_flags |= VR_FLOW_RESP_FLAG_DELETED;
            self.flow_stats.deleted += 1;
            host.flow_changed(idx);
            if held {
                host.flow_deleted(idx);
            }
            return Ok(());
        }
        let key = convert::flow_key(r).map_err(errno)?;
        let rflow = if flags & convert::VR_RFLOW_VALID != 0 {
            match u32::try_from(r.fr_rindex) {
                // Upstream: the reverse entry must be in use.
                Ok(i) if router.flows().get_valid(i).is_some() => Some(i),
                Ok(_) => return Err(-EINVAL),
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
        let out = router.flow_set(&set).map_err(|e| flow_errno(&e))?;
        host.flow_changed(out.index);
        if let Some(r) = rflow {
            host.flow_changed(r);
        }
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

    fn flow_table_data<H: HostOps + ?Sized>(&mut self, router: &Router, host: &H, op: FlowOp) {
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
            ftable_op: op,
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
            ftable_hold_expired: router.holds_expired(),
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
                    vo_from_vm_mss_adj: i32::from(cfg.from_vm_mss_adj),
                    vo_to_vm_mss_adj: i32::from(cfg.to_vm_mss_adj),
                    ..Default::default()
                };
                self.answers.object(&ops);
            }
            SandeshOp::Reset => {
                self.soft_reset(router, host);
                self.answers.code(0);
            }
            SandeshOp::Add => {
                // Upstream's runtime parameters: -1 leaves one as it is.
                // (0 turns an adjustment off, as upstream reads it.)
                let cfg = router.config();
                let set = |v: i32, cur: bool| if v == -1 { cur } else { v != 0 };
                let from = set(r.vo_from_vm_mss_adj, cfg.from_vm_mss_adj);
                let to = set(r.vo_to_vm_mss_adj, cfg.to_vm_mss_adj);
                router.set_mss_adjust(from, to);
                self.answers.code(0)
            }
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
    // Upstream: no table for the family is -ENOENT, a missing next hop too.
    if !route_family_known(r.rtr_family) {
        return Err(-ENOENT);
    }
    let (vrf, _) = convert::route_target(r).map_err(route_errno)?;
    if vrf >= router.routes().max_vrfs() {
        return Err(-EINVAL);
    }
    if u32::try_from(r.rtr_nh_id)
        .ok()
        .and_then(|n| router.nh(n))
        .is_none()
    {
        return Err(-ENOENT);
    }
    let (vrf, prefix, data) = convert::route_from_req(r).map_err(route_errno)?;
    let nh = router.nh(data.nh).ok_or(-ENOENT)?;
    if !matches!(prefix, Prefix::Mac(_))
        && matches!(nh.kind, NhKind::Tunnel { .. })
        && data.flags & rt_flags::LABEL_VALID == 0
    {
        return Err(-EINVAL);
    }
    router.route_add(vrf, prefix, data).map_err(route_errno)
}

/// Route DEL as upstream numbers it: an unknown family -ENOENT; a prefix
/// absent from a VRF that has routes succeeds (upstream's mtrie delete
/// rewrites the covering entries and does not check); a VRF without an inet
/// table -ENOENT; a missing bridge entry -ENOENT.
fn route_del(router: &mut Router, r: &VrRouteReq) -> Result<(), Errno> {
    if !route_family_known(r.rtr_family) {
        return Err(-ENOENT);
    }
    let (vrf, prefix) = convert::route_target(r).map_err(route_errno)?;
    if vrf >= router.routes().max_vrfs() {
        return Err(-EINVAL);
    }
    match router.route_del(vrf, prefix) {
        Ok(()) => Ok(()),
        Err(ConfigError::NotFound(_)) if !matches!(prefix, Prefix::Mac(_)) => {
            if router.routes().vrf(vrf).is_some() {
                Ok(())
            } else {
                Err(-ENOENT)
            }
        }
        Err(e) => Err(route_errno(e)),
    }
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

/// A next hop as `vr_nexthop_req`, with what the router keeps beside it
/// (the router MAC of an L3 VXLAN next hop).
fn nh_answer(router: &Router, nh: &Nexthop, op: SandeshOp) -> VrNexthopReq {
    let mut r = convert::nh_to_req(nh, op);
    if let Some(m) = router.nh_l3_vxlan_mac(nh.id) {
        r.nhr_rw_dst_mac = m.to_vec();
    }
    r
}

/// Whether `msg` may change forwarding state other than flows: everything
/// but flow requests and reads (see [`HostOps::config_changed`]).
fn may_change_config(msg: &Message) -> bool {
    let op = match msg {
        Message::Flow(_)
        | Message::FlowTableData(_)
        | Message::DropStats(_)
        | Message::MemStats(_) => return false,
        Message::Interface(r) => r.h_op,
        Message::Nexthop(r) => r.h_op,
        Message::Route(r) => r.h_op,
        Message::Mpls(r) => r.h_op,
        Message::Vxlan(r) => r.h_op,
        Message::Vrf(r) => r.h_op,
        Message::VrouterOps(r) => r.h_op,
        // Not served (answered -EOPNOTSUPP); counted as a change anyway.
        _ => return true,
    };
    !matches!(op, SandeshOp::Get | SandeshOp::Dump)
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

    #[test]
    fn only_config_writes_count_as_config_changes() {
        use sandesh::{VrNexthopReq, VrRouteReq};
        let route = |h_op| {
            Message::Route(VrRouteReq {
                h_op,
                ..Default::default()
            })
        };
        assert!(may_change_config(&route(SandeshOp::Add)));
        assert!(may_change_config(&route(SandeshOp::Del)));
        assert!(!may_change_config(&route(SandeshOp::Dump)));
        assert!(!may_change_config(&route(SandeshOp::Get)));
        let nh = |h_op| {
            Message::Nexthop(VrNexthopReq {
                h_op,
                ..Default::default()
            })
        };
        assert!(may_change_config(&nh(SandeshOp::Add)));
        assert!(!may_change_config(&nh(SandeshOp::Get)));
        assert!(!may_change_config(&Message::Flow(VrFlowReq::default())));
        assert!(!may_change_config(&Message::DropStats(
            VrDropStatsReq::default()
        )));
    }
}
