//! Bulk file upload (issue 12 items 7–10): templates made from a sample file, the link between
//! an uploaded file and the one run that ingests it, files Ferry writes into an account's folders
//! (reports, quarantine notes), calls (voice messages) with their recordings, Mark reviewed, and
//! what retention deletes.
//!
//! Exactly once: a file gets a run in the same transaction that records the run's id on the file
//! (only when it has none), so a file is queued once whatever the number of workers. A run that
//! is claimed again after its worker died re-applies the file: contacts match the rows the first
//! attempt wrote, and each call carries a source key (`bulk:<file id>:<row>`) that is unique per
//! institution, so nothing is written twice. The file is marked ingested, with its report, only
//! at the end; a run that finds it ingested returns that report.

use ferry_core::bulk::{CallMatch, Encoding, TemplateColumn, TemplateKind};
use ferry_core::contact::ContactId;
use ferry_core::message::{Channel, Direction, MessageType};
use ferry_core::run::Trigger;
use jiff::Timestamp;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::runs::{NewRun, Run};
use crate::sftp::{FILE_COLS, SftpFile, SftpFileStatus, file_from, sftp_parent};
use crate::util::{found, get_opt_ts, get_ts, micros, now};
use crate::{Result, Store, StoreError};

/// A template: how the files of one folder and file-name mask are read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BulkTemplate {
    /// The ID.
    pub id: i64,
    /// The institution.
    pub institution_id: i64,
    /// A name for people.
    pub name: String,
    /// Contacts or calls.
    pub kind: TemplateKind,
    /// The folder its files are uploaded to (`/` or `/calls`).
    pub folder: String,
    /// The file names it takes, e.g. `calls_*.csv`.
    pub file_mask: String,
    /// The files' text encoding.
    pub encoding: Encoding,
    /// The delimiter between cells.
    pub delimiter: char,
    /// The header row's line number (1 unless a preamble precedes it).
    pub header_row: i64,
    /// The columns, in the agreed order, with their Ferry fields and whether they are required.
    pub columns: Vec<TemplateColumn>,
    /// Calls files: how rows find their contact.
    pub match_by: CallMatch,
    /// The contact details given at setup (name, email, phone, notes), as entered.
    pub contact: Value,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A template to store (checked by the caller: folder normalised, mask valid, columns unique).
#[derive(Debug, Clone, PartialEq)]
pub struct NewBulkTemplate {
    /// A name for people.
    pub name: String,
    /// Contacts or calls.
    pub kind: TemplateKind,
    /// The folder.
    pub folder: String,
    /// The file-name mask.
    pub file_mask: String,
    /// The encoding.
    pub encoding: Encoding,
    /// The delimiter.
    pub delimiter: char,
    /// The header row's line number.
    pub header_row: i64,
    /// The columns.
    pub columns: Vec<TemplateColumn>,
    /// Calls files: how rows find their contact.
    pub match_by: CallMatch,
    /// Contact details given at setup.
    pub contact: Value,
}

/// A call to store as a `voice` message.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    /// The contact.
    pub contact_id: ContactId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// When it began.
    pub sent_at: Timestamp,
    /// How long it lasted, in seconds.
    pub duration_secs: i64,
    /// Who took or made it.
    pub agent: String,
    /// The note (the message body).
    pub note: String,
    /// Unique per institution: `bulk:<file id>:<row>`, so a retried run writes it once.
    pub source_key: String,
    /// The SFTP account whose folder holds its recording.
    pub account_id: i64,
    /// The recording's path in that folder, if the row names one.
    pub recording_path: Option<String>,
    /// The recording, when it has arrived already.
    pub recording_file_id: Option<i64>,
    /// Until when a recording that has not arrived is waited for.
    pub recording_due_at: Option<Timestamp>,
}

/// The call details of a `voice` message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallInfo {
    /// The message.
    pub message_id: i64,
    /// Seconds.
    pub duration_secs: i64,
    /// Who took or made it.
    pub agent: String,
    /// The recording's name in the account's folder, if the row named one.
    pub recording_path: Option<String>,
    /// The recording (`GET /api/v1/recordings/{id}`), once it arrived.
    pub recording_id: Option<i64>,
    /// When someone marked it reviewed.
    pub reviewed_at: Option<Timestamp>,
    /// When it was imported.
    pub imported_at: Timestamp,
}

/// A call whose recording did not arrive in time.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingRecording {
    /// The message.
    pub message_id: i64,
    /// Its contact.
    pub contact_id: ContactId,
    /// The recording it waits for.
    pub recording_path: String,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RetentionCounts {
    /// Calls not marked reviewed in time, deleted with their recordings.
    pub calls: u64,
    /// Recordings deleted with them.
    pub recordings: u64,
    /// Uploaded files whose content was deleted after ingestion.
    pub files: u64,
}

const TEMPLATE_COLS: &str = "id, institution_id, name, kind, folder, file_mask, encoding, delimiter, header_row, columns, match_by, contact, created_at, updated_at";

fn decode_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(e.to_string().into()))
}

fn template_from(row: &AnyRow) -> Result<BulkTemplate> {
    let delimiter: String = row.try_get("delimiter")?;
    Ok(BulkTemplate {
        id: row.try_get("id")?,
        institution_id: row.try_get("institution_id")?,
        name: row.try_get("name")?,
        kind: row
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(decode_err)?,
        folder: row.try_get("folder")?,
        file_mask: row.try_get("file_mask")?,
        encoding: row
            .try_get::<String, _>("encoding")?
            .parse()
            .map_err(decode_err)?,
        delimiter: delimiter.chars().next().unwrap_or(','),
        header_row: row.try_get("header_row")?,
        columns: serde_json::from_str(&row.try_get::<String, _>("columns")?).map_err(decode_err)?,
        match_by: row
            .try_get::<String, _>("match_by")?
            .parse()
            .map_err(decode_err)?,
        contact: serde_json::from_str(&row.try_get::<String, _>("contact")?).map_err(decode_err)?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn conflict(e: sqlx::Error, t: &NewBulkTemplate) -> StoreError {
    if StoreError::is_unique_violation(&e) {
        StoreError::Conflict(format!(
            "a template for {} in {} exists already",
            t.file_mask, t.folder
        ))
    } else {
        e.into()
    }
}

impl Store {
    /// Stores a template.
    pub async fn create_bulk_template(
        &self,
        institution_id: i64,
        t: &NewBulkTemplate,
    ) -> Result<BulkTemplate> {
        let ts = now();
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO bulk_templates (institution_id, name, kind, folder, file_mask, encoding, delimiter, header_row, columns, match_by, contact, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING {TEMPLATE_COLS}"
        )))
        .bind(institution_id)
        .bind(&t.name)
        .bind(t.kind.as_str())
        .bind(&t.folder)
        .bind(&t.file_mask)
        .bind(t.encoding.as_str())
        .bind(t.delimiter.to_string())
        .bind(t.header_row)
        .bind(serde_json::to_string(&t.columns).map_err(decode_err)?)
        .bind(t.match_by.as_str())
        .bind(t.contact.to_string())
        .bind(ts)
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict(e, t))?;
        template_from(&row)
    }

    /// Replaces a template's settings.
    pub async fn update_bulk_template(
        &self,
        institution_id: i64,
        id: i64,
        t: &NewBulkTemplate,
    ) -> Result<BulkTemplate> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE bulk_templates SET name = $1, kind = $2, folder = $3, file_mask = $4, encoding = $5, delimiter = $6, header_row = $7, columns = $8, match_by = $9, contact = $10, updated_at = $11 \
             WHERE institution_id = $12 AND id = $13 RETURNING {TEMPLATE_COLS}"
        )))
        .bind(&t.name)
        .bind(t.kind.as_str())
        .bind(&t.folder)
        .bind(&t.file_mask)
        .bind(t.encoding.as_str())
        .bind(t.delimiter.to_string())
        .bind(t.header_row)
        .bind(serde_json::to_string(&t.columns).map_err(decode_err)?)
        .bind(t.match_by.as_str())
        .bind(t.contact.to_string())
        .bind(now())
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(|e| conflict(e, t))?
        .ok_or(StoreError::NotFound)?;
        template_from(&row)
    }

    /// One template of the institution.
    pub async fn bulk_template(&self, institution_id: i64, id: i64) -> Result<BulkTemplate> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TEMPLATE_COLS} FROM bulk_templates WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound)?;
        template_from(&row)
    }

    /// The institution's templates, oldest first.
    pub async fn bulk_templates(&self, institution_id: i64) -> Result<Vec<BulkTemplate>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {TEMPLATE_COLS} FROM bulk_templates WHERE institution_id = $1 ORDER BY id"
        )))
        .bind(institution_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(template_from)
        .collect()
    }

    /// Deletes a template (files it read keep their reports).
    pub async fn delete_bulk_template(&self, institution_id: i64, id: i64) -> Result<()> {
        found(
            sqlx::query("DELETE FROM bulk_templates WHERE institution_id = $1 AND id = $2")
                .bind(institution_id)
                .bind(id)
                .execute(&self.write)
                .await?,
        )
    }

    /// Files ready for ingestion (or duplicates, which get a run that says so) that have no run
    /// yet, oldest first. Files Ferry wrote are never among them.
    pub async fn sftp_files_awaiting_run(&self, limit: i64) -> Result<Vec<SftpFile>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE status IN ($1, $2) AND ready_at IS NOT NULL AND run_id IS NULL AND by_ferry = $3 ORDER BY id LIMIT $4"
        )))
        .bind(SftpFileStatus::Complete.as_str())
        .bind(SftpFileStatus::Duplicate.as_str())
        .bind(false)
        .bind(limit)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(file_from)
        .collect()
    }

    /// Queues the run that ingests a file (trigger `file_arrived`, the file in its detail) and
    /// records it on the file, in one transaction; `None` when the file has a run already.
    pub async fn enqueue_file_run(&self, new: &NewRun, file_id: i64) -> Result<Option<Run>> {
        let file = self.sftp_file(file_id).await?;
        let name = file
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&file.path)
            .to_string();
        let detail = serde_json::json!({"file": name, "path": file.path, "file_id": file_id});
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO runs (institution_id, integration_id, kind, trigger_kind, status, detail, created_at) \
             SELECT $1, $2, $3, $4, 'queued', $5, $6 WHERE EXISTS (SELECT 1 FROM integrations WHERE id = $2 AND institution_id = $1) \
             RETURNING {}",
            crate::runs::COLS
        )))
        .bind(new.institution_id)
        .bind(new.integration_id)
        .bind(&new.kind)
        .bind(Trigger::FileArrived.as_str())
        .bind(detail.to_string())
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let run = crate::runs::run_from(&row)?;
        let linked = sqlx::query(
            "UPDATE sftp_files SET run_id = $1 WHERE id = $2 AND institution_id = $3 AND run_id IS NULL",
        )
        .bind(run.id)
        .bind(file_id)
        .bind(new.institution_id)
        .execute(&mut *tx)
        .await?;
        if linked.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        self.announce_runs(&mut tx).await?;
        tx.commit().await?;
        self.runs_changed.notify_waiters();
        Ok(Some(run))
    }

    /// The file a `file_arrived` run ingests.
    pub async fn sftp_file_for_run(&self, run_id: i64) -> Result<Option<SftpFile>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE run_id = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(file_from)
        .transpose()
    }

    /// The visible file at `path` of an account, if any.
    pub async fn sftp_visible_file(&self, account_id: i64, path: &str) -> Result<Option<SftpFile>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE account_id = $1 AND path = $2 AND visible = $3"
        )))
        .bind(account_id)
        .bind(path)
        .bind(true)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(file_from)
        .transpose()
    }

    async fn ensure_dirs(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        account_id: i64,
        dir: &str,
    ) -> Result<()> {
        if dir == "/" {
            return Ok(());
        }
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            let parent = if path.is_empty() {
                "/".to_string()
            } else {
                path.clone()
            };
            path = format!("{path}/{part}");
            let exists = sqlx::query("SELECT 1 FROM sftp_dirs WHERE account_id = $1 AND path = $2")
                .bind(account_id)
                .bind(&path)
                .fetch_optional(&mut **tx)
                .await?;
            if exists.is_none() {
                // A visible file in the way is hidden: Ferry's folders win.
                sqlx::query("UPDATE sftp_files SET visible = $1 WHERE account_id = $2 AND path = $3 AND visible = $4")
                    .bind(false)
                    .bind(account_id)
                    .bind(&path)
                    .bind(true)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("INSERT INTO sftp_dirs (account_id, parent, path, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(account_id)
                    .bind(&parent)
                    .bind(&path)
                    .bind(now())
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// Records a file Ferry wrote into an account's folders (a report, a quarantine note),
    /// stored in the vault under `object_key`: its folders are made, an earlier file of the name
    /// is hidden, and it is never ingested.
    pub async fn sftp_put_file(
        &self,
        account_id: i64,
        path: &str,
        object_key: &str,
        size: i64,
        sha256: &str,
    ) -> Result<SftpFile> {
        let parent = sftp_parent(path)?.to_string();
        let mut tx = self.begin_write().await?;
        self.ensure_dirs(&mut tx, account_id, &parent).await?;
        let ts = now();
        sqlx::query("UPDATE sftp_files SET visible = $1, updated_at = $2 WHERE account_id = $3 AND path = $4 AND visible = $5")
            .bind(false)
            .bind(ts)
            .bind(account_id)
            .bind(path)
            .bind(true)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO sftp_files (institution_id, account_id, parent, path, object_key, status, visible, size, sha256, by_ferry, created_at, updated_at) \
             SELECT institution_id, id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $9 FROM sftp_accounts WHERE id = $10 RETURNING {FILE_COLS}"
        )))
        .bind(&parent)
        .bind(path)
        .bind(object_key)
        .bind(SftpFileStatus::Complete.as_str())
        .bind(true)
        .bind(size)
        .bind(sha256)
        .bind(true)
        .bind(ts)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        file_from(&row)
    }

    /// Ends a file's ingestion: `Ingested` (or `Quarantined`, moved to `quarantine_path`) with
    /// its report and template. Only a file still waiting (complete or duplicate) changes;
    /// `false` when it had ended already.
    pub async fn finish_bulk_file(
        &self,
        file_id: i64,
        status: SftpFileStatus,
        template_id: Option<i64>,
        report: &Value,
        quarantine_path: Option<&str>,
    ) -> Result<bool> {
        let file = self.sftp_file(file_id).await?;
        let mut tx = self.begin_write().await?;
        let ts = now();
        let done = sqlx::query("UPDATE sftp_files SET status = $1, template_id = $2, report = $3, ingested_at = $4, updated_at = $4 WHERE id = $5 AND status IN ($6, $7)")
            .bind(status.as_str())
            .bind(template_id)
            .bind(report.to_string())
            .bind(ts)
            .bind(file_id)
            .bind(SftpFileStatus::Complete.as_str())
            .bind(SftpFileStatus::Duplicate.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let (Some(to), true) = (quarantine_path, file.visible) {
            let parent = sftp_parent(to)?.to_string();
            self.ensure_dirs(&mut tx, file.account_id, &parent).await?;
            sqlx::query("UPDATE sftp_files SET visible = $1 WHERE account_id = $2 AND path = $3 AND visible = $4")
                .bind(false)
                .bind(file.account_id)
                .bind(to)
                .bind(true)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE sftp_files SET path = $1, parent = $2 WHERE id = $3")
                .bind(to)
                .bind(&parent)
                .bind(file_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The report stored when a file's ingestion ended.
    pub async fn bulk_file_report(&self, file_id: i64) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT report FROM sftp_files WHERE id = $1")
            .bind(file_id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound)?;
        row.try_get::<Option<String>, _>(0)?
            .map(|s| serde_json::from_str(&s).map_err(decode_err))
            .transpose()
    }

    /// One upload record of the institution, with its report.
    pub async fn bulk_file(
        &self,
        institution_id: i64,
        id: i64,
    ) -> Result<(SftpFile, Option<Value>)> {
        let file = self.sftp_file(id).await?;
        if file.institution_id != institution_id {
            return Err(StoreError::NotFound);
        }
        Ok((file, self.bulk_file_report(id).await?))
    }

    /// Contacts of the institution by CRM ID or by phone (E.164), for the given keys.
    pub async fn contact_ids_by(
        &self,
        institution_id: i64,
        by: CallMatch,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, ContactId>> {
        let col = match by {
            CallMatch::CrmId => "crm_id",
            CallMatch::Phone => "phone",
        };
        let mut out = std::collections::HashMap::new();
        for chunk in keys.chunks(500) {
            let mut p = crate::util::Params::new(self.backend);
            let mut sql = format!("SELECT id, {col} FROM contacts WHERE institution_id = ");
            p.bind(&mut sql, institution_id)?;
            sql.push_str(&format!(" AND {col} IN ("));
            p.bind_list(&mut sql, chunk.iter().cloned())?;
            sql.push(')');
            for row in sqlx::query_with(AssertSqlSafe(sql), p.args)
                .fetch_all(&self.read)
                .await?
            {
                out.insert(row.try_get::<String, _>(1)?, row.try_get::<i64, _>(0)?);
            }
        }
        Ok(out)
    }

    /// Stores calls as `voice` messages with their details, in one transaction. A call whose
    /// source key exists already (a retried run) is not written again. Returns, for each call,
    /// its message id and whether it was written now.
    pub async fn insert_calls(
        &self,
        institution_id: i64,
        calls: &[NewCall],
    ) -> Result<Vec<(i64, bool)>> {
        let mut out = Vec::with_capacity(calls.len());
        if calls.is_empty() {
            return Ok(out);
        }
        let mut tx = self.begin_write().await?;
        let mut existing = std::collections::HashMap::new();
        for chunk in calls.chunks(500) {
            let mut p = crate::util::Params::new(self.backend);
            let mut sql =
                String::from("SELECT id, source_key FROM messages WHERE institution_id = ");
            p.bind(&mut sql, institution_id)?;
            sql.push_str(" AND source_key IN (");
            p.bind_list(&mut sql, chunk.iter().map(|c| c.source_key.clone()))?;
            sql.push(')');
            for row in sqlx::query_with(AssertSqlSafe(sql), p.args)
                .fetch_all(&mut *tx)
                .await?
            {
                existing.insert(row.try_get::<String, _>(1)?, row.try_get::<i64, _>(0)?);
            }
        }
        let new_count = calls
            .iter()
            .filter(|c| !existing.contains_key(&c.source_key))
            .count() as i64;
        let mut seq = if new_count > 0 {
            let row = sqlx::query("UPDATE institutions SET message_seq = message_seq + $1 WHERE id = $2 RETURNING message_seq")
                .bind(new_count)
                .bind(institution_id)
                .fetch_one(&mut *tx)
                .await?;
            row.try_get::<i64, _>(0)? - new_count
        } else {
            0
        };
        let ts = now();
        for c in calls {
            if let Some(id) = existing.get(&c.source_key) {
                out.push((*id, false));
                continue;
            }
            seq += 1;
            let row = sqlx::query("INSERT INTO messages (institution_id, contact_id, channel, type, direction, body, sent_at, seq, created_at, source_key) \
                 SELECT $1, id, $2, $3, $4, $5, $6, $7, $8, $9 FROM contacts WHERE id = $10 AND institution_id = $1 RETURNING id")
                .bind(institution_id)
                .bind(Channel::Voice.as_str())
                .bind(MessageType::Call.as_str())
                .bind(c.direction.as_str())
                .bind(&c.note)
                .bind(micros(c.sent_at))
                .bind(seq)
                .bind(ts)
                .bind(&c.source_key)
                .bind(c.contact_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    StoreError::invalid(
                        "contact_id",
                        "not_found",
                        format!("no contact {} in this institution", c.contact_id),
                    )
                })?;
            let id: i64 = row.try_get(0)?;
            sqlx::query("INSERT INTO calls (message_id, institution_id, account_id, duration_secs, agent, recording_path, recording_file_id, recording_due_at, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(id)
                .bind(institution_id)
                .bind(c.account_id)
                .bind(c.duration_secs)
                .bind(&c.agent)
                .bind(c.recording_path.clone())
                .bind(c.recording_file_id)
                .bind(c.recording_due_at.map(micros))
                .bind(ts)
                .execute(&mut *tx)
                .await?;
            out.push((id, true));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Attaches a recording that arrived to the calls of its account waiting for it (by path);
    /// returns how many.
    pub async fn attach_recording(&self, account_id: i64, path: &str, file_id: i64) -> Result<u64> {
        Ok(sqlx::query("UPDATE calls SET recording_file_id = $1 WHERE account_id = $2 AND recording_path = $3 AND recording_file_id IS NULL")
            .bind(file_id)
            .bind(account_id)
            .bind(path)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    /// Calls of the institution whose recording has not arrived by its due time and that were
    /// not reported yet; they are marked reported in the same statement.
    pub async fn take_missing_recordings(
        &self,
        institution_id: i64,
        now_at: Timestamp,
    ) -> Result<Vec<MissingRecording>> {
        let rows = sqlx::query("UPDATE calls SET recording_missing_logged = $1 WHERE institution_id = $2 AND recording_file_id IS NULL AND recording_path IS NOT NULL AND recording_due_at < $3 AND recording_missing_logged = $4 RETURNING message_id, recording_path")
            .bind(true)
            .bind(institution_id)
            .bind(micros(now_at))
            .bind(false)
            .fetch_all(&self.write)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let message_id: i64 = r.try_get(0)?;
            let contact = sqlx::query("SELECT contact_id FROM messages WHERE id = $1")
                .bind(message_id)
                .fetch_one(&self.read)
                .await?;
            out.push(MissingRecording {
                message_id,
                contact_id: contact.try_get(0)?,
                recording_path: r.try_get(1)?,
            });
        }
        Ok(out)
    }

    /// The call details of these messages (those that are calls).
    pub async fn call_infos(
        &self,
        institution_id: i64,
        message_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, CallInfo>> {
        let mut out = std::collections::HashMap::new();
        for chunk in message_ids.chunks(500) {
            let mut p = crate::util::Params::new(self.backend);
            let mut sql = String::from(
                "SELECT message_id, duration_secs, agent, recording_path, recording_file_id, reviewed_at, imported_at FROM calls WHERE institution_id = ",
            );
            p.bind(&mut sql, institution_id)?;
            sql.push_str(" AND message_id IN (");
            p.bind_list(&mut sql, chunk.iter().copied())?;
            sql.push(')');
            for row in sqlx::query_with(AssertSqlSafe(sql), p.args)
                .fetch_all(&self.read)
                .await?
            {
                let info = CallInfo {
                    message_id: row.try_get("message_id")?,
                    duration_secs: row.try_get("duration_secs")?,
                    agent: row.try_get("agent")?,
                    recording_path: row.try_get("recording_path")?,
                    recording_id: row.try_get("recording_file_id")?,
                    reviewed_at: get_opt_ts(&row, "reviewed_at")?,
                    imported_at: get_ts(&row, "imported_at")?,
                };
                out.insert(info.message_id, info);
            }
        }
        Ok(out)
    }

    /// Marks a call reviewed (or not): reviewed calls are kept by retention. `Invalid` when the
    /// message is not a call.
    pub async fn set_message_reviewed(
        &self,
        institution_id: i64,
        message_id: i64,
        reviewed: bool,
    ) -> Result<CallInfo> {
        let exists = sqlx::query("SELECT 1 FROM messages WHERE institution_id = $1 AND id = $2")
            .bind(institution_id)
            .bind(message_id)
            .fetch_optional(&self.read)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let done = sqlx::query(
            "UPDATE calls SET reviewed_at = $1 WHERE institution_id = $2 AND message_id = $3",
        )
        .bind(if reviewed { Some(now()) } else { None })
        .bind(institution_id)
        .bind(message_id)
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::invalid(
                "reviewed",
                "invalid_value",
                "only calls (voice messages from a bulk calls file) can be marked reviewed",
            ));
        }
        self.call_infos(institution_id, &[message_id])
            .await?
            .remove(&message_id)
            .ok_or(StoreError::NotFound)
    }

    /// A recording of the institution that a call refers to: its file record (the content is in
    /// the vault under its object key).
    pub async fn recording(&self, institution_id: i64, id: i64) -> Result<SftpFile> {
        let used =
            sqlx::query("SELECT 1 FROM calls WHERE institution_id = $1 AND recording_file_id = $2")
                .bind(institution_id)
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        if used.is_none() {
            return Err(StoreError::NotFound);
        }
        let file = self.sftp_file(id).await?;
        if file.institution_id != institution_id || file.purged_at.is_some() {
            return Err(StoreError::NotFound);
        }
        Ok(file)
    }

    /// Retention, step 1: the calls imported before `cutoff` that nobody marked reviewed, with
    /// the object keys of their recordings (to delete from the vault before
    /// [`Store::delete_calls`]).
    pub async fn unreviewed_calls_before(
        &self,
        institution_id: i64,
        cutoff: Timestamp,
        limit: i64,
    ) -> Result<Vec<(i64, Option<(i64, String)>)>> {
        let rows = sqlx::query("SELECT c.message_id, f.id, f.object_key FROM calls c LEFT JOIN sftp_files f ON f.id = c.recording_file_id AND f.purged_at IS NULL WHERE c.institution_id = $1 AND c.reviewed_at IS NULL AND c.imported_at < $2 ORDER BY c.message_id LIMIT $3")
            .bind(institution_id)
            .bind(micros(cutoff))
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let file: Option<i64> = r.try_get(1)?;
            let key: Option<String> = r.try_get(2)?;
            out.push((r.try_get(0)?, file.zip(key)));
        }
        Ok(out)
    }

    /// Retention, step 2: deletes these calls (still unreviewed) and marks their recordings
    /// purged; returns (calls, recordings) deleted.
    pub async fn delete_calls(
        &self,
        institution_id: i64,
        message_ids: &[i64],
        recording_ids: &[i64],
    ) -> Result<(u64, u64)> {
        let mut tx = self.begin_write().await?;
        let ts = now();
        let mut calls = 0;
        for id in message_ids {
            calls += sqlx::query("DELETE FROM messages WHERE institution_id = $1 AND id = $2 AND EXISTS (SELECT 1 FROM calls WHERE message_id = $2 AND reviewed_at IS NULL)")
                .bind(institution_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let mut recordings = 0;
        for id in recording_ids {
            recordings += sqlx::query("UPDATE sftp_files SET purged_at = $1, visible = $2, updated_at = $1 WHERE institution_id = $3 AND id = $4 AND purged_at IS NULL")
                .bind(ts)
                .bind(false)
                .bind(institution_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok((calls, recordings))
    }

    /// Retention: uploaded files ingested (or quarantined) before `cutoff` whose content is not
    /// deleted yet, excluding recordings still attached to a kept call.
    pub async fn files_to_purge(
        &self,
        institution_id: i64,
        cutoff: Timestamp,
        limit: i64,
    ) -> Result<Vec<SftpFile>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files f WHERE institution_id = $1 AND by_ferry = $2 AND purged_at IS NULL AND ingested_at IS NOT NULL AND ingested_at < $3 \
             AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.recording_file_id = f.id) ORDER BY id LIMIT $4"
        )))
        .bind(institution_id)
        .bind(false)
        .bind(micros(cutoff))
        .bind(limit)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(file_from)
        .collect()
    }

    /// Marks a file's content deleted (hidden from the account; the record and report stay).
    pub async fn mark_file_purged(&self, file_id: i64) -> Result<bool> {
        let ts = now();
        Ok(sqlx::query("UPDATE sftp_files SET purged_at = $1, visible = $2, updated_at = $1 WHERE id = $3 AND purged_at IS NULL")
            .bind(ts)
            .bind(false)
            .bind(file_id)
            .execute(&self.write)
            .await?
            .rows_affected()
            == 1)
    }

    /// Marks a recording that arrived as taken in (attached, or waiting for its call).
    pub async fn mark_recording_ingested(&self, file_id: i64, report: &Value) -> Result<bool> {
        self.finish_bulk_file(file_id, SftpFileStatus::Ingested, None, report, None)
            .await
    }
}
