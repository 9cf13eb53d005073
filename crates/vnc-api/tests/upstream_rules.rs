//! Upstream's input rules (issue 16) and what upstream clients send that
//! this server does not model (issue 12): every refused request answers
//! 4xx and changes nothing; foreign references and properties are kept.

mod common;

use common::{uuid, T};
use serde_json::{json, Value};

fn vn_body(fq: Value) -> String {
    json!({"virtual-network": {"fq_name": fq, "parent_type": "project"}}).to_string()
}

#[tokio::test]
async fn fq_name_rules() {
    let t = T::new();
    t.project("p").await;
    // A NUL (or another character XML cannot carry) in any element.
    for fq in [
        json!(["default-domain", "p", "a\u{0}b"]),
        json!(["default-domain", "p", "\u{1}"]),
        json!(["default-domain", "p", "x\u{fffe}"]),
    ] {
        let e = t
            .fails(400, "POST", "/virtual-networks", &vn_body(fq))
            .await;
        assert!(e.contains("illegal character"), "{e}");
    }
    let e = t
        .fails(
            400,
            "POST",
            "/projects",
            &json!({"project": {"fq_name": ["default-domain", "q\u{0}"]}}).to_string(),
        )
        .await;
    assert!(e.contains("U+0000"), "{e}");
    // Missing fq_name: upstream refuses (no name invented).
    for body in [
        json!({"virtual-network": {"parent_type": "project", "name": "n"}}),
        json!({"virtual-network": {"parent_type": "project", "fq_name": null}}),
        json!({"virtual-machine": {}}),
    ] {
        let (ty, _) = body.as_object().unwrap().iter().next().unwrap();
        let e = t
            .fails(400, "POST", &format!("/{ty}s"), &body.to_string())
            .await;
        assert!(e.contains("no fq_name"), "{e}");
    }
    // A string fq_name is not split on ':'.
    let e = t
        .fails(
            400,
            "POST",
            "/virtual-networks",
            &vn_body(json!("default-domain:p:n")),
        )
        .await;
    assert!(e.contains("list of strings"), "{e}");
    // ':' in the object's own name, empty elements, non-strings.
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        &vn_body(json!(["default-domain", "p", "a:b"])),
    )
    .await;
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        &vn_body(json!(["default-domain", "p", ""])),
    )
    .await;
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        &vn_body(json!(["default-domain", "p", 7])),
    )
    .await;
    t.fails(400, "POST", "/virtual-networks", &vn_body(json!([])))
        .await;
    // A `name` that disagrees, or carries a NUL.
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        &json!({"virtual-network": {"fq_name": ["default-domain", "p", "n"], "name": "m"}})
            .to_string(),
    )
    .await;
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        &json!({"virtual-network": {"fq_name": ["default-domain", "p", "n"], "name": "n\u{0}"}})
            .to_string(),
    )
    .await;
    // Well-formed: accepted (unicode is fine).
    t.post(
        "virtual-network",
        json!({"fq_name": ["default-domain", "p", "réseau-1"], "parent_type": "project"}),
    )
    .await;
}

#[tokio::test]
async fn rule_subnets_are_checked() {
    let t = T::new();
    t.project("p").await;
    let sg = |rule: Value| {
        json!({"security-group": {"fq_name": ["default-domain", "p", "sg"],
            "security_group_entries": {"policy_rule": [rule]}}})
        .to_string()
    };
    let rule = |remote: Value, eth: &str| {
        json!({"direction": ">", "protocol": "tcp", "ethertype": eth,
               "src_addresses": [remote], "dst_addresses": [{"security_group": "local"}],
               "dst_ports": [{"start_port": 22, "end_port": 22}]})
    };
    let subnet = |p: Value, l: Value| json!({"subnet": {"ip_prefix": p, "ip_prefix_len": l}});
    // The rule: stored, it matched nothing and silently denied.
    let e = t
        .fails(
            400,
            "POST",
            "/security-groups",
            &sg(rule(subnet(json!("999.0.0.0"), json!(0)), "IPv4")),
        )
        .await;
    assert!(
        e.contains("999.0.0.0") && e.contains("not an IP address"),
        "{e}"
    );
    for bad in [
        subnet(json!("10.0.0.0"), json!(33)),
        subnet(json!("10.0.0.0"), json!(-1)),
        subnet(json!("10.0.0.0"), json!("8")),
        subnet(Value::Null, json!(8)),
        json!({"subnet_list": [{"ip_prefix": "10.0.0.0", "ip_prefix_len": 8}, {"ip_prefix": "x", "ip_prefix_len": 8}]}),
        json!({"security_group": 5}),
    ] {
        t.fails(400, "POST", "/security-groups", &sg(rule(bad, "IPv4")))
            .await;
    }
    // Upstream's other checks: ethertype must match, `local` on one side.
    let e = t
        .fails(
            400,
            "POST",
            "/security-groups",
            &sg(rule(subnet(json!("fd00::"), json!(8)), "IPv4")),
        )
        .await;
    assert!(e.contains("ethertype"), "{e}");
    let e = t
        .fails(
            400,
            "POST",
            "/security-groups",
            &sg(json!({"direction": ">", "protocol": "any",
                "src_addresses": [{"subnet": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 8}}],
                "dst_addresses": [{"subnet": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 8}}]})),
        )
        .await;
    assert!(e.contains("local"), "{e}");
    // Network policies: subnets checked, no security groups.
    let pol = |addr: Value| {
        json!({"network-policy": {"fq_name": ["default-domain", "p", "pol"],
            "network_policy_entries": {"policy_rule": [{"action_list": {"simple_action": "pass"},
                "src_addresses": [addr], "dst_addresses": [{"virtual_network": "any"}]}]}}})
        .to_string()
    };
    t.fails(
        400,
        "POST",
        "/network-policys",
        &pol(subnet(json!("10.0.0.300"), json!(24))),
    )
    .await;
    t.fails(
        400,
        "POST",
        "/network-policys",
        &pol(json!({"security_group": "local"})),
    )
    .await;
    // A PUT with a bad rule changes nothing either.
    let good = t
        .post(
            "security-group",
            serde_json::from_str::<Value>(&sg(rule(subnet(json!("10.0.0.0"), json!(8)), "IPv4")))
                .unwrap()["security-group"]
                .clone(),
        )
        .await;
    t.fails(
        400,
        "PUT",
        &format!("/security-group/{}", uuid(&good)),
        &sg(rule(subnet(json!("999.0.0.0"), json!(0)), "IPv4"))
            .replace("\"fq_name\":[\"default-domain\",\"p\",\"sg\"],", ""),
    )
    .await;
    t.post(
        "network-policy",
        serde_json::from_str::<Value>(&pol(subnet(json!("10.0.0.0"), json!(24)))).unwrap()
            ["network-policy"]
            .clone(),
    )
    .await;
}

/// What upstream clients send on the types served here, with types this
/// server does not store: accepted, kept, read back, updatable.
#[tokio::test]
async fn foreign_refs_and_properties_are_kept() {
    let t = T::new();
    t.project("p").await;
    let vn = t.vn("p", "net", "10.1.1.0", 24).await;
    let ri_uuid = uuid::Uuid::new_v4().to_string();
    let vmi = t
        .post(
            "virtual-machine-interface",
            json!({
                "fq_name": ["default-domain", "p", "port"],
                "parent_type": "project",
                "virtual_network_refs": [{"uuid": uuid(&vn)}],
                "routing_instance_refs": [{"to": ["default-domain", "p", "net", "net"], "uuid": ri_uuid,
                    "attr": {"direction": "both", "vlan_tag": null, "src_mac": null, "dst_mac": null,
                             "mpls_label": null, "service_chain_address": null,
                             "ipv6_service_chain_address": null, "protocol": null}}],
                "tag_refs": [{"to": ["application=web"]}],
                "interface_route_table_refs": [{"to": ["default-domain", "p", "irt"], "attr": null}],
                "virtual_machine_interface_bindings": {"key_value_pair": [{"key": "host_id", "value": "c1"}]},
                "virtual_machine_interface_device_owner": "compute:nova",
                "port_security_enabled": true,
            }),
        )
        .await;
    let vu = uuid(&vmi);
    let got = t.get("virtual-machine-interface", &vu).await;
    assert_eq!(got["routing_instance_refs"][0]["uuid"], json!(ri_uuid));
    assert_eq!(
        got["routing_instance_refs"][0]["to"],
        json!(["default-domain", "p", "net", "net"])
    );
    assert_eq!(got["routing_instance_refs"][0]["attr"]["direction"], "both");
    assert_eq!(
        got["tag_refs"],
        json!([{"to": ["application=web"], "attr": null}])
    );
    assert_eq!(
        got["interface_route_table_refs"][0]["to"],
        json!(["default-domain", "p", "irt"])
    );
    assert_eq!(
        got["virtual_machine_interface_bindings"]["key_value_pair"][0]["value"],
        "c1"
    );
    assert_eq!(
        got["virtual_machine_interface_device_owner"],
        "compute:nova"
    );
    // The served refs still work alongside.
    assert_eq!(got["virtual_network_refs"][0]["uuid"], json!(uuid(&vn)));
    // Survives a restart.
    let t = t.reopen();
    let again = t.get("virtual-machine-interface", &vu).await;
    assert_eq!(again["tag_refs"], got["tag_refs"]);
    // ref-update on a foreign type: by fq_name, by uuid, delete.
    t.ok(
        "POST",
        "/ref-update",
        Some(
            json!({"type": "virtual-machine-interface", "uuid": vu, "ref-type": "tag",
            "ref-fq-name": ["tier=db"], "operation": "ADD", "attr": null}),
        ),
    )
    .await;
    let tags = t.get("virtual-machine-interface", &vu).await["tag_refs"].clone();
    assert_eq!(tags.as_array().unwrap().len(), 2, "{tags}");
    t.ok(
        "POST",
        "/ref-update",
        Some(
            json!({"type": "virtual-machine-interface", "uuid": vu, "ref-type": "tag",
            "ref-fq-name": ["application=web"], "operation": "DELETE"}),
        ),
    )
    .await;
    t.ok(
        "POST",
        "/ref-update",
        Some(json!({"type": "virtual-machine-interface", "uuid": vu,
            "ref-type": "routing-instance", "ref-uuid": ri_uuid, "operation": "DELETE"})),
    )
    .await;
    let g = t.get("virtual-machine-interface", &vu).await;
    assert_eq!(g["tag_refs"], json!([{"to": ["tier=db"], "attr": null}]));
    assert_eq!(g["routing_instance_refs"], json!([]));
    // A PUT replacing a foreign list.
    t.ok(
        "PUT",
        &format!("/virtual-machine-interface/{vu}"),
        Some(json!({"virtual-machine-interface": {"tag_refs": []}})),
    )
    .await;
    assert_eq!(
        t.get("virtual-machine-interface", &vu).await["tag_refs"],
        json!([])
    );
    // Shape still checked: a ref without `to` or `uuid`, a bad uuid, a
    // non-list.
    for bad in [
        json!({"tag_refs": [{"attr": null}]}),
        json!({"tag_refs": [{"uuid": "not-a-uuid"}]}),
        json!({"tag_refs": {"to": ["x"]}}),
        json!({"tag_refs": [{"to": ["a\u{0}"]}]}),
    ] {
        t.fails(
            400,
            "PUT",
            &format!("/virtual-machine-interface/{vu}"),
            &json!({"virtual-machine-interface": bad}).to_string(),
        )
        .await;
    }
    // The agent's snapshot (what the model reads) carries them too.
    let snap = t.store.snapshot().unwrap();
    let u: uuid::Uuid = vu.parse().unwrap();
    assert_eq!(
        snap.get("virtual-machine-interface", &u).unwrap()
            ["virtual_machine_interface_device_owner"],
        "compute:nova"
    );
}

/// Upstream's gateway / DNS defaults, and `addr_from_start: true` for the
/// Docker-style `.1`.
#[tokio::test]
async fn subnet_defaults_follow_upstream() {
    let t = T::new();
    t.project("p").await;
    let mk = |name: &str, from_start: Option<bool>| {
        let mut s = json!({"subnet": {"ip_prefix": "10.9.0.0", "ip_prefix_len": 24}});
        if let Some(f) = from_start {
            s["addr_from_start"] = json!(f);
        }
        json!({"fq_name": ["default-domain", "p", name], "parent_type": "project",
               "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
                   "attr": {"ipam_subnets": [s]}}]})
    };
    for (name, fs, gw, dns, first) in [
        ("up", None, "10.9.0.254", "10.9.0.253", "10.9.0.252"),
        (
            "down",
            Some(false),
            "10.9.0.254",
            "10.9.0.253",
            "10.9.0.252",
        ),
        ("docker", Some(true), "10.9.0.1", "10.9.0.2", "10.9.0.3"),
    ] {
        let vn = t.post("virtual-network", mk(name, fs)).await;
        let s = &vn["network_ipam_refs"][0]["attr"]["ipam_subnets"][0];
        assert_eq!(s["default_gateway"], gw, "{name}");
        assert_eq!(s["dns_server_address"], dns, "{name}");
        assert_eq!(s["addr_from_start"], fs.unwrap_or(false), "{name}");
        let vmi = t.vmi("p", &format!("{name}-i"), &uuid(&vn)).await;
        let ip = t.iip(&uuid(&vn), &uuid(&vmi), None).await;
        assert_eq!(ip["instance_ip_address"], first, "{name}");
    }
}
