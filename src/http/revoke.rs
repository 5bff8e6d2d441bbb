//! `POST {base}/oauth/revoke` (RFC 7009): a client revokes one of its own
//! tokens. The 200 is sent only after the revocation is durably committed;
//! unknown, expired and malformed tokens get 200 too (RFC 7009 2.2).

use bytes::Bytes;
use http::{Request, Response, StatusCode};

use super::client_auth::read_token_request;
use super::error::{ApiError, StoreCall, store_failed};
use super::response::{Body, CachePolicy, json};
use crate::domain::error::OAuthError;
use crate::state::AppState;
use crate::validation::RevokeError;

/// Handles a revocation request.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (client, token) = read_token_request(state, request).await?;
    let revoked = state
        .validator
        .revoke_own(
            &token,
            &client.id,
            &state.keys(),
            &state.policy,
            state.store.as_ref(),
            state.now(),
        )
        .await
        .map_err(|e| match e {
            RevokeError::NotOwner => OAuthError::UnauthorizedClient(e.to_string().into()),
            RevokeError::Store(e) => store_failed(StoreCall::Revocation, &e),
        })?;
    if let Some(jti) = revoked {
        tracing::info!(jti = %jti, client_id = %client.id, "token revoked");
    }
    Ok(done())
}

fn done() -> Response<Body> {
    json(
        StatusCode::OK,
        Bytes::from_static(b"{}"),
        CachePolicy::NoStore,
    )
}
