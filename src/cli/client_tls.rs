//! The certificate registration flags of `client create` and `client
//! update` (RFC 8705): one subject name of a CA-issued certificate, or the
//! client's self-signed certificate.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::domain::certificate::{TlsClientAuth, certificate_thumbprint};

/// At most one of these may be given.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// tls_client_auth: the subject DN of the client's certificate (RFC 4514,
    /// e.g. "CN=billing,O=Example").
    #[arg(long, value_name = "DN")]
    pub tls_subject_dn: Option<String>,
    /// tls_client_auth: a DNS name in the certificate's subject alternative names.
    #[arg(long, value_name = "NAME")]
    pub tls_san_dns: Option<String>,
    /// tls_client_auth: a URI in the certificate's subject alternative names.
    #[arg(long, value_name = "URI")]
    pub tls_san_uri: Option<String>,
    /// tls_client_auth: an IP address in the certificate's subject alternative names.
    #[arg(long, value_name = "IP")]
    pub tls_san_ip: Option<String>,
    /// tls_client_auth: an email address in the certificate's subject alternative names.
    #[arg(long, value_name = "EMAIL")]
    pub tls_san_email: Option<String>,
    /// self_signed_tls_client_auth: the client's certificate (PEM file).
    #[arg(long, value_name = "PEM")]
    pub self_signed_cert: Option<PathBuf>,
    /// self_signed_tls_client_auth: the SHA-256 thumbprint of the client's
    /// certificate (base64url, as in cnf x5t#S256).
    #[arg(long, value_name = "THUMBPRINT")]
    pub self_signed_thumbprint: Option<String>,
}

impl TlsArgs {
    /// The registration the flags describe; `None` when none is given.
    pub fn registration(&self) -> Result<Option<TlsClientAuth>, CliError> {
        let thumbprint = match &self.self_signed_cert {
            None => None,
            Some(path) => {
                let certs = crate::tls::read_certificates(path)
                    .map_err(|e| CliError::Refused(e.to_string()))?;
                certs
                    .first()
                    .map(|leaf| certificate_thumbprint(leaf.as_ref()))
            }
        };
        let given: Vec<(&str, &str)> = [
            ("subject_dn", self.tls_subject_dn.as_deref()),
            ("san_dns", self.tls_san_dns.as_deref()),
            ("san_uri", self.tls_san_uri.as_deref()),
            ("san_ip", self.tls_san_ip.as_deref()),
            ("san_email", self.tls_san_email.as_deref()),
            ("self_signed", thumbprint.as_deref()),
            ("self_signed", self.self_signed_thumbprint.as_deref()),
        ]
        .into_iter()
        .filter_map(|(kind, value)| Some((kind, value?)))
        .collect();
        match given.as_slice() {
            [] => Ok(None),
            [(kind, value)] => TlsClientAuth::from_parts(kind, value)
                .map(Some)
                .map_err(|e| CliError::Refused(e.to_string())),
            _ => Err(CliError::Refused(
                "give one certificate registration: one --tls-* flag or one --self-signed-* flag"
                    .into(),
            )),
        }
    }
}
