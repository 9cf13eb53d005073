//! The Linux veth backend against the real kernel (root only).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use docker_driver::backend::linux::{container_name, LinuxBackend};
use docker_driver::backend::{tap_name, ContainerNetworking, EndpointSpec};
use std::process::Command;
use uuid::Uuid;

fn link(name: &str) -> Option<String> {
    let o = Command::new("ip")
        .args(["-d", "link", "show", "dev", name])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).to_string())
}

/// Report a test that cannot run here. The line goes straight to the
/// process's stderr (libtest captures only the print macros, and hides
/// what a passing test printed), so every skip is seen, and the test
/// command counts the `SKIP:` lines. Under `CI=true` a skip is a failure:
/// the test command installs every tool, so a skip there is a broken step.
fn report_skip(test: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: would SKIP, which CI=true does not allow: {reason}");
    }
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("SKIP: {test}: {reason}\n"),
    );
}

#[tokio::test]
async fn veth_create_list_prune_delete() {
    let Ok(b) = LinuxBackend::new() else {
        report_skip("veth_create_list_prune_delete", "no netlink");
        return;
    };
    let vmi = Uuid::new_v4();
    let spec = EndpointSpec {
        vmi,
        mac: [0x02, 0x12, 0x34, 0x56, 0x78, 0x9a],
        ipv4: Some("198.18.5.2/24".parse().unwrap()),
        gateway4: None,
        ipv6: None,
        gateway6: None,
        mtu: 1400,
        network: "n".into(),
        endpoint: "e".into(),
    };
    let h = match b.create(&spec).await {
        Ok(h) => h,
        Err(e) => {
            report_skip(
                "veth_create_list_prune_delete",
                &format!("cannot create veths here: {e}"),
            );
            return;
        }
    };
    assert_eq!(h.system_name, tap_name(&vmi));
    assert_eq!(
        h.container_ifname.as_deref(),
        Some(container_name(&vmi).as_str())
    );
    let host = link(&h.system_name).unwrap();
    assert!(
        host.contains("mtu 1400") && host.contains(&format!("alias contrail-docker:{vmi}")),
        "{host}"
    );
    assert!(host.contains("state UP") || host.contains(",UP"), "{host}");
    let ctn = link(&container_name(&vmi)).unwrap();
    assert!(
        ctn.contains("02:12:34:56:78:9a") && ctn.contains("mtu 1400"),
        "{ctn}"
    );
    assert!(b.list().await.unwrap().contains(&vmi));
    // Re-create (a retry) replaces the pair.
    b.create(&spec).await.unwrap();
    // Its peer never left the host namespace: pruned as unjoined.
    assert!(b.prune_unjoined().await.unwrap().contains(&vmi));
    assert!(link(&h.system_name).is_none() && link(&container_name(&vmi)).is_none());
    b.create(&spec).await.unwrap();
    b.delete(&vmi).await.unwrap();
    b.delete(&vmi).await.unwrap();
    assert!(!b.list().await.unwrap().contains(&vmi));
    assert!(link(&h.system_name).is_none());
}
