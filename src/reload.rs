//! SIGHUP: re-read the TLS certificate and the signing keys without dropping
//! connections. New TLS connections get the new certificate; open ones keep
//! theirs. A new signing key signs new tokens while the one it replaces
//! still verifies (and is published for) the tokens already issued. Anything
//! that fails to load is logged and the old one kept.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::keys::SigningKey;
use crate::state::AppState;
use crate::tls::{self, CertificatePaths};

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    /// The new certificate is in use.
    pub certificate_reloaded: bool,
    /// The signing keys were re-read.
    pub keys_reloaded: bool,
}

/// Everything a reload needs, cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    config: Arc<Config>,
    certificate: CertificatePaths,
    tls: Arc<watch::Sender<Arc<rustls::ServerConfig>>>,
    state: Arc<AppState>,
}

impl Reloader {
    /// A reloader for the server built from `config`.
    pub fn new(
        config: Arc<Config>,
        certificate: CertificatePaths,
        tls: watch::Sender<Arc<rustls::ServerConfig>>,
        state: Arc<AppState>,
    ) -> Self {
        Self {
            config,
            certificate,
            tls: Arc::new(tls),
            state,
        }
    }

    /// Re-reads the certificate and keys, keeping the old ones on failure.
    pub fn reload(&self) -> ReloadReport {
        let certificate_reloaded = match tls::server_config(&self.certificate) {
            Ok(config) => {
                self.tls.send_replace(config);
                self.record_certificate_expiry();
                tracing::info!(cert = %self.certificate.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the current one");
                self.count_failure("certificate");
                false
            }
        };
        let token = &self.config.token;
        let secret = self.config.jwt_secret.as_ref().map(|s| s.0.as_bytes());
        let keys_reloaded = match SigningKey::load(token.algorithm, &token.key_dir, secret) {
            Ok(key) => {
                // The replaced key keeps verifying the tokens it signed.
                let keys = self.state.keys().succeeded_by(key);
                tracing::info!(kid = keys.active().kid(), "signing key reloaded");
                self.state.replace_keys(keys);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "signing key reload failed; keeping the current one");
                self.count_failure("signing_key");
                false
            }
        };
        ReloadReport {
            certificate_reloaded,
            keys_reloaded,
        }
    }

    fn count_failure(&self, what: &str) {
        self.state
            .metrics
            .reload_failures
            .with_label_values(&[what])
            .inc();
    }

    /// Publishes the served certificate's expiry as a metric.
    pub fn record_certificate_expiry(&self) {
        match tls::certificate_expiry(&self.certificate.cert) {
            Ok(not_after) => self.state.metrics.certificate_not_after.set(not_after),
            Err(e) => tracing::warn!(error = %e, "cannot read the certificate's expiry"),
        }
    }

    /// Reloads on every SIGHUP received through `hangups` (installed by the
    /// caller before the port opens, so an early SIGHUP cannot kill us).
    pub async fn on_sighup(self, mut hangups: tokio::signal::unix::Signal) {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading certificate and keys");
            self.reload();
        }
    }
}
