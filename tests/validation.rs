//! `/oauth/validate` over real TLS: a good token's claims, and every kind of
//! bad token refused with the same bare `invalid_token`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::domain::token::{AccessTokenClaims, sign_claims};
use auth_server::keys::{Algorithm, KeySet, SigningKey, generate_pkcs8};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestServer, api, json_body, start_with_rules, unverified_claims};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The server's own signing keys, read from its store.
async fn server_keys(server: &TestServer) -> KeySet {
    server.stored_keys().await
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
    let keys = server_keys(&server).await;
    let key = keys.active();
    let claims = claims_like(&good);
    let now = claims.iat;
    let signed = |c: AccessTokenClaims| sign_claims(&c, key).unwrap();
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
