//! Disaster recovery on the embedded store, with the real binary: tokens
//! issued and some revoked, a backup taken while the server keeps writing,
//! the data destroyed, the backup restored, the server started again.
//! Clients authenticate, unrevoked tokens validate, revoked ones stay
//! refused; without the key-encryption key the restored keys cannot sign.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use common::process::{self, ServerProcess};
use common::{TEST_KEK, api};
use reqwest::StatusCode;

const ID: &str = "svc";
const SECRET: &str = "svc-secret-for-the-recovery-test";
const KEK: (&str, &str) = ("AUTH_SERVER_KEK", TEST_KEK);
/// Fixed, so tokens from before the restore name the restarted server
/// (which binds another port) as their issuer.
const ISSUER: (&str, &str) = ("AUTH_SERVER_ISSUER", "https://auth.test/auth-server/v1");

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    process::run_env(dir, args, &[KEK, ISSUER])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_serving_restores_clients_keys_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    process::create_client(path, ID, SECRET);
    let mut server = ServerProcess::spawn(path, &[KEK, ISSUER]);
    let base = server.base_url();
    let http = server.http();
    let kept = api::token(&http, &base, ID, SECRET).await;
    let revoked = api::token(&http, &base, ID, SECRET).await;
    let response = api::revoke(&http, &base, (ID, SECRET), &revoked)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api::validate(&http, &base, &revoked).await, 401);

    // Writes keep coming while the backup runs: tokens issued and revoked.
    let writing = Arc::new(AtomicBool::new(true));
    let writes = Arc::new(AtomicU32::new(0));
    let writer = {
        let (http, base) = (http.clone(), base.clone());
        let (writing, writes) = (Arc::clone(&writing), Arc::clone(&writes));
        tokio::spawn(async move {
            for _ in 0..2_000 {
                if !writing.load(Ordering::Relaxed) {
                    break;
                }
                let token = api::token(&http, &base, ID, SECRET).await;
                let answer = api::revoke(&http, &base, (ID, SECRET), &token)
                    .await
                    .unwrap();
                assert_eq!(answer.status(), StatusCode::OK);
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while writes.load(Ordering::Relaxed) < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let backup = path.join("backup/auth-server.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let out = run(path, &["backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", process::text(&out.stderr));
    assert!(process::text(&out.stdout).contains("backed up 1 clients"));
    let during = writes.load(Ordering::Relaxed);
    writing.store(false, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(during >= 5, "the server was writing during the backup");

    // A second backup never overwrites the first.
    let again = run(path, &["backup", backup.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(64));
    // Restoring under a running server is refused.
    let busy = run(path, &["restore", backup.to_str().unwrap()]);
    assert_eq!(
        busy.status.code(),
        Some(75),
        "{}",
        process::text(&busy.stderr)
    );

    // Disaster: the server stops and the data is gone.
    assert!(server.terminate().success());
    std::fs::remove_dir_all(path.join("data")).unwrap();

    let out = run(path, &["restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", process::text(&out.stderr));
    assert!(process::text(&out.stdout).contains("restored 1 clients"));

    // Without the key-encryption key the restored keys cannot be opened.
    let other_kek = (
        "AUTH_SERVER_KEK",
        "b3RoZXIta2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=",
    );
    let refused = process::run_env(path, &["serve"], &[other_kek, ISSUER]);
    assert_eq!(
        refused.status.code(),
        Some(78),
        "{}",
        process::text(&refused.stderr)
    );

    let mut server = ServerProcess::spawn(path, &[KEK, ISSUER]);
    let base = server.base_url();
    let http = server.http();
    assert_eq!(api::validate(&http, &base, &kept).await, 200, "unrevoked");
    assert_eq!(api::validate(&http, &base, &revoked).await, 401, "revoked");
    let fresh = api::token(&http, &base, ID, SECRET).await;
    assert_eq!(api::validate(&http, &base, &fresh).await, 200);
    assert_eq!(api::kid(&fresh), api::kid(&kept), "the same signing key");

    // A file that is not a backup is refused, and the store is untouched.
    assert!(server.terminate().success());
    let junk = path.join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let bad = run(path, &["restore", junk.to_str().unwrap()]);
    assert_eq!(
        bad.status.code(),
        Some(64),
        "{}",
        process::text(&bad.stderr)
    );
    let list = run(path, &["client", "list"]);
    assert!(process::text(&list.stdout).starts_with(ID));
}
