//! A workload token issuer for the federation tests: it plays a Kubernetes
//! cluster (service-account tokens in the projected-token shape) or a
//! SPIFFE trust domain (JWT-SVIDs), publishing its keys on a real HTTPS
//! [`JwksHost`] with a discovery document, and signing with jsonwebtoken.

use auth_server::config::TrustedIssuerConfig;
use serde_json::{Value, json};

use super::assertion::{ClientKey, jwks};
use super::jwks_host::JwksHost;

/// The audience the test issuers' tokens are for.
pub const AUDIENCE: &str = "https://auth-server.test";

/// A running issuer and its current signing key.
pub struct TestIssuer {
    /// The HTTPS host publishing the keys.
    pub host: JwksHost,
    /// The issuer identifier (`iss`): the host's origin.
    pub iss: String,
    /// The key that signs now.
    pub key: ClientKey,
}

impl TestIssuer {
    /// An issuer signing with `alg`, publishing its key and discovery.
    pub async fn start(alg: &str) -> Self {
        let key = ClientKey::new(alg);
        let host = JwksHost::start(&jwks(&[&key])).await;
        let iss = host.origin.clone();
        host.publish_discovery(&iss);
        Self { host, iss, key }
    }

    /// The trusted-issuer configuration of this issuer under `name`: by
    /// discovery, or with the JWK Set URL when `direct`.
    pub fn trusted(&self, name: &str, direct: bool) -> TrustedIssuerConfig {
        TrustedIssuerConfig {
            name: name.into(),
            issuer: self.iss.clone(),
            jwks_uri: if direct {
                self.host.url.clone()
            } else {
                String::new()
            },
            audience: AUDIENCE.into(),
            algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
            max_token_age_secs: 3_600,
        }
    }

    /// Projected service-account token claims for `namespace`/`account`,
    /// issued `age` seconds ago, valid for an hour from then.
    pub fn k8s_claims(&self, namespace: &str, account: &str, age: i64) -> Value {
        let iat = auth_server::clock::unix_now() - age;
        json!({
            "iss": self.iss,
            "sub": format!("system:serviceaccount:{namespace}:{account}"),
            "aud": [AUDIENCE],
            "iat": iat,
            "nbf": iat,
            "exp": iat + 3_600,
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": format!("{account}-7d9f-x2x5"), "uid": "6f1c3a52-d6a1-4b0e-9a2c-3a1b9c7f0e11"},
                "serviceaccount": {"name": account, "uid": "0b7e5d7c-6a37-4c8e-9d45-3b1d2c0f9a88"}
            }
        })
    }

    /// A Kubernetes service-account token, signed now.
    pub fn k8s_token(&self, namespace: &str, account: &str) -> String {
        self.key.sign(&self.k8s_claims(namespace, account, 5))
    }

    /// A JWT-SVID (SPIFFE) for `spiffe_id`, valid for five minutes.
    pub fn svid(&self, spiffe_id: &str) -> String {
        let iat = auth_server::clock::unix_now();
        self.key.sign(&json!({
            "iss": self.iss,
            "sub": spiffe_id,
            "aud": AUDIENCE,
            "iat": iat,
            "exp": iat + 300,
        }))
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        self.key.sign(claims)
    }

    /// Rotates to a new key of `alg` with a new `kid`, publishing both.
    pub fn rotate(&mut self, alg: &str) {
        let old = std::mem::replace(&mut self.key, ClientKey::new(alg));
        self.host.serve(&jwks(&[&self.key, &old]));
    }
}
