//! The admin API over TLS on a real server: every route, every refusal
//! (no token, a token of another scope, an expired, revoked or disabled
//! admin token), bad input that must never get a 5xx, and the audit trail
//! each change leaves, naming the admin client, request and peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::admin::NewClient;
use auth_server::audit::{AuditQuery, AuditRecord};
use auth_server::keys::Algorithm;
use auth_server::store::AuditStore;
use common::assertion::{ClientKey, claims, jwks, token_form};
use common::{TestServer, api, json_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "/auth-server/v1/admin";

struct Admin {
    server: TestServer,
    http: reqwest::Client,
    id: String,
    secret: String,
    token: String,
}

impl Admin {
    async fn start() -> Self {
        let server = TestServer::start_with(Algorithm::EdDSA, |config| {
            config.token.exp_leeway_secs = 0;
        })
        .await;
        let (id, secret) = server.admin_client().await;
        let http = server.client();
        let token = api::token(&http, &server.base_url, &id, &secret).await;
        Self {
            server,
            http,
            id,
            secret,
            token,
        }
    }

    /// The audit records about `client` (every record: `None`).
    async fn trail(&self, client: Option<&str>) -> Vec<AuditRecord> {
        let query = AuditQuery {
            client: client.map(str::to_owned),
            ..AuditQuery::default()
        };
        self.server.store.audit_records(&query).await.unwrap()
    }

    fn url(&self, path: &str) -> String {
        self.server.url(&format!("{ADMIN}{path}"))
    }

    async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Sends a call with the admin token; asserts `status`; the JSON body.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let response = self.call_as(Some(&self.token), method, path, body).await;
        assert_eq!(response.status(), status, "{path}");
        common_headers(&response);
        json_body(response).await
    }
}

/// What every endpoint's answers carry.
fn common_headers(response: &reqwest::Response) {
    let h = response.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-type"], "application/json");
    assert!(h.contains_key("x-request-id"));
}

#[tokio::test]
async fn every_route_works_and_every_change_is_audited() {
    let admin = Admin::start().await;
    let base = admin.server.base_url.clone();
    let (get, post, patch, delete) = (Method::GET, Method::POST, Method::PATCH, Method::DELETE);

    // Create: the secret comes once, and works.
    let created = admin
        .expect(
            post.clone(),
            "/clients",
            Some(json!({
                "client_id": "billing",
                "name": "Billing",
                "allowed_scopes": "read write",
                "default_scopes": "read",
                "allowed_audiences": ["https://api.test"],
                "token_lifetime_secs": 600
            })),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(created["client_id"], "billing");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let token = api::token(&admin.http, &base, "billing", &secret).await;
    assert_eq!(api::validate(&admin.http, &base, &token).await, 200);

    // Show never shows a secret or a hash.
    let shown = admin
        .expect(get.clone(), "/clients/billing", None, StatusCode::OK)
        .await;
    assert_eq!(shown["name"], "Billing");
    assert!(shown.get("client_secret").is_none() && shown.get("secret_hash").is_none());

    // List, one page at a time.
    for id in ["c1", "c2"] {
        let body = json!({ "client_id": id, "name": id });
        admin
            .expect(post.clone(), "/clients", Some(body), StatusCode::CREATED)
            .await;
    }
    let first = admin
        .expect(get.clone(), "/clients?limit=2", None, StatusCode::OK)
        .await;
    let ids = |page: &Value| -> Vec<String> {
        page["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["client_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["billing", "c1"]);
    assert_eq!(first["next_after"], "c1");
    let second = admin
        .expect(
            get.clone(),
            "/clients?limit=2&after=c1",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(ids(&second), ["c2", "ops"]);
    assert_eq!(second["next_after"], Value::Null);

    // Update: absent fields stay, null clears.
    let updated = admin
        .expect(
            patch.clone(),
            "/clients/billing",
            Some(json!({ "name": "Billing v2", "token_lifetime_secs": null })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(updated["name"], "Billing v2");
    assert_eq!(updated["token_lifetime_secs"], Value::Null);
    assert_eq!(updated["allowed_scopes"], "read write");

    // Rotate with no grace: the old secret stops at once, the new one works.
    let rotated = admin
        .expect(
            post.clone(),
            "/clients/billing/rotate-secret",
            Some(json!({ "grace_secs": 0 })),
            StatusCode::OK,
        )
        .await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let old = api::token_request(&admin.http, &base, "billing", &secret).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let token = api::token(&admin.http, &base, "billing", &new_secret).await;

    // Revoke by jti: refused at once on this instance.
    let jti = common::unverified_claims(&token)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = admin
        .expect(
            post.clone(),
            "/tokens/revoke",
            Some(json!({ "jti": jti })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(revoked["revoked_jti"], jti.as_str());
    assert_eq!(api::validate(&admin.http, &base, &token).await, 401);

    // Disable ends the client's tokens and refuses new ones; enable lets
    // it back in, and revoking by client ends what it had.
    let token = api::token(&admin.http, &base, "billing", &new_secret).await;
    let disabled = admin
        .expect(
            post.clone(),
            "/clients/billing/disable",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(api::validate(&admin.http, &base, &token).await, 401);
    let refused = api::token_request(&admin.http, &base, "billing", &new_secret).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    admin
        .expect(
            post.clone(),
            "/clients/billing/enable",
            None,
            StatusCode::OK,
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let token = api::token(&admin.http, &base, "billing", &new_secret).await;
    assert_eq!(api::validate(&admin.http, &base, &token).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let by_client = admin
        .expect(
            post.clone(),
            "/tokens/revoke",
            Some(json!({ "client_id": "billing" })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(by_client["client_id"], "billing");
    assert_eq!(api::validate(&admin.http, &base, &token).await, 401);

    // Keys: list, rotate (a next key appears).
    let keys = admin
        .expect(get.clone(), "/keys", None, StatusCode::OK)
        .await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let next = admin
        .expect(post.clone(), "/keys/rotate", None, StatusCode::OK)
        .await;
    assert_eq!(next["state"], "next");
    let keys = admin
        .expect(get.clone(), "/keys", None, StatusCode::OK)
        .await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);

    // Delete.
    let deleted = admin
        .expect(delete.clone(), "/clients/c2", None, StatusCode::OK)
        .await;
    assert_eq!(deleted["deleted"], "c2");
    admin
        .expect(get.clone(), "/clients/c2", None, StatusCode::NOT_FOUND)
        .await;

    // The trail: one record per change, by the admin client, from this
    // peer, with each request's id, and never a secret.
    let records = admin.trail(Some("ops")).await;
    let by_api: Vec<&str> = records
        .iter()
        .filter(|r| r.entry.actor.actor == "admin_api")
        .map(|r| r.entry.action.as_str())
        .collect();
    assert_eq!(
        by_api,
        [
            "client.create",
            "client.create",
            "client.create",
            "client.update",
            "client.rotate_secret",
            "token.revoke",
            "client.disable",
            "client.enable",
            "client.revoke_tokens",
            "key.rotate",
            "client.delete",
        ]
    );
    for record in records
        .iter()
        .filter(|r| r.entry.actor.actor == "admin_api")
    {
        let actor = &record.entry.actor;
        assert_eq!(actor.actor_id, "ops");
        assert_eq!(actor.peer_ip.as_deref(), Some("127.0.0.1"));
        assert!(actor.request_id.as_ref().is_some_and(|r| !r.is_empty()));
    }
    let trail = serde_json::to_string(&records).unwrap();
    assert!(!trail.contains(&secret) && !trail.contains(&new_secret));
}

#[tokio::test]
async fn callers_without_a_good_admin_token_are_refused() {
    let admin = Admin::start().await;
    let base = admin.server.base_url.clone();

    // No token: 401 with a Bearer challenge.
    let none = admin.call_as(None, Method::GET, "/clients", None).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    common_headers(&none);
    // Not a token of ours.
    let forged = admin
        .call_as(Some("e30.e30.sig"), Method::GET, "/clients", None)
        .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // A good token without the scope: 403 insufficient_scope.
    let (reader, reader_secret) = admin.server.standard_client().await;
    let token = api::token(&admin.http, &base, &reader, &reader_secret).await;
    let scoped = admin
        .call_as(
            Some(&token),
            Method::POST,
            "/clients",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(scoped.status(), StatusCode::FORBIDDEN);
    let www = scoped.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.contains("insufficient_scope"), "{www}");
    assert_eq!(json_body(scoped).await["error"], "insufficient_scope");

    // An expired admin token.
    let (short, short_secret) = admin
        .server
        .create_client(NewClient {
            name: "Short-lived admin".into(),
            allowed_scopes: "auth-server:admin".into(),
            token_lifetime_secs: Some(1),
            ..NewClient::default()
        })
        .await;
    let expiring = api::token(&admin.http, &base, &short, &short_secret).await;
    let ok = admin
        .call_as(Some(&expiring), Method::GET, "/keys", None)
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let expired = admin
        .call_as(Some(&expiring), Method::GET, "/keys", None)
        .await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);

    // A revoked admin token (revoked through the API itself).
    let second = api::token(&admin.http, &base, &admin.id, &admin.secret).await;
    let jti = common::unverified_claims(&second)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .expect(
            Method::POST,
            "/tokens/revoke",
            Some(json!({ "jti": jti })),
            StatusCode::OK,
        )
        .await;
    let revoked = admin
        .call_as(Some(&second), Method::GET, "/keys", None)
        .await;
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);

    // A disabled admin client: its tokens stop working.
    admin
        .expect(Method::POST, "/clients/ops/disable", None, StatusCode::OK)
        .await;
    let disabled = admin
        .call_as(Some(&admin.token), Method::GET, "/keys", None)
        .await;
    assert_eq!(disabled.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_never_a_5xx() {
    let admin = Admin::start().await;
    let created = json!({ "client_id": "dup", "name": "Dup" });
    admin
        .expect(
            Method::POST,
            "/clients",
            Some(created.clone()),
            StatusCode::CREATED,
        )
        .await;
    let before = admin.trail(None).await.len();

    let cases: Vec<(Method, &str, Option<&str>, StatusCode)> = vec![
        (Method::POST, "/clients", Some("{"), StatusCode::BAD_REQUEST),
        (
            Method::POST,
            "/clients",
            Some("[]"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients",
            Some(r#"{"name": ""}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients",
            Some(r#"{"name": "x", "secret": "s"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients",
            Some(r#"{"client_id": "a b", "name": "x"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients",
            Some(r#"{"name": "x", "allowed_scopes": "a\u0001"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients",
            Some(r#"{"name": "x", "token_lifetime_secs": -1}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients",
            Some(r#"{"name": "x", "token_lifetime_secs": 999999}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients",
            Some(r#"{"client_id": "dup", "name": "again"}"#),
            StatusCode::CONFLICT,
        ),
        (
            Method::PATCH,
            "/clients/dup",
            Some(r#"{"default_scopes": "nope"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/clients/nobody",
            Some(r#"{"name": "x"}"#),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/clients/nobody",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/clients/nobody/disable",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/tokens/revoke",
            Some("{}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/tokens/revoke",
            Some(r#"{"jti": "a", "client_id": "b"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/tokens/revoke",
            Some(r#"{"jti": ""}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/keys/rotate",
            Some(r#"{"now": "yes"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/clients?limit=0",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/clients?limit=abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/clients?sort=id",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/clients",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/clients/dup/rotate-secret",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/nothing", None, StatusCode::NOT_FOUND),
        (Method::GET, "/clients/a/b/c", None, StatusCode::NOT_FOUND),
    ];
    for (method, path, body, status) in cases {
        let mut request = admin
            .http
            .request(method.clone(), admin.url(path))
            .bearer_auth(&admin.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {path} {body:?}");
        common_headers(&response);
        let error = json_body(response).await;
        assert!(error["error"].is_string(), "{method} {path}: {error}");
    }
    // Not JSON, and too large.
    let form = admin
        .http
        .post(admin.url("/clients"))
        .bearer_auth(&admin.token)
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
    let huge = json!({ "name": "x".repeat(2 << 20) });
    let large = admin
        .call_as(Some(&admin.token), Method::POST, "/clients", Some(huge))
        .await;
    assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // None of the refused changes left a record.
    let after = admin.trail(None).await.len();
    assert_eq!(after, before);
}

/// The authentication method through the admin API: by its RFC 7591 name,
/// with the keys of a `private_key_jwt` client, held to the CLI's rules;
/// the trail records each change of method.
#[tokio::test]
async fn the_auth_method_is_set_by_name() {
    let admin = Admin::start().await;
    let key = ClientKey::new("EdDSA");
    let created = admin
        .expect(
            Method::POST,
            "/clients",
            Some(json!({
                "client_id": "signer",
                "name": "Signer",
                "allowed_scopes": "read",
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks(&[&key]),
            })),
            StatusCode::CREATED,
        )
        .await;
    assert!(created.get("client_secret").is_none(), "{created}");
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(created["jwks"], jwks(&[&key]));
    let assertion = key.sign(&claims("signer", &admin.server.token_url()));
    let token = admin
        .http
        .post(api::endpoint(&admin.server.base_url, "token"))
        .form(&token_form(&assertion, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);

    for (bad, why) in [
        (
            json!({ "token_endpoint_auth_method": "none" }),
            "not one of",
        ),
        (
            json!({ "token_endpoint_auth_method": "tls_client_auth" }),
            "certificate registration",
        ),
        (json!({ "jwks_uri": "http://keys.test" }), "https://"),
    ] {
        let refused = admin
            .expect(
                Method::PATCH,
                "/clients/signer",
                Some(bad.clone()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        let description = refused["error_description"].as_str().unwrap();
        assert!(description.contains(why), "{bad}: {description}");
    }
    let secret_again = admin
        .expect(
            Method::PATCH,
            "/clients/signer",
            Some(json!({ "token_endpoint_auth_method": "client_secret_post" })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        secret_again["token_endpoint_auth_method"],
        "client_secret_post"
    );
    let methods: Vec<Value> = admin
        .trail(Some("signer"))
        .await
        .iter()
        .map(|r| r.entry.changes["token_endpoint_auth_method"].clone())
        .collect();
    assert_eq!(
        methods,
        [
            json!({ "from": null, "to": "private_key_jwt" }),
            json!({ "from": "private_key_jwt", "to": "client_secret_post" }),
        ]
    );
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let admin = Admin::start().await;
    let response = admin
        .http
        .get(admin.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    common_headers(&response);
    let spec = json_body(response).await;
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/clients/{client_id}"]["patch"].is_object());
}

/// `auth-server client … --server URL` goes through the admin API as the
/// client in ADMIN_CLIENT_ID / ADMIN_CLIENT_SECRET, and its changes are
/// recorded as that admin client's.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_can_work_through_a_server() {
    let admin = Admin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &admin.server.cert_pem).unwrap();
    let issuer = format!("{}/auth-server/v1", admin.server.base_url);
    let env = [
        ("ADMIN_CLIENT_ID", admin.id.as_str()),
        ("ADMIN_CLIENT_SECRET", admin.secret.as_str()),
    ];
    let cli = |args: &[&str]| {
        let mut all = vec![
            "client",
            "--server",
            &issuer,
            "--ca-cert",
            ca.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        common::process::run_env(dir.path(), &all, &env)
    };
    let created = cli(&[
        "create", "--name", "Remote", "--id", "remote", "--scopes", "read",
    ]);
    assert!(
        created.status.success(),
        "{}",
        common::process::text(&created.stderr)
    );
    let stdout = common::process::text(&created.stdout);
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .to_owned();
    let token = api::token(&admin.http, &admin.server.base_url, "remote", &secret).await;
    assert_eq!(
        api::validate(&admin.http, &admin.server.base_url, &token).await,
        200
    );

    let updated = cli(&[
        "update",
        "remote",
        "--name",
        "Remote v2",
        "--clear-lifetime",
    ]);
    assert!(
        updated.status.success(),
        "{}",
        common::process::text(&updated.stderr)
    );
    assert!(common::process::text(&updated.stdout).contains("Remote v2"));
    let listed = common::process::text(&cli(&["list"]).stdout);
    assert!(
        listed.contains("remote\tenabled\tread\tRemote v2"),
        "{listed}"
    );
    assert!(cli(&["disable", "remote"]).status.success());
    assert!(cli(&["delete", "remote"]).status.success());
    // Refusals keep the CLI's exit codes.
    assert_eq!(cli(&["show", "remote"]).status.code(), Some(65));
    let bad = cli(&["create", "--name", "", "--id", "x"]);
    assert_eq!(bad.status.code(), Some(64));
    let anonymous = common::process::run_env(
        dir.path(),
        &[
            "client",
            "--server",
            &issuer,
            "--ca-cert",
            ca.to_str().unwrap(),
            "list",
        ],
        &[],
    );
    assert_eq!(anonymous.status.code(), Some(78));

    let records = admin.trail(Some("remote")).await;
    let actions: Vec<&str> = records.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "client.create",
            "client.update",
            "client.disable",
            "client.delete"
        ]
    );
    assert!(records.iter().all(|r| r.entry.actor.actor_id == "ops"));
}
