//! Bulk File Upload (seed 003), `type: "bulk_upload"`, category inbound files: institutions
//! upload contacts and calls files (and call recordings) to Ferry's own SFTP server; each file
//! that completes gets a run (trigger `file_arrived`) that reads it with the template of its
//! folder and name, and the daily run (or Run now) applies retention.
//!
//! One instance per institution holds the settings (retention, the wait for recordings); the
//! templates live in the store (`/api/v1/bulk-templates`). The files are read from the vault the
//! SFTP server wrote them to, and reports and quarantine notes are written back into the
//! account's folders the same way, encrypted.

pub mod config;
mod ingest;
mod retention;

use async_trait::async_trait;
use ferry_core::run::Trigger;
use ferry_core::schedule::Schedule;
use ferry_vault::Vault;
use serde_json::{Value, json};

pub use config::BulkUploadConfig;

use crate::connector::{ConfigError, ConnectionReport, Connector, RunError, RunReport};
use crate::context::{ConnectorContext, RunContext};
use crate::describe::{Category, Description, Platform, schema_of};

/// The platform card.
pub const PLATFORM: Platform = Platform {
    id: "bulk-file-upload",
    name: "Bulk File Upload",
    summary: "For systems without an API: the institution uploads contacts and calls (with their recordings) to Ferry's own SFTP server, encrypted as they land (AES-256). Each file is read with the template set up from a sample, ingested as a run, and answered with a report in the account's reports/ folder; files that do not fit go to quarantine/ with the reason.",
    page: Some("/settings/bulk-files"),
};

/// The codes a bulk file run writes to its report, its error or the Sync Log.
pub const ERROR_CODES: &[ferry_core::errors::ErrorCode] = ferry_core::error_codes! {
    "bulk_no_template" => "An uploaded file fits no template: no template has its folder and a file-name mask that matches its name. It was moved to quarantine/.", "Upload it to the folder of its template under a name that fits the mask, or set up a template for it (Inbound files > Bulk File Upload > Setup from a sample).";
    "bulk_template_mismatch" => "An uploaded file's columns differ from its template (a required column is missing, or the required columns are out of the agreed order), or it cannot be read with the template's encoding. The whole file was refused and moved to quarantine/.", "Export the file again with the columns in the agreed order (the reason names the difference), then upload it again.";
    "call_contact_not_found" => "A call's CRM ID or phone matches no contact of the institution, so the call was skipped.", "Import the contact first (a contacts file, or the contacts import), then upload the calls file again: calls already taken are not duplicated.";
    "call_invalid_value" => "A cell of a calls file could not be read (a direction, time, duration or recording name), so the call was skipped.", "Correct the cell the report names, then upload the file again.";
    "recording_missing" => "A call's recording did not arrive within the wait set for the instance.", "Upload the recording under the name the calls file gives, beside the calls file; it is attached when it arrives.";
};

/// The inbound-files connector. It holds the vault the SFTP server writes to; without one (a
/// registry built for tests of other parts) its runs fail with a clear reason.
#[derive(Clone, Default)]
pub struct BulkUpload {
    vault: Option<Vault>,
}

impl std::fmt::Debug for BulkUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkUpload")
            .field("vault", &self.vault.is_some())
            .finish()
    }
}

impl BulkUpload {
    /// The connector, reading files from `vault`.
    pub fn new(vault: Vault) -> BulkUpload {
        BulkUpload { vault: Some(vault) }
    }

    fn vault(&self) -> Result<&Vault, RunError> {
        self.vault.as_ref().ok_or_else(|| {
            RunError::fatal("this Ferry process has no file storage for uploaded files; run the worker with ferry serve or ferry worker")
        })
    }

    fn config(config: &Value) -> Result<BulkUploadConfig, RunError> {
        BulkUploadConfig::parse(config)
            .map_err(|e| RunError::fatal(format!("the instance's settings are invalid: {e}")))
    }
}

#[async_trait]
impl Connector for BulkUpload {
    fn kind(&self) -> &'static str {
        "bulk_upload"
    }

    fn label(&self) -> &'static str {
        "Bulk file"
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
        BulkUploadConfig::parse(config).map(|_| ())
    }

    fn schedule(&self, config: &Value) -> Option<Schedule> {
        BulkUploadConfig::parse(config)
            .ok()
            .map(|c| Schedule::Blocks(vec![c.retention_block]))
    }

    fn takes_uploaded_files(&self) -> bool {
        true
    }

    fn describe(&self) -> Description {
        Description {
            kind: self.kind(),
            label: self.label(),
            title: "Bulk File Upload",
            summary: "Ingests the contacts and calls files (with recordings) the institution uploads to Ferry's SFTP server, one run per file, and deletes calls nobody reviewed after the retention period.",
            category: Category::InboundFiles,
            platform: PLATFORM,
            config_schema: schema_of::<BulkUploadConfig>(),
            secrets: Vec::new(),
            default_config: serde_json::to_value(BulkUploadConfig::default())
                .unwrap_or_else(|_| json!({})),
            error_codes: ERROR_CODES.to_vec(),
            oauth_provider: None,
        }
    }

    fn instance_summary(&self, config: &Value) -> Option<String> {
        let c = BulkUploadConfig::parse(config).ok()?;
        Some(if c.retention_days == 0 {
            "files and calls are kept".to_string()
        } else {
            format!("unreviewed calls deleted after {} days", c.retention_days)
        })
    }

    async fn test_connection(&self, ctx: &ConnectorContext) -> Result<ConnectionReport, RunError> {
        let store = ctx
            .store
            .as_ref()
            .ok_or_else(|| RunError::fatal("no store in this context"))?;
        let accounts = store.sftp_accounts(ctx.institution_id).await?;
        let templates = store.bulk_templates(ctx.institution_id).await?;
        Ok(ConnectionReport {
            message: format!(
                "{} SFTP account(s) ({} enabled) and {} template(s) are set up.",
                accounts.len(),
                accounts.iter().filter(|a| a.enabled).count(),
                templates.len()
            ),
            detail: json!({"accounts": accounts.len(), "templates": templates.len()}),
        })
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, RunError> {
        let cfg = Self::config(ctx.config())?;
        let vault = self.vault()?;
        match ctx.run().trigger {
            Trigger::FileArrived => ingest::run_file(ctx, vault, &cfg).await,
            _ => retention::run(ctx, vault, &cfg).await,
        }
    }
}
