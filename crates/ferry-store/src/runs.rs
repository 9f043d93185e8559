//! The runs queue: enqueue (idempotent per schedule slot), claim with a lease, heartbeat,
//! finish, and re-queue runs whose worker went silent.

use ferry_core::run::{RunStatus, Trigger};
use jiff::Timestamp;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::util::{Filter, get_opt_ts, get_ts, micros, now};
use crate::{Backend, Result, Store, StoreError};

/// A run of an integration: one row of Recent Runs and one entry of the queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Run {
    /// The ID.
    pub id: i64,
    /// The institution it belongs to.
    pub institution_id: i64,
    /// The integration it runs.
    pub integration_id: i64,
    /// The integration's kind when the run was made.
    pub kind: String,
    /// Why it exists.
    pub trigger: Trigger,
    /// The schedule slot it is for; `None` for manual and change runs.
    pub scheduled_for: Option<Timestamp>,
    /// Where it is; see [`RunStatus`] for the moves.
    pub status: RunStatus,
    /// Rows (contacts, notes, file lines) the run moved; 0 until it ends.
    pub rows: i64,
    /// When a worker first claimed it; `None` while it has never run.
    pub started_at: Option<Timestamp>,
    /// When it ended; `None` until it does.
    pub finished_at: Option<Timestamp>,
    /// Why it failed, for people; `None` unless it failed.
    pub error: Option<String>,
    /// Connector-specific facts about the run (e.g. the uploaded file name).
    pub detail: Value,
    /// The last sign of life from the worker that holds it; `None` when no worker does.
    pub heartbeat_at: Option<Timestamp>,
    /// How many times a worker has claimed it (a re-queued run is claimed again).
    pub attempt: i64,
    /// When it was queued.
    pub created_at: Timestamp,
}

/// A run to queue.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The institution it belongs to.
    pub institution_id: i64,
    /// The integration to run.
    pub integration_id: i64,
    /// The integration's kind, recorded on the run.
    pub kind: String,
    /// Why it is queued.
    pub trigger: Trigger,
    /// The schedule slot; at most one run per integration and slot.
    pub scheduled_for: Option<Timestamp>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// `Success`, `Skipped` or `Failed`.
    pub status: RunStatus,
    /// Rows (contacts, notes, file lines) the run moved.
    pub rows: i64,
    /// Why it failed, for people; `None` unless it failed.
    pub error: Option<String>,
    /// Connector-specific facts (e.g. the uploaded file name); `{}` for none.
    pub detail: Value,
    /// The remote refused the integration's credentials (an alert goes out when asked for).
    pub credentials_refused: bool,
}

/// Filters for listing runs; pages go newest first.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Only this integration's runs.
    pub integration_id: Option<i64>,
    /// Only runs in this state.
    pub status: Option<RunStatus>,
    /// Only runs started at or after this.
    pub started_from: Option<Timestamp>,
    /// Only runs started at or before this.
    pub started_to: Option<Timestamp>,
    /// Cursor: only runs with a smaller id (pages go newest first).
    pub before: Option<i64>,
    /// Page size, clamped to 1..=500.
    pub limit: u32,
}

pub(crate) const COLS: &str = "id, institution_id, integration_id, kind, trigger_kind, scheduled_for, status, row_count, started_at, finished_at, error, detail, heartbeat_at, attempt, created_at";

pub(crate) fn run_from(row: &AnyRow) -> Result<Run> {
    let decode = |e: ferry_core::UnknownValue| StoreError::Db(sqlx::Error::Decode(e.into()));
    Ok(Run {
        id: row.try_get("id")?,
        institution_id: row.try_get("institution_id")?,
        integration_id: row.try_get("integration_id")?,
        kind: row.try_get("kind")?,
        trigger: row
            .try_get::<String, _>("trigger_kind")?
            .parse()
            .map_err(decode)?,
        scheduled_for: get_opt_ts(row, "scheduled_for")?,
        status: row
            .try_get::<String, _>("status")?
            .parse()
            .map_err(decode)?,
        rows: row.try_get("row_count")?,
        started_at: get_opt_ts(row, "started_at")?,
        finished_at: get_opt_ts(row, "finished_at")?,
        error: row.try_get("error")?,
        detail: serde_json::from_str(&row.try_get::<String, _>("detail")?)
            .map_err(|e| StoreError::Db(sqlx::Error::Decode(e.into())))?,
        heartbeat_at: get_opt_ts(row, "heartbeat_at")?,
        attempt: row.try_get("attempt")?,
        created_at: get_ts(row, "created_at")?,
    })
}

/// The PostgreSQL channel on which changes of the run queue are announced.
const RUNS_CHANNEL: &str = "ferry_runs";

/// A connection of its own that hears, from every process sharing a PostgreSQL database, that a
/// run may have become claimable (queued, given back, or its integration's previous run ended).
pub struct RunListener(sqlx::postgres::PgListener);

impl RunListener {
    /// Waits for the next announcement. After a lost connection it reconnects and returns at
    /// once (announcements made meanwhile are lost, so the caller should look at the queue).
    pub async fn recv(&mut self) -> Result<()> {
        self.0.try_recv().await?;
        Ok(())
    }
}

impl Store {
    /// The signal this process's workers wait on between looks at the queue: notified (to every
    /// waiter) when this process queued a run, gave one back, or ended one. Other processes are
    /// heard through [`Store::listen_for_runs`].
    pub fn runs_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.runs_changed.clone()
    }

    /// On PostgreSQL, a `LISTEN` connection for the run queue's announcements; `None` on SQLite,
    /// where workers of other processes find runs by polling.
    pub async fn listen_for_runs(&self) -> Result<Option<RunListener>> {
        let Some(url) = &self.listen_url else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(RUNS_CHANNEL).await?;
        Ok(Some(RunListener(listener)))
    }

    /// Announces a change of the run queue to other processes when `tx` commits (PostgreSQL).
    pub(crate) async fn announce_runs(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query(AssertSqlSafe(format!("NOTIFY {RUNS_CHANNEL}")))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Announces a change of the run queue made outside a transaction, here and elsewhere. A
    /// failed `NOTIFY` is not an error of the change it announces: workers still poll.
    async fn announce_runs_now(&self) -> Result<()> {
        self.runs_changed.notify_waiters();
        if self.backend == Backend::Postgres {
            let _ = sqlx::query(AssertSqlSafe(format!("NOTIFY {RUNS_CHANNEL}")))
                .execute(&self.write)
                .await;
        }
        Ok(())
    }

    /// Queues a run. Returns `None` when a run for the same integration and schedule slot exists
    /// already (scheduling is idempotent), or, for a manual or change run, when one is queued.
    pub async fn enqueue_run(&self, new: &NewRun) -> Result<Option<Run>> {
        let mut tx = self.begin_write().await?;
        if new.scheduled_for.is_none() {
            let queued = sqlx::query("SELECT id FROM runs WHERE integration_id = $1 AND status = 'queued' AND trigger_kind = $2").bind(new.integration_id).bind(new.trigger.as_str()).fetch_optional(&mut *tx).await?;
            if queued.is_some() {
                return Ok(None);
            }
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO runs (institution_id, integration_id, kind, trigger_kind, scheduled_for, status, created_at) \
             SELECT $1, $2, $3, $4, $5, 'queued', $6 WHERE EXISTS (SELECT 1 FROM integrations WHERE id = $2 AND institution_id = $1) \
             ON CONFLICT (integration_id, scheduled_for) DO NOTHING RETURNING {COLS}"
        )))
        .bind(new.institution_id)
        .bind(new.integration_id)
        .bind(&new.kind)
        .bind(new.trigger.as_str())
        .bind(new.scheduled_for.map(micros))
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() {
            self.announce_runs(&mut tx).await?;
        }
        tx.commit().await?;
        if row.is_some() {
            self.runs_changed.notify_waiters();
        }
        row.as_ref().map(run_from).transpose()
    }

    /// Claims the oldest queued run whose integration has no run in progress, for `worker`.
    pub async fn claim_run(&self, worker: &str) -> Result<Option<Run>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE runs SET status = 'running', lease_owner = $1, heartbeat_at = $2, started_at = COALESCE(started_at, $2), attempt = attempt + 1 \
             WHERE id = (SELECT q.id FROM runs q WHERE q.status = 'queued' \
             AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.integration_id = q.integration_id AND r.status = 'running') \
             ORDER BY q.id LIMIT 1{lock}) AND status = 'queued' RETURNING {COLS}"
        );
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(AssertSqlSafe(sql))
            .bind(worker)
            .bind(now())
            .fetch_optional(&mut *tx)
            .await;
        match res {
            Ok(row) => {
                tx.commit().await?;
                row.as_ref().map(run_from).transpose()
            }
            // Two workers claimed runs of one integration at once: the partial unique index
            // stopped the second; it simply finds nothing this time.
            Err(e) if StoreError::is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records that `worker` is still on the run. `false` when it no longer holds the lease.
    pub async fn heartbeat_run(&self, run_id: i64, worker: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'").bind(now()).bind(run_id).bind(worker).execute(&self.write).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a run. `false` when `worker` had lost the lease (the outcome is then not recorded).
    pub async fn finish_run(
        &self,
        run_id: i64,
        worker: &str,
        outcome: &RunOutcome,
    ) -> Result<bool> {
        if !outcome.status.is_final() {
            return Err(StoreError::invalid(
                "status",
                "invalid_value",
                "a run finishes as success, skipped or failed",
            ));
        }
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE runs SET status = $1, row_count = $2, error = $3, detail = $4, finished_at = $5, lease_owner = NULL WHERE id = $6 AND lease_owner = $7 AND status = 'running'")
            .bind(outcome.status.as_str())
            .bind(outcome.rows)
            .bind(outcome.error.clone())
            .bind(outcome.detail.to_string())
            .bind(now())
            .bind(run_id)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            // The outcome and the alerts it calls for are recorded together.
            self.queue_run_alerts(&mut tx, run_id, outcome).await?;
        }
        tx.commit().await?;
        if done.rows_affected() == 1 {
            // The integration's next queued run, if any, can be claimed now.
            self.announce_runs_now().await?;
        }
        Ok(done.rows_affected() == 1)
    }

    /// Gives a run back to the queue (a worker shutting down before the run finished).
    pub async fn release_run(&self, run_id: i64, worker: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE runs SET status = 'queued', lease_owner = NULL, heartbeat_at = NULL WHERE id = $1 AND lease_owner = $2 AND status = 'running'").bind(run_id).bind(worker).execute(&self.write).await?;
        if done.rows_affected() == 1 {
            self.announce_runs_now().await?;
        }
        Ok(done.rows_affected() == 1)
    }

    /// Re-queues running runs whose heartbeat is older than `stale_before`; those that already
    /// had `max_attempts` attempts fail instead. Returns (re-queued, failed).
    pub async fn requeue_stale_runs(
        &self,
        stale_before: Timestamp,
        max_attempts: i64,
    ) -> Result<(u64, u64)> {
        let mut tx = self.begin_write().await?;
        let cutoff = micros(stale_before);
        let failed = sqlx::query("UPDATE runs SET status = 'failed', finished_at = $1, lease_owner = NULL, error = $2 WHERE status = 'running' AND heartbeat_at < $3 AND attempt >= $4")
            .bind(now())
            .bind(format!("the worker stopped responding during the run ({max_attempts} attempts)"))
            .bind(cutoff)
            .bind(max_attempts)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let requeued = sqlx::query("UPDATE runs SET status = 'queued', lease_owner = NULL, heartbeat_at = NULL WHERE status = 'running' AND heartbeat_at < $1").bind(cutoff).execute(&mut *tx).await?.rows_affected();
        if requeued > 0 {
            self.announce_runs(&mut tx).await?;
        }
        tx.commit().await?;
        if requeued > 0 {
            self.runs_changed.notify_waiters();
        }
        Ok((requeued, failed))
    }

    /// How many of the institution's runs have one of these statuses.
    pub async fn count_runs(&self, institution_id: i64, statuses: &[RunStatus]) -> Result<i64> {
        let mut count = 0;
        for status in statuses {
            count +=
                sqlx::query("SELECT COUNT(*) FROM runs WHERE institution_id = $1 AND status = $2")
                    .bind(institution_id)
                    .bind(status.as_str())
                    .fetch_one(&self.read)
                    .await?
                    .try_get::<i64, _>(0)?;
        }
        Ok(count)
    }

    /// The run with this ID in this institution; `NotFound` otherwise.
    pub async fn run(&self, institution_id: i64, id: i64) -> Result<Run> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLS} FROM runs WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        run_from(&row.ok_or(StoreError::NotFound)?)
    }

    /// Runs of an institution, newest first.
    pub async fn list_runs(&self, institution_id: i64, q: &RunQuery) -> Result<Vec<Run>> {
        let mut f = Filter::new(
            self.backend,
            &format!("SELECT {COLS} FROM runs WHERE institution_id ="),
            institution_id,
        )?;
        if let Some(i) = q.integration_id {
            f.and(" AND integration_id = $?", i)?;
        }
        if let Some(s) = q.status {
            f.and(" AND status = $?", s.as_str())?;
        }
        if let Some(t) = q.started_from {
            f.and(" AND started_at >= $?", micros(t))?;
        }
        if let Some(t) = q.started_to {
            f.and(" AND started_at <= $?", micros(t))?;
        }
        if let Some(b) = q.before {
            f.and(" AND id < $?", b)?;
        }
        f.push(&format!(
            " ORDER BY id DESC LIMIT {}",
            q.limit.clamp(1, 500)
        ));
        let rows = f.fetch_all(&self.read).await?;
        rows.iter().map(run_from).collect()
    }
}
