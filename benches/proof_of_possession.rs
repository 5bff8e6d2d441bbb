//! Criterion benches for proof of possession: checking a DPoP proof (each
//! algorithm, the pure checks alone, and with the replay window), and what
//! mutual TLS adds to a full TLS handshake in memory: no client
//! authentication at all (the configuration before mutual TLS), the
//! optional request with no certificate sent, a self-signed client
//! certificate, and a CA-issued one whose chain is verified; the last two
//! include reading the certificate as the server does once per connection.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use auth_server::domain::dpop::{ProofTarget, ProofWindow, check_proof};
use auth_server::domain::endpoint::normalize_url;
use auth_server::dpop::DpopChecker;
use auth_server::tls::client_auth::{ClientCas, presented_certificate};
use auth_server::tls::{
    CertificatePaths, ensure_dev_certificate, read_certificates, server_config,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::client::Resumption;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[path = "../tests/common/dpop.rs"]
#[allow(dead_code)]
mod dpop;

const HTU: &str = "https://127.0.0.1:8443/auth-server/v1/oauth/token";
const WINDOW: ProofWindow = ProofWindow {
    max_age_secs: 60,
    future_skew_secs: 5,
};

fn dpop_proof_check(c: &mut Criterion) {
    let url = normalize_url(HTU).unwrap();
    let target = ProofTarget {
        method: "POST",
        url: &url,
        access_token: None,
    };
    for alg in dpop::ALGORITHMS {
        let key = dpop::DpopKey::generate(alg);
        let proof = key.proof("POST", HTU, None);
        let now = auth_server::clock::unix_now();
        c.bench_function(&format!("dpop_proof_check/{alg}"), |b| {
            b.iter(|| check_proof(black_box(&proof), &target, &WINDOW, now).unwrap());
        });
    }
    // With the replay window: a new proof each time (made outside the timing).
    let key = dpop::DpopKey::generate("EdDSA");
    let checker = DpopChecker::new(WINDOW, 10_000_000);
    c.bench_function("dpop_proof_check/EdDSA + replay window", |b| {
        b.iter_batched(
            || key.proof("POST", HTU, None),
            |proof| {
                let now = auth_server::clock::unix_now();
                checker.check(&proof, &target, now).unwrap()
            },
            BatchSize::SmallInput,
        );
    });
}

/// Runs a whole handshake between the two in memory; the server side.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> ServerConnection {
    let mut client =
        ClientConnection::new(Arc::clone(client), "localhost".try_into().unwrap()).unwrap();
    let mut server = ServerConnection::new(Arc::clone(server)).unwrap();
    let mut buf = Vec::new();
    while client.is_handshaking() || server.is_handshaking() {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let mut pending = &buf[..];
        while !pending.is_empty() {
            server.read_tls(&mut pending).unwrap();
            server.process_new_packets().unwrap();
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        let mut pending = &buf[..];
        while !pending.is_empty() {
            client.read_tls(&mut pending).unwrap();
            client.process_new_packets().unwrap();
        }
    }
    server
}

fn client_config(
    roots: &RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, Vec<u8>)>,
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone());
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
            .unwrap(),
    };
    // Every handshake a full one.
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

fn mtls_handshake(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (paths, _) = ensure_dev_certificate(dir.path()).unwrap();
    let optional = server_config(&paths).unwrap();
    let without = no_client_auth(&paths);
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(&paths.cert).unwrap() {
        roots.add(cert).unwrap();
    }

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let cas = ClientCas::from_pem_file(&ca_file).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["billing.example.test".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let self_key = KeyPair::generate().unwrap();
    let self_signed = CertificateParams::new(vec!["self.example.test".to_owned()])
        .unwrap()
        .self_signed(&self_key)
        .unwrap();

    let plain = client_config(&roots, None);
    let ca_issued = client_config(
        &roots,
        Some((vec![leaf.der().clone()], leaf_key.serialize_der())),
    );
    let own = client_config(
        &roots,
        Some((vec![self_signed.der().clone()], self_key.serialize_der())),
    );
    let now = auth_server::clock::unix_now();
    let mut group = c.benchmark_group("tls_handshake");
    group.bench_function("no client auth", |b| b.iter(|| handshake(&without, &plain)));
    group.bench_function("optional, none sent", |b| {
        b.iter(|| handshake(&optional, &plain))
    });
    group.bench_function("self-signed certificate", |b| {
        b.iter(|| {
            let server = handshake(&optional, &own);
            presented_certificate(server.peer_certificates(), Some(&cas), now).unwrap()
        })
    });
    group.bench_function("CA-issued certificate, chain verified", |b| {
        b.iter(|| {
            let server = handshake(&optional, &ca_issued);
            let presented =
                presented_certificate(server.peer_certificates(), Some(&cas), now).unwrap();
            assert!(presented.chain_trusted);
        })
    });
    group.finish();
}

/// The server configuration as it was before mutual TLS: no certificate
/// request at all.
fn no_client_auth(paths: &CertificatePaths) -> Arc<ServerConfig> {
    let certs = read_certificates(&paths.cert).unwrap();
    let key = PrivateKeyDer::from_pem_file(&paths.key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

criterion_group!(benches, dpop_proof_check, mtls_handshake);
criterion_main!(benches);
