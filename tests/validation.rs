//! `/oauth/validate`, introspection and revocation over real TLS: every kind
//! of bad token, endpoint rules, revocation taking effect at once, across a
//! restart, and under a concurrent race.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use auth_server::domain::token::{AccessTokenClaims, sign_claims};
use auth_server::keys::{Algorithm, SigningKey, generate_pkcs8};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestServer, api, json_body, start_with_rules, unverified_claims};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How long a change made in the store may take to be seen, at the most.
const REFUSED_WITHIN: Duration = Duration::from_secs(3);

/// The server's own signing key, read from its key directory.
fn server_key(server: &TestServer) -> SigningKey {
    SigningKey::from_pem_file(Algorithm::EdDSA, &server.path("certs/signing-eddsa.pem")).unwrap()
}

fn claims_like(token: &str) -> AccessTokenClaims {
    serde_json::from_value(unverified_claims(token)).unwrap()
}

#[tokio::test]
async fn a_valid_token_validates_with_its_claims() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let token = api::token(&http, &base, &id, &secret).await;
    let validate = || api::validate_post(&http, &base, Some(&token), None).send();
    let response = validate().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_body(response).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["sub"], id.as_str());
    assert_eq!(body["scope"], "read");
    assert_eq!(body["aud"], "https://api.test");
    assert_eq!(body["jti"], unverified_claims(&token)["jti"]);
    // Second time from the cache: same answer.
    let again = json_body(validate().await.unwrap()).await;
    assert_eq!(again, body);
}

#[tokio::test]
async fn every_kind_of_bad_token_is_401_invalid_token() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let good = api::token(&http, &base, &id, &secret).await;
    let key = server_key(&server);
    let claims = claims_like(&good);
    let now = claims.iat;
    let signed = |c: AccessTokenClaims| sign_claims(&c, &key).unwrap();
    let (head, rest) = good.split_once('.').unwrap();
    let payload = rest.split_once('.').unwrap().0;

    let expired = signed(AccessTokenClaims {
        exp: now - 1,
        iat: now - 901,
        nbf: now - 901,
        ..claims.clone()
    });
    let not_yet = signed(AccessTokenClaims {
        nbf: now + 3_600,
        iat: now + 3_600,
        exp: now + 4_500,
        ..claims.clone()
    });
    let wrong_issuer = signed(AccessTokenClaims {
        iss: "https://elsewhere.test".into(),
        ..claims.clone()
    });
    let foreign_key =
        SigningKey::from_pkcs8(Algorithm::EdDSA, &generate_pkcs8(Algorithm::EdDSA).unwrap())
            .unwrap();
    let foreign = sign_claims(&claims, &foreign_key).unwrap();
    let foreign_with_our_kid = format!("{head}.{}", foreign.split_once('.').unwrap().1);
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!(
        "{}.{payload}.",
        b64(json!({"alg": "none", "typ": "at+jwt", "kid": key.kid()}))
    );
    let wrong_typ = format!(
        "{}.{payload}.{}",
        b64(json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid()})),
        rest.split_once('.').unwrap().1
    );
    // HS256 keyed with our public key (the classic algorithm confusion).
    let public_x = key.public_jwk().unwrap()["x"].as_str().unwrap().to_owned();
    let hs_head = b64(json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid()}));
    let hmac_key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        &URL_SAFE_NO_PAD.decode(&public_x).unwrap(),
    );
    let hs_sig = aws_lc_rs::hmac::sign(&hmac_key, format!("{hs_head}.{payload}").as_bytes());
    let confused = format!(
        "{hs_head}.{payload}.{}",
        URL_SAFE_NO_PAD.encode(hs_sig.as_ref())
    );
    // Signed with the server's own key, but `crit` names an extension the
    // server does not implement (RFC 7515 4.1.11).
    let crit_head = b64(json!({
        "alg": "EdDSA", "typ": "at+jwt", "kid": key.kid(), "crit": ["exp"], "exp": now + 60,
    }));
    let crit_sig = key
        .sign(format!("{crit_head}.{payload}").as_bytes())
        .unwrap();
    let crit = format!("{crit_head}.{payload}.{}", URL_SAFE_NO_PAD.encode(crit_sig));
    let huge = "a".repeat(64 * 1024);

    let cases: Vec<(&str, String)> = vec![
        ("non-JWT", "not-a-token".into()),
        ("alg none", alg_none),
        ("wrong typ", wrong_typ),
        ("foreign key, our kid", foreign_with_our_kid),
        ("HS256 with public key", confused),
        ("expired", expired),
        ("not yet valid", not_yet),
        ("wrong issuer", wrong_issuer),
        ("crit header", crit),
        ("truncated", good[..good.len() - 10].to_owned()),
        ("64 KiB", huge),
    ];
    let mut descriptions = std::collections::BTreeSet::new();
    for (what, bad) in cases {
        for attempt in 0..2 {
            // The second attempt is answered from the negative cache.
            let response = api::validate_post(&http, &base, Some(&bad), None)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{what} #{attempt}"
            );
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer error=\"invalid_token\"",
                "{what}"
            );
            let body = json_body(response).await;
            assert_eq!(body["error"], "invalid_token", "{what}");
            descriptions.insert(body["error_description"].as_str().unwrap().to_owned());
        }
    }
    // The caller is not told why; the operator's metrics are.
    assert_eq!(descriptions.len(), 1, "{descriptions:?}");
    for (reason, times) in [
        ("malformed", 4.0),
        ("unsupported_header", 8.0),
        ("bad_signature", 4.0),
        ("expired", 2.0),
        ("not_yet_valid", 2.0),
        ("wrong_issuer", 2.0),
    ] {
        let sample = format!("auth_validate_rejections_total{{reason=\"{reason}\"}}");
        assert_eq!(
            common::metric(&http, &server, &sample).await,
            times,
            "{reason}"
        );
    }
    // Missing and empty.
    for token in [None, Some("")] {
        let response = api::validate_post(&http, &base, token, None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // The good token is still fine.
    assert_eq!(api::validate(&http, &base, &good).await, StatusCode::OK);
}

#[tokio::test]
async fn endpoint_rules_and_url_tricks() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let read_token = api::token(&http, &base, &id, &secret).await;
    let check = |url: &str, method: Option<&str>| {
        let mut body = json!({ "endpoint_url": url });
        if let Some(m) = method {
            body["method"] = m.into();
        }
        api::validate_post(&http, &base, Some(&read_token), Some(&body))
    };
    let status_of = async |request: reqwest::RequestBuilder| request.send().await.unwrap().status();
    let ok = [
        ("https://api.test/v1/users", None),
        ("https://api.test/v1/users/42", Some("GET")),
        ("https://API.TEST:443/v1/users/42?admin=true#x", Some("get")),
        ("https://api.test/v1/%75sers/42", None),
    ];
    for (url, method) in ok {
        assert_eq!(status_of(check(url, method)).await, StatusCode::OK, "{url}");
    }
    let response = check("https://api.test/v1/users/42", Some("POST"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"write\""
    );
    assert_eq!(json_body(response).await["error"], "insufficient_scope");
    for url in [
        "https://api.test/v1/users/../admin",
        "https://api.test/v1/users/%2e%2e/admin",
        "https://api.test/V1/users",
        "https://api.test:8443/v1/users",
        "http://api.test/v1/users",
        "https://api.test.evil.example/v1/users",
    ] {
        assert_eq!(
            status_of(check(url, None)).await,
            StatusCode::FORBIDDEN,
            "{url}"
        );
    }
    for url in [
        "https://api.test@evil.example/v1/users",
        "https://api.test/v1/users%2F..%2F..%2Fadmin",
        "https://api.test/v1/users/%252e%252e/%252e%252e/admin",
        "https://api.test/v1/users/\u{ff0e}\u{ff0e}/\u{ff0e}\u{ff0e}/admin",
        "not a url",
        "/v1/users",
    ] {
        let response = check(url, None).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(json_body(response).await["error"], "invalid_request");
    }
    let bad_json = api::validate_post(&http, &base, Some(&read_token), None)
        .header("content-type", "application/json")
        .body("{\"endpoint_url\":");
    assert_eq!(status_of(bad_json).await, StatusCode::BAD_REQUEST);
    let bad_method = check("https://api.test/v1/users", Some("G E T"));
    assert_eq!(status_of(bad_method).await, StatusCode::BAD_REQUEST);
}

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
    auth_server::admin::revoke_jti(&server.store, &jti, now())
        .await
        .unwrap();
    let took = api::until_refused(&http, &base, &first, REFUSED_WITHIN).await;
    assert!(took < Duration::from_millis(1_500), "took {took:?}");

    // Disabling the client ends its tokens.
    let second = api::token(&http, &base, &id, &secret).await;
    assert_eq!(api::validate(&http, &base, &second).await, StatusCode::OK);
    auth_server::admin::set_enabled(&server.store, &id, false, now())
        .await
        .unwrap();
    api::until_refused(&http, &base, &second, REFUSED_WITHIN).await;
    let refused = api::token_request(&http, &base, &id, &secret).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // `token revoke --client` ends every token issued so far, but not the
    // client: new tokens (issued in a later second) work.
    auth_server::admin::set_enabled(&server.store, &id, true, now())
        .await
        .unwrap();
    let (other_id, other_secret) = server.standard_client().await;
    let third = api::token(&http, &base, &other_id, &other_secret).await;
    auth_server::admin::revoke_client_tokens(&server.store, &other_id, now())
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

#[tokio::test]
async fn metadata_lists_introspection_and_revocation() {
    let (server, _, _) = start_with_rules().await;
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
