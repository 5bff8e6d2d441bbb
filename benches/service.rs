//! Criterion benches for whole requests through `auth_server::http::handle`,
//! in-process and without sockets or TLS: a token request (form body, Basic
//! auth, cached client, EdDSA), validate (cache hit, and cache miss with a
//! fresh token each time), introspect, and the rate-limiter check, against
//! `GET /health/live`, the cheapest route, as the baseline; a token request
//! authenticated by a client assertion (`private_key_jwt`, EdDSA and ES256
//! client keys, a fresh `jti` each time); a token exchange down-scoping a
//! token (its validation a cache hit); and what the connection's service
//! adds to every request to track idleness. The fixture is a temporary
//! embedded store with one client per authentication method.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use auth_server::activity::ConnectionActivity;
use auth_server::admin::{self, NewClient};
use auth_server::cache::RevocationSet;
use auth_server::config::Config;
use auth_server::http::handle;
use auth_server::keys::{Algorithm, KeySet, SigningKey, generate_pkcs8};
use auth_server::state::AppState;
use auth_server::store::ClientStore;
use auth_server::store::sqlite::SqliteStore;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use tokio::runtime::Runtime;

#[path = "support/assertion.rs"]
mod assertion_support;

use assertion_support::BenchKey;
use auth_server::domain::assertion::JWT_BEARER;
use auth_server::domain::client::AuthMethod;

const ISSUER: &str = "https://127.0.0.1:8443/auth-server/v1";
const TOKEN_PATH: &str = "/auth-server/v1/oauth/token";
const FORM: &[u8] = b"grant_type=client_credentials&scope=api%3Aread";

/// A state over a fresh store holding one client; returns it with the Basic
/// `Authorization` value for that client. The temp dir must outlive the state.
fn fixture(rt: &Runtime) -> (tempfile::TempDir, AppState, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.sqlite_path = dir.path().join("auth.db");
    config.token.algorithm = Algorithm::EdDSA;
    // Measure the work, not the 429 that a realistic limit would return.
    config.limits.global_rps = 0;
    config.limits.client_rps = u32::MAX;
    config.limits.client_burst = u32::MAX;
    // The key set as the server holds it in memory, wherever it came from.
    let key = SigningKey::from_pkcs8(Algorithm::EdDSA, &generate_pkcs8(Algorithm::EdDSA).unwrap())
        .expect("signing key");
    let store = SqliteStore::open(&config.database.sqlite_path).unwrap();
    let created = rt.block_on(async {
        store.migrate().await.unwrap();
        admin::create_client(
            &store,
            NewClient {
                name: "Bench client".into(),
                allowed_scopes: "api:read api:write".into(),
                default_scopes: Some("api:read".into()),
                ..NewClient::default()
            },
            &auth_server::audit::Actor::cli("bench"),
            auth_server::clock::unix_now(),
        )
        .await
        .unwrap()
    });
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", created.client.id, created.secret))
    );
    let state = AppState::new(
        &config,
        ISSUER,
        KeySet::new(key),
        Arc::new(store),
        Arc::new(RevocationSet::default()),
    )
    .unwrap();
    (dir, state, basic)
}

fn token_request(basic: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(TOKEN_PATH)
        .header(header::AUTHORIZATION, basic)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, FORM.len())
        .body(Full::new(Bytes::from_static(FORM)))
        .unwrap()
}

/// Registers a `private_key_jwt` client `id` holding `key`.
fn register_jwt_client(rt: &Runtime, state: &AppState, id: &str, key: &BenchKey) {
    let new = NewClient {
        id: Some(id.into()),
        name: id.into(),
        allowed_scopes: "api:read".into(),
        auth_method: AuthMethod::PrivateKeyJwt,
        jwks: Some(key.jwks()),
        ..NewClient::default()
    };
    rt.block_on(admin::create_client(
        state.store.as_ref(),
        new,
        &auth_server::audit::Actor::cli("bench"),
        auth_server::clock::unix_now(),
    ))
    .unwrap();
}

fn assertion_request(assertion: &str) -> Request<Full<Bytes>> {
    let body = format!(
        "grant_type=client_credentials&scope=api%3Aread&client_assertion_type={JWT_BEARER}\
         &client_assertion={assertion}"
    );
    Request::builder()
        .method(Method::POST)
        .uri(TOKEN_PATH)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn live_request() -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri("/health/live")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn validate_request(token: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri("/auth-server/v1/oauth/validate")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A token exchange (down-scoping) of `token`, without client
/// authentication: the subject token is the credential.
fn exchange_request(token: &str) -> Request<Full<Bytes>> {
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
         &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
         &scope=api%3Aread&subject_token={token}"
    );
    Request::builder()
        .method(Method::POST)
        .uri(TOKEN_PATH)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn introspect_request(basic: &str, token: &str) -> Request<Full<Bytes>> {
    let body = format!("token={token}");
    Request::builder()
        .method(Method::POST)
        .uri("/auth-server/v1/oauth/introspect")
        .header(header::AUTHORIZATION, basic)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A fresh access token from the token endpoint.
fn mint(rt: &Runtime, state: &AppState, basic: &str) -> String {
    let response = rt.block_on(handle(state, token_request(basic)));
    assert_eq!(response.status(), StatusCode::OK);
    let body = rt.block_on(http_body_util::BodyExt::collect(response.into_body()));
    let json: serde_json::Value = serde_json::from_slice(&body.unwrap().to_bytes()).unwrap();
    json["access_token"].as_str().unwrap().to_owned()
}

fn requests(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_dir, state, basic) = fixture(&rt);
    // Warm the client cache and check the fixtures answer as expected.
    let response = rt.block_on(handle(&state, token_request(&basic)));
    assert_eq!(response.status(), StatusCode::OK);
    let response = rt.block_on(handle(&state, live_request()));
    assert_eq!(response.status(), StatusCode::OK);

    let mut group = c.benchmark_group("request");
    group.bench_function("health_live", |b| {
        b.iter_batched(
            live_request,
            |request| rt.block_on(handle(black_box(&state), request)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("token_basic_form_eddsa", |b| {
        b.iter_batched(
            || token_request(&basic),
            |request| rt.block_on(handle(black_box(&state), request)),
            BatchSize::SmallInput,
        );
    });
    let aud = format!("{ISSUER}/oauth/token");
    for alg in ["EdDSA", "ES256"] {
        let key = BenchKey::new(alg);
        let id = format!("jwt-{}", alg.to_ascii_lowercase());
        register_jwt_client(&rt, &state, &id, &key);
        let mut jti = 0u64;
        let mut next = || {
            jti += 1;
            assertion_request(&key.assertion(&id, &aud, auth_server::clock::unix_now(), jti))
        };
        let response = rt.block_on(handle(&state, next()));
        assert_eq!(response.status(), StatusCode::OK, "{alg}");
        group.bench_function(
            format!("token_private_key_jwt_{}", alg.to_ascii_lowercase()),
            |b| {
                b.iter_batched(
                    &mut next,
                    |request| rt.block_on(handle(black_box(&state), request)),
                    BatchSize::SmallInput,
                );
            },
        );
    }
    let token = mint(&rt, &state, &basic);
    let response = rt.block_on(handle(&state, validate_request(&token)));
    assert_eq!(response.status(), StatusCode::OK);
    group.bench_function("validate_cache_hit", |b| {
        b.iter_batched(
            || validate_request(&token),
            |request| rt.block_on(handle(black_box(&state), request)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("validator_only_cache_hit", |b| {
        b.iter(|| {
            rt.block_on(state.validate_token(black_box(&token)))
                .unwrap()
        });
    });
    group.bench_function("validate_cache_miss", |b| {
        b.iter_batched(
            || validate_request(&mint(&rt, &state, &basic)),
            |request| rt.block_on(handle(black_box(&state), request)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("introspect_cache_hit", |b| {
        b.iter_batched(
            || introspect_request(&basic, &token),
            |request| rt.block_on(handle(black_box(&state), request)),
            BatchSize::SmallInput,
        );
    });
    let response = rt.block_on(handle(&state, exchange_request(&token)));
    assert_eq!(response.status(), StatusCode::OK);
    group.bench_function("token_exchange_downscope", |b| {
        b.iter_batched(
            || exchange_request(&token),
            |request| rt.block_on(handle(black_box(&state), request)),
            BatchSize::SmallInput,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("limiter");
    group.bench_function("client_bucket_check", |b| {
        b.iter(|| state.limits.check_client(black_box("bench-client"), None));
    });
    group.finish();

    let mut group = c.benchmark_group("connection");
    let activity = Arc::new(ConnectionActivity::default());
    group.bench_function("request_in_flight_start_finish", |b| {
        b.iter(|| drop(black_box(activity.start())));
    });
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
