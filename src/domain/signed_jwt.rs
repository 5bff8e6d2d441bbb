//! JWTs signed by other parties (RFC 7519, compact JWS): parsing the
//! header and claims, the shared claim checks (`aud`, `exp`, `iat`, `nbf`)
//! and verifying the signature with their public keys. Client assertions
//! (`assertion`) and external workload tokens (`federation`) are both
//! checked with these. Pure: keys and `now` come in as arguments.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::token::compact_parts;
use crate::keys::public::{PublicKeySet, VerifyAlgorithm};

/// Why a client assertion or an external JWT was refused. For a client
/// assertion every one means `invalid_client` to the caller, for an
/// external token `invalid_grant` (jwt-bearer) or `invalid_request` (token
/// exchange); the variant goes to the log (it names no key or claim value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Longer than the caller's limit (for client assertions
    /// `assertion::MAX_ASSERTION_LEN`).
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
    /// `iat` is further in the past than the rules allow.
    #[error("the token is older than the maximum age")]
    TooOld,
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

/// A compact JWS whose header is acceptable and whose claims are a JSON
/// object; its signature is not verified yet.
#[derive(Debug, Clone)]
pub struct SignedJwt {
    alg: VerifyAlgorithm,
    kid: Option<String>,
    claims: Map<String, Value>,
    signing_input_len: usize,
    signature: Vec<u8>,
}

/// The time rules a JWT is held to.
#[derive(Debug, Clone, Copy)]
pub struct TimeRules {
    /// Seconds of clock skew allowed on `exp`, `iat` and `nbf`.
    pub leeway_secs: i64,
    /// Longest lifetime: `exp` at most this long after `iat` (or now).
    pub max_lifetime_secs: Option<i64>,
    /// Oldest accepted: `iat` at most this long before now; without `iat`,
    /// `exp` at most this long after now.
    pub max_age_secs: Option<i64>,
}

impl SignedJwt {
    /// Parses `text` (at most `max_len` bytes): `alg` must be one we verify
    /// (so never `none` or HMAC), and headers that would pull keys from
    /// elsewhere or that we must understand (`crit`) are refused.
    pub fn parse(text: &str, max_len: usize) -> Result<Self, AssertionError> {
        if text.len() > max_len {
            return Err(AssertionError::TooLarge);
        }
        let Some((header, payload, signature)) = compact_parts(text) else {
            return Err(AssertionError::Malformed);
        };
        let header = json_object(header)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(VerifyAlgorithm::from_name)
            .ok_or(AssertionError::Algorithm)?;
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
        let signature_b64_len = signature.len();
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AssertionError::Malformed)?;
        Ok(Self {
            alg,
            kid,
            claims,
            signing_input_len: text.len() - signature_b64_len - 1,
            signature,
        })
    }

    /// The signing algorithm.
    pub fn alg(&self) -> VerifyAlgorithm {
        self.alg
    }

    /// The header's `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// A string claim.
    pub fn text_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// True when a key in `keys` could have signed it: one that fits the
    /// algorithm and, if the header names a `kid`, has it.
    pub fn has_candidate(&self, keys: &PublicKeySet) -> bool {
        keys.candidates(self.alg, self.kid()).next().is_some()
    }

    /// True when a key of `keys` that fits the algorithm, whatever its
    /// `kid`, verifies the signature of `text` (the text this was parsed
    /// from).
    pub fn verifies_with_any(&self, text: &str, keys: &PublicKeySet) -> bool {
        let input = text.as_bytes().get(..self.signing_input_len);
        input.is_some_and(|input| {
            keys.candidates(self.alg, None)
                .any(|key| key.verify(self.alg, input, &self.signature))
        })
    }

    /// Verifies the signature of `text` (the text this was parsed from)
    /// with a key of `keys` that has the header's `kid`, if it names one.
    pub fn verify(&self, text: &str, keys: &PublicKeySet) -> Result<(), AssertionError> {
        let input = text
            .as_bytes()
            .get(..self.signing_input_len)
            .ok_or(AssertionError::Malformed)?;
        let mut candidates = keys.candidates(self.alg, self.kid()).peekable();
        if candidates.peek().is_none() {
            return Err(AssertionError::UnknownKey);
        }
        if candidates.any(|key| key.verify(self.alg, input, &self.signature)) {
            Ok(())
        } else {
            Err(AssertionError::Signature)
        }
    }
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

/// `aud` is one string or an array of them (RFC 7519 4.1.3); one must be
/// accepted, compared exactly.
pub fn check_audience(aud: Option<&Value>, accepted: &[&str]) -> Result<(), AssertionError> {
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

/// The time claims of a JWT that passed [`check_times`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTimes {
    /// `exp`.
    pub exp: i64,
    /// `iat`, if present.
    pub iat: Option<i64>,
}

/// Checks `exp` (required), `iat` and `nbf` against `now` and `rules`.
pub fn check_times(
    claims: &Map<String, Value>,
    rules: &TimeRules,
    now: i64,
) -> Result<ClaimTimes, AssertionError> {
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
    // Without `iat`, the lifetime counts from now: no token is good for
    // longer than the limit either way.
    let issued = iat.unwrap_or(now);
    if rules
        .max_lifetime_secs
        .is_some_and(|max| exp.saturating_sub(issued) > max)
    {
        return Err(AssertionError::TooLong);
    }
    let too_old = |max: i64| match iat {
        Some(iat) => now.saturating_sub(iat) > max.saturating_add(leeway),
        None => exp.saturating_sub(now) > max,
    };
    if rules.max_age_secs.is_some_and(too_old) {
        return Err(AssertionError::TooOld);
    }
    Ok(ClaimTimes { exp, iat })
}
