use super::*;
use crate::domain::client::SecretHash;
use crate::keys::{Algorithm, generate_pkcs8};

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: "https://issuer.test/auth-server/v1".into(),
        default_lifetime_secs: 900,
        default_audience: "default-aud".into(),
        nbf_leeway_secs: 5,
        exp_leeway_secs: 0,
    }
}

fn client() -> Client {
    Client {
        allowed_scopes: ScopeSet::parse("read write").unwrap(),
        default_scopes: ScopeSet::parse("read").unwrap(),
        allowed_audiences: vec!["https://api.test".into(), "https://other.test".into()],
        ..Client::new("svc-a".into(), "A".into(), SecretHash::of("s"), 0)
    }
}

fn keys(alg: Algorithm) -> KeySet {
    let key = match alg {
        Algorithm::HS256 => SigningKey::from_hmac_secret(&[42u8; 32]).unwrap(),
        _ => SigningKey::from_pkcs8(alg, &generate_pkcs8(alg).unwrap()).unwrap(),
    };
    KeySet::new(key)
}

fn mint(keys: &KeySet, now: i64) -> IssuedToken {
    let scopes = ScopeSet::parse("read").unwrap();
    mint_access_token(
        &client(),
        &scopes,
        "https://api.test".into(),
        &policy(),
        keys.active(),
        now,
    )
    .unwrap()
}

#[test]
fn mint_then_verify_round_trips_for_every_algorithm() {
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::HS256,
    ] {
        let keys = keys(alg);
        let issued = mint(&keys, 1_000);
        let claims = verify_access_token(&issued.access_token, &keys, &policy(), 1_001).unwrap();
        assert_eq!(claims, issued.claims, "{alg:?}");
    }
}

#[test]
fn claims_follow_rfc9068() {
    let keys = keys(Algorithm::EdDSA);
    let issued = mint(&keys, 1_000);
    let c = &issued.claims;
    assert_eq!(c.iss, policy().issuer);
    assert_eq!(c.sub, "svc-a");
    assert_eq!(c.client_id, "svc-a");
    assert_eq!(c.aud, "https://api.test");
    assert_eq!(c.scope.as_deref(), Some("read"));
    assert_eq!((c.iat, c.nbf, c.exp), (1_000, 1_000, 1_900));
    assert_eq!(issued.expires_in, 900);
    assert_eq!(c.jti.len(), 22, "128 bits in base64url");
    let header = URL_SAFE_NO_PAD
        .decode(issued.access_token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], keys.active().kid());
}

#[test]
fn client_lifetime_override_and_empty_scope() {
    let keys = keys(Algorithm::EdDSA);
    let mut c = client();
    c.token_lifetime_secs = Some(60);
    let issued = mint_access_token(
        &c,
        &ScopeSet::default(),
        "a".into(),
        &policy(),
        keys.active(),
        10,
    )
    .unwrap();
    assert_eq!(issued.claims.exp, 70);
    assert_eq!(issued.claims.scope, None);
    let payload = issued.access_token.split('.').nth(1).unwrap();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(!payload.contains("scope"));
}

#[test]
fn audience_choice() {
    let c = client();
    let p = policy();
    assert_eq!(choose_audience(&c, None, &p).unwrap(), "https://api.test");
    assert_eq!(
        choose_audience(&c, Some("https://other.test"), &p).unwrap(),
        "https://other.test"
    );
    assert_eq!(
        choose_audience(&c, Some("https://evil.test"), &p)
            .unwrap_err()
            .code(),
        "invalid_target"
    );
    let mut none = client();
    none.allowed_audiences.clear();
    assert_eq!(choose_audience(&none, None, &p).unwrap(), "default-aud");
}

#[test]
fn time_checks() {
    let keys = keys(Algorithm::EdDSA);
    let issued = mint(&keys, 1_000);
    let verify = |now| verify_access_token(&issued.access_token, &keys, &policy(), now);
    assert!(verify(1_899).is_ok());
    assert_eq!(verify(1_900), Err(TokenError::Expired));
    assert!(verify(995).is_ok(), "nbf leeway of 5 s");
    assert_eq!(verify(994), Err(TokenError::NotYetValid));
}

#[test]
fn tampering_and_foreign_tokens_are_refused() {
    let keys = keys(Algorithm::EdDSA);
    let issued = mint(&keys, 1_000);
    let token = &issued.access_token;
    let (head, rest) = token.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let v = |t: &str| verify_access_token(t, &keys, &policy(), 1_001);

    // Payload swapped for another claim set.
    let mut forged = issued.claims.clone();
    forged.scope = Some("read write".into());
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    assert_eq!(
        v(&format!("{head}.{forged_payload}.{sig}")),
        Err(TokenError::BadSignature)
    );
    // Signed by a different key that claims our kid.
    let other = self::keys(Algorithm::EdDSA);
    let mut foreign = sign_claims(&issued.claims, other.active()).unwrap();
    foreign.replace_range(..foreign.find('.').unwrap(), head);
    assert_eq!(v(&foreign), Err(TokenError::BadSignature));
    // alg: none, wrong typ, unknown kid.
    for header in [
        serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": keys.active().kid()}),
        serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": keys.active().kid()}),
        serde_json::json!({"alg": "EdDSA", "kid": keys.active().kid()}),
        serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "other"}),
        serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": keys.active().kid()}),
    ] {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        assert_eq!(
            v(&format!("{h}.{payload}.{sig}")),
            Err(TokenError::UnsupportedHeader),
            "{header}"
        );
    }
    // Structural damage.
    for bad in [
        "",
        "a",
        "a.b",
        "a.b.c",
        &token[..token.len() - 5],
        &format!("{head}.{payload}"),
        &format!("{token}.extra"),
        &"x".repeat(MAX_TOKEN_LEN + 1),
    ] {
        assert!(v(bad).is_err(), "{bad:.40}");
    }
}

#[test]
fn a_crit_header_is_refused_even_when_correctly_signed() {
    let keys = keys(Algorithm::EdDSA);
    let issued = mint(&keys, 1_000);
    let payload = issued.access_token.split('.').nth(1).unwrap();
    let kid = keys.active().kid();
    let signed_with = |header: serde_json::Value| {
        let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
        let signature = keys.active().sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    let v = |t: &str| verify_access_token(t, &keys, &policy(), 1_001);
    // The same construction without `crit` verifies, so the refusals below
    // are the header's doing, not the signature's.
    let plain = signed_with(serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}));
    assert_eq!(v(&plain), Ok(issued.claims.clone()));
    for crit in [
        serde_json::json!(["exp"]),
        serde_json::json!(["b64"]),
        serde_json::json!(["http://example.com/extension"]),
        serde_json::json!([]),
        serde_json::json!("b64"),
        serde_json::json!({}),
        serde_json::json!(true),
        serde_json::json!(null),
    ] {
        let header = serde_json::json!({
            "alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": crit, "exp": 1_900, "b64": true,
        });
        assert_eq!(
            v(&signed_with(header.clone())),
            Err(TokenError::UnsupportedHeader),
            "{header}"
        );
        assert_eq!(
            verify_signature(&signed_with(header.clone()), &keys, &policy()),
            Err(TokenError::UnsupportedHeader),
            "{header}"
        );
    }
}

#[test]
fn wrong_issuer_is_refused() {
    let keys = keys(Algorithm::EdDSA);
    let issued = mint(&keys, 1_000);
    let mut other = policy();
    other.issuer = "https://elsewhere.test".into();
    assert_eq!(
        verify_access_token(&issued.access_token, &keys, &other, 1_001),
        Err(TokenError::WrongIssuer)
    );
}

#[test]
fn jti_is_unique() {
    let keys = keys(Algorithm::EdDSA);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1_000 {
        assert!(seen.insert(mint(&keys, 1).claims.jti));
    }
}
