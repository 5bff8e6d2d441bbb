//! In-memory caches in front of the store. The client cache keeps token
//! issuance free of store round trips for known clients (and remembers misses
//! so a flood of unknown ids does not reach the store); the revocation set
//! answers "is this jti revoked?" without the store; the validation caches
//! remember verified claims and recent rejections by token hash.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::Expiry;
use moka::sync::Cache;

use crate::domain::client::Client;
use crate::domain::token::{AccessTokenClaims, TokenError};
use crate::store::{ClientStore, StoreError};

/// Clients by id, read through from the store. `None` caches a miss.
pub struct ClientCache {
    store: Arc<dyn ClientStore>,
    entries: Cache<String, Option<Arc<Client>>>,
}

impl ClientCache {
    /// A cache of at most `capacity` clients, each kept for `ttl`.
    pub fn new(store: Arc<dyn ClientStore>, capacity: u64, ttl: Duration) -> Self {
        Self {
            store,
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The client with this id, from memory or else from the store.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(hit) = self.entries.get(id) {
            return Ok(hit);
        }
        let loaded = self.store.get_client(id).await?.map(Arc::new);
        self.entries.insert(id.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// Drops one cached entry (after a change).
    pub fn invalidate(&self, id: &str) {
        self.entries.invalidate(id);
    }

    /// True when no client is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.run_pending_tasks();
        self.entries.entry_count() == 0
    }

    /// Drops every cached entry.
    pub fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn ClientStore> {
        &self.store
    }
}

/// Revoked `jti`s still in force, with their expiry, loaded at start and fed
/// by the change feed.
#[derive(Debug, Default)]
pub struct RevocationSet {
    jtis: RwLock<HashMap<String, i64>>,
}

impl RevocationSet {
    /// True when `jti` is revoked.
    pub fn contains(&self, jti: &str) -> bool {
        self.jtis.read().map_or(true, |set| set.contains_key(jti))
    }

    /// Records a revocation of a token expiring at `exp`.
    pub fn insert(&self, jti: String, exp: i64) {
        if let Ok(mut set) = self.jtis.write() {
            set.insert(jti, exp);
        }
    }

    /// Forgets revocations of tokens that expired before `now`.
    pub fn prune(&self, now: i64) {
        if let Ok(mut set) = self.jtis.write() {
            set.retain(|_, exp| *exp > now);
        }
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.jtis.read().map_or(0, |set| set.len())
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// SHA-256 of a token: the cache key. A cryptographic hash, so no crafted
/// token can collide with a cached valid one.
pub type TokenHash = [u8; 32];

/// Hashes a token for the validation caches.
pub fn token_hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// A cached verified token: its claims and the instant its `exp` passes.
#[derive(Debug, Clone)]
pub struct CachedClaims {
    /// The verified claims.
    pub claims: Arc<AccessTokenClaims>,
    /// When the entry must be gone (the token's expiry).
    pub expires: Instant,
}

struct UntilTokenExpiry;

impl Expiry<TokenHash, CachedClaims> for UntilTokenExpiry {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        value: &CachedClaims,
        now: Instant,
    ) -> Option<Duration> {
        Some(value.expires.saturating_duration_since(now))
    }
}

/// Verified claims by token hash (entries never outlive the token), and
/// recent definitive rejections (a shield against floods of one bad token).
pub struct ValidationCache {
    valid: Cache<TokenHash, CachedClaims>,
    rejected: Cache<TokenHash, TokenError>,
}

impl ValidationCache {
    /// Caches up to `capacity` valid tokens and `negative_capacity`
    /// rejections, the latter for `negative_ttl`.
    pub fn new(capacity: u64, negative_capacity: u64, negative_ttl: Duration) -> Self {
        Self {
            valid: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilTokenExpiry)
                .build(),
            rejected: Cache::builder()
                .max_capacity(negative_capacity)
                .time_to_live(negative_ttl)
                .build(),
        }
    }

    /// A cached verification result, if any.
    pub fn get(&self, hash: &TokenHash) -> Option<Result<CachedClaims, TokenError>> {
        if let Some(hit) = self.valid.get(hash) {
            return Some(Ok(hit));
        }
        self.rejected.get(hash).map(Err)
    }

    /// Remembers verified claims until the token expires.
    pub fn insert_valid(&self, hash: TokenHash, claims: CachedClaims) {
        self.valid.insert(hash, claims);
    }

    /// Remembers a rejection that cannot change with time.
    pub fn insert_rejected(&self, hash: TokenHash, error: TokenError) {
        self.rejected.insert(hash, error);
    }

    /// Forgets a token (after it was revoked here).
    pub fn invalidate(&self, hash: &TokenHash) {
        self.valid.invalidate(hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::client::SecretHash;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn reads_through_and_caches_hits_and_misses() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn ClientStore> = Arc::new(store);
        let cache = ClientCache::new(Arc::clone(&store), 100, Duration::from_secs(60));
        assert!(cache.get("c").await.unwrap().is_none());
        let client = Client::new("c".into(), "c".into(), SecretHash::of("s"), 0);
        store.insert_client(&client).await.unwrap();
        assert!(cache.get("c").await.unwrap().is_none(), "miss is cached");
        cache.invalidate("c");
        assert_eq!(cache.get("c").await.unwrap().unwrap().id, "c");
        store.delete_client("c").await.unwrap();
        assert!(cache.get("c").await.unwrap().is_some(), "hit is cached");
    }
}
