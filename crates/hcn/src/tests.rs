//! The documents we send, checked key by key against hcsshim's schema, and
//! HNS-shaped answers parsed back. The answers are written after hcsshim's
//! types and test fixtures (`hcnutils_test.go`) plus the extra keys HNS
//! adds (`State`, `Health`), which we must tolerate.

use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::error::hresult;
use crate::fake::FakeHcn;

const NET: &str = "a1e2a3c4-0f4b-4e5b-9c3e-2b8d0a7e6f11";
const VMI: &str = "6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b";

fn net_id() -> Uuid {
    Uuid::parse_str(NET).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn contrail_network() -> HostComputeNetwork {
    transparent_network(
        "Contrail:d0c4e7",
        "Ethernet0",
        &[VROUTER_EXTENSION_ID],
        &[StaticSubnet {
            prefix: "10.0.0.77/24".parse().unwrap(),
            gateway: ip("10.0.0.1"),
        }],
        &[],
    )
}

#[test]
fn transparent_network_document() {
    let doc = serde_json::to_value(contrail_network()).unwrap();
    assert_eq!(
        doc,
        json!({
            "Name": "Contrail:d0c4e7",
            "Type": "Transparent",
            "Policies": [
                {"Type": "NetAdapterName", "Settings": {"NetworkAdapterName": "Ethernet0"}},
                {"Type": "VSwitchExtension",
                 "Settings": {"ExtensionID": "56553588-1538-4BE6-B8E0-CB46402DC205", "Enable": true}}
            ],
            "Ipams": [{
                "Type": "Static",
                "Subnets": [{
                    "IpAddressPrefix": "10.0.0.0/24",
                    "Routes": [{"NextHop": "10.0.0.1", "DestinationPrefix": "0.0.0.0/0"}]
                }]
            }],
            "SchemaVersion": {"Major": 2, "Minor": 0}
        })
    );
    // Top-level key order as hcsshim's struct (HNS does not care; a reader
    // comparing with hcsshim's output does).
    let text = serde_json::to_string(&contrail_network()).unwrap();
    assert!(
        text.starts_with(r#"{"Name":"Contrail:d0c4e7","Type":"Transparent","Policies":["#),
        "{text}"
    );
    assert!(
        text.ends_with(r#""SchemaVersion":{"Major":2,"Minor":0}}"#),
        "{text}"
    );
}

#[test]
fn network_with_dns_v6_and_no_subnet() {
    let n = transparent_network(
        "n",
        "Ethernet 2",
        &[],
        &[StaticSubnet {
            prefix: "fd00::5/64".parse().unwrap(),
            gateway: ip("fd00::1"),
        }],
        &[ip("10.0.0.2"), ip("8.8.8.8")],
    );
    let doc = serde_json::to_value(&n).unwrap();
    assert_eq!(doc["Dns"], json!({"ServerList": ["10.0.0.2", "8.8.8.8"]}));
    assert_eq!(
        doc["Ipams"][0]["Subnets"][0],
        json!({"IpAddressPrefix": "fd00::/64",
               "Routes": [{"NextHop": "fd00::1", "DestinationPrefix": "::/0"}]})
    );
    assert_eq!(doc["Policies"].as_array().unwrap().len(), 1);

    let bare = serde_json::to_value(transparent_network("n", "e", &[], &[], &[])).unwrap();
    assert!(bare.get("Ipams").is_none());
    assert!(bare.get("Dns").is_none());
    assert!(bare.get("MacPool").is_none());
    assert!(bare.get("ID").is_none());
    assert!(bare.get("Flags").is_none());
}

#[test]
fn endpoint_document() {
    let e = endpoint(
        &format!("Contrail-{VMI}"),
        net_id(),
        &[0x02, 0x6f, 0x1c, 0x2b, 0x3a, 0x4d],
        &[EndpointAddress {
            addr: "10.0.0.3/24".parse().unwrap(),
            gateway: Some(ip("10.0.0.1")),
        }],
        &[],
    );
    let doc = serde_json::to_value(&e).unwrap();
    assert_eq!(
        doc,
        json!({
            "Name": format!("Contrail-{VMI}"),
            "HostComputeNetwork": NET,
            "IpConfigurations": [{"IpAddress": "10.0.0.3", "PrefixLength": 24}],
            "Routes": [{"NextHop": "10.0.0.1", "DestinationPrefix": "0.0.0.0/0"}],
            "MacAddress": "02-6F-1C-2B-3A-4D",
            "SchemaVersion": {"Major": 2, "Minor": 0}
        })
    );
}

#[test]
fn dual_stack_endpoint_without_gateway() {
    let e = endpoint(
        "x",
        net_id(),
        &[0; 6],
        &[
            EndpointAddress {
                addr: "10.0.0.3/24".parse().unwrap(),
                gateway: None,
            },
            EndpointAddress {
                addr: "fd00::3/64".parse().unwrap(),
                gateway: Some(ip("fd00::1")),
            },
        ],
        &[ip("10.0.0.2")],
    );
    let doc = serde_json::to_value(&e).unwrap();
    assert_eq!(
        doc["IpConfigurations"],
        json!([{"IpAddress": "10.0.0.3", "PrefixLength": 24},
               {"IpAddress": "fd00::3", "PrefixLength": 64}])
    );
    assert_eq!(
        doc["Routes"],
        json!([{"NextHop": "fd00::1", "DestinationPrefix": "::/0"}])
    );
    assert_eq!(doc["Dns"], json!({"ServerList": ["10.0.0.2"]}));
    assert_eq!(doc["MacAddress"], "00-00-00-00-00-00");
}

#[test]
fn query_documents() {
    assert_eq!(
        HostComputeQuery::all().to_json(),
        r#"{"SchemaVersion":{"Major":2,"Minor":0}}"#
    );
    assert_eq!(
        HostComputeQuery::by_name("Contrail:d0c4e7").to_json(),
        r#"{"SchemaVersion":{"Major":2,"Minor":0},"Filter":"{\"Name\":\"Contrail:d0c4e7\"}"}"#
    );
    assert_eq!(
        HostComputeQuery::by_id(&net_id()).to_json(),
        format!(r#"{{"SchemaVersion":{{"Major":2,"Minor":0}},"Filter":"{{\"ID\":\"{NET}\"}}"}}"#)
    );
    assert_eq!(
        HostComputeQuery::endpoints_of(&net_id()).to_json(),
        format!(
            r#"{{"SchemaVersion":{{"Major":2,"Minor":0}},"Filter":"{{\"VirtualNetwork\":\"{NET}\"}}"}}"#
        )
    );
    let detailed = HostComputeQuery {
        flags: schema::query_flags::DETAILED,
        ..HostComputeQuery::by_name("a\"b")
    };
    assert_eq!(
        detailed.to_json(),
        r#"{"SchemaVersion":{"Major":2,"Minor":0},"Flags":1,"Filter":"{\"Name\":\"a\\\"b\"}"}"#
    );
}

#[test]
fn mac_format() {
    assert_eq!(
        format_mac(&[0x00, 0x15, 0x5d, 0x52, 0xc0, 0x0a]),
        "00-15-5D-52-C0-0A"
    );
    assert_eq!(
        parse_mac("00-15-5d-52-C0-0a"),
        Some([0x00, 0x15, 0x5d, 0x52, 0xc0, 0x0a])
    );
    assert_eq!(
        parse_mac("02:42:ac:11:00:02"),
        Some([2, 0x42, 0xac, 0x11, 0, 2])
    );
    for bad in [
        "",
        "00-15-5D-52-C0",
        "00-15-5D-52-C0-0A-01",
        "0-15-5D-52-C0-0AA",
        "zz-15-5D-52-C0-0A",
        "+1-15-5D-52-C0-0A",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
}

/// What `HcnQueryNetworkProperties` returns for the network above.
const NETWORK_ANSWER: &str = r#"{
  "ID": "A1E2A3C4-0F4B-4E5B-9C3E-2B8D0A7E6F11",
  "Name": "Contrail:d0c4e7",
  "Type": "Transparent",
  "Policies": [
    {"Type": "NetAdapterName", "Settings": {"NetworkAdapterName": "Ethernet0"}},
    {"Type": "VSwitchExtension", "Settings": {"ExtensionID": "56553588-1538-4BE6-B8E0-CB46402DC205", "Enable": true}},
    {"Type": "SomethingNew", "Settings": {"Foo": [1, 2]}}
  ],
  "MacPool": {"Ranges": [{"StartMacAddress": "00-15-5D-52-C0-00", "EndMacAddress": "00-15-5D-52-CF-FF"}]},
  "Dns": {},
  "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "10.0.0.0/24",
    "Routes": [{"NextHop": "10.0.0.1", "DestinationPrefix": "0.0.0.0/0"}], "Flags": 0}]}],
  "Flags": 0,
  "Health": {"Extra": {"Resources": {}}},
  "State": 1,
  "SchemaVersion": {"Major": 2, "Minor": 0}
}"#;

#[test]
fn network_answer_parses() {
    let n: HostComputeNetwork = serde_json::from_str(NETWORK_ANSWER).unwrap();
    assert_eq!(n.id, Some(net_id()));
    assert_eq!(n.name, "Contrail:d0c4e7");
    assert_eq!(n.r#type, NetworkType::Transparent);
    assert_eq!(
        n.policies[0]
            .as_net_adapter_name()
            .unwrap()
            .network_adapter_name,
        "Ethernet0"
    );
    let ext = n.policies[1].as_vswitch_extension().unwrap();
    assert_eq!(ext.extension_id, VROUTER_EXTENSION_ID);
    assert!(ext.enable);
    assert_eq!(n.policies[2].r#type, "SomethingNew");
    assert!(n.policies[2].as_vswitch_extension().is_none());
    assert_eq!(n.mac_pool.ranges[0].end_mac_address, "00-15-5D-52-CF-FF");
    assert_eq!(n.ipams[0].subnets[0].routes[0].next_hop, "10.0.0.1");
    assert_eq!(n.schema_version, SchemaVersion::V2);
    // What we sent is what HNS stored, apart from what HNS adds.
    let sent = contrail_network();
    assert_eq!(n.ipams, sent.ipams);
    assert_eq!(n.policies[..2], sent.policies[..]);
}

#[test]
fn network_types() {
    // HNS omits Type for NAT (mode 0); hcsshim defaults it to NAT.
    let n: HostComputeNetwork = serde_json::from_str(r#"{"Name":"nat"}"#).unwrap();
    assert_eq!(n.r#type, NetworkType::Nat);
    for (text, ty) in [
        ("NAT", NetworkType::Nat),
        ("Transparent", NetworkType::Transparent),
        ("L2Bridge", NetworkType::L2Bridge),
        ("L2Tunnel", NetworkType::L2Tunnel),
        ("ICS", NetworkType::Ics),
        ("Private", NetworkType::Private),
        ("Overlay", NetworkType::Overlay),
        ("Mirrored", NetworkType::Other("Mirrored".into())),
    ] {
        let v: NetworkType = serde_json::from_value(json!(text)).unwrap();
        assert_eq!(v, ty);
        assert_eq!(serde_json::to_value(&ty).unwrap(), json!(text));
    }
}

/// What `HcnQueryEndpointProperties` returns for an endpoint a container
/// is attached to.
const ENDPOINT_ANSWER: &str = r#"{
  "ID": "0C8E4B5A-77E1-4C1B-9E4E-5B6A7C8D9E0F",
  "Name": "Contrail-6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b",
  "HostComputeNetwork": "A1E2A3C4-0F4B-4E5B-9C3E-2B8D0A7E6F11",
  "HostComputeNamespace": "{5F0B1190-63BE-4E0C-B974-BD0F55675A42}",
  "Policies": [{"Type": "PortName", "Settings": {"Name": "Contrail-6f1c2b3a"}}],
  "IpConfigurations": [{"IpAddress": "10.0.0.3", "PrefixLength": 24}],
  "Dns": {"ServerList": ["10.0.0.2"]},
  "Routes": [{"NextHop": "10.0.0.1", "DestinationPrefix": "0.0.0.0/0", "Metric": 0}],
  "MacAddress": "02-6F-1C-2B-3A-4D",
  "Flags": 0,
  "Health": {"Extra": {}},
  "State": 3,
  "SchemaVersion": {"Major": 2, "Minor": 0}
}"#;

#[test]
fn endpoint_answer_parses() {
    let e: HostComputeEndpoint = serde_json::from_str(ENDPOINT_ANSWER).unwrap();
    assert_eq!(
        e.id,
        Some(Uuid::parse_str("0c8e4b5a-77e1-4c1b-9e4e-5b6a7c8d9e0f").unwrap())
    );
    assert_eq!(e.host_compute_network, Some(net_id()));
    assert_eq!(
        e.host_compute_namespace,
        Some(Uuid::parse_str("5f0b1190-63be-4e0c-b974-bd0f55675a42").unwrap())
    );
    assert_eq!(e.ip_configurations[0].prefix_length, 24);
    assert_eq!(e.dns.server_list, ["10.0.0.2"]);
    assert_eq!(
        parse_mac(&e.mac_address),
        Some([0x02, 0x6f, 0x1c, 0x2b, 0x3a, 0x4d])
    );
    assert_eq!(e.policies[0].settings["Name"], "Contrail-6f1c2b3a");
    // Round trip: ours back to JSON keeps the keys HNS sent that we model.
    let back = serde_json::to_value(&e).unwrap();
    assert_eq!(back["HostComputeNetwork"], NET);
    assert_eq!(back["MacAddress"], "02-6F-1C-2B-3A-4D");
    assert!(back.get("State").is_none());
    let again: HostComputeEndpoint = serde_json::from_value(back).unwrap();
    assert_eq!(again, e);
}

#[test]
fn enumerate_answer_parses() {
    // HcnEnumerate* returns a JSON array of GUID strings.
    let ids: Vec<Uuid> = serde_json::from_str(
        r#"["A1E2A3C4-0F4B-4E5B-9C3E-2B8D0A7E6F11","0c8e4b5a-77e1-4c1b-9e4e-5b6a7c8d9e0f"]"#,
    )
    .unwrap();
    assert_eq!(ids[0], net_id());
    assert_eq!(ids.len(), 2);
}

#[test]
fn error_display_and_record() {
    let e = HcnError::Call {
        call: "HcnCreateEndpoint",
        hresult: hresult::HCN_E_ENDPOINT_NOT_FOUND,
        record: Some(
            r#"{"Success":false,"Error":"The endpoint was not found. ","ErrorCode":2151350274}"#
                .into(),
        ),
    };
    assert_eq!(
        e.to_string(),
        "HcnCreateEndpoint failed: HRESULT 0x803B0002: The endpoint was not found."
    );
    assert!(e.is_not_found());
    assert_eq!(e.record().unwrap().error_code, Some(0x803B_0002));
    assert_eq!(e.record().unwrap().success, Some(false));

    let raw = HcnError::Call {
        call: "HcnCreateNetwork",
        hresult: hresult::HCN_E_ADAPTER_NOT_FOUND,
        record: Some("adapter Ethernet9 not found\r\n".into()),
    };
    assert_eq!(
        raw.to_string(),
        "HcnCreateNetwork failed: HRESULT 0x803B0006: adapter Ethernet9 not found"
    );
    assert!(!raw.is_not_found());
    assert!(raw.record().is_none());

    let none = HcnError::Call {
        call: "HcnDeleteNetwork",
        hresult: hresult::ERROR_NOT_FOUND,
        record: None,
    };
    assert_eq!(
        none.to_string(),
        "HcnDeleteNetwork failed: HRESULT 0x80070490"
    );
    assert!(none.is_not_found());
    assert!(!HcnError::Unavailable("x".into()).is_not_found());
}

#[test]
fn fake_round_trip() {
    let h = FakeHcn::new();
    let n = h.create_network(&contrail_network()).unwrap();
    let nid = n.id.unwrap();
    assert_eq!(
        h.network_by_name("Contrail:d0c4e7").unwrap(),
        Some(n.clone())
    );
    assert_eq!(h.network_by_name("other").unwrap(), None);
    assert_eq!(h.get_network(&nid).unwrap(), Some(n.clone()));
    assert!(h
        .create_network(&contrail_network())
        .unwrap_err()
        .hresult()
        .is_some());

    let settings = endpoint("ep1", nid, &[2, 0, 0, 0, 0, 1], &[], &[]);
    let e = h.create_endpoint(&nid, &settings).unwrap();
    let eid = e.id.unwrap();
    assert_eq!(e.host_compute_network, Some(nid));
    assert_eq!(h.endpoints_by_name("ep1").unwrap(), vec![e.clone()]);
    assert_eq!(
        h.list_endpoints(&HostComputeQuery::endpoints_of(&nid))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.list_endpoints(&HostComputeQuery::by_id(&eid)).unwrap(),
        vec![e.clone()]
    );
    // A network with endpoints cannot go.
    assert_eq!(
        h.delete_network(&nid).unwrap_err().hresult(),
        Some(hresult::HCN_E_ENTITY_HAS_REFERENCES)
    );
    h.delete_endpoint(&eid).unwrap();
    assert!(h.delete_endpoint(&eid).unwrap_err().is_not_found());
    assert_eq!(h.get_endpoint(&eid).unwrap(), None);
    h.delete_network(&nid).unwrap();
    assert!(h.delete_network(&nid).unwrap_err().is_not_found());

    h.fail_next("HcnEnumerateEndpoints", hresult::E_FAIL);
    let err = h.endpoints_by_name("ep1").unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(h.endpoints_by_name("ep1").unwrap().is_empty());
    assert!(h.calls().iter().any(|c| c == "HcnCreateEndpoint"));
}
