//! One export run: read the rows, write the CSV, stream it to the SFTP server, and advance the
//! watermark once the server confirmed the renamed file.
//!
//! Delivery is exact across crashes. Before anything is uploaded the run records the file's name
//! and its message window in the integration's state (a [`Delivery`]); once the `.part` file is
//! complete it records that the rename comes next. A later attempt finds the record and either
//! sends the same window under the same name again (the rename never happened: the `.part` file
//! is replaced) or, when the record says the rename was under way and no `.part` file is left,
//! takes the file as delivered and only moves the watermark. So a window is never sent in two
//! finished files, whatever moment a worker dies at.
//!
//! The file is never held whole in memory: rows come from the store in batches, are rendered
//! into chunks of [`CHUNK`] bytes, and flow to the upload through a small bounded channel.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_core::contact::{Contact, FieldRef, FieldSchema, value_text};
use ferry_core::export::CsvWriter;

use super::eab::{EabFile, NoteTemplate, NoteValues, us_date};
use ferry_core::run::SyncDirection;
use ferry_sftp::{ClientOptions, Session, UploadState};
use ferry_store::{ExportMessage, ExportStream, MessageWindow, Store};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use super::ExportKind;
use super::client::{connect, pin_host_key, run_error};
use super::config::{ContactsConfig, EabConfig, ExportConfig};
use crate::connector::{RunError, RunReport};
use crate::context::RunContext;
use crate::explain::RunPreview;
use crate::failpoint;

/// Bytes rendered before they are handed to the upload.
pub const CHUNK: usize = 256 * 1024;

/// Contacts read per page by a Contacts export.
const CONTACT_PAGE: u32 = 2000;

/// The Sync Log code for a note left out because its contact has no CRM ID.
pub const MISSING_CRM_ID: &str = "missing_crm_id";

/// The header of a Conversations export.
pub const CONVERSATION_COLUMNS: [&str; 12] = [
    "message_id",
    "platform_id",
    "crm_id",
    "first_name",
    "last_name",
    "phone",
    "channel",
    "type",
    "direction",
    "body",
    "sent_at",
    "url",
];

/// The integration state an export keeps.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportState {
    /// The highest message sequence a confirmed file (or a run with nothing to send) covered;
    /// absent until there is one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub watermark: i64,
    /// The file being delivered, while a delivery is not known to be complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A file on its way to the server, recorded before its upload starts so that whoever runs the
/// export next finishes this delivery instead of starting another.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// The file's name on the server.
    pub file: String,
    /// The directory it goes to (the login directory if `None`).
    #[serde(default)]
    pub directory: Option<String>,
    /// The message window it covers (`after_seq`, `up_to_seq`]; `None` for a Contacts export.
    #[serde(default)]
    pub window: Option<(i64, i64)>,
    /// Set once the whole `.part` file was on the server, just before the rename: from then on
    /// the file counts as delivered unless its `.part` file is still there.
    #[serde(default)]
    pub renaming: bool,
    /// Rows in the file (known once `renaming` is set).
    #[serde(default)]
    pub rows: i64,
    /// Bytes of the file (known once `renaming` is set).
    #[serde(default)]
    pub bytes: u64,
    /// The contacts whose messages the file leaves out for want of a CRM ID (known once
    /// `renaming` is set), so that an attempt that finds the file delivered still logs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_crm_ids: Vec<i64>,
}

/// The file name: prefix, a sortable UTC timestamp to the millisecond, `.csv`.
pub fn file_name(prefix: &str, at: Timestamp) -> String {
    format!("{prefix}{}.csv", at.strftime("%Y%m%dT%H%M%S%3fZ"))
}

/// A link to a message in Ferry's conversation view.
pub fn message_url(public_url: &str, contact_id: i64, message_id: i64) -> String {
    format!(
        "{}/contacts/{contact_id}?message={message_id}#m{message_id}",
        public_url.trim_end_matches('/')
    )
}

/// Where rows come from.
enum Source {
    Messages {
        stream: ExportStream,
        format: Box<MessageFormat>,
        /// Contacts whose notes were left out for want of a CRM ID; logged once the run's
        /// outcome is known (see [`log_missing_crm_ids`]).
        missing_crm: HashSet<i64>,
    },
    Contacts {
        columns: Vec<Column>,
        filters: Vec<(Column, Vec<String>)>,
        after_id: i64,
        done: bool,
    },
}

enum MessageFormat {
    Conversations {
        public_url: String,
    },
    Eab {
        file: EabFile,
        template: NoteTemplate,
        tz: TimeZone,
        public_url: String,
        dates: DateCache,
    },
}

/// The last "Created on" date and the UTC span of that local day: rows come in time order,
/// so most rows reuse it.
#[derive(Default)]
struct DateCache {
    from: i64,
    until: i64,
    text: String,
}

impl DateCache {
    fn get(&mut self, t: Timestamp, tz: &TimeZone) -> &str {
        let us = t.as_microsecond();
        if us < self.from || us >= self.until || self.text.is_empty() {
            let z = t.to_zoned(tz.clone());
            self.text = us_date(t, tz);
            let span = z
                .start_of_day()
                .ok()
                .zip(z.tomorrow().ok().and_then(|d| d.start_of_day().ok()));
            (self.from, self.until) = match span {
                Some((a, b)) => (
                    a.timestamp().as_microsecond(),
                    b.timestamp().as_microsecond(),
                ),
                None => (us, us + 1),
            };
        }
        &self.text
    }
}

/// A column of a Contacts export.
#[derive(Debug, Clone)]
enum Column {
    Field(FieldRef),
    Archived,
}

impl Column {
    fn resolve(name: &str, schema: &FieldSchema) -> Result<Column, RunError> {
        if name == "archived" {
            return Ok(Column::Archived);
        }
        if let Some(f) = schema.resolve(name) {
            return Ok(Column::Field(f));
        }
        Err(RunError::fatal(format!(
            "the contact field \"{name}\" no longer exists; edit the export's fields"
        )))
    }

    fn value(&self, c: &Contact) -> String {
        match self {
            Column::Archived => c.data.archived.to_string(),
            Column::Field(f) => value_text(&c.value_of(f)),
        }
    }
}

/// Renders rows into a buffer, batch by batch.
struct Producer<'a> {
    store: &'a Store,
    institution_id: i64,
    source: Source,
    out: CsvWriter<Vec<u8>>,
    rows: u64,
    /// For a preview: the buffer's length after each of the first `mark_rows` rows.
    mark_rows: u64,
    marks: Vec<usize>,
    /// For a preview: the first `capture` messages written.
    capture: usize,
    captured: Vec<ExportMessage>,
    /// Messages the rows stand for (with EAB's dedupe, one row stands for several).
    messages: i64,
}

impl Producer<'_> {
    /// Renders the next batch; `false` when the source is exhausted.
    async fn fill(&mut self) -> Result<bool, RunError> {
        match &mut self.source {
            Source::Messages {
                stream,
                format,
                missing_crm,
            } => {
                let batch = match stream.next_batch().await {
                    None => return Ok(false),
                    Some(batch) => batch?,
                };
                for m in &batch {
                    match &mut **format {
                        MessageFormat::Conversations { public_url } => {
                            write(&mut self.out, &conversation_row(m, public_url))?;
                        }
                        MessageFormat::Eab {
                            file,
                            template,
                            tz,
                            public_url,
                            dates,
                        } => {
                            let crm_id = m.crm_id.as_deref().map(str::trim).unwrap_or("");
                            if crm_id.is_empty() {
                                missing_crm.insert(m.contact_id);
                                continue;
                            }
                            write_eab_row(
                                &mut self.out,
                                m,
                                crm_id,
                                file,
                                template,
                                dates,
                                tz,
                                public_url,
                            )?;
                        }
                    }
                    self.rows += 1;
                    self.messages += m.count.max(1);
                    if self.rows <= self.mark_rows {
                        self.marks.push(self.out.get_mut().len());
                    }
                    if self.captured.len() < self.capture {
                        self.captured.push(m.clone());
                    }
                }
                Ok(true)
            }
            Source::Contacts {
                columns,
                filters,
                after_id,
                done,
            } => {
                if *done {
                    return Ok(false);
                }
                let page = self
                    .store
                    .contacts_for_export(self.institution_id, *after_id, CONTACT_PAGE)
                    .await?;
                if page.len() < CONTACT_PAGE as usize {
                    *done = true;
                }
                let Some(last) = page.last() else {
                    return Ok(false);
                };
                *after_id = last.id;
                for c in &page {
                    let passes = filters.iter().all(|(col, values)| {
                        let v = col.value(c);
                        values
                            .iter()
                            .any(|want| want.trim().eq_ignore_ascii_case(v.trim()))
                    });
                    if passes {
                        let cells: Vec<String> = columns.iter().map(|col| col.value(c)).collect();
                        write(&mut self.out, &cells)?;
                        self.rows += 1;
                        if self.rows <= self.mark_rows {
                            self.marks.push(self.out.get_mut().len());
                        }
                    }
                }
                Ok(true)
            }
        }
    }

    /// The contacts left out for want of a CRM ID, by platform ID.
    fn missing_crm_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = match &self.source {
            Source::Messages { missing_crm, .. } => missing_crm.iter().copied().collect(),
            Source::Contacts { .. } => Vec::new(),
        };
        ids.sort_unstable();
        ids
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(self.out.get_mut(), Vec::with_capacity(CHUNK + 64 * 1024))
    }

    fn buffered(&mut self) -> usize {
        self.out.get_mut().len()
    }
}

fn write<S: AsRef<str>>(out: &mut CsvWriter<Vec<u8>>, cells: &[S]) -> Result<(), RunError> {
    out.write_row(cells)
        .map_err(|e| RunError::fatal(format!("could not write the CSV: {e}")))
}

fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn conversation_row(m: &ExportMessage, public_url: &str) -> [String; 12] {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        m.id.to_string(),
        m.contact_id.to_string(),
        o(&m.crm_id),
        o(&m.first_name),
        o(&m.last_name),
        o(&m.phone),
        m.channel.as_str().to_string(),
        m.message_type.as_str().to_string(),
        m.direction.as_str().to_string(),
        m.body.clone(),
        iso(m.sent_at),
        message_url(public_url, m.contact_id, m.id),
    ]
}

#[allow(clippy::too_many_arguments)]
fn write_eab_row(
    out: &mut CsvWriter<Vec<u8>>,
    m: &ExportMessage,
    crm_id: &str,
    file: &EabFile,
    template: &NoteTemplate,
    dates: &mut DateCache,
    tz: &TimeZone,
    public_url: &str,
) -> Result<(), RunError> {
    let date = dates.get(m.sent_at, tz);
    let url = message_url(public_url, m.contact_id, m.id);
    fn o(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }
    let body = template.render(&NoteValues {
        date,
        url: &url,
        first_name: o(&m.first_name),
        last_name: o(&m.last_name),
        preferred_name: o(&m.preferred_name),
        message: &m.body,
        channel: m.channel.label(),
        message_type: m.message_type.label(),
        direction: m.direction.label(),
        count: m.count.max(1) as u64,
    });
    write(out, &file.note_cells(crm_id, date, &body, &url))
}

fn eab_file(e: &EabConfig) -> EabFile {
    EabFile {
        import_version: e.import_version.trim().to_string(),
        institution_id: e.institution_id.trim().to_string(),
        group_id: e.group_id.clone(),
        is_private: e.is_private,
        student_viewable: e.student_viewable,
        show_on_student_report: e.show_on_student_report,
        created_by: e.created_by.clone(),
        note_reasons: e.note_reasons.clone(),
    }
}

/// An `AsyncRead` over chunks sent through a channel; an `Err` chunk fails the read (and so
/// the upload, which then removes its `.part` file instead of publishing a short file).
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.pos < self.current.len() {
                let n = buf.remaining().min(self.current.len() - self.pos);
                let start = self.pos;
                buf.put_slice(&self.current[start..start + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// What an export run needs besides its context.
pub struct RunSettings<'a> {
    /// `FERRY_PUBLIC_URL`, the start of message links.
    pub public_url: &'a str,
    /// SFTP client settings.
    pub client: &'a ClientOptions,
}

/// Runs one export of `kind`.
pub async fn run(
    kind: ExportKind,
    config: &ExportConfig,
    ctx: &RunContext,
    settings: &RunSettings<'_>,
) -> Result<RunReport, RunError> {
    tokio::select! {
        biased;
        _ = ctx.cancel().cancelled() => Err(RunError::cancelled()),
        result = export(kind, config, ctx, settings) => result,
    }
}

async fn export(
    kind: ExportKind,
    config: &ExportConfig,
    ctx: &RunContext,
    settings: &RunSettings<'_>,
) -> Result<RunReport, RunError> {
    let store = ctx.store();
    let institution_id = ctx.institution_id();
    let mut state: ExportState = ctx.state();
    let mut session = None;

    // An attempt that died after its file was complete on the server may have renamed it.
    if let Some(d) = state.delivery.clone().filter(|d| d.renaming) {
        let s = open(config, ctx, settings).await?;
        let found = s
            .upload_state(d.directory.as_deref(), &d.file)
            .await
            .map_err(|e| run_error(&e))?;
        if found == UploadState::Partial {
            // The rename never happened: send the window again under the same name.
            s.discard_partial(d.directory.as_deref(), &d.file)
                .await
                .map_err(|e| run_error(&e))?;
            session = Some(s);
        } else {
            // Renamed (and perhaps already taken by the customer's import): delivered.
            if let Some((_, top)) = d.window {
                state.watermark = state.watermark.max(top);
            }
            state.delivery = None;
            ctx.save_state(&state).await?;
            close(s).await;
            log_missing_crm_ids(ctx, &d.missing_crm_ids).await;
            return Ok(RunReport::success(d.rows).with_detail(json!({
                "file": d.file,
                "bytes": d.bytes,
                "window": window_detail(d.window),
                "missing_crm_id": d.missing_crm_ids.len(),
                "delivered_by_earlier_attempt": true,
            })));
        }
    }
    let resumed = state.delivery.clone();
    let mut out = CsvWriter::new(
        Vec::with_capacity(CHUNK + 64 * 1024),
        config.neutralize(kind),
    );
    let (source, window) = prepare(
        kind,
        config,
        store,
        institution_id,
        resumed.as_ref(),
        state.watermark,
        settings.public_url,
        &mut out,
    )
    .await?;

    let mut producer = Producer {
        store,
        institution_id,
        source,
        out,
        rows: 0,
        mark_rows: 0,
        marks: Vec::new(),
        capture: 0,
        captured: Vec::new(),
        messages: 0,
    };
    // Read until the first row, so that a run with nothing to send connects to nothing.
    let mut more = true;
    while producer.rows == 0 && more {
        more = producer.fill().await?;
    }
    if producer.rows == 0 {
        if let Some(d) = &resumed {
            // An earlier attempt of this window may have left its `.part` file.
            let s = match session.take() {
                Some(s) => s,
                None => open(config, ctx, settings).await?,
            };
            s.discard_partial(d.directory.as_deref(), &d.file)
                .await
                .map_err(|e| run_error(&e))?;
            close(s).await;
        }
        let before = state.watermark;
        if let Some((_, top)) = window {
            // Every message in the window was considered.
            state.watermark = state.watermark.max(top);
        }
        if resumed.is_some() || state.watermark != before {
            state.delivery = None;
            ctx.save_state(&state).await?;
        }
        let missing = producer.missing_crm_ids();
        log_missing_crm_ids(ctx, &missing).await;
        return Ok(RunReport::skipped().with_detail(json!({
            "window": window_detail(window),
            "missing_crm_id": missing.len(),
        })));
    }

    let delivery = match resumed {
        Some(d) => d,
        None => {
            let d = Delivery {
                file: file_name(config.file_prefix(kind), Timestamp::now()),
                directory: config.directory().map(str::to_string),
                window,
                renaming: false,
                rows: 0,
                bytes: 0,
                missing_crm_ids: Vec::new(),
            };
            state.delivery = Some(d.clone());
            ctx.save_state(&state).await?;
            d
        }
    };
    failpoint::hit("export.prepared");
    let session = match session {
        Some(s) => s,
        None => open(config, ctx, settings).await?,
    };

    let (tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(8);
    let reader = ChunkReader {
        rx,
        current: Vec::new(),
        pos: 0,
    };
    // Owns the producer and the sender: when it ends, the upload sees the end of the data.
    let feed = async move {
        let mut more = more;
        loop {
            if producer.buffered() >= CHUNK || !more {
                let chunk = producer.take();
                if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                    return Ok(producer); // the upload stopped; its error is the one to report
                }
            }
            if !more {
                return Ok(producer);
            }
            match producer.fill().await {
                Ok(m) => more = m,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.reason.clone()))).await;
                    return Err(e);
                }
            }
        }
    };
    // The file goes where the config says now; an attempt that was cut off before its rename
    // may have left a `.part` file where it said then.
    let directory = config.directory();
    if delivery.directory.as_deref() != directory
        && let Err(e) = session
            .discard_partial(delivery.directory.as_deref(), &delivery.file)
            .await
    {
        tracing::debug!(error = %e, "could not remove an earlier attempt's partial upload");
    }
    let (staged, fed) = tokio::join!(session.stage(directory, &delivery.file, reader), feed);
    let producer = fed?;
    let rows = producer.rows as i64;
    let staged = staged.map_err(|e| run_error(&e))?;
    failpoint::hit("export.staged");

    // From here on the file may be renamed at any moment: a later attempt that finds no
    // `.part` file takes it as delivered.
    state.delivery = Some(Delivery {
        directory: directory.map(str::to_string),
        renaming: true,
        rows,
        bytes: staged.bytes(),
        missing_crm_ids: producer.missing_crm_ids(),
        ..delivery.clone()
    });
    ctx.save_state(&state).await?;
    failpoint::hit("export.renaming");
    let report = session.publish(staged).await.map_err(|e| run_error(&e))?;
    failpoint::hit("export.renamed");
    close(session).await;

    // The server confirmed the renamed file: only now does the window count as sent.
    if let Some((_, top)) = window {
        state.watermark = state.watermark.max(top);
    }
    state.delivery = None;
    ctx.save_state(&state).await?;
    failpoint::hit("export.saved");
    let missing = producer.missing_crm_ids();
    log_missing_crm_ids(ctx, &missing).await;
    Ok(RunReport::success(rows).with_detail(json!({
        "file": delivery.file,
        "remote_path": report.remote_path,
        "bytes": report.bytes,
        "window": window_detail(window),
        "missing_crm_id": missing.len(),
    })))
}

/// What the next run would send, from the same code that writes the file: the window and
/// filters the run would use, the rows rendered exactly as the run renders them, but nothing
/// uploaded and the state left alone. `rows` caps the file rows and messages kept.
pub async fn preview(
    kind: ExportKind,
    config: &ExportConfig,
    store: &Store,
    integration: &ferry_store::Integration,
    public_url: &str,
    rows: usize,
) -> Result<RunPreview, RunError> {
    let state: ExportState = if integration.state.is_null() {
        ExportState::default()
    } else {
        serde_json::from_value(integration.state.clone()).unwrap_or_default()
    };
    // An unfinished delivery is finished first: the next run sends its window again (or,
    // when its file was renamed, only moves the watermark and sends nothing new).
    if let Some(d) = state.delivery.as_ref().filter(|d| d.renaming) {
        return Ok(RunPreview {
            summary: format!(
                "The next run first finishes the delivery of {} ({} rows) that an earlier attempt left unconfirmed; the messages after it go in the run after that.",
                d.file, d.rows
            ),
            total: d.rows,
            file_name: Some(d.file.clone()),
            file_rows: u64::try_from(d.rows).unwrap_or(0),
            ..Default::default()
        });
    }
    let mut out = CsvWriter::new(Vec::new(), config.neutralize(kind));
    let (source, window) = prepare(
        kind,
        config,
        store,
        integration.institution_id,
        state.delivery.as_ref(),
        state.watermark,
        public_url,
        &mut out,
    )
    .await?;
    let header_end = out.get_mut().len();
    let mut producer = Producer {
        store,
        institution_id: integration.institution_id,
        source,
        out,
        rows: 0,
        mark_rows: rows as u64,
        marks: Vec::new(),
        capture: rows,
        captured: Vec::new(),
        messages: 0,
    };
    let mut head: Option<Vec<u8>> = None;
    loop {
        let more = producer.fill().await?;
        if head.is_none() && producer.rows >= rows as u64 {
            let end = match rows {
                0 => header_end,
                n => producer.marks[n - 1],
            };
            head = Some(producer.out.get_mut()[..end].to_vec());
        }
        if head.is_some() {
            // Only counted from here on.
            producer.out.get_mut().clear();
        }
        if !more {
            break;
        }
    }
    let file_rows = producer.rows;
    let left_out: Vec<(i64, &'static str)> = producer
        .missing_crm_ids()
        .into_iter()
        .map(|c| (c, MISSING_CRM_ID))
        .collect();
    let head = head.unwrap_or_else(|| std::mem::take(producer.out.get_mut()));
    let new_messages = window.map(|(after, top)| top - after).unwrap_or(0);
    let file_name = file_name(config.file_prefix(kind), Timestamp::now());
    let summary = match (kind, file_rows) {
        (ExportKind::Contacts, 0) => {
            "The next run would be Skipped: no contact passes the export's filters.".to_string()
        }
        (ExportKind::Contacts, n) => format!("The next run would send {n} contacts."),
        (_, 0) if new_messages == 0 => {
            "The next run would be Skipped: there are no new messages since the last run."
                .to_string()
        }
        (_, 0) => format!(
            "The next run would be Skipped: none of the {new_messages} new messages since the last run passes the filters ({}).",
            describe_filters(config)
        ),
        (_, n) => format!(
            "The next run would send {n} rows for the {new_messages} new messages since the last run that pass the filters ({}).",
            describe_filters(config)
        ),
    };
    let total = match kind {
        ExportKind::Contacts => file_rows as i64,
        _ => producer.messages,
    };
    Ok(RunPreview {
        summary,
        total,
        messages: producer.captured,
        head_rows: file_rows.min(rows as u64),
        file_rows,
        file_name: (file_rows > 0).then_some(file_name),
        head: if file_rows > 0 { head } else { Vec::new() },
        left_out,
    })
}

/// The message filters in words: `channel SMS, Web chat; type …; direction …`.
pub fn describe_filters(config: &ExportConfig) -> String {
    let Some(f) = &config.filters else {
        return "no message filters".to_string();
    };
    let list = |v: Vec<&str>| v.join(", ");
    format!(
        "channel {}; type {}; direction {}",
        list(f.channels.iter().map(|c| c.label()).collect()),
        list(f.types.iter().map(|t| t.label()).collect()),
        list(f.directions.iter().map(|d| d.label()).collect()),
    )
}

/// The rows' source of a run (or a preview) and its message window: the window of the
/// unfinished delivery `resumed` when there is one, else the messages after `watermark` up to
/// the current sequence. Writes the file's first row into `out`.
#[allow(clippy::too_many_arguments)]
async fn prepare(
    kind: ExportKind,
    config: &ExportConfig,
    store: &Store,
    institution_id: i64,
    resumed: Option<&Delivery>,
    watermark: i64,
    public_url: &str,
    out: &mut CsvWriter<Vec<u8>>,
) -> Result<(Source, Option<(i64, i64)>), RunError> {
    let mut window = None;
    let source = match kind {
        ExportKind::Contacts => {
            let contacts: &ContactsConfig = config
                .contacts
                .as_ref()
                .ok_or_else(|| RunError::fatal("the export has no contact fields"))?;
            let schema = store.field_schema(institution_id).await?;
            let columns = contacts
                .fields
                .iter()
                .map(|f| Column::resolve(f, &schema))
                .collect::<Result<Vec<_>, _>>()?;
            let filters = contacts
                .filters
                .iter()
                .map(|f| Ok((Column::resolve(&f.field, &schema)?, f.values.clone())))
                .collect::<Result<Vec<_>, RunError>>()?;
            write(out, &contacts.fields)?;
            Source::Contacts {
                columns,
                filters,
                after_id: 0,
                done: false,
            }
        }
        ExportKind::Conversations | ExportKind::EabNotes => {
            let filters = config
                .filters
                .as_ref()
                .ok_or_else(|| RunError::fatal("the export has no message filters"))?;
            let (after, top) = match resumed {
                Some(d) => d.window.ok_or_else(|| {
                    RunError::fatal("the unfinished delivery recorded no message window")
                })?,
                None => (watermark, store.current_message_seq(institution_id).await?),
            };
            window = Some((after, top));
            let dedupe = config.eab.as_ref().is_some_and(|e| e.dedupe_contacts);
            let window = MessageWindow {
                after_seq: after,
                up_to_seq: top,
                channels: filters.channels.clone(),
                types: filters.types.clone(),
                directions: filters.directions.clone(),
                dedupe_contacts: dedupe && kind == ExportKind::EabNotes,
            };
            let public_url = public_url.to_string();
            let format = match (kind, &config.eab) {
                (ExportKind::EabNotes, Some(e)) => {
                    let institution = store.institution(institution_id).await?;
                    let tz = TimeZone::get(&institution.time_zone).map_err(|_| {
                        RunError::fatal(format!(
                            "the institution's time zone {:?} is unknown",
                            institution.time_zone
                        ))
                    })?;
                    let file = eab_file(e);
                    write(out, &file.first_row())?;
                    MessageFormat::Eab {
                        template: NoteTemplate::parse(&e.note_body).map_err(|t| {
                            RunError::fatal(format!("the Note Body is invalid: {t}"))
                        })?,
                        file,
                        tz,
                        public_url,
                        dates: DateCache::default(),
                    }
                }
                (ExportKind::EabNotes, None) => {
                    return Err(RunError::fatal("the export has no EAB fields"));
                }
                _ => {
                    write(out, &CONVERSATION_COLUMNS)?;
                    MessageFormat::Conversations { public_url }
                }
            };
            Source::Messages {
                stream: store.export_messages(institution_id, &window),
                format: Box::new(format),
                missing_crm: HashSet::new(),
            }
        }
    };
    Ok((source, window))
}

/// Connects and logs in, pinning the server's host key on the first connection.
async fn open(
    config: &ExportConfig,
    ctx: &RunContext,
    settings: &RunSettings<'_>,
) -> Result<Session, RunError> {
    let session = connect(config, ctx.secrets(), settings.client)
        .await
        .map_err(|e| run_error(&e))?;
    if config.host_key().is_none() {
        pin_host_key(
            ctx.store(),
            ctx.institution_id(),
            ctx.integration().id,
            session.host_key_fingerprint(),
        )
        .await?;
    }
    Ok(session)
}

async fn close(session: Session) {
    if let Err(e) = session.close().await {
        tracing::debug!(error = %e, "closing the SFTP session");
    }
}

fn window_detail(window: Option<(i64, i64)>) -> Value {
    match window {
        Some((after, top)) => json!({ "after_sequence": after, "up_to_sequence": top }),
        None => Value::Null,
    }
}

/// Records in the Sync Log the contacts whose notes were left out for want of a CRM ID: once
/// per contact, and only when the run succeeded or was skipped. A failed attempt logs nothing,
/// so a contact is not logged twice when the worker retries the run, nor when a failed run's
/// window is sent by the next one. Rows that cannot be written yet stay buffered for the
/// worker's final flush.
async fn log_missing_crm_ids(ctx: &RunContext, contacts: &[i64]) {
    for &contact_id in contacts {
        if let Err(e) = ctx
            .log(
                Some(contact_id),
                SyncDirection::Outgoing,
                MISSING_CRM_ID,
                "the contact has no CRM ID, so EAB cannot attach a note to a student; its messages were left out of the file",
            )
            .await
        {
            tracing::warn!(error = %e, "could not write Sync Log rows yet; the worker writes them at the end of the run");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_by_time_and_differ_per_millisecond() {
        let a: Timestamp = "2026-07-01T03:04:05.006Z".parse().unwrap();
        let b: Timestamp = "2026-07-01T03:04:05.007Z".parse().unwrap();
        assert_eq!(file_name("eab_", a), "eab_20260701T030405006Z.csv");
        assert!(file_name("eab_", a) < file_name("eab_", b));
    }

    #[test]
    fn message_links_open_the_conversation_at_the_message() {
        assert_eq!(
            message_url("https://ferry.example.edu/", 7, 42),
            "https://ferry.example.edu/contacts/7?message=42#m42"
        );
    }
}
