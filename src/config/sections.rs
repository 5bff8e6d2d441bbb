//! The typed `[section]` tables of the configuration and their defaults
//! (the defaults `config.toml` lists).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::keys::Algorithm;

/// Listener settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Connections served at once from one IPv4 address or one IPv6 /64;
    /// further ones are closed right after the accept. 0 disables the cap.
    pub max_connections_per_ip: usize,
    /// HTTP/2 streams a connection may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// Seconds a client has to finish the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds a client has to send the request headers. On HTTP/1.1 this
    /// also bounds the wait for the next request on a kept-alive connection.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight before
    /// the server closes it (GOAWAY on HTTP/2). HTTP/2 PINGs do not count as
    /// requests; a request in flight, however slow, is never cut.
    pub idle_timeout_secs: u64,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Milliseconds between closing the listener and closing idle
    /// connections on shutdown, so connections accepted at the last moment
    /// still get their first request answered.
    pub drain_grace_ms: u64,
    /// Milliseconds the server keeps accepting and serving on shutdown with
    /// `/health/ready` at 503, before the listener closes, so a load
    /// balancer's health check takes it out of rotation first. 0: close at
    /// once.
    pub unready_delay_ms: u64,
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
    /// PEM bundle of the CAs whose client certificates `tls_client_auth`
    /// clients may present; empty: no CA is trusted (self-signed client
    /// certificates still work). Read at start.
    pub client_ca_file: String,
}

/// HTTP routing and limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Prefix of the OAuth endpoints.
    pub base_path: String,
    /// Largest request body in bytes; larger gets 413.
    pub max_body_bytes: usize,
    /// Seconds a whole request body may take to arrive; later gets 408.
    pub body_read_timeout_secs: u64,
    /// Bytes per second a body must keep up after its first second; slower
    /// gets 408. 0: only the deadline applies.
    pub body_min_bytes_per_sec: u64,
    /// Request-body bytes buffered at once across all connections; a body
    /// that would pass it gets 503.
    pub max_buffered_body_bytes: usize,
    /// `max-age` of the JWKS response: how long resource servers may cache
    /// the published keys. `token.key_publish_ahead_secs` must exceed it.
    pub jwks_max_age_secs: u32,
}

/// Access-token settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Signing algorithm: EdDSA, ES256, RS256 or HS256.
    pub algorithm: Algorithm,
    /// Default token lifetime in seconds.
    pub lifetime_secs: u32,
    /// Directory of the development key-encryption key (`kek`, created on
    /// first run when none is configured) and of a signing key file from
    /// before keys were stored (`signing-<alg>.pem`, imported once).
    pub key_dir: PathBuf,
    /// File holding the key-encryption key (base64 of 32 bytes);
    /// `AUTH_SERVER_KEK` wins over it. Empty: development creates
    /// `<key_dir>/kek`, production refuses to start.
    pub kek_file: String,
    /// Seconds a new signing key is published in the JWKS before it signs.
    pub key_publish_ahead_secs: u32,
    /// Days a signing key signs before the scheduled rotation replaces it;
    /// 0: only `auth-server keys rotate` does.
    pub key_rotation_days: u32,
    /// Seconds a replaced key stays published beyond the longest token
    /// lifetime (covers clock skew and instances that learn late).
    pub key_retire_leeway_secs: u32,
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
    /// Most bytes (estimated) of client records kept in memory.
    pub client_max_bytes: u64,
    /// Most verified tokens kept in the validation cache.
    pub validation_capacity: u64,
    /// Most bytes (estimated) of verified tokens kept in the validation cache.
    pub validation_max_bytes: u64,
    /// Most rejected tokens remembered (flood shield).
    pub rejected_capacity: u64,
    /// Seconds a rejected token is remembered.
    pub rejected_ttl_secs: u64,
    /// Milliseconds between polls of the store's change feed (revocations
    /// and client changes from other instances).
    pub change_poll_interval_ms: u64,
}

/// DPoP proofs (RFC 9449) at the token endpoint and at validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopConfig {
    /// Seconds a proof is accepted after its `iat`.
    pub proof_max_age_secs: u32,
    /// Seconds a proof's `iat` may be ahead of this server's clock.
    pub proof_future_skew_secs: u32,
    /// Most proof `jti`s remembered for the replay check. When that many
    /// are within the window, further proofs get 503 until the oldest age
    /// out (never a forgotten `jti`).
    pub replay_capacity: usize,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            proof_max_age_secs: 60,
            proof_future_skew_secs: 5,
            replay_capacity: 200_000,
        }
    }
}

/// Rate limits (token buckets).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per second for the whole instance (0 disables the bucket).
    pub global_rps: u32,
    /// Burst above `global_rps`.
    pub global_burst: u32,
    /// Default token requests per second per client; a client record can
    /// override it.
    pub client_rps: u32,
    /// Burst above `client_rps`.
    pub client_burst: u32,
    /// Validations per second per caller (IPv4 address or IPv6 /64).
    pub validate_per_ip_rps: u32,
    /// Burst above `validate_per_ip_rps`.
    pub validate_per_ip_burst: u32,
    /// Failed client authentications allowed per IP (IPv6: per /64) per minute.
    pub failed_auth_per_ip_per_minute: u32,
    /// Burst of failed authentications before the per-minute rate applies.
    pub failed_auth_burst: u32,
    /// Failed client authentications per second for the whole instance;
    /// past it, only clients already in memory presenting the right secret
    /// are served until it refills.
    pub failed_auth_global_per_second: u32,
    /// Burst above `failed_auth_global_per_second`.
    pub failed_auth_global_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            global_rps: 100_000,
            global_burst: 20_000,
            client_rps: 1_000,
            client_burst: 2_000,
            validate_per_ip_rps: 50_000,
            validate_per_ip_burst: 100_000,
            failed_auth_per_ip_per_minute: 60,
            failed_auth_burst: 20,
            failed_auth_global_per_second: 100,
            failed_auth_global_burst: 1_000,
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

/// The audit trail of administrative changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days audit records are kept; older ones are pruned (at least 1).
    pub retention_days: u32,
}

/// RFC 7591 dynamic client registration and RFC 7592 management.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// Serve `{base}/register`; it needs an initial access token carrying
    /// the scope `auth-server:register`.
    pub enabled: bool,
    /// Space-separated scopes a registered client may be given; empty:
    /// none.
    pub allowed_scopes: String,
}

/// Development conveniences; ignored in production.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// Create a demo client on first run when the store is empty.
    pub demo_client: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 8443)),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            h2_max_concurrent_streams: 32,
            tls_handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            shutdown_timeout_secs: 30,
            drain_grace_ms: 1_000,
            unready_delay_ms: 0,
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
            client_ca_file: String::new(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            base_path: "/auth-server/v1".into(),
            max_body_bytes: 64 * 1024,
            body_read_timeout_secs: 5,
            body_min_bytes_per_sec: 1024,
            max_buffered_body_bytes: 64 * 1024 * 1024,
            jwks_max_age_secs: 300,
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::EdDSA,
            lifetime_secs: 900,
            key_dir: PathBuf::from("certs"),
            kek_file: String::new(),
            key_publish_ahead_secs: 900,
            key_rotation_days: 90,
            key_retire_leeway_secs: 300,
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
            client_max_bytes: 64 * 1024 * 1024,
            validation_capacity: 100_000,
            validation_max_bytes: 128 * 1024 * 1024,
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

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 365,
        }
    }
}

impl Default for DevConfig {
    fn default() -> Self {
        Self { demo_client: true }
    }
}
