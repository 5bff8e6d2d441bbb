//! Instance heartbeats: one row per running instance, renewed on every beat.
//! The count of live rows is what per-client rate limits are divided by.

use super::{PostgresStore, unavailable};
use crate::store::{Heartbeat, StoreError, StoreFuture};

impl PostgresStore {
    /// Renews the beat's row, forgets expired instances, counts the live
    /// ones, in one transaction. No change-log entry: every instance reads
    /// the count at its own next beat.
    pub(super) fn beat<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, u32> {
        self.with_client(move |mut conn| async move {
            let tx = conn.transaction().await.map_err(unavailable)?;
            let expire = tx
                .prepare_cached("DELETE FROM instances WHERE last_seen < $1")
                .await
                .map_err(unavailable)?;
            tx.execute(&expire, &[&beat.expired_before])
                .await
                .map_err(unavailable)?;
            let renew = tx
                .prepare_cached(
                    "INSERT INTO instances (id, version, started_at, last_seen) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen",
                )
                .await
                .map_err(unavailable)?;
            tx.execute(
                &renew,
                &[&beat.instance, &beat.version, &beat.started_at, &beat.now],
            )
            .await
            .map_err(unavailable)?;
            let count = tx
                .prepare_cached("SELECT COUNT(*) FROM instances")
                .await
                .map_err(unavailable)?;
            let live: i64 = tx.query_one(&count, &[]).await.map_err(unavailable)?.get(0);
            tx.commit().await.map_err(unavailable)?;
            Ok(u32::try_from(live).unwrap_or(u32::MAX))
        })
    }

    /// Deletes `instance`'s row.
    pub(super) fn forget<'a>(&'a self, instance: &'a str) -> StoreFuture<'a, ()> {
        self.with_client(move |client| async move {
            let stmt = client
                .prepare_cached("DELETE FROM instances WHERE id = $1")
                .await
                .map_err(unavailable)?;
            client
                .execute(&stmt, &[&instance])
                .await
                .map_err(unavailable)?;
            Ok::<(), StoreError>(())
        })
    }
}
