//! Graceful shutdown: a request in flight when shutdown starts is answered,
//! idle keep-alive connections are closed, and the server stops promptly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{TestServer, api};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A raw HTTP/1.1-over-TLS connection to the server.
async fn connect(server: &TestServer) -> TlsStream<TcpStream> {
    common::raw::connect_tls(server, &[b"http/1.1"]).await
}

async fn read_to_end(stream: &mut TlsStream<TcpStream>) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_and_idle_connections_close() {
    let mut server = TestServer::start().await;
    let (id, secret) = server.standard_client().await;

    // An idle keep-alive connection that has served one request.
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // A token request whose body is only half sent when shutdown begins.
    let body = b"grant_type=client_credentials";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut busy = connect(&server).await;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        api::path("token"),
        body.len()
    );
    busy.write_all(head.as_bytes()).await.unwrap();
    busy.write_all(&body[..10]).await.unwrap();
    busy.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    busy.write_all(&body[10..]).await.unwrap();
    busy.flush().await.unwrap();
    let response = read_to_end(&mut busy).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("access_token"));

    // The idle connection is closed by the server, not left hanging.
    let rest = read_to_end(&mut idle).await;
    assert!(
        !rest.contains("HTTP/1.1"),
        "no new response on the idle connection"
    );

    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drained in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn new_connections_are_refused_after_shutdown() {
    let mut server = TestServer::start().await;
    let addr = server.addr;
    server.begin_shutdown();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_balancer_the_server_is_unready_but_accepting_for_the_delay() {
    let mut server = TestServer::start_with(auth_server::keys::Algorithm::EdDSA, |c| {
        c.server.unready_delay_ms = 1_500;
    })
    .await;
    let mut kept = connect(&server).await;
    let ask = b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\n\r\n";
    kept.write_all(ask).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let started = Instant::now();
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A kept-alive connection is answered, unready, and told to go.
    kept.write_all(ask).await.unwrap();
    let answer = read_to_end(&mut kept).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    // A new connection is still accepted and served during the delay.
    let mut late = connect(&server).await;
    late.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_end(&mut late).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_millis(1_500));
    // After it, the listener is closed.
    tokio::time::sleep(Duration::from_millis(1_800).saturating_sub(started.elapsed())).await;
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting"
    );
    server.stop().await;
}
