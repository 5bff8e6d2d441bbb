//! Request routing: one hyper `Service` that matches `(method, path)` and
//! hands the request to the endpoint's handler. Everything a handler needs is
//! in [`AppState`], built once at start by `app`; the connection's owner
//! hands each service the [`ConnectionActivity`] it counts requests in.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};

pub mod admin;
pub mod body;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod health;
pub mod introspect;
pub mod register;
pub mod response;
pub mod revoke;
pub mod token;
pub mod validate;

use crate::activity::ConnectionActivity;
use crate::domain::certificate::PresentedCertificate;
use crate::logging::access::{self, AccessLine};
use crate::state::AppState;
use error::ApiError;
use response::Body;

/// The endpoints, as matched from the path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST {base}/oauth/token`.
    Token,
    /// `POST {base}/oauth/validate`.
    Validate,
    /// `POST {base}/oauth/introspect`.
    Introspect,
    /// `POST {base}/oauth/revoke`.
    Revoke,
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
    /// `GET /metrics`.
    Metrics,
    /// Anything under `{base}/admin/` (the admin API routes itself).
    Admin,
    /// `{base}/register` and `{base}/register/{client_id}` (RFC 7591/7592).
    Register,
}

impl Route {
    /// Matches a path against the routes under `base`.
    pub fn from_path(base: &str, path: &str) -> Option<Self> {
        match path {
            "/health" => return Some(Self::Health),
            "/health/live" => return Some(Self::Live),
            "/health/ready" => return Some(Self::Ready),
            "/metrics" => return Some(Self::Metrics),
            "/.well-known/jwks.json" => return Some(Self::Jwks),
            "/.well-known/oauth-authorization-server" => return Some(Self::Metadata),
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/.well-known/oauth-authorization-server") {
            return (rest == base).then_some(Self::Metadata);
        }
        match path.strip_prefix(base)? {
            "/oauth/token" => Some(Self::Token),
            "/oauth/validate" => Some(Self::Validate),
            "/oauth/introspect" => Some(Self::Introspect),
            "/oauth/revoke" => Some(Self::Revoke),
            "/oauth/jwks" => Some(Self::Jwks),
            "/oauth/" => Some(Self::Health),
            "/.well-known/openid-configuration" => Some(Self::Metadata),
            rest if rest.starts_with("/admin/") => Some(Self::Admin),
            "/register" => Some(Self::Register),
            rest if rest.starts_with("/register/") => Some(Self::Register),
            _ => None,
        }
    }

    /// The methods the route answers, as sent in `Allow`.
    pub fn allow(self) -> &'static str {
        match self {
            Self::Token | Self::Validate | Self::Introspect | Self::Revoke => "POST",
            Self::Admin => "GET, POST, PATCH, DELETE",
            Self::Register => "GET, POST, PUT, DELETE",
            _ => "GET, HEAD",
        }
    }

    /// A label for logs and metrics (bounded: one per route).
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Validate => "validate",
            Self::Introspect => "introspect",
            Self::Revoke => "revoke",
            Self::Jwks => "jwks",
            Self::Metadata => "metadata",
            Self::Health => "health",
            Self::Live => "live",
            Self::Ready => "ready",
            Self::Metrics => "metrics",
            Self::Admin => "admin",
            Self::Register => "register",
        }
    }
}

/// The connection's peer address, attached to each request by [`AuthService`].
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The client certificate of the request's connection, read once after the
/// handshake; attached to each request by [`AuthService`] when there is one.
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub Arc<PresentedCertificate>);

/// The client certificate a request came with, if any.
pub fn client_certificate(extensions: &http::Extensions) -> Option<Arc<PresentedCertificate>> {
    extensions
        .get::<ClientCertificate>()
        .map(|c| Arc::clone(&c.0))
}

/// The peer IP of a request, if it came through a socket.
pub fn peer_ip<B>(request: &Request<B>) -> Option<std::net::IpAddr> {
    request.extensions().get::<PeerAddr>().map(|p| p.0.ip())
}

/// The request's id (`X-Request-Id`), attached to each request by
/// [`AuthService`] for handlers that record it (the audit trail).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Client id of a token request, attached to the response for the access log.
#[derive(Debug, Clone)]
pub struct LoggedClientId(pub String);

/// The `jti` of a token exchange's subject token (a `jti` is no secret),
/// attached to the response for the access log.
#[derive(Debug, Clone)]
pub struct LoggedSubjectJti(pub String);

/// Why a request was refused, when the caller is not told: attached to the
/// response for the access log.
#[derive(Debug, Clone, Copy)]
pub struct LoggedReason(pub &'static str);

/// Handles one request. Generic over the body so benches and tests can call
/// it without sockets.
pub async fn handle<B>(state: &AppState, request: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let route = Route::from_path(&state.base_path, request.uri().path());
    handle_route(state, route, request).await
}

/// Handles one request whose path has already been matched to `route`.
async fn handle_route<B>(
    state: &AppState,
    route: Option<Route>,
    request: Request<B>,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let is_get = matches!(*request.method(), Method::GET | Method::HEAD);
    let is_post = request.method() == Method::POST;
    let is_write = !is_get && matches!(route, Some(Route::Admin | Route::Register));
    if (is_post || is_write) && route.is_some() {
        // The global bucket comes before any parsing or cryptography.
        if let Err(denied) = state.limits.check_global() {
            return ApiError::from(denied).into_response();
        }
    }
    let result = match route {
        None => Err(ApiError::NotFound),
        Some(Route::Token) if is_post => token::handle(state, request).await,
        Some(Route::Validate) if is_post => validate::handle(state, request).await,
        Some(Route::Introspect) if is_post => introspect::handle(state, request).await,
        Some(Route::Revoke) if is_post => revoke::handle(state, request).await,
        Some(Route::Jwks) if is_get => Ok(discovery::jwks(state)),
        Some(Route::Metadata) if is_get => Ok(discovery::metadata(state)),
        Some(Route::Health) if is_get => Ok(health::health(state)),
        Some(Route::Live) if is_get => Ok(health::live()),
        Some(Route::Ready) if is_get => Ok(health::ready(state)),
        Some(Route::Metrics) if is_get => metrics_response(state, &request),
        Some(Route::Admin) => admin::handle(state, request).await,
        Some(Route::Register) if state.registration.enabled => {
            register::handle(state, request).await
        }
        Some(Route::Register) => Err(ApiError::NotFound),
        Some(route) => Err(ApiError::MethodNotAllowed(route.allow())),
    };
    result.unwrap_or_else(|error| {
        let refused_body = match error {
            ApiError::BodyTooSlow => Some("too_slow"),
            ApiError::BodyBufferFull => Some("buffer_full"),
            _ => None,
        };
        if let Some(reason) = refused_body {
            state
                .metrics
                .bodies_refused
                .with_label_values(&[reason])
                .inc();
        }
        error.into_response()
    })
}

/// `/metrics`, for whoever [`may_read_metrics`] lets in.
fn metrics_response<B>(state: &AppState, request: &Request<B>) -> Result<Response<Body>, ApiError> {
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(http::HeaderValue::as_bytes);
    may_read_metrics(
        state.metrics_token.as_ref().map(|t| t.0.as_bytes()),
        authorization,
        peer_ip(request),
    )?;
    let mut text = state.metrics.render(&crate::metrics::ScrapeSources {
        validation: state.validator.stats(),
        limits: state.limits.stats(),
        keys: state.keys().timeline().copied(),
        now: state.now(),
        pool: state.store.pool_status(),
    });
    if state.federation.is_enabled() {
        let issuers = state.federation.statuses();
        text.extend_from_slice(crate::metrics::Metrics::render_federation(&issuers).as_bytes());
    }
    Ok(response::with_content_type(
        http::StatusCode::OK,
        text,
        "text/plain; version=0.0.4; charset=utf-8",
        response::CachePolicy::NoStore,
    ))
}

/// Who may read `/metrics`: with a token configured, whoever presents it
/// (compared in constant time), loopback callers included; without one,
/// loopback callers only (a local agent or sidecar). `peer` is `None` for
/// requests that did not come through a socket.
fn may_read_metrics(
    token: Option<&[u8]>,
    authorization: Option<&[u8]>,
    peer: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    match token {
        Some(expected) => {
            let presented = authorization
                .and_then(|v| v.strip_prefix(b"Bearer "))
                .unwrap_or_default();
            let matches: bool = subtle::ConstantTimeEq::ct_eq(presented, expected).into();
            if matches {
                Ok(())
            } else {
                Err(ApiError::MetricsTokenRequired)
            }
        }
        None if peer.is_some_and(|ip| !ip.to_canonical().is_loopback()) => {
            Err(ApiError::MetricsLoopbackOnly)
        }
        None => Ok(()),
    }
}

/// `X-Request-Id`, in requests and responses.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` if it is short and plain, else a new one:
/// a per-process random prefix and a counter.
fn request_id(headers: &http::HeaderMap) -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let given = headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if let Some(id) = given {
        return id.to_owned();
    }
    let prefix = PREFIX
        .get_or_init(|| crate::domain::client::random_bytes::<4>().map_or(0, u32::from_be_bytes));
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // `{prefix:08x}-{n:012x}`, without the formatting machinery.
    let mut id = String::with_capacity(21);
    push_hex(&mut id, u64::from(*prefix), 8);
    id.push('-');
    push_hex(&mut id, n, 12);
    id
}

/// Appends `n` in lower-case hex, zero-padded to at least `width` digits
/// (at most 16).
fn push_hex(out: &mut String, n: u64, width: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - n.leading_zeros() as usize)
        .div_ceil(4)
        .max(width.min(16));
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((n >> (4 * i)) & 0xf) as usize]));
    }
}

/// The hyper service for one connection.
#[derive(Clone)]
pub struct AuthService {
    state: Arc<AppState>,
    peer: SocketAddr,
    /// The peer's address as the access line writes it, rendered once.
    peer_text: Arc<str>,
    activity: Arc<ConnectionActivity>,
    certificate: Option<Arc<PresentedCertificate>>,
}

impl AuthService {
    /// A service for a connection from `peer` that counts its requests in
    /// `activity`, which the connection's idle timer watches.
    pub fn new(state: Arc<AppState>, peer: SocketAddr, activity: Arc<ConnectionActivity>) -> Self {
        Self {
            state,
            peer,
            peer_text: peer.ip().to_string().into(),
            activity,
            certificate: None,
        }
    }

    /// The same service for a connection on which the client presented
    /// `certificate`.
    pub fn with_client_certificate(mut self, certificate: Option<PresentedCertificate>) -> Self {
        self.certificate = certificate.map(Arc::new);
        self
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for AuthService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<hyper::body::Incoming>) -> Self::Future {
        let state = Arc::clone(&self.state);
        let peer = self.peer;
        let peer_text = Arc::clone(&self.peer_text);
        request.extensions_mut().insert(PeerAddr(peer));
        if let Some(certificate) = &self.certificate {
            request
                .extensions_mut()
                .insert(ClientCertificate(Arc::clone(certificate)));
        }
        let request_id = request_id(request.headers());
        request
            .extensions_mut()
            .insert(RequestId(request_id.clone()));
        // The body reader marks waits for the client on the connection.
        request.extensions_mut().insert(Arc::clone(&self.activity));
        let in_flight = self.activity.start();
        Box::pin(async move {
            // Dropped with the future: when the response is ready, or when
            // the client gives up on the request.
            let _in_flight = in_flight;
            let started = Instant::now();
            let method = request.method().clone();
            let version = request.version();
            let route = Route::from_path(&state.base_path, request.uri().path());
            let mut response = handle_route(&state, route, request).await;
            if state.status.is_draining()
                && matches!(version, http::Version::HTTP_10 | http::Version::HTTP_11)
            {
                // Shutting down: a kept-alive client should send its next
                // request on a new connection, which the load balancer gives
                // to another instance, rather than race this one's close.
                // (HTTP/2 gets a GOAWAY when the drain starts.)
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            let route = route.map_or("unknown", Route::name);
            state.metrics.observe_request(
                route,
                response.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
            let client_id = response
                .extensions()
                .get::<LoggedClientId>()
                .map_or("", |c| c.0.as_str());
            let reason = response
                .extensions()
                .get::<LoggedReason>()
                .map_or("", |r| r.0);
            let subject_jti = response
                .extensions()
                .get::<LoggedSubjectJti>()
                .map_or("", |j| j.0.as_str());
            access::log(&AccessLine {
                request_id: &request_id,
                method: method.as_str(),
                route,
                status: response.status().as_u16(),
                latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                client_id,
                reason,
                subject_jti,
                peer: &peer_text,
            });
            if let Ok(value) = http::HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_need_the_token_or_a_loopback_caller() {
        let loopback = Some("127.0.0.1".parse().unwrap());
        let mapped = Some("::ffff:127.0.0.1".parse().unwrap());
        let remote = Some("192.0.2.1".parse().unwrap());
        assert!(may_read_metrics(None, None, loopback).is_ok());
        assert!(may_read_metrics(None, None, mapped).is_ok());
        assert!(may_read_metrics(None, None, Some("::1".parse().unwrap())).is_ok());
        assert!(matches!(
            may_read_metrics(None, None, remote),
            Err(ApiError::MetricsLoopbackOnly)
        ));
        let token = Some(&b"0123456789abcdef0123456789abcdef"[..]);
        let bearer = Some(&b"Bearer 0123456789abcdef0123456789abcdef"[..]);
        assert!(may_read_metrics(token, bearer, remote).is_ok());
        for wrong in [None, Some(&b"Bearer 0123"[..]), Some(&b"Basic x"[..])] {
            assert!(matches!(
                may_read_metrics(token, wrong, loopback),
                Err(ApiError::MetricsTokenRequired)
            ));
        }
    }

    #[test]
    fn request_ids_are_a_prefix_and_a_counter_in_hex() {
        for (n, width, text) in [
            (0, 12, "000000000000"),
            (0x2a, 12, "00000000002a"),
            (0xdead_beef, 8, "deadbeef"),
            (0x1_0000_0000_0000, 12, "1000000000000"),
            (u64::MAX, 12, "ffffffffffffffff"),
        ] {
            let mut out = String::new();
            push_hex(&mut out, n, width);
            assert_eq!(out, text);
            assert_eq!(out, format!("{n:0width$x}"));
        }
        let first = request_id(&http::HeaderMap::new());
        let second = request_id(&http::HeaderMap::new());
        assert_eq!(first.len(), 21, "{first}");
        assert_eq!(first[..9], second[..9], "one prefix per process");
        assert_ne!(first, second);
        let mut given = http::HeaderMap::new();
        given.insert(X_REQUEST_ID, http::HeaderValue::from_static("deploy-42"));
        assert_eq!(request_id(&given), "deploy-42");
        given.insert(X_REQUEST_ID, http::HeaderValue::from_static("not plain!"));
        assert_ne!(request_id(&given), "not plain!");
    }

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
