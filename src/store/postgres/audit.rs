//! The audit trail in PostgreSQL: appended inside the change's own
//! transaction, read back for `audit list`, pruned only by retention.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::rows::Columns;
use super::{PostgresStore, apply, unavailable};
use crate::audit::{Actor, AuditEntry, AuditQuery, AuditRecord};
use crate::store::{AuditStore, AuditedChange, StoreError, StoreFuture};

/// Appends `entry` inside the caller's transaction.
pub(super) async fn append(tx: &Transaction<'_>, entry: &AuditEntry) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit_log \
             (at, actor, actor_id, request_id, peer_ip, action, target, changes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(unavailable)?;
    tx.execute(
        &stmt,
        &[
            &entry.at,
            &entry.actor.actor,
            &entry.actor.actor_id,
            &entry.actor.request_id,
            &entry.actor.peer_ip,
            &entry.action,
            &entry.target,
            &entry.changes.to_string(),
        ],
    )
    .await
    .map_err(unavailable)?;
    Ok(())
}

fn record_from_row(row: &Row) -> Result<AuditRecord, StoreError> {
    let row = Columns::of(row, "audit_log");
    let changes: String = row.get(8)?;
    Ok(AuditRecord {
        seq: row.get(0)?,
        entry: AuditEntry {
            at: row.get(1)?,
            actor: Actor {
                actor: row.get(2)?,
                actor_id: row.get(3)?,
                request_id: row.get(4)?,
                peer_ip: row.get(5)?,
            },
            action: row.get(6)?,
            target: row.get(7)?,
            changes: serde_json::from_str(&changes).unwrap_or(serde_json::Value::String(changes)),
        },
    })
}

impl AuditStore for PostgresStore {
    fn write_audited<'a>(
        &'a self,
        change: &'a AuditedChange,
        entry: &'a AuditEntry,
    ) -> StoreFuture<'a, bool> {
        self.with_client(move |mut conn| async move { apply(&mut conn, change, Some(entry)).await })
    }

    fn audit_records<'a>(&'a self, query: &'a AuditQuery) -> StoreFuture<'a, Vec<AuditRecord>> {
        self.with_client(move |client| async move {
            // The newest `limit` records, then put back in order.
            let stmt = client
                .prepare_cached(
                    "SELECT seq, at, actor, actor_id, request_id, peer_ip, action, target, changes \
                     FROM audit_log \
                     WHERE at >= $1 AND ($2::TEXT IS NULL OR target = $2 \
                        OR (actor = 'admin_api' AND actor_id = $2)) \
                     ORDER BY seq DESC LIMIT $3",
                )
                .await
                .map_err(unavailable)?;
            let limit = if query.limit == 0 {
                None
            } else {
                Some(i64::from(query.limit))
            };
            let since = query.since.unwrap_or(i64::MIN);
            let rows = client
                .query(&stmt, &[&since, &query.client, &limit])
                .await
                .map_err(unavailable)?;
            let mut records = rows
                .iter()
                .map(record_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            records.reverse();
            Ok(records)
        })
    }

    fn prune_audit(&self, before: i64) -> StoreFuture<'_, u64> {
        self.with_client(move |client| async move {
            client
                .execute("DELETE FROM audit_log WHERE at < $1", &[&before])
                .await
                .map_err(unavailable)
        })
    }
}
