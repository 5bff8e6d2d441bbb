//! The OAuth endpoints as plain calls on any server, in-process or a child
//! process: an HTTPS client and the server's base URL are all they need.
//! Every test that asks for, validates, introspects or revokes a token over
//! reqwest does it through these.

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::json_body;

/// The OAuth endpoints' path prefix (`http.base_path`).
pub const BASE_PATH: &str = "/auth-server/v1";

/// Path of the OAuth endpoint `name` (token, validate, revoke...).
pub fn path(name: &str) -> String {
    format!("{BASE_PATH}/oauth/{name}")
}

/// URL of the OAuth endpoint `name` on the server at `base_url`.
pub fn endpoint(base_url: &str, name: &str) -> String {
    format!("{base_url}{}", path(name))
}

/// A client-credentials token request with Basic authentication and the
/// further form fields `extra`, ready to send.
pub fn token_post(
    http: &reqwest::Client,
    base_url: &str,
    id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> RequestBuilder {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    http.post(endpoint(base_url, "token"))
        .basic_auth(id, Some(secret))
        .form(&form)
}

/// Sends a client-credentials token request with Basic authentication;
/// the answer, whatever it is.
pub async fn token_request(
    http: &reqwest::Client,
    base_url: &str,
    id: &str,
    secret: &str,
) -> Response {
    token_post(http, base_url, id, secret, &[])
        .send()
        .await
        .unwrap()
}

/// The body of a token response (asserting 200), asked for with Basic
/// authentication and the further form fields `extra`.
pub async fn token_body(
    http: &reqwest::Client,
    base_url: &str,
    id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> Value {
    let response = token_post(http, base_url, id, secret, extra)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    json_body(response).await
}

/// Gets an access token (asserting 200) with Basic authentication.
pub async fn token(http: &reqwest::Client, base_url: &str, id: &str, secret: &str) -> String {
    let body = token_body(http, base_url, id, secret, &[]).await;
    body["access_token"].as_str().unwrap().to_owned()
}

/// A request to `/oauth/validate` with the bearer `token` (none: no
/// `Authorization` header) and the JSON `body`, ready to send.
pub fn validate_post(
    http: &reqwest::Client,
    base_url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> RequestBuilder {
    let mut request = http.post(endpoint(base_url, "validate"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match body {
        Some(body) => request.json(body),
        None => request,
    }
}

/// The status `/oauth/validate` gives `token`.
pub async fn validate(http: &reqwest::Client, base_url: &str, token: &str) -> StatusCode {
    validate_post(http, base_url, Some(token), None)
        .send()
        .await
        .unwrap()
        .status()
}

/// The status `/oauth/validate` gives `token` for a resource server's
/// request to `endpoint_url` (method `GET`), with the further body fields
/// `extra` (a JSON object: `dpop_proof`, `certificate_thumbprint`, `method`).
pub async fn validate_for(
    http: &reqwest::Client,
    base_url: &str,
    token: &str,
    endpoint_url: &str,
    extra: &Value,
) -> StatusCode {
    let mut body = serde_json::json!({"endpoint_url": endpoint_url, "method": "GET"});
    for (field, value) in extra.as_object().expect("a JSON object") {
        body[field] = value.clone();
    }
    validate_post(http, base_url, Some(token), Some(&body))
        .send()
        .await
        .unwrap()
        .status()
}

/// Validates `token` until it is refused (401); how long that took.
/// Fails if it is still accepted after `limit`.
pub async fn until_refused(
    http: &reqwest::Client,
    base_url: &str,
    token: &str,
    limit: std::time::Duration,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while validate(http, base_url, token).await != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < limit,
            "still not refused after {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Revokes `token` (hinted as an access token) as client `id`.
pub async fn revoke(
    http: &reqwest::Client,
    base_url: &str,
    (id, secret): (&str, &str),
    token: &str,
) -> reqwest::Result<Response> {
    http.post(endpoint(base_url, "revoke"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
}

/// What introspection (as client `id`) says of `token`, asserting a 200
/// that may not be cached.
pub async fn introspect(
    http: &reqwest::Client,
    base_url: &str,
    (id, secret): (&str, &str),
    token: &str,
) -> Value {
    let response = http
        .post(endpoint(base_url, "introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    json_body(response).await
}

/// Whether introspection (as client `id`) calls `token` active.
pub async fn introspect_active(
    http: &reqwest::Client,
    base_url: &str,
    credentials: (&str, &str),
    token: &str,
) -> bool {
    let body = introspect(http, base_url, credentials, token).await;
    body["active"].as_bool().expect("active is a boolean")
}

/// The body of `GET url`, as text, whatever the status.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// The JWKS document at `base_url`, parsed as `T`.
pub async fn jwks<T: serde::de::DeserializeOwned>(http: &reqwest::Client, base_url: &str) -> T {
    let text = get_text(http, &endpoint(base_url, "jwks")).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a JWKS ({e}): {text}"))
}

/// The `kid`s the JWKS publishes, in order.
pub async fn jwks_kids(http: &reqwest::Client, base_url: &str) -> Vec<String> {
    let jwks: Value = jwks(http, base_url).await;
    let keys = jwks["keys"].as_array().expect("a keys array");
    keys.iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// The `kid` in a JWT's header.
pub fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url header");
    let header: Value = serde_json::from_slice(&bytes).expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}
