//! Bounded concurrent load for fault tests: a few tasks send requests in a
//! loop, capped in count and in time, and count what each request got, so a
//! test can say what every request saw while a fault was in place.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::task::JoinHandle;

use super::api;

/// Outcomes by HTTP status; [`NO_ANSWER`] and [`HUNG`] for the rest.
pub type Tally = BTreeMap<u16, u64>;

/// The connection failed before any status arrived.
pub const NO_ANSWER: u16 = 0;
/// No answer within [`REQUEST_LIMIT`].
pub const HUNG: u16 = 1;
/// The longest one request may take before it counts as hung.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// No load runs longer than this, whatever the test does.
pub const RUN_LIMIT: Duration = Duration::from_secs(90);

/// Load running in the background until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    completed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Tally>>,
}

impl Load {
    /// `workers` tasks, each sending `request(worker)` up to `max_each` times.
    pub fn start<F, Fut>(workers: usize, max_each: u64, request: F) -> Self
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = reqwest::Result<StatusCode>> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicU64::new(0));
        let request = Arc::new(request);
        let started = Instant::now();
        let tasks = (0..workers)
            .map(|worker| {
                let (stop, completed, request) = (stop.clone(), completed.clone(), request.clone());
                tokio::spawn(async move {
                    let mut tally = Tally::new();
                    for _ in 0..max_each {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > RUN_LIMIT {
                            break;
                        }
                        let outcome =
                            match tokio::time::timeout(REQUEST_LIMIT, request(worker)).await {
                                Ok(Ok(status)) => status.as_u16(),
                                Ok(Err(_)) => NO_ANSWER,
                                Err(_) => HUNG,
                            };
                        *tally.entry(outcome).or_default() += 1;
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                    tally
                })
            })
            .collect();
        Self {
            stop,
            completed,
            tasks,
        }
    }

    /// Token requests by one client, with Basic authentication.
    pub fn tokens(
        workers: usize,
        max_each: u64,
        http: reqwest::Client,
        base_url: String,
        id: &str,
        secret: &str,
    ) -> Self {
        let credentials = Arc::new((id.to_owned(), secret.to_owned()));
        Self::start(workers, max_each, move |_| {
            let (id, secret) = (&credentials.0, &credentials.1);
            let request = api::token_post(&http, &base_url, id, secret, &[]);
            async move { request.send().await.map(|r| r.status()) }
        })
    }

    /// Validations of one bearer token.
    pub fn validations(
        workers: usize,
        max_each: u64,
        http: reqwest::Client,
        base_url: String,
        token: &str,
    ) -> Self {
        let token = token.to_owned();
        Self::start(workers, max_each, move |_| {
            let request = api::validate_post(&http, &base_url, Some(&token), None);
            async move { request.send().await.map(|r| r.status()) }
        })
    }

    /// The usual background for a fault test: two tasks getting tokens as
    /// client `id` and one validating `token`, each up to `max_each` times.
    pub fn tokens_and_validations(
        http: &reqwest::Client,
        base_url: &str,
        (id, secret): (&str, &str),
        token: &str,
        max_each: u64,
    ) -> (Self, Self) {
        let base_url = base_url.to_owned();
        let tokens = Self::tokens(2, max_each, http.clone(), base_url.clone(), id, secret);
        let validations = Self::validations(1, max_each, http.clone(), base_url, token);
        (tokens, validations)
    }

    /// Requests answered (or failed) so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests have completed, so the load is
    /// known to have run through whatever the test is doing now.
    pub async fn wait_for_more(&self, more: u64) {
        let target = self.completed() + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.completed() < target {
            assert!(
                Instant::now() < deadline,
                "load stalled at {} of {target} requests",
                self.completed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the load and returns the merged outcomes.
    pub async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.join().await
    }

    /// Lets every task send all its requests; returns the merged outcomes.
    pub async fn join(self) -> Tally {
        let mut total = Tally::new();
        for task in self.tasks {
            for (status, n) in task.await.expect("a load task panicked") {
                *total.entry(status).or_default() += n;
            }
        }
        total
    }
}

/// True when every request in `tally` got `status`, and there was at least one.
pub fn all(tally: &Tally, status: u16) -> bool {
    !tally.is_empty() && tally.keys().all(|&s| s == status)
}
