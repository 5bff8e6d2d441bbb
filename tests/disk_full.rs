//! A full disk under the real binary: its data directory (embedded store)
//! and log directory on a small tmpfs that a test file then fills. Under
//! load, token requests and validations keep getting 200; a revocation is
//! answered 200 only if it was stored (the token is refused from then on)
//! and 503 with Retry-After otherwise (the token still validates). Once space
//! is freed, the refused revocations succeed, without a restart. Needs root
//! (mount); skipped with a message where tmpfs cannot be mounted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::api;
use common::load::{self, Load};
use common::process::{self, ServerProcess};
use reqwest::StatusCode;

const ID: &str = "svc";
const SECRET: &str = "disk-full-client-secret";

/// A small tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes to `path` until the filesystem is full; returns the file's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 16, 1 << 12, 1] {
        let block = vec![0u8; chunk];
        while file.write_all(&block).is_ok() {}
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_revocations_it_cannot_store_and_recovers() {
    let Some(disk) = Tmpfs::mount("8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    process::create_client(disk.path(), ID, SECRET);
    let mut server = ServerProcess::spawn(disk.path(), &process::UNLIMITED_CLIENTS);
    let base = server.base_url();
    let http = server.http();
    let mut victims = Vec::new();
    for _ in 0..40 {
        victims.push(api::token(&http, &base, ID, SECRET).await);
    }
    let token = api::token(&http, &base, ID, SECRET).await;
    let (tokens, validations) =
        Load::tokens_and_validations(&http, &base, (ID, SECRET), &token, 3_000);

    let filler = fill(disk.path());
    let mut refused = Vec::new();
    for victim in &victims {
        let response = api::revoke(&http, &base, (ID, SECRET), victim)
            .await
            .unwrap();
        match response.status() {
            StatusCode::OK => {
                let status = api::validate(&http, &base, victim).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "answered 200, so revoked");
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
                assert_eq!(api::validate(&http, &base, victim).await, StatusCode::OK);
                refused.push(victim);
            }
            other => panic!("revocation on a full disk answered {other}"),
        }
    }
    eprintln!(
        "on a full disk: {} revocations answered 200, {} answered 503",
        victims.len() - refused.len(),
        refused.len()
    );
    assert!(!refused.is_empty(), "no revocation needed new space");
    tokens.wait_for_more(20).await;
    validations.wait_for_more(20).await;

    std::fs::remove_file(filler).unwrap();
    for victim in refused {
        let response = api::revoke(&http, &base, (ID, SECRET), victim)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "space is back");
        assert_eq!(
            api::validate(&http, &base, victim).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let (tokens, validations) = (tokens.finish().await, validations.finish().await);
    eprintln!("load during the full disk: tokens {tokens:?}, validations {validations:?}");
    assert!(load::all(&tokens, 200), "{tokens:?}");
    assert!(load::all(&validations, 200), "{validations:?}");
    assert!(server.terminate().success());
}
