//! A DPoP client's side (RFC 9449): proof keys of every accepted algorithm,
//! their public JWKs and thumbprints, and signed proofs, including the
//! malformed ones the tests send on purpose.

use std::collections::BTreeMap;

use auth_server::domain::dpop::access_token_hash;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaKeyPair,
};
use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The proof algorithms the server accepts.
pub const ALGORITHMS: [&str; 4] = ["EdDSA", "ES256", "RS256", "PS256"];

enum Signer {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A client's DPoP key.
pub struct DpopKey {
    alg: &'static str,
    signer: Signer,
    jwk: Value,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DpopKey {
    /// A new key for `alg` (one of [`ALGORITHMS`]).
    pub fn generate(alg: &'static str) -> Self {
        let rng = SystemRandom::new();
        let (signer, jwk) = match alg {
            "EdDSA" => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key())});
                (Signer::Ed25519(key), jwk)
            }
            "ES256" => {
                let pkcs8 =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
                let key =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                        .unwrap();
                let point = key.public_key().as_ref().to_vec();
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])});
                (Signer::P256(key), jwk)
            }
            "RS256" | "PS256" => {
                let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let public = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
                let jwk = json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)});
                (Signer::Rsa(key), jwk)
            }
            other => panic!("no such proof algorithm {other}"),
        };
        Self { alg, signer, jwk }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// RFC 7638 thumbprint, computed here from the JWK's required members.
    pub fn thumbprint(&self) -> String {
        let required: &[&str] = match self.jwk["kty"].as_str().unwrap() {
            "OKP" => &["crv", "kty", "x"],
            "EC" => &["crv", "kty", "x", "y"],
            _ => &["e", "kty", "n"],
        };
        let members: BTreeMap<&str, &Value> =
            required.iter().map(|m| (*m, &self.jwk[*m])).collect();
        let canonical = serde_json::to_string(&members).unwrap();
        b64(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// The header of a well-formed proof by this key.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk})
    }

    /// A fresh proof for `htm` `htu`, with `ath` for `token` if given.
    pub fn proof(&self, htm: &str, htu: &str, token: Option<&str>) -> String {
        self.sign(
            &self.header(),
            &claims(htm, htu, token, auth_server::clock::unix_now()),
        )
    }

    /// Signs any header and claims with this key (the header's `alg` is
    /// not consulted: the key's own algorithm signs).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match &self.signer {
            Signer::Ed25519(key) => key.sign(input.as_bytes()).as_ref().to_vec(),
            Signer::P256(key) => key.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Rsa(key) => {
                let padding = if self.alg == "PS256" {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(padding, &rng, input.as_bytes(), &mut signature)
                    .unwrap();
                signature
            }
        };
        format!("{input}.{}", b64(signature))
    }
}

/// Proof claims: a random `jti`, `iat`, and `ath` for `token` if given.
pub fn claims(htm: &str, htu: &str, token: Option<&str>, iat: i64) -> Value {
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti).unwrap();
    let mut claims = json!({"jti": b64(jti), "htm": htm, "htu": htu, "iat": iat});
    if let Some(token) = token {
        claims["ath"] = json!(access_token_hash(token));
    }
    claims
}

/// A proof "signed" with HMAC-SHA-256 under `secret` (HS256): never accepted.
pub fn hmac_proof(claims: &Value, secret: &[u8]) -> String {
    let header =
        json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(secret)}});
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!("{input}.{}", b64(hmac::sign(&key, input.as_bytes())))
}

/// An unsigned proof (`alg: none`) with `jwk`.
pub fn unsigned_proof(jwk: &Value, claims: &Value) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk});
    format!("{}.{}.", b64(header.to_string()), b64(claims.to_string()))
}
