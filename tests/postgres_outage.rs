//! A database outage: stop the cluster under a live store, see every call
//! fail fast with `Unavailable` (no hang), start it again and see the same
//! store recover by itself. Alone in its own test binary because it stops
//! the cluster every other PostgreSQL test uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use auth_server::store::postgres::PostgresStore;
use auth_server::store::{ClientStore, RevocationStore, Store, StoreError};
use common::{contract, pg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn an_outage_fails_fast_and_the_same_pool_recovers() {
    let (_, url) = pg::fresh_store().await;
    let settings = pg::fast_settings(&url);
    let store = PostgresStore::open(&settings, None).unwrap();
    store.insert_client(&contract::sample("c1")).await.unwrap();
    let mut notified = store.listen_for_changes().unwrap();
    tokio::time::timeout(Duration::from_secs(5), notified.wait_for(|n| *n >= 1))
        .await
        .unwrap()
        .unwrap();
    let before_outage = *notified.borrow_and_update();

    let outage = tokio::task::spawn_blocking(|| pg::Paused::start("halt", "resume"))
        .await
        .unwrap();
    // Bound of one call: pool wait + connect + statement timeouts.
    let bound = Duration::from_secs(3);
    for round in 0..3 {
        let started = Instant::now();
        let results = [
            store.get_client("c1").await.map(drop),
            store
                .revoke(&contract::revocation(&format!("j{round}"), i64::MAX))
                .await,
            store.changes_since(0).await.map(drop),
            store.count_clients().await.map(drop),
        ];
        let took = started.elapsed();
        for result in results {
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{result:?}"
            );
        }
        eprintln!(
            "round {round}: four failed calls in {} ms",
            took.as_millis()
        );
        assert!(took < bound * 4, "calls hung for {took:?}");
    }

    tokio::task::spawn_blocking(move || outage.end())
        .await
        .unwrap();
    let took = pg::until_client_found(&store, "c1").await;
    eprintln!("recovered {} ms after the restart", took.as_millis());
    store
        .revoke(&contract::revocation("after", i64::MAX))
        .await
        .unwrap();
    assert_eq!(store.active_revocations(0).await.unwrap().len(), 1);
    // The LISTEN connection comes back too and says so.
    tokio::time::timeout(
        Duration::from_secs(10),
        notified.wait_for(|n| *n > before_outage),
    )
    .await
    .expect("the change listener did not reconnect")
    .unwrap();
    eprintln!("pool after recovery: {:?}", store.pool_status());
}
