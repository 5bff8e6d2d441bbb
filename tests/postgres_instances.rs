//! Two server instances on one PostgreSQL database: a revocation or a client
//! change made through one reaches the other within a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use auth_server::admin::{self, NewClient};
use auth_server::config::Config;
use auth_server::keys::Algorithm;
use auth_server::store::postgres::PostgresStore;
use common::{TestServer, get_token, pg};
use reqwest::StatusCode;

const ISSUER: &str = "https://auth.test/auth-server/v1";

/// Both instances share the database (and in it the signing keys), the
/// key-encryption key (every test server has the same) and the issuer, as a
/// fleet does.
fn fleet_member(url: String) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.database = pg::settings(&url);
        c.issuer = ISSUER.into();
        c.cache.change_poll_interval_ms = 1_000;
    }
}

async fn validate_status(server: &TestServer, token: &str) -> StatusCode {
    server
        .client()
        .post(server.url("/auth-server/v1/oauth/validate"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn until_refused(server: &TestServer, token: &str) -> Duration {
    let started = Instant::now();
    while validate_status(server, token).await != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(3), "never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn revocations_and_client_changes_reach_the_other_instance_within_a_second() {
    let url = pg::fresh_database().await;
    let a = TestServer::start_with(Algorithm::EdDSA, fleet_member(url.clone())).await;
    let b = TestServer::start_with(Algorithm::EdDSA, fleet_member(url.clone())).await;
    let admin_store = PostgresStore::open(&pg::settings(&url), None).unwrap();
    let created = admin::create_client(
        &admin_store,
        NewClient {
            name: "fleet".into(),
            allowed_scopes: "read".into(),
            ..NewClient::default()
        },
        auth_server::clock::unix_now(),
    )
    .await
    .unwrap();
    let (id, secret) = (created.client.id, created.secret);

    // A token from A validates on B (the same stored key, the same issuer).
    let token = get_token(&a, &id, &secret, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(validate_status(&b, &token).await, StatusCode::OK);

    // Revoked on A: refused on A at once, on B within a second.
    let revoked = a
        .client()
        .post(a.url("/auth-server/v1/oauth/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(validate_status(&a, &token).await, StatusCode::UNAUTHORIZED);
    let took = until_refused(&b, &token).await;
    eprintln!(
        "revocation reached instance B after {} ms",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // Disabled through the store (as the CLI does): both refuse its tokens
    // and its token requests within a second.
    let second = get_token(&b, &id, &secret, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(validate_status(&a, &second).await, StatusCode::OK);
    admin::set_enabled(&admin_store, &id, false, auth_server::clock::unix_now())
        .await
        .unwrap();
    let took = until_refused(&a, &second).await;
    eprintln!(
        "client disable reached instance A after {} ms",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let refused = common::token_request(&b, &id, &secret).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}
