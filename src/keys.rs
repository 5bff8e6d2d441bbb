//! Signing keys: loaded or generated once at start, parsed once, kept in
//! memory. Signs and verifies JWS with aws-lc-rs directly so no key is ever
//! re-parsed per request, and publishes the public half as a JWKS (RFC 7517).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
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

    /// File name of the generated private key in the key directory.
    fn key_file_name(self) -> &'static str {
        match self {
            Self::EdDSA => "signing-eddsa.pem",
            Self::ES256 => "signing-es256.pem",
            Self::RS256 => "signing-rs256.pem",
            Self::HS256 => "",
        }
    }
}

/// Why a key could not be loaded, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a PKCS#8 PEM private key.
    #[error("key file {0} is not a PKCS#8 PEM private key")]
    NotPem(PathBuf),
    /// The key does not fit the configured algorithm.
    #[error("key file {path} is not a valid {alg} key")]
    WrongKind {
        /// The file involved.
        path: PathBuf,
        /// The configured algorithm.
        alg: &'static str,
    },
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
    /// Loads the key for `alg` from `dir`, generating it first if absent.
    /// HS256 takes its key from `hmac_secret` instead. Returns the key and
    /// whether it was generated now.
    pub fn load_or_generate(
        alg: Algorithm,
        dir: &Path,
        hmac_secret: Option<&[u8]>,
    ) -> Result<(Self, bool), KeyError> {
        if alg == Algorithm::HS256 {
            return Ok((
                Self::from_hmac_secret(hmac_secret.unwrap_or_default())?,
                false,
            ));
        }
        let path = dir.join(alg.key_file_name());
        let generated = if path.exists() {
            false
        } else {
            write_private_key(&path, &generate_pkcs8(alg)?)?;
            true
        };
        Ok((Self::load(alg, dir, hmac_secret)?, generated))
    }

    /// Loads the key for `alg` from `dir` (or `hmac_secret` for HS256),
    /// never generating one: a reload must not silently rotate the key.
    pub fn load(alg: Algorithm, dir: &Path, hmac_secret: Option<&[u8]>) -> Result<Self, KeyError> {
        if alg == Algorithm::HS256 {
            return Self::from_hmac_secret(hmac_secret.unwrap_or_default());
        }
        Self::from_pem_file(alg, &dir.join(alg.key_file_name()))
    }

    /// Parses a PKCS#8 PEM private key for `alg`.
    pub fn from_pem_file(alg: Algorithm, path: &Path) -> Result<Self, KeyError> {
        let pem = fs::read(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|_| KeyError::NotPem(path.to_owned()))?;
        Self::from_pkcs8(alg, der.secret_pkcs8_der()).map_err(|_| KeyError::WrongKind {
            path: path.to_owned(),
            alg: alg.name(),
        })
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

/// The keys a server signs and verifies with: the active key, plus any
/// verification-only keys kept published during a rotation.
#[derive(Debug)]
pub struct KeySet {
    active: Arc<SigningKey>,
    /// The key in use before the last change of key: it signs nothing new,
    /// but tokens it signed still verify, here and (through the JWKS) at
    /// resource servers, until they expire.
    previous: Option<Arc<SigningKey>>,
    jwks: Vec<u8>,
}

impl KeySet {
    /// Wraps the active key and precomputes the JWKS document.
    pub fn new(active: SigningKey) -> Self {
        Self::build(Arc::new(active), None)
    }

    /// The set after `next` replaces the active key (a reload). The key it
    /// replaces stays published and accepted for verification, so tokens
    /// already issued keep working; reloading the same key changes nothing.
    pub fn succeeded_by(&self, next: SigningKey) -> Self {
        let previous = if next.kid == self.active.kid {
            self.previous.clone()
        } else {
            Some(Arc::clone(&self.active))
        };
        Self::build(Arc::new(next), previous)
    }

    fn build(active: Arc<SigningKey>, previous: Option<Arc<SigningKey>>) -> Self {
        let keys: Vec<Value> = std::iter::once(&active)
            .chain(&previous)
            .filter_map(|key| key.public_jwk())
            .collect();
        let jwks = json!({ "keys": keys }).to_string().into_bytes();
        Self {
            active,
            previous,
            jwks,
        }
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Finds the key for a token header's `kid` and `alg`.
    pub fn find(&self, kid: &str, alg: &str) -> Option<&SigningKey> {
        std::iter::once(&self.active)
            .chain(&self.previous)
            .map(|key| key.as_ref())
            .find(|key| key.kid == kid && key.alg.name() == alg)
    }

    /// The serialized JWKS (`{"keys":[...]}`).
    pub fn jwks_json(&self) -> &[u8] {
        &self.jwks
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

/// Writes a private key readable by the owner only, refusing to overwrite.
fn write_private_key(path: &Path, der: &[u8]) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    file.write_all(pkcs8_pem(der).as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests;
