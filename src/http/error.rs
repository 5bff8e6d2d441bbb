//! The one place where errors become HTTP status codes and headers.

use http::{HeaderValue, Response, StatusCode, header};

use super::response::{Body, CachePolicy, json};
use crate::admin::AdminError;
use crate::domain::error::OAuthError;
use crate::keyring::KeyringError;
use crate::limit::Denied;
use crate::store::StoreError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An OAuth error (RFC 6749 / 6750 / 7009 vocabulary).
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The body exceeds `http.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body missed its deadline or fell under the minimum rate.
    #[error("request body too slow")]
    BodyTooSlow,
    /// Buffering the body would pass the server-wide budget.
    #[error("request body buffer full")]
    BodyBufferFull,
    /// `/metrics` needs the configured bearer token.
    #[error("metrics token required")]
    MetricsTokenRequired,
    /// `/metrics` answers loopback callers only (no token configured).
    #[error("metrics are served to loopback callers only")]
    MetricsLoopbackOnly,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// The route exists but not for this method; carries the `Allow` value.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// An admin API change was refused or failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// An admin API key operation was refused or failed.
    #[error(transparent)]
    Keys(#[from] KeyringError),
    /// Dynamic registration: the client metadata is not acceptable
    /// (RFC 7591 `invalid_client_metadata`).
    #[error("invalid client metadata: {0}")]
    InvalidClientMetadata(String),
    /// Dynamic registration: redirect URIs were sent (RFC 7591
    /// `invalid_redirect_uri`).
    #[error("invalid redirect URI: {0}")]
    InvalidRedirectUri(String),
    /// The admin API has no such client (or registration has no such
    /// registered client).
    #[error("no such client")]
    NoSuchClient,
}

impl From<Denied> for OAuthError {
    fn from(denied: Denied) -> Self {
        Self::RateLimited {
            retry_after_secs: denied.retry_after_secs,
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        Self::OAuth(denied.into())
    }
}

/// A store call that a request waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCall {
    /// Reading the client that authenticates.
    ClientLookup,
    /// Committing a revocation before answering 200.
    Revocation,
    /// Recording a client assertion's `jti` fleet-wide before accepting it.
    AssertionReplay,
    /// Reading the federated subjects an external token maps by.
    FederatedSubjects,
}

/// The error for a request whose store call failed: 503
/// `temporarily_unavailable` with `Retry-After`, whatever the failure (an
/// outage, a timeout, a row that does not decode), as the caller can only
/// retry. The cause goes to the log, never into the response.
pub fn store_failed(call: StoreCall, error: &StoreError) -> OAuthError {
    let description = match call {
        StoreCall::ClientLookup => {
            tracing::warn!(%error, "client lookup failed");
            "the client store is unavailable"
        }
        StoreCall::Revocation => {
            tracing::warn!(%error, "revocation could not be stored");
            "the revocation could not be stored; retry"
        }
        StoreCall::AssertionReplay => {
            tracing::warn!(%error, "a client assertion's jti could not be recorded");
            "the client store is unavailable"
        }
        StoreCall::FederatedSubjects => {
            tracing::warn!(%error, "federated subjects could not be read");
            "the client store is unavailable"
        }
    };
    OAuthError::TemporarilyUnavailable(description.into())
}

/// The `WWW-Authenticate` realm for client authentication.
const BASIC_CHALLENGE: &str = r#"Basic realm="auth-server", charset="UTF-8""#;

impl ApiError {
    /// Renders the error as an RFC 6749 5.2-shaped JSON response.
    pub fn into_response(self) -> Response<Body> {
        match self {
            Self::OAuth(e) => oauth_error_response(&e),
            Self::PayloadTooLarge => error_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            ),
            Self::BodyTooSlow => {
                let mut response = error_body(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request",
                    "the request body did not arrive in time",
                );
                // The rest of the body may still come: this connection is done.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
            Self::BodyBufferFull => oauth_error_response(&OAuthError::TemporarilyUnavailable(
                "the server is receiving too many request bodies; retry".into(),
            )),
            Self::MetricsTokenRequired => {
                let mut response = error_body(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "metrics require the configured bearer token",
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="metrics""#),
                );
                response
            }
            Self::MetricsLoopbackOnly => error_body(
                StatusCode::FORBIDDEN,
                "access_denied",
                "metrics are served to loopback callers only unless METRICS_TOKEN is set",
            ),
            Self::NotFound => error_body(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
            Self::NoSuchClient => error_body(StatusCode::NOT_FOUND, "not_found", "no such client"),
            Self::Admin(e) => admin_error_response(e),
            Self::InvalidClientMetadata(why) => {
                error_body(StatusCode::BAD_REQUEST, "invalid_client_metadata", &why)
            }
            Self::InvalidRedirectUri(why) => {
                error_body(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &why)
            }
            Self::Keys(e) => keys_error_response(&e),
            Self::MethodNotAllowed(allow) => {
                let mut response = error_body(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed for this endpoint",
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                response
            }
        }
    }
}

fn oauth_error_response(e: &OAuthError) -> Response<Body> {
    let status = match e {
        OAuthError::InvalidClient | OAuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
        OAuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
        OAuthError::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        OAuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        OAuthError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        OAuthError::InvalidRequest(_)
        | OAuthError::UnauthorizedClient(_)
        | OAuthError::UnsupportedGrantType
        | OAuthError::InvalidScope(_)
        | OAuthError::InvalidDpopProof(_)
        | OAuthError::InvalidTarget(_)
        | OAuthError::InvalidGrant(_) => StatusCode::BAD_REQUEST,
    };
    let mut response = error_body(status, e.code(), &e.description());
    let headers = response.headers_mut();
    match e {
        OAuthError::InvalidClient => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        OAuthError::InvalidToken(_) => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        }
        OAuthError::InsufficientScope { required } => {
            let value = format!(r#"Bearer error="insufficient_scope", scope="{required}""#);
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        OAuthError::TemporarilyUnavailable(_) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        OAuthError::RateLimited { retry_after_secs } => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from((*retry_after_secs).max(1)),
            );
        }
        _ => {}
    }
    response
}

fn admin_error_response(e: AdminError) -> Response<Body> {
    match e {
        AdminError::NotFound(_) => error_body(StatusCode::NOT_FOUND, "not_found", "no such client"),
        AdminError::Invalid(message) => {
            error_body(StatusCode::BAD_REQUEST, "invalid_request", &message)
        }
        AdminError::Store(e) => store_error_response(&e),
        AdminError::Random(_) => oauth_error_response(&OAuthError::ServerError),
    }
}

fn store_error_response(e: &StoreError) -> Response<Body> {
    match e {
        StoreError::Duplicate(_) => error_body(
            StatusCode::CONFLICT,
            "conflict",
            "a client with this id already exists",
        ),
        StoreError::Conflict(_) => error_body(
            StatusCode::CONFLICT,
            "conflict",
            "changed meanwhile by another writer; read again and retry",
        ),
        _ => {
            tracing::warn!(error = %e, "admin store call failed");
            oauth_error_response(&OAuthError::TemporarilyUnavailable(
                "the store is unavailable; retry".into(),
            ))
        }
    }
}

fn keys_error_response(e: &KeyringError) -> Response<Body> {
    match e {
        KeyringError::Store(e) => store_error_response(e),
        KeyringError::Lifecycle(e) => error_body(StatusCode::CONFLICT, "conflict", &e.to_string()),
        _ => oauth_error_response(&OAuthError::ServerError),
    }
}

fn error_body(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": code, "error_description": description });
    json(status, body.to_string().into_bytes(), CachePolicy::NoStore)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response<Body>, name: header::HeaderName) -> &str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    #[test]
    fn invalid_client_is_401_with_basic_challenge() {
        let r = ApiError::from(OAuthError::InvalidClient).into_response();
        assert_eq!(r.status(), 401);
        assert!(header(&r, header::WWW_AUTHENTICATE).starts_with("Basic realm="));
        assert_eq!(header(&r, header::CACHE_CONTROL), "no-store");
        assert_eq!(header(&r, header::PRAGMA), "no-cache");
    }

    #[test]
    fn statuses_follow_the_rfcs() {
        let cases = [
            (OAuthError::invalid_request("x"), 400),
            (OAuthError::UnsupportedGrantType, 400),
            (OAuthError::InvalidScope("x".into()), 400),
            (OAuthError::InvalidTarget("x".into()), 400),
            (OAuthError::InvalidGrant("x".into()), 400),
            (OAuthError::InvalidDpopProof("x".into()), 400),
            (OAuthError::UnauthorizedClient("x".into()), 400),
            (OAuthError::InvalidToken("x".into()), 401),
            (
                OAuthError::InsufficientScope {
                    required: "a".into(),
                },
                403,
            ),
            (
                OAuthError::RateLimited {
                    retry_after_secs: 0,
                },
                429,
            ),
            (OAuthError::TemporarilyUnavailable("x".into()), 503),
        ];
        for (e, status) in cases {
            assert_eq!(
                ApiError::from(e.clone()).into_response().status(),
                status,
                "{e:?}"
            );
        }
        let r = ApiError::from(OAuthError::RateLimited {
            retry_after_secs: 0,
        })
        .into_response();
        assert_eq!(header(&r, header::RETRY_AFTER), "1");
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let r = ApiError::MethodNotAllowed("POST").into_response();
        assert_eq!(r.status(), 405);
        assert_eq!(header(&r, header::ALLOW), "POST");
        assert_eq!(ApiError::PayloadTooLarge.into_response().status(), 413);
    }
}
