//! Other parties' public keys: a JWK Set (RFC 7517) parsed once into keys
//! that verify JWS signatures with aws-lc-rs, for the algorithms we accept
//! from others (EdDSA, ES256, RS256, PS256). No HMAC and no `none`: a shared
//! secret proves nothing about who signed. Pure: no I/O.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Most keys a set may hold: a client rotates through two or three.
pub const MAX_KEYS: usize = 20;

/// Longest JWK Set document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The JWS algorithms accepted from others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyAlgorithm {
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192 bits.
    RS256,
    /// RSASSA-PSS with SHA-256, 2048 to 8192 bits.
    PS256,
}

impl VerifyAlgorithm {
    /// Every accepted algorithm, in the order metadata lists them.
    pub const ALL: [Self; 4] = [Self::EdDSA, Self::ES256, Self::RS256, Self::PS256];

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
        }
    }

    /// The algorithm with this exact JOSE name; `none`, HMAC and anything
    /// else is `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

/// Why a JWK Set was refused. Says which key and why, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    #[error("not a JWK Set (a JSON object with a \"keys\" array)")]
    NotAJwkSet,
    /// The document is larger than [`MAX_JWKS_BYTES`].
    #[error("the JWK Set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// More than [`MAX_KEYS`] keys.
    #[error("more than {MAX_KEYS} keys")]
    TooManyKeys,
    /// A key carries private material (`d`, `p`, `q`, ... or `k`).
    #[error("key {0} holds private key material; register public keys only")]
    PrivateMaterial(usize),
    /// A key is malformed or of a type or curve we cannot verify with.
    #[error("key {0}: {1}")]
    BadKey(usize, &'static str),
}

/// The key material, decoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// Raw 32-byte Ed25519 public key.
    Ed25519(Vec<u8>),
    /// Uncompressed P-256 point (0x04 || x || y).
    P256(Vec<u8>),
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// One public key of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    kid: Option<String>,
    /// The `alg` the key is restricted to, if the JWK names one.
    alg: Option<String>,
    material: Material,
}

impl PublicKey {
    /// A raw 32-byte Ed25519 public key, without `kid` or `alg`.
    pub fn ed25519(x: Vec<u8>) -> Self {
        Self::bare(Material::Ed25519(x))
    }

    /// An uncompressed P-256 point (0x04 || x || y), without `kid` or `alg`.
    pub fn p256(point: Vec<u8>) -> Self {
        Self::bare(Material::P256(point))
    }

    /// An RSA modulus and exponent, big-endian, without `kid` or `alg`.
    pub fn rsa(n: Vec<u8>, e: Vec<u8>) -> Self {
        Self::bare(Material::Rsa { n, e })
    }

    fn bare(material: Material) -> Self {
        Self {
            kid: None,
            alg: None,
            material,
        }
    }

    /// The key id, if the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Can this key verify `alg`? The key type must fit, and a JWK that
    /// names an `alg` is used for that one only.
    pub fn fits(&self, alg: VerifyAlgorithm) -> bool {
        let kind_fits = matches!(
            (&self.material, alg),
            (Material::Ed25519(_), VerifyAlgorithm::EdDSA)
                | (Material::P256(_), VerifyAlgorithm::ES256)
                | (
                    Material::Rsa { .. },
                    VerifyAlgorithm::RS256 | VerifyAlgorithm::PS256
                )
        );
        kind_fits && self.alg.as_deref().is_none_or(|named| named == alg.name())
    }

    /// Verifies `signature` over `message` with `alg`; false when the key
    /// does not fit the algorithm.
    pub fn verify(&self, alg: VerifyAlgorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match (&self.material, alg) {
            (Material::Ed25519(raw), _) => UnparsedPublicKey::new(&ED25519, raw)
                .verify(message, signature)
                .is_ok(),
            (Material::P256(point), _) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            (Material::Rsa { n, e }, VerifyAlgorithm::PS256) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PSS_2048_8192_SHA256, message, signature)
                .is_ok(),
            (Material::Rsa { n, e }, _) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }
}

/// A parsed JWK Set: the signature keys in it that we can use. Keys of
/// other types, or marked `"use": "enc"`, are skipped as RFC 7517 5 asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicKeySet {
    keys: Vec<PublicKey>,
}

/// Members that only a private (or symmetric) JWK has. A key carrying any
/// of them is refused: whoever sent it has leaked it.
pub const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl PublicKeySet {
    /// Parses a JWK Set document. A key with private material refuses the
    /// whole set: whoever registered it has leaked it.
    pub fn parse(json: &[u8]) -> Result<Self, JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let doc: Value = serde_json::from_slice(json).map_err(|_| JwksError::NotAJwkSet)?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAJwkSet)?;
        if keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut parsed = Vec::with_capacity(keys.len());
        for (i, jwk) in keys.iter().enumerate() {
            let jwk = jwk
                .as_object()
                .ok_or(JwksError::BadKey(i, "not a JSON object"))?;
            if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
                return Err(JwksError::PrivateMaterial(i));
            }
            if jwk.get("use").and_then(Value::as_str) == Some("enc") {
                continue;
            }
            let text = |name: &str| jwk.get(name).and_then(Value::as_str);
            let bytes = |name: &'static str| -> Result<Vec<u8>, JwksError> {
                let value = text(name).ok_or(JwksError::BadKey(i, "a member is missing"))?;
                URL_SAFE_NO_PAD
                    .decode(value)
                    .map_err(|_| JwksError::BadKey(i, "a member is not base64url"))
            };
            let material = match (text("kty"), text("crv")) {
                (Some("OKP"), Some("Ed25519")) => {
                    let x = bytes("x")?;
                    if x.len() != 32 {
                        return Err(JwksError::BadKey(i, "an Ed25519 x must be 32 bytes"));
                    }
                    Material::Ed25519(x)
                }
                (Some("EC"), Some("P-256")) => {
                    let (x, y) = (bytes("x")?, bytes("y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return Err(JwksError::BadKey(i, "P-256 x and y must be 32 bytes"));
                    }
                    let mut point = Vec::with_capacity(65);
                    point.push(0x04);
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    Material::P256(point)
                }
                (Some("RSA"), _) => {
                    let (n, e) = (bytes("n")?, bytes("e")?);
                    if n.len() < 256 {
                        return Err(JwksError::BadKey(i, "RSA keys must be at least 2048 bits"));
                    }
                    Material::Rsa { n, e }
                }
                // Other curves and key types: not ours to use, skip.
                (Some(_), _) => continue,
                (None, _) => return Err(JwksError::BadKey(i, "kty is missing")),
            };
            let alg = text("alg").map(str::to_owned);
            if alg
                .as_deref()
                .is_some_and(|a| VerifyAlgorithm::from_name(a).is_none())
            {
                continue;
            }
            parsed.push(PublicKey {
                kid: text("kid").map(str::to_owned),
                alg,
                material,
            });
        }
        Ok(Self { keys: parsed })
    }

    /// The keys that may have made a signature with `alg` and header `kid`:
    /// with a `kid`, only keys of that id; without one, every key that fits.
    pub fn candidates<'a>(
        &'a self,
        alg: VerifyAlgorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a PublicKey> + 'a {
        self.keys
            .iter()
            .filter(move |key| key.fits(alg) && kid.is_none_or(|kid| key.kid() == Some(kid)))
    }

    /// True when a key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid() == Some(kid))
    }

    /// The key ids of the set, in order (keys without one are left out).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(PublicKey::kid)
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests;
