//! What this binary is: its version, the git commit it was built from, and
//! the `/health` document that names both.

use bytes::Bytes;

/// Crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the binary was built from.
pub const GIT_SHA: &str = env!("BUILD_GIT_SHA");

/// The `/health` document (status, version, git sha, pid), built once.
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
