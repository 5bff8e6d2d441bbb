use super::*;

#[test]
fn every_asymmetric_algorithm_generates_loads_signs_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let (key, generated) = SigningKey::load_or_generate(alg, dir.path(), None).unwrap();
        assert!(generated);
        let (again, generated) = SigningKey::load_or_generate(alg, dir.path(), None).unwrap();
        assert!(!generated, "second load must reuse the file");
        assert_eq!(key.kid(), again.kid(), "kid is stable across loads");
        let sig = key.sign(b"message").unwrap();
        assert!(again.verify(b"message", &sig));
        assert!(!again.verify(b"messagE", &sig));
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk["kid"], key.kid());
        assert_eq!(jwk["alg"], alg.name());
        assert!(jwk.get("d").is_none(), "no private part in the JWK");
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
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    fs::write(&path, pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap())).unwrap();
    assert!(matches!(
        SigningKey::from_pem_file(Algorithm::ES256, &path),
        Err(KeyError::WrongKind { .. })
    ));
    fs::write(&path, "not pem").unwrap();
    assert!(matches!(
        SigningKey::from_pem_file(Algorithm::EdDSA, &path),
        Err(KeyError::NotPem(_))
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
fn a_replaced_key_keeps_verifying_until_the_next_change() {
    let pkcs8: Vec<Vec<u8>> = (0..3)
        .map(|_| generate_pkcs8(Algorithm::EdDSA).unwrap())
        .collect();
    let key = |i: usize| SigningKey::from_pkcs8(Algorithm::EdDSA, &pkcs8[i]).unwrap();
    let kid = |i: usize| key(i).kid().to_owned();
    let kids = |set: &KeySet| -> Vec<String> {
        let jwks: Value = serde_json::from_slice(set.jwks_json()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        keys.iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let set = KeySet::new(key(0)).succeeded_by(key(1));
    assert_eq!(set.active().kid(), kid(1));
    assert_eq!(kids(&set), [kid(1), kid(0)]);
    assert!(
        set.find(&kid(0), "EdDSA").is_some(),
        "the replaced key verifies"
    );
    let set = set.succeeded_by(key(1));
    assert_eq!(
        kids(&set),
        [kid(1), kid(0)],
        "the same key again changes nothing"
    );
    let set = set.succeeded_by(key(2));
    assert_eq!(kids(&set), [kid(2), kid(1)]);
    assert!(
        set.find(&kid(0), "EdDSA").is_none(),
        "one previous key is kept"
    );
    assert!(
        set.find(&kid(1), "ES256").is_none(),
        "the algorithm must match"
    );
}
