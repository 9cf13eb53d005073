//! Wire-format tests against a recording axum server (the real config API is
//! exercised by the docker-driver tests).

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::*;

/// method, uri, X-Auth-Token, body
type Record = (String, String, Option<String>, Value);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Record>>>);

async fn handler(State(seen): State<Seen>, req: Request) -> axum::response::Response {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let token = req
        .headers()
        .get("X-Auth-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let body: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    seen.0
        .lock()
        .unwrap()
        .push((method.clone(), uri.clone(), token, body.clone()));
    let id = "11111111-2222-3333-4444-555555555555";
    match (method.as_str(), uri.as_str()) {
        ("POST", "/virtual-networks") => axum::Json(json!({"virtual-network": {
            "uuid": id, "fq_name": body["virtual-network"]["fq_name"].clone()}}))
        .into_response(),
        ("GET", u) if u.starts_with("/virtual-network/") => {
            if u.ends_with(id) {
                axum::Json(json!({"virtual-network": {"uuid": id, "fq_name": ["d", "p", "vn"]}}))
                    .into_response()
            } else {
                (StatusCode::NOT_FOUND, "virtual-network not found").into_response()
            }
        }
        ("GET", u) if u.starts_with("/virtual-networks") => axum::Json(json!({
            "virtual-networks": [{"virtual-network": {"uuid": id}}]}))
        .into_response(),
        ("PUT", _) => axum::Json(json!({})).into_response(),
        ("DELETE", u) if u.ends_with(id) => StatusCode::OK.into_response(),
        ("DELETE", _) => (StatusCode::NOT_FOUND, "nope").into_response(),
        ("POST", "/fqname-to-id") => {
            if body["fq_name"] == json!(["d", "p", "vn"]) {
                axum::Json(json!({"uuid": id})).into_response()
            } else {
                (StatusCode::NOT_FOUND, "Name [...] not found").into_response()
            }
        }
        ("POST", "/ref-update") => axum::Json(json!({"uuid": id})).into_response(),
        _ => (StatusCode::CONFLICT, "conflict: in use").into_response(),
    }
}

async fn server() -> (String, Seen, tokio::task::JoinHandle<()>) {
    let seen = Seen::default();
    let app = Router::new().fallback(handler).with_state(seen.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        axum::serve(l, app).await.unwrap();
    });
    (format!("http://{addr}/"), seen, h)
}

#[tokio::test]
async fn crud_wire_format() {
    let (url, seen, h) = server().await;
    let c = Client::new(&url, Some("tok".into())).unwrap();
    let id: Uuid = "11111111-2222-3333-4444-555555555555".parse().unwrap();
    let missing = Uuid::nil();

    let r = c
        .create("virtual-network", json!({"fq_name": ["d", "p", "vn"]}))
        .await
        .unwrap();
    assert_eq!(uuid_of(&r), Some(id));
    assert_eq!(fq_name_of(&r), ["d", "p", "vn"]);
    assert_eq!(
        c.read("virtual-network", &id).await.unwrap()["uuid"],
        json!(id.to_string())
    );
    assert!(c
        .read_opt("virtual-network", &missing)
        .await
        .unwrap()
        .is_none());
    let e = c.read("virtual-network", &missing).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.server_message(), "virtual-network not found");
    c.update("virtual-network", &id, json!({"display_name": "x"}))
        .await
        .unwrap();
    c.delete("virtual-network", &id).await.unwrap();
    c.delete("virtual-network", &missing).await.unwrap(); // idempotent
    let q = ListQuery {
        parent: Some(id),
        back_ref: None,
        detail: true,
        filters: vec![("instance_ip_address".into(), json!("10.0.0.3"))],
    };
    let l = c.list("virtual-network", &q).await.unwrap();
    assert_eq!(l, vec![json!({"uuid": id.to_string()})]);
    let fq = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        c.fqname_to_id("virtual-network", &fq(&["d", "p", "vn"]))
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        c.fqname_to_id("virtual-network", &fq(&["d", "p", "x"]))
            .await
            .unwrap(),
        None
    );
    c.ref_update(
        "virtual-machine-interface",
        &id,
        "virtual-network",
        &id,
        RefOp::Add,
        None,
    )
    .await
    .unwrap();
    let e = c.call(Method::PATCH, "/x", None).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::CONFLICT));
    assert!(e.to_string().contains("conflict: in use"), "{e}");

    let seen = seen.0.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.2.as_deref() == Some("tok")));
    assert_eq!(seen[0].0, "POST");
    assert_eq!(
        seen[0].3,
        json!({"virtual-network": {"fq_name": ["d", "p", "vn"]}})
    );
    assert_eq!(seen[4].3, json!({"virtual-network": {"display_name": "x"}}));
    assert_eq!(
        seen[7].1,
        format!(
            "/virtual-networks?detail=True&parent_id={id}&filters=instance_ip_address==%2210.0.0.3%22"
        )
    );
    assert_eq!(
        seen[10].3,
        json!({"type": "virtual-machine-interface", "uuid": id.to_string(),
               "ref-type": "virtual-network", "ref-uuid": id.to_string(),
               "operation": "ADD", "attr": null})
    );
    h.abort();
}

#[tokio::test]
async fn transport_errors_are_typed() {
    // A port nobody listens on (bound then dropped).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let c = Client::new(&format!("http://{addr}"), None).unwrap();
    let e = c.read("project", &Uuid::nil()).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(Client::new("https://x", None).is_err());
    assert!(Client::new("not a url", None).is_err());
}
