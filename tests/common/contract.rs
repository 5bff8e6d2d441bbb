//! The store contract: what every backend must do, written once against
//! `&dyn Store` and run on each backend (`tests/store_sqlite.rs`,
//! `tests/store_postgres.rs`). Each function expects a fresh, migrated store.

use auth_server::audit::{Action, Actor, AuditEntry, AuditQuery};
use auth_server::domain::certificate::TlsClientAuth;
use auth_server::domain::client::{AuthMethod, Client, RegisteredJwks, SecretHash};
use auth_server::domain::scope::ScopeSet;
use auth_server::keys::Algorithm;
use auth_server::keys::lifecycle::{KeyRecord, KeyState};
use auth_server::store::{
    AuditedChange, CHANGE_LOG_RETENTION_SECS, Heartbeat, KeyWrite, Revocation, SeenAssertion,
    Store, StoreError, StoredKey,
};

/// One test per check of the contract, each on a fresh store. `fresh` is an
/// async expression (awaited in the test) giving the store and what must
/// live as long as it; attributes written first go on every test:
/// `contract_tests!(#[ignore = "why"] fresh: make_store().await);`.
/// A new check is added here once and runs on every backend.
// Only the store test binaries use it; every test binary compiles common.
#[allow(unused_macros)]
macro_rules! contract_tests {
    ($(#[$attr:meta])* fresh: $fresh:expr) => {
        $crate::common::contract::contract_tests!(@each [$(#[$attr])*] $fresh;
            clients_round_trip,
            migrate_is_idempotent,
            revocations_are_kept_until_expiry,
            the_change_feed_lists_every_write,
            a_cursor_behind_the_pruned_log_reloads,
            signing_keys_change_only_as_expected,
            key_changes_reach_the_feed,
            the_longest_client_lifetime_is_known,
            heartbeats_count_the_live_instances,
            assertion_jtis_are_remembered_until_expiry,
            audited_changes_write_their_record_or_nothing,
            audit_pruning_keeps_recent_records,
            federated_subjects_are_kept_per_client,
        );
    };
    (@each $attrs:tt $fresh:expr; $($name:ident),* $(,)?) => {$(
        $crate::common::contract::contract_tests!(@one $attrs $fresh; $name);
    )*};
    (@one [$(#[$attr:meta])*] $fresh:expr; $name:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            let (store, _keep) = $fresh;
            $crate::common::contract::$name(&store).await;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use contract_tests;

/// A client with every optional field set.
pub fn sample(id: &str) -> Client {
    Client {
        id: id.into(),
        name: "Sample".into(),
        secret_hash: SecretHash::of("s1"),
        previous_secret_hash: Some(SecretHash::of("s0")),
        previous_secret_expires_at: Some(99),
        secret_imported: true,
        allowed_scopes: ScopeSet::parse("a b").unwrap(),
        default_scopes: ScopeSet::parse("a").unwrap(),
        allowed_audiences: vec!["https://x".into(), "https://y".into()],
        token_lifetime_secs: Some(60),
        rate_limit_rps: Some(u32::MAX),
        enabled: true,
        tokens_valid_after: 5,
        created_at: 1,
        updated_at: 2,
        auth_method: AuthMethod::TlsClientAuth,
        jwks: Some(RegisteredJwks::parse(SAMPLE_JWKS).unwrap()),
        jwks_uri: Some("https://keys.test/jwks".into()),
        tls_client_auth: Some(
            TlsClientAuth::from_parts("san_uri", "spiffe://example.test/svc").unwrap(),
        ),
        require_dpop: true,
    }
}

/// A JWK Set of one Ed25519 public key.
pub const SAMPLE_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

/// A revocation of `jti` for client `c1`.
pub fn revocation(jti: &str, exp: i64) -> Revocation {
    Revocation {
        jti: jti.into(),
        client_id: "c1".into(),
        exp,
        revoked_at: 1,
    }
}

/// Insert, duplicate, get, update, list, count, delete.
pub async fn clients_round_trip(store: &dyn Store) {
    let c = sample("c1");
    store.insert_client(&c).await.unwrap();
    assert!(matches!(
        store.insert_client(&c).await,
        Err(StoreError::Duplicate(id)) if id == "c1"
    ));
    assert_eq!(store.get_client("c1").await.unwrap(), Some(c.clone()));
    assert_eq!(store.get_client("nope").await.unwrap(), None);

    let mut changed = c.clone();
    changed.enabled = false;
    changed.previous_secret_hash = None;
    changed.previous_secret_expires_at = None;
    changed.token_lifetime_secs = None;
    changed.rate_limit_rps = None;
    changed.allowed_audiences.clear();
    changed.default_scopes = ScopeSet::default();
    changed.tls_client_auth = Some(TlsClientAuth::from_parts("san_ip", "::1").unwrap());
    changed.require_dpop = false;
    assert!(store.update_client(&changed).await.unwrap());
    assert_eq!(store.get_client("c1").await.unwrap(), Some(changed.clone()));
    changed.tls_client_auth = None;
    changed.auth_method = AuthMethod::PrivateKeyJwt;
    changed.jwks = None;
    assert!(store.update_client(&changed).await.unwrap());
    assert_eq!(store.get_client("c1").await.unwrap(), Some(changed));
    assert!(!store.update_client(&sample("ghost")).await.unwrap());

    store.insert_client(&sample("c0")).await.unwrap();
    let ids: Vec<_> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["c0", "c1"]);
    assert_eq!(store.count_clients().await.unwrap(), 2);
    assert!(store.delete_client("c1").await.unwrap());
    assert!(!store.delete_client("c1").await.unwrap());
    assert_eq!(store.get_client("c1").await.unwrap(), None);
    assert_eq!(store.count_clients().await.unwrap(), 1);
}

/// Migrating again applies nothing and reports the known version.
pub async fn migrate_is_idempotent(store: &dyn Store) {
    for _ in 0..2 {
        let report = store.migrate().await.unwrap();
        assert!(report.applied.is_empty(), "{report:?}");
        assert_eq!(report.current, report.known);
        assert!(!report.schema_is_newer());
    }
}

/// Revocations are idempotent, listed while active and pruned after `exp`.
pub async fn revocations_are_kept_until_expiry(store: &dyn Store) {
    store.revoke(&revocation("j1", 100)).await.unwrap();
    store.revoke(&revocation("j1", 100)).await.unwrap();
    store.revoke(&revocation("j2", 200)).await.unwrap();
    let mut active = store.active_revocations(50).await.unwrap();
    active.sort_by(|a, b| a.jti.cmp(&b.jti));
    assert_eq!(active, [revocation("j1", 100), revocation("j2", 200)]);
    assert_eq!(
        store.active_revocations(150).await.unwrap(),
        [revocation("j2", 200)]
    );
    assert_eq!(store.prune(150).await.unwrap(), 1);
    assert_eq!(store.prune(150).await.unwrap(), 0);
    assert_eq!(store.active_revocations(0).await.unwrap().len(), 1);
}

/// Every write shows up once in the feed, oldest first, after the cursor.
pub async fn the_change_feed_lists_every_write(store: &dyn Store) {
    let start = store.change_cursor().await.unwrap();
    store.revoke(&revocation("j1", i64::MAX)).await.unwrap();
    store.revoke(&revocation("j1", i64::MAX)).await.unwrap();
    store.insert_client(&sample("c1")).await.unwrap();
    store.revoke(&revocation("j2", i64::MAX)).await.unwrap();
    store.update_client(&sample("c1")).await.unwrap();
    store.delete_client("c1").await.unwrap();
    assert!(!store.delete_client("c1").await.unwrap());

    let batch = store.changes_since(start).await.unwrap();
    assert_eq!(
        batch.revocations,
        [revocation("j1", i64::MAX), revocation("j2", i64::MAX)]
    );
    assert_eq!(batch.clients, ["c1", "c1", "c1"]);
    assert!(!batch.full_reload);
    assert!(batch.cursor > start);
    assert_eq!(store.change_cursor().await.unwrap(), batch.cursor);

    let later = store.changes_since(batch.cursor).await.unwrap();
    assert!(later.revocations.is_empty() && later.clients.is_empty());
    assert_eq!(later.cursor, batch.cursor);
}

/// A cursor whose successors were pruned asks for a full reload.
pub async fn a_cursor_behind_the_pruned_log_reloads(store: &dyn Store) {
    store.insert_client(&sample("c1")).await.unwrap();
    let cursor = store.change_cursor().await.unwrap();
    store.insert_client(&sample("c2")).await.unwrap();
    store.insert_client(&sample("c3")).await.unwrap();
    // Far enough in the future that every entry is past the retention.
    let later = auth_server::clock::unix_now() + CHANGE_LOG_RETENTION_SECS + 60;
    store.prune(later).await.unwrap();
    store.insert_client(&sample("c4")).await.unwrap();
    let batch = store.changes_since(cursor).await.unwrap();
    assert!(batch.full_reload, "{batch:?}");
    assert_eq!(batch.clients, ["c4"]);
}

/// Instance `id`'s beat at `now`, expiring rows silent for 12 s.
fn beat(id: &str, now: i64) -> Heartbeat {
    Heartbeat {
        instance: id.into(),
        version: "test".into(),
        started_at: 1,
        now,
        expired_before: now - 12,
    }
}

/// Heartbeats: an instance counts while it renews its row, a silent one
/// stops counting once its row is older than the expiry, one that leaves
/// stops at once.
pub async fn heartbeats_count_the_live_instances(store: &dyn Store) {
    assert_eq!(store.heartbeat(&beat("a", 100)).await.unwrap(), 1);
    assert_eq!(store.heartbeat(&beat("b", 101)).await.unwrap(), 2);
    assert_eq!(
        store.heartbeat(&beat("a", 104)).await.unwrap(),
        2,
        "renewing is not joining again"
    );
    // b is silent from 101 on: still counted at 113, gone at 114.
    assert_eq!(store.heartbeat(&beat("a", 113)).await.unwrap(), 2);
    assert_eq!(store.heartbeat(&beat("a", 114)).await.unwrap(), 1);
    // b comes back (a new process would have a new id; either way it counts).
    assert_eq!(store.heartbeat(&beat("b", 115)).await.unwrap(), 2);
    store.leave("b").await.unwrap();
    assert_eq!(store.heartbeat(&beat("a", 116)).await.unwrap(), 1);
    store.leave("never-joined").await.unwrap();
}

/// A stored key row (the contract needs no real key material).
pub fn stored_key(kid: &str, state: KeyState, at: i64) -> StoredKey {
    StoredKey {
        record: KeyRecord::new(kid.into(), Algorithm::EdDSA, state, Some(at + 900), at),
        public_jwk: format!(r#"{{"kid":"{kid}","kty":"OKP"}}"#),
        kek_id: "kek-1".into(),
        sealed_key: vec![1, 2, 3, 0, 255],
    }
}

fn update(from: KeyState, key: &StoredKey, to: KeyState, at: i64) -> KeyWrite {
    KeyWrite::Update {
        from,
        record: KeyRecord {
            state: to,
            activated_at: (to == KeyState::Current).then_some(at),
            demoted_at: (to == KeyState::Previous).then_some(at),
            retire_at: (to == KeyState::Previous).then_some(at + 1_000),
            ..key.record.clone()
        },
    }
}

fn conflict(result: Result<(), StoreError>) {
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
}

/// Keys round-trip; one current and one next at most; every update is
/// conditional on the state it expects; a batch applies whole or not at all.
pub async fn signing_keys_change_only_as_expected(store: &dyn Store) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    let a = stored_key("a", KeyState::Current, 10);
    store
        .write_signing_keys(&[KeyWrite::Insert(a.clone())])
        .await
        .unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap(),
        std::slice::from_ref(&a)
    );
    conflict(
        store
            .write_signing_keys(&[KeyWrite::Insert(a.clone())])
            .await,
    );
    conflict(
        store
            .write_signing_keys(&[KeyWrite::Insert(stored_key("b", KeyState::Current, 11))])
            .await,
    );
    let b = stored_key("b", KeyState::Next, 11);
    store
        .write_signing_keys(&[KeyWrite::Insert(b.clone())])
        .await
        .unwrap();
    conflict(
        store
            .write_signing_keys(&[KeyWrite::Insert(stored_key("c", KeyState::Next, 12))])
            .await,
    );
    // Promoting without demoting would make two current keys.
    conflict(
        store
            .write_signing_keys(&[update(KeyState::Next, &b, KeyState::Current, 20)])
            .await,
    );
    // A batch whose second write is stale applies nothing.
    conflict(
        store
            .write_signing_keys(&[
                update(KeyState::Current, &a, KeyState::Previous, 20),
                update(KeyState::Previous, &b, KeyState::Current, 20),
            ])
            .await,
    );
    assert_eq!(store.signing_keys().await.unwrap(), [a.clone(), b.clone()]);

    let promotion = [
        update(KeyState::Current, &a, KeyState::Previous, 20),
        update(KeyState::Next, &b, KeyState::Current, 20),
    ];
    store.write_signing_keys(&promotion).await.unwrap();
    // The same promotion again (another instance, a moment late) is refused.
    conflict(store.write_signing_keys(&promotion).await);
    let states: Vec<(String, KeyState)> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.record.kid, k.record.state))
        .collect();
    assert_eq!(
        states,
        [
            ("a".to_owned(), KeyState::Previous),
            ("b".to_owned(), KeyState::Current)
        ]
    );
    let stored_a = store.signing_keys().await.unwrap().remove(0);
    assert_eq!(stored_a.record.retire_at, Some(1_020));
    assert_eq!(stored_a.sealed_key, a.sealed_key, "bytes kept exactly");
}

/// Key writes show up in the change feed, and only there.
pub async fn key_changes_reach_the_feed(store: &dyn Store) {
    let start = store.change_cursor().await.unwrap();
    let nothing = store.changes_since(start).await.unwrap();
    assert!(!nothing.keys_changed);
    store
        .write_signing_keys(&[KeyWrite::Insert(stored_key("a", KeyState::Current, 1))])
        .await
        .unwrap();
    // A refused write leaves no trace.
    conflict(
        store
            .write_signing_keys(&[KeyWrite::Insert(stored_key("a", KeyState::Current, 1))])
            .await,
    );
    let batch = store.changes_since(start).await.unwrap();
    assert!(batch.keys_changed, "{batch:?}");
    assert!(batch.clients.is_empty() && batch.revocations.is_empty());
    assert_eq!(batch.cursor, start + 1, "one entry per write");
    store.revoke(&revocation("j1", i64::MAX)).await.unwrap();
    let later = store.changes_since(batch.cursor).await.unwrap();
    assert!(!later.keys_changed);
    assert_eq!(later.revocations.len(), 1);
}

/// The longest per-client lifetime override bounds how long a replaced
/// key stays published.
pub async fn the_longest_client_lifetime_is_known(store: &dyn Store) {
    assert_eq!(store.longest_client_lifetime().await.unwrap(), None);
    let mut short = sample("short");
    short.token_lifetime_secs = Some(60);
    let mut long = sample("long");
    long.token_lifetime_secs = Some(7_200);
    let mut none = sample("none");
    none.token_lifetime_secs = None;
    for c in [&short, &long, &none] {
        store.insert_client(c).await.unwrap();
    }
    assert_eq!(store.longest_client_lifetime().await.unwrap(), Some(7_200));
}

/// A client assertion's `jti` is accepted once per client until it
/// expires; expired ones are taken over and pruned.
pub async fn assertion_jtis_are_remembered_until_expiry(store: &dyn Store) {
    let seen = |client: &str, jti: &str, exp: i64, now: i64| SeenAssertion {
        client_id: client.into(),
        jti: jti.into(),
        exp,
        now,
    };
    assert!(
        store
            .remember_assertion(&seen("c1", "j1", 100, 10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remember_assertion(&seen("c1", "j1", 100, 20))
            .await
            .unwrap(),
        "a replay"
    );
    assert!(
        !store
            .remember_assertion(&seen("c1", "j1", 150, 99))
            .await
            .unwrap(),
        "a replay with another exp"
    );
    assert!(
        store
            .remember_assertion(&seen("c2", "j1", 100, 20))
            .await
            .unwrap(),
        "jtis are per client"
    );
    assert!(
        store
            .remember_assertion(&seen("c1", "j1", 300, 100))
            .await
            .unwrap(),
        "an expired row no longer counts"
    );
    assert!(
        !store
            .remember_assertion(&seen("c1", "j1", 300, 200))
            .await
            .unwrap()
    );
    store.prune(1_000).await.unwrap();
    assert!(
        store
            .remember_assertion(&seen("c1", "j1", 2_000, 1_000))
            .await
            .unwrap(),
        "pruned"
    );
}
fn audit_entry(action: Action, target: &str, at: i64) -> AuditEntry {
    let changes = serde_json::json!({ "name": { "from": null, "to": "Sample" } });
    Actor::admin_api("ops", "req-1", Some("127.0.0.1".into())).entry(action, target, changes, at)
}

async fn audit_actions(store: &dyn Store, query: &AuditQuery) -> Vec<String> {
    let records = store.audit_records(query).await.unwrap();
    records.into_iter().map(|r| r.entry.action).collect()
}

/// An audited change writes its record in its own transaction: both or
/// neither. A refused change (a duplicate, a key conflict) or one that
/// finds nothing writes no record. Records list oldest first, filtered by
/// time, client and count.
pub async fn audited_changes_write_their_record_or_nothing(store: &dyn Store) {
    use AuditedChange::*;
    let now = auth_server::clock::unix_now();
    let create = audit_entry(Action::ClientCreate, "a1", now);
    assert!(
        store
            .write_audited(&InsertClient(sample("a1")), &create)
            .await
            .unwrap()
    );
    assert!(matches!(
        store
            .write_audited(&InsertClient(sample("a1")), &create)
            .await,
        Err(StoreError::Duplicate(_))
    ));
    let missing = audit_entry(Action::ClientUpdate, "nobody", now);
    assert!(
        !store
            .write_audited(&UpdateClient(sample("nobody")), &missing)
            .await
            .unwrap()
    );
    assert!(
        !store
            .write_audited(&DeleteClient("nobody".into()), &missing)
            .await
            .unwrap()
    );
    let key = stored_key("k1", KeyState::Current, now);
    let moved = update(KeyState::Next, &key, KeyState::Current, now);
    assert!(matches!(
        store
            .write_audited(
                &SigningKeys(vec![moved]),
                &audit_entry(Action::KeyRotate, "k1", now)
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let revoke = audit_entry(Action::TokenRevoke, "jti-1", now);
    assert!(
        store
            .write_audited(&Revoke(revocation("jti-1", now + 60)), &revoke)
            .await
            .unwrap()
    );
    let delete = audit_entry(Action::ClientDelete, "a1", now + 1);
    assert!(
        store
            .write_audited(&DeleteClient("a1".into()), &delete)
            .await
            .unwrap()
    );
    assert!(store.get_client("a1").await.unwrap().is_none());
    assert!(
        store
            .active_revocations(now)
            .await
            .unwrap()
            .iter()
            .any(|r| r.jti == "jti-1")
    );

    let all = store.audit_records(&AuditQuery::default()).await.unwrap();
    let actions: Vec<&str> = all.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["client.create", "token.revoke", "client.delete"]);
    assert_eq!(all[0].entry, create, "stored as given");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let about = |client: &str| AuditQuery {
        client: Some(client.into()),
        ..AuditQuery::default()
    };
    assert_eq!(
        audit_actions(store, &about("a1")).await,
        ["client.create", "client.delete"]
    );
    assert_eq!(
        audit_actions(store, &about("ops")).await.len(),
        3,
        "by the acting client"
    );
    let since = AuditQuery {
        since: Some(now + 1),
        ..AuditQuery::default()
    };
    assert_eq!(audit_actions(store, &since).await, ["client.delete"]);
    let newest = AuditQuery {
        limit: 2,
        ..AuditQuery::default()
    };
    assert_eq!(
        audit_actions(store, &newest).await,
        ["token.revoke", "client.delete"]
    );
}

/// Retention pruning removes only the records older than its cut-off.
pub async fn audit_pruning_keeps_recent_records(store: &dyn Store) {
    let now = auth_server::clock::unix_now();
    let old = audit_entry(Action::TokenRevoke, "old", now - 10 * 86_400);
    let recent = audit_entry(Action::TokenRevoke, "recent", now);
    for (jti, entry) in [("old", &old), ("recent", &recent)] {
        let change = AuditedChange::Revoke(revocation(jti, now + 60));
        assert!(store.write_audited(&change, entry).await.unwrap());
    }
    assert_eq!(store.prune_audit(now - 5 * 86_400).await.unwrap(), 1);
    let left = store.audit_records(&AuditQuery::default()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].entry.target, "recent");
}

/// Federated subjects: added and removed with their audit record and a
/// change-feed entry for the client, refused twice or for a missing
/// client, listed in order, and gone with their client.
pub async fn federated_subjects_are_kept_per_client(store: &dyn Store) {
    use AuditedChange::*;
    use auth_server::domain::federation::FederatedSubject;
    let now = auth_server::clock::unix_now();
    let subject = |client: &str, issuer: &str, sub: &str| FederatedSubject {
        client_id: client.into(),
        issuer: issuer.into(),
        subject: sub.into(),
    };
    for id in ["f1", "f2"] {
        store.insert_client(&sample(id)).await.unwrap();
    }
    let cursor = store.change_cursor().await.unwrap();
    let added = [
        subject("f2", "k8s", "system:serviceaccount:b:*"),
        subject("f1", "spiffe", "spiffe://td/ns/a/sa/api"),
        subject("f1", "k8s", "system:serviceaccount:a:*"),
    ];
    for s in &added {
        let entry = audit_entry(Action::FederatedSubjectAdd, &s.client_id, now);
        assert!(
            store
                .write_audited(&AddFederatedSubject(s.clone(), now), &entry)
                .await
                .unwrap()
        );
    }
    let mut expected = added.to_vec();
    expected.sort();
    assert_eq!(store.federated_subjects().await.unwrap(), expected);
    let changes = store.changes_since(cursor).await.unwrap();
    assert!(changes.clients.contains(&"f1".to_owned()), "{changes:?}");

    let again = audit_entry(Action::FederatedSubjectAdd, "f1", now);
    assert!(matches!(
        store
            .write_audited(&AddFederatedSubject(added[1].clone(), now), &again)
            .await,
        Err(StoreError::Duplicate(_))
    ));
    let missing = subject("nobody", "k8s", "x");
    let entry = audit_entry(Action::FederatedSubjectAdd, "nobody", now);
    assert!(
        !store
            .write_audited(&AddFederatedSubject(missing, now), &entry)
            .await
            .unwrap()
    );

    let entry = audit_entry(Action::FederatedSubjectRemove, "f1", now);
    assert!(
        store
            .write_audited(&RemoveFederatedSubject(added[1].clone()), &entry)
            .await
            .unwrap()
    );
    assert!(
        !store
            .write_audited(&RemoveFederatedSubject(added[1].clone()), &entry)
            .await
            .unwrap()
    );
    let actions = audit_actions(
        store,
        &AuditQuery {
            client: Some("f1".into()),
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(
        actions,
        [
            "client.federated_subject.add",
            "client.federated_subject.add",
            "client.federated_subject.remove"
        ]
    );

    assert!(store.delete_client("f1").await.unwrap());
    assert_eq!(
        store.federated_subjects().await.unwrap(),
        [added[0].clone()]
    );
}
