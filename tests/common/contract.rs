//! The store contract: what every backend must do, written once against
//! `&dyn Store` and run on each backend (`tests/store_sqlite.rs`,
//! `tests/store_postgres.rs`). Each function expects a fresh, migrated store.

use auth_server::domain::client::{Client, SecretHash};
use auth_server::domain::scope::ScopeSet;
use auth_server::store::{CHANGE_LOG_RETENTION_SECS, Revocation, Store, StoreError};

/// One test per check of the contract, each on a fresh store. `fresh` is an
/// async expression (awaited in the test) giving the store and what must
/// live as long as it; attributes written first go on every test:
/// `contract_tests!(#[ignore = "why"] fresh: make_store().await);`.
/// A new check is added here once and runs on every backend.
// Only the store test binaries use it; every test binary compiles common.
#[allow(unused_macros)]
macro_rules! contract_tests {
    ($(#[$attr:meta])* fresh: $fresh:expr) => {
        $crate::common::contract::contract_tests!(@each [$(#[$attr])*] $fresh;
            clients_round_trip,
            migrate_is_idempotent,
            revocations_are_kept_until_expiry,
            the_change_feed_lists_every_write,
            a_cursor_behind_the_pruned_log_reloads,
        );
    };
    (@each $attrs:tt $fresh:expr; $($name:ident),* $(,)?) => {$(
        $crate::common::contract::contract_tests!(@one $attrs $fresh; $name);
    )*};
    (@one [$(#[$attr:meta])*] $fresh:expr; $name:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            let (store, _keep) = $fresh;
            $crate::common::contract::$name(&store).await;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use contract_tests;

/// A client with every optional field set.
pub fn sample(id: &str) -> Client {
    Client {
        id: id.into(),
        name: "Sample".into(),
        secret_hash: SecretHash::of("s1"),
        previous_secret_hash: Some(SecretHash::of("s0")),
        previous_secret_expires_at: Some(99),
        secret_imported: true,
        allowed_scopes: ScopeSet::parse("a b").unwrap(),
        default_scopes: ScopeSet::parse("a").unwrap(),
        allowed_audiences: vec!["https://x".into(), "https://y".into()],
        token_lifetime_secs: Some(60),
        rate_limit_rps: Some(u32::MAX),
        enabled: true,
        tokens_valid_after: 5,
        created_at: 1,
        updated_at: 2,
    }
}

/// A revocation of `jti` for client `c1`.
pub fn revocation(jti: &str, exp: i64) -> Revocation {
    Revocation {
        jti: jti.into(),
        client_id: "c1".into(),
        exp,
        revoked_at: 1,
    }
}

/// Insert, duplicate, get, update, list, count, delete.
pub async fn clients_round_trip(store: &dyn Store) {
    let c = sample("c1");
    store.insert_client(&c).await.unwrap();
    assert!(matches!(
        store.insert_client(&c).await,
        Err(StoreError::Duplicate(id)) if id == "c1"
    ));
    assert_eq!(store.get_client("c1").await.unwrap(), Some(c.clone()));
    assert_eq!(store.get_client("nope").await.unwrap(), None);

    let mut changed = c.clone();
    changed.enabled = false;
    changed.previous_secret_hash = None;
    changed.previous_secret_expires_at = None;
    changed.token_lifetime_secs = None;
    changed.rate_limit_rps = None;
    changed.allowed_audiences.clear();
    changed.default_scopes = ScopeSet::default();
    assert!(store.update_client(&changed).await.unwrap());
    assert_eq!(store.get_client("c1").await.unwrap(), Some(changed));
    assert!(!store.update_client(&sample("ghost")).await.unwrap());

    store.insert_client(&sample("c0")).await.unwrap();
    let ids: Vec<_> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["c0", "c1"]);
    assert_eq!(store.count_clients().await.unwrap(), 2);
    assert!(store.delete_client("c1").await.unwrap());
    assert!(!store.delete_client("c1").await.unwrap());
    assert_eq!(store.get_client("c1").await.unwrap(), None);
    assert_eq!(store.count_clients().await.unwrap(), 1);
}

/// Migrating again applies nothing and reports the known version.
pub async fn migrate_is_idempotent(store: &dyn Store) {
    for _ in 0..2 {
        let report = store.migrate().await.unwrap();
        assert!(report.applied.is_empty(), "{report:?}");
        assert_eq!(report.current, report.known);
        assert!(!report.schema_is_newer());
    }
}

/// Revocations are idempotent, listed while active and pruned after `exp`.
pub async fn revocations_are_kept_until_expiry(store: &dyn Store) {
    store.revoke(&revocation("j1", 100)).await.unwrap();
    store.revoke(&revocation("j1", 100)).await.unwrap();
    store.revoke(&revocation("j2", 200)).await.unwrap();
    let mut active = store.active_revocations(50).await.unwrap();
    active.sort_by(|a, b| a.jti.cmp(&b.jti));
    assert_eq!(active, [revocation("j1", 100), revocation("j2", 200)]);
    assert_eq!(
        store.active_revocations(150).await.unwrap(),
        [revocation("j2", 200)]
    );
    assert_eq!(store.prune(150).await.unwrap(), 1);
    assert_eq!(store.prune(150).await.unwrap(), 0);
    assert_eq!(store.active_revocations(0).await.unwrap().len(), 1);
}

/// Every write shows up once in the feed, oldest first, after the cursor.
pub async fn the_change_feed_lists_every_write(store: &dyn Store) {
    let start = store.change_cursor().await.unwrap();
    store.revoke(&revocation("j1", i64::MAX)).await.unwrap();
    store.revoke(&revocation("j1", i64::MAX)).await.unwrap();
    store.insert_client(&sample("c1")).await.unwrap();
    store.revoke(&revocation("j2", i64::MAX)).await.unwrap();
    store.update_client(&sample("c1")).await.unwrap();
    store.delete_client("c1").await.unwrap();
    assert!(!store.delete_client("c1").await.unwrap());

    let batch = store.changes_since(start).await.unwrap();
    assert_eq!(
        batch.revocations,
        [revocation("j1", i64::MAX), revocation("j2", i64::MAX)]
    );
    assert_eq!(batch.clients, ["c1", "c1", "c1"]);
    assert!(!batch.full_reload);
    assert!(batch.cursor > start);
    assert_eq!(store.change_cursor().await.unwrap(), batch.cursor);

    let later = store.changes_since(batch.cursor).await.unwrap();
    assert!(later.revocations.is_empty() && later.clients.is_empty());
    assert_eq!(later.cursor, batch.cursor);
}

/// A cursor whose successors were pruned asks for a full reload.
pub async fn a_cursor_behind_the_pruned_log_reloads(store: &dyn Store) {
    store.insert_client(&sample("c1")).await.unwrap();
    let cursor = store.change_cursor().await.unwrap();
    store.insert_client(&sample("c2")).await.unwrap();
    store.insert_client(&sample("c3")).await.unwrap();
    // Far enough in the future that every entry is past the retention.
    let later = auth_server::clock::unix_now() + CHANGE_LOG_RETENTION_SECS + 60;
    store.prune(later).await.unwrap();
    store.insert_client(&sample("c4")).await.unwrap();
    let batch = store.changes_since(cursor).await.unwrap();
    assert!(batch.full_reload, "{batch:?}");
    assert_eq!(batch.clients, ["c4"]);
}
