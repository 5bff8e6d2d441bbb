use super::*;
use crate::audit::Actor;
use crate::store::sqlite::SqliteStore;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

/// The id of a new client made from [`new_client`] at time 0.
async fn created_id(store: &SqliteStore) -> String {
    create_client(store, new_client(), &Actor::cli("test"), 0)
        .await
        .unwrap()
        .client
        .id
}

fn new_client() -> NewClient {
    NewClient {
        name: "Billing".into(),
        allowed_scopes: "read write".into(),
        default_scopes: Some("read".into()),
        audiences: vec!["https://api.test".into()],
        ..NewClient::default()
    }
}

#[tokio::test]
async fn create_stores_only_the_hash_and_the_secret_verifies() {
    let (_dir, store) = store().await;
    let created = create_client(&store, new_client(), &Actor::cli("test"), 10)
        .await
        .unwrap();
    assert!(created.client.id.starts_with("client-"));
    let stored = store.get_client(&created.client.id).await.unwrap().unwrap();
    assert!(stored.verify_secret(&created.secret, 10));
    assert!(!stored.secret_imported);
    assert_eq!(stored.default_scopes.to_string(), "read");
    let view = client_view(&stored).to_string();
    assert!(!view.contains(&created.secret));
    assert!(!view.contains("hash\""));
}

#[tokio::test]
async fn create_refuses_bad_input() {
    let (_dir, store) = store().await;
    let cases = [
        NewClient {
            id: Some("bad id".into()),
            ..new_client()
        },
        NewClient {
            name: " ".into(),
            ..new_client()
        },
        NewClient {
            default_scopes: Some("admin".into()),
            ..new_client()
        },
        NewClient {
            allowed_scopes: "a  b".into(),
            ..new_client()
        },
        NewClient {
            audiences: vec!["has space".into()],
            ..new_client()
        },
        NewClient {
            token_lifetime_secs: Some(0),
            ..new_client()
        },
        NewClient {
            rate_limit_rps: Some(0),
            ..new_client()
        },
        NewClient {
            imported_secret: Some(String::new()),
            ..new_client()
        },
    ];
    for case in cases {
        let shown = format!("{case:?}");
        assert!(
            matches!(
                create_client(&store, case, &Actor::cli("test"), 0).await,
                Err(AdminError::Invalid(_))
            ),
            "{shown}"
        );
    }
    assert_eq!(store.count_clients().await.unwrap(), 0);
}

#[tokio::test]
async fn defaults_to_all_allowed_scopes_and_imports_secrets() {
    let (_dir, store) = store().await;
    let created = create_client(
        &store,
        NewClient {
            id: Some("test-client".into()),
            default_scopes: None,
            imported_secret: Some("test-secret-123".into()),
            ..new_client()
        },
        &Actor::cli("test"),
        0,
    )
    .await
    .unwrap();
    assert_eq!(created.secret, "test-secret-123");
    assert!(created.client.secret_imported);
    assert_eq!(created.client.default_scopes.to_string(), "read write");
    assert!(matches!(
        create_client(
            &store,
            NewClient {
                id: Some("test-client".into()),
                ..new_client()
            },
            &Actor::cli("test"),
            0
        )
        .await,
        Err(AdminError::Store(StoreError::Duplicate(_)))
    ));
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_for_the_grace_period() {
    let (_dir, store) = store().await;
    let created = create_client(&store, new_client(), &Actor::cli("test"), 0)
        .await
        .unwrap();
    let (client, new_secret) =
        rotate_secret(&store, &created.client.id, 60, &Actor::cli("test"), 100)
            .await
            .unwrap();
    assert!(client.verify_secret(&new_secret, 100));
    assert!(client.verify_secret(&created.secret, 159));
    assert!(!client.verify_secret(&created.secret, 160));
    let (client, newest) = rotate_secret(&store, &created.client.id, 0, &Actor::cli("test"), 200)
        .await
        .unwrap();
    assert!(client.verify_secret(&newest, 200));
    assert!(!client.verify_secret(&new_secret, 200));
}

#[tokio::test]
async fn update_disable_enable_delete() {
    let (_dir, store) = store().await;
    let id = created_id(&store).await;
    let updated = update_client(
        &store,
        &id,
        ClientUpdate {
            name: Some("Renamed".into()),
            token_lifetime_secs: Some(Some(60)),
            ..ClientUpdate::default()
        },
        &Actor::cli("test"),
        5,
    )
    .await
    .unwrap();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.token_lifetime_secs, Some(60));
    assert_eq!(updated.updated_at, 5);
    assert!(matches!(
        update_client(
            &store,
            &id,
            ClientUpdate {
                allowed_scopes: Some("write".into()),
                ..ClientUpdate::default()
            },
            &Actor::cli("test"),
            6
        )
        .await,
        Err(AdminError::Invalid(_))
    ));

    let disabled = set_enabled(&store, &id, false, &Actor::cli("test"), 50)
        .await
        .unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.tokens_valid_after, 50);
    let enabled = set_enabled(&store, &id, true, &Actor::cli("test"), 60)
        .await
        .unwrap();
    assert!(enabled.enabled);
    assert_eq!(enabled.tokens_valid_after, 60);

    delete_client(&store, &id, &Actor::cli("test"), 0)
        .await
        .unwrap();
    assert!(matches!(
        delete_client(&store, &id, &Actor::cli("test"), 0).await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        set_enabled(&store, &id, true, &Actor::cli("test"), 0).await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn enabling_does_not_revive_tokens_issued_while_disabled() {
    let (_dir, store) = store().await;
    let id = created_id(&store).await;
    set_enabled(&store, &id, false, &Actor::cli("test"), 100)
        .await
        .unwrap();
    // An instance that has not yet seen the disable issues at 101.
    let issued_during_the_lag = 101;
    let enabled = set_enabled(&store, &id, true, &Actor::cli("test"), 103)
        .await
        .unwrap();
    assert!(enabled.enabled);
    assert!(
        issued_during_the_lag <= enabled.tokens_valid_after,
        "validation accepts only iat > tokens_valid_after"
    );
    // Enabling again changes nothing: tokens issued since the enable live.
    let again = set_enabled(&store, &id, true, &Actor::cli("test"), 110)
        .await
        .unwrap();
    assert_eq!(again.tokens_valid_after, 103);
    let stored = store.get_client(&id).await.unwrap().unwrap();
    assert_eq!((stored.enabled, stored.tokens_valid_after), (true, 103));
}

#[tokio::test]
async fn a_certificate_registration_sets_the_method() {
    let (_dir, store) = store().await;
    let ops = Actor::cli("ops");
    let pki = TlsClientAuth::from_parts("san_dns", "svc.test").unwrap();
    let created = create_client(
        &store,
        NewClient {
            tls_client_auth: Some(pki.clone()),
            ..new_client()
        },
        &ops,
        0,
    )
    .await
    .unwrap();
    assert_eq!(created.client.auth_method, AuthMethod::TlsClientAuth);
    let id = created.client.id;
    assert!(matches!(
        rotate_secret(&store, &id, 0, &ops, 1).await,
        Err(AdminError::Invalid(_))
    ));

    // A self-signed registration in its place: the method follows it.
    let self_signed =
        TlsClientAuth::SelfSigned("47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into());
    let update = ClientUpdate {
        tls_client_auth: Some(Some(self_signed)),
        ..ClientUpdate::default()
    };
    let client = update_client(&store, &id, update, &ops, 1).await.unwrap();
    assert_eq!(client.auth_method, AuthMethod::SelfSignedTlsClientAuth);
    // Dropping the registration goes back to the secret.
    let update = ClientUpdate {
        tls_client_auth: Some(None),
        ..ClientUpdate::default()
    };
    let client = update_client(&store, &id, update, &ops, 2).await.unwrap();
    assert_eq!(client.auth_method, AuthMethod::ClientSecretBasic);
    // The trail has each change of method.
    let records = crate::store::AuditStore::audit_records(&store, &Default::default())
        .await
        .unwrap();
    let methods: Vec<_> = records
        .iter()
        .map(|r| &r.entry.changes["token_endpoint_auth_method"])
        .collect();
    assert_eq!(
        methods,
        [
            &json!({ "from": null, "to": "tls_client_auth" }),
            &json!({ "from": "tls_client_auth", "to": "self_signed_tls_client_auth" }),
            &json!({ "from": "self_signed_tls_client_auth", "to": "client_secret_basic" }),
        ]
    );

    // A key method with a certificate, a certificate method without one.
    for (auth_method, tls_client_auth) in [
        (AuthMethod::PrivateKeyJwt, Some(pki)),
        (AuthMethod::TlsClientAuth, None),
        (AuthMethod::SelfSignedTlsClientAuth, None),
    ] {
        let refused = create_client(
            &store,
            NewClient {
                auth_method,
                tls_client_auth,
                jwks_uri: Some("https://keys.test/jwks".into()),
                ..new_client()
            },
            &ops,
            0,
        )
        .await;
        assert!(
            matches!(refused, Err(AdminError::Invalid(_))),
            "{auth_method:?}"
        );
    }
}

#[tokio::test]
async fn every_change_is_audited_and_no_record_holds_a_secret() {
    use crate::audit::AuditQuery;
    use crate::store::AuditStore;
    let (_dir, store) = store().await;
    let ops = Actor::cli("ops");
    let created = create_client(&store, new_client(), &ops, 10).await.unwrap();
    let id = created.client.id.clone();
    let (_, rotated) = rotate_secret(&store, &id, 60, &ops, 11).await.unwrap();
    let rename = ClientUpdate {
        name: Some("Renamed".into()),
        ..ClientUpdate::default()
    };
    update_client(&store, &id, rename, &ops, 12).await.unwrap();
    set_enabled(&store, &id, false, &ops, 13).await.unwrap();
    set_enabled(&store, &id, true, &ops, 14).await.unwrap();
    revoke_client_tokens(&store, &id, &ops, 15).await.unwrap();
    revoke_jti(&store, "jti-1", &ops, 16).await.unwrap();
    // Refused changes write nothing.
    let bad = ClientUpdate {
        name: Some(String::new()),
        ..ClientUpdate::default()
    };
    assert!(update_client(&store, &id, bad, &ops, 17).await.is_err());
    assert!(delete_client(&store, "nobody", &ops, 17).await.is_err());
    delete_client(&store, &id, &ops, 18).await.unwrap();

    let records = store.audit_records(&AuditQuery::default()).await.unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "client.create",
            "client.rotate_secret",
            "client.update",
            "client.disable",
            "client.enable",
            "client.revoke_tokens",
            "token.revoke",
            "client.delete",
        ]
    );
    assert!(records.iter().all(|r| r.entry.actor == ops));
    let rotation = &records[1].entry.changes;
    assert_eq!(rotation["secret_hash"], crate::audit::REDACTED);
    assert_eq!(rotation["previous_secret_hash"], crate::audit::REDACTED);
    assert_eq!(records[2].entry.changes["name"]["to"], "Renamed");
    assert_eq!(records[3].entry.changes["enabled"]["to"], false);
    let text = serde_json::to_string(&records).unwrap();
    let hash = created.client.secret_hash.0;
    for secret in [created.secret.as_str(), rotated.as_str()] {
        assert!(!text.contains(secret), "a secret in the trail");
    }
    let hash_bytes: Vec<String> = hash.iter().map(u8::to_string).collect();
    assert!(!text.contains(&hash_bytes.join(",")), "a hash in the trail");
}
