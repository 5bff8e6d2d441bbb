//! Token exchange (RFC 8693 2.1): reads the request's parameters and
//! hands it to the handler of its `subject_token_type`. Delegation
//! (`actor_token`) is not supported, and the only token type issued is an
//! access token; RFC 8693 2.2.2 answers both with `invalid_request`.

use http::Response;

use super::{TokenRequest, downscope, federated};
use crate::domain::error::OAuthError;
use crate::domain::exchange::{ACCESS_TOKEN_TYPE, Exchange, JWT_TOKEN_TYPE};
use crate::http::error::ApiError;
use crate::http::response::Body;
use crate::state::AppState;

/// Reads an exchange request and dispatches on its subject token type.
pub(super) async fn handle(
    state: &AppState,
    request: &TokenRequest,
) -> Result<Response<Body>, ApiError> {
    let params = &request.params;
    let subject_token = params
        .single("subject_token")?
        .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
    let subject_token_type = params
        .single("subject_token_type")?
        .ok_or_else(|| OAuthError::invalid_request("subject_token_type is required"))?;
    match params.single("requested_token_type")? {
        None | Some(ACCESS_TOKEN_TYPE) => {}
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "requested_token_type: only urn:ietf:params:oauth:token-type:access_token is issued",
            )
            .into());
        }
    }
    if params.single("actor_token")?.is_some() || params.single("actor_token_type")?.is_some() {
        return Err(OAuthError::invalid_request(
            "actor_token: delegation is not supported, only impersonation of the subject",
        )
        .into());
    }
    let mut targets = params.all("audience")?;
    targets.extend(params.all("resource")?);
    let exchange = Exchange {
        subject_token,
        scope: params.single("scope")?,
        targets,
    };
    match subject_token_type {
        ACCESS_TOKEN_TYPE => downscope::handle(state, request, &exchange).await,
        // A trusted issuer's workload token (federation).
        JWT_TOKEN_TYPE => federated::exchange(state, request, &exchange).await,
        // RFC 8693 2.2.2: an unsupported subject token type is
        // `invalid_request`.
        _ => Err(OAuthError::invalid_request(
            "subject_token_type: urn:ietf:params:oauth:token-type:access_token or \
             urn:ietf:params:oauth:token-type:jwt",
        )
        .into()),
    }
}
