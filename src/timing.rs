//! How often an account is polled, and the bounds every duration setting obeys.

use std::time::Duration;

/// Polling cadence of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timing {
    /// Time between the starts of two attempts.
    pub interval: Duration,
    /// Limit of one upstream request (connect, headers and body).
    pub timeout: Duration,
    /// How long the last good values stay exported after the last success.
    pub max_staleness: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_staleness: Duration::from_secs(3600),
        }
    }
}

/// The longest shift of the attempts after an account's first one (a tenth of the
/// interval, at most this), so that accounts started together do not poll in lockstep.
pub const MAX_JITTER: Duration = Duration::from_secs(2);

/// The longest time between two successes of a collector whose every attempt succeeds
/// at its first try: the interval, the shift of the attempts after the first
/// ([`MAX_JITTER`]), and an attempt slower than the one before by up to the timeout.
/// A `max_staleness` shorter than this removes values for a moment with no failure.
pub fn longest_gap(interval: Duration, timeout: Duration) -> Duration {
    interval
        .saturating_add(timeout)
        .saturating_add((interval / 10).min(MAX_JITTER))
}

/// The longest duration any setting accepts: far beyond any sensible poll cadence,
/// and far from the clock arithmetic overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
