//! A hung database (every server process stopped with SIGSTOP: sockets stay
//! open, nothing answers) is the outage that makes naive pools hang. Calls
//! must still fail within the configured timeouts, and work again once the
//! database answers. Alone in its own test binary because it freezes the
//! cluster every other PostgreSQL test uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_server::store::postgres::PostgresStore;
use auth_server::store::{ClientStore, Store, StoreError};
use common::{contract, pg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn a_hung_database_fails_calls_within_the_timeouts() {
    let (_, url) = pg::fresh_store().await;
    let mut settings = pg::fast_settings(&url);
    settings.max_connections = 2;
    let store = Arc::new(PostgresStore::open(&settings, None).unwrap());
    store.insert_client(&contract::sample("c1")).await.unwrap();

    let frozen = tokio::task::spawn_blocking(|| pg::Paused::start("freeze", "thaw"))
        .await
        .unwrap();
    // Pool wait + connect + statement: the most one call may take.
    let bound = Duration::from_secs(3) + Duration::from_millis(500);
    let started = Instant::now();
    // More calls than connections: some wait for the pool, some hang on a
    // pooled connection, some try to open a new one.
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let started = Instant::now();
                (store.get_client("c1").await, started.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (result, took) = call.await.unwrap();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(took < bound, "a call took {took:?}");
    }
    eprintln!(
        "six calls on a hung database all failed within {} ms",
        started.elapsed().as_millis()
    );

    tokio::task::spawn_blocking(move || frozen.end())
        .await
        .unwrap();
    let took = pg::until_client_found(&store, "c1").await;
    eprintln!(
        "answering again {} ms after the thaw; pool {:?}",
        took.as_millis(),
        store.pool_status()
    );
}
