//! Revocation (RFC 7009) and introspection (RFC 7662) over real TLS: a
//! revocation takes effect on the very next request, across a restart and
//! under a concurrent race; clients revoke only their own tokens; changes
//! made in the store by another process arrive within a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use auth_server::keys::Algorithm;
use common::{TestServer, api, json_body, start_with_rules, unverified_claims};
use reqwest::StatusCode;
use serde_json::json;

/// How long a change made in the store may take to be seen, at the most.
const REFUSED_WITHIN: Duration = Duration::from_secs(3);

#[tokio::test]
async fn revocation_takes_effect_on_the_very_next_request() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let credentials = (id.as_str(), secret.as_str());
    let token = api::token(&http, &base, &id, &secret).await;
    assert_eq!(api::validate(&http, &base, &token).await, StatusCode::OK);
    let active = api::introspect(&http, &base, credentials, &token).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "Bearer");
    assert_eq!(active["iss"], server.issuer.as_str());
    assert_eq!(active["scope"], "read");

    let response = api::revoke(&http, &base, credentials, &token)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        api::validate(&http, &base, &token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api::introspect(&http, &base, credentials, &token).await,
        json!({"active": false})
    );
    // Revoking again, or revoking garbage, is still 200 (RFC 7009 2.2).
    for again in [token.as_str(), "garbage"] {
        let response = api::revoke(&http, &base, credentials, again).await;
        assert_eq!(response.unwrap().status(), StatusCode::OK, "{again}");
    }
}

#[tokio::test]
async fn clients_revoke_only_their_own_tokens_and_must_authenticate() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let (other_id, other_secret) = server.standard_client().await;
    let other = (other_id.as_str(), other_secret.as_str());
    let token = api::token(&http, &base, &id, &secret).await;
    let response = api::revoke(&http, &base, other, &token).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(response).await["error"], "unauthorized_client");
    assert_eq!(api::validate(&http, &base, &token).await, StatusCode::OK);

    let response = api::revoke(&http, &base, (&id, "wrong"), &token)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = http
        .post(api::endpoint(&base, "introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(response).await["error"], "invalid_client");
    let missing = http
        .post(api::endpoint(&base, "revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    // Other clients may introspect it (resource servers are clients too).
    assert!(api::introspect_active(&http, &base, other, &token).await);
    assert_eq!(
        api::introspect(&http, &base, (&id, &secret), "x.y.z").await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn store_changes_from_elsewhere_arrive_within_a_second() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let now = auth_server::clock::unix_now;

    // A CLI `token revoke --jti` writes to the store, not to this process.
    let first = api::token(&http, &base, &id, &secret).await;
    let jti = unverified_claims(&first)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(api::validate(&http, &base, &first).await, StatusCode::OK);
    auth_server::admin::revoke_jti(
        &server.store,
        &jti,
        &auth_server::audit::Actor::cli("test"),
        now(),
    )
    .await
    .unwrap();
    let took = api::until_refused(&http, &base, &first, REFUSED_WITHIN).await;
    assert!(took < Duration::from_millis(1_500), "took {took:?}");

    // Disabling the client ends its tokens.
    let second = api::token(&http, &base, &id, &secret).await;
    assert_eq!(api::validate(&http, &base, &second).await, StatusCode::OK);
    auth_server::admin::set_enabled(
        &server.store,
        &id,
        false,
        &auth_server::audit::Actor::cli("test"),
        now(),
    )
    .await
    .unwrap();
    api::until_refused(&http, &base, &second, REFUSED_WITHIN).await;
    let refused = api::token_request(&http, &base, &id, &secret).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // `token revoke --client` ends every token issued so far, but not the
    // client: new tokens (issued in a later second) work.
    auth_server::admin::set_enabled(
        &server.store,
        &id,
        true,
        &auth_server::audit::Actor::cli("test"),
        now(),
    )
    .await
    .unwrap();
    let (other_id, other_secret) = server.standard_client().await;
    let third = api::token(&http, &base, &other_id, &other_secret).await;
    auth_server::admin::revoke_client_tokens(
        &server.store,
        &other_id,
        &auth_server::audit::Actor::cli("test"),
        now(),
    )
    .await
    .unwrap();
    api::until_refused(&http, &base, &third, REFUSED_WITHIN).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fourth = api::token(&http, &base, &other_id, &other_secret).await;
    assert_eq!(api::validate(&http, &base, &fourth).await, StatusCode::OK);
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let fixed_issuer = |c: &mut auth_server::config::Config| {
        common::user_api_rules(c);
        c.issuer = format!("https://auth.test{}", api::BASE_PATH);
    };
    let server = TestServer::start_with(Algorithm::EdDSA, fixed_issuer).await;
    let (id, secret) = server.standard_client().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let revoked = api::token(&http, &base, &id, &secret).await;
    let kept = api::token(&http, &base, &id, &secret).await;
    let response = api::revoke(&http, &base, (&id, &secret), &revoked).await;
    assert_eq!(response.unwrap().status(), StatusCode::OK);

    let server = server.restart(fixed_issuer).await;
    let (http, base) = (server.client(), server.base_url.clone());
    assert_eq!(api::validate(&http, &base, &kept).await, StatusCode::OK);
    assert_eq!(
        api::validate(&http, &base, &revoked).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_validation_started_after_the_revoke_answer_accepts_the_token() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let token = api::token(&http, &base, &id, &secret).await;
    let mut validators = Vec::new();
    for _ in 0..4 {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        validators.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let started = Instant::now();
                let status = api::validate(&http, &base, &token).await;
                seen.push((started, status));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = api::revoke(&http, &base, (&id, &secret), &token).await;
    assert_eq!(response.unwrap().status(), StatusCode::OK);
    let revoked_at = Instant::now();
    let mut after = 0;
    for task in validators {
        for (started, status) in task.await.unwrap() {
            if started > revoked_at {
                after += 1;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "stale accept after revoke"
                );
            }
        }
    }
    assert!(after > 10, "only {after} validations after the revoke");
}
