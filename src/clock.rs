//! The one place that reads the wall clock. Everything else takes `now` as a
//! parameter, so domain logic is tested with fixed times.

use std::time::{SystemTime, UNIX_EPOCH};

/// Current Unix time in whole seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
