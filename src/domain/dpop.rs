//! DPoP proofs (RFC 9449): the checks of one proof JWT against the request
//! it came with, and the JWK thumbprint (RFC 7638) a token is bound to.
//! Pure: time comes in as `now`; whether a `jti` was seen before is the
//! caller's business (see `crate::dpop`).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::endpoint::{NormalizedUrl, normalize_url};
use super::token::compact_parts;
use crate::keys::public::{PRIVATE_MEMBERS, PublicKey, VerifyAlgorithm};

/// Longest proof we even try to parse. An RSA-4096 key in the header makes
/// a proof of about 1.5 KiB.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// The proof signature algorithms accepted (asymmetric only).
pub const PROOF_ALGORITHMS: [&str; 4] = ["EdDSA", "ES256", "RS256", "PS256"];

/// Why a proof was refused. Each maps to `invalid_dpop_proof` at the token
/// endpoint and to `invalid_token` at validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not a compact JWS, too long, or not JSON where JSON belongs.
    #[error("malformed DPoP proof")]
    Malformed,
    /// `typ` is not `dpop+jwt`, or the header has `crit`.
    #[error("the DPoP proof header is not a dpop+jwt header")]
    WrongType,
    /// `alg` is `none`, an HMAC or anything else not asymmetric and supported.
    #[error("unsupported DPoP proof algorithm")]
    UnsupportedAlgorithm,
    /// The `jwk` is missing, malformed, or not a key for `alg`.
    #[error("the DPoP proof key is missing or unusable")]
    BadKey,
    /// The `jwk` carries private key material.
    #[error("the DPoP proof key contains private key material")]
    PrivateKey,
    /// The signature does not verify with the header's key.
    #[error("the DPoP proof signature does not verify")]
    BadSignature,
    /// A required claim is missing or of the wrong type.
    #[error("the DPoP proof lacks a required claim")]
    MissingClaim,
    /// `htm` is not the request's method.
    #[error("the DPoP proof is for another HTTP method")]
    WrongMethod,
    /// `htu` is not the request's URL.
    #[error("the DPoP proof is for another URL")]
    WrongUrl,
    /// `iat` is older than the accepted window.
    #[error("the DPoP proof is too old")]
    Expired,
    /// `iat` is further in the future than clock skew explains.
    #[error("the DPoP proof is issued in the future")]
    Future,
    /// `ath` is missing or not the hash of the presented access token.
    #[error("the DPoP proof is for another access token")]
    WrongAccessToken,
    /// The proof's key is not the one the access token is bound to.
    #[error("the DPoP proof key is not the key the token is bound to")]
    WrongKey,
    /// Its `jti` was seen before within the window.
    #[error("the DPoP proof was used before")]
    Replayed,
}

impl ProofError {
    /// A label for logs and metrics (bounded: one per kind).
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "dpop_malformed",
            Self::WrongType => "dpop_wrong_type",
            Self::UnsupportedAlgorithm => "dpop_unsupported_alg",
            Self::BadKey => "dpop_bad_key",
            Self::PrivateKey => "dpop_private_key",
            Self::BadSignature => "dpop_bad_signature",
            Self::MissingClaim => "dpop_missing_claim",
            Self::WrongMethod => "dpop_wrong_method",
            Self::WrongUrl => "dpop_wrong_url",
            Self::Expired => "dpop_expired",
            Self::Future => "dpop_future",
            Self::WrongAccessToken => "dpop_wrong_ath",
            Self::WrongKey => "dpop_wrong_key",
            Self::Replayed => "dpop_replayed",
        }
    }
}

/// How far a proof's `iat` may lie from `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofWindow {
    /// Seconds a proof stays acceptable after its `iat`.
    pub max_age_secs: i64,
    /// Seconds a proof's `iat` may be ahead of `now` (clock skew).
    pub future_skew_secs: i64,
}

impl ProofWindow {
    /// Seconds a `jti` must be remembered from `now` on: any proof accepted
    /// now is refused by the age check once this has passed.
    pub fn replay_retention_secs(&self) -> i64 {
        self.max_age_secs.saturating_add(self.future_skew_secs)
    }
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofTarget<'a> {
    /// The HTTP method (`htm`), compared exactly.
    pub method: &'a str,
    /// The request URL (`htu`), compared after normalisation.
    pub url: &'a NormalizedUrl,
    /// The access token presented with the proof: `ath` must be its hash.
    /// `None` at the token endpoint, where no token is presented yet.
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check but the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// RFC 7638 thumbprint of the proof key: the token's `cnf.jkt`.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
}

#[derive(Deserialize)]
struct ProofHeader<'a> {
    #[serde(default)]
    typ: Option<&'a str>,
    alg: &'a str,
    #[serde(default)]
    jwk: Option<Map<String, Value>>,
    #[serde(default)]
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct ProofClaims {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    htm: Option<String>,
    #[serde(default)]
    htu: Option<String>,
    #[serde(default)]
    iat: Option<Value>,
    #[serde(default)]
    ath: Option<String>,
}

/// Checks `proof` against `target` at `now`: header, key, signature,
/// `htm`, `htu`, `iat` and `ath`. The caller then checks the `jti` for
/// replay and, when the token is already bound, the returned `jkt`.
pub fn check_proof(
    proof: &str,
    target: &ProofTarget<'_>,
    window: &ProofWindow,
    now: i64,
) -> Result<CheckedProof, ProofError> {
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed);
    }
    let Some((header_b64, claims_b64, signature_b64)) = compact_parts(proof) else {
        return Err(ProofError::Malformed);
    };
    let header_bytes = decode(header_b64)?;
    let header: ProofHeader<'_> =
        serde_json::from_slice(&header_bytes).map_err(|_| ProofError::Malformed)?;
    if !header
        .typ
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
        || header.crit.is_some()
    {
        return Err(ProofError::WrongType);
    }
    let alg = VerifyAlgorithm::from_name(header.alg).ok_or(ProofError::UnsupportedAlgorithm)?;
    let jwk = header.jwk.as_ref().ok_or(ProofError::BadKey)?;
    let (key, jkt) = read_public_jwk(jwk, alg)?;
    let signature = decode(signature_b64)?;
    let signing_input = &proof.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    if !key.verify(alg, signing_input, &signature) {
        return Err(ProofError::BadSignature);
    }
    let claims: ProofClaims =
        serde_json::from_slice(&decode(claims_b64)?).map_err(|_| ProofError::Malformed)?;
    let (Some(jti), Some(htm), Some(htu), Some(iat)) = (
        claims.jti,
        claims.htm,
        claims.htu,
        claims.iat.and_then(|v| v.as_i64()),
    ) else {
        return Err(ProofError::MissingClaim);
    };
    if jti.is_empty() || jti.len() > 256 {
        return Err(ProofError::MissingClaim);
    }
    if htm != target.method {
        return Err(ProofError::WrongMethod);
    }
    if normalize_url(&htu).ok().as_ref() != Some(target.url) {
        return Err(ProofError::WrongUrl);
    }
    if iat > now.saturating_add(window.future_skew_secs) {
        return Err(ProofError::Future);
    }
    if iat < now.saturating_sub(window.max_age_secs) {
        return Err(ProofError::Expired);
    }
    if let Some(token) = target.access_token {
        let expected = access_token_hash(token);
        if claims.ath.as_deref() != Some(expected.as_str()) {
            return Err(ProofError::WrongAccessToken);
        }
    }
    Ok(CheckedProof { jkt, jti })
}

/// `ath`: base64url of the SHA-256 of the access token (RFC 9449 4.2).
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// Reads a public JWK fit for `alg` and computes its RFC 7638 thumbprint.
fn read_public_jwk(
    jwk: &Map<String, Value>,
    alg: VerifyAlgorithm,
) -> Result<(PublicKey, String), ProofError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::PrivateKey);
    }
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .ok_or(ProofError::BadKey)
    };
    let bytes = |name: &str| -> Result<Vec<u8>, ProofError> {
        URL_SAFE_NO_PAD
            .decode(member(name)?)
            .map_err(|_| ProofError::BadKey)
    };
    // RFC 7638 3.2: the required members only, in lexicographic order, no
    // whitespace. The values are base64url or fixed names, so no escaping.
    match (member("kty")?, alg) {
        ("OKP", VerifyAlgorithm::EdDSA) => {
            let x = bytes("x")?;
            if member("crv")? != "Ed25519" || x.len() != 32 {
                return Err(ProofError::BadKey);
            }
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, member("x")?);
            Ok((PublicKey::ed25519(x), thumbprint(&canonical)))
        }
        ("EC", VerifyAlgorithm::ES256) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if member("crv")? != "P-256" || x.len() != 32 || y.len() != 32 {
                return Err(ProofError::BadKey);
            }
            let canonical = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                member("x")?,
                member("y")?
            );
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Ok((PublicKey::p256(point), thumbprint(&canonical)))
        }
        ("RSA", VerifyAlgorithm::RS256 | VerifyAlgorithm::PS256) => {
            let (n, e) = (bytes("n")?, bytes("e")?);
            if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                return Err(ProofError::BadKey);
            }
            let canonical = format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                member("e")?,
                member("n")?
            );
            Ok((PublicKey::rsa(n, e), thumbprint(&canonical)))
        }
        _ => Err(ProofError::BadKey),
    }
}

fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical_jwk.as_bytes()))
}

fn decode(part: &str) -> Result<Vec<u8>, ProofError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofError::Malformed)
}

#[cfg(test)]
mod tests;
