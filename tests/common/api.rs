//! The OAuth endpoints as plain calls on any server, in-process or a child
//! process: an HTTPS client and the server's base URL are all they need.

use reqwest::StatusCode;

/// The OAuth endpoints' path prefix.
pub const BASE_PATH: &str = "/auth-server/v1";

/// URL of the OAuth endpoint `name` (token, validate, revoke...).
pub fn endpoint(base_url: &str, name: &str) -> String {
    format!("{base_url}{BASE_PATH}/oauth/{name}")
}

/// Gets an access token (asserting 200) with Basic authentication.
pub async fn token(http: &reqwest::Client, base_url: &str, id: &str, secret: &str) -> String {
    let response = http
        .post(endpoint(base_url, "token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Revokes `token` as client `id`; the status of the answer.
pub async fn revoke(
    http: &reqwest::Client,
    base_url: &str,
    (id, secret): (&str, &str),
    token: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(endpoint(base_url, "revoke"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
}

/// The status `/oauth/validate` gives `token`.
pub async fn validate(http: &reqwest::Client, base_url: &str, token: &str) -> StatusCode {
    http.post(endpoint(base_url, "validate"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Whether introspection (as client `id`) calls `token` active.
pub async fn introspect_active(
    http: &reqwest::Client,
    base_url: &str,
    (id, secret): (&str, &str),
    token: &str,
) -> bool {
    let response = http
        .post(endpoint(base_url, "introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    body["active"].as_bool().expect("active is a boolean")
}

/// The `kid`s the JWKS publishes, in order.
pub async fn jwks_kids(http: &reqwest::Client, base_url: &str) -> Vec<String> {
    let response = http.get(endpoint(base_url, "jwks")).send().await.unwrap();
    let jwks: serde_json::Value = response.json().await.unwrap();
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
    let header: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}
