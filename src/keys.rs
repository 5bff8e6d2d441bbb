//! Signing keys, parsed once and kept in memory: signs and verifies JWS with
//! aws-lc-rs directly so no key is ever re-parsed per request, and publishes
//! the public halves as a JWKS (RFC 7517). Pure: no files, no store. Where
//! keys come from and how they age is `keys::lifecycle` (pure) and
//! [`crate::keyring`] (the store); `keys::sealed` encrypts them at rest.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};
use aws_lc_rs::{digest, hmac, rsa};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod lifecycle;
pub mod public;
pub mod sealed;

use lifecycle::KeyTimeline;

/// Minimum length of an HS256 secret (`JWT_SECRET`), in bytes.
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// JWS algorithms the server can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037), the default: fast and small.
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// HMAC-SHA-256 with the shared `JWT_SECRET`; never published in the JWKS.
    HS256,
}

impl Algorithm {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::HS256 => "HS256",
        }
    }

    /// The algorithm with this JOSE `alg` name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::EdDSA, Self::ES256, Self::RS256, Self::HS256]
            .into_iter()
            .find(|alg| alg.name() == name)
    }
}

/// Why a key could not be parsed, generated or used. Never carries key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not a PKCS#8 PEM private key.
    #[error("not a PKCS#8 PEM private key")]
    NotPem,
    /// The key does not fit the algorithm it is meant for.
    #[error("not a valid {0} key")]
    WrongKind(&'static str),
    /// The key is of no algorithm we sign with (EdDSA, ES256, RS256).
    #[error("not an Ed25519, P-256 or RSA private key")]
    UnsupportedKey,
    /// HS256 needs `JWT_SECRET` of at least 32 bytes.
    #[error("HS256 needs JWT_SECRET of at least {MIN_HMAC_SECRET_LEN} bytes")]
    WeakHmacSecret,
    /// Key generation or signing failed inside the crypto library.
    #[error("cryptographic operation failed")]
    Crypto,
}

/// The private key material, parsed once.
enum KeyMaterial {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Hmac(Box<hmac::Key>),
}

/// A parsed signing key with its `kid`, precomputed JWS header and public JWK.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    material: KeyMaterial,
    /// base64url of the protected header, computed once.
    header_b64: String,
    /// Public JWK, `None` for HS256.
    public_jwk: Option<Value>,
    /// Public key bytes for verification (raw for Ed25519/EC, DER for RSA).
    public_key: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 PEM private key (`PRIVATE KEY`) for `alg`.
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pkcs8(alg, &pem_to_pkcs8(pem)?).map_err(|_| KeyError::WrongKind(alg.name()))
    }

    /// Parses a PKCS#8 PEM private key of any asymmetric algorithm, telling
    /// which one it is.
    pub fn from_pem_any(pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pkcs8_any(&pem_to_pkcs8(pem)?)
    }

    /// Parses PKCS#8 DER of any asymmetric algorithm.
    pub fn from_pkcs8_any(der: &[u8]) -> Result<Self, KeyError> {
        [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
            .into_iter()
            .find_map(|alg| Self::from_pkcs8(alg, der).ok())
            .ok_or(KeyError::UnsupportedKey)
    }

    /// Parses PKCS#8 DER for an asymmetric algorithm.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let (material, public_jwk, public_key) = match alg {
            Algorithm::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| KeyError::Crypto)?;
                let public = kp.public_key().as_ref().to_vec();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&public)});
                (KeyMaterial::Ed25519(kp), jwk, public)
            }
            Algorithm::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::Crypto)?;
                let public = kp.public_key().as_ref().to_vec();
                // Uncompressed point: 0x04 || x || y.
                let (x, y) = public
                    .get(1..)
                    .filter(|xy| xy.len() == 64)
                    .map(|xy| xy.split_at(32))
                    .ok_or(KeyError::Crypto)?;
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)});
                (KeyMaterial::Ecdsa(kp), jwk, public)
            }
            Algorithm::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::Crypto)?;
                let components =
                    signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64(strip_leading_zeros(&components.n)),
                    "e": b64(strip_leading_zeros(&components.e)),
                });
                let public = kp.public_key().as_ref().to_vec();
                (KeyMaterial::Rsa(kp), jwk, public)
            }
            Algorithm::HS256 => return Err(KeyError::Crypto),
        };
        let kid = jwk_thumbprint(&public_jwk);
        Ok(Self::assemble(
            alg,
            kid,
            material,
            Some(public_jwk),
            public_key,
        ))
    }

    /// Builds the HS256 key from the shared secret.
    pub fn from_hmac_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(KeyError::WeakHmacSecret);
        }
        // The kid must not leak the secret: a truncated, domain-separated hash.
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"auth-server hs256 kid\0");
        ctx.update(secret);
        let kid = format!("hs256-{}", &b64(ctx.finish().as_ref())[..16]);
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        Ok(Self::assemble(
            Algorithm::HS256,
            kid,
            KeyMaterial::Hmac(Box::new(key)),
            None,
            Vec::new(),
        ))
    }

    fn assemble(
        alg: Algorithm,
        kid: String,
        material: KeyMaterial,
        public_jwk: Option<Value>,
        public_key: Vec<u8>,
    ) -> Self {
        let header = json!({"alg": alg.name(), "typ": "at+jwt", "kid": kid});
        let header_b64 = b64(header.to_string().as_bytes());
        Self {
            alg,
            kid,
            material,
            header_b64,
            public_jwk,
            public_key,
            rng: SystemRandom::new(),
        }
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id put in every token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// base64url of the JWS protected header for this key.
    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// The public JWK with `kid`, `alg` and `use`, or `None` for HS256.
    pub fn public_jwk(&self) -> Option<Value> {
        let mut jwk = self.public_jwk.clone()?;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), Value::from(self.kid.as_str()));
            obj.insert("alg".into(), Value::from(self.alg.name()));
            obj.insert("use".into(), Value::from("sig"));
        }
        Some(jwk)
    }

    /// Signs the JWS signing input.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.material {
            KeyMaterial::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            KeyMaterial::Ecdsa(kp) => kp
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Crypto),
            KeyMaterial::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| KeyError::Crypto)?;
                Ok(sig)
            }
            KeyMaterial::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
        }
    }

    /// Verifies a signature made by this key over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Ed25519(_) => UnparsedPublicKey::new(&ED25519, &self.public_key)
                .verify(message, signature)
                .is_ok(),
            KeyMaterial::Ecdsa(_) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public_key)
                    .verify(message, signature)
                    .is_ok()
            }
            KeyMaterial::Rsa(_) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key)
                    .verify(message, signature)
                    .is_ok()
            }
            KeyMaterial::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

/// The keys a server signs and verifies with: the current key, which signs,
/// and the other published keys, which only verify: during a rotation the
/// next key (announced before it signs) and previous keys (until the tokens
/// they signed have expired). Replaced whole when the keys change.
#[derive(Debug)]
pub struct KeySet {
    current: Arc<SigningKey>,
    others: Vec<Arc<SigningKey>>,
    jwks: Vec<u8>,
    timeline: Option<KeyTimeline>,
}

impl KeySet {
    /// A set of one key, which signs.
    pub fn new(current: SigningKey) -> Self {
        Self::with_verifiers(current, Vec::new())
    }

    /// The `current` key plus keys that only verify, published in this order
    /// after it: every instance building a set from the same keys in the
    /// same order serves byte-identical JWKS documents.
    pub fn with_verifiers(current: SigningKey, others: Vec<SigningKey>) -> Self {
        let current = Arc::new(current);
        let others: Vec<Arc<SigningKey>> = others
            .into_iter()
            .filter(|key| key.kid != current.kid)
            .map(Arc::new)
            .collect();
        let keys: Vec<Value> = std::iter::once(&current)
            .chain(&others)
            .filter_map(|key| key.public_jwk())
            .collect();
        let jwks = json!({ "keys": keys }).to_string().into_bytes();
        Self {
            current,
            others,
            jwks,
            timeline: None,
        }
    }

    /// The same set, carrying where the keys stand in their lifecycle (for
    /// metrics).
    pub fn with_timeline(mut self, timeline: KeyTimeline) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &SigningKey {
        &self.current
    }

    /// Every key in the set, the signing one first.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .map(|key| key.as_ref())
    }

    /// Finds the key for a token header's `kid` and `alg`.
    pub fn find(&self, kid: &str, alg: &str) -> Option<&SigningKey> {
        self.keys()
            .find(|key| key.kid == kid && key.alg.name() == alg)
    }

    /// True when a key with this `kid` is in the set: a token it signed is
    /// still accepted. A retired key is not.
    pub fn accepts_kid(&self, kid: &str) -> bool {
        self.keys().any(|key| key.kid == kid)
    }

    /// The serialized JWKS (`{"keys":[...]}`).
    pub fn jwks_json(&self) -> &[u8] {
        &self.jwks
    }

    /// Where the stored keys stand, when the set came from the store.
    pub fn timeline(&self) -> Option<&KeyTimeline> {
        self.timeline.as_ref()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic
/// order (serde_json's map is sorted), base64url.
fn jwk_thumbprint(jwk: &Value) -> String {
    let required: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("OKP") => &["crv", "kty", "x"],
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["e", "kty", "n"],
    };
    let members: serde_json::Map<String, Value> = required
        .iter()
        .filter_map(|k| jwk.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    let canonical = Value::Object(members).to_string();
    b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

/// Generates a new PKCS#8 private key for an asymmetric algorithm.
pub fn generate_pkcs8(alg: Algorithm) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    match alg {
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Crypto),
        Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Crypto),
        Algorithm::RS256 => {
            let kp = rsa::KeyPair::generate(rsa::KeySize::Rsa2048).map_err(|_| KeyError::Crypto)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                kp.as_der().map_err(|_| KeyError::Crypto)?;
            Ok(der.as_ref().to_vec())
        }
        Algorithm::HS256 => Err(KeyError::Crypto),
    }
}

/// The PKCS#8 DER inside a `PRIVATE KEY` PEM.
pub fn pem_to_pkcs8(pem: &[u8]) -> Result<Vec<u8>, KeyError> {
    PrivatePkcs8KeyDer::from_pem_slice(pem)
        .map(|der| der.secret_pkcs8_der().to_vec())
        .map_err(|_| KeyError::NotPem)
}

/// PEM-encodes PKCS#8 DER (`PRIVATE KEY`).
pub fn pkcs8_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

#[cfg(test)]
mod tests;
