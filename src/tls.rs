//! TLS: the rustls server configuration (TLS 1.2 and 1.3 only, ALPN h2 and
//! http/1.1, an optional client certificate) and the self-signed development
//! certificate; `tls::client_auth` reads client certificates.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub mod client_auth;
mod expiry;

pub use expiry::{MalformedCertificate, not_after};

/// File names of the development certificate and key.
pub const DEV_CERT_FILE: &str = "dev-cert.pem";
/// File name of the development private key.
pub const DEV_KEY_FILE: &str = "dev-key.pem";

/// Subject alternative names of the development certificate.
pub const DEV_CERT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file holds no usable PEM certificate or key.
    #[error("{0}: no PEM certificate or private key found")]
    BadPem(PathBuf),
    /// rustls refused the certificate/key pair.
    #[error("certificate and key rejected: {0}")]
    Rejected(String),
    /// The development certificate could not be generated.
    #[error("cannot generate development certificate: {0}")]
    Generate(String),
}

/// The certificate and key paths in use.
#[derive(Debug, Clone)]
pub struct CertificatePaths {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Returns the development certificate in `dir`, generating a self-signed
/// one (SANs `localhost`, `127.0.0.1`, `::1`) if absent. The flag says
/// whether it was generated now.
pub fn ensure_dev_certificate(dir: &Path) -> Result<(CertificatePaths, bool), TlsError> {
    let paths = CertificatePaths {
        cert: dir.join(DEV_CERT_FILE),
        key: dir.join(DEV_KEY_FILE),
    };
    if paths.cert.exists() && paths.key.exists() {
        return Ok((paths, false));
    }
    let mut params = rcgen::CertificateParams::new(DEV_CERT_NAMES.map(String::from).to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "auth-server development certificate",
    );
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    write_file(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    Ok((paths, true))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads a PEM certificate chain.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::BadPem(path.to_owned()))?;
    if certs.is_empty() {
        return Err(TlsError::BadPem(path.to_owned()));
    }
    Ok(certs)
}

/// `notAfter` (Unix seconds) of the leaf certificate in a PEM chain file.
pub fn certificate_expiry(path: &Path) -> Result<i64, TlsError> {
    let certs = read_certificates(path)?;
    let leaf = certs
        .first()
        .ok_or_else(|| TlsError::BadPem(path.to_owned()))?;
    not_after(leaf).map_err(|_| TlsError::BadPem(path.to_owned()))
}

/// Builds the rustls server configuration from PEM files.
pub fn server_config(paths: &CertificatePaths) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certificates(&paths.cert)?;
    let key_pem = fs::read(&paths.key).map_err(|source| TlsError::Io {
        path: paths.key.clone(),
        source,
    })?;
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::BadPem(paths.key.clone()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_certificates = Arc::new(client_auth::OptionalClientCertificate::new(&provider));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rejected(e.to_string()))?
        .with_client_cert_verifier(client_certificates)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rejected(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Clients that reconnect per request resume instead of a full handshake.
    config.session_storage = ServerSessionMemoryCache::new(16 * 1024);
    if let Ok(ticketer) = rustls::crypto::aws_lc_rs::Ticketer::new() {
        config.ticketer = ticketer;
    }
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificate_is_generated_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, generated) = ensure_dev_certificate(dir.path()).unwrap();
        assert!(generated);
        let first = fs::read(&paths.cert).unwrap();
        let (_, generated) = ensure_dev_certificate(dir.path()).unwrap();
        assert!(!generated);
        assert_eq!(first, fs::read(&paths.cert).unwrap());
        let config = server_config(&paths).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
    }

    #[test]
    fn garbage_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertificatePaths {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        fs::write(&paths.cert, "nope").unwrap();
        fs::write(&paths.key, "nope").unwrap();
        assert!(matches!(server_config(&paths), Err(TlsError::BadPem(_))));
    }
}
