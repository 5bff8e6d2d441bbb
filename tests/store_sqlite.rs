//! The store contract on the embedded store (always runs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::store::ClientStore;
use auth_server::store::sqlite::SqliteStore;
use common::contract;

async fn fresh_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("data/auth.db")).unwrap();
    assert_eq!(
        store.migrate().await.unwrap().applied,
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    (store, dir)
}

contract::contract_tests!(fresh: fresh_store().await);

#[tokio::test]
async fn the_embedded_store_has_no_push_signal() {
    let (store, _dir) = fresh_store().await;
    let store: &dyn auth_server::store::Store = &store;
    assert!(store.change_notifications().is_none());
}

/// Nothing but retention pruning removes a record: SQL that would rewrite
/// the trail, or delete a record younger than a day, is refused by the
/// database itself.
#[tokio::test]
async fn the_audit_trail_is_append_only() {
    use auth_server::audit::{Action, Actor, AuditQuery};
    use auth_server::store::{AuditStore, AuditedChange};
    let (store, dir) = fresh_store().await;
    let now = auth_server::clock::unix_now();
    let entry = Actor::cli("ops").entry(Action::TokenRevoke, "j1", serde_json::json!({}), now);
    let change = AuditedChange::Revoke(contract::revocation("j1", now + 60));
    assert!(store.write_audited(&change, &entry).await.unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("data/auth.db")).unwrap();
    for sql in [
        "UPDATE audit_log SET actor_id = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let refused = conn.execute(sql, []).unwrap_err().to_string();
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    let left = store.audit_records(&AuditQuery::default()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].entry, entry);
}
