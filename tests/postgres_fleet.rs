//! A fleet: two or three real server processes, each in a working directory
//! of its own, on one PostgreSQL database with one key-encryption key. Every
//! token minted anywhere validates everywhere; every instance publishes the
//! same JWKS, byte for byte; a promotion due on all of them at once happens
//! exactly once; an emergency rotation is refused everywhere within a
//! second; and a rotation under load, watched by a resource server that
//! caches the JWKS for its max-age, never fails a verification.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth_server::keyring::kek::KekSource;
use auth_server::keyring::{KeyRing, KeySettings};
use auth_server::keys::sealed::Kek;
use auth_server::store::postgres::PostgresStore;
use common::api;
use common::pg;
use common::process::{self, ServerProcess};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use reqwest::StatusCode;
use tokio::sync::Mutex;

const ISSUER: &str = "https://auth.test/auth-server/v1";

/// One server process with its own directory (certificate, logs) and an
/// HTTPS client that trusts it.
struct Instance {
    process: ServerProcess,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Instance {
    async fn jwks(&self) -> String {
        api::get_text(&self.http, &api::endpoint(&self.base, "jwks")).await
    }
}

/// The shared settings of the fleet, plus `extra`.
fn fleet_env(url: &str, kek: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("DATABASE_URL", url),
        ("AUTH_SERVER_KEK", kek),
        ("AUTH_SERVER_ISSUER", ISSUER),
        ("AUTH_SERVER_LOG_DIR", ""),
        ("AUTH_SERVER_DATABASE_MAX_CONNECTIONS", "8"),
        // Instances starting together on an empty database would each try
        // to create it.
        ("AUTH_SERVER_DEV_DEMO_CLIENT", "false"),
    ]
    .iter()
    .chain(process::UNLIMITED_CLIENTS.iter())
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.sort();
    env
}

/// Starts `n` instances at once (they race to migrate and to make the first
/// key) and waits until each listens.
fn start_fleet(n: usize, env: &[(String, String)]) -> Vec<Instance> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let spawned: Vec<(tempfile::TempDir, ServerProcess)> = (0..n)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let process = ServerProcess::spawn(dir.path(), &env);
            (dir, process)
        })
        .collect();
    tokio::task::block_in_place(|| {
        spawned
            .into_iter()
            .map(|(dir, mut process)| {
                let base = process.base_url();
                let http = process.http();
                Instance {
                    process,
                    base,
                    http,
                    _dir: dir,
                }
            })
            .collect()
    })
}

/// The CLI, run beside the fleet with its settings.
fn cli(env: &[(String, String)], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = process::run_env(dir.path(), args, &env);
    assert!(out.status.success(), "{}", process::text(&out.stderr));
    process::text(&out.stdout)
}

/// Log lines containing `needle`, over every instance, so far.
fn count_lines(fleet: &mut [Instance], needle: &str) -> usize {
    fleet
        .iter_mut()
        .map(|i| {
            i.process
                .lines_so_far()
                .iter()
                .filter(|l| l.contains(needle))
                .count()
        })
        .sum()
}

async fn identical_jwks(fleet: &[Instance]) -> String {
    let first = fleet[0].jwks().await;
    for instance in &fleet[1..] {
        assert_eq!(
            instance.jwks().await,
            first,
            "the JWKS differs between instances"
        );
    }
    first
}

/// Waits (at most `limit`) until every instance's JWKS satisfies `done`.
async fn until_every_jwks(
    fleet: &[Instance],
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> Duration {
    let started = Instant::now();
    for instance in fleet {
        while !done(&instance.jwks().await) {
            assert!(
                started.elapsed() < limit,
                "JWKS never changed: {}",
                instance.jwks().await
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    started.elapsed()
}

async fn client(url: &str) -> (String, String) {
    let store = PostgresStore::open(&pg::settings(url), None).unwrap();
    pg::create_client(&store, "fleet").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn every_token_validates_everywhere_and_every_instance_publishes_the_same_jwks() {
    let url = pg::fresh_database().await;
    let env = fleet_env(&url, &Kek::generate_base64().unwrap(), &[]);
    let mut fleet = start_fleet(3, &env);
    assert_eq!(
        count_lines(&mut fleet, "stored a new current signing key"),
        1,
        "three instances starting at once make one first key"
    );
    let (id, secret) = client(&url).await;
    let jwks = identical_jwks(&fleet).await;

    let mut tokens = Vec::new();
    for minter in &fleet {
        tokens.push(api::token(&minter.http, &minter.base, &id, &secret).await);
    }
    for token in &tokens {
        assert!(jwks.contains(&api::kid(token)));
        for validator in &fleet {
            assert_eq!(
                api::validate(&validator.http, &validator.base, token).await,
                StatusCode::OK
            );
            assert!(
                api::introspect_active(&validator.http, &validator.base, (&id, &secret), token)
                    .await
            );
        }
    }

    // A new key is published by every instance, the same way.
    let out = cli(&env, &["keys", "rotate"]);
    let next = out.split_whitespace().nth(3).unwrap().to_owned();
    let took = until_every_jwks(&fleet, Duration::from_secs(3), |j| j.contains(&next)).await;
    eprintln!(
        "a published key reached all three JWKS within {} ms",
        took.as_millis()
    );
    let rotated = identical_jwks(&fleet).await;
    assert_ne!(rotated, jwks);
    for instance in fleet {
        assert!(instance.process.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn three_instances_due_to_promote_at_once_promote_exactly_once() {
    let url = pg::fresh_database().await;
    let env = fleet_env(
        &url,
        &Kek::generate_base64().unwrap(),
        &[
            ("AUTH_SERVER_HTTP_JWKS_MAX_AGE_SECS", "1"),
            ("AUTH_SERVER_TOKEN_KEY_PUBLISH_AHEAD_SECS", "2"),
            ("AUTH_SERVER_CACHE_CHANGE_POLL_INTERVAL_MS", "200"),
        ],
    );
    let mut fleet = start_fleet(3, &env);
    let (id, secret) = client(&url).await;
    let old = api::kid(&api::token(&fleet[0].http, &fleet[0].base, &id, &secret).await);
    let out = cli(&env, &["keys", "rotate"]);
    let next = out.split_whitespace().nth(3).unwrap().to_owned();

    // Every instance's timer fires at the same second.
    let started = Instant::now();
    let mut switched = Vec::new();
    for instance in &fleet {
        loop {
            let token = api::token(&instance.http, &instance.base, &id, &secret).await;
            if api::kid(&token) == next {
                switched.push(started.elapsed());
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never promoted"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!("instances signed with the new key after {switched:?}");
    tokio::time::sleep(Duration::from_millis(300)).await; // log lines are batched
    assert_eq!(
        count_lines(&mut fleet, "signing key promoted to current"),
        1
    );
    let db = pg::connect(&url).await;
    let states: BTreeMap<String, String> = db
        .query("SELECT kid, state FROM signing_keys", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            (old.clone(), "previous".into()),
            (next.clone(), "current".into())
        ])
    );
    let key_changes: i64 = db
        .query_one("SELECT COUNT(*) FROM changes WHERE kind = 'key'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(key_changes, 3, "first key, publication, one promotion");
    let jwks = identical_jwks(&fleet).await;
    assert!(
        jwks.find(&next).unwrap() < jwks.find(&old).unwrap(),
        "current first"
    );
    for instance in fleet {
        assert!(instance.process.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn a_promotion_reaches_the_other_instances_jwks_within_milliseconds() {
    let url = pg::fresh_database().await;
    let kek = Kek::generate_base64().unwrap();
    // The instances would promote only a minute later: the promotion here
    // is made from outside, at a known moment, and only the feed carries it.
    let env = fleet_env(
        &url,
        &kek,
        &[
            ("AUTH_SERVER_TOKEN_KEY_PUBLISH_AHEAD_SECS", "60"),
            ("AUTH_SERVER_HTTP_JWKS_MAX_AGE_SECS", "30"),
        ],
    );
    let fleet = start_fleet(2, &env);
    let mut settings = KeySettings::from_config(&auth_server::config::Config::default());
    settings.publish_ahead_secs = 60;
    let ring = KeyRing::new(
        Arc::new(PostgresStore::open(&pg::settings(&url), None).unwrap()),
        Kek::from_base64(&kek).unwrap(),
        KekSource::Environment,
        settings,
    );
    let mut delays = Vec::new();
    for _ in 0..5 {
        let next = ring
            .rotate(
                &auth_server::audit::Actor::cli("test"),
                auth_server::clock::unix_now(),
            )
            .await
            .unwrap();
        until_every_jwks(&fleet, Duration::from_secs(3), |j| j.contains(&next.kid)).await;
        let before = identical_jwks(&fleet).await;
        let promoted = ring.advance(next.promote_at.unwrap()).await.unwrap();
        let committed = Instant::now();
        assert!(promoted.iter().any(|r| r.kid == next.kid), "{promoted:?}");
        for instance in &fleet {
            while instance.jwks().await == before {
                assert!(
                    committed.elapsed() < Duration::from_secs(1),
                    "not within the poll interval"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            delays.push(committed.elapsed());
        }
        identical_jwks(&fleet).await;
    }
    delays.sort();
    eprintln!(
        "promotion commit -> other instances' JWKS changed: min {:?}, median {:?}, max {:?} ({} samples)",
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );
    for instance in fleet {
        assert!(instance.process.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn an_emergency_rotation_is_refused_on_every_instance_within_a_second() {
    let url = pg::fresh_database().await;
    let env = fleet_env(&url, &Kek::generate_base64().unwrap(), &[]);
    let fleet = start_fleet(3, &env);
    let (id, secret) = client(&url).await;
    let mut old = Vec::new();
    for minter in &fleet {
        old.push(api::token(&minter.http, &minter.base, &id, &secret).await);
    }
    for token in &old {
        for instance in &fleet {
            // Twice: the second answer comes from the validation cache.
            for _ in 0..2 {
                assert_eq!(
                    api::validate(&instance.http, &instance.base, token).await,
                    StatusCode::OK
                );
            }
        }
    }
    let leaked = api::kid(&old[0]);

    let started = Instant::now();
    let out = cli(&env, &["keys", "rotate", "--now"]);
    let committed = Instant::now();
    let new = out.split_whitespace().nth(1).unwrap().to_owned();
    for instance in &fleet {
        for token in &old {
            while api::validate(&instance.http, &instance.base, token).await
                != StatusCode::UNAUTHORIZED
            {
                assert!(
                    committed.elapsed() < Duration::from_secs(1),
                    "still accepted after 1 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    eprintln!(
        "old tokens refused on all three instances {} ms after the rotation committed ({} ms after the command started)",
        committed.elapsed().as_millis(),
        started.elapsed().as_millis()
    );
    let jwks = identical_jwks(&fleet).await;
    assert!(!jwks.contains(&leaked) && jwks.contains(&new), "{jwks}");
    for instance in &fleet {
        let token = api::token(&instance.http, &instance.base, &id, &secret).await;
        assert_eq!(api::kid(&token), new);
        for validator in &fleet {
            assert_eq!(
                api::validate(&validator.http, &validator.base, &token).await,
                StatusCode::OK
            );
        }
    }
    for instance in fleet {
        assert!(instance.process.terminate().success());
    }
}

/// A resource server as a careful one is built: it keeps the JWKS for the
/// max-age the response allows, fetches it again only once that has passed
/// (never because of an unknown kid), and verifies every token offline.
struct ResourceServer {
    sources: Vec<(reqwest::Client, String)>,
    cached: Mutex<Option<(JwkSet, Instant)>>,
    fetches: AtomicU64,
}

impl ResourceServer {
    async fn jwks(&self) -> JwkSet {
        let mut cached = self.cached.lock().await;
        if let Some((jwks, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return jwks.clone();
        }
        let n = self.fetches.fetch_add(1, Ordering::Relaxed) as usize;
        let (http, base) = &self.sources[n % self.sources.len()];
        let response = http.get(api::endpoint(base, "jwks")).send().await.unwrap();
        let max_age: u64 = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .split("max-age=")
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let jwks: JwkSet = response.json().await.unwrap();
        *cached = Some((jwks.clone(), Instant::now() + Duration::from_secs(max_age)));
        jwks
    }

    /// The kid of a token that verifies, or why it does not.
    async fn verify(&self, token: &str) -> Result<String, String> {
        let kid = decode_header(token)
            .map_err(|e| e.to_string())?
            .kid
            .ok_or("no kid")?;
        let jwks = self.jwks().await;
        let jwk = jwks
            .find(&kid)
            .ok_or_else(|| format!("kid {kid} is not in the cached JWKS"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&["auth-server"]);
        decode::<serde_json::Value>(token, &key, &validation).map_err(|e| e.to_string())?;
        Ok(kid)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn a_rotation_under_load_fails_no_verification_at_a_caching_resource_server() {
    // Scaled down together: the JWKS is cached 2 s, a new key is published
    // 4 s before it signs, tokens live 3 s, and a replaced key stays 1 s
    // beyond that.
    let url = pg::fresh_database().await;
    let env = fleet_env(
        &url,
        &Kek::generate_base64().unwrap(),
        &[
            ("AUTH_SERVER_HTTP_JWKS_MAX_AGE_SECS", "2"),
            ("AUTH_SERVER_TOKEN_KEY_PUBLISH_AHEAD_SECS", "4"),
            ("AUTH_SERVER_TOKEN_LIFETIME_SECS", "3"),
            ("AUTH_SERVER_TOKEN_KEY_RETIRE_LEEWAY_SECS", "1"),
            ("AUTH_SERVER_CACHE_CHANGE_POLL_INTERVAL_MS", "200"),
        ],
    );
    let fleet = start_fleet(2, &env);
    let endpoints: Arc<Vec<(reqwest::Client, String)>> = Arc::new(
        fleet
            .iter()
            .map(|i| (i.http.clone(), i.base.clone()))
            .collect(),
    );
    let (id, secret) = client(&url).await;
    let old = api::kid(&api::token(&fleet[0].http, &fleet[0].base, &id, &secret).await);
    let rs = Arc::new(ResourceServer {
        sources: fleet
            .iter()
            .map(|i| (i.http.clone(), i.base.clone()))
            .collect(),
        cached: Mutex::new(None),
        fetches: AtomicU64::new(0),
    });

    let stop = Arc::new(AtomicBool::new(false));
    const MAX_TOKENS_EACH: usize = 20_000;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (endpoints, rs, stop) = (endpoints.clone(), rs.clone(), stop.clone());
            let (id, secret) = (id.clone(), secret.clone());
            tokio::spawn(async move {
                let mut by_kid: BTreeMap<String, u64> = BTreeMap::new();
                let mut failures = Vec::new();
                for n in 0..MAX_TOKENS_EACH {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (http, base) = &endpoints[(w + n) % endpoints.len()];
                    let token = api::token(http, base, &id, &secret).await;
                    match rs.verify(&token).await {
                        Ok(kid) => *by_kid.entry(kid).or_default() += 1,
                        Err(e) => failures.push(e),
                    }
                    if n % 8 == 0 {
                        let (http, base) = &endpoints[(w + n + 1) % endpoints.len()];
                        let status = api::validate(http, base, &token).await;
                        if status != StatusCode::OK {
                            failures.push(format!("validate at another instance: {status}"));
                        }
                    }
                }
                (by_kid, failures)
            })
        })
        .collect();

    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let out = tokio::task::block_in_place(|| cli(&env, &["keys", "rotate"]));
    let next = out.split_whitespace().nth(3).unwrap().to_owned();
    eprintln!("{:?}: published {next}", started.elapsed());
    let limit = Duration::from_secs(30);
    // Promoted (new tokens carry it), then the old key retired everywhere.
    until_every_jwks(&fleet, limit, |j| {
        j.find(&next)
            .is_some_and(|n| j.find(&old).is_some_and(|o| n < o))
    })
    .await;
    eprintln!("{:?}: promoted", started.elapsed());
    until_every_jwks(&fleet, limit, |j| !j.contains(&old)).await;
    eprintln!("{:?}: {old} retired", started.elapsed());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut by_kid: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for worker in workers {
        let (kids, failed) = worker.await.unwrap();
        for (kid, n) in kids {
            *by_kid.entry(kid).or_default() += n;
        }
        failures.extend(failed);
    }
    let fetches = rs.fetches.load(Ordering::Relaxed);
    eprintln!(
        "{:?}: verified offline by kid {by_kid:?}; JWKS fetched {fetches} times; {} failures",
        started.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(by_kid.get(&old).is_some_and(|n| *n > 0) && by_kid.get(&next).is_some_and(|n| *n > 0));
    assert!(
        fetches >= 4,
        "the resource server refetched only on expiry: {fetches}"
    );
    for instance in fleet {
        assert!(instance.process.terminate().success());
    }
}
