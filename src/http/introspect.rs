//! `POST {base}/oauth/introspect` (RFC 7662): an authenticated client asks
//! whether a token is active. Anything unknown, malformed, forged, expired or
//! revoked is `{"active":false}`. An active bound token also shows its
//! `cnf` (RFC 8705 3.2, RFC 9449 6.2) and `token_type` `DPoP` for a DPoP key;
//! an exchanged one its `derived_from`.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::json;

use super::client_auth::read_token_request;
use super::error::ApiError;
use super::response::{Body, CachePolicy, json};
use crate::state::AppState;

/// Answers an introspection request.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (_client, token) = read_token_request(state, request).await?;
    let token = token.as_str();

    let body = match state.validate_token(token).await {
        Ok(validated) => {
            let claims = validated.claims;
            let mut body = json!({
                "active": true,
                "client_id": claims.client_id,
                "token_type": claims.token_type(),
                "exp": claims.exp,
                "iat": claims.iat,
                "nbf": claims.nbf,
                "sub": claims.sub,
                "aud": claims.aud,
                "iss": claims.iss,
                "jti": claims.jti,
            });
            if let Some(obj) = body.as_object_mut() {
                if let Some(scope) = &claims.scope {
                    obj.insert("scope".into(), scope.as_str().into());
                }
                if let Some(cnf) = &claims.cnf {
                    obj.insert("cnf".into(), json!(cnf));
                }
                if !claims.derived_from.is_empty() {
                    obj.insert("derived_from".into(), json!(claims.derived_from));
                }
            }
            body
        }
        Err(_) => json!({ "active": false }),
    };
    Ok(json(StatusCode::OK, body.to_string(), CachePolicy::NoStore))
}
