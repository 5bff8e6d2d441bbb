//! The ceiling server: what this stack can do at most, to compare
//! auth-server against in the same run (`scripts/load.sh`). The same tokio
//! runtime, the same rustls configuration (certificate, protocol versions,
//! ALPN, session resumption), the same HTTP/1.1 and HTTP/2 server, a
//! pre-parsed signing key of the same algorithm and the same minting code and
//! response shape as a real token response; nothing else: no logging,
//! metrics, limits, request ids, caches or store.
//!
//! ```text
//! ceiling --dir DIR [--bind 127.0.0.1:0] [--alg EdDSA]
//! ```
//! Writes a development certificate into DIR (`dev-cert.pem`, as auth-server's
//! development certificate), prints `listening on ADDR` and serves:
//! - `POST /hello`: reads the body, answers `{"status":"ok"}`;
//! - `POST /sign`: reads the body, mints and returns a token response;
//! - `POST /verify`: checks the bearer token's signature and issuer.

#![allow(clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use auth_server::clock::unix_now;
use auth_server::domain::client::{Client, SecretHash};
use auth_server::domain::scope::ScopeSet;
use auth_server::domain::token::{TokenPolicy, mint_access_token, verify_signature};
use auth_server::keys::{Algorithm, KeySet, SigningKey, generate_pkcs8};
use auth_server::tls;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio_rustls::TlsAcceptor;

const ISSUER: &str = "https://127.0.0.1:8443/auth-server/v1";

/// What every request handler shares.
struct Ceiling {
    keys: KeySet,
    policy: TokenPolicy,
    client: Client,
    scopes: ScopeSet,
}

fn parse_args() -> (PathBuf, SocketAddr, Algorithm) {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut bind, mut alg) = (None, "127.0.0.1:0".to_owned(), "EdDSA".to_owned());
    while let Some(flag) = args.next() {
        let value = args.next().expect("every flag takes a value");
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--bind" => bind = value,
            "--alg" => alg = value,
            other => panic!("unknown flag {other}"),
        }
    }
    let alg = match alg.as_str() {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        other => panic!("unsupported algorithm {other}"),
    };
    (
        dir.expect("--dir is required"),
        bind.parse().expect("--bind is an address"),
        alg,
    )
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The same JSON shape as auth-server's token response.
#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    scope: Option<&'a str>,
}

async fn handle(ceiling: Arc<Ceiling>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // Bodies are read whole, as auth-server reads them.
    let _ = body.collect().await;
    if parts.method != Method::POST {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "{}");
    }
    match parts.uri.path() {
        "/hello" => respond(StatusCode::OK, &br#"{"status":"ok"}"#[..]),
        "/sign" => {
            let issued = mint_access_token(
                &ceiling.client,
                &ceiling.scopes,
                ceiling.policy.default_audience.clone(),
                &ceiling.policy,
                ceiling.keys.active(),
                unix_now(),
            )
            .expect("minting with a parsed key");
            let body = serde_json::to_vec(&TokenResponse {
                access_token: &issued.access_token,
                token_type: "Bearer",
                expires_in: issued.expires_in,
                scope: issued.claims.scope.as_deref(),
            })
            .expect("a token response serializes");
            respond(StatusCode::OK, body)
        }
        "/verify" => {
            let token = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            match verify_signature(token, &ceiling.keys, &ceiling.policy) {
                Ok(_) => respond(StatusCode::OK, &br#"{"active":true}"#[..]),
                Err(_) => respond(StatusCode::UNAUTHORIZED, &br#"{"active":false}"#[..]),
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "{}"),
    }
}

fn main() {
    let (dir, bind, alg) = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(serve(dir, bind, alg));
}

async fn serve(dir: PathBuf, bind: SocketAddr, alg: Algorithm) {
    let (paths, _) = tls::ensure_dev_certificate(&dir).expect("a development certificate");
    let acceptor = TlsAcceptor::from(tls::server_config(&paths).expect("a TLS configuration"));
    let key =
        SigningKey::from_pkcs8(alg, &generate_pkcs8(alg).expect("a key")).expect("a parsed key");
    let mut client = Client::new(
        "ceiling-client".into(),
        "ceiling".into(),
        SecretHash::of("unused"),
        0,
    );
    client.allowed_scopes = ScopeSet::parse("api:read").expect("a scope");
    let ceiling = Arc::new(Ceiling {
        keys: KeySet::new(key),
        policy: TokenPolicy {
            issuer: ISSUER.into(),
            default_lifetime_secs: 900,
            default_audience: "auth-server".into(),
            nbf_leeway_secs: 5,
            exp_leeway_secs: 0,
        },
        scopes: client.allowed_scopes.clone(),
        client,
    });
    let listener = auth_server::server::bind(bind, false).expect("bind");
    println!(
        "listening on {}",
        listener.local_addr().expect("a local address")
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let ceiling = Arc::clone(&ceiling);
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let ceiling = Arc::clone(&ceiling);
                async move { Ok::<_, Infallible>(handle(ceiling, request).await) }
            });
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
