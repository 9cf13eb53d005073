//! The vRouter agent, standalone single-host mode.
//!
//! Turns configuration into forwarding state, as upstream's
//! `contrail-vrouter-agent` does:
//!
//! * an embedded config store ([`vnc_api`], redb) serves the VNC REST API
//!   subset on 127.0.0.1:8082 (what the Docker driver speaks);
//! * the port API ([`ports`], 127.0.0.1:9091, upstream's `port_ipc` calls
//!   and bodies) announces the host interfaces of VM/container ports, kept
//!   as files; [`port_config`] checks them against the config and reports
//!   their live state;
//! * [`model`] joins both into virtual networks (one VRF each) and ports;
//!   [`program`] turns the model into datapath objects and converges the
//!   datapath to them over ksync ([`ksync`]), on start, on every change
//!   and after a datapath restart;
//! * pkt0 traps are answered ([`services`]: ARP, DHCP) or decided
//!   ([`flows`]: policy and security groups, flow aging);
//! * [`introspect`] serves JSON views and Prometheus metrics on 8085.
//!
//! [`run::run`] wires it together; `vrouter-agent` is the binary.

pub mod config;
pub mod controller;
pub mod fabric;
pub mod flows;
pub mod introspect;
pub mod ksync;
pub mod model;
pub mod port_config;
pub mod ports;
pub mod program;
pub mod programming;
pub mod rib;
pub mod run;
pub mod services;
pub mod source;
pub mod status;
pub mod vif_map;
