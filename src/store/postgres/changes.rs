//! Revocations and the change feed. Every write to the change log goes
//! through [`record_change`], which keeps `seq` in commit order.

use deadpool_postgres::Transaction;
use tokio::sync::watch;

use super::{CHANGE_LOG_LOCK, PostgresStore, apply, rows, unavailable};
use crate::store::{
    AuditedChange, CHANGE_LOG_RETENTION_SECS, ChangeBatch, Heartbeat, PoolStatus, Revocation,
    RevocationStore, SeenAssertion, Store, StoreError, StoreFuture,
};

/// Appends to the change log. The lock makes concurrent writers commit in
/// `seq` order: otherwise a reader could see seq 8 before seq 7 commits and
/// move its cursor past 7 for good.
pub(super) async fn record_change(
    tx: &Transaction<'_>,
    kind: &str,
    key: &str,
) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGE_LOG_LOCK])
        .await
        .map_err(unavailable)?;
    tx.execute(
        "INSERT INTO changes (kind, key, at) \
         VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)",
        &[&kind, &key],
    )
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// Records a revocation inside the caller's transaction.
pub(super) async fn revoke(tx: &Transaction<'_>, r: &Revocation) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO revocations (jti, client_id, exp, revoked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
        )
        .await
        .map_err(unavailable)?;
    let inserted = tx
        .execute(&stmt, &[&r.jti, &r.client_id, &r.exp, &r.revoked_at])
        .await
        .map_err(unavailable)?;
    if inserted == 1 {
        record_change(tx, "revocation", &r.jti).await?;
    }
    Ok(())
}

impl RevocationStore for PostgresStore {
    fn revoke<'a>(&'a self, r: &'a Revocation) -> StoreFuture<'a, ()> {
        self.with_client(move |mut conn| async move {
            let change = AuditedChange::Revoke(r.clone());
            apply(&mut conn, &change, None).await.map(|_| ())
        })
    }

    fn active_revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        self.with_client(move |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT jti, client_id, exp, revoked_at FROM revocations WHERE exp > $1",
                )
                .await
                .map_err(unavailable)?;
            let rows = client.query(&stmt, &[&now]).await.map_err(unavailable)?;
            rows.iter().map(rows::revocation_from_row).collect()
        })
    }

    fn prune(&self, now: i64) -> StoreFuture<'_, u64> {
        self.with_client(move |mut conn| async move {
            let tx = conn.transaction().await.map_err(unavailable)?;
            let pruned = tx
                .execute("DELETE FROM revocations WHERE exp <= $1", &[&now])
                .await
                .map_err(unavailable)?;
            tx.execute("DELETE FROM client_assertion_jtis WHERE exp <= $1", &[&now])
                .await
                .map_err(unavailable)?;
            tx.execute(
                "DELETE FROM changes WHERE at < $1",
                &[&(now - CHANGE_LOG_RETENTION_SECS)],
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(pruned)
        })
    }
}

impl Store for PostgresStore {
    fn change_cursor(&self) -> StoreFuture<'_, i64> {
        self.with_client(|client| async move {
            let stmt = client
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")
                .await
                .map_err(unavailable)?;
            Ok(client
                .query_one(&stmt, &[])
                .await
                .map_err(unavailable)?
                .get(0))
        })
    }

    fn changes_since(&self, cursor: i64) -> StoreFuture<'_, ChangeBatch> {
        self.with_client(move |mut conn| async move {
            // One snapshot for both reads, so the oldest seq matches the rows.
            let tx = conn
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(unavailable)?;
            let oldest_stmt = tx
                .prepare_cached("SELECT MIN(seq) FROM changes")
                .await
                .map_err(unavailable)?;
            let oldest: Option<i64> = tx
                .query_one(&oldest_stmt, &[])
                .await
                .map_err(unavailable)?
                .get(0);
            let stmt = tx
                .prepare_cached(
                    "SELECT c.seq, c.kind, c.key, r.client_id, r.exp, r.revoked_at \
                     FROM changes c LEFT JOIN revocations r \
                       ON c.kind = 'revocation' AND r.jti = c.key \
                     WHERE c.seq > $1 ORDER BY c.seq LIMIT 10000",
                )
                .await
                .map_err(unavailable)?;
            let rows = tx.query(&stmt, &[&cursor]).await.map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            let mut batch = ChangeBatch {
                cursor,
                // Entries after the cursor were pruned: the caller missed some.
                full_reload: oldest.is_some_and(|oldest| oldest > cursor + 1) && cursor > 0,
                ..ChangeBatch::default()
            };
            for row in &rows {
                rows::add_change(&mut batch, row)?;
            }
            Ok(batch)
        })
    }

    fn change_notifications(&self) -> Option<watch::Receiver<u64>> {
        self.listen_for_changes()
    }

    fn heartbeat<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, u32> {
        self.beat(beat)
    }

    fn leave<'a>(&'a self, instance: &'a str) -> StoreFuture<'a, ()> {
        self.forget(instance)
    }

    fn remember_assertion<'a>(&'a self, seen: &'a SeenAssertion) -> StoreFuture<'a, bool> {
        self.with_client(move |client| async move {
            // One statement, so two instances racing on one jti cannot both
            // win: the primary key decides. A row of an expired assertion
            // that the prune has not reached yet is taken over.
            let stmt = client
                .prepare_cached(
                    "INSERT INTO client_assertion_jtis (client_id, jti, exp) VALUES ($1, $2, $3) \
                     ON CONFLICT (client_id, jti) DO UPDATE SET exp = EXCLUDED.exp \
                     WHERE client_assertion_jtis.exp <= $4",
                )
                .await
                .map_err(unavailable)?;
            let written = client
                .execute(&stmt, &[&seen.client_id, &seen.jti, &seen.exp, &seen.now])
                .await
                .map_err(unavailable)?;
            Ok(written == 1)
        })
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let status = self.pool.status();
        Some(PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        })
    }
}
