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

use crate::convert::VifExtra;
use crate::errno::{EINVAL, EMSGSIZE, EOPNOTSUPP};
use crate::{HostOps, VR_MESSAGE_PAGE_SIZE};
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
    fn only_config_writes_count_as_config_changes() {
        use sandesh::{VrDropStatsReq, VrFlowReq, VrNexthopReq, VrRouteReq};
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
