//! A JWK Set publisher for the tests: a real HTTPS server on loopback with a
//! certificate from a test CA (whose PEM file the auth server is told to
//! trust through `jwks_fetch.ca_file`), serving whatever the test sets, and
//! an OpenID Connect discovery document at
//! `/.well-known/openid-configuration` when one is set.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the publisher answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with this body.
    Serve(String),
    /// 503.
    Down,
    /// 302 to this location.
    Redirect(String),
    /// Headers and body only after this long.
    Slow(Duration),
}

/// The running publisher; stops when dropped.
pub struct JwksHost {
    /// `https://127.0.0.1:<port>/jwks`.
    pub url: String,
    /// `https://127.0.0.1:<port>`.
    pub origin: String,
    /// The test CA's certificate (PEM), to trust.
    pub ca_file: PathBuf,
    answer: Arc<Mutex<Answer>>,
    discovery: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksHost {
    /// Starts a publisher serving `jwks`.
    pub async fn start(jwks: &serde_json::Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "auth-server test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let chain = vec![CertificateDer::from(leaf.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let url = format!("{origin}/jwks");
        let answer = Arc::new(Mutex::new(Answer::Serve(jwks.to_string())));
        let discovery = Arc::new(Mutex::new(None));
        let hits = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(
            listener,
            acceptor,
            (Arc::clone(&answer), Arc::clone(&discovery)),
            Arc::clone(&hits),
        ));
        Self {
            url,
            origin,
            discovery,
            ca_file,
            answer,
            hits,
            _dir: dir,
            task,
        }
    }

    /// Answers `answer` from now on.
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Serves `jwks` from now on.
    pub fn serve(&self, jwks: &serde_json::Value) {
        self.answer(Answer::Serve(jwks.to_string()));
    }

    /// Serves an OpenID Connect discovery document naming `issuer` and
    /// this host's JWK Set URL.
    pub fn publish_discovery(&self, issuer: &str) {
        let doc = serde_json::json!({ "issuer": issuer, "jwks_uri": self.url });
        *self.discovery.lock().unwrap() = Some(doc.to_string());
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

type Answers = (Arc<Mutex<Answer>>, Arc<Mutex<Option<String>>>);

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    answers: Answers,
    hits: Arc<AtomicUsize>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, answers, hits) = (acceptor.clone(), answers.clone(), Arc::clone(&hits));
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let discovery = answers.1.lock().unwrap().clone();
                let answer = match discovery {
                    Some(doc) if request.uri().path().ends_with("/openid-configuration") => {
                        Answer::Serve(doc)
                    }
                    _ => answers.0.lock().unwrap().clone(),
                };
                hits.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, Infallible>(respond(answer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let builder = Response::builder().header("content-type", "application/json");
    match answer {
        Answer::Serve(body) => builder.body(Full::from(body)),
        Answer::Down => builder.status(503).body(Full::from("{}")),
        Answer::Redirect(location) => builder
            .status(302)
            .header("location", location)
            .body(Full::from("")),
        Answer::Slow(delay) => {
            tokio::time::sleep(delay).await;
            builder.body(Full::from(r#"{"keys":[]}"#))
        }
    }
    .unwrap()
}
