//! The shared store: PostgreSQL through a deadpool connection pool, for a
//! fleet of instances on one database. Every call is bounded in time (pool
//! wait, connect and statement timeouts), so an outage fails fast with
//! [`StoreError::Unavailable`] and the pool reconnects by itself afterwards.
//! Revocations and the change feed are in `postgres/changes.rs`, signing
//! keys in `postgres/keys.rs`.

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::watch;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    AuditedChange, ClientStore, CorruptRow, MigrationReport, RegistrationStore, SettingsError,
    StoreError, StoreFuture, Unavailable,
};
use crate::audit::AuditEntry;
use crate::config::{DatabaseConfig, Secret};
use crate::domain::client::{Client, SecretHash};
use crate::domain::federation::FederatedSubject;

mod audit;
mod changes;
mod federation;
mod instances;
mod keys;
mod listen;
mod migrate;
mod rows;

/// Channel that the change-log trigger notifies on every commit.
pub const CHANGE_CHANNEL: &str = "auth_server_changes";

/// Advisory-lock key that serializes change-log writers, so `seq` order is
/// commit order ("auth-srv" in ASCII; migrations use a different key).
const CHANGE_LOG_LOCK: i64 = 0x6175_7468_2d73_7276;

/// How the store reaches the database: TLS or not, decided by `sslmode`.
#[derive(Clone)]
enum Tls {
    /// `sslmode=require`: rustls (aws-lc-rs) with the system's root store.
    Rustls(MakeRustlsConnect),
    /// No TLS (development and tests on loopback).
    Plain,
}

/// Client registry, revocations and change feed in PostgreSQL.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    pg_config: tokio_postgres::Config,
    tls: Tls,
    /// Upper bound of one store call: pool wait, connect and statement.
    call_timeout: Duration,
    /// Receiver of the LISTEN task's wake-ups, created on first use.
    notifications: Arc<OnceLock<watch::Receiver<u64>>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the config: it holds the password.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Builds the pool from `database.url` and `DB_PASSWORD`. No connection
    /// is made yet: the first call (usually `migrate`) opens one.
    pub fn open(db: &DatabaseConfig, password: Option<&Secret>) -> Result<Self, StoreError> {
        let mut pg_config =
            tokio_postgres::Config::from_str(&db.url).map_err(SettingsError::Url)?;
        if let Some(password) = password {
            pg_config.password(password.0.as_bytes());
        }
        let connect_timeout = Duration::from_secs(db.connect_timeout_secs);
        let wait = Duration::from_secs(db.pool_wait_timeout_secs);
        let statement = Duration::from_secs(db.statement_timeout_secs);
        let call_timeout = wait + connect_timeout + statement;
        let statement_ms = db.statement_timeout_secs.saturating_mul(1_000);
        // Set at login, so every pooled connection has them without a round
        // trip. A write is answered only once it is on disk, whatever the
        // server's default: with `synchronous_commit = off` a crash loses the
        // last commits, and a revocation answered 200 must not be lost.
        let ours = format!("-c statement_timeout={statement_ms} -c synchronous_commit=on");
        let options = match pg_config.get_options() {
            Some(existing) => format!("{existing} {ours}"),
            None => ours,
        };
        pg_config
            .options(options)
            .connect_timeout(connect_timeout)
            .keepalives_idle(Duration::from_secs(30))
            // A connection whose packets go unacknowledged this long (network
            // gone, host down) is closed by the kernel and then replaced,
            // instead of being handed out again to hang the next call.
            .tcp_user_timeout(call_timeout);
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("auth-server");
        }
        let tls = match pg_config.get_ssl_mode() {
            SslMode::Require => Tls::Rustls(rustls_connector()?),
            // Anything else is plain text, like `disable`: `prefer` would
            // fall back to plain text silently anyway. Production refuses it.
            _ => {
                pg_config.ssl_mode(SslMode::Disable);
                Tls::Plain
            }
        };
        let manager_config = ManagerConfig {
            // No round trip per checkout: a connection the server closed
            // (restart, failover) is noticed as closed and replaced.
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Tls::Rustls(tls) => {
                Manager::from_config(pg_config.clone(), tls.clone(), manager_config)
            }
            Tls::Plain => Manager::from_config(pg_config.clone(), NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(db.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(wait))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(SettingsError::Pool)?;
        Ok(Self {
            pool,
            pg_config,
            tls,
            call_timeout,
            notifications: Arc::new(OnceLock::new()),
        })
    }

    /// A receiver that changes shortly after any instance commits a client
    /// change or revocation (PostgreSQL `LISTEN auth_server_changes`), and
    /// after the listening connection reconnects (notifications may have
    /// been missed). Call [`crate::store::Store::changes_since`] when it
    /// changes; keep polling on an interval too, as notifications are best
    /// effort. The listening connection lives outside the pool, starts on
    /// the first call and stops once the store and every receiver are gone.
    /// Must be called within a tokio runtime; `None` otherwise.
    ///
    /// ```no_run
    /// # async fn follow(store: auth_server::store::postgres::PostgresStore) {
    /// use auth_server::store::Store;
    /// let mut changed = store.listen_for_changes().expect("inside tokio");
    /// let mut cursor = store.change_cursor().await.unwrap_or(0);
    /// let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    /// loop {
    ///     tokio::select! {
    ///         _ = changed.changed() => {}
    ///         _ = every.tick() => {}
    ///     }
    ///     if let Ok(batch) = store.changes_since(cursor).await {
    ///         cursor = batch.cursor; // apply batch.revocations, batch.clients
    ///     }
    /// }
    /// # }
    /// ```
    pub fn listen_for_changes(&self) -> Option<watch::Receiver<u64>> {
        if let Some(rx) = self.notifications.get() {
            return Some(rx.clone());
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let rx = self.notifications.get_or_init(|| {
            listen::spawn(
                &handle,
                self.pg_config.clone(),
                self.tls.clone(),
                Duration::from_secs(1),
            )
        });
        Some(rx.clone())
    }

    /// Runs `f` with a pooled connection, bounded by the call timeout.
    fn with_client<'a, T, F, Fut>(&'a self, f: F) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'a,
    {
        let limit = self.call_timeout;
        Box::pin(async move {
            let call = async {
                let client = self.pool.get().await.map_err(pool_error)?;
                f(client).await
            };
            tokio::time::timeout(limit, call)
                .await
                .map_err(|_| Unavailable::Timeout(limit))?
        })
    }
}

/// rustls with aws-lc-rs and the platform's trusted roots (`SSL_CERT_FILE`
/// and `SSL_CERT_DIR` are honoured, for a private database CA).
fn rustls_connector() -> Result<MakeRustlsConnect, StoreError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return Err(SettingsError::NoTrustedRoots.into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SettingsError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => unavailable(e),
        other => Unavailable::Pool(other).into(),
    }
}

/// Maps a driver error to a retryable one.
fn unavailable(e: tokio_postgres::Error) -> StoreError {
    Unavailable::Driver(e.into()).into()
}

impl ClientStore for PostgresStore {
    fn migrate(&self) -> StoreFuture<'_, MigrationReport> {
        self.with_client(|mut client| async move { migrate::run(&mut client).await })
    }

    fn get_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Client>> {
        self.with_client(move |client| async move {
            let stmt = client
                .prepare_cached(&rows::select_clients("WHERE id = $1"))
                .await
                .map_err(unavailable)?;
            let row = client.query_opt(&stmt, &[&id]).await.map_err(unavailable)?;
            row.map(|row| rows::client_from_row(&row)).transpose()
        })
    }

    fn list_clients(&self) -> StoreFuture<'_, Vec<Client>> {
        self.with_client(|client| async move {
            let stmt = client
                .prepare_cached(&rows::select_clients("ORDER BY id"))
                .await
                .map_err(unavailable)?;
            let rows = client.query(&stmt, &[]).await.map_err(unavailable)?;
            rows.iter().map(rows::client_from_row).collect()
        })
    }

    fn count_clients(&self) -> StoreFuture<'_, u64> {
        self.with_client(|client| async move {
            let stmt = client
                .prepare_cached("SELECT COUNT(*) FROM clients")
                .await
                .map_err(unavailable)?;
            let count: i64 = client
                .query_one(&stmt, &[])
                .await
                .map_err(unavailable)?
                .get(0);
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    fn longest_client_lifetime(&self) -> StoreFuture<'_, Option<u32>> {
        self.with_client(|client| async move {
            let stmt = client
                .prepare_cached("SELECT MAX(token_lifetime_secs) FROM clients")
                .await
                .map_err(unavailable)?;
            let longest: Option<i64> = client
                .query_one(&stmt, &[])
                .await
                .map_err(unavailable)?
                .get(0);
            Ok(longest.and_then(|secs| u32::try_from(secs).ok()))
        })
    }

    fn insert_client<'a>(&'a self, client: &'a Client) -> StoreFuture<'a, ()> {
        self.with_client(move |mut conn| async move {
            let change = AuditedChange::InsertClient(client.clone());
            apply(&mut conn, &change, None).await.map(|_| ())
        })
    }

    fn federated_subjects(&self) -> StoreFuture<'_, Vec<FederatedSubject>> {
        self.with_client(|client| async move { federation::list(&client).await })
    }

    fn update_client<'a>(&'a self, client: &'a Client) -> StoreFuture<'a, bool> {
        self.with_client(move |mut conn| async move {
            let change = AuditedChange::UpdateClient(client.clone());
            apply(&mut conn, &change, None).await
        })
    }

    fn delete_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        self.with_client(move |mut conn| async move {
            let change = AuditedChange::DeleteClient(id.to_owned());
            apply(&mut conn, &change, None).await
        })
    }
}

/// Applies `change` and, when it applied, appends `entry`, in one
/// transaction.
async fn apply(
    conn: &mut deadpool_postgres::Object,
    change: &AuditedChange,
    entry: Option<&AuditEntry>,
) -> Result<bool, StoreError> {
    let tx = conn.transaction().await.map_err(unavailable)?;
    let applied = apply_change(&tx, change).await?;
    if let (true, Some(entry)) = (applied, entry) {
        audit::append(&tx, entry).await?;
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(applied)
}

/// One change inside the caller's transaction; `false` when an update or
/// delete found no such client.
async fn apply_change(
    tx: &deadpool_postgres::Transaction<'_>,
    change: &AuditedChange,
) -> Result<bool, StoreError> {
    match change {
        AuditedChange::InsertClient(client) => {
            match rows::write_client(tx, rows::INSERT_CLIENT, client).await {
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(StoreError::Duplicate(client.id.clone()));
                }
                Err(e) => return Err(unavailable(e)),
                Ok(_) => {}
            }
            changes::record_change(tx, "client", &client.id).await?;
            Ok(true)
        }
        AuditedChange::UpdateClient(client) => {
            let updated = rows::write_client(tx, rows::UPDATE_CLIENT, client)
                .await
                .map_err(unavailable)?
                == 1;
            if updated {
                changes::record_change(tx, "client", &client.id).await?;
            }
            Ok(updated)
        }
        AuditedChange::DeleteClient(id) => {
            let stmt = tx
                .prepare_cached("DELETE FROM clients WHERE id = $1")
                .await
                .map_err(unavailable)?;
            let deleted = tx.execute(&stmt, &[id]).await.map_err(unavailable)? == 1;
            if deleted {
                changes::record_change(tx, "client", id).await?;
            }
            Ok(deleted)
        }
        AuditedChange::Revoke(r) => {
            changes::revoke(tx, r).await?;
            Ok(true)
        }
        AuditedChange::SigningKeys(writes) => {
            keys::write(tx, writes).await?;
            Ok(true)
        }
        AuditedChange::RegisterClient(client, token_hash) => {
            Box::pin(apply_change(
                tx,
                &AuditedChange::InsertClient(client.clone()),
            ))
            .await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO client_registrations (client_id, token_hash, created_at) \
                     VALUES ($1, $2, $3)",
                )
                .await
                .map_err(unavailable)?;
            tx.execute(
                &stmt,
                &[&client.id, &token_hash.0.as_slice(), &client.created_at],
            )
            .await
            .map_err(unavailable)?;
            Ok(true)
        }
        AuditedChange::AddFederatedSubject(subject, at) => federation::add(tx, subject, *at).await,
        AuditedChange::RemoveFederatedSubject(subject) => federation::remove(tx, subject).await,
    }
}

impl RegistrationStore for PostgresStore {
    fn registration_token<'a>(&'a self, client_id: &'a str) -> StoreFuture<'a, Option<SecretHash>> {
        self.with_client(move |client| async move {
            let stmt = client
                .prepare_cached("SELECT token_hash FROM client_registrations WHERE client_id = $1")
                .await
                .map_err(unavailable)?;
            let row = client
                .query_opt(&stmt, &[&client_id])
                .await
                .map_err(unavailable)?;
            row.map(|row| {
                let bytes: Vec<u8> = rows::Columns::of(&row, "client_registrations").get(0)?;
                SecretHash::from_slice(&bytes).ok_or_else(|| {
                    CorruptRow::Registration {
                        client_id: client_id.to_owned(),
                    }
                    .into()
                })
            })
            .transpose()
        })
    }
}

#[cfg(test)]
mod tests;
