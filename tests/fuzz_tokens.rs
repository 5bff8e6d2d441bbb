//! Property tests for JWT parsing and verification: arbitrary strings and
//! hand-built headers never panic and never verify, nor does a correctly
//! signed header with any `crit`; a real token with any byte flipped,
//! inserted or deleted, or with parts spliced from another token, is
//! refused; the time window holds at the extremes of `i64`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use auth_server::domain::token::{
    AccessTokenClaims, TokenError, TokenPolicy, sign_claims, verify_access_token, verify_signature,
};
use auth_server::keys::{Algorithm, KeySet, SigningKey, generate_pkcs8};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::HS256,
];

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: "https://issuer.test/auth-server/v1".into(),
        default_lifetime_secs: 900,
        default_audience: "default-aud".into(),
        nbf_leeway_secs: 5,
        exp_leeway_secs: 0,
    }
}

/// One key set per algorithm, generated once (RSA generation is slow).
fn keys(alg: Algorithm) -> &'static KeySet {
    static SETS: OnceLock<Vec<KeySet>> = OnceLock::new();
    let sets = SETS.get_or_init(|| {
        ALGORITHMS
            .iter()
            .map(|&alg| {
                let key = match alg {
                    Algorithm::HS256 => SigningKey::from_hmac_secret(&[7u8; 32]).unwrap(),
                    _ => SigningKey::from_pkcs8(alg, &generate_pkcs8(alg).unwrap()).unwrap(),
                };
                KeySet::new(key)
            })
            .collect()
    });
    let i = ALGORITHMS.iter().position(|&a| a == alg).unwrap();
    &sets[i]
}

fn claims(jti: &str, iat: i64, nbf: i64, exp: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: policy().issuer,
        sub: "svc-a".into(),
        client_id: "svc-a".into(),
        aud: "https://api.test".into(),
        scope: Some("read write".into()),
        iat,
        nbf,
        exp,
        jti: jti.into(),
        cnf: None,
        derived_from: Vec::new(),
    }
}

fn token(alg: Algorithm, jti: &str) -> String {
    sign_claims(&claims(jti, 1_000, 1_000, 1_900), keys(alg).active()).unwrap()
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(ALGORITHMS.to_vec())
}

/// A single-byte edit of a token.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Replace(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let b64_byte = prop::sample::select(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec(),
    );
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<prop::sample::Index>(), b64_byte.clone()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
        (any::<prop::sample::Index>(), b64_byte).prop_map(|(i, b)| Mutation::Replace(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(token: &str, mutation: &Mutation) -> String {
    let mut bytes = token.as_bytes().to_vec();
    if bytes.is_empty() {
        return String::new();
    }
    let len = bytes.len();
    match mutation {
        Mutation::FlipBit(i, bit) => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
        Mutation::Delete(i) => {
            bytes.remove(i.index(len));
        }
        Mutation::Replace(i, b) => bytes[i.index(len)] = *b,
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Any `crit` value: lists of names we might be asked to understand, and the
/// malformed ones (empty list, not a list, null).
fn crit_value() -> impl Strategy<Value = serde_json::Value> {
    let name = prop_oneof![
        prop::sample::select(vec!["exp", "b64", "alg", "kid", "typ", "crit", ""])
            .prop_map(str::to_owned),
        any::<String>(),
    ];
    prop_oneof![
        prop::collection::vec(name.clone(), 0..4).prop_map(|names| serde_json::json!(names)),
        name.prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!({})),
    ]
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_tokens_are_refused(
        alg in algorithm(),
        edits in prop::collection::vec(mutation(), 1..4),
    ) {
        let original = token(alg, "jti-1");
        let mut mutated = original.clone();
        for edit in &edits {
            mutated = apply(&mutated, edit);
        }
        let result = verify_access_token(&mutated, keys(alg), &policy(), 1_100);
        if mutated == original {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err(), "accepted a mutated {alg:?} token: {edits:?}");
        }
    }

    #[test]
    fn spliced_tokens_are_refused(alg in algorithm(), pick in 0usize..6) {
        let a = token(alg, "jti-a");
        let b = token(alg, "jti-b");
        let pa: Vec<&str> = a.split('.').collect();
        let pb: Vec<&str> = b.split('.').collect();
        let spliced = match pick {
            0 => format!("{}.{}.{}", pa[0], pb[1], pa[2]),
            1 => format!("{}.{}.{}", pa[0], pa[1], pb[2]),
            2 => format!("{}.{}", pa[0], pa[1]),
            3 => format!("{}.{}.{}.{}", pa[0], pa[1], pa[2], pb[2]),
            4 => format!("{}.{}.{}=", pa[0], pa[1], pa[2]),
            _ => format!("{}..{}", pa[0], pa[2]),
        };
        prop_assert!(verify_signature(&spliced, keys(alg), &policy()).is_err());
    }

    #[test]
    fn arbitrary_strings_never_verify(alg in algorithm(), raw in any::<String>()) {
        prop_assert!(verify_signature(&raw, keys(alg), &policy()).is_err());
    }

    #[test]
    fn hand_built_headers_never_verify(
        alg in algorithm(),
        header_alg in prop::sample::select(vec!["none", "None", "EdDSA", "ES256", "RS256", "HS256", "", "eddsa"]),
        typ in prop::sample::select(vec![Some("at+jwt"), Some("JWT"), Some("application/at+jwt"), None]),
        real_kid in any::<bool>(),
        signature in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let keys = keys(alg);
        let mut header = serde_json::json!({ "alg": header_alg });
        if let Some(typ) = typ {
            header["typ"] = typ.into();
        }
        if real_kid {
            header["kid"] = keys.active().kid().into();
        }
        let payload = serde_json::to_vec(&claims("forged", 1_000, 1_000, 1_900)).unwrap();
        let forged = format!("{}.{}.{}", b64(header.to_string()), b64(payload), b64(signature));
        let result = verify_access_token(&forged, keys, &policy(), 1_100);
        prop_assert!(result.is_err());
    }

    #[test]
    fn correctly_signed_headers_with_crit_never_verify(
        alg in algorithm(),
        crit in crit_value(),
    ) {
        let keys = keys(alg);
        let key = keys.active();
        let header = serde_json::json!({
            "alg": key.alg().name(), "typ": "at+jwt", "kid": key.kid(), "crit": crit,
        });
        let payload = serde_json::to_vec(&claims("crit", 1_000, 1_000, 1_900)).unwrap();
        let input = format!("{}.{}", b64(header.to_string()), b64(payload));
        let signature = key.sign(input.as_bytes()).unwrap();
        let token = format!("{input}.{}", b64(signature));
        prop_assert_eq!(
            verify_access_token(&token, keys, &policy(), 1_100),
            Err(TokenError::UnsupportedHeader)
        );
    }

    #[test]
    fn time_window_never_panics_and_is_exact(
        iat in any::<i64>(),
        nbf in any::<i64>(),
        exp in any::<i64>(),
        now in any::<i64>(),
        nbf_leeway in prop_oneof![0i64..10, any::<i64>()],
        exp_leeway in prop_oneof![0i64..10, any::<i64>()],
    ) {
        let keys = keys(Algorithm::EdDSA);
        let token = sign_claims(&claims("t", iat, nbf, exp), keys.active()).unwrap();
        let policy = TokenPolicy { nbf_leeway_secs: nbf_leeway, exp_leeway_secs: exp_leeway, ..policy() };
        let result = verify_access_token(&token, keys, &policy, now);
        let live = now < exp.saturating_add(exp_leeway);
        let started = now.saturating_add(nbf_leeway) >= nbf;
        match result {
            Ok(got) => prop_assert!(live && started && got.exp == exp),
            Err(TokenError::Expired) => prop_assert!(!live),
            Err(TokenError::NotYetValid) => prop_assert!(live && !started),
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }
}

#[test]
fn algorithm_confusion_with_the_public_key_as_hmac_secret_is_refused() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let keys = keys(alg);
        let jwk = keys.active().public_jwk().unwrap();
        let public = jwk.to_string();
        let hmac = SigningKey::from_hmac_secret(public.as_bytes()).unwrap();
        let header =
            serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": keys.active().kid()});
        let payload = serde_json::to_vec(&claims("confused", 1_000, 1_000, 1_900)).unwrap();
        let input = format!("{}.{}", b64(header.to_string()), b64(payload));
        let signature = hmac.sign(input.as_bytes()).unwrap();
        let forged = format!("{input}.{}", b64(signature));
        assert_eq!(
            verify_signature(&forged, keys, &policy()),
            Err(TokenError::UnsupportedHeader),
            "{alg:?}"
        );
    }
}
