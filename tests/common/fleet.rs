//! A whole fleet made by `scripts/fleet.sh` (PostgreSQL primary and
//! synchronous standby, instances of the binary under test, HAProxy in
//! front), taken down again when dropped, failing test or not.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fleet.sh");

/// A running fleet; `scripts/fleet.sh down` runs when it is dropped.
pub struct Fleet {
    /// Holds the fleet's state file, so fleets of different tests never
    /// meet.
    state_dir: tempfile::TempDir,
    /// The load balancer's base URL.
    pub lb_url: String,
    /// Each instance's own base URL, instance 1 first.
    pub instance_urls: Vec<String>,
    /// Each instance's directory (config.toml, certs/, log/stdout.log).
    pub dirs: Vec<PathBuf>,
    /// The multi-host URL every instance uses.
    pub database_url: String,
    /// The certificate every instance serves (the development one).
    pub ca_pem: Vec<u8>,
    /// HAProxy's statistics page.
    pub stats_url: String,
}

impl Fleet {
    /// Starts a fleet of `instances` instances of the binary under test.
    pub fn up(instances: usize) -> Self {
        let state_dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let env = run(state_dir.path(), &["up", &instances.to_string()]);
        eprintln!(
            "fleet of {instances} up in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let var = |name: &str| -> String {
            let prefix = format!("export {name}='");
            env.lines()
                .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix('\''))
                .unwrap_or_else(|| panic!("{name} missing from:\n{env}"))
                .to_owned()
        };
        let words = |s: String| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let ca = var("FLEET_CA");
        Self {
            lb_url: var("FLEET_LB_URL"),
            instance_urls: words(var("FLEET_INSTANCE_URLS")),
            dirs: words(var("FLEET_DIRS"))
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            database_url: var("FLEET_DATABASE_URL"),
            ca_pem: std::fs::read(ca).unwrap(),
            stats_url: var("FLEET_STATS_URL"),
            state_dir,
        }
    }

    /// Runs `scripts/fleet.sh ARGS` on this fleet; its stdout.
    pub fn sh(&self, args: &[&str]) -> String {
        run(self.state_dir.path(), args)
    }

    /// SIGKILL to instance `n` (1-based).
    pub fn kill(&self, n: usize) {
        self.sh(&["kill", &n.to_string()]);
    }

    /// Starts instance `n` again; returns once HAProxy has it up.
    pub fn start(&self, n: usize) {
        self.sh(&["start", &n.to_string()]);
    }

    /// SIGTERM to instance `n`, then the binary again; returns once HAProxy
    /// has it up.
    pub fn restart(&self, n: usize) {
        self.sh(&["restart", &n.to_string()]);
    }

    /// An HTTPS client trusting the fleet's certificate, speaking HTTP/1.1:
    /// kept-alive connections, or a new connection (and TLS handshake) for
    /// every request.
    pub fn http(&self, keep_alive: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca_pem).unwrap()])
            .http1_only()
            .timeout(Duration::from_secs(10));
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        builder.build().unwrap()
    }

    /// Registers client `id` with `secret` and the scope `read` through
    /// instance 1's configuration (the shared database), with further
    /// `client create` options.
    pub fn create_client(&self, id: &str, secret: &str, options: &[&str]) {
        process::create_client_with(&self.dirs[0], id, secret, options);
    }

    /// HAProxy's status of each instance, in order ("UP", "DOWN", ...).
    pub async fn lb_view(&self) -> Vec<String> {
        let csv = reqwest::get(format!("{};csv", self.stats_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        csv.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                let is_instance = fields.first() == Some(&"instances")
                    && fields.get(1).is_some_and(|name| name.starts_with('i'));
                is_instance.then(|| fields.get(17).copied().unwrap_or("").to_owned())
            })
            .collect()
    }

    /// Waits (at most 20 s) until HAProxy reports instance `n` as `status`.
    pub async fn wait_lb(&self, n: usize, status: &str) -> Duration {
        let started = Instant::now();
        loop {
            if self.lb_view().await.get(n - 1).map(String::as_str) == Some(status) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "HAProxy never reported instance {n} {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .arg("down")
            .env("FLEET_STATE", self.state_dir.path().join("fleet.env"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status();
    }
}

/// Runs the script with the fleet state in `state_dir` and the binary under
/// test; its stdout (asserting success). Inside a multi-threaded runtime the
/// other tasks (the load) move to another worker meanwhile.
fn run(state_dir: &Path, args: &[&str]) -> String {
    tokio::task::block_in_place(|| run_blocking(state_dir, args))
}

fn run_blocking(state_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(SCRIPT)
        .args(args)
        .env("FLEET_STATE", state_dir.join("fleet.env"))
        .env("FLEET_BIN", process::bin())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "fleet.sh {args:?} failed:\n{stdout}");
    stdout
}
