//! Health endpoints: `/health` (status, version, git sha), `/health/live`
//! (the process answers) and `/health/ready` (it can serve traffic).

use bytes::Bytes;
use http::{Response, StatusCode};

use super::response::{Body, CachePolicy, json};
use crate::state::AppState;

/// `GET /health` and `GET {base}/oauth/`.
pub fn health(state: &AppState) -> Response<Body> {
    json(
        StatusCode::OK,
        state.health_json.clone(),
        CachePolicy::NoStore,
    )
}

/// `GET /health/live`: the process is up and answering.
pub fn live() -> Response<Body> {
    json(
        StatusCode::OK,
        Bytes::from_static(br#"{"status":"ok"}"#),
        CachePolicy::NoStore,
    )
}

/// `GET /health/ready`: 503 while draining, or while the store is
/// unreachable and no client is cached (nothing could be served). With
/// trusted issuers, the detail lists each one's keys and last fetch error;
/// an issuer whose keys cannot be fetched does not make the server unready
/// (it keeps the keys it has).
pub fn ready(state: &AppState) -> Response<Body> {
    let status = &state.status;
    let (code, body): (StatusCode, &'static [u8]) = if status.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, br#"{"status":"draining"}"#)
    } else if !status.store_reachable() && state.clients.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"store unreachable"}"#,
        )
    } else if !status.store_reachable() {
        (
            StatusCode::OK,
            br#"{"status":"degraded: serving from cache"}"#,
        )
    } else {
        (StatusCode::OK, br#"{"status":"ready"}"#)
    };
    let body = if state.federation.is_enabled() {
        with_federation(body, state)
    } else {
        Bytes::from_static(body)
    };
    let mut response = json(code, body, CachePolicy::NoStore);
    if code == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}

/// Adds each trusted issuer's key state to a readiness document.
fn with_federation(body: &[u8], state: &AppState) -> Bytes {
    let mut doc: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let issuers: serde_json::Map<String, serde_json::Value> = state
        .federation
        .statuses()
        .into_iter()
        .map(|s| {
            let detail = serde_json::json!({
                "keys": s.key_count(),
                "fetched_secs_ago": s.keys.age.map(|a| a.as_secs()),
                "error": s.error(),
            });
            (s.name, detail)
        })
        .collect();
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("federation".into(), issuers.into());
    }
    Bytes::from(doc.to_string())
}
