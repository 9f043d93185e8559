//! The Sync Log: one row per per-contact problem an integration met.

use ferry_core::run::SyncDirection;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{Filter, get_ts, micros, now};
use crate::{Result, Store, StoreError};

/// One Sync Log row: a problem an integration met with one contact.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncLogEntry {
    /// The ID.
    pub id: i64,
    /// When it was logged.
    pub timestamp: Timestamp,
    /// The integration that met it; `None` once that integration is deleted.
    pub integration_id: Option<i64>,
    /// The run that met it; `None` when it was not met in a run, or the run is gone.
    pub run_id: Option<i64>,
    /// Which way the data was going.
    pub direction: SyncDirection,
    /// The contact it is about; `None` when no Ferry contact is known (or it was deleted).
    pub contact_id: Option<i64>,
    /// A code from the error dictionary.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// A Sync Log row to add.
#[derive(Debug, Clone)]
pub struct NewSyncLog {
    /// The integration that met the problem.
    pub integration_id: Option<i64>,
    /// The run that met it, if one did.
    pub run_id: Option<i64>,
    /// Which way the data was going.
    pub direction: SyncDirection,
    /// The contact it is about, when one is known.
    pub contact_id: Option<i64>,
    /// A code from the error dictionary.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// Filters for listing the Sync Log; newest first.
#[derive(Debug, Clone, Default)]
pub struct SyncLogQuery {
    /// Only rows logged at or after this.
    pub from: Option<Timestamp>,
    /// Only rows logged at or before this.
    pub to: Option<Timestamp>,
    /// Only this integration's rows.
    pub integration_id: Option<i64>,
    /// Only rows of this direction.
    pub direction: Option<SyncDirection>,
    /// Only rows this run wrote.
    pub run_id: Option<i64>,
    /// Cursor: only rows with a smaller id (newest first).
    pub before: Option<i64>,
    /// Page size, clamped to 1..=10,000.
    pub limit: u32,
}

fn entry_from(row: &AnyRow) -> Result<SyncLogEntry> {
    Ok(SyncLogEntry {
        id: row.try_get("id")?,
        timestamp: get_ts(row, "created_at")?,
        integration_id: row.try_get("integration_id")?,
        run_id: row.try_get("run_id")?,
        direction: row
            .try_get::<String, _>("direction")?
            .parse()
            .map_err(|e: ferry_core::UnknownValue| StoreError::Db(sqlx::Error::Decode(e.into())))?,
        contact_id: row.try_get("contact_id")?,
        code: row.try_get("code")?,
        message: row.try_get("message")?,
    })
}

impl Store {
    /// Adds rows in one transaction, all stamped with the current time.
    pub async fn add_sync_log(&self, institution_id: i64, entries: &[NewSyncLog]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let ts = now();
        for e in entries {
            sqlx::query("INSERT INTO sync_log (institution_id, integration_id, run_id, direction, contact_id, code, message, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(institution_id)
                .bind(e.integration_id)
                .bind(e.run_id)
                .bind(e.direction.as_str())
                .bind(e.contact_id)
                .bind(&e.code)
                .bind(&e.message)
                .bind(ts)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sync Log rows, newest first.
    pub async fn list_sync_log(
        &self,
        institution_id: i64,
        q: &SyncLogQuery,
    ) -> Result<Vec<SyncLogEntry>> {
        let mut f = Filter::new(
            self.backend,
            "SELECT id, created_at, integration_id, run_id, direction, contact_id, code, message FROM sync_log WHERE institution_id =",
            institution_id,
        )?;
        if let Some(t) = q.from {
            f.and(" AND created_at >= $?", micros(t))?;
        }
        if let Some(t) = q.to {
            f.and(" AND created_at <= $?", micros(t))?;
        }
        if let Some(i) = q.integration_id {
            f.and(" AND integration_id = $?", i)?;
        }
        if let Some(d) = q.direction {
            f.and(" AND direction = $?", d.as_str())?;
        }
        if let Some(r) = q.run_id {
            f.and(" AND run_id = $?", r)?;
        }
        if let Some(b) = q.before {
            f.and(" AND id < $?", b)?;
        }
        f.push(&format!(
            " ORDER BY id DESC LIMIT {}",
            q.limit.clamp(1, 10_000)
        ));
        let rows = f.fetch_all(&self.read).await?;
        rows.iter().map(entry_from).collect()
    }

    /// A contact's Sync Log rows, newest first, at most `limit` (1..=1,000).
    pub async fn sync_log_for_contact(
        &self,
        institution_id: i64,
        contact_id: i64,
        limit: u32,
    ) -> Result<Vec<SyncLogEntry>> {
        let mut f = Filter::new(
            self.backend,
            "SELECT id, created_at, integration_id, run_id, direction, contact_id, code, message FROM sync_log WHERE institution_id =",
            institution_id,
        )?;
        f.and(" AND contact_id = $?", contact_id)?;
        f.push(&format!(
            " ORDER BY id DESC LIMIT {}",
            limit.clamp(1, 1_000)
        ));
        let rows = f.fetch_all(&self.read).await?;
        rows.iter().map(entry_from).collect()
    }
}
