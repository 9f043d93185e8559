//! One file's run: find its template, hold its columns to it, ingest it (contacts through the
//! contacts import, calls as `voice` messages), write the report into `reports/`, or move the
//! file to `quarantine/` with the reason.

use std::collections::HashMap;

use ferry_core::bulk::{
    self, CallMatch, TemplateKind, check_columns, decode, is_recording, mask_matches,
    parse_call_direction, parse_call_duration, parse_call_time, parse_recording_name,
};
use ferry_core::phone::Phone;
use ferry_core::run::SyncDirection;
use ferry_store::{BulkTemplate, NewCall, SftpFile, SftpFileStatus};
use ferry_vault::Vault;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use super::config::BulkUploadConfig;
use crate::connector::{RunError, RunReport};
use crate::context::RunContext;

/// Calls are written in transactions of this many.
const CALL_CHUNK: usize = 2_000;
/// The most skipped rows a report lists (the counts cover every row).
const MAX_REPORTED: usize = 1_000;

/// A skipped row of a report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Skipped {
    /// The row's line number in the file (the header's line is the template's header row).
    pub row: u64,
    /// The error dictionary's code.
    pub code: String,
    /// The column at fault, if one is.
    pub field: Option<String>,
    /// Why, for people.
    pub reason: String,
}

/// A file's report: what each row did.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct FileReport {
    pub file: String,
    pub kind: String,
    pub template_id: Option<i64>,
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub skipped_rows: Vec<Skipped>,
    pub skipped_truncated: bool,
    /// Calls whose recording has not arrived yet (they wait for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recordings_waiting: Option<u64>,
    /// Why the whole file was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
    /// Where the CSV report was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_path: Option<String>,
}

impl FileReport {
    fn skip(&mut self, row: u64, code: &str, field: Option<&str>, reason: String) {
        self.skipped += 1;
        if self.skipped_rows.len() < MAX_REPORTED {
            self.skipped_rows.push(Skipped {
                row,
                code: code.to_string(),
                field: field.map(String::from),
                reason,
            });
        } else {
            self.skipped_truncated = true;
        }
    }

    /// The report as CSV for the customer's own automation: a summary row, then one row per
    /// skipped row.
    fn to_csv(&self) -> Result<Vec<u8>, RunError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let fail = |e: csv::Error| RunError::fatal(format!("could not write the report: {e}"));
        w.write_record(["file", "row", "result", "code", "field", "reason"])
            .map_err(fail)?;
        let summary = match &self.quarantined {
            Some(reason) => format!("quarantined: {reason}"),
            None => format!(
                "rows {}, created {}, updated {}, unchanged {}, skipped {}",
                self.rows, self.created, self.updated, self.unchanged, self.skipped
            ),
        };
        w.write_record([self.file.as_str(), "", "summary", "", "", &summary])
            .map_err(fail)?;
        for s in &self.skipped_rows {
            w.write_record([
                self.file.as_str(),
                &s.row.to_string(),
                "skipped",
                &s.code,
                s.field.as_deref().unwrap_or(""),
                &s.reason,
            ])
            .map_err(fail)?;
        }
        w.into_inner()
            .map_err(|e| RunError::fatal(format!("could not write the report: {e}")))
    }

    fn into_run_report(self) -> Result<RunReport, RunError> {
        let detail = serde_json::to_value(&self).unwrap_or_else(|_| json!({}));
        let rows = i64::try_from(self.rows).unwrap_or(i64::MAX);
        Ok(RunReport::success(rows).with_detail(detail))
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn folder_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn random_key(account_id: i64) -> String {
    let mut rnd = [0u8; 16];
    getrandom::fill(&mut rnd).expect("the operating system's random source works");
    format!(
        "sftp/{account_id}/{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Writes `bytes` (encrypted) into the account's folders at `path`.
pub(crate) async fn put_file(
    ctx: &RunContext,
    vault: &Vault,
    account_id: i64,
    path: &str,
    bytes: &[u8],
) -> Result<SftpFile, RunError> {
    let key = random_key(account_id);
    let storage = |e: ferry_vault::VaultError| {
        tracing::error!(error = %e, "could not store a file Ferry writes");
        RunError::retryable("could not store a file in Ferry's file storage; see the server log")
    };
    let mut w = vault.create(&key).await.map_err(storage)?;
    w.write(bytes).await.map_err(storage)?;
    let written = w.finish().await.map_err(storage)?;
    Ok(ctx
        .store()
        .sftp_put_file(
            account_id,
            path,
            &key,
            i64::try_from(written.plaintext_size).unwrap_or(i64::MAX),
            &written.sha256,
        )
        .await?)
}

/// The report of a file whose run ended before (a run claimed again after its worker died
/// between recording the file and recording the run).
fn stored_report(report: Option<Value>, file: &SftpFile) -> Result<RunReport, RunError> {
    let report = report.unwrap_or_else(|| json!({"file": file_name(&file.path)}));
    if let Some(reason) = report.get("quarantined").and_then(Value::as_str) {
        return Err(RunError::fatal(reason.to_string()));
    }
    let rows = report.get("rows").and_then(Value::as_i64).unwrap_or(0);
    Ok(RunReport::success(rows).with_detail(report))
}

/// The run of one arrived file.
pub(crate) async fn run_file(
    ctx: &RunContext,
    vault: &Vault,
    cfg: &BulkUploadConfig,
) -> Result<RunReport, RunError> {
    let store = ctx.store();
    let file = store
        .sftp_file_for_run(ctx.run().id)
        .await?
        .ok_or_else(|| RunError::fatal("the file of this run is no longer recorded"))?;
    if file.ingested_at.is_some() {
        return stored_report(store.bulk_file_report(file.id).await?, &file);
    }
    let name = file_name(&file.path).to_string();

    if is_recording(&name) {
        let attached = store
            .attach_recording(file.account_id, &file.path, file.id)
            .await?;
        let report = json!({"file": name, "kind": "recording", "rows": attached, "attached_to_calls": attached});
        store
            .finish_bulk_file(file.id, SftpFileStatus::Ingested, None, &report, None)
            .await?;
        return Ok(RunReport::success(i64::try_from(attached).unwrap_or(0)).with_detail(report));
    }

    if file.status == SftpFileStatus::Duplicate {
        let report = json!({"file": name, "duplicate": true, "rows": 0,
            "reason": "the same content was uploaded before and ingested once; this copy was not ingested again"});
        store
            .finish_bulk_file(file.id, SftpFileStatus::Duplicate, None, &report, None)
            .await?;
        return Ok(RunReport::skipped().with_detail(report));
    }

    let templates = store.bulk_templates(ctx.institution_id()).await?;
    let folder = folder_of(&file.path);
    let Some(template) = templates
        .iter()
        .find(|t| t.folder == folder && mask_matches(&t.file_mask, &name))
    else {
        let known = templates
            .iter()
            .map(|t| format!("{}/{}", t.folder.trim_end_matches('/'), t.file_mask))
            .collect::<Vec<_>>();
        let reason = if known.is_empty() {
            format!("no template takes {}: no template is set up yet", file.path)
        } else {
            format!(
                "no template takes {}: the templates take {}",
                file.path,
                known.join(", ")
            )
        };
        return quarantine(ctx, vault, &file, None, "bulk_no_template", reason).await;
    };

    let bytes = vault.read_all(&file.object_key).await.map_err(|e| {
        tracing::error!(error = %e, file_id = file.id, "could not read an uploaded file");
        RunError::retryable(
            "could not read the uploaded file from Ferry's file storage; see the server log",
        )
    })?;
    let text = match decode(&bytes, template.encoding) {
        Ok(t) => t,
        Err(reason) => {
            return quarantine(
                ctx,
                vault,
                &file,
                Some(template),
                "bulk_template_mismatch",
                reason,
            )
            .await;
        }
    };
    drop(bytes);
    // Lines before the header row are the export's preamble.
    let skip = usize::try_from(template.header_row.max(1) - 1).unwrap_or(0);
    let body = nth_line_start(&text, skip);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(u8::try_from(template.delimiter).unwrap_or(b','))
        .has_headers(true)
        .flexible(true)
        .from_reader(body.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_string()).collect(),
        Err(e) => {
            let reason = format!("the header row cannot be read: {e}");
            return quarantine(
                ctx,
                vault,
                &file,
                Some(template),
                "bulk_template_mismatch",
                reason,
            )
            .await;
        }
    };
    let positions = match check_columns(&template.columns, &header) {
        Ok(p) => p,
        Err(reason) => {
            return quarantine(
                ctx,
                vault,
                &file,
                Some(template),
                "bulk_template_mismatch",
                reason,
            )
            .await;
        }
    };

    let mut report = FileReport {
        file: name.clone(),
        kind: template.kind.as_str().to_string(),
        template_id: Some(template.id),
        ..FileReport::default()
    };
    let first_row = u64::try_from(template.header_row.max(1)).unwrap_or(1);
    match template.kind {
        TemplateKind::Contacts => {
            let data = match passthrough(template, &positions, header.len(), body) {
                Some(data) => data,
                None => contacts_csv(template, &positions, reader)?,
            };
            match store
                .import_contacts_csv(ctx.institution_id(), data, |_| {})
                .await
            {
                Ok(r) => {
                    report.created = r.created;
                    report.updated = r.updated;
                    report.unchanged = r.unchanged;
                    report.rows = r.created + r.updated + r.unchanged + r.skipped;
                    for e in r.errors {
                        // The import counts its header as row 1; the file's header is at
                        // `first_row`.
                        report.skip(e.row + first_row - 1, e.code, e.field.as_deref(), e.message);
                    }
                    report.skipped = r.skipped;
                    report.skipped_truncated |= r.errors_truncated;
                }
                Err(ferry_store::ImportError::File { message, .. }) => {
                    return quarantine(
                        ctx,
                        vault,
                        &file,
                        Some(template),
                        "bulk_template_mismatch",
                        message,
                    )
                    .await;
                }
                Err(ferry_store::ImportError::Store(e)) => return Err(e.into()),
            }
        }
        TemplateKind::Calls => {
            ingest_calls(
                ctx,
                cfg,
                &file,
                template,
                &positions,
                reader,
                first_row,
                &mut report,
            )
            .await?;
        }
    }
    if ctx.is_cancelled() {
        return Err(RunError::cancelled());
    }
    report_missing_recordings(ctx).await?;

    let report_path = format!("/reports/{name}.report.csv");
    put_file(ctx, vault, file.account_id, &report_path, &report.to_csv()?).await?;
    report.report_path = Some(report_path);
    let value = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
    store
        .finish_bulk_file(
            file.id,
            SftpFileStatus::Ingested,
            Some(template.id),
            &value,
            None,
        )
        .await?;
    report.into_run_report()
}

/// Where line `n` (0-based) of `text` begins.
fn nth_line_start(text: &str, n: usize) -> &str {
    let mut rest = text;
    for _ in 0..n {
        match rest.find('\n') {
            Some(i) => rest = &rest[i + 1..],
            None => return "",
        }
    }
    rest
}

/// When every column of a comma-separated file is mapped, in the file's order, the import can
/// read the rows as they are: only the header is rewritten to Ferry's field names (no copy of
/// every cell through a CSV writer).
fn passthrough(
    template: &BulkTemplate,
    positions: &[Option<usize>],
    width: usize,
    body: &str,
) -> Option<Vec<u8>> {
    if template.delimiter != ',' || positions.len() != width {
        return None;
    }
    let mut fields = Vec::with_capacity(width);
    for (i, (c, p)) in template.columns.iter().zip(positions).enumerate() {
        if *p != Some(i) {
            return None;
        }
        let f = c.field.as_deref()?;
        if f.contains([',', '"', '\n', '\r']) {
            return None;
        }
        fields.push(f);
    }
    let rest = match body.find('\n') {
        Some(i) => &body[i + 1..],
        None => "",
    };
    let mut data = Vec::with_capacity(rest.len() + 128);
    data.extend_from_slice(fields.join(",").as_bytes());
    data.push(b'\n');
    data.extend_from_slice(rest.as_bytes());
    Some(data)
}

/// The file as the contacts import reads it: a header of Ferry field names (the mapped
/// columns), comma-separated, UTF-8.
fn contacts_csv(
    template: &BulkTemplate,
    positions: &[Option<usize>],
    mut reader: csv::Reader<&[u8]>,
) -> Result<Vec<u8>, RunError> {
    let mapped: Vec<(usize, &str)> = template
        .columns
        .iter()
        .zip(positions)
        .filter_map(|(c, p)| Some((((*p)?), c.field.as_deref()?)))
        .collect();
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let fail = |e: csv::Error| RunError::fatal(format!("the file cannot be read: {e}"));
    w.write_record(mapped.iter().map(|(_, f)| *f))
        .map_err(fail)?;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                // A short row keeps the cells it has; the import reports it as ragged.
                for cell in mapped.iter().filter_map(|(i, _)| record.get(*i)) {
                    w.write_field(cell).map_err(fail)?;
                }
                w.write_record(std::iter::empty::<&[u8]>()).map_err(fail)?;
            }
            Err(e) => return Err(fail(e)),
        }
    }
    w.into_inner()
        .map_err(|e| RunError::fatal(format!("the file cannot be read: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn ingest_calls(
    ctx: &RunContext,
    cfg: &BulkUploadConfig,
    file: &SftpFile,
    template: &BulkTemplate,
    positions: &[Option<usize>],
    mut reader: csv::Reader<&[u8]>,
    first_row: u64,
    report: &mut FileReport,
) -> Result<(), RunError> {
    let store = ctx.store();
    let col = |field: &str| -> Option<usize> {
        template
            .columns
            .iter()
            .zip(positions)
            .find(|(c, _)| c.field.as_deref() == Some(field))
            .and_then(|(_, p)| *p)
    };
    let key_field = template.match_by.as_str();
    let cols: HashMap<&str, Option<usize>> = bulk::CALL_FIELDS
        .iter()
        .map(|(f, _)| (*f, col(f)))
        .collect();
    let folder = folder_of(&file.path);
    let wait = SignedDuration::from_mins(i64::from(cfg.recording_wait_minutes));
    let mut record = csv::StringRecord::new();
    let mut row = first_row;
    let mut waiting = 0u64;
    loop {
        // Read a chunk of rows, then look their contacts up at once.
        let mut parsed: Vec<(u64, String, NewCall)> = Vec::with_capacity(CALL_CHUNK);
        let mut more = true;
        while parsed.len() < CALL_CHUNK {
            match reader.read_record(&mut record) {
                Ok(false) => {
                    more = false;
                    break;
                }
                Ok(true) => {}
                Err(e) => {
                    row += 1;
                    report.rows += 1;
                    report.skip(
                        row,
                        "ragged_row",
                        None,
                        format!("the row cannot be read: {e}"),
                    );
                    continue;
                }
            }
            row += 1;
            report.rows += 1;
            let cell = |f: &str| {
                cols.get(f)
                    .copied()
                    .flatten()
                    .and_then(|i| record.get(i))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            };
            match parse_call(
                &cell,
                template.match_by,
                folder,
                file.account_id,
                row,
                file.id,
            ) {
                Ok((key, call)) => parsed.push((row, key, call)),
                Err((field, reason)) => {
                    let code = if field == key_field && template.match_by == CallMatch::Phone {
                        "invalid_phone"
                    } else {
                        "call_invalid_value"
                    };
                    report.skip(row, code, Some(field), reason);
                }
            }
        }
        let keys: Vec<String> = parsed.iter().map(|(_, k, _)| k.clone()).collect();
        let contacts = store
            .contact_ids_by(ctx.institution_id(), template.match_by, &keys)
            .await?;
        let mut calls = Vec::with_capacity(parsed.len());
        let now = Timestamp::now();
        for (r, key, mut call) in parsed {
            let Some(&contact) = contacts.get(&key) else {
                report.skip(
                    r,
                    "call_contact_not_found",
                    Some(key_field),
                    format!("no contact has the {} {key}", key_field.replace('_', " ")),
                );
                continue;
            };
            call.contact_id = contact;
            if let Some(path) = &call.recording_path {
                match store.sftp_visible_file(file.account_id, path).await? {
                    Some(f)
                        if matches!(
                            f.status,
                            SftpFileStatus::Complete
                                | SftpFileStatus::Ingested
                                | SftpFileStatus::Duplicate
                        ) =>
                    {
                        call.recording_file_id = Some(f.id);
                    }
                    _ => {
                        waiting += 1;
                        call.recording_due_at = now.checked_add(wait).ok();
                    }
                }
            }
            calls.push(call);
        }
        // A call written by an earlier attempt of this run (its worker died) is still this
        // file's call: it counts as created once, whichever attempt wrote it.
        let done = store.insert_calls(ctx.institution_id(), &calls).await?;
        report.created += done.len() as u64;
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        if !more {
            break;
        }
    }
    report.recordings_waiting = Some(waiting);
    // Rows that could not be read are listed as they are read, rows without a contact after
    // their chunk's lookup: the report lists them in file order.
    report.skipped_rows.sort_by_key(|s| s.row);
    Ok(())
}

type CellFn<'a> = dyn Fn(&str) -> Option<&'a str> + 'a;

/// Reads one calls row; on error the field at fault and why.
fn parse_call<'a>(
    cell: &CellFn<'a>,
    by: CallMatch,
    folder: &str,
    account_id: i64,
    row: u64,
    file_id: i64,
) -> Result<(String, NewCall), (&'static str, String)> {
    let key = match by {
        CallMatch::CrmId => cell("crm_id")
            .ok_or(("crm_id", "the CRM ID is empty".to_string()))?
            .to_string(),
        CallMatch::Phone => {
            let raw = cell("phone").ok_or(("phone", "the phone is empty".to_string()))?;
            Phone::parse(raw)
                .map_err(|_| ("phone", format!("{raw:?} is not a valid phone number")))?
                .into_string()
        }
    };
    let direction = parse_call_direction(
        cell("direction").ok_or(("direction", "the direction is empty".to_string()))?,
    )
    .map_err(|e| ("direction", e))?;
    let sent_at = parse_call_time(cell("time").ok_or(("time", "the time is empty".to_string()))?)
        .map_err(|e| ("time", e))?;
    let duration_secs = match cell("duration") {
        Some(d) => parse_call_duration(d).map_err(|e| ("duration", e))?,
        None => 0,
    };
    let recording_path = match cell("recording") {
        Some(r) => {
            let name = parse_recording_name(r).map_err(|e| ("recording", e))?;
            Some(if folder == "/" {
                format!("/{name}")
            } else {
                format!("{folder}/{name}")
            })
        }
        None => None,
    };
    let note = cell("note").unwrap_or("").to_string();
    if note.len() > ferry_core::message::MAX_BODY_BYTES {
        return Err((
            "note",
            format!(
                "the note is longer than {} bytes",
                ferry_core::message::MAX_BODY_BYTES
            ),
        ));
    }
    Ok((
        key,
        NewCall {
            contact_id: 0,
            direction,
            sent_at,
            duration_secs,
            agent: cell("agent").unwrap_or("").to_string(),
            note,
            source_key: format!("bulk:{file_id}:{row}"),
            account_id,
            recording_path,
            recording_file_id: None,
            recording_due_at: None,
        },
    ))
}

/// Writes a Sync Log row for each call whose recording is overdue.
pub(crate) async fn report_missing_recordings(ctx: &RunContext) -> Result<u64, RunError> {
    let missing = ctx
        .store()
        .take_missing_recordings(ctx.institution_id(), Timestamp::now())
        .await?;
    for m in &missing {
        ctx.log(
            Some(m.contact_id),
            SyncDirection::Incoming,
            "recording_missing",
            format!(
                "the recording {} of call {} has not arrived; upload it beside the calls file",
                m.recording_path, m.message_id
            ),
        )
        .await?;
    }
    Ok(missing.len() as u64)
}

/// Refuses the whole file: moves it to `quarantine/` with a note of the reason beside it, and
/// fails the run with the reason.
async fn quarantine(
    ctx: &RunContext,
    vault: &Vault,
    file: &SftpFile,
    template: Option<&BulkTemplate>,
    code: &str,
    reason: String,
) -> Result<RunReport, RunError> {
    let name = file_name(&file.path);
    let to = format!("/quarantine/{name}");
    put_file(
        ctx,
        vault,
        file.account_id,
        &format!("{to}.reason.txt"),
        format!("{}: {reason}\n", file.path).as_bytes(),
    )
    .await?;
    let report = FileReport {
        file: name.to_string(),
        kind: template
            .map(|t| t.kind.as_str().to_string())
            .unwrap_or_default(),
        template_id: template.map(|t| t.id),
        quarantined: Some(format!("{code}: {reason}")),
        ..FileReport::default()
    };
    let report_path = format!("/reports/{name}.report.csv");
    put_file(ctx, vault, file.account_id, &report_path, &report.to_csv()?).await?;
    let mut value = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
    value["report_path"] = json!(report_path);
    value["moved_to"] = json!(to);
    ctx.store()
        .finish_bulk_file(
            file.id,
            SftpFileStatus::Quarantined,
            template.map(|t| t.id),
            &value,
            Some(&to),
        )
        .await?;
    Err(RunError::fatal(format!(
        "{code}: {reason}; the file was moved to {to}"
    )))
}
