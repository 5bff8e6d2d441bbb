//! The federated grants: a workload presents a token of a trusted issuer
//! (a Kubernetes service-account token, a JWT-SVID) as an RFC 7523 2.1
//! `assertion`, or as an RFC 8693 `subject_token` of type
//! `urn:ietf:params:oauth:token-type:jwt` (read by `exchange.rs`), and gets
//! the token of the one client its subject maps to, with an `act` claim
//! naming the workload. No client authentication is needed; when the
//! request carries one, it must succeed and name that client.

use std::borrow::Cow;
use std::sync::Arc;

use http::Response;

use super::client_credentials::confirmation;
use super::{Logged, TokenRequest, issued_response, mint};
use crate::domain::client::Client;
use crate::domain::error::OAuthError;
use crate::domain::exchange::{ACCESS_TOKEN_TYPE, Exchange};
use crate::domain::scope::grant_scopes;
use crate::domain::token::{TokenShape, choose_audience};
use crate::federation::{FederatedIdentity, FederationFailure};
use crate::http::client_auth::{authenticate, presents_client_authentication};
use crate::http::error::{ApiError, StoreCall, store_failed};
use crate::http::response::Body;
use crate::state::AppState;

/// What the request asks for besides the client.
struct Ask<'a> {
    scope: Option<&'a str>,
    resource: Option<&'a str>,
    carrier: Carrier,
}

/// How the external token came: the grant decides the error code of a
/// refusal and whether the answer names `issued_token_type`.
#[derive(Debug, Clone, Copy)]
enum Carrier {
    /// The jwt-bearer grant's `assertion`: a refused token is
    /// `invalid_grant` (RFC 7523 3.1).
    Assertion,
    /// A token exchange's `subject_token`: a refused token is
    /// `invalid_request` (RFC 8693 2.2.2), as for down-scoping.
    SubjectToken,
}

impl Carrier {
    /// The error for a token or mapping this grant refuses.
    fn refusal(self, description: impl Into<Cow<'static, str>>) -> OAuthError {
        match self {
            Self::Assertion => OAuthError::InvalidGrant(description.into()),
            Self::SubjectToken => OAuthError::InvalidRequest(description.into()),
        }
    }

    /// The `issued_token_type` of the answer (RFC 8693 2.2.1).
    fn issued_token_type(self) -> Option<&'static str> {
        match self {
            Self::Assertion => None,
            Self::SubjectToken => Some(ACCESS_TOKEN_TYPE),
        }
    }
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: the external
/// token is the `assertion`.
pub(super) async fn jwt_bearer(
    state: &AppState,
    request: &TokenRequest,
) -> Result<Response<Body>, ApiError> {
    let params = &request.params;
    let assertion = params
        .single("assertion")?
        .ok_or_else(|| OAuthError::invalid_request("assertion is required"))?;
    let ask = Ask {
        scope: params.single("scope")?,
        resource: params.single("resource")?,
        carrier: Carrier::Assertion,
    };
    grant(state, request, assertion, ask).await
}

/// A token exchange of a workload token: one `audience` or `resource` at
/// most, and the answer names `issued_token_type`.
pub(super) async fn exchange(
    state: &AppState,
    request: &TokenRequest,
    exchange: &Exchange<'_>,
) -> Result<Response<Body>, ApiError> {
    let resource = match exchange.targets.as_slice() {
        [] => None,
        [one] => Some(*one),
        _ => {
            return Err(OAuthError::invalid_request(
                "send one audience or resource for a workload token",
            )
            .into());
        }
    };
    let ask = Ask {
        scope: exchange.scope,
        resource,
        carrier: Carrier::SubjectToken,
    };
    grant(state, request, exchange.subject_token, ask).await
}

/// Verifies `external`, finds its client, checks the client
/// authentication if any, and issues the client's token with `act`.
async fn grant(
    state: &AppState,
    request: &TokenRequest,
    external: &str,
    ask: Ask<'_>,
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
            let mut response = ApiError::from(
                ask.carrier
                    .refusal(format!("the token is not accepted: {reason}")),
            )
            .into_response();
            Logged {
                reason: Some(reason),
                ..Logged::default()
            }
            .attach(&mut response);
            return Ok(response);
        }
    };
    let client = mapped_client(state, request, &identity, ask.carrier).await?;
    state
        .limits
        .check_client(&client.id, client.rate_limit_rps)?;
    let headers = &request.parts.headers;
    let cnf = match confirmation(state, headers, &client, request.certificate.as_deref()) {
        Ok(cnf) => cnf,
        Err(refusal) => return Ok(Logged::refused(&client.id, refusal)),
    };
    let scopes = grant_scopes(ask.scope, &client.allowed_scopes, &client.default_scopes)?;
    let audience = choose_audience(&client, ask.resource, &state.policy)?;
    let shape = TokenShape {
        act: Some(identity.actor),
        ..TokenShape::of_client(&client, scopes, audience, cnf, &state.policy)
    };
    let issued = mint(state, &client, shape, state.now())?;
    tracing::info!(
        client_id = client.id.as_str(),
        issuer = identity.issuer_name.as_str(),
        "federated token issued"
    );
    issued_response(state, &issued, ask.carrier.issued_token_type())
}

/// The client the external token maps to, enabled. Client authentication
/// in the request (HTTP Basic, a secret, a client assertion, or a
/// `client_id` with a client certificate) must succeed (else
/// `invalid_client`) and name that client (else the grant's refusal); a
/// bare `client_id` must name it.
async fn mapped_client(
    state: &AppState,
    request: &TokenRequest,
    identity: &FederatedIdentity,
    carrier: Carrier,
) -> Result<Arc<Client>, ApiError> {
    let (headers, params) = (&request.parts.headers, &request.params);
    let certificate = request.certificate.as_deref();
    let authenticates = presents_client_authentication(headers, params, certificate.is_some())?;
    let mismatch = || carrier.refusal("the token maps to another client");
    if authenticates {
        let client = authenticate(state, headers, params, request.peer, certificate).await?;
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
        carrier
            .refusal("the token maps to no enabled client")
            .into()
    })
}
