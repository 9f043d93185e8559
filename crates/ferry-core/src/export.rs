//! Building outbound files: RFC 4180 CSV, spreadsheet-formula neutralising, the EAB Notes file
//! format (seed 000, "File") with its note-body template, and per-contact deduplication.

use std::fmt::Write as _;
use std::io::{self, Write};

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Writes RFC 4180 CSV: fields quoted when they hold a comma, quote, CR or LF; quotes doubled;
/// every record ends in CRLF; UTF-8 without a byte-order mark.
pub struct CsvWriter<W: Write> {
    out: W,
    neutralize: bool,
    line: String,
    rows: u64,
}

impl<W: Write> CsvWriter<W> {
    /// `neutralize`: prefix cells that a spreadsheet would run as a formula (see [`neutralize`]).
    pub fn new(out: W, neutralize: bool) -> Self {
        CsvWriter {
            out,
            neutralize,
            line: String::with_capacity(512),
            rows: 0,
        }
    }

    /// Writes one record.
    pub fn write_row<S: AsRef<str>>(&mut self, cells: &[S]) -> io::Result<()> {
        self.line.clear();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            let cell = cell.as_ref();
            let cell = if self.neutralize {
                neutralize(cell)
            } else {
                std::borrow::Cow::Borrowed(cell)
            };
            push_field(&mut self.line, &cell);
        }
        self.line.push_str("\r\n");
        self.rows += 1;
        self.out.write_all(self.line.as_bytes())
    }

    /// Records written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The output written so far (to hand a buffer's contents on and clear it).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The sink, with everything written so far.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn push_field(line: &mut String, cell: &str) {
    if cell
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        line.push('"');
        let mut parts = cell.split('"');
        if let Some(first) = parts.next() {
            line.push_str(first);
        }
        for part in parts {
            line.push_str("\"\"");
            line.push_str(part);
        }
        line.push('"');
    } else {
        line.push_str(cell);
    }
}

/// Makes a cell safe to open in a spreadsheet: a cell starting with `=`, `+`, `-` or `@` (or a
/// tab or carriage return, which some spreadsheets skip before such a character) gets a leading
/// apostrophe, so it is shown as text instead of run as a formula (OWASP "CSV injection").
///
/// A plain signed number (`+16175550101`, an E.164 phone; `-2.5`) is left alone: a spreadsheet
/// reads it as a number, never as a formula, and importers would keep the apostrophe.
pub fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('+' | '-') if is_signed_number(cell) => std::borrow::Cow::Borrowed(cell),
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => std::borrow::Cow::Owned(format!("'{cell}")),
        _ => std::borrow::Cow::Borrowed(cell),
    }
}

/// `+` or `-`, digits, and at most one decimal point between digits.
fn is_signed_number(cell: &str) -> bool {
    let digits = &cell[1..];
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "1"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(int) && all_digits(frac)
}

crate::string_enum! {
    /// A placeholder of the EAB note body.
    pub enum Placeholder {
        /// `{date}`: the message's date, `MM/DD/YYYY` in the institution's time zone.
        Date = "date",
        /// `{url}`: a link to the message in the Conversations view.
        Url = "url",
        /// `{first_name}`: the contact's first name.
        FirstName = "first_name",
        /// `{last_name}`: the contact's last name.
        LastName = "last_name",
        /// `{preferred_name}`: the preferred name, else the first name.
        PreferredName = "preferred_name",
        /// `{message}`: the message text.
        Message = "message",
        /// `{channel}`: SMS, Web chat, Email or WhatsApp.
        Channel = "channel",
        /// `{type}`: AI agent, Live chat or Campaign.
        Type = "type",
        /// `{direction}`: Incoming or Outgoing.
        Direction = "direction",
        /// `{count}`: how many messages the row stands for.
        Count = "count",
    }
}

impl Placeholder {
    /// What the placeholder becomes, for the list beside the Note Body field.
    pub fn description(self) -> &'static str {
        match self {
            Placeholder::Date => "the date of the message (MM/DD/YYYY, institution time)",
            Placeholder::Url => "a link to the message in the Conversations view",
            Placeholder::FirstName => "the contact's first name",
            Placeholder::LastName => "the contact's last name",
            Placeholder::PreferredName => "the contact's preferred name (else the first name)",
            Placeholder::Message => "the message text",
            Placeholder::Channel => "SMS, Web chat, Email or WhatsApp",
            Placeholder::Type => "AI agent, Live chat or Campaign",
            Placeholder::Direction => "Incoming (from the learner) or Outgoing",
            Placeholder::Count => {
                "how many messages the row stands for (1, or the contact's count when deduplicating)"
            }
        }
    }
}

/// Why a note-body template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{name}` that is not a placeholder: the name, then the list of placeholders.
    #[error("unknown placeholder {{{0}}}; the placeholders are {1}")]
    Unknown(String, String),
    /// A `{` with no closing `}`, at this character position.
    #[error("a {{ at position {0} is not closed; write {{{{ for a literal brace")]
    Unclosed(usize),
    /// A `}` with no opening `{`, at this character position.
    #[error("a }} at position {0} has no opening {{; write }}}} for a literal brace")]
    Unopened(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Placeholder),
}

/// A parsed note body: text with `{placeholder}`s; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteTemplate {
    parts: Vec<Part>,
}

/// The values a note body is rendered with.
#[derive(Debug, Clone, Default)]
pub struct NoteValues<'a> {
    /// `MM/DD/YYYY`, in the institution's time zone (see [`us_date`]).
    pub date: &'a str,
    /// A link to the message in the Conversations view.
    pub url: &'a str,
    /// The contact's first name; empty when unknown.
    pub first_name: &'a str,
    /// The contact's last name; empty when unknown.
    pub last_name: &'a str,
    /// Empty when the contact has none; `{preferred_name}` then falls back to the first name.
    pub preferred_name: &'a str,
    /// The message text.
    pub message: &'a str,
    /// SMS, Web chat, Email or WhatsApp.
    pub channel: &'a str,
    /// AI agent, Live chat or Campaign.
    pub message_type: &'a str,
    /// Incoming (from the learner) or Outgoing.
    pub direction: &'a str,
    /// How many messages the row stands for: 1, or the contact's count when deduplicating.
    pub count: u64,
}

impl NoteTemplate {
    /// Parses a template; an unknown placeholder or a stray brace is refused (when the
    /// integration is saved, not when it runs).
    pub fn parse(s: &str) -> Result<NoteTemplate, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let rest = &s[i + 1..];
                    let end = rest.find('}').ok_or(TemplateError::Unclosed(i))?;
                    let name = &rest[..end];
                    let field = name.trim().parse::<Placeholder>().map_err(|_| {
                        TemplateError::Unknown(
                            name.to_string(),
                            Placeholder::ALL
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        )
                    })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Field(field));
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' => return Err(TemplateError::Unopened(i)),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(NoteTemplate { parts })
    }

    /// The body for one message; cannot fail, the placeholders were checked when parsing.
    pub fn render(&self, v: &NoteValues<'_>) -> String {
        let mut out = String::with_capacity(128);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(p) => match p {
                    Placeholder::Date => out.push_str(v.date),
                    Placeholder::Url => out.push_str(v.url),
                    Placeholder::FirstName => out.push_str(v.first_name),
                    Placeholder::LastName => out.push_str(v.last_name),
                    Placeholder::PreferredName => out.push_str(if v.preferred_name.is_empty() {
                        v.first_name
                    } else {
                        v.preferred_name
                    }),
                    Placeholder::Message => out.push_str(v.message),
                    Placeholder::Channel => out.push_str(v.channel),
                    Placeholder::Type => out.push_str(v.message_type),
                    Placeholder::Direction => out.push_str(v.direction),
                    Placeholder::Count => {
                        let _ = write!(out, "{}", v.count);
                    }
                },
            }
        }
        out
    }
}

/// `MM/DD/YYYY` of an instant in a time zone (EAB's "Created on").
pub fn us_date(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%m/%d/%Y").to_string()
}

/// The fixed parts of an EAB Notes file, from the integration's EAB fields.
#[derive(Debug, Clone)]
pub struct EabFile {
    /// EAB's import format version, written in the first record.
    pub import_version: String,
    /// The institution's ID at EAB (not Ferry's).
    pub institution_id: String,
    /// The EAB group the notes are filed under.
    pub group_id: String,
    /// Written `Y`/`N`: whether the note is private.
    pub is_private: bool,
    /// Written `Y`/`N`: whether the student may see the note.
    pub student_viewable: bool,
    /// Written `Y`/`N`: whether the note shows on the student report.
    pub show_on_student_report: bool,
    /// The EAB user named as the notes' author.
    pub created_by: String,
    /// The note reasons column, as EAB expects it.
    pub note_reasons: String,
}

fn yn(b: bool) -> &'static str {
    if b { "Y" } else { "N" }
}

impl EabFile {
    /// The first record: two cells, `GradesFirst Import Version=<v>` and `Institution ID=<id>`.
    pub fn first_row(&self) -> [String; 2] {
        [
            format!("GradesFirst Import Version={}", self.import_version),
            format!("Institution ID={}", self.institution_id),
        ]
    }

    /// One note, the 12 columns in EAB's order (no header row).
    pub fn note_cells<'a>(
        &'a self,
        crm_id: &'a str,
        created_on: &'a str,
        note_body: &'a str,
        url: &'a str,
    ) -> [&'a str; 12] {
        [
            "note",
            "add",
            crm_id,
            &self.group_id,
            yn(self.is_private),
            yn(self.student_viewable),
            yn(self.show_on_student_report),
            created_on,
            &self.created_by,
            note_body,
            url,
            &self.note_reasons,
        ]
    }

    /// [`EabFile::note_cells`] as owned strings.
    pub fn note_row(
        &self,
        crm_id: &str,
        created_on: &str,
        note_body: &str,
        url: &str,
    ) -> [String; 12] {
        [
            "note".to_string(),
            "add".to_string(),
            crm_id.to_string(),
            self.group_id.clone(),
            yn(self.is_private).to_string(),
            yn(self.student_viewable).to_string(),
            yn(self.show_on_student_report).to_string(),
            created_on.to_string(),
            self.created_by.clone(),
            note_body.to_string(),
            url.to_string(),
            self.note_reasons.clone(),
        ]
    }
}

/// Deduplication by contact: for messages in window order, keeps each contact's latest message
/// and how many it had; the result is in the order of those latest messages.
pub fn latest_per_contact<M>(
    messages: impl IntoIterator<Item = M>,
    contact_of: impl Fn(&M) -> i64,
) -> Vec<(M, u64)> {
    let mut index: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut slots: Vec<Option<(M, u64)>> = Vec::new();
    for m in messages {
        let contact = contact_of(&m);
        match index.get(&contact) {
            Some(&i) => {
                let (_, count) = slots[i].take().expect("slot is filled");
                slots.push(Some((m, count + 1)));
                index.insert(contact, slots.len() - 1);
            }
            None => {
                slots.push(Some((m, 1)));
                index.insert(contact, slots.len() - 1);
            }
        }
    }
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4180_quoting_and_crlf() {
        let mut w = CsvWriter::new(Vec::new(), false);
        w.write_row(&["plain", "a,b", "say \"hi\"", "two\nlines", ""])
            .unwrap();
        w.write_row(&["é", "=SUM(A1)"]).unwrap();
        let bytes = w.into_inner();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\né,=SUM(A1)\r\n"
        );
    }

    #[test]
    fn neutralising_formula_cells() {
        let mut w = CsvWriter::new(Vec::new(), true);
        w.write_row(&["=1+1", "+1 617", "-2", "@SUM(1)", "ok", "a=b", "\t=x"])
            .unwrap();
        w.write_row(&["+16175550101", "-2.5", "+1.", "-.5", "-1+1", "+", "-"])
            .unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            "'=1+1,'+1 617,-2,'@SUM(1),ok,a=b,'\t=x\r\n+16175550101,-2.5,'+1.,'-.5,'-1+1,'+,'-\r\n"
        );
    }

    #[test]
    fn templates() {
        let t = NoteTemplate::parse(
            "{date}: {preferred_name} {last_name} via {channel} ({count}) {{x}} {url}",
        )
        .unwrap();
        let v = NoteValues {
            date: "09/01/2026",
            first_name: "Ana",
            last_name: "Diaz",
            channel: "SMS",
            count: 3,
            url: "https://f/x",
            ..Default::default()
        };
        assert_eq!(
            t.render(&v),
            "09/01/2026: Ana Diaz via SMS (3) {x} https://f/x"
        );
        assert!(
            matches!(NoteTemplate::parse("Hi {nickname}"), Err(TemplateError::Unknown(n, _)) if n == "nickname")
        );
        assert!(matches!(
            NoteTemplate::parse("Hi {date"),
            Err(TemplateError::Unclosed(3))
        ));
        assert!(matches!(
            NoteTemplate::parse("Hi }"),
            Err(TemplateError::Unopened(3))
        ));
        assert_eq!(NoteTemplate::parse("").unwrap().render(&v), "");
        for p in Placeholder::ALL {
            assert!(NoteTemplate::parse(&format!("{{{p}}}")).is_ok());
            assert!(!p.description().is_empty());
        }
    }

    #[test]
    fn eab_file_bytes_for_a_known_fixture() {
        let f = EabFile {
            import_version: "3".into(),
            institution_id: "1234".into(),
            group_id: "group_id".into(),
            is_private: false,
            student_viewable: true,
            show_on_student_report: false,
            created_by: "Mainstay Bot".into(),
            note_reasons: "Outreach, Advising".into(),
        };
        let tz = TimeZone::get("America/New_York").unwrap();
        // 2026-09-02T02:30Z is still September 1 in New York.
        let created = us_date("2026-09-02T02:30:00Z".parse().unwrap(), &tz);
        assert_eq!(created, "09/01/2026");
        let body = NoteTemplate::parse("Texted on {date}: \"{message}\"")
            .unwrap()
            .render(&NoteValues {
                date: &created,
                message: "Hi, Ana",
                ..Default::default()
            });
        let mut w = CsvWriter::new(Vec::new(), false);
        w.write_row(&f.first_row()).unwrap();
        w.write_row(&f.note_row(
            "E00123",
            &created,
            &body,
            "https://ferry.example.edu/contacts/7?message=42",
        ))
        .unwrap();
        let expected = "GradesFirst Import Version=3,Institution ID=1234\r\n\
                        note,add,E00123,group_id,N,Y,N,09/01/2026,Mainstay Bot,\"Texted on 09/01/2026: \"\"Hi, Ana\"\"\",https://ferry.example.edu/contacts/7?message=42,\"Outreach, Advising\"\r\n";
        assert_eq!(String::from_utf8(w.into_inner()).unwrap(), expected);
    }

    #[test]
    fn dedupe_keeps_each_contacts_latest_message_and_count() {
        let msgs = vec![
            (1, "a1"),
            (2, "b1"),
            (1, "a2"),
            (3, "c1"),
            (1, "a3"),
            (2, "b2"),
        ];
        let out = latest_per_contact(msgs, |m| m.0);
        assert_eq!(out, vec![((3, "c1"), 1), ((1, "a3"), 3), ((2, "b2"), 2)]);
    }

    proptest::proptest! {
        /// Whatever the cells hold, a CSV reader gets the same cells back.
        #[test]
        fn csv_round_trips(cells in proptest::collection::vec("[^\\u{feff}]{0,20}", 1..6)) {
            // A lone empty cell is an empty line, which no CSV reader can tell from no record.
            proptest::prop_assume!(cells != vec![String::new()]);
            let mut w = CsvWriter::new(Vec::new(), false);
            w.write_row(&cells).unwrap();
            let bytes = w.into_inner();
            let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
            let rec = r.records().next().unwrap().unwrap();
            let back: Vec<String> = rec.iter().map(str::to_string).collect();
            proptest::prop_assert_eq!(back, cells);
        }
    }
}
