//! "Now" for the collectors whose windows follow the UTC calendar (spend, orders),
//! given as a plain function so that tests can pin it to any day.

use time::OffsetDateTime;

/// Where a collector reads the current time from.
pub type Clock = fn() -> OffsetDateTime;

/// The system clock, in UTC.
pub fn system() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
