//! The token endpoint over real TLS: both client authentication methods, the
//! JSON body, every RFC 6749 5.2 error, body limits and HTTP/2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::admin::NewClient;
use common::{TestServer, api, json_body, unverified_claims};
use reqwest::StatusCode;
use serde_json::Value;

fn assert_no_store(response: &reqwest::Response) {
    let h = response.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["pragma"], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(h.get("server").is_none(), "no Server banner");
}

async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_no_store(&response);
    let body = json_body(response).await;
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn client_secret_basic_gets_a_bearer_token() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    let response = api::token_request(&server.client(), &server.base_url, &id, &secret).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    assert_no_store(&response);
    let body = json_body(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "read", "default scopes");
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn client_secret_post_and_json_bodies_work() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    let client = server.client();
    let form = client
        .post(server.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "read write"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    assert_eq!(json_body(form).await["scope"], "read write");

    let json = client
        .post(server.token_url())
        .json(&serde_json::json!({
            "client_id": id,
            "client_secret": secret,
            "grant_type": "client_credentials",
            "scope": "write",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert_eq!(json_body(json).await["scope"], "write");
}

#[tokio::test]
async fn bad_credentials_get_401_invalid_client_with_a_basic_challenge() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    let (disabled_id, disabled_secret) = server.standard_client().await;
    auth_server::admin::set_enabled(
        &server.store,
        &disabled_id,
        false,
        &auth_server::audit::Actor::cli("test"),
        0,
    )
    .await
    .unwrap();
    let client = server.client();
    let wrong = secret.chars().rev().collect::<String>();
    for (user, pass) in [
        (id.as_str(), wrong.as_str()),
        ("no-such-client", secret.as_str()),
        (disabled_id.as_str(), disabled_secret.as_str()),
        (id.as_str(), ""),
    ] {
        let response = client
            .post(server.token_url())
            .basic_auth(user, Some(pass))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert!(challenge.starts_with("Basic realm=\"auth-server\""));
        assert!(!body.to_string().contains(&secret));
    }
    // No credentials at all.
    let response = client
        .post(server.token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn malformed_requests_get_rfc6749_errors() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    let client = server.client();
    let basic = |body: &'static str| {
        client
            .post(server.token_url())
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let cases = [
        (basic(""), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            basic("scope=read"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic("grant_type=password&username=a&password=b"),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            basic("grant_type=authorization_code&code=x"),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            basic("grant_type=client_credentials&grant_type=client_credentials"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic("grant_type=client_credentials&scope=read&scope=write"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic("grant_type=client_credentials&scope=admin"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            basic("grant_type=client_credentials&scope=read%20%20write"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            basic("grant_type=client_credentials&resource=https://evil.test"),
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            basic("grant_type=client_credentials&client_secret=x"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic("grant_type=client_credentials&client_id=someone-else"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            basic("grant_type=client_credentials&x=%ff"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            client
                .post(server.token_url())
                .header("content-type", "application/json")
                .body(r#"{"grant_type":"client_credentials","client_id":"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            client
                .post(server.token_url())
                .header("content-type", "application/json")
                .body(r#"["grant_type"]"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            client
                .post(server.token_url())
                .header("content-type", "application/json")
                .body(r#"{"grant_type":"client_credentials","client_id":42,"client_secret":"x"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            client
                .post(server.token_url())
                .header("content-type", "text/plain")
                .body("grant_type=client_credentials"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (request, status, code) in cases {
        let request = request.build().unwrap();
        let shown = String::from_utf8_lossy(
            request
                .body()
                .and_then(|b| b.as_bytes())
                .unwrap_or_default(),
        )
        .into_owned();
        let response = client.execute(request).await.unwrap();
        assert_eq!(response.status(), status, "{shown}");
        expect_error(response, status, code).await;
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    let client = server.client();
    let send = |body: String| {
        client
            .post(server.token_url())
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    for size in [64 * 1024 + 1, 2 * 1024 * 1024] {
        let mut body = String::from("grant_type=client_credentials&pad=");
        body.push_str(&"a".repeat(size));
        let response = send(body).await;
        // The server may answer 413 and close before the client finishes
        // sending 2 MB; either way it must not be a 5xx or a hang.
        if let Ok(response) = response {
            expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
        }
    }
    // Exactly at the limit is parsed (and here, refused for its content only).
    let mut body = String::from("grant_type=client_credentials&pad=");
    body.push_str(&"a".repeat(64 * 1024 - body.len()));
    assert_eq!(body.len(), 64 * 1024);
    assert_eq!(send(body).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn resource_selects_the_audience() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    for (extra, expected) in [
        (&[][..], "https://api.test"),
        (
            &[("resource", "https://other.test")][..],
            "https://other.test",
        ),
    ] {
        let body = api::token_body(&server.client(), &server.base_url, &id, &secret, extra).await;
        let claims = unverified_claims(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], expected);
    }
}

#[tokio::test]
async fn a_thousand_tokens_have_a_thousand_jtis() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .create_client(NewClient {
            name: "jti".into(),
            ..NewClient::default()
        })
        .await;
    let mut jtis = std::collections::HashSet::new();
    for _ in 0..1_000 {
        let token = api::token(&server.client(), &server.base_url, &id, &secret).await;
        let claims = unverified_claims(&token);
        assert!(jtis.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
    assert_eq!(jtis.len(), 1_000);
}

#[tokio::test]
async fn http1_is_served_when_the_client_does_not_offer_h2() {
    let server = TestServer::start().await;
    let h1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.cert_pem).unwrap()])
        .http1_only()
        .build()
        .unwrap();
    let response = h1.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::OK);
}
