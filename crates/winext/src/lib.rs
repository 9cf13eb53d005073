//! The vRouter Forwarding Extension for the Hyper-V extensible switch.
//!
//! A Windows kernel driver (an NDIS 6.30 lightweight filter registered as a
//! Hyper-V extensible-switch *forwarding* extension) built from the
//! portable core: [`dp_core`] forwards, [`ksync`] takes the agent's
//! configuration, [`sandesh`] frames it. Three layers:
//!
//! * **Portable, `no_std`, no NDIS** — everything that decides something:
//!   [`ports`] (switch ports and NICs ↔ vifs), [`ext`] (the core, the ksync
//!   handler, held packets, pkt0, what becomes of each packet), [`plan`]
//!   (in place or copied, sent whole or split), [`holds`], [`pkt0`],
//!   [`session`] (one ksync handle), [`flow_mapping`] (the shared flow
//!   table's layout), [`vlan`] (802.1Q tags between NDIS's out-of-band
//!   field and the frame). The shim asks the switch for one thing while deciding:
//!   [`ext::Switch::originate`].
//! * **The NDIS shim** ([`ndis`]) — NDIS 6.30 and Hyper-V switch structures
//!   declared by hand from Microsoft's documentation (mingw has no NDIS 6
//!   headers), with size and offset asserts; the filter callbacks; NBL/NB/MDL
//!   walking. It reaches NDIS through the [`ndis::api::NdisApi`] trait: the
//!   kernel build implements it with `ndis.sys`/`ntoskrnl.exe` imports, the
//!   user-mode harness (`fake`, feature `fake`) with a fake switch that
//!   lays NBLs out as NDIS does.
//! * **The kernel** (`kernel`, feature `kernel`, Windows only) —
//!   `DriverEntry`, the global allocator over
//!   `ExAllocatePoolWithTag(NonPagedPoolNx)`, the ksync and pkt0 device
//!   objects and their IRP handlers, and the flow table's named section.
//!   `driver/` builds it into `vrouter.sys`.
//!
//! Written by hand because nothing else does this: `windows-drivers-rs`
//! needs the WDK on a Windows host and has no NDIS bindings.

#![no_std]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

extern crate alloc;
#[cfg(any(test, feature = "fake"))]
extern crate std;

pub mod ext;
pub mod flow_mapping;
pub mod holds;
pub mod ndis;
pub mod pkt0;
pub mod plan;
pub mod ports;
pub mod session;
pub mod stats;
pub mod vlan;
pub mod wdm;

#[cfg(feature = "fake")]
pub mod fake;

#[cfg(all(windows, feature = "kernel"))]
pub mod kernel;

pub use ext::{ExtConfig, Extension, Frame, NblIn, Switch};
pub use plan::{Access, CopyReason, Fate, Plan, Shape};
pub use ports::{NicInfo, NicKind, PortNic};
