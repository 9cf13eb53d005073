//! Upstream's default objects.

use crate::error::ApiError;
use crate::ops::create::create;
use crate::schema::Ty;
use crate::store::Txn;
use serde_json::json;

/// Upstream's default objects (run on every open; creates what is missing).
pub(crate) fn seed(txn: &mut Txn<'_>) -> Result<(), ApiError> {
    let dom = vec!["default-domain".to_string()];
    if txn.st().by_fq(Ty::Domain, &dom).is_none() {
        create(txn, Ty::Domain, json!({"fq_name": dom}))?;
    }
    let proj = vec!["default-domain".to_string(), "default-project".to_string()];
    if txn.st().by_fq(Ty::Project, &proj).is_none() {
        create(
            txn,
            Ty::Project,
            json!({"fq_name": proj, "parent_type": "domain"}),
        )?;
    }
    let mut ipam_fq = proj.clone();
    ipam_fq.push("default-network-ipam".into());
    if txn.st().by_fq(Ty::NetworkIpam, &ipam_fq).is_none() {
        create(
            txn,
            Ty::NetworkIpam,
            json!({"fq_name": ipam_fq, "parent_type": "project"}),
        )?;
    }
    let gsc = vec![crate::schema::DEFAULT_GSC.to_string()];
    if txn.st().by_fq(Ty::GlobalSystemConfig, &gsc).is_none() {
        create(txn, Ty::GlobalSystemConfig, json!({"fq_name": gsc}))?;
    }
    let mut gvc = gsc.clone();
    gvc.push(crate::schema::DEFAULT_GVC.into());
    if txn.st().by_fq(Ty::GlobalVrouterConfig, &gvc).is_none() {
        create(
            txn,
            Ty::GlobalVrouterConfig,
            json!({
                "fq_name": gvc,
                "parent_type": "global-system-config",
                "encapsulation_priorities": {"encapsulation": ["MPLSoGRE", "MPLSoUDP", "VXLAN"]},
                "vxlan_network_identifier_mode": "automatic",
            }),
        )?;
    }
    Ok(())
}
