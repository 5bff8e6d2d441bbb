//! Client certificates (RFC 8705): the handshake asks for one and never
//! requires it. Any certificate whose key signs the handshake is taken;
//! whether its chain verifies against the configured client CAs is decided
//! once per connection, after the handshake, so a self-signed certificate
//! (`self_signed_tls_client_auth`) gets through and a connection without
//! one works as before.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{TlsError, read_certificates};
use crate::domain::certificate::PresentedCertificate;

/// Asks for a client certificate, optionally, and checks only that the
/// client holds its key (the handshake signature).
#[derive(Debug)]
pub(super) struct OptionalClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl OptionalClientCertificate {
    pub(super) fn new(provider: &rustls::crypto::CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for OptionalClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a client sends whatever certificate it has, CA-issued
        // or self-signed.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The configured client CAs: does a presented chain lead to one of them?
pub struct ClientCas {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for ClientCas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCas(..)")
    }
}

impl ClientCas {
    /// Reads a PEM bundle of CA certificates.
    pub fn from_pem_file(path: &Path) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certificates(path)? {
            roots
                .add(cert)
                .map_err(|e| TlsError::Rejected(format!("{}: {e}", path.display())))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Rejected(format!("{}: {e}", path.display())))?;
        Ok(Self { verifier })
    }

    /// Whether `chain` (leaf first) verifies to one of the CAs at `now`
    /// (Unix seconds), for client authentication.
    pub fn trusts(&self, chain: &[CertificateDer<'_>], now: i64) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now).unwrap_or(0),
        ));
        self.verifier
            .verify_client_cert(leaf, intermediates, now)
            .is_ok()
    }
}

/// The client certificate of a connection, read once after the handshake:
/// `None` when the client sent none, or sent one that does not parse.
pub fn presented_certificate(
    chain: Option<&[CertificateDer<'_>]>,
    cas: Option<&ClientCas>,
    now: i64,
) -> Option<PresentedCertificate> {
    let chain = chain.filter(|c| !c.is_empty())?;
    let trusted = cas.is_some_and(|cas| cas.trusts(chain, now));
    PresentedCertificate::from_der(chain[0].as_ref(), trusted)
}
