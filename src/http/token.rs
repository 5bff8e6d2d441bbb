//! `POST {base}/oauth/token`: reads the form and dispatches on
//! `grant_type`: the client-credentials grant (RFC 6749 4.4, here), the
//! federated grants (RFC 7523 jwt-bearer and RFC 8693 token exchange of a
//! JWT, `federated`). Every grant ends in `token/issue.rs`.

use bytes::Bytes;
use http::{Request, Response};

use super::body::{Params, read_params};
use super::client_auth::authenticate;
use super::client_certificate;
use super::error::ApiError;
use super::federated;
use super::peer_ip;
use super::response::Body;
use crate::domain::error::OAuthError;
use crate::domain::federation::{JWT_BEARER_GRANT, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT};
use crate::state::AppState;

mod issue;

pub use issue::{Issue, issue_token};

/// The client-credentials grant.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

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
