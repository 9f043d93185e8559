//! When integrations run: 3-hour blocks of the day in US Eastern time, or every N minutes.

use jiff::{Timestamp, ToSpan, tz::TimeZone};

/// The zone schedule blocks are read in (the seed: "all times are in EST", DST-aware).
pub const SCHEDULE_TIME_ZONE: &str = "America/New_York";

/// A schedule. A run is due once per slot; the worker enqueues the latest slot that has begun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Blocks 0..=7 of the day (0 = 12am–3am … 7 = 9pm–12am, Eastern); once in each selected block.
    Blocks(Vec<u8>),
    /// Every N minutes, on multiples of N since the Unix epoch.
    EveryMinutes(u32),
}

/// Why a schedule is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A block outside 0..=7.
    #[error("block {0} does not exist; blocks are 0 (12am-3am) to 7 (9pm-12am)")]
    BadBlock(u8),
    /// An interval outside 1..=1440 minutes.
    #[error("the interval must be between 1 and 1440 minutes")]
    BadInterval,
}

/// The label of a block, e.g. `12am - 3am`.
pub fn block_label(block: u8) -> String {
    let h = |h: u8| match h % 24 {
        0 => "12am".to_string(),
        12 => "12pm".to_string(),
        h if h < 12 => format!("{h}am"),
        h => format!("{}pm", h - 12),
    };
    format!("{} - {}", h(block * 3), h(block * 3 + 3))
}

impl Schedule {
    /// Checks the schedule's values.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        match self {
            Schedule::Blocks(blocks) => blocks
                .iter()
                .find(|b| **b > 7)
                .map_or(Ok(()), |b| Err(ScheduleError::BadBlock(*b))),
            Schedule::EveryMinutes(m) if (1..=1440).contains(m) => Ok(()),
            Schedule::EveryMinutes(_) => Err(ScheduleError::BadInterval),
        }
    }

    /// The start of the latest slot that has begun at or before `now`, if any slot has.
    pub fn latest_slot(&self, now: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::EveryMinutes(m) => {
                let step = i64::from(*m) * 60;
                let secs = now.as_second().div_euclid(step) * step;
                Timestamp::from_second(secs).ok()
            }
            Schedule::Blocks(blocks) if blocks.is_empty() => None,
            Schedule::Blocks(blocks) => {
                let tz =
                    TimeZone::get(SCHEDULE_TIME_ZONE).expect("bundled tzdb has America/New_York");
                let today = now.to_zoned(tz.clone()).date();
                let mut starts: Vec<u8> = blocks.clone();
                starts.sort_unstable_by(|a, b| b.cmp(a));
                // Today's and yesterday's block starts, latest first.
                let mut candidates = Vec::with_capacity(starts.len() * 2);
                for day in [today, today.yesterday().ok()?] {
                    for b in &starts {
                        if let Ok(z) = day
                            .at(i8::try_from(b * 3).ok()?, 0, 0, 0)
                            .to_zoned(tz.clone())
                        {
                            candidates.push(z.timestamp());
                        }
                    }
                }
                candidates.into_iter().find(|start| *start <= now)
            }
        }
    }

    /// The next slot start after `now`, for showing "next run" to people.
    pub fn next_slot(&self, now: Timestamp) -> Option<Timestamp> {
        if let Schedule::EveryMinutes(m) = self {
            return self
                .latest_slot(now)?
                .checked_add((i64::from(*m) * 60).seconds())
                .ok();
        }
        let mut t = now;
        // Block starts are at least an hour apart; walking forward in hours finds the next one.
        for _ in 0..(24 * 2 + 1) {
            t = t.checked_add(1.hour()).ok()?;
            if let Some(s) = self.latest_slot(t).filter(|s| *s > now) {
                return Some(s);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn labels() {
        assert_eq!(block_label(0), "12am - 3am");
        assert_eq!(block_label(3), "9am - 12pm");
        assert_eq!(block_label(7), "9pm - 12am");
    }

    #[test]
    fn blocks_in_eastern_time() {
        let s = Schedule::Blocks(vec![0]);
        // 2026-07-15 04:30Z is 00:30 EDT: the 12am block started at 04:00Z.
        assert_eq!(
            s.latest_slot(ts("2026-07-15T04:30:00Z")),
            Some(ts("2026-07-15T04:00:00Z"))
        );
        // 2026-01-15 04:30Z is 23:30 EST the day before: the latest 12am block began at 05:00Z the previous day.
        assert_eq!(
            s.latest_slot(ts("2026-01-15T04:30:00Z")),
            Some(ts("2026-01-14T05:00:00Z"))
        );
    }

    #[test]
    fn across_both_dst_changes() {
        let s = Schedule::Blocks(vec![0, 1]);
        // Spring forward 2026-03-08: 3am EDT = 07:00Z; midnight EST = 05:00Z.
        assert_eq!(
            s.latest_slot(ts("2026-03-08T06:59:00Z")),
            Some(ts("2026-03-08T05:00:00Z"))
        );
        assert_eq!(
            s.latest_slot(ts("2026-03-08T07:00:00Z")),
            Some(ts("2026-03-08T07:00:00Z"))
        );
        // Fall back 2026-11-01: midnight EDT = 04:00Z; 3am EST = 08:00Z (the block is 4 hours long).
        assert_eq!(
            s.latest_slot(ts("2026-11-01T07:59:00Z")),
            Some(ts("2026-11-01T04:00:00Z"))
        );
        assert_eq!(
            s.latest_slot(ts("2026-11-01T08:00:00Z")),
            Some(ts("2026-11-01T08:00:00Z"))
        );
    }

    #[test]
    fn once_per_selected_block_per_day() {
        let s = Schedule::Blocks(vec![2, 5]);
        let mut slots = std::collections::BTreeSet::new();
        let mut t = ts("2026-03-07T00:00:00Z");
        while t < ts("2026-03-10T00:00:00Z") {
            if let Some(slot) = s.latest_slot(t) {
                slots.insert(slot);
            }
            t = t.checked_add(7.minutes()).unwrap();
        }
        // 3 days x 2 blocks, plus the 3pm block of 2026-03-06 seen at the start.
        assert_eq!(slots.len(), 7, "{slots:?}");
    }

    #[test]
    fn no_blocks_never_runs_and_intervals_align() {
        assert_eq!(
            Schedule::Blocks(vec![]).latest_slot(ts("2026-07-15T04:30:00Z")),
            None
        );
        let s = Schedule::EveryMinutes(15);
        assert_eq!(
            s.latest_slot(ts("2026-07-15T04:31:10Z")),
            Some(ts("2026-07-15T04:30:00Z"))
        );
        assert_eq!(
            s.next_slot(ts("2026-07-15T04:31:10Z")),
            Some(ts("2026-07-15T04:45:00Z"))
        );
        assert!(Schedule::EveryMinutes(0).validate().is_err());
        assert!(Schedule::Blocks(vec![8]).validate().is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The latest slot has begun, is at most a day old, starts a selected block in Eastern
        /// time, and no later selected block start lies between it and now.
        #[test]
        fn latest_slot_is_the_latest_selected_block_start(secs in 1_700_000_000i64..1_900_000_000, mask in 1u8..=255) {
            let blocks: Vec<u8> = (0..8).filter(|b| mask & (1 << b) != 0).collect();
            let now = Timestamp::from_second(secs).unwrap();
            let s = Schedule::Blocks(blocks.clone());
            let slot = s.latest_slot(now).expect("some block was selected");
            prop_assert!(slot <= now);
            prop_assert!(now.duration_since(slot) <= jiff::SignedDuration::from_hours(25));
            let local = slot.to_zoned(TimeZone::get(SCHEDULE_TIME_ZONE).unwrap());
            prop_assert_eq!(local.minute(), 0);
            prop_assert!(blocks.contains(&((local.hour() / 3) as u8)) && local.hour() % 3 == 0);
            // Nothing newer: the latest slot one second after it is itself until the next slot.
            let next = s.next_slot(slot).unwrap();
            prop_assert!(next > slot);
            if next <= now {
                prop_assert!(false, "a later slot {} started before now {}", next, now);
            }
        }
    }
}
