//! Async client for the VNC config REST API (upstream `vnc_api` semantics).
//!
//! Objects travel as `serde_json::Value`s: the API is schema-driven and the
//! callers (the Docker driver, tests) only touch a handful of fields, so typed
//! structs per object type would add code without adding checks. The HTTP
//! layer is hyper-util's pooled client; authentication ([`Auth`]) is none
//! (`noauth`, the single-host node), a fixed token, or Keystone password
//! authentication ([`keystone`]: token fetched, cached, fetched again on
//! 401), the token sent as `X-Auth-Token`. Plain HTTP only (no TLS
//! connector).
//!
//! URL conventions (upstream): `POST /<type>s` with `{"<type>": {...}}`,
//! `GET|PUT|DELETE /<type>/<uuid>`, `GET /<type>s?detail=True&parent_id=..`,
//! `POST /fqname-to-id`, `POST /ref-update`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use uuid::Uuid;

pub mod keystone;
pub use keystone::{Keystone, KeystoneConfig};

/// Errors of a VNC (or any JSON-over-HTTP) call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL or a built path is not a valid URI.
    #[error("bad url {0:?}")]
    BadUrl(String),
    /// Connection or protocol failure (server down, reset, ...).
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// Reading the response body failed.
    #[error("reading the reply of {url} failed: {source}")]
    Body {
        url: String,
        #[source]
        source: hyper::Error,
    },
    /// No answer within the client's timeout.
    #[error("request to {0} timed out")]
    Timeout(String),
    /// The server answered with a non-2xx status; `message` is its body.
    #[error("{method} {url}: {status} {message}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        message: String,
    },
    /// The server's 2xx body is not the JSON we expect.
    #[error("unexpected reply from {url}: {why}")]
    Decode { url: String, why: String },
    /// Keystone refused (or could not be asked for) a token.
    #[error("Keystone authentication at {url} failed{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Auth {
        url: String,
        status: Option<StatusCode>,
        message: String,
    },
}

impl Error {
    /// The HTTP status if the server answered with an error status.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 from the server.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// The server's own message for a status error (else the whole error text).
    pub fn server_message(&self) -> String {
        match self {
            Error::Status { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// `ref-update` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefOp {
    Add,
    Delete,
}

/// Filters of a list call.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    /// Only children of this parent (`parent_id=`).
    pub parent: Option<Uuid>,
    /// Only objects referring to this one (`back_ref_id=`).
    pub back_ref: Option<Uuid>,
    /// Full objects (`detail=True`), else `{uuid, fq_name, href}` stubs.
    pub detail: bool,
    /// Upstream's `filters=<field>==<json value>,...`: only objects whose
    /// property equals the value (e.g. `instance_ip_address`).
    pub filters: Vec<(String, Value)>,
}

/// How the client authenticates to the config API.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// `noauth` (the single-host node's embedded config API).
    #[default]
    None,
    /// A fixed token (upstream's `OS_TOKEN` / `--auth-token`).
    Token(String),
    /// Keystone password authentication.
    Keystone(KeystoneConfig),
}

#[derive(Clone, Debug)]
enum Session {
    None,
    Token(String),
    Keystone(std::sync::Arc<Keystone>),
}

/// A JSON-over-HTTP client for the VNC API (cheap to clone: the pool and
/// the Keystone token are shared).
#[derive(Clone)]
pub struct Client {
    base: String,
    auth: Session,
    timeout: Duration,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field(
                "auth",
                &match &self.auth {
                    Session::None => "none",
                    Session::Token(_) => "token",
                    Session::Keystone(_) => "keystone",
                },
            )
            .finish()
    }
}

/// Pluralised collection path of a type (`virtual-network` -> `virtual-networks`).
fn collection(ty: &str) -> String {
    format!("{ty}s")
}

/// Unwraps `{"<type>": inner}` if the value is such an envelope.
fn unwrap_envelope(ty: &str, v: Value) -> Value {
    match v {
        Value::Object(mut m) if m.len() == 1 && m.contains_key(ty) => {
            m.remove(ty).unwrap_or(Value::Null)
        }
        other => other,
    }
}

impl Client {
    /// `base_url` like `http://127.0.0.1:8082`; `token` is sent as `X-Auth-Token`.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, Error> {
        Self::with_auth(base_url, token.map_or(Auth::None, Auth::Token))
    }

    /// A client authenticating as `auth` says.
    pub fn with_auth(base_url: &str, auth: Auth) -> Result<Self, Error> {
        let base = base_url.trim_end_matches('/').to_string();
        let uri: Uri = base.parse().map_err(|_| Error::BadUrl(base.clone()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            // TLS would need a connector this crate does not pull in.
            return Err(Error::BadUrl(base));
        }
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        let auth = match auth {
            Auth::None => Session::None,
            Auth::Token(t) => Session::Token(t),
            Auth::Keystone(k) => {
                Session::Keystone(std::sync::Arc::new(Keystone::new(k, http.clone())?))
            }
        };
        Ok(Client {
            base,
            auth,
            timeout: Duration::from_secs(30),
            http,
        })
    }

    /// The Keystone session, when the client uses one.
    pub fn keystone(&self) -> Option<&Keystone> {
        match &self.auth {
            Session::Keystone(k) => Some(k),
            _ => None,
        }
    }

    /// Per-request timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// One request; returns status and body whatever the status. With
    /// Keystone, a 401 drops the token and the request is sent once more
    /// with a new one.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let token = match &self.auth {
            Session::None => None,
            Session::Token(t) => Some(t.clone()),
            Session::Keystone(k) => Some(k.token(self.timeout).await?),
        };
        let r = self
            .send(method.clone(), path, body, token.as_deref())
            .await?;
        match (&self.auth, token) {
            (Session::Keystone(k), Some(stale)) if r.0 == StatusCode::UNAUTHORIZED => {
                k.invalidate(&stale).await;
                let fresh = k.token(self.timeout).await?;
                self.send(method, path, body, Some(&fresh)).await
            }
            _ => Ok(r),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let url = format!("{}{}", self.base, path);
        let uri: Uri = url.parse().map_err(|_| Error::BadUrl(url.clone()))?;
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let payload = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|_| Error::BadUrl(url.clone()))?;
        let fut = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|source| Error::Transport {
                    url: url.clone(),
                    source,
                })?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|source| Error::Body {
                    url: url.clone(),
                    source,
                })?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| Error::Timeout(url.clone()))?
    }

    /// A request that must succeed (2xx) with a JSON (or empty) body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let (status, bytes) = self.raw(method.clone(), path, body).await?;
        let url = format!("{}{}", self.base, path);
        if !status.is_success() {
            return Err(Error::Status {
                method,
                url,
                status,
                message: String::from_utf8_lossy(&bytes).trim().to_string(),
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url,
            why: e.to_string(),
        })
    }

    /// `POST /<type>s`; `obj` is the inner object. Returns the server's inner
    /// reply (at least `uuid` and `fq_name`).
    pub async fn create(&self, ty: &str, obj: Value) -> Result<Value, Error> {
        let body = json!({ ty: obj });
        let v = self
            .call(Method::POST, &format!("/{}", collection(ty)), Some(&body))
            .await?;
        Ok(unwrap_envelope(ty, v))
    }

    /// `GET /<type>/<uuid>` -> the inner object.
    pub async fn read(&self, ty: &str, id: &Uuid) -> Result<Value, Error> {
        let v = self.call(Method::GET, &format!("/{ty}/{id}"), None).await?;
        Ok(unwrap_envelope(ty, v))
    }

    /// `GET /<type>/<uuid>`, `None` if absent.
    pub async fn read_opt(&self, ty: &str, id: &Uuid) -> Result<Option<Value>, Error> {
        match self.read(ty, id).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /<type>/<uuid>` with the (partial) inner object.
    pub async fn update(&self, ty: &str, id: &Uuid, obj: Value) -> Result<(), Error> {
        let body = json!({ ty: obj });
        self.call(Method::PUT, &format!("/{ty}/{id}"), Some(&body))
            .await
            .map(|_| ())
    }

    /// `DELETE /<type>/<uuid>`; an absent object is success (idempotent).
    pub async fn delete(&self, ty: &str, id: &Uuid) -> Result<(), Error> {
        match self
            .call(Method::DELETE, &format!("/{ty}/{id}"), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /<type>s?...` -> the inner objects (or stubs without `detail`).
    pub async fn list(&self, ty: &str, q: &ListQuery) -> Result<Vec<Value>, Error> {
        let mut params = Vec::new();
        if q.detail {
            params.push("detail=True".to_string());
        }
        if let Some(p) = q.parent {
            params.push(format!("parent_id={p}"));
        }
        if let Some(b) = q.back_ref {
            params.push(format!("back_ref_id={b}"));
        }
        if !q.filters.is_empty() {
            let f: Vec<String> = q
                .filters
                .iter()
                .map(|(k, v)| format!("{}=={}", query_escape(k), query_escape(&v.to_string())))
                .collect();
            params.push(format!("filters={}", f.join(",")));
        }
        let coll = collection(ty);
        let mut path = format!("/{coll}");
        if !params.is_empty() {
            path.push('?');
            path.push_str(&params.join("&"));
        }
        let v = self.call(Method::GET, &path, None).await?;
        let items = match v {
            Value::Object(mut m) => m.remove(&coll),
            _ => None,
        };
        match items {
            Some(Value::Array(a)) => Ok(a.into_iter().map(|x| unwrap_envelope(ty, x)).collect()),
            _ => Err(Error::Decode {
                url: format!("{}{}", self.base, path),
                why: format!("no \"{coll}\" list"),
            }),
        }
    }

    /// `POST /fqname-to-id`; `None` when no such object.
    pub async fn fqname_to_id(&self, ty: &str, fq: &[String]) -> Result<Option<Uuid>, Error> {
        let body = json!({ "type": ty, "fq_name": fq });
        match self.call(Method::POST, "/fqname-to-id", Some(&body)).await {
            Ok(v) => {
                let id = v
                    .get("uuid")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok());
                id.map(Some).ok_or_else(|| Error::Decode {
                    url: format!("{}/fqname-to-id", self.base),
                    why: "no uuid in reply".into(),
                })
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /ref-update`: add or delete the ref `ty/id -> ref_type/ref_id`.
    pub async fn ref_update(
        &self,
        ty: &str,
        id: &Uuid,
        ref_type: &str,
        ref_id: &Uuid,
        op: RefOp,
        attr: Option<Value>,
    ) -> Result<(), Error> {
        let body = json!({
            "type": ty,
            "uuid": id.to_string(),
            "ref-type": ref_type,
            "ref-uuid": ref_id.to_string(),
            "operation": match op { RefOp::Add => "ADD", RefOp::Delete => "DELETE" },
            "attr": attr,
        });
        self.call(Method::POST, "/ref-update", Some(&body))
            .await
            .map(|_| ())
    }
}

/// Percent-encodes what a query value may not carry as is (RFC 3986
/// unreserved characters stay).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The uuid of a VNC object (inner JSON), if well-formed.
pub fn uuid_of(obj: &Value) -> Option<Uuid> {
    obj.get("uuid")?.as_str()?.parse().ok()
}

/// The `fq_name` of a VNC object as strings.
pub fn fq_name_of(obj: &Value) -> Vec<String> {
    obj.get("fq_name")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
