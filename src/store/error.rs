//! Why a store call failed, in types: the variant says what kind of failure
//! it is (callers decide on that), the reason inside says what exactly
//! failed and carries the driver's error where there is one. Neither ever
//! holds the connection settings. Statuses and exit codes are decided at
//! the edges (`http/error.rs`, `exit.rs`), not here.

use std::path::PathBuf;
use std::time::Duration;

use crate::keys::lifecycle::KeyState;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached, did not answer in time, or failed the
    /// call; retryable.
    #[error("store unavailable: {0}")]
    Unavailable(#[from] Unavailable),
    /// A client with this id already exists.
    #[error("a client with id {0} already exists")]
    Duplicate(String),
    /// A stored row could not be decoded (corruption or a foreign writer).
    #[error("corrupt row: {0}")]
    Corrupt(#[from] CorruptRow),
    /// A migration failed; the schema is as it was before it.
    #[error("migration failed: {0}")]
    Migration(#[from] MigrationError),
    /// The connection settings are unusable (never includes the password).
    #[error("store settings: {0}")]
    Settings(#[from] SettingsError),
    /// A conditional write found the rows changed meanwhile (another
    /// instance got there first); nothing was written. Read and decide again.
    #[error("changed meanwhile: {0}")]
    Conflict(#[from] KeyConflict),
}

impl StoreError {
    /// The conflict of an insert of `kid` that hit a unique index.
    pub fn key_taken(kid: &str, source: impl Into<DriverError>) -> Self {
        KeyConflict::Taken {
            kid: kid.to_owned(),
            source: source.into(),
        }
        .into()
    }

    /// The conflict of an update whose key left state `from` meanwhile.
    pub fn key_moved(kid: &str, from: KeyState) -> Self {
        KeyConflict::Moved {
            kid: kid.to_owned(),
            from,
        }
        .into()
    }
}

/// The database driver's own error, kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// From PostgreSQL: the server's message and code, or the underlying
    /// cause (the driver's own text is often just "db error").
    #[error("{}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// From the embedded SQLite database.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Why the store could not serve a call. All of these may pass.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The call got no answer within its bound (pool wait, connect and
    /// statement together).
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The driver failed: connection refused or lost, a server error, disk
    /// I/O, a busy database.
    #[error(transparent)]
    Driver(DriverError),
    /// The connection pool could not hand out a connection.
    #[error("database pool: {0}")]
    Pool(#[source] deadpool_postgres::PoolError),
    /// The embedded database's directory could not be created.
    #[error("{}: {source}", .path.display())]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The blocking task running an embedded-store call panicked or was
    /// cancelled.
    #[error("store task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// An earlier call panicked while holding the embedded store's lock.
    #[error("store lock poisoned")]
    LockPoisoned,
}

/// Which stored row could not be decoded, and why.
#[derive(Debug, thiserror::Error)]
pub enum CorruptRow {
    /// A client row holds a value the domain refuses.
    #[error("client {id}: {field}")]
    Client {
        /// The client's id.
        id: String,
        /// The refused field.
        field: ClientField,
    },
    /// A signing-key row names an algorithm or state this binary does not
    /// know.
    #[error("signing key {kid}: unknown algorithm or state")]
    SigningKey {
        /// The key's id.
        kid: String,
    },
    /// A registered client's registration access token hash has the wrong
    /// length.
    #[error("registration of client {client_id}: bad token hash")]
    Registration {
        /// The client's id.
        client_id: String,
    },
    /// A column's value does not have the type the migrations give it.
    #[error("{table} column {index}: {source}")]
    Column {
        /// The table read.
        table: &'static str,
        /// The column's position in the query.
        index: usize,
        /// The driver's conversion error.
        source: DriverError,
    },
}

/// The field of a client row that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientField {
    /// `allowed_scopes` or `default_scopes` is not a scope list.
    #[error("malformed scopes")]
    Scopes,
    /// `secret_hash` is not a stored hash.
    #[error("bad secret hash")]
    SecretHash,
    /// `previous_secret_hash` is not a stored hash.
    #[error("bad previous secret hash")]
    PreviousSecretHash,
    /// `token_lifetime_secs` does not fit the domain's range.
    #[error("token lifetime out of range")]
    TokenLifetime,
    /// `rate_limit_rps` does not fit the domain's range.
    #[error("rate limit out of range")]
    RateLimit,
    /// `token_endpoint_auth_method` names no method this binary knows.
    #[error("unknown token_endpoint_auth_method")]
    AuthMethod,
    /// `jwks` is not a usable JWK Set.
    #[error("malformed jwks")]
    Jwks,
    /// `tls_auth_kind` and `tls_auth_value` are not one certificate
    /// registration (an unknown kind, a bad value, or only one of them).
    #[error("bad certificate registration")]
    TlsClientAuth,
}

/// Why a migration failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// Locking, reading or recording the schema version failed.
    #[error(transparent)]
    Bookkeeping(DriverError),
    /// One migration's SQL failed.
    #[error("version {version}: {source}")]
    Step {
        /// The migration's version.
        version: u32,
        /// What the database said.
        source: DriverError,
    },
    /// A migration's version does not fit the database's version column.
    #[error("version {0} out of range")]
    VersionOutOfRange(u32),
}

/// Why the connection settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `database.url` does not parse. The parser's messages name options,
    /// never values, so no password leaks.
    #[error("database.url is not a PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The pool refused its settings.
    #[error("connection pool: {0}")]
    Pool(#[source] deadpool_postgres::BuildError),
    /// `sslmode=require`, but the platform trusts no root certificate.
    #[error("sslmode=require but no trusted root certificates were found")]
    NoTrustedRoots,
    /// rustls refused the TLS settings.
    #[error("TLS to the database: {0}")]
    Tls(#[source] rustls::Error),
}

/// Why a conditional write to the signing keys was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyConflict {
    /// An insert hit a unique index: the kid is taken, or the key would be
    /// a second current or next key.
    #[error("signing key {kid}: kid taken, or a second current or next key")]
    Taken {
        /// The key's id.
        kid: String,
        /// The constraint violation.
        source: DriverError,
    },
    /// An update found the key no longer in the state it expected.
    #[error("signing key {kid} is no longer {}", .from.name())]
    Moved {
        /// The key's id.
        kid: String,
        /// The state the writer saw.
        from: KeyState,
    },
}

/// The server's message or the underlying cause: the driver's own text is
/// often just "db error". Neither carries the connection settings.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}
