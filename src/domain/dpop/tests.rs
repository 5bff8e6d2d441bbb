use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

use super::*;

const URL: &str = "https://as.test/auth-server/v1/oauth/token";
const NOW: i64 = 1_800_000_000;
const WINDOW: ProofWindow = ProofWindow {
    max_age_secs: 60,
    future_skew_secs: 5,
};

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn public_jwk(key: &Ed25519KeyPair) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref())})
}

fn sign(key: &Ed25519KeyPair, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).as_ref());
    format!("{input}.{signature}")
}

fn header(key: &Ed25519KeyPair) -> Value {
    json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": public_jwk(key)})
}

fn claims() -> Value {
    json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": NOW})
}

fn check(proof: &str, token: Option<&str>) -> Result<CheckedProof, ProofError> {
    let url = normalize_url(URL).unwrap();
    let target = ProofTarget {
        method: "POST",
        url: &url,
        access_token: token,
    };
    check_proof(proof, &target, &WINDOW, NOW)
}

#[test]
fn a_good_proof_gives_the_rfc_7638_thumbprint() {
    let key = key();
    let checked = check(&sign(&key, &header(&key), &claims()), None).unwrap();
    let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    assert_eq!(checked.jkt, thumbprint(&canonical));
    assert_eq!(checked.jti, "j1");
}

#[test]
fn the_rfc_7638_example_thumbprint() {
    // RFC 7638 3.1.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let jwk = json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
    let (_, jkt) = read_public_jwk(jwk.as_object().unwrap(), VerifyAlgorithm::RS256).unwrap();
    assert_eq!(jkt, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

#[test]
fn request_mismatches_are_refused() {
    let key = key();
    let h = header(&key);
    let with = |field: &str, value: Value| {
        let mut c = claims();
        c[field] = value;
        check(&sign(&key, &h, &c), None)
    };
    assert_eq!(with("htm", json!("GET")), Err(ProofError::WrongMethod));
    assert_eq!(
        with(
            "htu",
            json!("https://as.test/auth-server/v1/oauth/introspect")
        ),
        Err(ProofError::WrongUrl)
    );
    assert_eq!(with("htu", json!("not a url")), Err(ProofError::WrongUrl));
    // The same URL spelled differently, with a query: still the same.
    assert!(
        with(
            "htu",
            json!("HTTPS://AS.test:443/auth-server/v1/./oauth/token?x=1")
        )
        .is_ok()
    );
    assert_eq!(with("iat", json!(NOW - 61)), Err(ProofError::Expired));
    assert!(with("iat", json!(NOW - 60)).is_ok());
    assert_eq!(with("iat", json!(NOW + 6)), Err(ProofError::Future));
    assert!(with("iat", json!(NOW + 5)).is_ok());
    assert_eq!(with("iat", json!("now")), Err(ProofError::MissingClaim));
    assert_eq!(with("jti", json!("")), Err(ProofError::MissingClaim));
    assert_eq!(with("jti", json!(7)), Err(ProofError::Malformed));
}

#[test]
fn ath_must_hash_the_presented_token() {
    let key = key();
    let mut c = claims();
    c["ath"] = json!(access_token_hash("the-token"));
    let proof = sign(&key, &header(&key), &c);
    assert!(check(&proof, Some("the-token")).is_ok());
    assert_eq!(
        check(&proof, Some("another-token")),
        Err(ProofError::WrongAccessToken)
    );
    let without = sign(&key, &header(&key), &claims());
    assert_eq!(
        check(&without, Some("the-token")),
        Err(ProofError::WrongAccessToken)
    );
}

#[test]
fn headers_and_keys_that_are_not_a_public_asymmetric_key_are_refused() {
    let key = key();
    let jwk = public_jwk(&key);
    let cases = [
        (
            json!({"typ": "JWT", "alg": "EdDSA", "jwk": jwk}),
            ProofError::WrongType,
        ),
        (json!({"alg": "EdDSA", "jwk": jwk}), ProofError::WrongType),
        (
            json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk, "crit": ["x"]}),
            ProofError::WrongType,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk}),
            ProofError::UnsupportedAlgorithm,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}),
            ProofError::UnsupportedAlgorithm,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "EdDSA"}),
            ProofError::BadKey,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}),
            ProofError::BadKey,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
            ProofError::PrivateKey,
        ),
    ];
    for (header, expected) in cases {
        assert_eq!(
            check(&sign(&key, &header, &claims()), None),
            Err(expected),
            "{header}"
        );
    }
    let mut leaked = jwk.clone();
    leaked["d"] = json!("AAAA");
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": leaked});
    assert_eq!(
        check(&sign(&key, &header, &claims()), None),
        Err(ProofError::PrivateKey)
    );
}

#[test]
fn a_forged_or_broken_proof_is_refused() {
    let other = key();
    let key = key();
    // Signed by another key than the one in the header.
    let forged = sign(&other, &header(&key), &claims());
    assert_eq!(check(&forged, None), Err(ProofError::BadSignature));
    let good = sign(&key, &header(&key), &claims());
    for broken in [
        String::new(),
        "a.b".into(),
        format!("{good}.x"),
        "!!.!!.!!".into(),
        "x".repeat(MAX_PROOF_LEN + 1),
    ] {
        assert_eq!(check(&broken, None), Err(ProofError::Malformed));
    }
}
