//! Federated subjects in SQLite: read all at once (they are matched in
//! memory), added and removed inside an audited transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::{record_change, unavailable};
use crate::domain::federation::FederatedSubject;
use crate::store::StoreError;

/// Every federated subject, ordered by client, issuer, subject.
pub(super) fn list(conn: &Connection) -> Result<Vec<FederatedSubject>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT client_id, issuer, subject FROM federated_subjects \
             ORDER BY client_id, issuer, subject",
        )
        .map_err(unavailable)?;
    stmt.query_map([], |row| {
        Ok(FederatedSubject {
            client_id: row.get(0)?,
            issuer: row.get(1)?,
            subject: row.get(2)?,
        })
    })
    .map_err(unavailable)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(unavailable)
}

/// Adds `subject`; `false` when the client does not exist.
pub(super) fn add(
    tx: &Connection,
    subject: &FederatedSubject,
    at: i64,
) -> Result<bool, StoreError> {
    let client: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM clients WHERE id = ?1",
            params![subject.client_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    if client.is_none() {
        return Ok(false);
    }
    let inserted = tx
        .execute(
            "INSERT OR IGNORE INTO federated_subjects (client_id, issuer, subject, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![subject.client_id, subject.issuer, subject.subject, at],
        )
        .map_err(unavailable)?;
    if inserted == 0 {
        return Err(StoreError::Duplicate(subject.subject.clone()));
    }
    record_change(tx, "client", &subject.client_id).map_err(unavailable)?;
    Ok(true)
}

/// Removes `subject`; `false` when the client did not list it.
pub(super) fn remove(tx: &Connection, subject: &FederatedSubject) -> Result<bool, StoreError> {
    let deleted = tx
        .execute(
            "DELETE FROM federated_subjects WHERE client_id = ?1 AND issuer = ?2 AND subject = ?3",
            params![subject.client_id, subject.issuer, subject.subject],
        )
        .map_err(unavailable)?;
    if deleted == 1 {
        record_change(tx, "client", &subject.client_id).map_err(unavailable)?;
    }
    Ok(deleted == 1)
}
