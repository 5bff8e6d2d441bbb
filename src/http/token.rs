//! `POST {base}/oauth/token`: dispatches on `grant_type` to the
//! client-credentials grant (RFC 6749 4.4, here) or the federated grants
//! (RFC 7523 jwt-bearer and RFC 8693 token exchange, `federated`), and
//! issues the token every grant ends with. A token is bound to the DPoP key
//! of the request's proof (RFC 9449), and to the client certificate the
//! client authenticated with (RFC 8705).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Serialize;

use super::body::{Params, read_params};
use super::client_auth::authenticate;
use super::error::ApiError;
use super::federated;
use super::response::{Body, CachePolicy, json};
use super::{LoggedClientId, LoggedReason, client_certificate, peer_ip};
use crate::domain::certificate::PresentedCertificate;
use crate::domain::client::Client;
use crate::domain::dpop::ProofTarget;
use crate::domain::error::OAuthError;
use crate::domain::federation::{JWT_BEARER_GRANT, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT};
use crate::domain::scope::grant_scopes;
use crate::domain::token::{
    Actor, Confirmation, Grant, choose_audience, mint_granted_access_token,
};
use crate::dpop::DpopError;
use crate::state::AppState;

/// The client-credentials grant.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

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

/// Issues a token, or explains in RFC 6749 5.2 terms why not: reads the
/// form and hands it to the grant's handler.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let peer = peer_ip(&request);
    let (parts, params) = read_params(request, &state.body_limits).await?;
    let request = GrantRequest {
        parts: &parts,
        params: &params,
        peer,
    };
    match params.single("grant_type")? {
        None => Err(OAuthError::invalid_request("grant_type is required").into()),
        Some(CLIENT_CREDENTIALS) => client_credentials(state, &request).await,
        Some(JWT_BEARER_GRANT) => federated::jwt_bearer(state, &request).await,
        Some(TOKEN_EXCHANGE_GRANT) => token_exchange(state, &request).await,
        Some(_) => Err(OAuthError::UnsupportedGrantType.into()),
    }
}

/// A token request as read: what every grant's handler gets.
pub struct GrantRequest<'a> {
    /// The request head.
    pub parts: &'a http::request::Parts,
    /// The form.
    pub params: &'a Params,
    /// The caller's address.
    pub peer: Option<std::net::IpAddr>,
}

/// RFC 8693 token exchange, by the type of the subject token.
async fn token_exchange(
    state: &AppState,
    request: &GrantRequest<'_>,
) -> Result<Response<Body>, ApiError> {
    let params = request.params;
    let subject_token = params
        .single("subject_token")?
        .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
    match params.single("subject_token_type")? {
        None => Err(OAuthError::invalid_request("subject_token_type is required").into()),
        Some(JWT_TOKEN_TYPE) => federated::token_exchange_jwt(state, request, subject_token).await,
        Some(_) => Err(OAuthError::invalid_request(
            "subject_token_type must be urn:ietf:params:oauth:token-type:jwt",
        )
        .into()),
    }
}

/// RFC 6749 4.4: the client authenticates and gets its own token.
async fn client_credentials(
    state: &AppState,
    request: &GrantRequest<'_>,
) -> Result<Response<Body>, ApiError> {
    let (parts, params) = (request.parts, request.params);
    let certificate = client_certificate(&parts.extensions);
    let client = authenticate(
        state,
        &parts.headers,
        params,
        request.peer,
        certificate.as_deref(),
    )
    .await?;
    let issue = Issue {
        scope: params.single("scope")?,
        resource: params.single("resource")?,
        act: None,
        issued_token_type: None,
    };
    issue_token(state, parts, &client, certificate.as_deref(), issue)
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
            let mut response = super::error::ApiError::from(error).into_response();
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
