//! Two server instances on one PostgreSQL database: a revocation or a client
//! change made through one reaches the other within a second, and so does
//! the revocation of a token that another was exchanged from.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use auth_server::admin;
use auth_server::config::Config;
use auth_server::keys::Algorithm;
use auth_server::store::postgres::PostgresStore;
use common::{TestServer, api, pg};
use reqwest::StatusCode;

/// Both instances share the database (and in it the signing keys), the
/// key-encryption key (every test server has the same) and the issuer, as a
/// fleet does.
fn fleet_member(url: String) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.database = pg::settings(&url);
        c.issuer = format!("https://auth.test{}", api::BASE_PATH);
        c.cache.change_poll_interval_ms = 1_000;
    }
}

async fn validate_status(server: &TestServer, token: &str) -> StatusCode {
    api::validate(&server.client(), &server.base_url, token).await
}

async fn until_refused(server: &TestServer, token: &str) -> Duration {
    api::until_refused(
        &server.client(),
        &server.base_url,
        token,
        Duration::from_secs(3),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn revocations_and_client_changes_reach_the_other_instance_within_a_second() {
    let url = pg::fresh_database().await;
    let a = TestServer::start_with(Algorithm::EdDSA, fleet_member(url.clone())).await;
    let b = TestServer::start_with(Algorithm::EdDSA, fleet_member(url.clone())).await;
    let admin_store = PostgresStore::open(&pg::settings(&url), None).unwrap();
    let (id, secret) = pg::create_client(&admin_store, "fleet").await;

    // A token from A validates on B (the same stored key, the same issuer).
    let token = api::token(&a.client(), &a.base_url, &id, &secret).await;
    assert_eq!(validate_status(&b, &token).await, StatusCode::OK);

    // Revoked on A: refused on A at once, on B within a second.
    let revoked = api::revoke(&a.client(), &a.base_url, (&id, &secret), &token).await;
    assert_eq!(revoked.unwrap().status(), StatusCode::OK);
    assert_eq!(validate_status(&a, &token).await, StatusCode::UNAUTHORIZED);
    let took = until_refused(&b, &token).await;
    eprintln!(
        "revocation reached instance B after {} ms",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // Disabled through the store (as the CLI does): both refuse its tokens
    // and its token requests within a second.
    let second = api::token(&b.client(), &b.base_url, &id, &secret).await;
    assert_eq!(validate_status(&a, &second).await, StatusCode::OK);
    admin::set_enabled(
        &admin_store,
        &id,
        false,
        &auth_server::audit::Actor::cli("test"),
        auth_server::clock::unix_now(),
    )
    .await
    .unwrap();
    let took = until_refused(&a, &second).await;
    eprintln!(
        "client disable reached instance A after {} ms",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // B's feed sees the change on its own: A's having seen it says nothing
    // of B's under load.
    let started = std::time::Instant::now();
    while api::token_request(&b.client(), &b.base_url, &id, &secret)
        .await
        .status()
        != StatusCode::UNAUTHORIZED
    {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "instance B still issues tokens to the disabled client"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "client disable reached instance B's token endpoint after {} ms",
        (took + started.elapsed()).as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn revoking_an_original_on_one_instance_revokes_its_derived_token_on_the_other() {
    let url = pg::fresh_database().await;
    let a = TestServer::start_with(Algorithm::EdDSA, fleet_member(url.clone())).await;
    let b = TestServer::start_with(Algorithm::EdDSA, fleet_member(url.clone())).await;
    let admin_store = PostgresStore::open(&pg::settings(&url), None).unwrap();
    let (id, secret) = pg::create_client(&admin_store, "fleet").await;
    let original = api::token(&a.client(), &a.base_url, &id, &secret).await;

    // Exchanged on B and validated there, so B holds it as valid.
    let response = b
        .client()
        .post(b.token_url())
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", original.as_str()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    let derived = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(validate_status(&b, &derived).await, StatusCode::OK);

    // The original revoked on A: the derived token is refused on B within
    // a second, its cached validation notwithstanding.
    let revoked = api::revoke(&a.client(), &a.base_url, (&id, &secret), &original).await;
    assert_eq!(revoked.unwrap().status(), StatusCode::OK);
    let took = until_refused(&b, &derived).await;
    eprintln!(
        "the original's revocation reached the derived token on instance B after {} ms",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
