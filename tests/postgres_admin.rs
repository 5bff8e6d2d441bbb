//! The admin API and recovery on PostgreSQL: two instances taking admin
//! writes at once, and disaster recovery with pg_dump / pg_restore (the
//! key-encryption key kept apart: without it the restored keys cannot
//! sign). Run by `scripts/test.sh`, which starts a cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use auth_server::admin::{self, NewClient};
use auth_server::audit::{Actor, AuditQuery};
use auth_server::clock::unix_now;
use auth_server::config::Secret;
use auth_server::store::AuditStore;
use auth_server::store::postgres::PostgresStore;
use common::{TestServer, api, json_body, pg};
use reqwest::StatusCode;
use serde_json::json;

const ISSUER: &str = "https://auth.test/auth-server/v1";

fn pg_store(url: &str) -> PostgresStore {
    PostgresStore::open(&pg::settings(url), None).unwrap()
}

/// Registers a client allowed `scopes` in the database at `url`.
async fn client(url: &str, scopes: &str) -> (String, String) {
    let new = NewClient {
        name: "Test".into(),
        allowed_scopes: scopes.into(),
        ..NewClient::default()
    };
    let actor = Actor::cli("test");
    let created = admin::create_client(&pg_store(url), new, &actor, unix_now())
        .await
        .unwrap();
    (created.client.id, created.secret)
}

async fn admin_token(server: &TestServer, url: &str) -> String {
    let (id, secret) = client(url, "auth-server:admin").await;
    api::token(&server.client(), &server.base_url, &id, &secret).await
}

/// The actions of every audit record in the database at `url`.
async fn actions(url: &str) -> Vec<String> {
    let records = pg_store(url)
        .audit_records(&AuditQuery::default())
        .await
        .unwrap();
    records.into_iter().map(|r| r.entry.action).collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn two_instances_take_admin_writes_at_once() {
    let url = pg::fresh_database().await;
    let a = pg::start_server(&url, |_| {}).await;
    let b = pg::start_server(&url, |_| {}).await;
    let (token_a, token_b) = (admin_token(&a, &url).await, admin_token(&b, &url).await);
    let admin =
        |server: &TestServer, path: &str| server.url(&format!("/auth-server/v1/admin{path}"));
    let create = a
        .client()
        .post(admin(&a, "/clients"))
        .bearer_auth(&token_a)
        .json(&json!({ "client_id": "shared", "name": "Shared" }))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), StatusCode::CREATED);

    let mut calls = Vec::new();
    for i in 0..20 {
        for (server, token, side) in [(&a, &token_a, "a"), (&b, &token_b, "b")] {
            let (http, new, patch, token) = (
                server.client(),
                admin(server, "/clients"),
                admin(server, "/clients/shared"),
                token.clone(),
            );
            calls.push(tokio::spawn(async move {
                let created = http
                    .post(new)
                    .bearer_auth(&token)
                    .json(&json!({ "client_id": format!("{side}-{i}"), "name": side }))
                    .send()
                    .await
                    .unwrap()
                    .status();
                let patched = http
                    .patch(patch)
                    .bearer_auth(&token)
                    .json(&json!({ "name": format!("{side}-{i}") }))
                    .send()
                    .await
                    .unwrap()
                    .status();
                (created, patched)
            }));
        }
    }
    for call in calls {
        let (created, patched) = call.await.unwrap();
        assert_eq!((created, patched), (StatusCode::CREATED, StatusCode::OK));
    }
    let listed = a
        .client()
        .get(admin(&a, "/clients?limit=1000"))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    let listed = json_body(listed).await;
    // 40 created, "shared", and the two admin clients.
    assert_eq!(listed["clients"].as_array().unwrap().len(), 43);
    let records = actions(&url).await;
    let count = |action: &str| records.iter().filter(|a| *a == action).count();
    assert_eq!(count("client.create"), 1 + 40 + 2);
    assert_eq!(count("client.update"), 40);
}

fn pg_tool(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn a_dump_restores_clients_keys_and_revocations() {
    let url = pg::fresh_database().await;
    let fixed_issuer = |c: &mut auth_server::config::Config| c.issuer = ISSUER.into();
    let server = pg::start_server(&url, fixed_issuer).await;
    let (id, secret) = client(&url, "read").await;
    let http = server.client();
    let kept = api::token(&http, &server.base_url, &id, &secret).await;
    let revoked = api::token(&http, &server.base_url, &id, &secret).await;
    let answer = api::revoke(&http, &server.base_url, (&id, &secret), &revoked)
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("auth.dump");
    pg_tool(
        "pg_dump",
        &["--format=custom", "--file", dump.to_str().unwrap(), &url],
    );
    server.stop().await;

    // Disaster: every table gone.
    let client = pg::connect(&url).await;
    client
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .await
        .unwrap();
    pg_tool(
        "pg_restore",
        &["--no-owner", "--dbname", &url, dump.to_str().unwrap()],
    );

    // Without the key-encryption key the restored keys are of no use.
    let mut foreign = common::test_config(dir.path(), auth_server::keys::Algorithm::EdDSA);
    foreign.database = pg::settings(&url);
    foreign.issuer = ISSUER.into();
    foreign.kek = Some(Secret(
        "b3RoZXIta2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=".into(),
    ));
    let refused = auth_server::app::start(&foreign, std::future::pending()).await;
    assert!(refused.is_err(), "a foreign KEK opened the keys");

    let server = pg::start_server(&url, fixed_issuer).await;
    let http = server.client();
    assert_eq!(api::validate(&http, &server.base_url, &kept).await, 200);
    assert_eq!(api::validate(&http, &server.base_url, &revoked).await, 401);
    let fresh = api::token(&http, &server.base_url, &id, &secret).await;
    assert_eq!(api::kid(&fresh), api::kid(&kept), "the same signing key");
}
