//! Flows: the stateful policy cache between the agent and the datapath.
//!
//! [`layout`] holds the shared-memory record layout, [`hash`] the bucket
//! hash, [`table`] the hash table over the records; this module holds what
//! the pipeline and the agent's requests do to it.

pub mod hash;
pub mod layout;
pub mod table;

use crate::error::ConfigError;
use crate::{FlowSet, FlowSetOutcome};
use core::sync::atomic::{fence, Ordering};
use packet::parse::{Family, PacketInfo};
use table::{FlowKey, FlowTable, VR_FLOW_FLAG_DP_FLAGS, VR_FLOW_FLAG_NEW_FLOW};

pub use table::{
    VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD, VR_FLOW_ACTION_NAT,
    VR_FLOW_FLAG_ACTIVE, VR_FLOW_FLAG_DNAT, VR_FLOW_FLAG_DPAT, VR_FLOW_FLAG_SNAT,
    VR_FLOW_FLAG_SPAT,
};

/// Linux address family numbers, which upstream's flow key uses.
pub const FLOW_AF_INET: u8 = 2;
pub const FLOW_AF_INET6: u8 = 10;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

/// Is this ICMP/ICMPv6 type an error that quotes another packet?
#[inline]
pub(crate) fn icmp_is_error(family: Family, ty: u8) -> bool {
    match family {
        Family::Ipv4 => matches!(ty, 3 | 4 | 5 | 11 | 12),
        Family::Ipv6 => matches!(ty, 1..=4),
        _ => false,
    }
}

#[inline]
fn icmp_is_echo(family: Family, ty: u8) -> bool {
    match family {
        Family::Ipv4 => matches!(ty, 0 | 8),
        Family::Ipv6 => matches!(ty, 128 | 129),
        _ => false,
    }
}

/// The flow key of a parsed IP packet, as upstream builds it: echo
/// request and reply share `(identifier, 0)` so they hit the same pair of
/// entries; other ICMP uses the type as destination port. `ports` overrides
/// the L4 ports (non-first fragments, whose ports come from the fragment
/// table). ICMP errors are keyed by the quoted packet, see [`icmp_error_key`].
pub fn make_key(info: &PacketInfo, nh_id: u32, ports: Option<(u16, u16)>) -> FlowKey {
    let family = if info.family == Family::Ipv6 {
        FLOW_AF_INET6
    } else {
        FLOW_AF_INET
    };
    let (sport, dport) = match ports {
        Some(p) => p,
        None if info.proto == IPPROTO_ICMP || info.proto == IPPROTO_ICMPV6 => {
            if icmp_is_echo(info.family, info.icmp_type) {
                (info.sport, 0)
            } else {
                (0, info.icmp_type as u16)
            }
        }
        None => (info.sport, info.dport),
    };
    FlowKey::new(family, info.proto, sport, dport, nh_id, info.src, info.dst)
}

/// Key of an ICMP error: the reverse of the quoted packet's key, so the
/// error follows the flow that provoked it (upstream does the same).
pub fn icmp_error_key(inner: &PacketInfo, nh_id: u32) -> FlowKey {
    let fwd = make_key(inner, nh_id, None);
    let (sport, dport) = if inner.proto == IPPROTO_ICMP || inner.proto == IPPROTO_ICMPV6 {
        (fwd.sport(), fwd.dport())
    } else {
        (fwd.dport(), fwd.sport())
    };
    FlowKey::new(
        fwd.family,
        fwd.proto,
        sport,
        dport,
        nh_id,
        fwd.dst(),
        fwd.src(),
    )
}

pub(crate) fn apply_set(
    flows: &mut FlowTable,
    req: &FlowSet,
) -> Result<FlowSetOutcome, ConfigError> {
    if !matches!(
        req.action,
        VR_FLOW_ACTION_DROP | VR_FLOW_ACTION_HOLD | VR_FLOW_ACTION_FORWARD | VR_FLOW_ACTION_NAT
    ) {
        return Err(ConfigError::Invalid("flow action"));
    }
    if req.key.family != FLOW_AF_INET && req.key.family != FLOW_AF_INET6 {
        return Err(ConfigError::Invalid("flow key family"));
    }
    if let Some(r) = req.rflow {
        if r >= flows.capacity() {
            return Err(ConfigError::OutOfRange("reverse flow"));
        }
    }
    let index = match req.index {
        None => {
            flows
                .insert(&req.key)
                .map_err(|_| ConfigError::NoSpace("flow table"))?
                .0
        }
        Some(i) => i,
    };
    let fe = flows
        .get_valid_mut(index)
        .ok_or(ConfigError::NotFound("flow"))?;
    if let Some(g) = req.gen_id {
        if g != fe.gen_id {
            return Err(ConfigError::Stale("flow"));
        }
    }
    if fe.key != req.key {
        return Err(ConfigError::Invalid("flow key does not match the entry"));
    }
    let was_hold = fe.action == VR_FLOW_ACTION_HOLD;
    fe.write_begin();
    fe.rflow = req.rflow.map_or(-1, |r| r as i32);
    fe.dvrf = req.dvrf.unwrap_or(fe.vrf);
    fe.ecmp_nh_index = req.ecmp_nh_index;
    fe.drop_reason = req.drop_reason;
    fe.src_nh_index = req.src_nh_index;
    // Upstream `vr_flow_set`: the datapath's own bits stay, the rest come
    // from the request; the flow is no longer new once the agent set it.
    fe.flags = ((fe.flags & VR_FLOW_FLAG_DP_FLAGS) | (req.flags & !VR_FLOW_FLAG_DP_FLAGS))
        & !VR_FLOW_FLAG_NEW_FLOW;
    let release_held = was_hold && req.action != VR_FLOW_ACTION_HOLD && fe.hold_count > 0;
    if req.action != VR_FLOW_ACTION_HOLD {
        fe.hold_count = 0;
    }
    // The action last: a reader that sees it decided sees the rest.
    fence(Ordering::Release);
    fe.action = req.action;
    fe.set_active();
    fe.write_end();
    Ok(FlowSetOutcome {
        index,
        gen_id: fe.gen_id,
        release_held,
    })
}

pub(crate) fn delete(
    flows: &mut FlowTable,
    index: u32,
    gen_id: Option<u8>,
) -> Result<bool, ConfigError> {
    let fe = flows
        .get_valid(index)
        .ok_or(ConfigError::NotFound("flow"))?;
    if gen_id.is_some_and(|g| g != fe.gen_id) {
        return Err(ConfigError::Stale("flow"));
    }
    let had_held = fe.action == VR_FLOW_ACTION_HOLD && fe.hold_count > 0;
    flows.remove(index);
    Ok(had_held)
}
