//! Fetching other parties' JWK Sets over HTTPS, cached: the keys of clients
//! registered with a `jwks_uri` (and of any other key publisher we are told
//! to trust). Fetches go to the configured URL only: HTTPS, no redirects
//! (a 3xx is a failure), bounded in connect time, total time and size. A
//! fetched set is used for `cache_ttl_secs`; an unknown `kid` fetches again
//! at once, but at most once per `min_refetch_interval_secs` per URL; a
//! failed fetch keeps the keys fetched before.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use moka::sync::Cache;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::JwksFetchConfig;
use crate::keys::public::{JwksError, PublicKeySet};
use crate::lock::{read, write};

/// Why a JWK Set could not be fetched. Names the cause, never the
/// response body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not an absolute `https://` URL with a host.
    #[error("not an https:// URL with a host")]
    NotHttps,
    /// The CA file in the settings cannot be used.
    #[error("jwks_fetch.ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Name resolution, TCP or TLS failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connect or total timeout passed.
    #[error("no answer in time")]
    Timeout,
    /// The server answered with a redirect, which is not followed.
    #[error("the server redirects (status {0}); redirects are not followed")]
    Redirect(u16),
    /// The server answered with another status than 200.
    #[error("the server answered status {0}")]
    Status(u16),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// The document is larger than `max_bytes`.
    #[error("the document is larger than the limit")]
    TooLarge,
    /// The document is no usable JWK Set.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// The last fetch was too recent to try again, and no keys are cached.
    #[error("fetched moments ago without success; not retried yet")]
    TooSoon,
}

/// Fetches and caches JWK Sets by URL.
pub struct JwksFetcher {
    tls: TlsConnector,
    connect_timeout: Duration,
    timeout: Duration,
    max_bytes: usize,
    ttl: Duration,
    min_refetch: Duration,
    by_url: Cache<String, Arc<UrlKeys>>,
}

/// The keys of one URL and when they were fetched.
#[derive(Default)]
struct UrlKeys {
    current: RwLock<Option<(Arc<PublicKeySet>, Instant)>>,
    /// Why the last fetch failed; `None` after a success.
    last_error: RwLock<Option<String>>,
    /// Held while fetching, so one URL is fetched by one task at a time;
    /// holds the time of the last attempt.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl UrlKeys {
    fn current(&self) -> Option<(Arc<PublicKeySet>, Instant)> {
        read(&self.current)
    }

    fn set(&self, keys: Arc<PublicKeySet>, at: Instant) {
        write(&self.current, Some((keys, at)));
    }

    fn last_error(&self) -> Option<String> {
        read(&self.last_error)
    }

    fn set_error(&self, error: Option<String>) {
        write(&self.last_error, error);
    }
}

/// The fetch state of one URL, for operators.
#[derive(Debug, Clone, Default)]
pub struct FetchStatus {
    /// The keys held, if a fetch ever succeeded.
    pub keys: Option<Arc<PublicKeySet>>,
    /// How long ago they were fetched.
    pub age: Option<Duration>,
    /// Why the last fetch failed, when it did.
    pub last_error: Option<String>,
}

impl JwksFetcher {
    /// A fetcher with `config`'s limits, trusting the system's roots and
    /// `config.ca_file`.
    pub fn new(config: &JwksFetchConfig) -> Result<Self, FetchError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if !config.ca_file.is_empty() {
            let ca_error = |reason: String| FetchError::CaFile {
                path: config.ca_file.clone(),
                reason,
            };
            let pem = std::fs::read(&config.ca_file).map_err(|e| ca_error(e.to_string()))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| ca_error(format!("not PEM certificates: {e}")))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ca_error("holds no usable CA certificate".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Connect(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(tls)),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            timeout: Duration::from_millis(config.timeout_ms),
            max_bytes: config.max_bytes,
            ttl: Duration::from_secs(config.cache_ttl_secs),
            min_refetch: Duration::from_secs(config.min_refetch_interval_secs),
            by_url: Cache::builder().max_capacity(config.max_urls).build(),
        })
    }

    /// The keys at `url`, from the cache while they are fresh and, when
    /// `kid` is given, hold it; otherwise fetched (at most once per
    /// `min_refetch_interval_secs`). A failed fetch returns the keys
    /// fetched before, if any.
    pub async fn keys(
        &self,
        url: &str,
        kid: Option<&str>,
    ) -> Result<Arc<PublicKeySet>, FetchError> {
        let usable = |entry: &UrlKeys| {
            entry.current().filter(|(keys, at)| {
                at.elapsed() < self.ttl && kid.is_none_or(|kid| keys.has_kid(kid))
            })
        };
        self.keys_unless(url, usable).await
    }

    /// Fetches the keys at `url` now, fresh or not, unless the last fetch
    /// was less than `min_refetch_interval_secs` ago (then the keys held).
    pub async fn refetch(&self, url: &str) -> Result<Arc<PublicKeySet>, FetchError> {
        self.keys_unless(url, |_| None).await
    }

    /// The keys `usable` finds held for `url`, else fetched (at most once
    /// per `min_refetch_interval_secs`); a failed fetch returns the keys
    /// held, if any.
    async fn keys_unless(
        &self,
        url: &str,
        usable: impl Fn(&UrlKeys) -> Option<(Arc<PublicKeySet>, Instant)>,
    ) -> Result<Arc<PublicKeySet>, FetchError> {
        let entry = self
            .by_url
            .get_with_by_ref(url, || Arc::new(UrlKeys::default()));
        if let Some((keys, _)) = usable(&entry) {
            return Ok(keys);
        }
        let mut last_attempt = entry.fetching.lock().await;
        // Another task may have fetched while this one waited.
        if let Some((keys, _)) = usable(&entry) {
            return Ok(keys);
        }
        let held = entry.current().map(|(keys, _)| keys);
        if last_attempt.is_some_and(|at| at.elapsed() < self.min_refetch) {
            return held.ok_or(FetchError::TooSoon);
        }
        *last_attempt = Some(Instant::now());
        match self.fetch(url).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                entry.set(Arc::clone(&keys), Instant::now());
                entry.set_error(None);
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "fetching a JWK Set failed");
                entry.set_error(Some(e.to_string()));
                held.ok_or(e)
            }
        }
    }

    /// The keys held for `url`, fresh or not, without fetching.
    pub fn cached(&self, url: &str) -> Option<Arc<PublicKeySet>> {
        self.by_url
            .get(url)
            .and_then(|entry| entry.current())
            .map(|(keys, _)| keys)
    }

    /// What is known of `url`'s keys, without fetching; `None` when it was
    /// never asked for.
    pub fn status(&self, url: &str) -> Option<FetchStatus> {
        let entry = self.by_url.get(url)?;
        let current = entry.current();
        Some(FetchStatus {
            age: current.as_ref().map(|(_, at)| at.elapsed()),
            keys: current.map(|(keys, _)| keys),
            last_error: entry.last_error(),
        })
    }

    /// Fetches the set at `url` once, bypassing the cache.
    pub async fn fetch(&self, url: &str) -> Result<PublicKeySet, FetchError> {
        let url = url::Url::parse(url).map_err(|_| FetchError::NotHttps)?;
        Ok(PublicKeySet::parse(&self.fetch_document(&url).await?)?)
    }

    /// GETs the document at `url` (HTTPS only, no redirects, bounded in
    /// time and size): a JWK Set, or an OpenID Connect discovery document.
    pub async fn fetch_document(&self, url: &url::Url) -> Result<Bytes, FetchError> {
        if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::NotHttps);
        }
        tokio::time::timeout(self.timeout, self.get(url))
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    /// One GET over a new connection; the body, bounded.
    async fn get(&self, url: &url::Url) -> Result<Bytes, FetchError> {
        let (server_name, host) = match url.host() {
            Some(url::Host::Domain(name)) => (
                ServerName::try_from(name.to_owned()).map_err(|_| FetchError::NotHttps)?,
                name.to_owned(),
            ),
            Some(url::Host::Ipv4(ip)) => {
                (ServerName::from(std::net::IpAddr::V4(ip)), ip.to_string())
            }
            Some(url::Host::Ipv6(ip)) => {
                (ServerName::from(std::net::IpAddr::V6(ip)), ip.to_string())
            }
            None => return Err(FetchError::NotHttps),
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let connect = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| FetchError::Connect(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            self.tls
                .connect(server_name, tcp)
                .await
                .map_err(|e| FetchError::Connect(e.to_string()))
        };
        let stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| FetchError::Timeout)??;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        // Ends with the exchange: aborted when this future is dropped.
        let connection = AbortOnDrop(tokio::spawn(connection));
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .header(http::header::USER_AGENT, "auth-server")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect(status.as_u16()));
        }
        if status != http::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_bytes as u64) {
            return Err(FetchError::TooLarge);
        }
        let body = Limited::new(response.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Http(e.to_string())
                }
            })?
            .to_bytes();
        drop(connection);
        Ok(body)
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher() -> JwksFetcher {
        JwksFetcher::new(&JwksFetchConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn only_https_urls_are_fetched() {
        for url in [
            "http://127.0.0.1:1/jwks",
            "ftp://keys.test/jwks",
            "https://user:pw@keys.test/jwks",
            "not a url",
            "/relative",
        ] {
            assert!(
                matches!(fetcher().fetch(url).await, Err(FetchError::NotHttps)),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_connection_fails_and_is_not_retried_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}/jwks",
            listener.local_addr().unwrap().port()
        );
        drop(listener);
        let fetcher = fetcher();
        assert!(matches!(
            fetcher.keys(&url, None).await,
            Err(FetchError::Connect(_))
        ));
        assert!(matches!(
            fetcher.keys(&url, Some("k")).await,
            Err(FetchError::TooSoon)
        ));
        assert!(fetcher.cached(&url).is_none());
    }

    #[test]
    fn an_unusable_ca_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let config = JwksFetchConfig {
            ca_file: path.display().to_string(),
            ..JwksFetchConfig::default()
        };
        assert!(matches!(
            JwksFetcher::new(&config),
            Err(FetchError::CaFile { .. })
        ));
    }
}
