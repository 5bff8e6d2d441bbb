//! Workload identity federation at the edge: the trusted issuers of the
//! configuration with their keys (fetched through [`JwksFetcher`], after
//! OpenID Connect discovery when no `jwks_uri` is configured), external
//! tokens verified against them (and remembered, `federation/verified.rs`),
//! and the federated subjects of the store held in memory to map a
//! verified subject to one client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{FederationConfig, TrustedIssuerConfig};
use crate::domain::federation::{
    ExternalRules, ExternalTokenError, MAX_EXTERNAL_TOKEN_LEN, SubjectMatch, SubjectTable,
    check_external_claims,
};
use crate::domain::signed_jwt::SignedJwt;
use crate::domain::token::Actor;
use crate::jwks_fetch::{FetchError, FetchStatus, JwksFetcher};
use crate::keys::public::{PublicKeySet, VerifyAlgorithm};
use crate::lock::{read, write};
use crate::store::{ClientStore, StoreError};

mod verified;

use verified::{Verified, VerifiedTokens};

/// Least time between two reads of the federated subjects caused by a
/// subject that matched no client.
const MISS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Least time between two discovery attempts for one issuer.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// Why an external token got no client.
#[derive(Debug, thiserror::Error)]
pub enum FederationFailure {
    /// Refused: `invalid_grant` for the jwt-bearer grant, `invalid_request`
    /// for token exchange (the reason is for the log).
    #[error(transparent)]
    Refused(#[from] ExternalTokenError),
    /// The federated subjects could not be read: nothing is known to be
    /// wrong, retry.
    #[error("federated subjects: {0}")]
    Store(#[source] StoreError),
}

/// A verified external token mapped to one of our clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    /// Our client.
    pub client_id: String,
    /// The trusted issuer's name.
    pub issuer_name: String,
    /// The external issuer and subject, for the token's `act` claim.
    pub actor: Actor,
}

/// One trusted issuer and where its keys are.
struct TrustedIssuer {
    config: TrustedIssuerConfig,
    algorithms: Vec<VerifyAlgorithm>,
    /// The configured or discovered JWK Set URL.
    jwks_uri: RwLock<Option<String>>,
    /// Why discovery failed last, if it did.
    discovery_error: RwLock<Option<String>>,
    /// Held while discovering; the time of the last attempt.
    discovering: tokio::sync::Mutex<Option<Instant>>,
}

/// What an operator sees of a trusted issuer.
#[derive(Debug, Clone)]
pub struct IssuerStatus {
    /// Its name.
    pub name: String,
    /// Its issuer identifier.
    pub issuer: String,
    /// The JWK Set URL, once known.
    pub jwks_uri: Option<String>,
    /// The fetch state of its keys.
    pub keys: FetchStatus,
    /// Why discovery failed, when it did.
    pub discovery_error: Option<String>,
}

impl IssuerStatus {
    /// The last error, discovery's or the key fetch's.
    pub fn error(&self) -> Option<&str> {
        self.discovery_error
            .as_deref()
            .or(self.keys.last_error.as_deref())
    }

    /// How many keys are held.
    pub fn key_count(&self) -> usize {
        self.keys.keys.as_ref().map_or(0, |k| k.len())
    }
}

/// The trusted issuers and the federated subjects.
pub struct Federation {
    issuers: Vec<TrustedIssuer>,
    leeway_secs: i64,
    fetcher: Arc<JwksFetcher>,
    subjects: SubjectIndex,
    verified: VerifiedTokens,
}

impl Federation {
    /// The issuers of `config`, their keys fetched with `fetcher`, the
    /// subjects read from `store`.
    pub fn new(
        config: &FederationConfig,
        fetcher: Arc<JwksFetcher>,
        store: Arc<dyn ClientStore>,
    ) -> Self {
        let issuers = config
            .issuers
            .iter()
            .map(|c| TrustedIssuer {
                algorithms: c.verify_algorithms(),
                jwks_uri: RwLock::new((!c.jwks_uri.is_empty()).then(|| c.jwks_uri.clone())),
                discovery_error: RwLock::new(None),
                discovering: tokio::sync::Mutex::new(None),
                config: c.clone(),
            })
            .collect();
        Self {
            issuers,
            leeway_secs: config.leeway_secs,
            fetcher,
            subjects: SubjectIndex {
                store,
                refresh: Duration::from_secs(config.subjects_refresh_secs),
                held: RwLock::new(None),
                stale: AtomicBool::new(true),
                loading: tokio::sync::Mutex::new(None),
            },
            verified: VerifiedTokens::new(),
        }
    }

    /// True when at least one issuer is trusted (the grants are offered).
    pub fn is_enabled(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Verifies `token` against the trusted issuer named by its `iss` and
    /// maps its subject to exactly one client. A token verified before is
    /// found by its hash while it is good and its issuer's keys are
    /// unchanged.
    pub async fn authenticate(
        &self,
        token: &str,
        now: i64,
    ) -> Result<FederatedIdentity, FederationFailure> {
        let hash = (token.len() <= MAX_EXTERNAL_TOKEN_LEN).then(|| VerifiedTokens::hash(token));
        if let Some(hash) = &hash
            && let Some(seen) = self.verified.get(hash, now)
        {
            let issuer = &self.issuers[seen.issuer];
            match self.issuer_keys(issuer, seen.kid.as_deref()).await {
                Some(keys) if Arc::ptr_eq(&keys, &seen.keys) => {
                    return self.map(issuer, &seen.sub).await;
                }
                _ => self.verified.forget(hash),
            }
        }
        let jwt =
            SignedJwt::parse(token, MAX_EXTERNAL_TOKEN_LEN).map_err(ExternalTokenError::from)?;
        let iss = jwt.text_claim("iss").unwrap_or_default();
        let (place, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.config.issuer == iss)
            .ok_or(ExternalTokenError::UnknownIssuer)?;
        let rules = ExternalRules {
            algorithms: &issuer.algorithms,
            audience: &issuer.config.audience,
            leeway_secs: self.leeway_secs,
            max_age_secs: issuer.config.max_token_age_secs,
        };
        let claims = check_external_claims(&jwt, &rules, now)?;
        let keys = self
            .issuer_keys(issuer, jwt.kid())
            .await
            .ok_or(ExternalTokenError::KeysUnavailable)?;
        jwt.verify(token, &keys).map_err(ExternalTokenError::from)?;
        if let Some(hash) = hash {
            self.verified.insert(
                hash,
                Verified {
                    issuer: place,
                    sub: claims.sub.to_owned(),
                    kid: jwt.kid().map(str::to_owned),
                    refused_from: claims.refused_from,
                    keys,
                },
            );
        }
        self.map(issuer, claims.sub).await
    }

    /// The one client `sub` of `issuer` maps to.
    async fn map(
        &self,
        issuer: &TrustedIssuer,
        sub: &str,
    ) -> Result<FederatedIdentity, FederationFailure> {
        let client_id = match self
            .subjects
            .lookup(&issuer.config.name, sub)
            .await
            .map_err(FederationFailure::Store)?
        {
            SubjectMatch::One(client_id) => client_id,
            SubjectMatch::None => return Err(ExternalTokenError::Unmapped.into()),
            SubjectMatch::Many => return Err(ExternalTokenError::Ambiguous.into()),
        };
        Ok(FederatedIdentity {
            client_id,
            issuer_name: issuer.config.name.clone(),
            actor: Actor {
                iss: issuer.config.issuer.clone(),
                sub: sub.to_owned(),
            },
        })
    }

    /// The issuer's keys: cached, or fetched (an unknown `kid` fetches
    /// again, at most once per `jwks_fetch.min_refetch_interval_secs`).
    async fn issuer_keys(
        &self,
        issuer: &TrustedIssuer,
        kid: Option<&str>,
    ) -> Option<Arc<PublicKeySet>> {
        let url = self.jwks_uri(issuer).await?;
        self.fetcher.keys(&url, kid).await.ok()
    }

    /// The issuer's JWK Set URL: configured, or discovered once.
    async fn jwks_uri(&self, issuer: &TrustedIssuer) -> Option<String> {
        if let Some(url) = read(&issuer.jwks_uri) {
            return Some(url);
        }
        let mut last = issuer.discovering.lock().await;
        if let Some(url) = read(&issuer.jwks_uri) {
            return Some(url);
        }
        if last.is_some_and(|at| at.elapsed() < DISCOVERY_RETRY) {
            return None;
        }
        *last = Some(Instant::now());
        match discover(&self.fetcher, &issuer.config.issuer).await {
            Ok(url) => {
                write(&issuer.jwks_uri, Some(url.clone()));
                write(&issuer.discovery_error, None);
                Some(url)
            }
            Err(e) => {
                tracing::warn!(issuer = issuer.config.name.as_str(), error = %e, "discovery failed");
                write(&issuer.discovery_error, Some(e.to_string()));
                None
            }
        }
    }

    /// Fetches the keys of the issuer named `name` now (bypassing the
    /// cache's freshness, not its refetch interval).
    pub async fn refresh(&self, name: &str) -> Option<IssuerStatus> {
        let issuer = self.issuers.iter().find(|i| i.config.name == name)?;
        if let Some(url) = self.jwks_uri(issuer).await {
            // The outcome is in the status returned.
            let _ = self.fetcher.refetch(&url).await;
        }
        Some(self.status_of(issuer))
    }

    /// Every trusted issuer's state.
    pub fn statuses(&self) -> Vec<IssuerStatus> {
        self.issuers.iter().map(|i| self.status_of(i)).collect()
    }

    fn status_of(&self, issuer: &TrustedIssuer) -> IssuerStatus {
        let jwks_uri = read(&issuer.jwks_uri);
        IssuerStatus {
            name: issuer.config.name.clone(),
            issuer: issuer.config.issuer.clone(),
            keys: jwks_uri
                .as_deref()
                .and_then(|u| self.fetcher.status(u))
                .unwrap_or_default(),
            jwks_uri,
            discovery_error: read(&issuer.discovery_error),
        }
    }

    /// The change feed saw a client change: read the subjects again.
    pub fn subjects_changed(&self) {
        self.subjects.stale.store(true, Ordering::Release);
    }

    /// The trusted issuer with this name is configured.
    pub fn has_issuer(&self, name: &str) -> bool {
        self.issuers.iter().any(|i| i.config.name == name)
    }
}

/// Why an issuer's keys could not be had: discovery gave no JWK Set URL,
/// or the set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The discovery document could not be fetched.
    #[error("discovery: {0}")]
    Fetch(FetchError),
    /// The JWK Set could not be fetched.
    #[error(transparent)]
    Keys(FetchError),
    /// Not JSON, or without an https `jwks_uri`.
    #[error("discovery: the document has no https:// jwks_uri")]
    NoJwksUri,
    /// The document names another issuer (OpenID Connect Discovery 4.3).
    #[error("discovery: the document names another issuer")]
    IssuerMismatch,
}

/// Reads `{issuer}/.well-known/openid-configuration` and returns its
/// `jwks_uri` (HTTPS), checking the document names the same issuer.
pub async fn discover(fetcher: &JwksFetcher, issuer: &str) -> Result<String, DiscoveryError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let url = url::Url::parse(&url).map_err(|_| DiscoveryError::Fetch(FetchError::NotHttps))?;
    let body = fetcher
        .fetch_document(&url)
        .await
        .map_err(DiscoveryError::Fetch)?;
    let doc: Value = serde_json::from_slice(&body).map_err(|_| DiscoveryError::NoJwksUri)?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(DiscoveryError::IssuerMismatch);
    }
    doc.get("jwks_uri")
        .and_then(Value::as_str)
        .filter(|u| url::Url::parse(u).is_ok_and(|u| u.scheme() == "https"))
        .map(str::to_owned)
        .ok_or(DiscoveryError::NoJwksUri)
}

/// Fetches `issuer`'s keys once, bypassing any cache: discovery when it
/// has no `jwks_uri`, then the JWK Set. Returns the URL and the keys.
pub async fn fetch_issuer_keys(
    fetcher: &JwksFetcher,
    issuer: &TrustedIssuerConfig,
) -> Result<(String, PublicKeySet), DiscoveryError> {
    let url = if issuer.jwks_uri.is_empty() {
        discover(fetcher, &issuer.issuer).await?
    } else {
        issuer.jwks_uri.clone()
    };
    let keys = fetcher.fetch(&url).await.map_err(DiscoveryError::Keys)?;
    Ok((url, keys))
}

/// The federated subjects, held in memory and read again after
/// `refresh`, after a change on the feed, or (at most once a second) when
/// a subject matches no client.
struct SubjectIndex {
    store: Arc<dyn ClientStore>,
    refresh: Duration,
    held: RwLock<Option<(Arc<SubjectTable>, Instant)>>,
    stale: AtomicBool,
    /// Held while reading the store; the time of the last read.
    loading: tokio::sync::Mutex<Option<Instant>>,
}

impl SubjectIndex {
    async fn lookup(&self, issuer: &str, sub: &str) -> Result<SubjectMatch, StoreError> {
        let (subjects, loaded) = self.current().await?;
        let found = subjects.lookup(issuer, sub);
        if found == SubjectMatch::None && loaded.elapsed() >= MISS_RELOAD_INTERVAL {
            let (subjects, _) = self.load(Some(loaded)).await?;
            return Ok(subjects.lookup(issuer, sub));
        }
        Ok(found)
    }

    async fn current(&self) -> Result<(Arc<SubjectTable>, Instant), StoreError> {
        let held = read(&self.held);
        match held {
            Some((subjects, at))
                if at.elapsed() < self.refresh && !self.stale.load(Ordering::Acquire) =>
            {
                Ok((subjects, at))
            }
            _ => self.load(held.map(|(_, at)| at)).await,
        }
    }

    /// Reads the store, unless another task did since `seen` was loaded.
    async fn load(
        &self,
        seen: Option<Instant>,
    ) -> Result<(Arc<SubjectTable>, Instant), StoreError> {
        let _loading = self.loading.lock().await;
        if let Some((subjects, at)) = read(&self.held)
            && seen.is_some_and(|seen| at > seen)
        {
            return Ok((subjects, at));
        }
        self.stale.store(false, Ordering::Release);
        match self.store.federated_subjects().await {
            Ok(subjects) => {
                let loaded = (Arc::new(SubjectTable::new(&subjects)), Instant::now());
                write(&self.held, Some(loaded.clone()));
                Ok(loaded)
            }
            Err(e) => {
                self.stale.store(true, Ordering::Release);
                // Keep serving what was read before, if anything.
                read(&self.held).ok_or(e)
            }
        }
    }
}
