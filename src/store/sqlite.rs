//! The embedded store: one SQLite file (WAL, synchronous=FULL) behind a
//! mutex, queried on the blocking thread pool so the async runtime never
//! waits on disk. Signing keys are in `sqlite/keys.rs`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    AuditedChange, CHANGE_LOG_RETENTION_SECS, ChangeBatch, ClientField, ClientStore, CorruptRow,
    Heartbeat, MigrationError, MigrationReport, RegistrationStore, Revocation, RevocationStore,
    SeenAssertion, Store, StoreError, StoreFuture, Unavailable,
};

mod audit;
pub mod backup;
mod federation;
mod instances;
use crate::audit::AuditEntry;
use crate::domain::certificate::TlsClientAuth;
use crate::domain::client::{AuthMethod, Client, RegisteredJwks, SecretHash};
use crate::domain::federation::FederatedSubject;
use crate::domain::scope::ScopeSet;

/// Embedded migrations: (version, SQL). Append only.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_clients.sql")),
    (
        2,
        include_str!("migrations/sqlite/0002_revocations_and_changes.sql"),
    ),
    (3, include_str!("migrations/sqlite/0003_signing_keys.sql")),
    (4, include_str!("migrations/sqlite/0004_instances.sql")),
    (
        5,
        include_str!("migrations/sqlite/0005_proof_of_possession.sql"),
    ),
    (
        6,
        include_str!("migrations/sqlite/0006_audit_and_registration.sql"),
    ),
    (
        7,
        include_str!("migrations/sqlite/0007_client_assertions.sql"),
    ),
    (
        8,
        include_str!("migrations/sqlite/0008_federated_subjects.sql"),
    ),
];

/// Client registry in an SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its directory.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Unavailable::CreateDirectory {
                path: parent.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(unavailable)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    fn with_conn<T, F>(&self, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut guard = conn.lock().map_err(|_| Unavailable::LockPoisoned)?;
                f(&mut guard)
            })
            .await
            .map_err(Unavailable::Task)?
        })
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    Unavailable::Driver(e.into()).into()
}

/// Maps an error met while reading rows of `table`: a value that does not
/// have its column's type is a corrupt row, anything else the store failing.
fn reading(table: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| {
        use rusqlite::Error::{
            FromSqlConversionFailure, IntegralValueOutOfRange, InvalidColumnType,
        };
        match e {
            FromSqlConversionFailure(index, ..)
            | InvalidColumnType(index, ..)
            | IntegralValueOutOfRange(index, _) => CorruptRow::Column {
                table,
                index,
                source: e.into(),
            }
            .into(),
            other => unavailable(other),
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<MigrationReport, StoreError> {
    let fail = |e: rusqlite::Error| MigrationError::Bookkeeping(e.into());
    // IMMEDIATE takes the write lock up front, so concurrent migrators queue.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(fail)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(fail)?;
    let current: u32 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(fail)?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql).map_err(|e| MigrationError::Step {
            version: *version,
            source: e.into(),
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())",
            params![version],
        )
        .map_err(fail)?;
        applied.push(*version);
    }
    tx.commit().map_err(fail)?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    Ok(MigrationReport {
        current: current.max(applied.last().copied().unwrap_or(0)),
        applied,
        known,
    })
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, previous_secret_hash, \
    previous_secret_expires_at, secret_imported, allowed_scopes, default_scopes, \
    allowed_audiences, token_lifetime_secs, rate_limit_rps, enabled, \
    tokens_valid_after, created_at, updated_at, tls_auth_kind, tls_auth_value, require_dpop, \
    token_endpoint_auth_method, jwks, jwks_uri";

fn client_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Client, StoreError>> {
    let id: String = row.get(0)?;
    let corrupt = |field| -> StoreError {
        CorruptRow::Client {
            id: id.clone(),
            field,
        }
        .into()
    };
    let secret: Vec<u8> = row.get(2)?;
    let previous: Option<Vec<u8>> = row.get(3)?;
    let scopes = |i: usize| -> rusqlite::Result<Option<ScopeSet>> {
        Ok(ScopeSet::parse(&row.get::<_, String>(i)?).ok())
    };
    let audiences: String = row.get(8)?;
    let (Some(allowed), Some(defaults)) = (scopes(6)?, scopes(7)?) else {
        return Ok(Err(corrupt(ClientField::Scopes)));
    };
    let Some(secret_hash) = SecretHash::from_slice(&secret) else {
        return Ok(Err(corrupt(ClientField::SecretHash)));
    };
    let previous_secret_hash = match previous {
        None => None,
        Some(bytes) => match SecretHash::from_slice(&bytes) {
            Some(h) => Some(h),
            None => return Ok(Err(corrupt(ClientField::PreviousSecretHash))),
        },
    };
    let tls_kind: Option<String> = row.get(15)?;
    let tls_value: Option<String> = row.get(16)?;
    let tls_client_auth = match (tls_kind, tls_value) {
        (Some(kind), Some(value)) => match TlsClientAuth::from_parts(&kind, &value) {
            Ok(tls) => Some(tls),
            Err(_) => return Ok(Err(corrupt(ClientField::TlsClientAuth))),
        },
        (None, None) => None,
        _ => return Ok(Err(corrupt(ClientField::TlsClientAuth))),
    };
    let method: String = row.get(18)?;
    let Some(auth_method) = AuthMethod::from_name(&method) else {
        return Ok(Err(corrupt(ClientField::AuthMethod)));
    };
    let jwks = match row.get::<_, Option<String>>(19)? {
        None => None,
        Some(json) => match RegisteredJwks::parse(&json) {
            Ok(jwks) => Some(jwks),
            Err(_) => return Ok(Err(corrupt(ClientField::Jwks))),
        },
    };
    Ok(Ok(Client {
        tls_client_auth,
        require_dpop: row.get(17)?,
        auth_method,
        jwks,
        jwks_uri: row.get(20)?,
        name: row.get(1)?,
        secret_hash,
        previous_secret_hash,
        previous_secret_expires_at: row.get(4)?,
        secret_imported: row.get(5)?,
        allowed_scopes: allowed,
        default_scopes: defaults,
        allowed_audiences: audiences.split_whitespace().map(str::to_owned).collect(),
        token_lifetime_secs: row.get(9)?,
        rate_limit_rps: row.get(10)?,
        enabled: row.get(11)?,
        tokens_valid_after: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        id,
    }))
}

fn write_client(conn: &Connection, sql: &str, c: &Client) -> rusqlite::Result<usize> {
    conn.execute(
        sql,
        params![
            c.id,
            c.name,
            c.secret_hash.0.as_slice(),
            c.previous_secret_hash.as_ref().map(|h| h.0.to_vec()),
            c.previous_secret_expires_at,
            c.secret_imported,
            c.allowed_scopes.to_string(),
            c.default_scopes.to_string(),
            c.allowed_audiences.join(" "),
            c.token_lifetime_secs,
            c.rate_limit_rps,
            c.enabled,
            c.tokens_valid_after,
            c.created_at,
            c.updated_at,
            c.tls_client_auth.as_ref().map(TlsClientAuth::kind),
            c.tls_client_auth.as_ref().map(TlsClientAuth::value),
            c.require_dpop,
            c.auth_method.name(),
            c.jwks.as_ref().map(RegisteredJwks::json),
            c.jwks_uri,
        ],
    )
}

/// Appends to the change log that other instances poll.
fn record_change(conn: &Connection, kind: &str, key: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO changes (kind, key, at) VALUES (?1, ?2, unixepoch())",
        params![kind, key],
    )
    .map(|_| ())
}

fn revocation_from_row(row: &Row<'_>) -> rusqlite::Result<Revocation> {
    Ok(Revocation {
        jti: row.get(0)?,
        client_id: row.get(1)?,
        exp: row.get(2)?,
        revoked_at: row.get(3)?,
    })
}

impl RevocationStore for SqliteStore {
    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        let change = AuditedChange::Revoke(revocation.clone());
        self.with_conn(move |conn| apply(conn, &change, None).map(|_| ()))
    }

    fn active_revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT jti, client_id, exp, revoked_at FROM revocations WHERE exp > ?1",
                )
                .map_err(unavailable)?;
            stmt.query_map(params![now], revocation_from_row)
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(reading("revocations"))
        })
    }

    fn prune(&self, now: i64) -> StoreFuture<'_, u64> {
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let pruned = tx
                .execute("DELETE FROM revocations WHERE exp <= ?1", params![now])
                .map_err(unavailable)?;
            tx.execute(
                "DELETE FROM client_assertion_jtis WHERE exp <= ?1",
                params![now],
            )
            .map_err(unavailable)?;
            tx.execute(
                "DELETE FROM changes WHERE at < ?1",
                params![now - CHANGE_LOG_RETENTION_SECS],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(pruned as u64)
        })
    }
}

impl Store for SqliteStore {
    fn change_cursor(&self) -> StoreFuture<'_, i64> {
        self.with_conn(|conn| {
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                r.get(0)
            })
            .map_err(unavailable)
        })
    }

    fn changes_since(&self, cursor: i64) -> StoreFuture<'_, ChangeBatch> {
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let oldest: Option<i64> = tx
                .query_row("SELECT MIN(seq) FROM changes", [], |r| r.get(0))
                .map_err(unavailable)?;
            let mut batch = ChangeBatch {
                cursor,
                // Entries after the cursor were pruned: the caller missed some.
                full_reload: oldest.is_some_and(|oldest| oldest > cursor + 1) && cursor > 0,
                ..ChangeBatch::default()
            };
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT c.seq, c.kind, c.key, r.client_id, r.exp, r.revoked_at \
                         FROM changes c LEFT JOIN revocations r \
                           ON c.kind = 'revocation' AND r.jti = c.key \
                         WHERE c.seq > ?1 ORDER BY c.seq LIMIT 10000",
                    )
                    .map_err(unavailable)?;
                let column = reading("changes");
                let mut rows = stmt.query(params![cursor]).map_err(unavailable)?;
                while let Some(row) = rows.next().map_err(unavailable)? {
                    let seq: i64 = row.get(0).map_err(&column)?;
                    let kind: String = row.get(1).map_err(&column)?;
                    let key: String = row.get(2).map_err(&column)?;
                    batch.cursor = seq;
                    if kind == "client" {
                        batch.clients.push(key);
                    } else if kind == "key" {
                        batch.keys_changed = true;
                    } else if let (Some(client_id), Some(exp), Some(revoked_at)) = (
                        row.get(3).map_err(&column)?,
                        row.get(4).map_err(&column)?,
                        row.get(5).map_err(&column)?,
                    ) {
                        // A pruned revocation has no row left and needs none.
                        batch.revocations.push(Revocation {
                            jti: key,
                            client_id,
                            exp,
                            revoked_at,
                        });
                    }
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(batch)
        })
    }

    fn heartbeat<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, u32> {
        let beat = beat.clone();
        self.with_conn(move |conn| instances::heartbeat(conn, &beat))
    }

    fn leave<'a>(&'a self, instance: &'a str) -> StoreFuture<'a, ()> {
        let instance = instance.to_owned();
        self.with_conn(move |conn| instances::leave(conn, &instance))
    }

    fn remember_assertion<'a>(&'a self, seen: &'a SeenAssertion) -> StoreFuture<'a, bool> {
        let seen = seen.clone();
        self.with_conn(move |conn| {
            // A row of an expired assertion may linger until the next prune:
            // it no longer counts.
            let fresh = conn
                .execute(
                    "INSERT INTO client_assertion_jtis (client_id, jti, exp) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (client_id, jti) DO UPDATE SET exp = excluded.exp \
                     WHERE client_assertion_jtis.exp <= ?4",
                    params![seen.client_id, seen.jti, seen.exp, seen.now],
                )
                .map_err(unavailable)?;
            Ok(fresh == 1)
        })
    }
}

impl RegistrationStore for SqliteStore {
    fn registration_token<'a>(&'a self, client_id: &'a str) -> StoreFuture<'a, Option<SecretHash>> {
        let id = client_id.to_owned();
        self.with_conn(move |conn| {
            let hash: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT token_hash FROM client_registrations WHERE client_id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            hash.map(|h| {
                SecretHash::from_slice(&h).ok_or_else(|| {
                    CorruptRow::Registration {
                        client_id: id.clone(),
                    }
                    .into()
                })
            })
            .transpose()
        })
    }
}

impl ClientStore for SqliteStore {
    fn migrate(&self) -> StoreFuture<'_, MigrationReport> {
        self.with_conn(migrate)
    }

    fn get_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Client>> {
        let id = id.to_owned();
        self.with_conn(move |conn| {
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?1");
            let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
            stmt.query_row(params![id], client_from_row)
                .optional()
                .map_err(reading("clients"))?
                .transpose()
        })
    }

    fn list_clients(&self) -> StoreFuture<'_, Vec<Client>> {
        self.with_conn(|conn| {
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id");
            let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
            let rows = stmt
                .query_map([], client_from_row)
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(reading("clients"))?;
            rows.into_iter().collect()
        })
    }

    fn count_clients(&self) -> StoreFuture<'_, u64> {
        self.with_conn(|conn| {
            conn.query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))
                .map_err(unavailable)
        })
    }

    fn longest_client_lifetime(&self) -> StoreFuture<'_, Option<u32>> {
        self.with_conn(|conn| {
            conn.query_row("SELECT MAX(token_lifetime_secs) FROM clients", [], |r| {
                r.get(0)
            })
            .map_err(unavailable)
        })
    }

    fn federated_subjects(&self) -> StoreFuture<'_, Vec<FederatedSubject>> {
        self.with_conn(|conn| federation::list(conn))
    }

    fn insert_client<'a>(&'a self, client: &'a Client) -> StoreFuture<'a, ()> {
        let change = AuditedChange::InsertClient(client.clone());
        self.with_conn(move |conn| apply(conn, &change, None).map(|_| ()))
    }

    fn update_client<'a>(&'a self, client: &'a Client) -> StoreFuture<'a, bool> {
        let change = AuditedChange::UpdateClient(client.clone());
        self.with_conn(move |conn| apply(conn, &change, None))
    }

    fn delete_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let change = AuditedChange::DeleteClient(id.to_owned());
        self.with_conn(move |conn| apply(conn, &change, None))
    }
}

/// Applies `change` and, when it applied, appends `entry`, in one
/// `BEGIN IMMEDIATE` transaction (writers queue on the write lock).
fn apply(
    conn: &mut Connection,
    change: &AuditedChange,
    entry: Option<&AuditEntry>,
) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let applied = apply_change(&tx, change)?;
    if let (true, Some(entry)) = (applied, entry) {
        audit::append(&tx, entry)?;
    }
    tx.commit().map_err(unavailable)?;
    Ok(applied)
}

/// One change inside the caller's transaction; `false` when an update or
/// delete found no such client.
fn apply_change(tx: &Connection, change: &AuditedChange) -> Result<bool, StoreError> {
    match change {
        AuditedChange::InsertClient(client) => {
            let sql = format!(
                "INSERT INTO clients ({CLIENT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                 ?16, ?17, ?18, ?19, ?20, ?21)"
            );
            match write_client(tx, &sql, client) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(StoreError::Duplicate(client.id.clone()));
                }
                other => other.map_err(unavailable)?,
            };
            record_change(tx, "client", &client.id).map_err(unavailable)?;
            Ok(true)
        }
        AuditedChange::UpdateClient(client) => {
            let sql = "UPDATE clients SET name = ?2, secret_hash = ?3, \
                 previous_secret_hash = ?4, previous_secret_expires_at = ?5, \
                 secret_imported = ?6, allowed_scopes = ?7, default_scopes = ?8, \
                 allowed_audiences = ?9, token_lifetime_secs = ?10, rate_limit_rps = ?11, \
                 enabled = ?12, tokens_valid_after = ?13, created_at = ?14, updated_at = ?15, \
                 tls_auth_kind = ?16, tls_auth_value = ?17, require_dpop = ?18, \
                 token_endpoint_auth_method = ?19, jwks = ?20, jwks_uri = ?21 WHERE id = ?1";
            let updated = write_client(tx, sql, client).map_err(unavailable)? == 1;
            if updated {
                record_change(tx, "client", &client.id).map_err(unavailable)?;
            }
            Ok(updated)
        }
        AuditedChange::DeleteClient(id) => {
            let deleted = tx
                .execute("DELETE FROM clients WHERE id = ?1", params![id])
                .map_err(unavailable)?
                == 1;
            if deleted {
                record_change(tx, "client", id).map_err(unavailable)?;
            }
            Ok(deleted)
        }
        AuditedChange::Revoke(r) => {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO revocations (jti, client_id, exp, revoked_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![r.jti, r.client_id, r.exp, r.revoked_at],
                )
                .map_err(unavailable)?;
            if inserted == 1 {
                record_change(tx, "revocation", &r.jti).map_err(unavailable)?;
            }
            Ok(true)
        }
        AuditedChange::SigningKeys(writes) => {
            keys::write(tx, writes)?;
            Ok(true)
        }
        AuditedChange::RegisterClient(client, token_hash) => {
            apply_change(tx, &AuditedChange::InsertClient(client.clone()))?;
            tx.execute(
                "INSERT INTO client_registrations (client_id, token_hash, created_at) \
                 VALUES (?1, ?2, ?3)",
                params![client.id, token_hash.0.as_slice(), client.created_at],
            )
            .map_err(unavailable)?;
            Ok(true)
        }
        AuditedChange::AddFederatedSubject(subject, at) => federation::add(tx, subject, *at),
        AuditedChange::RemoveFederatedSubject(subject) => federation::remove(tx, subject),
    }
}

mod keys;

#[cfg(test)]
mod tests;
