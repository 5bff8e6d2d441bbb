use super::*;

#[test]
fn every_asymmetric_algorithm_generates_parses_signs_and_verifies() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let pem = pkcs8_pem(&generate_pkcs8(alg).unwrap());
        let key = SigningKey::from_pem(alg, pem.as_bytes()).unwrap();
        let again = SigningKey::from_pem_any(pem.as_bytes()).unwrap();
        assert_eq!(again.alg(), alg, "the algorithm is recognised");
        assert_eq!(key.kid(), again.kid(), "kid is stable across parses");
        let sig = key.sign(b"message").unwrap();
        assert!(again.verify(b"message", &sig));
        assert!(!again.verify(b"messagE", &sig));
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk["kid"], key.kid());
        assert_eq!(jwk["alg"], alg.name());
        assert!(jwk.get("d").is_none(), "no private part in the JWK");
        assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
    }
}

#[test]
fn hmac_needs_a_long_secret_and_is_never_published() {
    assert!(matches!(
        SigningKey::from_hmac_secret(&[7u8; 31]),
        Err(KeyError::WeakHmacSecret)
    ));
    let key = SigningKey::from_hmac_secret(&[7u8; 32]).unwrap();
    assert!(key.public_jwk().is_none());
    assert!(key.verify(b"m", &key.sign(b"m").unwrap()));
    let set = KeySet::new(key);
    assert_eq!(set.jwks_json(), br#"{"keys":[]}"#);
}

#[test]
fn wrong_key_kind_is_refused() {
    let pem = pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap());
    assert!(matches!(
        SigningKey::from_pem(Algorithm::ES256, pem.as_bytes()),
        Err(KeyError::WrongKind("ES256"))
    ));
    assert!(matches!(
        SigningKey::from_pem(Algorithm::EdDSA, b"not pem"),
        Err(KeyError::NotPem)
    ));
    assert!(matches!(
        SigningKey::from_pem_any(b"not pem"),
        Err(KeyError::NotPem)
    ));
}

#[test]
fn thumbprint_matches_rfc7638_example() {
    // RFC 7638 section 3.1.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
    });
    assert_eq!(
        jwk_thumbprint(&jwk),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn a_set_signs_with_its_current_key_and_verifies_with_every_published_one() {
    let key = |_| {
        SigningKey::from_pkcs8(Algorithm::EdDSA, &generate_pkcs8(Algorithm::EdDSA).unwrap())
            .unwrap()
    };
    let keys: Vec<SigningKey> = (0..3).map(key).collect();
    let kids: Vec<String> = keys.iter().map(|k| k.kid().to_owned()).collect();
    let published = |set: &KeySet| -> Vec<String> {
        let jwks: Value = serde_json::from_slice(set.jwks_json()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        keys.iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut keys = keys.into_iter();
    let current = keys.next().unwrap();
    let stranger =
        SigningKey::from_pkcs8(Algorithm::EdDSA, &generate_pkcs8(Algorithm::EdDSA).unwrap())
            .unwrap();
    let set = KeySet::with_verifiers(current, keys.collect());
    assert_eq!(set.active().kid(), kids[0]);
    assert_eq!(
        published(&set),
        kids,
        "current first, then the others in order"
    );
    for kid in &kids {
        assert!(set.accepts_kid(kid));
        assert!(set.find(kid, "EdDSA").is_some());
        assert!(set.find(kid, "ES256").is_none(), "the algorithm must match");
    }
    assert!(!set.accepts_kid(stranger.kid()));
    assert!(set.timeline().is_none());
}
