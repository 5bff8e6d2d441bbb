use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;
use crate::keys::{Algorithm, SigningKey, generate_pkcs8};

const NOW: i64 = 1_800_000_000;
const AUD: &str = "https://as.test/v1/oauth/token";

fn rules() -> AssertionRules<'static> {
    AssertionRules {
        audiences: &["https://as.test/v1", AUD],
        leeway_secs: 30,
        max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
    }
}

fn key(alg: Algorithm) -> SigningKey {
    SigningKey::from_pkcs8(alg, &generate_pkcs8(alg).unwrap()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn sign(key: &SigningKey, header: Value, claims: Value) -> String {
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims() -> Value {
    json!({"iss": "svc", "sub": "svc", "aud": AUD, "iat": NOW, "exp": NOW + 60, "jti": "j1"})
}

fn header(key: &SigningKey) -> Value {
    json!({"alg": key.alg().name(), "kid": key.kid(), "typ": "JWT"})
}

fn keys_of(key: &SigningKey) -> PublicKeySet {
    PublicKeySet::parse(
        json!({"keys": [key.public_jwk().unwrap()]})
            .to_string()
            .as_bytes(),
    )
    .unwrap()
}

fn check_with(claims: Value) -> Result<UnverifiedAssertion, AssertionError> {
    let key = key(Algorithm::EdDSA);
    check_assertion(&sign(&key, header(&key), claims), &rules(), NOW)
}

#[test]
fn a_good_assertion_verifies_with_each_algorithm() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = key(alg);
        let jws = sign(&key, header(&key), claims());
        let checked = check_assertion(&jws, &rules(), NOW).unwrap();
        assert_eq!(checked.client_id(), "svc");
        let verified = checked.verify(&jws, &keys_of(&key)).unwrap();
        assert_eq!(
            verified,
            VerifiedAssertion {
                client_id: "svc".into(),
                jti: "j1".into(),
                exp: NOW + 60
            }
        );
    }
}

#[test]
fn claims_are_held_to_the_rules() {
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        check_with(c).map(|_| ())
    };
    let without = |k: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(k);
        check_with(c).map(|_| ())
    };
    use AssertionError::*;
    assert_eq!(with("aud", json!("https://elsewhere.test")), Err(Audience));
    assert_eq!(with("aud", json!(["https://x.test", AUD])), Ok(()));
    assert_eq!(with("aud", json!([])), Err(Audience));
    assert_eq!(without("aud"), Err(Audience));
    assert_eq!(with("sub", json!("other")), Err(Subject));
    assert_eq!(without("iss"), Err(Subject));
    assert_eq!(without("exp"), Err(MissingExp));
    assert_eq!(with("exp", json!("soon")), Err(MissingExp));
    assert_eq!(with("exp", json!(NOW - 31)), Err(Expired));
    assert_eq!(with("exp", json!(NOW - 29)), Ok(()), "within the leeway");
    assert_eq!(with("iat", json!(NOW + 31)), Err(NotYetValid));
    assert_eq!(with("nbf", json!(NOW + 31)), Err(NotYetValid));
    assert_eq!(with("nbf", json!(NOW + 10)), Ok(()), "within the leeway");
    assert_eq!(with("exp", json!(NOW + 301)), Err(TooLong));
    assert_eq!(with("exp", json!(NOW + 300)), Ok(()));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    c["exp"] = json!(NOW + 301);
    assert_eq!(
        check_with(c).map(|_| ()),
        Err(TooLong),
        "no iat: counted from now"
    );
    assert_eq!(without("jti"), Err(MissingJti));
    assert_eq!(with("jti", json!("")), Err(MissingJti));
    assert_eq!(
        with("jti", json!("x".repeat(MAX_JTI_LEN + 1))),
        Err(MissingJti)
    );
    assert_eq!(
        with("exp", json!(NOW as f64 + 60.5)),
        Ok(()),
        "fractional dates"
    );
}

#[test]
fn none_hmac_and_foreign_headers_are_refused() {
    let key = key(Algorithm::EdDSA);
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims()));
    assert_eq!(
        check_assertion(&unsigned, &rules(), NOW).unwrap_err(),
        AssertionError::Algorithm
    );
    let hmac = SigningKey::from_hmac_secret(&[1u8; 32]).unwrap();
    let hs = sign(&hmac, json!({"alg": "HS256"}), claims());
    assert_eq!(
        check_assertion(&hs, &rules(), NOW).unwrap_err(),
        AssertionError::Algorithm
    );
    for extra in ["jku", "jwk", "x5u", "crit"] {
        let mut h = header(&key);
        h[extra] = json!("x");
        let jws = sign(&key, h, claims());
        assert_eq!(
            check_assertion(&jws, &rules(), NOW).unwrap_err(),
            AssertionError::Malformed,
            "{extra}"
        );
    }
    for garbage in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        &"a".repeat(MAX_ASSERTION_LEN + 1),
    ] {
        assert!(check_assertion(garbage, &rules(), NOW).is_err());
    }
}

#[test]
fn another_key_does_not_verify() {
    let key = key(Algorithm::EdDSA);
    let other = self::key(Algorithm::EdDSA);
    let jws = sign(&key, header(&key), claims());
    let checked = check_assertion(&jws, &rules(), NOW).unwrap();
    assert_eq!(
        checked.clone().verify(&jws, &keys_of(&other)).unwrap_err(),
        AssertionError::UnknownKey,
        "the kid is not the client's"
    );
    // The same kid with another key (a forged kid): the signature fails.
    let mut forged = other.public_jwk().unwrap();
    forged["kid"] = key.kid().into();
    let set = PublicKeySet::parse(json!({"keys": [forged]}).to_string().as_bytes()).unwrap();
    assert_eq!(
        checked.verify(&jws, &set).unwrap_err(),
        AssertionError::Signature
    );
    // Without a kid every fitting key is tried.
    let jws = sign(&key, json!({"alg": "EdDSA"}), claims());
    let set = PublicKeySet::parse(
        json!({"keys": [other.public_jwk().unwrap(), key.public_jwk().unwrap()]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let checked = check_assertion(&jws, &rules(), NOW).unwrap();
    assert!(checked.verify(&jws, &set).is_ok());
    // A tampered payload fails.
    let jws = sign(&key, header(&key), claims());
    let mut parts: Vec<&str> = jws.split('.').collect();
    let mut c = claims();
    c["jti"] = json!("j2");
    let tampered_claims = b64(&c);
    parts[1] = &tampered_claims;
    let tampered = parts.join(".");
    let checked = check_assertion(&tampered, &rules(), NOW).unwrap();
    assert_eq!(
        checked.verify(&tampered, &keys_of(&key)).unwrap_err(),
        AssertionError::Signature
    );
}

#[test]
fn any_fitting_key_is_tried_whatever_the_kid() {
    let key = key(Algorithm::ES256);
    let jws = sign(&key, header(&key), claims());
    let checked = check_assertion(&jws, &rules(), NOW).unwrap();
    let mut jwk = key.public_jwk().unwrap();
    jwk.as_object_mut().unwrap().remove("kid");
    let unnamed = PublicKeySet::parse(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
    assert!(checked.verifies_with_any(&jws, &unnamed));
    let other = self::key(Algorithm::ES256);
    assert!(!checked.verifies_with_any(&jws, &keys_of(&other)));
}
