//! The OAuth error vocabulary (RFC 6749 5.2, RFC 6750 3.1, RFC 7009 2.2.1,
//! RFC 8707 2, RFC 9449 5). Domain code speaks these; `http/error.rs` alone turns them into
//! status codes and headers.

use std::borrow::Cow;

/// A failed OAuth request, named as the RFCs name it. The description is safe to
/// show to the caller: it never contains a secret or a whole token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The request is missing a parameter, repeats one, or is otherwise malformed.
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// Client authentication failed: unknown client, wrong secret, no
    /// credentials, disabled client. Deliberately says no more than that.
    #[error("invalid_client")]
    InvalidClient,
    /// The client may not use this grant or act on this token.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Cow<'static, str>),
    /// The grant type is not one this server supports.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// A requested scope is unknown, malformed or not allowed for this client.
    #[error("invalid_scope: {0}")]
    InvalidScope(Cow<'static, str>),
    /// The requested `resource` is not an audience this client may ask for.
    #[error("invalid_target: {0}")]
    InvalidTarget(Cow<'static, str>),
    /// The DPoP proof of a token request is missing where the client must
    /// send one, malformed, or does not match the request (RFC 9449 5).
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(Cow<'static, str>),
    /// The bearer token is missing, malformed, forged, expired or revoked.
    #[error("invalid_token: {0}")]
    InvalidToken(Cow<'static, str>),
    /// The token is valid but none of its scopes grants the endpoint; carries
    /// the scopes that would.
    #[error("insufficient_scope")]
    InsufficientScope {
        /// Space-separated scopes that would grant the endpoint.
        required: String,
    },
    /// The server cannot answer now (store unreachable); the caller should retry.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(Cow<'static, str>),
    /// A limit was exceeded; retry after the given number of seconds.
    #[error("rate limited")]
    RateLimited {
        /// Whole seconds until a retry can succeed (at least 1).
        retry_after_secs: u64,
    },
    /// An internal failure the caller cannot fix. The details go to the log,
    /// never to the response.
    #[error("server_error")]
    ServerError,
}

impl OAuthError {
    /// The RFC error code, as sent in the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::TemporarilyUnavailable(_) => "temporarily_unavailable",
            Self::RateLimited { .. } => "slow_down",
            Self::ServerError => "server_error",
        }
    }

    /// A human-readable explanation for `error_description`.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            Self::InvalidRequest(d)
            | Self::UnauthorizedClient(d)
            | Self::InvalidScope(d)
            | Self::InvalidTarget(d)
            | Self::InvalidToken(d)
            | Self::InvalidDpopProof(d)
            | Self::TemporarilyUnavailable(d) => d.clone(),
            Self::InvalidClient => "client authentication failed".into(),
            Self::UnsupportedGrantType => {
                "this grant type is not supported: see grant_types_supported in the metadata".into()
            }
            Self::InsufficientScope { .. } => {
                "the token does not grant access to this endpoint".into()
            }
            Self::RateLimited { .. } => "too many requests; retry later".into(),
            Self::ServerError => "internal error".into(),
        }
    }

    /// Shorthand for [`OAuthError::InvalidRequest`].
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest(description.into())
    }
}
