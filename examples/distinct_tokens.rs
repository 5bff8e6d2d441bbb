//! Drives a running server with distinct tokens: each round asks the token
//! endpoint for a new token and validates it once, so every validation is a
//! cache miss that leaves a new entry behind. Samples the server's resident
//! memory as it goes. `scripts/memory.sh` starts the server and runs this.
//!
//! ```text
//! distinct_tokens --url https://127.0.0.1:8443/auth-server/v1 --cacert cert.pem \
//!     --client-id ID --pid PID [--count 1000000] [--concurrency 32]
//! ```
//! The client secret comes from the `CLIENT_SECRET` environment variable, so
//! it never shows in a process list. Prints one JSON document at the end.

#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Command line, parsed by hand: four flags do not need a parser.
struct Args {
    url: String,
    cacert: String,
    client_id: String,
    pid: u32,
    count: u64,
    concurrency: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut cacert, mut client_id, mut pid) = (None, None, None, None);
    let (mut count, mut concurrency) = (1_000_000, 32);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--url" => url = Some(value.clone()),
            "--cacert" => cacert = Some(value.clone()),
            "--client-id" => client_id = Some(value.clone()),
            "--pid" => pid = Some(u32::try_from(number()?).map_err(|_| "--pid: too large")?),
            "--count" => count = number()?,
            "--concurrency" => concurrency = number()?.max(1),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        url: url.ok_or("--url is required")?,
        cacert: cacert.ok_or("--cacert is required")?,
        client_id: client_id.ok_or("--client-id is required")?,
        pid: pid.ok_or("--pid is required")?,
        count,
        concurrency,
    })
}

/// Resident memory of `pid` in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Outcome counters shared by the workers.
#[derive(Default)]
struct Counters {
    validated: AtomicU64,
    token_failures: AtomicU64,
    validate_failures: AtomicU64,
}

/// One round: a new token, then one validation of it.
async fn round(
    http: &reqwest::Client,
    args: &Args,
    secret: &str,
    counters: &Counters,
) -> Result<(), reqwest::Error> {
    let issued = http
        .post(format!("{}/oauth/token", args.url))
        .basic_auth(&args.client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    if !issued.status().is_success() {
        counters.token_failures.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let body: serde_json::Value = issued.json().await?;
    let Some(token) = body["access_token"].as_str() else {
        counters.token_failures.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    let validated = http
        .post(format!("{}/oauth/validate", args.url))
        .bearer_auth(token)
        .send()
        .await?;
    let counter = if validated.status().is_success() {
        &counters.validated
    } else {
        &counters.validate_failures
    };
    // Read to the end: an HTTP/2 stream dropped with data in flight is reset,
    // and h2 closes a connection after too many such resets.
    validated.bytes().await?;
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("distinct_tokens: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let Ok(secret) = std::env::var("CLIENT_SECRET") else {
        eprintln!("distinct_tokens: set CLIENT_SECRET");
        return std::process::ExitCode::from(64);
    };
    let cert = std::fs::read(&args.cacert).expect("the CA certificate is readable");
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert).expect("a PEM certificate")])
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTPS client");

    let rss_start = rss_kib(args.pid);
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let counters = Arc::new(Counters::default());
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (http, args, secret) = (http.clone(), Arc::clone(&args), secret.clone());
        let (next, counters, errors) = (
            Arc::clone(&next),
            Arc::clone(&counters),
            Arc::clone(&errors),
        );
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < args.count {
                if let Err(e) = round(&http, &args, &secret, &counters).await {
                    // The first few say what kind of failure this is.
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("transport error: {e:?}");
                    }
                }
            }
        }));
    }
    let mut rss_max = rss_start.unwrap_or(0);
    let mut samples = Vec::new();
    let step = (args.count / 10).max(1);
    let mut next_sample = step;
    while workers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rss = rss_kib(args.pid).unwrap_or(0);
        rss_max = rss_max.max(rss);
        let done = counters.validated.load(Ordering::Relaxed);
        if done >= next_sample {
            eprintln!("{done} validated, server RSS {} MiB", rss / 1024);
            samples.push(serde_json::json!({"validated": done, "rss_kib": rss}));
            next_sample += step;
        }
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let validated = counters.validated.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "tokens_validated": validated,
        "token_failures": counters.token_failures.load(Ordering::Relaxed),
        "validate_failures": counters.validate_failures.load(Ordering::Relaxed),
        "transport_errors": errors.load(Ordering::Relaxed),
        "seconds": elapsed,
        "rounds_per_sec": validated as f64 / elapsed,
        "rss_kib_start": rss_start,
        "rss_kib_end": rss_kib(args.pid),
        "rss_kib_max": rss_max,
        "samples": samples,
    });
    println!("{report:#}");
    std::process::ExitCode::SUCCESS
}
