//! The signing keys' side of the feed: rebuild the in-memory key set when the
//! change feed reports a key change (any instance's or the CLI's), and make
//! this instance's attempt at each lifecycle step when it falls due. All
//! instances attempt a due step at about the same moment; the store lets
//! one through and the others re-read.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::unix_now;
use crate::keyring::{KeyRing, KeyringError};
use crate::state::AppState;

/// Longest sleep between looks at the schedule, so a clock jump or a missed
/// wake-up costs at most this long.
const MAX_WAIT_SECS: i64 = 60;

/// Reads the keys from the store and swaps them in whole. A key set that
/// fails to open (a damaged row, another KEK) is refused: the old one stays
/// and the failure is logged and counted.
pub async fn reload(state: &AppState, ring: &KeyRing) -> Result<(), KeyringError> {
    match ring.load().await {
        Ok(keys) => {
            let old = state.keys();
            let changed =
                old.jwks_json() != keys.jwks_json() || old.active().kid() != keys.active().kid();
            if changed {
                tracing::info!(
                    current = keys.active().kid(),
                    published = keys.keys().count(),
                    "signing keys changed"
                );
            }
            state.replace_keys(keys);
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "signing keys reload failed; keeping the current ones");
            state
                .metrics
                .reload_failures
                .with_label_values(&["signing_key"])
                .inc();
            Err(e)
        }
    }
}

/// Waits for each lifecycle step to fall due (per the last load), makes
/// this instance's attempt at it, and reloads the keys. Runs until aborted.
pub async fn follow_lifecycle(state: Arc<AppState>, ring: Arc<KeyRing>) {
    let mut failing = false;
    loop {
        let loaded = ring.loaded();
        tokio::pin!(loaded);
        loaded.as_mut().enable();
        let now = unix_now();
        let wait = ring.next_due().map_or(MAX_WAIT_SECS, |due| {
            due.saturating_sub(now).clamp(0, MAX_WAIT_SECS)
        });
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())) => {}
            // The keys changed (and with them the schedule): look again.
            () = &mut loaded => continue,
        }
        let now = unix_now();
        if ring.next_due().is_none_or(|due| due > now) {
            continue;
        }
        match ring.advance(now).await {
            // Logged once per outage, not once a second.
            Err(e) if !failing => {
                tracing::warn!(error = %e, "a due signing-key change failed; retrying");
                failing = true;
            }
            Err(_) => {}
            Ok(_) if failing => {
                tracing::info!("due signing-key changes made again");
                failing = false;
            }
            Ok(_) => {}
        }
        // Whoever made the change, this instance now serves it.
        if reload(&state, &ring).await.is_err() || ring.next_due().is_some_and(|due| due <= now) {
            // Not done yet (the store is down, or another instance is mid-way):
            // no faster than once a second.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
