//! What a request body may cost while it arrives: a size limit, a deadline,
//! a minimum rate, and a share of one server-wide budget of buffered bytes.
//! A body that arrives whole at once never waits, so it never draws on the
//! budget; only bytes held while waiting for more of a body do. That is
//! where an attacker's memory goes (bodies sent almost whole and then
//! stalled), and it leaves small, prompt requests untouched when the budget
//! is spent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus::IntGauge;
use tokio::time::Instant;

/// Time a body gets before the minimum rate applies: a client's first
/// bytes may trail its request head by a round trip or two.
const RATE_GRACE: Duration = Duration::from_secs(1);

/// Limits applied to every request body, from `[http]`.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Largest body in bytes; larger gets 413.
    pub max_bytes: usize,
    /// Time the whole body may take.
    pub deadline: Duration,
    /// Bytes per second a body must keep up after its first second; 0: the
    /// deadline alone.
    pub min_bytes_per_sec: u64,
    /// Bytes buffered at once across all bodies that are waiting for more.
    pub budget: Arc<BodyBudget>,
}

impl BodyLimits {
    /// The instant by which the next body bytes must have arrived, given
    /// that the read began at `started` and `received` bytes are in.
    pub fn next_byte_due(&self, started: Instant, received: usize) -> Instant {
        let deadline = started + self.deadline;
        if self.min_bytes_per_sec == 0 {
            return deadline;
        }
        let owed = u64::try_from(received)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let at_rate = Duration::from_secs_f64(owed as f64 / self.min_bytes_per_sec as f64);
        deadline.min(started + RATE_GRACE + at_rate)
    }
}

/// The server-wide budget of buffered body bytes.
#[derive(Debug)]
pub struct BodyBudget {
    capacity: usize,
    used: AtomicUsize,
    gauge: IntGauge,
}

impl BodyBudget {
    /// A budget of `capacity` bytes, its use mirrored in `gauge`.
    pub fn new(capacity: usize, gauge: IntGauge) -> Self {
        Self {
            capacity,
            used: AtomicUsize::new(0),
            gauge,
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty share of the budget, returned when dropped.
    pub fn share(&self) -> BudgetShare<'_> {
        BudgetShare {
            budget: self,
            bytes: 0,
        }
    }

    fn take(&self, bytes: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.capacity)
            })
            .is_ok();
        if taken {
            self.gauge.add(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        taken
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.sub(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// One body's share of the [`BodyBudget`].
#[derive(Debug)]
pub struct BudgetShare<'a> {
    budget: &'a BodyBudget,
    bytes: usize,
}

impl BudgetShare<'_> {
    /// Grows the share to cover `bytes`; false when the budget has no room.
    pub fn cover(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let more = bytes - self.bytes;
        if !self.budget.take(more) {
            return false;
        }
        self.bytes = bytes;
        true
    }
}

impl Drop for BudgetShare<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(capacity: usize) -> BodyBudget {
        BodyBudget::new(capacity, IntGauge::new("g", "g").unwrap())
    }

    #[test]
    fn shares_take_and_return_budget() {
        let budget = budget(100);
        let mut a = budget.share();
        assert!(a.cover(60));
        assert!(a.cover(40), "already covered");
        let mut b = budget.share();
        assert!(!b.cover(41), "60 + 41 is over 100");
        assert!(b.cover(40));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.gauge.get(), 0);
    }

    #[test]
    fn the_rate_gives_a_grace_second_and_the_deadline_caps_it() {
        let limits = BodyLimits {
            max_bytes: 1 << 16,
            deadline: Duration::from_secs(5),
            min_bytes_per_sec: 1000,
            budget: Arc::new(budget(1)),
        };
        let start = Instant::now();
        let due = |received| limits.next_byte_due(start, received) - start;
        assert_eq!(due(0), Duration::from_millis(1001));
        assert_eq!(due(999), Duration::from_secs(2));
        assert_eq!(due(60_000), Duration::from_secs(5), "the deadline wins");
        let no_rate = BodyLimits {
            min_bytes_per_sec: 0,
            ..limits.clone()
        };
        assert_eq!(
            no_rate.next_byte_due(start, 0) - start,
            Duration::from_secs(5)
        );
    }
}
