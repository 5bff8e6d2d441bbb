//! The state every request shares, built once at start by `app` (and by the
//! benches the same way): keys, caches, validator, limits, metrics, serving
//! status. The HTTP layer reads it; it does not own it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;

use crate::build_info;
use crate::cache::{CacheBudget, ClientCache, RevocationSet, ValidationCache};
use crate::client_assertion::AssertionVerifier;
use crate::config::{Config, RegistrationConfig, Secret};
use crate::domain::dpop::ProofWindow;
use crate::domain::endpoint::{
    EndpointPattern, EndpointRule, NormalizedUrl, ScopeRules, normalize_url,
};
use crate::domain::token::TokenPolicy;
use crate::dpop::DpopChecker;
use crate::federation::Federation;
use crate::jwks_fetch::{FetchError, JwksFetcher};
use crate::keyring::KeyRing;
use crate::keys::KeySet;
use crate::limit::RateLimits;
use crate::limit::body::{BodyBudget, BodyLimits};
use crate::metrics::{Metrics, MetricsError};
use crate::replay::ReplayGuard;
use crate::store::{ClientStore, Store};
use crate::tls::client_auth::ClientCas;
use crate::validation::{Rejection, TokenValidator, Validated};

mod status;

pub use status::ServingStatus;

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A `[[scope]]` endpoint pattern does not parse.
    #[error("[[scope]] {scope}: endpoint {pattern:?}: {reason}")]
    ScopeRule {
        /// The scope.
        scope: String,
        /// The pattern.
        pattern: String,
        /// Why it was refused.
        reason: String,
    },
    /// The metric set could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The JWK Set fetcher's settings are unusable (its CA file).
    #[error(transparent)]
    JwksFetch(#[from] FetchError),
    /// The issuer gives no usable token endpoint URL.
    #[error("issuer {0:?}: the token endpoint URL under it is not usable: {1}")]
    Issuer(String, String),
}

/// Everything the handlers share, immutable after start (keys aside, which
/// are replaced whole when they change).
pub struct AppState {
    /// Prefix of the OAuth endpoints, e.g. `/auth-server/v1`.
    pub base_path: String,
    /// Settings that shape every token (issuer, lifetime, leeways).
    pub policy: TokenPolicy,
    /// Signing and verification keys; replaced whole when the stored keys
    /// change (change feed, lifecycle steps, SIGHUP), never read from the
    /// store on a request.
    pub keys: RwLock<Arc<KeySet>>,
    /// Seconds resource servers may cache the JWKS.
    pub jwks_max_age_secs: u32,
    /// Clients, cached in front of the store.
    pub clients: ClientCache,
    /// Client authentication by JWT assertion (`private_key_jwt`).
    pub assertions: AssertionVerifier,
    /// Trusted outside issuers and the federated subjects of clients.
    pub federation: Federation,
    /// The store, for writes (revocations).
    pub store: Arc<dyn Store>,
    /// Token validation: caches, revocation set, counters.
    pub validator: TokenValidator,
    /// Which scopes grant which endpoints.
    pub scope_rules: ScopeRules,
    /// Global, per-client and failed-authentication rate limits.
    pub limits: RateLimits,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Serving status for readiness: draining, store reachability.
    pub status: ServingStatus,
    /// Size, time and memory limits of request bodies.
    pub body_limits: BodyLimits,
    /// Bearer token `/metrics` requires; `None`: loopback callers only.
    pub metrics_token: Option<Secret>,
    /// Precomputed RFC 8414 metadata document.
    pub metadata_json: Bytes,
    /// Precomputed `/health` document.
    pub health_json: Bytes,
    /// DPoP proof checks and this instance's replay window.
    pub dpop: DpopChecker,
    /// The token endpoint's URL, as DPoP proofs sent to it name it (`htu`).
    pub token_endpoint: NormalizedUrl,
    /// The CAs that issue `tls_client_auth` client certificates; `None`:
    /// none configured (`tls.client_ca_file`), only self-signed
    /// registrations can authenticate with a certificate.
    pub client_cas: Option<ClientCas>,
    /// Seconds audit records are kept (`audit.retention_days`).
    pub audit_retention_secs: i64,
    /// Dynamic client registration settings.
    pub registration: RegistrationConfig,
    /// The stored signing keys, for the admin API (`None` under HS256).
    pub key_ring: Option<Arc<KeyRing>>,
}

impl AppState {
    /// Builds the state from the validated `config`, the `issuer` in use (it
    /// depends on the bound port), the parsed `keys`, the `store` and the
    /// revocation set loaded from it.
    pub fn new(
        config: &Config,
        issuer: &str,
        keys: KeySet,
        store: Arc<dyn Store>,
        revocations: Arc<RevocationSet>,
    ) -> Result<Self, StateError> {
        let cache = &config.cache;
        let metrics = Metrics::new()?;
        let fetcher = Arc::new(JwksFetcher::new(&config.jwks_fetch)?);
        let federation = Federation::new(
            &config.federation,
            Arc::clone(&fetcher),
            Arc::clone(&store) as Arc<dyn ClientStore>,
        );
        let assertions = AssertionVerifier::new(
            crate::metadata::assertion_audiences(issuer),
            &config.client_auth,
            fetcher,
            ReplayGuard::new(
                config.client_auth.replay_cache_capacity,
                config.client_auth.client_assertion_replay,
                Arc::clone(&store),
            ),
        );
        let body_budget = BodyBudget::new(
            config.http.max_buffered_body_bytes,
            metrics.buffered_body_bytes.clone(),
        );
        let token_endpoint = normalize_url(&format!("{issuer}/oauth/token"))
            .map_err(|e| StateError::Issuer(issuer.to_owned(), e.to_string()))?;
        Ok(Self {
            dpop: DpopChecker::new(
                ProofWindow {
                    max_age_secs: i64::from(config.dpop.proof_max_age_secs),
                    future_skew_secs: i64::from(config.dpop.proof_future_skew_secs),
                },
                config.dpop.replay_capacity,
            ),
            token_endpoint,
            client_cas: None,
            base_path: config.base_path().to_owned(),
            metadata_json: crate::metadata::metadata_document(
                issuer,
                &keys,
                &config.scope_names(),
                config.registration.enabled,
            )
            .into(),
            health_json: build_info::health_document(),
            policy: TokenPolicy {
                issuer: issuer.to_owned(),
                default_lifetime_secs: config.token.lifetime_secs,
                default_audience: config.token.default_audience.clone(),
                nbf_leeway_secs: config.token.nbf_leeway_secs,
                exp_leeway_secs: config.token.exp_leeway_secs,
            },
            keys: RwLock::new(Arc::new(keys)),
            jwks_max_age_secs: config.http.jwks_max_age_secs,
            clients: ClientCache::new(
                Arc::clone(&store) as Arc<dyn ClientStore>,
                CacheBudget {
                    entries: cache.client_capacity,
                    bytes: cache.client_max_bytes,
                },
                Duration::from_secs(cache.client_ttl_secs),
            ),
            assertions,
            federation,
            store,
            validator: TokenValidator::new(
                ValidationCache::new(
                    CacheBudget {
                        entries: cache.validation_capacity,
                        bytes: cache.validation_max_bytes,
                    },
                    cache.rejected_capacity,
                    Duration::from_secs(cache.rejected_ttl_secs),
                ),
                revocations,
            ),
            scope_rules: compile_scope_rules(config)?,
            limits: RateLimits::new(&config.limits),
            status: ServingStatus::default(),
            metrics,
            body_limits: BodyLimits {
                max_bytes: config.http.max_body_bytes,
                deadline: Duration::from_secs(config.http.body_read_timeout_secs),
                min_bytes_per_sec: config.http.body_min_bytes_per_sec,
                budget: Arc::new(body_budget),
            },
            metrics_token: config.metrics_token.clone(),
            audit_retention_secs: i64::from(config.audit.retention_days) * 86_400,
            registration: config.registration.clone(),
            key_ring: None,
        })
    }

    /// Current Unix time in seconds; the only clock the handlers read.
    pub fn now(&self) -> i64 {
        crate::clock::unix_now()
    }

    /// Validates a bearer token now (cache, signature, revocation, client).
    pub async fn validate_token(&self, token: &str) -> Result<Validated, Rejection> {
        self.validator
            .validate(token, &self.keys(), &self.policy, &self.clients, self.now())
            .await
    }

    /// The current keys (a cheap `Arc` clone; a reload swaps the whole set).
    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the keys (they changed in the store). Remembered rejections
    /// go too: a token refused for an unknown `kid` may carry a new key.
    pub fn replace_keys(&self, keys: KeySet) {
        {
            let mut guard = match self.keys.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            *guard = Arc::new(keys);
        }
        self.validator.forget_rejections();
    }
}

fn compile_scope_rules(config: &Config) -> Result<ScopeRules, StateError> {
    let mut rules = Vec::with_capacity(config.scopes.len());
    for rule in &config.scopes {
        let patterns = rule
            .endpoints
            .iter()
            .map(|p| {
                EndpointPattern::parse(p).map_err(|e| StateError::ScopeRule {
                    scope: rule.name.clone(),
                    pattern: p.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(EndpointRule {
            scope: rule.name.clone(),
            patterns,
            methods: rule
                .methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
        });
    }
    Ok(ScopeRules::new(rules))
}
