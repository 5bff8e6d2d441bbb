//! SIGHUP with a broken signing key, under load, on the real binary. The key
//! file replaced by garbage, an empty file, a key for another algorithm or a
//! directory: each reload is refused and logged at ERROR, every request keeps
//! succeeding, and new tokens are still signed with the old key, which stays
//! in the JWKS. A good new key then takes over at the next SIGHUP, while
//! tokens signed by the old one still validate and it stays published.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use auth_server::keys::{Algorithm, generate_pkcs8, pkcs8_pem};
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

fn break_key(key_file: &Path, how: &str) {
    if key_file.is_dir() {
        std::fs::remove_dir(key_file).unwrap();
    }
    match how {
        "garbage" => std::fs::write(key_file, "not a key at all").unwrap(),
        "empty" => std::fs::write(key_file, "").unwrap(),
        "another algorithm" => {
            std::fs::write(
                key_file,
                pkcs8_pem(&generate_pkcs8(Algorithm::ES256).unwrap()),
            )
            .unwrap();
        }
        "a directory" => {
            std::fs::remove_file(key_file).unwrap();
            std::fs::create_dir(key_file).unwrap();
        }
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_key_is_refused_under_load_and_a_good_one_taken() {
    let dir = tempfile::tempdir().unwrap();
    process::create_client(dir.path(), ID, SECRET);
    let mut server = ServerProcess::spawn(dir.path(), &process::UNLIMITED_CLIENTS);
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
    let key_file = dir.path().join("certs/signing-eddsa.pem");

    for how in ["garbage", "empty", "another algorithm", "a directory"] {
        break_key(&key_file, how);
        let line = reload(&mut server, "signing key reload failed");
        let log: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(log["level"], "ERROR", "{line}");
        eprintln!("key file {how}: {}", log["error"]);
        let token = api::token(&http, &base, ID, SECRET).await;
        assert_eq!(api::kid(&token), old_kid, "{how}: the old key still signs");
        assert_eq!(
            api::jwks_kids(&http, &base).await,
            std::slice::from_ref(&old_kid),
            "{how}"
        );
        assert_eq!(api::validate(&http, &base, &token).await, StatusCode::OK);
        tokens.wait_for_more(10).await;
    }

    std::fs::remove_dir(&key_file).unwrap();
    std::fs::write(
        &key_file,
        pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap()),
    )
    .unwrap();
    reload(&mut server, "signing key reloaded");
    let rotated = api::token(&http, &base, ID, SECRET).await;
    let new_kid = api::kid(&rotated);
    assert_ne!(new_kid, old_kid, "the new key signs new tokens");
    assert_eq!(api::jwks_kids(&http, &base).await, [new_kid, old_kid]);
    assert_eq!(api::validate(&http, &base, &rotated).await, StatusCode::OK);
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
