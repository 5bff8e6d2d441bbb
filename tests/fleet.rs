//! A fleet behind a real load balancer: `scripts/fleet.sh` starts a
//! PostgreSQL primary with a synchronous standby, instances of the binary
//! under test on a multi-host URL, and HAProxy (TCP mode) in front. Under
//! bounded load through HAProxy: tokens validate everywhere, revocations
//! spread within a second, a killed instance or a rolling restart costs
//! what it should, a PostgreSQL failover loses no revocation, and a
//! client's rate limit holds for the fleet as a whole. Run by
//! `scripts/test.sh` (its fleet phase); one fleet at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod behind_haproxy {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use reqwest::StatusCode;
    use tokio::task::JoinHandle;

    use super::common::api;
    use super::common::fleet::Fleet;
    use super::common::metric_at;

    /// No load runs longer than this, whatever happens.
    const RUN_LIMIT: Duration = Duration::from_secs(90);
    const SECRET: &str = "fleet-test-secret-0123456789abcdef";

    /// One fleet at a time: two would only fight over the two cores. (An
    /// async lock: each test has a runtime of its own, and a failed test
    /// leaves nothing poisoned.)
    async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
        static FLEETS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        FLEETS.lock().await
    }

    /// What one kind of worker saw.
    #[derive(Debug, Default)]
    struct Outcomes {
        ok: u64,
        /// When each failure happened and what it was (a status, or the
        /// client's error).
        failures: Vec<(Instant, String)>,
        /// The tokens received, when asked to keep them.
        tokens: Vec<String>,
    }

    impl Outcomes {
        fn merge(&mut self, other: Outcomes) {
            self.ok += other.ok;
            self.failures.extend(other.failures);
            self.tokens.extend(other.tokens);
        }

        fn failures_after(&self, t: Instant) -> usize {
            self.failures.iter().filter(|(at, _)| *at >= t).count()
        }
    }

    /// Token requests through the load balancer in the background: some
    /// workers on kept-alive connections (one each), some opening a new TLS
    /// connection for every request.
    struct Traffic {
        stop: Arc<AtomicBool>,
        keep_alive: Vec<JoinHandle<Outcomes>>,
        new_connections: Vec<JoinHandle<Outcomes>>,
    }

    impl Traffic {
        fn start(
            fleet: &Fleet,
            client: &str,
            (keep_alive, new_connections): (usize, usize),
            keep_tokens: bool,
        ) -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let url = api::endpoint(&fleet.lb_url, "token");
            let spawn = |persistent: bool| {
                let (http, url, stop) = (fleet.http(persistent), url.clone(), stop.clone());
                let client = client.to_owned();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut seen = Outcomes::default();
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < RUN_LIMIT {
                        let sent = http
                            .post(&url)
                            .basic_auth(&client, Some(SECRET))
                            .form(&[("grant_type", "client_credentials")])
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status() == StatusCode::OK => {
                                seen.ok += 1;
                                let body: serde_json::Value = match r.json().await {
                                    Ok(body) => body,
                                    Err(e) => {
                                        seen.failures.push((Instant::now(), e.to_string()));
                                        continue;
                                    }
                                };
                                if keep_tokens {
                                    let token = body["access_token"].as_str().unwrap();
                                    seen.tokens.push(token.to_owned());
                                }
                            }
                            Ok(r) => seen.failures.push((Instant::now(), r.status().to_string())),
                            Err(e) => seen.failures.push((Instant::now(), format!("{e:?}"))),
                        }
                    }
                    seen
                })
            };
            Self {
                keep_alive: (0..keep_alive).map(|_| spawn(true)).collect(),
                new_connections: (0..new_connections).map(|_| spawn(false)).collect(),
                stop,
            }
        }

        /// Stops the workers; what the kept-alive ones and the
        /// new-connection ones saw.
        async fn finish(self) -> (Outcomes, Outcomes) {
            self.stop.store(true, Ordering::Relaxed);
            let mut kept = Outcomes::default();
            for task in self.keep_alive {
                kept.merge(task.await.unwrap());
            }
            let mut new = Outcomes::default();
            for task in self.new_connections {
                new.merge(task.await.unwrap());
            }
            (kept, new)
        }
    }

    fn report(what: &str, outcomes: &Outcomes, took: Duration) {
        eprintln!(
            "{what}: {} ok, {} failed, {:.0} ok/s; failures: {:?}",
            outcomes.ok,
            outcomes.failures.len(),
            outcomes.ok as f64 / took.as_secs_f64(),
            outcomes.failures.iter().map(|(_, f)| f).collect::<Vec<_>>()
        );
    }

    async fn issued_by(fleet: &Fleet, n: usize) -> f64 {
        metric_at(
            &fleet.http(true),
            &fleet.instance_urls[n - 1],
            "auth_tokens_issued_total",
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL and HAProxy: scripts/test.sh"]
    async fn tokens_minted_through_the_balancer_validate_on_every_instance_and_offline() {
        let _one = one_at_a_time().await;
        let fleet = Fleet::up(3);
        fleet.create_client("load", SECRET, &["--rate-limit-rps", "1000000"]);

        let started = Instant::now();
        let traffic = Traffic::start(&fleet, "load", (4, 4), true);
        tokio::time::sleep(Duration::from_secs(8)).await;
        let (kept, new) = traffic.finish().await;
        report("kept-alive", &kept, started.elapsed());
        report("new connection each", &new, started.elapsed());
        assert!(kept.failures.is_empty() && new.failures.is_empty());
        assert!(kept.ok > 100 && new.ok > 20, "too little load ran");
        for n in 1..=3 {
            let issued = issued_by(&fleet, n).await;
            eprintln!("instance {n} issued {issued}");
            assert!(issued > 0.0, "HAProxy sent instance {n} nothing");
        }

        // Offline, as a resource server does: the JWKS fetched through the
        // balancer verifies every token, whichever instance signed it.
        let lb = fleet.http(true);
        let jwks: jsonwebtoken::jwk::JwkSet = api::jwks(&lb, &fleet.lb_url).await;
        let issuer = format!("{}{}", fleet.lb_url, api::BASE_PATH);
        let tokens: Vec<String> = kept.tokens.into_iter().chain(new.tokens).collect();
        for token in &tokens {
            let header = jsonwebtoken::decode_header(token).unwrap();
            let kid = header.kid.as_deref().expect("a kid");
            let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(kid).expect("kid in the JWKS"))
                .unwrap();
            let mut validation = jsonwebtoken::Validation::new(header.alg);
            validation.set_issuer(&[&issuer]);
            validation.set_audience(&["auth-server"]);
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
                .unwrap_or_else(|e| panic!("offline verification failed: {e}"));
        }

        // Online: each instance, asked directly, accepts every token.
        let tokens = Arc::new(tokens);
        let mut checks = Vec::new();
        for worker in 0..6 {
            let (tokens, urls, http) = (
                tokens.clone(),
                fleet.instance_urls.clone(),
                fleet.http(true),
            );
            checks.push(tokio::spawn(async move {
                let mut refused = 0;
                for token in tokens.iter().skip(worker).step_by(6) {
                    for url in &urls {
                        if api::validate(&http, url, token).await != StatusCode::OK {
                            refused += 1;
                        }
                    }
                }
                refused
            }));
        }
        let mut refused = 0;
        for check in checks {
            refused += check.await.unwrap();
        }
        eprintln!(
            "{} tokens verified offline and validated on each of 3 instances: {refused} refused",
            tokens.len()
        );
        assert_eq!(refused, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL and HAProxy: scripts/test.sh"]
    async fn a_revocation_on_one_instance_is_refused_by_every_instance_within_a_second() {
        let _one = one_at_a_time().await;
        let fleet = Fleet::up(3);
        fleet.create_client("revoker", SECRET, &[]);
        let http = fleet.http(true);
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let token = api::token(&http, &fleet.lb_url, "revoker", SECRET).await;
            for url in &fleet.instance_urls {
                assert_eq!(api::validate(&http, url, &token).await, StatusCode::OK);
            }
            let revoked = api::revoke(&http, &fleet.instance_urls[0], ("revoker", SECRET), &token)
                .await
                .unwrap();
            assert_eq!(revoked.status(), StatusCode::OK);
            let started = Instant::now();
            let mut pending: Vec<&String> = fleet.instance_urls.iter().collect();
            while !pending.is_empty() {
                let mut still = Vec::new();
                for url in pending {
                    if api::validate(&http, url, &token).await != StatusCode::UNAUTHORIZED {
                        still.push(url);
                    }
                }
                pending = still;
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "still accepted after 1 s by {pending:?}"
                );
            }
            slowest = slowest.max(started.elapsed());
        }
        eprintln!(
            "revocations refused by all 3 instances within {} ms at worst",
            slowest.as_millis()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL and HAProxy: scripts/test.sh"]
    async fn a_killed_instance_costs_only_its_open_connections_and_comes_back() {
        let _one = one_at_a_time().await;
        let fleet = Fleet::up(3);
        fleet.create_client("load", SECRET, &["--rate-limit-rps", "1000000"]);
        let started = Instant::now();
        let traffic = Traffic::start(&fleet, "load", (4, 4), false);
        tokio::time::sleep(Duration::from_secs(2)).await;

        let killed = Instant::now();
        fleet.kill(2);
        let noticed = fleet.wait_lb(2, "DOWN").await;
        let marked_down = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;

        fleet.start(2);
        let back = Instant::now();
        let before = issued_by(&fleet, 2).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = issued_by(&fleet, 2).await;
        let (kept, new) = traffic.finish().await;
        report("kept-alive", &kept, started.elapsed());
        report("new connection each", &new, started.elapsed());
        eprintln!(
            "HAProxy marked the killed instance down {} ms after the kill; failures on \
             kept-alive connections: {} ({} after the mark-down), on new connections: {} \
             ({} after the mark-down); the restarted instance issued {} tokens in its first \
             2 s back",
            (marked_down - killed).as_millis(),
            kept.failures.len(),
            kept.failures_after(marked_down),
            new.failures.len(),
            new.failures_after(marked_down),
            after - before,
        );
        eprintln!(
            "(HAProxy's own poll saw it down {} ms after the kill command returned)",
            noticed.as_millis()
        );
        // Requests in flight on the killed instance fail (at most one on
        // each of the 8 workers' connections), and nothing before the kill.
        // Once HAProxy has marked it down, nothing fails: a connect refused
        // meanwhile is retried on another instance.
        assert_eq!(kept.failures.len() - kept.failures_after(killed), 0);
        assert_eq!(new.failures.len() - new.failures_after(killed), 0);
        assert!(kept.failures.len() + new.failures.len() <= 8);
        assert_eq!(kept.failures_after(marked_down), 0, "{:?}", kept.failures);
        assert_eq!(new.failures_after(marked_down), 0, "{:?}", new.failures);
        assert_eq!(kept.failures_after(back) + new.failures_after(back), 0);
        assert!(after > before, "the restarted instance took no traffic");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL and HAProxy: scripts/test.sh"]
    async fn a_rolling_restart_of_every_instance_loses_no_request() {
        let _one = one_at_a_time().await;
        let fleet = Fleet::up(3);
        fleet.create_client("load", SECRET, &["--rate-limit-rps", "1000000"]);
        let started = Instant::now();
        let traffic = Traffic::start(&fleet, "load", (4, 4), false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        for n in 1..=3 {
            let step = Instant::now();
            fleet.restart(n);
            eprintln!(
                "instance {n} restarted and back in HAProxy after {:.1} s",
                step.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (kept, new) = traffic.finish().await;
        report("kept-alive", &kept, started.elapsed());
        report("new connection each", &new, started.elapsed());
        assert!(kept.ok > 100 && new.ok > 20, "too little load ran");
        assert!(kept.failures.is_empty(), "{:?}", kept.failures);
        assert!(new.failures.is_empty(), "{:?}", new.failures);
    }

    /// One revocation attempt: when it was answered, with what, and the
    /// `Retry-After` of a 503.
    struct Attempt {
        at: Instant,
        status: u16,
        retry_after: Option<String>,
        token: String,
    }

    /// Mints a token and revokes it through the balancer, over and over,
    /// retrying a 503 as RFC 7009 clients do, until told to stop.
    fn revocations(
        fleet: &Fleet,
        stop: Arc<AtomicBool>,
        log: Arc<Mutex<Vec<Attempt>>>,
    ) -> JoinHandle<()> {
        let (http, lb) = (fleet.http(true), fleet.lb_url.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < RUN_LIMIT {
                let token = api::token(&http, &lb, "revoker", SECRET).await;
                loop {
                    let answer = api::revoke(&http, &lb, ("revoker", SECRET), &token).await;
                    let (status, retry_after) = match answer {
                        Ok(r) => (
                            r.status().as_u16(),
                            r.headers()
                                .get("retry-after")
                                .map(|v| v.to_str().unwrap_or("?").to_owned()),
                        ),
                        Err(_) => (0, None),
                    };
                    log.lock().unwrap().push(Attempt {
                        at: Instant::now(),
                        status,
                        retry_after,
                        token: token.clone(),
                    });
                    if status != 503 || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    }

    /// `/health/ready` bodies of each instance, polled every 50 ms: when
    /// each first said "ready" again after `since`.
    async fn ready_again(fleet: &Fleet, since: Instant) -> Vec<Duration> {
        let http = fleet.http(true);
        let mut back = Vec::new();
        for url in &fleet.instance_urls {
            loop {
                let body = api::get_text(&http, &format!("{url}/health/ready")).await;
                if body.contains("\"ready\"") {
                    back.push(since.elapsed());
                    break;
                }
                assert!(since.elapsed() < Duration::from_secs(30), "{url}: {body}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        back
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL and HAProxy: scripts/test.sh"]
    async fn a_postgres_failover_loses_no_revocation_and_no_token_request() {
        let _one = one_at_a_time().await;
        let fleet = Fleet::up(3);
        fleet.create_client("load", SECRET, &["--rate-limit-rps", "1000000"]);
        fleet.create_client("revoker", SECRET, &["--rate-limit-rps", "1000000"]);
        // Both clients in every instance's cache, as in a fleet that has
        // been serving for a while.
        let http = fleet.http(true);
        for url in &fleet.instance_urls {
            api::token(&http, url, "load", SECRET).await;
            api::token(&http, url, "revoker", SECRET).await;
        }

        let started = Instant::now();
        let traffic = Traffic::start(&fleet, "load", (2, 2), false);
        let (stop, log) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let revoker = revocations(&fleet, stop.clone(), Arc::clone(&log));
        tokio::time::sleep(Duration::from_secs(2)).await;

        // The primary dies; a failover manager takes 3 s to promote.
        let killed = Instant::now();
        fleet.sh(&["failover", "3"]);
        let promoted = Instant::now();
        let reconnected = ready_again(&fleet, promoted).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        revoker.await.unwrap();
        let (kept, new) = traffic.finish().await;
        report("tokens, kept-alive", &kept, started.elapsed());
        report("tokens, new connection each", &new, started.elapsed());
        assert!(kept.failures.is_empty(), "{:?}", kept.failures);
        assert!(new.failures.is_empty(), "{:?}", new.failures);

        let attempts = std::mem::take(&mut *log.lock().unwrap());
        let mut statuses = BTreeMap::<u16, usize>::new();
        for a in &attempts {
            *statuses.entry(a.status).or_default() += 1;
        }
        let unavailable: Vec<&Attempt> = attempts.iter().filter(|a| a.status == 503).collect();
        let first_503 = unavailable.first().map(|a| a.at.duration_since(killed));
        let last_503 = unavailable.last().map(|a| a.at.duration_since(killed));
        let first_200_after = attempts
            .iter()
            .find(|a| a.status == 200 && a.at > promoted)
            .map(|a| a.at.duration_since(promoted));
        eprintln!(
            "revocations by status: {statuses:?}; 503 from {first_503:?} to {last_503:?} after \
             the kill; promotion {} ms after the kill; first 200 {first_200_after:?} after \
             the promotion; instances ready again {reconnected:?} after the promotion",
            promoted.duration_since(killed).as_millis()
        );
        assert!(
            statuses.keys().all(|s| *s == 200 || *s == 503),
            "{statuses:?}"
        );
        assert!(!unavailable.is_empty(), "no revocation met the gap");
        assert!(unavailable.iter().all(|a| a.retry_after.is_some()));
        assert!(
            first_200_after.is_some(),
            "no revocation succeeded after the promotion"
        );

        // Every revocation answered 200 is on the new primary...
        let revoked: HashSet<&str> = attempts
            .iter()
            .filter(|a| a.status == 200)
            .map(|a| a.token.as_str())
            .collect();
        let stored = super::common::pg::stored_jtis(&fleet.database_url).await;
        let lost: Vec<&&str> = revoked
            .iter()
            .filter(|t| {
                let jti = super::common::unverified_claims(t)["jti"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                !stored.contains(&jti)
            })
            .collect();
        // ...and refused by every instance.
        let mut accepted = 0;
        for token in &revoked {
            for url in &fleet.instance_urls {
                if api::validate(&http, url, token).await != StatusCode::UNAUTHORIZED {
                    accepted += 1;
                }
            }
        }
        eprintln!(
            "{} revocations answered 200: {} missing from the new primary, {accepted} \
             validations still accepted",
            revoked.len(),
            lost.len()
        );
        assert!(lost.is_empty());
        assert_eq!(accepted, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL and HAProxy: scripts/test.sh"]
    async fn a_client_rate_limit_holds_for_the_whole_fleet() {
        let _one = one_at_a_time().await;
        let fleet = Fleet::up(3);
        fleet.create_client("limited", SECRET, &["--rate-limit-rps", "300"]);
        // Instance 1 was alone when it joined; it counts the others at its
        // next heartbeat.
        let http = fleet.http(true);
        let counting = Instant::now();
        for url in &fleet.instance_urls {
            while metric_at(&http, url, "auth_fleet_instances").await != 3.0 {
                assert!(
                    counting.elapsed() < Duration::from_secs(10),
                    "{url} never counted 3"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        // 12 kept-alive connections, 4 on each instance (round robin), each
        // asking far more often than its instance's share allows.
        let stop = Arc::new(AtomicBool::new(false));
        let url = api::endpoint(&fleet.lb_url, "token");
        let workers: Vec<JoinHandle<(Vec<Instant>, u64)>> = (0..12)
            .map(|_| {
                let (http, url, stop) = (fleet.http(true), url.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut granted, mut refused) = (Vec::new(), 0);
                    let started = Instant::now();
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < RUN_LIMIT {
                        let status = http
                            .post(&url)
                            .basic_auth("limited", Some(SECRET))
                            .form(&[("grant_type", "client_credentials")])
                            .send()
                            .await
                            .map(|r| r.status());
                        match status {
                            Ok(StatusCode::OK) => granted.push(Instant::now()),
                            Ok(StatusCode::TOO_MANY_REQUESTS) => refused += 1,
                            other => panic!("unexpected answer: {other:?}"),
                        }
                    }
                    (granted, refused)
                })
            })
            .collect();
        // The first seconds spend each instance's burst; the rate is
        // measured after.
        let start = Instant::now();
        let window = (
            start + Duration::from_secs(3),
            start + Duration::from_secs(11),
        );
        tokio::time::sleep_until((window.1 + Duration::from_millis(100)).into()).await;
        stop.store(true, Ordering::Relaxed);
        let (mut granted, mut refused) = (0, 0);
        for worker in workers {
            let (times, no) = worker.await.unwrap();
            granted += times
                .iter()
                .filter(|t| **t >= window.0 && **t < window.1)
                .count();
            refused += no;
        }
        let rate = granted as f64 / (window.1 - window.0).as_secs_f64();
        eprintln!(
            "a client limited to 300 rps got {rate:.0} rps from 3 instances \
             ({granted} in 8 s; {refused} refused with 429 over the whole run)"
        );
        assert!(refused > 0, "the load never reached the limit");
        assert!((240.0..=360.0).contains(&rate), "{rate:.0} rps");
    }
}
