use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PSS_SHA256, RsaKeyPair};
use serde_json::json;

use super::*;
use crate::keys::{Algorithm, SigningKey, generate_pkcs8};

fn set_of(jwks: Value) -> PublicKeySet {
    PublicKeySet::parse(jwks.to_string().as_bytes()).unwrap()
}

#[test]
fn every_accepted_algorithm_verifies_with_its_jwk_only() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = SigningKey::from_pkcs8(alg, &generate_pkcs8(alg).unwrap()).unwrap();
        let set = set_of(json!({ "keys": [key.public_jwk().unwrap()] }));
        let verify_alg = VerifyAlgorithm::from_name(alg.name()).unwrap();
        let sig = key.sign(b"message").unwrap();
        let found: Vec<_> = set.candidates(verify_alg, Some(key.kid())).collect();
        assert_eq!(found.len(), 1, "{alg:?}");
        assert!(found[0].verify(verify_alg, b"message", &sig));
        assert!(!found[0].verify(verify_alg, b"messagE", &sig));
        assert_eq!(set.candidates(verify_alg, Some("other")).count(), 0);
        assert!(set.has_kid(key.kid()));
    }
}

#[test]
fn ps256_verifies_with_an_rsa_jwk_that_allows_it() {
    let der = generate_pkcs8(Algorithm::RS256).unwrap();
    let key = SigningKey::from_pkcs8(Algorithm::RS256, &der).unwrap();
    let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(&RSA_PSS_SHA256, &SystemRandom::new(), b"m", &mut sig)
        .unwrap();
    let mut jwk = key.public_jwk().unwrap();
    jwk.as_object_mut().unwrap().remove("alg");
    let set = set_of(json!({ "keys": [jwk.clone()] }));
    let rsa = set.candidates(VerifyAlgorithm::PS256, None).next().unwrap();
    assert!(rsa.verify(VerifyAlgorithm::PS256, b"m", &sig));
    assert!(
        !rsa.verify(VerifyAlgorithm::RS256, b"m", &sig),
        "a PSS signature is no PKCS#1 signature"
    );
    // A JWK restricted to RS256 is not used for PS256.
    jwk["alg"] = "RS256".into();
    let set = set_of(json!({ "keys": [jwk] }));
    assert_eq!(set.candidates(VerifyAlgorithm::PS256, None).count(), 0);
}

#[test]
fn no_hmac_and_no_none() {
    for name in ["none", "HS256", "HS512", "RS512", "", "eddsa"] {
        assert_eq!(VerifyAlgorithm::from_name(name), None, "{name}");
    }
    // A symmetric JWK is refused outright.
    let oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
    assert_eq!(
        PublicKeySet::parse(oct.to_string().as_bytes()),
        Err(JwksError::PrivateMaterial(0))
    );
}

#[test]
fn private_keys_and_malformed_sets_are_refused() {
    let key = SigningKey::from_pkcs8(Algorithm::ES256, &generate_pkcs8(Algorithm::ES256).unwrap())
        .unwrap();
    let mut private = key.public_jwk().unwrap();
    private["d"] = "AAAA".into();
    let err = PublicKeySet::parse(json!({"keys": [private]}).to_string().as_bytes());
    assert_eq!(err, Err(JwksError::PrivateMaterial(0)));
    for bad in [
        &b"[]"[..],
        b"{}",
        b"not json",
        br#"{"keys": [1]}"#,
        br#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}"#,
        br#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
        br#"{"keys": [{"crv": "P-256"}]}"#,
    ] {
        assert!(
            PublicKeySet::parse(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let many: Vec<_> = (0..=MAX_KEYS).map(|_| key.public_jwk().unwrap()).collect();
    assert_eq!(
        PublicKeySet::parse(json!({ "keys": many }).to_string().as_bytes()),
        Err(JwksError::TooManyKeys)
    );
    assert_eq!(
        PublicKeySet::parse(&vec![b' '; MAX_JWKS_BYTES + 1]),
        Err(JwksError::TooLarge)
    );
}

#[test]
fn encryption_keys_and_unknown_types_are_skipped() {
    let key = SigningKey::from_pkcs8(Algorithm::EdDSA, &generate_pkcs8(Algorithm::EdDSA).unwrap())
        .unwrap();
    let mut enc = key.public_jwk().unwrap();
    enc["use"] = "enc".into();
    let set = set_of(json!({"keys": [
        enc,
        {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
        {"kty": "EC", "crv": "P-521", "x": "AAAA", "y": "AAAA"},
    ]}));
    assert!(set.is_empty());
}
