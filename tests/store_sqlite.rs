//! The store contract on the embedded store (always runs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::store::ClientStore;
use auth_server::store::sqlite::SqliteStore;
use common::contract;

async fn fresh_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("data/auth.db")).unwrap();
    assert_eq!(store.migrate().await.unwrap().applied, [1, 2, 3]);
    (store, dir)
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (store, _dir) = fresh_store().await;
            contract::$name(&store).await;
        }
    )*};
}

contract_tests!(
    clients_round_trip,
    migrate_is_idempotent,
    revocations_are_kept_until_expiry,
    the_change_feed_lists_every_write,
    a_cursor_behind_the_pruned_log_reloads,
    signing_keys_change_only_as_expected,
    key_changes_reach_the_feed,
    the_longest_client_lifetime_is_known,
);

#[tokio::test]
async fn the_embedded_store_has_no_push_signal() {
    let (store, _dir) = fresh_store().await;
    let store: &dyn auth_server::store::Store = &store;
    assert!(store.change_notifications().is_none());
}
