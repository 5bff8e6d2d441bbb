//! Deciding whether an access token is good right now, and revoking one:
//! verified claims come from the validation cache or a signature check;
//! every answer, cached or not, is then checked against the in-memory
//! revocation set and the client's current state. No store round trip on
//! the hot path; a revocation is stored before it counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod binding;

use crate::cache::{CachedClaims, ClientCache, RevocationSet, ValidationCache};
use crate::domain::token::{
    AccessTokenClaims, TokenError, TokenPolicy, check_time, verify_signature, verify_signature_by,
};
use crate::keys::KeySet;
use crate::store::{Revocation, Store, StoreError};

/// Why a token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The token itself is bad (see [`TokenError`]).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Its `jti`, or that of a token it was exchanged from, was revoked.
    #[error("token revoked")]
    Revoked,
    /// Its client is disabled, deleted, or reset after the token was issued.
    #[error("client no longer valid")]
    ClientInvalid,
}

impl Rejection {
    /// A label for logs and metrics (bounded: one per kind).
    pub fn name(self) -> &'static str {
        match self {
            Self::Token(TokenError::Malformed) => "malformed",
            Self::Token(TokenError::UnsupportedHeader) => "unsupported_header",
            Self::Token(TokenError::BadSignature) => "bad_signature",
            Self::Token(TokenError::WrongIssuer) => "wrong_issuer",
            Self::Token(TokenError::Expired) => "expired",
            Self::Token(TokenError::NotYetValid) => "not_yet_valid",
            Self::Revoked => "revoked",
            Self::ClientInvalid => "client_invalid",
        }
    }

    /// Every label [`Rejection::name`] gives.
    pub const NAMES: [&'static str; 8] = [
        "malformed",
        "unsupported_header",
        "bad_signature",
        "wrong_issuer",
        "expired",
        "not_yet_valid",
        "revoked",
        "client_invalid",
    ];
}

/// Why a client's revocation request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The token belongs to another client (RFC 7009 2.1); it stays valid.
    #[error("a client may revoke only its own tokens")]
    NotOwner,
    /// The revocation could not be stored; nothing was revoked.
    #[error("the revocation could not be stored: {0}")]
    Store(#[from] StoreError),
}

/// An accepted token: its claims.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The verified claims.
    pub claims: Arc<AccessTokenClaims>,
}

/// Counters for metrics: validations by result, cache hits and misses.
#[derive(Debug, Default)]
pub struct ValidationStats {
    /// Tokens accepted.
    pub accepted: AtomicU64,
    /// Tokens refused.
    pub rejected: AtomicU64,
    /// Answers that started from the validation cache.
    pub cache_hits: AtomicU64,
    /// Answers that needed a signature check.
    pub cache_misses: AtomicU64,
    /// Client checks skipped because the store was unreachable.
    pub client_check_skipped: AtomicU64,
}

/// Validates tokens for `/oauth/validate` and introspection.
pub struct TokenValidator {
    cache: ValidationCache,
    revocations: Arc<RevocationSet>,
    stats: ValidationStats,
}

impl TokenValidator {
    /// A validator over the given caches.
    pub fn new(cache: ValidationCache, revocations: Arc<RevocationSet>) -> Self {
        Self {
            cache,
            revocations,
            stats: ValidationStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &ValidationStats {
        &self.stats
    }

    /// The revocation set this validator consults (the change feed keeps
    /// it in step with the store).
    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revocations
    }

    /// Revokes `token` on behalf of the client `client_id` (RFC 7009): the
    /// `jti` of the revoked token, or `None` when there was nothing to
    /// revoke (not one of our tokens, malformed, expired, already revoked;
    /// RFC 7009 2.2 answers those with success too). The revocation is in
    /// the store before this returns, and refused here from then on.
    pub async fn revoke_own(
        &self,
        token: &str,
        client_id: &str,
        keys: &KeySet,
        policy: &TokenPolicy,
        store: &dyn Store,
        now: i64,
    ) -> Result<Option<String>, RevokeError> {
        let Ok(claims) = verify_signature(token, keys, policy) else {
            return Ok(None);
        };
        if claims.client_id != client_id {
            return Err(RevokeError::NotOwner);
        }
        if claims.exp <= now || self.revocations.contains(&claims.jti) {
            return Ok(None);
        }
        let revocation = Revocation {
            jti: claims.jti,
            client_id: claims.client_id,
            exp: claims.exp,
            revoked_at: now,
        };
        store.revoke(&revocation).await?;
        self.revocations
            .insert(revocation.jti.clone(), revocation.exp);
        self.cache.invalidate(token);
        Ok(Some(revocation.jti))
    }

    /// Forgets remembered rejections (the keys changed).
    pub fn forget_rejections(&self) {
        self.cache.forget_rejections();
    }

    /// Validates `token` at `now`.
    pub async fn validate(
        &self,
        token: &str,
        keys: &KeySet,
        policy: &TokenPolicy,
        clients: &ClientCache,
        now: i64,
    ) -> Result<Validated, Rejection> {
        let result = self.check(token, keys, policy, clients, now).await;
        let counter = if result.is_ok() {
            &self.stats.accepted
        } else {
            &self.stats.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn check(
        &self,
        token: &str,
        keys: &KeySet,
        policy: &TokenPolicy,
        clients: &ClientCache,
        now: i64,
    ) -> Result<Validated, Rejection> {
        let claims = match self.cache.get(token) {
            Some(cached) => {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                let cached = cached?;
                // Its key was retired (an emergency rotation): refused as a
                // token with an unknown kid is, cached or not.
                if !keys.accepts_kid(&cached.kid) {
                    self.cache.invalidate(token);
                    return Err(TokenError::UnsupportedHeader.into());
                }
                cached.claims
            }
            None => {
                self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
                match verify_signature_by(token, keys, policy) {
                    Ok((claims, key)) => {
                        let claims = Arc::new(claims);
                        let left =
                            u64::try_from(claims.exp.saturating_add(policy.exp_leeway_secs) - now)
                                .unwrap_or(0);
                        if left > 0 {
                            self.cache.insert_valid(CachedClaims {
                                token: Arc::from(token),
                                claims: Arc::clone(&claims),
                                kid: Arc::from(key.kid()),
                                expires: Instant::now() + Duration::from_secs(left),
                            });
                        }
                        claims
                    }
                    Err(e) => {
                        self.cache.insert_rejected(token, e);
                        return Err(e.into());
                    }
                }
            }
        };
        check_time(&claims, policy, now)?;
        // A derived token falls with every token it was exchanged from.
        if self.revocations.revokes(&claims) {
            return Err(Rejection::Revoked);
        }
        match clients.get(&claims.client_id).await {
            Ok(Some(client)) if client.honours_token_issued_at(claims.iat) => {}
            Ok(_) => return Err(Rejection::ClientInvalid),
            // The store is down: revocations are in memory, so the token can
            // still be judged; only a client change during the outage is missed.
            Err(_) => {
                self.stats
                    .client_check_skipped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(Validated { claims })
    }
}
