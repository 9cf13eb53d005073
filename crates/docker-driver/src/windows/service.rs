//! The driver's Windows service, `ContrailDockerDriver` (after the agent's
//! `ContrailAgent`): `install` registers `<this exe> run <args>` with the
//! service control manager, `uninstall` stops and deletes it, `run` is
//! what the SCM starts. The SCM plumbing is `service_host::windows`,
//! shared with the agent.

use std::ffi::OsString;

pub use service_host::windows::ServiceError;
use service_host::windows::DOCKER_DRIVER;
pub use service_host::Shutdown;

/// The service's name (`sc.exe query ContrailDockerDriver`).
pub const SERVICE_NAME: &str = DOCKER_DRIVER.name;
pub const SERVICE_DISPLAY_NAME: &str = DOCKER_DRIVER.display_name;

/// Registers the service to start `<current exe> run <args...>` at boot
/// as LocalSystem, after the agent, restarted on failure. `args` are the
/// driver's options (`--vnc-url` ...).
pub fn service_install(args: &[OsString]) -> Result<(), ServiceError> {
    service_host::windows::install(&DOCKER_DRIVER, args)
}

/// Stops the service if it runs (waiting at most 30 s) and deletes it.
pub fn service_uninstall() -> Result<(), ServiceError> {
    service_host::windows::uninstall(&DOCKER_DRIVER)
}

/// Runs as the service until the SCM stops it; see
/// `service_host::windows::run`.
pub fn service_run(
    body: impl FnOnce(Shutdown) -> Result<(), String> + Send + 'static,
) -> Result<(), ServiceError> {
    service_host::windows::run(&DOCKER_DRIVER, body)
}
