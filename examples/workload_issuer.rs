//! A stand-in workload identity issuer for `scripts/load.sh`: a Kubernetes
//! API server's role, on loopback. Makes an RS256 key (the Kubernetes
//! default) and a self-signed certificate for 127.0.0.1, serves the JWK Set
//! at `https://127.0.0.1:PORT/jwks` (any other path: 404), and writes into
//! DIR:
//!
//! ```text
//! ca.pem         the certificate, to trust (jwks_fetch.ca_file)
//! issuer         the issuer identifier, https://127.0.0.1:PORT
//! token          a service-account token for system:serviceaccount:load:driver,
//!                audience "auth-server-load", valid an hour
//! ```
//!
//! Usage: `workload_issuer DIR`; serves until killed.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use auth_server::keys::{Algorithm, SigningKey, generate_pkcs8};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("workload_issuer DIR"));
    let der = generate_pkcs8(Algorithm::RS256).expect("key");
    let key = SigningKey::from_pkcs8(Algorithm::RS256, &der).expect("key");
    let jwks = json!({ "keys": [key.public_jwk().expect("JWK")] }).to_string();

    let tls_key = rcgen::KeyPair::generate().expect("TLS key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&tls_key)
        .expect("certificate");
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(tls_key.serialize_der())),
    )
    .expect("TLS config");
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("https://{}", listener.local_addr().expect("address"));

    let now = auth_server::clock::unix_now();
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "RS256", "kid": key.kid(), "typ": "JWT"})),
        b64(json!({
            "iss": issuer, "sub": "system:serviceaccount:load:driver",
            "aud": ["auth-server-load"], "iat": now, "nbf": now, "exp": now + 3_600,
            "kubernetes.io": {"namespace": "load", "serviceaccount": {"name": "driver"}},
        }))
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).expect("sign"));
    std::fs::write(dir.join("ca.pem"), cert.pem()).expect("write ca.pem");
    std::fs::write(dir.join("token"), format!("{input}.{signature}")).expect("write token");
    std::fs::write(dir.join("issuer"), &issuer).expect("write issuer");

    let jwks = Bytes::from(jwks);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, jwks) = (acceptor.clone(), jwks.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let found = request.uri().path() == "/jwks";
                let response = hyper::Response::builder()
                    .status(if found { 200 } else { 404 })
                    .header("content-type", "application/json")
                    .body(Full::new(if found { jwks.clone() } else { Bytes::new() }));
                async move { Ok::<_, Infallible>(response.unwrap()) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
