//! Validation of the typed configuration: ranges, settings that must agree
//! with each other, and what production mode refuses. Every refusal is one
//! line for the operator and never includes a secret's value.

use super::{Config, ConfigError, KEK_VAR, MIN_METRICS_TOKEN_LEN, Mode, requires_tls};
use crate::keys::sealed::Kek;
use crate::keys::{Algorithm, MIN_HMAC_SECRET_LEN};

impl Config {
    /// Refuses values out of range or contradicting each other.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        let base = &self.http.base_path;
        if !base.starts_with('/') || base.ends_with('/') || base.contains("//") {
            return invalid("http.base_path must start with '/' and not end with '/'");
        }
        if self.http.max_body_bytes == 0 || self.http.max_body_bytes > 16 * 1024 * 1024 {
            return invalid("http.max_body_bytes must be between 1 and 16 MiB");
        }
        if self.http.max_buffered_body_bytes < self.http.max_body_bytes {
            return invalid("http.max_buffered_body_bytes must be at least http.max_body_bytes");
        }
        if !(1..=300).contains(&self.http.body_read_timeout_secs) {
            return invalid("http.body_read_timeout_secs must be between 1 and 300");
        }
        if !(1..=10_000).contains(&self.server.h2_max_concurrent_streams) {
            return invalid("server.h2_max_concurrent_streams must be between 1 and 10000");
        }
        if self.cache.client_capacity == 0
            || self.cache.validation_capacity == 0
            || self.cache.client_max_bytes < 1024 * 1024
            || self.cache.validation_max_bytes < 1024 * 1024
        {
            return invalid(
                "cache capacities must be at least 1 entry and cache byte budgets at least 1 MiB",
            );
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.0.len() < MIN_METRICS_TOKEN_LEN)
        {
            return Err(ConfigError::Invalid(format!(
                "METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LEN} bytes"
            )));
        }
        if !(1..=36_500).contains(&self.audit.retention_days) {
            return invalid("audit.retention_days must be between 1 and 36500");
        }
        if !(1..=86_400).contains(&self.token.lifetime_secs) {
            return invalid("token.lifetime_secs must be between 1 and 86400");
        }
        if !(0..=300).contains(&self.token.nbf_leeway_secs)
            || !(0..=300).contains(&self.token.exp_leeway_secs)
        {
            return invalid("token leeways must be between 0 and 300 seconds");
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            return invalid("tls.cert and tls.key must be set together");
        }
        if !(1..=600).contains(&self.dpop.proof_max_age_secs)
            || self.dpop.proof_future_skew_secs > 300
            || self.dpop.replay_capacity == 0
        {
            return invalid(
                "dpop.proof_max_age_secs must be 1 to 600, dpop.proof_future_skew_secs at most \
                 300 and dpop.replay_capacity at least 1",
            );
        }
        if !self.issuer.is_empty() && !self.issuer.starts_with("https://") {
            return invalid("issuer must be an https:// URL");
        }
        if !(10..=60_000).contains(&self.cache.change_poll_interval_ms) {
            return invalid("cache.change_poll_interval_ms must be between 10 and 60000");
        }
        let l = &self.limits;
        if l.client_rps == 0
            || l.failed_auth_per_ip_per_minute == 0
            || l.validate_per_ip_rps == 0
            || l.failed_auth_global_per_second == 0
        {
            return invalid(
                "limits.client_rps, validate_per_ip_rps, failed_auth_per_ip_per_minute and \
                 failed_auth_global_per_second must be at least 1",
            );
        }
        if self.server.max_connections == 0 {
            return invalid("server.max_connections must be at least 1");
        }
        if !(1..=86_400).contains(&self.server.idle_timeout_secs) {
            return invalid("server.idle_timeout_secs must be between 1 and 86400");
        }
        let db = &self.database;
        if db.max_connections == 0 {
            return invalid("database.max_connections must be at least 1");
        }
        if [
            db.connect_timeout_secs,
            db.pool_wait_timeout_secs,
            db.statement_timeout_secs,
        ]
        .iter()
        .any(|secs| !(1..=3_600).contains(secs))
        {
            return invalid("database timeouts must be between 1 and 3600 seconds");
        }
        if self.server.max_header_bytes < 1024 {
            return invalid("server.max_header_bytes must be at least 1024");
        }
        if self.token.algorithm == Algorithm::HS256
            && self
                .jwt_secret
                .as_ref()
                .is_none_or(|s| s.0.len() < MIN_HMAC_SECRET_LEN)
        {
            return Err(ConfigError::Invalid(format!(
                "token.algorithm = HS256 needs JWT_SECRET of at least {MIN_HMAC_SECRET_LEN} bytes"
            )));
        }
        if self
            .jwt_secret_previous
            .as_ref()
            .is_some_and(|s| s.0.len() < MIN_HMAC_SECRET_LEN)
        {
            return Err(ConfigError::Invalid(format!(
                "JWT_SECRET_PREVIOUS must be at least {MIN_HMAC_SECRET_LEN} bytes"
            )));
        }
        self.validate_key_rotation()?;
        self.client_auth.check().map_err(ConfigError::Invalid)?;
        self.jwks_fetch.check().map_err(ConfigError::Invalid)?;
        self.federation.check().map_err(ConfigError::Invalid)?;
        for rule in &self.scopes {
            if crate::domain::scope::ScopeSet::parse(&rule.name)
                .map_or(true, |s| s.iter().count() != 1)
            {
                return Err(ConfigError::Invalid(format!(
                    "[[scope]] name {:?} is not a single scope token",
                    rule.name
                )));
            }
        }
        if self.environment == Mode::Production {
            self.check_production()?;
        }
        Ok(())
    }

    /// The signing-key settings: a key must be published longer than
    /// resource servers cache the JWKS, and a given KEK must be usable.
    fn validate_key_rotation(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        let token = &self.token;
        if self.http.jwks_max_age_secs > 86_400 {
            return invalid("http.jwks_max_age_secs must be at most 86400");
        }
        if !(1..=604_800).contains(&token.key_publish_ahead_secs)
            || token.key_publish_ahead_secs <= self.http.jwks_max_age_secs
        {
            return invalid(
                "token.key_publish_ahead_secs must exceed http.jwks_max_age_secs (and be at most \
                 604800), so resource servers see a new key before any token carries it",
            );
        }
        if token.key_rotation_days > 3_650 || token.key_retire_leeway_secs > 86_400 {
            return invalid(
                "token.key_rotation_days must be at most 3650 and key_retire_leeway_secs at most 86400",
            );
        }
        // The message never includes the value.
        if self
            .kek
            .as_ref()
            .is_some_and(|kek| Kek::from_base64(&kek.0).is_err())
        {
            return Err(ConfigError::Invalid(format!(
                "{KEK_VAR} must be base64 of 32 random bytes"
            )));
        }
        Ok(())
    }

    /// Refusals of production mode that the configuration alone decides.
    pub(super) fn check_production(&self) -> Result<(), ConfigError> {
        let refuse = |msg: &str| Err(ConfigError::Production(msg.to_owned()));
        if self.tls.cert.is_empty() {
            return refuse(
                "no TLS certificate configured (tls.cert); dev certificates are not allowed",
            );
        }
        if !self.database.url.is_empty() && !requires_tls(&self.database.url) {
            return refuse("database.url must use TLS (sslmode=require)");
        }
        let level = self.log.level.to_ascii_lowercase();
        if level.contains("debug") || level.contains("trace") {
            return refuse("log.level must not be debug or trace");
        }
        if self.stores_signing_keys() && self.kek.is_none() && self.token.kek_file.is_empty() {
            return Err(ConfigError::Production(format!(
                "no key-encryption key for the signing keys: set {KEK_VAR} or token.kek_file"
            )));
        }
        Ok(())
    }
}
