//! Idle connections over real TLS: an HTTP/2 connection that answers PINGs
//! but sends no request, and an HTTP/1.1 keep-alive connection, are closed
//! once idle for `server.idle_timeout_secs`, giving their connection slot
//! back; a connection that keeps sending requests, and a request whose body
//! arrives slowly, are left alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use auth_server::keys::Algorithm;
use bytes::Bytes;
use common::raw::{
    DEADLINE, assert_token_works, basic_line, connect_h1, connect_tls, head, read_answer,
};
use common::{TestServer, api};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// The idle timeout the servers here run with.
const IDLE: Duration = Duration::from_secs(1);
/// How late a close may come on a busy machine.
const SLACK: Duration = Duration::from_secs(4);
/// The server closes idle connections no sooner than this after the last
/// response (the timeout, less what the client takes to see that response).
const EARLIEST: Duration = Duration::from_millis(800);

/// A server with a 1 s idle timeout and a header read timeout far beyond
/// it, so any close seen on HTTP/1.1 comes from the idle timeout.
async fn start(max_connections: usize) -> TestServer {
    TestServer::start_with(Algorithm::EdDSA, |c| {
        c.server.idle_timeout_secs = IDLE.as_secs();
        c.server.header_read_timeout_secs = 30;
        c.server.max_connections = max_connections;
    })
    .await
}

/// An HTTP/2 client connection that sends keep-alive PINGs every 200 ms,
/// requests or not; `closed` ends when the server closes the connection.
struct H2Client {
    sender: SendRequest<Empty<Bytes>>,
    closed: JoinHandle<Result<(), hyper::Error>>,
    authority: String,
}

impl H2Client {
    async fn connect(server: &TestServer) -> Self {
        let tls = connect_tls(server, &[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(200))
            .keep_alive_timeout(Duration::from_secs(30))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tls))
            .await
            .unwrap();
        Self {
            sender,
            closed: tokio::spawn(connection),
            authority: server.addr.to_string(),
        }
    }

    /// `GET /health/live` on this connection.
    async fn get_live(&mut self) -> StatusCode {
        let request = Request::get(format!("https://{}/health/live", self.authority))
            .body(Empty::new())
            .unwrap();
        let response = tokio::time::timeout(DEADLINE, self.sender.send_request(request))
            .await
            .expect("answered within the deadline")
            .unwrap();
        response.status()
    }

    /// Waits for the server to close the connection; returns how long that
    /// took from `since`.
    async fn wait_closed(self, since: Instant) -> Duration {
        let ended = tokio::time::timeout(DEADLINE, self.closed)
            .await
            .expect("the idle HTTP/2 connection is closed within the deadline")
            .unwrap();
        assert!(ended.is_ok(), "closed with an error: {ended:?}");
        since.elapsed()
    }
}

/// A gauge or counter from `/metrics`, read on its own short connection.
async fn metric(server: &TestServer, name: &str) -> i64 {
    let mut stream = connect_h1(server).await;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut stream, DEADLINE).await;
    // Counters and gauges of whole numbers, exposed as such.
    common::metric_sample(&answer.text, name) as i64
}

/// Polls `/metrics` until `name` reaches `want` or the deadline passes.
async fn wait_for_metric(server: &TestServer, name: &str, want: i64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = metric(server, name).await;
        if value == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {value}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_closed_in_time(elapsed: Duration, what: &str) {
    assert!(
        (EARLIEST..IDLE + SLACK).contains(&elapsed),
        "{what}: closed after {elapsed:?}, expected about {IDLE:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_answering_pings_is_closed() {
    let server = start(100).await;
    let (id, secret) = server.standard_client().await;
    let mut idle = H2Client::connect(&server).await;
    assert_eq!(idle.get_live().await, StatusCode::OK);
    let since = Instant::now();

    // Other clients are served meanwhile.
    let (elapsed, ()) = tokio::join!(
        idle.wait_closed(since),
        assert_token_works(&server, &id, &secret)
    );
    assert_closed_in_time(elapsed, "idle HTTP/2");
    assert!(metric(&server, "auth_idle_connections_closed_total").await >= 1);
    // Every connection but the one asking is closed in the end.
    wait_for_metric(&server, "auth_open_connections", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_gives_its_slot_back_when_every_slot_is_taken() {
    let server = start(1).await;
    let mut idle = H2Client::connect(&server).await;
    assert_eq!(idle.get_live().await, StatusCode::OK);
    let since = Instant::now();

    // The only slot is taken: this connection waits in the accept queue
    // until the idle one is shed, well before its idle timeout.
    let mut next = connect_h1(&server).await;
    next.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut next, DEADLINE).await;
    assert_eq!(answer.statuses(), [200], "{}", answer.text);
    let waited = since.elapsed();
    assert!(waited < EARLIEST, "the slot came back after {waited:?}");
    idle.wait_closed(since).await;
    assert_eq!(
        metric(&server, "auth_connections_refused_total{reason=\"shed\"}").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_keep_alive_connection_is_closed() {
    let server = start(100).await;
    let mut stream = connect_h1(&server).await;
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let since = Instant::now();
    let answer = read_answer(&mut stream, DEADLINE).await;
    assert_eq!(answer.statuses(), [200], "{}", answer.text);
    assert!(answer.closed, "still open after {:?}", answer.elapsed);
    assert_closed_in_time(since.elapsed(), "idle HTTP/1.1 keep-alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_regular_requests_stays_open() {
    let server = start(100).await;
    let mut busy = H2Client::connect(&server).await;
    let until = Instant::now() + 3 * IDLE;
    let mut requests = 0;
    while Instant::now() < until {
        assert_eq!(busy.get_live().await, StatusCode::OK);
        requests += 1;
        tokio::time::sleep(IDLE / 5).await;
    }
    assert!(!busy.closed.is_finished(), "closed while in use");
    assert!(requests >= 5, "only {requests} requests");
    assert_eq!(
        metric(&server, "auth_idle_connections_closed_total").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_in_flight_is_not_cut() {
    // Only the idle timer is under test here: no minimum body rate, and a
    // body deadline past the trickle.
    let server = TestServer::start_with(Algorithm::EdDSA, |c| {
        c.server.idle_timeout_secs = IDLE.as_secs();
        c.server.header_read_timeout_secs = 30;
        c.http.body_min_bytes_per_sec = 0;
        c.http.body_read_timeout_secs = 30;
    })
    .await;
    let (id, secret) = server.standard_client().await;
    let body = b"grant_type=client_credentials";
    let mut request = head(
        &api::path("token"),
        &format!(
            "{}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            basic_line(&id, &secret),
            body.len()
        ),
    )
    .into_bytes();
    request.extend_from_slice(&body[..1]);
    let mut stream = connect_h1(&server).await;
    stream.write_all(&request).await.unwrap();
    stream.flush().await.unwrap();
    // The rest of the body trickles in over three idle timeouts.
    let pause = 3 * IDLE / u32::try_from(body.len()).unwrap();
    for byte in &body[1..] {
        tokio::time::sleep(pause).await;
        stream.write_all(&[*byte]).await.unwrap();
        stream.flush().await.unwrap();
    }
    let answer = read_answer(&mut stream, DEADLINE).await;
    assert_eq!(answer.statuses(), [200], "{}", answer.text);
    assert!(answer.text.contains("access_token"));
}
