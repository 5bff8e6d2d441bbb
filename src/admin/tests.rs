use super::*;
use crate::store::sqlite::SqliteStore;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

/// The id of a new client made from [`new_client`] at time 0.
async fn created_id(store: &SqliteStore) -> String {
    create_client(store, new_client(), 0)
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
    let created = create_client(&store, new_client(), 10).await.unwrap();
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
                create_client(&store, case, 0).await,
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
            0
        )
        .await,
        Err(AdminError::Store(StoreError::Duplicate(_)))
    ));
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_for_the_grace_period() {
    let (_dir, store) = store().await;
    let created = create_client(&store, new_client(), 0).await.unwrap();
    let (client, new_secret) = rotate_secret(&store, &created.client.id, 60, 100)
        .await
        .unwrap();
    assert!(client.verify_secret(&new_secret, 100));
    assert!(client.verify_secret(&created.secret, 159));
    assert!(!client.verify_secret(&created.secret, 160));
    let (client, newest) = rotate_secret(&store, &created.client.id, 0, 200)
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
            6
        )
        .await,
        Err(AdminError::Invalid(_))
    ));

    let disabled = set_enabled(&store, &id, false, 50).await.unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.tokens_valid_after, 50);
    let enabled = set_enabled(&store, &id, true, 60).await.unwrap();
    assert!(enabled.enabled);
    assert_eq!(enabled.tokens_valid_after, 60);

    delete_client(&store, &id).await.unwrap();
    assert!(matches!(
        delete_client(&store, &id).await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        set_enabled(&store, &id, true, 0).await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn enabling_does_not_revive_tokens_issued_while_disabled() {
    let (_dir, store) = store().await;
    let id = created_id(&store).await;
    set_enabled(&store, &id, false, 100).await.unwrap();
    // An instance that has not yet seen the disable issues at 101.
    let issued_during_the_lag = 101;
    let enabled = set_enabled(&store, &id, true, 103).await.unwrap();
    assert!(enabled.enabled);
    assert!(
        issued_during_the_lag <= enabled.tokens_valid_after,
        "validation accepts only iat > tokens_valid_after"
    );
    // Enabling again changes nothing: tokens issued since the enable live.
    let again = set_enabled(&store, &id, true, 110).await.unwrap();
    assert_eq!(again.tokens_valid_after, 103);
    let stored = store.get_client(&id).await.unwrap().unwrap();
    assert_eq!((stored.enabled, stored.tokens_valid_after), (true, 103));
}

#[tokio::test]
async fn a_certificate_registration_sets_the_method() {
    let (_dir, store) = store().await;
    let pki = TlsClientAuth::from_parts("san_dns", "svc.test").unwrap();
    let created = create_client(
        &store,
        NewClient {
            tls_client_auth: Some(pki.clone()),
            ..new_client()
        },
        0,
    )
    .await
    .unwrap();
    assert_eq!(created.client.auth_method, AuthMethod::TlsClientAuth);
    let id = created.client.id;
    assert!(matches!(
        rotate_secret(&store, &id, 0, 1).await,
        Err(AdminError::Invalid(_))
    ));

    // A self-signed registration in its place: the method follows it.
    let self_signed =
        TlsClientAuth::SelfSigned("47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into());
    let update = ClientUpdate {
        tls_client_auth: Some(Some(self_signed)),
        ..ClientUpdate::default()
    };
    let client = update_client(&store, &id, update, 1).await.unwrap();
    assert_eq!(client.auth_method, AuthMethod::SelfSignedTlsClientAuth);
    // Dropping the registration goes back to the secret.
    let update = ClientUpdate {
        tls_client_auth: Some(None),
        ..ClientUpdate::default()
    };
    let client = update_client(&store, &id, update, 2).await.unwrap();
    assert_eq!(client.auth_method, AuthMethod::ClientSecretBasic);

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
            0,
        )
        .await;
        assert!(
            matches!(refused, Err(AdminError::Invalid(_))),
            "{auth_method:?}"
        );
    }
}
