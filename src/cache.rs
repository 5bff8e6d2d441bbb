//! In-memory caches in front of the store. The client cache keeps token
//! issuance free of store round trips for known clients; it also remembers
//! misses briefly so a flood of unknown ids does not reach the store.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::domain::client::Client;
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

    /// Drops one cached entry (after a local change).
    pub fn invalidate(&self, id: &str) {
        self.entries.invalidate(id);
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn ClientStore> {
        &self.store
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
