//! Discovery: the JWKS (RFC 7517) and authorization server metadata
//! (RFC 8414), both precomputed and cacheable by clients.

use http::{Response, StatusCode};

use super::response::{Body, CachePolicy, json};
use crate::state::AppState;

/// `GET {base}/oauth/jwks` and `/.well-known/jwks.json`.
pub fn jwks(state: &AppState) -> Response<Body> {
    json(
        StatusCode::OK,
        state.keys().jwks_json().to_vec(),
        CachePolicy::Public,
    )
}

/// RFC 8414 metadata at its three paths.
pub fn metadata(state: &AppState) -> Response<Body> {
    json(
        StatusCode::OK,
        state.metadata_json.clone(),
        CachePolicy::Public,
    )
}
