//! Health endpoints: `/health` (status, version, git sha), `/health/live`
//! (the process answers) and `/health/ready` (it can serve traffic).

use bytes::Bytes;
use http::{Response, StatusCode};

use super::AppState;
use super::response::{Body, CachePolicy, json};

/// Crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the binary was built from.
pub const GIT_SHA: &str = env!("BUILD_GIT_SHA");

/// The `/health` document, built once.
pub fn health_document() -> Bytes {
    serde_json::json!({"status": "ok", "version": VERSION, "git_sha": GIT_SHA})
        .to_string()
        .into()
}

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

/// `GET /health/ready`: ready to serve.
pub fn ready() -> Response<Body> {
    json(
        StatusCode::OK,
        Bytes::from_static(br#"{"status":"ready"}"#),
        CachePolicy::NoStore,
    )
}
