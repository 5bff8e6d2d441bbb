use super::*;
use std::path::Path;

fn sample(id: &str) -> Client {
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
        rate_limit_rps: Some(10),
        enabled: true,
        tokens_valid_after: 5,
        created_at: 1,
        updated_at: 2,
        tls_client_auth: Some(TlsClientAuth::SelfSigned(
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
        )),
        require_dpop: true,
        auth_method: AuthMethod::SelfSignedTlsClientAuth,
        jwks: Some(RegisteredJwks::parse(SAMPLE_JWKS).unwrap()),
        jwks_uri: Some("https://keys.test/jwks".into()),
    }
}

/// A JWK Set of one Ed25519 public key.
pub const SAMPLE_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

/// The client round trip is the contract suite's (`tests/store_sqlite.rs`);
/// this is what only the embedded store does: create the file's directory.
#[tokio::test]
async fn opening_creates_the_directory_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("sub/db.sqlite")).unwrap();
    let report = store.migrate().await.unwrap();
    assert_eq!(
        report.applied,
        MIGRATIONS.iter().map(|(v, _)| *v).collect::<Vec<_>>()
    );
    assert!(
        store.migrate().await.unwrap().applied.is_empty(),
        "idempotent"
    );
    store.insert_client(&sample("c1")).await.unwrap();
    assert!(matches!(
        store.insert_client(&sample("c1")).await,
        Err(StoreError::Duplicate(_))
    ));
}

#[tokio::test]
async fn revocations_and_the_change_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    store.migrate().await.unwrap();
    let start = store.change_cursor().await.unwrap();
    let revocation = |jti: &str, exp| Revocation {
        jti: jti.into(),
        client_id: "c1".into(),
        exp,
        revoked_at: 1,
    };
    store.revoke(&revocation("j1", 100)).await.unwrap();
    store.revoke(&revocation("j1", 100)).await.unwrap();
    store.revoke(&revocation("j2", 200)).await.unwrap();
    store.insert_client(&sample("c1")).await.unwrap();

    let batch = store.changes_since(start).await.unwrap();
    assert_eq!(
        batch.revocations,
        [revocation("j1", 100), revocation("j2", 200)]
    );
    assert_eq!(batch.clients, ["c1"]);
    assert!(!batch.full_reload);
    let later = store.changes_since(batch.cursor).await.unwrap();
    assert!(later.revocations.is_empty() && later.clients.is_empty());
    assert_eq!(later.cursor, batch.cursor);

    assert_eq!(
        store.active_revocations(150).await.unwrap(),
        [revocation("j2", 200)]
    );
    assert_eq!(store.prune(150).await.unwrap(), 1);
    assert_eq!(store.active_revocations(0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn newer_schema_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    store.migrate().await.unwrap();
    store
        .with_conn(|c| {
            c.execute("INSERT INTO schema_migrations VALUES (999, 0)", [])
                .map_err(unavailable)
        })
        .await
        .unwrap();
    assert!(store.migrate().await.unwrap().schema_is_newer());
}

#[tokio::test]
async fn a_row_that_does_not_decode_names_its_table_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    store.migrate().await.unwrap();
    store.insert_client(&sample("c1")).await.unwrap();
    store.insert_client(&sample("c2")).await.unwrap();
    let damage = |sql: &'static str| {
        store.with_conn(move |c| c.execute(sql, []).map(|_| ()).map_err(unavailable))
    };
    damage("UPDATE clients SET allowed_scopes = 'a\u{7f}' WHERE id = 'c1'")
        .await
        .unwrap();
    damage("UPDATE clients SET enabled = 'maybe' WHERE id = 'c2'")
        .await
        .unwrap();

    let err = store.get_client("c1").await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Corrupt(CorruptRow::Client { id, field: ClientField::Scopes }) if id == "c1"
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "corrupt row: client c1: malformed scopes");
    let err = store.get_client("c2").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt(CorruptRow::Column {
                table: "clients",
                index: 11,
                ..
            })
        ),
        "{err:?}"
    );
}

/// A version-2 database as the previous release left it: changes logged,
/// some pruned, the rest still to be read by a poller.
fn version_2_database(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL, \
         applied_at INTEGER NOT NULL)",
    )
    .unwrap();
    for (version, sql) in &MIGRATIONS[..2] {
        conn.execute_batch(sql).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?1, 0)",
            params![version],
        )
        .unwrap();
    }
    for i in 0..5 {
        record_change(&conn, "client", &format!("c{i}")).unwrap();
    }
    conn.execute("DELETE FROM changes WHERE seq <= 3", [])
        .unwrap();
    conn
}

#[tokio::test]
async fn version_3_keeps_the_change_log_and_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(version_2_database(&path));
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.migrate().await.unwrap().applied,
        MIGRATIONS[2..].iter().map(|(v, _)| *v).collect::<Vec<_>>()
    );
    let kept = store.changes_since(0).await.unwrap();
    assert_eq!(kept.clients, ["c3", "c4"], "rows survive the rebuild");
    assert_eq!(kept.cursor, 5);
    // Every row gone: the next seq must still be past every one handed out.
    store
        .with_conn(|c| c.execute("DELETE FROM changes", []).map_err(unavailable))
        .await
        .unwrap();
    store.insert_client(&sample("c9")).await.unwrap();
    let batch = store.changes_since(5).await.unwrap();
    assert_eq!(batch.clients, ["c9"]);
    assert!(batch.cursor > 5, "{batch:?}");

    // The rows the previous binary writes and reads still fit.
    let old_kinds = Connection::open(&path).unwrap();
    record_change(&old_kinds, "revocation", "j1").unwrap();
    assert!(
        record_change(&old_kinds, "bogus", "x").is_err(),
        "still checked"
    );
}

/// Version 7 gives each client registered with a certificate (version 5)
/// the certificate method of its registration; the others keep their
/// secret.
#[tokio::test]
async fn version_7_sets_the_method_of_certificate_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL, \
         applied_at INTEGER NOT NULL)",
    )
    .unwrap();
    for (version, sql) in MIGRATIONS.iter().take_while(|(v, _)| *v < 7) {
        conn.execute_batch(sql).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?1, 0)",
            params![version],
        )
        .unwrap();
    }
    for (id, kind, value) in [
        ("by-name", Some("san_dns"), Some("svc.test")),
        (
            "self-signed",
            Some("self_signed"),
            Some("47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"),
        ),
        ("secret", None, None),
    ] {
        conn.execute(
            "INSERT INTO clients (id, name, secret_hash, allowed_scopes, default_scopes, \
             created_at, updated_at, tls_auth_kind, tls_auth_value) \
             VALUES (?1, ?1, ?2, 'a', 'a', 0, 0, ?3, ?4)",
            params![id, SecretHash::of("s").0.to_vec(), kind, value],
        )
        .unwrap();
    }
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.migrate().await.unwrap().applied, [7, 8]);
    for (id, method) in [
        ("by-name", AuthMethod::TlsClientAuth),
        ("self-signed", AuthMethod::SelfSignedTlsClientAuth),
        ("secret", AuthMethod::ClientSecretBasic),
    ] {
        let client = store.get_client(id).await.unwrap().unwrap();
        assert_eq!(client.auth_method, method, "{id}");
    }
}
