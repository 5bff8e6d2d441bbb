//! auth-server: an OAuth 2.0 client-credentials token issuer. It issues
//! RFC 9068 JWT access tokens over TLS and publishes its keys and metadata.
//!
//! # Where things are
//!
//! - **A token request**: `server::run` accepts the TLS connection and hands
//!   each request to [`http::AuthService`], whose `handle` matches
//!   `(method, path)` and calls `http::token::handle`, which hands it to
//!   its grant (`http/token/`: client credentials, or token exchange, whose
//!   down-scoping of our own tokens `domain::exchange` decides). The client is
//!   authenticated in `http/client_auth.rs` (a secret, a JWT assertion
//!   checked by [`client_assertion`], or the connection's certificate), with
//!   the credential its `token_endpoint_auth_method` names
//!   (`domain::client::Client::accepts`); scopes are granted by
//!   `domain::scope` and the token is minted by `domain::token`. Validation,
//!   introspection and revocation sit beside it in `http/`.
//! - **Proof of possession**: the connection's client certificate is read
//!   once after the handshake (`tls::client_auth`) and rides on each
//!   request; DPoP proofs are checked by `domain::dpop` and [`dpop`] (the
//!   replay window); what a token is bound to is its `cnf` claim, checked at
//!   validation by `validation::binding`.
//! - **Its state**: [`state::AppState`], built once by `app::start` from the
//!   [`config::Config`], the opened [`store`] and the signing keys
//!   ([`keyring`]); [`feed`] keeps its caches and keys in step with the
//!   store while the server runs.
//! - **Its errors becoming HTTP**: handlers fail with [`http::error::ApiError`]
//!   or the OAuth vocabulary [`domain::error::OAuthError`]; `http/error.rs`
//!   alone turns them (and failed store calls) into a status, headers and
//!   the RFC 6749 JSON body. Process exit codes are decided in [`exit`].
//! - **An administrative change** (CLI, `http::admin`, `http::register`):
//!   validated in [`admin`], written by [`store::AuditStore::write_audited`]
//!   together with its [`audit`] record in one transaction, then logged.
//!
//! # Layout
//!
//! - [`domain`]: pure OAuth logic (clients and secrets, scopes, endpoint
//!   rules and URL normalisation, tokens, token exchange, DPoP proofs,
//!   client certificates, errors); no I/O, `now` passed in.
//! - [`keys`]: parsed signing keys: sign, verify, JWKS (pure);
//!   `keys::public` other parties' public keys (JWK Sets) that verify;
//!   `keys::lifecycle` the key states and their transitions (pure, `now`
//!   passed in); `keys::sealed` AES-256-GCM under the key-encryption key.
//! - [`keyring`]: the signing keys in the store: opened into the in-memory
//!   key set, moved through their lifecycle by conditional store writes;
//!   where the key-encryption key comes from; the pre-store key file.
//! - [`config`]: `config.toml` plus environment overrides and secret files
//!   (`config/env.rs`), validated (`config/validate.rs`).
//! - [`store`]: the store traits and typed errors; [`store::sqlite`] is the
//!   embedded store, [`store::postgres`] the shared one (pool, migrations,
//!   LISTEN/NOTIFY); `store::sqlite::backup` the online backup and restore.
//! - [`cache`]: in-memory caches: clients, revoked `jti`s, verified tokens.
//! - [`validation`]: is this token good now (cache, signature, revocation,
//!   client state), and is it presented by its holder (DPoP proof, client
//!   certificate)?
//! - [`dpop`]: DPoP proofs checked against this instance's replay window.
//! - [`client_assertion`]: client authentication by JWT assertion
//!   (`private_key_jwt`): the client's keys, the checks, one use per `jti`.
//! - [`jwks_fetch`]: fetches and caches JWK Sets over HTTPS (clients'
//!   `jwks_uri`, trusted issuers' keys), bounded in time and size, no
//!   redirects.
//! - [`federation`]: workload identity federation: trusted issuers' tokens
//!   verified, their subjects mapped to one client (the jwt-bearer and
//!   token-exchange grants).
//! - [`replay`]: the `jti`s of used assertions, in memory and (fleet mode)
//!   in the store.
//! - [`feed`]: applies the store's change feed to the caches and the key
//!   set (polling, PostgreSQL NOTIFY); makes due key lifecycle steps.
//! - [`fleet`]: this instance's heartbeat in the store and the live instance
//!   count that per-client limits are divided by.
//! - [`limit`]: global, per-client, per-caller validation and failed-auth
//!   token buckets; [`limit::body`]: what a request body may cost.
//! - [`state`]: everything a request needs (keys, caches, validator,
//!   limits, metrics, serving status), built once by [`app`].
//! - [`http`]: routing and the endpoint handlers, reading [`state`];
//!   `http::error` is the only place errors become status codes;
//!   `http::admin` the admin API (its routes one table, described by its
//!   `openapi.json`), `http::register` RFC 7591/7592 registration.
//! - [`activity`]: what one connection's requests are doing; the router
//!   counts, the server reads.
//! - [`metadata`]: the RFC 8414 metadata document.
//! - [`build_info`]: version and git commit.
//! - [`reload`]: SIGHUP re-reads the TLS certificate and the stored keys.
//! - [`server`]: the accept loop, TLS handshake, connection limits (in all
//!   and per caller, shedding when full), idle connections, drain.
//! - [`tls`]: rustls configuration and the development certificate;
//!   `tls::client_auth` the optional client certificate and client CAs.
//! - [`probe`]: `auth-server health`, the container health check: one
//!   request to this instance's own health route, its certificate pinned.
//! - [`admin`]: client administration behind the CLI and the admin API,
//!   each change written with its audit record.
//! - [`audit`]: audit records and security events (types and log lines).
//! - [`app`]: wires everything together; signals.
//! - [`cli`]: command-line definitions and one-shot commands (`cli::keys`;
//!   `cli::remote`: the client commands through a server's admin API).
//! - [`exit`]: which failure exits with which code.
//! - [`logging`]: JSON logs to stdout and a size-rotated file, written in
//!   batches by one thread.
//! - [`metrics`]: Prometheus registry, handles and `/metrics` text.
//! - [`clock`]: the one place that reads the wall clock.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod activity;
pub mod admin;
pub mod app;
pub mod audit;
pub mod build_info;
pub mod cache;
pub mod cli;
pub mod client_assertion;
pub mod clock;
pub mod config;
pub mod domain;
pub mod dpop;
pub mod exit;
pub mod federation;
pub mod feed;
pub mod fleet;
pub mod http;
pub mod jwks_fetch;
pub mod keyring;
pub mod keys;
pub mod limit;
pub mod lock;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod probe;
pub mod reload;
pub mod replay;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod validation;
