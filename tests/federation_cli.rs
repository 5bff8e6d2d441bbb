//! Workload identity federation with the real binary: trusted issuers in
//! `config.toml` (refused at start when unusable), `federation issuers` and
//! `refresh` fetching their keys, federated subjects added, listed and
//! removed with the CLI (audited), and a served jwt-bearer grant. The
//! outputs are printed: the docs quote them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::issuer::{AUDIENCE, TestIssuer};
use common::jwks_host::Answer;
use common::process::{self, ServerProcess};
use serde_json::Value;

fn config(issuer: &TestIssuer) -> String {
    format!(
        r#"[jwks_fetch]
ca_file = "{ca}"
timeout_ms = 1000
connect_timeout_ms = 500
min_refetch_interval_secs = 1

[[federation.issuer]]
name = "k8s"
issuer = "{iss}"
audience = "{AUDIENCE}"
algorithms = ["RS256"]
max_token_age_secs = 3600
"#,
        ca = issuer.host.ca_file.display(),
        iss = issuer.iss,
    )
}

/// Runs `auth-server args...` off the async runtime (the issuer is served
/// on it) and shows the command and its output.
async fn run(dir: &Path, args: &[&str]) -> Output {
    let (dir, owned): (std::path::PathBuf, Vec<String>) = (
        dir.to_owned(),
        args.iter().map(|a| (*a).to_owned()).collect(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        process::run_env(&dir, &args, &[("USER", "ops")])
    })
    .await
    .unwrap();
    println!(
        "$ auth-server {}\n{}{}(exit {})\n",
        args.join(" "),
        process::text(&out.stdout),
        process::text(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with('{'))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
        out.status.code().unwrap_or(-1)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_and_subjects_through_the_cli_and_a_served_grant() {
    let k8s = TestIssuer::start("RS256").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(path.join("config.toml"), config(&k8s)).unwrap();

    let out = run(path, &["federation", "issuers"]).await;
    assert!(out.status.success());
    let shown = process::text(&out.stdout);
    assert!(shown.contains("k8s"), "{shown}");
    assert!(shown.contains("keys=1"), "{shown}");
    assert!(shown.contains(&k8s.key.kid), "{shown}");
    assert!(shown.contains(&k8s.host.url), "discovered: {shown}");

    let out = run(path, &["federation", "refresh", "nope"]).await;
    assert!(!out.status.success());
    assert!(process::text(&out.stderr).contains("no trusted issuer named \"nope\""));

    let out = run(
        path,
        &[
            "client", "create", "--name", "Payments", "--id", "payments", "--scopes", "read",
        ],
    )
    .await;
    assert!(out.status.success());
    for (issuer, subject, expected) in [
        (
            "spiffe",
            "system:serviceaccount:payments:*",
            "not configured",
        ),
        ("k8s", "system:serviceaccount:pay*", "whole segment"),
    ] {
        let out = run(
            path,
            &[
                "federation",
                "subjects",
                "add",
                "payments",
                "--issuer",
                issuer,
                "--subject",
                subject,
            ],
        )
        .await;
        assert!(!out.status.success());
        let stderr = process::text(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    let add = [
        "federation",
        "subjects",
        "add",
        "payments",
        "--issuer",
        "k8s",
        "--subject",
        "system:serviceaccount:payments:*",
    ];
    let out = run(path, &add).await;
    assert!(out.status.success());
    let logged: Vec<Value> = process::text(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        logged
            .iter()
            .any(|l| l["event"] == "audit.client.federated_subject.add"),
        "{logged:?}"
    );
    assert!(!run(path, &add).await.status.success(), "twice");
    let out = run(path, &["federation", "subjects", "list", "payments"]).await;
    assert_eq!(
        process::text(&out.stdout).trim(),
        r#"{"issuer":"k8s","subject":"system:serviceaccount:payments:*"}"#
    );

    // The served grant, with a plain HTTPS POST.
    let mut server = ServerProcess::spawn(path, &[]);
    let base = server.base_url();
    let http = server.http();
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
        ),
        ("assertion", k8s.k8s_token("payments", "api")),
    ];
    let response = http
        .post(format!("{base}/auth-server/v1/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read");
    println!("POST /oauth/token (jwt-bearer) -> 200 {}", redact(&body));
    let exchange = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
        ),
        ("subject_token", k8s.k8s_token("payments", "api")),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:jwt".to_owned(),
        ),
    ];
    let response = http
        .post(format!("{base}/auth-server/v1/oauth/token"))
        .form(&exchange)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    println!(
        "POST /oauth/token (token exchange) -> 200 {}",
        redact(&body)
    );
    let unmapped = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
        ),
        ("assertion", k8s.k8s_token("orders", "api")),
    ];
    let response = http
        .post(format!("{base}/auth-server/v1/oauth/token"))
        .form(&unmapped)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    println!(
        "POST /oauth/token (jwt-bearer, system:serviceaccount:orders:api) -> 400 {}",
        response.text().await.unwrap()
    );
    let ready: Value = http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["federation"]["k8s"]["keys"], 1, "{ready}");
    println!("GET /health/ready -> {ready}");

    // The issuer goes down: refresh says why and fails.
    k8s.host.answer(Answer::Down);
    let out = run(path, &["federation", "refresh", "k8s"]).await;
    assert!(!out.status.success());
    assert!(process::text(&out.stdout).contains("503"));

    let out = run(
        path,
        &[
            "federation",
            "subjects",
            "remove",
            "payments",
            "--issuer",
            "k8s",
            "--subject",
            "system:serviceaccount:payments:*",
        ],
    )
    .await;
    assert!(out.status.success());
    let out = run(path, &["audit", "list", "--client", "payments"]).await;
    let actions: Vec<String> = process::text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "client.create",
            "client.federated_subject.add",
            "client.federated_subject.remove"
        ]
    );
    server.terminate();
}

/// The access token shortened: the docs show its shape, not a credential.
fn redact(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(token) = body["access_token"].as_str() {
        body["access_token"] = format!("{}...", &token[..16]).into();
    }
    body
}

#[test]
fn an_unusable_trusted_issuer_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for (table, expected) in [
        (
            "name = \"k8s\"\nissuer = \"http://k8s.test\"\naudience = \"a\"\n",
            "[[federation.issuer]] \"k8s\": issuer must be an https:// URL",
        ),
        (
            "name = \"k8s\"\nissuer = \"https://k8s.test\"\naudience = \"a\"\nalgorithms = [\"HS256\"]\n",
            "algorithm \"HS256\" is not accepted",
        ),
        (
            "name = \"k8s\"\nissuer = \"https://k8s.test\"\n",
            "audience",
        ),
    ] {
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[[federation.issuer]]\n{table}"),
        )
        .unwrap();
        let out = process::run(dir.path(), &["check-config"], None);
        assert_eq!(out.status.code(), Some(78), "{table}");
        let stderr = process::text(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}
