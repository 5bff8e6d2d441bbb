//! Instance heartbeats in the embedded store (the same rows as in
//! PostgreSQL; see `store::postgres::instances`).

use rusqlite::{Connection, params};

use super::unavailable;
use crate::store::{Heartbeat, StoreError};

/// Renews the beat's row, forgets expired instances, counts the live ones.
pub(super) fn heartbeat(conn: &mut Connection, beat: &Heartbeat) -> Result<u32, StoreError> {
    let tx = conn.transaction().map_err(unavailable)?;
    tx.execute(
        "DELETE FROM instances WHERE last_seen < ?1",
        params![beat.expired_before],
    )
    .map_err(unavailable)?;
    tx.execute(
        "INSERT INTO instances (id, version, started_at, last_seen) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
        params![beat.instance, beat.version, beat.started_at, beat.now],
    )
    .map_err(unavailable)?;
    let live: i64 = tx
        .query_row("SELECT COUNT(*) FROM instances", [], |r| r.get(0))
        .map_err(unavailable)?;
    tx.commit().map_err(unavailable)?;
    Ok(u32::try_from(live).unwrap_or(u32::MAX))
}

/// Deletes `instance`'s row.
pub(super) fn leave(conn: &mut Connection, instance: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM instances WHERE id = ?1", params![instance])
        .map_err(unavailable)?;
    Ok(())
}
