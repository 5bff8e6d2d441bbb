//! The `[client_auth]` and `[jwks_fetch]` tables: JWT client assertions
//! (`private_key_jwt`) and fetching the JWK Sets they are checked with.

use serde::{Deserialize, Serialize};

/// Where assertion `jti`s are remembered against replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayScope {
    /// In this instance's memory only: free, but an assertion replayed to
    /// another instance of a fleet is accepted there once.
    #[default]
    Instance,
    /// In the store as well, shared by every instance: one store write per
    /// assertion.
    Fleet,
}

/// Client authentication with JWT assertions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuthConfig {
    /// `instance` or `fleet`: where a used assertion's `jti` is remembered.
    pub client_assertion_replay: ReplayScope,
    /// Seconds of clock skew allowed on an assertion's `exp`, `iat`, `nbf`.
    pub assertion_leeway_secs: i64,
    /// Longest assertion accepted: `exp` at most this many seconds after
    /// `iat`. Its `jti` is remembered that long.
    pub max_assertion_lifetime_secs: i64,
    /// Most assertion `jti`s remembered in memory at once.
    pub replay_cache_capacity: u64,
}

impl Default for ClientAuthConfig {
    fn default() -> Self {
        Self {
            client_assertion_replay: ReplayScope::Instance,
            assertion_leeway_secs: 30,
            max_assertion_lifetime_secs: crate::domain::assertion::DEFAULT_MAX_LIFETIME_SECS,
            replay_cache_capacity: 100_000,
        }
    }
}

/// Fetching JWK Sets from the `jwks_uri`s clients register.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksFetchConfig {
    /// PEM file of CA certificates trusted besides the system's roots
    /// (a private PKI); empty: the system's roots only.
    pub ca_file: String,
    /// Milliseconds to connect (TCP and TLS handshake).
    pub connect_timeout_ms: u64,
    /// Milliseconds for the whole fetch, connect included.
    pub timeout_ms: u64,
    /// Largest JWK Set document accepted, in bytes.
    pub max_bytes: usize,
    /// Seconds a fetched set is used before it is fetched again.
    pub cache_ttl_secs: u64,
    /// Least seconds between two fetches of one URL, when an assertion names
    /// an unknown `kid` or a fetch failed.
    pub min_refetch_interval_secs: u64,
    /// Most URLs whose keys are kept in memory.
    pub max_urls: u64,
}

impl Default for JwksFetchConfig {
    fn default() -> Self {
        Self {
            ca_file: String::new(),
            connect_timeout_ms: 2_000,
            timeout_ms: 5_000,
            max_bytes: 64 * 1024,
            cache_ttl_secs: 300,
            min_refetch_interval_secs: 5,
            max_urls: 10_000,
        }
    }
}

impl ClientAuthConfig {
    /// Refuses out-of-range values; the message names the setting.
    pub(super) fn check(&self) -> Result<(), String> {
        if !(0..=300).contains(&self.assertion_leeway_secs) {
            return Err("client_auth.assertion_leeway_secs must be between 0 and 300".into());
        }
        if !(60..=3_600).contains(&self.max_assertion_lifetime_secs) {
            return Err(
                "client_auth.max_assertion_lifetime_secs must be between 60 and 3600".into(),
            );
        }
        if !(1_000..=100_000_000).contains(&self.replay_cache_capacity) {
            return Err(
                "client_auth.replay_cache_capacity must be between 1000 and 100000000".into(),
            );
        }
        Ok(())
    }
}

impl JwksFetchConfig {
    /// Refuses out-of-range values; the message names the setting.
    pub(super) fn check(&self) -> Result<(), String> {
        if !(100..=60_000).contains(&self.connect_timeout_ms)
            || !(self.connect_timeout_ms..=60_000).contains(&self.timeout_ms)
        {
            return Err("jwks_fetch timeouts must be between 100 and 60000 ms, \
                        connect_timeout_ms at most timeout_ms"
                .into());
        }
        if !(1_024..=crate::keys::public::MAX_JWKS_BYTES).contains(&self.max_bytes) {
            return Err(format!(
                "jwks_fetch.max_bytes must be between 1024 and {}",
                crate::keys::public::MAX_JWKS_BYTES
            ));
        }
        if !(1..=86_400).contains(&self.cache_ttl_secs)
            || !(1..=3_600).contains(&self.min_refetch_interval_secs)
        {
            return Err("jwks_fetch.cache_ttl_secs must be between 1 and 86400, \
                        min_refetch_interval_secs between 1 and 3600"
                .into());
        }
        if self.max_urls == 0 {
            return Err("jwks_fetch.max_urls must be at least 1".into());
        }
        Ok(())
    }
}
