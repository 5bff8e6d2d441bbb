use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;
use crate::keys::public::PublicKeySet;
use crate::keys::{Algorithm, SigningKey, generate_pkcs8};

const NOW: i64 = 1_800_000_000;

fn fs(client: &str, issuer: &str, subject: &str) -> FederatedSubject {
    FederatedSubject {
        client_id: client.into(),
        issuer: issuer.into(),
        subject: subject.into(),
    }
}

#[test]
fn a_kubernetes_wildcard_matches_one_segment() {
    let p = "system:serviceaccount:payments:*";
    assert!(subject_matches(p, "system:serviceaccount:payments:api"));
    assert!(!subject_matches(p, "system:serviceaccount:payments:"));
    assert!(!subject_matches(p, "system:serviceaccount:payments:api:x"));
    assert!(!subject_matches(p, "system:serviceaccount:billing:api"));
    assert!(!subject_matches(p, "system:serviceaccount:payments"));
    assert!(subject_matches(
        "system:serviceaccount:*:api",
        "system:serviceaccount:billing:api"
    ));
}

#[test]
fn a_spiffe_wildcard_matches_one_path_element() {
    let p = "spiffe://prod.example/ns/payments/sa/*";
    assert!(subject_matches(
        p,
        "spiffe://prod.example/ns/payments/sa/api"
    ));
    assert!(!subject_matches(
        p,
        "spiffe://prod.example/ns/payments/sa/api/x"
    ));
    assert!(!subject_matches(p, "spiffe://prod.example/ns/payments/sa/"));
    assert!(!subject_matches(
        p,
        "spiffe://other.example/ns/payments/sa/api"
    ));
    // A SPIFFE ID with ':' in a path element is still one segment.
    assert!(subject_matches(
        p,
        "spiffe://prod.example/ns/payments/sa/a:b"
    ));
    assert!(!subject_matches("system:*", "spiffe://x"));
}

#[test]
fn exact_subjects_match_exactly() {
    let p = "spiffe://prod.example/ns/payments/sa/api";
    assert!(subject_matches(p, p));
    assert!(!subject_matches(
        p,
        "spiffe://prod.example/ns/payments/sa/apI"
    ));
}

#[test]
fn the_table_finds_what_a_scan_finds() {
    let patterns = [
        "system:serviceaccount:payments:*",
        "system:serviceaccount:*:api",
        "system:*:payments:api",
        "*:serviceaccount:payments:api",
        "system:serviceaccount:payments:api",
        "spiffe://td/ns/*/sa/api",
        "spiffe://*/ns/a/sa/api",
        "spiffe://td/ns/a/sa/api",
        "exact",
    ];
    let subjects = [
        "system:serviceaccount:payments:api",
        "system:serviceaccount:payments:web",
        "system:serviceaccount:billing:api",
        "system:other:payments:api",
        "spiffe://td/ns/a/sa/api",
        "spiffe://td/ns/b/sa/api",
        "spiffe://other/ns/a/sa/api",
        "spiffe://td/ns/a/sa/web",
        "exact",
        "exact:no",
        "",
    ];
    for (i, pattern) in patterns.iter().enumerate() {
        let listed = [fs(&format!("c{i}"), "k8s", pattern)];
        let table = SubjectTable::new(&listed);
        for sub in subjects {
            let expected = if subject_matches(pattern, sub) {
                SubjectMatch::One(format!("c{i}"))
            } else {
                SubjectMatch::None
            };
            assert_eq!(table.lookup("k8s", sub), expected, "{pattern} vs {sub}");
            assert_eq!(table.lookup("other", sub), SubjectMatch::None);
        }
    }
}

#[test]
fn bad_patterns_are_refused() {
    for p in [
        "",
        "a b",
        "system:sa:pay*",
        "spiffe://td//x",
        "a::b",
        "x\u{7}",
    ] {
        assert!(check_pattern(p).is_err(), "{p:?}");
    }
    for p in [
        "system:serviceaccount:payments:*",
        "spiffe://td/*/x",
        "exact",
    ] {
        assert_eq!(check_pattern(p), Ok(()), "{p}");
    }
}

#[test]
fn one_client_maps_none_or_many_do_not() {
    let subjects = [
        fs("pay", "k8s", "system:serviceaccount:payments:*"),
        fs("pay", "k8s", "system:serviceaccount:payments:api"),
        fs("bill", "k8s", "system:serviceaccount:billing:*"),
        fs("both", "k8s", "system:serviceaccount:billing:shared"),
        fs("other", "spiffe", "system:serviceaccount:payments:api"),
    ];
    let table = SubjectTable::new(&subjects);
    let sa = |s: &str| format!("system:serviceaccount:{s}");
    assert_eq!(
        table.lookup("k8s", &sa("payments:api")),
        SubjectMatch::One("pay".into()),
        "two patterns of one client are one match"
    );
    assert_eq!(
        table.lookup("k8s", &sa("billing:shared")),
        SubjectMatch::Many
    );
    assert_eq!(table.lookup("k8s", &sa("orders:api")), SubjectMatch::None);
    assert_eq!(
        table.lookup("spiffe", &sa("billing:x")),
        SubjectMatch::None,
        "subjects are per issuer"
    );
}

fn sign(key: &SigningKey, header: Value, claims: Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

const RULES: ExternalRules<'static> = ExternalRules {
    algorithms: &[VerifyAlgorithm::ES256],
    audience: "auth-server",
    leeway_secs: 30,
    max_age_secs: 600,
};

fn check(claims: Value) -> Result<String, ExternalTokenError> {
    let key = SigningKey::from_pkcs8(Algorithm::ES256, &generate_pkcs8(Algorithm::ES256).unwrap())
        .unwrap();
    let text = sign(&key, json!({"alg": "ES256", "kid": key.kid()}), claims);
    let jwt = SignedJwt::parse(&text, MAX_EXTERNAL_TOKEN_LEN)?;
    let sub = check_external_claims(&jwt, &RULES, NOW)?.sub.to_owned();
    let keys = PublicKeySet::parse(
        json!({"keys": [key.public_jwk().unwrap()]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    jwt.verify(&text, &keys)?;
    Ok(sub)
}

fn k8s(iat: i64, exp: i64) -> Value {
    json!({
        "iss": "https://k8s.test", "sub": "system:serviceaccount:payments:api",
        "aud": ["auth-server"], "iat": iat, "nbf": iat, "exp": exp,
        "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api"}}
    })
}

#[test]
fn a_token_is_refused_from_its_expiry_or_its_maximum_age() {
    let key = SigningKey::from_pkcs8(Algorithm::ES256, &generate_pkcs8(Algorithm::ES256).unwrap())
        .unwrap();
    let until = |claims: Value| {
        let text = sign(&key, json!({"alg": "ES256"}), claims);
        let jwt = SignedJwt::parse(&text, MAX_EXTERNAL_TOKEN_LEN).unwrap();
        let refused_from = check_external_claims(&jwt, &RULES, NOW)
            .unwrap()
            .refused_from;
        // The first refused second is refused, the one before is not.
        for (at, ok) in [(refused_from - 1, true), (refused_from, false)] {
            assert_eq!(check_external_claims(&jwt, &RULES, at).is_ok(), ok, "{at}");
        }
        refused_from
    };
    assert_eq!(until(k8s(NOW - 10, NOW + 60)), NOW + 60 + 30, "by exp");
    assert_eq!(
        until(k8s(NOW - 10, NOW + 3_000)),
        NOW - 10 + 600 + 30 + 1,
        "by age"
    );
}

#[test]
fn a_projected_token_shape_passes() {
    assert_eq!(
        check(k8s(NOW - 10, NOW + 3_000)).unwrap(),
        "system:serviceaccount:payments:api"
    );
}

#[test]
fn each_bad_claim_is_named() {
    let mut wrong_aud = k8s(NOW, NOW + 60);
    wrong_aud["aud"] = json!("someone-else");
    let mut no_sub = k8s(NOW, NOW + 60);
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut no_iat = k8s(NOW, NOW + 6_000);
    no_iat.as_object_mut().unwrap().remove("iat");
    let cases = [
        (
            wrong_aud,
            ExternalTokenError::Token(AssertionError::Audience),
        ),
        (
            k8s(NOW - 700, NOW + 60),
            ExternalTokenError::Token(AssertionError::TooOld),
        ),
        (no_iat, ExternalTokenError::Token(AssertionError::TooOld)),
        (
            k8s(NOW - 100, NOW - 40),
            ExternalTokenError::Token(AssertionError::Expired),
        ),
        (
            k8s(NOW + 100, NOW + 200),
            ExternalTokenError::Token(AssertionError::NotYetValid),
        ),
        (no_sub, ExternalTokenError::Subject),
    ];
    for (claims, expected) in cases {
        assert_eq!(check(claims.clone()), Err(expected), "{claims}");
    }
}
