//! RFC 7591 dynamic registration and RFC 7592 management over TLS, with
//! requests built by hand: off by default, an initial access token needed,
//! metadata held to policy, the registered client getting tokens with the
//! secret it was given, and managing itself with its registration token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::admin::NewClient;
use auth_server::audit::AuditQuery;
use auth_server::keys::Algorithm;
use auth_server::store::AuditStore;
use common::assertion::{ClientKey, claims, jwks, token_form};
use common::{TestServer, api, json_body};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REGISTER: &str = "/auth-server/v1/register";

async fn metadata(server: &TestServer) -> Value {
    json_body(
        server
            .get("/.well-known/oauth-authorization-server/auth-server/v1")
            .await,
    )
    .await
}

/// A server with registration on, `read` the scope it allows.
async fn registering_server() -> TestServer {
    TestServer::start_with(Algorithm::EdDSA, |config| {
        config.registration.enabled = true;
        config.registration.allowed_scopes = "read".into();
    })
    .await
}

/// An initial access token: ours, with the registration scope, for the
/// client "pipeline".
async fn initial_access_token(server: &TestServer) -> String {
    let (registrar, registrar_secret) = server
        .create_client(NewClient {
            id: Some("pipeline".into()),
            name: "CI pipeline".into(),
            allowed_scopes: "auth-server:register".into(),
            ..NewClient::default()
        })
        .await;
    api::token(
        &server.client(),
        &server.base_url,
        &registrar,
        &registrar_secret,
    )
    .await
}

/// RFC 7592 `PUT` of `metadata` at `manage` with the registration token.
async fn put_metadata(
    http: &reqwest::Client,
    manage: &str,
    token: &str,
    metadata: &Value,
) -> reqwest::Response {
    http.put(manage)
        .bearer_auth(token)
        .json(metadata)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn registration_is_off_by_default() {
    let server = TestServer::start().await;
    assert!(
        metadata(&server)
            .await
            .get("registration_endpoint")
            .is_none()
    );
    let response = server
        .client()
        .post(server.url(REGISTER))
        .json(&json!({ "client_name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_registered_client_gets_tokens_and_manages_itself() {
    let server = registering_server().await;
    let http = server.client();
    let base = server.base_url.clone();
    let endpoint = metadata(&server).await["registration_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        endpoint,
        format!(
            "{}{REGISTER}",
            server.issuer.trim_end_matches("/auth-server/v1")
        )
    );
    let url = server.url(REGISTER);

    let initial = initial_access_token(&server).await;
    let (reader, reader_secret) = server.standard_client().await;
    let not_initial = api::token(&http, &base, &reader, &reader_secret).await;

    let request = json!({
        "client_name": "Inventory service",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_post",
        "scope": "read",
        "software_id": "ignored-unknown-metadata"
    });
    let anonymous = http.post(&url).json(&request).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let scoped = http
        .post(&url)
        .bearer_auth(&not_initial)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(scoped.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_body(scoped).await["error"], "insufficient_scope");

    // Metadata outside the policy.
    for (bad, error) in [
        (
            json!({ "grant_types": ["authorization_code"] }),
            "invalid_client_metadata",
        ),
        // A key client needs its keys, keys need a key client, and the
        // certificate methods are not offered.
        (
            json!({ "token_endpoint_auth_method": "private_key_jwt" }),
            "invalid_client_metadata",
        ),
        (
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://k.test" }),
            "invalid_client_metadata",
        ),
        (
            json!({ "token_endpoint_auth_method": "client_secret_basic", "jwks_uri": "https://k.test" }),
            "invalid_client_metadata",
        ),
        (
            json!({ "token_endpoint_auth_method": "tls_client_auth" }),
            "invalid_client_metadata",
        ),
        (
            json!({ "token_endpoint_auth_method": "none" }),
            "invalid_client_metadata",
        ),
        (json!({ "scope": "read write" }), "invalid_client_metadata"),
        (json!({ "client_name": "" }), "invalid_client_metadata"),
        (
            json!({ "redirect_uris": ["https://app.test/cb"] }),
            "invalid_redirect_uri",
        ),
        (
            json!({ "grant_types": "client_credentials" }),
            "invalid_request",
        ),
    ] {
        let response = http
            .post(&url)
            .bearer_auth(&initial)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(json_body(response).await["error"], error, "{bad}");
    }

    let response = http
        .post(&url)
        .bearer_auth(&initial)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let registered = json_body(response).await;
    let id = registered["client_id"].as_str().unwrap().to_owned();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();
    let management = registered["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(registered["client_secret_expires_at"], 0);
    assert_eq!(registered["client_name"], "Inventory service");
    assert_eq!(registered["grant_types"], json!(["client_credentials"]));
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_post"
    );
    assert_eq!(registered["scope"], "read");
    assert!(registered.get("software_id").is_none());
    let client_uri = registered["registration_client_uri"].as_str().unwrap();
    assert_eq!(client_uri, format!("{}/register/{id}", server.issuer));

    // The registered client gets a token, its secret in the form body.
    let token = http
        .post(api::endpoint(&base, "token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);
    let token = json_body(token).await;
    assert_eq!(token["scope"], "read");

    // RFC 7592: read, change and delete with the registration token only.
    let manage = server.url(&format!("{REGISTER}/{id}"));
    let read = http
        .get(&manage)
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let read = json_body(read).await;
    assert_eq!(read["client_name"], "Inventory service");
    assert!(read.get("client_secret").is_none() && read.get("registration_access_token").is_none());
    for wrong in [secret.as_str(), initial.as_str(), "x"] {
        let refused = http.get(&manage).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let other = server.url(&format!("{REGISTER}/{reader}"));
    let not_registered = http
        .get(&other)
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert_eq!(not_registered.status(), StatusCode::UNAUTHORIZED);

    let change = json!({ "client_id": id, "client_name": "Inventory v2", "scope": "read" });
    let changed = put_metadata(&http, &manage, &management, &change).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(json_body(changed).await["client_name"], "Inventory v2");
    let mismatched = json!({ "client_id": "someone-else", "client_name": "x" });
    let refused = put_metadata(&http, &manage, &management, &mismatched).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let deleted = http
        .delete(&manage)
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = http
        .get(&manage)
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
    let no_token = api::token_request(&http, &base, &id, &secret).await;
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    // The trail: registered by the pipeline, changed and deleted by itself.
    let records = server
        .store
        .audit_records(&AuditQuery {
            client: Some(id.clone()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let seen: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            let e = &r.entry;
            (
                e.action.as_str(),
                e.actor.actor.as_str(),
                e.actor.actor_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("client.register", "registration", "pipeline"),
            ("client.update", "registration", id.as_str()),
            ("client.delete", "registration", id.as_str()),
        ]
    );
    let trail = serde_json::to_string(&records).unwrap();
    assert!(!trail.contains(&secret) && !trail.contains(&management));
}

#[tokio::test]
async fn a_private_key_jwt_client_registers_its_keys_and_no_secret() {
    let server = registering_server().await;
    let http = server.client();
    let base = server.base_url.clone();
    let url = server.url(REGISTER);
    let initial = initial_access_token(&server).await;
    let (first, second) = (ClientKey::new("EdDSA"), ClientKey::new("ES256"));
    let token_with = |key: &ClientKey, id: &str| {
        let assertion = key.sign(&claims(id, &server.token_url()));
        let http = http.clone();
        let token_url = api::endpoint(&base, "token");
        async move {
            http.post(token_url)
                .form(&token_form(&assertion, &[]))
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    let response = http
        .post(&url)
        .bearer_auth(&initial)
        .json(&json!({
            "client_name": "Signer",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": jwks(&[&first]),
            "scope": "read",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered = json_body(response).await;
    assert!(registered.get("client_secret").is_none(), "{registered}");
    assert!(registered.get("client_secret_expires_at").is_none());
    assert_eq!(registered["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(registered["jwks"], jwks(&[&first]));
    let id = registered["client_id"].as_str().unwrap().to_owned();
    let management = registered["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token_with(&first, &id).await, StatusCode::OK);
    assert_eq!(token_with(&second, &id).await, StatusCode::UNAUTHORIZED);

    // RFC 7592: the stored method is shown; a PUT replaces the keys but
    // does not turn the client into a secret client.
    let manage = server.url(&format!("{REGISTER}/{id}"));
    let read = json_body(
        http.get(&manage)
            .bearer_auth(&management)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(read["jwks"], jwks(&[&first]));
    let to_secret = json!({
        "client_id": id, "client_name": "Signer", "scope": "read",
        "token_endpoint_auth_method": "client_secret_basic",
    });
    let refused = put_metadata(&http, &manage, &management, &to_secret).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(refused).await["error"], "invalid_client_metadata");
    let new_keys = json!({
        "client_id": id, "client_name": "Signer", "scope": "read",
        "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&second]),
    });
    let changed = put_metadata(&http, &manage, &management, &new_keys).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(json_body(changed).await["jwks"], jwks(&[&second]));
    assert_eq!(token_with(&second, &id).await, StatusCode::OK);
    assert_eq!(token_with(&first, &id).await, StatusCode::UNAUTHORIZED);

    // The trail has the method and the keys as registered, then the new keys.
    let records = server
        .store
        .audit_records(&AuditQuery {
            client: Some(id.clone()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let registration = &records[0].entry.changes;
    assert_eq!(
        registration["token_endpoint_auth_method"],
        json!({ "from": null, "to": "private_key_jwt" })
    );
    assert_eq!(registration["jwks"]["to"], jwks(&[&first]));
    assert_eq!(records[1].entry.changes["jwks"]["to"], jwks(&[&second]));
}
