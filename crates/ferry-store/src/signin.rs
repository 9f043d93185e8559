//! Sign-in throttling state, shared by every process through the database. The rules (how
//! long to wait after how many failures) are in [`ferry_core::signin`]; this module counts
//! and remembers.
//!
//! An attempt is counted as a failure *before* the password is checked, in one transaction
//! with the check that the keys need not wait, so that guesses sent in parallel cannot all
//! slip through before the first failure is written. A right password then takes its count
//! back ([`Store::signin_succeeded`]).

use jiff::Timestamp;
use sqlx::Row;

use crate::util::{from_micros, now};
use crate::{Result, Store};

const SECOND: i64 = 1_000_000;

impl Store {
    /// Starts a sign-in attempt for `keys`. When any key must still wait, nothing is counted
    /// and the end of the wait is returned. Otherwise the attempt counts as a failure of each
    /// key: a key's streak starts over after `quiet_secs` without failures, and the key then
    /// waits `delay_secs(i, failures)` seconds (`i` is its index in `keys`). Streaks that
    /// ended are forgotten on the way.
    pub async fn signin_attempt(
        &self,
        keys: &[String],
        quiet_secs: i64,
        delay_secs: impl Fn(usize, i64) -> i64,
    ) -> Result<Option<Timestamp>> {
        let now = now();
        let quiet_since = now - quiet_secs * SECOND;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM signin_throttle WHERE last_failure_at < $1 AND blocked_until < $2",
        )
        .bind(quiet_since)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut counts = Vec::with_capacity(keys.len());
        let mut wait_until: Option<i64> = None;
        for key in keys {
            // The upsert locks the row (PostgreSQL) and returns the wait as it was before.
            let row = sqlx::query(
                "INSERT INTO signin_throttle (key, failures, last_failure_at, blocked_until) VALUES ($1, 1, $2, 0) \
                 ON CONFLICT (key) DO UPDATE SET \
                 failures = CASE WHEN signin_throttle.last_failure_at < $3 THEN 1 ELSE signin_throttle.failures + 1 END, \
                 last_failure_at = $2 RETURNING failures, blocked_until",
            )
            .bind(key)
            .bind(now)
            .bind(quiet_since)
            .fetch_one(&mut *tx)
            .await?;
            let blocked: i64 = row.try_get(1)?;
            if blocked > now {
                wait_until = Some(wait_until.map_or(blocked, |w| w.max(blocked)));
            }
            counts.push(row.try_get::<i64, _>(0)?);
        }
        if let Some(until) = wait_until {
            tx.rollback().await?;
            return Ok(Some(from_micros(until)));
        }
        for (i, (key, failures)) in keys.iter().zip(counts).enumerate() {
            let delay = delay_secs(i, failures);
            if delay > 0 {
                sqlx::query("UPDATE signin_throttle SET blocked_until = $1 WHERE key = $2")
                    .bind(now + delay * SECOND)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Takes back the count of an attempt whose password was right: `forget` (the account
    /// at this client) starts over; `uncount` (the client address) loses one failure, and
    /// its wait when that leaves fewer than `wait_from` failures.
    pub async fn signin_succeeded(
        &self,
        forget: &str,
        uncount: &str,
        wait_from: i64,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM signin_throttle WHERE key = $1")
            .bind(forget)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE signin_throttle SET failures = failures - 1, \
             blocked_until = CASE WHEN failures - 1 < $2 THEN 0 ELSE blocked_until END WHERE key = $1",
        )
        .bind(uncount)
        .bind(wait_from)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
