//! Keeps this instance's caches in step with the shared store: loads the
//! active revocations at start, then polls the store's change feed, adding
//! new revocations to the revocation set, dropping changed clients from the
//! client cache and rebuilding the key set when signing keys change
//! (`feed/keys.rs`, which also makes due key lifecycle steps), and records
//! whether the store answered (readiness). Every minute it also prunes:
//! expired revocations, old change-log rows in the store, and idle
//! rate-limiter state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::RevocationSet;
use crate::clock::unix_now;
use crate::keyring::KeyRing;
use crate::state::AppState;
use crate::store::{Store, StoreError};

pub mod keys;

/// How often expired revocations, old change-log rows and idle limiter
/// state are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Loads every active revocation into `set`; returns the feed cursor to
/// poll from. The cursor is read first, so nothing written meanwhile is missed
/// (a change seen twice is harmless).
pub async fn load(store: &dyn Store, set: &RevocationSet) -> Result<i64, StoreError> {
    let cursor = store.change_cursor().await?;
    for r in store.active_revocations(unix_now()).await? {
        set.insert(r.jti, r.exp);
    }
    Ok(cursor)
}

/// What one poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    /// The cursor to poll from next.
    pub cursor: i64,
    /// Signing keys changed (or may have: after a full reload).
    pub keys_changed: bool,
}

/// Applies one batch of changes after `cursor` to the caches.
pub async fn poll_once(state: &AppState, cursor: i64) -> Result<Polled, StoreError> {
    let batch = state.store.changes_since(cursor).await?;
    let revocations = state.validator.revocations();
    if batch.full_reload {
        tracing::warn!("change feed fell behind the retained log; reloading");
        state.clients.invalidate_all();
        state.federation.subjects_changed();
        let cursor = load(state.store.as_ref(), revocations).await?;
        return Ok(Polled {
            cursor,
            keys_changed: true,
        });
    }
    let now = unix_now();
    for r in batch.revocations {
        let lag = (now - r.revoked_at).max(0);
        state.metrics.revocation_lag.observe(lag as f64);
        revocations.insert(r.jti, r.exp);
    }
    state.metrics.revocations_held.set(revocations.len() as i64);
    for id in &batch.clients {
        state.clients.invalidate(id);
    }
    if !batch.clients.is_empty() {
        state.federation.subjects_changed();
    }
    Ok(Polled {
        cursor: batch.cursor,
        keys_changed: batch.keys_changed,
    })
}

/// Polls forever: every `interval`, and at once when the store signals a
/// change (PostgreSQL LISTEN/NOTIFY). Store errors are logged once per
/// outage and retried; the caches keep serving meanwhile. With `ring` (keys
/// in the store), a key change rebuilds the key set; a rebuild that fails
/// is tried again at the next poll while the feed moves on.
pub async fn run(
    state: Arc<AppState>,
    mut cursor: i64,
    interval: Duration,
    ring: Option<Arc<KeyRing>>,
) {
    let mut keys_pending = false;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut notifications = state.store.change_notifications();
    let mut last_prune = Instant::now();
    let mut failing = false;
    loop {
        match notifications.as_mut() {
            Some(rx) => {
                tokio::select! {
                    _ = ticker.tick() => {}
                    changed = rx.changed() => {
                        if changed.is_err() {
                            // The listener is gone; fall back to polling.
                            notifications = None;
                        }
                    }
                }
            }
            None => {
                ticker.tick().await;
            }
        }
        match poll_once(&state, cursor).await {
            Ok(polled) => {
                state.status.set_store_reachable(true);
                if failing {
                    tracing::info!("change feed recovered");
                    failing = false;
                }
                cursor = polled.cursor;
                keys_pending |= polled.keys_changed;
                if let Some(ring) = ring.as_deref().filter(|_| keys_pending) {
                    keys_pending = keys::reload(&state, ring).await.is_err();
                }
            }
            Err(e) => {
                state.status.set_store_reachable(false);
                if !failing {
                    tracing::warn!(error = %e, "change feed unavailable; serving from memory");
                    failing = true;
                }
                continue;
            }
        }
        if last_prune.elapsed() >= PRUNE_INTERVAL {
            last_prune = Instant::now();
            let now = unix_now();
            state.validator.revocations().prune(now);
            state.limits.prune();
            if let Err(e) = state.store.prune(now).await {
                tracing::warn!(error = %e, "pruning revocations failed");
            }
            let expired = now - state.audit_retention_secs;
            if let Err(e) = state.store.prune_audit(expired).await {
                tracing::warn!(error = %e, "pruning the audit trail failed");
            }
        }
    }
}
