//! Conversion between rows and domain records. Columns are typed as in the
//! migrations; counts that the domain keeps as `u32` are `BIGINT` here
//! (PostgreSQL has no unsigned types) and checked on the way back.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use crate::domain::certificate::TlsClientAuth;
use crate::domain::client::{Client, SecretHash};
use crate::domain::scope::ScopeSet;
use crate::store::{ChangeBatch, Revocation, StoreError};

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

fn corrupt(id: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("client {id}: {what}"))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

fn small(id: &str, value: Option<i64>, what: &str) -> Result<Option<u32>, StoreError> {
    value
        .map(|v| u32::try_from(v).map_err(|_| corrupt(id, what)))
        .transpose()
}

/// Decodes a row selected with [`select_clients`].
pub(super) fn client_from_row(row: &Row) -> Result<Client, StoreError> {
    let id: String = get(row, 0)?;
    let scopes = |i| -> Result<ScopeSet, StoreError> {
        ScopeSet::parse(get::<&str>(row, i)?).map_err(|_| corrupt(&id, "malformed scopes"))
    };
    let secret_hash = SecretHash::from_slice(get::<&[u8]>(row, 2)?)
        .ok_or_else(|| corrupt(&id, "bad secret hash"))?;
    let previous_secret_hash = get::<Option<&[u8]>>(row, 3)?
        .map(|bytes| SecretHash::from_slice(bytes).ok_or_else(|| corrupt(&id, "bad previous hash")))
        .transpose()?;
    let audiences: &str = get(row, 8)?;
    let tls_client_auth = match (get::<Option<&str>>(row, 15)?, get::<Option<&str>>(row, 16)?) {
        (Some(kind), Some(value)) => {
            Some(TlsClientAuth::from_parts(kind, value).map_err(|e| corrupt(&id, &e.to_string()))?)
        }
        (None, None) => None,
        _ => return Err(corrupt(&id, "half a certificate registration")),
    };
    Ok(Client {
        tls_client_auth,
        require_dpop: get(row, 17)?,
        name: get(row, 1)?,
        secret_hash,
        previous_secret_hash,
        previous_secret_expires_at: get(row, 4)?,
        secret_imported: get(row, 5)?,
        allowed_scopes: scopes(6)?,
        default_scopes: scopes(7)?,
        allowed_audiences: audiences.split_whitespace().map(str::to_owned).collect(),
        token_lifetime_secs: small(&id, get(row, 9)?, "token lifetime out of range")?,
        rate_limit_rps: small(&id, get(row, 10)?, "rate limit out of range")?,
        enabled: get(row, 11)?,
        tokens_valid_after: get(row, 12)?,
        created_at: get(row, 13)?,
        updated_at: get(row, 14)?,
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
    Ok(Revocation {
        jti: get(row, 0)?,
        client_id: get(row, 1)?,
        exp: get(row, 2)?,
        revoked_at: get(row, 3)?,
    })
}

/// Adds one change-log row (`seq, kind, key` and the joined revocation).
pub(super) fn add_change(batch: &mut ChangeBatch, row: &Row) -> Result<(), StoreError> {
    let seq: i64 = get(row, 0)?;
    let kind: &str = get(row, 1)?;
    let key: String = get(row, 2)?;
    batch.cursor = seq;
    if kind == "client" {
        batch.clients.push(key);
    } else if kind == "key" {
        batch.keys_changed = true;
    } else if let (Some(client_id), Some(exp), Some(revoked_at)) =
        (get(row, 3)?, get(row, 4)?, get(row, 5)?)
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
