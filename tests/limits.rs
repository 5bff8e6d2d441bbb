//! Rate limits over real TLS: per-client buckets, per-caller validation
//! buckets, the failed-authentication guard and the global bucket answer 429
//! with Retry-After and an RFC 6749-shaped body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::admin::NewClient;
use auth_server::keys::Algorithm;
use common::{TestServer, api, json_body};
use reqwest::StatusCode;

async fn assert_429(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_body(response).await;
    assert!(body["error"].is_string() && body["error_description"].is_string());
}

#[tokio::test]
async fn each_client_has_its_own_bucket_and_override() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.limits.client_rps = 1;
        c.limits.client_burst = 3;
    })
    .await;
    let (http, base) = (server.client(), server.base_url.clone());
    let (a, a_secret) = server.standard_client().await;
    let (b, b_secret) = server.standard_client().await;
    for _ in 0..3 {
        assert_eq!(
            api::token_request(&http, &base, &a, &a_secret)
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert_429(api::token_request(&http, &base, &a, &a_secret).await).await;
    assert_eq!(
        api::token_request(&http, &base, &b, &b_secret)
            .await
            .status(),
        StatusCode::OK
    );

    let (big, big_secret) = server
        .create_client(NewClient {
            name: "big".into(),
            rate_limit_rps: Some(50),
            ..NewClient::default()
        })
        .await;
    for _ in 0..20 {
        assert_eq!(
            api::token_request(&http, &base, &big, &big_secret)
                .await
                .status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn repeated_failed_authentication_blocks_the_ip_even_for_good_secrets() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.limits.failed_auth_per_ip_per_minute = 1;
        c.limits.failed_auth_burst = 3;
    })
    .await;
    let (http, base) = (server.client(), server.base_url.clone());
    let (id, secret) = server.standard_client().await;
    for _ in 0..4 {
        let response = api::token_request(&http, &base, &id, "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Blocked now: the right secret does not get through either, so guessing
    // cannot continue at full speed.
    assert_429(api::token_request(&http, &base, &id, &secret).await).await;
    assert_429(api::token_request(&http, &base, &id, "guess").await).await;
    assert_eq!(server.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_global_bucket_guards_every_oauth_endpoint() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.limits.global_rps = 1;
        c.limits.global_burst = 2;
    })
    .await;
    let (http, base) = (server.client(), server.base_url.clone());
    let (id, secret) = server.standard_client().await;
    assert_eq!(
        api::token_request(&http, &base, &id, &secret)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        api::token_request(&http, &base, &id, &secret)
            .await
            .status(),
        StatusCode::OK
    );
    assert_429(api::token_request(&http, &base, &id, &secret).await).await;
    let validate = api::validate_post(&http, &base, None, None).send();
    assert_429(validate.await.unwrap()).await;
    let jwks = http.get(api::endpoint(&base, "jwks")).send().await.unwrap();
    assert_eq!(
        jwks.status(),
        StatusCode::OK,
        "discovery is not rate limited"
    );
}

#[tokio::test]
async fn validations_spend_the_callers_bucket_not_the_clients() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.limits.client_rps = 1;
        c.limits.client_burst = 2;
        c.limits.validate_per_ip_rps = 1;
        c.limits.validate_per_ip_burst = 3;
    })
    .await;
    let (http, base) = (server.client(), server.base_url.clone());
    let (id, secret) = server.standard_client().await;
    let token = api::token(&http, &base, &id, &secret).await;
    let validate = || api::validate_post(&http, &base, Some(&token), None).send();
    for _ in 0..3 {
        assert_eq!(validate().await.unwrap().status(), StatusCode::OK);
    }
    assert_429(validate().await.unwrap()).await;
    // The holder of the token drained only its own bucket: the client's
    // second token request of its burst of two still succeeds.
    assert_eq!(
        api::token_request(&http, &base, &id, &secret)
            .await
            .status(),
        StatusCode::OK
    );
    for (limiter, refused) in [("validate", 1.0), ("client", 0.0)] {
        let sample = format!("auth_rate_limited_total{{limiter=\"{limiter}\"}}");
        assert_eq!(common::metric(&http, &server, &sample).await, refused);
    }
}

#[tokio::test]
async fn past_the_failed_authentication_ceiling_only_known_clients_get_in() {
    let server = TestServer::start_with(Algorithm::EdDSA, common::low_failed_auth_ceiling).await;
    let (http, base) = (server.client(), server.base_url.clone());
    let (known, known_secret) = server.standard_client().await;
    let (cold, cold_secret) = server.standard_client().await;
    common::feed_passed_new_clients().await;
    // `known` is now in memory; `cold` is not.
    assert_eq!(
        api::token_request(&http, &base, &known, &known_secret)
            .await
            .status(),
        StatusCode::OK
    );
    for i in 0..4 {
        let response = api::token_request(&http, &base, &format!("nobody-{i}"), "wrong").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "failure {i}");
    }
    // The ceiling holds now: unknown ids, wrong secrets and clients not in
    // memory get 429 without reaching the store; a known client with its
    // secret is served.
    assert_429(api::token_request(&http, &base, "nobody-else", "wrong").await).await;
    assert_429(api::token_request(&http, &base, &known, "wrong").await).await;
    assert_429(api::token_request(&http, &base, &cold, &cold_secret).await).await;
    assert_eq!(
        api::token_request(&http, &base, &known, &known_secret)
            .await
            .status(),
        StatusCode::OK
    );
    // It lifts as the bucket refills.
    let mut served = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if api::token_request(&http, &base, &cold, &cold_secret)
            .await
            .status()
            == StatusCode::OK
        {
            served = true;
            break;
        }
    }
    assert!(served, "the ceiling lifted within 3 s");
}
