//! VNC JSON -> compiled rules ([`PolicySet::build`]).

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use uuid::Uuid;

use crate::{Addr, Family, Map, PolicySet, Ports, Rule};

/// What was wrong with an input object or rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The object has no usable `fq_name`.
    NoFqName,
    /// Two objects of the same type have this fq name; the later one wins.
    DuplicateName,
    /// `policy_rule` is not a list.
    RulesNotAList,
    /// A rule is not a JSON object.
    RuleNotAnObject,
    /// `direction` is neither `">"` nor `"<>"`.
    BadDirection(String),
    /// `protocol` is not a known name or a number 0..=255.
    BadProtocol(String),
    /// A security group rule without `protocol` (upstream ignores it).
    NoProtocol,
    /// `ethertype` is neither `"IPv4"` nor `"IPv6"`.
    BadEthertype(String),
    /// A policy rule without `action_list.simple_action`.
    NoAction,
    /// `simple_action` is neither `"pass"` nor `"deny"`.
    BadAction(String),
    /// A policy rule that applies a service chain (`apply_service`): not
    /// supported, so the rule denies what it matches (never passes it
    /// unserviced) and the flows it denies are counted.
    ServiceChainDenied,
    /// A port range that is out of 0..=65535 or reversed.
    BadPorts(String),
    /// An address that cannot be used (shown as JSON).
    BadAddress(String),
    /// `src_addresses` or `dst_addresses` is empty or missing.
    NoAddresses,
    /// A VN refers to a policy that is not in the set.
    UnknownPolicy(String),
    /// A `network_policy` address names a policy that is not in the set.
    UnknownPolicyAddress(String),
    /// A security group rule with no `"local"` side.
    NoLocalSide,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoFqName => f.write_str("no fq_name"),
            Problem::DuplicateName => f.write_str("duplicate fq_name, the later object wins"),
            Problem::RulesNotAList => f.write_str("policy_rule is not a list"),
            Problem::RuleNotAnObject => f.write_str("rule is not an object"),
            Problem::BadDirection(d) => write!(f, "bad direction {d:?}"),
            Problem::BadProtocol(p) => write!(f, "bad protocol {p:?}"),
            Problem::NoProtocol => f.write_str("security group rule without protocol, ignored"),
            Problem::BadEthertype(e) => write!(f, "bad ethertype {e:?}"),
            Problem::NoAction => f.write_str("no action_list.simple_action"),
            Problem::BadAction(a) => write!(f, "bad simple_action {a:?}"),
            Problem::ServiceChainDenied => f.write_str(
                "service chains are not supported: the rule denies the traffic it matches",
            ),
            Problem::BadPorts(p) => write!(f, "bad port range {p}"),
            Problem::BadAddress(a) => write!(f, "bad address {a}"),
            Problem::NoAddresses => f.write_str("no source or destination addresses"),
            Problem::UnknownPolicy(p) => write!(f, "unknown network policy {p}"),
            Problem::UnknownPolicyAddress(p) => {
                write!(f, "network_policy address names unknown policy {p}")
            }
            Problem::NoLocalSide => f.write_str("security group rule has no \"local\" side"),
        }
    }
}

/// An input problem found by [`PolicySet::build`]; the offending rule (or
/// reference, or object) was skipped unless the problem says otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// VNC type: `"virtual-network"`, `"network-policy"`, `"security-group"`.
    pub kind: &'static str,
    /// fq name of the object (its uuid if it has none).
    pub object: String,
    /// Index of the rule in `policy_rule[]`, if the problem is in a rule.
    pub rule: Option<usize>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.object)?;
        if let Some(r) = self.rule {
            write!(f, " rule {r}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

const VN: &str = "virtual-network";
const NP: &str = "network-policy";
const SG: &str = "security-group";

/// An address as written, before per-VN resolution.
#[derive(Clone, Debug, PartialEq)]
enum RawAddr {
    Any,
    Local,
    Vn(String),
    Policy(String),
    Subnets(Vec<IpNet>),
    Sg(String),
}

/// A rule as written (validated), before per-VN resolution.
#[derive(Clone, Debug)]
struct RawRule {
    index: u32,
    deny: bool,
    /// It applies a service chain (and so denies, see `parse_rule`).
    service_chain: bool,
    bidir: bool,
    proto: Option<u8>,
    family: Option<Family>,
    src: Vec<RawAddr>,
    dst: Vec<RawAddr>,
    sports: Ports,
    dports: Ports,
}

impl RawRule {
    fn compile(&self, src: Addr, dst: Addr, owner: u32) -> Rule {
        Rule {
            deny: self.deny,
            service_chain: self.service_chain,
            bidir: self.bidir,
            proto: self.proto,
            family: self.family,
            // Upstream builds no port match for ICMP and ICMPv6 rules.
            check_ports: !matches!(self.proto, Some(1) | Some(58)),
            src,
            dst,
            sports: self.sports.clone(),
            dports: self.dports.clone(),
            owner,
            index: self.index,
        }
    }
}

fn fq_name(v: &Value) -> Option<String> {
    let parts = v.get("fq_name")?.as_array()?;
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(p.as_str()?);
    }
    (!out.is_empty()).then_some(out)
}

/// A non-null field.
fn field<'v>(v: &'v Value, k: &str) -> Option<&'v Value> {
    v.get(k).filter(|x| !x.is_null())
}

fn str_field<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    field(v, k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn subnet(v: &Value) -> Option<IpNet> {
    let ip: IpAddr = str_field(v, "ip_prefix")?.parse().ok()?;
    let len = u8::try_from(field(v, "ip_prefix_len")?.as_u64()?).ok()?;
    IpNet::new(ip, len).ok().map(|n| n.trunc())
}

fn parse_addr(v: &Value, sg_rule: bool) -> Result<RawAddr, Problem> {
    let bad = || Problem::BadAddress(v.to_string());
    if !v.is_object() {
        return Err(bad());
    }
    let mut nets = Vec::new();
    if let Some(s) = field(v, "subnet") {
        nets.push(subnet(s).ok_or_else(bad)?);
    }
    if let Some(l) = field(v, "subnet_list") {
        for s in l.as_array().ok_or_else(bad)? {
            nets.push(subnet(s).ok_or_else(bad)?);
        }
    }
    // Subnets first, then VN, SG, policy: upstream agent's precedence.
    if !nets.is_empty() {
        return Ok(RawAddr::Subnets(nets));
    }
    if let Some(vn) = str_field(v, "virtual_network") {
        return Ok(match vn {
            "any" => RawAddr::Any,
            "local" if !sg_rule => RawAddr::Local,
            "local" => return Err(bad()),
            _ => RawAddr::Vn(vn.to_owned()),
        });
    }
    if let Some(sg) = str_field(v, "security_group") {
        return Ok(match sg {
            "any" => RawAddr::Any,
            "local" if sg_rule => RawAddr::Local,
            "local" => return Err(bad()),
            _ => RawAddr::Sg(sg.to_owned()),
        });
    }
    if let Some(p) = str_field(v, "network_policy") {
        if !sg_rule {
            return Ok(RawAddr::Policy(p.to_owned()));
        }
    }
    Err(bad())
}

fn parse_addrs(r: &Value, k: &str, sg_rule: bool) -> Result<Vec<RawAddr>, Problem> {
    let list = field(r, k)
        .and_then(Value::as_array)
        .ok_or(Problem::NoAddresses)?;
    if list.is_empty() {
        return Err(Problem::NoAddresses);
    }
    list.iter().map(|a| parse_addr(a, sg_rule)).collect()
}

fn parse_ports(r: &Value, k: &str) -> Result<Ports, Problem> {
    let Some(list) = field(r, k) else {
        return Ok(Ports::default());
    };
    let bad = || Problem::BadPorts(list.to_string());
    let list = list.as_array().ok_or_else(bad)?;
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        let get = |k| match field(p, k) {
            None => Ok(-1),
            Some(n) => n.as_i64().ok_or_else(bad),
        };
        let (lo, hi) = (get("start_port")?, get("end_port")?);
        // -1 leaves that end open.
        let lo = if lo < 0 { 0 } else { lo };
        let hi = if hi < 0 { 65535 } else { hi };
        let (lo, hi) = (
            u16::try_from(lo).map_err(|_| bad())?,
            u16::try_from(hi).map_err(|_| bad())?,
        );
        if lo > hi {
            return Err(bad());
        }
        if lo == 0 && hi == u16::MAX {
            // One open range makes the whole list "any".
            return Ok(Ports::default());
        }
        out.push((lo, hi));
    }
    Ok(Ports(out.into()))
}

fn parse_proto(p: &str, family: Option<Family>) -> Option<Option<u8>> {
    let p = p.to_ascii_lowercase();
    Some(Some(match p.as_str() {
        "any" => return Some(None),
        // Upstream turns "icmp" into ICMPv6 for IPv6 rules.
        "icmp" if family == Some(Family::V6) => 58,
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "icmp6" | "icmpv6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        n => n.parse::<u8>().ok()?,
    }))
}

fn parse_rule(
    r: &Value,
    index: usize,
    sg_rule: bool,
) -> Result<(RawRule, Option<Problem>), Problem> {
    if !r.is_object() {
        return Err(Problem::RuleNotAnObject);
    }
    let bidir = match field(r, "direction") {
        None => false,
        Some(d) => match d.as_str() {
            Some(">") => false,
            Some("<>") => true,
            _ => return Err(Problem::BadDirection(d.to_string())),
        },
    };
    let family = match field(r, "ethertype") {
        None => None,
        Some(e) => match e.as_str() {
            Some("IPv4") => Some(Family::V4),
            Some("IPv6") => Some(Family::V6),
            _ => return Err(Problem::BadEthertype(e.to_string())),
        },
    };
    let proto = match field(r, "protocol") {
        None if sg_rule => return Err(Problem::NoProtocol),
        None => None,
        Some(p) => p
            .as_str()
            .and_then(|s| parse_proto(s, family))
            .ok_or_else(|| Problem::BadProtocol(p.to_string()))?,
    };
    let mut note = None;
    let mut service_chain = false;
    let deny = if sg_rule {
        false
    } else {
        let al = field(r, "action_list").ok_or(Problem::NoAction)?;
        // A rule that applies services (with `simple_action` "pass" or
        // none, as upstream writes them) would send the traffic through
        // service instances we cannot steer to yet: deny it rather than
        // let it through unserviced.
        service_chain = field(al, "apply_service")
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty());
        if service_chain {
            note = Some(Problem::ServiceChainDenied);
        }
        match field(al, "simple_action") {
            Some(a) => match a.as_str() {
                Some("pass") => service_chain,
                Some("deny") => true,
                _ => return Err(Problem::BadAction(a.to_string())),
            },
            None if service_chain => true,
            None => return Err(Problem::NoAction),
        }
    };
    let rule = RawRule {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        deny,
        service_chain,
        bidir,
        proto,
        family,
        src: parse_addrs(r, "src_addresses", sg_rule)?,
        dst: parse_addrs(r, "dst_addresses", sg_rule)?,
        sports: parse_ports(r, "src_ports")?,
        dports: parse_ports(r, "dst_ports")?,
    };
    Ok((rule, note))
}

/// Parses `<entries_key>.policy_rule[]`, keeping the valid rules.
fn parse_rules(
    obj: &Value,
    entries_key: &str,
    sg_rule: bool,
    kind: &'static str,
    name: &str,
    warnings: &mut Vec<Warning>,
) -> Vec<RawRule> {
    let warn = |rule, problem| Warning {
        kind,
        object: name.to_owned(),
        rule,
        problem,
    };
    let Some(list) = field(obj, entries_key).and_then(|e| field(e, "policy_rule")) else {
        return Vec::new();
    };
    let Some(list) = list.as_array() else {
        warnings.push(warn(None, Problem::RulesNotAList));
        return Vec::new();
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        match parse_rule(r, i, sg_rule) {
            Ok((rule, note)) => {
                if let Some(p) = note {
                    warnings.push(warn(Some(i), p));
                }
                out.push(rule);
            }
            Err(p) => warnings.push(warn(Some(i), p)),
        }
    }
    out
}

struct Interner {
    ids: Map<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            ids: Map::default(),
            names: Vec::new(),
        }
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.ids.insert(name.into(), id);
        self.names.push(name.into());
        id
    }
}

struct Policy {
    name: String,
    rules: Vec<RawRule>,
    /// Attached VN ids, in attachment order.
    vns: Vec<u32>,
}

impl PolicySet {
    /// Compiles the set from the VNC JSON (inner objects) of the virtual
    /// networks, network policies and security groups — e.g.
    /// `PolicySet::build(snap.iter("virtual-network"),
    /// snap.iter("network-policy"), snap.iter("security-group"))`.
    ///
    /// The uuids resolve `network_policy_refs` that lack a `to` fq name.
    /// Returns the set and the problems found; it never fails.
    pub fn build<'v>(
        vns: impl IntoIterator<Item = (&'v Uuid, &'v Value)>,
        policies: impl IntoIterator<Item = (&'v Uuid, &'v Value)>,
        sgs: impl IntoIterator<Item = (&'v Uuid, &'v Value)>,
    ) -> (PolicySet, Vec<Warning>) {
        let mut w = Vec::new();
        let named = |kind, (u, v): (&Uuid, &'v Value), w: &mut Vec<Warning>| match fq_name(v) {
            Some(n) => Some((*u, n, v)),
            None => {
                w.push(Warning {
                    kind,
                    object: u.to_string(),
                    rule: None,
                    problem: Problem::NoFqName,
                });
                None
            }
        };

        // Policies.
        let mut pols: Vec<Policy> = Vec::new();
        let mut pol_by_name: Map<String, usize> = Map::default();
        let mut pol_by_uuid: Map<Uuid, usize> = Map::default();
        for item in policies {
            let Some((u, name, v)) = named(NP, item, &mut w) else {
                continue;
            };
            let rules = parse_rules(v, "network_policy_entries", false, NP, &name, &mut w);
            let idx = pols.len();
            if pol_by_name.insert(name.clone(), idx).is_some() {
                w.push(Warning {
                    kind: NP,
                    object: name.clone(),
                    rule: None,
                    problem: Problem::DuplicateName,
                });
            }
            pol_by_uuid.insert(u, idx);
            pols.push(Policy {
                name,
                rules,
                vns: Vec::new(),
            });
        }

        // VNs and their ordered policy lists.
        let mut vnames = Interner::new();
        let mut attached: Vec<(u32, Vec<usize>)> = Vec::new();
        for item in vns {
            let Some((_, name, v)) = named(VN, item, &mut w) else {
                continue;
            };
            let id = vnames.intern(&name);
            if attached.iter().any(|(i, _)| *i == id) {
                w.push(Warning {
                    kind: VN,
                    object: name.clone(),
                    rule: None,
                    problem: Problem::DuplicateName,
                });
                attached.retain(|(i, _)| *i != id);
            }
            let mut refs: Vec<((u64, u64), usize)> = Vec::new();
            let list = field(v, "network_policy_refs").and_then(Value::as_array);
            for r in list.into_iter().flatten() {
                let by_name = r
                    .get("to")
                    .and_then(|t| fq_name(&serde_json::json!({ "fq_name": t })));
                let found = by_name
                    .as_ref()
                    .and_then(|n| pol_by_name.get(n))
                    .or_else(|| {
                        let u: Uuid = str_field(r, "uuid")?.parse().ok()?;
                        pol_by_uuid.get(&u)
                    })
                    .copied();
                let Some(p) = found else {
                    let what = by_name.or_else(|| str_field(r, "uuid").map(String::from));
                    w.push(Warning {
                        kind: VN,
                        object: name.clone(),
                        rule: None,
                        problem: Problem::UnknownPolicy(what.unwrap_or_else(|| r.to_string())),
                    });
                    continue;
                };
                let seq = field(r, "attr")
                    .and_then(|a| field(a, "sequence"))
                    .and_then(|s| {
                        Some((field(s, "major")?.as_u64()?, field(s, "minor")?.as_u64()?))
                    })
                    .unwrap_or((u64::MAX, u64::MAX));
                refs.push((seq, p));
            }
            // Stable: equal sequences keep ref order.
            refs.sort_by_key(|&(seq, _)| seq);
            let list: Vec<usize> = refs.into_iter().map(|(_, p)| p).collect();
            for &p in &list {
                if let Some(pol) = pols.get_mut(p) {
                    if !pol.vns.contains(&id) {
                        pol.vns.push(id);
                    }
                }
            }
            attached.push((id, list));
        }

        // Security group names first, so configured SGs have low ids.
        let mut sgnames = Interner::new();
        let mut sg_raw: Vec<(u32, String, Vec<RawRule>)> = Vec::new();
        for item in sgs {
            let Some((_, name, v)) = named(SG, item, &mut w) else {
                continue;
            };
            let id = sgnames.intern(&name);
            if sg_raw.iter().any(|(i, _, _)| *i == id) {
                w.push(Warning {
                    kind: SG,
                    object: name.clone(),
                    rule: None,
                    problem: Problem::DuplicateName,
                });
                sg_raw.retain(|(i, _, _)| *i != id);
            }
            let rules = parse_rules(v, "security_group_entries", true, SG, &name, &mut w);
            sg_raw.push((id, name, rules));
        }

        // Per-VN compiled lists.
        let mut vn_rules: Vec<Vec<Rule>> = Vec::new();
        let mut reported: HashSet<(usize, u32)> = HashSet::new();
        for (vn, list) in &attached {
            let mut out = Vec::new();
            for &p in list {
                let Some(pol) = pols.get(p) else { continue };
                for raw in &pol.rules {
                    for sa in &raw.src {
                        for da in &raw.dst {
                            let Some((s, d)) =
                                resolve_pair(sa, da, *vn, &vnames, &pols, &pol_by_name)
                            else {
                                continue;
                            };
                            let mut cx = Cx {
                                vnames: &mut vnames,
                                sgnames: &mut sgnames,
                                pols: &pols,
                                pol_by_name: &pol_by_name,
                                unknown: None,
                            };
                            let (s, d) = (cx.addr(&s), cx.addr(&d));
                            if let Some(u) = cx.unknown {
                                if reported.insert((p, raw.index)) {
                                    w.push(Warning {
                                        kind: NP,
                                        object: pol.name.clone(),
                                        rule: Some(raw.index as usize),
                                        problem: Problem::UnknownPolicyAddress(u),
                                    });
                                }
                            }
                            out.push(raw.compile(s, d, u32::try_from(p).unwrap_or(u32::MAX)));
                        }
                    }
                }
            }
            let i = *vn as usize;
            if vn_rules.len() <= i {
                vn_rules.resize_with(i + 1, Vec::new);
            }
            if let Some(slot) = vn_rules.get_mut(i) {
                *slot = out;
            }
        }

        // Security groups.
        let mut sg_egress: Vec<Vec<Rule>> = Vec::new();
        let mut sg_ingress: Vec<Vec<Rule>> = Vec::new();
        for (id, name, rules) in &sg_raw {
            let (mut eg, mut ing) = (Vec::new(), Vec::new());
            for raw in rules {
                let mut no_local = false;
                for sa in &raw.src {
                    for da in &raw.dst {
                        let mut cx = Cx {
                            vnames: &mut vnames,
                            sgnames: &mut sgnames,
                            pols: &pols,
                            pol_by_name: &pol_by_name,
                            unknown: None,
                        };
                        // The local side is the port itself: it matches
                        // anything. "local" as destination wins, as upstream.
                        if *da == RawAddr::Local {
                            let s = if *sa == RawAddr::Local {
                                Addr::Any
                            } else {
                                cx.addr(sa)
                            };
                            ing.push(raw.compile(s, Addr::Any, *id));
                        } else if *sa == RawAddr::Local {
                            eg.push(raw.compile(Addr::Any, cx.addr(da), *id));
                        } else {
                            no_local = true;
                        }
                    }
                }
                if no_local {
                    w.push(Warning {
                        kind: SG,
                        object: name.clone(),
                        rule: Some(raw.index as usize),
                        problem: Problem::NoLocalSide,
                    });
                }
            }
            let i = *id as usize;
            for (table, rules) in [(&mut sg_egress, eg), (&mut sg_ingress, ing)] {
                if table.len() <= i {
                    table.resize_with(i + 1, Vec::new);
                }
                if let Some(slot) = table.get_mut(i) {
                    *slot = rules;
                }
            }
        }

        // Connections: pass rules joining a VN (or "any") to concrete VNs.
        let n = vnames.names.len();
        vn_rules.resize_with(n, Vec::new);
        let mut wants: Vec<HashSet<u32>> = vec![HashSet::new(); n];
        for (v, rules) in vn_rules.iter().enumerate() {
            let me = u32::try_from(v).unwrap_or(u32::MAX);
            let is_me = |a: &Addr| matches!(a, Addr::Any) || *a == Addr::Vn(me);
            for r in rules.iter().filter(|r| !r.deny) {
                for (mine, other) in [(&r.src, &r.dst), (&r.dst, &r.src)] {
                    if !is_me(mine) {
                        continue;
                    }
                    let ids: &[u32] = match other {
                        Addr::Vn(x) => std::slice::from_ref(x),
                        Addr::VnSet(xs) => xs,
                        _ => &[],
                    };
                    if let Some(set) = wants.get_mut(v) {
                        set.extend(ids.iter().copied().filter(|&x| x != me));
                    }
                }
            }
        }
        let connected = (0..n)
            .map(|v| {
                let me = u32::try_from(v).unwrap_or(u32::MAX);
                let mut c: Vec<u32> = wants
                    .get(v)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&o| wants.get(o as usize).is_some_and(|s| s.contains(&me)))
                    .collect();
                c.sort_unstable();
                c.into_boxed_slice()
            })
            .collect();

        let nsg = sgnames.names.len();
        sg_egress.resize_with(nsg, Vec::new);
        sg_ingress.resize_with(nsg, Vec::new);
        let set = PolicySet {
            vn_ids: vnames.ids,
            vn_names: vnames.names,
            vn_rules: vn_rules.into_iter().map(Vec::into_boxed_slice).collect(),
            connected,
            policy_names: pols.into_iter().map(|p| p.name.into_boxed_str()).collect(),
            sg_ids: sgnames.ids,
            sg_names: sgnames.names,
            sg_egress: sg_egress.into_iter().map(Vec::into_boxed_slice).collect(),
            sg_ingress: sg_ingress.into_iter().map(Vec::into_boxed_slice).collect(),
        };
        (set, w)
    }
}

/// Upstream's schema-transformer filter: does the (src, dst) pair of a
/// policy rule belong in `vn`'s list, and as what?
fn resolve_pair(
    sa: &RawAddr,
    da: &RawAddr,
    vn: u32,
    vnames: &Interner,
    pols: &[Policy],
    pol_by_name: &Map<String, usize>,
) -> Option<(RawAddr, RawAddr)> {
    let me_name = vnames.names.get(vn as usize)?;
    let local = |a: &RawAddr| match a {
        RawAddr::Local => RawAddr::Vn(me_name.to_string()),
        a => a.clone(),
    };
    let (s, d) = (local(sa), local(da));
    let is_me = |a: &RawAddr| match a {
        RawAddr::Any => true,
        RawAddr::Vn(n) => **n == **me_name,
        _ => false,
    };
    let attached = |a: &RawAddr| match a {
        RawAddr::Policy(p) => pol_by_name
            .get(p)
            .and_then(|&i| pols.get(i))
            .is_some_and(|p| p.vns.contains(&vn)),
        _ => false,
    };
    let me = || RawAddr::Vn(me_name.to_string());
    if is_me(&s) || is_me(&d) {
        Some((s, d))
    } else if attached(&d) {
        Some((s, me()))
    } else if attached(&s) {
        Some((me(), d))
    } else if matches!((&s, &d), (RawAddr::Subnets(_), RawAddr::Subnets(_))) {
        Some((s, d))
    } else {
        None
    }
}

/// Interning context for compiling addresses.
struct Cx<'a> {
    vnames: &'a mut Interner,
    sgnames: &'a mut Interner,
    pols: &'a [Policy],
    pol_by_name: &'a Map<String, usize>,
    /// A `network_policy` address naming an unknown policy.
    unknown: Option<String>,
}

impl Cx<'_> {
    fn addr(&mut self, a: &RawAddr) -> Addr {
        match a {
            // "local" is resolved before (policies) or means the port (SGs).
            RawAddr::Any | RawAddr::Local => Addr::Any,
            RawAddr::Vn(n) => Addr::Vn(self.vnames.intern(n)),
            RawAddr::Subnets(n) => Addr::Subnets(n.clone().into()),
            RawAddr::Sg(n) => Addr::Sg(self.sgnames.intern(n)),
            RawAddr::Policy(p) => match self.pol_by_name.get(p).and_then(|&i| self.pols.get(i)) {
                Some(pol) => Addr::VnSet(pol.vns.clone().into()),
                None => {
                    self.unknown = Some(p.clone());
                    Addr::VnSet(Box::new([]))
                }
            },
        }
    }
}
