//! A fresh database per test on the cluster that `scripts/test.sh` starts
//! (`scripts/pg.sh`), whose URL arrives in `TEST_PG_URL`.

use std::time::{Duration, Instant};

use auth_server::config::{Config, DatabaseConfig};
use auth_server::keys::Algorithm;
use auth_server::store::ClientStore;
use auth_server::store::postgres::PostgresStore;

use super::TestServer;

/// The variable holding the cluster's URL.
pub const URL_VAR: &str = "TEST_PG_URL";

/// The cluster's URL (to its `postgres` database).
pub fn cluster_url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!("{URL_VAR} is unset: run the PostgreSQL tests via scripts/test.sh")
    })
}

/// Settings for `url` with short timeouts, so failures show quickly.
pub fn settings(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: url.into(),
        max_connections: 8,
        connect_timeout_secs: 2,
        pool_wait_timeout_secs: 2,
        statement_timeout_secs: 2,
        ..DatabaseConfig::default()
    }
}

/// Settings for a server under fault tests: one-second pool wait, connect
/// and statement timeouts, so every store call gives up within three.
pub fn fast_settings(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        connect_timeout_secs: 1,
        pool_wait_timeout_secs: 1,
        statement_timeout_secs: 1,
        ..settings(url)
    }
}

/// A server on the database at `url` for fault tests: [`fast_settings`],
/// the change feed polled every 200 ms, and then `tweak`.
pub async fn start_server(url: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(Algorithm::EdDSA, |c| {
        c.database = fast_settings(url);
        c.cache.change_poll_interval_ms = 200;
        tweak(c);
    })
    .await
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let url = cluster_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let name = format!(
        "t_{}",
        auth_server::domain::client::random_bytes::<8>()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    let base = url.split('?').next().unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

/// A store on a fresh database, migrated.
pub async fn fresh_store() -> (PostgresStore, String) {
    let url = fresh_database().await;
    let store = PostgresStore::open(&settings(&url), None).unwrap();
    let report = store.migrate().await.unwrap();
    assert_eq!(report.applied, [1, 2, 3, 4, 5, 6, 7, 8]);
    (store, url)
}

/// Registers a client allowed the scope `read`; returns (id, secret).
pub async fn create_client(store: &PostgresStore, name: &str) -> (String, String) {
    let new = auth_server::admin::NewClient {
        name: name.into(),
        allowed_scopes: "read".into(),
        ..Default::default()
    };
    let created = auth_server::admin::create_client(
        store,
        new,
        &auth_server::audit::Actor::cli("test"),
        auth_server::clock::unix_now(),
    )
    .await
    .unwrap();
    (created.client.id, created.secret)
}

/// Asks `store` for client `id` until it answers (a database back from a
/// fault), for at most 15 s; how long that took.
pub async fn until_client_found(store: &PostgresStore, id: &str) -> Duration {
    let started = Instant::now();
    loop {
        match store.get_client(id).await {
            Ok(found) => {
                assert_eq!(found.unwrap().id, id);
                return started.elapsed();
            }
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "no recovery: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A plain connection for inspecting or tampering with a database.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The `jti` of every revocation stored in the database at `url`.
pub async fn stored_jtis(url: &str) -> std::collections::HashSet<String> {
    connect(url)
        .await
        .query("SELECT jti FROM revocations", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Runs `scripts/pg.sh ACTION` on the test cluster; returns its stdout.
pub fn pg_sh(action: &str) -> String {
    let output = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
        .arg(action)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "scripts/pg.sh {action} failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `url` with another user name.
pub fn as_user(url: &str, user: &str) -> String {
    url.replacen("postgres://postgres@", &format!("postgres://{user}@"), 1)
}

/// The test cluster paused (`halt`, `crash` or `freeze` through
/// `scripts/pg.sh`); the
/// pause is undone when this is dropped, so a failing test never leaves the
/// cluster every other PostgreSQL test uses down.
pub struct Paused {
    undo: &'static str,
    active: bool,
}

impl Paused {
    /// Runs `pg.sh action` now; `pg.sh undo` runs on [`Paused::end`] or drop.
    pub fn start(action: &str, undo: &'static str) -> Self {
        pg_sh(action);
        Self { undo, active: true }
    }

    /// Undoes the pause now.
    pub fn end(mut self) {
        pg_sh(self.undo);
        self.active = false;
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if self.active {
            pg_sh(self.undo);
        }
    }
}
