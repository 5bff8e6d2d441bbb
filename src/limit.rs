//! Rate limits (governor token buckets): a global bucket; a per-client bucket
//! (with per-client overrides) charged by token requests; a per-caller bucket
//! charged by validations, so that holding a client's token never spends the
//! client's own bucket; a per-IP bucket of failed client authentications
//! that, once empty, blocks the IP from trying again until it refills; and a
//! server-wide ceiling on failed authentications, so spreading them over many
//! addresses does not help. IPv6 callers are keyed by their /64, the block an
//! attacker gets as easily as one address. A client's rate is the fleet's:
//! each instance allows its share, the rate divided by the live instances
//! (which the heartbeats count); every other bucket is this instance's own.
//! Every decision is pure over a governor `Clock`, so tests drive it with a
//! fake clock. [`body`] holds what a request body may cost in time and
//! memory.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};

use crate::config::LimitsConfig;

pub mod body;

/// Which limiter refused a request (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    /// The server-wide bucket.
    Global,
    /// The per-client bucket.
    Client,
    /// The per-IP failed-authentication guard.
    FailedAuth,
    /// The server-wide ceiling on failed authentications.
    FailedAuthGlobal,
    /// The per-caller validation bucket.
    Validate,
}

impl Limiter {
    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Client => "client",
            Self::FailedAuth => "failed_auth",
            Self::FailedAuthGlobal => "failed_auth_global",
            Self::Validate => "validate",
        }
    }
}

/// A refusal: which limiter, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// The limiter that refused.
    pub limiter: Limiter,
    /// Whole seconds until a retry can succeed (at least 1).
    pub retry_after_secs: u64,
}

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Keyed<K, C> =
    RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Per-client override buckets: client id -> (this instance's rate, bucket).
type Overrides<C> = RwLock<HashMap<String, (u32, Arc<Direct<C>>)>>;

/// This instance's share of a rate meant for the whole fleet: `rate` split
/// evenly over `instances`, rounded up (the fleet together allows at least
/// `rate`, never less), and never below 1.
pub fn instance_share(rate: u32, instances: u32) -> u32 {
    rate.div_ceil(instances.max(1)).max(1)
}

/// What one failed authentication set off (each only when newly so).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedAuthTrips {
    /// The caller's failed-authentication bucket ran dry: it is blocked.
    pub ip_blocked: bool,
    /// The server-wide failed-authentication ceiling was reached.
    pub ceiling_reached: bool,
}

/// Rejection counters by limiter, for metrics.
#[derive(Debug, Default)]
pub struct LimitStats {
    /// Refused by the global bucket.
    pub global: AtomicU64,
    /// Refused by a per-client bucket.
    pub client: AtomicU64,
    /// Refused by the failed-authentication guard.
    pub failed_auth: AtomicU64,
    /// Refused by the server-wide failed-authentication ceiling.
    pub failed_auth_global: AtomicU64,
    /// Refused by a per-caller validation bucket.
    pub validate: AtomicU64,
}

/// The key a caller is limited by: an IPv4 address (an IPv4-mapped IPv6
/// address counts as IPv4), or the /64 of an IPv6 address.
pub fn caller_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// All the server's rate limiters.
pub struct RateLimits<C: Clock + Clone = DefaultClock> {
    clock: C,
    global: Option<Direct<C>>,
    /// Live instances of the fleet (at least 1): client rates are divided
    /// by it.
    instances: AtomicU32,
    /// `[limits] client_rps` and `client_burst`, before division.
    client_rps: u32,
    client_burst: u32,
    /// Buckets of clients without an override, and the instance count their
    /// quota was divided by; rebuilt when the count changes.
    client_default: RwLock<(u32, Arc<Keyed<String, C>>)>,
    client_overrides: Overrides<C>,
    client_burst_factor: u32,
    validate: Keyed<IpAddr, C>,
    failed_auth: Keyed<IpAddr, C>,
    blocked_ips: RwLock<HashMap<IpAddr, C::Instant>>,
    failed_auth_global: Direct<C>,
    /// Set while the failed-authentication ceiling is reached: until when.
    failed_auth_ceiling: RwLock<Option<C::Instant>>,
    stats: LimitStats,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

fn retry_after<C: Clock>(not_until: &NotUntil<C::Instant>, clock: &C) -> u64 {
    let wait = not_until.wait_time_from(clock.now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl RateLimits<DefaultClock> {
    /// Limiters from `[limits]`, on the real clock.
    pub fn new(config: &LimitsConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Limiters from `[limits]` on the given clock.
    pub fn with_clock(config: &LimitsConfig, clock: C) -> Self {
        let global = (config.global_rps > 0).then(|| {
            RateLimiter::direct_with_clock(
                quota(config.global_rps, config.global_burst),
                clock.clone(),
            )
        });
        let failed_per_minute =
            NonZeroU32::new(config.failed_auth_per_ip_per_minute).unwrap_or(NonZeroU32::MIN);
        let failed_quota = Quota::per_minute(failed_per_minute).allow_burst(
            NonZeroU32::new(config.failed_auth_burst.max(1)).unwrap_or(NonZeroU32::MIN),
        );
        Self {
            global,
            instances: AtomicU32::new(1),
            client_rps: config.client_rps,
            client_burst: config.client_burst,
            client_default: RwLock::new((
                1,
                Arc::new(RateLimiter::dashmap_with_clock(
                    quota(config.client_rps, config.client_burst),
                    clock.clone(),
                )),
            )),
            client_overrides: RwLock::new(HashMap::new()),
            client_burst_factor: (config.client_burst / config.client_rps.max(1)).max(1),
            validate: RateLimiter::dashmap_with_clock(
                quota(config.validate_per_ip_rps, config.validate_per_ip_burst),
                clock.clone(),
            ),
            failed_auth: RateLimiter::dashmap_with_clock(failed_quota, clock.clone()),
            blocked_ips: RwLock::new(HashMap::new()),
            failed_auth_global: RateLimiter::direct_with_clock(
                quota(
                    config.failed_auth_global_per_second,
                    config.failed_auth_global_burst,
                ),
                clock.clone(),
            ),
            failed_auth_ceiling: RwLock::new(None),
            stats: LimitStats::default(),
            clock,
        }
    }

    /// The rejection counters.
    pub fn stats(&self) -> &LimitStats {
        &self.stats
    }

    fn deny(&self, limiter: Limiter, retry_after_secs: u64) -> Denied {
        let counter = match limiter {
            Limiter::Global => &self.stats.global,
            Limiter::Client => &self.stats.client,
            Limiter::FailedAuth => &self.stats.failed_auth,
            Limiter::FailedAuthGlobal => &self.stats.failed_auth_global,
            Limiter::Validate => &self.stats.validate,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Denied {
            limiter,
            retry_after_secs: retry_after_secs.max(1),
        }
    }

    /// Charges the global bucket.
    pub fn check_global(&self) -> Result<(), Denied> {
        match &self.global {
            Some(limiter) => limiter
                .check()
                .map_err(|n| self.deny(Limiter::Global, retry_after(&n, &self.clock))),
            None => Ok(()),
        }
    }

    /// Sets how many instances the fleet has alive now (from the
    /// heartbeats); 0 counts as 1. Client buckets take the new share at
    /// their next check, starting full.
    pub fn set_instances(&self, instances: u32) {
        self.instances.store(instances.max(1), Ordering::Relaxed);
    }

    /// The live instance count client rates are divided by.
    pub fn instances(&self) -> u32 {
        self.instances.load(Ordering::Relaxed).max(1)
    }

    /// The buckets of clients without an override, divided for `instances`.
    fn client_default(&self, instances: u32) -> Arc<Keyed<String, C>> {
        if let Ok(current) = self.client_default.read()
            && current.0 == instances
        {
            return Arc::clone(&current.1);
        }
        let limiter = Arc::new(RateLimiter::dashmap_with_clock(
            quota(
                instance_share(self.client_rps, instances),
                instance_share(self.client_burst, instances),
            ),
            self.clock.clone(),
        ));
        if let Ok(mut current) = self.client_default.write()
            && current.0 != instances
        {
            *current = (instances, Arc::clone(&limiter));
        }
        limiter
    }

    /// Charges `client_id`'s bucket: its own rate if it has an override,
    /// else the default; either divided by the live instances, so the
    /// fleet as a whole allows the client about its rate.
    pub fn check_client(&self, client_id: &str, override_rps: Option<u32>) -> Result<(), Denied> {
        let instances = self.instances();
        let Some(rps) = override_rps else {
            return self
                .client_default(instances)
                .check_key(&client_id.to_owned())
                .map_err(|n| self.deny(Limiter::Client, retry_after(&n, &self.clock)));
        };
        let rps = instance_share(rps, instances);
        let existing = self.client_overrides.read().ok().and_then(|map| {
            map.get(client_id)
                .filter(|(r, _)| *r == rps)
                .map(|(_, l)| Arc::clone(l))
        });
        let limiter = match existing {
            Some(limiter) => limiter,
            None => {
                let limiter = Arc::new(RateLimiter::direct_with_clock(
                    quota(rps, rps.saturating_mul(self.client_burst_factor)),
                    self.clock.clone(),
                ));
                if let Ok(mut map) = self.client_overrides.write() {
                    map.insert(client_id.to_owned(), (rps, Arc::clone(&limiter)));
                }
                limiter
            }
        };
        limiter
            .check()
            .map_err(|n| self.deny(Limiter::Client, retry_after(&n, &self.clock)))
    }

    /// Charges the validation bucket of the caller at `ip`.
    pub fn check_validate(&self, ip: IpAddr) -> Result<(), Denied> {
        self.validate
            .check_key(&caller_key(ip))
            .map_err(|n| self.deny(Limiter::Validate, retry_after(&n, &self.clock)))
    }

    /// Refuses an IP that has failed client authentication too often.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        let Ok(blocked) = self.blocked_ips.read() else {
            return Ok(());
        };
        if blocked.is_empty() {
            return Ok(());
        }
        match blocked.get(&caller_key(ip)) {
            Some(until) if *until > self.clock.now() => {
                let wait = until.duration_since(self.clock.now());
                let secs = Duration::from(wait).as_secs_f64().ceil() as u64;
                Err(self.deny(Limiter::FailedAuth, secs))
            }
            _ => Ok(()),
        }
    }

    /// Refuses with 429 while the server-wide ceiling on failed
    /// authentications is reached. Callers apply it only to attempts that
    /// would need the store or fail, so clients already in memory with the
    /// right secret are still served.
    pub fn check_failed_auth_ceiling(&self) -> Result<(), Denied> {
        let until = match self.failed_auth_ceiling.read() {
            Ok(until) => *until,
            Err(_) => None,
        };
        match until {
            Some(until) if until > self.clock.now() => {
                let wait = Duration::from(until.duration_since(self.clock.now()));
                Err(self.deny(Limiter::FailedAuthGlobal, wait.as_secs_f64().ceil() as u64))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed client authentication from `ip`; once the IP's
    /// bucket is empty it is blocked until the bucket has room again, and
    /// once the server-wide bucket is empty the ceiling holds until it has.
    /// Says which of the two this failure newly set off.
    pub fn record_failed_auth(&self, ip: IpAddr) -> FailedAuthTrips {
        let key = caller_key(ip);
        let now = self.clock.now();
        let mut trips = FailedAuthTrips::default();
        if let Err(not_until) = self.failed_auth.check_key(&key)
            && let Ok(mut blocked) = self.blocked_ips.write()
        {
            let before = blocked.insert(key, not_until.earliest_possible());
            trips.ip_blocked = before.is_none_or(|until| until <= now);
        }
        if let Err(not_until) = self.failed_auth_global.check()
            && let Ok(mut ceiling) = self.failed_auth_ceiling.write()
        {
            let before = ceiling.replace(not_until.earliest_possible());
            trips.ceiling_reached = before.is_none_or(|until| until <= now);
        }
        trips
    }

    /// Drops idle keyed state and expired blocks, so a million distinct
    /// clients or IPs do not grow memory without bound.
    pub fn prune(&self) {
        let clients = self.client_default(self.instances());
        clients.retain_recent();
        clients.shrink_to_fit();
        self.validate.retain_recent();
        self.validate.shrink_to_fit();
        self.failed_auth.retain_recent();
        self.failed_auth.shrink_to_fit();
        let now = self.clock.now();
        if let Ok(mut blocked) = self.blocked_ips.write() {
            blocked.retain(|_, until| *until > now);
            blocked.shrink_to_fit();
        }
    }

    /// Number of keys held by the keyed limiters (for tests and metrics).
    pub fn keyed_len(&self) -> usize {
        self.client_default(self.instances()).len() + self.validate.len() + self.failed_auth.len()
    }
}

#[cfg(test)]
mod tests;
