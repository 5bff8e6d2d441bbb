//! A revocation answered 200 is never lost when the process dies: tokens are
//! revoked concurrently through `/oauth/revoke` on the real binary (embedded
//! store), the process is SIGKILLed straight after the last 200, and a new
//! process on the same data directory refuses every revoked token (validate
//! 401, introspection inactive) while the others still validate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::api;
use common::process::{self, ServerProcess};
use reqwest::StatusCode;

const ID: &str = "svc";
const SECRET: &str = "revocation-restart-secret";

/// A fixed issuer: the default one names the port, which changes on restart.
fn issuer() -> String {
    format!("https://127.0.0.1{}", api::BASE_PATH)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_answered_200_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    process::create_client(dir.path(), ID, SECRET);
    let mut server = ServerProcess::spawn(dir.path(), &[("AUTH_SERVER_ISSUER", &issuer())]);
    let base = server.base_url();
    let http = server.http();
    let mut tokens = Vec::new();
    for _ in 0..48 {
        tokens.push(api::token(&http, &base, ID, SECRET).await);
    }
    let (revoked, kept) = tokens.split_at(40);

    let revokers: Vec<_> = revoked
        .chunks(10)
        .map(|chunk| {
            let (http, base, chunk) = (http.clone(), base.clone(), chunk.to_vec());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for token in &chunk {
                    let response = api::revoke(&http, &base, (ID, SECRET), token).await;
                    statuses.push(response.unwrap().status());
                }
                statuses
            })
        })
        .collect();
    for revoker in revokers {
        for status in revoker.await.unwrap() {
            assert_eq!(status, StatusCode::OK);
        }
    }
    server.kill();

    let mut server = ServerProcess::spawn(dir.path(), &[("AUTH_SERVER_ISSUER", &issuer())]);
    let base = server.base_url();
    let http = server.http();
    for token in revoked {
        assert_eq!(
            api::validate(&http, &base, token).await,
            StatusCode::UNAUTHORIZED,
            "a revoked token is refused after the restart"
        );
        assert!(!api::introspect_active(&http, &base, (ID, SECRET), token).await);
    }
    for token in kept {
        assert_eq!(api::validate(&http, &base, token).await, StatusCode::OK);
    }
    assert!(server.terminate().success());
}
