//! Workload identity federation through the real server over TLS: tokens
//! of a test Kubernetes cluster and a test SPIFFE trust domain (HTTPS
//! issuers on loopback) exchanged for our tokens with the RFC 7523
//! jwt-bearer grant and RFC 8693 token exchange, and every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use auth_server::admin::NewClient;
use auth_server::admin::federated::add_federated_subject;
use auth_server::audit::Actor;
use auth_server::domain::federation::FederatedSubject;
use auth_server::keys::Algorithm;
use common::assertion::ClientKey;
use common::issuer::TestIssuer;
use common::jwks_host::Answer;
use common::{TestServer, api, json_body, metric, unverified_claims};
use jsonwebtoken::Header;
use reqwest::StatusCode;
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A server trusting `issuers` (`k8s` by discovery, the others by JWK Set
/// URL); keys cached for `ttl_secs`, refetched at most every second. The
/// directory holds the CA bundle the server trusts.
async fn server_trusting(
    issuers: &[(&str, &TestIssuer)],
    ttl_secs: u64,
) -> (TestServer, tempfile::TempDir) {
    let trusted: Vec<_> = issuers
        .iter()
        .map(|(name, issuer)| issuer.trusted(name, *name != "k8s"))
        .collect();
    // Every test host has its own CA: trust them all through one file.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("cas.pem");
    let pems: Vec<String> = issuers
        .iter()
        .map(|(_, i)| std::fs::read_to_string(&i.host.ca_file).unwrap())
        .collect();
    std::fs::write(&bundle, pems.concat()).unwrap();
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.jwks_fetch.ca_file = bundle.display().to_string();
        c.jwks_fetch.min_refetch_interval_secs = 1;
        c.jwks_fetch.cache_ttl_secs = ttl_secs;
        c.jwks_fetch.timeout_ms = 1_000;
        c.jwks_fetch.connect_timeout_ms = 500;
        c.federation.issuers = trusted;
    })
    .await;
    (server, dir)
}

/// A client allowed `read write` (default `read`), lifetime 600 s.
async fn client(server: &TestServer, id: &str) -> (String, String) {
    server
        .create_client(NewClient {
            id: Some(id.into()),
            name: id.into(),
            allowed_scopes: "read write".into(),
            default_scopes: Some("read".into()),
            token_lifetime_secs: Some(600),
            ..NewClient::default()
        })
        .await
}

async fn map(server: &TestServer, client_id: &str, issuer: &str, subject: &str) {
    let subject = FederatedSubject {
        client_id: client_id.into(),
        issuer: issuer.into(),
        subject: subject.into(),
    };
    add_federated_subject(
        &server.store,
        &subject,
        None,
        &Actor::cli("test"),
        auth_server::clock::unix_now(),
    )
    .await
    .unwrap();
}

/// Creates the `clients` with [`client`] and gives them the federated
/// subjects `entries` (client, issuer, subject).
async fn provision(server: &TestServer, clients: &[&str], entries: &[(&str, &str, &str)]) {
    for id in clients {
        client(server, id).await;
    }
    for (client_id, issuer, subject) in entries {
        map(server, client_id, issuer, subject).await;
    }
}

async fn post(server: &TestServer, form: &[(&str, &str)]) -> reqwest::Response {
    server
        .client()
        .post(server.token_url())
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn jwt_bearer(server: &TestServer, assertion: &str) -> reqwest::Response {
    post(
        server,
        &[("grant_type", JWT_BEARER), ("assertion", assertion)],
    )
    .await
}

async fn exchange(server: &TestServer, subject_token: &str) -> reqwest::Response {
    post(
        server,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", subject_token),
            ("subject_token_type", JWT_TYPE),
        ],
    )
    .await
}

async fn assert_error(response: reqwest::Response, status: StatusCode, error: &str, what: &str) {
    assert_eq!(response.status(), status, "{what}");
    let body = json_body(response).await;
    assert_eq!(body["error"], error, "{what}: {body}");
}

/// The jwt-bearer grant refuses a token or its mapping with
/// `invalid_grant` (RFC 7523 3.1).
async fn assert_invalid_grant(response: reqwest::Response, what: &str) {
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant", what).await;
}

/// Token exchange refuses a subject token or its mapping with
/// `invalid_request` (RFC 8693 2.2.2).
async fn assert_refused_subject_token(response: reqwest::Response, what: &str) {
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", what).await;
}

async fn ok_body(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let body = json_body(response).await;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
    body
}

#[tokio::test]
async fn a_service_account_token_gets_its_clients_token_both_ways() {
    let k8s = TestIssuer::start("RS256").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s)], 300).await;
    let (id, secret) = client(&server, "payments").await;
    map(&server, &id, "k8s", "system:serviceaccount:payments:*").await;
    let sa = k8s.k8s_token("payments", "api");

    let body = ok_body(jwt_bearer(&server, &sa).await, "jwt-bearer").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600, "the client's lifetime");
    assert_eq!(body["scope"], "read", "the client's default scopes");
    assert!(body.get("issued_token_type").is_none(), "{body}");
    let claims = unverified_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["client_id"], id);
    assert_eq!(
        claims["act"],
        json!({"iss": k8s.iss, "sub": "system:serviceaccount:payments:api"})
    );
    let token = body["access_token"].as_str().unwrap();
    let introspected =
        api::introspect(&server.client(), &server.base_url, (&id, &secret), token).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(
        introspected["act"]["sub"],
        "system:serviceaccount:payments:api"
    );
    assert_eq!(introspected["act"]["iss"], k8s.iss.as_str());
    assert_eq!(
        api::validate(&server.client(), &server.base_url, token).await,
        StatusCode::OK
    );

    let body = ok_body(exchange(&server, &sa).await, "token exchange").await;
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "read");

    let body = ok_body(
        post(
            &server,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &sa),
                ("subject_token_type", JWT_TYPE),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
                ("scope", "read write"),
            ],
        )
        .await,
        "scope asked for",
    )
    .await;
    assert_eq!(body["scope"], "read write");
    let response = post(
        &server,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &sa),
            ("scope", "admin"),
        ],
    )
    .await;
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "more than allowed",
    )
    .await;
}

#[tokio::test]
async fn a_jwt_svid_maps_by_exact_id_or_one_path_segment() {
    let k8s = TestIssuer::start("RS256").await;
    let spiffe = TestIssuer::start("ES256").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s), ("spiffe", &spiffe)], 300).await;
    provision(
        &server,
        &["api", "batch"],
        &[
            ("api", "spiffe", "spiffe://prod.example/ns/payments/sa/api"),
            ("batch", "spiffe", "spiffe://prod.example/ns/batch/sa/*"),
        ],
    )
    .await;

    let body = ok_body(
        exchange(
            &server,
            &spiffe.svid("spiffe://prod.example/ns/payments/sa/api"),
        )
        .await,
        "exact",
    )
    .await;
    assert_eq!(
        unverified_claims(body["access_token"].as_str().unwrap())["sub"],
        "api"
    );
    let body = ok_body(
        jwt_bearer(
            &server,
            &spiffe.svid("spiffe://prod.example/ns/batch/sa/nightly"),
        )
        .await,
        "pattern",
    )
    .await;
    assert_eq!(
        unverified_claims(body["access_token"].as_str().unwrap())["sub"],
        "batch"
    );
    for unmapped in [
        "spiffe://prod.example/ns/batch/sa/nightly/extra",
        "spiffe://prod.example/ns/payments/sa/other",
    ] {
        assert_invalid_grant(jwt_bearer(&server, &spiffe.svid(unmapped)).await, unmapped).await;
    }
    // The same subject from the other issuer maps to nothing.
    let mut from_k8s = k8s.k8s_claims("payments", "api", 5);
    from_k8s["sub"] = "spiffe://prod.example/ns/payments/sa/api".into();
    assert_invalid_grant(
        jwt_bearer(&server, &k8s.sign(&from_k8s)).await,
        "subjects are per issuer",
    )
    .await;
}

#[tokio::test]
async fn every_bad_external_token_is_refused_by_both_grants() {
    let k8s = TestIssuer::start("RS256").await;
    let other = TestIssuer::start("RS256").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s), ("other", &other)], 300).await;
    provision(
        &server,
        &["payments", "twin"],
        &[
            ("payments", "k8s", "system:serviceaccount:payments:*"),
            ("payments", "other", "system:serviceaccount:payments:api"),
            ("twin", "k8s", "system:serviceaccount:shared:*"),
            ("payments", "k8s", "system:serviceaccount:shared:api"),
        ],
    )
    .await;
    // Warm the keys of both issuers.
    ok_body(
        jwt_bearer(&server, &k8s.k8s_token("payments", "api")).await,
        "warm",
    )
    .await;
    ok_body(
        jwt_bearer(&server, &other.k8s_token("payments", "api")).await,
        "warm other",
    )
    .await;

    let good = || k8s.k8s_claims("payments", "api", 5);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good();
        change(&mut claims);
        k8s.sign(&claims)
    };
    let now = auth_server::clock::unix_now();
    let stranger = ClientKey::new("RS256");
    let hmac = {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(k8s.key.kid.clone());
        jsonwebtoken::encode(
            &header,
            &good(),
            &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap()
    };
    let unsigned = {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&good())
        )
    };
    let signed_by_other_issuer = other.sign(&good());
    let other_key_our_kid = {
        let mut header = Header::new(other.key.alg);
        header.kid = Some(k8s.key.kid.clone());
        other.key.sign_with_header(header, &good())
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            with(&|c| {
                c["iat"] = (now - 400).into();
                c["nbf"] = (now - 400).into();
                c["exp"] = (now - 100).into();
            }),
        ),
        (
            "older than the maximum age",
            k8s.sign(&k8s.k8s_claims("payments", "api", 3_700)),
        ),
        (
            "wrong aud",
            with(&|c| c["aud"] = json!(["https://someone-else.test"])),
        ),
        (
            "no aud",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        (
            "unknown iss",
            with(&|c| c["iss"] = "https://unknown.test".into()),
        ),
        (
            "nbf in the future",
            with(&|c| c["nbf"] = (now + 600).into()),
        ),
        (
            "iat in the future",
            with(&|c| c["iat"] = (now + 600).into()),
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "no sub",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        ("kid not in the issuer's JWKS", stranger.sign(&good())),
        ("HMAC", hmac),
        ("alg none", unsigned),
        (
            "signed by another trusted issuer's key",
            signed_by_other_issuer,
        ),
        ("another issuer's key under our kid", other_key_our_kid),
        ("subject of no client", k8s.k8s_token("orders", "api")),
        ("subject of two clients", k8s.k8s_token("shared", "api")),
        ("garbage", "not.a.jwt".into()),
        (
            "16 KiB and more",
            with(&|c| c["padding"] = "x".repeat(16 * 1024).into()),
        ),
    ];
    for (what, token) in &cases {
        assert_invalid_grant(jwt_bearer(&server, token).await, what).await;
        assert_refused_subject_token(exchange(&server, token).await, what).await;
    }

    // Missing or wrong parameters are invalid_request.
    for (what, form) in [
        ("no assertion", vec![("grant_type", JWT_BEARER)]),
        (
            "no subject_token",
            vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token_type", JWT_TYPE),
            ],
        ),
        (
            "no subject_token_type",
            vec![("grant_type", TOKEN_EXCHANGE), ("subject_token", "a.b.c")],
        ),
        (
            "an unknown subject_token_type",
            vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", "a.b.c"),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                ),
            ],
        ),
        (
            "an actor token",
            vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", "a.b.c"),
                ("subject_token_type", JWT_TYPE),
                ("actor_token", "a.b.c"),
                ("actor_token_type", JWT_TYPE),
            ],
        ),
    ] {
        assert_error(
            post(&server, &form).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            what,
        )
        .await;
    }
}

#[tokio::test]
async fn a_64_kib_assertion_is_refused_cleanly() {
    let k8s = TestIssuer::start("RS256").await;
    let mut claims = k8s.k8s_claims("payments", "api", 5);
    claims["padding"] = "x".repeat(64 * 1024).into();
    let huge = k8s.sign(&claims);
    assert!(huge.len() >= 64 * 1024);
    // With room in the body limit, the assertion itself is refused.
    let ca = k8s.host.ca_file.display().to_string();
    let trusted = k8s.trusted("k8s", true);
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.http.max_body_bytes = 256 * 1024;
        c.jwks_fetch.ca_file = ca;
        c.federation.issuers = vec![trusted];
    })
    .await;
    assert_invalid_grant(jwt_bearer(&server, &huge).await, "64 KiB assertion").await;
    assert_refused_subject_token(exchange(&server, &huge).await, "64 KiB subject token").await;
    // With the default 64 KiB body limit, the body is refused first: 413
    // with an invalid_request body, never a 5xx.
    let (server, _cas) = server_trusting(&[("k8s", &k8s)], 300).await;
    assert_error(
        jwt_bearer(&server, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "64 KiB body",
    )
    .await;
}

#[tokio::test]
async fn client_authentication_when_present_must_name_the_mapped_client() {
    let k8s = TestIssuer::start("ES256").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s)], 300).await;
    let (id, secret) = client(&server, "payments").await;
    let (other_id, other_secret) = client(&server, "other").await;
    map(&server, &id, "k8s", "system:serviceaccount:payments:api").await;
    let sa = k8s.k8s_token("payments", "api");
    let with_basic = |user: &str, pass: &str| {
        server
            .client()
            .post(server.token_url())
            .basic_auth(user, Some(pass))
            .form(&[("grant_type", JWT_BEARER), ("assertion", sa.as_str())])
            .send()
    };
    ok_body(with_basic(&id, &secret).await.unwrap(), "the mapped client").await;
    assert_error(
        with_basic(&id, "wrong").await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "a wrong secret",
    )
    .await;
    assert_invalid_grant(
        with_basic(&other_id, &other_secret).await.unwrap(),
        "another client",
    )
    .await;
    let exchanged_by_other = server
        .client()
        .post(server.token_url())
        .basic_auth(&other_id, Some(&other_secret))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", sa.as_str()),
            ("subject_token_type", JWT_TYPE),
        ])
        .send()
        .await
        .unwrap();
    assert_refused_subject_token(exchanged_by_other, "another client's exchange").await;
    let response = post(
        &server,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &sa),
            ("client_id", &other_id),
        ],
    )
    .await;
    assert_invalid_grant(response, "a client_id of another client").await;
    let response = post(
        &server,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &sa),
            ("client_id", &id),
        ],
    )
    .await;
    ok_body(response, "its own client_id").await;

    auth_server::admin::set_enabled(
        &server.store,
        &id,
        false,
        &Actor::cli("test"),
        auth_server::clock::unix_now(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = jwt_bearer(&server, &sa).await;
        if response.status() == StatusCode::BAD_REQUEST {
            assert_invalid_grant(response, "a disabled client").await;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the disabled client still gets tokens"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rotated_issuer_key_is_picked_up_and_cached_keys_outlive_an_outage() {
    let mut k8s = TestIssuer::start("RS256").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s)], 1).await;
    client(&server, "payments").await;
    map(
        &server,
        "payments",
        "k8s",
        "system:serviceaccount:payments:*",
    )
    .await;
    ok_body(
        jwt_bearer(&server, &k8s.k8s_token("payments", "api")).await,
        "first key",
    )
    .await;

    // A new kid appears: the unknown kid fetches the keys again.
    k8s.rotate("ES256");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    ok_body(
        jwt_bearer(&server, &k8s.k8s_token("payments", "api")).await,
        "rotated key",
    )
    .await;

    // The issuer goes down: the cached keys keep working, readiness says
    // why, the metric shows it, and the server stays ready.
    k8s.host.answer(Answer::Down);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let token = k8s.k8s_token("payments", "web");
    ok_body(
        jwt_bearer(&server, &token).await,
        "issuer down, keys cached",
    )
    .await;
    let ready = server.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready = json_body(ready).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["federation"]["k8s"]["keys"], 2, "{ready}");
    assert!(
        ready["federation"]["k8s"]["error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{ready}"
    );
    let http = server.client();
    assert_eq!(
        metric(
            &http,
            &server,
            "auth_federation_issuer_fetch_ok{issuer=\"k8s\"}"
        )
        .await,
        0.0
    );
    assert_eq!(
        metric(
            &http,
            &server,
            "auth_federation_issuer_keys{issuer=\"k8s\"}"
        )
        .await,
        2.0
    );

    // Back up: the error clears.
    k8s.host.serve(&common::assertion::jwks(&[&k8s.key]));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    ok_body(jwt_bearer(&server, &token).await, "issuer back").await;
    let ready = json_body(server.get("/health/ready").await).await;
    assert_eq!(ready["federation"]["k8s"]["error"], Value::Null, "{ready}");
    assert_eq!(
        metric(
            &http,
            &server,
            "auth_federation_issuer_fetch_ok{issuer=\"k8s\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn slow_huge_or_garbage_key_sets_give_invalid_grant_quickly() {
    let k8s = TestIssuer::start("RS256").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s)], 1).await;
    client(&server, "payments").await;
    map(
        &server,
        "payments",
        "k8s",
        "system:serviceaccount:payments:*",
    )
    .await;
    let huge = json!({"keys": [], "padding": "x".repeat(200 * 1024)}).to_string();
    for (what, answer) in [
        ("slow", Answer::Slow(Duration::from_secs(5))),
        ("huge", Answer::Serve(huge)),
        (
            "garbage",
            Answer::Serve("<html>not a key set</html>".into()),
        ),
        (
            "redirect",
            Answer::Redirect(format!("{}/elsewhere", k8s.host.origin)),
        ),
        ("down", Answer::Down),
    ] {
        k8s.host.answer(answer);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let started = Instant::now();
        let response = jwt_bearer(&server, &k8s.k8s_token("payments", "api")).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: answered in time"
        );
        // The discovery document is served apart from the keys: only the
        // key fetch fails, and with no key ever fetched nothing verifies.
        assert_invalid_grant(response, what).await;
        let ready = json_body(server.get("/health/ready").await).await;
        assert!(
            ready["federation"]["k8s"]["error"].is_string(),
            "{what}: {ready}"
        );
    }
}

#[tokio::test]
async fn subjects_added_later_are_seen_and_audited() {
    let k8s = TestIssuer::start("EdDSA").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s)], 300).await;
    client(&server, "payments").await;
    let sa = k8s.k8s_token("payments", "api");
    assert_invalid_grant(jwt_bearer(&server, &sa).await, "nothing mapped yet").await;
    map(
        &server,
        "payments",
        "k8s",
        "system:serviceaccount:payments:api",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while jwt_bearer(&server, &sa).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the new subject is never seen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let records = auth_server::store::AuditStore::audit_records(
        &server.store,
        &auth_server::audit::AuditQuery {
            client: Some("payments".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let added = records
        .iter()
        .find(|r| r.entry.action == "client.federated_subject.add")
        .expect("the addition is audited");
    assert_eq!(
        added.entry.changes["federated_subject"]["to"],
        json!({"issuer": "k8s", "subject": "system:serviceaccount:payments:api"})
    );
}

#[tokio::test]
async fn the_admin_api_manages_subjects_and_shows_issuer_keys() {
    let k8s = TestIssuer::start("RS256").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s)], 300).await;
    let (ops, ops_secret) = server.admin_client().await;
    client(&server, "payments").await;
    let http = server.client();
    let admin = api::token(&http, &server.base_url, &ops, &ops_secret).await;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, server.url(&format!("/auth-server/v1/admin{path}")))
            .bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let subject = json!({"issuer": "k8s", "subject": "system:serviceaccount:payments:*"});
    let path = "/clients/payments/federated-subjects";
    let added = call(reqwest::Method::POST, path, Some(subject.clone()))
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    assert_eq!(
        json_body(added).await["federated_subjects"],
        json!([subject])
    );
    // Mapped at once on this instance.
    ok_body(
        jwt_bearer(&server, &k8s.k8s_token("payments", "api")).await,
        "mapped",
    )
    .await;
    for (body, what) in [
        (
            json!({"issuer": "nope", "subject": "x"}),
            "an unknown issuer",
        ),
        (
            json!({"issuer": "k8s", "subject": "a:b*"}),
            "a partial wildcard",
        ),
        (subject.clone(), "twice"),
    ] {
        let response = call(reqwest::Method::POST, path, Some(body)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    let issuers = call(reqwest::Method::GET, "/federation/issuers", None)
        .await
        .unwrap();
    let issuers = json_body(issuers).await;
    assert_eq!(issuers["issuers"][0]["name"], "k8s");
    assert_eq!(issuers["issuers"][0]["keys"], 1, "{issuers}");
    assert_eq!(issuers["issuers"][0]["kids"], json!([k8s.key.kid]));
    let refreshed = call(
        reqwest::Method::POST,
        "/federation/refresh",
        Some(json!({"issuer": "k8s"})),
    )
    .await
    .unwrap();
    assert_eq!(
        json_body(refreshed).await["jwks_uri"],
        k8s.host.url.as_str()
    );

    let removed = call(
        reqwest::Method::POST,
        "/clients/payments/federated-subjects/remove",
        Some(subject),
    )
    .await
    .unwrap();
    assert_eq!(json_body(removed).await["federated_subjects"], json!([]));
    assert_invalid_grant(
        jwt_bearer(&server, &k8s.k8s_token("payments", "api")).await,
        "removed",
    )
    .await;
}

#[tokio::test]
async fn a_token_seen_before_is_refused_once_its_key_is_withdrawn() {
    let mut k8s = TestIssuer::start("ES256").await;
    let (server, _cas) = server_trusting(&[("k8s", &k8s)], 1).await;
    client(&server, "payments").await;
    map(
        &server,
        "payments",
        "k8s",
        "system:serviceaccount:payments:*",
    )
    .await;
    let token = k8s.k8s_token("payments", "api");
    for round in 0..3 {
        ok_body(jwt_bearer(&server, &token).await, &format!("use {round}")).await;
    }
    // The issuer rotates and withdraws the old key at once.
    k8s.rotate("ES256");
    k8s.host.serve(&common::assertion::jwks(&[&k8s.key]));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_invalid_grant(jwt_bearer(&server, &token).await, "withdrawn key").await;
    ok_body(
        jwt_bearer(&server, &k8s.k8s_token("payments", "api")).await,
        "new key",
    )
    .await;
}
