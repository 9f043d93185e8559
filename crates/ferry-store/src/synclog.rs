//! The Sync Log: one row per per-contact problem an integration met.

use ferry_core::run::SyncDirection;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{Filter, get_ts, micros, now};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncLogEntry {
    pub id: i64,
    pub timestamp: Timestamp,
    pub integration_id: Option<i64>,
    pub run_id: Option<i64>,
    pub direction: SyncDirection,
    pub contact_id: Option<i64>,
    /// A code from the error dictionary.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct NewSyncLog {
    pub integration_id: Option<i64>,
    pub run_id: Option<i64>,
    pub direction: SyncDirection,
    pub contact_id: Option<i64>,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct SyncLogQuery {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub integration_id: Option<i64>,
    pub direction: Option<SyncDirection>,
    /// Cursor: only rows with a smaller id (newest first).
    pub before: Option<i64>,
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
}
