//! The NDIS shim: hand-declared NDIS 6.30 / Hyper-V switch structures
//! ([`types`]), the NDIS functions it calls ([`api::NdisApi`]), list
//! handling ([`nbl`]), the driver state and the work behind each callback
//! ([`driver`]), OIDs ([`oid`]) and the callbacks NDIS registers
//! ([`filter`]). It decides nothing itself: every decision comes from the
//! portable layer (`crate::ext`, `crate::plan`, `crate::ports`).

pub mod api;
pub mod driver;
pub mod filter;
pub mod nbl;
pub mod oid;
pub mod types;

pub use api::NdisApi;
pub use driver::{Driver, HeldNbl};
