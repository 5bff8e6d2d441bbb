//! Reloading (what SIGHUP does): a new certificate is served to new
//! connections while open ones keep working; a broken certificate or key is
//! refused and the old one kept; a replaced signing key is picked up while
//! the key it replaced stays published.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_server::keys::{Algorithm, generate_pkcs8, pkcs8_pem};
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
    let report = server.reload();
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
    let report = server.reload();
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
async fn signing_keys_reload_and_an_unreadable_key_is_kept_out() {
    let server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;
    let (http, base) = (server.client(), server.base_url.clone());
    let kid = |token: &serde_json::Value| api::kid(token["access_token"].as_str().unwrap());
    let first = api::token_body(&http, &base, &id, &secret, &[]).await;
    let key_file = server.path("certs/signing-eddsa.pem");

    std::fs::write(&key_file, "not a key").unwrap();
    assert!(!server.reload().keys_reloaded);
    let failures = r#"auth_reload_failures_total{what="signing_key"}"#;
    assert_eq!(common::metric(&http, &server, failures).await, 1.0);
    let same = api::token_body(&http, &base, &id, &secret, &[]).await;
    assert_eq!(kid(&same), kid(&first), "the old key stays in use");

    std::fs::write(
        &key_file,
        pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap()),
    )
    .unwrap();
    assert!(server.reload().keys_reloaded);
    let rotated = api::token_body(&http, &base, &id, &secret, &[]).await;
    assert_ne!(kid(&rotated), kid(&first));
    let published = api::jwks_kids(&http, &base).await;
    assert_eq!(
        published,
        [kid(&rotated), kid(&first)],
        "the replaced key stays published"
    );
    assert_eq!(
        unverified_claims(rotated["access_token"].as_str().unwrap())["sub"],
        id.as_str()
    );
}
