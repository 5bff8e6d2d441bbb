//! Token requests under load that oha cannot send: each DPoP request
//! carries a new proof (a new `jti`, signed with Ed25519 by this process),
//! since the server refuses a proof it has seen. For a like-for-like
//! comparison it also sends plain `client_secret_basic` requests the same
//! way. `scripts/load.sh` runs it beside oha.
//!
//! ```text
//! dpop_load --url https://127.0.0.1:8443/auth-server/v1 --cacert cert.pem \
//!     --client-id ID --mode dpop|basic [--duration 10] [--connections 64]
//! ```
//! The client secret comes from `CLIENT_SECRET`, never the command line.
//! Prints one JSON document in the shape of oha's (`summary.requestsPerSec`,
//! `latencyPercentiles`, `statusCodeDistribution`, `errorDistribution`), so
//! the script reads both alike. HTTP/1.1 with keep-alive, as oha.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../tests/common/dpop.rs"]
#[allow(dead_code)]
mod dpop;

/// Command line, parsed by hand.
struct Args {
    url: String,
    cacert: String,
    client_id: String,
    dpop: bool,
    duration: Duration,
    connections: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut cacert, mut client_id, mut mode) = (None, None, None, None);
    let (mut duration, mut connections) = (10, 64);
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
            "--mode" => mode = Some(value.clone()),
            "--duration" => duration = number()?.clamp(1, 600),
            "--connections" => connections = number()?.clamp(1, 1024),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        url: url.ok_or("--url is required")?,
        cacert: cacert.ok_or("--cacert is required")?,
        client_id: client_id.ok_or("--client-id is required")?,
        dpop: match mode.as_deref() {
            Some("dpop") => true,
            Some("basic") => false,
            _ => return Err("--mode is dpop or basic".into()),
        },
        duration: Duration::from_secs(duration),
        connections: usize::try_from(connections).unwrap_or(64),
    })
}

/// What the workers saw: latencies in microseconds, answers by status,
/// failures without one.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("dpop_load: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let Ok(secret) = std::env::var("CLIENT_SECRET") else {
        eprintln!("dpop_load: set CLIENT_SECRET");
        return std::process::ExitCode::from(64);
    };
    let secret = Arc::new(secret);
    let cert = std::fs::read(&args.cacert).expect("the CA certificate is readable");
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert).expect("a PEM certificate")])
        .http1_only()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTPS client");
    let token_url = format!("{}/oauth/token", args.url);
    let key = Arc::new(dpop::DpopKey::generate("EdDSA"));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (http, args, secret, key, tally, token_url) = (
            http.clone(),
            Arc::clone(&args),
            Arc::clone(&secret),
            Arc::clone(&key),
            Arc::clone(&tally),
            token_url.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut local = Tally::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let mut request = http
                    .post(&token_url)
                    .basic_auth(&args.client_id, Some(secret.as_str()))
                    .form(&[("grant_type", "client_credentials")]);
                if args.dpop {
                    request = request.header("DPoP", key.proof("POST", &token_url, None));
                }
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        *local.statuses.entry(status).or_default() += 1;
                        local
                            .latencies_us
                            .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                    }
                    Err(_) => local.errors += 1,
                }
            }
            let mut shared = tally.lock().unwrap();
            shared.latencies_us.extend(local.latencies_us);
            for (status, n) in local.statuses {
                *shared.statuses.entry(status).or_default() += n;
            }
            shared.errors += local.errors;
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut tally = tally.lock().unwrap();
    tally.latencies_us.sort_unstable();
    let percentile = |p: f64| {
        let n = tally.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
        tally.latencies_us[i] as f64 / 1e6
    };
    let answered: u64 = tally.statuses.values().sum();
    let report = serde_json::json!({
        "summary": {"requestsPerSec": answered as f64 / elapsed},
        "latencyPercentiles": {"p50": percentile(0.50), "p99": percentile(0.99)},
        "statusCodeDistribution": tally.statuses.iter().map(|(s, n)| (s.to_string(), n)).collect::<BTreeMap<_, _>>(),
        "errorDistribution": if tally.errors > 0 { serde_json::json!({"request failed": tally.errors}) } else { serde_json::json!({}) },
    });
    println!("{report}");
    std::process::ExitCode::SUCCESS
}
