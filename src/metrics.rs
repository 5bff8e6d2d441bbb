//! Prometheus metrics: the registry, the handles the request path updates,
//! and the text exposition for `GET /metrics`. Labels are bounded: route
//! names (never raw paths), status codes, limiter and result names.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::build_info::{GIT_SHA, VERSION};
use crate::keys::lifecycle::KeyTimeline;

/// Latency buckets in seconds: 50 µs to 2.5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Why the metric set could not be registered (a programming error).
#[derive(Debug, thiserror::Error)]
#[error("metrics registration failed: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: IntCounterVec,
    /// Request latency by route.
    pub latency: HistogramVec,
    /// Access tokens issued.
    pub tokens_issued: IntCounter,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: IntCounter,
    /// Connections open now.
    pub open_connections: IntGauge,
    /// Connections closed because no request came for the idle timeout.
    pub idle_connections_closed: IntCounter,
    /// Connections closed before serving them, by reason: `per_ip` (the
    /// address or /64 has too many open), `shed` (every slot was taken and
    /// this one was waiting on its client).
    pub connections_refused: IntCounterVec,
    /// Request bodies refused before they were whole, by reason: `too_slow`
    /// (deadline or minimum rate), `buffer_full` (the server-wide budget).
    pub bodies_refused: IntCounterVec,
    /// Request-body bytes buffered now, across all connections.
    pub buffered_body_bytes: IntGauge,
    /// Tokens refused at `/oauth/validate`, by reason (the caller is told
    /// only `invalid_token`).
    pub validation_rejections: IntCounterVec,
    /// Seconds between a revocation and its arrival here via the feed.
    pub revocation_lag: Histogram,
    /// Store connection pool by state (PostgreSQL), set at scrape time.
    db_pool: IntGaugeVec,
    /// Revoked tokens held in memory.
    pub revocations_held: IntGauge,
    /// Live instances of the fleet, as the last heartbeat counted them.
    pub fleet_instances: IntGauge,
    /// `notAfter` of the served TLS certificate (Unix seconds).
    pub certificate_not_after: IntGauge,
    /// SIGHUP reloads refused, by what failed to load (`certificate`,
    /// `signing_key`): the old one is still in use.
    pub reload_failures: IntCounterVec,
}

/// Counters kept elsewhere as atomics, rendered at scrape time.
pub struct ScrapeSources<'a> {
    /// Validation results and cache hits/misses.
    pub validation: &'a crate::validation::ValidationStats,
    /// Rate-limit rejections.
    pub limits: &'a crate::limit::LimitStats,
    /// Where the stored signing keys stand (`None` for HS256).
    pub keys: Option<KeyTimeline>,
    /// The time of the scrape, Unix seconds.
    pub now: i64,
    /// The store's connection pool, where it has one.
    pub pool: Option<crate::store::PoolStatus>,
}

impl Metrics {
    /// Registers the metric set.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "auth_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "auth_http_request_duration_seconds",
                "Request latency by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let tokens_issued = IntCounter::new("auth_tokens_issued_total", "Access tokens issued")?;
        let tls_handshake_failures = IntCounter::new(
            "auth_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out",
        )?;
        let open_connections =
            IntGauge::new("auth_open_connections", "Client connections open now")?;
        let idle_connections_closed = IntCounter::new(
            "auth_idle_connections_closed_total",
            "Client connections closed after the idle timeout with no request",
        )?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "auth_connections_refused_total",
                "Connections closed before serving them: per_ip cap, or shed when every slot was taken",
            ),
            &["reason"],
        )?;
        for reason in ["per_ip", "shed"] {
            connections_refused.with_label_values(&[reason]);
        }
        let bodies_refused = IntCounterVec::new(
            Opts::new(
                "auth_request_bodies_refused_total",
                "Request bodies refused before they were whole: too_slow (408) or buffer_full (503)",
            ),
            &["reason"],
        )?;
        for reason in ["too_slow", "buffer_full"] {
            bodies_refused.with_label_values(&[reason]);
        }
        let buffered_body_bytes = IntGauge::new(
            "auth_buffered_body_bytes",
            "Request-body bytes buffered now, across all connections",
        )?;
        let validation_rejections = IntCounterVec::new(
            Opts::new(
                "auth_validate_rejections_total",
                "Tokens refused at /oauth/validate, by reason",
            ),
            &["reason"],
        )?;
        for reason in crate::validation::Rejection::NAMES {
            validation_rejections.with_label_values(&[reason]);
        }
        let revocation_lag = Histogram::with_opts(
            HistogramOpts::new(
                "auth_revocation_propagation_lag_seconds",
                "Time from a revocation to its arrival on this instance via the change feed",
            )
            .buckets(vec![0.5, 1.0, 2.0, 5.0, 10.0, 30.0]),
        )?;
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "auth_db_pool_connections",
                "Store connection pool (PostgreSQL) by state: max, size (open), in_use, available (idle), waiting (calls waiting for one)",
            ),
            &["state"],
        )?;
        let revocations_held =
            IntGauge::new("auth_revocations_held", "Revoked tokens held in memory")?;
        let fleet_instances = IntGauge::new(
            "auth_fleet_instances",
            "Live instances of the fleet (heartbeats); per-client rate limits are divided by it",
        )?;
        fleet_instances.set(1);
        let certificate_not_after = IntGauge::new(
            "auth_tls_certificate_not_after_seconds",
            "Expiry of the served TLS certificate (Unix time); alert on it minus time()",
        )?;
        let reload_failures = IntCounterVec::new(
            Opts::new(
                "auth_reload_failures_total",
                "Reloads (SIGHUP) that kept the old certificate or signing key because the new one failed to load",
            ),
            &["what"],
        )?;
        for what in ["certificate", "signing_key"] {
            reload_failures.with_label_values(&[what]);
        }
        let build_info = IntGaugeVec::new(
            Opts::new("auth_build_info", "Build version and git commit"),
            &["version", "git_sha"],
        )?;
        build_info.with_label_values(&[VERSION, GIT_SHA]).set(1);
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(tokens_issued.clone()),
            Box::new(tls_handshake_failures.clone()),
            Box::new(open_connections.clone()),
            Box::new(idle_connections_closed.clone()),
            Box::new(connections_refused.clone()),
            Box::new(bodies_refused.clone()),
            Box::new(buffered_body_bytes.clone()),
            Box::new(validation_rejections.clone()),
            Box::new(revocation_lag.clone()),
            Box::new(db_pool.clone()),
            Box::new(revocations_held.clone()),
            Box::new(fleet_instances.clone()),
            Box::new(certificate_not_after.clone()),
            Box::new(reload_failures.clone()),
            Box::new(build_info),
        ] {
            registry.register(collector)?;
        }
        Ok(Self {
            registry,
            requests,
            latency,
            tokens_issued,
            tls_handshake_failures,
            open_connections,
            idle_connections_closed,
            connections_refused,
            bodies_refused,
            buffered_body_bytes,
            validation_rejections,
            revocation_lag,
            db_pool,
            revocations_held,
            fleet_instances,
            certificate_not_after,
            reload_failures,
        })
    }

    /// Records one finished request.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        let status_buf = itoa_status(status);
        let status = std::str::from_utf8(&status_buf).unwrap_or("000");
        self.requests.with_label_values(&[route, status]).inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, extra: &ScrapeSources<'_>) -> Vec<u8> {
        if let Some(pool) = extra.pool {
            self.set_pool(pool);
        }
        let mut out = Vec::with_capacity(16 * 1024);
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let v = extra.validation;
        let l = extra.limits;
        let text = format!(
            "# HELP auth_validations_total Token validations by result\n\
             # TYPE auth_validations_total counter\n\
             auth_validations_total{{result=\"accepted\"}} {}\n\
             auth_validations_total{{result=\"rejected\"}} {}\n\
             # HELP auth_validation_cache_total Validation cache lookups by outcome\n\
             # TYPE auth_validation_cache_total counter\n\
             auth_validation_cache_total{{outcome=\"hit\"}} {}\n\
             auth_validation_cache_total{{outcome=\"miss\"}} {}\n\
             # HELP auth_validation_client_check_skipped_total Client checks skipped while the store was unreachable\n\
             # TYPE auth_validation_client_check_skipped_total counter\n\
             auth_validation_client_check_skipped_total {}\n\
             # HELP auth_rate_limited_total Requests refused by a rate limiter\n\
             # TYPE auth_rate_limited_total counter\n\
             auth_rate_limited_total{{limiter=\"global\"}} {}\n\
             auth_rate_limited_total{{limiter=\"client\"}} {}\n\
             auth_rate_limited_total{{limiter=\"failed_auth\"}} {}\n\
             auth_rate_limited_total{{limiter=\"failed_auth_global\"}} {}\n\
             auth_rate_limited_total{{limiter=\"validate\"}} {}\n",
            load(&v.accepted),
            load(&v.rejected),
            load(&v.cache_hits),
            load(&v.cache_misses),
            load(&v.client_check_skipped),
            load(&l.global),
            load(&l.client),
            load(&l.failed_auth),
            load(&l.failed_auth_global),
            load(&l.validate),
        );
        out.extend_from_slice(text.as_bytes());
        if let Some(keys) = &extra.keys {
            out.extend_from_slice(render_keys(keys, extra.now).as_bytes());
        }
        out
    }

    /// The trusted issuers' key state: keys held, whether the last fetch
    /// (or discovery) succeeded, and the age of the keys.
    pub fn render_federation(issuers: &[crate::federation::IssuerStatus]) -> String {
        use std::fmt::Write;
        let mut text = String::from(
            "# HELP auth_federation_issuer_keys Keys held for a trusted issuer\n\
             # TYPE auth_federation_issuer_keys gauge\n",
        );
        for s in issuers {
            let _ = writeln!(
                text,
                "auth_federation_issuer_keys{{issuer=\"{}\"}} {}",
                s.name,
                s.key_count()
            );
        }
        text.push_str(
            "# HELP auth_federation_issuer_fetch_ok 1 when the last fetch of a trusted issuer's keys (and discovery) succeeded, 0 when it failed\n\
             # TYPE auth_federation_issuer_fetch_ok gauge\n",
        );
        for s in issuers {
            let ok = u8::from(s.error().is_none() && s.keys.keys.is_some());
            let _ = writeln!(
                text,
                "auth_federation_issuer_fetch_ok{{issuer=\"{}\"}} {ok}",
                s.name
            );
        }
        text.push_str(
            "# HELP auth_federation_issuer_keys_age_seconds Seconds since a trusted issuer's keys were fetched\n\
             # TYPE auth_federation_issuer_keys_age_seconds gauge\n",
        );
        for s in issuers {
            if let Some(age) = s.keys.age {
                let _ = writeln!(
                    text,
                    "auth_federation_issuer_keys_age_seconds{{issuer=\"{}\"}} {}",
                    s.name,
                    age.as_secs()
                );
            }
        }
        text
    }

    /// Sets `auth_db_pool_connections{state}` from one sample of the pool.
    fn set_pool(&self, pool: crate::store::PoolStatus) {
        for (state, connections) in [
            ("max", pool.max_size),
            ("size", pool.size),
            ("in_use", pool.in_use()),
            ("available", pool.available),
            ("waiting", pool.waiting),
        ] {
            let connections = i64::try_from(connections).unwrap_or(i64::MAX);
            self.db_pool.with_label_values(&[state]).set(connections);
        }
    }
}

/// The signing-key gauges, computed at scrape time from the key set's
/// timeline (ages change with every second, not with every key change).
fn render_keys(keys: &KeyTimeline, now: i64) -> String {
    let mut text = format!(
        "# HELP auth_signing_key_age_seconds Seconds since the current signing key started signing\n\
         # TYPE auth_signing_key_age_seconds gauge\n\
         auth_signing_key_age_seconds {}\n\
         # HELP auth_signing_key_rotation_period_seconds Scheduled signing-key rotation period (0: manual only)\n\
         # TYPE auth_signing_key_rotation_period_seconds gauge\n\
         auth_signing_key_rotation_period_seconds {}\n",
        (now - keys.current_since).max(0),
        keys.rotation_period_secs,
    );
    if let Some(at) = keys.next_promotion_at {
        text.push_str(&format!(
            "# HELP auth_signing_key_next_promotion_seconds Seconds until a signing key next becomes current (negative: overdue)\n\
             # TYPE auth_signing_key_next_promotion_seconds gauge\n\
             auth_signing_key_next_promotion_seconds {}\n",
            at - now
        ));
    }
    text.push_str(
        "# HELP auth_signing_keys Stored signing keys by state, as of the last change\n\
         # TYPE auth_signing_keys gauge\n",
    );
    for (state, count) in keys.by_state {
        text.push_str(&format!(
            "auth_signing_keys{{state=\"{}\"}} {count}\n",
            state.name()
        ));
    }
    text
}

/// Formats a status code (always three digits) without allocating.
fn itoa_status(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_bounded_labels() {
        let metrics = Metrics::new().unwrap();
        metrics.observe_request("token", 200, 0.001);
        metrics.observe_request("token", 401, 0.002);
        metrics.tokens_issued.inc();
        let validation = crate::validation::ValidationStats::default();
        validation.accepted.fetch_add(3, Ordering::Relaxed);
        let limits = crate::limit::LimitStats::default();
        let timeline = KeyTimeline {
            current_since: 1_000,
            next_promotion_at: Some(2_000),
            rotation_period_secs: 7_776_000,
            by_state: crate::keys::lifecycle::KeyState::ALL.map(|s| (s, 1)),
        };
        let text = String::from_utf8(metrics.render(&ScrapeSources {
            validation: &validation,
            limits: &limits,
            keys: Some(timeline),
            now: 1_500,
            pool: None,
        }))
        .unwrap();
        for needle in [
            "auth_http_requests_total{route=\"token\",status=\"200\"} 1",
            "auth_http_requests_total{route=\"token\",status=\"401\"} 1",
            "auth_http_request_duration_seconds_bucket{route=\"token\"",
            "auth_tokens_issued_total 1",
            "auth_validations_total{result=\"accepted\"} 3",
            "auth_rate_limited_total{limiter=\"client\"} 0",
            "auth_build_info{git_sha=",
            "auth_signing_key_age_seconds 500",
            "auth_signing_key_next_promotion_seconds 500",
            "auth_signing_key_rotation_period_seconds 7776000",
            "auth_signing_keys{state=\"retired\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    #[test]
    fn renders_the_pool_sampled_at_scrape_time() {
        let metrics = Metrics::new().unwrap();
        let validation = crate::validation::ValidationStats::default();
        let limits = crate::limit::LimitStats::default();
        let scrape = |pool| {
            String::from_utf8(metrics.render(&ScrapeSources {
                validation: &validation,
                limits: &limits,
                keys: None,
                now: 0,
                pool,
            }))
            .unwrap()
        };
        assert!(!scrape(None).contains("auth_db_pool_connections{"));
        let busy = scrape(Some(crate::store::PoolStatus {
            max_size: 8,
            size: 8,
            available: 1,
            waiting: 5,
        }));
        for needle in [
            "auth_db_pool_connections{state=\"max\"} 8",
            "auth_db_pool_connections{state=\"size\"} 8",
            "auth_db_pool_connections{state=\"in_use\"} 7",
            "auth_db_pool_connections{state=\"available\"} 1",
            "auth_db_pool_connections{state=\"waiting\"} 5",
        ] {
            assert!(busy.contains(needle), "{needle} missing from\n{busy}");
        }
        let idle = scrape(Some(crate::store::PoolStatus {
            max_size: 8,
            size: 2,
            available: 2,
            waiting: 0,
        }));
        assert!(idle.contains("auth_db_pool_connections{state=\"in_use\"} 0"));
        assert!(idle.contains("auth_db_pool_connections{state=\"waiting\"} 0"));
    }

    #[test]
    fn status_formatting() {
        assert_eq!(&itoa_status(200), b"200");
        assert_eq!(&itoa_status(7), b"007");
        assert_eq!(&itoa_status(1000), b"999");
    }
}
