//! The one place that reads the wall clock (clippy refuses
//! `SystemTime::now` anywhere else). Everything else takes `now` as a
//! parameter, so domain logic is tested with fixed times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Current Unix time in whole seconds.
pub fn unix_now() -> i64 {
    i64::try_from(since_unix_epoch().as_secs()).unwrap_or(i64::MAX)
}

/// Time since the Unix epoch, to the clock's precision; zero for a clock set
/// before it.
#[allow(
    clippy::disallowed_methods,
    reason = "this is the one place that reads the wall clock"
)]
pub fn since_unix_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
