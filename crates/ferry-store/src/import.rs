//! CSV import of contacts: the header names fields (custom fields by name), each row applies
//! whole or not at all through the shared matching, and the file as a whole is refused before
//! anything is written when it cannot be read (encoding, unknown or repeated columns).
//!
//! Parsing (and phone validation, the costly part) runs on a blocking thread while the previous
//! chunk is written, so both cores work.

use std::collections::HashSet;
use std::sync::Arc;

use ferry_core::contact::{ContactWrite, FieldSchema, Raw};
use tokio::sync::mpsc;

use crate::contacts::{AppliedAction, RowError, WriteKind};
use crate::csv_rows::{CsvRows, Framed, Record};
use crate::{Store, StoreError};

/// The most row errors a report lists; the counts still cover every row.
pub const MAX_REPORTED_ERRORS: usize = 1_000;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ImportReport {
    /// Rows that made a new contact.
    pub created: u64,
    /// Rows that matched a contact and changed at least one field.
    pub updated: u64,
    /// Rows that matched a contact and changed nothing.
    pub unchanged: u64,
    /// Rows that were not applied; each has an entry in `errors` (up to the cap).
    pub skipped: u64,
    /// The rows that were not applied, in file order, at most 1,000 (`MAX_REPORTED_ERRORS`).
    pub errors: Vec<ImportRowError>,
    /// Whether `errors` was cut at 1,000 rows (`MAX_REPORTED_ERRORS`).
    pub errors_truncated: bool,
}

/// A row that was not applied. `row` counts like a spreadsheet: the header is row 1.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImportRowError {
    /// The row's number, the header being row 1.
    pub row: u64,
    /// The error dictionary's code.
    pub code: &'static str,
    /// The column at fault; `None` when the row as a whole is (a matching conflict, a bad quote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A sentence for people.
    pub message: String,
}

/// Why a whole file was refused (nothing was written), or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file as a whole is refused (not UTF-8, no header, a duplicate or unknown column, …).
    #[error("{message}")]
    File {
        /// The error dictionary's code.
        code: &'static str,
        /// A sentence for people.
        message: String,
    },
    /// The store failed; nothing about the file.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn file_err(code: &'static str, message: impl Into<String>) -> ImportError {
    ImportError::File {
        code,
        message: message.into(),
    }
}

/// A CSV file checked and ready to import: UTF-8, BOM removed, header resolved.
pub struct CsvImport {
    source: Source,
    header: Vec<String>,
    schema: FieldSchema,
}

/// Where a checked file's bytes are.
enum Source {
    /// In memory, the BOM removed.
    Memory(Arc<Vec<u8>>),
    /// In a file, read as the import goes (so a large upload never sits in memory); the text
    /// starts at the offset (after a BOM).
    File(std::fs::File, u64),
}

/// How much of a file the UTF-8 check reads at a time.
const CHECK_CHUNK: usize = 1 << 20;

fn not_utf8(line: usize) -> ImportError {
    file_err(
        "invalid_encoding",
        format!("the file is not UTF-8 text (first bad byte on line {line}); save it as CSV UTF-8"),
    )
}

fn newlines(b: &[u8]) -> usize {
    b.iter().filter(|b| **b == b'\n').count()
}

/// Checks that everything `r` gives is UTF-8, a chunk at a time (a character split between
/// chunks is carried over).
fn check_utf8<R: std::io::Read>(r: R) -> Result<(), ImportError> {
    check_utf8_by(r, CHECK_CHUNK)
}

fn check_utf8_by<R: std::io::Read>(mut r: R, chunk: usize) -> Result<(), ImportError> {
    let mut buf = vec![0u8; chunk.max(4)];
    let mut carry = 0usize;
    let mut line = 1usize;
    loop {
        let n = r.read(&mut buf[carry..]).map_err(read_err)?;
        if n == 0 {
            return if carry == 0 {
                Ok(())
            } else {
                Err(not_utf8(line))
            };
        }
        let len = carry + n;
        match std::str::from_utf8(&buf[..len]) {
            Ok(_) => {
                line += newlines(&buf[..len]);
                carry = 0;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                line += newlines(&buf[..valid]);
                if e.error_len().is_some() {
                    return Err(not_utf8(line));
                }
                // An incomplete character at the end: read on.
                buf.copy_within(valid..len, 0);
                carry = len - valid;
            }
        }
    }
}

fn read_err(e: std::io::Error) -> ImportError {
    file_err("bad_request", format!("the file cannot be read: {e}"))
}

type Parsed = (u64, Result<ContactWrite, RowError>);

impl CsvImport {
    /// Checks the file as a whole: encoding, header, column names.
    pub fn prepare(mut data: Vec<u8>, schema: FieldSchema) -> Result<CsvImport, ImportError> {
        if let Err(e) = std::str::from_utf8(&data) {
            return Err(not_utf8(newlines(&data[..e.valid_up_to()]) + 1));
        }
        if data.starts_with(b"\xEF\xBB\xBF") {
            data.drain(..3);
        }
        let header = Self::header(CsvRows::new(data.as_slice()), &schema)?;
        Ok(CsvImport {
            source: Source::Memory(Arc::new(data)),
            header,
            schema,
        })
    }

    /// [`CsvImport::prepare`] for a file, which is read as the import goes instead of being
    /// held in memory. Blocking: call it off the async threads.
    pub fn prepare_file(
        mut file: std::fs::File,
        schema: FieldSchema,
    ) -> Result<CsvImport, ImportError> {
        use std::io::{BufReader, Read, Seek, SeekFrom};
        file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        check_utf8(&mut file)?;
        file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        let mut bom = [0u8; 3];
        let mut got = 0;
        while got < 3 {
            match file.read(&mut bom[got..]).map_err(read_err)? {
                0 => break,
                n => got += n,
            }
        }
        let start = if got == 3 && bom == *b"\xEF\xBB\xBF" {
            3
        } else {
            0
        };
        file.seek(SeekFrom::Start(start)).map_err(read_err)?;
        let header = Self::header(CsvRows::new(BufReader::new(&mut file)), &schema)?;
        Ok(CsvImport {
            source: Source::File(file, start),
            header,
            schema,
        })
    }

    /// Reads and checks the header row: the lower-cased column names.
    fn header<R: std::io::BufRead>(
        mut rows: CsvRows<R>,
        schema: &FieldSchema,
    ) -> Result<Vec<String>, ImportError> {
        let mut first = Record::default();
        match rows
            .next(&mut first)
            .map_err(|e| file_err("bad_request", format!("the header row cannot be read: {e}")))?
        {
            None => {
                return Err(file_err(
                    "bad_request",
                    "the file is empty; the first row must name the columns",
                ));
            }
            Some(Framed::UnclosedQuote { .. }) => {
                return Err(file_err(
                    "unclosed_quote",
                    "a quoted name in the header row is never closed",
                ));
            }
            Some(Framed::Row { .. }) => {}
        }
        let header: Vec<String> = first
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_lowercase())
            .collect();
        let mut seen = HashSet::new();
        let mut unknown = Vec::new();
        for h in &header {
            if h.is_empty() {
                return Err(file_err(
                    "bad_request",
                    "a column in the header row has no name",
                ));
            }
            if !seen.insert(h.as_str()) {
                return Err(file_err(
                    "duplicate_column",
                    format!("the column {h:?} appears twice in the header row"),
                ));
            }
            if schema.resolve(h).is_none() {
                unknown.push(h.as_str());
            }
        }
        if !unknown.is_empty() {
            let mut known: Vec<String> = [
                "id",
                "first_name",
                "last_name",
                "preferred_name",
                "phone",
                "email",
                "enrollment_id",
                "crm_id",
                "opt_in",
                "test_user",
                "sms_opt_in",
                "street_address",
                "street_address_2",
                "city",
                "state",
                "zip_code",
                "country",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            known.extend(schema.customs().map(|d| d.name.clone()));
            return Err(file_err(
                "unknown_field",
                format!(
                    "unknown column(s): {}; the columns this institution has are: {}",
                    unknown.join(", "),
                    known.join(", ")
                ),
            ));
        }
        Ok(header)
    }

    /// Parses rows on a blocking thread, sending them down `tx` in chunks of `chunk_rows`.
    fn parse_into(self, tx: mpsc::Sender<Vec<Parsed>>, chunk_rows: usize) {
        let CsvImport {
            source,
            header,
            schema,
        } = self;
        match source {
            Source::Memory(data) => parse_rows(
                CsvRows::new(data.as_slice()),
                &header,
                &schema,
                tx,
                chunk_rows,
            ),
            Source::File(mut file, start) => {
                use std::io::{Seek, SeekFrom};
                if let Err(e) = file.seek(SeekFrom::Start(start)) {
                    let _ = tx.blocking_send(vec![(
                        2,
                        Err(row_err(
                            "ragged_row",
                            format!("the file cannot be read: {e}"),
                        )),
                    )]);
                    return;
                }
                let rows = CsvRows::new(std::io::BufReader::with_capacity(1 << 16, file));
                parse_rows(rows, &header, &schema, tx, chunk_rows)
            }
        }
    }
}

/// Parses the rows after the header, sending them down `tx` in chunks of `chunk_rows`.
fn parse_rows<R: std::io::BufRead>(
    mut rows: CsvRows<R>,
    header: &[String],
    schema: &FieldSchema,
    tx: mpsc::Sender<Vec<Parsed>>,
    chunk_rows: usize,
) {
    {
        let mut record = Record::default();
        // The header, which `prepare` read already.
        let _ = rows.next(&mut record);
        rows.expect_cells(header.len());
        let fields: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut chunk = Vec::with_capacity(chunk_rows);
        let mut row = 1u64;
        loop {
            let framed = match rows.next(&mut record) {
                Ok(None) => break,
                Ok(Some(f)) => f,
                Err(e) => {
                    // A file that cannot be read further has nothing more.
                    row += 1;
                    chunk.push((
                        row,
                        Err(row_err(
                            "ragged_row",
                            format!("the row cannot be read: {e}"),
                        )),
                    ));
                    break;
                }
            };
            row += 1;
            let parsed = match framed {
                Framed::UnclosedQuote { line, column } => Err(row_err(
                    "unclosed_quote",
                    format!(
                        "a quoted value in column {} begins on line {line} and is never closed; \
                         this row was skipped and the import went on from line {}",
                        fields
                            .get(column)
                            .map_or_else(|| (column + 1).to_string(), |f| format!("{f:?}")),
                        line + 1
                    ),
                )),
                Framed::Row { .. } if record.len() != fields.len() => Err(row_err(
                    "ragged_row",
                    format!(
                        "the row has {} cells; the header has {}",
                        record.len(),
                        fields.len()
                    ),
                )),
                Framed::Row { .. } => {
                    // `prepare` checked that the whole file is UTF-8, and cells split at ASCII.
                    let cells = record
                        .iter()
                        .map(|c| Raw::Str(std::str::from_utf8(c).unwrap_or_default()));
                    ContactWrite::parse(schema, fields.iter().copied().zip(cells)).map_err(|errs| {
                        let first = errs[0].clone();
                        let message = errs
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ");
                        RowError {
                            code: first.code,
                            field: Some(first.field),
                            message,
                            contact_id: None,
                            conflict: None,
                        }
                    })
                }
            };
            chunk.push((row, parsed));
            if chunk.len() == chunk_rows
                && tx
                    .blocking_send(std::mem::replace(
                        &mut chunk,
                        Vec::with_capacity(chunk_rows),
                    ))
                    .is_err()
            {
                return;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
    }
}

fn row_err(code: &'static str, message: String) -> RowError {
    RowError {
        code,
        field: None,
        message,
        contact_id: None,
        conflict: None,
    }
}

impl ImportReport {
    fn error(&mut self, row: u64, e: RowError) {
        self.skipped += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(ImportRowError {
                row,
                code: e.code,
                field: e.field,
                message: e.message,
            });
        } else {
            self.errors_truncated = true;
        }
    }
}

impl Store {
    /// Imports a CSV file of contacts into an institution. `progress` is told the rows done so far.
    pub async fn import_contacts_csv(
        &self,
        institution_id: i64,
        data: Vec<u8>,
        progress: impl Fn(u64) + Send,
    ) -> Result<ImportReport, ImportError> {
        let schema = self.field_schema(institution_id).await?;
        let prepared = CsvImport::prepare(data, schema)?;
        self.import_prepared(institution_id, prepared, progress)
            .await
    }

    /// [`Store::import_contacts_csv`] of a file, read as the import goes: memory stays flat
    /// whatever the file's size (an upload spooled to a temporary file, say).
    pub async fn import_contacts_csv_file(
        &self,
        institution_id: i64,
        file: std::fs::File,
        progress: impl Fn(u64) + Send,
    ) -> Result<ImportReport, ImportError> {
        let schema = self.field_schema(institution_id).await?;
        let prepared = tokio::task::spawn_blocking(move || CsvImport::prepare_file(file, schema))
            .await
            .map_err(|e| {
                StoreError::Db(sqlx::Error::Protocol(format!("the CSV check stopped: {e}")))
            })??;
        self.import_prepared(institution_id, prepared, progress)
            .await
    }

    async fn import_prepared(
        &self,
        institution_id: i64,
        prepared: CsvImport,
        progress: impl Fn(u64) + Send,
    ) -> Result<ImportReport, ImportError> {
        let (tx, mut rx) = mpsc::channel::<Vec<Parsed>>(4);
        let chunk_rows = self.chunk_rows();
        let parser = tokio::task::spawn_blocking(move || prepared.parse_into(tx, chunk_rows));
        let mut report = ImportReport::default();
        let mut done = 0u64;
        let applied = async {
            while let Some(chunk) = rx.recv().await {
                let mut writes = Vec::with_capacity(chunk.len());
                let mut rows = Vec::with_capacity(chunk.len());
                for (row, parsed) in chunk {
                    done += 1;
                    match parsed {
                        Ok(w) => {
                            writes.push(w);
                            rows.push(row);
                        }
                        Err(e) => report.error(row, e),
                    }
                }
                let outcomes = self
                    .apply_contact_writes_named(institution_id, &writes, WriteKind::Import, |i| {
                        format!("the contact created by row {} of this file", rows[i])
                    })
                    .await?;
                for (row, outcome) in rows.into_iter().zip(outcomes) {
                    match outcome {
                        Ok(a) => match a.action {
                            AppliedAction::Created => report.created += 1,
                            AppliedAction::Updated => report.updated += 1,
                            AppliedAction::Unchanged => report.unchanged += 1,
                        },
                        Err(e) => report.error(row, e),
                    }
                }
                progress(done);
            }
            Ok::<_, ImportError>(())
        }
        .await;
        self.end_bulk_import();
        applied?;
        parser.await.map_err(|e| {
            StoreError::Db(sqlx::Error::Protocol(format!(
                "the CSV parser stopped: {e}"
            )))
        })?;
        report.errors.sort_by_key(|e| e.row);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(e: ImportError) -> String {
        match e {
            ImportError::File { code, message } => {
                assert_eq!(code, "invalid_encoding");
                message
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn the_chunked_utf8_check_agrees_with_the_whole_file_check() {
        let text = "first_name,phone\nZoë,+16175550101\nRenée,+16175550102\n日本,+16175550103\n";
        // Every chunk size splits some character somewhere; none may be taken for bad bytes.
        for chunk in 4..=text.len() + 1 {
            assert!(
                check_utf8_by(text.as_bytes(), chunk).is_ok(),
                "chunk {chunk}"
            );
        }
        let mut bad = text.as_bytes().to_vec();
        bad.extend_from_slice(b"Jos\xe9,+16175550104\n");
        for chunk in 4..=bad.len() + 1 {
            let m = line_of(check_utf8_by(bad.as_slice(), chunk).unwrap_err());
            assert!(m.contains("line 5"), "chunk {chunk}: {m}");
        }
        // A character cut off by the end of the file.
        let cut = &text.as_bytes()[..text.len() - "+16175550103\n".len() - 2];
        assert!(check_utf8_by(cut, 4).is_err());
    }

    #[test]
    fn a_file_source_reads_the_same_header_as_memory() {
        use std::io::Write;
        let schema = FieldSchema::default();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"\xEF\xBB\xBFFirst_Name,Phone\nAna,+16175550101\n")
            .unwrap();
        let from_file = CsvImport::prepare_file(f, schema.clone()).unwrap();
        let from_memory = CsvImport::prepare(
            b"\xEF\xBB\xBFFirst_Name,Phone\nAna,+16175550101\n".to_vec(),
            schema.clone(),
        )
        .unwrap();
        assert_eq!(from_file.header, ["first_name", "phone"]);
        assert_eq!(from_file.header, from_memory.header);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"first_name,colour\nAna,red\n").unwrap();
        match CsvImport::prepare_file(f, schema) {
            Err(ImportError::File { code, .. }) => assert_eq!(code, "unknown_field"),
            _ => panic!("an unknown column was accepted"),
        }
    }
}
