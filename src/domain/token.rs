//! RFC 9068 JWT access tokens: building the claims for a client, minting
//! (compact JWS) and verifying. Pure: time comes in as `now`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::client::{Client, RandomError, random_bytes};
use super::scope::ScopeSet;
use crate::keys::{KeyError, KeySet, SigningKey};

/// Longest token we even try to parse; ours are well under 1 KiB.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The claims of an access token (RFC 9068 2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer identifier.
    pub iss: String,
    /// Subject: the client id (client-credentials tokens act for the client).
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The audience (resource) the token is for.
    pub aud: String,
    /// Granted scopes, space-separated; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Unique token id (128-bit random, base64url).
    pub jti: String,
    /// What the token is bound to (RFC 7800): a DPoP key or a client
    /// certificate. Absent for a plain bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The `jti`s of the tokens this one was exchanged from (RFC 8693
    /// down-scoping, [`super::exchange`]), the root first and the token it
    /// was exchanged from last; absent for a token from any other grant.
    /// Revoking any of them revokes this token too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived_from: Vec<String>,
    /// Who the client is acting as (RFC 8693 4.1): the external workload
    /// whose token a federated grant was made on. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// The `act` claim (RFC 8693 4.1): the issuer and subject of the external
/// token a federated grant was made on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The external token's `iss`.
    pub iss: String,
    /// The external token's `sub`.
    pub sub: String,
}

/// The proof-of-possession binding of a token (`cnf`, RFC 7800 3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the DPoP key (RFC 9449 6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// base64url SHA-256 of the client certificate, DER (RFC 8705 3.1).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// `None` when nothing is bound, so a bearer token carries no `cnf`.
    pub fn into_claim(self) -> Option<Self> {
        (self.jkt.is_some() || self.x5t_s256.is_some()).then_some(self)
    }
}

impl AccessTokenClaims {
    /// `DPoP` for a DPoP-bound token, else `Bearer` (the `token_type` of
    /// the token response and of introspection).
    pub fn token_type(&self) -> &'static str {
        if self.cnf.as_ref().is_some_and(|c| c.jkt.is_some()) {
            "DPoP"
        } else {
            "Bearer"
        }
    }
}

/// Server-wide settings that shape every token.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// The `iss` claim.
    pub issuer: String,
    /// Lifetime when the client has no override, in seconds.
    pub default_lifetime_secs: u32,
    /// Audience for clients that list none.
    pub default_audience: String,
    /// Leeway for `nbf` (clock skew across instances), in seconds.
    pub nbf_leeway_secs: i64,
    /// Leeway for `exp`, in seconds (0 by default).
    pub exp_leeway_secs: i64,
}

/// A token ready to hand out.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub access_token: String,
    /// Its claims.
    pub claims: AccessTokenClaims,
    /// Seconds until expiry, for `expires_in`.
    pub expires_in: u32,
}

/// Picks the audience: the requested `resource` if the client may have it
/// (RFC 8707), else the client's first audience, else the server default.
pub fn choose_audience(
    client: &Client,
    resource: Option<&str>,
    policy: &TokenPolicy,
) -> Result<String, super::error::OAuthError> {
    match resource {
        Some(resource) if client.allowed_audiences.iter().any(|a| a == resource) => {
            Ok(resource.to_owned())
        }
        Some(_) => Err(super::error::OAuthError::InvalidTarget(
            "the requested resource is not allowed for this client".into(),
        )),
        None => Ok(client
            .allowed_audiences
            .first()
            .cloned()
            .unwrap_or_else(|| policy.default_audience.clone())),
    }
}

/// Why minting failed. Never the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// No randomness for the `jti`.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Claims could not be serialized.
    #[error("claims serialization failed")]
    Serialize,
}

/// Builds the claims for `client` and signs them with `key`: a bearer token.
pub fn mint_access_token(
    client: &Client,
    scopes: &ScopeSet,
    audience: String,
    policy: &TokenPolicy,
    key: &SigningKey,
    now: i64,
) -> Result<IssuedToken, MintError> {
    let unbound = Confirmation::default();
    mint_bound_access_token(client, scopes, audience, policy, key, unbound, now)
}

/// [`mint_access_token`] for a token bound to a DPoP key or a client
/// certificate by `cnf` (none bound: a bearer token).
pub fn mint_bound_access_token(
    client: &Client,
    scopes: &ScopeSet,
    audience: String,
    policy: &TokenPolicy,
    key: &SigningKey,
    cnf: Confirmation,
    now: i64,
) -> Result<IssuedToken, MintError> {
    let shape = TokenShape::of_client(client, scopes.clone(), audience, cnf, policy);
    mint_shaped(client, shape, policy, key, now)
}

/// What a token carries besides its client and times: decided by the
/// grant (for an exchanged token, by [`super::exchange::downscope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenShape {
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// The `aud` claim.
    pub audience: String,
    /// Seconds from issuance to expiry.
    pub lifetime_secs: u32,
    /// What the token is bound to (nothing: a bearer token).
    pub cnf: Confirmation,
    /// The `derived_from` claim: the ancestors of an exchanged token.
    pub derived_from: Vec<String>,
    /// The `act` claim: the external workload of a federated grant.
    pub act: Option<Actor>,
}

impl TokenShape {
    /// A token of `client`'s own, as a grant issues it: the client's
    /// lifetime (the policy's default when it has none), no ancestry and
    /// no actor.
    pub fn of_client(
        client: &Client,
        scopes: ScopeSet,
        audience: String,
        cnf: Confirmation,
        policy: &TokenPolicy,
    ) -> Self {
        Self {
            scopes,
            audience,
            lifetime_secs: client
                .token_lifetime_secs
                .unwrap_or(policy.default_lifetime_secs),
            cnf,
            derived_from: Vec::new(),
            act: None,
        }
    }
}

/// Builds the claims of a token for `client` shaped by `shape` and signs
/// them with `key`.
pub fn mint_shaped(
    client: &Client,
    shape: TokenShape,
    policy: &TokenPolicy,
    key: &SigningKey,
    now: i64,
) -> Result<IssuedToken, MintError> {
    let claims = AccessTokenClaims {
        iss: policy.issuer.clone(),
        sub: client.id.clone(),
        client_id: client.id.clone(),
        aud: shape.audience,
        scope: (!shape.scopes.is_empty()).then(|| shape.scopes.to_string()),
        iat: now,
        nbf: now,
        exp: now + i64::from(shape.lifetime_secs),
        jti: URL_SAFE_NO_PAD.encode(random_bytes::<16>()?),
        cnf: shape.cnf.into_claim(),
        derived_from: shape.derived_from,
        act: shape.act,
    };
    let access_token = sign_claims(&claims, key)?;
    Ok(IssuedToken {
        access_token,
        claims,
        expires_in: shape.lifetime_secs,
    })
}

/// Splits a compact JWS into its header, payload and signature parts (still
/// base64url); `None` unless there are exactly three.
pub fn compact_parts(jws: &str) -> Option<(&str, &str, &str)> {
    let mut parts = jws.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Some((header, payload, signature)),
        _ => None,
    }
}

/// Serializes and signs claims into a compact JWS.
pub fn sign_claims(claims: &AccessTokenClaims, key: &SigningKey) -> Result<String, MintError> {
    let payload = serde_json::to_vec(claims).map_err(|_| MintError::Serialize)?;
    let header = key.header_b64();
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// Why a token was refused. Each maps to `invalid_token` / `active:false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, too long, or not JSON where JSON belongs.
    #[error("malformed token")]
    Malformed,
    /// Header is not ours: wrong `typ`, `alg: none`, unknown `kid`/`alg`,
    /// or a `crit` member (we implement no extension it could name).
    #[error("unsupported token header")]
    UnsupportedHeader,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Issued by someone else.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    #[serde(default)]
    typ: Option<&'a str>,
    #[serde(default)]
    kid: Option<&'a str>,
    /// Whether the header has a `crit` member, whatever its value.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// Deserializes any value as `true`: with `#[serde(default)]`, a member
/// that is absent reads `false` and one that is present (even `null`) `true`.
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(value).map(|_| true)
}

/// Verifies a compact JWS against `keys` and checks `iss`, `exp` and `nbf`.
/// Revocation and client state are the caller's business.
pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    policy: &TokenPolicy,
    now: i64,
) -> Result<AccessTokenClaims, TokenError> {
    let claims = verify_signature(token, keys, policy)?;
    check_time(&claims, policy, now)?;
    Ok(claims)
}

/// Verifies structure, header, signature and issuer, but not the time
/// window (revocation must work on expired tokens too).
pub fn verify_signature(
    token: &str,
    keys: &KeySet,
    policy: &TokenPolicy,
) -> Result<AccessTokenClaims, TokenError> {
    verify_signature_by(token, keys, policy).map(|(claims, _)| claims)
}

/// [`verify_signature`], also naming the key that verified the token (a
/// cache remembers its `kid`, to refuse the token once that key retires).
pub fn verify_signature_by<'k>(
    token: &str,
    keys: &'k KeySet,
    policy: &TokenPolicy,
) -> Result<(AccessTokenClaims, &'k SigningKey), TokenError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.splitn(3, '.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let header_bytes = decode_part(header_b64)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
    let typ_ok = header.typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::UnsupportedHeader);
    }
    // RFC 7515 4.1.11: `crit` lists extensions the verifier must understand
    // or refuse the token. We understand none, and an empty or non-array
    // `crit` is malformed, so any `crit` at all is refused.
    if header.crit {
        return Err(TokenError::UnsupportedHeader);
    }
    let key = header
        .kid
        .and_then(|kid| keys.find(kid, header.alg))
        .ok_or(TokenError::UnsupportedHeader)?;
    let signature = decode_part(signature_b64)?;
    if !key.verify(&token.as_bytes()[..signing_input_len], &signature) {
        return Err(TokenError::BadSignature);
    }
    let payload = decode_part(payload_b64)?;
    let claims: AccessTokenClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.iss != policy.issuer {
        return Err(TokenError::WrongIssuer);
    }
    Ok((claims, key))
}

/// Checks `exp` (with `exp_leeway_secs`) and `nbf` (with `nbf_leeway_secs`).
pub fn check_time(
    claims: &AccessTokenClaims,
    policy: &TokenPolicy,
    now: i64,
) -> Result<(), TokenError> {
    if now >= claims.exp.saturating_add(policy.exp_leeway_secs) {
        return Err(TokenError::Expired);
    }
    if now.saturating_add(policy.nbf_leeway_secs) < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

fn decode_part(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests;
