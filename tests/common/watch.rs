//! What an attack costs the server, measured from outside: its resident
//! memory (`VmRSS`), sampled throughout, and a legitimate client that asks
//! for a token on a fresh connection every [`PROBE_EVERY`], each probe with
//! [`PROBE_DEADLINE`] for connect, handshake, request and answer. Both run
//! on their own threads so a busy attacker runtime cannot delay them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use super::attack::{LEGITIMATE, Target, Victim};

/// The server's resident memory must stay below this, attack or not.
pub const MEMORY_CEILING_KIB: u64 = 512 * 1024;
/// Every legitimate token request must be answered 200 within this.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(2);
/// A new probe starts this long after the previous one started.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// After the attackers are gone, this long before memory is read again.
const SETTLE: Duration = Duration::from_secs(1);
/// How often memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// No probe loop or sampler outlives this, whatever the test does.
const WATCH_LIMIT: Duration = Duration::from_secs(60);

/// `VmRSS` of process `pid` in KiB; 0 once it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One legitimate token request and how it went.
#[derive(Debug, Clone)]
pub struct Probe {
    /// From the start of the connect to the end of the answer (or failure).
    pub latency: Duration,
    /// Why it failed; `None` for a 200 with a token in time.
    pub failure: Option<String>,
}

/// Memory sampling and probing, from before an attack until after it.
pub struct Watch {
    pid: u32,
    before_kib: u64,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<()>,
    prober: JoinHandle<Vec<Probe>>,
}

impl Watch {
    /// Reads the server's memory before the attack, then samples it and
    /// probes until [`Watch::finish`] (or `until`, at the latest).
    pub fn start(victim: &Victim, until: Instant) -> Self {
        let pid = victim.pid();
        let before_kib = rss_kib(pid);
        let peak_kib = Arc::new(AtomicU64::new(before_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak_kib, stop) = (peak_kib.clone(), stop.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < WATCH_LIMIT {
                    peak_kib.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        let prober = {
            let (target, stop) = (victim.target.clone(), stop.clone());
            std::thread::spawn(move || probe_until(&target, &stop, until))
        };
        Self {
            pid,
            before_kib,
            peak_kib,
            stop,
            sampler,
            prober,
        }
    }

    /// Stops probing; once the attack is over, waits [`SETTLE`], reads the
    /// memory a last time and returns the figures of `attack`, with
    /// `detail` saying what the attackers got.
    pub fn finish(self, attack: &'static str, detail: String) -> Figures {
        self.stop.store(true, Ordering::Relaxed);
        let probes = self.prober.join().expect("the probe thread panicked");
        std::thread::sleep(SETTLE);
        let after_kib = rss_kib(self.pid);
        let _ = self.sampler.join();
        Figures {
            attack,
            before_kib: self.before_kib,
            peak_kib: self.peak_kib.load(Ordering::Relaxed).max(after_kib),
            after_kib,
            probes,
            detail,
        }
    }
}

fn probe_until(target: &Target, stop: &AtomicBool, until: Instant) -> Vec<Probe> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut probes = Vec::new();
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            let started = Instant::now();
            let failure = match tokio::time::timeout(PROBE_DEADLINE, probe(target)).await {
                Ok(Ok(())) => None,
                Ok(Err(why)) => Some(why),
                Err(_) => Some(format!("no answer within {PROBE_DEADLINE:?}")),
            };
            probes.push(Probe {
                latency: started.elapsed(),
                failure,
            });
            tokio::time::sleep_until((started + PROBE_EVERY).into()).await;
        }
        probes
    })
}

/// A token request on a fresh connection from the legitimate address.
async fn probe(target: &Target) -> Result<(), String> {
    let (mut sender, _driver) = target
        .http1(LEGITIMATE)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let response = sender
        .send_request(target.token_request())
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status != 200 || !body.windows(14).any(|w| w == b"\"access_token\"") {
        return Err(format!("status {status}"));
    }
    Ok(())
}

/// What one attack cost: memory before, at the peak and after, and how the
/// legitimate probes fared.
#[derive(Debug)]
pub struct Figures {
    /// Which attack.
    pub attack: &'static str,
    /// Memory before the attack.
    pub before_kib: u64,
    /// The highest memory seen, during the attack or after.
    pub peak_kib: u64,
    /// Memory once the attackers were gone.
    pub after_kib: u64,
    /// Every probe, in order.
    pub probes: Vec<Probe>,
    /// What the attackers sent and got.
    pub detail: String,
}

impl Figures {
    /// Probes that did not get a token in time.
    pub fn failed(&self) -> usize {
        self.probes.iter().filter(|p| p.failure.is_some()).count()
    }

    /// The median and the slowest probe.
    pub fn latencies(&self) -> (Duration, Duration) {
        let mut sorted: Vec<Duration> = self.probes.iter().map(|p| p.latency).collect();
        sorted.sort();
        let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
        (p50, sorted.last().copied().unwrap_or_default())
    }

    /// One line with every figure.
    pub fn summary(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let (p50, max) = self.latencies();
        let first_failure = self
            .probes
            .iter()
            .find_map(|p| p.failure.as_deref())
            .map_or(String::new(), |why| format!(" (first: {why})"));
        format!(
            "{}: RSS peak {:.0} MiB, before {:.0} MiB, after {:.0} MiB; probes {}: \
             p50 {} ms, max {} ms, failed {}{first_failure}; {}",
            self.attack,
            mib(self.peak_kib),
            mib(self.before_kib),
            mib(self.after_kib),
            self.probes.len(),
            p50.as_millis(),
            max.as_millis(),
            self.failed(),
            self.detail,
        )
    }

    /// Prints the summary, then asserts that memory stayed under the
    /// ceiling and that every probe (at least `min_probes` of them) got a
    /// token in time.
    pub fn assert_held(&self, min_probes: usize) {
        let summary = self.summary();
        eprintln!("{summary}");
        assert!(
            self.peak_kib < MEMORY_CEILING_KIB,
            "memory over {} MiB: {summary}",
            MEMORY_CEILING_KIB / 1024
        );
        assert_eq!(self.failed(), 0, "legitimate requests failed: {summary}");
        assert!(
            self.probes.len() >= min_probes,
            "only {} probes ran: {summary}",
            self.probes.len()
        );
    }

    /// For an attack of `total` requests that its time bound cut short
    /// after `done` (on a slow build of the server): asserts that the
    /// memory it added, scaled to all `total`, would stay under the ceiling
    /// too.
    pub fn assert_held_at_scale(&self, done: u64, total: u64) {
        if done == 0 || done >= total {
            return;
        }
        let added = self.peak_kib.saturating_sub(self.before_kib);
        let projected = self.before_kib + added * total / done;
        eprintln!(
            "{}: {done} of {total} requests sent; at {total}, RSS would be {} MiB",
            self.attack,
            projected / 1024
        );
        assert!(
            projected < MEMORY_CEILING_KIB,
            "memory would reach {} MiB at {total} requests: {}",
            projected / 1024,
            self.summary()
        );
    }
}
