//! Wiring: config -> store -> keys -> caches -> TLS -> listener -> server,
//! plus the signals that stop it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::{self, NewClient};
use crate::clock::unix_now;
use crate::config::{Config, Mode};
use crate::http::{AppState, health};
use crate::keys::{KeyError, KeySet, SigningKey};
use crate::server::{self, ConnectionLimits};
use crate::store::sqlite::SqliteStore;
use crate::store::{ClientStore, Store, StoreError};
use crate::tls::{self, CertificatePaths, TlsError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration cannot be served as given.
    #[error("{0}")]
    Config(String),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The TLS certificate could not be loaded or generated.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The signing key could not be loaded or generated.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
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
}

/// Opens the configured store. Migrations are not applied here.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, AppError> {
    if !config.database.url.is_empty() {
        return Err(AppError::Config(
            "database.url is set, but this build serves only the embedded store; \
             unset it (and DATABASE_URL) to use database.sqlite_path"
                .into(),
        ));
    }
    Ok(Arc::new(SqliteStore::open(&config.database.sqlite_path)?))
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

    let certificate = certificate_paths(config)?;
    let tls_config = tls::server_config(&certificate)?;
    let keys = load_keys(config)?;

    let listener = TcpListener::bind(config.server.bind)
        .await
        .map_err(|source| AppError::Bind {
            addr: config.server.bind,
            source,
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

    let state = Arc::new(AppState::new(config, &issuer, keys, store));

    tracing::info!(
        addr = %local_addr,
        issuer = %issuer,
        version = health::VERSION,
        git_sha = health::GIT_SHA,
        algorithm = config.token.algorithm.name(),
        "auth-server listening"
    );
    let limits = ConnectionLimits::from(&config.server);
    let task = tokio::spawn(server::run(listener, tls_config, state, limits, shutdown));
    Ok(RunningServer {
        local_addr,
        issuer,
        certificate,
        task,
    })
}

/// Runs the server until SIGTERM or SIGINT, then drains.
pub async fn serve(config: Config) -> Result<(), AppError> {
    // Handlers go in before the port opens, so an early SIGTERM drains
    // instead of killing the process.
    let shutdown = shutdown_signal().map_err(|e| AppError::Config(format!("signals: {e}")))?;
    let running = start(&config, shutdown).await?;
    running.wait().await;
    tracing::info!("auth-server stopped");
    Ok(())
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

fn load_keys(config: &Config) -> Result<KeySet, AppError> {
    let secret = config.jwt_secret.as_ref().map(|s| s.0.as_bytes());
    let (key, generated) =
        SigningKey::load_or_generate(config.token.algorithm, &config.token.key_dir, secret)?;
    if generated {
        tracing::info!(
            alg = key.alg().name(),
            kid = key.kid(),
            dir = %config.token.key_dir.display(),
            "generated a new signing key"
        );
    }
    Ok(KeySet::new(key))
}

async fn create_demo_client(
    store: &dyn ClientStore,
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
