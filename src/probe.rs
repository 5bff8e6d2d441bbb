//! `auth-server health`: one HTTPS request to this instance's own health
//! route over loopback, for container health checks where the image has no
//! HTTP client. The server must present the certificate it is configured
//! with: the check trusts that certificate and nothing else, so it needs no
//! CA and no name that matches a loopback address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::Config;
use crate::tls::{self, DEV_CERT_FILE};

/// How long the whole check may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the instance is not healthy, as one line.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The configured certificate could not be read.
    #[error("certificate: {0}")]
    Certificate(#[from] tls::TlsError),
    /// Nothing answers on the port, or the connection broke.
    #[error("{addr}: {source}")]
    Connect {
        /// Where the check connected.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server answered with something other than 200.
    #[error("{path} answered {status}")]
    Status {
        /// The route asked.
        path: &'static str,
        /// The status line, or what came instead.
        status: String,
    },
    /// No answer within [`TIMEOUT`].
    #[error("no answer within {} s", TIMEOUT.as_secs())]
    Timeout,
}

/// Asks `GET path` of the server configured by `config`, on `port` (or the
/// port of `server.bind`), and returns its status line when it is 200.
pub async fn check(
    config: &Config,
    path: &'static str,
    port: Option<u16>,
) -> Result<String, ProbeError> {
    let addr = SocketAddr::new(
        loopback_for(config.server.bind.ip()),
        port.unwrap_or(config.server.bind.port()),
    );
    let pinned = tls::read_certificates(&certificate_path(config))?;
    tokio::time::timeout(TIMEOUT, request(addr, pinned, path))
        .await
        .map_err(|_| ProbeError::Timeout)?
}

async fn request(
    addr: SocketAddr,
    pinned: Vec<CertificateDer<'static>>,
    path: &'static str,
) -> Result<String, ProbeError> {
    let io = |source| ProbeError::Connect { addr, source };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        pinned,
        algorithms: provider.signature_verification_algorithms,
    });
    let client = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| io(std::io::Error::other(e)))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(io)?;
    let mut stream = TlsConnector::from(Arc::new(client))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(io)?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    let mut answer = Vec::new();
    // The server closes after answering; a reset after the status line
    // arrived still tells the status.
    let read = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default().to_owned();
    if status.starts_with("HTTP/1.1 200 ") {
        return Ok(status);
    }
    read.map_err(io)?;
    Err(ProbeError::Status {
        path,
        status: if status.is_empty() {
            "nothing".into()
        } else {
            status
        },
    })
}

/// The loopback address of the family the server listens on; a specific
/// address is asked directly.
fn loopback_for(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// The certificate the server serves: `tls.cert`, else the development
/// certificate (read, never generated).
fn certificate_path(config: &Config) -> PathBuf {
    if config.tls.cert.is_empty() {
        config.tls.dev_cert_dir.join(DEV_CERT_FILE)
    } else {
        PathBuf::from(&config.tls.cert)
    }
}

/// Accepts exactly the configured leaf certificate; the handshake signature
/// is still verified with it, so only the holder of its key passes.
#[derive(Debug)]
struct PinnedCertificate {
    pinned: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pinned.first() == Some(end_entity) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_bind_address_is_asked_on_loopback() {
        assert_eq!(
            loopback_for("0.0.0.0".parse().unwrap()),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            loopback_for("::".parse().unwrap()),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        let specific: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(loopback_for(specific), specific);
    }

    #[test]
    fn the_configured_certificate_is_the_one_trusted() {
        let mut config = Config::default();
        assert_eq!(
            certificate_path(&config),
            PathBuf::from("certs/dev-cert.pem")
        );
        config.tls.cert = "/run/secrets/tls.crt".into();
        assert_eq!(
            certificate_path(&config),
            PathBuf::from("/run/secrets/tls.crt")
        );
    }
}
