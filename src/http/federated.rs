//! The federated grants at the token endpoint: a workload presents a token
//! of a trusted issuer (a Kubernetes service-account token, a JWT-SVID) as
//! an RFC 7523 2.1 `assertion` or as an RFC 8693 `subject_token` of type
//! `urn:ietf:params:oauth:token-type:jwt`, and gets the token of the one
//! client its subject maps to. No client authentication is needed; when
//! the request carries one, it must succeed and name that client.

use std::sync::Arc;

use http::{Response, StatusCode};

use super::client_auth::authenticate;
use super::error::{ApiError, StoreCall, store_failed};
use super::response::Body;
use super::token::{GrantRequest, Issue, issue_token};
use super::{LoggedReason, client_certificate};
use crate::domain::client::Client;
use crate::domain::error::OAuthError;
use crate::domain::federation::ACCESS_TOKEN_TYPE;
use crate::federation::{FederatedIdentity, FederationFailure};
use crate::state::AppState;

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523
/// 2.1): the external token is the `assertion`.
pub async fn jwt_bearer(
    state: &AppState,
    request: &GrantRequest<'_>,
) -> Result<Response<Body>, ApiError> {
    let assertion = request
        .params
        .single("assertion")?
        .ok_or_else(|| OAuthError::invalid_request("assertion is required"))?;
    let issue = Issue {
        scope: request.params.single("scope")?,
        resource: request.params.single("resource")?,
        act: None,
        issued_token_type: None,
    };
    grant(state, request, assertion, issue).await
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` with a
/// `subject_token` of type `urn:ietf:params:oauth:token-type:jwt` (RFC
/// 8693 2.1): the answer names `issued_token_type`. The audience may be
/// asked for with `resource` or `audience`; no `actor_token` is taken.
pub async fn token_exchange_jwt(
    state: &AppState,
    request: &GrantRequest<'_>,
    subject_token: &str,
) -> Result<Response<Body>, ApiError> {
    let params = request.params;
    if params.single("actor_token")?.is_some() || params.single("actor_token_type")?.is_some() {
        return Err(OAuthError::invalid_request("actor_token is not supported").into());
    }
    if params
        .single("requested_token_type")?
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request(
            "requested_token_type must be urn:ietf:params:oauth:token-type:access_token",
        )
        .into());
    }
    let resource = match (params.single("resource")?, params.single("audience")?) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("send resource or audience, not both").into());
        }
        (resource, audience) => resource.or(audience),
    };
    let issue = Issue {
        scope: params.single("scope")?,
        resource,
        act: None,
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
    };
    grant(state, request, subject_token, issue).await
}

/// Verifies `external`, finds its client, checks the client
/// authentication if any, and issues the client's token with `act`.
async fn grant(
    state: &AppState,
    request: &GrantRequest<'_>,
    external: &str,
    mut issue: Issue<'_>,
) -> Result<Response<Body>, ApiError> {
    if let Some(ip) = request.peer {
        state.limits.check_ip(ip)?;
    }
    let identity = match state.federation.authenticate(external, state.now()).await {
        Ok(identity) => identity,
        Err(FederationFailure::Store(e)) => {
            return Err(store_failed(StoreCall::FederatedSubjects, &e).into());
        }
        Err(FederationFailure::Refused(e)) => {
            let reason = e.reason();
            tracing::info!(reason, "external token refused");
            let mut response = ApiError::from(OAuthError::InvalidGrant(
                format!("the token is not accepted: {reason}").into(),
            ))
            .into_response();
            response.extensions_mut().insert(LoggedReason(reason));
            return Ok(response);
        }
    };
    let certificate = client_certificate(&request.parts.extensions);
    let client = mapped_client(state, request, &identity, certificate.is_some()).await?;
    issue.act = Some(identity.actor);
    let response = issue_token(state, request.parts, &client, certificate.as_deref(), issue)?;
    if response.status() == StatusCode::OK {
        tracing::info!(
            client_id = client.id.as_str(),
            issuer = identity.issuer_name.as_str(),
            "federated token issued"
        );
    }
    Ok(response)
}

/// The client the external token maps to, enabled. Client authentication
/// in the request (HTTP Basic, a secret, a client assertion, or a
/// `client_id` with a client certificate) must succeed (else
/// `invalid_client`) and name that client (else `invalid_grant`); a bare
/// `client_id` must name it.
async fn mapped_client(
    state: &AppState,
    request: &GrantRequest<'_>,
    identity: &FederatedIdentity,
    has_certificate: bool,
) -> Result<Arc<Client>, ApiError> {
    let (headers, params) = (&request.parts.headers, request.params);
    let authenticates = headers.contains_key(http::header::AUTHORIZATION)
        || params.single("client_secret")?.is_some()
        || params.single("client_assertion")?.is_some()
        || params.single("client_assertion_type")?.is_some()
        || (has_certificate && params.single("client_id")?.is_some());
    let mismatch = || OAuthError::InvalidGrant("the token maps to another client".into());
    if authenticates {
        let certificate = client_certificate(&request.parts.extensions);
        let client =
            authenticate(state, headers, params, request.peer, certificate.as_deref()).await?;
        if client.id != identity.client_id {
            return Err(mismatch().into());
        }
        return Ok(client);
    }
    if params
        .single("client_id")?
        .is_some_and(|id| id != identity.client_id)
    {
        return Err(mismatch().into());
    }
    let client = state
        .clients
        .get(&identity.client_id)
        .await
        .map_err(|e| store_failed(StoreCall::ClientLookup, &e))?;
    client.filter(|c| c.enabled).ok_or_else(|| {
        OAuthError::InvalidGrant("the token maps to no enabled client".into()).into()
    })
}
