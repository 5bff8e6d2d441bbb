//! The server through a PostgreSQL outage: cached clients keep getting
//! tokens, uncached ones get 503 with Retry-After, validation keeps working,
//! readiness reports it, and everything recovers without a restart. Alone in
//! its own test binary because it stops the shared test cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use auth_server::store::postgres::PostgresStore;
use common::{api, json_body, pg};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn cached_clients_survive_an_outage_and_the_server_recovers() {
    let url = pg::fresh_database().await;
    let server = pg::start_server(&url, |_| {}).await;
    let (http, base) = (server.client(), server.base_url.clone());
    let admin_store = PostgresStore::open(&pg::settings(&url), None).unwrap();
    let (cached, cached_secret) = pg::create_client(&admin_store, "cached").await;
    let (uncached, uncached_secret) = pg::create_client(&admin_store, "uncached").await;
    let token = api::token(&http, &base, &cached, &cached_secret).await;

    let outage = tokio::task::spawn_blocking(|| pg::Paused::start("halt", "resume"))
        .await
        .unwrap();

    let started = Instant::now();
    let response = api::token_request(&http, &base, &cached, &cached_secret).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "cached client keeps getting tokens"
    );
    let response = api::token_request(&http, &base, &uncached, &uncached_secret).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        json_body(response).await["error"],
        "temporarily_unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no request hangs"
    );
    assert_eq!(
        api::validate(&http, &base, &token).await,
        StatusCode::OK,
        "validation needs no store"
    );
    // Readiness notices within a poll interval or two.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body = json_body(server.get("/health/ready").await).await;
        if body["status"] != "ready" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never noticed the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tokio::task::spawn_blocking(move || outage.end())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = api::token_request(&http, &base, &uncached, &uncached_secret).await;
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
