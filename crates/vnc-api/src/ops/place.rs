//! Where a new object goes: its fq_name and parent.

use crate::error::{bad, not_found, ApiError};
use crate::ops::common::{check_name, join, parse_fq_name, parse_uuid};
use crate::schema::Ty;
use crate::store::State;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Where a new object goes: its fq_name and parent.
type Placement = (Vec<String>, Option<(Ty, Uuid)>);

/// The fq_name (required, as upstream: clients compute it from the parent
/// and the name) and the parent it names. `parent_type`, `parent_uuid`
/// and `name`, when given, must agree with it.
pub(crate) fn place(st: &State, ty: Ty, obj: &Map<String, Value>) -> Result<Placement, ApiError> {
    let tn = ty.name();
    let fq = parse_fq_name(obj.get("fq_name"))?;
    let name_given = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            check_name(s, "name")?;
            Some(s.clone())
        }
        Some(_) => return Err(bad("name must be a non-empty string")),
    };
    let puuid = match obj.get("parent_uuid") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_uuid(v, "parent_uuid")?),
    };
    let ptype = match obj.get("parent_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if ty.parents().is_empty() && s == "config-root" => None,
        Some(Value::String(s)) => match Ty::from_name(s).filter(|t| ty.parents().contains(t)) {
            Some(t) => Some(t),
            None => return Err(bad(format!("{tn} cannot have a parent of type \"{s}\""))),
        },
        Some(_) => return Err(bad("parent_type must be a string")),
    };
    let parent = if ty.parents().is_empty() {
        if puuid.is_some() {
            return Err(bad(format!("{tn} has no parent (parent_uuid given)")));
        }
        if fq.len() != 1 {
            return Err(bad(format!(
                "Invalid fq-name of an object with no parent: {tn} fq_name must have exactly one element, got {}",
                join(&fq)
            )));
        }
        None
    } else {
        let Some((_, pfq)) = fq.split_last().filter(|(_, p)| !p.is_empty()) else {
            return Err(bad(format!(
                "{tn} fq_name {} has no parent part",
                join(&fq)
            )));
        };
        let cands: Vec<Ty> = ptype.map_or_else(|| ty.parents().to_vec(), |t| vec![t]);
        let Some((pt, pu)) = cands
            .iter()
            .find_map(|t| st.by_fq(*t, pfq).map(|u| (*t, u)))
        else {
            let pn = cands
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(not_found(format!(
                "parent {pn} {} of {tn} {} not found",
                join(pfq),
                join(&fq)
            )));
        };
        if puuid.is_some_and(|p| p != pu) {
            return Err(bad(format!(
                "parent_uuid does not match fq_name {} (parent is {pu})",
                join(&fq)
            )));
        }
        Some((pt, pu))
    };
    if let Some(n) = &name_given {
        if fq.last() != Some(n) {
            return Err(bad(format!(
                "name \"{n}\" does not match fq_name {}",
                join(&fq)
            )));
        }
    }
    Ok((fq, parent))
}
