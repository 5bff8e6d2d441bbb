//! Admin API latency on a running server: one caller, one keep-alive
//! connection, requests one after another. First `--count` creates (`POST
//! {base}/admin/clients`, each a committed store write with its audit
//! record), then as many reads (`GET {base}/admin/clients/{id}`).
//! `scripts/admin_load.sh` starts the server and runs this.
//!
//! ```text
//! admin_latency --url https://127.0.0.1:8443/auth-server/v1 --cacert cert.pem \
//!     --client-id ID [--count 10000]
//! ```
//! The admin client's secret comes from the `CLIENT_SECRET` environment
//! variable. Prints one JSON document: p50, p99 and max per route.

#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

struct Args {
    url: String,
    cacert: String,
    client_id: String,
    count: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut cacert, mut client_id, mut count) = (None, None, None, 10_000);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--cacert" => cacert = Some(value),
            "--client-id" => client_id = Some(value),
            "--count" => count = value.parse().map_err(|_| "--count: not a number")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        url: url.ok_or("--url is required")?,
        cacert: cacert.ok_or("--cacert is required")?,
        client_id: client_id.ok_or("--client-id is required")?,
        count: count.clamp(1, 1_000_000),
    })
}

/// p50, p99 and max of `samples`, in milliseconds.
fn summary(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1_000.0
    };
    serde_json::json!({
        "requests": samples.len(),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": at(1.0),
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("admin_latency: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let Ok(secret) = std::env::var("CLIENT_SECRET") else {
        eprintln!("admin_latency: set CLIENT_SECRET");
        return std::process::ExitCode::from(64);
    };
    let cert = std::fs::read(&args.cacert).expect("the CA certificate is readable");
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert).expect("a PEM certificate")])
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1)
        .build()
        .expect("an HTTPS client");
    let token: serde_json::Value = http
        .post(format!("{}/oauth/token", args.url))
        .basic_auth(&args.client_id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "auth-server:admin"),
        ])
        .send()
        .await
        .expect("the token endpoint answers")
        .json()
        .await
        .expect("a JSON token response");
    let token = token["access_token"]
        .as_str()
        .expect("an admin token")
        .to_owned();

    let admin = format!("{}/admin/clients", args.url);
    let mut failures = 0_u64;
    let mut created = Vec::with_capacity(args.count);
    let started = Instant::now();
    for i in 0..args.count {
        let body = serde_json::json!({
            "client_id": format!("load-{i:06}"),
            "name": format!("Load client {i}"),
            "allowed_scopes": "api:read",
        });
        let sent = Instant::now();
        let response = http
            .post(&admin)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("the admin API answers");
        let ok = response.status() == reqwest::StatusCode::CREATED;
        response.bytes().await.expect("a body");
        created.push(sent.elapsed());
        failures += u64::from(!ok);
    }
    let create_secs = started.elapsed().as_secs_f64();
    let mut shown = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let sent = Instant::now();
        let response = http
            .get(format!("{admin}/load-{i:06}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("the admin API answers");
        let ok = response.status().is_success();
        response.bytes().await.expect("a body");
        shown.push(sent.elapsed());
        failures += u64::from(!ok);
    }
    let report = serde_json::json!({
        "create": summary(created),
        "create_seconds": create_secs,
        "show": summary(shown),
        "failures": failures,
    });
    println!("{report:#}");
    if failures == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
