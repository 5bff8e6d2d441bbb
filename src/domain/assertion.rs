//! JWT client assertions (`private_key_jwt`, RFC 7523 2.2 and 3, RFC 7521
//! 4.2): parsing a compact JWS, checking its claims against the rules of
//! this server, and verifying its signature with the client's public keys.
//! Pure: the keys and `now` come in as arguments; fetching keys and
//! remembering `jti`s is the caller's business.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::client::is_valid_client_id;
use super::token::compact_parts;
use crate::keys::public::{PublicKeySet, VerifyAlgorithm};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest assertion even looked at, in bytes. A JWS signed with a 4096-bit
/// RSA key and generous claims fits in 2 KiB.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// Longest accepted lifetime by default: `exp` at most this long after
/// `iat`.
pub const DEFAULT_MAX_LIFETIME_SECS: i64 = 300;

/// Longest `jti` accepted, in bytes (it is kept for replay checks).
pub const MAX_JTI_LEN: usize = 256;

/// Why an assertion was refused. Every one means `invalid_client` to the
/// caller; the variant goes to the log (it names no key or claim value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Longer than [`MAX_ASSERTION_LEN`].
    #[error("the assertion is too large")]
    TooLarge,
    /// Not a compact JWS with a JSON header and claims.
    #[error("the assertion is not a compact JWS")]
    Malformed,
    /// `alg` is not one of EdDSA, ES256, RS256, PS256 (so never `none` or
    /// HMAC).
    #[error("the assertion's algorithm is not accepted")]
    Algorithm,
    /// `iss` or `sub` is missing, not a client id, or they differ.
    #[error("iss and sub must both be the client id")]
    Subject,
    /// `client_id` in the request names another client.
    #[error("client_id differs from the assertion's subject")]
    ClientIdMismatch,
    /// `aud` does not name this server.
    #[error("aud does not name this server")]
    Audience,
    /// `exp` is missing or not a number.
    #[error("exp is required")]
    MissingExp,
    /// `exp` has passed.
    #[error("the assertion has expired")]
    Expired,
    /// `iat` or `nbf` lies in the future.
    #[error("the assertion is not valid yet")]
    NotYetValid,
    /// `exp` is further after `iat` (or now) than the rules allow.
    #[error("the assertion lives too long")]
    TooLong,
    /// `jti` is missing, empty or too long.
    #[error("jti is required")]
    MissingJti,
    /// No registered key of the client has the header's `kid` and fits the
    /// algorithm.
    #[error("no key of the client fits the assertion")]
    UnknownKey,
    /// No fitting key verifies the signature.
    #[error("the signature does not verify")]
    Signature,
}

/// The rules an assertion is held to.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRules<'a> {
    /// Accepted `aud` values: the issuer and endpoint URLs.
    pub audiences: &'a [&'a str],
    /// Seconds of clock skew allowed on `exp`, `iat` and `nbf`.
    pub leeway_secs: i64,
    /// Longest lifetime: `exp` at most this long after `iat`.
    pub max_lifetime_secs: i64,
}

/// An assertion whose form and claims are checked, but not yet its
/// signature.
#[derive(Debug, Clone)]
pub struct UnverifiedAssertion {
    alg: VerifyAlgorithm,
    kid: Option<String>,
    client_id: String,
    jti: String,
    exp: i64,
    signing_input_len: usize,
    signature: Vec<u8>,
}

/// Parses `assertion` and checks everything but the signature: header,
/// `iss` = `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`.
pub fn check_assertion(
    assertion: &str,
    rules: &AssertionRules<'_>,
    now: i64,
) -> Result<UnverifiedAssertion, AssertionError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(AssertionError::TooLarge);
    }
    let Some((header, payload, signature)) = compact_parts(assertion) else {
        return Err(AssertionError::Malformed);
    };
    let header = json_object(header)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(VerifyAlgorithm::from_name)
        .ok_or(AssertionError::Algorithm)?;
    // Headers we do not understand and must (RFC 7515 4.1.11), or that
    // would pull keys from elsewhere, are refused: only registered keys sign.
    if ["crit", "jku", "jwk", "x5u"]
        .iter()
        .any(|h| header.contains_key(*h))
    {
        return Err(AssertionError::Malformed);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AssertionError::Malformed),
    };
    let claims = json_object(payload)?;
    let client_id = subject(&claims)?;
    check_audience(claims.get("aud"), rules.audiences)?;
    let exp = check_times(&claims, rules, now)?;
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => jti.clone(),
        _ => return Err(AssertionError::MissingJti),
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| AssertionError::Malformed)?;
    Ok(UnverifiedAssertion {
        alg,
        kid,
        client_id,
        jti,
        exp,
        signing_input_len: assertion.len() - signature_b64_len(assertion),
        signature,
    })
}

fn signature_b64_len(assertion: &str) -> usize {
    assertion.rsplit('.').next().map_or(0, |s| s.len() + 1)
}

fn json_object(part: &str) -> Result<Map<String, Value>, AssertionError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AssertionError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AssertionError::Malformed),
    }
}

fn subject(claims: &Map<String, Value>) -> Result<String, AssertionError> {
    let iss = claims.get("iss").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    match (iss, sub) {
        (Some(iss), Some(sub)) if iss == sub && is_valid_client_id(iss) => Ok(iss.to_owned()),
        _ => Err(AssertionError::Subject),
    }
}

/// `aud` is one string or an array of them (RFC 7519 4.1.3); one must be
/// ours, compared exactly.
fn check_audience(aud: Option<&Value>, accepted: &[&str]) -> Result<(), AssertionError> {
    let ours = |v: &Value| v.as_str().is_some_and(|a| accepted.contains(&a));
    match aud {
        Some(Value::Array(values)) if values.iter().any(ours) => Ok(()),
        Some(value @ Value::String(_)) if ours(value) => Ok(()),
        _ => Err(AssertionError::Audience),
    }
}

/// A NumericDate (RFC 7519 2): seconds, possibly with a fraction (dropped).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AssertionError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(AssertionError::Malformed),
    }
}

/// Checks `exp`, `iat` and `nbf` against `now`; returns `exp`.
fn check_times(
    claims: &Map<String, Value>,
    rules: &AssertionRules<'_>,
    now: i64,
) -> Result<i64, AssertionError> {
    let leeway = rules.leeway_secs;
    let exp = numeric_date(claims, "exp")
        .ok()
        .flatten()
        .ok_or(AssertionError::MissingExp)?;
    let iat = numeric_date(claims, "iat")?;
    let nbf = numeric_date(claims, "nbf")?;
    if exp.saturating_add(leeway) <= now {
        return Err(AssertionError::Expired);
    }
    if [iat, nbf]
        .into_iter()
        .flatten()
        .any(|t| t > now.saturating_add(leeway))
    {
        return Err(AssertionError::NotYetValid);
    }
    // Without `iat`, the lifetime counts from now: no assertion is good for
    // longer than the limit either way.
    let issued = iat.unwrap_or(now);
    if exp.saturating_sub(issued) > rules.max_lifetime_secs {
        return Err(AssertionError::TooLong);
    }
    Ok(exp)
}

impl UnverifiedAssertion {
    /// The client it claims to come from (`iss` = `sub`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The header's `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The signing algorithm.
    pub fn alg(&self) -> VerifyAlgorithm {
        self.alg
    }

    /// True when a key in `keys` could have signed it: one that fits the
    /// algorithm and, if the header names a `kid`, has it.
    pub fn has_candidate(&self, keys: &PublicKeySet) -> bool {
        keys.candidates(self.alg, self.kid()).next().is_some()
    }

    /// True when a key of `keys` that fits the algorithm, whatever its
    /// `kid`, verifies the signature: the work of a real check, spent on
    /// assertions of clients that do not exist.
    pub fn verifies_with_any(&self, assertion: &str, keys: &PublicKeySet) -> bool {
        let input = assertion.as_bytes().get(..self.signing_input_len);
        input.is_some_and(|input| {
            keys.candidates(self.alg, None)
                .any(|key| key.verify(self.alg, input, &self.signature))
        })
    }

    /// Verifies the signature of `assertion` (the same text this was
    /// checked from) with one of the client's `keys`.
    pub fn verify(
        self,
        assertion: &str,
        keys: &PublicKeySet,
    ) -> Result<VerifiedAssertion, AssertionError> {
        let input = assertion
            .as_bytes()
            .get(..self.signing_input_len)
            .ok_or(AssertionError::Malformed)?;
        let mut candidates = keys.candidates(self.alg, self.kid.as_deref()).peekable();
        if candidates.peek().is_none() {
            return Err(AssertionError::UnknownKey);
        }
        if !candidates.any(|key| key.verify(self.alg, input, &self.signature)) {
            return Err(AssertionError::Signature);
        }
        Ok(VerifiedAssertion {
            client_id: self.client_id,
            jti: self.jti,
            exp: self.exp,
        })
    }
}

/// An assertion whose signature and claims verified: what replay checks
/// need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The authenticated client.
    pub client_id: String,
    /// The assertion's `jti`.
    pub jti: String,
    /// The assertion's `exp`: its `jti` must be remembered until then.
    pub exp: i64,
}

#[cfg(test)]
mod tests;
