//! `private_key_jwt` client authentication (RFC 7523 2.2) over TLS: the
//! grant, introspection and revocation authenticated by a signed assertion;
//! every refusal is a 401 `invalid_client`, never a 5xx; keys registered
//! inline or fetched from a `jwks_uri` on a real HTTPS publisher.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use auth_server::admin::NewClient;
use auth_server::config::ReplayScope;
use auth_server::domain::assertion::JWT_BEARER;
use auth_server::domain::client::AuthMethod;
use auth_server::keys::Algorithm;
use common::assertion::{ClientKey, claims, jwks, token_form};
use common::jwks_host::{Answer, JwksHost};
use common::{TestServer, api, json_body, unverified_claims};
use jsonwebtoken::Header;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Registers a `private_key_jwt` client with `keys` inline.
async fn inline_client(server: &TestServer, id: &str, keys: &[&ClientKey]) {
    server
        .create_client(NewClient {
            id: Some(id.into()),
            name: id.into(),
            allowed_scopes: "read".into(),
            auth_method: AuthMethod::PrivateKeyJwt,
            jwks: Some(jwks(keys).to_string()),
            ..NewClient::default()
        })
        .await;
}

/// Registers a `private_key_jwt` client whose keys are at `uri`.
async fn uri_client(server: &TestServer, id: &str, uri: &str) {
    server
        .create_client(NewClient {
            id: Some(id.into()),
            name: id.into(),
            allowed_scopes: "read".into(),
            auth_method: AuthMethod::PrivateKeyJwt,
            jwks_uri: Some(uri.into()),
            ..NewClient::default()
        })
        .await;
}

/// Posts a token request authenticated by `assertion`.
async fn token_with(server: &TestServer, assertion: &str) -> reqwest::Response {
    token_with_fields(server, assertion, &[]).await
}

/// Posts a token request authenticated by `assertion`, with `extra` fields.
async fn token_with_fields(
    server: &TestServer,
    assertion: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    server
        .client()
        .post(server.token_url())
        .form(&token_form(assertion, extra))
        .send()
        .await
        .unwrap()
}

/// The status of a token request by `id` with a fresh assertion for the
/// token endpoint, signed by `key`.
async fn fresh_status(server: &TestServer, key: &ClientKey, id: &str) -> StatusCode {
    token_with(server, &key.sign(&claims(id, &server.token_url())))
        .await
        .status()
}

/// Asserts the RFC 6749 `invalid_client` answer.
async fn assert_invalid_client(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert!(
        response.headers().contains_key("www-authenticate"),
        "{what}: a challenge"
    );
    let body = json_body(response).await;
    assert_eq!(body["error"], "invalid_client", "{what}: {body}");
}

/// A server trusting `host`'s CA, refetching at most every second.
async fn server_trusting(host: &JwksHost, ttl_secs: u64) -> TestServer {
    let ca_file = host.ca_file.display().to_string();
    TestServer::start_with(Algorithm::EdDSA, |c| {
        c.jwks_fetch.ca_file = ca_file;
        c.jwks_fetch.min_refetch_interval_secs = 1;
        c.jwks_fetch.cache_ttl_secs = ttl_secs;
    })
    .await
}

#[tokio::test]
async fn each_algorithm_gets_a_token_for_the_token_endpoint_or_the_issuer() {
    let server = TestServer::start().await;
    for alg in ["EdDSA", "ES256", "RS256", "PS256"] {
        let key = ClientKey::new(alg);
        let id = format!("svc-{}", alg.to_lowercase());
        inline_client(&server, &id, &[&key]).await;
        for aud in [server.token_url(), server.issuer.clone()] {
            let response = token_with(&server, &key.sign(&claims(&id, &aud))).await;
            assert_eq!(response.status(), StatusCode::OK, "{alg} aud {aud}");
            let body = json_body(response).await;
            let token = body["access_token"].as_str().unwrap();
            assert_eq!(unverified_claims(token)["sub"], id.as_str());
            assert_eq!(body["scope"], "read");
        }
        // aud as an array holding ours; a matching client_id parameter.
        let mut c = claims(&id, "https://elsewhere.test");
        c["aud"] = json!(["https://elsewhere.test", server.token_url()]);
        let assertion = key.sign(&c);
        let response = token_with_fields(&server, &assertion, &[("client_id", &id)]).await;
        assert_eq!(response.status(), StatusCode::OK, "{alg} aud array");
    }
}

#[tokio::test]
async fn every_bad_assertion_is_invalid_client() {
    let server = TestServer::start().await;
    let key = ClientKey::new("ES256");
    let stranger = ClientKey::new("ES256");
    inline_client(&server, "svc", &[&key]).await;
    let aud = server.token_url();
    let now = auth_server::clock::unix_now();
    let with = |name: &str, value: Value| {
        let mut c = claims("svc", &aud);
        c[name] = value;
        c
    };
    let mut no_exp = claims("svc", &aud);
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut no_jti = claims("svc", &aud);
    no_jti.as_object_mut().unwrap().remove("jti");

    let cases: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            key.sign(&with("aud", json!("https://elsewhere.test"))),
        ),
        (
            "aud of another server's path",
            key.sign(&with("aud", json!(server.url("/oauth/token")))),
        ),
        ("expired", key.sign(&with("exp", json!(now - 120)))),
        ("no exp", key.sign(&no_exp)),
        ("no jti", key.sign(&no_jti)),
        (
            "iat in the future",
            key.sign(&with("iat", json!(now + 120))),
        ),
        (
            "nbf in the future",
            key.sign(&with("nbf", json!(now + 120))),
        ),
        (
            "exp too far after iat",
            key.sign(&with("exp", json!(now + 600))),
        ),
        (
            "iss is another client",
            key.sign(&with("iss", json!("other"))),
        ),
        (
            "sub is another client",
            key.sign(&with("sub", json!("other"))),
        ),
        (
            "a key that is not the client's",
            stranger.sign(&claims("svc", &aud)),
        ),
        ("a stranger's key under the client's kid", {
            let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
            header.kid = Some(key.kid.clone());
            stranger.sign_with_header(header, &claims("svc", &aud))
        }),
        ("alg none", {
            use base64::Engine;
            let b64 =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none"})),
                b64(&claims("svc", &aud))
            )
        }),
        ("HS256 keyed with the client's public key", {
            let secret = key.jwk().to_string();
            let hs = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
            let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(key.kid.clone());
            jsonwebtoken::encode(&header, &claims("svc", &aud), &hs).unwrap()
        }),
        ("not a JWT", "garbage".into()),
    ];
    for (what, assertion) in cases {
        assert_invalid_client(token_with(&server, &assertion).await, what).await;
    }
    // An empty assertion is a missing parameter.
    let empty = token_with(&server, "").await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(empty).await["error"], "invalid_request");
    // Still fine afterwards: nothing above locked the client out.
    let ok = token_with(&server, &key.sign(&claims("svc", &aud))).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_jti_is_accepted_once() {
    let server = TestServer::start().await;
    let key = ClientKey::new("EdDSA");
    inline_client(&server, "svc", &[&key]).await;
    let assertion = key.sign(&claims("svc", &server.token_url()));
    assert_eq!(
        token_with(&server, &assertion).await.status(),
        StatusCode::OK
    );
    assert_invalid_client(token_with(&server, &assertion).await, "replayed").await;
    // The same jti in a new assertion is a replay too.
    let mut again = unverified_claims(&assertion);
    again["exp"] = json!(again["exp"].as_i64().unwrap() + 1);
    assert_invalid_client(token_with(&server, &key.sign(&again)).await, "same jti").await;
}

#[tokio::test]
async fn secrets_and_assertions_do_not_mix() {
    let server = TestServer::start().await;
    let key = ClientKey::new("EdDSA");
    inline_client(&server, "jwt-client", &[&key]).await;
    let (secret_id, secret) = server.standard_client().await;
    // A secret client cannot use an assertion, even signed by a key.
    let assertion = key.sign(&claims(&secret_id, &server.token_url()));
    assert_invalid_client(token_with(&server, &assertion).await, "secret client").await;
    // A private_key_jwt client has no secret that works (its record holds
    // a random one); Basic with the other client's secret is no better.
    let response =
        api::token_request(&server.client(), &server.base_url, "jwt-client", &secret).await;
    assert_invalid_client(response, "secret for a jwt client").await;
    // An assertion plus a secret or Basic is one method too many.
    let assertion = key.sign(&claims("jwt-client", &server.token_url()));
    let both = server
        .client()
        .post(server.token_url())
        .basic_auth(&secret_id, Some(&secret))
        .form(&token_form(&assertion, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(both).await["error"], "invalid_request");
    let wrong_type = server
        .client()
        .post(server.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
    // client_id naming another client than the assertion's subject.
    let mismatch = token_with_fields(&server, &assertion, &[("client_id", &secret_id)]).await;
    assert_invalid_client(mismatch, "client_id mismatch").await;
}

#[tokio::test]
async fn huge_assertions_are_refused_cleanly() {
    // A body limit above the assertion: the assertion itself is refused.
    let server =
        TestServer::start_with(Algorithm::EdDSA, |c| c.http.max_body_bytes = 256 * 1024).await;
    let key = ClientKey::new("EdDSA");
    inline_client(&server, "svc", &[&key]).await;
    let mut c = claims("svc", &server.token_url());
    c["padding"] = json!("x".repeat(64 * 1024));
    let huge = key.sign(&c);
    assert!(huge.len() >= 64 * 1024);
    assert_invalid_client(token_with(&server, &huge).await, "64 KiB assertion").await;
    let exactly: String = "a".repeat(64 * 1024);
    assert_invalid_client(token_with(&server, &exactly).await, "64 KiB of garbage").await;
    // With the default body limit the body is refused first: 413, not 5xx.
    let server = TestServer::start().await;
    let response = token_with(&server, &huge).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_body(response).await["error"], "invalid_request");
}

#[tokio::test]
async fn introspection_and_revocation_accept_assertions() {
    let server = TestServer::start().await;
    let key = ClientKey::new("ES256");
    inline_client(&server, "svc", &[&key]).await;
    let response = token_with(&server, &key.sign(&claims("svc", &server.issuer))).await;
    let token = json_body(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = server.client();
    let post = |endpoint: &'static str, aud: String, token: String| {
        let http = http.clone();
        let url = api::endpoint(&server.base_url, endpoint);
        let assertion = key.sign(&claims("svc", &aud));
        async move {
            http.post(url)
                .form(&[
                    ("token", token.as_str()),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let introspect_url = api::endpoint(&server.base_url, "introspect");
    let revoke_url = api::endpoint(&server.base_url, "revoke");
    let active = post("introspect", introspect_url.clone(), token.clone()).await;
    assert_eq!(active.status(), StatusCode::OK);
    assert_eq!(json_body(active).await["active"], true);
    let revoked = post("revoke", revoke_url.clone(), token.clone()).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let after = post("introspect", server.issuer.clone(), token.clone()).await;
    assert_eq!(json_body(after).await["active"], false);
    // A bad assertion at either endpoint: invalid_client.
    for endpoint in ["introspect", "revoke"] {
        let bad = post(endpoint, "https://elsewhere.test".into(), token.clone()).await;
        assert_invalid_client(bad, endpoint).await;
    }
}

#[tokio::test]
async fn keys_at_a_jwks_uri_are_fetched_and_refetched_for_an_unknown_kid() {
    let first = ClientKey::new("EdDSA");
    let second = ClientKey::new("RS256");
    let host = JwksHost::start(&jwks(&[&first])).await;
    let server = server_trusting(&host, 300).await;
    uri_client(&server, "svc", &host.url).await;
    let aud = server.token_url();
    assert_eq!(fresh_status(&server, &first, "svc").await, StatusCode::OK);
    assert_eq!(fresh_status(&server, &first, "svc").await, StatusCode::OK);
    assert_eq!(host.hits(), 1, "cached");

    // The client rotates in a new key: an unknown kid fetches again, once
    // the refetch interval has passed since the last fetch.
    host.serve(&jwks(&[&first, &second]));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(fresh_status(&server, &second, "svc").await, StatusCode::OK);
    assert_eq!(host.hits(), 2);

    // Assertions under kids nobody publishes: one fetch per interval.
    let stranger = ClientKey::new("EdDSA");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..5 {
        let response = token_with(&server, &stranger.sign(&claims("svc", &aud))).await;
        assert_invalid_client(response, "unknown kid").await;
    }
    assert_eq!(host.hits(), 3, "at most one refetch per interval");
}

#[tokio::test]
async fn cached_keys_outlive_a_publisher_outage() {
    let key = ClientKey::new("ES256");
    let host = JwksHost::start(&jwks(&[&key])).await;
    let server = server_trusting(&host, 1).await;
    uri_client(&server, "svc", &host.url).await;
    let aud = server.token_url();
    assert_eq!(fresh_status(&server, &key, "svc").await, StatusCode::OK);
    host.answer(Answer::Down);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let response = token_with(&server, &key.sign(&claims("svc", &aud))).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the keys fetched before still verify"
    );
    assert_eq!(host.hits(), 2, "a refetch was tried");
}

#[tokio::test]
async fn unusable_publishers_authenticate_nobody() {
    let key = ClientKey::new("EdDSA");
    let host = JwksHost::start(&jwks(&[&key])).await;
    let elsewhere = JwksHost::start(&jwks(&[&key])).await;
    let server = server_trusting(&host, 300).await;
    let aud = server.token_url();
    let cases = [
        ("redirect", Answer::Redirect(elsewhere.url.clone())),
        ("down", Answer::Down),
        ("not a JWK Set", Answer::Serve("[1,2,3]".into())),
        (
            "a private key",
            Answer::Serve(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string()),
        ),
        (
            "too large",
            Answer::Serve(format!(
                "{{\"keys\":[],\"pad\":\"{}\"}}",
                "x".repeat(70_000)
            )),
        ),
    ];
    for (i, (what, answer)) in cases.into_iter().enumerate() {
        host.answer(answer);
        // A URL the server has not fetched yet (the query differs).
        let id = format!("svc-{i}");
        uri_client(&server, &id, &format!("{}?case={i}", host.url)).await;
        let response = token_with(&server, &key.sign(&claims(&id, &aud))).await;
        assert_invalid_client(response, what).await;
    }
    assert_eq!(elsewhere.hits(), 0, "the redirect was not followed");
    // A publisher whose certificate the server does not trust.
    let untrusted = TestServer::start().await;
    uri_client(&untrusted, "svc", &elsewhere.url).await;
    let response = token_with(
        &untrusted,
        &key.sign(&claims("svc", &untrusted.token_url())),
    )
    .await;
    assert_invalid_client(response, "untrusted certificate").await;
    assert_eq!(elsewhere.hits(), 0);
}

#[tokio::test]
async fn a_slow_publisher_is_cut_off() {
    let key = ClientKey::new("EdDSA");
    let host = JwksHost::start(&jwks(&[&key])).await;
    host.answer(Answer::Slow(Duration::from_secs(30)));
    let ca_file = host.ca_file.display().to_string();
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.jwks_fetch.ca_file = ca_file;
        c.jwks_fetch.timeout_ms = 500;
        c.jwks_fetch.connect_timeout_ms = 500;
    })
    .await;
    uri_client(&server, "svc", &host.url).await;
    let started = std::time::Instant::now();
    let response = token_with(&server, &key.sign(&claims("svc", &server.token_url()))).await;
    assert_invalid_client(response, "slow publisher").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn metadata_advertises_private_key_jwt() {
    let server = TestServer::start().await;
    let doc = json_body(server.get("/.well-known/oauth-authorization-server").await).await;
    for endpoint in ["token", "introspection", "revocation"] {
        let methods = &doc[format!("{endpoint}_endpoint_auth_methods_supported")];
        assert!(
            methods
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt")),
            "{endpoint}: {methods}"
        );
        assert_eq!(
            doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            json!(["EdDSA", "ES256", "RS256", "PS256"])
        );
    }
}

/// Two instances sharing one PostgreSQL database with `replay` as the replay
/// scope, a client `svc`, its key, and an assertion already used once on
/// the first instance. In-process instances have an issuer each (their
/// port): the assertion names both, as it would name a fleet's one issuer.
async fn used_once_on_one_of_two(
    replay: ReplayScope,
) -> (TestServer, TestServer, ClientKey, String) {
    let key = ClientKey::new("EdDSA");
    let (store, url) = common::pg::fresh_store().await;
    let new = NewClient {
        id: Some("svc".into()),
        name: "svc".into(),
        allowed_scopes: "read".into(),
        auth_method: AuthMethod::PrivateKeyJwt,
        jwks: Some(jwks(&[&key]).to_string()),
        ..NewClient::default()
    };
    let actor = auth_server::audit::Actor::cli("test");
    auth_server::admin::create_client(&store, new, &actor, auth_server::clock::unix_now())
        .await
        .unwrap();
    let start =
        || common::pg::start_server(&url, |c| c.client_auth.client_assertion_replay = replay);
    let (one, other) = (start().await, start().await);
    let mut c = claims("svc", &one.token_url());
    c["aud"] = json!([one.token_url(), other.token_url()]);
    let assertion = key.sign(&c);
    assert_eq!(token_with(&one, &assertion).await.status(), StatusCode::OK);
    assert_invalid_client(
        token_with(&one, &assertion).await,
        "replayed to the same instance",
    )
    .await;
    (one, other, key, assertion)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn fleet_mode_refuses_a_replay_on_another_instance() {
    let (_one, other, key, assertion) = used_once_on_one_of_two(ReplayScope::Fleet).await;
    assert_invalid_client(
        token_with(&other, &assertion).await,
        "replayed to another instance",
    )
    .await;
    // A fresh assertion works there.
    let fresh = key.sign(&claims("svc", &other.token_url()));
    assert_eq!(token_with(&other, &fresh).await.status(), StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn instance_mode_remembers_jtis_per_instance_only() {
    let (_one, other, _key, assertion) = used_once_on_one_of_two(ReplayScope::Instance).await;
    assert_eq!(
        token_with(&other, &assertion).await.status(),
        StatusCode::OK,
        "the price of instance mode: another instance does not know the jti"
    );
}

#[tokio::test]
async fn a_longer_lifetime_is_accepted_only_where_configured() {
    let key = ClientKey::new("RS256");
    let hour = |server: &TestServer| {
        let mut c = claims("svc", &server.token_url());
        c["exp"] = json!(c["iat"].as_i64().unwrap() + 3_600);
        key.sign(&c)
    };
    let strict = TestServer::start().await;
    inline_client(&strict, "svc", &[&key]).await;
    assert_invalid_client(token_with(&strict, &hour(&strict)).await, "an hour").await;
    let lenient = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.client_auth.max_assertion_lifetime_secs = 3_600;
    })
    .await;
    inline_client(&lenient, "svc", &[&key]).await;
    assert_eq!(
        token_with(&lenient, &hour(&lenient)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn past_the_failed_authentication_ceiling_only_known_clients_get_in() {
    let server = TestServer::start_with(Algorithm::EdDSA, common::low_failed_auth_ceiling).await;
    let (known, cold) = (ClientKey::new("EdDSA"), ClientKey::new("EdDSA"));
    inline_client(&server, "known", &[&known]).await;
    inline_client(&server, "cold", &[&cold]).await;
    common::feed_passed_new_clients().await;
    assert_eq!(fresh_status(&server, &known, "known").await, StatusCode::OK);
    for _ in 0..4 {
        let stranger = fresh_status(&server, &ClientKey::new("EdDSA"), "known").await;
        assert_eq!(stranger, StatusCode::UNAUTHORIZED);
    }
    // The ceiling holds: a client in memory with a good assertion is served,
    // anything else gets 429 without reaching the store.
    assert_eq!(fresh_status(&server, &known, "known").await, StatusCode::OK);
    let forged = fresh_status(&server, &ClientKey::new("EdDSA"), "known").await;
    assert_eq!(forged, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        fresh_status(&server, &cold, "cold").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
