//! The shared store of clients, revocations and signing keys: the traits
//! every backend implements and the types they share. Backends live in
//! `store/`.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

use crate::audit::{AuditEntry, AuditQuery, AuditRecord};
use crate::domain::client::{Client, SecretHash};
use crate::domain::federation::FederatedSubject;
use crate::keys::lifecycle::{KeyRecord, KeyState};

mod error;
pub mod postgres;
pub mod sqlite;

pub use error::{
    ClientField, CorruptRow, DriverError, KeyConflict, MigrationError, SettingsError, StoreError,
    Unavailable,
};

/// A boxed future returned by store methods, so stores can sit behind `dyn`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call.
    pub applied: Vec<u32>,
    /// Highest version in the database after the call.
    pub current: u32,
    /// Highest version this binary knows.
    pub known: u32,
}

impl MigrationReport {
    /// True when the database was migrated by a newer binary.
    pub fn schema_is_newer(&self) -> bool {
        self.current > self.known
    }
}

/// Persistent client registry.
pub trait ClientStore: Send + Sync {
    /// Applies pending migrations; safe to call from several processes at once.
    fn migrate(&self) -> StoreFuture<'_, MigrationReport>;
    /// Looks a client up by id.
    fn get_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Client>>;
    /// All clients, ordered by id.
    fn list_clients(&self) -> StoreFuture<'_, Vec<Client>>;
    /// Number of clients.
    fn count_clients(&self) -> StoreFuture<'_, u64>;
    /// Inserts a new client; [`StoreError::Duplicate`] if the id is taken.
    fn insert_client<'a>(&'a self, client: &'a Client) -> StoreFuture<'a, ()>;
    /// Replaces an existing client; `false` if there is none with that id.
    fn update_client<'a>(&'a self, client: &'a Client) -> StoreFuture<'a, bool>;
    /// Deletes a client; `false` if there was none.
    fn delete_client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
    /// The longest per-client token lifetime override, if any client has one.
    fn longest_client_lifetime(&self) -> StoreFuture<'_, Option<u32>>;
    /// Every client's federated subjects, ordered by client, issuer and
    /// subject.
    fn federated_subjects(&self) -> StoreFuture<'_, Vec<FederatedSubject>>;
}

/// A revoked access token, kept until its `exp` passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The token's `jti`.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The token's expiry (Unix seconds); the row is pruned after it.
    pub exp: i64,
    /// When it was revoked (Unix seconds).
    pub revoked_at: i64,
}

/// Persistent record of revoked tokens.
pub trait RevocationStore: Send + Sync {
    /// Records a revocation and returns only after it is durably committed.
    /// Revoking the same `jti` twice is not an error.
    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()>;
    /// Every revocation still in force (`exp > now`), for loading at start.
    fn active_revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>>;
    /// Deletes revocations of tokens expired before `now`, the `jti`s of
    /// expired client assertions and change-log entries older than the
    /// retention; returns how many revocations went.
    fn prune(&self, now: i64) -> StoreFuture<'_, u64>;
}

/// What changed in the store after a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    /// Revocations recorded after the cursor.
    pub revocations: Vec<Revocation>,
    /// Ids of clients created, changed or deleted after the cursor.
    pub clients: Vec<String>,
    /// Signing keys were added or changed state after the cursor.
    pub keys_changed: bool,
    /// The cursor to pass next time.
    pub cursor: i64,
    /// The cursor was older than the retained change log: reload everything
    /// (all active revocations, drop every cached client).
    pub full_reload: bool,
}

/// One instance's heartbeat: it is alive at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The instance's id, new at every process start.
    pub instance: String,
    /// The binary's version, for operators watching a rolling deploy.
    pub version: String,
    /// When the process started (Unix seconds).
    pub started_at: i64,
    /// The time of this beat (Unix seconds).
    pub now: i64,
    /// Instances whose last beat is older than this (Unix seconds) are gone.
    pub expired_before: i64,
}

/// How busy a store's connection pool is, sampled at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now, in use or idle.
    pub size: usize,
    /// Open connections idle in the pool.
    pub available: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

impl PoolStatus {
    /// Open connections handed out to a call.
    pub fn in_use(&self) -> usize {
        self.size.saturating_sub(self.available)
    }
}

/// A signing key as stored: its lifecycle record, public JWK, and the
/// private key sealed under the key-encryption key (never in clear).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Kid, algorithm, state and timestamps.
    pub record: KeyRecord,
    /// The public JWK (with `kid`, `alg`, `use`), JSON.
    pub public_jwk: String,
    /// Public name of the key-encryption key it is sealed under.
    pub kek_id: String,
    /// The PKCS#8 private key, sealed (see `keys::sealed`).
    pub sealed_key: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("record", &self.record)
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// One write to the signing keys, applied only if the keys are still as the
/// writer saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyWrite {
    /// A new key; refused if its kid is taken, or if it would be a second
    /// current or next key.
    Insert(StoredKey),
    /// New state and timestamps for a key that must still be in `from`.
    Update {
        /// The state the stored key must be in.
        from: KeyState,
        /// The record to store.
        record: KeyRecord,
    },
}

impl KeyWrite {
    /// The kid the write is about.
    pub fn kid(&self) -> &str {
        match self {
            Self::Insert(key) => &key.record.kid,
            Self::Update { record, .. } => &record.kid,
        }
    }
}

/// The signing keys every instance shares.
pub trait KeyStore: Send + Sync {
    /// Every stored key (retired ones too), oldest first.
    fn signing_keys(&self) -> StoreFuture<'_, Vec<StoredKey>>;
    /// Applies `writes` in order in one transaction, with a change-feed
    /// entry, or none of them: [`StoreError::Conflict`] when a key is no
    /// longer in the expected state, a kid is taken, or a second current or
    /// next key would result. Of several instances making the same change
    /// at once, exactly one succeeds.
    fn write_signing_keys<'a>(&'a self, writes: &'a [KeyWrite]) -> StoreFuture<'a, ()>;
}

/// An administrative change, applied together with its audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditedChange {
    /// [`ClientStore::insert_client`].
    InsertClient(Client),
    /// [`ClientStore::update_client`].
    UpdateClient(Client),
    /// [`ClientStore::delete_client`], by id.
    DeleteClient(String),
    /// [`RevocationStore::revoke`].
    Revoke(Revocation),
    /// [`KeyStore::write_signing_keys`].
    SigningKeys(Vec<KeyWrite>),
    /// A client created by dynamic registration, with the hash of its
    /// registration access token ([`StoreError::Duplicate`] if the id is
    /// taken).
    RegisterClient(Client, SecretHash),
    /// A federated subject for a client, added at the given time (Unix
    /// seconds); [`StoreError::Duplicate`] if the client lists it already,
    /// `false` if there is no such client.
    AddFederatedSubject(FederatedSubject, i64),
    /// A federated subject removed; `false` if the client did not list it.
    RemoveFederatedSubject(FederatedSubject),
}

/// Clients created by dynamic registration (RFC 7591/7592).
pub trait RegistrationStore: Send + Sync {
    /// The hash of `client_id`'s registration access token; `None` when the
    /// client was not registered dynamically (or is gone).
    fn registration_token<'a>(&'a self, client_id: &'a str) -> StoreFuture<'a, Option<SecretHash>>;
}

/// The append-only audit trail.
pub trait AuditStore: Send + Sync {
    /// Applies `change` exactly as its plain method would and appends
    /// `entry`, in one transaction: both or neither. Returns `false`, and
    /// appends nothing, when an update or delete found no such client.
    fn write_audited<'a>(
        &'a self,
        change: &'a AuditedChange,
        entry: &'a AuditEntry,
    ) -> StoreFuture<'a, bool>;
    /// Records matching `query`, oldest first.
    fn audit_records<'a>(&'a self, query: &'a AuditQuery) -> StoreFuture<'a, Vec<AuditRecord>>;
    /// Retention: deletes records older than `before` (Unix seconds);
    /// returns how many went. The only way records leave the trail.
    fn prune_audit(&self, before: i64) -> StoreFuture<'_, u64>;
}

/// A store with clients, revocations, signing keys, a change feed and the
/// audit trail, as the server uses it.
pub trait Store: ClientStore + RevocationStore + KeyStore + AuditStore + RegistrationStore {
    /// The newest cursor: start here to see only later changes.
    fn change_cursor(&self) -> StoreFuture<'_, i64>;
    /// Changes after `cursor`, oldest first.
    fn changes_since(&self, cursor: i64) -> StoreFuture<'_, ChangeBatch>;
    /// A push signal for the change feed, where the backend has one: the
    /// value changes soon after any instance commits a change, and a poller
    /// then calls [`Store::changes_since`] at once. Best effort: keep polling
    /// on an interval as well. `None` (the default, and the embedded store):
    /// poll only.
    fn change_notifications(&self) -> Option<watch::Receiver<u64>> {
        None
    }
    /// Renews `beat.instance`'s row, deletes the rows of instances gone
    /// since `beat.expired_before`, and returns how many instances are
    /// alive, this one included.
    fn heartbeat<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, u32>;
    /// Deletes `instance`'s row (a clean shutdown), so the others count one
    /// fewer at their next heartbeat instead of after the expiry.
    fn leave<'a>(&'a self, instance: &'a str) -> StoreFuture<'a, ()>;
    /// The connection pool's occupancy, where the backend has a pool (for
    /// metrics). `None` (the default, and the embedded store): no pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
    /// Records that a client assertion was used, once across every
    /// instance sharing the store: `true` when this is the first use of its
    /// `jti` by that client, `false` when it was seen before and has not
    /// expired (a replay). Rows are deleted by [`RevocationStore::prune`]
    /// once the assertion has expired.
    fn remember_assertion<'a>(&'a self, seen: &'a SeenAssertion) -> StoreFuture<'a, bool>;
}

/// A client assertion's `jti` to remember until the assertion expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenAssertion {
    /// The client the assertion authenticated.
    pub client_id: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp` (Unix seconds), leeway included: remembered until then.
    pub exp: i64,
    /// Now (Unix seconds): a row of an assertion expired by now is reused.
    pub now: i64,
}

/// Seconds change-log entries are kept; a poller further behind reloads.
pub const CHANGE_LOG_RETENTION_SECS: i64 = 3_600;
