//! Reloading (what SIGHUP does): a new certificate is served to new
//! connections while open ones keep working; a broken certificate or a
//! damaged stored key is refused and the old one kept; a key change in the
//! store is picked up at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::tls;
use common::{TestServer, api, unverified_claims};
use reqwest::StatusCode;

fn client_trusting(pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem).unwrap()])
        .build()
        .unwrap()
}

async fn health(
    client: &reqwest::Client,
    server: &TestServer,
) -> Result<StatusCode, reqwest::Error> {
    client
        .get(server.url("/health"))
        .send()
        .await
        .map(|r| r.status())
}

#[tokio::test]
async fn a_new_certificate_reaches_new_connections_and_a_broken_one_is_refused() {
    let server = TestServer::start().await;
    let certs = server.path("certs");
    let old_pem = server.cert_pem.clone();
    let old_client = client_trusting(&old_pem);
    assert_eq!(health(&old_client, &server).await.unwrap(), StatusCode::OK);

    // A new certificate (new key) at the same paths.
    std::fs::remove_file(certs.join(tls::DEV_CERT_FILE)).unwrap();
    std::fs::remove_file(certs.join(tls::DEV_KEY_FILE)).unwrap();
    tls::ensure_dev_certificate(&certs).unwrap();
    let new_pem = std::fs::read(certs.join(tls::DEV_CERT_FILE)).unwrap();
    assert_ne!(new_pem, old_pem);
    let report = server.reload().await;
    assert!(report.certificate_reloaded);

    // The open connection keeps working; new connections see the new cert.
    assert_eq!(health(&old_client, &server).await.unwrap(), StatusCode::OK);
    assert_eq!(
        health(&client_trusting(&new_pem), &server).await.unwrap(),
        StatusCode::OK
    );
    assert!(health(&client_trusting(&old_pem), &server).await.is_err());

    // A broken certificate is refused; the server keeps the good one.
    std::fs::write(
        certs.join(tls::DEV_CERT_FILE),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    let report = server.reload().await;
    assert!(!report.certificate_reloaded);
    let failures = r#"auth_reload_failures_total{what="certificate"}"#;
    let metrics_client = client_trusting(&new_pem);
    assert_eq!(
        common::metric(&metrics_client, &server, failures).await,
        1.0
    );
    assert_eq!(
        health(&client_trusting(&new_pem), &server).await.unwrap(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_reload_rereads_the_stored_keys_and_keeps_out_a_damaged_one() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let kid = |token: &serde_json::Value| api::kid(token["access_token"].as_str().unwrap());
    let first = api::token_body(&http, &base, &id, &secret, &[]).await;

    // A damaged row (no change-feed entry: only a reload looks).
    let db = rusqlite::Connection::open(server.path("data/auth.db")).unwrap();
    db.execute(
        "UPDATE signing_keys SET sealed_key = randomblob(length(sealed_key))",
        [],
    )
    .unwrap();
    assert!(!server.reload().await.keys_reloaded);
    let failures = r#"auth_reload_failures_total{what="signing_key"}"#;
    assert_eq!(common::metric(&http, &server, failures).await, 1.0);
    let same = api::token_body(&http, &base, &id, &secret, &[]).await;
    assert_eq!(kid(&same), kid(&first), "the old key stays in use");

    // Replaced in the store (as `keys rotate --now` does): a reload takes
    // the new key at once; the damaged one is retired and gone.
    let new = server
        .key_ring()
        .rotate_now(
            &auth_server::audit::Actor::cli("test"),
            auth_server::clock::unix_now(),
        )
        .await
        .unwrap();
    assert!(server.reload().await.keys_reloaded);
    let rotated = api::token_body(&http, &base, &id, &secret, &[]).await;
    assert_eq!(kid(&rotated), new.kid);
    let published = api::jwks_kids(&http, &base).await;
    assert_eq!(published, std::slice::from_ref(&new.kid));
    assert_eq!(
        unverified_claims(rotated["access_token"].as_str().unwrap())["sub"],
        id.as_str()
    );
}
