//! The audit trail in the embedded store: appended inside the change's own
//! transaction, read back for `audit list`, pruned only by retention.

use rusqlite::{Connection, Row, params};

use super::{SqliteStore, apply, unavailable};
use crate::audit::{Actor, AuditEntry, AuditQuery, AuditRecord};
use crate::store::{AuditStore, AuditedChange, StoreError, StoreFuture};

/// Appends `entry` inside the caller's transaction.
pub(super) fn append(tx: &Connection, entry: &AuditEntry) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, actor_id, request_id, peer_ip, action, target, changes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            entry.at,
            entry.actor.actor,
            entry.actor.actor_id,
            entry.actor.request_id,
            entry.actor.peer_ip,
            entry.action,
            entry.target,
            entry.changes.to_string(),
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
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

impl AuditStore for SqliteStore {
    fn write_audited<'a>(
        &'a self,
        change: &'a AuditedChange,
        entry: &'a AuditEntry,
    ) -> StoreFuture<'a, bool> {
        let (change, entry) = (change.clone(), entry.clone());
        self.with_conn(move |conn| apply(conn, &change, Some(&entry)))
    }

    fn audit_records<'a>(&'a self, query: &'a AuditQuery) -> StoreFuture<'a, Vec<AuditRecord>> {
        let query = query.clone();
        self.with_conn(move |conn| {
            // The newest `limit` records, then put back in order.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, at, actor, actor_id, request_id, peer_ip, action, target, changes \
                     FROM audit_log \
                     WHERE at >= ?1 AND (?2 IS NULL OR target = ?2 \
                        OR (actor = 'admin_api' AND actor_id = ?2)) \
                     ORDER BY seq DESC LIMIT ?3",
                )
                .map_err(unavailable)?;
            let limit = if query.limit == 0 {
                -1
            } else {
                i64::from(query.limit)
            };
            let mut records = stmt
                .query_map(
                    params![query.since.unwrap_or(i64::MIN), query.client, limit],
                    record_from_row,
                )
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(unavailable)?;
            records.reverse();
            Ok(records)
        })
    }

    fn prune_audit(&self, before: i64) -> StoreFuture<'_, u64> {
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM audit_log WHERE at < ?1", params![before])
                .map(|n| n as u64)
                .map_err(unavailable)
        })
    }
}
