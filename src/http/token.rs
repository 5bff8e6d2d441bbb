//! `POST {base}/oauth/token`: reads the request and hands it to its grant:
//! client credentials (RFC 6749 4.4, `token/client_credentials.rs`), token
//! exchange (RFC 8693, `token/exchange.rs`) or the jwt-bearer grant of a
//! trusted issuer's workload token (RFC 7523 2.1, `token/federated.rs`,
//! which also takes a token exchange of such a token). Signing the token,
//! writing the 200 answer and reading a request's DPoP proof are shared
//! here and in `token/proof.rs`.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Serialize;

use super::body::{Params, read_params};
use super::error::ApiError;
use super::response::{Body, CachePolicy, json};
use super::{LoggedClientId, LoggedReason, LoggedSubjectJti, client_certificate, peer_ip};
use crate::domain::certificate::PresentedCertificate;
use crate::domain::client::Client;
use crate::domain::error::OAuthError;
use crate::domain::exchange::TOKEN_EXCHANGE;
use crate::domain::federation::JWT_BEARER_GRANT;
use crate::domain::token::{IssuedToken, TokenShape, mint_shaped};
use crate::state::AppState;

mod client_credentials;
mod downscope;
mod exchange;
mod federated;
mod proof;

/// The `grant_type` of the client-credentials grant.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// A token request as read, for the grant to decide on.
pub(crate) struct TokenRequest {
    /// Method, URI, headers and extensions.
    parts: http::request::Parts,
    /// The form or JSON body.
    params: Params,
    /// The caller's address, when it came through a socket.
    peer: Option<IpAddr>,
    /// The client certificate of the connection, if any.
    certificate: Option<Arc<PresentedCertificate>>,
}

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

/// Issues a token, or explains in RFC 6749 5.2 terms why not.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let peer = peer_ip(&request);
    let (parts, params) = read_params(request, &state.body_limits).await?;
    let request = TokenRequest {
        certificate: client_certificate(&parts.extensions),
        parts,
        params,
        peer,
    };
    match request.params.single("grant_type")? {
        None => Err(OAuthError::invalid_request("grant_type is required").into()),
        Some(CLIENT_CREDENTIALS) => client_credentials::handle(state, &request).await,
        Some(TOKEN_EXCHANGE) => exchange::handle(state, &request).await,
        Some(JWT_BEARER_GRANT) => federated::jwt_bearer(state, &request).await,
        Some(_) => Err(OAuthError::UnsupportedGrantType.into()),
    }
}

/// Signs `shape` for `client` with the active key at `now`; a failure is
/// logged and answered `server_error`.
fn mint(
    state: &AppState,
    client: &Client,
    shape: TokenShape,
    now: i64,
) -> Result<IssuedToken, OAuthError> {
    let keys = state.keys();
    mint_shaped(client, shape, &state.policy, keys.active(), now).map_err(|e| {
        tracing::error!(error = %e, "minting a token failed");
        OAuthError::ServerError
    })
}

/// The 200 answer for `issued` (RFC 6749 5.1; with `issued_token_type`
/// for an exchange, RFC 8693 2.2.1).
fn issued_response(
    state: &AppState,
    issued: &IssuedToken,
    issued_token_type: Option<&'static str>,
) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &issued.access_token,
        issued_token_type,
        token_type: issued.claims.token_type(),
        expires_in: issued.expires_in,
        scope: issued.claims.scope.as_deref(),
    })
    .map_err(|_| OAuthError::ServerError)?;
    state.metrics.tokens_issued.inc();
    let mut response = json(StatusCode::OK, body, CachePolicy::NoStore);
    response
        .extensions_mut()
        .insert(LoggedClientId(issued.claims.client_id.clone()));
    Ok(response)
}

/// What the access log says of a token request beyond its status: the
/// client (once known), the `jti` of an exchange's subject token, and why
/// a refusal was refused when the caller is not told.
#[derive(Debug, Default)]
struct Logged {
    client_id: Option<String>,
    subject_jti: Option<String>,
    reason: Option<&'static str>,
}

impl Logged {
    /// The answer to a request refused once its client is known: `error`
    /// for the caller, the client and `reason` for the log.
    fn refused(client_id: &str, (error, reason): proof::Refusal) -> Response<Body> {
        let mut response = ApiError::from(error).into_response();
        Self {
            client_id: Some(client_id.to_owned()),
            reason: Some(reason),
            ..Self::default()
        }
        .attach(&mut response);
        response
    }

    /// Puts what is known on `response` for the access log.
    fn attach(self, response: &mut Response<Body>) {
        let extensions = response.extensions_mut();
        if let Some(client_id) = self.client_id {
            extensions.insert(LoggedClientId(client_id));
        }
        if let Some(jti) = self.subject_jti {
            extensions.insert(LoggedSubjectJti(jti));
        }
        if let Some(reason) = self.reason {
            extensions.insert(LoggedReason(reason));
        }
    }
}
