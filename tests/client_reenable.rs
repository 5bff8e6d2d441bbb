//! `client enable` does not bring back tokens issued while the client was
//! disabled, on the real binary (embedded store). An instance learns of a
//! `client disable` from its change feed, so for up to a poll interval (1 s)
//! it keeps issuing tokens stamped after the disable. The test asks for
//! tokens under concurrent load from before the disable until 1.5 s after it
//! returned (by then the instance refuses the client, and it issues nothing
//! more until it sees the enable), enables the client again, and checks that
//! every token obtained from the start of the disable is refused, while a
//! token issued after the enable validates. Only tokens issued in a later
//! second than the disable's `tokens_valid_after` can come back, so the
//! disable is timed for the lag to cross a second, and the round repeated
//! until it has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth_server::clock;
use common::load::{REQUEST_LIMIT, RUN_LIMIT};
use common::process::{self, ServerProcess, UNLIMITED_CLIENTS, text};
use common::{api, unverified_claims};
use reqwest::StatusCode;
use tokio::task::JoinHandle;

const ID: &str = "svc";
const SECRET: &str = "client-reenable-secret";
/// Concurrent token requesters, and the most requests each sends per round.
const WORKERS: usize = 4;
const MAX_EACH: u64 = 2_000;
/// How long the load goes on after `client disable` returns: past the change
/// feed's poll interval (1 s), so the instance has seen the disable.
const AFTER_DISABLE: Duration = Duration::from_millis(1_500);
/// Where in a wall-clock second the first disable reads the clock. A token
/// outlives the old bug only if the instance issues it in a later second than
/// the disable's `tokens_valid_after`, that is when the feed poll that brings
/// the disable falls in the next second: the disable goes late in a second.
const FIRST_DISABLE_AT: Duration = Duration::from_millis(750);
/// After a round, the next disable reads the clock this long after the
/// instance's poll (seen as its first refusal), so that poll just misses it.
const AFTER_POLL: Duration = Duration::from_millis(100);
/// Rounds of disable and enable tried until one has the instance issue tokens
/// in the second after the disable.
const MAX_ROUNDS: usize = 4;

/// Environment: no per-client limit, and no blocking of the loopback address
/// for the `invalid_client` answers the load gets while the client is
/// disabled (the tokens asked for after the enable must not meet a 429).
const ENV: [(&str, &str); 4] = [
    UNLIMITED_CLIENTS[0],
    UNLIMITED_CLIENTS[1],
    (
        "AUTH_SERVER_LIMITS_FAILED_AUTH_PER_IP_PER_MINUTE",
        "1000000",
    ),
    ("AUTH_SERVER_LIMITS_FAILED_AUTH_BURST", "1000000"),
];

/// One answer of the token endpoint.
struct Answer {
    /// When the answer arrived.
    received: Instant,
    /// The same moment on the wall clock, since the Unix epoch.
    received_wall: Duration,
    /// HTTP status; 0 when no answer came.
    status: u16,
    /// The access token of a 200.
    token: Option<String>,
}

/// Token requests by `WORKERS` tasks, bounded in count and time, that keep
/// every answer.
struct Harvest {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Vec<Answer>>>,
}

impl Harvest {
    fn start(http: &reqwest::Client, base: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let tasks = (0..WORKERS)
            .map(|_| {
                let (stop, answered) = (stop.clone(), answered.clone());
                let (http, base) = (http.clone(), base.to_owned());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for _ in 0..MAX_EACH {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > RUN_LIMIT {
                            break;
                        }
                        let request = api::token_post(&http, &base, ID, SECRET, &[]).send();
                        answers.push(match tokio::time::timeout(REQUEST_LIMIT, request).await {
                            Ok(Ok(response)) => {
                                let status = response.status().as_u16();
                                let token = if status == 200 {
                                    let body: serde_json::Value = response.json().await.unwrap();
                                    Some(body["access_token"].as_str().unwrap().to_owned())
                                } else {
                                    None
                                };
                                Answer {
                                    received: Instant::now(),
                                    received_wall: clock::since_unix_epoch(),
                                    status,
                                    token,
                                }
                            }
                            _ => Answer {
                                received: Instant::now(),
                                received_wall: clock::since_unix_epoch(),
                                status: 0,
                                token: None,
                            },
                        });
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    answers
                })
            })
            .collect();
        Self {
            stop,
            answered,
            tasks,
        }
    }

    /// Waits (at most 30 s) until `more` further answers have arrived.
    async fn wait_for_more(&self, more: u64) {
        let target = self.answered.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.answered.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "token load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.unwrap());
        }
        all
    }
}

/// Runs a `client` subcommand against the store; returns the client as
/// printed and how long the command took.
async fn client_command(
    dir: &std::path::Path,
    command: &'static str,
) -> (serde_json::Value, Duration) {
    let dir = dir.to_owned();
    let started = Instant::now();
    let out =
        tokio::task::spawn_blocking(move || process::run(&dir, &["client", command, ID], None))
            .await
            .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "client {command}: {}",
        text(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client {command} printed no JSON ({e}): {}",
            text(&out.stdout)
        )
    });
    (shown, took)
}

/// How far into its second the wall-clock time `at` (since the Unix epoch) is.
fn subsecond(at: Duration) -> Duration {
    Duration::from_nanos(u64::from(at.subsec_nanos()))
}

/// Sleeps until the wall clock is `at` into a second.
async fn until_subsecond(at: Duration) {
    let into = subsecond(clock::since_unix_epoch());
    let wait = if at >= into {
        at - into
    } else {
        Duration::from_secs(1) - (into - at)
    };
    tokio::time::sleep(wait).await;
}

/// Asks for a fresh token until one validates: the instance must first see
/// the enable, and a token issued in the same second as the enable is
/// refused (its `iat` equals `tokens_valid_after`). Returns the attempts.
async fn fresh_token_validates(http: &reqwest::Client, base: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let response = api::token_request(http, base, ID, SECRET).await;
        if response.status() == StatusCode::OK {
            let body: serde_json::Value = response.json().await.unwrap();
            let token = body["access_token"].as_str().unwrap();
            if api::validate(http, base, token).await == StatusCode::OK {
                return attempts;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no token issued after the enable validated within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one round of load, disable and enable saw.
struct Round {
    /// Tokens obtained from the start of the disable on.
    window: usize,
    /// Of those, the ones stamped after the disable's `tokens_valid_after`:
    /// the ones that validate again if the enable leaves it alone.
    stamped_later: usize,
    /// Tokens of the window, or from before the disable, that validate.
    revived: usize,
    /// Where in its second the instance's first refusal came, just after
    /// the feed poll that brought the disable.
    first_refusal: Duration,
}

/// Runs load, then `client disable` reading the clock at `disable_at` into a
/// second, keeps the load going while the disable propagates, enables the
/// client, waits for a fresh token to validate and validates every token
/// obtained since the disable started, and `earlier` too.
async fn round(
    server: &ServerProcess,
    base: &str,
    disable_at: Duration,
    earlier: &[&str],
) -> Round {
    let http = server.http();
    let load = Harvest::start(&http, base);
    load.wait_for_more(20).await;
    // A CLI command's run time bounds when it reads the clock.
    let (_, cli_time) = client_command(&server.dir, "show").await;
    until_subsecond(disable_at.saturating_sub(cli_time)).await;
    let disable_started = Instant::now();
    let (disabled, _) = client_command(&server.dir, "disable").await;
    let disable_returned = Instant::now();
    tokio::time::sleep(AFTER_DISABLE).await;
    let answers = load.finish().await;
    let (enabled, _) = client_command(&server.dir, "enable").await;
    assert_eq!(enabled["enabled"], true);
    let attempts = fresh_token_validates(&http, base).await;

    let since_disable = || answers.iter().filter(|a| a.received >= disable_started);
    let window: Vec<&str> = since_disable().filter_map(|a| a.token.as_deref()).collect();
    let during_lag = since_disable()
        .filter(|a| a.received >= disable_returned && a.status == 200)
        .count();
    let first_refusal = since_disable()
        .filter(|a| a.status == 401)
        .min_by_key(|a| a.received)
        .expect("the instance never refused a token after the disable");
    let disabled_after = disabled["tokens_valid_after"].as_i64().unwrap();
    let stamped_later = window
        .iter()
        .filter(|t| unverified_claims(t)["iat"].as_i64().unwrap() > disabled_after)
        .count();
    let mut revived = 0;
    for token in window.iter().chain(earlier) {
        if api::validate(&http, base, token).await != StatusCode::UNAUTHORIZED {
            revived += 1;
        }
    }
    eprintln!(
        "{} answers; {} tokens from the disable on, {during_lag} of them after it returned, \
         {stamped_later} stamped after its tokens_valid_after; {attempts} attempts for a \
         token that validates after the enable",
        answers.len(),
        window.len(),
    );
    Round {
        window: window.len(),
        stamped_later,
        revived,
        first_refusal: subsecond(first_refusal.received_wall),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_does_not_revive_tokens_issued_while_the_disable_propagated() {
    let dir = tempfile::tempdir().unwrap();
    process::create_client(dir.path(), ID, SECRET);
    let mut server = ServerProcess::spawn(dir.path(), &ENV);
    let mut base = server.base_url();
    let before_disable = api::token(&server.http(), &base, ID, SECRET).await;
    let mut earlier = vec![before_disable.as_str()];

    let mut disable_at = FIRST_DISABLE_AT;
    for number in 1..=MAX_ROUNDS {
        eprint!("round {number}, disable at {} ms: ", disable_at.as_millis());
        let round = round(&server, &base, disable_at, &earlier).await;
        earlier.clear();
        assert_eq!(
            round.revived, 0,
            "{} of {} tokens obtained from the disable to the enable validate again",
            round.revived, round.window
        );
        if round.stamped_later > 0 {
            assert!(server.terminate().success());
            return;
        }
        // Either the poll that brought the disable came in the disable's own
        // second, or so early in the next one that no token was issued in
        // between. Read the clock just after the poll next time, so the poll
        // misses the change and the next one falls in the following second;
        // if the poll comes too late in its second for that, or too early to
        // leave time for tokens, start a new instance, whose polls fall
        // elsewhere.
        let poll = round
            .first_refusal
            .saturating_sub(Duration::from_millis(10));
        disable_at = poll + AFTER_POLL;
        if poll < Duration::from_millis(100) || disable_at > Duration::from_millis(950) {
            assert!(server.terminate().success());
            server = ServerProcess::spawn(dir.path(), &ENV);
            base = server.base_url();
            disable_at = FIRST_DISABLE_AT;
        }
    }
    panic!(
        "in {MAX_ROUNDS} rounds the instance never issued a token in the second after a disable"
    );
}
