//! Hostile HTTP requests over real TLS: oversized and chunked bodies, header
//! floods, invalid UTF-8, repeated parameters, content-type confusion and
//! request smuggling shapes. Each gets a 4xx or a closed connection, never a
//! 5xx or a hang, and a normal token request succeeds alongside.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use auth_server::keys::Algorithm;
use common::raw::{Answer, alongside, basic_line, exchange, head};
use common::{TestServer, api};

const FORM: &str = "Content-Type: application/x-www-form-urlencoded\r\n";
const JSON: &str = "Content-Type: application/json\r\n";
const LIMIT: usize = 64 * 1024;

async fn start() -> (TestServer, String, String) {
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.server.header_read_timeout_secs = 1;
        c.server.tls_handshake_timeout_secs = 1;
    })
    .await;
    let (id, secret) = server.standard_client().await;
    (server, id, secret)
}

/// A request with a `Content-Length` body.
fn with_body(extra: &str, body: &[u8]) -> Vec<u8> {
    let mut request = head(
        &api::path("token"),
        &format!("{extra}Content-Length: {}\r\n", body.len()),
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends `request` on a connection of its own while a normal token request
/// is made on another; what came back.
async fn exchange_alongside(server: &TestServer, client: (&str, &str), request: Vec<u8>) -> Answer {
    alongside(server, client, Duration::ZERO, exchange(server, request)).await
}

fn assert_status(answer: &Answer, status: u16, what: &str) {
    assert_eq!(
        answer.statuses().first(),
        Some(&status),
        "{what}: {}",
        answer.text
    );
    answer.assert_refused(what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let (server, id, secret) = start().await;
    let auth = basic_line(&id, &secret);
    let big = vec![b'a'; LIMIT + 1];
    let answer = exchange_alongside(
        &server,
        (&id, &secret),
        with_body(&format!("{auth}{FORM}"), &big),
    )
    .await;
    assert_status(&answer, 413, "body over the limit");

    // Declared too large and never sent: refused without waiting for it.
    let request = head(
        &api::path("token"),
        &format!("{auth}{FORM}Content-Length: 100000000\r\n"),
    )
    .into_bytes();
    let answer = exchange_alongside(&server, (&id, &secret), request).await;
    assert_status(&answer, 413, "declared length over the limit");

    // Chunked, no length declared, more than the limit in many chunks.
    let chunked = || {
        let extra = format!("{auth}{FORM}Transfer-Encoding: chunked\r\n");
        head(&api::path("token"), &extra).into_bytes()
    };
    let mut request = chunked();
    for _ in 0..(LIMIT / 1000 + 2) {
        request.extend_from_slice(format!("{:x}\r\n", 1000).as_bytes());
        request.extend_from_slice(&[b'a'; 1000]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange_alongside(&server, (&id, &secret), request).await;
    assert_status(&answer, 413, "chunked body over the limit");

    // One chunk whose declared size overflows.
    let mut request = chunked();
    request.extend_from_slice(b"FFFFFFFFFFFFFFFFFF\r\naaaa\r\n0\r\n\r\n");
    let answer = exchange_alongside(&server, (&id, &secret), request).await;
    answer.assert_refused("chunk size overflow");

    // Exactly at the limit is read and judged on its content.
    let at_limit = vec![b'a'; LIMIT];
    let answer = exchange(&server, with_body(&format!("{auth}{FORM}"), &at_limit)).await;
    assert_status(&answer, 400, "body at the limit");
    assert!(answer.text.contains("invalid_request"), "{}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_get_431_or_a_close() {
    let (server, id, secret) = start().await;
    let body = b"grant_type=client_credentials";
    let mut many = basic_line(&id, &secret) + FORM;
    for i in 0..500 {
        many.push_str(&format!("X-Flood-{i}: {i}\r\n"));
    }
    let answer = exchange_alongside(&server, (&id, &secret), with_body(&many, body)).await;
    answer.assert_refused("500 headers");

    let huge = format!("X-Huge: {}\r\n", "a".repeat(200 * 1024));
    let answer = exchange_alongside(&server, (&id, &secret), with_body(&huge, body)).await;
    answer.assert_refused("a 200 KiB header");

    let long_path = format!("/{}", "a".repeat(200 * 1024));
    let request =
        format!("GET {long_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let request = request.into_bytes();
    let answer = exchange_alongside(&server, (&id, &secret), request).await;
    answer.assert_refused("a 200 KiB request line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_invalid_request() {
    let (server, id, secret) = start().await;
    let auth = basic_line(&id, &secret);
    let form = format!("{auth}{FORM}");
    let json = format!("{auth}{JSON}");
    let nested = format!("{{\"grant_type\":{}", "[".repeat(10_000));
    let cases: Vec<(&str, String, &[u8])> = vec![
        ("raw invalid UTF-8 in a form", form.clone(), b"grant_type=client_credentials&scope=\xff\xfe"),
        ("escaped invalid UTF-8 in a form", form.clone(), b"grant_type=client_credentials&scope=%ff"),
        ("invalid UTF-8 in JSON", json.clone(), b"{\"grant_type\":\"client_credentials\",\"scope\":\"\xc3\x28\"}"),
        ("a lone surrogate in JSON", json.clone(), br#"{"grant_type":"client_credentials","scope":"\ud800"}"#),
        ("repeated form parameter", form.clone(), b"grant_type=client_credentials&grant_type=client_credentials"),
        ("repeated JSON key", json.clone(), br#"{"grant_type":"client_credentials","grant_type":"client_credentials"}"#),
        ("repeated scope", form.clone(), b"grant_type=client_credentials&scope=read&scope=write"),
        ("JSON sent as a form", form.clone(), br#"{"grant_type":"client_credentials"}"#),
        ("a form sent as JSON", json.clone(), b"grant_type=client_credentials"),
        ("text/plain", format!("{auth}Content-Type: text/plain\r\n"), b"grant_type=client_credentials"),
        ("multipart", format!("{auth}Content-Type: multipart/form-data; boundary=x\r\n"), b"--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n"),
        ("no content type", auth.clone(), b"grant_type=client_credentials"),
        ("a JSON array", json.clone(), br#"[{"grant_type":"client_credentials"}]"#),
        ("deeply nested JSON", json.clone(), nested.as_bytes()),
        ("NUL in a value", form.clone(), b"grant_type=client_credentials%00"),
    ];
    for (what, extra, body) in cases {
        let answer = exchange_alongside(&server, (&id, &secret), with_body(&extra, body)).await;
        assert_status(&answer, 400, what);
        assert!(
            answer.text.contains("\"invalid_request\""),
            "{what}: {}",
            answer.text
        );
    }
}

/// A smuggled request that would be answered 200 if it were ever parsed.
const SMUGGLED: &str = "GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_never_reach_a_second_request() {
    let (server, id, secret) = start().await;
    let shapes: Vec<(&str, String)> = vec![
        (
            "CL and TE",
            format!("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "TE and CL",
            format!("Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "two lengths",
            format!("Content-Length: 0\r\nContent-Length: 45\r\n\r\n{SMUGGLED}"),
        ),
        (
            "a list of lengths",
            format!("Content-Length: 0, 45\r\n\r\n{SMUGGLED}"),
        ),
        (
            "TE not chunked",
            format!("Transfer-Encoding: identity\r\nContent-Length: 0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "TE chunked then gzip",
            format!("Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "obfuscated TE",
            format!("Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "space before the colon",
            format!("Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "folded TE",
            format!("Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "signed length",
            format!("Content-Length: +0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "bare LF line ends",
            format!("Content-Length: 0\nTransfer-Encoding: chunked\n\n0\n\n{SMUGGLED}"),
        ),
        (
            "TE in HTTP/1.0",
            format!("Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
    ];
    for (what, rest) in shapes {
        let version = if what.contains("1.0") {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        let request = format!(
            "POST {} {version}\r\nHost: localhost\r\n{}{FORM}{rest}",
            api::path("token"),
            basic_line(&id, &secret)
        );
        let answer = exchange_alongside(&server, (&id, &secret), request.into_bytes()).await;
        let statuses = answer.statuses();
        assert!(statuses.len() <= 1, "{what}: answered {statuses:?}");
        answer.assert_refused(what);
    }
}
