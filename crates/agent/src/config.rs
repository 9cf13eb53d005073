//! The agent's configuration file (TOML).
//!
//! Sections and keys reuse upstream `contrail-vrouter-agent.conf` names
//! where upstream has the setting (`[DEFAULT] log_level`,
//! `http_server_port`, `flow_cache_timeout`,
//! `stale_interface_cleanup_timeout`, `hostname`, `agent_name`,
//! `xmpp_auth_enable`, `xmpp_server_cert`, `xmpp_server_key`,
//! `xmpp_ca_cert`; `[CONTROL-NODE] servers`, `subcluster_name`;
//! `[NETWORKS] control_network_ip`); settings upstream does not have sit
//! in `[AGENT]` (and, for the controller, in `[CONTROL-NODE]` under names
//! upstream does not use). Command-line options override the file.
//!
//! ```toml
//! [DEFAULT]
//! log_level = "info"
//! http_server_port = 8085      # introspect
//! flow_cache_timeout = 180     # idle seconds before a flow is removed
//! stale_interface_cleanup_timeout = 60   # after /syncports, unannounced ports go
//! agent_name = "compute-1"     # default: hostname, then the host's name
//! xmpp_auth_enable = false
//! xmpp_server_cert = "/etc/contrail/ssl/certs/server.pem"
//! xmpp_server_key = "/etc/contrail/ssl/private/server-privkey.pem"
//! xmpp_ca_cert = "/etc/contrail/ssl/certs/ca-cert.pem"
//!
//! [CONTROL-NODE]
//! servers = "10.0.0.11:5269 10.0.0.12:5269"
//! subcluster_name = ""
//! hold_time = 90               # ours: XMPP hold time, seconds
//! stale_route_timeout = 300    # ours: routes of a lost control node
//! end_of_rib_timeout = 60      # ours: sweep without an end-of-RIB
//! reconnect_max = 30           # ours: reconnect backoff cap, seconds
//!
//! [NETWORKS]
//! control_network_ip = "10.0.0.21"   # tunnel source
//!
//! [AGENT]
//! config_source = "embedded"   # or "controller"
//! mode = "standalone"
//! sock_dir = "/var/run/vrouter"
//! state_dir = "/var/lib/vrouter-rs"
//! vnc_listen = "127.0.0.1:8082"
//! port_listen = "127.0.0.1:9091"
//! tcp_close_timeout = 2
//! max_vifs = 4096
//! max_vrfs = 4096
//! hold_audit_period = 4
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(rename = "DEFAULT", default)]
    pub default: DefaultSection,
    #[serde(rename = "AGENT", default)]
    pub agent: AgentSection,
    #[serde(rename = "CONTROL-NODE", default)]
    pub control_node: ControlNodeSection,
    #[serde(rename = "NETWORKS", default)]
    pub networks: NetworksSection,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlNodeSection {
    pub servers: Option<String>,
    pub subcluster_name: Option<String>,
    pub hold_time: Option<u64>,
    pub stale_route_timeout: Option<u64>,
    pub end_of_rib_timeout: Option<u64>,
    pub reconnect_max: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworksSection {
    pub control_network_ip: Option<std::net::Ipv4Addr>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultSection {
    pub log_level: Option<String>,
    pub http_server_port: Option<u16>,
    pub flow_cache_timeout: Option<u64>,
    pub hostname: Option<String>,
    pub agent_name: Option<String>,
    pub xmpp_auth_enable: Option<bool>,
    pub xmpp_server_cert: Option<PathBuf>,
    pub xmpp_server_key: Option<PathBuf>,
    pub xmpp_ca_cert: Option<PathBuf>,
    /// Seconds after `/syncports` before ports not announced again are
    /// deleted (upstream's key and default, 60).
    pub stale_interface_cleanup_timeout: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    pub mode: Option<String>,
    pub config_source: Option<crate::source::Kind>,
    pub sock_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub vnc_listen: Option<SocketAddr>,
    pub port_listen: Option<SocketAddr>,
    pub introspect_listen: Option<SocketAddr>,
    pub tcp_close_timeout: Option<u64>,
    pub max_vifs: Option<u16>,
    /// VRFs the agent may use: a virtual network whose network id is at
    /// least this cannot be programmed (reported, never skipped silently).
    pub max_vrfs: Option<u16>,
    /// Seconds between two visits of the hold audit to a flow entry.
    pub hold_audit_period: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: mode {mode:?} is not supported (only \"standalone\")")]
    Mode { path: String, mode: String },
}

impl File {
    pub fn load(path: &Path) -> Result<File, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let f: File = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        if let Some(m) = &f.agent.mode {
            if m != "standalone" {
                return Err(ConfigError::Mode {
                    path: path.display().to_string(),
                    mode: m.clone(),
                });
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_keys_and_ours() {
        let f: File = toml::from_str(
            "[DEFAULT]\nlog_level = \"debug\"\nhttp_server_port = 18085\nflow_cache_timeout = 30\n[AGENT]\nvnc_listen = \"127.0.0.1:18082\"\nmax_vifs = 1024\n",
        )
        .unwrap();
        assert_eq!(f.default.http_server_port, Some(18085));
        assert_eq!(f.default.flow_cache_timeout, Some(30));
        assert_eq!(f.agent.max_vifs, Some(1024));
    }

    /// The file the Debian package and the MSI install
    /// (`packaging/config/`): every key must be one the agent knows.
    #[test]
    fn the_packaged_default_config_parses() {
        let f: File = toml::from_str(include_str!(
            "../../../packaging/config/contrail-vrouter-agent.conf"
        ))
        .expect("packaging/config/contrail-vrouter-agent.conf");
        assert_eq!(f.agent.mode.as_deref(), Some("standalone"));
        assert_eq!(f.default.http_server_port, Some(8085));
        // Paths differ per platform: left to the agent's defaults.
        assert!(f.agent.sock_dir.is_none() && f.agent.state_dir.is_none());
    }

    #[test]
    fn upstream_controller_keys() {
        let f: File = toml::from_str(
            "[DEFAULT]\nagent_name = \"c1\"\nxmpp_auth_enable = true\nxmpp_ca_cert = \"/ca.pem\"\n[CONTROL-NODE]\nservers = \"10.0.0.1:5269 10.0.0.2:5269\"\nsubcluster_name = \"east\"\n[NETWORKS]\ncontrol_network_ip = \"192.0.2.1\"\n[AGENT]\nconfig_source = \"controller\"\n",
        )
        .unwrap();
        assert_eq!(f.default.agent_name.as_deref(), Some("c1"));
        assert_eq!(f.default.xmpp_auth_enable, Some(true));
        assert_eq!(
            f.control_node.servers.as_deref(),
            Some("10.0.0.1:5269 10.0.0.2:5269")
        );
        assert_eq!(f.networks.control_network_ip, Some([192, 0, 2, 1].into()));
        assert_eq!(f.agent.config_source, Some(crate::source::Kind::Controller));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<File>("[DEFAULT]\nflow_cache_timout = 3\n").is_err());
    }
}
