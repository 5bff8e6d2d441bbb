//! Discovery: the JWKS (RFC 7517, precomputed whenever the keys change) and
//! authorization server metadata (RFC 8414, precomputed at start), both
//! cacheable by clients.

use http::{Response, StatusCode};

use super::response::{Body, CachePolicy, json};
use crate::state::AppState;

/// `GET {base}/oauth/jwks` and `/.well-known/jwks.json`: every published
/// key (current, next, previous), the same document on every instance.
pub fn jwks(state: &AppState) -> Response<Body> {
    json(
        StatusCode::OK,
        state.keys().jwks_json().to_vec(),
        CachePolicy::PublicFor(state.jwks_max_age_secs),
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
