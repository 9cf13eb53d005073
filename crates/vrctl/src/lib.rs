//! `vrctl`: the operator CLI of the vRouter.
//!
//! One subcommand per upstream tool (`vif`, `nh`, `rt`, `mpls`, `vxlan`,
//! `vrf`, `flow`, `dropstats`, `vrouter`), with upstream's option names
//! where they exist and output in upstream's layout, talking ksync
//! (netlink-framed Sandesh) to a running `vrouter` over the unix socket
//! `<sock-dir>/dpdk_netlink` on Linux, and on Windows the forwarding
//! extension's device `\\.\vrouterKsync` or, given a `--sock-dir`, the
//! named pipe `\\.\pipe\vrouterKsync` ([`channels`]). Dumps are paged
//! like upstream's tools: ask again with the last object as marker while
//! the answer's "incomplete" bit is set. `flow -l` maps the flow table
//! from the shared memory the datapath names in `vr_flow_table_data`, as
//! upstream's `flow` does.
//!
//! The library half exists for tests and for other tools: [`Client`]
//! works over any [`Transport`], including [`client::LocalTransport`],
//! which runs a [`ksync::Handler`] in-process.

pub mod cli;
pub mod client;
pub mod ext;
pub mod parse;
pub mod print;
pub mod run;

pub use client::{Client, ClientError, Transport};

#[cfg(test)]
mod tests;
