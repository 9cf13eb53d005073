//! The agent's configuration file (TOML).
//!
//! Sections and keys reuse upstream `contrail-vrouter-agent.conf` names
//! where upstream has the setting (`[DEFAULT] log_level`,
//! `http_server_port`, `flow_cache_timeout`,
//! `stale_interface_cleanup_timeout`); settings upstream does not
//! have sit in `[AGENT]`. Command-line options override the file.
//!
//! ```toml
//! [DEFAULT]
//! log_level = "info"
//! http_server_port = 8085      # introspect
//! flow_cache_timeout = 180     # idle seconds before a flow is removed
//! stale_interface_cleanup_timeout = 60   # after /syncports, unannounced ports go
//!
//! [AGENT]
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
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultSection {
    pub log_level: Option<String>,
    pub http_server_port: Option<u16>,
    pub flow_cache_timeout: Option<u64>,
    /// Seconds after `/syncports` before ports not announced again are
    /// deleted (upstream's key and default, 60).
    pub stale_interface_cleanup_timeout: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    pub mode: Option<String>,
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

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<File>("[DEFAULT]\nflow_cache_timout = 3\n").is_err());
    }
}
