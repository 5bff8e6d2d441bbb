//! The fleet's signing keys in the store: opened with the key-encryption key
//! into the in-memory [`KeySet`] whenever they change (never per request),
//! and moved through their lifecycle (`keys::lifecycle`) by store writes that
//! any instance, or the CLI, may attempt at the same moment: each write is
//! conditional on the keys being as the writer read them, so exactly one
//! attempt applies and the others re-read and find nothing left to do.
//! Operators' commands and the pre-store key file: `keyring/commands.rs`.

use std::cmp::Reverse;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::audit::{self, Action, Actor, AuditEntry};
use crate::config::Config;
use crate::keys::lifecycle::{self, KeyRecord, KeyState, KeyTimeline, LifecyclePolicy, Step};
use crate::keys::sealed::Kek;
use crate::keys::{Algorithm, KeyError, KeySet, SigningKey, generate_pkcs8};
use crate::store::{AuditedChange, KeyWrite, Store, StoreError, StoredKey};

mod commands;
pub mod kek;
pub mod legacy;

use kek::{KekError, KekSource};
use legacy::LegacyKeyError;

/// How many times a change is decided and written before a lost race
/// becomes the caller's error.
const ATTEMPTS: usize = 3;

/// The settings the keys follow, from `[token]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySettings {
    /// The algorithm of keys made here.
    pub algorithm: Algorithm,
    /// Seconds a next key is published before it signs.
    pub publish_ahead_secs: i64,
    /// Seconds between scheduled rotations (0: manual only).
    pub rotation_period_secs: i64,
    /// The configured token lifetime; the window of a replaced key counts
    /// the longer of this and the longest per-client override.
    pub default_lifetime_secs: i64,
    /// Seconds a replaced key stays beyond the longest lifetime:
    /// `exp_leeway_secs` plus `key_retire_leeway_secs`.
    pub retire_leeway_secs: i64,
}

impl KeySettings {
    /// The settings in `config`.
    pub fn from_config(config: &Config) -> Self {
        let token = &config.token;
        Self {
            algorithm: token.algorithm,
            publish_ahead_secs: i64::from(token.key_publish_ahead_secs),
            rotation_period_secs: i64::from(token.key_rotation_days) * 86_400,
            default_lifetime_secs: i64::from(token.lifetime_secs),
            retire_leeway_secs: token.exp_leeway_secs.max(0)
                + i64::from(token.key_retire_leeway_secs),
        }
    }
}

/// Why the keys could not be read, opened or changed. Never carries key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The store failed (or, after retries, kept changing underneath).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No usable key-encryption key.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// The stored keys are sealed under another KEK than this instance's.
    #[error(
        "the stored signing keys are sealed under key-encryption key {stored}, but this \
         instance's ({kek_source}) is {configured}: every instance needs the same KEK"
    )]
    WrongKek {
        /// Public name of the KEK the keys are sealed under.
        stored: String,
        /// Public name of this instance's KEK.
        configured: String,
        /// Where this instance's KEK came from.
        kek_source: String,
    },
    /// A stored key does not open or parse (a damaged or tampered row).
    #[error("stored signing key {kid} cannot be used: {reason}")]
    Damaged {
        /// The key's id.
        kid: String,
        /// What failed.
        reason: String,
    },
    /// The lifecycle refuses the request.
    #[error(transparent)]
    Lifecycle(#[from] lifecycle::LifecycleError),
    /// A key could not be made or parsed.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// The signing key file from before keys were stored is unusable.
    #[error(transparent)]
    Legacy(#[from] LegacyKeyError),
    /// An imported key is for another algorithm than `token.algorithm`.
    #[error("the key is {given}, but token.algorithm is {configured}")]
    WrongAlgorithm {
        /// The key's algorithm.
        given: &'static str,
        /// The configured one.
        configured: &'static str,
    },
    /// Nothing in the store can sign.
    #[error("no current signing key is stored")]
    NoCurrentKey,
}

impl KeyringError {
    /// True for errors an operator fixes in the configuration (exit 78).
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Kek(_) | Self::WrongKek { .. } | Self::Legacy(_))
    }
}

/// The signing keys of one store, opened with one KEK.
pub struct KeyRing {
    store: Arc<dyn Store>,
    kek: Kek,
    kek_source: KekSource,
    settings: KeySettings,
    /// When the lifecycle next has work, from the last load; `i64::MAX`:
    /// nothing planned.
    next_due: AtomicI64,
    changed: Notify,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kek", &self.kek)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The order keys are published in, the same on every instance: current,
/// next, then previous keys, the most recently replaced first.
fn publishing_order(key: &&StoredKey) -> (usize, Reverse<i64>, String) {
    let r = &key.record;
    (
        r.state.publishing_rank(),
        Reverse(r.demoted_at.unwrap_or(0)),
        r.kid.clone(),
    )
}

impl KeyRing {
    /// A ring over `store`, sealing and opening with `kek`.
    pub fn new(
        store: Arc<dyn Store>,
        kek: Kek,
        kek_source: KekSource,
        settings: KeySettings,
    ) -> Self {
        Self {
            store,
            kek,
            kek_source,
            settings,
            next_due: AtomicI64::new(i64::MAX),
            changed: Notify::new(),
        }
    }

    /// The public name of the KEK in use.
    pub fn kek_id(&self) -> &str {
        self.kek.id()
    }

    /// Where the KEK in use came from.
    pub fn kek_source(&self) -> &KekSource {
        &self.kek_source
    }

    /// The settings the keys follow.
    pub fn settings(&self) -> &KeySettings {
        &self.settings
    }

    fn policy(&self, verify_window_secs: i64) -> LifecyclePolicy {
        LifecyclePolicy {
            publish_ahead_secs: self.settings.publish_ahead_secs,
            rotation_period_secs: self.settings.rotation_period_secs,
            verify_window_secs,
        }
    }

    /// How long a replaced key must stay published: the longest lifetime a
    /// token can have been given (the configured one or a client's longer
    /// override) plus leeway.
    async fn verify_window(&self) -> Result<i64, KeyringError> {
        let longest = self
            .store
            .longest_client_lifetime()
            .await?
            .map_or(0, i64::from)
            .max(self.settings.default_lifetime_secs);
        Ok(longest.saturating_add(self.settings.retire_leeway_secs))
    }

    /// Every stored key's record, oldest first.
    pub async fn records(&self) -> Result<Vec<KeyRecord>, KeyringError> {
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| k.record)
            .collect())
    }

    /// Reads and opens the published keys into a fresh [`KeySet`], and
    /// notes when the lifecycle next has work.
    pub async fn load(&self) -> Result<KeySet, KeyringError> {
        let stored = self.store.signing_keys().await?;
        let set = self.open_set(&stored)?;
        let records: Vec<KeyRecord> = stored.into_iter().map(|k| k.record).collect();
        let due = lifecycle::next_due(&records, &self.policy(0)).unwrap_or(i64::MAX);
        self.next_due.store(due, Ordering::Relaxed);
        self.changed.notify_waiters();
        Ok(set)
    }

    /// When the lifecycle next has work (per the last load); a time in the
    /// past means now.
    pub fn next_due(&self) -> Option<i64> {
        Some(self.next_due.load(Ordering::Relaxed)).filter(|due| *due != i64::MAX)
    }

    /// Completes after the next [`KeyRing::load`]. Enable it before reading
    /// [`KeyRing::next_due`] so a load in between is not missed.
    pub fn loaded(&self) -> Notified<'_> {
        self.changed.notified()
    }

    fn open_set(&self, stored: &[StoredKey]) -> Result<KeySet, KeyringError> {
        let mut published: Vec<&StoredKey> = stored
            .iter()
            .filter(|k| k.record.state.is_published())
            .collect();
        published.sort_by_key(publishing_order);
        self.check_kek(&published)?;
        let mut keys = Vec::with_capacity(published.len());
        for key in &published {
            keys.push(self.open_key(key)?);
        }
        if published.first().map(|k| k.record.state) != Some(KeyState::Current) {
            return Err(KeyringError::NoCurrentKey);
        }
        let current = keys.remove(0);
        let records: Vec<KeyRecord> = stored.iter().map(|k| k.record.clone()).collect();
        let set = KeySet::with_verifiers(current, keys);
        Ok(match KeyTimeline::of(&records, &self.policy(0)) {
            Some(timeline) => set.with_timeline(timeline),
            None => set,
        })
    }

    /// Refuses to use, or add to, keys sealed under another KEK.
    fn check_kek(&self, published: &[&StoredKey]) -> Result<(), KeyringError> {
        match published.iter().find(|k| k.kek_id != self.kek.id()) {
            Some(other) => Err(KeyringError::WrongKek {
                stored: other.kek_id.clone(),
                configured: self.kek.id().to_owned(),
                kek_source: self.kek_source.to_string(),
            }),
            None => Ok(()),
        }
    }

    fn open_key(&self, stored: &StoredKey) -> Result<SigningKey, KeyringError> {
        let r = &stored.record;
        let damaged = |reason: String| KeyringError::Damaged {
            kid: r.kid.clone(),
            reason,
        };
        let der = self
            .kek
            .open(&r.kid, r.alg, &stored.sealed_key)
            .map_err(|e| damaged(e.to_string()))?;
        let key = SigningKey::from_pkcs8(r.alg, &der).map_err(|e| damaged(e.to_string()))?;
        if key.kid() != r.kid {
            return Err(damaged("the key does not match its kid".into()));
        }
        Ok(key)
    }

    /// Seals a key for the store under `record`.
    fn seal(
        &self,
        record: KeyRecord,
        key: &SigningKey,
        der: &[u8],
    ) -> Result<StoredKey, KeyringError> {
        let public_jwk = key.public_jwk().ok_or(KeyError::Crypto)?.to_string();
        let sealed_key = self
            .kek
            .seal(&record.kid, record.alg, der)
            .map_err(|_| KeyError::Crypto)?;
        Ok(StoredKey {
            record,
            public_jwk,
            kek_id: self.kek.id().to_owned(),
            sealed_key,
        })
    }

    /// A newly generated key for a `Create` step.
    fn create(
        &self,
        state: KeyState,
        promote_at: Option<i64>,
        now: i64,
    ) -> Result<StoredKey, KeyringError> {
        let alg = self.settings.algorithm;
        let der = generate_pkcs8(alg)?;
        let key = SigningKey::from_pkcs8(alg, &der)?;
        let record = KeyRecord::new(key.kid().to_owned(), alg, state, promote_at, now);
        self.seal(record, &key, &der)
    }

    fn writes(&self, steps: Vec<Step>, now: i64) -> Result<Vec<KeyWrite>, KeyringError> {
        steps
            .into_iter()
            .map(|step| match step {
                Step::Update { from, record } => Ok(KeyWrite::Update { from, record }),
                Step::Create { state, promote_at } => {
                    self.create(state, promote_at, now).map(KeyWrite::Insert)
                }
            })
            .collect()
    }

    /// Reads the keys, lets `decide` choose the writes, and writes them in
    /// one transaction (with the audit record of `audited`, for an
    /// operator's change); when another writer got there first, decides
    /// again on what it wrote. Returns the records written (none: nothing
    /// to do).
    async fn change<F>(
        &self,
        audited: Option<(&Actor, Action, i64)>,
        mut decide: F,
    ) -> Result<Vec<KeyRecord>, KeyringError>
    where
        F: FnMut(&Self, &[KeyRecord], &LifecyclePolicy) -> Result<Vec<KeyWrite>, KeyringError>,
    {
        let mut attempt = 1;
        loop {
            let stored = self.store.signing_keys().await?;
            let policy = self.policy(self.verify_window().await?);
            let records: Vec<KeyRecord> = stored.iter().map(|k| k.record.clone()).collect();
            let writes = decide(self, &records, &policy)?;
            if writes.is_empty() {
                return Ok(Vec::new());
            }
            let published: Vec<&StoredKey> = stored
                .iter()
                .filter(|k| k.record.state.is_published())
                .collect();
            // Sealing a new key under another KEK would leave the fleet
            // unable to open it.
            self.check_kek(&published)?;
            let written = match audited {
                None => self.store.write_signing_keys(&writes).await,
                Some((actor, action, now)) => {
                    let entry = audit_entry(actor, action, &writes, now);
                    let change = AuditedChange::SigningKeys(writes.clone());
                    let result = self.store.write_audited(&change, &entry).await;
                    if result.is_ok() {
                        audit::log(&entry);
                    }
                    result.map(|_| ())
                }
            };
            match written {
                Ok(()) => {
                    writes.iter().for_each(log_write);
                    return Ok(writes.into_iter().map(record_of).collect());
                }
                Err(StoreError::Conflict(reason)) if attempt < ATTEMPTS => {
                    tracing::debug!(%reason, "signing keys changed meanwhile; deciding again");
                    attempt += 1;
                }
                // The last attempt's conflict too: the keys kept changing.
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Makes the lifecycle steps due at `now` (promote, retire, publish on
    /// schedule, or a first key). Every instance calls this when a step is
    /// due; one writes, the others find it done.
    pub async fn advance(&self, now: i64) -> Result<Vec<KeyRecord>, KeyringError> {
        self.change(None, |ring, records, policy| {
            ring.writes(lifecycle::due_steps(records, policy, now), now)
        })
        .await
    }

    /// At start: the pre-store key file adopted, due steps made (a first
    /// key on an empty store), and the keys loaded.
    pub async fn start(&self, legacy_dir: &Path, now: i64) -> Result<KeySet, KeyringError> {
        self.adopt_legacy_file(legacy_dir, now).await?;
        self.advance(now).await?;
        self.load().await
    }
}

/// The audit record of an operator's key writes: each key's new state
/// (never key material).
fn audit_entry(actor: &Actor, action: Action, writes: &[KeyWrite], now: i64) -> AuditEntry {
    let mut changes = serde_json::Map::new();
    for write in writes {
        let (r, from) = match write {
            KeyWrite::Insert(key) => (&key.record, None),
            KeyWrite::Update { from, record } => (record, Some(from.name())),
        };
        changes.insert(
            r.kid.clone(),
            serde_json::json!({ "from": from, "to": r.state.name() }),
        );
    }
    let target = writes.first().map_or("", KeyWrite::kid);
    actor.entry(action, target, serde_json::Value::Object(changes), now)
}

fn record_of(write: KeyWrite) -> KeyRecord {
    match write {
        KeyWrite::Insert(key) => key.record,
        KeyWrite::Update { record, .. } => record,
    }
}

fn log_write(write: &KeyWrite) {
    let (r, inserted) = match write {
        KeyWrite::Insert(key) => (&key.record, true),
        KeyWrite::Update { record, .. } => (record, false),
    };
    let kid = r.kid.as_str();
    let alg = r.alg.name();
    match (r.state, inserted) {
        (KeyState::Next, _) => tracing::info!(
            kid,
            alg,
            promote_at = r.promote_at,
            "published a next signing key"
        ),
        (KeyState::Current, true) => tracing::info!(kid, alg, "stored a new current signing key"),
        (KeyState::Current, false) => tracing::info!(kid, alg, "signing key promoted to current"),
        (KeyState::Previous, _) => tracing::info!(
            kid,
            alg,
            retire_at = r.retire_at,
            "signing key demoted to previous; published until it retires"
        ),
        (KeyState::Retired, _) => tracing::info!(kid, alg, "signing key retired"),
    }
}

#[cfg(test)]
mod tests;
