//! Signing keys in the store on one instance (embedded store): the KEK in
//! production, the upgrade from a data directory holding a key file, the
//! `keys` commands, the scheduled rotation, an emergency rotation against
//! the validation cache, the key metrics, and HS256's previous secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use auth_server::domain::client::{Client, SecretHash};
use auth_server::domain::scope::ScopeSet;
use auth_server::domain::token::{TokenPolicy, mint_access_token};
use auth_server::keys::sealed::Kek;
use auth_server::keys::{Algorithm, SigningKey, generate_pkcs8, pkcs8_pem};
use auth_server::store::KeyStore;
use auth_server::store::sqlite::SqliteStore;
use auth_server::tls;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::process::{self, ServerProcess, command, text};
use common::{HMAC_SECRET, TestServer, api};
use reqwest::StatusCode;

/// Environment variables, as name and value.
type Vars = Vec<(String, String)>;

/// Production settings on the embedded store with a certificate of its own.
fn production(dir: &Path) -> Vars {
    let (paths, _) = tls::ensure_dev_certificate(&dir.join("tls")).unwrap();
    vec![
        ("ENVIRONMENT".into(), "production".into()),
        (
            "AUTH_SERVER_TLS_CERT".into(),
            paths.cert.display().to_string(),
        ),
        (
            "AUTH_SERVER_TLS_KEY".into(),
            paths.key.display().to_string(),
        ),
    ]
}

/// Every way the private key could be spelled in output.
fn spellings_of_private_key(dir: &Path, kek: &str) -> Vec<String> {
    let store = SqliteStore::open(&dir.join("data/auth-server.db")).unwrap();
    let rt = tokio::runtime::Handle::current();
    let stored = tokio::task::block_in_place(|| rt.block_on(store.signing_keys())).unwrap();
    let key = &stored[0];
    let der = Kek::from_base64(kek)
        .unwrap()
        .open(&key.record.kid, key.record.alg, &key.sealed_key)
        .unwrap();
    // Ed25519 PKCS#8: the 32-byte seed follows `04 20` at offset 14.
    assert_eq!(&der[14..16], [0x04, 0x20]);
    let seed = &der[16..48];
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let mut spellings = vec![
        STANDARD.encode(&der),
        URL_SAFE_NO_PAD.encode(seed),
        STANDARD.encode(seed),
        hex,
    ];
    spellings.extend(pkcs8_pem(&der).lines().skip(1).take(1).map(str::to_owned));
    spellings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_a_missing_or_wrong_kek_with_78_and_never_shows_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let prod = production(dir.path());
    let env = |extra: &[(&str, &str)]| -> Vars {
        let mut all = prod.clone();
        all.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        all.push(("AUTH_SERVER_LOG_DIR".into(), "log".into()));
        all
    };
    let kek = Kek::generate_base64().unwrap();
    let other = Kek::generate_base64().unwrap();

    // A first start with the KEK makes the fleet's key.
    let first = env(&[("AUTH_SERVER_KEK", &kek)]);
    let first: Vec<(&str, &str)> = first
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut server = ServerProcess::spawn(dir.path(), &first);
    server.base_url();
    assert!(server.terminate().success());
    assert!(
        !dir.path().join("certs/kek").exists(),
        "production creates no KEK"
    );
    let mut forbidden = spellings_of_private_key(dir.path(), &kek);
    forbidden.extend([kek.clone(), other.clone()]);

    let wrong_file = dir.path().join("wrong.kek");
    std::fs::write(&wrong_file, &other).unwrap();
    let wrong_file = wrong_file.display().to_string();
    let cases: [(&str, Vars, &str); 4] = [
        ("missing", env(&[]), "AUTH_SERVER_KEK"),
        ("wrong", env(&[("AUTH_SERVER_KEK", &other)]), "sealed under"),
        (
            "wrong file",
            env(&[("AUTH_SERVER_TOKEN_KEK_FILE", &wrong_file)]),
            "sealed under",
        ),
        (
            "malformed",
            env(&[("AUTH_SERVER_KEK", &kek[..20])]),
            "base64 of 32",
        ),
    ];
    for (case, vars, expected) in cases {
        let out = command(dir.path()).envs(vars).output().unwrap();
        let stderr = text(&out.stderr);
        eprintln!("{case}: {}", stderr.trim());
        assert_eq!(out.status.code(), Some(78), "{case}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{case}: one clear line: {stderr}"
        );
        assert!(stderr.contains(expected), "{case}: {stderr}");
        let mut seen = format!("{stderr}{}", text(&out.stdout));
        if let Ok(log) = std::fs::read_to_string(dir.path().join("log/auth-server.log")) {
            seen.push_str(&log);
        }
        for secret in &forbidden {
            assert!(
                !seen.contains(secret.as_str()),
                "{case}: key material in the output"
            );
        }
        if case == "malformed" {
            assert!(!seen.contains(&kek[..20]), "the bad value is not echoed");
        }
    }

    // check-config masks the KEK.
    let out = command(dir.path())
        .arg("check-config")
        .envs(env(&[("AUTH_SERVER_KEK", &kek)]))
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(shown.contains("AUTH_SERVER_KEK: set (masked)"), "{shown}");
    assert!(!shown.contains(&kek));
}

/// A version-2 embedded store (before keys were stored) with client `svc`.
fn version_2_store(path: &Path, secret: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(concat!(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL, applied_at INTEGER NOT NULL);",
        include_str!("../src/store/migrations/sqlite/0001_clients.sql"),
        include_str!("../src/store/migrations/sqlite/0002_revocations_and_changes.sql"),
        "INSERT INTO schema_migrations VALUES (1, 0), (2, 0);"
    ))
    .unwrap();
    db.execute(
        "INSERT INTO clients (id, name, secret_hash, allowed_scopes, default_scopes, created_at, updated_at) \
         VALUES ('svc', 'Service', ?1, 'read', 'read', 0, 0)",
        [SecretHash::of(secret).0.to_vec()],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_a_directory_with_a_key_file_keeps_its_tokens_valid() {
    const ISSUER: &str = "https://auth.test/auth-server/v1";
    const SECRET: &str = "upgrade-client-secret-value";
    let dir = tempfile::tempdir().unwrap();
    version_2_store(&dir.path().join("data/auth-server.db"), SECRET);
    let pem = pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap());
    let key_file = dir.path().join("certs/signing-eddsa.pem");
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    std::fs::write(&key_file, &pem).unwrap();
    let file_key = SigningKey::from_pem(Algorithm::EdDSA, pem.as_bytes()).unwrap();

    // A token the previous binary issued with that file.
    let now = auth_server::clock::unix_now();
    let client = Client {
        allowed_scopes: ScopeSet::parse("read").unwrap(),
        ..Client::new("svc".into(), "Service".into(), SecretHash::of(SECRET), 0)
    };
    let policy = TokenPolicy {
        issuer: ISSUER.into(),
        default_lifetime_secs: 900,
        default_audience: "auth-server".into(),
        nbf_leeway_secs: 5,
        exp_leeway_secs: 0,
    };
    let before = mint_access_token(
        &client,
        &ScopeSet::parse("read").unwrap(),
        "auth-server".into(),
        &policy,
        &file_key,
        now - 60,
    )
    .unwrap()
    .access_token;

    let env = [("AUTH_SERVER_ISSUER", ISSUER)];
    let mut server = ServerProcess::spawn(dir.path(), &env);
    let line = server.wait_for("no longer read");
    assert!(line.contains("\"imported_as\":\"current\""), "{line}");
    let base = server.base_url();
    let http = server.http();
    assert_eq!(api::validate(&http, &base, &before).await, StatusCode::OK);
    assert_eq!(api::jwks_kids(&http, &base).await, [file_key.kid()]);
    let after = api::token(&http, &base, "svc", SECRET).await;
    assert_eq!(api::kid(&after), file_key.kid(), "the file's key signs on");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        pem,
        "kept for a rollback"
    );
    assert!(server.terminate().success());

    // Imported once: the next start only says the file is not read.
    let mut again = ServerProcess::spawn(dir.path(), &env);
    let line = again.wait_for("no longer read");
    assert!(line.contains("already stored"), "{line}");
    let base = again.base_url();
    let http = again.http();
    assert_eq!(api::validate(&http, &base, &before).await, StatusCode::OK);
    assert!(again.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_commands_list_rotate_import_and_retire() {
    let dir = tempfile::tempdir().unwrap();
    let keys = |args: &[&str]| {
        let mut all = vec!["keys"];
        all.extend_from_slice(args);
        process::run(dir.path(), &all, None)
    };
    let out = keys(&["rotate", "--now"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&keys(&["list"]).stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(
        lines[0],
        "kid\talg\tstate\tcreated\tpromotes_at\tretires_at"
    );
    assert_eq!(lines.len(), 2, "{listed}");
    let current: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(&current[1..3], ["EdDSA", "current"]);
    assert!(current[3].ends_with('Z'), "RFC 3339 times: {listed}");

    let out = keys(&["rotate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let next_kid = text(&out.stdout)
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_owned();
    let out = keys(&["rotate"]);
    assert_eq!(out.status.code(), Some(64), "one next key at a time");
    assert!(text(&out.stderr).contains(&next_kid));
    assert_eq!(keys(&["retire", current[0]]).status.code(), Some(64));
    assert_eq!(keys(&["retire", "no-such-kid"]).status.code(), Some(65));
    let out = keys(&["retire", &next_kid]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let pem_file = dir.path().join("imported.pem");
    let pem = pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap());
    std::fs::write(&pem_file, &pem).unwrap();
    let out = keys(&["import", pem_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let imported = SigningKey::from_pem(Algorithm::EdDSA, pem.as_bytes()).unwrap();
    let listed = text(&keys(&["list"]).stdout);
    let state_of = |kid: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(kid))
            .map(|l| l.split('\t').nth(2).unwrap().to_owned())
    };
    assert_eq!(state_of(imported.kid()).as_deref(), Some("next"));
    assert_eq!(state_of(&next_kid).as_deref(), Some("retired"));
    let es256 = dir.path().join("es256.pem");
    std::fs::write(
        &es256,
        pkcs8_pem(&generate_pkcs8(Algorithm::ES256).unwrap()),
    )
    .unwrap();
    assert_eq!(
        keys(&["import", es256.to_str().unwrap()]).status.code(),
        Some(64)
    );
    for out in [keys(&["list"]), keys(&["rotate"])] {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("PRIVATE KEY") && !all.contains(pem.lines().nth(1).unwrap()));
    }

    let hs = process::command(dir.path())
        .args(["keys", "list"])
        .env("AUTH_SERVER_TOKEN_ALGORITHM", "HS256")
        .env("JWT_SECRET", HMAC_SECRET)
        .output()
        .unwrap();
    assert_eq!(hs.status.code(), Some(64), "HS256 stores no keys");
}

#[tokio::test]
async fn an_emergency_rotation_refuses_cached_tokens_within_a_second() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.cache.change_poll_interval_ms = 100;
    })
    .await;
    let (id, secret) = server.standard_client().await;
    let old = api::token(&server.client(), &server.base_url, &id, &secret).await;
    let http = server.client();
    for _ in 0..2 {
        // The second answer comes from the validation cache.
        assert_eq!(
            api::validate(&http, &server.base_url, &old).await,
            StatusCode::OK
        );
    }
    let cache_hits = r#"auth_validation_cache_total{outcome="hit"}"#;
    assert!(common::metric(&http, &server, cache_hits).await >= 1.0);

    // What `keys rotate --now` does, from outside the server.
    let store = SqliteStore::open(&server.path("data/auth.db")).unwrap();
    let ring = auth_server::keyring::KeyRing::new(
        std::sync::Arc::new(store),
        Kek::from_base64(common::TEST_KEK).unwrap(),
        auth_server::keyring::kek::KekSource::Environment,
        auth_server::keyring::KeySettings::from_config(&auth_server::config::Config::default()),
    );
    let new = ring
        .rotate_now(
            &auth_server::audit::Actor::cli("test"),
            auth_server::clock::unix_now(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    while api::validate(&http, &server.base_url, &old).await != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(1), "still accepted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "cached token refused {} ms after the rotation",
        started.elapsed().as_millis()
    );
    let reason = r#"auth_validate_rejections_total{reason="unsupported_header"}"#;
    assert!(common::metric(&http, &server, reason).await >= 1.0);
    assert!(!api::introspect_active(&http, &server.base_url, (&id, &secret), &old).await);
    let fresh = api::token(&server.client(), &server.base_url, &id, &secret).await;
    assert_eq!(api::kid(&fresh), new.kid);
    assert_eq!(
        api::validate(&http, &server.base_url, &fresh).await,
        StatusCode::OK
    );
    assert_eq!(api::jwks_kids(&http, &server.base_url).await, [new.kid]);
}

#[tokio::test]
async fn key_metrics_show_age_states_and_the_next_promotion() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.cache.change_poll_interval_ms = 50;
        c.token.key_rotation_days = 30;
    })
    .await;
    let http = server.client();
    let sample = |name: &'static str| common::metric(&http, &server, name);
    assert_eq!(sample(r#"auth_signing_keys{state="current"}"#).await, 1.0);
    assert_eq!(sample(r#"auth_signing_keys{state="next"}"#).await, 0.0);
    assert!(sample("auth_signing_key_age_seconds").await < 5.0);
    assert_eq!(
        sample("auth_signing_key_rotation_period_seconds").await,
        30.0 * 86_400.0
    );
    let scheduled = sample("auth_signing_key_next_promotion_seconds").await;
    assert!(
        (30.0 * 86_400.0 - 5.0..=30.0 * 86_400.0).contains(&scheduled),
        "{scheduled}"
    );

    server
        .key_ring()
        .rotate(
            &auth_server::audit::Actor::cli("test"),
            auth_server::clock::unix_now(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    while sample(r#"auth_signing_keys{state="next"}"#).await != 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the feed never brought it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let until = sample("auth_signing_key_next_promotion_seconds").await;
    assert!((895.0..=900.0).contains(&until), "{until}");
}

#[tokio::test]
async fn hs256_verifies_the_previous_secret_but_signs_with_the_current_one() {
    const PREVIOUS: &str = "the-previous-hs256-secret-of-32-bytes-at-least";
    let server = TestServer::start_with(Algorithm::HS256, |c| {
        c.jwt_secret_previous = Some(auth_server::config::Secret(PREVIOUS.into()));
    })
    .await;
    let (id, secret) = server.standard_client().await;
    let current = api::token(&server.client(), &server.base_url, &id, &secret).await;
    let current_key = SigningKey::from_hmac_secret(HMAC_SECRET.as_bytes()).unwrap();
    let previous_key = SigningKey::from_hmac_secret(PREVIOUS.as_bytes()).unwrap();
    assert_eq!(api::kid(&current), current_key.kid());
    let claims: auth_server::domain::token::AccessTokenClaims =
        serde_json::from_value(common::unverified_claims(&current)).unwrap();
    let old = auth_server::domain::token::sign_claims(&claims, &previous_key).unwrap();
    let http = server.client();
    assert_eq!(
        api::validate(&http, &server.base_url, &old).await,
        StatusCode::OK
    );
    assert!(api::jwks_kids(&http, &server.base_url).await.is_empty());
}

#[tokio::test]
async fn a_key_older_than_the_rotation_period_is_replaced_on_schedule() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.cache.change_poll_interval_ms = 50;
        c.token.key_rotation_days = 1;
        c.http.jwks_max_age_secs = 1;
        c.token.key_publish_ahead_secs = 2;
    })
    .await;
    let (id, secret) = server.standard_client().await;
    let first = api::token(&server.client(), &server.base_url, &id, &secret).await;
    let old = api::kid(&first);
    // The current key has signed for a day already.
    let db = rusqlite::Connection::open(server.path("data/auth.db")).unwrap();
    db.execute(
        "UPDATE signing_keys SET activated_at = activated_at - 86400, created_at = created_at - 86400",
        [],
    )
    .unwrap();
    assert!(server.reload().await.keys_reloaded);

    // Published first (in the JWKS, not signing), then signing.
    let http = server.client();
    let started = Instant::now();
    let published = loop {
        let kids = api::jwks_kids(&http, &server.base_url).await;
        if kids.len() == 2 {
            break kids;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "never published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(published[0], old, "the old key still signs");
    let next = published[1].clone();
    let token = api::token_body(&server.client(), &server.base_url, &id, &secret, &[]).await;
    assert_eq!(api::kid(token["access_token"].as_str().unwrap()), old);
    loop {
        let token = api::token_body(&server.client(), &server.base_url, &id, &secret, &[]).await;
        if api::kid(token["access_token"].as_str().unwrap()) == next {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(6), "never promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api::jwks_kids(&http, &server.base_url).await, [next, old]);
    assert_eq!(
        api::validate(&http, &server.base_url, &first).await,
        StatusCode::OK
    );
}
