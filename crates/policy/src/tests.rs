use super::*;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, Ipv6Addr};
use uuid::Uuid;

fn fq(name: &str) -> Value {
    Value::from(name.split(':').collect::<Vec<_>>())
}

#[derive(Default)]
struct Cfg {
    vns: Vec<(Uuid, Value)>,
    pols: Vec<(Uuid, Value)>,
    sgs: Vec<(Uuid, Value)>,
}

impl Cfg {
    fn policy(&mut self, name: &str, rules: Value) -> &mut Self {
        self.pols.push((
            Uuid::new_v4(),
            json!({"fq_name": fq(name), "network_policy_entries": {"policy_rule": rules}}),
        ));
        self
    }
    /// `pols`: (policy name, major, minor).
    fn vn(&mut self, name: &str, pols: &[(&str, u64, u64)]) -> &mut Self {
        let refs: Vec<Value> = pols
            .iter()
            .map(|(p, ma, mi)| json!({"to": fq(p), "attr": {"sequence": {"major": ma, "minor": mi}}}))
            .collect();
        self.vns.push((
            Uuid::new_v4(),
            json!({"fq_name": fq(name), "network_policy_refs": refs}),
        ));
        self
    }
    fn sg(&mut self, name: &str, rules: Value) -> &mut Self {
        self.sgs.push((
            Uuid::new_v4(),
            json!({"fq_name": fq(name), "security_group_entries": {"policy_rule": rules}}),
        ));
        self
    }
    fn build(&self) -> (PolicySet, Vec<Warning>) {
        PolicySet::build(
            self.vns.iter().map(|(u, v)| (u, v)),
            self.pols.iter().map(|(u, v)| (u, v)),
            self.sgs.iter().map(|(u, v)| (u, v)),
        )
    }
    fn set(&self) -> PolicySet {
        let (s, w) = self.build();
        assert!(w.is_empty(), "unexpected warnings: {w:?}");
        s
    }
}

const RED: &str = "d:p:red";
const BLUE: &str = "d:p:blue";
const GREEN: &str = "d:p:green";

fn vn_addr(vn: &str) -> Value {
    json!([{"virtual_network": vn}])
}

fn ports(p: Option<(i64, i64)>) -> Value {
    let (a, b) = p.unwrap_or((-1, -1));
    json!([{"start_port": a, "end_port": b}])
}

fn prule(
    dir: &str,
    proto: &str,
    src: &str,
    dst: &str,
    dport: Option<(i64, i64)>,
    action: &str,
) -> Value {
    json!({
        "direction": dir, "protocol": proto,
        "src_addresses": vn_addr(src), "src_ports": ports(None),
        "dst_addresses": vn_addr(dst), "dst_ports": ports(dport),
        "action_list": {"simple_action": action},
    })
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn flow(proto: u8, src: &str, dst: &str, sport: u16, dport: u16) -> FlowTuple {
    let p = |s: &str| if s.contains(':') { v6(s) } else { v4(s) };
    FlowTuple {
        proto,
        src: p(src),
        dst: p(dst),
        sport,
        dport,
    }
}

fn tcp(dport: u16) -> FlowTuple {
    flow(6, "10.1.0.3", "10.2.0.4", 40000, dport)
}

fn ping() -> FlowTuple {
    flow(1, "10.1.0.3", "10.2.0.4", 7, 0)
}

const NOSG: &[String] = &[];

fn ep(vn: &str) -> Endpoint<'_> {
    Endpoint {
        vn: Some(vn),
        sgs: NOSG,
    }
}

fn allow(set: &PolicySet, s: &str, d: &str, t: &FlowTuple) -> bool {
    set.evaluate(&ep(s), &ep(d), t).allow
}

fn pref(name: &str, index: usize) -> RuleRef<'_> {
    RuleRef {
        kind: RuleKind::Policy,
        name,
        index,
    }
}

fn sgref(name: &str, index: usize) -> RuleRef<'_> {
    RuleRef {
        kind: RuleKind::SecurityGroup,
        name,
        index,
    }
}

// ---- network policy --------------------------------------------------------

#[test]
fn intra_vn_default_allow() {
    let mut c = Cfg::default();
    c.vn(RED, &[]);
    let set = c.set();
    let v = set.evaluate(&ep(RED), &ep(RED), &tcp(80));
    assert_eq!(
        v,
        Verdict {
            allow: true,
            why: Why::Allowed {
                policy: PolicyPass::IntraVn(None),
                egress: None,
                ingress: None
            }
        }
    );
    // Unknown VN, same on both sides: still intra-VN.
    assert!(allow(&set, "d:p:nowhere", "d:p:nowhere", &tcp(80)));
    // A policy that does not match intra-VN traffic leaves the default.
    c.policy(
        "d:p:web",
        json!([prule("<>", "tcp", RED, BLUE, Some((80, 80)), "pass")]),
    );
    c.vns.clear();
    c.vn(RED, &[("d:p:web", 0, 0)]);
    let set = c.set();
    assert!(allow(
        &set,
        RED,
        RED,
        &flow(17, "10.1.0.3", "10.1.0.4", 1, 53)
    ));
}

#[test]
fn intra_vn_deny_rule() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:no-ssh",
        json!([prule(">", "tcp", "local", "local", Some((22, 22)), "deny")]),
    );
    c.vn(RED, &[("d:p:no-ssh", 0, 0)]);
    let set = c.set();
    let v = set.evaluate(&ep(RED), &ep(RED), &tcp(22));
    assert_eq!(
        v,
        Verdict {
            allow: false,
            why: Why::DenyRule {
                vn: RED,
                rule: pref("d:p:no-ssh", 0)
            }
        }
    );
    assert_eq!(
        v.to_string(),
        "deny: network-policy d:p:no-ssh rule 0 in VN d:p:red"
    );
    assert!(allow(&set, RED, RED, &tcp(23)));
}

#[test]
fn inter_vn_without_policy_denies() {
    let mut c = Cfg::default();
    c.vn(RED, &[]).vn(BLUE, &[]);
    let set = c.set();
    let v = set.evaluate(&ep(RED), &ep(BLUE), &tcp(80));
    assert_eq!(
        v,
        Verdict {
            allow: false,
            why: Why::NoPolicyMatch { vn: RED }
        }
    );
    assert!(!allow(&set, BLUE, RED, &tcp(80)));
    assert!(!allow(&set, RED, "d:p:unknown", &tcp(80)));
}

#[test]
fn icmp_only_policy_allows_ping_not_tcp() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:ping",
        json!([prule("<>", "icmp", RED, BLUE, None, "pass")]),
    );
    c.vn(RED, &[("d:p:ping", 0, 0)])
        .vn(BLUE, &[("d:p:ping", 0, 0)]);
    let set = c.set();
    let v = set.evaluate(&ep(RED), &ep(BLUE), &ping());
    assert_eq!(
        v,
        Verdict {
            allow: true,
            why: Why::Allowed {
                policy: PolicyPass::InterVn {
                    src: Some(pref("d:p:ping", 0)),
                    dst: Some(pref("d:p:ping", 0))
                },
                egress: None,
                ingress: None,
            }
        }
    );
    assert!(allow(&set, BLUE, RED, &ping()));
    // ICMP rules ignore ports: any echo id / type works.
    assert!(allow(
        &set,
        RED,
        BLUE,
        &flow(1, "10.1.0.3", "10.2.0.4", 999, 8)
    ));
    assert!(!allow(&set, RED, BLUE, &tcp(80)));
    assert!(!allow(
        &set,
        BLUE,
        RED,
        &flow(17, "10.2.0.4", "10.1.0.3", 1, 53)
    ));
    // Not to a third VN.
    assert!(!allow(&set, RED, GREEN, &ping()));
}

#[test]
fn one_way_policy() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:r2b",
        json!([prule(">", "any", RED, BLUE, None, "pass")]),
    );
    c.vn(RED, &[("d:p:r2b", 0, 0)])
        .vn(BLUE, &[("d:p:r2b", 0, 0)]);
    let set = c.set();
    assert!(allow(&set, RED, BLUE, &tcp(80)));
    assert!(allow(&set, RED, BLUE, &ping()));
    let v = set.evaluate(&ep(BLUE), &ep(RED), &tcp(80));
    assert_eq!(
        v,
        Verdict {
            allow: false,
            why: Why::NoPolicyMatch { vn: BLUE }
        }
    );
}

#[test]
fn policy_on_one_side_only_denies() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:r2b",
        json!([prule("<>", "any", RED, BLUE, None, "pass")]),
    );
    c.vn(RED, &[("d:p:r2b", 0, 0)]).vn(BLUE, &[]);
    let set = c.set();
    let v = set.evaluate(&ep(RED), &ep(BLUE), &tcp(80));
    assert_eq!(
        v,
        Verdict {
            allow: false,
            why: Why::NoPolicyMatch { vn: BLUE }
        }
    );
    assert!(set.connected_vns(RED).is_empty());
}

#[test]
fn port_ranges() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:p",
        json!([
            prule(">", "tcp", RED, BLUE, Some((8000, 8080)), "pass"),
            prule(">", "udp", RED, BLUE, Some((5000, -1)), "pass"),
            {
                "direction": ">", "protocol": "tcp",
                "src_addresses": vn_addr(RED), "src_ports": [{"start_port": 1000, "end_port": 1999}],
                "dst_addresses": vn_addr(BLUE), "dst_ports": [{"start_port": 22, "end_port": 22}, {"start_port": 25, "end_port": 25}],
                "action_list": {"simple_action": "pass"},
            },
        ]),
    );
    c.vn(RED, &[("d:p:p", 0, 0)]).vn(BLUE, &[("d:p:p", 0, 0)]);
    let set = c.set();
    for (p, ok) in [
        (7999, false),
        (8000, true),
        (8042, true),
        (8080, true),
        (8081, false),
    ] {
        assert_eq!(allow(&set, RED, BLUE, &tcp(p)), ok, "tcp/{p}");
    }
    let udp = |d| flow(17, "10.1.0.3", "10.2.0.4", 1, d);
    assert!(!allow(&set, RED, BLUE, &udp(4999)));
    assert!(allow(&set, RED, BLUE, &udp(5000)));
    assert!(allow(&set, RED, BLUE, &udp(65535)));
    let t = |s, d| flow(6, "10.1.0.3", "10.2.0.4", s, d);
    assert!(allow(&set, RED, BLUE, &t(1500, 22)));
    assert!(allow(&set, RED, BLUE, &t(1000, 25)));
    assert!(!allow(&set, RED, BLUE, &t(2000, 22)));
    assert!(!allow(&set, RED, BLUE, &t(1500, 23)));
}

#[test]
fn bidirectional_rule_swaps_ports() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:web",
        json!([prule("<>", "tcp", RED, BLUE, Some((80, 80)), "pass")]),
    );
    c.vn(RED, &[("d:p:web", 0, 0)])
        .vn(BLUE, &[("d:p:web", 0, 0)]);
    let set = c.set();
    assert!(allow(&set, RED, BLUE, &tcp(80)));
    // Mirror image: blue port 80 -> red any port.
    assert!(allow(
        &set,
        BLUE,
        RED,
        &flow(6, "10.2.0.4", "10.1.0.3", 80, 40000)
    ));
    // But not blue -> red:80.
    assert!(!allow(
        &set,
        BLUE,
        RED,
        &flow(6, "10.2.0.4", "10.1.0.3", 40000, 80)
    ));
}

#[test]
fn deny_before_pass_by_sequence() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:deny-ssh",
        json!([prule("<>", "tcp", RED, BLUE, Some((22, 22)), "deny")]),
    );
    c.policy(
        "d:p:all",
        json!([prule("<>", "any", RED, BLUE, None, "pass")]),
    );
    c.vn(RED, &[("d:p:all", 0, 1), ("d:p:deny-ssh", 0, 0)])
        .vn(BLUE, &[("d:p:all", 0, 0)]);
    let set = c.set();
    let v = set.evaluate(&ep(RED), &ep(BLUE), &tcp(22));
    assert_eq!(
        v,
        Verdict {
            allow: false,
            why: Why::DenyRule {
                vn: RED,
                rule: pref("d:p:deny-ssh", 0)
            }
        }
    );
    assert!(allow(&set, RED, BLUE, &tcp(80)));
    // The deny rule is "<>": its mirror image (blue port 22 -> red)
    // denies in red's list, on the destination side.
    let v = set.evaluate(
        &ep(BLUE),
        &ep(RED),
        &flow(6, "10.2.0.4", "10.1.0.3", 22, 40000),
    );
    assert_eq!(
        v.why,
        Why::DenyRule {
            vn: RED,
            rule: pref("d:p:deny-ssh", 0)
        }
    );
    assert!(allow(
        &set,
        BLUE,
        RED,
        &flow(6, "10.2.0.4", "10.1.0.3", 40000, 22)
    ));

    // Sequence swapped: the pass rule is first, ssh is allowed.
    c.vns.clear();
    c.vn(RED, &[("d:p:all", 1, 0), ("d:p:deny-ssh", 2, 0)])
        .vn(BLUE, &[("d:p:all", 0, 0)]);
    let set = c.set();
    assert!(allow(&set, RED, BLUE, &tcp(22)));

    // Major sorts before minor; a ref without sequence sorts last.
    let mut c2 = Cfg::default();
    c2.policy(
        "d:p:deny-ssh",
        json!([prule("<>", "tcp", RED, BLUE, Some((22, 22)), "deny")]),
    );
    c2.policy(
        "d:p:all",
        json!([prule("<>", "any", RED, BLUE, None, "pass")]),
    );
    c2.vns.push((
        Uuid::new_v4(),
        json!({"fq_name": fq(RED), "network_policy_refs": [
            {"to": fq("d:p:all"), "attr": null},
            {"to": fq("d:p:deny-ssh"), "attr": {"sequence": {"major": 5, "minor": 9}}},
        ]}),
    ));
    c2.vn(BLUE, &[("d:p:all", 0, 0)]);
    let set = c2.set();
    assert!(!allow(&set, RED, BLUE, &tcp(22)));
}

#[test]
fn rule_order_within_a_policy() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:p",
        json!([
            prule("<>", "tcp", RED, BLUE, Some((22, 22)), "deny"),
            prule("<>", "any", "any", "any", None, "pass"),
        ]),
    );
    c.vn(RED, &[("d:p:p", 0, 0)]).vn(BLUE, &[("d:p:p", 0, 0)]);
    let set = c.set();
    assert!(!allow(&set, RED, BLUE, &tcp(22)));
    assert!(allow(&set, RED, BLUE, &tcp(23)));
    let v = set.evaluate(&ep(RED), &ep(BLUE), &tcp(23));
    assert_eq!(
        v.why,
        Why::Allowed {
            policy: PolicyPass::InterVn {
                src: Some(pref("d:p:p", 1)),
                dst: Some(pref("d:p:p", 1))
            },
            egress: None,
            ingress: None
        }
    );
    assert_eq!(v.to_string(), "allow, source VN: network-policy d:p:p rule 1, destination VN: network-policy d:p:p rule 1");
}

#[test]
fn local_means_the_attached_vn() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:out",
        json!([prule(">", "any", "local", "any", None, "pass")]),
    );
    c.policy(
        "d:p:both",
        json!([prule("<>", "any", "local", "any", None, "pass")]),
    );
    c.vn(RED, &[("d:p:out", 0, 0)])
        .vn(BLUE, &[("d:p:out", 0, 0)]);
    c.vn(GREEN, &[("d:p:both", 0, 0)])
        .vn("d:p:yellow", &[("d:p:both", 0, 0)]);
    let set = c.set();
    // red's list passes (local = red); blue's "blue -> any" does not match
    // red -> blue.
    assert_eq!(
        set.evaluate(&ep(RED), &ep(BLUE), &tcp(1)).why,
        Why::NoPolicyMatch { vn: BLUE }
    );
    // "<>": blue's mirrored rule any -> blue matches.
    assert!(allow(&set, GREEN, "d:p:yellow", &tcp(1)));
}

#[test]
fn network_policy_address() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:mesh",
        json!([{
            "direction": "<>", "protocol": "any",
            "src_addresses": [{"network_policy": "d:p:mesh"}],
            "dst_addresses": [{"network_policy": "d:p:mesh"}],
            "action_list": {"simple_action": "pass"},
        }]),
    );
    c.vn(RED, &[("d:p:mesh", 0, 0)])
        .vn(BLUE, &[("d:p:mesh", 0, 0)])
        .vn(GREEN, &[("d:p:mesh", 0, 0)])
        .vn("d:p:x", &[]);
    let set = c.set();
    for (a, b) in [(RED, BLUE), (BLUE, GREEN), (GREEN, RED)] {
        assert!(allow(&set, a, b, &tcp(1)), "{a} -> {b}");
    }
    assert!(!allow(&set, RED, "d:p:x", &tcp(1)));
    assert_eq!(
        set.connected_vns(RED),
        vec![BLUE.to_string(), GREEN.to_string()]
    );
}

#[test]
fn subnet_rules_v4_v6() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:nets",
        json!([
            {
                "direction": ">", "protocol": "tcp",
                "src_addresses": [{"subnet": {"ip_prefix": "10.1.7.9", "ip_prefix_len": 16}}],
                "dst_addresses": [{"subnet_list": [{"ip_prefix": "10.2.0.0", "ip_prefix_len": 24}, {"ip_prefix": "10.3.0.0", "ip_prefix_len": 24}]}],
                "action_list": {"simple_action": "pass"},
            },
            {
                "direction": ">", "protocol": "any", "ethertype": "IPv6",
                "src_addresses": [{"subnet": {"ip_prefix": "2001:db8:1::", "ip_prefix_len": 48}}],
                "dst_addresses": [{"virtual_network": "any"}],
                "action_list": {"simple_action": "pass"},
            },
        ]),
    );
    c.vn(RED, &[("d:p:nets", 0, 0)])
        .vn(BLUE, &[("d:p:nets", 0, 0)]);
    let set = c.set();
    assert!(allow(
        &set,
        RED,
        BLUE,
        &flow(6, "10.1.200.1", "10.2.0.9", 1, 2)
    ));
    assert!(allow(
        &set,
        RED,
        BLUE,
        &flow(6, "10.1.200.1", "10.3.0.255", 1, 2)
    ));
    assert!(!allow(
        &set,
        RED,
        BLUE,
        &flow(6, "10.1.200.1", "10.2.1.0", 1, 2)
    ));
    assert!(!allow(
        &set,
        RED,
        BLUE,
        &flow(6, "10.9.0.1", "10.2.0.9", 1, 2)
    ));
    assert!(!allow(
        &set,
        RED,
        BLUE,
        &flow(17, "10.1.200.1", "10.2.0.9", 1, 2)
    ));
    assert!(allow(
        &set,
        RED,
        BLUE,
        &flow(17, "2001:db8:1::5", "2001:db8:2::5", 1, 2)
    ));
    assert!(!allow(
        &set,
        RED,
        BLUE,
        &flow(17, "2001:db8:9::5", "2001:db8:2::5", 1, 2)
    ));
}

#[test]
fn ethertype_and_icmp6() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:v6ping",
        json!([{
            "direction": "<>", "protocol": "icmp", "ethertype": "IPv6",
            "src_addresses": vn_addr(RED), "dst_addresses": vn_addr(BLUE),
            "action_list": {"simple_action": "pass"},
        }]),
    );
    c.vn(RED, &[("d:p:v6ping", 0, 0)])
        .vn(BLUE, &[("d:p:v6ping", 0, 0)]);
    let set = c.set();
    // "icmp" with IPv6 is ICMPv6, and IPv4 flows do not match.
    assert!(allow(
        &set,
        RED,
        BLUE,
        &flow(58, "fd00::1", "fd00::2", 0, 0)
    ));
    assert!(!allow(
        &set,
        RED,
        BLUE,
        &flow(1, "fd00::1", "fd00::2", 0, 0)
    ));
    assert!(!allow(&set, RED, BLUE, &ping()));
}

#[test]
fn endpoints_without_vn() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:out",
        json!([prule("<>", "any", "local", "any", None, "pass")]),
    );
    c.vn(RED, &[("d:p:out", 0, 0)]).vn(BLUE, &[]);
    let set = c.set();
    let fabric = Endpoint {
        vn: None,
        sgs: NOSG,
    };
    assert!(set.evaluate(&ep(RED), &fabric, &tcp(80)).allow);
    let v = set.evaluate(&fabric, &ep(RED), &tcp(80));
    assert_eq!(
        v.why,
        Why::Allowed {
            policy: PolicyPass::InterVn {
                src: None,
                dst: Some(pref("d:p:out", 0))
            },
            egress: None,
            ingress: None
        }
    );
    assert_eq!(
        set.evaluate(&ep(BLUE), &fabric, &tcp(80)).why,
        Why::NoPolicyMatch { vn: BLUE }
    );
    assert_eq!(
        set.evaluate(&fabric, &fabric, &tcp(80)).why,
        Why::Allowed {
            policy: PolicyPass::NoVn,
            egress: None,
            ingress: None
        }
    );
}

#[test]
fn connected_vns_need_pass_rules_on_both() {
    let mut c = Cfg::default();
    c.policy(
        "d:p:rb",
        json!([prule("<>", "tcp", RED, BLUE, Some((80, 80)), "pass")]),
    );
    c.policy(
        "d:p:rg",
        json!([prule("<>", "any", RED, GREEN, None, "pass")]),
    );
    c.policy(
        "d:p:deny",
        json!([prule("<>", "any", BLUE, GREEN, None, "deny")]),
    );
    c.vn(RED, &[("d:p:rb", 0, 0), ("d:p:rg", 0, 1)]);
    c.vn(BLUE, &[("d:p:rb", 0, 0), ("d:p:deny", 0, 1)]);
    c.vn(GREEN, &[("d:p:deny", 0, 1)]);
    let set = c.set();
    assert_eq!(set.connected_vns(RED), vec![BLUE.to_string()]);
    assert_eq!(set.connected_vns(BLUE), vec![RED.to_string()]);
    assert!(set.connected_vns(GREEN).is_empty());
    assert!(set.connected_vns("d:p:none").is_empty());
    assert_eq!(set.rule_count(RED), 2);
    // A VN named only by a rule is known but has no rules.
    assert!(set.vns().any(|v| v == GREEN));
}

#[test]
fn upstream_tutorial_policy() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/upstream-fixtures/vnc/extracted/"
    );
    let read = |f: &str| -> Option<Value> {
        let entry = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(f))?;
        serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
    };
    // Fall back to an inline copy when shared/ is not beside the repo.
    let pol = read("05_").unwrap_or_else(|| {
        json!({"network-policy": {"fq_name": ["default-domain", "admin", "policy-red-blue"], "network_policy_entries": {"policy_rule": [{"direction": "<>", "protocol": "tcp", "dst_addresses": [{"virtual_network": "default-domain:admin:vn-blue"}], "dst_ports": [{"start_port": 80, "end_port": 80}], "action_list": {"simple_action": "pass"}, "src_addresses": [{"virtual_network": "default-domain:admin:vn-red"}], "src_ports": [{"end_port": -1, "start_port": -1}]}]}}})
    });
    let blue = read("07_").unwrap_or_else(|| json!({"virtual-network": {"fq_name": ["default-domain", "admin", "vn-blue"], "network_policy_refs": [{"to": ["default-domain", "admin", "policy-red-blue"], "attr": {"sequence": {"major": 0, "minor": 0}}}]}}));
    let red = read("09_").unwrap_or_else(|| json!({"virtual-network": {"fq_name": ["default-domain", "admin", "vn-red"], "network_policy_refs": [{"to": ["default-domain", "admin", "policy-red-blue"], "attr": {"sequence": {"major": 0, "minor": 0}}}]}}));
    let (u1, u2, u3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (set, w) = PolicySet::build(
        [
            (&u1, &blue["virtual-network"]),
            (&u2, &red["virtual-network"]),
        ],
        [(&u3, &pol["network-policy"])],
        [],
    );
    assert!(w.is_empty(), "{w:?}");
    let (r, b) = (
        "default-domain:admin:vn-red",
        "default-domain:admin:vn-blue",
    );
    assert!(allow(&set, r, b, &tcp(80)));
    assert!(allow(
        &set,
        b,
        r,
        &flow(6, "10.2.0.4", "10.1.0.3", 80, 40000)
    ));
    assert!(!allow(&set, r, b, &tcp(81)));
    assert!(!allow(&set, r, b, &ping()));
    assert_eq!(set.connected_vns(r), vec![b.to_string()]);
}

// ---- security groups --------------------------------------------------------

const DEFAULT_SG: &str = "d:p:default";

fn default_sg_rules(name: &str) -> Value {
    json!([
        {"direction": ">", "protocol": "any", "ethertype": "IPv4",
         "src_addresses": [{"security_group": name}], "dst_addresses": [{"security_group": "local"}]},
        {"direction": ">", "protocol": "any", "ethertype": "IPv6",
         "src_addresses": [{"security_group": name}], "dst_addresses": [{"security_group": "local"}]},
        {"direction": ">", "protocol": "any", "ethertype": "IPv4",
         "src_addresses": [{"security_group": "local"}], "dst_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}]},
        {"direction": ">", "protocol": "any", "ethertype": "IPv6",
         "src_addresses": [{"security_group": "local"}], "dst_addresses": [{"subnet": {"ip_prefix": "::", "ip_prefix_len": 0}}]},
    ])
}

fn sgs(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn default_sg_allows_same_sg_ingress_only() {
    let mut c = Cfg::default();
    c.vn(RED, &[]);
    c.sg(DEFAULT_SG, default_sg_rules(DEFAULT_SG));
    c.sg("d:p:web", json!([
        {"direction": ">", "protocol": "any", "src_addresses": [{"security_group": "local"}], "dst_addresses": [{"security_group": "any"}]},
    ]));
    let set = c.set();
    let (def, web) = (sgs(&[DEFAULT_SG]), sgs(&["d:p:web"]));
    let a = Endpoint {
        vn: Some(RED),
        sgs: &def,
    };
    let w = Endpoint {
        vn: Some(RED),
        sgs: &web,
    };
    let bare = ep(RED);
    let t = flow(6, "10.1.0.3", "10.1.0.4", 40000, 80);
    let v = set.evaluate(&a, &a, &t);
    assert_eq!(
        v,
        Verdict {
            allow: true,
            why: Why::Allowed {
                policy: PolicyPass::IntraVn(None),
                egress: Some(sgref(DEFAULT_SG, 2)),
                ingress: Some(sgref(DEFAULT_SG, 0))
            }
        }
    );
    assert_eq!(v.to_string(), "allow (intra-VN default), egress: security-group d:p:default rule 2, ingress: security-group d:p:default rule 0");
    // IPv6 uses the IPv6 rules.
    let v = set.evaluate(&a, &a, &flow(6, "fd00::3", "fd00::4", 1, 2));
    assert_eq!(
        v.why,
        Why::Allowed {
            policy: PolicyPass::IntraVn(None),
            egress: Some(sgref(DEFAULT_SG, 3)),
            ingress: Some(sgref(DEFAULT_SG, 1))
        }
    );
    // Other SG / no SG -> default: no ingress rule.
    assert_eq!(
        set.evaluate(&w, &a, &t),
        Verdict {
            allow: false,
            why: Why::NoIngressRule
        }
    );
    assert_eq!(set.evaluate(&bare, &a, &t).why, Why::NoIngressRule);
    // Default -> no SG / web: egress allowed; web's has no ingress rule.
    assert!(set.evaluate(&a, &bare, &t).allow);
    assert_eq!(set.evaluate(&a, &w, &t).why, Why::NoIngressRule);
    // A member of both passes.
    let both = sgs(&["d:p:web", DEFAULT_SG]);
    let b = Endpoint {
        vn: Some(RED),
        sgs: &both,
    };
    assert!(set.evaluate(&b, &a, &t).allow);
}

#[test]
fn sg_tcp22_only() {
    let mut c = Cfg::default();
    c.sg("d:p:ssh", json!([
        {"direction": ">", "protocol": "tcp", "ethertype": "IPv4",
         "src_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}], "src_ports": [{"start_port": 0, "end_port": 65535}],
         "dst_addresses": [{"security_group": "local"}], "dst_ports": [{"start_port": 22, "end_port": 22}]},
        {"direction": ">", "protocol": "any", "src_addresses": [{"security_group": "local"}], "dst_addresses": [{"security_group": "any"}]},
    ]));
    let set = c.set();
    let ssh = sgs(&["d:p:ssh"]);
    let server = Endpoint {
        vn: Some(RED),
        sgs: &ssh,
    };
    let client = ep(RED);
    let t = |p, d| flow(p, "10.1.0.3", "10.1.0.4", 40000, d);
    assert_eq!(
        set.evaluate(&client, &server, &t(6, 22)).why,
        Why::Allowed {
            policy: PolicyPass::IntraVn(None),
            egress: None,
            ingress: Some(sgref("d:p:ssh", 0))
        }
    );
    assert_eq!(
        set.evaluate(&client, &server, &t(6, 80)).why,
        Why::NoIngressRule
    );
    assert!(!set.evaluate(&client, &server, &t(17, 22)).allow);
    assert!(
        !set.evaluate(&client, &server, &flow(6, "fd00::1", "fd00::2", 1, 22))
            .allow
    );
    // The server may open connections anywhere.
    assert!(set.evaluate(&server, &client, &t(6, 80)).allow);
}

#[test]
fn sg_subnet_remote_v6_and_unknown_sg() {
    let mut c = Cfg::default();
    c.sg("d:p:v6", json!([
        {"direction": ">", "protocol": "udp", "ethertype": "IPv6",
         "src_addresses": [{"security_group": "local"}],
         "dst_addresses": [{"subnet": {"ip_prefix": "2001:db8::", "ip_prefix_len": 32}}], "dst_ports": [{"start_port": 53, "end_port": 53}]},
    ]));
    let set = c.set();
    let s = sgs(&["d:p:v6"]);
    let a = Endpoint { vn: None, sgs: &s };
    let b = Endpoint {
        vn: None,
        sgs: NOSG,
    };
    assert!(
        set.evaluate(
            &a,
            &b,
            &flow(17, "2001:db8::1", "2001:db8:ffff::53", 5353, 53)
        )
        .allow
    );
    assert_eq!(
        set.evaluate(&a, &b, &flow(17, "2001:db8::1", "2001:db9::53", 5353, 53))
            .why,
        Why::NoEgressRule
    );
    let unknown = sgs(&["d:p:nope"]);
    let u = Endpoint {
        vn: None,
        sgs: &unknown,
    };
    assert_eq!(
        set.evaluate(&u, &b, &flow(17, "2001:db8::1", "2001:db8::2", 1, 53))
            .why,
        Why::NoEgressRule
    );
    assert_eq!(
        set.evaluate(&b, &u, &flow(17, "2001:db8::1", "2001:db8::2", 1, 53))
            .why,
        Why::NoIngressRule
    );
}

#[test]
fn policy_deny_wins_over_sg() {
    let mut c = Cfg::default();
    c.vn(RED, &[]).vn(BLUE, &[]);
    c.sg(DEFAULT_SG, default_sg_rules(DEFAULT_SG));
    let set = c.set();
    let d = sgs(&[DEFAULT_SG]);
    let a = Endpoint {
        vn: Some(RED),
        sgs: &d,
    };
    let b = Endpoint {
        vn: Some(BLUE),
        sgs: &d,
    };
    assert_eq!(
        set.evaluate(&a, &b, &tcp(80)).why,
        Why::NoPolicyMatch { vn: RED }
    );
}

// ---- malformed input ----------------------------------------------------------

#[test]
fn malformed_rules_are_reported_and_skipped() {
    let good = prule("<>", "any", RED, BLUE, None, "pass");
    let mut c = Cfg::default();
    c.policy(
        "d:p:bad",
        json!([
            prule("<>", "gre-ish", RED, BLUE, None, "pass"),          // 0 protocol
            prule("<->", "tcp", RED, BLUE, None, "pass"),             // 1 direction
            prule(">", "tcp", RED, BLUE, Some((90, 80)), "pass"),     // 2 reversed ports
            prule(">", "tcp", RED, BLUE, Some((1, 70000)), "pass"),   // 3 port too big
            prule(">", "tcp", RED, BLUE, None, "reject"),             // 4 action
            {"direction": ">", "protocol": "tcp", "src_addresses": vn_addr(RED), "dst_addresses": vn_addr(BLUE)}, // 5 no action
            {"direction": ">", "protocol": "tcp", "src_addresses": [], "dst_addresses": vn_addr(BLUE), "action_list": {"simple_action": "pass"}}, // 6
            {"direction": ">", "protocol": "tcp", "src_addresses": [{"subnet": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 40}}], "dst_addresses": vn_addr(BLUE), "action_list": {"simple_action": "pass"}}, // 7
            {"direction": ">", "protocol": "tcp", "src_addresses": [{}], "dst_addresses": vn_addr(BLUE), "action_list": {"simple_action": "pass"}}, // 8
            "not a rule",                                             // 9
            {"protocol": "tcp", "ethertype": "IPX", "src_addresses": vn_addr(RED), "dst_addresses": vn_addr(BLUE), "action_list": {"simple_action": "pass"}}, // 10
            {"protocol": 6, "src_addresses": vn_addr(RED), "dst_addresses": vn_addr(BLUE), "action_list": {"simple_action": "pass"}}, // 11
            {"protocol": "256", "src_addresses": vn_addr(RED), "dst_addresses": vn_addr(BLUE), "action_list": {"simple_action": "pass"}}, // 12
            {"protocol": "tcp", "src_addresses": [{"network_policy": "d:p:ghost"}], "dst_addresses": vn_addr(RED), "action_list": {"simple_action": "pass"}}, // 13 unknown policy address (kept, matches nothing)
            {"protocol": "tcp", "src_addresses": vn_addr(RED), "dst_addresses": vn_addr(BLUE), "action_list": {"simple_action": null, "apply_service": ["d:p:si"]}}, // 14 service chain -> deny
            good,                                                     // 15
        ]),
    );
    c.policy("d:p:notalist", json!({"policy_rule": "x"}));
    c.pols.push((Uuid::new_v4(), json!({"fq_name": null})));
    c.pols.push((Uuid::new_v4(), json!({"fq_name": "a:b"})));
    c.pols.push((
        Uuid::new_v4(),
        json!({"fq_name": ["d", "p", "nested"], "network_policy_entries": {"policy_rule": "no"}}),
    ));
    c.vn(RED, &[("d:p:bad", 0, 0), ("d:p:missing", 0, 1)])
        .vn(BLUE, &[("d:p:bad", 0, 0)]);
    c.sg(
        "d:p:sg",
        json!([
            {"protocol": "tcp", "src_addresses": [{"security_group": "any"}], "dst_addresses": [{"subnet": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 8}}]}, // 0 no local
            {"src_addresses": [{"security_group": "local"}], "dst_addresses": [{"security_group": "any"}]}, // 1 no protocol
            {"protocol": "any", "src_addresses": [{"virtual_network": "local"}], "dst_addresses": [{"security_group": "any"}]}, // 2 vn local in SG
            {"protocol": "any", "src_addresses": [{"security_group": "local"}], "dst_addresses": [{"security_group": "any"}]}, // 3 ok
        ]),
    );
    let (set, w) = c.build();
    let rules = |obj: &str| -> Vec<Option<usize>> {
        w.iter()
            .filter(|x| x.object == obj)
            .map(|x| x.rule)
            .collect()
    };
    assert_eq!(
        rules("d:p:bad"),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 13]
            .map(Some)
            .to_vec(),
        "{w:#?}"
    );
    assert!(matches!(
        w.iter().find(|x| x.rule == Some(0)).map(|x| &x.problem),
        Some(Problem::BadProtocol(_))
    ));
    assert!(w
        .iter()
        .any(|x| x.problem == Problem::ServiceChainDenied && x.rule == Some(14)));
    assert!(w
        .iter()
        .any(|x| x.problem == Problem::UnknownPolicyAddress("d:p:ghost".into())));
    assert!(w
        .iter()
        .any(|x| x.object == RED && x.problem == Problem::UnknownPolicy("d:p:missing".into())));
    assert!(w
        .iter()
        .any(|x| x.object == "d:p:notalist" && x.problem == Problem::RulesNotAList));
    assert!(w
        .iter()
        .any(|x| x.object == "d:p:nested" && x.problem == Problem::RulesNotAList));
    assert_eq!(
        w.iter().filter(|x| x.problem == Problem::NoFqName).count(),
        2
    );
    let mut sg_rules = rules("d:p:sg");
    sg_rules.sort();
    assert_eq!(sg_rules, vec![Some(0), Some(1), Some(2)]);
    assert!(w.iter().all(|x| !x.to_string().is_empty()));
    // The valid rules still work: 14 (service chain: denies, tcp) and 15.
    let v = set.evaluate(&ep(RED), &ep(BLUE), &tcp(80));
    assert_eq!(
        v.why,
        Why::ServiceChainRule {
            vn: RED,
            rule: pref("d:p:bad", 14)
        }
    );
    assert!(allow(&set, RED, BLUE, &ping()));
    let s = sgs(&["d:p:sg"]);
    assert!(
        set.evaluate(
            &Endpoint { vn: None, sgs: &s },
            &Endpoint {
                vn: None,
                sgs: NOSG
            },
            &ping()
        )
        .allow
    );
}

#[test]
fn duplicate_names_warn() {
    let mut c = Cfg::default();
    c.policy("d:p:x", json!([])).policy(
        "d:p:x",
        json!([prule("<>", "any", RED, BLUE, None, "pass")]),
    );
    c.vn(RED, &[])
        .vn(RED, &[("d:p:x", 0, 0)])
        .vn(BLUE, &[("d:p:x", 0, 0)]);
    c.sg("d:p:s", json!([])).sg("d:p:s", json!([]));
    let (set, w) = c.build();
    assert_eq!(
        w.iter()
            .filter(|x| x.problem == Problem::DuplicateName)
            .count(),
        3
    );
    assert!(allow(&set, RED, BLUE, &tcp(1)));
}

#[test]
fn refs_by_uuid_only() {
    let pu = Uuid::new_v4();
    let pol = json!({"fq_name": ["d", "p", "x"], "network_policy_entries": {"policy_rule": [prule("<>", "any", RED, BLUE, None, "pass")]}});
    let refs = json!([{"uuid": pu.to_string(), "attr": {"sequence": {"major": 0, "minor": 0}}}]);
    let red = json!({"fq_name": fq(RED), "network_policy_refs": refs});
    let blue = json!({"fq_name": fq(BLUE), "network_policy_refs": refs});
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let (set, w) = PolicySet::build([(&u1, &red), (&u2, &blue)], [(&pu, &pol)], []);
    assert!(w.is_empty());
    assert!(allow(&set, RED, BLUE, &tcp(1)));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-2i64..70000).prop_map(Value::from),
            prop::sample::select(vec![
                "any", "local", ">", "<>", "<", "tcp", "udp", "icmp", "icmp6", "6", "300", "-1",
                "pass", "deny", "IPv4", "IPv6", "d:p:red", "d:p:blue", "d:p:sg", "d:p:pol",
                "10.0.0.0", "::", "0.0.0.0", "",
            ])
            .prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "direction",
            "protocol",
            "ethertype",
            "src_addresses",
            "dst_addresses",
            "src_ports",
            "dst_ports",
            "action_list",
            "simple_action",
            "apply_service",
            "virtual_network",
            "subnet",
            "subnet_list",
            "security_group",
            "network_policy",
            "ip_prefix",
            "ip_prefix_len",
            "start_port",
            "end_port",
            "x",
        ]);
        json_leaf().prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..7)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
            Just(v4("10.0.0.1")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn random_rules_never_panic(
            prules in prop::collection::vec(json_value(), 0..6),
            srules in prop::collection::vec(json_value(), 0..6),
            seq in any::<(u8, u8)>(),
            proto in prop_oneof![Just(1u8), Just(6), Just(17), Just(58), any::<u8>()],
            src in ip(), dst in ip(), sport in any::<u16>(), dport in any::<u16>(),
        ) {
            let mut c = Cfg::default();
            c.policy("d:p:pol", Value::from(prules));
            c.vn(RED, &[("d:p:pol", seq.0.into(), seq.1.into())]).vn(BLUE, &[("d:p:pol", 0, 0)]);
            c.sg("d:p:sg", Value::from(srules));
            let (set, _w) = c.build();
            let s = sgs(&["d:p:sg"]);
            let t = FlowTuple { proto, src, dst, sport, dport };
            for (a, b) in [(Some(RED), Some(BLUE)), (Some(RED), Some(RED)), (None, Some(BLUE)), (Some(BLUE), None)] {
                let v = set.evaluate(&Endpoint { vn: a, sgs: &s }, &Endpoint { vn: b, sgs: &s }, &t);
                let _ = v.to_string();
            }
            let _ = set.connected_vns(RED);
        }

        #[test]
        fn random_objects_never_panic(vns in prop::collection::vec(json_value(), 0..4), pols in prop::collection::vec(json_value(), 0..4), sgo in prop::collection::vec(json_value(), 0..4)) {
            let ids: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
            let (set, _) = PolicySet::build(ids.iter().zip(&vns), ids[4..].iter().zip(&pols), ids[8..].iter().zip(&sgo));
            let _ = set.evaluate(&ep(RED), &ep(BLUE), &tcp(1));
        }
    }
}

/// A rule that applies a service chain, as upstream writes them ("pass"
/// plus `apply_service`, or `apply_service` alone): we cannot steer
/// traffic through service instances, so the rule denies what it matches
/// (and says why), and does not connect the VNs. Before, such traffic
/// passed unserviced.
#[test]
fn service_chain_rules_deny() {
    for action_list in [
        json!({"simple_action": "pass", "apply_service": ["d:p:fw"]}),
        json!({"apply_service": ["d:p:fw"]}),
    ] {
        let mut r = prule("<>", "any", RED, BLUE, None, "pass");
        r["action_list"] = action_list;
        let mut c = Cfg::default();
        c.policy("d:p:chain", json!([r]));
        c.vn(RED, &[("d:p:chain", 0, 0)])
            .vn(BLUE, &[("d:p:chain", 0, 0)]);
        let (set, w) = c.build();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].problem, Problem::ServiceChainDenied);
        let t = flow(6, "10.1.0.3", "10.2.0.4", 1000, 80);
        let v = set.evaluate(&ep(RED), &ep(BLUE), &t);
        assert_eq!(
            v,
            Verdict {
                allow: false,
                why: Why::ServiceChainRule {
                    vn: RED,
                    rule: pref("d:p:chain", 0)
                }
            }
        );
        assert!(v.to_string().contains("applies a service chain"), "{v}");
        assert!(set.connected_vns(RED).is_empty(), "no route leaking");
    }
}
