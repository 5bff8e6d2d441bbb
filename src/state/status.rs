//! Whether this instance can serve: written by the server (draining) and
//! the change feed (store reachability), read by readiness.

use std::sync::atomic::{AtomicBool, Ordering};

/// What readiness depends on, updated by the server and the change feed.
#[derive(Debug)]
pub struct ServingStatus {
    draining: AtomicBool,
    store_reachable: AtomicBool,
}

impl Default for ServingStatus {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            store_reachable: AtomicBool::new(true),
        }
    }
}

impl ServingStatus {
    /// Marks the instance as draining (shutdown started).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Records whether the last store round trip succeeded.
    pub fn set_store_reachable(&self, reachable: bool) {
        self.store_reachable.store(reachable, Ordering::Relaxed);
    }

    /// True while shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// True when the last store round trip succeeded.
    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(Ordering::Relaxed)
    }
}
