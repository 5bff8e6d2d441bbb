//! Client authentication by JWT assertion (`private_key_jwt`, RFC 7523):
//! the claims and signature checks of `domain::assertion`, with the
//! client's keys from its record or its `jwks_uri`, and each `jti`
//! accepted once.

use std::sync::Arc;

use crate::cache::ClientCache;
use crate::config::ClientAuthConfig;
use crate::domain::assertion::{AssertionError, AssertionRules, check_assertion};
use crate::domain::client::{Client, Credential};
use crate::jwks_fetch::JwksFetcher;
use crate::keys::public::PublicKeySet;
use crate::keys::{Algorithm, SigningKey, generate_pkcs8};
use crate::replay::{ReplayGuard, Use};
use crate::store::StoreError;

/// Why an assertion did not authenticate anyone.
#[derive(Debug, thiserror::Error)]
pub enum AssertionFailure {
    /// The assertion is refused (`invalid_client`); the reason is for the
    /// log only.
    #[error("{0}")]
    Refused(&'static str),
    /// The store could not be asked for the client: nothing is known to be
    /// wrong, retry.
    #[error("client lookup: {0}")]
    ClientLookup(#[source] StoreError),
    /// The store could not record the `jti` (fleet-wide replay check): the
    /// assertion is not known to be used, retry.
    #[error("replay check: {0}")]
    ReplayCheck(#[source] StoreError),
    /// Only clients in memory are served now, and this one is not.
    #[error("the client is not in memory")]
    NotCached,
}

impl From<AssertionError> for AssertionFailure {
    fn from(e: AssertionError) -> Self {
        Self::Refused(match e {
            AssertionError::TooLarge => "too large",
            AssertionError::Malformed => "malformed",
            AssertionError::Algorithm => "algorithm not accepted",
            AssertionError::Subject => "iss and sub are not one client id",
            AssertionError::ClientIdMismatch => "client_id differs from the subject",
            AssertionError::Audience => "aud does not name this server",
            AssertionError::MissingExp => "no exp",
            AssertionError::Expired => "expired",
            AssertionError::NotYetValid => "iat or nbf in the future",
            AssertionError::TooLong => "lives too long",
            AssertionError::TooOld => "too old",
            AssertionError::MissingJti => "no jti",
            AssertionError::UnknownKey => "no key of the client fits",
            AssertionError::Signature => "bad signature",
        })
    }
}

/// Keys that verify nothing, one of each type: what an assertion of an
/// unknown client is checked against. Made on first use (an RSA key takes a
/// moment), then kept.
static DECOYS: std::sync::LazyLock<PublicKeySet> = std::sync::LazyLock::new(|| {
    let jwks: Vec<serde_json::Value> = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
        .into_iter()
        .filter_map(|alg| {
            let der = generate_pkcs8(alg).ok()?;
            SigningKey::from_pkcs8(alg, &der).ok()?.public_jwk()
        })
        .map(|mut jwk| {
            // No alg and no kid: each decoy fits every algorithm of its type
            // and any header.
            if let Some(obj) = jwk.as_object_mut() {
                obj.remove("alg");
                obj.remove("kid");
            }
            jwk
        })
        .collect();
    PublicKeySet::parse(serde_json::json!({ "keys": jwks }).to_string().as_bytes())
        .unwrap_or_default()
});

/// Checks client assertions for this server.
pub struct AssertionVerifier {
    audiences: Vec<String>,
    leeway_secs: i64,
    max_lifetime_secs: i64,
    fetcher: Arc<JwksFetcher>,
    replay: ReplayGuard,
}

/// Whether the keys of a `jwks_uri` may be fetched for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Read the store and fetch keys as needed.
    Full,
    /// Only what is in memory (failed authentications are over the
    /// server-wide ceiling).
    MemoryOnly,
}

impl AssertionVerifier {
    /// A verifier accepting `audiences` (the issuer and this server's
    /// endpoint URLs), with the lifetime and clock-skew limits of `config`.
    pub fn new(
        audiences: Vec<String>,
        config: &ClientAuthConfig,
        fetcher: Arc<JwksFetcher>,
        replay: ReplayGuard,
    ) -> Self {
        Self {
            audiences,
            leeway_secs: config.assertion_leeway_secs,
            max_lifetime_secs: config.max_assertion_lifetime_secs,
            fetcher,
            replay,
        }
    }

    /// The accepted `aud` values.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The `jti`s held in memory.
    pub fn replay_guard(&self) -> &ReplayGuard {
        &self.replay
    }

    /// Authenticates the client that signed `assertion`. `client_id`, when
    /// the request has one, must be the assertion's subject.
    pub async fn authenticate(
        &self,
        assertion: &str,
        client_id: Option<&str>,
        clients: &ClientCache,
        lookup: Lookup,
        now: i64,
    ) -> Result<Arc<Client>, AssertionFailure> {
        let audiences: Vec<&str> = self.audiences.iter().map(String::as_str).collect();
        let rules = AssertionRules {
            audiences: &audiences,
            leeway_secs: self.leeway_secs,
            max_lifetime_secs: self.max_lifetime_secs,
        };
        let checked = check_assertion(assertion, &rules, now)?;
        if client_id.is_some_and(|id| id != checked.client_id()) {
            return Err(AssertionError::ClientIdMismatch.into());
        }
        let client = match lookup {
            Lookup::Full => clients
                .get(checked.client_id())
                .await
                .map_err(AssertionFailure::ClientLookup)?,
            Lookup::MemoryOnly => Some(
                clients
                    .get_cached(checked.client_id())
                    .ok_or(AssertionFailure::NotCached)?,
            ),
        };
        let Some(client) = client.filter(|c| c.accepts(Credential::Assertion)) else {
            // The same signature check as for a real client, so the time
            // taken does not tell which client ids exist.
            std::hint::black_box(checked.verifies_with_any(assertion, &DECOYS));
            return Err(AssertionFailure::Refused(
                "no enabled private_key_jwt client",
            ));
        };
        let keys = self
            .client_keys(&client, checked.kid(), lookup)
            .await
            .ok_or(AssertionFailure::Refused(
                "the client's keys are unavailable",
            ))?;
        let verified = checked.verify(assertion, &keys)?;
        let until = verified.exp.saturating_add(self.leeway_secs);
        match self
            .replay
            .record(&verified.client_id, &verified.jti, until, now)
            .await
        {
            Ok(Use::First) => Ok(client),
            Ok(Use::Replay) => Err(AssertionFailure::Refused("jti replayed")),
            Err(e) => Err(AssertionFailure::ReplayCheck(e)),
        }
    }

    /// The client's registered keys, or those at its `jwks_uri`.
    async fn client_keys(
        &self,
        client: &Client,
        kid: Option<&str>,
        lookup: Lookup,
    ) -> Option<Arc<PublicKeySet>> {
        if let Some(jwks) = &client.jwks {
            return Some(Arc::clone(jwks.keys()));
        }
        let url = client.jwks_uri.as_deref()?;
        match lookup {
            Lookup::Full => self.fetcher.keys(url, kid).await.ok(),
            Lookup::MemoryOnly => self.fetcher.cached(url),
        }
    }
}
