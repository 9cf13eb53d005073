//! Keystone password authentication against a test Keystone (a real HTTP
//! server answering with recorded v3 / v2.0 token responses, see
//! `tests/keystone/`) and a config API that accepts only the current
//! token: fetch, cache, refresh before expiry and on 401, errors.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use vnc_client::{Auth, Client, Error, KeystoneConfig, ListQuery};

fn fixture(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keystone")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[derive(Default)]
struct Ks {
    /// The token Keystone hands out next, and the one the API accepts.
    next: String,
    valid: Option<String>,
    /// `expires_at` of the next token.
    expires_at: String,
    password: String,
    /// Token requests seen (bodies).
    requests: Vec<Value>,
    /// Tokens the config API saw.
    seen: Vec<Option<String>>,
    /// The config API refuses every token.
    refuse_all: bool,
}

type S = Arc<Mutex<Ks>>;

async fn v3_tokens(State(s): State<S>, Json(body): Json<Value>) -> Response {
    let mut k = s.lock().unwrap();
    k.requests.push(body.clone());
    let pw = body.pointer("/auth/identity/password/user/password");
    if pw != Some(&json!(k.password)) {
        return (StatusCode::UNAUTHORIZED, Json(fixture("unauthorized.json"))).into_response();
    }
    let mut t = fixture("v3-token-project-scoped.json");
    t["token"]["expires_at"] = json!(k.expires_at);
    let tok = k.next.clone();
    k.valid = Some(tok.clone());
    (StatusCode::CREATED, [("X-Subject-Token", tok)], Json(t)).into_response()
}

async fn v2_tokens(State(s): State<S>, Json(body): Json<Value>) -> Response {
    let mut k = s.lock().unwrap();
    k.requests.push(body.clone());
    if body.pointer("/auth/passwordCredentials/password") != Some(&json!(k.password)) {
        return (StatusCode::UNAUTHORIZED, Json(fixture("unauthorized.json"))).into_response();
    }
    let mut t = fixture("v2-token.json");
    t["access"]["token"]["id"] = json!(k.next);
    t["access"]["token"]["expires"] = json!(k.expires_at);
    k.valid = Some(k.next.clone());
    Json(t).into_response()
}

/// The config API: only the token Keystone last issued is good.
async fn vns(State(s): State<S>, h: HeaderMap) -> Response {
    let mut k = s.lock().unwrap();
    let tok = h
        .get("X-Auth-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    k.seen.push(tok.clone());
    if tok.is_some() && tok == k.valid && !k.refuse_all {
        Json(json!({"virtual-networks": []})).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "Authentication required").into_response()
    }
}

async fn rig() -> (String, S) {
    let s: S = Arc::new(Mutex::new(Ks {
        next: "tok1".into(),
        expires_at: "2999-11-07T02:58:43.578887Z".into(),
        password: "hunter2".into(),
        ..Ks::default()
    }));
    let app = Router::new()
        .route("/v3/auth/tokens", post(v3_tokens))
        .route("/v2.0/tokens", post(v2_tokens))
        .route("/virtual-networks", get(vns))
        .with_state(Arc::clone(&s));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), s)
}

fn cfg(url: &str, password: &str) -> KeystoneConfig {
    KeystoneConfig {
        auth_url: url.into(),
        username: "admin".into(),
        password: password.into(),
        project: "admin".into(),
        user_domain: "Default".into(),
        project_domain: "Default".into(),
    }
}

async fn list(c: &Client) -> Result<Vec<Value>, Error> {
    c.list("virtual-network", &ListQuery::default()).await
}

#[tokio::test]
async fn v3_token_fetched_cached_and_refreshed_on_401() {
    let (url, s) = rig().await;
    let c = Client::with_auth(&url, Auth::Keystone(cfg(&format!("{url}/v3"), "hunter2"))).unwrap();
    list(&c).await.unwrap();
    list(&c).await.unwrap();
    // One token for both calls; upstream's v3 password body, project-scoped.
    assert_eq!(c.keystone().unwrap().fetches(), 1);
    {
        let k = s.lock().unwrap();
        assert_eq!(k.seen, vec![Some("tok1".into()), Some("tok1".into())]);
        assert_eq!(
            k.requests[0],
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"name": "Default"}, "password": "hunter2"}}},
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        );
    }
    // Keystone revokes it (restart, token flush): the API answers 401, the
    // client fetches a new token and sends the request again, once.
    {
        let mut k = s.lock().unwrap();
        k.next = "tok2".into();
        k.valid = Some("revoked".into());
    }
    list(&c).await.unwrap();
    assert_eq!(c.keystone().unwrap().fetches(), 2);
    assert_eq!(
        s.lock().unwrap().seen[2..],
        [Some("tok1".into()), Some("tok2".into())]
    );
    // Clones share the token.
    let c2 = c.clone();
    list(&c2).await.unwrap();
    assert_eq!(c.keystone().unwrap().fetches(), 2);
}

#[tokio::test]
async fn a_token_about_to_expire_is_replaced_before_use() {
    let (url, s) = rig().await;
    // A base URL without a version means v3.
    let c = Client::with_auth(&url, Auth::Keystone(cfg(&url, "hunter2"))).unwrap();
    // Expires in 10 s: inside the one-minute margin, so never reused.
    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
    let secs = soon
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date of `days` (Hinnant's civil_from_days).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    s.lock().unwrap().expires_at = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    list(&c).await.unwrap();
    list(&c).await.unwrap();
    assert_eq!(c.keystone().unwrap().fetches(), 2);
    // A far expiry is cached.
    s.lock().unwrap().expires_at = "2999-01-01T00:00:00Z".into();
    list(&c).await.unwrap();
    list(&c).await.unwrap();
    assert_eq!(c.keystone().unwrap().fetches(), 3);
}

#[tokio::test]
async fn concurrent_calls_share_one_fetch() {
    let (url, _s) = rig().await;
    let c = Client::with_auth(&url, Auth::Keystone(cfg(&url, "hunter2"))).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { list(&c).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(c.keystone().unwrap().fetches(), 1);
}

#[tokio::test]
async fn v2_0_auth_url_uses_the_v2_api() {
    let (url, s) = rig().await;
    let c = Client::with_auth(
        &url,
        Auth::Keystone(cfg(&format!("{url}/v2.0/"), "hunter2")),
    )
    .unwrap();
    list(&c).await.unwrap();
    let k = s.lock().unwrap();
    assert_eq!(
        k.requests[0],
        json!({"auth": {"passwordCredentials": {"username": "admin", "password": "hunter2"},
                        "tenantName": "admin"}})
    );
    assert_eq!(k.seen, vec![Some("tok1".into())]);
}

#[tokio::test]
async fn refusals_are_clear() {
    let (url, s) = rig().await;
    let c = Client::with_auth(&url, Auth::Keystone(cfg(&url, "wrong"))).unwrap();
    let e = list(&c).await.unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
    assert!(
        m.contains("401") && m.contains("requires authentication"),
        "{m}"
    );
    assert!(
        m.contains("admin") && !m.contains("wrong"),
        "password in error: {m}"
    );
    // The config API was never called without a token.
    assert!(s.lock().unwrap().seen.is_empty());
    // A config API that keeps refusing even a fresh token: one new token
    // and one retry, then its 401 is the answer (no loop).
    let c = Client::with_auth(&url, Auth::Keystone(cfg(&url, "hunter2"))).unwrap();
    list(&c).await.unwrap();
    s.lock().unwrap().refuse_all = true;
    let e = list(&c).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED), "{e}");
    assert_eq!(c.keystone().unwrap().fetches(), 2);
    // Bad settings.
    assert!(Client::with_auth(&url, Auth::Keystone(cfg("https://k:5000/v3", "x"))).is_err());
    let mut no_user = cfg(&url, "x");
    no_user.username.clear();
    assert!(Client::with_auth(&url, Auth::Keystone(no_user)).is_err());
    // The password never shows in Debug output.
    assert!(!format!("{:?}", cfg(&url, "hunter2")).contains("hunter2"));
}
