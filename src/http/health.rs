//! Health endpoints: `/health` (status, version, git sha), `/health/live`
//! (the process answers) and `/health/ready` (it can serve traffic).

use std::sync::atomic::{AtomicBool, Ordering};

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
    serde_json::json!({
        "status": "ok",
        "version": VERSION,
        "git_sha": GIT_SHA,
        "pid": std::process::id(),
    })
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

/// What readiness depends on, updated by the server and the change feed.
#[derive(Debug)]
pub struct ServingStatus {
    draining: AtomicBool,
    store_reachable: AtomicBool,
}

impl Default for ServingStatus {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            store_reachable: AtomicBool::new(true),
        }
    }
}

impl ServingStatus {
    /// Marks the instance as draining (shutdown started).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Records whether the last store round trip succeeded.
    pub fn set_store_reachable(&self, reachable: bool) {
        self.store_reachable.store(reachable, Ordering::Relaxed);
    }

    /// True while shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// True when the last store round trip succeeded.
    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(Ordering::Relaxed)
    }
}

/// `GET /health/ready`: 503 while draining, or while the store is
/// unreachable and no client is cached (nothing could be served).
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
    let mut response = json(code, Bytes::from_static(body), CachePolicy::NoStore);
    if code == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}
