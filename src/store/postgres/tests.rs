//! Checks that need no database: settings, and failing fast when there is
//! none. Behaviour against a real PostgreSQL is in `tests/store_*.rs`.

use std::time::{Duration, Instant};

use super::*;
use crate::store::Store;

fn settings(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: url.into(),
        connect_timeout_secs: 1,
        pool_wait_timeout_secs: 1,
        statement_timeout_secs: 1,
        ..DatabaseConfig::default()
    }
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_malformed_url_is_a_settings_error_without_the_password() {
    for url in [
        "postgres://u:hunter2@127.0.0.1:notaport/db",
        "postgres://u:hunter2@127.0.0.1/db?bogus=1",
    ] {
        let err = PostgresStore::open(&settings(url), None).unwrap_err();
        assert!(matches!(err, StoreError::Settings(_)), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_without_the_password() {
    let url = format!("postgres://u:hunter2@127.0.0.1:{}/db", closed_port());
    let secret = Secret("also-secret".into());
    let store = PostgresStore::open(&settings(&url), Some(&secret)).unwrap();
    let started = Instant::now();
    let err = store.get_client("c1").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took too long");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let shown = format!("{err} {err:?} {store:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("also-secret"),
        "{shown}"
    );
}

#[tokio::test]
async fn require_uses_tls_and_other_modes_do_not() {
    let port = closed_port();
    let tls = PostgresStore::open(
        &settings(&format!("postgres://u@127.0.0.1:{port}/db?sslmode=require")),
        None,
    )
    .unwrap();
    assert!(matches!(tls.tls, Tls::Rustls(_)));
    let plain = PostgresStore::open(
        &settings(&format!("postgres://u@127.0.0.1:{port}/db?sslmode=prefer")),
        None,
    )
    .unwrap();
    assert!(matches!(plain.tls, Tls::Plain));
    assert_eq!(plain.pool_status().map(|pool| pool.max_size), Some(200));
}

#[test]
fn listening_needs_a_runtime() {
    let store = PostgresStore::open(&settings("postgres://u@127.0.0.1:1/db"), None).unwrap();
    assert!(store.listen_for_changes().is_none());
}

/// Every pooled connection carries the configured `statement_timeout`, so a
/// runaway statement is cancelled by the server itself, and commits
/// synchronously, so nothing it answered for is lost in a crash.
#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn pooled_connections_carry_the_statement_timeout() {
    let url = std::env::var("TEST_PG_URL").expect("TEST_PG_URL, set by scripts/test.sh");
    let store = PostgresStore::open(&settings(&url), None).unwrap();
    let client = store.pool.get().await.unwrap();
    let shown: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "1s");
    // The test cluster runs with synchronous_commit = off; our sessions not.
    let shown: String = client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "on");
    let started = Instant::now();
    let err = client.simple_query("SELECT pg_sleep(5)").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
