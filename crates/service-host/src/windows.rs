//! The Windows service control manager (SCM) side.
//!
//! * [`run`]: what the SCM starts. Reports Running, runs the body until it
//!   returns (it should, soon after its [`Shutdown`] resolves on Stop or
//!   Shutdown), then reports Stopped. A body that **fails** is logged and
//!   the process exits with code 1 *without* reporting Stopped: the SCM
//!   counts that as a failure and applies the service's recovery actions
//!   (restart), whatever its "failure actions on non-crash failures" flag
//!   says. That flag is what a clean `Stopped` with an error code would
//!   need, and `sc.exe` under Wine cannot set it.
//! * [`install`]: registers `<this exe> run <args>` (auto start, LocalSystem)
//!   with the spec's dependencies, description and [`RECOVERY`] actions: the
//!   same configuration the MSI creates (`packaging/windows/vrouter-rs.wxs`).
//! * [`uninstall`]: marks the service for deletion and stops it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceDependency, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

pub use crate::specs::{ServiceSpec, AGENT, DOCKER_DRIVER, RECOVERY, RECOVERY_RESET};
use crate::Shutdown;

/// How long `uninstall` waits for a running service to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("service control manager: {what}: {source}")]
    Scm {
        what: &'static str,
        #[source]
        source: windows_service::Error,
    },
    #[error("cannot find this executable: {0}")]
    Exe(#[source] std::io::Error),
    #[error("service {0} did not stop within {STOP_TIMEOUT:?}")]
    StopTimeout(&'static str),
    #[error("run called twice")]
    AlreadyRunning,
}

fn scm(what: &'static str) -> impl FnOnce(windows_service::Error) -> ServiceError {
    move |source| ServiceError::Scm { what, source }
}

/// Registers `spec` to start `<current exe> run <args...>` at boot as
/// LocalSystem, with its dependencies, description and [`RECOVERY`].
pub fn install(spec: &ServiceSpec, args: &[OsString]) -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(scm("connect"))?;
    let exe = std::env::current_exe().map_err(ServiceError::Exe)?;
    let mut launch_arguments = vec![OsString::from("run")];
    launch_arguments.extend(args.iter().cloned());
    let info = ServiceInfo {
        name: spec.name.into(),
        display_name: spec.display_name.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments,
        dependencies: spec
            .dependencies
            .iter()
            .map(|d| ServiceDependency::Service(d.into()))
            .collect(),
        account_name: None, // LocalSystem: HNS and the datapath need it
        account_password: None,
    };
    // SERVICE_START: setting a restart action requires it.
    let service = manager
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::DELETE,
        )
        .map_err(scm("create service"))?;
    let configured = service
        .set_description(spec.description)
        .map_err(scm("set description"))
        .and_then(|()| {
            service
                .update_failure_actions(failure_actions())
                .map_err(scm("set recovery actions"))
        });
    if configured.is_err() {
        // Do not leave a half-configured service behind.
        let _ = service.delete();
    }
    configured
}

fn failure_actions() -> ServiceFailureActions {
    ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(RECOVERY_RESET),
        reboot_msg: None,
        command: None,
        actions: Some(
            RECOVERY
                .iter()
                .map(|&delay| ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay,
                })
                .collect(),
        ),
    }
}

/// Stops the service if it runs (waiting at most 30 s) and deletes it.
pub fn uninstall(spec: &ServiceSpec) -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm("connect"))?;
    let service = manager
        .open_service(
            spec.name,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(scm("open service"))?;
    // Marked for deletion now, gone once stopped and all handles closed.
    service.delete().map_err(scm("delete service"))?;
    let status = service.query_status().map_err(scm("query status"))?;
    if status.current_state != ServiceState::Stopped {
        service.stop().map_err(scm("stop service"))?;
        let start = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let s = service.query_status().map_err(scm("query status"))?;
            if s.current_state == ServiceState::Stopped {
                break;
            }
            if start.elapsed() > STOP_TIMEOUT {
                return Err(ServiceError::StopTimeout(spec.name));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
    Ok(())
}

type Body = Box<dyn FnOnce(Shutdown) -> Result<(), String> + Send>;

/// The spec and body `run` was given, taken by `service_main`.
static SLOT: Mutex<Option<(&'static ServiceSpec, Body)>> = Mutex::new(None);

/// Runs as the service `spec`: connects to the SCM (which must have started
/// this process), and blocks until the body returned (see the module docs
/// for what a failing body does). The body typically builds a tokio
/// runtime and serves until `shutdown.wait()` resolves.
pub fn run(
    spec: &'static ServiceSpec,
    body: impl FnOnce(Shutdown) -> Result<(), String> + Send + 'static,
) -> Result<(), ServiceError> {
    {
        let mut slot = SLOT.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(ServiceError::AlreadyRunning);
        }
        *slot = Some((spec, Box::new(body)));
    }
    service_dispatcher::start(spec.name, ffi_service_main).map_err(scm("start dispatcher"))
}

windows_service::define_windows_service!(ffi_service_main, service_main);

fn status(state: ServiceState) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: ServiceExitCode::Win32(0),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

fn service_main(_args: Vec<OsString>) {
    let Some((spec, body)) = SLOT.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let (tx, shutdown) = Shutdown::channel();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = tx.send(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(spec.name, handler) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(service = spec.name, error = %e, "cannot register the service control handler");
            return;
        }
    };
    if let Err(e) = handle.set_service_status(status(ServiceState::Running)) {
        tracing::error!(service = spec.name, error = %e, "cannot report Running");
    }
    tracing::info!(service = spec.name, "service running");
    match body(shutdown) {
        Ok(()) => {
            tracing::info!(service = spec.name, "service stopped");
            if let Err(e) = handle.set_service_status(status(ServiceState::Stopped)) {
                tracing::error!(service = spec.name, error = %e, "cannot report Stopped");
            }
        }
        Err(e) => {
            // Not reported as Stopped: the SCM sees the process end while
            // Running and applies the recovery actions (module docs).
            tracing::error!(service = spec.name, error = %e, "service failed; exiting for the service manager's recovery actions");
            std::process::exit(1);
        }
    }
}

/// `%ProgramData%` from the known-folder API (`FOLDERID_ProgramData`), as
/// Docker and the installer resolve it; the environment variable, then
/// `C:\ProgramData`, if that fails. A service's environment is not a
/// reliable source: under Wine a service sees `ProgramData=C:\users\Public`
/// while the installer writes to `C:\ProgramData`.
pub fn program_data() -> PathBuf {
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};

    let mut raw: *mut u16 = std::ptr::null_mut();
    // SAFETY: a valid GUID pointer, default flags and token, and an out
    // pointer; the returned buffer is NUL-terminated and freed below.
    let hr =
        unsafe { SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut raw) };
    let known = if hr >= 0 && !raw.is_null() {
        // SAFETY: NUL-terminated UTF-16 written by the call above.
        let len = (0..).take_while(|&i| unsafe { *raw.add(i) } != 0).count();
        // SAFETY: `len` u16s were just read from `raw`.
        let path = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(raw, len) });
        Some(PathBuf::from(path))
    } else {
        None
    };
    if !raw.is_null() {
        // SAFETY: allocated by SHGetKnownFolderPath (also on failure).
        unsafe { CoTaskMemFree(raw.cast()) };
    }
    known
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| std::env::var_os("ProgramData").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
}
