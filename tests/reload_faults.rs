//! Damaged signing keys in the store, under load, on the real binary: the
//! sealed key replaced by garbage, truncated, bound to another algorithm, or
//! marked as sealed under another key-encryption key. Each SIGHUP reload is
//! refused and logged at ERROR, every request keeps succeeding, and new
//! tokens are still signed with the key in memory, which stays in the JWKS.
//! A good rotation (`keys rotate`) then takes over on its own schedule,
//! while tokens signed by the replaced key still validate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::api;
use common::load::{self, Load};
use common::process::{self, ServerProcess};
use reqwest::StatusCode;

const ID: &str = "svc";
const SECRET: &str = "reload-faults-client-secret";

/// Sends SIGHUP and waits for the log line saying how the key reload went.
fn reload(server: &mut ServerProcess, outcome: &str) -> String {
    server.signal("HUP");
    tokio::task::block_in_place(|| server.wait_for(outcome))
}

/// Damages the stored current key `how`, or (`None`) puts back `original`.
fn tamper(db: &rusqlite::Connection, how: Option<&str>, original: &(Vec<u8>, String, String)) {
    let sql = match how {
        Some("garbage") => "UPDATE signing_keys SET sealed_key = randomblob(80)",
        Some("truncated") => "UPDATE signing_keys SET sealed_key = substr(sealed_key, 1, 20)",
        Some("another algorithm") => "UPDATE signing_keys SET algorithm = 'ES256'",
        Some("another KEK") => "UPDATE signing_keys SET kek_id = 'someone-elses-kek'",
        Some(other) => unreachable!("{other}"),
        None => {
            db.execute(
                "UPDATE signing_keys SET sealed_key = ?1, kek_id = ?2, algorithm = ?3",
                rusqlite::params![original.0, original.1, original.2],
            )
            .unwrap();
            return;
        }
    };
    db.execute(sql, []).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_stored_key_is_refused_under_load_and_a_good_rotation_taken() {
    let dir = tempfile::tempdir().unwrap();
    process::create_client(dir.path(), ID, SECRET);
    let mut env = process::UNLIMITED_CLIENTS.to_vec();
    env.extend([
        ("AUTH_SERVER_HTTP_JWKS_MAX_AGE_SECS", "1"),
        ("AUTH_SERVER_TOKEN_KEY_PUBLISH_AHEAD_SECS", "2"),
        ("AUTH_SERVER_CACHE_CHANGE_POLL_INTERVAL_MS", "200"),
    ]);
    let mut server = ServerProcess::spawn(dir.path(), &env);
    let base = server.base_url();
    let http = server.http();
    let first = api::token(&http, &base, ID, SECRET).await;
    let old_kid = api::kid(&first);
    assert_eq!(
        api::jwks_kids(&http, &base).await,
        std::slice::from_ref(&old_kid)
    );
    let (tokens, validations) =
        Load::tokens_and_validations(&http, &base, (ID, SECRET), &first, 5_000);
    let db = rusqlite::Connection::open(dir.path().join("data/auth-server.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let original: (Vec<u8>, String, String) = db
        .query_row(
            "SELECT sealed_key, kek_id, algorithm FROM signing_keys",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();

    for how in ["garbage", "truncated", "another algorithm", "another KEK"] {
        tamper(&db, Some(how), &original);
        let line = reload(&mut server, "signing keys reload failed");
        let log: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(log["level"], "ERROR", "{line}");
        eprintln!("stored key {how}: {}", log["error"]);
        let token = api::token(&http, &base, ID, SECRET).await;
        assert_eq!(api::kid(&token), old_kid, "{how}: the old key still signs");
        assert_eq!(
            api::jwks_kids(&http, &base).await,
            std::slice::from_ref(&old_kid),
            "{how}"
        );
        assert_eq!(api::validate(&http, &base, &token).await, StatusCode::OK);
        tokens.wait_for_more(10).await;
        tamper(&db, None, &original);
    }
    reload(&mut server, "signing keys reloaded");

    // A good rotation: published at once, signing after the publish-ahead.
    let out = process::run_env(dir.path(), &["keys", "rotate"], &env);
    assert!(out.status.success(), "{}", process::text(&out.stderr));
    let started = Instant::now();
    let new_kid = loop {
        let token = api::token(&http, &base, ID, SECRET).await;
        let kid = api::kid(&token);
        if kid != old_kid {
            break kid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never promoted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Times are whole seconds, so the 2 s publish-ahead is over 1 s here.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "published ahead before signing"
    );
    assert_eq!(api::jwks_kids(&http, &base).await, [new_kid, old_kid]);
    assert_eq!(
        api::validate(&http, &base, &first).await,
        StatusCode::OK,
        "tokens signed by the replaced key still validate"
    );
    validations.wait_for_more(10).await;

    let (tokens, validations) = (tokens.finish().await, validations.finish().await);
    eprintln!("load through the reloads: tokens {tokens:?}, validations {validations:?}");
    assert!(load::all(&tokens, 200), "{tokens:?}");
    assert!(load::all(&validations, 200), "{validations:?}");
    assert!(server.terminate().success());
}
