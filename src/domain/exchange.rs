//! RFC 8693 token exchange of this server's own access tokens
//! (down-scoping): what a token exchanged from another may carry. Never
//! more scopes, another audience, a longer life or a looser binding than
//! the token it comes from; it records its ancestry (`derived_from`) so
//! that revoking any ancestor revokes it. Pure: the subject token is
//! already verified and its client looked up; `now` is passed in.

use subtle::ConstantTimeEq;

use super::client::Client;
use super::error::OAuthError;
use super::scope::ScopeSet;
use super::token::{AccessTokenClaims, Confirmation, TokenPolicy, TokenShape};

/// The `grant_type` of a token exchange (RFC 8693 2.1).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token type of an access token (RFC 8693 3): the subject token type
/// of a down-scoping exchange, and the only type this server issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The token type of a JWT issued by another party (RFC 8693 3).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The most ancestors a derived token records. A chain of exchanges ends
/// there, which bounds the token's size and the revocation checks it costs.
pub const MAX_DERIVATION_DEPTH: usize = 8;

/// The parameters of an exchange that every subject token type reads.
pub struct Exchange<'a> {
    /// The `subject_token`.
    pub subject_token: &'a str,
    /// The `scope` parameter, if any.
    pub scope: Option<&'a str>,
    /// Every `audience` and `resource` value (each may repeat).
    pub targets: Vec<&'a str>,
}

/// What the caller asked the derived token to be.
#[derive(Debug, Clone, Copy, Default)]
pub struct DownscopeRequest<'a> {
    /// The `scope` parameter, if any.
    pub scope: Option<&'a str>,
    /// Every `audience` and `resource` value sent.
    pub targets: &'a [&'a str],
}

/// What the derived token of `original` (issued to `client`) carries:
/// - scopes: those requested, each held by `original` and still allowed
///   for the client, else `invalid_scope`; by default all of `original`'s
///   that the client is still allowed;
/// - audience: `original`'s, which every requested target must name and
///   the client must still be allowed, else `invalid_target` (our tokens
///   have one audience, so narrower is equal);
/// - lifetime: the client's, cut to what is left of `original`'s;
/// - binding: `cnf`, as [`derived_binding`] decided it;
/// - ancestry: `original`'s ancestors and `original` itself, at most
///   [`MAX_DERIVATION_DEPTH`], else `invalid_request`.
pub fn downscope(
    original: &AccessTokenClaims,
    client: &Client,
    request: &DownscopeRequest<'_>,
    cnf: Confirmation,
    policy: &TokenPolicy,
    now: i64,
) -> Result<TokenShape, OAuthError> {
    let held = ScopeSet::parse(original.scope.as_deref().unwrap_or_default())
        .map_err(|_| OAuthError::invalid_request("the subject token's scope is malformed"))?
        .intersection(&client.allowed_scopes);
    let scopes = match request.scope.map(ScopeSet::parse) {
        None => held,
        Some(Err(_)) => {
            return Err(OAuthError::InvalidScope(
                "the scope parameter is malformed".into(),
            ));
        }
        Some(Ok(requested)) if requested.is_empty() => held,
        Some(Ok(requested)) if requested.is_subset_of(&held) => requested,
        Some(Ok(_)) => {
            return Err(OAuthError::InvalidScope(
                "a requested scope is not held by the subject token".into(),
            ));
        }
    };

    if request.targets.iter().any(|t| *t != original.aud) {
        return Err(OAuthError::InvalidTarget(
            "a requested audience or resource is not the subject token's audience".into(),
        ));
    }
    let still_allowed = if client.allowed_audiences.is_empty() {
        original.aud == policy.default_audience
    } else {
        client.allowed_audiences.contains(&original.aud)
    };
    if !still_allowed {
        return Err(OAuthError::InvalidTarget(
            "the subject token's audience is no longer allowed for this client".into(),
        ));
    }

    let left = u32::try_from(original.exp.saturating_sub(now).max(0)).unwrap_or(u32::MAX);
    if left == 0 {
        return Err(OAuthError::invalid_request("the subject token has expired"));
    }
    let lifetime_secs = client
        .token_lifetime_secs
        .unwrap_or(policy.default_lifetime_secs)
        .min(left);

    if original.derived_from.len() >= MAX_DERIVATION_DEPTH {
        return Err(OAuthError::invalid_request(
            "the subject token was exchanged too many times already",
        ));
    }
    let mut derived_from = original.derived_from.clone();
    derived_from.push(original.jti.clone());

    Ok(TokenShape {
        scopes,
        audience: original.aud.clone(),
        lifetime_secs,
        cnf,
        derived_from,
        // A token acting for a workload keeps saying so when narrowed.
        act: original.act.clone(),
    })
}

/// What a derived token is bound to, so that it is never looser than its
/// original (`bound`):
/// - bound to a DPoP key: the exchange request's proof (`proof_jkt`) must
///   be by that key, else `invalid_dpop_proof`; the derived token is bound
///   to it too;
/// - bound to a certificate: the exchange must come over a connection
///   with that certificate (`certificate_thumbprint`), else
///   `invalid_request`; the derived token is bound to it too;
/// - a bearer original with a proof: the derived token is bound to the
///   proof's key (tighter is allowed).
pub fn derived_binding(
    bound: Option<&Confirmation>,
    proof_jkt: Option<String>,
    certificate_thumbprint: Option<&str>,
) -> Result<Confirmation, OAuthError> {
    let none = Confirmation::default();
    let bound = bound.unwrap_or(&none);
    let x5t_s256 = match &bound.x5t_s256 {
        None => None,
        Some(thumbprint) => {
            let same = certificate_thumbprint
                .is_some_and(|seen| bool::from(seen.as_bytes().ct_eq(thumbprint.as_bytes())));
            if !same {
                return Err(OAuthError::invalid_request(
                    "the subject token is bound to a client certificate: present it on the connection",
                ));
            }
            Some(thumbprint.clone())
        }
    };
    let jkt = match (&bound.jkt, proof_jkt) {
        (None, proof) => proof,
        (Some(key), Some(proof)) if *key == proof => Some(proof),
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidDpopProof(
                "the proof is not signed by the key the subject token is bound to".into(),
            ));
        }
        (Some(_), None) => {
            return Err(OAuthError::InvalidDpopProof(
                "the subject token is bound to a DPoP key: send a proof signed by it".into(),
            ));
        }
    };
    Ok(Confirmation { jkt, x5t_s256 })
}

#[cfg(test)]
mod tests;
