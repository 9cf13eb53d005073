//! Transaction semantics that the REST layer cannot provoke.

use crate::error::ApiError;
use crate::schema::Ty;
use crate::{ops, Store};
use serde_json::json;

#[test]
fn failed_operation_after_allocation_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.redb");
    let store = Store::open(&path).unwrap();
    store
        .create("project", json!({"fq_name": ["default-domain", "p"]}))
        .unwrap();
    let vn = store
        .create(
            "virtual-network",
            json!({"fq_name": ["default-domain", "p", "n"], "network_ipam_refs": [{
                "to": ["default-domain", "default-project", "default-network-ipam"],
                "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "10.0.0.0", "ip_prefix_len": 24}}]}}]}),
        )
        .unwrap();
    let vn_id = vn["uuid"].as_str().unwrap().to_string();
    let before = store.snapshot().unwrap();
    let mut rx = store.subscribe();
    rx.borrow_and_update();
    // A VMI and an instance-ip (address allocated), then a failure: all of
    // it is undone, in memory and on disk.
    let r: Result<(), ApiError> = store.write(|txn| {
        let vmi = ops::create(
            txn,
            Ty::VirtualMachineInterface,
            json!({"fq_name": ["default-domain", "p", "i"], "virtual_network_refs": [{"uuid": vn_id}]}),
        )?;
        let ip = ops::create(
            txn,
            Ty::InstanceIp,
            json!({"fq_name": ["i-v4"], "virtual_network_refs": [{"uuid": vn_id}],
                   "virtual_machine_interface_refs": [{"uuid": vmi["uuid"]}]}),
        )?;
        // Upstream's default: downwards from below the gateway (.254) and
        // the DNS address (.253).
        assert_eq!(ip["instance_ip_address"], "10.0.0.252");
        Err(ApiError::Conflict("injected".into()))
    });
    assert_eq!(r, Err(ApiError::Conflict("injected".into())));
    assert_eq!(store.snapshot().unwrap(), before);
    assert!(!rx.has_changed().unwrap());
    // The next allocation gets the same address: the hint was restored too.
    let ip = store
        .create(
            "instance-ip",
            json!({"fq_name": ["j-v4"], "virtual_network_refs": [{"uuid": vn_id}]}),
        )
        .unwrap();
    assert_eq!(ip["instance_ip_address"], "10.0.0.252");
    // Nothing of the failed operation reached the disk.
    let after = store.snapshot().unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.snapshot().unwrap(), after);
    assert_eq!(after.len("virtual-machine-interface"), 0);
}
