//! Down-scoping over real TLS (RFC 8693 token exchange of our own access
//! tokens): the derived token's scope, audience, life and ancestry; every
//! refusal with its RFC error; revocation of an ancestor revoking the
//! derived token, cached or not; DPoP- and certificate-bound originals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::admin::{self, NewClient};
use auth_server::domain::certificate::{TlsClientAuth, certificate_thumbprint};
use auth_server::domain::token::{AccessTokenClaims, sign_claims};
use auth_server::keys::{Algorithm, SigningKey, generate_pkcs8};
use common::dpop::DpopKey;
use common::{TestServer, api, json_body, start_with_rules, unverified_claims};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// An exchange form for `subject` with the further fields `extra`.
fn form<'a>(subject: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    form.extend_from_slice(extra);
    form
}

/// Sends an exchange of `subject` without client authentication.
async fn exchange(server: &TestServer, subject: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    server
        .client()
        .post(server.token_url())
        .form(&form(subject, extra))
        .send()
        .await
        .unwrap()
}

/// The derived token of a successful exchange (asserting the RFC 8693
/// 2.2.1 answer).
async fn derived(server: &TestServer, subject: &str, extra: &[(&str, &str)]) -> String {
    let response = exchange(server, subject, extra).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_body(response).await;
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts a refusal with `status` and the RFC `error` code.
async fn assert_error(response: reqwest::Response, status: StatusCode, error: &str, case: &str) {
    assert_eq!(response.status(), status, "{case}");
    let body = json_body(response).await;
    assert_eq!(body["error"], error, "{case}: {body}");
}

async fn assert_invalid_request(response: reqwest::Response, case: &str) {
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", case).await;
}

/// A `read write` token of the standard client for `https://api.test`.
async fn original(server: &TestServer, id: &str, secret: &str) -> String {
    let body = api::token_body(
        &server.client(),
        &server.base_url,
        id,
        secret,
        &[("scope", "read write")],
    )
    .await;
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_derived_token_has_fewer_scopes_the_same_audience_and_no_longer_a_life() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let token = original(&server, &id, &secret).await;
    let root = unverified_claims(&token);

    // Without client authentication: the token is the credential.
    let narrow = derived(&server, &token, &[("scope", "read")]).await;
    let body = api::introspect(&http, &base, (&id, &secret), &narrow).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "read");
    assert_eq!(body["aud"], "https://api.test");
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["exp"].as_i64().unwrap() <= root["exp"].as_i64().unwrap());
    assert_eq!(body["derived_from"], json!([root["jti"]]));
    assert_ne!(body["jti"], root["jti"]);
    assert_eq!(api::validate(&http, &base, &narrow).await, StatusCode::OK);

    // With the client's own authentication, naming the audience both ways;
    // by default the original's scopes.
    let response = http
        .post(server.token_url())
        .basic_auth(&id, Some(&secret))
        .form(&form(
            &token,
            &[
                ("audience", "https://api.test"),
                ("resource", "https://api.test"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["scope"], "read write");
    let same = unverified_claims(body["access_token"].as_str().unwrap());
    assert_eq!(same["aud"], "https://api.test");
}

#[tokio::test]
async fn more_scope_or_another_audience_is_refused() {
    let (server, id, secret) = start_with_rules().await;
    let token = api::token(&server.client(), &server.base_url, &id, &secret).await;
    assert_eq!(unverified_claims(&token)["scope"], "read");
    assert_error(
        exchange(&server, &token, &[("scope", "read write")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "a scope the client has but the token lacks",
    )
    .await;
    for (field, value) in [
        ("audience", "https://other.test"),
        ("resource", "https://other.test"),
        ("audience", "https://elsewhere.test"),
    ] {
        assert_error(
            exchange(&server, &token, &[(field, value)]).await,
            StatusCode::BAD_REQUEST,
            "invalid_target",
            value,
        )
        .await;
    }
    let both = [
        ("audience", "https://api.test"),
        ("audience", "https://other.test"),
    ];
    assert_error(
        exchange(&server, &token, &both).await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "two audiences",
    )
    .await;
}

#[tokio::test]
async fn revoking_the_original_revokes_every_descendant_even_once_cached() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let credentials = (id.as_str(), secret.as_str());
    let root = original(&server, &id, &secret).await;
    let child = derived(&server, &root, &[("scope", "read write")]).await;
    let grandchild = derived(&server, &child, &[("scope", "read")]).await;
    let root_jti = unverified_claims(&root)["jti"].clone();
    let child_jti = unverified_claims(&child)["jti"].clone();
    assert_eq!(
        unverified_claims(&grandchild)["derived_from"],
        json!([root_jti, child_jti])
    );
    // Validated (and so cached as valid) before the revocation.
    for token in [&root, &child, &grandchild] {
        assert_eq!(api::validate(&http, &base, token).await, StatusCode::OK);
        assert!(api::introspect_active(&http, &base, credentials, token).await);
    }

    // Revoking the middle one takes its descendant, not its ancestor.
    let revoked = api::revoke(&http, &base, credentials, &child)
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(api::validate(&http, &base, &root).await, StatusCode::OK);
    for token in [&child, &grandchild] {
        assert_eq!(
            api::validate(&http, &base, token).await,
            StatusCode::UNAUTHORIZED
        );
        assert!(!api::introspect_active(&http, &base, credentials, token).await);
    }

    // Revoking the root takes every other descendant.
    let sibling = derived(&server, &root, &[("scope", "write")]).await;
    assert_eq!(api::validate(&http, &base, &sibling).await, StatusCode::OK);
    let revoked = api::revoke(&http, &base, credentials, &root).await.unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    for token in [&root, &sibling] {
        assert_eq!(
            api::validate(&http, &base, token).await,
            StatusCode::UNAUTHORIZED
        );
        assert!(!api::introspect_active(&http, &base, credentials, token).await);
    }
    // And a revoked token cannot be exchanged.
    assert_invalid_request(exchange(&server, &root, &[]).await, "revoked original").await;
    assert_invalid_request(exchange(&server, &sibling, &[]).await, "revoked ancestor").await;
}

#[tokio::test]
async fn subject_tokens_that_are_not_active_tokens_of_ours_are_invalid_request() {
    let (server, id, secret) = start_with_rules().await;
    let good = api::token(&server.client(), &server.base_url, &id, &secret).await;
    let claims: AccessTokenClaims = serde_json::from_value(unverified_claims(&good)).unwrap();
    let keys = server.stored_keys().await;
    let expired = sign_claims(
        &AccessTokenClaims {
            exp: claims.iat - 1,
            iat: claims.iat - 901,
            nbf: claims.iat - 901,
            ..claims.clone()
        },
        keys.active(),
    )
    .unwrap();
    let foreign_key =
        SigningKey::from_pkcs8(Algorithm::EdDSA, &generate_pkcs8(Algorithm::EdDSA).unwrap())
            .unwrap();
    let foreign = sign_claims(&claims, &foreign_key).unwrap();
    let wrong_issuer = sign_claims(
        &AccessTokenClaims {
            iss: "https://elsewhere.test".into(),
            ..claims.clone()
        },
        keys.active(),
    )
    .unwrap();
    let long = "a".repeat(9 * 1024);
    for (case, subject) in [
        ("garbage", "not-a-token"),
        ("expired", expired.as_str()),
        ("signed by another key", foreign.as_str()),
        ("another issuer", wrong_issuer.as_str()),
        ("longer than any token of ours", long.as_str()),
    ] {
        assert_invalid_request(exchange(&server, subject, &[]).await, case).await;
    }
    // Past the body limit, refused before anything reads it.
    let huge = "a".repeat(64 * 1024);
    assert_error(
        exchange(&server, &huge, &[]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "64 KiB",
    )
    .await;
}

#[tokio::test]
async fn missing_or_unsupported_parameters_are_invalid_request() {
    let (server, id, secret) = start_with_rules().await;
    let token = api::token(&server.client(), &server.base_url, &id, &secret).await;
    let post = |fields: Vec<(&'static str, String)>| {
        server
            .client()
            .post(server.token_url())
            .form(&fields)
            .send()
    };
    let owned = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    };
    let grant = ("grant_type", TOKEN_EXCHANGE);
    let subject = ("subject_token", token.as_str());
    let subject_type = ("subject_token_type", ACCESS_TOKEN);
    let cases: Vec<(&str, Vec<(&'static str, &str)>)> = vec![
        ("no subject_token", vec![grant, subject_type]),
        ("no subject_token_type", vec![grant, subject]),
        (
            "unknown subject_token_type",
            vec![grant, subject, ("subject_token_type", "urn:x:unknown")],
        ),
        (
            "a refresh token wanted",
            vec![
                grant,
                subject,
                subject_type,
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
            ],
        ),
        (
            "delegation",
            vec![
                grant,
                subject,
                subject_type,
                ("actor_token", token.as_str()),
                ("actor_token_type", ACCESS_TOKEN),
            ],
        ),
        (
            "two subject tokens",
            vec![grant, subject, subject, subject_type],
        ),
    ];
    for (case, fields) in cases {
        assert_invalid_request(post(owned(&fields)).await.unwrap(), case).await;
    }
    // As a JWT, our own token is one of no trusted issuer (federation).
    let as_jwt = vec![
        grant,
        subject,
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ];
    assert_invalid_request(
        post(owned(&as_jwt)).await.unwrap(),
        "our token as an external JWT",
    )
    .await;
    // Asking for an access token explicitly is fine.
    derived(&server, &token, &[("requested_token_type", ACCESS_TOKEN)]).await;
}

#[tokio::test]
async fn client_authentication_when_present_must_succeed_and_name_the_tokens_client() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let token = api::token(&http, &base, &id, &secret).await;
    let (other, other_secret) = server.standard_client().await;

    let with_basic = |id: &str, secret: &str| {
        http.post(server.token_url())
            .basic_auth(id, Some(secret))
            .form(&form(&token, &[]))
            .send()
    };
    assert_error(
        with_basic(&id, "wrong").await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "wrong secret",
    )
    .await;
    assert_invalid_request(
        with_basic(&other, &other_secret).await.unwrap(),
        "another client's credentials",
    )
    .await;
    assert_invalid_request(
        exchange(&server, &token, &[("client_id", other.as_str())]).await,
        "another client's id",
    )
    .await;
    // Its own client_id alone, as a public client would send it, is fine.
    derived(&server, &token, &[("client_id", id.as_str())]).await;
    let response = http
        .post(server.token_url())
        .form(&form(
            &token,
            &[
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_disabled_clients_tokens_cannot_be_exchanged() {
    let (server, id, secret) = start_with_rules().await;
    let token = api::token(&server.client(), &server.base_url, &id, &secret).await;
    let before = derived(&server, &token, &[]).await;
    admin::set_enabled(
        &server.store,
        &id,
        false,
        &auth_server::audit::Actor::cli("test"),
        auth_server::clock::unix_now(),
    )
    .await
    .unwrap();
    api::until_refused(
        &server.client(),
        &server.base_url,
        &token,
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_invalid_request(exchange(&server, &token, &[]).await, "disabled client").await;
    assert_eq!(
        api::validate(&server.client(), &server.base_url, &before).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_dpop_bound_original_needs_a_proof_by_its_key() {
    let (server, id, secret) = start_with_rules().await;
    let key = DpopKey::generate("ES256");
    let proof = key.proof("POST", &server.token_url(), None);
    let response = api::token_post(&server.client(), &server.base_url, &id, &secret, &[])
        .header("DPoP", proof)
        .send()
        .await
        .unwrap();
    let token = json_body(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let with_proof = |proof: Option<String>| {
        let mut request = server
            .client()
            .post(server.token_url())
            .form(&form(&token, &[]));
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        request.send()
    };
    assert_error(
        with_proof(None).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "no proof",
    )
    .await;
    let other = DpopKey::generate("ES256").proof("POST", &server.token_url(), None);
    assert_error(
        with_proof(Some(other)).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "a proof by another key",
    )
    .await;
    let response = with_proof(Some(key.proof("POST", &server.token_url(), None)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["token_type"], "DPoP");
    let derived = unverified_claims(body["access_token"].as_str().unwrap());
    assert_eq!(derived["cnf"], json!({"jkt": key.thumbprint()}));
}

/// A self-signed client certificate: its DER and its certificate and key
/// as PEM.
fn self_signed_certificate() -> (Vec<u8>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["svc.example.test".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (
        cert.der().to_vec(),
        format!("{}{}", cert.pem(), key.serialize_pem()),
    )
}

#[tokio::test]
async fn a_certificate_bound_original_needs_its_certificate() {
    let server = TestServer::start().await;
    let (der, pem) = self_signed_certificate();
    let (id, _) = server
        .create_client(NewClient {
            name: "mTLS".into(),
            allowed_scopes: "read write".into(),
            tls_client_auth: Some(
                TlsClientAuth::from_parts("self_signed", &certificate_thumbprint(&der)).unwrap(),
            ),
            ..NewClient::default()
        })
        .await;
    let with_cert = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.cert_pem).unwrap()])
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = with_cert
        .post(server.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("scope", "read write"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = json_body(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let thumbprint = certificate_thumbprint(&der);
    assert_eq!(
        unverified_claims(&token)["cnf"],
        json!({"x5t#S256": thumbprint})
    );

    assert_invalid_request(
        exchange(&server, &token, &[("scope", "read")]).await,
        "without the certificate",
    )
    .await;
    for extra in [&[][..], &[("client_id", id.as_str())][..]] {
        let mut fields = form(&token, &[("scope", "read")]);
        fields.extend_from_slice(extra);
        let response = with_cert
            .post(server.token_url())
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{extra:?}");
        let body: Value = json_body(response).await;
        let derived = unverified_claims(body["access_token"].as_str().unwrap());
        assert_eq!(derived["cnf"], json!({"x5t#S256": thumbprint}));
        assert_eq!(derived["scope"], "read");
    }
}

#[tokio::test]
async fn an_exchange_is_charged_to_the_tokens_client() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        common::user_api_rules(c);
        c.limits.client_rps = 1;
        c.limits.client_burst = 2;
    })
    .await;
    let (id, secret) = server.standard_client().await;
    let (other, other_secret) = server.standard_client().await;
    let token = api::token(&server.client(), &server.base_url, &id, &secret).await;
    derived(&server, &token, &[]).await;
    let response = exchange(&server, &token, &[]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // Another client's bucket is its own.
    let theirs = api::token(&server.client(), &server.base_url, &other, &other_secret).await;
    derived(&server, &theirs, &[]).await;
}
