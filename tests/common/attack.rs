//! Resource attacks on the real binary: the server under attack with one
//! legitimate client, TLS connections from chosen loopback source addresses
//! (so per-address limits see many attackers, as they would from a botnet),
//! and hyper client connections over them. [`super::watch`] measures what
//! an attack costs the server.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::api;
use super::process::{self, ServerProcess};

/// Whatever stopped an attacker's connection or request; attackers count
/// these, they never fail a test.
pub type AttackError = Box<dyn std::error::Error + Send + Sync>;

/// The media type of form bodies.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// The legitimate client, registered before the server starts.
pub const CLIENT_ID: &str = "legitimate";
/// Its secret.
pub const CLIENT_SECRET: &str = "legitimate-client-secret";

/// The legitimate client's address; no attacker uses it.
pub const LEGITIMATE: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The `n`th attacker address: 127.10.0.1, 127.10.0.2 and on, across
/// 127.0.0.0/8 (loopback answers on all of it).
pub fn attacker(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 10, 0, 1)) + n)
}

/// How to reach the server: its address and TLS settings trusting its
/// development certificate, one per ALPN protocol.
#[derive(Clone)]
pub struct Target {
    /// The listening address.
    pub addr: SocketAddr,
    http1: TlsConnector,
    http2: TlsConnector,
}

/// A client connection's task, aborted (closing the socket) when dropped.
pub struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Target {
    /// `addr`, trusting the certificates in `cert_pem`.
    pub fn new(addr: SocketAddr, cert_pem: &[u8]) -> Self {
        let connector = |alpn: &[u8]| {
            TlsConnector::from(Arc::new(super::raw::client_tls_config(cert_pem, &[alpn])))
        };
        Self {
            addr,
            http1: connector(b"http/1.1"),
            http2: connector(b"h2"),
        }
    }

    /// A TLS connection from `source`, offering HTTP/2 or HTTP/1.1. No
    /// deadline: callers bound the wait.
    pub async fn tls(
        &self,
        source: Ipv4Addr,
        h2: bool,
    ) -> Result<TlsStream<TcpStream>, AttackError> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        let tcp = socket.connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let connector = if h2 { &self.http2 } else { &self.http1 };
        let name = ServerName::from(IpAddr::from(Ipv4Addr::LOCALHOST));
        Ok(connector.connect(name, tcp).await?)
    }

    /// An HTTP/1.1 client connection from `source`.
    pub async fn http1<B>(
        &self,
        source: Ipv4Addr,
    ) -> Result<(hyper::client::conn::http1::SendRequest<B>, Driver), AttackError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<AttackError>,
    {
        let io = TokioIo::new(self.tls(source, false).await?);
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, Driver(driver)))
    }

    /// An HTTP/2 client connection from `source`.
    pub async fn http2<B>(
        &self,
        source: Ipv4Addr,
    ) -> Result<(hyper::client::conn::http2::SendRequest<B>, Driver), AttackError>
    where
        B: Body + Unpin + Send + 'static,
        B::Data: Send,
        B::Error: Into<AttackError>,
    {
        let io = TokioIo::new(self.tls(source, true).await?);
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, Driver(driver)))
    }

    /// The absolute URI of `path` (HTTP/2 requests carry it whole).
    pub fn uri(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// A `POST` of `body` to `path` in origin form with a `Host` header, as
    /// HTTP/1.1 clients send it.
    pub fn post<B>(
        &self,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: B,
    ) -> Request<B> {
        let mut request = Request::post(path).header(header::HOST, self.addr.to_string());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body).unwrap()
    }

    /// The legitimate client's token request (Basic authentication).
    pub fn token_request(&self) -> Request<Full<Bytes>> {
        self.post(
            &api::path("token"),
            &[
                (header::AUTHORIZATION, basic(CLIENT_ID, CLIENT_SECRET)),
                (header::CONTENT_TYPE, FORM.into()),
            ],
            Full::new(Bytes::from_static(b"grant_type=client_credentials")),
        )
    }
}

/// An `Authorization: Basic` value.
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {encoded}")
}

/// Length of an unknown client id sent in the form body (the body stays
/// under the 64 KiB default limit)...
pub const POST_ID_LEN: usize = 65_000;
/// ...and in a Basic header (the head stays under the 80 KiB default).
pub const BASIC_ID_LEN: usize = 56_001;
/// Unknown ids are a unique prefix of this length and a filler of `x`.
pub const ID_PREFIX_LEN: usize = 9;
// Prefix and filler are whole base64 groups, so a Basic value can be
// assembled from pieces: the filler `xxx...` encodes as `eHh4` repeated.
const _: () =
    assert!(ID_PREFIX_LEN.is_multiple_of(3) && (BASIC_ID_LEN - ID_PREFIX_LEN).is_multiple_of(3));

/// Token request `i` from attacker `n`, for a client id never seen before:
/// in the body (`client_secret_post`) for even `i`, Basic for odd.
pub fn unknown_client_request(target: &Target, n: u32, i: u32) -> Request<Full<Bytes>> {
    use base64::Engine;
    let prefix = format!("{n:05}-{i:02}-");
    assert_eq!(prefix.len(), ID_PREFIX_LEN);
    let form = (header::CONTENT_TYPE, FORM.to_owned());
    if i.is_multiple_of(2) {
        let body = format!(
            "grant_type=client_credentials&client_id={prefix}{}&client_secret=wrong-secret",
            "x".repeat(POST_ID_LEN - ID_PREFIX_LEN)
        );
        target.post(&api::path("token"), &[form], Full::new(Bytes::from(body)))
    } else {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let value = format!(
            "Basic {}{}{}",
            encode(&prefix),
            "eHh4".repeat((BASIC_ID_LEN - ID_PREFIX_LEN) / 3),
            encode(":wrong-secret")
        );
        let body = Bytes::from_static(b"grant_type=client_credentials");
        target.post(
            &api::path("token"),
            &[(header::AUTHORIZATION, value), form],
            Full::new(body),
        )
    }
}

/// Answers by status; 0 for a request that got no answer (reset, closed).
pub type Tally = BTreeMap<u16, u64>;

/// How one attacker request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer came (its status is tallied).
    Answered,
    /// The connection failed (tallied as status 0).
    Lost,
    /// The attack's time ran out first.
    OutOfTime,
}

/// Awaits `response` and its whole body until `until`, tallying the status
/// (0 for a failed connection).
pub async fn tally_exchange<F>(tally: &mut Tally, until: std::time::Instant, response: F) -> Outcome
where
    F: std::future::Future<Output = Result<http::Response<hyper::body::Incoming>, hyper::Error>>,
{
    let exchange = async {
        let response = response.await?;
        let status = response.status().as_u16();
        http_body_util::BodyExt::collect(response.into_body()).await?;
        Ok::<_, AttackError>(status)
    };
    match tokio::time::timeout_at(until.into(), exchange).await {
        Ok(Ok(status)) => {
            *tally.entry(status).or_default() += 1;
            Outcome::Answered
        }
        Ok(Err(_)) => {
            *tally.entry(0).or_default() += 1;
            Outcome::Lost
        }
        Err(_) => Outcome::OutOfTime,
    }
}

/// Adds the counts of `part` to `total`.
pub fn merge(total: &mut Tally, part: Tally) {
    for (status, n) in part {
        *total.entry(status).or_default() += n;
    }
}

/// A request body that sends `first` and then never another byte: the
/// body of a client that stalls.
pub struct StalledBody {
    /// The chunk still to send.
    pub first: Option<Bytes>,
}

impl Body for StalledBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.first.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            // Never woken again: the stall.
            None => Poll::Pending,
        }
    }
}

/// The binary (see [`process::bin`]) running with its default settings
/// apart from the test directory, the port and `env`, with the legitimate
/// client registered; killed when dropped.
pub struct Victim {
    /// The process.
    pub server: ServerProcess,
    /// How to reach it.
    pub target: Target,
    // Dropped after the process.
    _dir: tempfile::TempDir,
}

impl Victim {
    /// Starts the server with the extra settings `env` and waits until it
    /// listens.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with_client(env, &[])
    }

    /// [`Victim::start`], the legitimate client created with the further
    /// `client create` options `client`.
    pub fn start_with_client(env: &[(&str, &str)], client: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        process::create_client_with(dir.path(), CLIENT_ID, CLIENT_SECRET, client);
        let mut server = ServerProcess::spawn(dir.path(), env);
        let base = server.base_url();
        let addr = base.trim_start_matches("https://").parse().unwrap();
        let cert = std::fs::read(dir.path().join("certs/dev-cert.pem")).unwrap();
        Self {
            server,
            target: Target::new(addr, &cert),
            _dir: dir,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.child.id()
    }

    /// A token for the legitimate client, asked for on its own connection.
    pub async fn token(&self) -> String {
        use http_body_util::BodyExt;
        let (mut sender, _driver) =
            tokio::time::timeout(Duration::from_secs(10), self.target.http1(LEGITIMATE))
                .await
                .unwrap()
                .unwrap();
        let response = sender
            .send_request(self.target.token_request())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["access_token"].as_str().unwrap().to_owned()
    }
}
