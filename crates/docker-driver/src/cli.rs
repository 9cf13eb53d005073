//! Command-line options shared by the Linux binary and the Windows service.

use std::path::PathBuf;

/// Options of `contrail-docker-driver`.
#[derive(Debug, Clone, clap::Args)]
pub struct DriverArgs {
    /// The VNC config API.
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    pub vnc_url: String,
    /// The vRouter agent's port API.
    #[arg(long, default_value = "http://127.0.0.1:9091")]
    pub agent_url: String,
    /// Keystone token sent as X-Auth-Token (none: noauth).
    #[arg(long)]
    pub auth_token: Option<String>,
    /// Where docker looks for plugin sockets (`Contrail.sock` goes there).
    #[arg(long, default_value = "/run/docker/plugins")]
    pub plugin_dir: PathBuf,
    /// VNC domain of the `tenant` option.
    #[arg(long, default_value = "default-domain")]
    pub domain: String,
    /// Name tagging this host's objects (default: the hostname).
    #[arg(long)]
    pub host_name: Option<String>,
    /// MTU of container interfaces.
    #[arg(long, default_value_t = 1500)]
    pub mtu: u16,
    /// Seconds between reconcile passes (0: only at start).
    #[arg(long, default_value_t = 60)]
    pub reconcile_interval: u64,
}

impl DriverArgs {
    pub fn config(&self) -> crate::Config {
        crate::Config {
            domain: self.domain.clone(),
            host: self.host_name.clone().unwrap_or_else(hostname),
            mtu: self.mtu,
        }
    }

    pub fn clients(&self) -> Result<(vnc_client::Client, vnc_client::Client), vnc_client::Error> {
        Ok((
            vnc_client::Client::new(&self.vnc_url, self.auth_token.clone())?,
            vnc_client::Client::new(&self.agent_url, None)?,
        ))
    }
}

/// The host's name (`/proc/sys/kernel/hostname`, `COMPUTERNAME`, or "localhost").
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
