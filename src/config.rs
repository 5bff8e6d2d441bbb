//! Configuration: `config.toml`, then environment overrides, then validation
//! into typed values. The environment is read through [`Environment`] so tests
//! pass a map instead of touching the process environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::{Algorithm, MIN_HMAC_SECRET_LEN};

/// Prefix of per-setting environment overrides: `AUTH_SERVER_<SECTION>_<KEY>`.
pub const ENV_PREFIX: &str = "AUTH_SERVER_";

/// Where environment variables come from.
pub trait Environment {
    /// All variables, as name/value pairs.
    fn vars(&self) -> Vec<(String, String)>;
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
    /// Development conveniences.
    pub dev: DevConfig,
    /// Scope definitions (`[[scope]]` tables): names and the endpoints they grant.
    #[serde(rename = "scope")]
    pub scopes: Vec<ScopeRule>,
    /// HS256 secret, from `JWT_SECRET` only (never from the file).
    #[serde(skip)]
    pub jwt_secret: Option<Secret>,
    /// Database password, from `DB_PASSWORD` only.
    #[serde(skip)]
    pub db_password: Option<Secret>,
}

/// A secret string whose `Debug` never prints it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Listener settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Seconds a client has to finish the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds a client has to send the request headers.
    pub header_read_timeout_secs: u64,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Milliseconds between closing the listener and closing idle
    /// connections on shutdown, so connections accepted at the last moment
    /// still get their first request answered.
    pub drain_grace_ms: u64,
    /// Largest request head (request line plus headers) in bytes.
    pub max_header_bytes: usize,
    /// Bind with `SO_REUSEPORT`, so a new binary can start on the same port
    /// before the old one drains (zero-downtime swaps).
    pub reuse_port: bool,
    /// File the server writes its process id to (deploy scripts signal it);
    /// empty: none.
    pub pid_file: String,
}

/// TLS certificate settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; empty means a generated dev certificate.
    pub cert: String,
    /// PEM private key for `cert`.
    pub key: String,
    /// Where the dev certificate is generated.
    pub dev_cert_dir: PathBuf,
}

/// HTTP routing and limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Prefix of the OAuth endpoints.
    pub base_path: String,
    /// Largest request body in bytes; larger gets 413.
    pub max_body_bytes: usize,
}

/// Access-token settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Signing algorithm: EdDSA, ES256, RS256 or HS256.
    pub algorithm: Algorithm,
    /// Default token lifetime in seconds.
    pub lifetime_secs: u32,
    /// Directory of the signing keys (generated on first run).
    pub key_dir: PathBuf,
    /// Audience for clients that have none configured.
    pub default_audience: String,
    /// Seconds of clock skew tolerated on `nbf`.
    pub nbf_leeway_secs: i64,
    /// Seconds of grace after `exp`.
    pub exp_leeway_secs: i64,
}

/// Store settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// PostgreSQL URL; empty means the embedded store.
    pub url: String,
    /// File of the embedded store.
    pub sqlite_path: PathBuf,
    /// Apply pending migrations at start.
    pub migrate_on_start: bool,
    /// Most PostgreSQL connections in the pool.
    pub max_connections: usize,
    /// Seconds to open one PostgreSQL connection (TCP, TLS and login).
    pub connect_timeout_secs: u64,
    /// Seconds a store call waits for a free pooled connection.
    pub pool_wait_timeout_secs: u64,
    /// Seconds PostgreSQL lets one statement run (`statement_timeout`).
    pub statement_timeout_secs: u64,
}

/// In-memory cache settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Seconds a client record is served from memory before re-reading it
    /// (changes arrive sooner through the change feed).
    pub client_ttl_secs: u64,
    /// Most client records kept in memory.
    pub client_capacity: u64,
    /// Most verified tokens kept in the validation cache.
    pub validation_capacity: u64,
    /// Most rejected tokens remembered (flood shield).
    pub rejected_capacity: u64,
    /// Seconds a rejected token is remembered.
    pub rejected_ttl_secs: u64,
    /// Milliseconds between polls of the store's change feed (revocations
    /// and client changes from other instances).
    pub change_poll_interval_ms: u64,
}

/// Rate limits (token buckets).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per second for the whole instance (0 disables the bucket).
    pub global_rps: u32,
    /// Burst above `global_rps`.
    pub global_burst: u32,
    /// Default requests per second per client (token requests plus
    /// validations of its tokens); a client record can override it.
    pub client_rps: u32,
    /// Burst above `client_rps`.
    pub client_burst: u32,
    /// Failed client authentications allowed per IP per minute.
    pub failed_auth_per_ip_per_minute: u32,
    /// Burst of failed authentications before the per-minute rate applies.
    pub failed_auth_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            global_rps: 100_000,
            global_burst: 20_000,
            client_rps: 1_000,
            client_burst: 2_000,
            failed_auth_per_ip_per_minute: 60,
            failed_auth_burst: 20,
        }
    }
}

/// Log settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Level filter (`RUST_LOG` syntax); `RUST_LOG` overrides.
    pub level: String,
    /// Directory of `auth-server.log`; empty disables the file.
    pub dir: String,
    /// Size at which the log file is rotated, in bytes.
    pub max_file_bytes: u64,
    /// Rotated files kept (`auth-server.log.1` is the newest).
    pub max_files: usize,
}

/// One `[[scope]]` table: a scope and the endpoints it grants.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    /// The scope token.
    pub name: String,
    /// What the scope is for, for operators.
    #[serde(default)]
    pub description: String,
    /// Endpoint URL patterns (`*` one segment, trailing `**` any rest).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// HTTP methods the scope grants; empty means all.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// Development conveniences; ignored in production.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// Create a demo client on first run when the store is empty.
    pub demo_client: bool,
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
            dev: DevConfig::default(),
            scopes: Vec::new(),
            jwt_secret: None,
            db_password: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 8443)),
            max_connections: 10_000,
            tls_handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            shutdown_timeout_secs: 30,
            drain_grace_ms: 1_000,
            max_header_bytes: 80 * 1024,
            reuse_port: true,
            pid_file: "run/auth-server.pid".into(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: String::new(),
            key: String::new(),
            dev_cert_dir: PathBuf::from("certs"),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            base_path: "/auth-server/v1".into(),
            max_body_bytes: 64 * 1024,
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::EdDSA,
            lifetime_secs: 900,
            key_dir: PathBuf::from("certs"),
            default_audience: "auth-server".into(),
            nbf_leeway_secs: 5,
            exp_leeway_secs: 0,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            sqlite_path: PathBuf::from("data/auth-server.db"),
            migrate_on_start: true,
            max_connections: 200,
            connect_timeout_secs: 5,
            pool_wait_timeout_secs: 5,
            statement_timeout_secs: 5,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            client_ttl_secs: 300,
            client_capacity: 100_000,
            validation_capacity: 100_000,
            rejected_capacity: 10_000,
            rejected_ttl_secs: 10,
            change_poll_interval_ms: 1_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            dir: "log".into(),
            max_file_bytes: 50 * 1024 * 1024,
            max_files: 10,
        }
    }
}

impl Default for DevConfig {
    fn default() -> Self {
        Self { demo_client: true }
    }
}

/// Sections that `AUTH_SERVER_<SECTION>_<KEY>` can address.
const SECTIONS: &[&str] = &[
    "server", "tls", "http", "token", "database", "cache", "limits", "log", "dev",
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
        let vars = env.vars();
        apply_env_overrides(&mut table, &vars)?;
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(one_line(&e.to_string())))?;
        for (name, value) in vars {
            match name.as_str() {
                "JWT_SECRET" => config.jwt_secret = Some(Secret(value)),
                "DB_PASSWORD" => config.db_password = Some(Secret(value)),
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
        if l.client_rps == 0 || l.failed_auth_per_ip_per_minute == 0 {
            return invalid(
                "limits.client_rps and limits.failed_auth_per_ip_per_minute must be at least 1",
            );
        }
        if self.server.max_connections == 0 {
            return invalid("server.max_connections must be at least 1");
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
            "\n# JWT_SECRET: {}\n# DB_PASSWORD: {}\n",
            mask(&self.jwt_secret),
            mask(&self.db_password)
        ));
        out
    }
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
            "AUTH_SERVER_CONFIG" => {}
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
