//! `PolicySet::evaluate` on typical and larger rule sets.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use policy::{Endpoint, FlowTuple, PolicySet};
use serde_json::{json, Value};
use uuid::Uuid;

fn fq(name: &str) -> Value {
    Value::from(name.split(':').collect::<Vec<_>>())
}

fn rule(src: &str, dst: &str, proto: &str, port: i64, action: &str) -> Value {
    json!({
        "direction": "<>", "protocol": proto,
        "src_addresses": [{"virtual_network": src}], "src_ports": [{"start_port": -1, "end_port": -1}],
        "dst_addresses": [{"virtual_network": dst}], "dst_ports": [{"start_port": port, "end_port": port}],
        "action_list": {"simple_action": action},
    })
}

type Objects = Vec<(Uuid, Value)>;

/// Two VNs joined by one policy with `extra` non-matching rules in front
/// of the one that matches, the default SG on every endpoint.
fn config(extra: usize) -> (Objects, Objects, Objects) {
    let (red, blue) = (
        "default-domain:admin:vn-red",
        "default-domain:admin:vn-blue",
    );
    let mut rules: Vec<Value> = (0..extra)
        .map(|i| {
            rule(
                red,
                blue,
                "udp",
                1000 + i as i64,
                if i % 2 == 0 { "pass" } else { "deny" },
            )
        })
        .collect();
    rules.push(rule(red, blue, "tcp", 80, "pass"));
    let pol = json!({"fq_name": fq("default-domain:admin:red-blue"), "network_policy_entries": {"policy_rule": rules}});
    let refs = json!([{"to": fq("default-domain:admin:red-blue"), "attr": {"sequence": {"major": 0, "minor": 0}}}]);
    let vns = vec![
        (
            Uuid::new_v4(),
            json!({"fq_name": fq(red), "network_policy_refs": refs}),
        ),
        (
            Uuid::new_v4(),
            json!({"fq_name": fq(blue), "network_policy_refs": refs}),
        ),
    ];
    let sg = "default-domain:admin:default";
    let sgs = vec![(
        Uuid::new_v4(),
        json!({"fq_name": fq(sg), "security_group_entries": {"policy_rule": [
            {"protocol": "any", "ethertype": "IPv4", "src_addresses": [{"security_group": sg}], "dst_addresses": [{"security_group": "local"}]},
            {"protocol": "any", "ethertype": "IPv6", "src_addresses": [{"security_group": sg}], "dst_addresses": [{"security_group": "local"}]},
            {"protocol": "any", "ethertype": "IPv4", "src_addresses": [{"security_group": "local"}], "dst_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}]},
            {"protocol": "any", "ethertype": "IPv6", "src_addresses": [{"security_group": "local"}], "dst_addresses": [{"subnet": {"ip_prefix": "::", "ip_prefix_len": 0}}]},
        ]}}),
    )];
    (vns, vec![(Uuid::new_v4(), pol)], sgs)
}

fn bench(c: &mut Criterion) {
    let sgs = vec!["default-domain:admin:default".to_string()];
    let src = Endpoint {
        vn: Some("default-domain:admin:vn-red"),
        sgs: &sgs,
    };
    let dst = Endpoint {
        vn: Some("default-domain:admin:vn-blue"),
        sgs: &sgs,
    };
    let same = Endpoint {
        vn: Some("default-domain:admin:vn-red"),
        sgs: &sgs,
    };
    let t = FlowTuple {
        proto: 6,
        src: IpAddr::V4(Ipv4Addr::new(10, 1, 1, 3)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 2, 1, 3)),
        sport: 40000,
        dport: 80,
    };
    for extra in [0usize, 10, 100] {
        let (v, p, s) = config(extra);
        let (set, w) = PolicySet::build(
            v.iter().map(|(u, v)| (u, v)),
            p.iter().map(|(u, v)| (u, v)),
            s.iter().map(|(u, v)| (u, v)),
        );
        assert!(w.is_empty());
        assert!(set.evaluate(&src, &dst, &t).allow);
        c.bench_function(&format!("inter_vn_sg/{}_rules", extra + 1), |b| {
            b.iter(|| set.evaluate(black_box(&src), black_box(&dst), black_box(&t)))
        });
        if extra == 10 {
            c.bench_function("intra_vn_sg/11_rules", |b| {
                b.iter(|| set.evaluate(black_box(&src), black_box(&same), black_box(&t)))
            });
            let deny = FlowTuple { dport: 81, ..t };
            c.bench_function("inter_vn_no_match/11_rules", |b| {
                b.iter(|| set.evaluate(black_box(&src), black_box(&dst), black_box(&deny)))
            });
        }
    }
    let (v, p, s) = config(10);
    c.bench_function("build/11_rules", |b| {
        b.iter(|| {
            PolicySet::build(
                v.iter().map(|(u, v)| (u, v)),
                p.iter().map(|(u, v)| (u, v)),
                s.iter().map(|(u, v)| (u, v)),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
