//! Deploy a new binary and roll back under load, with zero failed requests:
//! the real binary, the real `scripts/deploy.sh` and `scripts/rollback.sh`,
//! and concurrent token requests (a new TLS connection each) all along.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::api;
use common::process::BIN;

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env_for(cmd: &mut Command, dir: &Path, port: u16) {
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env_remove("ENVIRONMENT")
        .env_remove("AUTH_SERVER_CONFIG")
        .env("AUTH_SERVER_SERVER_BIND", format!("127.0.0.1:{port}"))
        .env("AUTH_SERVER_DEV_DEMO_CLIENT", "false")
        .env("AUTH_SERVER_SERVER_SHUTDOWN_TIMEOUT_SECS", "10")
        .env("AUTH_SERVER_LIMITS_GLOBAL_RPS", "0")
        .env("DEPLOY_DIR", dir)
        .env(
            "DEPLOY_HEALTH_URL",
            format!("https://127.0.0.1:{port}/health"),
        );
}

fn run_script(dir: &Path, port: u16, script: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(format!("{SCRIPTS}/{script}"));
    env_for(&mut cmd, dir, port);
    let out = cmd.args(args).stderr(Stdio::inherit()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{script} failed:\n{stdout}");
    stdout
}

fn pid_in(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("run/auth-server.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_rollback_under_load_lose_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = free_port();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(BIN, dir.join("bin/auth-server")).unwrap();
    std::fs::copy(BIN, dir.join("auth-server.new")).unwrap();

    let mut create = Command::new(dir.join("bin/auth-server"));
    env_for(&mut create, dir, port);
    let out = create
        .args([
            "client",
            "create",
            "--name",
            "load",
            "--id",
            "load",
            "--rate-limit-rps",
            "100000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let secret = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: ").map(str::to_owned))
        .unwrap();

    // First start: deploy onto an empty directory.
    run_script(
        dir,
        port,
        "deploy.sh",
        &[dir.join("auth-server.new").to_str().unwrap()],
    );
    let first_pid = pid_in(dir);

    let cert = std::fs::read(dir.join("certs/dev-cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert).unwrap()])
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, ok, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, base, secret, stop) =
            (client.clone(), base.clone(), secret.clone(), stop.clone());
        let (sent, ok, failed) = (sent.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                sent.fetch_add(1, Ordering::Relaxed);
                let response = api::token_post(&client, &base, "load", &secret, &[])
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        eprintln!("unexpected status {}", r.status());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let deploy = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || {
            run_script(
                &dir,
                port,
                "deploy.sh",
                &[dir.join("auth-server.new").to_str().unwrap()],
            )
        }
    })
    .await
    .unwrap();
    let second_pid = pid_in(dir);
    assert_ne!(second_pid, first_pid);
    assert!(deploy.contains("deploy done"), "{deploy}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rollback = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || run_script(&dir, port, "rollback.sh", &[])
    })
    .await
    .unwrap();
    assert!(rollback.contains("rollback done"), "{rollback}");
    let third_pid = pid_in(dir);
    assert_ne!(third_pid, second_pid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let (sent, ok, failed) = (
        sent.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("swap under load: sent {sent}, succeeded {ok}, failed {failed}");

    // Stop the last process through its pid file.
    let _ = Command::new("kill")
        .args(["-TERM", &third_pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Command::new("kill")
        .args(["-0", &third_pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "last server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(failed, 0, "requests failed during the swap");
    assert!(ok > 50, "too little load to prove anything: {ok}");
}

#[test]
fn a_binary_that_fails_its_health_check_is_rolled_back_and_the_old_one_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = free_port();
    std::fs::copy(BIN, dir.join("good")).unwrap();
    run_script(
        dir,
        port,
        "deploy.sh",
        &[dir.join("good").to_str().unwrap()],
    );
    let pid = pid_in(dir);

    // A "binary" that starts and exits at once.
    let broken = dir.join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 3\n").unwrap();
    let mut perms = std::fs::metadata(&broken).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&broken, perms).unwrap();
    let mut cmd = Command::new(format!("{SCRIPTS}/deploy.sh"));
    env_for(&mut cmd, dir, port);
    let out = cmd.arg(&broken).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(pid_in(dir), pid, "the old process still owns the pid file");
    assert_eq!(
        std::fs::read(dir.join("bin/auth-server")).unwrap(),
        std::fs::read(BIN).unwrap(),
        "the previous binary is restored"
    );
    let alive = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .status()
        .unwrap();
    assert!(alive.success(), "the old process keeps serving");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}
