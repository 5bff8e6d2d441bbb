//! Endpoint rules at `/oauth/validate` over real TLS: the `[[scope]]`
//! tables decide by URL and method, URLs are normalised before matching, and
//! URLs that a backend could read differently are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{api, json_body, start_with_rules};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn endpoint_rules_and_url_tricks() {
    let (server, id, secret) = start_with_rules().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let read_token = api::token(&http, &base, &id, &secret).await;
    let check = |url: &str, method: Option<&str>| {
        let mut body = json!({ "endpoint_url": url });
        if let Some(m) = method {
            body["method"] = m.into();
        }
        api::validate_post(&http, &base, Some(&read_token), Some(&body))
    };
    let status_of = async |request: reqwest::RequestBuilder| request.send().await.unwrap().status();
    let ok = [
        ("https://api.test/v1/users", None),
        ("https://api.test/v1/users/42", Some("GET")),
        ("https://API.TEST:443/v1/users/42?admin=true#x", Some("get")),
        ("https://api.test/v1/%75sers/42", None),
    ];
    for (url, method) in ok {
        assert_eq!(status_of(check(url, method)).await, StatusCode::OK, "{url}");
    }
    let response = check("https://api.test/v1/users/42", Some("POST"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"write\""
    );
    assert_eq!(json_body(response).await["error"], "insufficient_scope");
    for url in [
        "https://api.test/v1/users/../admin",
        "https://api.test/v1/users/%2e%2e/admin",
        "https://api.test/V1/users",
        "https://api.test:8443/v1/users",
        "http://api.test/v1/users",
        "https://api.test.evil.example/v1/users",
    ] {
        assert_eq!(
            status_of(check(url, None)).await,
            StatusCode::FORBIDDEN,
            "{url}"
        );
    }
    for url in [
        "https://api.test@evil.example/v1/users",
        "https://api.test/v1/users%2F..%2F..%2Fadmin",
        "https://api.test/v1/users/%252e%252e/%252e%252e/admin",
        "https://api.test/v1/users/\u{ff0e}\u{ff0e}/\u{ff0e}\u{ff0e}/admin",
        "not a url",
        "/v1/users",
    ] {
        let response = check(url, None).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(json_body(response).await["error"], "invalid_request");
    }
    let bad_json = api::validate_post(&http, &base, Some(&read_token), None)
        .header("content-type", "application/json")
        .body("{\"endpoint_url\":");
    assert_eq!(status_of(bad_json).await, StatusCode::BAD_REQUEST);
    let bad_method = check("https://api.test/v1/users", Some("G E T"));
    assert_eq!(status_of(bad_method).await, StatusCode::BAD_REQUEST);
}
