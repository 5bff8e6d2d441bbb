//! Wiring, in start order: store (migrated) -> TLS certificate -> signing
//! keys (from the store, opened with the KEK) -> listener -> demo client
//! (development) -> revocations -> fleet membership -> shared state ->
//! change feed, key lifecycle and heartbeat tasks -> server; plus the
//! signals that stop it (SIGTERM, SIGINT) and reload it (SIGHUP).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, NewClient};
use crate::build_info;
use crate::cache::RevocationSet;
use crate::clock::unix_now;
use crate::config::{Config, Mode};
use crate::domain::client::RandomError;
use crate::feed;
use crate::fleet::{self, Member};
use crate::keyring::kek::{self, KekSource};
use crate::keyring::{KeyRing, KeySettings, KeyringError};
use crate::keys::{KeyError, KeySet, SigningKey};
use crate::reload::Reloader;
use crate::server::{self, ConnectionLimits};
use crate::state::{AppState, StateError};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{ClientStore, Store, StoreError};
use crate::tls::client_auth::ClientCas;
use crate::tls::{self, CertificatePaths, TlsError};

/// Why the server could not start (`crate::exit` says which exit code
/// each gets).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Production mode refuses clients whose secret an operator chose (dev
    /// and test fixtures): only generated secrets have the entropy SHA-256
    /// hashing relies on.
    #[error(
        "refusing to start in production: clients with imported secrets: {} \
         (run `auth-server client rotate-secret <id>` for each)",
        .0.join(", ")
    )]
    ImportedSecrets(Vec<String>),
    /// The shared state could not be built (a scope rule, the metrics).
    #[error(transparent)]
    State(#[from] StateError),
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The pid file could not be written.
    #[error("pid file {path}: {source}")]
    PidFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The TLS certificate could not be loaded or generated.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The HS256 key could not be built.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// The stored signing keys could not be opened or made.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyringError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Creating the demo client failed.
    #[error("demo client: {0}")]
    Admin(#[from] admin::AdminError),
    /// No randomness for this instance's id in the fleet.
    #[error("instance id: {0}")]
    InstanceId(#[from] RandomError),
}

/// Opens the configured store: PostgreSQL when `database.url` is set, the
/// embedded file otherwise. Migrations are not applied here.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, AppError> {
    if config.database.url.is_empty() {
        return Ok(Arc::new(SqliteStore::open(&config.database.sqlite_path)?));
    }
    let store = PostgresStore::open(&config.database, config.db_password.as_ref())?;
    Ok(Arc::new(store))
}

/// Applies migrations and reports a schema newer than this binary.
pub async fn migrate(store: &dyn ClientStore) -> Result<(), AppError> {
    let report = store.migrate().await?;
    if !report.applied.is_empty() {
        tracing::info!(applied = ?report.applied, "schema migrated");
    }
    if report.schema_is_newer() {
        tracing::warn!(
            schema = report.current,
            known = report.known,
            "the database schema is newer than this binary; running anyway (migrations are additive)"
        );
    }
    Ok(())
}

/// A server started by [`start`].
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    /// The issuer identifier in use.
    pub issuer: String,
    /// The TLS certificate in use.
    pub certificate: CertificatePaths,
    /// Re-reads certificate and keys (what SIGHUP does).
    pub reloader: Reloader,
    /// The stored signing keys (`None` with HS256).
    pub key_ring: Option<Arc<KeyRing>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Waits until the server has drained and stopped.
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }
}

/// Starts serving with `config` until `shutdown` completes.
pub async fn start(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningServer, AppError> {
    let store = open_store(config)?;
    if config.database.migrate_on_start {
        migrate(store.as_ref()).await?;
    }
    if config.environment == Mode::Production {
        refuse_imported_secrets(store.as_ref()).await?;
    }

    let certificate = certificate_paths(config)?;
    let tls_config = tls::server_config(&certificate)?;
    let (keys, key_ring) = signing_keys(config, &store).await?;

    let listener =
        server::bind(config.server.bind, config.server.reuse_port).map_err(|source| {
            AppError::Bind {
                addr: config.server.bind,
                source,
            }
        })?;
    let local_addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: config.server.bind,
        source,
    })?;
    let issuer = config.issuer_for_port(local_addr.port());

    if config.environment == Mode::Development
        && config.dev.demo_client
        && store.count_clients().await? == 0
    {
        create_demo_client(store.as_ref(), &issuer, &certificate).await?;
    }

    let revocations = Arc::new(RevocationSet::default());
    let cursor = feed::load(store.as_ref(), &revocations).await?;
    // Registered before serving, so client limits are divided right from
    // the first request.
    let member = Member::new(unix_now())?;
    let instances = fleet::join(store.as_ref(), &member).await?;
    let mut state = AppState::new(config, &issuer, keys, store, revocations)?;
    if !config.tls.client_ca_file.is_empty() {
        state.client_cas = Some(ClientCas::from_pem_file(Path::new(
            &config.tls.client_ca_file,
        ))?);
    }
    state.key_ring = key_ring.clone();
    let state = Arc::new(state);
    state.limits.set_instances(instances);
    state.metrics.fleet_instances.set(i64::from(instances));
    let cache = &config.cache;

    tracing::info!(
        addr = %local_addr,
        issuer = %issuer,
        version = build_info::VERSION,
        git_sha = build_info::GIT_SHA,
        algorithm = config.token.algorithm.name(),
        "auth-server listening"
    );
    let feed_task = tokio::spawn(feed::run(
        Arc::clone(&state),
        cursor,
        Duration::from_millis(cache.change_poll_interval_ms),
        key_ring.clone(),
    ));
    let lifecycle_task = key_ring
        .clone()
        .map(|ring| tokio::spawn(feed::keys::follow_lifecycle(Arc::clone(&state), ring)));
    let heartbeat_task = tokio::spawn(fleet::run(Arc::clone(&state), member.clone()));
    let limits = ConnectionLimits::from(config);
    let (tls_tx, tls_rx) = watch::channel(tls_config);
    let reloader = Reloader::new(
        certificate.clone(),
        tls_tx,
        Arc::clone(&state),
        key_ring.clone(),
    );
    reloader.record_certificate_expiry();
    let task = tokio::spawn(async move {
        server::run(listener, tls_rx, Arc::clone(&state), limits, shutdown).await;
        feed_task.abort();
        heartbeat_task.abort();
        if let Some(task) = lifecycle_task {
            task.abort();
        }
        fleet::leave(state.store.as_ref(), &member).await;
    });
    Ok(RunningServer {
        local_addr,
        issuer,
        certificate,
        reloader,
        key_ring,
        task,
    })
}

/// Runs the server until SIGTERM or SIGINT, then drains.
pub async fn serve(config: Config) -> Result<(), AppError> {
    // Handlers go in before the port opens, so an early SIGTERM drains
    // instead of killing the process.
    let shutdown = shutdown_signal().map_err(AppError::Signals)?;
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(AppError::Signals)?;
    let running = start(&config, shutdown).await?;
    let pid_file = PidFile::write(&config.server.pid_file)?;
    let reloads = tokio::spawn(running.reloader.clone().on_sighup(hangups));
    running.wait().await;
    reloads.abort();
    drop(pid_file);
    tracing::info!("auth-server stopped");
    Ok(())
}

/// The pid file, removed on drop if it still names this process (a newer
/// process may have taken it over during a binary swap).
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn write(path: &str) -> Result<Self, AppError> {
        if path.is_empty() {
            return Ok(Self(None));
        }
        let path = PathBuf::from(path);
        let fail = |source: std::io::Error| AppError::PidFile {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        // Write then rename, so a reader never sees a half-written pid.
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, format!("{}\n", std::process::id())).map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
        Ok(Self(Some(path)))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let Some(path) = &self.0 else { return };
        let ours = std::fs::read_to_string(path)
            .is_ok_and(|pid| pid.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Installs SIGTERM and SIGINT handlers now; the future completes on either.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

fn certificate_paths(config: &Config) -> Result<CertificatePaths, AppError> {
    if !config.tls.cert.is_empty() {
        return Ok(CertificatePaths {
            cert: PathBuf::from(&config.tls.cert),
            key: PathBuf::from(&config.tls.key),
        });
    }
    let (paths, generated) = tls::ensure_dev_certificate(&config.tls.dev_cert_dir)?;
    if generated {
        tracing::warn!(
            cert = %paths.cert.display(),
            "generated a self-signed development certificate (localhost, 127.0.0.1, ::1); \
             production mode refuses it"
        );
    } else {
        tracing::warn!(cert = %paths.cert.display(), "serving the self-signed development certificate");
    }
    Ok(paths)
}

/// Production refuses to serve clients whose secret an operator chose (dev
/// and test fixtures): only generated secrets have the entropy SHA-256
/// hashing relies on.
async fn refuse_imported_secrets(store: &dyn Store) -> Result<(), AppError> {
    let imported: Vec<String> = store
        .list_clients()
        .await?
        .into_iter()
        .filter(|c| c.secret_imported)
        .map(|c| c.id)
        .collect();
    if imported.is_empty() {
        Ok(())
    } else {
        Err(AppError::ImportedSecrets(imported))
    }
}

/// The keys to sign and verify with: with HS256, `JWT_SECRET` (and
/// `JWT_SECRET_PREVIOUS`, verifying only); otherwise the keys in the store,
/// which a first start makes (or takes from the pre-store key file).
async fn signing_keys(
    config: &Config,
    store: &Arc<dyn Store>,
) -> Result<(KeySet, Option<Arc<KeyRing>>), AppError> {
    if !config.stores_signing_keys() {
        let secret = |s: &crate::config::Secret| SigningKey::from_hmac_secret(s.0.as_bytes());
        let current = config
            .jwt_secret
            .as_ref()
            .map_or(Err(KeyError::WeakHmacSecret), secret)?;
        let previous = config
            .jwt_secret_previous
            .as_ref()
            .map(secret)
            .transpose()?;
        return Ok((
            KeySet::with_verifiers(current, previous.into_iter().collect()),
            None,
        ));
    }
    let ring = Arc::new(open_key_ring(config, Arc::clone(store))?);
    let keys = ring.start(&config.token.key_dir, unix_now()).await?;
    tracing::info!(
        current = keys.active().kid(),
        alg = keys.active().alg().name(),
        published = keys.keys().count(),
        kek = ring.kek_id(),
        kek_source = %ring.kek_source(),
        "signing keys loaded from the store"
    );
    if keys.active().alg() != config.token.algorithm {
        tracing::warn!(
            stored = keys.active().alg().name(),
            configured = config.token.algorithm.name(),
            "the current signing key's algorithm is not token.algorithm; keys made from now on use token.algorithm"
        );
    }
    Ok((keys, Some(ring)))
}

/// The stored signing keys with this instance's KEK (`AUTH_SERVER_KEK`,
/// `token.kek_file`, or in development `<key_dir>/kek`, created if absent).
pub fn open_key_ring(config: &Config, store: Arc<dyn Store>) -> Result<KeyRing, AppError> {
    let dev_dir =
        (config.environment == Mode::Development).then_some(config.token.key_dir.as_path());
    let (kek, source) = kek::resolve(config.kek.as_ref(), &config.token.kek_file, dev_dir)
        .map_err(KeyringError::from)?;
    if let KekSource::Created(path) = &source {
        tracing::warn!(
            file = %path.display(),
            "created a development key-encryption key; production needs AUTH_SERVER_KEK or \
             token.kek_file, the same on every instance"
        );
    }
    Ok(KeyRing::new(
        store,
        kek,
        source,
        KeySettings::from_config(config),
    ))
}

async fn create_demo_client(
    store: &dyn Store,
    issuer: &str,
    certificate: &CertificatePaths,
) -> Result<(), AppError> {
    let created = admin::create_client(
        store,
        NewClient {
            id: Some("demo-client".into()),
            name: "Demo client (development)".into(),
            allowed_scopes: "api:read api:write".into(),
            default_scopes: Some("api:read".into()),
            ..NewClient::default()
        },
        &crate::audit::Actor::cli("dev.demo_client"),
        unix_now(),
    )
    .await?;
    // Printed once, to the terminal only: never to the log.
    println!(
        "\nCreated a demo client (development mode, empty store). Its secret is shown only now.\n\
         \n  client_id:     {id}\n  client_secret: {secret}\n\
         \nGet a token:\n\n  curl --cacert {cert} -u '{id}:{secret}' \\\n    -d grant_type=client_credentials -d scope=api:read \\\n    {issuer}/oauth/token\n",
        id = created.client.id,
        secret = created.secret,
        cert = certificate.cert.display(),
    );
    Ok(())
}
