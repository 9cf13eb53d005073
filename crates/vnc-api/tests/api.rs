//! REST API tests against the router (oneshot), with upstream's documented
//! request bodies and response shapes.

mod common;

use common::{fixture, has_keys, uuid, T};
use serde_json::{json, Value};
use std::collections::HashSet;

#[tokio::test]
async fn seeds_upstream_defaults() {
    let t = T::new();
    let s = t.store.snapshot().unwrap();
    let fq = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(s.by_fq_name("domain", &fq(&["default-domain"])).is_some());
    let (pu, _) = s
        .by_fq_name("project", &fq(&["default-domain", "default-project"]))
        .unwrap();
    assert!(s
        .by_fq_name(
            "network-ipam",
            &fq(&["default-domain", "default-project", "default-network-ipam"])
        )
        .is_some());
    let (_, sg) = s
        .by_fq_name(
            "security-group",
            &fq(&["default-domain", "default-project", "default"]),
        )
        .unwrap();
    assert_eq!(sg["parent_uuid"], json!(pu.to_string()));
    assert_eq!(sg["security_group_id"], json!(8_000_000));
    let rules = sg["security_group_entries"]["policy_rule"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 4);
    let me = "default-domain:default-project:default";
    // Ingress from the group itself, v4 and v6.
    for (r, eth) in rules[..2].iter().zip(["IPv4", "IPv6"]) {
        assert_eq!(r["ethertype"], eth);
        assert_eq!(r["src_addresses"][0]["security_group"], me);
        assert_eq!(r["dst_addresses"][0]["security_group"], "local");
        assert_eq!(r["protocol"], "any");
    }
    // Egress anywhere.
    assert_eq!(
        rules[2]["dst_addresses"][0]["subnet"]["ip_prefix"],
        "0.0.0.0"
    );
    assert_eq!(rules[3]["dst_addresses"][0]["subnet"]["ip_prefix"], "::");
    assert_eq!(rules[3]["dst_addresses"][0]["subnet"]["ip_prefix_len"], 0);
    // Reopening does not seed twice.
    let rev = s.revision;
    let t = t.reopen();
    let s2 = t.store.snapshot().unwrap();
    assert_eq!(s2.revision, rev);
    assert_eq!(s2.len("security-group"), 1);
    assert_eq!(s2.len("project"), 1);
}

#[tokio::test]
async fn upstream_tutorial_bodies_and_shapes() {
    let t = T::new();
    let admin = t.project("admin").await;
    // POST /virtual-networks (tutorial bodies verbatim).
    let r = t
        .ok("POST", "/virtual-networks", Some(fixture("01_")))
        .await;
    has_keys(&r, &fixture("02_"), &[], "");
    let blue = r["virtual-network"].clone();
    assert_eq!(blue["parent_uuid"], json!(admin));
    assert_eq!(blue["name"], "vn-blue");
    assert_eq!(
        blue["href"],
        json!(format!(
            "http://10.84.14.2:8082/virtual-network/{}",
            uuid(&blue)
        ))
    );
    assert_eq!(
        blue["parent_href"],
        json!(format!("http://10.84.14.2:8082/project/{admin}"))
    );
    let sub = &blue["network_ipam_refs"][0]["attr"]["ipam_subnets"][0];
    // Upstream's defaults (the tutorial's own reply shows .254): gateway at
    // the last usable address, DNS at the one before.
    assert_eq!(sub["default_gateway"], "10.1.1.254");
    assert_eq!(sub["dns_server_address"], "10.1.1.253");
    assert_eq!(sub["addr_from_start"], false);
    assert_eq!(sub["enable_dhcp"], true);
    assert!(uuid::Uuid::parse_str(sub["subnet_uuid"].as_str().unwrap()).is_ok());
    let r = t
        .ok("POST", "/virtual-networks", Some(fixture("03_")))
        .await;
    has_keys(&r, &fixture("04_"), &[], "");
    let red = r["virtual-network"].clone();
    let (b_id, r_id) = (
        blue["virtual_network_network_id"].as_u64().unwrap(),
        red["virtual_network_network_id"].as_u64().unwrap(),
    );
    assert!(b_id >= 1 && r_id >= 1 && b_id != r_id);
    // The policy.
    let r = t.ok("POST", "/network-policys", Some(fixture("05_"))).await;
    has_keys(&r, &fixture("06_"), &[], "");
    let pol = r["network-policy"].clone();
    assert!(pol["network_policy_entries"]["policy_rule"][0]["rule_uuid"].is_string());
    // PUT policy refs onto both VNs.
    let r = t
        .ok(
            "PUT",
            &format!("/virtual-network/{}", uuid(&blue)),
            Some(fixture("07_")),
        )
        .await;
    has_keys(&r, &fixture("08_"), &[], "");
    let r = t
        .ok(
            "PUT",
            &format!("/virtual-network/{}", uuid(&red)),
            Some(fixture("09_")),
        )
        .await;
    has_keys(&r, &fixture("10_"), &[], "");
    // GET has the shape of upstream's (minus the ACL / routing-instance
    // children this server does not model).
    let got = t
        .ok("GET", &format!("/virtual-network/{}", uuid(&blue)), None)
        .await;
    has_keys(
        &got,
        &fixture("11_"),
        &[
            "access_control_lists",
            "routing_instances",
            "network_id",
            "extend_to_external_routers",
            "permissions",
        ],
        "",
    );
    let pref = &got["virtual-network"]["network_policy_refs"][0];
    assert_eq!(pref["uuid"], json!(uuid(&pol)));
    assert_eq!(pref["attr"]["sequence"]["major"], 0);
    has_keys(
        &t.ok("GET", &format!("/virtual-network/{}", uuid(&blue)), None)
            .await,
        &fixture("15_"),
        &[
            "access_control_lists",
            "routing_instances",
            "network_id",
            "extend_to_external_routers",
            "permissions",
        ],
        "",
    );
    // The policy shows its back-refs.
    let p = t.get("network-policy", &uuid(&pol)).await;
    let backs = p["virtual_network_back_refs"].as_array().unwrap();
    assert_eq!(backs.len(), 2);
    assert_eq!(backs[0]["attr"]["sequence"]["minor"], 0);
    // List.
    let l = t.ok("GET", "/virtual-networks", None).await;
    has_keys(&l, &fixture("12_"), &[], "");
    has_keys(&l, &fixture("18_"), &[], "");
    assert_eq!(l["virtual-networks"].as_array().unwrap().len(), 2);
    // fqname-to-id / id-to-fqname.
    let r = t.ok("POST", "/fqname-to-id", Some(fixture("19_"))).await;
    has_keys(&r, &fixture("20_"), &[], "");
    assert_eq!(r["uuid"], json!(uuid(&blue)));
    let r = t
        .ok("POST", "/id-to-fqname", Some(json!({"uuid": uuid(&blue)})))
        .await;
    has_keys(&r, &fixture("22_"), &[], "");
    assert_eq!(
        r,
        json!({"type": "virtual-network", "fq_name": ["default-domain", "admin", "vn-blue"]})
    );
    let _ = fixture("21_");
    // ref-update bodies with the uuids of this store.
    let dp = t
        .post(
            "network-policy",
            json!({"fq_name": ["default-domain", "default-project", "default-network-policy"],
                   "network_policy_entries": {"policy_rule": []}}),
        )
        .await;
    let mut add = fixture("23_");
    add["uuid"] = json!(uuid(&red));
    add["ref-uuid"] = json!(uuid(&pol));
    add["attr"] = json!({"sequence": {"major": 1, "minor": 0}});
    let r = t.ok("POST", "/ref-update", Some(add)).await;
    assert_eq!(r, json!({"uuid": uuid(&red)}));
    let v = t.get("virtual-network", &uuid(&red)).await;
    assert_eq!(v["network_policy_refs"].as_array().unwrap().len(), 1);
    assert_eq!(v["network_policy_refs"][0]["attr"]["sequence"]["major"], 1);
    let mut add_fq = fixture("24_");
    add_fq["uuid"] = json!(uuid(&red));
    t.ok("POST", "/ref-update", Some(add_fq)).await;
    let v = t.get("virtual-network", &uuid(&red)).await;
    assert_eq!(v["network_policy_refs"].as_array().unwrap().len(), 2);
    assert_eq!(v["network_policy_refs"][1]["uuid"], json!(uuid(&dp)));
    let mut del = fixture("25_");
    del["uuid"] = json!(uuid(&red));
    del["ref-uuid"] = json!(uuid(&pol));
    t.ok("POST", "/ref-update", Some(del)).await;
    let v = t.get("virtual-network", &uuid(&red)).await;
    assert_eq!(v["network_policy_refs"].as_array().unwrap().len(), 1);
    assert_eq!(v["network_policy_refs"][0]["uuid"], json!(uuid(&dp)));
    // Project shows its children.
    let p = t.get("project", &admin).await;
    let vns = p["virtual_networks"].as_array().unwrap();
    assert_eq!(vns.len(), 2);
    for c in vns {
        assert!(c["to"].is_array() && c["href"].is_string() && c["uuid"].is_string());
    }
    assert_eq!(p["security_groups"].as_array().unwrap().len(), 1);
    assert_eq!(p["network_policys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn ports_flow_allocation_and_delete_rules() {
    let t = T::new();
    t.project("p").await;
    let vn = t.vn("p", "net", "10.1.1.0", 24).await;
    let vn_id = uuid(&vn);
    let sg = t.post("security-group", json!({"fq_name": ["default-domain", "p", "web"],
        "security_group_entries": {"policy_rule": [{"direction": ">", "protocol": "tcp",
            "src_addresses": [{"security_group": "local"}], "dst_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}],
            "dst_ports": [{"start_port": 80, "end_port": 80}], "ethertype": "IPv4"}]}})).await;
    assert_eq!(
        sg["security_group_id"],
        json!(8_000_002),
        "after the default SGs of both projects"
    );
    let vm = t
        .post("virtual-machine", json!({"fq_name": ["c1"], "name": "c1"}))
        .await;
    assert_eq!(vm["fq_name"], json!(["c1"]));
    let vmi = t
        .post(
            "virtual-machine-interface",
            json!({
                "parent_type": "project",
                "fq_name": ["default-domain", "p", "port1"],
                "virtual_network_refs": [{"to": ["default-domain", "p", "net"]}],
                "security_group_refs": [{"uuid": uuid(&sg)}],
                "virtual_machine_refs": [{"to": ["c1"]}],
            }),
        )
        .await;
    let vmi_id = uuid(&vmi);
    let mac = vmi["virtual_machine_interface_mac_addresses"]["mac_address"][0]
        .as_str()
        .unwrap();
    let h = vmi_id.replace('-', "");
    assert_eq!(
        mac,
        format!(
            "02:{}:{}:{}:{}:{}",
            &h[0..2],
            &h[2..4],
            &h[4..6],
            &h[6..8],
            &h[8..10]
        )
    );
    assert_eq!(vmi["virtual_network_refs"][0]["uuid"], json!(vn_id));
    // Addresses: .254 gateway, .253 DNS, then .252, .251 downwards (upstream's
    // default); a given one; duplicates.
    let a = t.iip(&vn_id, &vmi_id, None).await;
    assert_eq!(a["instance_ip_address"], "10.1.1.252");
    assert_eq!(a["instance_ip_family"], "v4");
    let sub_uuid = vn["network_ipam_refs"][0]["attr"]["ipam_subnets"][0]["subnet_uuid"].clone();
    assert_eq!(a["subnet_uuid"], sub_uuid);
    assert_eq!(a["fq_name"], json!([uuid(&a)]));
    let b = t.iip(&vn_id, &vmi_id, None).await;
    assert_eq!(b["instance_ip_address"], "10.1.1.251");
    let c = t.iip(&vn_id, &vmi_id, Some("10.1.1.100")).await;
    assert_eq!(c["instance_ip_address"], "10.1.1.100");
    let body = |addr: &str| {
        json!({"instance-ip": {"fq_name": ["x"], "virtual_network_refs": [{"uuid": vn_id}], "instance_ip_address": addr}})
            .to_string()
    };
    let e = t
        .fails(409, "POST", "/instance-ips", &body("10.1.1.100"))
        .await;
    assert!(e.contains("duplicate"), "{e}");
    let e = t
        .fails(409, "POST", "/instance-ips", &body("10.1.1.254"))
        .await;
    assert!(e.contains("reserved"), "{e}");
    let e = t
        .fails(400, "POST", "/instance-ips", &body("10.9.9.9"))
        .await;
    assert!(e.contains("not inside any subnet"), "{e}");
    t.fails(400, "POST", "/instance-ips", &body("10.1.1.255"))
        .await;
    t.fails(400, "POST", "/instance-ips", &body("nonsense"))
        .await;
    let e = t
        .fails(
            400,
            "POST",
            "/instance-ips",
            &json!({"instance-ip": {"fq_name": ["x"], "instance_ip_address": "10.1.1.9"}})
                .to_string(),
        )
        .await;
    assert!(e.contains("virtual_network_refs"), "{e}");
    // Back-refs on the VN.
    let g = t.get("virtual-network", &vn_id).await;
    assert_eq!(
        g["virtual_machine_interface_back_refs"][0]["uuid"],
        json!(vmi_id)
    );
    assert_eq!(g["instance_ip_back_refs"].as_array().unwrap().len(), 3);
    let g = t.get("virtual-machine-interface", &vmi_id).await;
    assert_eq!(g["instance_ip_back_refs"].as_array().unwrap().len(), 3);
    assert!(g["virtual_network_refs"][0]["href"].is_string());
    // Deletes blocked by back-refs name the referrers.
    let e = t
        .fails(409, "DELETE", &format!("/virtual-network/{vn_id}"), "")
        .await;
    assert!(
        e.contains("virtual-machine-interface") && e.contains("instance-ip"),
        "{e}"
    );
    assert!(e.contains(&vmi_id), "{e}");
    let e = t
        .fails(409, "DELETE", &format!("/security-group/{}", uuid(&sg)), "")
        .await;
    assert!(e.contains("port1"), "{e}");
    t.fails(
        409,
        "DELETE",
        &format!("/virtual-machine/{}", uuid(&vm)),
        "",
    )
    .await;
    let e = t
        .fails(
            409,
            "DELETE",
            &format!("/virtual-machine-interface/{vmi_id}"),
            "",
        )
        .await;
    assert!(e.contains("instance-ip"), "{e}");
    // Project with children.
    let p = t
        .store
        .fq_name_to_id("project", &["default-domain".into(), "p".into()])
        .unwrap();
    let e = t.fails(409, "DELETE", &format!("/project/{p}"), "").await;
    assert!(e.contains("children"), "{e}");
    // Unwind in order.
    for x in [&a, &b, &c] {
        t.ok("DELETE", &format!("/instance-ip/{}", uuid(x)), None)
            .await;
    }
    t.ok(
        "DELETE",
        &format!("/virtual-machine-interface/{vmi_id}"),
        None,
    )
    .await;
    t.ok("DELETE", &format!("/virtual-machine/{}", uuid(&vm)), None)
        .await;
    t.ok("DELETE", &format!("/virtual-network/{vn_id}"), None)
        .await;
    t.ok("DELETE", &format!("/security-group/{}", uuid(&sg)), None)
        .await;
    t.fails(404, "DELETE", &format!("/virtual-network/{vn_id}"), "")
        .await;
    // Only the default SG is left: it goes with the project.
    t.ok("DELETE", &format!("/project/{p}"), None).await;
    let s = t.store.snapshot().unwrap();
    assert!(s
        .by_fq_name(
            "security-group",
            &["default-domain".into(), "p".into(), "default".into()]
        )
        .is_none());
    assert_eq!(s.len("security-group"), 1);
}

#[tokio::test]
async fn default_sg_in_use_blocks_project_delete() {
    let t = T::new();
    let p = t.project("q").await;
    let vn = t.vn("q", "n", "10.2.0.0", 16).await;
    let sg = t
        .store
        .fq_name_to_id(
            "security-group",
            &["default-domain".into(), "q".into(), "default".into()],
        )
        .unwrap();
    let vmi = t
        .post(
            "virtual-machine-interface",
            json!({"fq_name": ["default-domain", "q", "v"], "virtual_network_refs": [{"uuid": uuid(&vn)}],
                   "security_group_refs": [{"uuid": sg.to_string()}]}),
        )
        .await;
    let e = t.fails(409, "DELETE", &format!("/project/{p}"), "").await;
    assert!(e.contains("default"), "{e}");
    t.ok(
        "DELETE",
        &format!("/virtual-machine-interface/{}", uuid(&vmi)),
        None,
    )
    .await;
    t.ok("DELETE", &format!("/virtual-network/{}", uuid(&vn)), None)
        .await;
    t.ok("DELETE", &format!("/project/{p}"), None).await;
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let t = T::new();
    t.project("p").await;
    let vn = t.vn("p", "net", "10.1.1.0", 24).await;
    let vn_id = uuid(&vn);
    let ipam = json!({"to": ["default-domain", "default-project", "default-network-ipam"]});
    let vn_body = |prefix: Value, len: Value| {
        let mut r = ipam.clone();
        r["attr"] =
            json!({"ipam_subnets": [{"subnet": {"ip_prefix": prefix, "ip_prefix_len": len}}]});
        json!({"virtual-network": {"fq_name": ["default-domain", "p", "x"], "network_ipam_refs": [r]}})
            .to_string()
    };
    // Malformed JSON, no envelope, wrong type.
    let e = t.fails(400, "POST", "/virtual-networks", "{not json").await;
    assert!(e.contains("JSON"), "{e}");
    t.fails(400, "POST", "/virtual-networks", r#"{"project": {}}"#)
        .await;
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        r#"{"virtual-network": 5}"#,
    )
    .await;
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        r#"{"virtual-network": {"fq_name": "x"}}"#,
    )
    .await;
    // Bad CIDRs.
    let e = t
        .fails(
            400,
            "POST",
            "/virtual-networks",
            &vn_body(json!("10.1.300.0"), json!(24)),
        )
        .await;
    assert!(e.contains("ip_prefix"), "{e}");
    let e = t
        .fails(
            400,
            "POST",
            "/virtual-networks",
            &vn_body(json!("10.1.1.0"), json!(33)),
        )
        .await;
    assert!(e.contains("CIDR"), "{e}");
    let e = t
        .fails(
            400,
            "POST",
            "/virtual-networks",
            &vn_body(json!("10.1.1.5"), json!(24)),
        )
        .await;
    assert!(e.contains("host bits"), "{e}");
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        &vn_body(json!("10.1.1.0"), json!("24")),
    )
    .await;
    t.fails(
        400,
        "POST",
        "/virtual-networks",
        &vn_body(json!("10.1.1.0"), json!(31)),
    )
    .await;
    // Overlapping subnets in one VN.
    let two = json!({"virtual-network": {"fq_name": ["default-domain", "p", "x"], "network_ipam_refs": [{
        "to": ["default-domain", "default-project", "default-network-ipam"],
        "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 8}},
                                  {"subnet": {"ip_prefix": "10.1.0.0", "ip_prefix_len": 16}}]}}]}});
    let e = t
        .fails(400, "POST", "/virtual-networks", &two.to_string())
        .await;
    assert!(e.contains("overlaps"), "{e}");
    // Unknown type, unknown object, unknown ref target, unknown parent.
    t.fails(404, "POST", "/floating-ips", "{}").await;
    t.fails(404, "GET", "/floating-ip/x", "").await;
    t.fails(
        404,
        "GET",
        &format!("/virtual-network/{}", uuid::Uuid::new_v4()),
        "",
    )
    .await;
    t.fails(404, "GET", &format!("/project/{vn_id}"), "").await;
    let e = t
        .fails(
            404,
            "POST",
            "/virtual-networks",
            &json!({"virtual-network": {"fq_name": ["default-domain", "p", "y"],
            "network_policy_refs": [{"to": ["default-domain", "p", "nope"]}]}})
            .to_string(),
        )
        .await;
    assert!(e.contains("default-domain:p:nope"), "{e}");
    let e = t
        .fails(
            404,
            "POST",
            "/virtual-networks",
            &json!({"virtual-network": {"fq_name": ["default-domain", "nope", "y"]}}).to_string(),
        )
        .await;
    assert!(e.contains("default-domain:nope"), "{e}");
    // Duplicates.
    let e = t
        .fails(
            409,
            "POST",
            "/virtual-networks",
            &vn_body(json!("10.1.1.0"), json!(24)).replace("\"x\"", "\"net\""),
        )
        .await;
    assert!(e.contains("already exists"), "{e}");
    let e = t
        .fails(
            409,
            "POST",
            "/projects",
            &json!({"project": {"uuid": vn_id, "fq_name": ["default-domain", "z"]}}).to_string(),
        )
        .await;
    assert!(e.contains("already exists"), "{e}");
    // VMI without a VN; with a bad MAC; with a MAC already used.
    let e = t
        .fails(
            400,
            "POST",
            "/virtual-machine-interfaces",
            &json!({"virtual-machine-interface": {"fq_name": ["default-domain", "p", "i"]}})
                .to_string(),
        )
        .await;
    assert!(e.contains("virtual_network_refs"), "{e}");
    let vmi_body = |mac: &str| {
        json!({"virtual-machine-interface": {"fq_name": ["default-domain", "p", "i2"],
            "virtual_network_refs": [{"uuid": vn_id}],
            "virtual_machine_interface_mac_addresses": {"mac_address": [mac]}}})
        .to_string()
    };
    t.fails(
        400,
        "POST",
        "/virtual-machine-interfaces",
        &vmi_body("02:zz:00:00:00:01"),
    )
    .await;
    let first = t.vmi("p", "i1", &vn_id).await;
    let mac = first["virtual_machine_interface_mac_addresses"]["mac_address"][0]
        .as_str()
        .unwrap()
        .to_uppercase()
        .replace(':', "-");
    let e = t
        .fails(409, "POST", "/virtual-machine-interfaces", &vmi_body(&mac))
        .await;
    assert!(e.contains("duplicate"), "{e}");
    // Policy rule validation.
    let pol = |rule: Value| {
        json!({"network-policy": {"fq_name": ["default-domain", "p", "pol"], "network_policy_entries": {"policy_rule": [rule]}}}).to_string()
    };
    t.fails(
        400,
        "POST",
        "/network-policys",
        &pol(json!({"direction": "<", "action_list": {"simple_action": "pass"}})),
    )
    .await;
    t.fails(
        400,
        "POST",
        "/network-policys",
        &pol(json!({"protocol": "bogus", "action_list": {"simple_action": "pass"}})),
    )
    .await;
    t.fails(
        400,
        "POST",
        "/network-policys",
        &pol(json!({"action_list": {"simple_action": "shrug"}})),
    )
    .await;
    t.fails(
        400,
        "POST",
        "/network-policys",
        &pol(json!({"direction": ">"})),
    )
    .await;
    t.fails(400, "POST", "/network-policys", &pol(json!({"action_list": {"simple_action": "deny"}, "dst_ports": [{"start_port": 0, "end_port": 70000}]}))).await;
    t.post(
        "network-policy",
        serde_json::from_str::<Value>(&pol(
            json!({"protocol": 6, "action_list": {"simple_action": "deny"}}),
        ))
        .unwrap()["network-policy"]
            .clone(),
    )
    .await;
    // PUT: immutable fields, unknown object, malformed body.
    let u = format!("/virtual-network/{vn_id}");
    let e = t
        .fails(
            400,
            "PUT",
            &u,
            r#"{"virtual-network": {"fq_name": ["default-domain", "p", "renamed"]}}"#,
        )
        .await;
    assert!(e.contains("fq_name"), "{e}");
    t.fails(
        400,
        "PUT",
        &u,
        r#"{"virtual-network": {"virtual_network_network_id": 999}}"#,
    )
    .await;
    t.fails(
        400,
        "PUT",
        &u,
        &format!(
            r#"{{"virtual-network": {{"parent_uuid": "{}"}}}}"#,
            uuid::Uuid::new_v4()
        ),
    )
    .await;
    t.fails(
        404,
        "PUT",
        &format!("/virtual-network/{}", uuid::Uuid::new_v4()),
        r#"{"virtual-network": {}}"#,
    )
    .await;
    t.fails(400, "PUT", &u, "[]").await;
    // ref-update errors.
    t.fails(
        404,
        "POST",
        "/ref-update",
        &json!({"operation": "ADD", "type": "virtual-network", "uuid": vn_id,
        "ref-type": "network-policy", "ref-uuid": uuid::Uuid::new_v4().to_string()})
        .to_string(),
    )
    .await;
    t.fails(400, "POST", "/ref-update", &json!({"operation": "MOVE", "type": "virtual-network", "uuid": vn_id,
        "ref-type": "network-ipam", "ref-fq-name": ["default-domain", "default-project", "default-network-ipam"]}).to_string()).await;
    t.fails(
        400,
        "POST",
        "/ref-update",
        &json!({"operation": "ADD", "type": "virtual-network", "uuid": vn_id,
        "ref-type": "Not A Type", "ref-uuid": vn_id})
        .to_string(),
    )
    .await;
    // A VMI losing its VN through ref-update is refused.
    t.fails(
        400,
        "POST",
        "/ref-update",
        &json!({"operation": "DELETE", "type": "virtual-machine-interface", "uuid": uuid(&first),
        "ref-type": "virtual-network", "ref-uuid": vn_id})
        .to_string(),
    )
    .await;
    t.fails(
        404,
        "POST",
        "/fqname-to-id",
        r#"{"type": "virtual-network", "fq_name": ["a", "b", "c"]}"#,
    )
    .await;
    t.fails(
        400,
        "POST",
        "/fqname-to-id",
        r#"{"type": "virtual-network"}"#,
    )
    .await;
    t.fails(
        404,
        "POST",
        "/id-to-fqname",
        &json!({"uuid": uuid::Uuid::new_v4().to_string()}).to_string(),
    )
    .await;
}

#[tokio::test]
async fn exhausted_subnet_pools_and_upstream_end_allocation() {
    let t = T::new();
    t.project("p").await;
    // /29: .0 network, .7 broadcast, .6 gateway, .5 DNS (upstream's
    // default), hosts .4 down to .1.
    let vn = t.vn("p", "small", "192.168.5.0", 29).await;
    let vn_id = uuid(&vn);
    let vmi = t.vmi("p", "i", &vn_id).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(
            t.iip(&vn_id, &uuid(&vmi), None).await["instance_ip_address"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        got,
        ["192.168.5.4", "192.168.5.3", "192.168.5.2", "192.168.5.1"]
    );
    let body =
        json!({"instance-ip": {"fq_name": ["x"], "virtual_network_refs": [{"uuid": vn_id}]}})
            .to_string();
    let e = t.fails(409, "POST", "/instance-ips", &body).await;
    assert!(e.contains("exhausted"), "{e}");
    // Freed addresses are found again.
    let ips = t
        .ok(
            "GET",
            &format!("/instance-ips?back_ref_id={vn_id}&detail=true"),
            None,
        )
        .await;
    let first = ips["instance-ips"][0]["instance-ip"].clone();
    t.ok("DELETE", &format!("/instance-ip/{}", uuid(&first)), None)
        .await;
    let again = t.iip(&vn_id, &uuid(&vmi), None).await;
    assert_eq!(again["instance_ip_address"], first["instance_ip_address"]);

    // addr_from_start=false given explicitly (as absent): gateway .254, DNS
    // .253, first .252; allocation pools honoured, downwards; an IPv6 subnet
    // alongside that asks for the start of the subnet.
    let vn2 = t
        .post(
            "virtual-network",
            json!({"fq_name": ["default-domain", "p", "up"], "network_ipam_refs": [{
                "to": ["default-domain", "default-project", "default-network-ipam"],
                "attr": {"ipam_subnets": [
                    {"subnet": {"ip_prefix": "10.47.0.0", "ip_prefix_len": 24}, "addr_from_start": false},
                    {"subnet": {"ip_prefix": "10.48.0.0", "ip_prefix_len": 24}, "subnet_uuid": "pool-sub",
                     "allocation_pools": [{"start": "10.48.0.100", "end": "10.48.0.101"}]},
                    {"subnet": {"ip_prefix": "fd00:1::", "ip_prefix_len": 64}, "addr_from_start": true},
                ]}}]}),
        )
        .await;
    let subs = &vn2["network_ipam_refs"][0]["attr"]["ipam_subnets"];
    assert_eq!(subs[0]["default_gateway"], "10.47.0.254");
    assert_eq!(subs[0]["dns_server_address"], "10.47.0.253");
    assert_eq!(subs[2]["default_gateway"], "fd00:1::1");
    let vn2_id = uuid(&vn2);
    let vmi2 = t.vmi("p", "i2", &vn2_id).await;
    let a = t.iip(&vn2_id, &uuid(&vmi2), None).await;
    assert_eq!(a["instance_ip_address"], "10.47.0.252");
    let b = t.iip(&vn2_id, &uuid(&vmi2), None).await;
    assert_eq!(b["instance_ip_address"], "10.47.0.251");
    assert_eq!(subs[1]["default_gateway"], "10.48.0.254");
    let pool = |_: ()| {
        json!({"fq_name": [uuid::Uuid::new_v4().to_string()],
               "virtual_network_refs": [{"uuid": vn2_id}], "subnet_uuid": "pool-sub"})
    };
    assert_eq!(
        t.post("instance-ip", pool(())).await["instance_ip_address"],
        "10.48.0.101"
    );
    assert_eq!(
        t.post("instance-ip", pool(())).await["instance_ip_address"],
        "10.48.0.100"
    );
    t.fails(
        409,
        "POST",
        "/instance-ips",
        &json!({"instance-ip": pool(())}).to_string(),
    )
    .await;
    t.fails(400, "POST", "/instance-ips", &json!({"instance-ip": {"fq_name": ["x"], "virtual_network_refs": [{"uuid": vn2_id}], "subnet_uuid": "nope"}}).to_string()).await;
    let v6 = t
        .post(
            "instance-ip",
            json!({"fq_name": ["v6"], "virtual_network_refs": [{"uuid": vn2_id}], "instance_ip_family": "v6"}),
        )
        .await;
    assert_eq!(v6["instance_ip_address"], "fd00:1::3");
    assert_eq!(v6["instance_ip_family"], "v6");
    t.fails(
        400,
        "POST",
        "/instance-ips",
        &json!({"instance-ip": {"fq_name": ["x"], "virtual_network_refs": [{"uuid": vn2_id}],
        "instance_ip_family": "v6", "instance_ip_address": "10.47.0.9"}})
        .to_string(),
    )
    .await;
    // The same address in another VN (same prefix) is fine.
    let vn3 = t.vn("p", "small2", "192.168.5.0", 29).await;
    let x = t.iip(&uuid(&vn3), &uuid(&vmi), Some("192.168.5.3")).await;
    assert_eq!(x["instance_ip_address"], "192.168.5.3");
}

#[tokio::test]
async fn put_merges_and_guards_subnets() {
    let t = T::new();
    t.project("p").await;
    let vn = t.vn("p", "net", "10.1.1.0", 24).await;
    let id = uuid(&vn);
    let su = vn["network_ipam_refs"][0]["attr"]["ipam_subnets"][0]["subnet_uuid"].clone();
    // Merge a property; other fields stay.
    let r = t
        .ok("PUT", &format!("/virtual-network/{id}"), Some(json!({"virtual-network": {
            "virtual_network_properties": {"forwarding_mode": "l2_l3", "vxlan_network_identifier": 5001},
            "display_name": "Net"}})))
        .await;
    assert_eq!(r["virtual-network"]["uuid"], json!(id));
    let g = t.get("virtual-network", &id).await;
    assert_eq!(g["display_name"], "Net");
    assert_eq!(
        g["virtual_network_properties"]["vxlan_network_identifier"],
        5001
    );
    assert_eq!(
        g["network_ipam_refs"][0]["attr"]["ipam_subnets"][0]["subnet_uuid"],
        su
    );
    assert_eq!(
        g["virtual_network_network_id"],
        vn["virtual_network_network_id"]
    );
    t.fails(
        400,
        "PUT",
        &format!("/virtual-network/{id}"),
        r#"{"virtual-network": {"virtual_network_properties": {"vxlan_network_identifier": 0}}}"#,
    )
    .await;
    t.fails(
        400,
        "PUT",
        &format!("/virtual-network/{id}"),
        r#"{"virtual-network": {"virtual_network_properties": {"forwarding_mode": "l4"}}}"#,
    )
    .await;
    // A GET body PUT back unchanged is accepted and changes nothing.
    let rev = t.store.revision();
    t.ok(
        "PUT",
        &format!("/virtual-network/{id}"),
        Some(json!({"virtual-network": g.clone()})),
    )
    .await;
    assert_eq!(t.store.revision(), rev);
    // Add a second subnet: the first keeps its uuid.
    let mut refs = g["network_ipam_refs"].clone();
    refs[0]["attr"]["ipam_subnets"][0]
        .as_object_mut()
        .unwrap()
        .remove("subnet_uuid");
    refs[0]["attr"]["ipam_subnets"]
        .as_array_mut()
        .unwrap()
        .push(json!({"subnet": {"ip_prefix": "10.1.2.0", "ip_prefix_len": 24}}));
    let r = t
        .ok(
            "PUT",
            &format!("/virtual-network/{id}"),
            Some(json!({"virtual-network": {"network_ipam_refs": refs}})),
        )
        .await;
    let subs = &r["virtual-network"]["network_ipam_refs"][0]["attr"]["ipam_subnets"];
    assert_eq!(subs[0]["subnet_uuid"], su);
    assert_eq!(subs.as_array().unwrap().len(), 2);
    // Removing a subnet still in use is refused.
    let vmi = t.vmi("p", "i", &id).await;
    let ip = t.iip(&id, &uuid(&vmi), Some("10.1.2.7")).await;
    let only_first = json!({"virtual-network": {"network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
        "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "10.1.1.0", "ip_prefix_len": 24}}]}}]}});
    let e = t
        .fails(
            409,
            "PUT",
            &format!("/virtual-network/{id}"),
            &only_first.to_string(),
        )
        .await;
    assert!(e.contains(&uuid(&ip)), "{e}");
    // Instance-ip address cannot change.
    t.fails(
        400,
        "PUT",
        &format!("/instance-ip/{}", uuid(&ip)),
        r#"{"instance-ip": {"instance_ip_address": "10.1.2.8"}}"#,
    )
    .await;
    // Null removes a property.
    t.ok(
        "PUT",
        &format!("/virtual-network/{id}"),
        Some(json!({"virtual-network": {"display_name": null}})),
    )
    .await;
    assert!(t
        .get("virtual-network", &id)
        .await
        .get("display_name")
        .is_none());
    // VMI refs replace: add the default SG then clear.
    let sg = t
        .store
        .fq_name_to_id(
            "security-group",
            &["default-domain".into(), "p".into(), "default".into()],
        )
        .unwrap();
    let vu = uuid(&vmi);
    t.ok("PUT", &format!("/virtual-machine-interface/{vu}"), Some(json!({"virtual-machine-interface": {"security_group_refs": [{"uuid": sg.to_string()}]}}))).await;
    assert_eq!(
        t.get("security-group", &sg.to_string()).await["virtual_machine_interface_back_refs"][0]
            ["uuid"],
        json!(vu)
    );
    let mac = t.get("virtual-machine-interface", &vu).await
        ["virtual_machine_interface_mac_addresses"]
        .clone();
    t.ok(
        "PUT",
        &format!("/virtual-machine-interface/{vu}"),
        Some(json!({"virtual-machine-interface": {"security_group_refs": []}})),
    )
    .await;
    let g = t.get("virtual-machine-interface", &vu).await;
    assert_eq!(g["security_group_refs"], json!([]));
    assert_eq!(g["virtual_machine_interface_mac_addresses"], mac);
    assert!(t
        .get("security-group", &sg.to_string())
        .await
        .get("virtual_machine_interface_back_refs")
        .is_none());
}

#[tokio::test]
async fn list_filters_and_read_options() {
    let t = T::new();
    let p1 = t.project("a").await;
    let p2 = t.project("b").await;
    let v1 = t.vn("a", "n1", "10.0.1.0", 24).await;
    let v2 = t.vn("a", "n2", "10.0.2.0", 24).await;
    let v3 = t.vn("b", "n3", "10.0.3.0", 24).await;
    let i1 = t.vmi("a", "i1", &uuid(&v1)).await;
    let _i2 = t.vmi("a", "i2", &uuid(&v2)).await;
    let i3 = t.vmi("b", "i3", &uuid(&v1)).await;
    let n = |v: &Value, k: &str| v[k].as_array().unwrap().len();
    let l = t
        .ok("GET", &format!("/virtual-networks?parent_id={p1}"), None)
        .await;
    assert_eq!(n(&l, "virtual-networks"), 2);
    let l = t
        .ok(
            "GET",
            &format!("/virtual-networks?parent_id={p1},{p2}"),
            None,
        )
        .await;
    assert_eq!(n(&l, "virtual-networks"), 3);
    let l = t
        .ok(
            "GET",
            "/virtual-networks?parent_fq_name_str=default-domain:b&parent_type=project",
            None,
        )
        .await;
    assert_eq!(l["virtual-networks"][0]["uuid"], json!(uuid(&v3)));
    let l = t
        .ok(
            "GET",
            &format!("/virtual-machine-interfaces?back_ref_id={}", uuid(&v1)),
            None,
        )
        .await;
    let got: HashSet<String> = l["virtual-machine-interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(uuid)
        .collect();
    assert_eq!(got, HashSet::from([uuid(&i1), uuid(&i3)]));
    let l = t
        .ok(
            "GET",
            &format!(
                "/virtual-networks?obj_uuids={},{}&detail=true",
                uuid(&v1),
                uuid(&v3)
            ),
            None,
        )
        .await;
    let items = l["virtual-networks"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let d1 = items
        .iter()
        .map(|i| &i["virtual-network"])
        .find(|i| i["uuid"] == json!(uuid(&v1)))
        .unwrap();
    assert!(d1["network_ipam_refs"].is_array());
    assert_eq!(
        d1["virtual_machine_interface_back_refs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let l = t
        .ok(
            "GET",
            "/virtual-networks?detail=true&fields=virtual_network_network_id",
            None,
        )
        .await;
    let one = &l["virtual-networks"][0]["virtual-network"];
    assert!(one["virtual_network_network_id"].is_u64());
    assert!(one["fq_name"].is_array() && one["uuid"].is_string());
    assert!(one.get("network_ipam_refs").is_none());
    let l = t
        .ok("GET", "/virtual-machine-interfaces?count=true", None)
        .await;
    assert_eq!(l, json!({"virtual-machine-interfaces": {"count": 3}}));
    let l = t
        .ok(
            "GET",
            "/virtual-networks?count=true&parent_id="
                .to_string()
                .as_str(),
            None,
        )
        .await;
    assert_eq!(l["virtual-networks"]["count"], 0);
    let l = t
        .ok("GET", "/virtual-networks?filters=name==%22n2%22", None)
        .await;
    assert_eq!(l["virtual-networks"][0]["uuid"], json!(uuid(&v2)));
    t.fails(400, "GET", "/virtual-networks?parent_id=zzz", "")
        .await;
    t.fails(
        404,
        "GET",
        "/virtual-networks?parent_fq_name_str=default-domain:nope",
        "",
    )
    .await;
    // GET options.
    let g = t
        .ok(
            "GET",
            &format!("/virtual-network/{}?exclude_back_refs=true", uuid(&v1)),
            None,
        )
        .await;
    assert!(g["virtual-network"]
        .get("virtual_machine_interface_back_refs")
        .is_none());
    let g = t
        .ok(
            "GET",
            &format!("/project/{p1}?fields=virtual_networks"),
            None,
        )
        .await;
    assert_eq!(
        g["project"]["virtual_networks"].as_array().unwrap().len(),
        2
    );
    assert!(g["project"].get("security_groups").is_none());
    assert!(g["project"].get("id_perms").is_none());
    let g = t
        .ok("GET", &format!("/project/{p1}?exclude_children=true"), None)
        .await;
    assert!(g["project"].get("virtual_networks").is_none());
    // Home page and unknown routes.
    let h = t.ok("GET", "/", None).await;
    assert!(h["links"].as_array().unwrap().len() >= 18);
    t.fails(404, "GET", "/virtual-network", "").await;
    t.fails(404, "GET", "/a/b/c", "").await;
}

#[tokio::test]
async fn subscribe_announces_commits_only() {
    let t = T::new();
    let mut rx = t.store.subscribe();
    let r0 = *rx.borrow_and_update();
    t.project("p").await;
    assert!(rx.has_changed().unwrap());
    let r1 = *rx.borrow_and_update();
    assert_eq!(r1, r0 + 1, "project + default SG are one commit");
    t.fails(
        409,
        "POST",
        "/projects",
        r#"{"project": {"fq_name": ["default-domain", "p"]}}"#,
    )
    .await;
    assert!(!rx.has_changed().unwrap());
    assert_eq!(t.store.snapshot().unwrap().revision, r1);
}

#[tokio::test]
async fn virtual_router_and_global_vrouter_config() {
    let t = T::new();
    // Upstream's defaults exist from the start.
    let gvcs = t
        .ok("GET", "/global-vrouter-configs?detail=true", None)
        .await;
    let gvc = &gvcs["global-vrouter-configs"][0]["global-vrouter-config"];
    assert_eq!(
        gvc["fq_name"],
        json!([
            "default-global-system-config",
            "default-global-vrouter-config"
        ])
    );
    assert_eq!(
        gvc["encapsulation_priorities"]["encapsulation"],
        json!(["MPLSoGRE", "MPLSoUDP", "VXLAN"])
    );
    let gvc_uuid = gvc["uuid"].as_str().unwrap().to_string();
    // Priorities change through PUT, checked.
    let put = t
        .ok(
            "PUT",
            &format!("/global-vrouter-config/{gvc_uuid}"),
            Some(json!({"global-vrouter-config": {"encapsulation_priorities": {"encapsulation": ["VXLAN", "MPLSoUDP"]}}})),
        )
        .await;
    assert_eq!(
        put["global-vrouter-config"]["encapsulation_priorities"]["encapsulation"],
        json!(["VXLAN", "MPLSoUDP"])
    );
    for bad in [
        json!({"encapsulation": ["MPLSoFOO"]}),
        json!({"encapsulation": ["VXLAN", "VXLAN"]}),
        json!(["VXLAN"]),
    ] {
        let r = t
            .call(
                "PUT",
                &format!("/global-vrouter-config/{gvc_uuid}"),
                Some(json!({"global-vrouter-config": {"encapsulation_priorities": bad}})),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
    // A compute node's virtual-router: parent global-system-config, the
    // tunnel address required (the body upstream's provisioning sends).
    let vr = t
        .ok(
            "POST",
            "/virtual-routers",
            Some(
                json!({"virtual-router": {"fq_name": ["default-global-system-config", "compute-1"],
                "parent_type": "global-system-config", "virtual_router_ip_address": "192.0.2.1"}}),
            ),
        )
        .await;
    assert_eq!(
        vr["virtual-router"]["fq_name"],
        json!(["default-global-system-config", "compute-1"])
    );
    assert_eq!(vr["virtual-router"]["parent_type"], "global-system-config");
    for body in [
        json!({"fq_name": ["default-global-system-config", "compute-2"]}),
        json!({"fq_name": ["default-global-system-config", "compute-2"], "virtual_router_ip_address": "192.0.2.300"}),
        // Upstream requires the fq_name.
        json!({"name": "compute-2", "virtual_router_ip_address": "192.0.2.2"}),
    ] {
        let r = t
            .call(
                "POST",
                "/virtual-routers",
                Some(json!({ "virtual-router": body })),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
    let vr_uuid = vr["virtual-router"]["uuid"].as_str().unwrap().to_string();
    t.ok("DELETE", &format!("/virtual-router/{vr_uuid}"), None)
        .await;
    assert_eq!(
        t.call("GET", &format!("/virtual-router/{vr_uuid}"), None)
            .await
            .status,
        404
    );
}

/// A network policy whose rule applies a service chain is stored (as
/// upstream's API does), and the answer says, in an HTTP `Warning`
/// header, that such rules deny until service chaining exists; a policy
/// without one gets no warning. Before, nothing said the rule would pass
/// traffic unserviced.
#[tokio::test]
async fn service_chain_policies_are_answered_with_a_warning() {
    let t = T::new();
    let rule = |chain: bool| {
        let mut al = json!({"simple_action": "pass"});
        if chain {
            al["apply_service"] = json!(["default-domain:p:fw"]);
        }
        json!({"direction": "<>", "protocol": "any",
               "src_addresses": [{"virtual_network": "any"}],
               "dst_addresses": [{"virtual_network": "any"}],
               "action_list": al})
    };
    let body = |name: &str, chain: bool| {
        json!({"network-policy": {"fq_name": ["default-domain", "default-project", name],
               "parent_type": "project",
               "network_policy_entries": {"policy_rule": [rule(chain)]}}})
    };
    let plain = t
        .call("POST", "/network-policys", Some(body("plain", false)))
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    assert_eq!(plain.warning, None);
    let chained = t
        .call("POST", "/network-policys", Some(body("chained", true)))
        .await;
    assert_eq!(chained.status, 200, "{}", chained.text);
    let w = chained.warning.expect("a Warning header");
    assert!(
        w.starts_with("299 ") && w.contains("service chains are not supported"),
        "{w}"
    );
    // An update that adds a chain is warned about too.
    let u = uuid(&plain.json()["network-policy"]);
    let upd = t
        .call(
            "PUT",
            &format!("/network-policy/{u}"),
            Some(json!({"network-policy": {"network_policy_entries": {"policy_rule": [rule(true)]}}})),
        )
        .await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    assert!(upd.warning.is_some(), "{}", upd.text);
}
