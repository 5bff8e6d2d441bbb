//! A database crash during revocations: tokens are revoked concurrently
//! through `/oauth/revoke` while the cluster is killed (`pg_ctl stop -m
//! immediate`: no checkpoint, recovery from WAL) and started again. Every
//! revocation is answered 200 or 503 within the store timeouts (never 500,
//! never a hang), a 503 retried after the restart succeeds, and every token
//! ever answered 200 is revoked afterwards, as a fresh server on the same
//! database and the table itself show. Alone in its own test binary because
//! it crashes the cluster every other PostgreSQL test uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_server::store::postgres::PostgresStore;
use common::{api, pg, unverified_claims};
use reqwest::StatusCode;

const TOKENS: usize = 600;
const WORKERS: usize = 4;
/// Pool wait + connect + statement timeouts, plus a margin for a busy machine.
const ANSWER_BOUND: Duration = Duration::from_secs(6);

/// One revocation attempt: token index, status (0: none in time), latency.
type Attempt = (usize, u16, Duration);

/// Revokes tokens in order until none is left, retrying a 503 (as RFC 7009
/// clients do) with a short pause; records every attempt.
async fn revoker(
    server: (reqwest::Client, String),
    client: (String, String),
    tokens: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= tokens.len() {
            return;
        }
        while Instant::now() < deadline {
            let started = Instant::now();
            let revoke = api::revoke(&server.0, &server.1, (&client.0, &client.1), &tokens[i]);
            let status = match tokio::time::timeout(ANSWER_BOUND * 2, revoke).await {
                Ok(Ok(response)) => response.status().as_u16(),
                _ => 0,
            };
            attempts
                .lock()
                .unwrap()
                .push((i, status, started.elapsed()));
            if status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Polls until `enough` holds for the attempts so far.
async fn wait_until(
    attempts: &Mutex<Vec<Attempt>>,
    what: &str,
    enough: impl Fn(&[Attempt]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !enough(&attempts.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh"]
async fn revocations_answered_200_survive_a_database_crash() {
    let url = pg::fresh_database().await;
    let server = pg::start_server(&url, common::unlimited_clients).await;
    let admin_store = PostgresStore::open(&pg::settings(&url), None).unwrap();
    let (id, secret) = pg::create_client(&admin_store, "revoker").await;
    let http = server.client();
    let mut tokens = Vec::with_capacity(TOKENS);
    for _ in 0..TOKENS {
        tokens.push(api::token(&http, &server.base_url, &id, &secret).await);
    }
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(revoker(
                (http.clone(), server.base_url.clone()),
                (id.clone(), secret.clone()),
                Arc::clone(&tokens),
                Arc::clone(&next),
                Arc::clone(&attempts),
            ))
        })
        .collect();

    let ok = |a: &[Attempt]| a.iter().filter(|(_, s, _)| *s == 200).count();
    wait_until(&attempts, "revocations before the crash", |a| ok(a) >= 40).await;
    let crash = tokio::task::spawn_blocking(|| pg::Paused::start("crash", "resume"))
        .await
        .unwrap();
    let crashed_at = attempts.lock().unwrap().len();
    let failed = |a: &[Attempt]| a[crashed_at..].iter().filter(|(_, s, _)| *s == 503).count();
    wait_until(&attempts, "revocations during the outage", |a| {
        failed(a) >= 2 * WORKERS
    })
    .await;
    tokio::task::spawn_blocking(move || crash.end())
        .await
        .unwrap();
    for worker in workers {
        worker.await.unwrap();
    }

    let attempts = attempts.lock().unwrap().clone();
    let answered_200: HashSet<usize> = attempts
        .iter()
        .filter(|(_, s, _)| *s == 200)
        .map(|(i, _, _)| *i)
        .collect();
    let count = |status: u16| attempts.iter().filter(|(_, s, _)| *s == status).count();
    let slowest = attempts.iter().map(|(_, _, t)| *t).max().unwrap();
    eprintln!(
        "{} attempts: {} answered 200, {} answered 503; slowest {} ms",
        attempts.len(),
        count(200),
        count(503),
        slowest.as_millis()
    );
    assert!(
        attempts.iter().all(|(_, s, _)| *s == 200 || *s == 503),
        "only 200 or 503: {:?}",
        attempts
            .iter()
            .filter(|(_, s, _)| *s != 200 && *s != 503)
            .collect::<Vec<_>>()
    );
    assert!(slowest < ANSWER_BOUND, "an answer took {slowest:?}");
    assert_eq!(
        answered_200.len(),
        TOKENS,
        "every 503 succeeded when retried"
    );
    server.stop().await;

    // What survived the crash: the table, and a new instance loading it.
    let jtis = pg::stored_jtis(&url).await;
    let fresh = pg::start_server(&url, common::unlimited_clients).await;
    let mut lost = Vec::new();
    for &i in &answered_200 {
        let jti = unverified_claims(&tokens[i])["jti"]
            .as_str()
            .unwrap()
            .to_owned();
        let refused = api::validate(&fresh.client(), &fresh.base_url, &tokens[i]).await
            == StatusCode::UNAUTHORIZED;
        if !jtis.contains(&jti) || !refused {
            lost.push(i);
        }
    }
    assert!(
        lost.is_empty(),
        "revocations answered 200 but lost: {lost:?}"
    );
    let sample = &tokens[*answered_200.iter().next().unwrap()];
    assert!(
        !api::introspect_active(&fresh.client(), &fresh.base_url, (&id, &secret), sample).await
    );
}
