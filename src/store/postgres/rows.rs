//! Conversion between rows and domain records. Columns are typed as in the
//! migrations; counts that the domain keeps as `u32` are `BIGINT` here
//! (PostgreSQL has no unsigned types) and checked on the way back.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use crate::domain::certificate::TlsClientAuth;
use crate::domain::client::{Client, SecretHash};
use crate::domain::scope::ScopeSet;
use crate::store::{ChangeBatch, ClientField, CorruptRow, Revocation, StoreError};

const CLIENT_COLUMNS: &str = "id, name, secret_hash, previous_secret_hash, \
    previous_secret_expires_at, secret_imported, allowed_scopes, default_scopes, \
    allowed_audiences, token_lifetime_secs, rate_limit_rps, enabled, \
    tokens_valid_after, created_at, updated_at, tls_auth_kind, tls_auth_value, require_dpop";

/// Inserts every column, in [`CLIENT_COLUMNS`] order.
pub(super) const INSERT_CLIENT: &str = "INSERT INTO clients (id, name, secret_hash, \
    previous_secret_hash, previous_secret_expires_at, secret_imported, allowed_scopes, \
    default_scopes, allowed_audiences, token_lifetime_secs, rate_limit_rps, enabled, \
    tokens_valid_after, created_at, updated_at, tls_auth_kind, tls_auth_value, require_dpop) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

/// Replaces every column but the id, with the same parameters as the insert.
pub(super) const UPDATE_CLIENT: &str = "UPDATE clients SET name = $2, secret_hash = $3, \
    previous_secret_hash = $4, previous_secret_expires_at = $5, secret_imported = $6, \
    allowed_scopes = $7, default_scopes = $8, allowed_audiences = $9, \
    token_lifetime_secs = $10, rate_limit_rps = $11, enabled = $12, \
    tokens_valid_after = $13, created_at = $14, updated_at = $15, tls_auth_kind = $16, \
    tls_auth_value = $17, require_dpop = $18 WHERE id = $1";

/// `SELECT` of every client column followed by `rest` (a filter or order).
pub(super) fn select_clients(rest: &str) -> String {
    format!("SELECT {CLIENT_COLUMNS} FROM clients {rest}")
}

/// A row of one table: a column that does not decode is reported with the
/// table's name and the column's position.
pub(super) struct Columns<'a> {
    row: &'a Row,
    table: &'static str,
}

impl<'a> Columns<'a> {
    /// Reads `row` as a row of `table`.
    pub(super) fn of(row: &'a Row, table: &'static str) -> Self {
        Self { row, table }
    }

    /// The value of column `index`.
    pub(super) fn get<T: tokio_postgres::types::FromSql<'a>>(
        &self,
        index: usize,
    ) -> Result<T, StoreError> {
        self.row.try_get(index).map_err(|e| {
            CorruptRow::Column {
                table: self.table,
                index,
                source: e.into(),
            }
            .into()
        })
    }
}

fn corrupt(id: &str, field: ClientField) -> StoreError {
    CorruptRow::Client {
        id: id.to_owned(),
        field,
    }
    .into()
}

fn small(id: &str, value: Option<i64>, what: ClientField) -> Result<Option<u32>, StoreError> {
    value
        .map(|v| u32::try_from(v).map_err(|_| corrupt(id, what)))
        .transpose()
}

/// Decodes a row selected with [`select_clients`].
pub(super) fn client_from_row(row: &Row) -> Result<Client, StoreError> {
    let row = Columns::of(row, "clients");
    let id: String = row.get(0)?;
    let scopes = |i| -> Result<ScopeSet, StoreError> {
        ScopeSet::parse(row.get::<&str>(i)?).map_err(|_| corrupt(&id, ClientField::Scopes))
    };
    let secret_hash = SecretHash::from_slice(row.get::<&[u8]>(2)?)
        .ok_or_else(|| corrupt(&id, ClientField::SecretHash))?;
    let previous_secret_hash = row
        .get::<Option<&[u8]>>(3)?
        .map(|bytes| {
            SecretHash::from_slice(bytes)
                .ok_or_else(|| corrupt(&id, ClientField::PreviousSecretHash))
        })
        .transpose()?;
    let audiences: &str = row.get(8)?;
    let tls_client_auth = match (row.get::<Option<&str>>(15)?, row.get::<Option<&str>>(16)?) {
        (Some(kind), Some(value)) => Some(
            TlsClientAuth::from_parts(kind, value)
                .map_err(|_| corrupt(&id, ClientField::TlsClientAuth))?,
        ),
        (None, None) => None,
        _ => return Err(corrupt(&id, ClientField::TlsClientAuth)),
    };
    Ok(Client {
        tls_client_auth,
        require_dpop: row.get(17)?,
        name: row.get(1)?,
        secret_hash,
        previous_secret_hash,
        previous_secret_expires_at: row.get(4)?,
        secret_imported: row.get(5)?,
        allowed_scopes: scopes(6)?,
        default_scopes: scopes(7)?,
        allowed_audiences: audiences.split_whitespace().map(str::to_owned).collect(),
        token_lifetime_secs: small(&id, row.get(9)?, ClientField::TokenLifetime)?,
        rate_limit_rps: small(&id, row.get(10)?, ClientField::RateLimit)?,
        enabled: row.get(11)?,
        tokens_valid_after: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        id,
    })
}

/// Runs [`INSERT_CLIENT`] or [`UPDATE_CLIENT`] for `c`; rows affected.
pub(super) async fn write_client(
    tx: &Transaction<'_>,
    sql: &str,
    c: &Client,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(
        &stmt,
        &[
            &c.id,
            &c.name,
            &c.secret_hash.0.as_slice(),
            &c.previous_secret_hash.as_ref().map(|h| h.0.as_slice()),
            &c.previous_secret_expires_at,
            &c.secret_imported,
            &c.allowed_scopes.to_string(),
            &c.default_scopes.to_string(),
            &c.allowed_audiences.join(" "),
            &c.token_lifetime_secs.map(i64::from),
            &c.rate_limit_rps.map(i64::from),
            &c.enabled,
            &c.tokens_valid_after,
            &c.created_at,
            &c.updated_at,
            &c.tls_client_auth.as_ref().map(TlsClientAuth::kind),
            &c.tls_client_auth.as_ref().map(TlsClientAuth::value),
            &c.require_dpop,
        ],
    )
    .await
}

/// Decodes `jti, client_id, exp, revoked_at`.
pub(super) fn revocation_from_row(row: &Row) -> Result<Revocation, StoreError> {
    let row = Columns::of(row, "revocations");
    Ok(Revocation {
        jti: row.get(0)?,
        client_id: row.get(1)?,
        exp: row.get(2)?,
        revoked_at: row.get(3)?,
    })
}

/// Adds one change-log row (`seq, kind, key` and the joined revocation).
pub(super) fn add_change(batch: &mut ChangeBatch, row: &Row) -> Result<(), StoreError> {
    let row = Columns::of(row, "changes");
    let seq: i64 = row.get(0)?;
    let kind: &str = row.get(1)?;
    let key: String = row.get(2)?;
    batch.cursor = seq;
    if kind == "client" {
        batch.clients.push(key);
    } else if kind == "key" {
        batch.keys_changed = true;
    } else if let (Some(client_id), Some(exp), Some(revoked_at)) =
        (row.get(3)?, row.get(4)?, row.get(5)?)
    {
        // A pruned revocation has no row left and needs none.
        batch.revocations.push(Revocation {
            jti: key,
            client_id,
            exp,
            revoked_at,
        });
    }
    Ok(())
}
