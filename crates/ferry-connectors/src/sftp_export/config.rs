//! The configuration of the three SFTP exports (Contacts, Conversations, EAB Notes).
//!
//! One shape for all three, as the API contract has it:
//! `{"sftp":{…}, "schedule":{"blocks":[…]}, "filters":{…}, "contacts":{…}, "eab":{…}, "neutralize_formulas"?}`.
//! Which sections a kind needs is checked by [`ExportConfig::validate`].

use super::eab::NoteTemplate;
use ferry_core::contact::{DefaultField, PLATFORM_ID_FIELD, validate_custom_field_name};
use ferry_core::message::{Channel, Direction, MessageType};
use ferry_core::schedule::Schedule;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::ExportKind;
use crate::connector::{ConfigError, parse_config};

/// The whole config of an SFTP export.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-ferry-sections" = [
    {"title": "SFTP Server", "fields": ["sftp"]},
    {"title": "Schedule", "fields": ["schedule"]},
    {"title": "Data Configuration", "fields": ["filters", "contacts", "neutralize_formulas"]},
    {"title": "EAB Fields", "fields": ["eab"]},
]))]
pub struct ExportConfig {
    /// Where the file goes.
    #[schemars(title = "SFTP Server")]
    pub sftp: SftpConfig,
    /// When it runs by itself.
    #[serde(default)]
    #[schemars(title = "Schedule")]
    pub schedule: ScheduleConfig,
    /// Which messages (Conversations and EAB Notes exports; required there).
    #[serde(default)]
    #[schemars(title = "Messages")]
    pub filters: Option<MessageFilters>,
    /// Which contacts and columns (Contacts export; required there).
    #[serde(default)]
    #[schemars(title = "Contacts")]
    pub contacts: Option<ContactsConfig>,
    /// The EAB fields (EAB Notes export; required there).
    #[serde(default)]
    #[schemars(title = "EAB Fields")]
    pub eab: Option<EabConfig>,
    /// Prefix cells that start with `=`, `+`, `-` or `@` with `'` so spreadsheets do not run them
    /// as formulas. Default: on for Contacts and Conversations, off for EAB Notes.
    #[serde(default)]
    #[schemars(title = "Neutralise formulas")]
    pub neutralize_formulas: Option<bool>,
}

/// The SFTP server and where on it the file goes. The password, private key and passphrase are
/// secrets, set apart from the config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-ferry-order" = ["username", "host", "port", "@secrets", "host_key", "@test", "directory", "file_prefix"]))]
pub struct SftpConfig {
    /// Host name or IP address of the server, e.g. sftp.example.edu.
    #[schemars(title = "Host")]
    pub host: String,
    /// TCP port (default 22).
    #[serde(default = "default_port")]
    #[schemars(title = "Port", range(min = 1, max = 65535))]
    pub port: u16,
    /// The account to log in as.
    #[schemars(title = "Username")]
    pub username: String,
    /// Where on the server the file goes; the login directory when empty.
    #[serde(default)]
    #[schemars(title = "Directory")]
    pub directory: Option<String>,
    /// The start of every file name; a UTC timestamp and `.csv` follow it. Empty: the export's
    /// own prefix (e.g. `eab_notes_`).
    #[serde(default)]
    #[schemars(title = "File Prefix")]
    pub file_prefix: Option<String>,
    /// The pinned host key (`SHA256:…`). Empty: the first successful connection pins the key the
    /// server presents; clear it to re-pin after the server's key was replaced.
    #[serde(default)]
    #[schemars(title = "Host key", extend("x-ferry-learned" = "host_key"))]
    pub host_key: Option<String>,
}

fn default_port() -> u16 {
    ferry_sftp::DEFAULT_PORT
}

/// The 3-hour blocks (Eastern time) the export runs in; none = only when run by hand.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The day is divided into 3-hour blocks (0 = 12am–3am … 7 = 9pm–12am, US Eastern time); the
    /// export runs once in each block selected. We recommend once a day, off-hours (such as
    /// 12am - 3am). With none selected it runs only with Run now.
    #[serde(default)]
    #[schemars(title = "Run in these blocks", extend("x-ferry-widget" = "schedule_blocks"))]
    pub blocks: Vec<u8>,
}

/// Which messages go into the file; at least one value of each is required.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-ferry-order" = ["channels", "types", "directions"]))]
pub struct MessageFilters {
    /// Channels to include: select at least one.
    #[schemars(title = "Message Channel", transform = channel_labels)]
    pub channels: Vec<Channel>,
    /// Kinds of message to include: select at least one.
    #[schemars(title = "Message Type", transform = type_labels)]
    pub types: Vec<MessageType>,
    /// Directions to include: select at least one.
    #[schemars(title = "Message Direction", transform = direction_labels)]
    pub directions: Vec<Direction>,
}

/// Adds `x-ferry-labels` (value → what people read) to a list-of-enum field's schema.
fn labels(schema: &mut schemars::Schema, labels: impl Iterator<Item = (&'static str, String)>) {
    let map: serde_json::Map<String, Value> = labels
        .map(|(value, label)| (value.to_string(), Value::String(label)))
        .collect();
    schema.insert("x-ferry-labels".into(), Value::Object(map));
}

fn channel_labels(schema: &mut schemars::Schema) {
    labels(
        schema,
        Channel::ALL
            .iter()
            .map(|c| (c.as_str(), c.label().to_string())),
    );
}

fn type_labels(schema: &mut schemars::Schema) {
    labels(
        schema,
        MessageType::ALL
            .iter()
            .map(|t| (t.as_str(), t.label().to_string())),
    );
}

fn direction_labels(schema: &mut schemars::Schema) {
    labels(
        schema,
        Direction::ALL.iter().map(|d| {
            let label = match d {
                Direction::Incoming => "Incoming (from the learner)",
                Direction::Outgoing => "Outgoing (from the AI agent or Live Chat agent)",
            };
            (d.as_str(), label.to_string())
        }),
    );
}

/// Adds the note body's placeholders (`x-ferry-placeholders`: name and meaning) to its schema.
fn note_placeholders(schema: &mut schemars::Schema) {
    let list: Vec<Value> = super::eab::Placeholder::ALL
        .iter()
        .map(|p| serde_json::json!({"name": format!("{{{}}}", p.as_str()), "description": p.description()}))
        .collect();
    schema.insert("x-ferry-placeholders".into(), Value::Array(list));
}

/// The Contacts export's columns and filters.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-ferry-order" = ["fields", "filters"]))]
pub struct ContactsConfig {
    /// Columns, in order: `id` (platform ID), default fields, `archived`, custom fields by name.
    #[schemars(title = "Fields", extend("x-ferry-widget" = "contact_fields"))]
    pub fields: Vec<String>,
    /// A contact is exported only if, for every filter, its field has one of the values
    /// (comma-separated). Test users are never exported.
    #[serde(default)]
    #[schemars(title = "Filters", extend("x-ferry-widget" = "filter_rows"))]
    pub filters: Vec<ContactFilter>,
}

/// One contact filter: `field` must have one of `values` (compared as the CSV shows them).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactFilter {
    /// The field's name.
    pub field: String,
    /// The values that pass.
    pub values: Vec<String>,
}

/// The EAB-specific fields (seed "Setup", EAB fields).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-ferry-order" = [
    "import_version", "institution_id", "group_id", "dedupe_contacts", "is_private",
    "student_viewable", "show_on_student_report", "created_by", "note_reasons", "note_body",
]))]
pub struct EabConfig {
    /// This number is determined by your EAB configuration.
    #[schemars(title = "GradesFirst Import Version")]
    pub import_version: String,
    /// The ID of your EAB institution.
    #[schemars(title = "Institution ID")]
    pub institution_id: String,
    /// This may just be "group_id".
    #[serde(default = "default_group_id")]
    #[schemars(title = "Group ID")]
    pub group_id: String,
    /// Each learner appears once per file (their latest message; `{count}` is how many),
    /// instead of once per message.
    #[serde(default)]
    #[schemars(title = "Deduplicate Contacts?")]
    pub dedupe_contacts: bool,
    /// Whether the note is private in EAB.
    #[serde(default)]
    #[schemars(title = "Is Private?")]
    pub is_private: bool,
    /// Whether learners see the note in the EAB portal.
    #[serde(default)]
    #[schemars(title = "Is Student Viewable")]
    pub student_viewable: bool,
    /// Whether the note appears on EAB reports.
    #[serde(default)]
    #[schemars(title = "Show on Student Report")]
    pub show_on_student_report: bool,
    /// Shown as the creator of the note in EAB.
    #[serde(default)]
    #[schemars(title = "Created by")]
    pub created_by: String,
    /// Metadata shown on the note in EAB.
    #[serde(default)]
    #[schemars(title = "Note Reasons")]
    pub note_reasons: String,
    /// The note's content in EAB. Placeholders become the message's values (such as `{date}`,
    /// the date of the message, or `{url}`, a link to it); write `{{` and `}}` for literal
    /// braces.
    #[schemars(title = "Note Body", extend("x-ferry-widget" = "template"), transform = note_placeholders)]
    pub note_body: String,
}

fn default_group_id() -> String {
    "group_id".to_string()
}

/// Extra columns a Contacts export may have besides the default and custom fields.
pub const CONTACT_EXTRA_COLUMNS: &[&str] = &[PLATFORM_ID_FIELD, "archived"];

const MAX_PREFIX: usize = 100;

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(field, message)
}

fn required(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(err(field, "is required"))
    } else {
        Ok(())
    }
}

impl ExportConfig {
    /// Parses and checks a config for `kind`, naming the field that is wrong.
    pub fn parse(kind: ExportKind, config: &Value) -> Result<ExportConfig, ConfigError> {
        let c: ExportConfig = parse_config(config)?;
        c.validate(kind)?;
        Ok(c)
    }

    fn validate(&self, kind: ExportKind) -> Result<(), ConfigError> {
        match self.problems(kind).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem of a config for `kind`, each on its field, in the form's order (a form
    /// shows them all at once; the API reports the first).
    pub fn problems(&self, kind: ExportKind) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut push = |r: Result<(), ConfigError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        let s = &self.sftp;
        if s.host.trim().is_empty() {
            push(required("sftp.host", &s.host));
        } else if s.host.trim().contains(char::is_whitespace) || s.host.contains('/') {
            push(Err(err(
                "sftp.host",
                "a host name or IP address, without spaces, scheme or path (e.g. sftp.example.edu)",
            )));
        }
        if s.port == 0 {
            push(Err(err("sftp.port", "must be between 1 and 65535")));
        }
        push(required("sftp.username", &s.username));
        if let Some(dir) = &s.directory
            && dir.chars().any(char::is_control)
        {
            push(Err(err(
                "sftp.directory",
                "must not contain control characters",
            )));
        }
        if let Some(prefix) = &s.file_prefix
            && (prefix.len() > MAX_PREFIX
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                || prefix.starts_with('.'))
        {
            push(Err(err(
                "sftp.file_prefix",
                format!(
                    "use letters, digits, '-', '_' and '.' (not first), at most {MAX_PREFIX} characters"
                ),
            )));
        }
        if let Some(key) = &s.host_key
            && !key.is_empty()
            && !is_fingerprint(key)
        {
            push(Err(err(
                "sftp.host_key",
                "a SHA256 fingerprint as ssh-keygen -l prints it (SHA256: and 43 characters), or empty to pin on the next connection",
            )));
        }
        let mut seen = [false; 8];
        for &b in &self.schedule.blocks {
            if b > 7 {
                push(Err(err(
                    "schedule.blocks",
                    format!("block {b} does not exist; blocks are 0 (12am-3am) to 7 (9pm-12am)"),
                )));
                break;
            }
            if std::mem::replace(&mut seen[b as usize], true) {
                push(Err(err(
                    "schedule.blocks",
                    format!("block {b} is listed twice"),
                )));
                break;
            }
        }

        let uses_messages = matches!(kind, ExportKind::Conversations | ExportKind::EabNotes);
        match (&self.filters, uses_messages) {
            (None, true) => push(Err(err(
                "filters",
                "is required: choose the message channels, types and directions to export",
            ))),
            (Some(_), false) => push(Err(err(
                "filters",
                "message filters apply only to Conversations and EAB Notes exports",
            ))),
            (Some(f), true) => {
                if f.channels.is_empty() {
                    push(Err(err("filters.channels", "select at least one channel")));
                }
                if f.types.is_empty() {
                    push(Err(err(
                        "filters.types",
                        "select at least one message type",
                    )));
                }
                if f.directions.is_empty() {
                    push(Err(err(
                        "filters.directions",
                        "select at least one direction",
                    )));
                }
            }
            (None, false) => {}
        }

        match (&self.contacts, kind) {
            (None, ExportKind::Contacts) => {
                push(Err(err(
                    "contacts",
                    "is required: choose the fields to export",
                )));
            }
            (Some(_), ExportKind::Conversations | ExportKind::EabNotes) => push(Err(err(
                "contacts",
                "contact columns apply only to Contacts exports",
            ))),
            (Some(c), ExportKind::Contacts) => {
                if c.fields.is_empty() {
                    push(Err(err("contacts.fields", "select at least one field")));
                }
                let mut names = std::collections::BTreeSet::new();
                for (i, f) in c.fields.iter().enumerate() {
                    let path = format!("contacts.fields[{i}]");
                    if let Err(e) = check_field_name(&path, f) {
                        push(Err(e));
                    } else if !names.insert(f.as_str()) {
                        push(Err(err(&path, format!("{f:?} is listed twice"))));
                    }
                }
                for (i, f) in c.filters.iter().enumerate() {
                    push(check_field_name(
                        &format!("contacts.filters[{i}].field"),
                        &f.field,
                    ));
                    if f.values.is_empty() {
                        push(Err(err(
                            &format!("contacts.filters[{i}].values"),
                            "give at least one value",
                        )));
                    }
                }
            }
            (None, _) => {}
        }

        match (&self.eab, kind) {
            (None, ExportKind::EabNotes) => {
                push(Err(err("eab", "is required for an EAB Notes export")));
            }
            (Some(_), ExportKind::Contacts | ExportKind::Conversations) => {
                push(Err(err(
                    "eab",
                    "EAB fields apply only to EAB Notes exports",
                )));
            }
            (Some(e), ExportKind::EabNotes) => {
                push(required("eab.import_version", &e.import_version));
                push(required("eab.institution_id", &e.institution_id));
                push(required("eab.group_id", &e.group_id));
                if e.note_body.trim().is_empty() {
                    push(required("eab.note_body", &e.note_body));
                } else {
                    push(
                        NoteTemplate::parse(&e.note_body)
                            .map(|_| ())
                            .map_err(|t| err("eab.note_body", t.to_string())),
                    );
                }
            }
            (None, _) => {}
        }
        out
    }

    /// The schedule the worker follows.
    pub fn schedule(&self) -> Schedule {
        Schedule::Blocks(self.schedule.blocks.clone())
    }

    /// Whether to neutralise formula-like cells, with the kind's default.
    pub fn neutralize(&self, kind: ExportKind) -> bool {
        self.neutralize_formulas
            .unwrap_or(!matches!(kind, ExportKind::EabNotes))
    }

    /// The file prefix, with the kind's default.
    pub fn file_prefix(&self, kind: ExportKind) -> &str {
        self.sftp
            .file_prefix
            .as_deref()
            .unwrap_or(kind.default_prefix())
    }

    /// The directory, `None` for the login directory.
    pub fn directory(&self) -> Option<&str> {
        self.sftp
            .directory
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
    }

    /// The pinned host key, if any.
    pub fn host_key(&self) -> Option<&str> {
        self.sftp.host_key.as_deref().filter(|k| !k.is_empty())
    }
}

/// A column or filter field of a Contacts export: the platform ID, a default field, `archived`,
/// or a custom field's name (whether it exists is checked when the export runs).
fn check_field_name(path: &str, name: &str) -> Result<(), ConfigError> {
    if CONTACT_EXTRA_COLUMNS.contains(&name) || name.parse::<DefaultField>().is_ok() {
        return Ok(());
    }
    validate_custom_field_name(name).map_err(|m| err(path, m))
}

/// `SHA256:` and 43 characters of unpadded base64, as OpenSSH prints fingerprints.
pub fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eab() -> Value {
        json!({
            "sftp": {"host": "sftp.example.edu", "username": "ferry", "directory": "in"},
            "schedule": {"blocks": [0, 4]},
            "filters": {"channels": ["sms"], "types": ["ai_agent"], "directions": ["incoming"]},
            "eab": {"import_version": "2", "institution_id": "42", "note_body": "{first_name}: {message}"}
        })
    }

    fn field_of(v: Value, kind: ExportKind) -> String {
        ExportConfig::parse(kind, &v).unwrap_err().field
    }

    #[test]
    fn a_complete_eab_config_is_accepted_with_defaults() {
        let c = ExportConfig::parse(ExportKind::EabNotes, &eab()).unwrap();
        assert_eq!(c.sftp.port, 22);
        assert_eq!(c.eab.as_ref().unwrap().group_id, "group_id");
        assert_eq!(c.file_prefix(ExportKind::EabNotes), "eab_notes_");
        assert!(!c.neutralize(ExportKind::EabNotes));
        assert_eq!(c.schedule(), Schedule::Blocks(vec![0, 4]));
    }

    #[test]
    fn each_mistake_names_its_field() {
        let mut v = eab();
        v["eab"]["note_body"] = json!("Hi {nmae}");
        let e = ExportConfig::parse(ExportKind::EabNotes, &v).unwrap_err();
        assert_eq!(e.field, "eab.note_body");
        assert!(e.message.contains("{nmae}"), "{e}");

        let mut v = eab();
        v["filters"]["channels"] = json!([]);
        assert_eq!(field_of(v, ExportKind::EabNotes), "filters.channels");
        let mut v = eab();
        v["filters"]["directions"] = json!([]);
        assert_eq!(field_of(v, ExportKind::EabNotes), "filters.directions");
        let mut v = eab();
        v["schedule"]["blocks"] = json!([8]);
        assert_eq!(field_of(v, ExportKind::EabNotes), "schedule.blocks");
        let mut v = eab();
        v["schedule"]["blocks"] = json!([1, 1]);
        assert_eq!(field_of(v, ExportKind::EabNotes), "schedule.blocks");
        let mut v = eab();
        v["sftp"]["host"] = json!(" ");
        assert_eq!(field_of(v, ExportKind::EabNotes), "sftp.host");
        let mut v = eab();
        v["sftp"]["file_prefix"] = json!("../x");
        assert_eq!(field_of(v, ExportKind::EabNotes), "sftp.file_prefix");
        let mut v = eab();
        v["sftp"]["host_key"] = json!("MD5:aa");
        assert_eq!(field_of(v, ExportKind::EabNotes), "sftp.host_key");
        let mut v = eab();
        v["eab"]["import_version"] = json!("");
        assert_eq!(field_of(v, ExportKind::EabNotes), "eab.import_version");
        let mut v = eab();
        v.as_object_mut().unwrap().remove("eab");
        assert_eq!(field_of(v, ExportKind::EabNotes), "eab");
        assert_eq!(field_of(eab(), ExportKind::Conversations), "eab");
        let mut v = eab();
        v["sftp"]["pasword"] = json!("x");
        assert_eq!(field_of(v, ExportKind::EabNotes), "sftp.pasword");
        let mut v = eab();
        v["filters"]["channels"] = json!(["fax"]);
        assert_eq!(field_of(v, ExportKind::EabNotes), "filters.channels[0]");
    }

    #[test]
    fn contacts_exports_need_valid_columns() {
        let base = json!({"sftp": {"host": "h", "username": "u"}, "contacts": {"fields": ["id", "first_name", "gpa"]}});
        let c = ExportConfig::parse(ExportKind::Contacts, &base).unwrap();
        assert!(c.neutralize(ExportKind::Contacts));
        assert_eq!(c.file_prefix(ExportKind::Contacts), "contacts_");
        let mut v = base.clone();
        v["contacts"]["fields"] = json!(["first_name", "first_name"]);
        assert_eq!(field_of(v, ExportKind::Contacts), "contacts.fields[1]");
        let mut v = base.clone();
        v["contacts"]["fields"] = json!(["First Name"]);
        assert_eq!(field_of(v, ExportKind::Contacts), "contacts.fields[0]");
        let mut v = base.clone();
        v["contacts"]["filters"] = json!([{"field": "opt_in", "values": []}]);
        assert_eq!(
            field_of(v, ExportKind::Contacts),
            "contacts.filters[0].values"
        );
        let mut v = base;
        v["filters"] =
            json!({"channels": ["sms"], "types": ["campaign"], "directions": ["outgoing"]});
        assert_eq!(field_of(v, ExportKind::Contacts), "filters");
    }

    #[test]
    fn fingerprints_look_like_openssh_ones() {
        assert!(is_fingerprint(
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        ));
        assert!(!is_fingerprint(
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF"
        ));
        assert!(!is_fingerprint(
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        ));
    }
}
