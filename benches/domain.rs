//! Criterion benches for the pure hot paths: minting and verifying an access
//! token with each algorithm, checking a client secret, checking a client
//! assertion (`private_key_jwt`) with each accepted algorithm, and checking
//! an external workload token (federation) on a warm key cache. Keys and
//! clients are generated in code; nothing touches the disk.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use auth_server::domain::client::{Client, SecretHash, generate_secret};
use auth_server::domain::scope::ScopeSet;
use auth_server::domain::token::{TokenPolicy, mint_access_token, verify_access_token};
use auth_server::keys::{Algorithm, KeySet, SigningKey, generate_pkcs8};
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/assertion.rs"]
mod assertion_support;

use assertion_support::BenchKey;
use auth_server::domain::assertion::{AssertionRules, DEFAULT_MAX_LIFETIME_SECS, check_assertion};
use auth_server::domain::client::RegisteredJwks;

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::HS256,
];

/// A fixed "now" well inside the tokens' lifetime.
const NOW: i64 = 1_800_000_000;

fn key_for(alg: Algorithm) -> SigningKey {
    match alg {
        Algorithm::HS256 => SigningKey::from_hmac_secret(&[0x42; 32]).unwrap(),
        _ => SigningKey::from_pkcs8(alg, &generate_pkcs8(alg).unwrap()).unwrap(),
    }
}

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: "https://127.0.0.1:8443/auth-server/v1".into(),
        default_lifetime_secs: 900,
        default_audience: "auth-server".into(),
        nbf_leeway_secs: 5,
        exp_leeway_secs: 0,
    }
}

/// A client shaped like a typical service account, with its plaintext secret.
fn client() -> (Client, String) {
    let secret = generate_secret().unwrap();
    let mut client = Client::new(
        "billing-service".into(),
        "Billing".into(),
        secret.hash,
        NOW - 3600,
    );
    client.allowed_scopes = ScopeSet::parse("billing:read billing:write").unwrap();
    client.default_scopes = ScopeSet::parse("billing:read").unwrap();
    client.allowed_audiences = vec!["https://billing.example.com".into()];
    (client, secret.plaintext)
}

fn mint(c: &mut Criterion) {
    let (client, _) = client();
    let policy = policy();
    let mut group = c.benchmark_group("mint");
    for alg in ALGORITHMS {
        let key = key_for(alg);
        group.bench_function(alg.name(), |b| {
            b.iter(|| {
                mint_access_token(
                    black_box(&client),
                    &client.default_scopes,
                    client.allowed_audiences[0].clone(),
                    &policy,
                    &key,
                    NOW,
                )
                .unwrap()
            });
        });
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let (client, _) = client();
    let policy = policy();
    let mut group = c.benchmark_group("verify");
    for alg in ALGORITHMS {
        let keys = KeySet::new(key_for(alg));
        let token = mint_access_token(
            &client,
            &client.default_scopes,
            client.allowed_audiences[0].clone(),
            &policy,
            keys.active(),
            NOW,
        )
        .unwrap()
        .access_token;
        verify_access_token(&token, &keys, &policy, NOW).unwrap();
        group.bench_function(alg.name(), |b| {
            b.iter(|| verify_access_token(black_box(&token), &keys, &policy, NOW).unwrap());
        });
    }
    group.finish();
}

fn client_secret(c: &mut Criterion) {
    let (client, secret) = client();
    // Same length as the real secret, differing in the last character.
    let mut wrong = secret.clone();
    let last = if wrong.ends_with('A') { "B" } else { "A" };
    wrong.pop();
    wrong.push_str(last);
    assert!(client.verify_secret(&secret, NOW));
    assert!(!client.verify_secret(&wrong, NOW));
    // The stored hash is computed once; this is what a cache hit costs.
    assert_eq!(client.secret_hash, SecretHash::of(&secret));

    let mut group = c.benchmark_group("client_secret");
    group.bench_function("match", |b| {
        b.iter(|| client.verify_secret(black_box(&secret), NOW));
    });
    group.bench_function("mismatch", |b| {
        b.iter(|| client.verify_secret(black_box(&wrong), NOW));
    });
    // An unknown client id must cost the same as a known one with a wrong
    // secret, so response times do not reveal which ids exist.
    group.bench_function("unknown_client", |b| {
        b.iter(|| auth_server::domain::client::verify_secret_of_unknown_client(black_box(&wrong)));
    });
    group.finish();
}

/// Parsing, claim checks and signature verification of a client assertion
/// against the client's registered keys (parsed once, as the client cache
/// holds them); no replay check.
fn client_assertion(c: &mut Criterion) {
    let aud = format!("{}/oauth/token", policy().issuer);
    let audiences = [aud.as_str()];
    let rules = AssertionRules {
        audiences: &audiences,
        leeway_secs: 30,
        max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
    };
    let mut group = c.benchmark_group("client_assertion");
    for alg in ["EdDSA", "ES256", "RS256", "PS256"] {
        let key = BenchKey::new(alg);
        let jwks = RegisteredJwks::parse(&key.jwks()).unwrap();
        let assertion = key.assertion("billing-service", &aud, NOW, 1);
        let check = || {
            check_assertion(black_box(&assertion), &rules, NOW)
                .and_then(|checked| checked.verify(&assertion, jwks.keys()))
                .unwrap()
        };
        check();
        group.bench_function(alg, |b| b.iter(check));
    }
    group.finish();
}

/// An external workload token (a Kubernetes service-account token) checked
/// as the federated grants check it, on a warm key cache: parse, the
/// issuer's claim rules, the signature with the issuer's parsed keys, and
/// the subject matched against 1000 federated subjects.
fn external_token(c: &mut Criterion) {
    use auth_server::domain::federation::{
        ExternalRules, FederatedSubject, MAX_EXTERNAL_TOKEN_LEN, SubjectMatch, SubjectTable,
        check_external_claims,
    };
    use auth_server::domain::signed_jwt::SignedJwt;
    use auth_server::keys::public::{PublicKeySet, VerifyAlgorithm};
    let listed: Vec<FederatedSubject> = (0..1_000)
        .map(|i| FederatedSubject {
            client_id: format!("client-{i}"),
            issuer: "k8s".into(),
            subject: format!("system:serviceaccount:ns-{i}:*"),
        })
        .collect();
    let subjects = SubjectTable::new(&listed);
    let mut group = c.benchmark_group("external_token");
    for alg in ["RS256", "ES256"] {
        let key = BenchKey::new(alg);
        let keys = PublicKeySet::parse(key.jwks().as_bytes()).unwrap();
        let algorithms = [VerifyAlgorithm::RS256, VerifyAlgorithm::ES256];
        let rules = ExternalRules {
            algorithms: &algorithms,
            audience: "https://auth-server.example",
            leeway_secs: 30,
            max_age_secs: 3_600,
        };
        let token = key.sign(&serde_json::json!({
            "iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:ns-500:api",
            "aud": ["https://auth-server.example"], "iat": NOW - 60, "nbf": NOW - 60,
            "exp": NOW + 3_540,
            "kubernetes.io": {"namespace": "ns-500", "serviceaccount": {"name": "api"}},
        }));
        let check = || {
            let jwt = SignedJwt::parse(black_box(&token), MAX_EXTERNAL_TOKEN_LEN).unwrap();
            let sub = check_external_claims(&jwt, &rules, NOW).unwrap().sub;
            jwt.verify(&token, &keys).unwrap();
            subjects.lookup("k8s", sub)
        };
        assert_eq!(check(), SubjectMatch::One("client-500".into()));
        group.bench_function(alg, |b| b.iter(check));
    }
    group.finish();
}

criterion_group!(
    benches,
    mint,
    verify,
    client_secret,
    client_assertion,
    external_token
);
criterion_main!(benches);
