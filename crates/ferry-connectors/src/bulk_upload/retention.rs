//! The daily run (and Run now): "Delete non-evaluated contacts after X days" (seed 003). Calls
//! nobody marked reviewed within X days of their import are deleted with their recordings, and
//! uploaded files X days after their ingestion. Content goes from the vault first, then the
//! records, so a run that dies in between deletes the rest the next time (deleting a deleted
//! object is no error).

use ferry_store::RetentionCounts;
use ferry_vault::Vault;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::config::BulkUploadConfig;
use super::ingest::report_missing_recordings;
use crate::connector::{RunError, RunReport};
use crate::context::RunContext;

const BATCH: i64 = 1_000;

fn storage(e: ferry_vault::VaultError) -> RunError {
    tracing::error!(error = %e, "retention could not delete stored content");
    RunError::retryable("could not delete a file from Ferry's file storage; see the server log")
}

pub(crate) async fn run(
    ctx: &RunContext,
    vault: &Vault,
    cfg: &BulkUploadConfig,
) -> Result<RunReport, RunError> {
    let missing = report_missing_recordings(ctx).await?;
    if cfg.retention_days == 0 {
        return Ok(RunReport::skipped().with_detail(json!({
            "retention": {"retention_days": 0, "calls": 0, "recordings": 0, "files": 0},
            "recordings_missing": missing,
        })));
    }
    let cutoff = Timestamp::now()
        .checked_sub(SignedDuration::from_hours(
            24 * i64::from(cfg.retention_days),
        ))
        .unwrap_or(Timestamp::MIN);
    let counts = apply(ctx, vault, cutoff).await?;
    let rows = i64::try_from(counts.calls + counts.files).unwrap_or(i64::MAX);
    Ok(RunReport::success(rows).with_detail(json!({
        "retention": {
            "retention_days": cfg.retention_days,
            "calls": counts.calls,
            "recordings": counts.recordings,
            "files": counts.files,
        },
        "recordings_missing": missing,
    })))
}

/// Deletes what is older than `cutoff`.
pub(crate) async fn apply(
    ctx: &RunContext,
    vault: &Vault,
    cutoff: Timestamp,
) -> Result<RetentionCounts, RunError> {
    let store = ctx.store();
    let inst = ctx.institution_id();
    let mut counts = RetentionCounts::default();
    loop {
        let batch = store.unreviewed_calls_before(inst, cutoff, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let mut recordings = Vec::new();
        for (_, rec) in &batch {
            if let Some((id, key)) = rec {
                vault.delete(key).await.map_err(storage)?;
                recordings.push(*id);
            }
        }
        let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
        let (calls, recs) = store.delete_calls(inst, &ids, &recordings).await?;
        counts.calls += calls;
        counts.recordings += recs;
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        if (batch.len() as i64) < BATCH {
            break;
        }
    }
    loop {
        let files = store.files_to_purge(inst, cutoff, BATCH).await?;
        if files.is_empty() {
            break;
        }
        for f in &files {
            vault.delete(&f.object_key).await.map_err(storage)?;
            if store.mark_file_purged(f.id).await? {
                counts.files += 1;
            }
        }
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        if (files.len() as i64) < BATCH {
            break;
        }
    }
    Ok(counts)
}
