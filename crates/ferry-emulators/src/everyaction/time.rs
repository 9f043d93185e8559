//! The emulator's clock: wall time plus an offset that tests can advance or set, so the 48-hour
//! and 90-day windows can be tested without waiting.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use jiff::Timestamp;

/// Running: wall time plus `offset_ms`. Frozen: `offset_ms` is the time itself.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
    frozen: AtomicBool,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        let v = self.offset_ms.load(Ordering::SeqCst);
        if self.frozen.load(Ordering::SeqCst) {
            v
        } else {
            Timestamp::now().as_millisecond() + v
        }
    }

    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the time; `frozen` stops it there until the next set or advance.
    pub fn set_ms(&self, at_ms: i64, frozen: bool) {
        if frozen {
            self.frozen.store(true, Ordering::SeqCst);
            self.offset_ms.store(at_ms, Ordering::SeqCst);
        } else {
            self.frozen.store(false, Ordering::SeqCst);
            let wall = Timestamp::now().as_millisecond();
            self.offset_ms.store(at_ms - wall, Ordering::SeqCst);
        }
    }
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `2026-12-04T14:30:00Z`: UTC to the second, as VAN writes dates with times.
pub(crate) fn iso(ms: i64) -> String {
    ts(ms).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-12-04`: date-only, as the changed-entity files write `D` fields.
pub(crate) fn date_only(ms: i64) -> String {
    ts(ms).strftime("%Y-%m-%d").to_string()
}

/// Parses `YYYY-MM-DDThh:mm:ss.00Z`, an offset form, or a bare date (midnight UTC).
pub(crate) fn parse(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t.as_millisecond());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_millisecond());
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_millisecond());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vans_forms() {
        let a = parse("2026-12-02T10:00:00.00Z").unwrap();
        assert_eq!(iso(a), "2026-12-02T10:00:00Z");
        assert_eq!(parse("2026-12-02T05:00:00-05:00"), Some(a));
        assert_eq!(date_only(a), "2026-12-02");
        assert!(parse("yesterday").is_none());
    }
}
