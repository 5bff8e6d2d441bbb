use std::net::{Ipv4Addr, Ipv6Addr};

use governor::clock::FakeRelativeClock;

use super::*;

fn config() -> LimitsConfig {
    LimitsConfig {
        global_rps: 10,
        global_burst: 5,
        client_rps: 2,
        client_burst: 2,
        validate_per_ip_rps: 2,
        validate_per_ip_burst: 2,
        failed_auth_per_ip_per_minute: 6,
        failed_auth_burst: 3,
        failed_auth_global_per_second: 10,
        failed_auth_global_burst: 10,
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
        assert!(!limits.record_failed_auth(attacker).ip_blocked);
    }
    assert!(
        limits.check_ip(attacker).is_ok(),
        "the burst is used up, not exceeded"
    );
    assert!(
        limits.record_failed_auth(attacker).ip_blocked,
        "the guard trips once"
    );
    assert!(
        !limits.record_failed_auth(attacker).ip_blocked,
        "and only once"
    );
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

#[test]
fn ipv6_callers_are_keyed_by_their_slash_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(caller_key(a), caller_key(b));
    assert_ne!(caller_key(a), caller_key(other));
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(caller_key(mapped), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));

    let clock = FakeRelativeClock::default();
    let limits = RateLimits::with_clock(&config(), clock);
    for i in 0..4u16 {
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, i, i, i));
        limits.record_failed_auth(ip);
    }
    assert_eq!(
        limits.check_ip(b).unwrap_err().limiter,
        Limiter::FailedAuth,
        "four addresses of one /64 share one bucket of burst 3"
    );
    assert!(limits.check_ip(other).is_ok());
}

#[test]
fn failures_spread_over_addresses_meet_the_global_ceiling() {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits::with_clock(&config(), clock.clone());
    assert!(limits.check_failed_auth_ceiling().is_ok());
    for i in 0..11u8 {
        limits.record_failed_auth(IpAddr::V4(Ipv4Addr::new(127, 0, 1, i)));
    }
    let denied = limits.check_failed_auth_ceiling().unwrap_err();
    assert_eq!(denied.limiter, Limiter::FailedAuthGlobal);
    assert_eq!(denied.retry_after_secs, 1);
    assert!(
        limits
            .check_ip(IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)))
            .is_ok(),
        "no single address is over its own limit"
    );
    clock.advance(Duration::from_millis(200));
    assert!(limits.check_failed_auth_ceiling().is_ok(), "refilled");
    assert_eq!(limits.stats().failed_auth_global.load(Ordering::Relaxed), 1);
}

#[test]
fn validations_spend_the_callers_bucket_not_the_clients() {
    let clock = FakeRelativeClock::default();
    let limits = RateLimits::with_clock(&config(), clock);
    let caller = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    assert!(limits.check_validate(caller).is_ok());
    assert!(limits.check_validate(caller).is_ok());
    assert_eq!(
        limits.check_validate(caller).unwrap_err().limiter,
        Limiter::Validate
    );
    assert!(
        limits
            .check_validate(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10)))
            .is_ok()
    );
    assert!(limits.check_client("c", None).is_ok());
    assert!(limits.check_client("c", None).is_ok());
}

#[test]
fn an_instance_share_is_the_rate_split_and_rounded_up() {
    assert_eq!(instance_share(300, 3), 100);
    assert_eq!(
        instance_share(1_000, 3),
        334,
        "the fleet allows 1,002, not 999"
    );
    assert_eq!(instance_share(2, 3), 1, "never below one");
    assert_eq!(instance_share(0, 3), 1);
    assert_eq!(instance_share(300, 0), 300, "no count yet means alone");
    assert_eq!(instance_share(u32::MAX, 1), u32::MAX);
}

/// Takes tokens from `client`'s bucket until refused; how many it gave.
fn drain(limits: &RateLimits<FakeRelativeClock>, client: &str, rps: Option<u32>) -> u32 {
    let mut allowed = 0;
    while limits.check_client(client, rps).is_ok() {
        allowed += 1;
        assert!(allowed < 100_000, "never refused");
    }
    allowed
}

/// Limits with a client rate and burst of 30, on a fake clock.
fn thirty_per_second() -> (FakeRelativeClock, RateLimits<FakeRelativeClock>) {
    let clock = FakeRelativeClock::default();
    let config = LimitsConfig {
        client_rps: 30,
        client_burst: 30,
        ..config()
    };
    (clock.clone(), RateLimits::with_clock(&config, clock))
}

#[test]
fn a_client_rate_is_divided_by_the_live_instances() {
    let (clock, limits) = thirty_per_second();
    limits.set_instances(3);
    assert_eq!(limits.instances(), 3);
    // The default: 30 rps and a burst of 30 over three instances.
    assert_eq!(drain(&limits, "a", None), 10);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        drain(&limits, "a", None),
        10,
        "10 per second here, 30 in all"
    );
    // An override (burst factor 1 here): 300 rps is 100 per second here.
    assert_eq!(drain(&limits, "big", Some(300)), 100);
    clock.advance(Duration::from_millis(500));
    assert_eq!(drain(&limits, "big", Some(300)), 50);
}

#[test]
fn a_new_instance_count_reshapes_the_buckets() {
    let (clock, limits) = thirty_per_second();
    assert_eq!(
        limits.instances(),
        1,
        "alone until a heartbeat says otherwise"
    );
    assert_eq!(drain(&limits, "a", None), 30);
    assert_eq!(drain(&limits, "big", Some(60)), 60);
    // A second instance joins: each has half, in fresh buckets.
    limits.set_instances(2);
    assert_eq!(drain(&limits, "a", None), 15);
    assert_eq!(drain(&limits, "big", Some(60)), 30);
    clock.advance(Duration::from_secs(1));
    assert_eq!(drain(&limits, "a", None), 15);
    assert_eq!(drain(&limits, "big", Some(60)), 30);
    // Back to one (the other stopped): the whole rate again.
    limits.set_instances(0);
    assert_eq!(limits.instances(), 1, "0 counts as 1");
    assert_eq!(drain(&limits, "a", None), 30);
}
