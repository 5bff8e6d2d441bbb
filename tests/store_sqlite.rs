//! The store contract on the embedded store (always runs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::store::ClientStore;
use auth_server::store::sqlite::SqliteStore;
use common::contract;

async fn fresh_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("data/auth.db")).unwrap();
    assert_eq!(store.migrate().await.unwrap().applied, [1, 2, 3, 4, 5, 6]);
    (store, dir)
}

contract::contract_tests!(fresh: fresh_store().await);

#[tokio::test]
async fn the_embedded_store_has_no_push_signal() {
    let (store, _dir) = fresh_store().await;
    let store: &dyn auth_server::store::Store = &store;
    assert!(store.change_notifications().is_none());
}
