//! Building responses: every one carries the security headers and its
//! content type (JSON, but for the metrics text); sensitive ones are marked
//! uncacheable.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// The response body type of every handler.
pub type Body = Full<Bytes>;

/// Whether a response may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Tokens, errors, introspection: `Cache-Control: no-store`, `Pragma: no-cache`.
    NoStore,
    /// Metadata: `Cache-Control: public, max-age=300`.
    Public,
    /// The JWKS: `Cache-Control: public, max-age=<seconds>`
    /// (`http.jwks_max_age_secs`).
    PublicFor(u32),
}

/// A JSON response with the security headers.
pub fn json(status: StatusCode, body: impl Into<Bytes>, cache: CachePolicy) -> Response<Body> {
    with_content_type(status, body, "application/json", cache)
}

/// A response with an explicit content type and the security headers.
pub fn with_content_type(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
    cache: CachePolicy,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    // Room for these headers and the few added later (`X-Request-Id`,
    // `WWW-Authenticate`, `Retry-After`) without growing the map.
    *response.headers_mut() = HeaderMap::with_capacity(10);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    match cache {
        CachePolicy::NoStore => {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        }
        CachePolicy::Public => {
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
        }
        CachePolicy::PublicFor(secs) => {
            let value = HeaderValue::try_from(format!("public, max-age={secs}"))
                .unwrap_or(HeaderValue::from_static("public, max-age=300"));
            headers.insert(header::CACHE_CONTROL, value);
        }
    }
    response
}
