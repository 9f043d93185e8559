//! The outbound SFTP exports (seed 000): Contacts, Conversations and EAB Notes files uploaded to
//! the customer's server on a schedule. Conversations and EAB Notes are incremental on the
//! message sequence; the watermark advances only after the server confirmed the renamed file.

mod client;
mod codes;
pub mod config;
pub mod eab;
pub mod run;

use async_trait::async_trait;
use ferry_core::schedule::Schedule;
use ferry_sftp::ClientOptions;
use serde_json::{Value, json};

pub use client::pin_host_key;
pub use config::ExportConfig;
pub use run::{CONVERSATION_COLUMNS, MISSING_CRM_ID, file_name, message_url};

use crate::connector::{ConfigError, ConnectionReport, Connector, RunError, RunReport};
use crate::context::{ConnectorContext, RunContext, Secrets};
use crate::describe::{Category, Description, Platform, SecretField, SecretKind, schema_of};
use crate::explain::{RunExplanation, RunPreview};
use ferry_core::run::RunStatus;

/// The three kinds of SFTP export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// Every contact with the chosen fields.
    Contacts,
    /// New messages with their contacts.
    Conversations,
    /// New messages as EAB notes.
    EabNotes,
}

impl ExportKind {
    /// All of them.
    pub const ALL: [ExportKind; 3] = [
        ExportKind::Contacts,
        ExportKind::Conversations,
        ExportKind::EabNotes,
    ];

    /// The integration kind stored with each instance.
    pub fn kind(self) -> &'static str {
        match self {
            ExportKind::Contacts => "contacts_export",
            ExportKind::Conversations => "conversations_export",
            ExportKind::EabNotes => "eab_notes_export",
        }
    }

    /// The Recent Runs "Type".
    pub fn label(self) -> &'static str {
        match self {
            ExportKind::Contacts => "Contacts",
            ExportKind::Conversations => "Conversations",
            ExportKind::EabNotes => "EAB Notes",
        }
    }

    /// One instance's name: the form of a new one is "New EAB Notes Export" (seed 000).
    pub fn title(self) -> &'static str {
        match self {
            ExportKind::Contacts => "Contacts Export",
            ExportKind::Conversations => "Conversations Export",
            ExportKind::EabNotes => "EAB Notes Export",
        }
    }

    /// The file prefix when none is set.
    pub fn default_prefix(self) -> &'static str {
        match self {
            ExportKind::Contacts => "contacts_",
            ExportKind::Conversations => "conversations_",
            ExportKind::EabNotes => "eab_notes_",
        }
    }

    /// The kind of an integration kind string.
    pub fn from_kind(kind: &str) -> Option<ExportKind> {
        ExportKind::ALL.into_iter().find(|k| k.kind() == kind)
    }
}

/// The platform card the three exports share.
pub const PLATFORM: Platform = Platform {
    id: "sftp-outbound",
    name: "SFTP Outbound",
    summary: "Scheduled CSV files uploaded to your institution's SFTP server: every contact with the \
fields you choose, the conversations since the last file, or the EAB Notes import file. Files are \
written under a temporary name and renamed once the server has every byte, and each message is \
sent in exactly one file.",
    page: None,
};

/// The note body a new EAB Notes export starts with.
pub const DEFAULT_NOTE_BODY: &str = "{channel} {direction} message on {date}: {message} {url}";

/// What an export of `kind` says about itself.
fn describe(kind: ExportKind) -> Description {
    let mut schema = schema_of::<ExportConfig>();
    // One config struct serves the three kinds; each kind's schema keeps only its sections.
    let (keep, required): (&[&str], &[&str]) = match kind {
        ExportKind::Contacts => (&["contacts"], &["sftp", "contacts"]),
        ExportKind::Conversations => (&["filters"], &["sftp", "filters"]),
        ExportKind::EabNotes => (&["filters", "eab"], &["sftp", "filters", "eab"]),
    };
    if let Some(props) = schema["properties"].as_object_mut() {
        props.retain(|name, _| {
            !["contacts", "filters", "eab"].contains(&name.as_str())
                || keep.contains(&name.as_str())
        });
        // A required section is an object, not "object or null".
        for name in keep {
            if let Some(section) = props.get_mut(*name) {
                strip_null(section);
            }
        }
    }
    schema["required"] = json!(required);
    let all_filters = json!({
        "channels": ferry_core::message::Channel::ALL,
        "types": ferry_core::message::MessageType::ALL,
        "directions": ferry_core::message::Direction::ALL,
    });
    let sftp = json!({"host": "", "port": ferry_sftp::DEFAULT_PORT, "username": ""});
    let (summary, default_config) = match kind {
        ExportKind::Contacts => (
            "Every contact (never test users) that passes your filters, with the fields you choose, in one CSV file per run.",
            json!({"sftp": sftp, "schedule": {"blocks": []}, "contacts": {"fields": ["id", "first_name", "last_name", "phone", "crm_id"], "filters": []}}),
        ),
        ExportKind::Conversations => (
            "The messages new since the last file that pass your channel, type and direction filters, one row each with the contact's IDs and a link to the message.",
            json!({"sftp": sftp, "schedule": {"blocks": []}, "filters": all_filters}),
        ),
        ExportKind::EabNotes => (
            "The same messages in EAB's notes-import format, so each conversation appears as a note on the student in EAB.",
            json!({"sftp": sftp, "schedule": {"blocks": []}, "filters": all_filters, "eab": {
                "import_version": "", "institution_id": "", "group_id": "group_id",
                "dedupe_contacts": false, "is_private": false, "student_viewable": false,
                "show_on_student_report": false, "created_by": "Ferry", "note_reasons": "Text conversation",
                "note_body": DEFAULT_NOTE_BODY,
            }}),
        ),
    };
    let mut error_codes = codes::SFTP_ERROR_CODES.to_vec();
    if kind == ExportKind::EabNotes {
        error_codes.extend_from_slice(EAB_ERROR_CODES);
    }
    Description {
        kind: kind.kind(),
        label: kind.label(),
        title: kind.title(),
        summary,
        category: Category::SftpOutbound,
        platform: PLATFORM,
        config_schema: schema,
        secrets: vec![
            SecretField {
                name: "password",
                label: "Password",
                kind: SecretKind::Password,
                help: "The SFTP account's password; leave empty when you use a private key.",
            },
            SecretField {
                name: "private_key",
                label: "Private key",
                kind: SecretKind::PrivateKey,
                help: "An ed25519, ECDSA or RSA private key in OpenSSH or PKCS#8 format, from its BEGIN line to its END line.",
            },
            SecretField {
                name: "passphrase",
                label: "Key passphrase",
                kind: SecretKind::Password,
                help: "Only if the private key is encrypted.",
            },
        ],
        default_config,
        error_codes,
        oauth_provider: None,
    }
}

/// The codes only an EAB Notes export writes.
const EAB_ERROR_CODES: &[ferry_core::errors::ErrorCode] = ferry_core::error_codes! {
    "missing_crm_id" => "The contact has no CRM ID, so an EAB Notes export left its messages out (EAB attaches notes by the student's ID).", "Set the contact's CRM ID to the student's EAB ID (import, API or a CRM sync); messages after that are exported.";
};

/// Makes an `Option<T>` section's schema that of `T` (drops the `null` alternative).
fn strip_null(schema: &mut Value) {
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array).cloned() {
        let rest: Vec<Value> = any
            .into_iter()
            .filter(|s| s.get("type") != Some(&json!("null")))
            .collect();
        if let [only] = rest.as_slice() {
            // The field's own words (title, help, x-ferry-…) stay on it.
            let own: Vec<(String, Value)> = schema
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| *k != "anyOf")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            *schema = only.clone();
            for (k, v) in own {
                schema[k] = v;
            }
        }
    } else if let Some(types) = schema.get("type").and_then(Value::as_array).cloned() {
        let rest: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
        if let [only] = rest.as_slice() {
            schema["type"] = only.clone();
        }
    }
}

/// One SFTP export connector (one per [`ExportKind`]).
#[derive(Debug, Clone)]
pub struct SftpExport {
    kind: ExportKind,
    public_url: String,
    client: ClientOptions,
}

impl SftpExport {
    /// The connector for `kind`; message links start with `public_url` (`FERRY_PUBLIC_URL`).
    pub fn new(kind: ExportKind, public_url: impl Into<String>) -> Self {
        SftpExport {
            kind,
            public_url: public_url.into(),
            client: ClientOptions::default(),
        }
    }

    /// The same connector with other SFTP client settings (tests shorten the timeouts).
    pub fn with_client_options(mut self, client: ClientOptions) -> Self {
        self.client = client;
        self
    }

    fn config(&self, config: &Value) -> Result<ExportConfig, RunError> {
        ExportConfig::parse(self.kind, config)
            .map_err(|e| RunError::fatal(format!("the integration's settings are invalid: {e}")))
    }
}

#[async_trait]
impl Connector for SftpExport {
    fn kind(&self) -> &'static str {
        self.kind.kind()
    }

    fn label(&self) -> &'static str {
        self.kind.label()
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
        ExportConfig::parse(self.kind, config).map(|_| ())
    }

    fn config_errors(&self, config: &Value) -> Vec<ConfigError> {
        match crate::connector::parse_config::<ExportConfig>(config) {
            Ok(c) => c.problems(self.kind),
            Err(e) => vec![e],
        }
    }

    fn schedule(&self, config: &Value) -> Option<Schedule> {
        ExportConfig::parse(self.kind, config)
            .ok()
            .map(|c| c.schedule())
    }

    fn describe(&self) -> Description {
        describe(self.kind)
    }

    /// `user@host:directory` (the port when it is not 22).
    fn instance_summary(&self, config: &Value) -> Option<String> {
        let s = config.get("sftp")?;
        let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").trim();
        let host = text("host");
        if host.is_empty() {
            return None;
        }
        let port = match s.get("port").and_then(Value::as_u64) {
            Some(p) if p != u64::from(ferry_sftp::DEFAULT_PORT) => format!(":{p}"),
            _ => String::new(),
        };
        let dir = match text("directory") {
            "" => String::new(),
            d => format!(":{d}"),
        };
        Some(format!("{}@{host}{port}{dir}", text("username")))
    }

    /// A new host or port is a new server: its key is pinned afresh at the next connection,
    /// unless the change pins one itself.
    fn on_config_change(&self, old: &Value, new: &mut Value) {
        let at = |v: &Value, p: &str| v.pointer(p).cloned();
        let moved = at(old, "/sftp/host") != at(new, "/sftp/host")
            || at(old, "/sftp/port").unwrap_or(json!(22))
                != at(new, "/sftp/port").unwrap_or(json!(22));
        if moved
            && at(old, "/sftp/host_key") == at(new, "/sftp/host_key")
            && let Some(sftp) = new.get_mut("sftp").and_then(Value::as_object_mut)
        {
            sftp.remove("host_key");
        }
    }

    fn validate_secrets(&self, _config: &Value, secrets: &Secrets) -> Result<(), ConfigError> {
        let key = secrets
            .expose("private_key")
            .filter(|k| !k.trim().is_empty());
        if key.is_none() && secrets.expose("password").is_none_or(str::is_empty) {
            return Err(ConfigError::new(
                "secrets",
                "enter a password or a private key (with its passphrase, if it has one)",
            ));
        }
        // Read the key now, as a run would, so that a bad key fails the save, not the run.
        if let Some(key) = key {
            let passphrase = secrets.expose("passphrase").filter(|p| !p.is_empty());
            ferry_sftp::check_private_key(key, passphrase).map_err(|e| {
                let field = match e.code() {
                    "sftp_key_passphrase_required" | "sftp_key_wrong_passphrase" => {
                        "secrets.passphrase"
                    }
                    _ => "secrets.private_key",
                };
                ConfigError::new(field, e.to_string()).with_code(e.code())
            })?;
        }
        Ok(())
    }

    async fn test_connection(&self, ctx: &ConnectorContext) -> Result<ConnectionReport, RunError> {
        let config = self.config(&ctx.config)?;
        let session = client::connect(&config, &ctx.secrets, &self.client)
            .await
            .map_err(|e| client::run_error(&e))?;
        let fingerprint = session.host_key_fingerprint().to_string();
        session
            .test(config.directory())
            .await
            .map_err(|e| client::run_error(&e))?;
        let _ = session.close().await;
        let place = match config.directory() {
            Some(d) => format!("the directory \"{d}\""),
            None => "the login directory".to_string(),
        };
        Ok(ConnectionReport {
            message: format!(
                "Connected to {}:{} as {}; {place} is writable.",
                config.sftp.host.trim(),
                config.sftp.port,
                config.sftp.username
            ),
            detail: json!({ "host_key": fingerprint }),
        })
    }

    /// Pins the server's host key when none is pinned (OpenSSH's accept-new).
    async fn after_connection_test(
        &self,
        ctx: &ConnectorContext,
        report: &ConnectionReport,
    ) -> Result<(), RunError> {
        let (Some(store), Some(id), Some(fp)) = (
            ctx.store.as_ref(),
            ctx.integration_id,
            report.detail.get("host_key").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        pin_host_key(store, ctx.institution_id, id, fp).await
    }

    /// The file, the contacts left out for want of a CRM ID, and for a Skipped run whether
    /// nothing was new or the filters left every message (or contact) out.
    fn explain_run(&self, config: &Value, status: RunStatus, detail: &Value) -> RunExplanation {
        let missing = detail.get("missing_crm_id").and_then(Value::as_i64);
        let mut e = RunExplanation {
            file: detail
                .get("file")
                .and_then(Value::as_str)
                .map(str::to_string),
            skipped: missing,
            ..Default::default()
        };
        if status != RunStatus::Skipped {
            return e;
        }
        let parsed = ExportConfig::parse(self.kind, config).ok();
        let window = |k: &str| {
            detail
                .pointer(&format!("/window/{k}"))
                .and_then(Value::as_i64)
        };
        e.skipped_because = Some(
            match (
                self.kind,
                window("after_sequence"),
                window("up_to_sequence"),
            ) {
                (ExportKind::Contacts, _, _) => {
                    match parsed.as_ref().and_then(|c| c.contacts.as_ref()) {
                        Some(c) if !c.filters.is_empty() => format!(
                            "No contact passed the export's filters ({}), so no file was sent.",
                            c.filters
                                .iter()
                                .map(|f| format!("{} is {}", f.field, f.values.join(" or ")))
                                .collect::<Vec<_>>()
                                .join("; and ")
                        ),
                        _ => "There were no contacts to send (test users are never sent)."
                            .to_string(),
                    }
                }
                (_, Some(after), Some(top)) if top <= after => {
                    "Nothing new: there were no new messages since the last run.".to_string()
                }
                (_, Some(after), Some(top)) => {
                    let filters = parsed
                        .as_ref()
                        .map(run::describe_filters)
                        .unwrap_or_else(|| "the export's filters".to_string());
                    let mut why = format!(
                        "None of the {} new messages since the last run passed the filters ({filters})",
                        top - after
                    );
                    if let Some(n) = missing.filter(|n| *n > 0) {
                        why.push_str(&format!(
                        ", or their {n} contacts had no CRM ID (see the Sync Log's missing_crm_id rows)"
                    ));
                    }
                    why.push('.');
                    why
                }
                _ => "There was nothing new to send.".to_string(),
            },
        );
        e
    }

    fn previews(&self) -> bool {
        true
    }

    async fn preview(
        &self,
        store: &ferry_store::Store,
        integration: &ferry_store::Integration,
        rows: usize,
    ) -> Result<Option<RunPreview>, RunError> {
        let config = self.config(&integration.config)?;
        run::preview(
            self.kind,
            &config,
            store,
            integration,
            &self.public_url,
            rows,
        )
        .await
        .map(Some)
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, RunError> {
        let config = self.config(ctx.config())?;
        run::run(
            self.kind,
            &config,
            ctx,
            &run::RunSettings {
                public_url: &self.public_url,
                client: &self.client,
            },
        )
        .await
    }
}
