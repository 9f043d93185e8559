//! The emulator's clock (wall time plus an offset tests can advance) and HubSpot's time format.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Wall-clock time shifted by an offset, so tests can expire tokens and slide rate-limit windows
/// without sleeping.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        let offset = SignedDuration::from_millis(self.offset_ms.load(Ordering::Relaxed));
        now.checked_add(offset).unwrap_or(now)
    }

    pub fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// `2019-10-30T03:30:17.883Z`: UTC with milliseconds, as HubSpot writes timestamps.
pub(crate) fn iso(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(crate) fn ms_to_ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_milliseconds() {
        assert_eq!(iso(ms_to_ts(1_572_406_217_883)), "2019-10-30T03:30:17.883Z");
        assert_eq!(iso(ms_to_ts(1_572_406_217_000)), "2019-10-30T03:30:17.000Z");
    }

    #[test]
    fn clock_advances() {
        let c = Clock::default();
        let a = c.now_ms();
        c.advance(Duration::from_secs(3600));
        assert!(c.now_ms() - a >= 3_600_000);
    }
}
