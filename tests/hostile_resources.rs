//! Resource exhaustion against the real binary with its default settings,
//! from many loopback source addresses: stalled HTTP/2 bodies, slow HTTP/1.1
//! bodies holding every connection slot, failed token requests with huge
//! unknown client ids, and validations of a stolen token draining its
//! client's rate limit. Each attack is bounded in count and time. Throughout
//! each, the server's resident memory stays under a fixed ceiling and a
//! legitimate client gets a token on a fresh connection within 2 s, every
//! time (see `common::watch`). The attacks run one at a time, and each
//! prints its figures (`cargo test --test hostile_resources -- --nocapture`);
//! `TEST_AUTH_SERVER_BIN` runs them against another build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::api;
use common::attack::{
    AttackError, BASIC_ID_LEN, FORM, ID_PREFIX_LEN, Outcome, POST_ID_LEN, StalledBody, Tally,
    Target, Victim, attacker, merge, tally_exchange, unknown_client_request,
};
use common::watch::Watch;
use http::{Request, header};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, timeout_at};

/// One attack at a time: each measures a server of its own, and two at once
/// would share the machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fewer probes than this and the liveness check would say little.
const MIN_PROBES: usize = 5;

const STALL_CONNECTIONS: u32 = 48;
const STALL_STREAMS: usize = 256;
/// Each stalled stream sends this much of the body it declares...
const STALL_SENT: usize = 65_000;
/// ...which is just under the default body limit.
const STALL_DECLARED: usize = 65_536;
static STALL_CHUNK: [u8; STALL_SENT] = [b'a'; STALL_SENT];

/// Opens HTTP/2 connections, each with as many token requests as it
/// allows whose bodies stop short, and holds them all until `until`.
async fn stall_http2_bodies(target: Target, until: Instant) -> String {
    let mut connections = Vec::new();
    let mut streams = Vec::new();
    for n in 0..STALL_CONNECTIONS {
        let Ok(Ok((sender, driver))) = timeout_at(until.into(), target.http2(attacker(n))).await
        else {
            continue;
        };
        for _ in 0..STALL_STREAMS {
            let request = Request::post(target.uri(&api::path("token")))
                .header(header::CONTENT_TYPE, FORM)
                .header(header::CONTENT_LENGTH, STALL_DECLARED)
                .body(StalledBody {
                    first: Some(Bytes::from_static(&STALL_CHUNK)),
                })
                .unwrap();
            let mut sender = sender.clone();
            streams.push(tokio::spawn(async move {
                let response = sender.send_request(request).await?;
                Ok::<_, AttackError>(response.status().as_u16())
            }));
        }
        connections.push((sender, driver));
    }
    sleep_until(until.into()).await;
    let (mut answers, mut waiting) = (Tally::new(), 0);
    for stream in streams {
        if stream.is_finished() {
            let status = stream.await.ok().and_then(Result::ok).unwrap_or(0);
            *answers.entry(status).or_default() += 1;
        } else {
            stream.abort();
            waiting += 1;
        }
    }
    format!(
        "{} HTTP/2 connections of {STALL_CONNECTIONS}, {STALL_STREAMS} stalled streams each: \
         {waiting} still waiting at the end, answers {answers:?}",
        connections.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http2_bodies_neither_exhaust_memory_nor_lock_clients_out() {
    let _serial = SERIAL.lock().await;
    let victim = Victim::start(&[]);
    let until = Instant::now() + Duration::from_secs(12);
    let watch = Watch::start(&victim, until);
    let detail = stall_http2_bodies(victim.target.clone(), until).await;
    watch
        .finish("stalled HTTP/2 bodies", detail)
        .assert_held(MIN_PROBES);
}

/// As many slow connections as the server has slots.
const SLOW_CONNECTIONS: u32 = 200;
/// Reconnections of one slow connection, once the server cuts it.
const SLOW_CONNECTS_EACH: u32 = 20;
const TRICKLE_EVERY: Duration = Duration::from_secs(5);

/// Holds one connection with a `POST` head declaring a 100-byte body, and
/// either sends none of it or trickles a byte every [`TRICKLE_EVERY`]; when
/// the server answers or closes, connects again. Returns (connections
/// held, connections the server cut).
async fn slow_body(target: Target, source: Ipv4Addr, trickle: bool, until: Instant) -> (u32, u32) {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {FORM}\r\n\
         Content-Length: 100\r\n\r\n",
        api::path("token"),
        target.addr
    );
    let (mut held, mut cut) = (0, 0);
    for _ in 0..SLOW_CONNECTS_EACH {
        let Ok(connected) = timeout_at(until.into(), target.tls(source, false)).await else {
            break;
        };
        let Ok(mut tls) = connected else { continue };
        if tls.write_all(head.as_bytes()).await.is_err() || tls.flush().await.is_err() {
            continue;
        }
        held += 1;
        let mut next_byte = Instant::now() + TRICKLE_EVERY;
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                // An answer (408, 413...) or a close: the slot was taken back.
                _ = tls.read(&mut buf) => {
                    cut += 1;
                    break;
                }
                () = sleep_until(next_byte.min(until).into()) => {
                    if Instant::now() >= until {
                        return (held, cut);
                    }
                    next_byte += TRICKLE_EVERY;
                    if trickle && (tls.write_all(b"a").await.is_err() || tls.flush().await.is_err()) {
                        cut += 1;
                        break;
                    }
                }
            }
        }
    }
    (held, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_on_every_slot_do_not_lock_clients_out() {
    let _serial = SERIAL.lock().await;
    let victim = Victim::start(&[("AUTH_SERVER_SERVER_MAX_CONNECTIONS", "200")]);
    let until = Instant::now() + Duration::from_secs(12);
    let watch = Watch::start(&victim, until);
    let lanes: Vec<_> = (0..SLOW_CONNECTIONS)
        .map(|n| {
            tokio::spawn(slow_body(
                victim.target.clone(),
                attacker(n),
                n % 2 == 1,
                until,
            ))
        })
        .collect();
    let (mut held, mut cut) = (0, 0);
    for lane in lanes {
        let (h, c) = lane.await.unwrap();
        held += h;
        cut += c;
    }
    let detail = format!(
        "{SLOW_CONNECTIONS} slow connections (half silent, half trickling), \
         {held} held in all, {cut} cut by the server"
    );
    watch
        .finish("slow bodies on every slot", detail)
        .assert_held(MIN_PROBES);
}

/// Source addresses of the unknown-id flood...
const FLOOD_ADDRESSES: u32 = 640;
/// ...each failing authentication as often as the default per-address
/// burst allows before it is blocked.
const FLOOD_EACH: u32 = 20;
const FLOOD_LANES: u32 = 32;
/// The probes run at least this long, even if the flood is over sooner.
const FLOOD_MIN_WATCH: Duration = Duration::from_secs(4);
/// Sends [`FLOOD_EACH`] unknown-id token requests from each address taken
/// from `next`, on keep-alive connections, connecting again when one closes.
async fn flood_unknown_ids(target: Target, next: Arc<AtomicU32>, until: Instant) -> Tally {
    let mut tally = Tally::new();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= FLOOD_ADDRESSES || Instant::now() >= until {
            return tally;
        }
        let (mut sent, mut connects) = (0, 0);
        while sent < FLOOD_EACH && connects < FLOOD_EACH {
            connects += 1;
            let Ok(connected) = timeout_at(until.into(), target.http1(attacker(n))).await else {
                return tally;
            };
            let Ok((mut sender, _driver)) = connected else {
                continue;
            };
            while sent < FLOOD_EACH {
                let request = unknown_client_request(&target, n, sent);
                sent += 1;
                let response = async {
                    sender.ready().await?;
                    sender.send_request(request).await
                };
                match tally_exchange(&mut tally, until, response).await {
                    Outcome::Answered => {}
                    Outcome::Lost => break,
                    Outcome::OutOfTime => return tally,
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_client_ids_do_not_exhaust_memory() {
    let _serial = SERIAL.lock().await;
    let victim = Victim::start(&[]);
    let started = Instant::now();
    let until = started + Duration::from_secs(15);
    let watch = Watch::start(&victim, until);
    let next = Arc::new(AtomicU32::new(0));
    let lanes: Vec<_> = (0..FLOOD_LANES)
        .map(|_| {
            tokio::spawn(flood_unknown_ids(
                victim.target.clone(),
                next.clone(),
                until,
            ))
        })
        .collect();
    let mut answers = Tally::new();
    for lane in lanes {
        merge(&mut answers, lane.await.unwrap());
    }
    let took = started.elapsed();
    // However fast the flood, the probes go on while its memory is held.
    sleep_until((started + FLOOD_MIN_WATCH).into()).await;
    let sent = answers.values().sum::<u64>();
    let detail = format!(
        "{sent} failed token requests with unknown ids of {BASIC_ID_LEN}-{POST_ID_LEN} bytes \
         from {} addresses in {:.1} s, answers {answers:?}",
        next.load(Ordering::Relaxed).min(FLOOD_ADDRESSES),
        took.as_secs_f64()
    );
    let figures = watch.finish("unknown client ids", detail);
    figures.assert_held(MIN_PROBES);
    // An unoptimized server parses these bodies too slowly to get
    // through them all in time; what each one left behind still counts.
    figures.assert_held_at_scale(sent, u64::from(FLOOD_ADDRESSES * FLOOD_EACH));
}

/// The legitimate client's own rate limit in the validation attack. The
/// default (1,000/s, burst 2,000) would need the attackers to outrun it on
/// whatever machine runs the tests; a client with a lower limit of its own
/// makes the drain certain, and the fault is the same: validations charged
/// to the client's bucket.
const CLIENT_RPS: &str = "50";
const VALIDATING_CONNECTIONS: u32 = 4;
const VALIDATORS_EACH: u32 = 4;
const VALIDATIONS_EACH: u64 = 50_000;

/// Validates `token` in a loop on one HTTP/2 connection until `until`.
async fn validate_in_a_loop(
    mut sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    target: Target,
    token: Arc<str>,
    until: Instant,
) -> Tally {
    let mut tally = Tally::new();
    for _ in 0..VALIDATIONS_EACH {
        let request = Request::post(target.uri(&api::path("validate")))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let outcome = tally_exchange(&mut tally, until, sender.send_request(request)).await;
        if outcome != Outcome::Answered {
            break;
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_a_stolen_token_does_not_drain_its_clients_rate_limit() {
    let _serial = SERIAL.lock().await;
    let victim = Victim::start_with_client(&[], &["--rate-limit-rps", CLIENT_RPS]);
    let token: Arc<str> = victim.token().await.into();
    let started = Instant::now();
    let until = started + Duration::from_secs(8);
    let watch = Watch::start(&victim, until);
    let mut workers = Vec::new();
    let mut drivers = Vec::new();
    for n in 0..VALIDATING_CONNECTIONS {
        let connect = victim.target.http2(attacker(n));
        let (sender, driver) = timeout_at(until.into(), connect).await.unwrap().unwrap();
        for _ in 0..VALIDATORS_EACH {
            let (target, token) = (victim.target.clone(), token.clone());
            workers.push(tokio::spawn(validate_in_a_loop(
                sender.clone(),
                target,
                token,
                until,
            )));
        }
        drivers.push(driver);
    }
    let mut answers = Tally::new();
    for worker in workers {
        merge(&mut answers, worker.await.unwrap());
    }
    drop(drivers);
    let total: u64 = answers.values().sum();
    let detail = format!(
        "{total} validations of the client's token by {} tasks ({:.0}/s), answers {answers:?}",
        VALIDATING_CONNECTIONS * VALIDATORS_EACH,
        total as f64 / started.elapsed().as_secs_f64()
    );
    watch
        .finish("validations of a stolen token", detail)
        .assert_held(MIN_PROBES);
}

#[test]
fn unknown_ids_have_their_length_and_a_unique_prefix() {
    use base64::Engine;
    let target = Target::new("127.0.0.1:1".parse().unwrap(), &[]);
    let request = unknown_client_request(&target, 12, 3);
    let value = request.headers()[header::AUTHORIZATION].to_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.strip_prefix("Basic ").unwrap())
        .unwrap();
    let (id, secret) = std::str::from_utf8(&decoded)
        .unwrap()
        .split_once(':')
        .unwrap();
    assert_eq!(
        (id.len(), &id[..ID_PREFIX_LEN], secret),
        (BASIC_ID_LEN, "00012-03-", "wrong-secret")
    );
    assert!(id[ID_PREFIX_LEN..].bytes().all(|b| b == b'x'));
}
