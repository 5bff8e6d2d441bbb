//! `POST {base}/oauth/token`: the client-credentials grant (RFC 6749 4.4).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Serialize;

use super::body::read_params;
use super::client_auth::authenticate;
use super::error::ApiError;
use super::response::{Body, CachePolicy, json};
use super::{LoggedClientId, peer_ip};
use crate::domain::error::OAuthError;
use crate::domain::scope::grant_scopes;
use crate::domain::token::{choose_audience, mint_access_token};
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
    let client = authenticate(state, &parts.headers, &params, peer).await?;
    state
        .limits
        .check_client(&client.id, client.rate_limit_rps)?;

    let scopes = grant_scopes(scope, &client.allowed_scopes, &client.default_scopes)?;
    let audience = choose_audience(&client, resource, &state.policy)?;
    let keys = state.keys();
    let issued = mint_access_token(
        &client,
        &scopes,
        audience,
        &state.policy,
        keys.active(),
        state.now(),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "minting a token failed");
        OAuthError::ServerError
    })?;
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &issued.access_token,
        token_type: "Bearer",
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
