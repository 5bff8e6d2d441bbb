//! Reaching PostgreSQL for real: TLS with certificate verification, the
//! password from `DB_PASSWORD` (never shown), and the server issuing tokens
//! for clients kept in PostgreSQL. Uses the roles `scripts/pg.sh` creates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::app;
use auth_server::config::Secret;
use auth_server::keys::Algorithm;
use auth_server::store::postgres::PostgresStore;
use auth_server::store::{ClientStore, StoreError};
use common::{api, contract, pg};

const TEST_PASSWORD: &str = "pg-test-password";

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn sslmode_require_verifies_the_server_certificate() {
    let url = pg::as_user(&pg::fresh_database().await, "tls_only");

    // The role may not log in without TLS...
    let plain = PostgresStore::open(&pg::settings(&url), None).unwrap();
    let err = plain.migrate().await.unwrap_err();
    assert!(err.to_string().contains("no encryption"), "{err}");

    // ...and TLS fails while the server's CA is not trusted.
    let tls_url = format!("{url}?sslmode=require");
    let untrusted = PostgresStore::open(&pg::settings(&tls_url), None).unwrap();
    let err = untrusted.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    eprintln!("untrusted CA: {err}");

    // Trusting the CA (through the platform root store's variable), it works.
    let dir = tempfile::tempdir().unwrap();
    let out = common::process::command(dir.path())
        .arg("migrate")
        .env_remove("SSL_CERT_DIR")
        .env("SSL_CERT_FILE", pg::pg_sh("ca"))
        .env("DATABASE_URL", &tls_url)
        .env("AUTH_SERVER_LOG_DIR", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = pg::connect(&url.replacen("tls_only", "postgres", 1)).await;
    let versions = client
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(versions.len(), 8, "every migration applied");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn the_password_is_used_and_never_shown() {
    let url = pg::as_user(&pg::fresh_database().await, "pw_user");
    let good = Secret(TEST_PASSWORD.into());
    let store = PostgresStore::open(&pg::settings(&url), Some(&good)).unwrap();
    store.migrate().await.unwrap();
    contract::clients_round_trip(&store).await;

    let wrong = Secret("wrong-password-1234".into());
    let store = PostgresStore::open(&pg::settings(&url), Some(&wrong)).unwrap();
    let err = store.get_client("c1").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let shown = format!("{err} {err:?} {store:?}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    assert!(!shown.contains("wrong-password-1234"), "{shown}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn the_server_issues_tokens_for_clients_in_postgres() {
    let url = pg::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path(), Algorithm::EdDSA);
    config.database = pg::settings(&url);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = app::start(&config, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();

    let store = PostgresStore::open(&pg::settings(&url), None).unwrap();
    let (id, secret) = pg::create_client(&store, "pg client").await;
    let cert = std::fs::read(&running.certificate.cert).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert).unwrap()])
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", running.local_addr.port());
    let response = api::token_request(&http, &base, &id, &secret).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let _ = stop.send(());
    running.wait().await;
}
