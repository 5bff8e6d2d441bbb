//! Client certificates for mutual TLS (RFC 8705): what a client registers
//! (one subject name of a CA-issued certificate, or the thumbprint of its
//! self-signed one), what a presented certificate shows, and whether the
//! two match. Pure: whether the chain verifies is decided by the TLS layer
//! and handed in.

use std::net::IpAddr;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The one subject name a `tls_client_auth` client is registered with
/// (RFC 8705 2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSubject {
    /// `tls_client_auth_subject_dn`, as an RFC 4514 string.
    Dn(String),
    /// `tls_client_auth_san_dns`.
    Dns(String),
    /// `tls_client_auth_san_uri`.
    Uri(String),
    /// `tls_client_auth_san_ip`.
    Ip(IpAddr),
    /// `tls_client_auth_san_email`.
    Email(String),
}

/// How a client authenticates with a certificate (RFC 8705 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsClientAuth {
    /// `tls_client_auth`: a certificate that chains to a configured CA and
    /// carries this subject name.
    Pki(CertificateSubject),
    /// `self_signed_tls_client_auth`: exactly this certificate, named by
    /// its SHA-256 thumbprint (base64url, as in `cnf.x5t#S256`).
    SelfSigned(String),
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The kind is none of the stored names.
    #[error("unknown certificate registration kind {0:?}")]
    UnknownKind(String),
    /// The value does not fit its kind.
    #[error("{0}")]
    BadValue(&'static str),
}

impl TlsClientAuth {
    /// The stored kind: `subject_dn`, `san_dns`, `san_uri`, `san_ip`,
    /// `san_email` or `self_signed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Pki(CertificateSubject::Dn(_)) => "subject_dn",
            Self::Pki(CertificateSubject::Dns(_)) => "san_dns",
            Self::Pki(CertificateSubject::Uri(_)) => "san_uri",
            Self::Pki(CertificateSubject::Ip(_)) => "san_ip",
            Self::Pki(CertificateSubject::Email(_)) => "san_email",
            Self::SelfSigned(_) => "self_signed",
        }
    }

    /// The stored value (subject name or thumbprint).
    pub fn value(&self) -> String {
        match self {
            Self::Pki(
                CertificateSubject::Dn(v)
                | CertificateSubject::Dns(v)
                | CertificateSubject::Uri(v)
                | CertificateSubject::Email(v),
            )
            | Self::SelfSigned(v) => v.clone(),
            Self::Pki(CertificateSubject::Ip(ip)) => ip.to_string(),
        }
    }

    /// Rebuilds a registration from its stored kind and value, checking
    /// the value as [`TlsClientAuth::kind`] names it.
    pub fn from_parts(kind: &str, value: &str) -> Result<Self, RegistrationError> {
        let text = |what: &'static str| {
            if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
                Err(RegistrationError::BadValue(what))
            } else {
                Ok(value.to_owned())
            }
        };
        Ok(match kind {
            "subject_dn" => {
                if parse_dn(value).is_none() {
                    return Err(RegistrationError::BadValue(
                        "a subject DN is attribute=value pairs separated by commas",
                    ));
                }
                Self::Pki(CertificateSubject::Dn(text(
                    "a subject DN must be 1 to 1024 characters",
                )?))
            }
            "san_dns" => Self::Pki(CertificateSubject::Dns(text(
                "a SAN DNS name must be 1 to 1024 characters",
            )?)),
            "san_uri" => Self::Pki(CertificateSubject::Uri(text(
                "a SAN URI must be 1 to 1024 characters",
            )?)),
            "san_email" => Self::Pki(CertificateSubject::Email(text(
                "a SAN email must be 1 to 1024 characters",
            )?)),
            "san_ip" => Self::Pki(CertificateSubject::Ip(value.parse().map_err(|_| {
                RegistrationError::BadValue("a SAN IP must be an IPv4 or IPv6 address")
            })?)),
            "self_signed" => {
                let ok = URL_SAFE_NO_PAD
                    .decode(value)
                    .is_ok_and(|bytes| bytes.len() == 32);
                if !ok {
                    return Err(RegistrationError::BadValue(
                        "a certificate thumbprint is base64url of a SHA-256 digest (43 characters)",
                    ));
                }
                Self::SelfSigned(value.to_owned())
            }
            other => return Err(RegistrationError::UnknownKind(other.to_owned())),
        })
    }

    /// Whether `presented` authenticates a client registered this way.
    pub fn accepts(&self, presented: &PresentedCertificate) -> bool {
        match self {
            Self::SelfSigned(thumbprint) => thumbprint
                .as_bytes()
                .ct_eq(presented.thumbprint.as_bytes())
                .into(),
            Self::Pki(subject) => presented.chain_trusted && presented.has_subject(subject),
        }
    }
}

/// A client certificate as presented on a connection, read once per
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedCertificate {
    /// base64url SHA-256 of the DER certificate (`x5t#S256`).
    pub thumbprint: String,
    /// The chain verified against the configured client CAs.
    pub chain_trusted: bool,
    /// Subject attributes in certificate order, types in upper case.
    subject: Vec<(String, String)>,
    dns: Vec<String>,
    uris: Vec<String>,
    ips: Vec<IpAddr>,
    emails: Vec<String>,
}

impl PresentedCertificate {
    /// Reads the names of a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8], chain_trusted: bool) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut presented = Self {
            thumbprint: certificate_thumbprint(der),
            chain_trusted,
            subject: Vec::new(),
            dns: Vec::new(),
            uris: Vec::new(),
            ips: Vec::new(),
            emails: Vec::new(),
        };
        let registry = x509_parser::objects::oid_registry();
        for rdn in cert.subject().iter_rdn() {
            for attribute in rdn.iter() {
                let oid = attribute.attr_type();
                let name = x509_parser::objects::oid2abbrev(oid, registry)
                    .map_or_else(|_| oid.to_id_string(), str::to_owned);
                let value = attribute.as_str().ok()?;
                presented
                    .subject
                    .push((name.to_ascii_uppercase(), value.to_owned()));
            }
        }
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => presented.dns.push((*dns).to_owned()),
                    GeneralName::URI(uri) => presented.uris.push((*uri).to_owned()),
                    GeneralName::RFC822Name(email) => presented.emails.push((*email).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            presented.ips.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(presented)
    }

    fn has_subject(&self, subject: &CertificateSubject) -> bool {
        match subject {
            CertificateSubject::Dn(dn) => parse_dn(dn).is_some_and(|registered| {
                // RFC 4514 strings list the RDNs last first; accept either order.
                registered == self.subject || registered.iter().rev().eq(self.subject.iter())
            }),
            CertificateSubject::Dns(dns) => self.dns.iter().any(|d| d.eq_ignore_ascii_case(dns)),
            CertificateSubject::Uri(uri) => self.uris.iter().any(|u| u == uri),
            CertificateSubject::Ip(ip) => self.ips.contains(ip),
            CertificateSubject::Email(email) => {
                self.emails.iter().any(|e| e.eq_ignore_ascii_case(email))
            }
        }
    }
}

/// base64url SHA-256 of a DER certificate: its `x5t#S256` (RFC 8705 3.1).
pub fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Splits an RFC 4514 string (`CN=svc,O=Example\, Inc`) into attribute
/// types (upper case) and unescaped values; `None` if a part has no `=`.
fn parse_dn(dn: &str) -> Option<Vec<(String, String)>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.push(chars.next()?),
            ',' | '+' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|part| {
            let (name, value) = part.split_once('=')?;
            let (name, value) = (name.trim(), value.trim());
            (!name.is_empty()).then(|| (name.to_ascii_uppercase(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
