//! JWKS, metadata, health and routing over real TLS; every algorithm's tokens
//! verified by an independent JWT library against the served JWKS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::keys::Algorithm;
use common::api::{self, BASE_PATH};
use common::{HMAC_SECRET, TestServer, json_body};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn tokens_verify_against_the_served_jwks_for_every_algorithm() {
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::HS256,
    ] {
        let server = TestServer::start_with(alg, |_| {}).await;
        let (id, secret) = server.standard_client().await;
        let (http, base) = (server.client(), server.base_url.clone());
        let token = api::token_body(&http, &base, &id, &secret, &[("scope", "read write")]).await;
        let token = token["access_token"].as_str().unwrap().to_owned();

        let header = decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"), "{alg:?}");
        let kid = header.kid.clone().expect("kid");

        let jwks: JwkSet = api::jwks(&http, &base).await;
        let key = if alg == Algorithm::HS256 {
            assert!(jwks.keys.is_empty(), "HS256 keys are never published");
            DecodingKey::from_secret(HMAC_SECRET.as_bytes())
        } else {
            assert_eq!(jwks.keys.len(), 1);
            DecodingKey::from_jwk(jwks.find(&kid).expect("kid in JWKS")).unwrap()
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&server.issuer]);
        validation.set_audience(&["https://api.test"]);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        let claims = decode::<Value>(&token, &key, &validation).unwrap().claims;
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["scope"], "read write");
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
        assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
        server.stop().await;
    }
}

#[tokio::test]
async fn metadata_is_served_at_all_three_paths() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut documents = Vec::new();
    for path in [
        format!("/.well-known/oauth-authorization-server{BASE_PATH}"),
        "/.well-known/oauth-authorization-server".into(),
        format!("{BASE_PATH}/.well-known/openid-configuration"),
    ] {
        let response = server.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        documents.push(json_body(response).await);
    }
    assert!(documents.windows(2).all(|w| w[0] == w[1]));
    let doc = &documents[0];
    assert_eq!(doc["issuer"], server.issuer.as_str());
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/oauth/token", server.issuer).as_str()
    );
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/oauth/jwks", server.issuer).as_str()
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth"
        ])
    );
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        serde_json::json!(["EdDSA", "ES256", "RS256", "PS256"])
    );
    assert_eq!(
        doc["access_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
    // The advertised endpoints are real.
    let jwks = client
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
    let same = server.get("/.well-known/jwks.json").await;
    assert_eq!(json_body(jwks).await, json_body(same).await);
}

#[tokio::test]
async fn scopes_from_config_are_advertised() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.scopes = vec![auth_server::config::ScopeRule {
            name: "orders:read".into(),
            description: String::new(),
            endpoints: vec![],
            methods: vec![],
        }];
    })
    .await;
    let doc = json_body(server.get("/.well-known/oauth-authorization-server").await).await;
    assert_eq!(doc["scopes_supported"], serde_json::json!(["orders:read"]));
}

#[tokio::test]
async fn health_unknown_paths_and_wrong_methods() {
    let server = TestServer::start().await;
    let client = server.client();
    for path in [
        "/health".into(),
        api::path(""),
        "/health/live".into(),
        "/health/ready".into(),
    ] {
        let response = server.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let body = json_body(response).await;
        assert!(body["status"].is_string(), "{path}: {body}");
    }
    let traced = client
        .get(server.url("/health"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.headers()["x-request-id"], "trace-123");
    let generated = server.get("/health").await;
    assert_eq!(generated.headers()["x-request-id"].len(), 21);
    let health = json_body(server.get("/health").await).await;
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["git_sha"].is_string());

    for path in [
        "/debug/pprof/".into(),
        "/debug/pprof/heap".into(),
        "/".into(),
        "/admin".into(),
        api::path("tokens"),
    ] {
        let response = server.get(&path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json_body(response).await["error"], "not_found");
    }

    let response = client.get(server.token_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    let response = client
        .post(api::endpoint(&server.base_url, "jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn metrics_are_exposed_with_route_labels_not_raw_paths() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    api::token(&server.client(), &server.base_url, &id, &secret).await;
    server.get("/no/such/path/123").await;
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    for needle in [
        "auth_http_requests_total{route=\"token\",status=\"200\"} 1",
        "auth_http_requests_total{route=\"unknown\",status=\"404\"} 1",
        "auth_tokens_issued_total 1",
        "auth_build_info{git_sha=",
        "auth_validations_total{result=\"accepted\"}",
        "auth_rate_limited_total{limiter=\"global\"} 0",
        "auth_open_connections",
        "auth_tls_certificate_not_after_seconds 67090118400",
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
}

#[tokio::test]
async fn metadata_lists_introspection_and_revocation() {
    let server = TestServer::start().await;
    let doc = json_body(server.get("/.well-known/oauth-authorization-server").await).await;
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{}/oauth/introspect", server.issuer).as_str()
    );
    assert_eq!(
        doc["revocation_endpoint"],
        format!("{}/oauth/revoke", server.issuer).as_str()
    );
}
