//! The client record and its secrets: generation, SHA-256 hashing and
//! constant-time verification. Secrets are 256-bit random values, so a single
//! SHA-256 is enough; a slow KDF would only make every token request slow.

use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::certificate::TlsClientAuth;
use super::scope::ScopeSet;
use crate::keys::public::{JwksError, PublicKeySet};

/// Length of a SHA-256 digest.
pub const SECRET_HASH_LEN: usize = 32;

/// SHA-256 of a client secret. Only this is ever stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash(pub [u8; SECRET_HASH_LEN]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    /// Hashes a presented or generated secret.
    pub fn of(secret: &str) -> Self {
        let digest = digest::digest(&digest::SHA256, secret.as_bytes());
        let mut out = [0u8; SECRET_HASH_LEN];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// Rebuilds a hash read from the store; `None` if the length is wrong.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; SECRET_HASH_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// Constant-time equality.
    pub fn ct_matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// A freshly generated secret, shown to the operator once and then dropped.
pub struct GeneratedSecret {
    /// The secret itself (base64url, 43 characters).
    pub plaintext: String,
    /// Its hash, for the store.
    pub hash: SecretHash,
}

/// Errors from the system random source.
#[derive(Debug, thiserror::Error)]
pub enum RandomError {
    /// The operating system's random source failed.
    #[error("the system random source failed")]
    Unavailable,
}

/// Fills `N` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| RandomError::Unavailable)?;
    Ok(buf)
}

/// Generates a 256-bit secret, base64url without padding.
pub fn generate_secret() -> Result<GeneratedSecret, RandomError> {
    let plaintext = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let hash = SecretHash::of(&plaintext);
    Ok(GeneratedSecret { plaintext, hash })
}

/// Generates a client id: a readable prefix and 96 random bits.
pub fn generate_client_id() -> Result<String, RandomError> {
    Ok(format!(
        "client-{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<12>()?)
    ))
}

/// Is `id` acceptable as a client id? Printable ASCII without spaces, colons or
/// quotes, so it survives Basic auth, URLs and logs unchanged.
pub fn is_valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// A registered client, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Public identifier, used as `client_id` and `sub`.
    pub id: String,
    /// Human-readable name for operators.
    pub name: String,
    /// Hash of the current secret.
    pub secret_hash: SecretHash,
    /// Hash of the previous secret while a rotation is in progress.
    pub previous_secret_hash: Option<SecretHash>,
    /// Unix time after which the previous secret stops working.
    pub previous_secret_expires_at: Option<i64>,
    /// The secret was chosen by an operator, not generated (dev/test only).
    pub secret_imported: bool,
    /// Scopes the client may request.
    pub allowed_scopes: ScopeSet,
    /// Scopes granted when the request names none.
    pub default_scopes: ScopeSet,
    /// Audiences (`resource` values) the client may ask for; the first is the
    /// default.
    pub allowed_audiences: Vec<String>,
    /// Token lifetime override in seconds.
    pub token_lifetime_secs: Option<u32>,
    /// Per-client rate limit override (requests per second).
    pub rate_limit_rps: Option<u32>,
    /// Disabled clients cannot authenticate, and their tokens stop validating.
    pub enabled: bool,
    /// Tokens issued before this Unix time are no longer valid.
    pub tokens_valid_after: i64,
    /// Unix time of creation.
    pub created_at: i64,
    /// Unix time of the last change.
    pub updated_at: i64,
    /// How the client authenticates at the token, introspection and
    /// revocation endpoints; the certificate methods go with a
    /// [`Client::tls_client_auth`] registration of their kind, the others
    /// with none.
    pub auth_method: AuthMethod,
    /// Public keys registered inline, for `private_key_jwt`.
    pub jwks: Option<RegisteredJwks>,
    /// Where the client publishes its public keys, for `private_key_jwt`
    /// (HTTPS; fetched and cached by the server).
    pub jwks_uri: Option<String>,
    /// Mutual TLS registration (RFC 8705), for the certificate methods.
    pub tls_client_auth: Option<TlsClientAuth>,
    /// Every token request must carry a DPoP proof (RFC 9449 5.2).
    pub require_dpop: bool,
}

/// How a client authenticates (RFC 7591 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// A secret in HTTP Basic; the body fields are accepted as well.
    #[default]
    ClientSecretBasic,
    /// A secret in the body; HTTP Basic is accepted as well.
    ClientSecretPost,
    /// A JWT signed with one of the client's registered keys (RFC 7523).
    PrivateKeyJwt,
    /// A certificate that chains to a configured CA and carries the
    /// registered subject name (RFC 8705 2.1).
    TlsClientAuth,
    /// Exactly the registered self-signed certificate (RFC 8705 2.2).
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// The RFC 8705 method of a certificate registration.
    pub fn of_certificate(registration: &TlsClientAuth) -> Self {
        match registration {
            TlsClientAuth::Pki(_) => Self::TlsClientAuth,
            TlsClientAuth::SelfSigned(_) => Self::SelfSignedTlsClientAuth,
        }
    }

    /// Every method, in the order metadata lists them.
    pub const ALL: [Self; 5] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::PrivateKeyJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
    ];

    /// The RFC 7591 name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// The method with this RFC 7591 name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The credential a client of this method presents: the one rule of
    /// which credential authenticates which client.
    pub fn credential(self) -> Credential {
        match self {
            Self::ClientSecretBasic | Self::ClientSecretPost => Credential::Secret,
            Self::PrivateKeyJwt => Credential::Assertion,
            Self::TlsClientAuth | Self::SelfSignedTlsClientAuth => Credential::Certificate,
        }
    }

    /// True for the methods that present a secret.
    pub fn uses_secret(self) -> bool {
        self.credential() == Credential::Secret
    }
}

/// What a client presents to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Its secret (HTTP Basic or body fields).
    Secret,
    /// A JWT signed with one of its registered keys.
    Assertion,
    /// Its certificate, on the TLS connection.
    Certificate,
}

/// A JWK Set registered with the client: the document as registered and
/// its keys, parsed once when the record is read.
#[derive(Clone)]
pub struct RegisteredJwks {
    json: String,
    keys: Arc<PublicKeySet>,
}

impl RegisteredJwks {
    /// Parses a registered JWK Set.
    pub fn parse(json: &str) -> Result<Self, JwksError> {
        let keys = PublicKeySet::parse(json.as_bytes())?;
        Ok(Self {
            json: json.to_owned(),
            keys: Arc::new(keys),
        })
    }

    /// The document as registered.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The parsed keys.
    pub fn keys(&self) -> &Arc<PublicKeySet> {
        &self.keys
    }
}

impl PartialEq for RegisteredJwks {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Eq for RegisteredJwks {}

impl std::fmt::Debug for RegisteredJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredJwks")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Whether the client may authenticate with `credential`: it is
    /// enabled and its method names that credential.
    pub fn accepts(&self, credential: Credential) -> bool {
        self.enabled && self.auth_method.credential() == credential
    }

    /// Whether a token issued to this client at `iat` still counts: the
    /// client is enabled and was not reset (`tokens_valid_after`) since.
    pub fn honours_token_issued_at(&self, iat: i64) -> bool {
        self.enabled && iat > self.tokens_valid_after
    }

    /// A new enabled client with no scopes, audiences or overrides.
    pub fn new(id: String, name: String, secret_hash: SecretHash, now: i64) -> Self {
        Self {
            id,
            name,
            secret_hash,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            secret_imported: false,
            allowed_scopes: ScopeSet::default(),
            default_scopes: ScopeSet::default(),
            allowed_audiences: Vec::new(),
            token_lifetime_secs: None,
            rate_limit_rps: None,
            enabled: true,
            tokens_valid_after: 0,
            created_at: now,
            updated_at: now,
            auth_method: AuthMethod::default(),
            jwks: None,
            jwks_uri: None,
            tls_client_auth: None,
            require_dpop: false,
        }
    }

    /// Checks a presented secret against the current and, until its deadline,
    /// the previous hash. Both comparisons always run, in constant time.
    pub fn verify_secret(&self, presented: &str, now: i64) -> bool {
        let presented = SecretHash::of(presented);
        let current = presented.ct_matches(&self.secret_hash);
        let previous = match (self.previous_secret_hash, self.previous_secret_expires_at) {
            (Some(hash), Some(deadline)) => presented.ct_matches(&hash) & (now < deadline),
            _ => {
                // Same work either way, so timing does not reveal a rotation.
                presented.ct_matches(&self.secret_hash);
                false
            }
        };
        current | previous
    }
}

/// Burns the same work as [`Client::verify_secret`] for an unknown client id,
/// so the response time does not reveal whether a client exists: it runs that
/// very function on a decoy client whose hash no secret matches in practice.
pub fn verify_secret_of_unknown_client(presented: &str) -> bool {
    static DECOY: std::sync::LazyLock<Client> = std::sync::LazyLock::new(|| {
        Client::new(
            String::new(),
            String::new(),
            SecretHash([0x5a; SECRET_HASH_LEN]),
            0,
        )
    });
    let _ = std::hint::black_box(DECOY.verify_secret(presented, 0));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_with(secret: &str) -> Client {
        Client::new("c1".into(), "test".into(), SecretHash::of(secret), 0)
    }

    #[test]
    fn correct_secret_verifies_and_wrong_one_does_not() {
        let secret = generate_secret().unwrap();
        let client = client_with(&secret.plaintext);
        assert!(client.verify_secret(&secret.plaintext, 0));
        assert!(!client.verify_secret("wrong", 0));
        assert!(!client.verify_secret("", 0));
        let mut almost = secret.plaintext.clone();
        almost.pop();
        assert!(!client.verify_secret(&almost, 0));
    }

    #[test]
    fn previous_secret_works_until_its_deadline() {
        let mut client = client_with("new-secret");
        client.previous_secret_hash = Some(SecretHash::of("old-secret"));
        client.previous_secret_expires_at = Some(100);
        assert!(client.verify_secret("old-secret", 99));
        assert!(!client.verify_secret("old-secret", 100));
        assert!(client.verify_secret("new-secret", 1_000));
    }

    #[test]
    fn generated_secrets_are_long_unique_and_urlsafe() {
        let a = generate_secret().unwrap().plaintext;
        let b = generate_secret().unwrap().plaintext;
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn unknown_client_never_verifies() {
        assert!(!verify_secret_of_unknown_client("anything"));
    }

    #[test]
    fn client_id_rules() {
        assert!(is_valid_client_id(&generate_client_id().unwrap()));
        assert!(is_valid_client_id("billing-service.v2"));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id("a:b"));
        assert!(!is_valid_client_id("has space"));
        assert!(!is_valid_client_id(&"x".repeat(129)));
    }

    #[test]
    fn secret_hash_debug_hides_bytes() {
        assert_eq!(format!("{:?}", SecretHash::of("s")), "SecretHash(..)");
    }
}
