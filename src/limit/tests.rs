use std::net::Ipv4Addr;

use governor::clock::FakeRelativeClock;

use super::*;

fn config() -> LimitsConfig {
    LimitsConfig {
        global_rps: 10,
        global_burst: 5,
        client_rps: 2,
        client_burst: 2,
        failed_auth_per_ip_per_minute: 6,
        failed_auth_burst: 3,
    }
}

#[test]
fn global_bucket_allows_the_burst_then_refills() {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits::with_clock(&config(), clock.clone());
    for _ in 0..5 {
        assert!(limits.check_global().is_ok());
    }
    let denied = limits.check_global().unwrap_err();
    assert_eq!(denied.limiter, Limiter::Global);
    assert_eq!(denied.retry_after_secs, 1);
    clock.advance(Duration::from_millis(100));
    assert!(
        limits.check_global().is_ok(),
        "one token per 100 ms at 10 rps"
    );
    assert!(limits.check_global().is_err());
    assert_eq!(limits.stats().global.load(Ordering::Relaxed), 2);
}

#[test]
fn disabled_global_bucket_never_refuses() {
    let limits = RateLimits::with_clock(
        &LimitsConfig {
            global_rps: 0,
            ..config()
        },
        FakeRelativeClock::default(),
    );
    for _ in 0..1_000 {
        assert!(limits.check_global().is_ok());
    }
}

#[test]
fn clients_have_separate_buckets_and_overrides() {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits::with_clock(&config(), clock.clone());
    assert!(limits.check_client("a", None).is_ok());
    assert!(limits.check_client("a", None).is_ok());
    assert_eq!(
        limits.check_client("a", None).unwrap_err().limiter,
        Limiter::Client
    );
    assert!(
        limits.check_client("b", None).is_ok(),
        "b has its own bucket"
    );
    for _ in 0..20 {
        assert!(limits.check_client("big", Some(20)).is_ok());
    }
    assert!(limits.check_client("big", Some(20)).is_err());
    // A changed override takes effect with a fresh bucket.
    assert!(limits.check_client("big", Some(40)).is_ok());
    clock.advance(Duration::from_secs(1));
    assert!(limits.check_client("a", None).is_ok());
}

#[test]
fn failed_authentications_block_an_ip_until_its_bucket_refills() {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits::with_clock(&config(), clock.clone());
    let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10));
    for _ in 0..3 {
        assert!(limits.check_ip(attacker).is_ok());
        limits.record_failed_auth(attacker);
    }
    assert!(
        limits.check_ip(attacker).is_ok(),
        "the burst is used up, not exceeded"
    );
    limits.record_failed_auth(attacker);
    let denied = limits.check_ip(attacker).unwrap_err();
    assert_eq!(denied.limiter, Limiter::FailedAuth);
    assert!((1..=10).contains(&denied.retry_after_secs), "{denied:?}");
    assert!(limits.check_ip(other).is_ok());
    clock.advance(Duration::from_secs(10));
    assert!(
        limits.check_ip(attacker).is_ok(),
        "6 per minute: one every 10 s"
    );
}

#[test]
fn pruning_bounds_keyed_state() {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits::with_clock(&config(), clock.clone());
    for i in 0..10_000 {
        let _ = limits.check_client(&format!("client-{i}"), None);
        limits.record_failed_auth(IpAddr::V4(Ipv4Addr::from(i as u32)));
    }
    assert!(limits.keyed_len() >= 20_000);
    clock.advance(Duration::from_secs(3_600));
    limits.prune();
    assert_eq!(limits.keyed_len(), 0);
}
