//! The EAB Notes file (seed 000, "File"): its fixed first record, the 12 note columns in EAB's
//! order, and the note-body template with its placeholders.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;

ferry_core::string_enum! {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::export::CsvWriter;

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
}
