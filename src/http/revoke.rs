//! `POST {base}/oauth/revoke` (RFC 7009): a client revokes one of its own
//! tokens. The 200 is sent only after the revocation is durably committed;
//! unknown, expired and malformed tokens get 200 too (RFC 7009 2.2).

use bytes::Bytes;
use http::{Request, Response, StatusCode};

use super::AppState;
use super::client_auth::read_token_request;
use super::error::ApiError;
use super::response::{Body, CachePolicy, json};
use crate::domain::error::OAuthError;
use crate::domain::token::verify_signature;
use crate::store::Revocation;

/// Handles a revocation request.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (client, token) = read_token_request(state, request).await?;
    let token = token.as_str();

    let now = state.now();
    // Not ours, or not a token at all: nothing to revoke.
    let Ok(claims) = verify_signature(token, &state.keys(), &state.policy) else {
        return Ok(done());
    };
    if claims.client_id != client.id {
        return Err(OAuthError::UnauthorizedClient(
            "a client may revoke only its own tokens".into(),
        )
        .into());
    }
    if claims.exp <= now || state.validator.revocations().contains(&claims.jti) {
        return Ok(done());
    }
    let revocation = Revocation {
        jti: claims.jti.clone(),
        client_id: claims.client_id.clone(),
        exp: claims.exp,
        revoked_at: now,
    };
    state.store.revoke(&revocation).await.map_err(|e| {
        tracing::warn!(error = %e, "revocation could not be stored");
        OAuthError::TemporarilyUnavailable("the revocation could not be stored; retry".into())
    })?;
    state
        .validator
        .revocations()
        .insert(revocation.jti, revocation.exp);
    state.validator.forget(token);
    tracing::info!(jti = %claims.jti, client_id = %client.id, "token revoked");
    Ok(done())
}

fn done() -> Response<Body> {
    json(
        StatusCode::OK,
        Bytes::from_static(b"{}"),
        CachePolicy::NoStore,
    )
}
