//! The API operations (create, update, delete, ref-update) on a [`Txn`],
//! with their validation and allocation, and the read-side rendering
//! (hrefs, back-refs, children, lists).

/// First security-group id upstream allocates (`SGID_MIN_ALLOC`).
pub const SG_ID_MIN: u64 = 8_000_000;
/// Largest VN id (upstream allocates VN ids below 2^24).
pub const VN_ID_MAX: u64 = (1 << 24) - 1;

mod common;
mod create;
mod delete;
mod finish;
mod list;
mod place;
mod read;
mod ref_update;
mod seed;
mod store_api;
mod update;

pub(crate) use create::create;
pub(crate) use delete::delete;
pub(crate) use list::{list, parse_list_query};
pub(crate) use read::render;
pub use read::ReadOpts;
pub(crate) use ref_update::ref_update;
pub(crate) use seed::seed;
pub(crate) use update::update;
