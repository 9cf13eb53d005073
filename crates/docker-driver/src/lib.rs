//! The Contrail Docker network and IPAM driver (libnetwork remote plugin).
//!
//! `docker network create -d Contrail --ipam-driver Contrail ...` puts
//! containers on an OpenSDN / Tungsten Fabric virtual network: each docker
//! endpoint becomes a virtual-machine, a virtual-machine-interface and an
//! instance-ip in the config API ([`vnc_client`]), a host interface made by a
//! [`backend::ContainerNetworking`] backend (Linux veth, Windows HCN), and a
//! port in the vRouter agent's port API. See the crate README for the user commands.
//!
//! The plugin protocol is a handful of JSON calls, so it is served by axum
//! directly rather than through a plugin-helper crate (none is maintained
//! for hyper 1 / axum 0.8).

pub mod api;
pub mod backend;
pub mod cli;
pub mod driver;
pub mod server;
pub mod vn;

#[cfg(windows)]
pub mod windows;

pub use driver::{Config, Driver, DriverError};
/// The connection limits of the plugin socket (re-exported for callers and tests).
pub use http_serve;
pub use server::{app, serve_connection, PLUGIN_NAME};
