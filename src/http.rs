//! Request routing: one hyper `Service` that matches `(method, path)` and
//! hands the request to the endpoint's handler. Everything a handler needs is
//! in [`AppState`], built once at start.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};

use crate::cache::ClientCache;
use crate::config::Config;
use crate::domain::token::TokenPolicy;
use crate::keys::KeySet;
use crate::store::ClientStore;

pub mod body;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod health;
pub mod response;
pub mod token;

use error::ApiError;
use response::Body;

/// Everything the handlers share, immutable after start.
pub struct AppState {
    /// Prefix of the OAuth endpoints, e.g. `/auth-server/v1`.
    pub base_path: String,
    /// Settings that shape every token (issuer, lifetime, leeways).
    pub policy: TokenPolicy,
    /// Signing and verification keys.
    pub keys: KeySet,
    /// Clients, cached in front of the store.
    pub clients: ClientCache,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Precomputed RFC 8414 metadata document.
    pub metadata_json: Bytes,
    /// Precomputed `/health` document.
    pub health_json: Bytes,
}

impl AppState {
    /// Builds the state from the validated `config`, the `issuer` in use (it
    /// depends on the bound port), the parsed `keys` and the client `store`.
    /// The server and the benches both build their state here.
    pub fn new(config: &Config, issuer: &str, keys: KeySet, store: Arc<dyn ClientStore>) -> Self {
        Self {
            base_path: config.base_path().to_owned(),
            metadata_json: discovery::metadata_document(issuer, &keys, &config.scope_names())
                .into(),
            health_json: health::health_document(),
            policy: TokenPolicy {
                issuer: issuer.to_owned(),
                default_lifetime_secs: config.token.lifetime_secs,
                default_audience: config.token.default_audience.clone(),
                nbf_leeway_secs: config.token.nbf_leeway_secs,
                exp_leeway_secs: config.token.exp_leeway_secs,
            },
            keys,
            clients: ClientCache::new(
                store,
                config.cache.client_capacity,
                Duration::from_secs(config.cache.client_ttl_secs),
            ),
            max_body_bytes: config.http.max_body_bytes,
        }
    }

    /// Current Unix time in seconds; the only clock the handlers read.
    pub fn now(&self) -> i64 {
        crate::clock::unix_now()
    }
}

/// The endpoints, as matched from the path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST {base}/oauth/token`.
    Token,
    /// `GET {base}/oauth/jwks`, `/.well-known/jwks.json`.
    Jwks,
    /// RFC 8414 metadata at its three paths.
    Metadata,
    /// `GET /health`, `GET {base}/oauth/`.
    Health,
    /// `GET /health/live`.
    Live,
    /// `GET /health/ready`.
    Ready,
}

impl Route {
    /// Matches a path against the routes under `base`.
    pub fn from_path(base: &str, path: &str) -> Option<Self> {
        match path {
            "/health" => return Some(Self::Health),
            "/health/live" => return Some(Self::Live),
            "/health/ready" => return Some(Self::Ready),
            "/.well-known/jwks.json" => return Some(Self::Jwks),
            "/.well-known/oauth-authorization-server" => return Some(Self::Metadata),
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/.well-known/oauth-authorization-server") {
            return (rest == base).then_some(Self::Metadata);
        }
        match path.strip_prefix(base)? {
            "/oauth/token" => Some(Self::Token),
            "/oauth/jwks" => Some(Self::Jwks),
            "/oauth/" => Some(Self::Health),
            "/.well-known/openid-configuration" => Some(Self::Metadata),
            _ => None,
        }
    }

    /// The methods the route answers, as sent in `Allow`.
    pub fn allow(self) -> &'static str {
        match self {
            Self::Token => "POST",
            _ => "GET, HEAD",
        }
    }

    /// A label for logs and metrics (bounded: one per route).
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Jwks => "jwks",
            Self::Metadata => "metadata",
            Self::Health => "health",
            Self::Live => "live",
            Self::Ready => "ready",
        }
    }
}

/// Client id of a token request, attached to the response for the access log.
#[derive(Debug, Clone)]
pub struct LoggedClientId(pub String);

/// Handles one request. Generic over the body so benches and tests can call
/// it without sockets.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let route = Route::from_path(&state.base_path, request.uri().path());
    let is_get = matches!(*request.method(), Method::GET | Method::HEAD);
    let result = match route {
        None => Err(ApiError::NotFound),
        Some(Route::Token) if request.method() == Method::POST => {
            token::handle(state, request).await
        }
        Some(Route::Jwks) if is_get => Ok(discovery::jwks(state)),
        Some(Route::Metadata) if is_get => Ok(discovery::metadata(state)),
        Some(Route::Health) if is_get => Ok(health::health(state)),
        Some(Route::Live) if is_get => Ok(health::live()),
        Some(Route::Ready) if is_get => Ok(health::ready()),
        Some(route) => Err(ApiError::MethodNotAllowed(route.allow())),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// The hyper service for one connection.
#[derive(Clone)]
pub struct AuthService {
    state: Arc<AppState>,
    peer: SocketAddr,
}

impl AuthService {
    /// A service for a connection from `peer`.
    pub fn new(state: Arc<AppState>, peer: SocketAddr) -> Self {
        Self { state, peer }
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for AuthService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let state = Arc::clone(&self.state);
        let peer = self.peer;
        Box::pin(async move {
            let started = Instant::now();
            let method = request.method().clone();
            let route = Route::from_path(&state.base_path, request.uri().path())
                .map_or("unknown", Route::name);
            let response = handle(&state, request).await;
            let client_id = response
                .extensions()
                .get::<LoggedClientId>()
                .map_or("", |c| c.0.as_str());
            tracing::info!(
                target: "access",
                method = %method,
                route,
                status = response.status().as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                client_id,
                peer = %peer.ip(),
            );
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let base = "/auth-server/v1";
        let r = |p| Route::from_path(base, p);
        assert_eq!(r("/auth-server/v1/oauth/token"), Some(Route::Token));
        assert_eq!(r("/auth-server/v1/oauth/jwks"), Some(Route::Jwks));
        assert_eq!(r("/.well-known/jwks.json"), Some(Route::Jwks));
        assert_eq!(
            r("/.well-known/oauth-authorization-server/auth-server/v1"),
            Some(Route::Metadata)
        );
        assert_eq!(
            r("/.well-known/oauth-authorization-server"),
            Some(Route::Metadata)
        );
        assert_eq!(
            r("/auth-server/v1/.well-known/openid-configuration"),
            Some(Route::Metadata)
        );
        assert_eq!(r("/auth-server/v1/oauth/"), Some(Route::Health));
        assert_eq!(r("/health"), Some(Route::Health));
        for missing in [
            "/",
            "/debug/pprof/",
            "/auth-server/v1/oauth/token/",
            "/auth-server/v1/oauth",
            "/auth-server/v2/oauth/token",
            "/.well-known/oauth-authorization-server/other",
            "/auth-server/v1/../v1/oauth/token",
            "/AUTH-SERVER/v1/oauth/token",
        ] {
            assert_eq!(r(missing), None, "{missing}");
        }
    }
}
