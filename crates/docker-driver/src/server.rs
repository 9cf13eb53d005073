//! The plugin HTTP server: libnetwork's `POST /<Interface>.<Call>` with JSON
//! bodies, served over any byte stream (unix socket here, a named pipe on
//! Windows).

#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::api::{EndpointRequest, NetworkRequest, CONTENT_TYPE};
use crate::backend::ContainerNetworking;
use crate::driver::{Driver, DriverError};

/// The plugin name docker knows us by (`-d Contrail`, `--ipam-driver Contrail`).
pub const PLUGIN_NAME: &str = "Contrail";

fn reply(status: StatusCode, v: &impl Serialize) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// Failures are 200 with the error in the body (libnetwork reads `Err` for
/// network calls, `Error` for IPAM calls; IPAM replies carry both).
fn failure(ipam: bool, e: &DriverError) -> Response {
    let msg = e.to_string();
    tracing::warn!("call failed: {msg}");
    if ipam {
        reply(StatusCode::OK, &json!({"Err": msg, "Error": msg}))
    } else {
        reply(StatusCode::OK, &json!({"Err": msg}))
    }
}

/// The JSON object a call carries. Every call but the handshake ones
/// (`Plugin.Activate`, `*.GetCapabilities`, `GetDefaultAddressSpaces`,
/// whose bodies are ignored) needs one: an empty body, `null` or a
/// non-object (`[]`) is refused rather than read as all defaults.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, DriverError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DriverError::Invalid(
            "malformed request: empty body (this call needs its JSON request object)".into(),
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| DriverError::Invalid(format!("malformed request: {e}")))?;
    if !v.is_object() {
        let kind = match v {
            Value::Null => "null",
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Object(_) => "an object",
        };
        return Err(DriverError::Invalid(format!(
            "malformed request: expected a JSON object, got {kind}"
        )));
    }
    serde_json::from_value(v).map_err(|e| DriverError::Invalid(format!("malformed request: {e}")))
}

/// A call the driver has nothing to do for, once its request is valid.
fn acknowledge(r: Result<(), String>, reply: Value) -> Result<Value, DriverError> {
    r.map(|()| reply).map_err(DriverError::Invalid)
}

fn to_value<T: Serialize>(r: Result<T, DriverError>) -> Result<Value, DriverError> {
    r.map(|v| serde_json::to_value(v).unwrap_or_else(|_| json!({})))
}

fn empty(r: Result<(), DriverError>) -> Result<Value, DriverError> {
    r.map(|()| json!({}))
}

async fn dispatch<B: ContainerNetworking>(
    State(d): State<Arc<Driver<B>>>,
    UrlPath(call): UrlPath<String>,
    body: Bytes,
) -> Response {
    tracing::debug!(%call, body = %String::from_utf8_lossy(&body), "plugin call");
    let ipam = call.starts_with("IpamDriver.");
    let r: Result<Value, DriverError> = match call.as_str() {
        "Plugin.Activate" => Ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]})),
        "NetworkDriver.GetCapabilities" => Ok(d.capabilities()),
        "NetworkDriver.CreateNetwork" => match parse(&body) {
            Ok(r) => empty(d.create_network(r).await),
            Err(e) => Err(e),
        },
        "NetworkDriver.DeleteNetwork" => match parse(&body) {
            Ok(r) => empty(d.delete_network(r).await),
            Err(e) => Err(e),
        },
        "NetworkDriver.CreateEndpoint" => match parse(&body) {
            Ok(r) => to_value(d.create_endpoint(r).await),
            Err(e) => Err(e),
        },
        "NetworkDriver.DeleteEndpoint" => match parse(&body) {
            Ok(r) => empty(d.delete_endpoint(r).await),
            Err(e) => Err(e),
        },
        "NetworkDriver.EndpointOperInfo" => match parse(&body) {
            Ok(r) => d.endpoint_oper_info(r).await,
            Err(e) => Err(e),
        },
        "NetworkDriver.Join" => match parse(&body) {
            Ok(r) => to_value(d.join(r).await),
            Err(e) => Err(e),
        },
        "NetworkDriver.Leave"
        | "NetworkDriver.ProgramExternalConnectivity"
        | "NetworkDriver.RevokeExternalConnectivity" => match parse::<EndpointRequest>(&body) {
            Ok(r) => acknowledge(r.check(), json!({})),
            Err(e) => Err(e),
        },
        "NetworkDriver.FreeNetwork" => match parse::<NetworkRequest>(&body) {
            Ok(r) => acknowledge(r.check(), json!({})),
            Err(e) => Err(e),
        },
        "NetworkDriver.AllocateNetwork" => match parse::<NetworkRequest>(&body) {
            Ok(r) => acknowledge(r.check(), json!({"Options": {}})),
            Err(e) => Err(e),
        },
        "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => {
            parse::<Value>(&body).map(|_| json!({}))
        }
        "IpamDriver.GetCapabilities" => Ok(d.ipam_capabilities()),
        "IpamDriver.GetDefaultAddressSpaces" => Ok(d.ipam_address_spaces()),
        "IpamDriver.RequestPool" => match parse(&body) {
            Ok(r) => to_value(d.request_pool(r).await),
            Err(e) => Err(e),
        },
        "IpamDriver.ReleasePool" => match parse(&body) {
            Ok(r) => empty(d.release_pool(r).await),
            Err(e) => Err(e),
        },
        "IpamDriver.RequestAddress" => match parse(&body) {
            Ok(r) => to_value(d.request_address(r).await),
            Err(e) => Err(e),
        },
        "IpamDriver.ReleaseAddress" => match parse(&body) {
            Ok(r) => empty(d.release_address(r).await),
            Err(e) => Err(e),
        },
        _ => {
            return reply(
                StatusCode::NOT_FOUND,
                &json!({"Err": format!("{call} is not implemented by the Contrail plugin")}),
            )
        }
    };
    match r {
        Ok(v) => reply(StatusCode::OK, &v),
        Err(e) => failure(ipam, &e),
    }
}

/// The plugin API as an axum router.
pub fn app<B: ContainerNetworking>(state: Arc<Driver<B>>) -> Router {
    Router::new()
        .route("/{call}", post(dispatch::<B>))
        .with_state(state)
}

/// Serves HTTP/1 on one connection (a unix socket, a named pipe, ...) with
/// the header/idle and body limits `t` ([`http_serve::Timeouts::DEFAULT`]
/// in production): a client that connects and stalls is dropped.
pub async fn serve_connection<IO>(
    io: IO,
    app: Router,
    t: http_serve::Timeouts,
) -> Result<(), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    http_serve::serve_connection(io, app, t).await
}

/// The listening unix socket; removes its file when dropped (and the
/// directories this socket created, `/run/docker/plugins` and `/run/docker`
/// on a host where the driver starts before Docker, if empty by then).
#[cfg(unix)]
pub struct UnixSocket {
    pub listener: tokio::net::UnixListener,
    path: PathBuf,
    /// Created by `bind`, innermost first.
    made_dirs: Vec<PathBuf>,
    /// Limits of every connection (default [`http_serve::Timeouts::DEFAULT`]).
    pub timeouts: http_serve::Timeouts,
}

#[cfg(unix)]
impl UnixSocket {
    /// Binds `<dir>/Contrail.sock` (mode 0660), replacing a stale socket of a
    /// killed predecessor.
    pub fn bind(dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let made_dirs: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_owned)
            .collect();
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{PLUGIN_NAME}.sock"));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        Ok(UnixSocket {
            listener,
            path,
            made_dirs,
            timeouts: http_serve::Timeouts::DEFAULT,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts until `shutdown` resolves.
    pub async fn serve(self, app: Router, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                c = self.listener.accept() => match c {
                    Ok((s, _)) => {
                        let app = app.clone();
                        let t = self.timeouts;
                        tokio::spawn(async move {
                            if let Err(e) = serve_connection(s, app, t).await {
                                tracing::debug!("plugin connection: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

#[cfg(unix)]
impl Drop for UnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        for d in &self.made_dirs {
            // Fails (and keeps it and its parents) if anything else lives
            // there.
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
}

#[cfg(all(test, unix))]
mod socket_tests {
    use super::*;

    #[tokio::test]
    async fn removes_the_socket_and_the_dirs_it_created_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("docker").join("plugins");
        let sock = UnixSocket::bind(&dir).expect("bind");
        assert!(sock.path().exists());
        drop(sock);
        assert!(!tmp.path().join("docker").exists(), "made dirs left behind");

        // Docker's directory with another plugin in it stays.
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("other.sock"), b"").expect("write");
        drop(UnixSocket::bind(&dir).expect("bind"));
        assert!(dir.join("other.sock").exists());
        assert!(!dir.join("Contrail.sock").exists());
    }
}
