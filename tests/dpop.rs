//! DPoP (RFC 9449) over real TLS: proof-bound tokens from the token
//! endpoint, every malformed or mismatched proof refused with
//! `invalid_dpop_proof`, and `/oauth/validate` checking the proof a
//! resource server received, on cache hits too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::admin::NewClient;
use common::dpop::{ALGORITHMS, DpopKey, claims, hmac_proof, unsigned_proof};
use common::{TestServer, api, json_body, start_with_rules, unverified_claims};
use reqwest::StatusCode;
use serde_json::{Value, json};

const API_URL: &str = "https://api.test/v1/users/7";

/// A token request by client `id` with the `DPoP` header `proof`.
async fn token_with_proof(
    server: &TestServer,
    (id, secret): (&str, &str),
    proof: &str,
) -> reqwest::Response {
    api::token_post(&server.client(), &server.base_url, id, secret, &[])
        .header("DPoP", proof)
        .send()
        .await
        .unwrap()
}

/// A DPoP-bound token for `key` (asserting 200 and `token_type` DPoP).
async fn bound_token(server: &TestServer, credentials: (&str, &str), key: &DpopKey) -> String {
    let proof = key.proof("POST", &server.token_url(), None);
    let response = token_with_proof(server, credentials, &proof).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["token_type"], "DPoP");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts a 400 `invalid_dpop_proof`.
async fn assert_invalid_proof(response: reqwest::Response, case: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
    let body = json_body(response).await;
    assert_eq!(body["error"], "invalid_dpop_proof", "{case}: {body}");
}

/// Validates `token` as a resource server that received it on `GET
/// API_URL`, with the further fields (the proof) in `fields`.
async fn validate_with(server: &TestServer, token: &str, fields: Value) -> StatusCode {
    api::validate_for(&server.client(), &server.base_url, token, API_URL, &fields).await
}

#[tokio::test]
async fn each_algorithm_gets_a_token_bound_to_its_key() {
    let (server, id, secret) = start_with_rules().await;
    for alg in ALGORITHMS {
        let key = DpopKey::generate(alg);
        let token = bound_token(&server, (&id, &secret), &key).await;
        let claims = unverified_claims(&token);
        assert_eq!(claims["cnf"], json!({"jkt": key.thumbprint()}), "{alg}");
        let introspected =
            api::introspect(&server.client(), &server.base_url, (&id, &secret), &token).await;
        assert_eq!(introspected["active"], true);
        assert_eq!(introspected["token_type"], "DPoP");
        assert_eq!(introspected["cnf"]["jkt"], key.thumbprint().as_str());
        let proof = key.proof("GET", API_URL, Some(&token));
        assert_eq!(
            validate_with(&server, &token, json!({"dpop_proof": proof})).await,
            StatusCode::OK,
            "{alg}"
        );
    }
    // Without a proof: a bearer token, as before.
    let body = api::token_body(&server.client(), &server.base_url, &id, &secret, &[]).await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        unverified_claims(body["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none()
    );
}

#[tokio::test]
async fn bad_proofs_at_the_token_endpoint_are_invalid_dpop_proof() {
    let (server, id, secret) = start_with_rules().await;
    let credentials = (id.as_str(), secret.as_str());
    let key = DpopKey::generate("ES256");
    let url = server.token_url();
    let now = auth_server::clock::unix_now();
    let signed = |claims: &Value| key.sign(&key.header(), claims);
    let mut leaked_jwk = key.jwk();
    leaked_jwk["d"] = json!("c2VjcmV0LXByaXZhdGUta2V5LW1hdGVyaWFs");
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong htu",
            key.proof("POST", &api::endpoint(&server.base_url, "introspect"), None),
        ),
        ("wrong htm", key.proof("GET", &url, None)),
        (
            "expired iat",
            signed(&claims("POST", &url, None, now - 300)),
        ),
        ("future iat", signed(&claims("POST", &url, None, now + 300))),
        (
            "alg none",
            unsigned_proof(&key.jwk(), &claims("POST", &url, None, now)),
        ),
        (
            "HMAC",
            hmac_proof(
                &claims("POST", &url, None, now),
                b"0123456789abcdef0123456789abcdef",
            ),
        ),
        (
            "private key in jwk",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": leaked_jwk}),
                &claims("POST", &url, None, now),
            ),
        ),
        (
            "no jwk",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256"}),
                &claims("POST", &url, None, now),
            ),
        ),
        (
            "wrong typ",
            key.sign(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk()}),
                &claims("POST", &url, None, now),
            ),
        ),
        (
            "signed by another key",
            DpopKey::generate("ES256").sign(&key.header(), &claims("POST", &url, None, now)),
        ),
        ("64 KiB", "a".repeat(64 * 1024)),
        ("not a JWT", "not-a-jwt".into()),
    ];
    for (case, proof) in cases {
        assert_invalid_proof(token_with_proof(&server, credentials, &proof).await, case).await;
    }
    // A proof used once is refused the second time.
    let proof = key.proof("POST", &url, None);
    assert_eq!(
        token_with_proof(&server, credentials, &proof)
            .await
            .status(),
        StatusCode::OK
    );
    assert_invalid_proof(
        token_with_proof(&server, credentials, &proof).await,
        "replayed jti",
    )
    .await;
    // Two DPoP headers.
    let response = api::token_post(&server.client(), &server.base_url, &id, &secret, &[])
        .header("DPoP", key.proof("POST", &url, None))
        .header("DPoP", key.proof("POST", &url, None))
        .send()
        .await
        .unwrap();
    assert_invalid_proof(response, "two proofs").await;
    // A client that authenticates wrongly hears about that first.
    let response = token_with_proof(&server, (&id, "wrong"), &key.proof("POST", &url, None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_client_that_requires_dpop_gets_no_bearer_token() {
    let server =
        TestServer::start_with(auth_server::keys::Algorithm::EdDSA, common::user_api_rules).await;
    let (id, secret) = server
        .create_client(NewClient {
            name: "DPoP only".into(),
            allowed_scopes: "read".into(),
            require_dpop: true,
            ..NewClient::default()
        })
        .await;
    let response = api::token_request(&server.client(), &server.base_url, &id, &secret).await;
    assert_invalid_proof(response, "no proof").await;
    let key = DpopKey::generate("EdDSA");
    bound_token(&server, (&id, &secret), &key).await;
}

#[tokio::test]
async fn validate_refuses_a_bound_token_without_the_right_proof() {
    let (server, id, secret) = start_with_rules().await;
    let key = DpopKey::generate("EdDSA");
    let token = bound_token(&server, (&id, &secret), &key).await;
    let other_token = bound_token(&server, (&id, &secret), &key).await;
    let now = auth_server::clock::unix_now();
    let signed = |claims: &Value| key.sign(&key.header(), claims);

    // Good proofs pass, the first validation a cache miss and the next
    // ones cache hits.
    for _ in 0..3 {
        let proof = key.proof("GET", API_URL, Some(&token));
        assert_eq!(
            validate_with(&server, &token, json!({"dpop_proof": proof})).await,
            StatusCode::OK
        );
    }
    // The same URL written differently is the same URL.
    let proof = key.proof(
        "GET",
        "HTTPS://API.test:443/v1/users/../users/7?page=2",
        Some(&token),
    );
    assert_eq!(
        validate_with(&server, &token, json!({"dpop_proof": proof})).await,
        StatusCode::OK
    );

    let replayed = key.proof("GET", API_URL, Some(&token));
    assert_eq!(
        validate_with(&server, &token, json!({"dpop_proof": replayed})).await,
        StatusCode::OK
    );
    let cases: Vec<(&str, Value)> = vec![
        ("no proof", json!({})),
        ("replayed", json!({"dpop_proof": replayed})),
        (
            "wrong htm",
            json!({"dpop_proof": key.proof("POST", API_URL, Some(&token))}),
        ),
        (
            "wrong htu",
            json!({"dpop_proof": key.proof("GET", "https://api.test/v1/users/8", Some(&token))}),
        ),
        (
            "ath of another token",
            json!({"dpop_proof": key.proof("GET", API_URL, Some(&other_token))}),
        ),
        (
            "no ath",
            json!({"dpop_proof": key.proof("GET", API_URL, None)}),
        ),
        (
            "expired",
            json!({"dpop_proof": signed(&claims("GET", API_URL, Some(&token), now - 300))}),
        ),
        (
            "future",
            json!({"dpop_proof": signed(&claims("GET", API_URL, Some(&token), now + 300))}),
        ),
        (
            "another key",
            json!({"dpop_proof": DpopKey::generate("EdDSA").proof("GET", API_URL, Some(&token))}),
        ),
        (
            "alg none",
            json!({"dpop_proof": unsigned_proof(&key.jwk(), &claims("GET", API_URL, Some(&token), now))}),
        ),
        ("64 KiB", json!({"dpop_proof": "a".repeat(60 * 1024)})),
    ];
    for (case, fields) in cases {
        assert_eq!(
            validate_with(&server, &token, fields).await,
            StatusCode::UNAUTHORIZED,
            "{case}"
        );
    }
    // Without endpoint_url the proof cannot be checked.
    let proof = key.proof("GET", API_URL, Some(&token));
    let response = api::validate_post(
        &server.client(),
        &server.base_url,
        Some(&token),
        Some(&json!({"dpop_proof": proof})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    // The DPoP scheme in Authorization, as the resource server got it.
    let proof = key.proof("GET", API_URL, Some(&token));
    let status = server
        .client()
        .post(api::endpoint(&server.base_url, "validate"))
        .header("Authorization", format!("DPoP {token}"))
        .json(&json!({"endpoint_url": API_URL, "dpop_proof": proof}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    // A bearer token validates as before, proof or not.
    let bearer = api::token(&server.client(), &server.base_url, &id, &secret).await;
    assert_eq!(
        validate_with(&server, &bearer, json!({})).await,
        StatusCode::OK
    );
}
