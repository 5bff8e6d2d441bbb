//! Raw connections for hostile-input tests: bytes written exactly as given
//! over TLS or plain TCP, answers read with a deadline so no test can hang.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{TestServer, api};

/// The longest any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A client TLS configuration that trusts the certificates in `cert_pem`
/// and offers only `alpn`.
pub fn client_tls_config(cert_pem: &[u8], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A TLS connection offering only `alpn` (HTTP/1.1 unless told otherwise).
pub async fn connect_tls(server: &TestServer, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let config = client_tls_config(&server.cert_pem, alpn);
    let tcp = connect_tcp(server).await;
    tokio::time::timeout(
        DEADLINE,
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp),
    )
    .await
    .expect("TLS handshake within the deadline")
    .unwrap()
}

/// An HTTP/1.1 TLS connection.
pub async fn connect_h1(server: &TestServer) -> TlsStream<TcpStream> {
    connect_tls(server, &[b"http/1.1"]).await
}

/// A plain TCP connection to the TLS port.
pub async fn connect_tcp(server: &TestServer) -> TcpStream {
    tokio::time::timeout(DEADLINE, TcpStream::connect(server.addr))
        .await
        .expect("connect within the deadline")
        .unwrap()
}

/// What came back on a connection.
#[derive(Debug)]
pub struct Answer {
    /// Everything read, lossily decoded.
    pub text: String,
    /// The raw bytes read.
    pub bytes: Vec<u8>,
    /// The peer closed (EOF or reset) rather than going quiet.
    pub closed: bool,
    /// How long until the close, or until we gave up.
    pub elapsed: Duration,
}

impl Answer {
    /// Status codes of every HTTP/1.x response in the answer.
    pub fn statuses(&self) -> Vec<u16> {
        self.text
            .match_indices("HTTP/1.1 ")
            .filter_map(|(i, m)| self.text.get(i + m.len()..i + m.len() + 3))
            .filter_map(|code| code.parse().ok())
            .collect()
    }

    /// Asserts a 4xx answer or a closed connection, and never a 5xx.
    pub fn assert_refused(&self, what: &str) {
        let statuses = self.statuses();
        assert!(
            statuses.iter().all(|s| (400..500).contains(s)),
            "{what}: statuses {statuses:?}"
        );
        assert!(
            !statuses.is_empty() || self.closed,
            "{what}: neither an answer nor a close"
        );
    }
}

/// Reads until the peer closes, nothing arrives for `quiet`, or `DEADLINE`.
pub async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S, quiet: Duration) -> Answer {
    let started = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let closed = loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match tokio::time::timeout(quiet.min(left), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    Answer {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        closed,
        elapsed: started.elapsed(),
    }
}

/// Sends `request` on a fresh HTTP/1.1 TLS connection, writing and reading
/// at once (the server may answer 413 before the body is in), and reads the
/// answer.
pub async fn exchange(server: &TestServer, request: Vec<u8>) -> Answer {
    let stream = connect_h1(server).await;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = tokio::spawn(async move {
        // The server may close early; a failed write is part of the answer.
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        writer
    });
    let answer = read_answer(&mut reader, Duration::from_millis(1500)).await;
    write.abort();
    answer
}

/// A `POST` head for `path` with the given extra header lines; it asks the
/// server to close after answering, so reading the answer does not wait.
pub fn head(path: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n")
}

/// The `Authorization: Basic` line for a client.
pub fn basic_line(id: &str, secret: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Authorization: Basic {encoded}\r\n")
}

/// Asserts that a normal token request on its own connection succeeds
/// within the deadline: the server keeps serving during an attack.
pub async fn assert_token_works(server: &TestServer, id: &str, secret: &str) {
    let http = server.client();
    let request = api::token_request(&http, &server.base_url, id, secret);
    let response = tokio::time::timeout(DEADLINE, request)
        .await
        .expect("a normal token request is answered during the attack");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
}

/// Runs `attack` while a normal token request, started `delay` later, is
/// made on another connection; what the attack got back.
pub async fn alongside(
    server: &TestServer,
    (id, secret): (&str, &str),
    delay: Duration,
    attack: impl Future<Output = Answer>,
) -> Answer {
    let (answer, ()) = tokio::join!(attack, async {
        tokio::time::sleep(delay).await;
        assert_token_works(server, id, secret).await;
    });
    answer
}
