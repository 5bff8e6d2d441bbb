//! Hostile connections: slowloris headers, connections that go quiet after
//! the handshake or after a request, handshakes that never finish or stop
//! half-way, plaintext HTTP on the TLS port and TLS 1.0/1.1 offers. Each is
//! closed within the configured timeouts (1 s here) while a normal token
//! request succeeds alongside.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use auth_server::keys::Algorithm;
use common::raw::{Answer, DEADLINE, alongside, connect_h1, connect_tcp, connect_tls, read_answer};
use common::{TestServer, api};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The configured timeouts, and how late a close may come on a busy machine.
const TIMEOUT_SECS: u64 = 1;
const SLACK: Duration = Duration::from_secs(3);
/// How long after an attack starts the normal token request is made.
const PROBE_DELAY: Duration = Duration::from_millis(300);

async fn start() -> (TestServer, String, String) {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.server.header_read_timeout_secs = TIMEOUT_SECS;
        c.server.tls_handshake_timeout_secs = TIMEOUT_SECS;
    })
    .await;
    let (id, secret) = server.standard_client().await;
    (server, id, secret)
}

/// Writes `prefix`, then dribbles `drip` one byte at a time every 200 ms
/// until the server closes, reading all the while; returns what came back.
async fn dribble<S>(stream: S, prefix: Vec<u8>, drip: Vec<u8>) -> Answer
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = tokio::spawn(async move {
        if writer.write_all(&prefix).await.is_err() || writer.flush().await.is_err() {
            return;
        }
        for byte in drip.iter().cycle().take(50) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(&[*byte]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
    });
    let answer = read_answer(&mut reader, DEADLINE).await;
    write.abort();
    answer
}

fn assert_closed_in_time(answer: &Answer, what: &str) {
    assert!(
        answer.closed,
        "{what}: still open after {:?}",
        answer.elapsed
    );
    assert!(
        answer.elapsed < Duration::from_secs(TIMEOUT_SECS) + SLACK,
        "{what}: closed only after {:?}",
        answer.elapsed
    );
    answer.assert_refused(what);
}

/// Sends `GET /health/live` on `stream` and reads what comes back.
async fn ask_health<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Answer {
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_answer(&mut stream, DEADLINE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off() {
    let (server, id, secret) = start().await;
    let prefix = format!("POST {} HTTP/1.1\r\n", api::path("token")).into_bytes();
    let attack = dribble(connect_h1(&server).await, prefix, b"X-Slow: a\r\n".to_vec());
    let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
    assert_closed_in_time(&answer, "headers dribbled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_connections_are_closed() {
    let (server, id, secret) = start().await;
    let attack = async { read_answer(&mut connect_h1(&server).await, DEADLINE).await };
    let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
    assert_closed_in_time(&answer, "nothing sent after the handshake");

    let attack = async {
        let mut stream = connect_h1(&server).await;
        stream.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        read_answer(&mut stream, DEADLINE).await
    };
    let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
    assert_closed_in_time(&answer, "half an HTTP/2 preface");

    let attack = async { ask_health(connect_h1(&server).await).await };
    let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
    assert_eq!(answer.statuses(), [200], "{}", answer.text);
    assert!(
        answer.closed,
        "idle keep-alive still open after {:?}",
        answer.elapsed
    );
}

/// A TLS record carrying a ClientHello that offers only `version` (no
/// `supported_versions` extension), with TLS 1.0-era cipher suites.
fn legacy_client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&version);
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // session id
    let suites: [u8; 8] = [0xc0, 0x13, 0xc0, 0x14, 0xc0, 0x09, 0x00, 0x2f];
    hello.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    hello.extend_from_slice(&suites);
    hello.extend_from_slice(&[1, 0]); // null compression
    // supported_groups (x25519, P-256) and ec_point_formats (uncompressed).
    let extensions: [u8; 16] = [
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, //
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,
    ];
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// No ServerHello (a handshake record) ever comes back.
fn assert_no_server_hello(answer: &Answer, what: &str) {
    assert_ne!(
        answer.bytes.first(),
        Some(&0x16),
        "{what}: the server answered a handshake"
    );
    assert!(
        !answer.text.contains("HTTP/1.1 200"),
        "{what}: {}",
        answer.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_legacy_handshakes_are_refused() {
    let (server, id, secret) = start().await;

    let attack = async { read_answer(&mut connect_tcp(&server).await, DEADLINE).await };
    let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
    assert_closed_in_time(&answer, "a handshake that never starts");

    let hello = legacy_client_hello([0x03, 0x03]);
    let truncated = hello[..hello.len() / 2].to_vec();
    let attack = async {
        let mut stream = connect_tcp(&server).await;
        stream.write_all(&truncated).await.unwrap();
        read_answer(&mut stream, DEADLINE).await
    };
    let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
    assert_closed_in_time(&answer, "a truncated ClientHello");
    assert_no_server_hello(&answer, "a truncated ClientHello");

    let attack = async {
        let stream = connect_tcp(&server).await;
        dribble(stream, hello[..5].to_vec(), hello[5..].to_vec()).await
    };
    let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
    assert_closed_in_time(&answer, "a ClientHello dribbled");

    for (version, what) in [([0x03, 0x01], "TLS 1.0"), ([0x03, 0x02], "TLS 1.1")] {
        let attack = async {
            let mut stream = connect_tcp(&server).await;
            stream
                .write_all(&legacy_client_hello(version))
                .await
                .unwrap();
            read_answer(&mut stream, DEADLINE).await
        };
        let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
        assert!(answer.closed, "{what}: still open");
        assert_no_server_hello(&answer, what);
        // A fatal alert, if any: content type 21, level 2.
        if let Some(&first) = answer.bytes.first() {
            assert_eq!((first, answer.bytes.get(5)), (0x15, Some(&2)), "{what}");
        }
    }

    let attack = async { ask_health(connect_tcp(&server).await).await };
    let answer = alongside(&server, (&id, &secret), PROBE_DELAY, attack).await;
    assert!(answer.closed, "plaintext HTTP: still open");
    assert!(
        !answer.text.contains("HTTP/1"),
        "plaintext HTTP answered: {}",
        answer.text
    );

    // TLS 1.2 and 1.3 clients are still welcome.
    let mut stream = connect_tls(&server, &[b"http/1.1"]).await;
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut stream, DEADLINE).await.statuses(), [200]);
}
