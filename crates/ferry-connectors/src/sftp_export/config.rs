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
pub struct ExportConfig {
    /// Where the file goes.
    pub sftp: SftpConfig,
    /// When it runs by itself.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Which messages (Conversations and EAB Notes exports; required there).
    #[serde(default)]
    pub filters: Option<MessageFilters>,
    /// Which contacts and columns (Contacts export; required there).
    #[serde(default)]
    pub contacts: Option<ContactsConfig>,
    /// The EAB fields (EAB Notes export; required there).
    #[serde(default)]
    pub eab: Option<EabConfig>,
    /// Prefix cells that start with `=`, `+`, `-` or `@` with `'` so spreadsheets do not run them
    /// as formulas. Default: on for Contacts and Conversations, off for EAB Notes.
    #[serde(default)]
    pub neutralize_formulas: Option<bool>,
}

/// The SFTP server and where on it the file goes. The password, private key and passphrase are
/// secrets, set apart from the config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// Host name or IP address of the server.
    pub host: String,
    /// TCP port (default 22).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The account to log in as.
    pub username: String,
    /// The directory to put files in; the login directory when empty.
    #[serde(default)]
    pub directory: Option<String>,
    /// The start of every file name; a UTC timestamp and `.csv` follow it.
    #[serde(default)]
    pub file_prefix: Option<String>,
    /// The pinned host key (`SHA256:…`). Empty: the first successful connection pins the key the
    /// server presents; clear it to re-pin after the server's key was replaced.
    #[serde(default)]
    pub host_key: Option<String>,
}

fn default_port() -> u16 {
    ferry_sftp::DEFAULT_PORT
}

/// The 3-hour blocks (Eastern time) the export runs in; none = only when run by hand.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// 0 = 12am–3am … 7 = 9pm–12am.
    #[serde(default)]
    pub blocks: Vec<u8>,
}

/// Which messages go into the file; at least one value of each is required.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageFilters {
    /// Channels to include.
    pub channels: Vec<Channel>,
    /// Message types to include.
    pub types: Vec<MessageType>,
    /// Directions to include (incoming = from the learner).
    pub directions: Vec<Direction>,
}

/// The Contacts export's columns and filters.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactsConfig {
    /// Columns, in order: `id` (platform ID), default fields, `archived`, custom fields by name.
    pub fields: Vec<String>,
    /// A contact is exported only if, for every filter, its field has one of the values.
    #[serde(default)]
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
pub struct EabConfig {
    /// GradesFirst Import Version, from the institution's EAB configuration.
    pub import_version: String,
    /// The ID of the EAB institution.
    pub institution_id: String,
    /// Group ID (often just `group_id`).
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// One row per contact for the run instead of one per message.
    #[serde(default)]
    pub dedupe_contacts: bool,
    /// Is Private? (Y/N).
    #[serde(default)]
    pub is_private: bool,
    /// Is Student Viewable (Y/N).
    #[serde(default)]
    pub student_viewable: bool,
    /// Show on Student Report (Y/N).
    #[serde(default)]
    pub show_on_student_report: bool,
    /// Shown as the note's creator in EAB.
    #[serde(default)]
    pub created_by: String,
    /// Metadata on the note in EAB.
    #[serde(default)]
    pub note_reasons: String,
    /// The note's text, with placeholders such as `{date}` and `{url}`.
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
        let s = &self.sftp;
        required("sftp.host", &s.host)?;
        if s.host.trim().contains(char::is_whitespace) || s.host.contains('/') {
            return Err(err(
                "sftp.host",
                "a host name or IP address, without spaces, scheme or path (e.g. sftp.example.edu)",
            ));
        }
        if s.port == 0 {
            return Err(err("sftp.port", "must be between 1 and 65535"));
        }
        required("sftp.username", &s.username)?;
        if let Some(dir) = &s.directory
            && dir.chars().any(char::is_control)
        {
            return Err(err("sftp.directory", "must not contain control characters"));
        }
        if let Some(prefix) = &s.file_prefix
            && (prefix.len() > MAX_PREFIX
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                || prefix.starts_with('.'))
        {
            return Err(err(
                "sftp.file_prefix",
                format!(
                    "use letters, digits, '-', '_' and '.' (not first), at most {MAX_PREFIX} characters"
                ),
            ));
        }
        if let Some(key) = &s.host_key
            && !key.is_empty()
            && !is_fingerprint(key)
        {
            return Err(err(
                "sftp.host_key",
                "a SHA256 fingerprint as ssh-keygen -l prints it (SHA256: and 43 characters), or empty to pin on the next connection",
            ));
        }
        let mut seen = [false; 8];
        for &b in &self.schedule.blocks {
            if b > 7 {
                return Err(err(
                    "schedule.blocks",
                    format!("block {b} does not exist; blocks are 0 (12am-3am) to 7 (9pm-12am)"),
                ));
            }
            if std::mem::replace(&mut seen[b as usize], true) {
                return Err(err("schedule.blocks", format!("block {b} is listed twice")));
            }
        }

        let uses_messages = matches!(kind, ExportKind::Conversations | ExportKind::EabNotes);
        match (&self.filters, uses_messages) {
            (None, true) => {
                return Err(err(
                    "filters",
                    "is required: choose the message channels, types and directions to export",
                ));
            }
            (Some(_), false) => {
                return Err(err(
                    "filters",
                    "message filters apply only to Conversations and EAB Notes exports",
                ));
            }
            (Some(f), true) => {
                if f.channels.is_empty() {
                    return Err(err("filters.channels", "select at least one channel"));
                }
                if f.types.is_empty() {
                    return Err(err("filters.types", "select at least one message type"));
                }
                if f.directions.is_empty() {
                    return Err(err("filters.directions", "select at least one direction"));
                }
            }
            (None, false) => {}
        }

        match (&self.contacts, kind) {
            (None, ExportKind::Contacts) => {
                return Err(err("contacts", "is required: choose the fields to export"));
            }
            (Some(_), ExportKind::Conversations | ExportKind::EabNotes) => {
                return Err(err(
                    "contacts",
                    "contact columns apply only to Contacts exports",
                ));
            }
            (Some(c), ExportKind::Contacts) => {
                if c.fields.is_empty() {
                    return Err(err("contacts.fields", "select at least one field"));
                }
                let mut names = std::collections::BTreeSet::new();
                for (i, f) in c.fields.iter().enumerate() {
                    check_field_name(&format!("contacts.fields[{i}]"), f)?;
                    if !names.insert(f.as_str()) {
                        return Err(err(
                            &format!("contacts.fields[{i}]"),
                            format!("{f:?} is listed twice"),
                        ));
                    }
                }
                for (i, f) in c.filters.iter().enumerate() {
                    check_field_name(&format!("contacts.filters[{i}].field"), &f.field)?;
                    if f.values.is_empty() {
                        return Err(err(
                            &format!("contacts.filters[{i}].values"),
                            "give at least one value",
                        ));
                    }
                }
            }
            (None, _) => {}
        }

        match (&self.eab, kind) {
            (None, ExportKind::EabNotes) => {
                return Err(err("eab", "is required for an EAB Notes export"));
            }
            (Some(_), ExportKind::Contacts | ExportKind::Conversations) => {
                return Err(err("eab", "EAB fields apply only to EAB Notes exports"));
            }
            (Some(e), ExportKind::EabNotes) => {
                required("eab.import_version", &e.import_version)?;
                required("eab.institution_id", &e.institution_id)?;
                required("eab.group_id", &e.group_id)?;
                required("eab.note_body", &e.note_body)?;
                NoteTemplate::parse(&e.note_body)
                    .map_err(|t| err("eab.note_body", t.to_string()))?;
            }
            (None, _) => {}
        }
        Ok(())
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
        assert_eq!(field_of(v, ExportKind::EabNotes), "pasword");
        let mut v = eab();
        v["filters"]["channels"] = json!(["fax"]);
        assert_eq!(field_of(v, ExportKind::EabNotes), "config");
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
