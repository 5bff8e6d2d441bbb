//! This instance's membership in the fleet: a heartbeat row in the shared
//! store, renewed every [`HEARTBEAT_INTERVAL`], and the count of live rows,
//! which per-client rate limits are divided by. A row not renewed for
//! [`HEARTBEAT_TTL_SECS`] belongs to an instance that is gone (killed, or
//! cut off from the store): it no longer counts, and the next beat of any
//! instance deletes it. A clean shutdown deletes its own row at once.

use std::sync::Arc;
use std::time::Duration;

use crate::build_info::VERSION;
use crate::clock::unix_now;
use crate::domain::client::{RandomError, random_bytes};
use crate::state::AppState;
use crate::store::{Heartbeat, Store, StoreError};

/// How often an instance renews its row.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

/// Seconds without a renewal after which an instance no longer counts: four
/// missed beats. So a vanished instance stops counting everywhere within
/// this plus one interval (about 15 s).
pub const HEARTBEAT_TTL_SECS: i64 = 12;

/// Who this process is in the `instances` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Random, new at every start: a restarted instance is a new member.
    pub id: String,
    /// When this process started (Unix seconds).
    pub started_at: i64,
}

impl Member {
    /// A new member id for a process started at `now`.
    pub fn new(now: i64) -> Result<Self, RandomError> {
        let bytes = random_bytes::<16>()?;
        Ok(Self {
            id: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            started_at: now,
        })
    }

    /// The beat sent at `now`: rows older than the expiry are gone.
    pub fn beat(&self, now: i64) -> Heartbeat {
        Heartbeat {
            instance: self.id.clone(),
            version: VERSION.to_owned(),
            started_at: self.started_at,
            now,
            expired_before: expired_before(now),
        }
    }
}

/// Rows last renewed before this are of instances that are gone.
pub fn expired_before(now: i64) -> i64 {
    now - HEARTBEAT_TTL_SECS
}

/// Beats once now: registers this instance and returns the live count.
pub async fn join(store: &dyn Store, member: &Member) -> Result<u32, StoreError> {
    store.heartbeat(&member.beat(unix_now())).await
}

/// Beats every [`HEARTBEAT_INTERVAL`] and hands the live count to the rate
/// limits. While the store is unreachable the last count stays in force
/// (logged once per outage).
pub async fn run(state: Arc<AppState>, member: Member) {
    let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        match state.store.heartbeat(&member.beat(unix_now())).await {
            Ok(live) => {
                if live != state.limits.instances() {
                    tracing::info!(instances = live, "fleet size changed");
                }
                state.limits.set_instances(live);
                state.metrics.fleet_instances.set(i64::from(live));
                if failing {
                    tracing::info!("heartbeat recovered");
                    failing = false;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "heartbeat failed; keeping the last fleet size");
                    failing = true;
                }
            }
        }
    }
}

/// Deletes this instance's row on a clean shutdown (best effort: if the
/// store is unreachable the row expires by itself).
pub async fn leave(store: &dyn Store, member: &Member) {
    if let Err(e) = store.leave(&member.id).await {
        tracing::warn!(error = %e, "could not leave the fleet; the heartbeat row will expire");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_expires_rows_older_than_the_ttl() {
        let member = Member::new(1_000).unwrap();
        let beat = member.beat(1_100);
        assert_eq!(beat.instance, member.id);
        assert_eq!(beat.started_at, 1_000);
        assert_eq!(beat.now, 1_100);
        assert_eq!(beat.expired_before, 1_100 - HEARTBEAT_TTL_SECS);
        // Four beats may be missed before the row stops counting, and the
        // whole wait stays near 15 s.
        let interval = HEARTBEAT_INTERVAL.as_secs() as i64;
        assert_eq!(HEARTBEAT_TTL_SECS, 4 * interval);
        assert!(HEARTBEAT_TTL_SECS + interval <= 15);
    }

    #[test]
    fn every_start_is_a_new_member() {
        let a = Member::new(1).unwrap();
        let b = Member::new(1).unwrap();
        assert_eq!(a.id.len(), 32);
        assert_ne!(a.id, b.id);
    }
}
