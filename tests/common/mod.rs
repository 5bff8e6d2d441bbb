//! Shared helpers for integration tests: a real server on 127.0.0.1:0 over
//! TLS with a generated certificate, and an HTTPS client that trusts it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use auth_server::admin::{self, NewClient};
use auth_server::app::{self, RunningServer};
use auth_server::config::{Config, ScopeRule, Secret};
use auth_server::keyring::KeyRing;
use auth_server::keys::{Algorithm, KeySet};
use auth_server::store::ClientStore;
use auth_server::store::sqlite::SqliteStore;
use tokio::sync::oneshot;

/// A server running in this process, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub issuer: String,
    pub base_url: String,
    pub cert_pem: Vec<u8>,
    pub dir: tempfile::TempDir,
    pub store: SqliteStore,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    running: Option<RunningServer>,
}

/// A test configuration rooted in `dir`: loopback, port 0, no demo client.
pub fn test_config(dir: &std::path::Path, alg: Algorithm) -> Config {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.tls.dev_cert_dir = dir.join("certs");
    config.token.key_dir = dir.join("certs");
    config.token.algorithm = alg;
    config.database.sqlite_path = dir.join("data/auth.db");
    config.log.dir = String::new();
    config.dev.demo_client = false;
    config.server.shutdown_timeout_secs = 5;
    config.server.drain_grace_ms = 50;
    config.server.pid_file = dir.join("run/auth-server.pid").display().to_string();
    // One KEK for every test server, as for a fleet: servers sharing a
    // database (restarts, several instances) open each other's keys.
    config.kek = Some(Secret(TEST_KEK.into()));
    if alg == Algorithm::HS256 {
        config.jwt_secret = Some(Secret(HMAC_SECRET.into()));
    }
    config
}

/// Per-client limits far above any test's load: the fault tests count every
/// answer and must not meet a 429.
pub fn unlimited_clients(config: &mut Config) {
    config.limits.client_rps = 100_000;
    config.limits.client_burst = 1_000_000;
}

/// Change-feed poll of the low-ceiling servers, in milliseconds.
const LOW_CEILING_FEED_POLL_MS: u64 = 50;

/// Waits until a low-ceiling server's change feed has passed the clients
/// just written to its store. The feed drops a client from memory for every
/// change to it, its creation included, so a client warmed into memory
/// before the feed saw its creation would silently leave memory again.
pub async fn feed_passed_new_clients() {
    tokio::time::sleep(std::time::Duration::from_millis(
        6 * LOW_CEILING_FEED_POLL_MS,
    ))
    .await;
}

/// A server-wide ceiling of failed authentications that four failures
/// reach (burst 3, one a second), with the per-IP guard out of the way.
pub fn low_failed_auth_ceiling(config: &mut Config) {
    config.cache.change_poll_interval_ms = LOW_CEILING_FEED_POLL_MS;
    config.limits.failed_auth_global_per_second = 1;
    config.limits.failed_auth_global_burst = 3;
    config.limits.failed_auth_burst = 1_000;
    config.limits.failed_auth_per_ip_per_minute = 1_000;
}

/// The key-encryption key of in-process test servers (a fixture, not a
/// secret: 32 bytes, base64).
pub const TEST_KEK: &str = "dGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=";

/// Endpoint rules over `https://api.test/v1/users/**`: scope `read` may
/// GET it, `write` may POST and DELETE.
pub fn user_api_rules(config: &mut Config) {
    let rule = |name: &str, methods: &[&str]| ScopeRule {
        name: name.into(),
        description: String::new(),
        endpoints: vec!["https://api.test/v1/users/**".into()],
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
    };
    config.scopes = vec![rule("read", &["GET"]), rule("write", &["POST", "DELETE"])];
}

/// A server with [`user_api_rules`] and one [`TestServer::standard_client`]:
/// the server, the client's id and its secret.
pub async fn start_with_rules() -> (TestServer, String, String) {
    let server = TestServer::start_with(Algorithm::EdDSA, user_api_rules).await;
    let (id, secret) = server.standard_client().await;
    (server, id, secret)
}

/// The HS256 secret used by tests.
pub const HMAC_SECRET: &str = "test-hmac-secret-that-is-at-least-32-bytes";

impl TestServer {
    /// Starts a server signing with EdDSA.
    pub async fn start() -> Self {
        Self::start_with(Algorithm::EdDSA, |_| {}).await
    }

    /// Starts a server with `alg`, after letting `tweak` adjust the config.
    pub async fn start_with(alg: Algorithm, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), alg, tweak).await
    }

    /// Stops this server and starts a new one on the same directory (same
    /// keys, certificate and store).
    pub async fn restart(mut self, tweak: impl FnOnce(&mut Config)) -> Self {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.wait().await;
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_in(dir, Algorithm::EdDSA, tweak).await
    }

    /// Starts a server on an existing directory (its store, certificate and
    /// key files as they are).
    pub async fn start_in(
        dir: tempfile::TempDir,
        alg: Algorithm,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = test_config(dir.path(), alg);
        tweak(&mut config);
        // A tweak that swaps in other database settings (PostgreSQL) leaves
        // the default relative SQLite path: keep that file in the test's
        // directory, not in the checkout.
        if config.database.sqlite_path.is_relative() {
            config.database.sqlite_path = dir.path().join(&config.database.sqlite_path);
        }
        let store = SqliteStore::open(&config.database.sqlite_path).unwrap();
        store.migrate().await.unwrap();
        let (stop, stopped) = oneshot::channel();
        let running = app::start(&config, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        let cert_pem = std::fs::read(&running.certificate.cert).unwrap();
        let addr = running.local_addr;
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&cert_pem).unwrap()])
            .build()
            .unwrap();
        Self {
            http,
            addr,
            issuer: running.issuer.clone(),
            base_url: format!("https://127.0.0.1:{}", addr.port()),
            cert_pem,
            dir,
            store,
            stop: Some(stop),
            running: Some(running),
        }
    }

    /// URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// URL of the token endpoint.
    pub fn token_url(&self) -> String {
        api::endpoint(&self.base_url, "token")
    }

    /// Sends `GET path` with [`Self::client`]; the answer, whatever it is.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// An HTTPS client trusting only this server's certificate.
    pub fn client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// Registers a client; returns (id, secret).
    pub async fn create_client(&self, new: NewClient) -> (String, String) {
        let created = admin::create_client(
            &self.store,
            new,
            &auth_server::audit::Actor::cli("test"),
            auth_server::clock::unix_now(),
        )
        .await
        .unwrap();
        (created.client.id, created.secret)
    }

    /// Registers the admin API client `ops` (scope `auth-server:admin`);
    /// returns (id, secret).
    pub async fn admin_client(&self) -> (String, String) {
        self.create_client(NewClient {
            id: Some("ops".into()),
            name: "Operations".into(),
            allowed_scopes: "auth-server:admin".into(),
            ..NewClient::default()
        })
        .await
    }

    /// Registers a client allowed `read write` (default `read`) and the
    /// audiences `https://api.test` and `https://other.test`.
    pub async fn standard_client(&self) -> (String, String) {
        self.create_client(NewClient {
            name: "Test client".into(),
            allowed_scopes: "read write".into(),
            default_scopes: Some("read".into()),
            audiences: vec!["https://api.test".into(), "https://other.test".into()],
            ..NewClient::default()
        })
        .await
    }

    /// Tells the server to stop accepting and drain, without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.wait().await;
        }
    }

    /// Re-reads certificate and keys, as SIGHUP does.
    pub async fn reload(&self) -> auth_server::reload::ReloadReport {
        self.running
            .as_ref()
            .expect("running")
            .reloader
            .reload()
            .await
    }

    /// The server's stored signing keys (what `auth-server keys` changes).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        let running = self.running.as_ref().expect("running");
        Arc::clone(running.key_ring.as_ref().expect("keys in the store"))
    }

    /// The server's keys as the store holds them now; `.active()` signs as
    /// the server does.
    pub async fn stored_keys(&self) -> KeySet {
        self.key_ring().load().await.unwrap()
    }

    /// Path inside the server's temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Decodes the JSON body of a response.
pub async fn json_body(response: reqwest::Response) -> serde_json::Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The claims of a JWT, decoded without verification (for assertions only).
pub fn unverified_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

pub mod api;
pub mod assertion;
pub mod attack;
pub mod contract;
pub mod dpop;
pub mod fleet;
pub mod issuer;
pub mod jwks_host;
pub mod load;
pub mod pg;
pub mod process;
pub mod raw;
pub mod watch;

/// A sample from `/metrics`, named with its labels as exposed, e.g.
/// `auth_reload_failures_total{what="certificate"}`, fetched with `client`.
pub async fn metric(client: &reqwest::Client, server: &TestServer, sample: &str) -> f64 {
    metric_at(client, &server.base_url, sample).await
}

/// A sample from `/metrics` of the server at `base_url`, as [`metric`].
pub async fn metric_at(client: &reqwest::Client, base_url: &str, sample: &str) -> f64 {
    let text = api::get_text(client, &format!("{base_url}/metrics")).await;
    metric_sample(&text, sample)
}

/// The value of `sample` in a Prometheus text exposition; panics if absent.
pub fn metric_sample(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{sample} missing from /metrics"))
}
