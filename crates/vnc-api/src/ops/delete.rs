//! `DELETE /<type>/<uuid>`.

use crate::error::{conflict, not_found, ApiError};
use crate::ops::common::{describe_list, join};
use crate::schema::Ty;
use crate::store::{fq_of, Txn};
use uuid::Uuid;

/// Delete an object. Refused (409) while other objects refer to it or it
/// has children; a project's `default` security group goes with the
/// project when nothing uses it, as upstream.
pub(crate) fn delete(txn: &mut Txn<'_>, ty: Ty, uuid: Uuid) -> Result<(), ApiError> {
    let st = txn.st();
    let obj = st
        .get(ty, &uuid)
        .ok_or_else(|| not_found(format!("{} {uuid} not found", ty.name())))?;
    let referrers: Vec<(Ty, Uuid)> = st
        .back
        .get(&uuid)
        .map(|s| s.iter().copied().filter(|(_, u)| *u != uuid).collect())
        .unwrap_or_default();
    if !referrers.is_empty() {
        return Err(conflict(format!(
            "Delete when resource still referred: {} {} is referred to by {}",
            ty.name(),
            join(&fq_of(obj)),
            describe_list(st, &referrers)
        )));
    }
    let mut auto = Vec::new();
    let mut children = Vec::new();
    for &(ct, cu) in st.children.get(&uuid).into_iter().flatten() {
        let is_default_sg = ty == Ty::Project
            && ct == Ty::SecurityGroup
            && st
                .get(ct, &cu)
                .is_some_and(|c| fq_of(c).last().map(String::as_str) == Some("default"))
            && st.back.get(&cu).is_none_or(|s| s.is_empty());
        if is_default_sg {
            auto.push((ct, cu));
        } else {
            children.push((ct, cu));
        }
    }
    if !children.is_empty() {
        return Err(conflict(format!(
            "Delete when children still present: {} {} has {}",
            ty.name(),
            join(&fq_of(obj)),
            describe_list(st, &children)
        )));
    }
    for (ct, cu) in auto {
        txn.remove(ct, cu);
    }
    txn.remove(ty, uuid);
    Ok(())
}
