//! The emulator's clock and Salesforce's datetime format.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Wall-clock time shifted by an offset tests can advance.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        let now = Timestamp::now();
        let offset = SignedDuration::from_millis(self.offset_ms.load(Ordering::Relaxed));
        now.checked_add(offset).unwrap_or(now).as_millisecond()
    }

    /// Now, truncated to the second, as Salesforce stores `SystemModstamp`.
    pub fn now_s(&self) -> i64 {
        self.now_ms().div_euclid(1000) * 1000
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// `2024-01-02T03:04:05.000+0000`: how Salesforce writes datetimes in JSON.
pub(crate) fn format(ms: i64) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Parses a datetime as Salesforce accepts it (`…Z`, `…+0000`, `…+00:00`, with or without
/// fractional seconds) into epoch milliseconds.
pub(crate) fn parse(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts.as_millisecond());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(z) = jiff::Zoned::strptime(fmt, s) {
            return Some(z.timestamp().as_millisecond());
        }
        if let Ok(ts) = Timestamp::strptime(fmt, s) {
            return Some(ts.as_millisecond());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let ms = 1_704_164_645_000;
        assert_eq!(format(ms), "2024-01-02T03:04:05.000+0000");
        assert_eq!(parse("2024-01-02T03:04:05.000+0000"), Some(ms));
        assert_eq!(parse("2024-01-02T03:04:05Z"), Some(ms));
        assert_eq!(parse("2024-01-02T03:04:05.000Z"), Some(ms));
        assert_eq!(parse("2024-01-01T22:04:05-05:00"), Some(ms));
        assert_eq!(parse("nope"), None);
    }
}
