//! Remembering the `jti`s of used client assertions, so each is accepted
//! once: in memory on every instance (bounded, each entry dropped when its
//! assertion expires), and in the store as well when the whole fleet must
//! agree (`client_auth.client_assertion_replay = "fleet"`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::Expiry;
use moka::sync::Cache;

use crate::config::ReplayScope;
use crate::store::{SeenAssertion, Store, StoreError};

/// A hash of client id and `jti`: fixed-size keys whatever was sent.
type SeenKey = [u8; 32];

fn seen_key(client_id: &str, jti: &str) -> SeenKey {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(client_id.as_bytes());
    ctx.update(&[0]);
    ctx.update(jti.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Each entry lives for the time stored in it: until its assertion expires.
struct UntilAssertionExpiry;

impl Expiry<SeenKey, Duration> for UntilAssertionExpiry {
    fn expire_after_create(&self, _: &SeenKey, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

/// Whether an assertion may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// First use: go ahead.
    First,
    /// Used before and not yet expired: refuse.
    Replay,
}

/// The `jti`s seen, in memory and (fleet mode) in the store.
pub struct ReplayGuard {
    seen: Cache<SeenKey, Duration>,
    scope: ReplayScope,
    store: Arc<dyn Store>,
}

impl ReplayGuard {
    /// A guard holding at most `capacity` `jti`s in memory, and using
    /// `store` too when `scope` is the fleet.
    pub fn new(capacity: u64, scope: ReplayScope, store: Arc<dyn Store>) -> Self {
        Self {
            seen: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilAssertionExpiry)
                .build(),
            scope,
            store,
        }
    }

    /// Records the use of `jti` by `client_id`, remembered until `until`
    /// (Unix seconds: the assertion's `exp` plus the leeway). The memory is
    /// asked first, so a replay to the same instance never reaches the
    /// store; in fleet mode a first use here is then checked in the store.
    pub async fn record(
        &self,
        client_id: &str,
        jti: &str,
        until: i64,
        now: i64,
    ) -> Result<Use, StoreError> {
        let ttl = Duration::from_secs(u64::try_from(until.saturating_sub(now)).unwrap_or(0).max(1));
        let entry = self
            .seen
            .entry(seen_key(client_id, jti))
            .or_insert_with(|| ttl);
        if !entry.is_fresh() {
            return Ok(Use::Replay);
        }
        if self.scope == ReplayScope::Fleet {
            let seen = SeenAssertion {
                client_id: client_id.to_owned(),
                jti: jti.to_owned(),
                exp: until,
                now,
            };
            match self.store.remember_assertion(&seen).await {
                Ok(true) => {}
                Ok(false) => return Ok(Use::Replay),
                Err(e) => {
                    // Not known to be used: let the client retry it.
                    self.seen.invalidate(&seen_key(client_id, jti));
                    return Err(e);
                }
            }
        }
        Ok(Use::First)
    }

    /// How many `jti`s are held in memory.
    pub fn len(&self) -> u64 {
        self.seen.run_pending_tasks();
        self.seen.entry_count()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn store() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        (Arc::new(store), dir)
    }

    #[tokio::test]
    async fn a_jti_is_used_once_per_client() {
        let (store, _dir) = store();
        let guard = ReplayGuard::new(1_000, ReplayScope::Instance, store);
        assert_eq!(guard.record("c1", "j", 160, 100).await.unwrap(), Use::First);
        assert_eq!(
            guard.record("c1", "j", 160, 101).await.unwrap(),
            Use::Replay
        );
        assert_eq!(guard.record("c2", "j", 160, 101).await.unwrap(), Use::First);
        assert_eq!(guard.len(), 2);
    }

    #[tokio::test]
    async fn memory_stays_bounded() {
        let (store, _dir) = store();
        let guard = ReplayGuard::new(1_000, ReplayScope::Instance, store);
        for i in 0..5_000 {
            guard.record("c", &i.to_string(), 400, 100).await.unwrap();
        }
        assert!(guard.len() <= 1_000, "{}", guard.len());
    }

    #[tokio::test]
    async fn fleet_mode_asks_the_store() {
        let (store, _dir) = store();
        store.migrate().await.unwrap();
        let one = ReplayGuard::new(1_000, ReplayScope::Fleet, Arc::clone(&store));
        let other = ReplayGuard::new(1_000, ReplayScope::Fleet, Arc::clone(&store));
        let alone = ReplayGuard::new(1_000, ReplayScope::Instance, store);
        assert_eq!(one.record("c", "j", 160, 100).await.unwrap(), Use::First);
        assert_eq!(other.record("c", "j", 160, 100).await.unwrap(), Use::Replay);
        assert_eq!(
            alone.record("c", "j", 160, 100).await.unwrap(),
            Use::First,
            "instance mode does not look"
        );
    }

    #[tokio::test]
    async fn a_store_failure_forgets_the_use() {
        let (store, _dir) = store(); // not migrated: the table is missing
        let guard = ReplayGuard::new(1_000, ReplayScope::Fleet, store);
        assert!(guard.record("c", "j", 160, 100).await.is_err());
        assert!(guard.is_empty(), "the client may retry the same assertion");
    }
}
