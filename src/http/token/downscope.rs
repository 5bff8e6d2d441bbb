//! Down-scoping: the exchange of one of this server's own access tokens
//! (RFC 8693, `subject_token_type` `access_token`) for one with fewer
//! scopes and no longer a life, to pass downstream
//! ([`crate::domain::exchange`] decides what it carries).
//!
//! The subject token is the credential: it must pass validation as
//! `/oauth/validate` judges it (signature, issuer, time, revocation of it
//! or an ancestor, its client enabled and not reset). Client authentication
//! is optional; when present it must succeed and name the token's client.
//! Without it the caller is charged to its validation bucket, as a
//! validation is.

use http::Response;

use super::proof::proof_key;
use super::{Logged, TokenRequest, issued_response, mint};
use crate::domain::client::Client;
use crate::domain::error::OAuthError;
use crate::domain::exchange::{
    ACCESS_TOKEN_TYPE, DownscopeRequest, Exchange, derived_binding, downscope,
};
use crate::domain::token::{Confirmation, IssuedToken};
use crate::http::client_auth::{authenticate, presents_client_authentication};
use crate::http::error::{ApiError, StoreCall, store_failed};
use crate::http::response::Body;
use crate::state::AppState;

/// Issues a derived token for the subject token of `exchange`.
pub(super) async fn handle(
    state: &AppState,
    request: &TokenRequest,
    exchange: &Exchange<'_>,
) -> Result<Response<Body>, ApiError> {
    let mut logged = Logged::default();
    let result = derive(state, request, exchange, &mut logged).await;
    let mut response = match result {
        Ok(issued) => issued_response(state, &issued, Some(ACCESS_TOKEN_TYPE))?,
        Err(error) => error.into_response(),
    };
    logged.attach(&mut response);
    Ok(response)
}

/// The checks and the minting; records in `logged` what the access log
/// should say, refusals included.
async fn derive(
    state: &AppState,
    request: &TokenRequest,
    exchange: &Exchange<'_>,
    logged: &mut Logged,
) -> Result<IssuedToken, ApiError> {
    let params = &request.params;
    let headers = &request.parts.headers;
    let certificate = request.certificate.as_deref();

    let authenticated = if presents_client_authentication(headers, params, certificate.is_some())? {
        let client = authenticate(state, headers, params, request.peer, certificate).await?;
        logged.client_id = Some(client.id.clone());
        Some(client)
    } else {
        if let Some(ip) = request.peer {
            state.limits.check_validate(ip)?;
        }
        None
    };

    let original = match state.validate_token(exchange.subject_token).await {
        Ok(validated) => validated.claims,
        Err(rejection) => {
            logged.reason = Some(rejection.name());
            return Err(OAuthError::invalid_request(
                "subject_token is not an active access token of this server",
            )
            .into());
        }
    };
    logged.subject_jti = Some(original.jti.clone());
    logged.client_id = Some(original.client_id.clone());

    let named = match &authenticated {
        Some(client) => Some(client.id.as_str()),
        None => params.single("client_id")?,
    };
    if named.is_some_and(|id| id != original.client_id) {
        logged.reason = Some("subject_of_another_client");
        return Err(
            OAuthError::invalid_request("subject_token was issued to another client").into(),
        );
    }
    let client = match authenticated {
        Some(client) => client,
        None => state
            .clients
            .get(&original.client_id)
            .await
            .map_err(|e| store_failed(StoreCall::ClientLookup, &e))?
            .ok_or_else(|| client_gone(logged))?,
    };
    if !client.honours_token_issued_at(original.iat) {
        return Err(client_gone(logged).into());
    }
    state
        .limits
        .check_client(&client.id, client.rate_limit_rps)?;

    let cnf = bind(state, request, &client, original.cnf.as_ref(), logged)?;
    let asked = DownscopeRequest {
        scope: exchange.scope,
        targets: &exchange.targets,
    };
    let now = state.now();
    let shape = downscope(&original, &client, &asked, cnf, &state.policy, now)?;
    Ok(mint(state, &client, shape, now)?)
}

/// The subject token's client is deleted, disabled or reset.
fn client_gone(logged: &mut Logged) -> OAuthError {
    logged.reason = Some("client_invalid");
    OAuthError::invalid_request("subject_token is not an active access token of this server")
}

/// What the derived token is bound to: the request's DPoP proof and
/// connection certificate against the subject token's binding.
fn bind(
    state: &AppState,
    request: &TokenRequest,
    client: &Client,
    bound: Option<&Confirmation>,
    logged: &mut Logged,
) -> Result<Confirmation, OAuthError> {
    let proof_jkt = proof_key(state, &request.parts.headers, client.require_dpop).map_err(
        |(error, reason)| {
            logged.reason = Some(reason);
            error
        },
    )?;
    let thumbprint = request
        .certificate
        .as_deref()
        .map(|c| c.thumbprint.as_str());
    derived_binding(bound, proof_jkt, thumbprint).inspect_err(|_| {
        logged.reason = Some("subject_binding_not_met");
    })
}
