//! Bulk file upload (seed 003): what a sample file looks like (encoding, delimiter, header row,
//! columns), how later files are held to the template made from it (the required columns, in the
//! agreed order), which file names a template takes, and how the cells of a calls file read.
//!
//! Everything here is pure; the store keeps templates and the inbound-files connector applies
//! them to uploaded files.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::message::Direction;

crate::string_enum! {
    /// What the rows of a template's files are.
    pub enum TemplateKind {
        /// One contact per row, through the contacts import (seed 001 matching).
        Contacts = "contacts",
        /// One call per row, a `voice` message on the matching contact.
        Calls = "calls",
    }
}

crate::string_enum! {
    /// How a calls file's rows find their contact.
    pub enum CallMatch {
        /// By the contact's CRM ID.
        CrmId = "crm_id",
        /// By the contact's phone.
        Phone = "phone",
    }
}

crate::string_enum! {
    /// The text encodings Ferry reads files in.
    pub enum Encoding {
        /// UTF-8 (a byte-order mark is dropped).
        Utf8 = "utf-8",
        /// UTF-16, little-endian (Excel's "Unicode text").
        Utf16Le = "utf-16le",
        /// UTF-16, big-endian.
        Utf16Be = "utf-16be",
        /// Windows-1252 (Western European; what old exports without a BOM usually are).
        Windows1252 = "windows-1252",
    }
}

/// The Ferry fields a calls file's columns map to, with what each means.
pub const CALL_FIELDS: &[(&str, &str)] = &[
    (
        "crm_id",
        "The contact's CRM ID (when calls match by CRM ID)",
    ),
    ("phone", "The contact's phone (when calls match by phone)"),
    ("direction", "inbound/incoming/in or outbound/outgoing/out"),
    (
        "time",
        "When the call began: 2026-09-01T14:30:00Z, 2026-09-01 14:30[:00] or 09/01/2026 14:30[:00] (UTC unless an offset is given)",
    ),
    ("duration", "Seconds (95), or mm:ss / hh:mm:ss"),
    ("agent", "Who took or made the call"),
    ("note", "A note on the call"),
    (
        "recording",
        "The name of the call's recording (wav, mp3 or m4a) uploaded beside the file",
    ),
];

/// Audio file extensions a recording may have.
pub const RECORDING_EXTENSIONS: &[&str] = &["wav", "mp3", "m4a"];

/// The delimiters Ferry recognises, in order of preference on a tie.
pub const DELIMITERS: &[char] = &[',', ';', '\t', '|'];

/// One column of a template: its name in the file, the Ferry field it maps to (none: ignored)
/// and whether every file must have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateColumn {
    /// The column's name in the header row, as in the sample.
    pub name: String,
    /// The Ferry field it fills (a contact field or custom field for contacts files, one of
    /// [`CALL_FIELDS`] for calls files); `null`: the column is read past.
    #[serde(default)]
    pub field: Option<String>,
    /// Every file must have it, in the agreed order relative to the other required columns.
    #[serde(default)]
    pub required: bool,
}

/// What [`detect`] found in a sample file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detected {
    /// The text encoding.
    pub encoding: Encoding,
    /// The delimiter between cells.
    pub delimiter: char,
    /// The header row's line number (1: the first line; later when a preamble precedes it).
    pub header_row: usize,
    /// The header's column names, in file order.
    pub columns: Vec<String>,
    /// Up to [`PREVIEW_ROWS`] rows after the header, as text.
    pub preview: Vec<Vec<String>>,
}

/// How many rows [`detect`] previews.
pub const PREVIEW_ROWS: usize = 5;

/// Finds the encoding of `bytes`: a byte-order mark decides; otherwise UTF-8 when the bytes are
/// valid UTF-8, UTF-16 when NUL bytes sit at every other position, else Windows-1252.
pub fn detect_encoding(bytes: &[u8]) -> Encoding {
    if bytes.starts_with(&[0xFF, 0xFE]) {
        return Encoding::Utf16Le;
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        return Encoding::Utf16Be;
    }
    if std::str::from_utf8(bytes).is_ok() {
        return Encoding::Utf8;
    }
    let head = &bytes[..bytes.len().min(4096) & !1];
    let (even_nul, odd_nul) = head.chunks(2).fold((0usize, 0usize), |(e, o), p| {
        (e + usize::from(p[0] == 0), o + usize::from(p[1] == 0))
    });
    let pairs = head.len() / 2;
    if pairs > 0 && odd_nul * 10 >= pairs * 8 {
        Encoding::Utf16Le
    } else if pairs > 0 && even_nul * 10 >= pairs * 8 {
        Encoding::Utf16Be
    } else {
        Encoding::Windows1252
    }
}

/// Windows-1252's 0x80..=0x9F (the rest of its upper half is Latin-1).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

/// Decodes `bytes` as `encoding` (dropping a byte-order mark). UTF-8 and UTF-16 that do not
/// decode are refused with the line of the first bad byte.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, String> {
    match encoding {
        Encoding::Utf8 => {
            let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            match std::str::from_utf8(body) {
                Ok(s) => Ok(s.to_string()),
                Err(e) => {
                    let line = body[..e.valid_up_to()]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1;
                    Err(format!(
                        "the file is not UTF-8 text as the template says (first bad byte on line {line})"
                    ))
                }
            }
        }
        Encoding::Utf16Le | Encoding::Utf16Be => {
            let le = encoding == Encoding::Utf16Le;
            let body = match (le, bytes) {
                (true, [0xFF, 0xFE, rest @ ..]) | (false, [0xFE, 0xFF, rest @ ..]) => rest,
                _ => bytes,
            };
            if body.len() % 2 != 0 {
                return Err(format!(
                    "the file is not {encoding} text as the template says (an odd number of bytes)"
                ));
            }
            let units = body.chunks(2).map(|p| {
                if le {
                    u16::from_le_bytes([p[0], p[1]])
                } else {
                    u16::from_be_bytes([p[0], p[1]])
                }
            });
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| format!("the file is not {encoding} text as the template says"))
        }
        Encoding::Windows1252 => Ok(bytes
            .iter()
            .map(|&b| match b {
                0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
                b => char::from(b),
            })
            .collect()),
    }
}

/// Splits one line into cells at `delimiter`, honouring double quotes (for detection and the
/// preamble; files themselves are read with a full CSV reader).
fn split_line(line: &str, delimiter: char) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == delimiter && !quoted => cells.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.trim_end_matches('\r'))
}

/// Finds the delimiter: the one that splits the most of the first lines into the same number
/// (more than one) of cells.
pub fn detect_delimiter(text: &str) -> char {
    let sample: Vec<&str> = lines(text).filter(|l| !l.is_empty()).take(20).collect();
    let mut best = (',', 0usize, 0usize);
    for &d in DELIMITERS {
        let counts: Vec<usize> = sample.iter().map(|l| split_line(l, d).len()).collect();
        let mut modal = (0usize, 0usize);
        for &c in &counts {
            let n = counts.iter().filter(|&&x| x == c).count();
            if c > 1 && (n > modal.1 || (n == modal.1 && c > modal.0)) {
                modal = (c, n);
            }
        }
        if modal.1 > best.2 || (modal.1 == best.2 && modal.0 > best.1) {
            best = (d, modal.0, modal.1);
        }
    }
    best.0
}

/// Reads a sample: encoding, delimiter, header row (the first line with the usual number of
/// cells, all of them non-empty: lines before it are a preamble), columns and a preview.
pub fn detect(sample: &[u8]) -> Result<Detected, String> {
    if sample.is_empty() {
        return Err("the sample file is empty".into());
    }
    let encoding = detect_encoding(sample);
    let text = decode(sample, encoding)?;
    let delimiter = detect_delimiter(&text);
    let rows: Vec<(usize, Vec<String>)> = lines(&text)
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .take(50)
        .map(|(i, l)| (i + 1, split_line(l, delimiter)))
        .collect();
    let widths: Vec<usize> = rows.iter().map(|(_, r)| r.len()).collect();
    let modal = widths
        .iter()
        .copied()
        .max_by_key(|w| (widths.iter().filter(|x| *x == w).count(), *w))
        .unwrap_or(0);
    let Some(pos) = rows.iter().position(|(_, r)| {
        r.len() == modal
            && r.iter()
                .all(|c| !c.trim().is_empty() && c.trim().parse::<f64>().is_err())
    }) else {
        return Err(
            "no header row found: the first rows should name the columns, one name per cell".into(),
        );
    };
    let (header_row, header) = &rows[pos];
    let columns: Vec<String> = header.iter().map(|c| c.trim().to_string()).collect();
    check_unique(&columns)?;
    let preview = rows[pos + 1..]
        .iter()
        .take(PREVIEW_ROWS)
        .map(|(_, r)| r.iter().map(|c| c.trim().to_string()).collect())
        .collect();
    Ok(Detected {
        encoding,
        delimiter,
        header_row: *header_row,
        columns,
        preview,
    })
}

fn norm(name: &str) -> String {
    name.trim().to_lowercase()
}

fn check_unique(columns: &[String]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for c in columns {
        if !seen.insert(norm(c)) {
            return Err(format!("the column {c:?} appears twice in the header row"));
        }
    }
    Ok(())
}

/// Holds a file's header to a template's columns. Every required column must be there, and the
/// required columns in the agreed order; other template columns may be missing and columns the
/// template does not know are read past (seed 003: "The file may contain additional columns").
/// Names compare without case and surrounding spaces. Returns each template column's position
/// in the file, or a reason that names the difference.
pub fn check_columns(
    template: &[TemplateColumn],
    header: &[String],
) -> Result<Vec<Option<usize>>, String> {
    check_unique(header)?;
    let positions: Vec<Option<usize>> = template
        .iter()
        .map(|c| header.iter().position(|h| norm(h) == norm(&c.name)))
        .collect();
    let missing: Vec<&str> = template
        .iter()
        .zip(&positions)
        .filter(|(c, p)| c.required && p.is_none())
        .map(|(c, _)| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the file's columns differ from the template: required column{} {} missing (the file has: {})",
            if missing.len() == 1 { " is" } else { "s are" },
            missing
                .iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            header.join(", ")
        ));
    }
    let required: Vec<(&str, usize)> = template
        .iter()
        .zip(&positions)
        .filter(|(c, _)| c.required)
        .filter_map(|(c, p)| p.map(|p| (c.name.as_str(), p)))
        .collect();
    for pair in required.windows(2) {
        let ((a, pa), (b, pb)) = (pair[0], pair[1]);
        if pb < pa {
            return Err(format!(
                "the file's columns differ from the template: the required column {b:?} comes before {a:?} (column {} and {}), but the agreed order has {a:?} first",
                pb + 1,
                pa + 1
            ));
        }
    }
    Ok(positions)
}

/// The contact fields a contacts row is matched by (the shared matching, seed 001/002): Ferry's
/// platform ID, the CRM ID and the phone. Email is not among them: a row that carries only an
/// email matches no contact and creates one.
pub const CONTACT_KEY_FIELDS: &[&str] = &[crate::contact::PLATFORM_ID_FIELD, "crm_id", "phone"];

/// Why a template's columns cannot tell which contact a row is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    /// The column at fault (its index in the columns given), when one is; `None`: no column
    /// is mapped to a key field at all.
    pub column: Option<usize>,
    /// A sentence for people.
    pub message: String,
}

/// Checks that every file of a template tells which contact each row is about: a contacts
/// template maps a column to one of [`CONTACT_KEY_FIELDS`], a calls template to its `match_by`
/// field, and that column is marked required (seed 003: the required columns are what a file
/// must have for its rows to be linked up; an optional key column may be left out of a file,
/// and then a contacts file would create every row as a new contact). `columns` carry
/// canonical field names.
pub fn check_key_column(
    kind: TemplateKind,
    match_by: CallMatch,
    columns: &[TemplateColumn],
) -> Result<(), KeyProblem> {
    let keys: &[&str] = match kind {
        TemplateKind::Contacts => CONTACT_KEY_FIELDS,
        TemplateKind::Calls => match match_by {
            CallMatch::CrmId => &["crm_id"],
            CallMatch::Phone => &["phone"],
        },
    };
    let mapped: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.field.as_deref().is_some_and(|f| keys.contains(&f)))
        .map(|(i, _)| i)
        .collect();
    if mapped.iter().any(|&i| columns[i].required) {
        return Ok(());
    }
    let why = match kind {
        TemplateKind::Contacts => {
            "each row finds its contact by platform ID (id), CRM ID (crm_id) or phone; email does not match contacts, so without one of these every row would be created as a new contact"
                .to_string()
        }
        TemplateKind::Calls => format!(
            "calls match their contact by {}",
            match_by.as_str()
        ),
    };
    let fields = keys.join(", ");
    Err(match mapped.first() {
        None => KeyProblem {
            column: None,
            message: format!(
                "map a column to {} and mark it required: {why}",
                if keys.len() == 1 {
                    fields
                } else {
                    format!("one of {fields}")
                }
            ),
        },
        Some(&i) => KeyProblem {
            column: Some(i),
            message: format!(
                "mark the column {:?} required: every file must have it, as {why}",
                columns[i].name
            ),
        },
    })
}

/// Whether a file name fits a mask: `*` stands for any run of characters, `?` for one; case
/// does not matter (`calls_*.csv` takes `Calls_2026-09-01.CSV`).
pub fn mask_matches(mask: &str, name: &str) -> bool {
    let m: Vec<char> = mask.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut mi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == n[ni]) {
            mi += 1;
            ni += 1;
        } else if mi < m.len() && m[mi] == '*' {
            star = Some((mi, ni));
            mi += 1;
        } else if let Some((sm, sn)) = star {
            mi = sm + 1;
            ni = sn + 1;
            star = Some((sm, sn + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|c| *c == '*')
}

/// Checks a file-name mask: a name (no `/`), at most 255 bytes, not empty.
pub fn validate_mask(mask: &str) -> Result<(), String> {
    if mask.trim().is_empty() || mask.len() > 255 || mask.contains('/') || mask.contains('\0') {
        return Err(
            "a file-name mask is a file name with * and ? wildcards, such as calls_*.csv".into(),
        );
    }
    Ok(())
}

/// Checks and normalises a template folder: absolute, no `.`/`..` parts, no trailing slash
/// (`/` is the account's top folder).
pub fn normalize_folder(folder: &str) -> Result<String, String> {
    let bad = || format!("{folder:?} is not a folder path such as /calls or /");
    let f = folder.trim();
    if !f.starts_with('/') {
        return Err(bad());
    }
    let parts: Vec<&str> = f.split('/').filter(|p| !p.is_empty()).collect();
    if parts
        .iter()
        .any(|p| *p == "." || *p == ".." || p.contains('\0') || p.contains('\\'))
    {
        return Err(bad());
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Whether a file name is a recording (wav, mp3, m4a).
pub fn is_recording(name: &str) -> bool {
    recording_content_type(name).is_some()
}

/// The content type a recording is served with, by its extension.
pub fn recording_content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "wav" => Some("audio/wav"),
        "mp3" => Some("audio/mpeg"),
        "m4a" => Some("audio/mp4"),
        _ => None,
    }
}

/// Reads a call's direction.
pub fn parse_call_direction(s: &str) -> Result<Direction, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "in" | "inbound" | "incoming" | "i" => Ok(Direction::Incoming),
        "out" | "outbound" | "outgoing" | "o" => Ok(Direction::Outgoing),
        other => Err(format!(
            "{other:?} is not a call direction; use inbound or outbound"
        )),
    }
}

/// Reads when a call began: RFC 3339 with an offset, or `YYYY-MM-DD HH:MM[:SS]` /
/// `MM/DD/YYYY HH:MM[:SS]` taken as UTC.
pub fn parse_call_time(s: &str) -> Result<Timestamp, String> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    let bad =
        || format!("{t:?} is not a date and time; use 2026-09-01T14:30:00Z or 2026-09-01 14:30:00");
    let (date, time) = t.split_once([' ', 'T']).ok_or_else(bad)?;
    let date = crate::contact::parse_date(date).ok_or_else(bad)?;
    let mut hms = time.trim().split(':');
    let mut next = |max: i8| -> Result<i8, String> {
        match hms.next() {
            None => Ok(0),
            Some(p) => p
                .parse::<i8>()
                .ok()
                .filter(|v| (0..=max).contains(v))
                .ok_or_else(bad),
        }
    };
    let (h, m, sec) = (next(23)?, next(59)?, next(59)?);
    if hms.next().is_some() {
        return Err(bad());
    }
    date.at(h, m, sec, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|_| bad())
}

/// Reads a call's duration in seconds: `95`, `1:35` or `0:01:35`.
pub fn parse_call_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let bad = || format!("{t:?} is not a duration; use seconds (95) or mm:ss (1:35)");
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let mut total: i64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let v: i64 = p.parse().map_err(|_| bad())?;
        if v < 0 || (i > 0 && v > 59) {
            return Err(bad());
        }
        total = total
            .checked_mul(60)
            .and_then(|x| x.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Checks a recording cell: a plain file name (no folders) ending in wav, mp3 or m4a.
pub fn parse_recording_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.contains('/') || t.contains('\\') || t.starts_with('.') || !is_recording(t) {
        return Err(format!(
            "{t:?} is not a recording's file name; name a wav, mp3 or m4a file uploaded beside the CSV"
        ));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, required: bool) -> TemplateColumn {
        TemplateColumn {
            name: name.into(),
            field: None,
            required,
        }
    }

    #[test]
    fn detects_semicolons_a_preamble_and_windows_1252() {
        let mut sample = b"Export from PhoneCo\r\nAgent;Caf\xe9 ID;Duration\r\n".to_vec();
        sample.extend_from_slice(b"Ann;1;95\r\nBo;2;12\r\n");
        let d = detect(&sample).unwrap();
        assert_eq!(d.encoding, Encoding::Windows1252);
        assert_eq!(d.delimiter, ';');
        assert_eq!(d.header_row, 2);
        assert_eq!(d.columns, vec!["Agent", "Café ID", "Duration"]);
        assert_eq!(d.preview.len(), 2);
        assert_eq!(d.preview[0], vec!["Ann", "1", "95"]);
    }

    #[test]
    fn detects_utf16_and_tabs() {
        let text = "a\tb\n1\t2\n";
        let mut bytes = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let d = detect(&bytes).unwrap();
        assert_eq!(d.encoding, Encoding::Utf16Le);
        assert_eq!(d.delimiter, '\t');
        assert_eq!(d.columns, vec!["a", "b"]);
    }

    #[test]
    fn columns_are_held_to_the_template() {
        let t = vec![col("Phone", true), col("Agent", false), col("Time", true)];
        let h = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            check_columns(&t, &h("phone,extra,agent,time")).unwrap(),
            vec![Some(0), Some(2), Some(3)]
        );
        assert_eq!(
            check_columns(&t, &h("Phone,Time")).unwrap(),
            vec![Some(0), None, Some(1)]
        );
        let missing = check_columns(&t, &h("Phone,Agent")).unwrap_err();
        assert!(missing.contains("\"Time\" missing"), "{missing}");
        let order = check_columns(&t, &h("Time,Phone")).unwrap_err();
        assert!(order.contains("\"Time\" comes before \"Phone\""), "{order}");
    }

    #[test]
    fn a_template_needs_a_required_column_that_finds_the_contact() {
        let mapped = |name: &str, field: &str, required: bool| TemplateColumn {
            name: name.into(),
            field: Some(field.into()),
            required,
        };
        let check = |kind, cols: &[TemplateColumn]| check_key_column(kind, CallMatch::CrmId, cols);
        let contacts = TemplateKind::Contacts;
        for key in ["id", "crm_id", "phone"] {
            assert_eq!(
                check(
                    contacts,
                    &[mapped("First", "first_name", true), mapped("K", key, true)]
                ),
                Ok(())
            );
        }
        // Names and email only: no column finds the contact.
        let e = check(
            contacts,
            &[
                mapped("First", "first_name", true),
                mapped("Mail", "email", true),
            ],
        )
        .unwrap_err();
        assert_eq!(e.column, None);
        assert!(
            e.message.contains("one of id, crm_id, phone"),
            "{}",
            e.message
        );
        assert!(e.message.contains("email does not match"), "{}", e.message);
        // A key column that files may leave out.
        let e = check(
            contacts,
            &[
                mapped("First", "first_name", true),
                mapped("Mobile", "phone", false),
            ],
        )
        .unwrap_err();
        assert_eq!(e.column, Some(1));
        assert!(e.message.contains("\"Mobile\" required"), "{}", e.message);
        // One required key is enough, beside an optional one.
        assert_eq!(
            check(
                contacts,
                &[
                    mapped("Mobile", "phone", false),
                    mapped("ID", "crm_id", true)
                ]
            ),
            Ok(())
        );
        // Calls: the key is the template's match_by field, not any contact key.
        let calls = [
            mapped("Mobile", "phone", true),
            mapped("When", "time", true),
        ];
        assert!(check(TemplateKind::Calls, &calls).is_err());
        assert_eq!(
            check_key_column(TemplateKind::Calls, CallMatch::Phone, &calls),
            Ok(())
        );
        let e = check(TemplateKind::Calls, &[mapped("SID", "crm_id", false)]).unwrap_err();
        assert_eq!(e.column, Some(0));
    }

    #[test]
    fn masks() {
        assert!(mask_matches("calls_*.csv", "Calls_2026-09-01.CSV"));
        assert!(mask_matches("*", "x"));
        assert!(mask_matches("a?c*", "abcdef"));
        assert!(!mask_matches("calls_*.csv", "calls_1.csv.part"));
        assert!(!mask_matches("calls_*.csv", "contacts.csv"));
    }

    #[test]
    fn call_cells() {
        assert_eq!(parse_call_duration("95").unwrap(), 95);
        assert_eq!(parse_call_duration("1:35").unwrap(), 95);
        assert_eq!(parse_call_duration("1:00:01").unwrap(), 3601);
        assert!(parse_call_duration("1:75").is_err());
        assert_eq!(
            parse_call_time("2026-09-01 14:30").unwrap(),
            "2026-09-01T14:30:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_call_time("09/01/2026 14:30:05").unwrap(),
            "2026-09-01T14:30:05Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_call_time("yesterday").is_err());
        assert_eq!(
            parse_call_direction("Inbound").unwrap(),
            Direction::Incoming
        );
        assert!(parse_recording_name("../x.wav").is_err());
        assert!(parse_recording_name("x.txt").is_err());
        assert_eq!(parse_recording_name(" r1.WAV ").unwrap(), "r1.WAV");
    }
}
