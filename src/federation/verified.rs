//! External tokens verified before, remembered by their SHA-256: a
//! workload sends the same service-account token until its issuer replaces
//! it, and each request after the first costs a hash and a lookup instead
//! of a JSON parse and a signature check. An entry is used only while the
//! token is within its time limits and the issuer's keys are the very set
//! it was verified with: a key set fetched again (rotated, or a key
//! withdrawn) verifies the token again.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use moka::sync::Cache;

use crate::keys::public::PublicKeySet;

/// Most verified tokens remembered.
const CAPACITY: u64 = 100_000;

/// Longest an entry is kept, whatever the token's own limits.
const TIME_TO_LIVE: Duration = Duration::from_secs(600);

/// A verified external token.
#[derive(Debug)]
pub(super) struct Verified {
    /// The trusted issuer's place in the configuration.
    pub issuer: usize,
    /// The token's `sub`.
    pub sub: String,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// Unix time from which the token is refused (expired or too old).
    pub refused_from: i64,
    /// The key set the signature verified with.
    pub keys: Arc<PublicKeySet>,
}

/// The SHA-256 of a token: what entries are found by (the token itself is
/// never kept).
pub(super) type TokenHash = [u8; 32];

/// The remembered verifications.
pub(super) struct VerifiedTokens {
    cache: Cache<TokenHash, Arc<Verified>>,
}

impl VerifiedTokens {
    pub(super) fn new() -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TIME_TO_LIVE)
                .build(),
        }
    }

    /// The hash `token` is remembered by.
    pub(super) fn hash(token: &str) -> TokenHash {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        out
    }

    /// The verification of the token with this hash, if it is still good
    /// at `now`.
    pub(super) fn get(&self, hash: &TokenHash, now: i64) -> Option<Arc<Verified>> {
        let found = self.cache.get(hash)?;
        if now < found.refused_from {
            Some(found)
        } else {
            self.cache.invalidate(hash);
            None
        }
    }

    /// Remembers a verification.
    pub(super) fn insert(&self, hash: TokenHash, verified: Verified) {
        self.cache.insert(hash, Arc::new(verified));
    }

    /// Forgets a verification (its issuer's keys changed).
    pub(super) fn forget(&self, hash: &TokenHash) {
        self.cache.invalidate(hash);
    }
}
