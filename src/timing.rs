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

/// The longest duration any setting accepts: far beyond any sensible poll cadence,
/// and far from the clock arithmetic overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
