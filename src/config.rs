//! Configuration: `config.toml`, then environment overrides, then validation
//! into typed values. The environment is read through [`Environment`] so tests
//! pass a map instead of touching the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::sealed::Kek;
use crate::keys::{Algorithm, MIN_HMAC_SECRET_LEN};

mod sections;

pub use sections::{
    AuditConfig, CacheConfig, DatabaseConfig, DevConfig, HttpConfig, LimitsConfig, LogConfig,
    RegistrationConfig, ScopeRule, ServerConfig, TlsConfig, TokenConfig,
};

/// Prefix of per-setting environment overrides: `AUTH_SERVER_<SECTION>_<KEY>`.
pub const ENV_PREFIX: &str = "AUTH_SERVER_";

/// The variable holding the key-encryption key (base64 of 32 bytes).
pub const KEK_VAR: &str = "AUTH_SERVER_KEK";

/// Variables read by name, besides the `AUTH_SERVER_<SECTION>_<KEY>`
/// overrides. `AUTH_SERVER_CONFIG` is read by the binary before the file.
pub const NAMED_VARS: &[&str] = &[
    "AUTH_SERVER_CONFIG",
    "ENVIRONMENT",
    "DATABASE_URL",
    "DB_PASSWORD",
    "JWT_SECRET",
    "JWT_SECRET_PREVIOUS",
    KEK_VAR,
    "METRICS_TOKEN",
];

/// Secrets that may come from a file instead: `<NAME>_FILE` names a file
/// whose contents stand for `<NAME>` (container and Kubernetes secrets are
/// mounted as files). Setting both is refused. The key-encryption key has a
/// file setting of its own, `token.kek_file`.
pub const FILE_VARS: &[&str] = &[
    "DATABASE_URL",
    "DB_PASSWORD",
    "JWT_SECRET",
    "JWT_SECRET_PREVIOUS",
    "METRICS_TOKEN",
];

/// Suffix of the variables that name a secret's file.
pub const FILE_SUFFIX: &str = "_FILE";

/// Where environment variables, and the secret files they name, come from.
pub trait Environment {
    /// All variables, as name/value pairs.
    fn vars(&self) -> Vec<(String, String)>;

    /// The contents of a file named by a `<NAME>_FILE` variable.
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }
}

impl Environment for BTreeMap<String, String> {
    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Why the configuration was refused. Each is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TOML (after overrides) does not match the schema.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value is out of range or contradicts another.
    #[error("invalid config: {0}")]
    Invalid(String),
    /// Production mode refuses this configuration.
    #[error("refusing to start in production: {0}")]
    Production(String),
    /// A `<NAME>_FILE` variable names a file that cannot be used, or is set
    /// together with `<NAME>`. The message names the variable and the file,
    /// never the contents.
    #[error("{var}: {reason}")]
    SecretFile {
        /// The variable (`JWT_SECRET_FILE`...).
        var: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Development or production mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Dev certificates, demo client and imported secrets allowed.
    #[default]
    Development,
    /// Refuses anything unsafe (see [`Config::check_production`]).
    Production,
}

/// The validated configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `development` or `production` (`ENVIRONMENT` overrides).
    pub environment: Mode,
    /// Issuer identifier; empty means `https://127.0.0.1:<port><base_path>`.
    pub issuer: String,
    /// Listener settings.
    pub server: ServerConfig,
    /// TLS certificate settings.
    pub tls: TlsConfig,
    /// HTTP routing and limits.
    pub http: HttpConfig,
    /// Access-token settings.
    pub token: TokenConfig,
    /// Store settings.
    pub database: DatabaseConfig,
    /// In-memory cache settings.
    pub cache: CacheConfig,
    /// Rate limits.
    pub limits: LimitsConfig,
    /// Log settings.
    pub log: LogConfig,
    /// Audit trail settings.
    pub audit: AuditConfig,
    /// Dynamic client registration settings.
    pub registration: RegistrationConfig,
    /// Development conveniences.
    pub dev: DevConfig,
    /// Scope definitions (`[[scope]]` tables): names and the endpoints they grant.
    #[serde(rename = "scope")]
    pub scopes: Vec<ScopeRule>,
    /// HS256 secret, from `JWT_SECRET` only (never from the file).
    #[serde(skip)]
    pub jwt_secret: Option<Secret>,
    /// The HS256 secret before the last change, from `JWT_SECRET_PREVIOUS`
    /// only: verifies, never signs.
    #[serde(skip)]
    pub jwt_secret_previous: Option<Secret>,
    /// The key-encryption key of the stored signing keys, from
    /// `AUTH_SERVER_KEK` only (else `token.kek_file`).
    #[serde(skip)]
    pub kek: Option<Secret>,
    /// Database password, from `DB_PASSWORD` only.
    #[serde(skip)]
    pub db_password: Option<Secret>,
    /// Bearer token that `/metrics` requires, from `METRICS_TOKEN` only.
    /// Unset: `/metrics` answers loopback callers only.
    #[serde(skip)]
    pub metrics_token: Option<Secret>,
}

/// Shortest `METRICS_TOKEN` accepted, in bytes.
pub const MIN_METRICS_TOKEN_LEN: usize = 32;

/// A secret string whose `Debug` never prints it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
impl Default for Config {
    fn default() -> Self {
        Self {
            environment: Mode::Development,
            issuer: String::new(),
            server: ServerConfig::default(),
            tls: TlsConfig::default(),
            http: HttpConfig::default(),
            token: TokenConfig::default(),
            database: DatabaseConfig::default(),
            cache: CacheConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            audit: AuditConfig::default(),
            registration: RegistrationConfig::default(),
            dev: DevConfig::default(),
            scopes: Vec::new(),
            jwt_secret: None,
            jwt_secret_previous: None,
            kek: None,
            db_password: None,
            metrics_token: None,
        }
    }
}

/// Sections that `AUTH_SERVER_<SECTION>_<KEY>` can address.
const SECTIONS: &[&str] = &[
    "server",
    "tls",
    "http",
    "token",
    "database",
    "cache",
    "limits",
    "log",
    "audit",
    "registration",
    "dev",
];

impl Config {
    /// Reads `path` (a missing default file is fine: defaults apply), applies
    /// the environment, validates.
    pub fn load(
        path: &Path,
        path_is_explicit: bool,
        env: &dyn Environment,
    ) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path_is_explicit => {
                String::new()
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::from_toml(&text, env)
    }

    /// Parses TOML text, applies the environment, validates.
    pub fn from_toml(text: &str, env: &dyn Environment) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse(one_line(&e.to_string())))?;
        let vars = read_secret_files(env.vars(), env)?;
        apply_env_overrides(&mut table, &vars)?;
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(one_line(&e.to_string())))?;
        for (name, value) in vars {
            match name.as_str() {
                "JWT_SECRET" => config.jwt_secret = Some(Secret(value)),
                "JWT_SECRET_PREVIOUS" => config.jwt_secret_previous = Some(Secret(value)),
                KEK_VAR => config.kek = Some(Secret(value)),
                "DB_PASSWORD" => config.db_password = Some(Secret(value)),
                "METRICS_TOKEN" => config.metrics_token = Some(Secret(value)),
                _ => {}
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
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

    /// Whether signing keys are stored (sealed under a KEK): every
    /// algorithm but HS256, whose key is `JWT_SECRET`.
    pub fn stores_signing_keys(&self) -> bool {
        self.token.algorithm != Algorithm::HS256
    }

    /// Refusals of production mode that the configuration alone decides.
    fn check_production(&self) -> Result<(), ConfigError> {
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

    /// Names of the configured scopes, for the metadata document.
    pub fn scope_names(&self) -> Vec<String> {
        self.scopes.iter().map(|s| s.name.clone()).collect()
    }

    /// The base path without a trailing slash.
    pub fn base_path(&self) -> &str {
        &self.http.base_path
    }

    /// The issuer for a server bound to `port`.
    pub fn issuer_for_port(&self, port: u16) -> String {
        if self.issuer.is_empty() {
            format!("https://127.0.0.1:{port}{}", self.http.base_path)
        } else {
            self.issuer.trim_end_matches('/').to_owned()
        }
    }

    /// The effective configuration as TOML with secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = mask_url_password(&shown.database.url);
        let mut out = toml::to_string_pretty(&shown).unwrap_or_default();
        let mask = |s: &Option<Secret>| if s.is_some() { "set (masked)" } else { "unset" };
        out.push_str(&format!(
            "\n# JWT_SECRET: {}\n# JWT_SECRET_PREVIOUS: {}\n# {KEK_VAR}: {}\n\
             # DB_PASSWORD: {}\n# METRICS_TOKEN: {}\n",
            mask(&self.jwt_secret),
            mask(&self.jwt_secret_previous),
            mask(&self.kek),
            mask(&self.db_password),
            mask(&self.metrics_token)
        ));
        out
    }
}

/// Replaces each `<NAME>_FILE` of [`FILE_VARS`] by `<NAME>` holding the
/// file's contents, trailing line breaks dropped (`echo secret > file` and
/// `kubectl create secret --from-file` both leave one).
fn read_secret_files(
    vars: Vec<(String, String)>,
    env: &dyn Environment,
) -> Result<Vec<(String, String)>, ConfigError> {
    let is_set = |name: &str| vars.iter().any(|(n, _)| n == name);
    let mut out = Vec::with_capacity(vars.len());
    for (name, value) in &vars {
        let Some(secret) = name
            .strip_suffix(FILE_SUFFIX)
            .filter(|secret| FILE_VARS.contains(secret))
        else {
            out.push((name.clone(), value.clone()));
            continue;
        };
        let refuse = |reason: String| ConfigError::SecretFile {
            var: name.clone(),
            reason,
        };
        if is_set(secret) {
            return Err(refuse(format!("set {secret} or {name}, not both")));
        }
        if value.is_empty() {
            return Err(refuse("is empty; it must name a file".into()));
        }
        let contents = env
            .read_file(Path::new(value))
            .map_err(|e| refuse(format!("cannot read {value}: {e}")))?;
        let contents = contents.trim_end_matches(['\n', '\r']);
        if contents.is_empty() {
            return Err(refuse(format!("{value} is empty")));
        }
        out.push((secret.to_owned(), contents.to_owned()));
    }
    Ok(out)
}

/// Applies `AUTH_SERVER_<SECTION>_<KEY>` and the named variables to the raw
/// table before typing, so overrides get the same validation as the file.
fn apply_env_overrides(
    table: &mut toml::Table,
    vars: &[(String, String)],
) -> Result<(), ConfigError> {
    for (name, value) in vars {
        match name.as_str() {
            "ENVIRONMENT" => {
                table.insert("environment".into(), value.to_ascii_lowercase().into());
            }
            "DATABASE_URL" => set_in_section(table, "database", "url", value.clone().into()),
            "AUTH_SERVER_CONFIG" | KEK_VAR => {}
            _ => {
                let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                    continue;
                };
                let rest = rest.to_ascii_lowercase();
                let value = parse_env_value(value);
                match rest.split_once('_') {
                    Some((section, key)) if SECTIONS.contains(&section) => {
                        set_in_section(table, section, key, value)
                    }
                    _ => {
                        table.insert(rest, value);
                    }
                }
            }
        }
    }
    Ok(())
}

fn set_in_section(table: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    let entry = table
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = entry {
        t.insert(key.to_owned(), value);
    }
}

/// Environment values are strings; numbers and booleans are typed like TOML.
fn parse_env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Does a PostgreSQL URL (or `key=value` connection string) demand TLS?
/// Only `sslmode=require` does: `prefer` silently falls back to plain text.
pub fn requires_tls(url: &str) -> bool {
    let params = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('?').map_or("", |(_, q)| q),
        None => url,
    };
    params
        .split(['&', ' '])
        .filter_map(|pair| pair.split_once('='))
        .rfind(|(key, _)| key.trim() == "sslmode")
        .is_some_and(|(_, value)| value.trim() == "require")
}

/// Replaces the password in a `postgres://user:pass@host/db` URL.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
