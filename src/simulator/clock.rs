//! Wall-clock helpers: the timestamp formats the vendors use.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn datetime(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2024-01-15T10:30:00Z`, as in the balance document (seed 000).
pub(crate) fn format_secs(unix: i64) -> String {
    let t = datetime(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2024-08-01T10:00:00.000000Z`, as in the distribution documents (seed 002).
pub(crate) fn format_micros(unix: i64) -> String {
    let secs = format_secs(unix);
    format!("{}.000000Z", &secs[..secs.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_seed_documents() {
        assert_eq!(format_secs(1_705_314_600), "2024-01-15T10:30:00Z");
        assert_eq!(format_micros(1_722_506_400), "2024-08-01T10:00:00.000000Z");
        assert_eq!(format_micros(1_704_067_200), "2024-01-01T00:00:00.000000Z");
    }
}
