//! A load driver for token requests whose every request must differ: a
//! `private_key_jwt` request carries an assertion with a fresh `jti`, which
//! oha cannot make. `scripts/load.sh` drives client_secret_basic token
//! requests through it as well, so the rows compare like with like, and the
//! federated grants: a workload's token (reused, as a workload reuses its
//! service-account token) with the jwt-bearer grant or token exchange.
//!
//! ```text
//! assertion_load keygen DIR
//!     writes DIR/client-key.pem (Ed25519, PKCS#8) and DIR/client-jwks.json
//! assertion_load run --url TOKEN_URL --cacert PEM --client ID
//!                    (--secret SECRET | --key PEM | --jwt-bearer FILE | --token-exchange FILE)
//!                    [--duration SECS] [--connections N]
//!     sends token requests on N keep-alive connections for SECS seconds
//!     (at most 10,000,000 requests) and prints one JSON line: rps, p50_ms,
//!     p99_ms, requests, errors (non-200 answers and failures)
//! ```
//! With `--key`, each request is signed here (EdDSA, about 20 µs) just
//! before it is sent, `aud` the token URL, valid a minute.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth_server::domain::assertion::JWT_BEARER;
use auth_server::keys::{Algorithm, SigningKey, generate_pkcs8, pkcs8_pem};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

/// Most requests one run sends, whatever the duration.
const MAX_REQUESTS: u64 = 10_000_000;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("keygen") => keygen(PathBuf::from(args.get(1).expect("keygen DIR"))),
        Some("run") => {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(run(&args));
        }
        _ => {
            eprintln!("usage: assertion_load keygen DIR | assertion_load run ...");
            std::process::exit(64);
        }
    }
}

fn keygen(dir: PathBuf) {
    let der = generate_pkcs8(Algorithm::EdDSA).expect("key");
    let key = SigningKey::from_pkcs8(Algorithm::EdDSA, &der).expect("key");
    std::fs::write(dir.join("client-key.pem"), pkcs8_pem(&der)).expect("write key");
    let jwks = json!({ "keys": [key.public_jwk().expect("public JWK")] });
    std::fs::write(dir.join("client-jwks.json"), jwks.to_string()).expect("write JWKS");
}

/// How each request authenticates.
enum Auth {
    Secret(String),
    Key(SigningKey),
    /// An external token as a jwt-bearer `assertion`.
    JwtBearer(String),
    /// An external token as a token-exchange `subject_token`.
    TokenExchange(String),
}

struct Run {
    url: String,
    client: String,
    auth: Auth,
    sequence: AtomicU64,
}

impl Run {
    fn request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let base = [("grant_type", "client_credentials"), ("scope", "api:read")];
        match &self.auth {
            Auth::Secret(secret) => http
                .post(&self.url)
                .basic_auth(&self.client, Some(secret))
                .form(&base),
            Auth::Key(key) => {
                let n = self.sequence.fetch_add(1, Ordering::Relaxed);
                let assertion = self.sign(key, n);
                let mut form = base.to_vec();
                form.push(("client_assertion_type", JWT_BEARER));
                form.push(("client_assertion", &assertion));
                http.post(&self.url).form(&form)
            }
            Auth::JwtBearer(token) => http.post(&self.url).form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", token),
                ("scope", "api:read"),
            ]),
            Auth::TokenExchange(token) => http.post(&self.url).form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ("scope", "api:read"),
            ]),
        }
    }

    fn sign(&self, key: &SigningKey, n: u64) -> String {
        let now = auth_server::clock::unix_now();
        let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let header = b64(json!({"alg": "EdDSA", "kid": key.kid()}));
        let claims = b64(json!({
            "iss": self.client, "sub": self.client, "aud": self.url,
            "iat": now, "exp": now + 60, "jti": format!("{}-{n}", std::process::id()),
        }));
        let input = format!("{header}.{claims}");
        let signature = key.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

async fn run(args: &[String]) {
    let need = |name: &str| arg(args, name).unwrap_or_else(|| panic!("{name} is required"));
    let duration =
        Duration::from_secs(arg(args, "--duration").map_or(10, |d| d.parse().expect("--duration")));
    let connections: usize =
        arg(args, "--connections").map_or(64, |c| c.parse().expect("--connections"));
    let read = |path: String| {
        std::fs::read_to_string(path)
            .expect("token file")
            .trim()
            .to_owned()
    };
    let auth = match (
        arg(args, "--secret"),
        arg(args, "--key"),
        arg(args, "--jwt-bearer"),
        arg(args, "--token-exchange"),
    ) {
        (Some(secret), None, None, None) => Auth::Secret(secret),
        (None, Some(path), None, None) => {
            let pem = std::fs::read(path).expect("--key file");
            Auth::Key(SigningKey::from_pem(Algorithm::EdDSA, &pem).expect("an Ed25519 key"))
        }
        (None, None, Some(path), None) => Auth::JwtBearer(read(path)),
        (None, None, None, Some(path)) => Auth::TokenExchange(read(path)),
        _ => panic!("give one of --secret, --key, --jwt-bearer, --token-exchange"),
    };
    let ca = std::fs::read(need("--cacert")).expect("--cacert file");
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA PEM")])
        .http1_only()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client");
    let run = Arc::new(Run {
        url: need("--url"),
        client: need("--client"),
        auth,
        sequence: AtomicU64::new(0),
    });
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (run, http, sent) = (Arc::clone(&run), http.clone(), Arc::clone(&sent));
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while started.elapsed() < duration
                && sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS
            {
                let begun = Instant::now();
                let ok = match run.request(&http).send().await {
                    Ok(response) => {
                        let ok = response.status() == reqwest::StatusCode::OK;
                        let _ = response.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                latencies.push(begun.elapsed());
                errors += u64::from(!ok);
            }
            (latencies, errors)
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        json!({
            "rps": latencies.len() as f64 / elapsed,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
            "requests": latencies.len(),
            "errors": errors,
        })
    );
}
