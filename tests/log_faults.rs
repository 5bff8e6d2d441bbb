//! The log file failing, on the real binary. Every write failing with ENOSPC
//! (the log file is /dev/full) under load: every request is still answered
//! correctly and the process still stops cleanly. The live log file deleted
//! under load (an operator freeing a full disk): logging to the file resumes
//! in a new file. A log directory that cannot be created or opened at start:
//! one clear line on stderr and exit code 78, like any bad configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::api;
use common::load::{self, Load};
use common::process::{self, ServerProcess, UNLIMITED_CLIENTS, command, text};

const ID: &str = "svc";
const SECRET: &str = "log-faults-client-secret";

/// Token requests and validations in the background, `max_each` per task.
async fn mixed_load(server: &ServerProcess, base: &str, max_each: u64) -> (Load, Load) {
    let http = server.http();
    let token = api::token(&http, base, ID, SECRET).await;
    Load::tokens_and_validations(&http, base, (ID, SECRET), &token, max_each)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_that_fails_every_write_does_not_disturb_serving() {
    let dir = tempfile::tempdir().unwrap();
    process::create_client(dir.path(), ID, SECRET);
    std::fs::create_dir(dir.path().join("log")).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("log/auth-server.log")).unwrap();
    let mut server = ServerProcess::spawn(dir.path(), &UNLIMITED_CLIENTS);
    let base = server.base_url();

    let started = Instant::now();
    let (tokens, validations) = mixed_load(&server, &base, 150).await;
    let (tokens, validations) = (tokens.join().await, validations.join().await);
    eprintln!(
        "with every log write failing: tokens {tokens:?}, validations {validations:?} in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(tokens.get(&200), Some(&300), "{tokens:?}");
    assert_eq!(validations.get(&200), Some(&150), "{validations:?}");

    let stopping = Instant::now();
    assert!(server.terminate().success());
    assert!(stopping.elapsed() < Duration::from_secs(10), "slow exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_log_file_is_created_again_and_logging_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    process::create_client(dir.path(), ID, SECRET);
    let mut env = UNLIMITED_CLIENTS.to_vec();
    env.push(("AUTH_SERVER_LOG_MAX_FILE_BYTES", "4096"));
    env.push(("AUTH_SERVER_LOG_MAX_FILES", "2"));
    let mut server = ServerProcess::spawn(dir.path(), &env);
    let base = server.base_url();
    let live = dir.path().join("log/auth-server.log");
    assert!(live.exists());
    std::fs::remove_file(&live).unwrap();

    let (tokens, validations) = mixed_load(&server, &base, 2_000).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !logged_a_request(&live) {
        assert!(Instant::now() < deadline, "file logging never resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (tokens, validations) = (tokens.finish().await, validations.finish().await);
    assert!(load::all(&tokens, 200), "{tokens:?}");
    assert!(load::all(&validations, 200), "{validations:?}");
    assert!(server.terminate().success());
}

fn logged_a_request(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|log| log.contains("\"route\":\"token\""))
}

#[test]
fn an_unusable_log_directory_at_start_exits_78() {
    // `log` is a file, so the directory cannot be created.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("log"), "").unwrap();
    assert_exits_78(dir.path());
    // The log file's name is taken by a directory, so it cannot be opened.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("log/auth-server.log")).unwrap();
    assert_exits_78(dir.path());
}

fn assert_exits_78(dir: &Path) {
    let out = command(dir).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot open the log file in log"),
        "{stderr}"
    );
    assert!(
        !dir.join("certs").exists(),
        "nothing else was set up before the refusal"
    );
}
