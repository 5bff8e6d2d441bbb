//! The client-credentials grant (RFC 6749 4.4). A token is bound to the
//! DPoP key of the request's proof (RFC 9449), and to the client
//! certificate the client authenticated with (RFC 8705).

use http::Response;

use super::proof::{Refusal, proof_key};
use super::{Logged, TokenRequest, issued_response, mint};
use crate::domain::certificate::PresentedCertificate;
use crate::domain::client::Client;
use crate::domain::scope::grant_scopes;
use crate::domain::token::{Confirmation, TokenShape, choose_audience};
use crate::http::client_auth::authenticate;
use crate::http::error::ApiError;
use crate::http::response::Body;
use crate::state::AppState;

/// Issues a token to the authenticated client.
pub(super) async fn handle(
    state: &AppState,
    request: &TokenRequest,
) -> Result<Response<Body>, ApiError> {
    let params = &request.params;
    let headers = &request.parts.headers;
    let certificate = request.certificate.as_deref();
    let scope = params.single("scope")?;
    let resource = params.single("resource")?;
    let client = authenticate(state, headers, params, request.peer, certificate).await?;
    state
        .limits
        .check_client(&client.id, client.rate_limit_rps)?;
    let cnf = match confirmation(state, headers, &client, certificate) {
        Ok(cnf) => cnf,
        Err(refusal) => return Ok(Logged::refused(&client.id, refusal)),
    };

    let scopes = grant_scopes(scope, &client.allowed_scopes, &client.default_scopes)?;
    let audience = choose_audience(&client, resource, &state.policy)?;
    let shape = TokenShape::of_client(&client, scopes, audience, cnf, &state.policy);
    let issued = mint(state, &client, shape, state.now())?;
    issued_response(state, &issued, None)
}

/// What the token will be bound to: the key of the request's DPoP proof,
/// if it sent one (required for a client registered with `require_dpop`),
/// and the certificate the client authenticated with, if it is registered
/// with one.
pub(super) fn confirmation(
    state: &AppState,
    headers: &http::HeaderMap,
    client: &Client,
    certificate: Option<&PresentedCertificate>,
) -> Result<Confirmation, Refusal> {
    let x5t_s256 = match (&client.tls_client_auth, certificate) {
        (Some(_), Some(certificate)) => Some(certificate.thumbprint.clone()),
        _ => None,
    };
    let jkt = proof_key(state, headers, client.require_dpop)?;
    Ok(Confirmation { jkt, x5t_s256 })
}
