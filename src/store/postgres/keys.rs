//! Signing keys in PostgreSQL. Every update is conditional on the state the
//! writer saw (`WHERE kid = $1 AND state = $8`): of several instances
//! promoting at once, the first takes the row lock and commits, the others
//! wait on it, find the row changed and fail with a conflict. The partial
//! unique indexes refuse a second current or next key whatever the order.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::rows::Columns;
use super::{PostgresStore, apply, changes, unavailable};
use crate::keys::Algorithm;
use crate::keys::lifecycle::{KeyRecord, KeyState};
use crate::store::{
    AuditedChange, CorruptRow, KeyStore, KeyWrite, StoreError, StoreFuture, StoredKey,
};

const KEY_COLUMNS: &str = "kid, algorithm, state, public_jwk, kek_id, sealed_key, created_at, \
    promote_at, activated_at, demoted_at, retire_at, retired_at";

const UPDATE_KEY: &str = "UPDATE signing_keys SET state = $2, promote_at = $3, \
    activated_at = $4, demoted_at = $5, retire_at = $6, retired_at = $7 \
    WHERE kid = $1 AND state = $8";

fn key_from_row(row: &Row) -> Result<StoredKey, StoreError> {
    let row = Columns::of(row, "signing_keys");
    let kid: String = row.get(0)?;
    let (Some(alg), Some(state)) = (
        Algorithm::from_name(row.get(1)?),
        KeyState::from_name(row.get(2)?),
    ) else {
        return Err(CorruptRow::SigningKey { kid }.into());
    };
    Ok(StoredKey {
        public_jwk: row.get(3)?,
        kek_id: row.get(4)?,
        sealed_key: row.get(5)?,
        record: KeyRecord {
            kid,
            alg,
            state,
            created_at: row.get(6)?,
            promote_at: row.get(7)?,
            activated_at: row.get(8)?,
            demoted_at: row.get(9)?,
            retire_at: row.get(10)?,
            retired_at: row.get(11)?,
        },
    })
}

fn conflict(e: tokio_postgres::Error, kid: &str) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::key_taken(kid, e)
    } else {
        unavailable(e)
    }
}

impl KeyStore for PostgresStore {
    fn signing_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        self.with_client(|client| async move {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"
                ))
                .await
                .map_err(unavailable)?;
            let rows = client.query(&stmt, &[]).await.map_err(unavailable)?;
            rows.iter().map(key_from_row).collect()
        })
    }

    fn write_signing_keys<'a>(&'a self, writes: &'a [KeyWrite]) -> StoreFuture<'a, ()> {
        self.with_client(move |mut conn| async move {
            let change = AuditedChange::SigningKeys(writes.to_vec());
            apply(&mut conn, &change, None).await.map(|_| ())
        })
    }
}

/// Applies `writes` inside the caller's transaction, with one change-feed
/// entry.
pub(super) async fn write(tx: &Transaction<'_>, writes: &[KeyWrite]) -> Result<(), StoreError> {
    for write in writes {
        match write {
            KeyWrite::Insert(key) => {
                let r = &key.record;
                let stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO signing_keys ({KEY_COLUMNS}) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                    ))
                    .await
                    .map_err(unavailable)?;
                tx.execute(
                    &stmt,
                    &[
                        &r.kid,
                        &r.alg.name(),
                        &r.state.name(),
                        &key.public_jwk,
                        &key.kek_id,
                        &key.sealed_key,
                        &r.created_at,
                        &r.promote_at,
                        &r.activated_at,
                        &r.demoted_at,
                        &r.retire_at,
                        &r.retired_at,
                    ],
                )
                .await
                .map_err(|e| conflict(e, &r.kid))?;
            }
            KeyWrite::Update { from, record: r } => {
                let stmt = tx.prepare_cached(UPDATE_KEY).await.map_err(unavailable)?;
                let updated = tx
                    .execute(
                        &stmt,
                        &[
                            &r.kid,
                            &r.state.name(),
                            &r.promote_at,
                            &r.activated_at,
                            &r.demoted_at,
                            &r.retire_at,
                            &r.retired_at,
                            &from.name(),
                        ],
                    )
                    .await
                    .map_err(|e| conflict(e, &r.kid))?;
                if updated != 1 {
                    return Err(StoreError::key_moved(&r.kid, *from));
                }
            }
        }
    }
    if let Some(first) = writes.first() {
        let kid = first.kid();
        changes::record_change(tx, "key", kid).await?;
    }
    Ok(())
}
