//! Signing keys in the embedded store. Writes run in one `BEGIN IMMEDIATE`
//! transaction, so writers (the server, the CLI) queue on SQLite's write
//! lock and each sees what the one before it committed.

use rusqlite::{Connection, Row, params};

use super::{SqliteStore, apply, reading, record_change, unavailable};
use crate::keys::Algorithm;
use crate::keys::lifecycle::{KeyRecord, KeyState};
use crate::store::{
    AuditedChange, CorruptRow, KeyStore, KeyWrite, StoreError, StoreFuture, StoredKey,
};

const KEY_COLUMNS: &str = "kid, algorithm, state, public_jwk, kek_id, sealed_key, created_at, \
    promote_at, activated_at, demoted_at, retire_at, retired_at";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<Result<StoredKey, StoreError>> {
    let kid: String = row.get(0)?;
    let alg: String = row.get(1)?;
    let state: String = row.get(2)?;
    let (Some(alg), Some(state)) = (Algorithm::from_name(&alg), KeyState::from_name(&state)) else {
        return Ok(Err(CorruptRow::SigningKey { kid }.into()));
    };
    Ok(Ok(StoredKey {
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
    }))
}

fn conflict(e: rusqlite::Error, kid: &str) -> StoreError {
    let taken = matches!(&e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation);
    if taken {
        StoreError::key_taken(kid, e)
    } else {
        unavailable(e)
    }
}

impl KeyStore for SqliteStore {
    fn signing_keys(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        self.with_conn(|conn| {
            let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid");
            let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
            let rows = stmt
                .query_map([], key_from_row)
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(reading("signing_keys"))?;
            rows.into_iter().collect()
        })
    }

    fn write_signing_keys<'a>(&'a self, writes: &'a [KeyWrite]) -> StoreFuture<'a, ()> {
        let change = AuditedChange::SigningKeys(writes.to_vec());
        self.with_conn(move |conn| apply(conn, &change, None).map(|_| ()))
    }
}

/// Applies `writes` inside the caller's transaction, with one change-feed
/// entry.
pub(super) fn write(tx: &Connection, writes: &[KeyWrite]) -> Result<(), StoreError> {
    for write in writes {
        match write {
            KeyWrite::Insert(key) => {
                let r = &key.record;
                tx.execute(
                    &format!(
                        "INSERT INTO signing_keys ({KEY_COLUMNS}) \
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                    ),
                    params![
                        r.kid,
                        r.alg.name(),
                        r.state.name(),
                        key.public_jwk,
                        key.kek_id,
                        key.sealed_key,
                        r.created_at,
                        r.promote_at,
                        r.activated_at,
                        r.demoted_at,
                        r.retire_at,
                        r.retired_at,
                    ],
                )
                .map_err(|e| conflict(e, &r.kid))?;
            }
            KeyWrite::Update { from, record: r } => {
                let updated = tx
                    .execute(
                        "UPDATE signing_keys SET state = ?2, promote_at = ?3, \
                                 activated_at = ?4, demoted_at = ?5, retire_at = ?6, \
                                 retired_at = ?7 WHERE kid = ?1 AND state = ?8",
                        params![
                            r.kid,
                            r.state.name(),
                            r.promote_at,
                            r.activated_at,
                            r.demoted_at,
                            r.retire_at,
                            r.retired_at,
                            from.name(),
                        ],
                    )
                    .map_err(|e| conflict(e, &r.kid))?;
                if updated != 1 {
                    return Err(StoreError::key_moved(&r.kid, *from));
                }
            }
        }
    }
    if let Some(first) = writes.first() {
        let kid = first.kid();
        record_change(tx, "key", kid).map_err(unavailable)?;
    }
    Ok(())
}
