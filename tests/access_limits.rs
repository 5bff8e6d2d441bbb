//! Who may hold connections and who may read `/metrics`, over real TLS: one
//! caller (an IPv4 address here) gets at most `max_connections_per_ip`
//! connections while another address is unaffected, and `/metrics` wants
//! the configured bearer token from everyone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use auth_server::config::Secret;
use auth_server::keys::Algorithm;
use common::TestServer;
use common::attack::Target;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const METRICS_TOKEN: &str = "metrics-token-of-at-least-thirty-two-bytes";

async fn metrics_text(server: &TestServer) -> String {
    server
        .client()
        .get(server.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_gets_at_most_its_share_of_connections() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.server.max_connections_per_ip = 2;
        c.metrics_token = Some(Secret(METRICS_TOKEN.into()));
    })
    .await;
    let target = Target::new(server.addr, &server.cert_pem);
    let crowded = Ipv4Addr::new(127, 0, 0, 7);
    let first = target.tls(crowded, false).await.unwrap();
    let second = target.tls(crowded, false).await.unwrap();
    // The third from the same address is closed right after the accept:
    // its handshake fails.
    let third = tokio::time::timeout(Duration::from_secs(5), target.tls(crowded, false))
        .await
        .expect("refused at once, not left hanging");
    assert!(third.is_err(), "a third connection from one address");
    // Another address is not affected, and the two held still work.
    let mut other = target
        .tls(Ipv4Addr::new(127, 0, 0, 8), false)
        .await
        .unwrap();
    other
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut held = first;
    held.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    held.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Once one closes, the address may connect again.
    drop(held);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(stream) = target.tls(crowded, false).await {
            again = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a slot given back is usable again");
    drop(second);
    let text = metrics_text(&server).await;
    assert!(
        common::metric_sample(&text, "auth_connections_refused_total{reason=\"per_ip\"}") >= 1.0
    );
}

#[tokio::test]
async fn metrics_want_the_configured_token() {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.metrics_token = Some(Secret(METRICS_TOKEN.into()));
    })
    .await;
    let bare = server.get("/metrics").await;
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bare.headers()["www-authenticate"],
        "Bearer realm=\"metrics\""
    );
    assert_eq!(bare.headers()["cache-control"], "no-store");
    let wrong = server
        .client()
        .get(server.url("/metrics"))
        .bearer_auth("metrics-token-of-at-least-thirty-two-bytez")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(metrics_text(&server).await.contains("auth_build_info"));
}

#[tokio::test]
async fn without_a_token_loopback_callers_read_metrics() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/metrics").await.status(), StatusCode::OK);
}
