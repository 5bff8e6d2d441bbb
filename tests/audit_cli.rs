//! The audit trail of the command line, with the real binary: each change
//! leaves one record naming `cli` and the OS user, and one JSON log line on
//! stderr with a stable `event`; a refused change leaves neither;
//! `audit list` filters by time and client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process;
use serde_json::Value;

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    process::run_env(dir, args, &[("USER", "alice")])
}

fn audit_lines(stderr: &[u8]) -> Vec<Value> {
    process::text(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn records(dir: &std::path::Path, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "list"];
    args.extend_from_slice(filters);
    let out = run(dir, &args);
    assert!(out.status.success(), "{}", process::text(&out.stderr));
    process::text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_cli_change_is_recorded_and_logged_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let created = run(
        path,
        &["client", "create", "--name", "Billing", "--id", "billing"],
    );
    assert!(
        created.status.success(),
        "{}",
        process::text(&created.stderr)
    );
    let secret = process::text(&created.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: ").map(str::to_owned))
        .unwrap();
    let logged = audit_lines(&created.stderr);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["event"], "audit.client.create");
    assert_eq!(logged[0]["actor"], "cli");
    assert_eq!(logged[0]["actor_id"], "alice");
    assert_eq!(logged[0]["target_id"], "billing");

    for args in [
        &["client", "update", "billing", "--name", "Billing v2"][..],
        &["client", "rotate-secret", "billing", "--grace-secs", "0"],
        &["client", "disable", "billing"],
        &["token", "revoke", "--jti", "jti-1"],
        &["client", "create", "--name", "Other", "--id", "other"],
    ] {
        let out = run(path, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            process::text(&out.stderr)
        );
        assert_eq!(audit_lines(&out.stderr).len(), 1, "{args:?}");
    }
    // Refused changes: no record, no audit line.
    for args in [
        &["client", "update", "nobody", "--name", "x"][..],
        &["client", "create", "--name", "Again", "--id", "billing"],
        &["client", "update", "billing", "--lifetime-secs", "0"],
    ] {
        let out = run(path, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(audit_lines(&out.stderr).is_empty(), "{args:?}");
    }

    let all = records(path, &[]);
    let actions: Vec<&str> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "client.create",
            "client.update",
            "client.rotate_secret",
            "client.disable",
            "token.revoke",
            "client.create",
        ]
    );
    assert!(
        all.iter()
            .all(|r| r["actor"] == "cli" && r["actor_id"] == "alice")
    );
    assert_eq!(all[1]["changes"]["name"]["from"], "Billing");
    assert_eq!(all[2]["changes"]["secret_hash"], "[redacted]");
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(&secret));

    assert_eq!(records(path, &["--client", "billing"]).len(), 4);
    assert_eq!(
        records(path, &["--client", "other", "--since", "1h"]).len(),
        1
    );
    assert!(records(path, &["--since", "4102444800"]).is_empty());
    let bad = run(path, &["audit", "list", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(64));
}

/// Security events go to the log only: a caller failing authentication
/// until the per-IP guard blocks it logs one `security.*` line, and the
/// audit trail stays empty.
#[tokio::test(flavor = "multi_thread")]
async fn the_failed_auth_guard_trips_into_the_log_not_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    process::create_client(path, "svc", "svc-secret-for-the-guard-test");
    let mut server = process::ServerProcess::spawn(
        path,
        &[
            ("AUTH_SERVER_LIMITS_FAILED_AUTH_BURST", "3"),
            ("AUTH_SERVER_LIMITS_FAILED_AUTH_PER_IP_PER_MINUTE", "1"),
        ],
    );
    let base = server.base_url();
    let http = server.http();
    let mut refused = 0;
    for _ in 0..10 {
        let answer = common::api::token_request(&http, &base, "svc", "wrong").await;
        if answer.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused > 0, "the guard never tripped");
    let line = server.wait_for("security.failed_auth_guard_tripped");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["peer_ip"], "127.0.0.1");
    let tripped = server
        .lines_so_far()
        .iter()
        .filter(|l| l.contains("security.failed_auth_guard_tripped"))
        .count();
    assert_eq!(tripped, 1, "once per trip, not per refused request");
    drop(http);
    assert!(server.terminate().success());
    assert!(records(path, &[]).iter().all(|r| r["action"] != "security"));
    assert_eq!(records(path, &[]).len(), 1, "only the client's creation");
}
