//! `POST {base}/oauth/token`: the client-credentials grant (RFC 6749 4.4).
//! A token is bound to the DPoP key of the request's proof (RFC 9449), and
//! to the client certificate the client authenticated with (RFC 8705).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Serialize;

use super::body::read_params;
use super::client_auth::authenticate;
use super::error::ApiError;
use super::response::{Body, CachePolicy, json};
use super::{LoggedClientId, LoggedReason, client_certificate, peer_ip};
use crate::domain::certificate::PresentedCertificate;
use crate::domain::client::Client;
use crate::domain::dpop::ProofTarget;
use crate::domain::error::OAuthError;
use crate::domain::scope::grant_scopes;
use crate::domain::token::{Confirmation, choose_audience, mint_bound_access_token};
use crate::dpop::DpopError;
use crate::state::AppState;

/// The only grant this server issues.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// Issues a token, or explains in RFC 6749 5.2 terms why not.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let peer = peer_ip(&request);
    let (parts, params) = read_params(request, &state.body_limits).await?;

    match params.single("grant_type")? {
        None => return Err(OAuthError::invalid_request("grant_type is required").into()),
        Some(CLIENT_CREDENTIALS) => {}
        Some(_) => return Err(OAuthError::UnsupportedGrantType.into()),
    }
    let scope = params.single("scope")?;
    let resource = params.single("resource")?;
    let certificate = client_certificate(&parts.extensions);
    let client = authenticate(state, &parts.headers, &params, peer, certificate.as_deref()).await?;
    state
        .limits
        .check_client(&client.id, client.rate_limit_rps)?;
    let cnf = match confirmation(state, &parts.headers, &client, certificate.as_deref()) {
        Ok(cnf) => cnf,
        Err((error, reason)) => {
            let mut response = super::error::ApiError::from(error).into_response();
            response.extensions_mut().insert(LoggedReason(reason));
            response
                .extensions_mut()
                .insert(LoggedClientId(client.id.clone()));
            return Ok(response);
        }
    };

    let scopes = grant_scopes(scope, &client.allowed_scopes, &client.default_scopes)?;
    let audience = choose_audience(&client, resource, &state.policy)?;
    let keys = state.keys();
    let issued = mint_bound_access_token(
        &client,
        &scopes,
        audience,
        &state.policy,
        keys.active(),
        cnf,
        state.now(),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "minting a token failed");
        OAuthError::ServerError
    })?;
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &issued.access_token,
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
