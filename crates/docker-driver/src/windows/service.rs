//! The Windows service: `install` registers `<this exe> run <args>` with
//! the service control manager (auto start, LocalSystem), `uninstall`
//! stops and deletes it, `run` is what the SCM starts. Uses the
//! `windows-service` crate.

use std::ffi::OsString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

/// The service's name (`sc.exe query ContrailDockerDriver`).
pub const SERVICE_NAME: &str = "ContrailDockerDriver";
pub const SERVICE_DISPLAY_NAME: &str = "Contrail Docker network driver";
const DESCRIPTION: &str =
    "Docker network and IPAM plugin \"Contrail\" of the vRouter compute node (named pipe \\\\.\\pipe\\Contrail)";

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
    #[error("service {SERVICE_NAME} did not stop within {STOP_TIMEOUT:?}")]
    StopTimeout,
    #[error("service_run called twice")]
    AlreadyRunning,
}

fn scm(what: &'static str) -> impl FnOnce(windows_service::Error) -> ServiceError {
    move |source| ServiceError::Scm { what, source }
}

/// Registers the service to start `<current exe> run <args...>` at boot
/// as LocalSystem. `args` are the driver's options (`--vnc-url` ...).
pub fn service_install(args: &[OsString]) -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(scm("connect"))?;
    let exe = std::env::current_exe().map_err(ServiceError::Exe)?;
    let mut launch_arguments = vec![OsString::from("run")];
    launch_arguments.extend(args.iter().cloned());
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: SERVICE_DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments,
        dependencies: Vec::new(),
        account_name: None, // LocalSystem: HNS needs it
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG)
        .map_err(scm("create service"))?;
    service
        .set_description(DESCRIPTION)
        .map_err(scm("set description"))
}

/// Stops the service if it runs (waiting at most 30 s) and deletes it.
pub fn service_uninstall() -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm("connect"))?;
    let service = manager
        .open_service(
            SERVICE_NAME,
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
                return Err(ServiceError::StopTimeout);
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
    Ok(())
}

/// Tells the service body to stop: resolves when the SCM sends Stop or
/// Shutdown.
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// A pair for running the body outside the SCM (console mode, tests):
    /// send `true` to stop.
    pub fn channel() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self(rx))
    }

    /// Completes once a stop was requested (or the sender is gone).
    pub async fn wait(mut self) {
        // Err: sender dropped, which also means stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

type Body = Box<dyn FnOnce(Shutdown) -> Result<(), String> + Send>;

/// The body `service_run` was given, taken by `service_main`.
static BODY: Mutex<Option<Body>> = Mutex::new(None);

/// Runs as the service: connects to the SCM (which must have started this
/// process), reports Running, runs `body` on the SCM's service thread
/// until it returns (it should return soon after its [`Shutdown`]
/// resolves), and reports Stopped with exit code 1 if it failed. Blocks
/// until then. The body typically builds a tokio runtime and awaits
/// [`super::run_plugin`] with `shutdown.wait()`.
pub fn service_run(
    body: impl FnOnce(Shutdown) -> Result<(), String> + Send + 'static,
) -> Result<(), ServiceError> {
    {
        let mut slot = BODY.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(ServiceError::AlreadyRunning);
        }
        *slot = Some(Box::new(body));
    }
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(scm("start dispatcher"))
}

windows_service::define_windows_service!(ffi_service_main, service_main);

fn status(state: ServiceState, exit: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: ServiceExitCode::Win32(exit),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

fn service_main(_args: Vec<OsString>) {
    let Some(body) = BODY.lock().unwrap_or_else(|e| e.into_inner()).take() else {
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
    let handle = match service_control_handler::register(SERVICE_NAME, handler) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the service control handler");
            return;
        }
    };
    if let Err(e) = handle.set_service_status(status(ServiceState::Running, 0)) {
        tracing::error!(error = %e, "cannot report Running");
    }
    let exit = match body(shutdown) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "driver failed");
            1
        }
    };
    if let Err(e) = handle.set_service_status(status(ServiceState::Stopped, exit)) {
        tracing::error!(error = %e, "cannot report Stopped");
    }
}
