//! Client keys and signed client assertions for the benches: a key per
//! accepted algorithm (PS256 signs with aws-lc-rs directly), its JWK Set, and
//! compact JWS assertions with a fresh `jti` each (and any other claims, for
//! external workload tokens).

use auth_server::keys::{Algorithm, SigningKey, generate_pkcs8};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PSS_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A client key that signs assertions with `alg`.
pub struct BenchKey {
    pub alg: &'static str,
    key: SigningKey,
    pss: Option<RsaKeyPair>,
}

impl BenchKey {
    /// A new key for `alg`: EdDSA, ES256, RS256 or PS256.
    pub fn new(alg: &'static str) -> Self {
        let ours = match alg {
            "EdDSA" => Algorithm::EdDSA,
            "ES256" => Algorithm::ES256,
            _ => Algorithm::RS256,
        };
        let der = generate_pkcs8(ours).unwrap();
        let pss = (alg == "PS256").then(|| RsaKeyPair::from_pkcs8(&der).unwrap());
        Self {
            alg,
            key: SigningKey::from_pkcs8(ours, &der).unwrap(),
            pss,
        }
    }

    /// The JWK Set holding this key's public half.
    pub fn jwks(&self) -> String {
        let mut jwk = self.key.public_jwk().unwrap();
        jwk["alg"] = self.alg.into();
        json!({ "keys": [jwk] }).to_string()
    }

    /// An assertion from `client_id` for `aud`, issued at `now`, valid a
    /// minute, with `jti`.
    pub fn assertion(&self, client_id: &str, aud: &str, now: i64, jti: u64) -> String {
        self.sign(&json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "iat": now, "exp": now + 60, "jti": format!("bench-{jti}"),
        }))
    }

    /// A compact JWS of `claims`, signed with this key, `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let header = json!({"alg": self.alg, "kid": self.key.kid(), "typ": "JWT"});
        let input = format!("{}.{}", b64(&header), b64(claims));
        let signature = match &self.pss {
            Some(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PSS_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            None => self.key.sign(input.as_bytes()).unwrap(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}
