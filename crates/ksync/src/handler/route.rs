//! Route requests: `vr_route_req` (inet, inet6 and bridge tables).

use alloc::vec::Vec;

use dp_core::route::rt_flags;
use dp_core::{ConfigError, NhKind, Prefix, Router};
use sandesh::{SandeshOp, VrRouteReq};

use super::{errno, Errno, Handler};
use crate::convert;
use crate::errno::{EINVAL, ENOENT, ENOMEM, EOPNOTSUPP};

impl Handler {
    pub(super) fn route(&mut self, router: &mut Router, r: &VrRouteReq) {
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

    pub(super) fn route_dump(&mut self, router: &Router, r: &VrRouteReq) {
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

#[cfg(test)]
mod tests {
    use alloc::vec;

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
