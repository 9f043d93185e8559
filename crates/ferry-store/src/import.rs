//! CSV import of contacts: the header names fields (custom fields by name), each row applies
//! whole or not at all through the shared matching, and the file as a whole is refused before
//! anything is written when it cannot be read (encoding, unknown or repeated columns).
//!
//! Parsing (and phone validation, the costly part) runs on a blocking thread while the previous
//! chunk is written, so both cores work.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
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

/// Where the file's bytes are: in memory, or in a file read as it is imported (so a large
/// upload is never held in memory).
enum Source {
    Memory(Shared),
    /// The path, and the bytes to skip at its start (a byte-order mark).
    File(PathBuf, u64),
}

#[derive(Clone)]
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Source {
    fn reader(&self) -> std::io::Result<Box<dyn BufRead + Send>> {
        Ok(match self {
            Source::Memory(d) => Box::new(std::io::Cursor::new(d.clone())),
            Source::File(path, skip) => {
                let mut f = std::fs::File::open(path)?;
                f.seek(SeekFrom::Start(*skip))?;
                Box::new(BufReader::with_capacity(1 << 16, f))
            }
        })
    }
}

fn io_err(e: std::io::Error) -> ImportError {
    ImportError::Store(StoreError::Db(sqlx::Error::Io(e)))
}

/// Checks that a file is UTF-8, reading it in chunks; `Ok(true)` when it starts with a BOM.
fn check_utf8_file(path: &Path) -> Result<bool, ImportError> {
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut carry: Vec<u8> = Vec::new();
    let mut line = 1usize;
    let mut first = true;
    let mut bom = false;
    let bad = |line: usize| {
        file_err(
            "invalid_encoding",
            format!(
                "the file is not UTF-8 text (first bad byte on line {line}); save it as CSV UTF-8"
            ),
        )
    };
    loop {
        let n = f.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            if !carry.is_empty() {
                return Err(bad(line));
            }
            return Ok(bom);
        }
        let mut chunk = std::mem::take(&mut carry);
        chunk.extend_from_slice(&buf[..n]);
        if first && chunk.len() >= 3 {
            bom = chunk.starts_with(b"\xEF\xBB\xBF");
            first = false;
        }
        match std::str::from_utf8(&chunk) {
            Ok(_) => line += chunk.iter().filter(|b| **b == b'\n').count(),
            Err(e) => {
                let valid = e.valid_up_to();
                line += chunk[..valid].iter().filter(|b| **b == b'\n').count();
                if e.error_len().is_some() {
                    return Err(bad(line));
                }
                // A character cut at the chunk's end: read on.
                carry = chunk[valid..].to_vec();
            }
        }
    }
}

/// Reads and checks the header row: every column named once, and a field of the institution.
fn read_header<R: BufRead>(
    rows: &mut CsvRows<R>,
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

/// The rows of a CSV file with these numbers (the header being row 1, counted as an import
/// counts them), after the file's header: a file of the rows an import skipped, to fix and
/// upload again. Cells are written back with CSV quoting; a row whose quote was never closed is
/// copied as its line stands.
pub fn failed_rows_csv(path: &Path, rows: &BTreeSet<u64>) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut bom = [0u8; 3];
    let n = f.read(&mut bom)?;
    let skip = if n == 3 && bom == *b"\xEF\xBB\xBF" {
        3
    } else {
        0
    };
    f.seek(SeekFrom::Start(skip))?;
    let mut reader = CsvRows::new(BufReader::with_capacity(1 << 16, f));
    let mut out = Vec::new();
    let mut record = Record::default();
    let write_record = |out: &mut Vec<u8>, record: &Record| -> std::io::Result<()> {
        for (i, cell) in record.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let needs = cell
                .iter()
                .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
                || cell.first().is_some_and(u8::is_ascii_whitespace)
                || cell.last().is_some_and(u8::is_ascii_whitespace);
            if needs {
                out.push(b'"');
                for &b in cell {
                    if b == b'"' {
                        out.push(b'"');
                    }
                    out.push(b);
                }
                out.push(b'"');
            } else {
                out.write_all(cell)?;
            }
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    };
    match reader.next(&mut record)? {
        Some(Framed::Row { .. }) => {
            write_record(&mut out, &record)?;
            reader.expect_cells(record.len());
        }
        _ => return Ok(out),
    }
    // Rows whose quote never closed, by the line they start on, with their place in `out`.
    let mut unclosed: Vec<(u64, usize)> = Vec::new();
    let mut row = 1u64;
    let last = rows.last().copied().unwrap_or(0);
    while row < last {
        let Some(framed) = reader.next(&mut record)? else {
            break;
        };
        row += 1;
        if !rows.contains(&row) {
            continue;
        }
        match framed {
            Framed::Row { .. } => write_record(&mut out, &record)?,
            Framed::UnclosedQuote { line, .. } => unclosed.push((line, out.len())),
        }
    }
    if unclosed.is_empty() {
        return Ok(out);
    }
    // Copy those lines from the file, inserting from the back so earlier places stay right.
    let mut lines = std::collections::HashMap::new();
    let mut f = BufReader::new(std::fs::File::open(path)?);
    f.seek(SeekFrom::Start(skip))?;
    let wanted: HashSet<u64> = unclosed.iter().map(|(l, _)| *l).collect();
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        if f.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        if wanted.contains(&n) {
            let mut l = buf.clone();
            while l.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                l.pop();
            }
            l.extend_from_slice(b"\r\n");
            lines.insert(n, l);
        }
    }
    for (line, at) in unclosed.into_iter().rev() {
        if let Some(l) = lines.remove(&line) {
            out.splice(at..at, l);
        }
    }
    Ok(out)
}

type Parsed = (u64, Result<ContactWrite, RowError>);

impl CsvImport {
    /// Checks the file as a whole: encoding, header, column names.
    pub fn prepare(mut data: Vec<u8>, schema: FieldSchema) -> Result<CsvImport, ImportError> {
        if let Err(e) = std::str::from_utf8(&data) {
            let line = data[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(file_err(
                "invalid_encoding",
                format!(
                    "the file is not UTF-8 text (first bad byte on line {line}); save it as CSV UTF-8"
                ),
            ));
        }
        if data.starts_with(b"\xEF\xBB\xBF") {
            data.drain(..3);
        }
        let header = read_header(&mut CsvRows::new(data.as_slice()), &schema)?;
        Ok(CsvImport {
            source: Source::Memory(Shared(Arc::new(data))),
            header,
            schema,
        })
    }

    /// Checks a file on disk as a whole (encoding, header, column names), reading it in
    /// chunks: the import then reads it again as it goes, never holding it in memory.
    pub fn prepare_file(path: &Path, schema: FieldSchema) -> Result<CsvImport, ImportError> {
        let skip = if check_utf8_file(path)? { 3 } else { 0 };
        let source = Source::File(path.to_path_buf(), skip);
        let header = read_header(&mut CsvRows::new(source.reader().map_err(io_err)?), &schema)?;
        Ok(CsvImport {
            source,
            header,
            schema,
        })
    }

    /// Parses rows on a blocking thread, sending them down `tx` in chunks of `chunk_rows`.
    fn parse_into(self, tx: mpsc::Sender<Vec<Parsed>>, chunk_rows: usize) -> std::io::Result<()> {
        let CsvImport {
            source,
            header,
            schema,
        } = self;
        let mut rows = CsvRows::new(source.reader()?);
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
                    // Reading from memory does not fail; a reader that did has nothing more.
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
                    ContactWrite::parse(&schema, fields.iter().copied().zip(cells)).map_err(
                        |errs| {
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
                        },
                    )
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
                return Ok(());
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        Ok(())
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

    /// Imports a CSV file on disk, as [`Store::import_contacts_csv`] does, reading it as it
    /// goes (a large upload is never held in memory).
    pub async fn import_contacts_csv_file(
        &self,
        institution_id: i64,
        path: &Path,
        progress: impl Fn(u64) + Send,
    ) -> Result<ImportReport, ImportError> {
        let schema = self.field_schema(institution_id).await?;
        let path = path.to_path_buf();
        let prepared = tokio::task::spawn_blocking(move || CsvImport::prepare_file(&path, schema))
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
        parser
            .await
            .map_err(|e| {
                StoreError::Db(sqlx::Error::Protocol(format!(
                    "the CSV parser stopped: {e}"
                )))
            })?
            .map_err(io_err)?;
        report.errors.sort_by_key(|e| e.row);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    #[test]
    fn failed_rows_keep_the_header_quote_cells_and_copy_unclosed_lines() {
        let f = file_with(
            b"\xEF\xBB\xBFfirst_name,last_name,phone\r\n\
              Ana,Diaz,6175550101\r\n\
              Bo,\"Lee, Jr.\",555\r\n\
              Cy,\"Unclosed,6175550103\r\n\
              Di,Ray,6175550104\r\n\
              Ed,\"Say \"\"hi\"\"\",12\r\n",
        );
        let rows: BTreeSet<u64> = [3, 4, 6].into_iter().collect();
        let out = String::from_utf8(failed_rows_csv(f.path(), &rows).unwrap()).unwrap();
        assert_eq!(
            out,
            "first_name,last_name,phone\r\n\
             Bo,\"Lee, Jr.\",555\r\n\
             Cy,\"Unclosed,6175550103\r\n\
             Ed,\"Say \"\"hi\"\"\",12\r\n"
        );
    }

    #[test]
    fn the_encoding_check_reads_across_chunks_and_finds_the_bad_line() {
        // A two-byte character cut by the 64 KiB chunk boundary is fine.
        let mut ok = vec![b'a'; (1 << 16) - 1];
        ok.extend_from_slice("é\nb\n".as_bytes());
        assert!(!check_utf8_file(file_with(&ok).path()).unwrap());
        let mut bad = b"a,b\nc,d\n".to_vec();
        bad.extend_from_slice(&[b'x'; 70_000]);
        bad.extend_from_slice(b"\n\xFF\n");
        match check_utf8_file(file_with(&bad).path()) {
            Err(ImportError::File { code, message }) => {
                assert_eq!(code, "invalid_encoding");
                assert!(message.contains("line 4"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(check_utf8_file(file_with(b"\xEF\xBB\xBFid\n").path()).unwrap());
    }
}
