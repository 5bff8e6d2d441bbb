//! Idle connections. Each connection's service counts its requests in a
//! [`ConnectionActivity`]; the connection task samples it with an
//! [`IdleTimer`] and closes the connection once no request has been in
//! flight for the idle timeout. Only requests count: HTTP/2 PINGs, SETTINGS
//! and window updates never reach the service, so a client that merely
//! answers PINGs is still idle. A request whose body the server is still
//! waiting for counts as the client's silence, not the server's work: a
//! stalled body does not keep a connection busy.
//!
//! The request path pays one atomic add when a request starts and one when
//! it ends; no clock is read there. The timer ticks a few times per timeout
//! instead and calls the connection idle after enough ticks in a row saw
//! nothing in flight and no request finished, so a connection is closed
//! between one timeout and one timeout plus a tick after its last request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

/// Ticks per idle timeout: the close comes at most a quarter timeout late.
const TICKS_PER_TIMEOUT: u32 = 4;

/// One request finished and left flight, as added to the packed word: +1
/// in the upper half (finished), -1 in the lower half (in flight).
const FINISH: u64 = (1 << 32) - 1;

/// Requests of one connection: how many are in flight and how many have
/// finished, packed in one word so that a start or a finish is a single
/// atomic add and a sample sees both at the same instant.
#[derive(Debug, Default)]
pub struct ConnectionActivity {
    /// Lower 32 bits: requests in flight (at most the stream limit). Upper
    /// 32 bits: requests finished, wrapping.
    word: AtomicU64,
    /// Requests in flight that are waiting for their body from the client.
    awaiting: AtomicU32,
    /// Body chunks received while waiting, wrapping.
    progress: AtomicU32,
}

impl ConnectionActivity {
    /// Counts a request in flight as waiting on its client until the
    /// returned guard is dropped.
    pub fn awaiting_client(&self) -> AwaitingClient<'_> {
        self.awaiting.fetch_add(1, Ordering::Relaxed);
        AwaitingClient(self)
    }

    /// True when the server has no work on this connection: nothing in
    /// flight, or every request in flight waiting for its body.
    pub fn is_waiting_on_client(&self) -> bool {
        self.sample().is_waiting_on_client()
    }

    /// True when no request is in flight.
    pub fn is_empty(&self) -> bool {
        self.sample().in_flight() == 0
    }

    /// Counts a request in flight until the returned guard is dropped, which
    /// also happens when the client abandons the request.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.word.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn sample(&self) -> Sample {
        Sample {
            word: self.word.load(Ordering::Relaxed),
            awaiting: self.awaiting.load(Ordering::Relaxed),
            progress: self.progress.load(Ordering::Relaxed),
        }
    }
}

/// A request waiting for its body; dropping it ends the wait.
#[derive(Debug)]
pub struct AwaitingClient<'a>(&'a ConnectionActivity);

impl AwaitingClient<'_> {
    /// Some of the body arrived: a slow body that keeps coming is not
    /// silence.
    pub fn progressed(&self) {
        self.0.progress.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for AwaitingClient<'_> {
    fn drop(&mut self) {
        self.0.awaiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request in flight; dropping it counts the request finished.
#[derive(Debug)]
pub struct InFlight(Arc<ConnectionActivity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // In flight is at least one here, so the lower half never borrows.
        self.0.word.fetch_add(FINISH, Ordering::Relaxed);
    }
}

/// One reading of a connection's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    word: u64,
    awaiting: u32,
    progress: u32,
}

impl Sample {
    fn in_flight(self) -> u64 {
        self.word & u64::from(u32::MAX)
    }

    /// The two counters are read apart, so a request may show as awaiting
    /// a moment before it shows as in flight; `<=` absorbs that.
    fn is_waiting_on_client(self) -> bool {
        self.in_flight() <= u64::from(self.awaiting)
    }
}

/// Consecutive quiet samples: the decision, without the clock.
#[derive(Debug)]
struct QuietRun {
    last: Sample,
    quiet: u32,
    needed: u32,
}

impl QuietRun {
    /// Takes the next sample; true once `needed` samples in a row found
    /// nothing in flight but requests waiting for their bodies, and nothing
    /// finished since the one before.
    fn observe(&mut self, sample: Sample) -> bool {
        if sample == self.last && sample.is_waiting_on_client() {
            self.quiet = self.quiet.saturating_add(1);
        } else {
            self.quiet = 0;
            self.last = sample;
        }
        self.quiet >= self.needed
    }
}

/// Watches one connection's [`ConnectionActivity`] on a coarse tick.
#[derive(Debug)]
pub struct IdleTimer {
    activity: Arc<ConnectionActivity>,
    ticks: Interval,
    run: QuietRun,
}

impl IdleTimer {
    /// A timer for a connection that is quiet from now on unless `activity`
    /// says otherwise; `timeout` is at least a few milliseconds.
    pub fn new(activity: Arc<ConnectionActivity>, timeout: Duration) -> Self {
        let tick = (timeout / TICKS_PER_TIMEOUT).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let run = QuietRun {
            last: activity.sample(),
            quiet: 0,
            needed: TICKS_PER_TIMEOUT,
        };
        Self {
            activity,
            ticks,
            run,
        }
    }

    /// Completes once the connection has had nothing in flight for the
    /// timeout. Cancel-safe; after it completes, it starts counting again,
    /// so a second completion means another whole timeout of quiet.
    pub async fn expired(&mut self) {
        loop {
            self.ticks.tick().await;
            if self.run.observe(self.activity.sample()) {
                self.run.quiet = 0;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_from(activity: &ConnectionActivity) -> QuietRun {
        QuietRun {
            last: activity.sample(),
            quiet: 0,
            needed: 3,
        }
    }

    #[test]
    fn quiet_samples_in_a_row_make_idle() {
        let activity = Arc::new(ConnectionActivity::default());
        let mut run = run_from(&activity);
        assert!(!run.observe(activity.sample()));
        assert!(!run.observe(activity.sample()));
        assert!(run.observe(activity.sample()));
    }

    #[test]
    fn a_request_in_flight_is_never_idle() {
        let activity = Arc::new(ConnectionActivity::default());
        let mut run = run_from(&activity);
        let request = activity.start();
        for _ in 0..10 {
            assert!(!run.observe(activity.sample()));
        }
        drop(request);
        assert!(!run.observe(activity.sample()), "a finish is activity");
        assert!(!run.observe(activity.sample()));
        assert!(!run.observe(activity.sample()));
        assert!(run.observe(activity.sample()));
    }

    #[test]
    fn a_request_between_samples_restarts_the_count() {
        let activity = Arc::new(ConnectionActivity::default());
        let mut run = run_from(&activity);
        assert!(!run.observe(activity.sample()));
        assert!(!run.observe(activity.sample()));
        drop(activity.start());
        assert!(!run.observe(activity.sample()));
        assert!(!run.observe(activity.sample()));
        assert!(!run.observe(activity.sample()));
        assert!(run.observe(activity.sample()));
    }

    #[test]
    fn counts_stay_apart_in_the_packed_word() {
        let activity = Arc::new(ConnectionActivity::default());
        let first = activity.start();
        let second = activity.start();
        assert_eq!(activity.sample().in_flight(), 2);
        drop(first);
        assert_eq!(activity.sample().in_flight(), 1);
        assert_eq!(activity.sample().word >> 32, 1);
        drop(second);
        assert_eq!(activity.sample().word, 2 << 32);
    }

    #[test]
    fn a_request_waiting_for_its_body_is_the_clients_silence() {
        let activity = Arc::new(ConnectionActivity::default());
        let mut run = run_from(&activity);
        let request = activity.start();
        assert!(!activity.is_waiting_on_client());
        assert!(!run.observe(activity.sample()));
        let waiting = activity.awaiting_client();
        assert!(activity.is_waiting_on_client());
        assert!(!run.observe(activity.sample()), "the wait began: a change");
        assert!(!run.observe(activity.sample()));
        assert!(!run.observe(activity.sample()));
        assert!(run.observe(activity.sample()), "a stalled body goes idle");
        waiting.progressed();
        assert!(
            !run.observe(activity.sample()),
            "a body that keeps coming is not"
        );
        drop(waiting);
        assert!(!activity.is_waiting_on_client());
        drop(request);
    }
}
