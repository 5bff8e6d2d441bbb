//! In-memory caches in front of the store. The client cache keeps token
//! issuance free of store round trips for known clients (and remembers misses
//! so a flood of unknown ids does not reach the store); the revocation set
//! answers "is this jti revoked?" without the store; the validation caches
//! remember verified claims (by a keyed hash of the token, the token itself
//! compared on a hit) and recent rejections (by SHA-256 of the token).
//!
//! Every cache is bounded twice: by entries and by bytes. moka bounds one
//! weight, so each entry weighs the larger of its estimated size and the
//! byte budget divided by the entry budget: small entries hit the entry
//! limit, large ones the byte limit, and neither is ever exceeded.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::Expiry;
use moka::sync::Cache;

use crate::domain::client::Client;
use crate::domain::token::{AccessTokenClaims, TokenError};
use crate::store::{ClientStore, StoreError};

/// How much a cache may hold: entries and estimated bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBudget {
    /// Most entries.
    pub entries: u64,
    /// Most estimated bytes (keys, values and bookkeeping).
    pub bytes: u64,
}

impl CacheBudget {
    /// The least weight of one entry: the byte budget spread over the entry
    /// budget, so `entries` small entries fill the cache exactly.
    fn floor(self) -> u64 {
        (self.bytes / self.entries.max(1)).max(1)
    }

    /// The weight of an entry of `size` estimated bytes.
    fn weigh(self, size: usize) -> u32 {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        u32::try_from(size.max(self.floor())).unwrap_or(u32::MAX)
    }
}

/// Bookkeeping bytes per cache entry (moka's node, hash-table slot, `Arc`
/// headers), added to every size estimate.
const ENTRY_OVERHEAD: usize = 160;

/// Estimated heap bytes of a client record and its id key.
fn client_size(client: &Client) -> usize {
    let strings = client.id.len() * 2
        + client.name.len()
        + client
            .allowed_audiences
            .iter()
            .map(String::len)
            .sum::<usize>()
        + client.allowed_scopes.iter().map(str::len).sum::<usize>()
        + client.default_scopes.iter().map(str::len).sum::<usize>()
        // The registered keys, as text and parsed (a parsed key is about
        // as large as its JWK).
        + client.jwks.as_ref().map_or(0, |jwks| jwks.json().len() * 2)
        + client.jwks_uri.as_ref().map_or(0, String::len)
        + client
            .tls_client_auth
            .as_ref()
            .map_or(0, |tls| tls.value().len());
    let vectors = (client.allowed_audiences.len()
        + client.allowed_scopes.iter().count()
        + client.default_scopes.iter().count())
        * std::mem::size_of::<String>();
    std::mem::size_of::<Client>() + strings + vectors + ENTRY_OVERHEAD
}

/// Estimated heap bytes of verified claims.
fn claims_size(claims: &AccessTokenClaims) -> usize {
    std::mem::size_of::<AccessTokenClaims>()
        + claims.iss.len()
        + claims.sub.len()
        + claims.client_id.len()
        + claims.aud.len()
        + claims.scope.as_ref().map_or(0, String::len)
        + claims.jti.len()
        + claims
            .derived_from
            .iter()
            .map(|jti| jti.len() + std::mem::size_of::<String>())
            .sum::<usize>()
        + claims.cnf.as_ref().map_or(0, |c| {
            std::mem::size_of::<crate::domain::token::Confirmation>()
                + c.jkt.as_ref().map_or(0, String::len)
                + c.x5t_s256.as_ref().map_or(0, String::len)
        })
        + ENTRY_OVERHEAD
}

/// The key under which a miss is remembered: a hash of the id, so a miss
/// costs the same few bytes whatever id was asked for.
type MissKey = [u8; 32];

fn miss_key(id: &str) -> MissKey {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, id.as_bytes()).as_ref());
    out
}

/// Clients by id, read through from the store, and recent misses.
pub struct ClientCache {
    store: Arc<dyn ClientStore>,
    entries: Cache<String, Arc<Client>>,
    misses: Cache<MissKey, ()>,
}

impl ClientCache {
    /// A cache within `budget`, each entry kept for `ttl`. Misses get a
    /// budget of their own of the same entry count: they are fixed-size.
    pub fn new(store: Arc<dyn ClientStore>, budget: CacheBudget, ttl: Duration) -> Self {
        Self {
            store,
            entries: Cache::builder()
                .max_capacity(budget.bytes)
                .weigher(move |_, client: &Arc<Client>| budget.weigh(client_size(client)))
                .time_to_live(ttl)
                .build(),
            misses: Cache::builder()
                .max_capacity(budget.entries)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The client with this id, from memory or else from the store. Callers
    /// check the id's form first (`is_valid_client_id`), so nothing
    /// unbounded reaches the store.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(hit) = self.entries.get(id) {
            return Ok(Some(hit));
        }
        let key = miss_key(id);
        if self.misses.contains_key(&key) {
            return Ok(None);
        }
        let loaded = self.store.get_client(id).await?.map(Arc::new);
        match &loaded {
            Some(client) => self.entries.insert(id.to_owned(), Arc::clone(client)),
            None => self.misses.insert(key, ()),
        }
        Ok(loaded)
    }

    /// The client with this id if it is in memory; never reads the store.
    pub fn get_cached(&self, id: &str) -> Option<Arc<Client>> {
        self.entries.get(id)
    }

    /// Drops one cached entry (after a change).
    pub fn invalidate(&self, id: &str) {
        self.entries.invalidate(id);
        self.misses.invalidate(&miss_key(id));
    }

    /// True when no client is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.run_pending_tasks();
        self.entries.entry_count() == 0
    }

    /// Drops every cached entry.
    pub fn invalidate_all(&self) {
        self.entries.invalidate_all();
        self.misses.invalidate_all();
    }

    /// Estimated bytes held by the cached clients and misses.
    pub fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.misses.run_pending_tasks();
        self.entries.weighted_size() + self.misses.entry_count() * (32 + ENTRY_OVERHEAD as u64)
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

    /// True when the token with these claims is revoked: its own `jti`, or
    /// that of a token it was exchanged from (checked under one lock).
    pub fn revokes(&self, claims: &AccessTokenClaims) -> bool {
        self.jtis.read().map_or(true, |set| {
            set.contains_key(&claims.jti)
                || claims.derived_from.iter().any(|jti| set.contains_key(jti))
        })
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

/// SHA-256 of a token: the key of remembered rejections, which keep no copy
/// of the token. A cryptographic hash, so no crafted token can collide with
/// a rejected one and be refused in its place.
pub type TokenHash = [u8; 32];

/// Hashes a token for the rejection cache.
pub fn token_hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// A cached verified token: its claims, the key that verified it, and the
/// instant its `exp` passes.
#[derive(Debug, Clone)]
pub struct CachedClaims {
    /// The token itself: a hit needs the presented token to equal it, not
    /// only its hash.
    pub token: Arc<str>,
    /// The verified claims.
    pub claims: Arc<AccessTokenClaims>,
    /// The `kid` of the key that verified the signature: a hit is refused
    /// once that key is no longer in the key set (retired).
    pub kid: Arc<str>,
    /// When the entry must be gone (the token's expiry).
    pub expires: Instant,
}

struct UntilTokenExpiry;

impl Expiry<u64, CachedClaims> for UntilTokenExpiry {
    fn expire_after_create(&self, _: &u64, value: &CachedClaims, now: Instant) -> Option<Duration> {
        Some(value.expires.saturating_duration_since(now))
    }
}

/// Verified claims (entries never outlive the token), and recent
/// definitive rejections (a shield against floods of one bad token).
///
/// Verified claims are found by a hash of the token keyed with a per-process
/// random key (SipHash), not by SHA-256: on the hot path that hash costs a
/// fraction of a digest, and the entry keeps the token, compared in
/// constant time, so a collision (chance, or an attacker who cannot know
/// the key) is only a miss. Rejections stay keyed by SHA-256, computed only
/// when the token is not among the verified ones, so their entries stay a
/// fixed size whatever tokens a flood sends.
pub struct ValidationCache {
    valid: Cache<u64, CachedClaims>,
    valid_key: std::collections::hash_map::RandomState,
    rejected: Cache<TokenHash, TokenError>,
}

impl ValidationCache {
    /// Caches valid tokens within `budget` and up to `negative_capacity`
    /// rejections (fixed-size entries), the latter for `negative_ttl`.
    pub fn new(budget: CacheBudget, negative_capacity: u64, negative_ttl: Duration) -> Self {
        Self {
            valid: Cache::builder()
                .max_capacity(budget.bytes)
                .weigher(move |_, cached: &CachedClaims| {
                    budget
                        .weigh(claims_size(&cached.claims) + cached.kid.len() + cached.token.len())
                })
                .expire_after(UntilTokenExpiry)
                .build(),
            valid_key: std::collections::hash_map::RandomState::new(),
            rejected: Cache::builder()
                .max_capacity(negative_capacity)
                .time_to_live(negative_ttl)
                .build(),
        }
    }

    /// A cached verification result for `token`, if any.
    pub fn get(&self, token: &str) -> Option<Result<CachedClaims, TokenError>> {
        if let Some(hit) = self.valid.get(&self.valid_key(token)) {
            // Constant time in the bytes (aws-lc's CRYPTO_memcmp, a few
            // instructions a byte where a byte-wise `subtle` comparison
            // takes about ten): this runs over the whole token on every hit.
            let same = aws_lc_rs::constant_time::verify_slices_are_equal(
                hit.token.as_bytes(),
                token.as_bytes(),
            )
            .is_ok();
            if same {
                return Some(Ok(hit));
            }
        }
        self.rejected.get(&token_hash(token)).map(Err)
    }

    /// Remembers verified claims until the token expires.
    pub fn insert_valid(&self, claims: CachedClaims) {
        self.valid.insert(self.valid_key(&claims.token), claims);
    }

    /// Remembers a rejection of `token` that cannot change with time.
    pub fn insert_rejected(&self, token: &str, error: TokenError) {
        self.rejected.insert(token_hash(token), error);
    }

    /// Forgets a token (after it was revoked here, or its key retired).
    pub fn invalidate(&self, token: &str) {
        self.valid.invalidate(&self.valid_key(token));
    }

    fn valid_key(&self, token: &str) -> u64 {
        self.valid_key.hash_one(token)
    }

    /// Forgets every remembered rejection: after the keys change, a token
    /// refused for an unknown `kid` may be signed by a key just learned of.
    pub fn forget_rejections(&self) {
        self.rejected.invalidate_all();
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
        let budget = CacheBudget {
            entries: 100,
            bytes: 1 << 20,
        };
        let cache = ClientCache::new(Arc::clone(&store), budget, Duration::from_secs(60));
        assert!(cache.get("c").await.unwrap().is_none());
        let client = Client::new("c".into(), "c".into(), SecretHash::of("s"), 0);
        store.insert_client(&client).await.unwrap();
        assert!(cache.get("c").await.unwrap().is_none(), "miss is cached");
        cache.invalidate("c");
        assert_eq!(cache.get("c").await.unwrap().unwrap().id, "c");
        store.delete_client("c").await.unwrap();
        assert!(cache.get("c").await.unwrap().is_some(), "hit is cached");
    }

    #[test]
    fn entries_weigh_at_least_their_share_of_the_byte_budget() {
        let budget = CacheBudget {
            entries: 1000,
            bytes: 1_000_000,
        };
        assert_eq!(budget.weigh(10), 1000, "small entries count as one slot");
        assert_eq!(
            budget.weigh(50_000),
            50_000,
            "large entries count their bytes"
        );
    }

    #[tokio::test]
    async fn large_clients_are_bounded_by_bytes_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        store.migrate().await.unwrap();
        let budget = CacheBudget {
            entries: 10_000,
            bytes: 200_000,
        };
        for i in 0..100 {
            let client = Client::new(format!("c{i}"), "x".repeat(10_000), SecretHash::of("s"), 0);
            store.insert_client(&client).await.unwrap();
        }
        let store: Arc<dyn ClientStore> = Arc::new(store);
        let cache = ClientCache::new(store, budget, Duration::from_secs(60));
        for i in 0..100 {
            assert!(cache.get(&format!("c{i}")).await.unwrap().is_some());
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.weighted_size() <= budget.bytes);
        assert!(
            cache.entries.entry_count() < 30,
            "10 kB clients in a 200 kB budget: {} cached",
            cache.entries.entry_count()
        );
    }

    fn cached(token: &str) -> CachedClaims {
        CachedClaims {
            token: Arc::from(token),
            claims: Arc::new(AccessTokenClaims {
                iss: "https://issuer".into(),
                sub: "c".into(),
                client_id: "c".into(),
                aud: "https://api".into(),
                scope: None,
                iat: 0,
                nbf: 0,
                exp: 60,
                jti: "j".into(),
                cnf: None,
                act: None,
                derived_from: Vec::new(),
            }),
            kid: Arc::from("k"),
            expires: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn a_verified_token_is_found_only_by_the_same_token() {
        let budget = CacheBudget {
            entries: 10,
            bytes: 1 << 20,
        };
        let cache = ValidationCache::new(budget, 10, Duration::from_secs(60));
        cache.insert_valid(cached("token-a"));
        assert!(matches!(cache.get("token-a"), Some(Ok(hit)) if &*hit.token == "token-a"));
        assert!(cache.get("token-b").is_none());
        // An entry under token-a's hash that holds another token, as a
        // collision would leave it, is a miss for token-a.
        cache
            .valid
            .insert(cache.valid_key("token-a"), cached("token-b"));
        assert!(cache.get("token-a").is_none());
        cache.insert_valid(cached("token-a"));
        cache.invalidate("token-a");
        assert!(cache.get("token-a").is_none());
        cache.insert_rejected("token-c", TokenError::BadSignature);
        assert!(matches!(
            cache.get("token-c"),
            Some(Err(TokenError::BadSignature))
        ));
    }

    #[tokio::test]
    async fn misses_are_remembered_by_a_fixed_size_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn ClientStore> = Arc::new(store);
        let budget = CacheBudget {
            entries: 50,
            bytes: 1 << 20,
        };
        let cache = ClientCache::new(store, budget, Duration::from_secs(60));
        for i in 0..500 {
            assert!(cache.get(&format!("unknown-{i}")).await.unwrap().is_none());
        }
        cache.misses.run_pending_tasks();
        assert!(cache.misses.entry_count() <= 50);
        assert!(cache.weighted_size() < 50 * 200 + 1);
    }
}
