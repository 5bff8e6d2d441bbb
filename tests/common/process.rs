//! The real `auth-server` binary as a child process, for tests that need what
//! only a process has: signals (SIGHUP, SIGTERM, SIGKILL), its own logging
//! and its exit codes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary cargo built.
pub const BIN: &str = env!("CARGO_BIN_EXE_auth-server");

/// The binary under test: the one named by `TEST_AUTH_SERVER_BIN` when set
/// and not empty (the same tests measured against another build, such as a
/// previous release), else [`BIN`]. Not an `AUTH_SERVER_` variable: the
/// server would read that as a setting.
pub fn bin() -> PathBuf {
    std::env::var_os("TEST_AUTH_SERVER_BIN")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(BIN), PathBuf::from)
}

/// A command for the binary in `dir`, on a free loopback port, with none of
/// the caller's environment overrides (any `AUTH_SERVER_*` variable would be
/// read as a setting).
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AUTH_SERVER_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("ENVIRONMENT")
        .env("AUTH_SERVER_SERVER_BIND", "127.0.0.1:0");
    // The secrets, in both their forms.
    for secret in auth_server::config::FILE_VARS {
        cmd.env_remove(secret)
            .env_remove(format!("{secret}{}", auth_server::config::FILE_SUFFIX));
    }
    cmd
}

/// Per-client limits far above any test's load (see `unlimited_clients`).
pub const UNLIMITED_CLIENTS: [(&str, &str); 2] = [
    ("AUTH_SERVER_LIMITS_CLIENT_RPS", "100000"),
    ("AUTH_SERVER_LIMITS_CLIENT_BURST", "1000000"),
];

/// Runs a one-shot command to completion, feeding it `stdin`.
pub fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = command(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs a one-shot command to completion with the extra environment `env`
/// (the settings of the servers it works beside).
pub fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Lossy UTF-8 of a command's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Registers client `id` with `secret` (development mode allows imported
/// secrets) and the scope `read`.
pub fn create_client(dir: &Path, id: &str, secret: &str) {
    create_client_with(dir, id, secret, &[]);
}

/// [`create_client`] with further `client create` options, such as
/// `--rate-limit-rps`.
pub fn create_client_with(dir: &Path, id: &str, secret: &str, options: &[&str]) {
    let mut args = vec![
        "client",
        "create",
        "--name",
        id,
        "--id",
        id,
        "--scopes",
        "read",
        "--secret-stdin",
    ];
    args.extend_from_slice(options);
    let out = run(dir, &args, Some(&format!("{secret}\n")));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A server process whose stdout lines arrive on a channel; killed if still
/// running when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub dir: PathBuf,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl ServerProcess {
    /// Starts `auth-server` in `dir` with the extra environment `env`.
    pub fn spawn(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = command(dir)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            dir: dir.to_owned(),
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 30 s) for a stdout line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Every stdout line so far, without waiting for more.
    pub fn lines_so_far(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Waits until the server listens; returns its base URL.
    pub fn base_url(&mut self) -> String {
        let line = self.wait_for("auth-server listening");
        let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        format!("https://{}", log["addr"].as_str().expect("addr field"))
    }

    /// An HTTPS client trusting the development certificate in `certs/`.
    pub fn http(&self) -> reqwest::Client {
        let cert = std::fs::read(self.dir.join("certs/dev-cert.pem")).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&cert).unwrap()])
            .build()
            .unwrap()
    }

    /// Sends `signal` (a name such as "HUP") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGTERM, then waits (at most 20 s) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no flush, no drain.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
