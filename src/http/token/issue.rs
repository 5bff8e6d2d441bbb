//! The end of every token grant: `client`'s token minted for what the grant
//! asks (its rate limit, scopes, audience, lifetime, and the binding to the
//! request's DPoP key or the client's certificate), answered as RFC 6749
//! 5.1 says (and RFC 8693 2.2.1 for a token exchange).

use http::{Response, StatusCode};
use serde::Serialize;

use super::super::error::ApiError;
use super::super::response::{Body, CachePolicy, json};
use super::super::{LoggedClientId, LoggedReason};
use crate::domain::certificate::PresentedCertificate;
use crate::domain::client::Client;
use crate::domain::dpop::ProofTarget;
use crate::domain::error::OAuthError;
use crate::domain::scope::grant_scopes;
use crate::domain::token::{
    Actor, Confirmation, Grant, choose_audience, mint_granted_access_token,
};
use crate::dpop::DpopError;
use crate::state::AppState;

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// What a grant asks to be issued, besides the client.
pub struct Issue<'a> {
    /// The requested `scope`.
    pub scope: Option<&'a str>,
    /// The requested audience (`resource`).
    pub resource: Option<&'a str>,
    /// The external workload the client acts as.
    pub act: Option<Actor>,
    /// RFC 8693 `issued_token_type`, for a token exchange.
    pub issued_token_type: Option<&'static str>,
}

/// Mints `client`'s token: its rate limit, scopes, audience, binding and
/// lifetime; the response of RFC 6749 5.1 (and RFC 8693 2.2.1).
pub fn issue_token(
    state: &AppState,
    parts: &http::request::Parts,
    client: &Client,
    certificate: Option<&PresentedCertificate>,
    issue: Issue<'_>,
) -> Result<Response<Body>, ApiError> {
    state
        .limits
        .check_client(&client.id, client.rate_limit_rps)?;
    let cnf = match confirmation(state, &parts.headers, client, certificate) {
        Ok(cnf) => cnf,
        Err((error, reason)) => {
            let mut response = ApiError::from(error).into_response();
            response.extensions_mut().insert(LoggedReason(reason));
            response
                .extensions_mut()
                .insert(LoggedClientId(client.id.clone()));
            return Ok(response);
        }
    };

    let scopes = grant_scopes(issue.scope, &client.allowed_scopes, &client.default_scopes)?;
    let grant = Grant {
        scopes: &scopes,
        audience: choose_audience(client, issue.resource, &state.policy)?,
        cnf,
        act: issue.act,
    };
    let keys = state.keys();
    let issued =
        mint_granted_access_token(client, grant, &state.policy, keys.active(), state.now())
            .map_err(|e| {
                tracing::error!(error = %e, "minting a token failed");
                OAuthError::ServerError
            })?;
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &issued.access_token,
        issued_token_type: issue.issued_token_type,
        token_type: issued.claims.token_type(),
        expires_in: issued.expires_in,
        scope: issued.claims.scope.as_deref(),
    })
    .map_err(|_| OAuthError::ServerError)?;
    state.metrics.tokens_issued.inc();
    let mut response = json(StatusCode::OK, body, CachePolicy::NoStore);
    response
        .extensions_mut()
        .insert(LoggedClientId(client.id.clone()));
    Ok(response)
}

/// What the token will be bound to: the key of the request's DPoP proof,
/// if it sent one (required for a client registered with `require_dpop`),
/// and the certificate the client authenticated with, if it is registered
/// with one. A refusal comes with its reason for the access log.
fn confirmation(
    state: &AppState,
    headers: &http::HeaderMap,
    client: &Client,
    certificate: Option<&PresentedCertificate>,
) -> Result<Confirmation, (OAuthError, &'static str)> {
    let x5t_s256 = match (&client.tls_client_auth, certificate) {
        (Some(_), Some(certificate)) => Some(certificate.thumbprint.clone()),
        _ => None,
    };
    let invalid = |description: &'static str, reason| {
        (OAuthError::InvalidDpopProof(description.into()), reason)
    };
    let mut proofs = headers.get_all("dpop").iter();
    let jkt = match (proofs.next(), proofs.next()) {
        (None, _) if client.require_dpop => {
            return Err(invalid(
                "this client must send a DPoP proof",
                "dpop_required",
            ));
        }
        (None, _) => None,
        (Some(_), Some(_)) => return Err(invalid("send one DPoP header", "dpop_repeated")),
        (Some(proof), None) => {
            let proof = proof
                .to_str()
                .map_err(|_| invalid("the DPoP proof is not a JWT", "dpop_malformed"))?;
            let target = ProofTarget {
                method: "POST",
                url: &state.token_endpoint,
                access_token: None,
            };
            match state.dpop.check(proof, &target, state.now()) {
                Ok(checked) => Some(checked.jkt),
                Err(DpopError::Proof(e)) => {
                    return Err((OAuthError::InvalidDpopProof(e.to_string().into()), e.name()));
                }
                Err(DpopError::ReplayWindowFull) => {
                    return Err((
                        OAuthError::TemporarilyUnavailable(
                            "too many DPoP proofs at once; retry".into(),
                        ),
                        "dpop_replay_window_full",
                    ));
                }
            }
        }
    };
    Ok(Confirmation { jkt, x5t_s256 })
}
