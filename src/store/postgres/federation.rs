//! Federated subjects in PostgreSQL: read all at once (they are matched in
//! memory), added and removed inside an audited transaction.

use deadpool_postgres::Transaction;

use super::{changes, unavailable};
use crate::domain::federation::FederatedSubject;
use crate::store::StoreError;

/// Every federated subject, ordered by client, issuer, subject.
pub(super) async fn list(
    client: &deadpool_postgres::Object,
) -> Result<Vec<FederatedSubject>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT client_id, issuer, subject FROM federated_subjects \
             ORDER BY client_id, issuer, subject",
        )
        .await
        .map_err(unavailable)?;
    let rows = client.query(&stmt, &[]).await.map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|row| FederatedSubject {
            client_id: row.get(0),
            issuer: row.get(1),
            subject: row.get(2),
        })
        .collect())
}

/// Adds `subject`; `false` when the client does not exist.
pub(super) async fn add(
    tx: &Transaction<'_>,
    subject: &FederatedSubject,
    at: i64,
) -> Result<bool, StoreError> {
    let exists = tx
        .query_opt(
            "SELECT 1 FROM clients WHERE id = $1 FOR SHARE",
            &[&subject.client_id],
        )
        .await
        .map_err(unavailable)?;
    if exists.is_none() {
        return Ok(false);
    }
    let inserted = tx
        .execute(
            "INSERT INTO federated_subjects (client_id, issuer, subject, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&subject.client_id, &subject.issuer, &subject.subject, &at],
        )
        .await
        .map_err(unavailable)?;
    if inserted == 0 {
        return Err(StoreError::Duplicate(subject.subject.clone()));
    }
    changes::record_change(tx, "client", &subject.client_id).await?;
    Ok(true)
}

/// Removes `subject`; `false` when the client did not list it.
pub(super) async fn remove(
    tx: &Transaction<'_>,
    subject: &FederatedSubject,
) -> Result<bool, StoreError> {
    let deleted = tx
        .execute(
            "DELETE FROM federated_subjects WHERE client_id = $1 AND issuer = $2 AND subject = $3",
            &[&subject.client_id, &subject.issuer, &subject.subject],
        )
        .await
        .map_err(unavailable)?;
    if deleted == 1 {
        changes::record_change(tx, "client", &subject.client_id).await?;
    }
    Ok(deleted == 1)
}
