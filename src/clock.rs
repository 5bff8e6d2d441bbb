//! The one place that reads the wall clock (clippy refuses
//! `SystemTime::now` anywhere else). Everything else takes `now` as a
//! parameter, so domain logic is tested with fixed times. Also the
//! calendar arithmetic that prints a time as a date.

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

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01
/// (negative: before it), in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_a_day_count_walked_forward() {
        // Walk day by day from 1900 (not a leap year) past 2100 (not one
        // either), through 2000 (one), against the calendar by hand.
        let (mut year, mut month, mut day) = (1900, 1, 1);
        for days in -25_567..(131 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
