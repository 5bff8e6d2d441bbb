//! SIGHUP: re-read the TLS certificate, and the signing keys from the store,
//! without dropping connections. New TLS connections get the new
//! certificate; open ones keep theirs. Key changes arrive through the change
//! feed anyway; SIGHUP only makes this instance look now. Anything that
//! fails to load is logged and the old one kept.

use std::sync::Arc;

use tokio::sync::watch;

use crate::feed;
use crate::keyring::KeyRing;
use crate::state::AppState;
use crate::tls::{self, CertificatePaths};

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    /// The new certificate is in use.
    pub certificate_reloaded: bool,
    /// The signing keys were re-read from the store and opened (false
    /// with HS256, whose key is `JWT_SECRET`).
    pub keys_reloaded: bool,
}

/// Everything a reload needs, cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    certificate: CertificatePaths,
    tls: Arc<watch::Sender<Arc<rustls::ServerConfig>>>,
    state: Arc<AppState>,
    ring: Option<Arc<KeyRing>>,
}

impl Reloader {
    /// A reloader for the server's certificate, TLS sender, state and
    /// stored keys (`None` for HS256).
    pub fn new(
        certificate: CertificatePaths,
        tls: watch::Sender<Arc<rustls::ServerConfig>>,
        state: Arc<AppState>,
        ring: Option<Arc<KeyRing>>,
    ) -> Self {
        Self {
            certificate,
            tls: Arc::new(tls),
            state,
            ring,
        }
    }

    /// Re-reads the certificate and keys, keeping the old ones on failure.
    pub async fn reload(&self) -> ReloadReport {
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
        let keys_reloaded = match &self.ring {
            Some(ring) => {
                let loaded = feed::keys::reload(&self.state, ring).await.is_ok();
                if loaded {
                    let keys = self.state.keys();
                    tracing::info!(current = keys.active().kid(), "signing keys reloaded");
                }
                loaded
            }
            None => false,
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
            self.reload().await;
        }
    }
}
