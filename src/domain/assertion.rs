//! JWT client assertions (`private_key_jwt`, RFC 7523 2.2 and 3, RFC 7521
//! 4.2): parsing a compact JWS, checking its claims against the rules of
//! this server, and verifying its signature with the client's public keys.
//! Pure: the keys and `now` come in as arguments; fetching keys and
//! remembering `jti`s is the caller's business.

use serde_json::{Map, Value};

use super::client::is_valid_client_id;
pub use super::signed_jwt::AssertionError;
use super::signed_jwt::{SignedJwt, TimeRules, check_audience, check_times};
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
    jwt: SignedJwt,
    client_id: String,
    jti: String,
    exp: i64,
}

/// Parses `assertion` and checks everything but the signature: header,
/// `iss` = `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`.
pub fn check_assertion(
    assertion: &str,
    rules: &AssertionRules<'_>,
    now: i64,
) -> Result<UnverifiedAssertion, AssertionError> {
    let jwt = SignedJwt::parse(assertion, MAX_ASSERTION_LEN)?;
    let claims = jwt.claims();
    let client_id = subject(claims)?;
    check_audience(claims.get("aud"), rules.audiences)?;
    let times = TimeRules {
        leeway_secs: rules.leeway_secs,
        max_lifetime_secs: Some(rules.max_lifetime_secs),
        max_age_secs: None,
    };
    let exp = check_times(claims, &times, now)?.exp;
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => jti.clone(),
        _ => return Err(AssertionError::MissingJti),
    };
    Ok(UnverifiedAssertion {
        jwt,
        client_id,
        jti,
        exp,
    })
}

fn subject(claims: &Map<String, Value>) -> Result<String, AssertionError> {
    let iss = claims.get("iss").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    match (iss, sub) {
        (Some(iss), Some(sub)) if iss == sub && is_valid_client_id(iss) => Ok(iss.to_owned()),
        _ => Err(AssertionError::Subject),
    }
}

impl UnverifiedAssertion {
    /// The client it claims to come from (`iss` = `sub`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The header's `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.jwt.kid()
    }

    /// The signing algorithm.
    pub fn alg(&self) -> VerifyAlgorithm {
        self.jwt.alg()
    }

    /// True when a key in `keys` could have signed it: one that fits the
    /// algorithm and, if the header names a `kid`, has it.
    pub fn has_candidate(&self, keys: &PublicKeySet) -> bool {
        self.jwt.has_candidate(keys)
    }

    /// True when a key of `keys` that fits the algorithm, whatever its
    /// `kid`, verifies the signature: the work of a real check, spent on
    /// assertions of clients that do not exist.
    pub fn verifies_with_any(&self, assertion: &str, keys: &PublicKeySet) -> bool {
        self.jwt.verifies_with_any(assertion, keys)
    }

    /// Verifies the signature of `assertion` (the same text this was
    /// checked from) with one of the client's `keys`.
    pub fn verify(
        self,
        assertion: &str,
        keys: &PublicKeySet,
    ) -> Result<VerifiedAssertion, AssertionError> {
        self.jwt.verify(assertion, keys)?;
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
