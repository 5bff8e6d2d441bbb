//! What one connection's requests are doing: how many are in flight, how
//! many of those wait for their body from the client, and how many have
//! finished. The router counts requests here; whoever owns the connection
//! reads it (to close idle connections, or shed ones that only wait on
//! their clients). A request whose body the server is still waiting for
//! counts as the client's silence, not the server's work.
//!
//! The request path pays one atomic add when a request starts and one when
//! it ends; no clock is read there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

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

    /// Reads the counters now.
    pub(crate) fn sample(&self) -> Sample {
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

/// One reading of a connection's activity: two readings are equal only if
/// nothing started, finished, began or ended a wait, or received body bytes
/// in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    word: u64,
    awaiting: u32,
    progress: u32,
}

impl Sample {
    pub(crate) fn in_flight(self) -> u64 {
        self.word & u64::from(u32::MAX)
    }

    /// The two counters are read apart, so a request may show as awaiting
    /// a moment before it shows as in flight; `<=` absorbs that.
    pub(crate) fn is_waiting_on_client(self) -> bool {
        self.in_flight() <= u64::from(self.awaiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
