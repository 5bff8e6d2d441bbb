//! Configuration: `config.toml`, then environment overrides, then validation
//! into typed values. This file holds the typed [`Config`] and the load
//! order; where the environment and secret files come in is `config/env.rs`,
//! the checks are `config/validate.rs`, the `[section]` tables
//! `config/sections.rs`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::Algorithm;

mod client_auth;
mod env;
mod federation;
mod sections;
mod validate;

pub use env::{
    ENV_PREFIX, Environment, FILE_SUFFIX, FILE_VARS, KEK_VAR, NAMED_VARS, ProcessEnvironment,
};
use env::{apply_env_overrides, read_secret_files};

pub use client_auth::{ClientAuthConfig, JwksFetchConfig, ReplayScope};
pub use federation::{FederationConfig, TrustedIssuerConfig, is_valid_issuer_name};
pub use sections::{
    AuditConfig, CacheConfig, DatabaseConfig, DevConfig, DpopConfig, HttpConfig, LimitsConfig,
    LogConfig, RegistrationConfig, ScopeRule, ServerConfig, TlsConfig, TokenConfig,
};

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
    /// Refuses anything unsafe (the checks are in `config/validate.rs`).
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
    /// DPoP proof settings.
    pub dpop: DpopConfig,
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
    /// JWT client assertions (`private_key_jwt`).
    pub client_auth: ClientAuthConfig,
    /// Fetching clients' JWK Sets from their `jwks_uri`.
    pub jwks_fetch: JwksFetchConfig,
    /// Trusted outside issuers (workload identity federation).
    pub federation: FederationConfig,
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
            dpop: DpopConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            audit: AuditConfig::default(),
            registration: RegistrationConfig::default(),
            dev: DevConfig::default(),
            client_auth: ClientAuthConfig::default(),
            jwks_fetch: JwksFetchConfig::default(),
            federation: FederationConfig::default(),
            scopes: Vec::new(),
            jwt_secret: None,
            jwt_secret_previous: None,
            kek: None,
            db_password: None,
            metrics_token: None,
        }
    }
}

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

    /// Whether signing keys are stored (sealed under a KEK): every
    /// algorithm but HS256, whose key is `JWT_SECRET`.
    pub fn stores_signing_keys(&self) -> bool {
        self.token.algorithm != Algorithm::HS256
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
