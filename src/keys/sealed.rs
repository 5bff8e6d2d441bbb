//! Private keys at rest: sealed with AES-256-GCM under the key-encryption
//! key (KEK), with the key's `kid` and algorithm as associated data, so a
//! sealed key copied onto another row does not open. The KEK never leaves
//! memory: not in the store, not in a log line, not in an error.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::Algorithm;

/// Length of a KEK in bytes.
pub const KEK_LEN: usize = 32;

/// First byte of every sealed key: the format (nonce, ciphertext, tag).
const FORMAT_V1: u8 = 1;

/// Why sealing or opening failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The KEK text is not base64 of 32 bytes.
    #[error("a key-encryption key must be base64 of {KEK_LEN} random bytes")]
    BadKek,
    /// The sealed key does not open with this KEK and these kid and
    /// algorithm: another KEK, or a damaged or moved row.
    #[error("the sealed key does not open with this key-encryption key")]
    DoesNotOpen,
    /// The sealed bytes are not in a format this binary knows.
    #[error("the sealed key is not in a known format")]
    UnknownFormat,
    /// Randomness or the cipher failed inside the crypto library.
    #[error("cryptographic operation failed")]
    Crypto,
}

/// The key-encryption key. Its `Debug` never prints it.
pub struct Kek {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != KEK_LEN {
            return Err(SealError::BadKek);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::Crypto)?;
        // A name for the KEK that says nothing about it: a truncated,
        // domain-separated hash, stored beside each sealed key so a wrong
        // KEK is named as such rather than as a damaged row.
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"auth-server kek id\0");
        ctx.update(bytes);
        let id = URL_SAFE_NO_PAD.encode(&ctx.finish().as_ref()[..12]);
        Ok(Self {
            key: LessSafeKey::new(unbound),
            id,
        })
    }

    /// A KEK from its base64 text (standard or URL-safe alphabet, padding
    /// optional, surrounding whitespace ignored). The error never says what
    /// was wrong with the text, so no part of it is echoed anywhere.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| SealError::BadKek)?;
        Self::from_bytes(&bytes)
    }

    /// 32 fresh random bytes, base64: a new KEK's text.
    pub fn generate_base64() -> Result<String, SealError> {
        let mut bytes = [0u8; KEK_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError::Crypto)?;
        Ok(STANDARD.encode(bytes))
    }

    /// A public name for this KEK (not derived reversibly from it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` (a PKCS#8 private key) for the key `kid` of `alg`.
    pub fn seal(&self, kid: &str, alg: Algorithm, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Crypto)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(kid, alg)),
                &mut in_out,
            )
            .map_err(|_| SealError::Crypto)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens what [`Kek::seal`] sealed for the same `kid` and `alg`.
    pub fn open(&self, kid: &str, alg: Algorithm, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some((&FORMAT_V1, rest)) = sealed.split_first() else {
            return Err(SealError::UnknownFormat);
        };
        let (nonce, ciphertext) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(SealError::DoesNotOpen)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::DoesNotOpen)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(associated_data(kid, alg)), &mut in_out)
            .map_err(|_| SealError::DoesNotOpen)?;
        Ok(plaintext.to_vec())
    }
}

/// What binds a sealed key to its row.
fn associated_data(kid: &str, alg: Algorithm) -> Vec<u8> {
    format!("auth-server signing key v1\0{}\0{kid}", alg.name()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::from_base64(&Kek::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn seals_and_opens_for_the_same_kid_and_algorithm_only() {
        let kek = kek();
        let sealed = kek.seal("kid-1", Algorithm::EdDSA, b"private").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        assert_eq!(
            kek.open("kid-1", Algorithm::EdDSA, &sealed).unwrap(),
            b"private"
        );
        for (kid, alg) in [("kid-2", Algorithm::EdDSA), ("kid-1", Algorithm::ES256)] {
            assert_eq!(kek.open(kid, alg, &sealed), Err(SealError::DoesNotOpen));
        }
        let other = self::kek();
        assert_ne!(other.id(), kek.id());
        assert_eq!(
            other.open("kid-1", Algorithm::EdDSA, &sealed),
            Err(SealError::DoesNotOpen)
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            kek.open("kid-1", Algorithm::EdDSA, &flipped),
            Err(SealError::DoesNotOpen)
        );
        assert_eq!(
            kek.open("kid-1", Algorithm::EdDSA, &sealed[1..]),
            Err(SealError::UnknownFormat)
        );
        assert_eq!(
            kek.open("kid-1", Algorithm::EdDSA, &[FORMAT_V1, 1, 2]),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn the_same_plaintext_seals_differently_each_time() {
        let kek = kek();
        let a = kek.seal("k", Algorithm::EdDSA, b"same").unwrap();
        let b = kek.seal("k", Algorithm::EdDSA, b"same").unwrap();
        assert_ne!(a, b, "a fresh nonce per seal");
    }

    #[test]
    fn kek_text_must_be_32_bytes_and_errors_never_echo_it() {
        let text = Kek::generate_base64().unwrap();
        let kek = Kek::from_base64(&format!("  {text}\n")).unwrap();
        let url_safe = text.replace('+', "-").replace('/', "_");
        assert_eq!(Kek::from_base64(&url_safe).unwrap().id(), kek.id());
        for bad in ["", "c2hvcnQ=", "not base64 at all!", &format!("{text}AAAA")] {
            let err = Kek::from_base64(bad).unwrap_err();
            assert_eq!(err, SealError::BadKek);
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad));
            }
        }
        assert!(!format!("{kek:?}").contains(&text));
        assert!(!kek.id().contains(&text[..8]));
    }
}
