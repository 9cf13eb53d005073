//! Command-line options shared by the Linux binary and the Windows service,
//! and upstream's configuration file.
//!
//! Users of upstream's Windows driver keep their `contrail-cnm-plugin.conf`
//! (INI; `%ProgramData%\Contrail\etc\contrail\contrail-cnm-plugin.conf` on
//! Windows, `/etc/contrail/contrail-cnm-plugin.conf` on Linux, or
//! `--config`): its keys are read when the file is there, and flags
//! override them; the Keystone settings fall back to the `OS_*`
//! environment variables, as upstream's did.
//!
//! | section | key | flag |
//! |---|---|---|
//! | `[DRIVER]` | `ControllerIP`, `ControllerPort` | `--vnc-url http://<ip>:<port>` |
//! | | `AgentURL` | `--agent-url` |
//! | | `Adapter` | `--adapter` (Windows) |
//! | | `VSwitchName` | ignored: the HNS network is found by name |
//! | `[LOGGING]` | `LogPath`, `LogLevel` | `--log-file` (Windows), `--log-level` |
//! | `[AUTH]` | `AuthMethod` (`keystone`, `noauth`) | `--auth-method` |
//! | `[KEYSTONE]` | `Os_auth_url`, `Os_username`, `Os_password`, `Os_tenant_name`, `Os_token` | `--os-auth-url`, `--os-username`, `--os-password`, `--os-tenant-name` (`--os-project-name`), `--os-token` (`--auth-token`) |
//! | | `Os_domain_name` (ours: v3 user and project domain) | `--os-domain` |
//!
//! Upstream's own flag spellings (`--os_auth_url`, ...) are accepted too.

use std::path::{Path, PathBuf};

use vnc_client::{Auth, KeystoneConfig};

/// Options of `contrail-docker-driver`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DriverArgs {
    /// Upstream's INI configuration (contrail-cnm-plugin.conf); the default
    /// path is read when present. Flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The VNC config API [default: http://127.0.0.1:8082].
    #[arg(long)]
    pub vnc_url: Option<String>,
    /// The vRouter agent's port API [default: http://127.0.0.1:9091].
    #[arg(long, alias = "agentURL")]
    pub agent_url: Option<String>,
    /// `keystone` or `noauth` [default: keystone when an auth URL is set].
    #[arg(long, alias = "authMethod", value_parser = ["keystone", "noauth"])]
    pub auth_method: Option<String>,
    /// A fixed Keystone token sent as X-Auth-Token (upstream's OS_TOKEN).
    #[arg(long, visible_alias = "os-token", alias = "os_token")]
    pub auth_token: Option<String>,
    /// Keystone's URL, e.g. http://192.0.2.10:5000/v3 (`/v2.0` for the old
    /// API) [env: OS_AUTH_URL].
    #[arg(long, alias = "os_auth_url")]
    pub os_auth_url: Option<String>,
    /// Keystone user [env: OS_USERNAME].
    #[arg(long, alias = "os_username")]
    pub os_username: Option<String>,
    /// Keystone password [env: OS_PASSWORD] (prefer the file or the
    /// environment: a flag shows in the process list).
    #[arg(long, alias = "os_password")]
    pub os_password: Option<String>,
    /// Keystone project (tenant) [env: OS_TENANT_NAME, OS_PROJECT_NAME].
    #[arg(
        long,
        visible_alias = "os-project-name",
        alias = "os_tenant_name",
        alias = "os_project_name"
    )]
    pub os_tenant_name: Option<String>,
    /// Keystone v3 domain of the user and the project [env: OS_DOMAIN_NAME,
    /// OS_USER_DOMAIN_NAME; default: Default].
    #[arg(long, alias = "os_domain", alias = "os-domain-name")]
    pub os_domain: Option<String>,
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
    /// Log filter (tracing env-filter syntax) [default: the file's LogLevel,
    /// else RUST_LOG, else info].
    #[arg(long)]
    pub log_level: Option<String>,
}

/// `contrail-cnm-plugin.conf`, as far as it applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CnmConf {
    pub path: PathBuf,
    pub controller_ip: Option<String>,
    pub controller_port: Option<u16>,
    pub agent_url: Option<String>,
    pub adapter: Option<String>,
    pub log_path: Option<PathBuf>,
    pub log_level: Option<String>,
    pub auth_method: Option<String>,
    pub os_auth_url: Option<String>,
    pub os_username: Option<String>,
    pub os_password: Option<String>,
    pub os_tenant_name: Option<String>,
    pub os_token: Option<String>,
    pub os_domain: Option<String>,
    /// Keys this driver does not use (reported once logging is up).
    pub ignored: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{0}")]
    Invalid(String),
}

/// Upstream's default location of the file.
pub fn default_conf_path() -> PathBuf {
    #[cfg(windows)]
    {
        std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
            .join("Contrail")
            .join("etc")
            .join("contrail")
            .join("contrail-cnm-plugin.conf")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/etc/contrail/contrail-cnm-plugin.conf")
    }
}

/// Maps upstream's `LogLevel` (Debug|Info|Warn|Error|Fatal|Panic) onto a
/// tracing filter.
fn log_level(v: &str) -> Result<String, String> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "fatal" | "panic" => "error",
        "trace" => "trace",
        _ => {
            return Err(format!(
                "LogLevel {v:?} is not Debug, Info, Warn, Error, Fatal or Panic"
            ))
        }
    }
    .to_string())
}

impl CnmConf {
    /// Parses the file's text (keys and sections matched without regard to
    /// case, as users of the old driver wrote them either way).
    pub fn parse(path: &Path, text: &str) -> Result<CnmConf, ConfError> {
        let err = |msg: String| ConfError::File {
            path: path.display().to_string(),
            msg,
        };
        let ini = ini::Ini::load_from_str(text).map_err(|e| err(e.to_string()))?;
        let mut c = CnmConf {
            path: path.to_owned(),
            ..CnmConf::default()
        };
        for (sec, props) in ini.iter() {
            let sec = sec.unwrap_or("").to_ascii_uppercase();
            for (k, v) in props.iter() {
                let v = v.trim();
                let val = (!v.is_empty()).then(|| v.to_string());
                let key = k.to_ascii_lowercase();
                match (sec.as_str(), key.as_str()) {
                    ("DRIVER", "controllerip") => c.controller_ip = val,
                    ("DRIVER", "controllerport") => {
                        c.controller_port = match val {
                            Some(p) => Some(p.parse().map_err(|_| {
                                err(format!(
                                    "[DRIVER] ControllerPort {p:?} is not a port number"
                                ))
                            })?),
                            None => None,
                        }
                    }
                    ("DRIVER", "agenturl") => c.agent_url = val,
                    ("DRIVER", "adapter") => c.adapter = val,
                    ("LOGGING", "logpath") => c.log_path = val.map(PathBuf::from),
                    ("LOGGING", "loglevel") => {
                        c.log_level = match val {
                            Some(l) => {
                                Some(log_level(&l).map_err(|e| err(format!("[LOGGING] {e}")))?)
                            }
                            None => None,
                        }
                    }
                    ("AUTH", "authmethod") => {
                        c.auth_method = match val.as_deref().map(str::to_ascii_lowercase) {
                            Some(m) if m == "keystone" || m == "noauth" => Some(m),
                            Some(m) => {
                                return Err(err(format!(
                                    "[AUTH] AuthMethod {m:?} is not keystone or noauth"
                                )))
                            }
                            None => None,
                        }
                    }
                    ("KEYSTONE", "os_auth_url") => c.os_auth_url = val,
                    ("KEYSTONE", "os_username") => c.os_username = val,
                    ("KEYSTONE", "os_password") => c.os_password = val,
                    ("KEYSTONE", "os_tenant_name" | "os_project_name") => c.os_tenant_name = val,
                    ("KEYSTONE", "os_token") => c.os_token = val,
                    ("KEYSTONE", "os_domain_name" | "os_user_domain_name" | "os_domain") => {
                        c.os_domain = val
                    }
                    _ => c.ignored.push(format!("[{sec}] {k}")),
                }
            }
        }
        Ok(c)
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<CnmConf, ConfError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfError::File {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        CnmConf::parse(path, &text)
    }
}

/// Everything the driver runs with, flags over file over environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub vnc_url: String,
    pub agent_url: String,
    pub auth: Auth,
    pub config: crate::Config,
    pub plugin_dir: PathBuf,
    pub reconcile_interval: u64,
    /// `--log-level`, else the file's `LogLevel` (None: `RUST_LOG`, else info).
    pub log_level: Option<String>,
    /// From the file, for the Windows backend and logging.
    pub adapter: Option<String>,
    pub log_path: Option<PathBuf>,
    /// The file read, if any, and what in it was not used.
    pub conf: Option<CnmConf>,
}

impl DriverArgs {
    /// The configuration file: `--config` (must exist) or the default path
    /// when present.
    pub fn conf(&self) -> Result<Option<CnmConf>, ConfError> {
        match &self.config {
            Some(p) => CnmConf::load(p).map(Some),
            None => {
                let p = default_conf_path();
                if p.is_file() {
                    CnmConf::load(&p).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Flags over the file over `env` (upstream's `OS_*` variables, for the
    /// Keystone settings only).
    pub fn settings_with(
        &self,
        conf: Option<CnmConf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfError> {
        let f = conf.clone().unwrap_or_default();
        let env_any = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        let vnc_url = match (&self.vnc_url, &f.controller_ip) {
            (Some(u), _) => u.clone(),
            (None, Some(ip)) => {
                let host = if ip.contains(':') && !ip.starts_with('[') {
                    format!("[{ip}]")
                } else {
                    ip.clone()
                };
                format!("http://{host}:{}", f.controller_port.unwrap_or(8082))
            }
            (None, None) => "http://127.0.0.1:8082".into(),
        };
        let agent_url = self
            .agent_url
            .clone()
            .or(f.agent_url.clone())
            .unwrap_or_else(|| "http://127.0.0.1:9091".into());
        let method = self.auth_method.clone().or(f.auth_method.clone());
        let token = self
            .auth_token
            .clone()
            .or(f.os_token.clone())
            .or_else(|| env_any(&["OS_TOKEN"]));
        let ks = |flag: &Option<String>, file: &Option<String>, vars: &[&str]| {
            flag.clone().or(file.clone()).or_else(|| env_any(vars))
        };
        let auth_url = ks(&self.os_auth_url, &f.os_auth_url, &["OS_AUTH_URL"]);
        let auth = match method.as_deref() {
            Some("noauth") => Auth::None,
            Some("keystone") | None if auth_url.is_some() => {
                let user = ks(&self.os_username, &f.os_username, &["OS_USERNAME"]).ok_or_else(|| {
                    ConfError::Invalid(
                        "Keystone needs a user: --os-username, [KEYSTONE] Os_username or OS_USERNAME"
                            .into(),
                    )
                })?;
                let domain = ks(
                    &self.os_domain,
                    &f.os_domain,
                    &[
                        "OS_DOMAIN_NAME",
                        "OS_USER_DOMAIN_NAME",
                        "OS_PROJECT_DOMAIN_NAME",
                    ],
                )
                .unwrap_or_else(|| "Default".into());
                Auth::Keystone(KeystoneConfig {
                    auth_url: auth_url.unwrap_or_default(),
                    username: user,
                    password: ks(&self.os_password, &f.os_password, &["OS_PASSWORD"])
                        .unwrap_or_default(),
                    project: ks(
                        &self.os_tenant_name,
                        &f.os_tenant_name,
                        &["OS_TENANT_NAME", "OS_PROJECT_NAME"],
                    )
                    .unwrap_or_default(),
                    user_domain: domain.clone(),
                    project_domain: domain,
                })
            }
            Some("keystone") => match token {
                Some(t) => Auth::Token(t),
                None => {
                    return Err(ConfError::Invalid(
                        "AuthMethod keystone needs --os-auth-url (or [KEYSTONE] Os_auth_url, \
                         OS_AUTH_URL) or a token (--os-token)"
                            .into(),
                    ))
                }
            },
            _ => token.map_or(Auth::None, Auth::Token),
        };
        let log_level = self.log_level.clone().or(f.log_level.clone());
        Ok(Settings {
            vnc_url,
            agent_url,
            auth,
            config: crate::Config {
                domain: self.domain.clone(),
                host: self.host_name.clone().unwrap_or_else(hostname),
                mtu: self.mtu,
            },
            plugin_dir: self.plugin_dir.clone(),
            reconcile_interval: self.reconcile_interval,
            log_level,
            adapter: f.adapter.clone(),
            log_path: f.log_path.clone(),
            conf,
        })
    }

    /// [`DriverArgs::settings_with`] the file found and the process
    /// environment.
    pub fn settings(&self) -> Result<Settings, ConfError> {
        self.settings_with(self.conf()?, |k| std::env::var(k).ok())
    }
}

impl Settings {
    /// The log filter: `--log-level` or `LogLevel`, else `RUST_LOG`, else
    /// `info`.
    pub fn log_filter(&self) -> String {
        self.log_level
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "info".into())
    }

    /// The config API and agent clients.
    pub fn clients(&self) -> Result<(vnc_client::Client, vnc_client::Client), vnc_client::Error> {
        Ok((
            vnc_client::Client::with_auth(&self.vnc_url, self.auth.clone())?,
            vnc_client::Client::new(&self.agent_url, None)?,
        ))
    }

    /// Says what was read (once logging is up): the file, its unused keys,
    /// the authentication in use (never the password).
    pub fn log(&self) {
        if let Some(c) = &self.conf {
            tracing::info!(file = %c.path.display(), "configuration file read");
            if !c.ignored.is_empty() {
                tracing::warn!(keys = ?c.ignored, "configuration keys not used by this driver");
            }
        }
        let auth = match &self.auth {
            Auth::None => "none".to_string(),
            Auth::Token(_) => "fixed token".to_string(),
            Auth::Keystone(k) => format!("keystone {} as {}", k.auth_url, k.username),
        };
        tracing::info!(vnc = %self.vnc_url, agent = %self.agent_url, %auth, "settings");
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

#[cfg(test)]
mod tests;
