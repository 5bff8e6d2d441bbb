//! Idle connections. The connection task samples its
//! [`ConnectionActivity`] with an [`IdleTimer`] and closes the connection
//! once no request has been in flight for the idle timeout. Only requests
//! count: HTTP/2 PINGs, SETTINGS and window updates never reach the
//! service, so a client that merely answers PINGs is still idle, and a
//! request stalled waiting for its body counts as nothing in flight.
//!
//! The timer ticks a few times per timeout and calls the connection idle
//! after enough ticks in a row saw nothing in flight and no request
//! finished, so a connection is closed between one timeout and one timeout
//! plus a tick after its last request.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

use crate::activity::{ConnectionActivity, Sample};

/// Ticks per idle timeout: the close comes at most a quarter timeout late.
const TICKS_PER_TIMEOUT: u32 = 4;

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
