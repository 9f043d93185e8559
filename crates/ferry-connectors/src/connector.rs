//! The [`Connector`] trait and the values that cross it.

use async_trait::async_trait;
use ferry_core::run::RunStatus;
use ferry_core::schedule::Schedule;
use ferry_store::StoreError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::{ConnectorContext, RunContext, Secrets};
use crate::describe::Description;
use crate::explain::{RunExplanation, RunPreview};

/// One kind of integration: how its config is checked, when it runs, and the run itself.
///
/// Implementations are stateless apart from shared clients or caches: one value serves every
/// integration instance of its kind, and several runs (of different instances) may use it at once.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The stable identifier stored with each integration, e.g. `eab_notes_export`: lowercase
    /// letters, digits and underscores.
    fn kind(&self) -> &'static str;

    /// The name people see, e.g. `EAB Notes` (the Type column of Recent Runs).
    fn label(&self) -> &'static str;

    /// Checks an integration's config before it is stored, naming the field that is wrong.
    fn validate_config(&self, config: &Value) -> Result<(), ConfigError>;

    /// Every problem of a config, each on its field, so that a form can show them all at once;
    /// empty when [`validate_config`](Connector::validate_config) accepts it. The default
    /// reports the first problem only.
    fn config_errors(&self, config: &Value) -> Vec<ConfigError> {
        self.validate_config(config).err().into_iter().collect()
    }

    /// When an integration with this (valid) config runs by itself; `None` when it runs only
    /// when triggered (manually or on change).
    fn schedule(&self, _config: &Value) -> Option<Schedule> {
        None
    }

    /// Whether an enabled instance runs soon after contacts change: the worker queues a run
    /// with trigger `change` when the institution's change sequence passes the instance's
    /// [`change_watermark`](Connector::change_watermark).
    fn runs_on_change(&self) -> bool {
        false
    }

    /// Whether an enabled instance ingests the files its institution uploads to Ferry's own
    /// SFTP server: the worker queues a run with trigger `file_arrived` for each file that
    /// completes (one run per file, ever).
    fn takes_uploaded_files(&self) -> bool {
        false
    }

    /// For a kind that runs on change: the contact change sequence an instance has sent, read
    /// from its state (the connector's own state struct, see [`RunContext::state`]). `None`
    /// when it has sent nothing yet.
    fn change_watermark(&self, _state: &Value) -> Option<i64> {
        None
    }

    /// What this kind says about itself: label, category, platform card, config schema,
    /// secrets, default config, error codes and OAuth provider. The registry asks once, when
    /// the kind is registered; screens, the API's schema and the error dictionary read it.
    fn describe(&self) -> Description;

    /// A short line on where an instance with this config sends or reads, for the list of
    /// instances (e.g. `eab@sftp.example.edu:inbox`); `None` when there is nothing to say.
    fn instance_summary(&self, _config: &Value) -> Option<String> {
        None
    }

    /// The OAuth provider that connects this kind's accounts (its id is the description's
    /// `oauth_provider`), if it has one.
    fn oauth_provider(&self) -> Option<std::sync::Arc<dyn crate::describe::OAuthProvider>> {
        None
    }

    /// Adjusts a changed config before it is validated and saved, e.g. forgetting a pinned host
    /// key when the host changes. `old` is the saved config.
    fn on_config_change(&self, _old: &Value, _new: &mut Value) {}

    /// Checks the secrets as they will be once the change being saved is applied (e.g. "a
    /// password or a private key", or that a private key can be read), without the remote.
    fn validate_secrets(&self, _config: &Value, _secrets: &Secrets) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Checks a config against the remote and the institution's fields before it is saved (e.g.
    /// a data mapping against the CRM's properties). `schema` holds the institution's fields.
    async fn check_with_remote(
        &self,
        _ctx: &ConnectorContext,
        _schema: &ferry_core::contact::FieldSchema,
    ) -> Result<(), ConfigError> {
        Ok(())
    }

    /// The remote's fields that a data mapping pairs with Ferry's (the mapping screen's
    /// dropdowns), read with the credentials in `ctx` (an account in `config.account_id` or a
    /// token in the secrets); the rest of the config need not be complete. `None` for a
    /// connector without a data mapping.
    async fn remote_properties(
        &self,
        _ctx: &ConnectorContext,
    ) -> Result<Option<Vec<ferry_core::mapping::RemoteProperty>>, RunError> {
        Ok(None)
    }

    /// Checks that the remote can be reached and the credentials work, without changing
    /// anything (the Test Connection button).
    async fn test_connection(&self, ctx: &ConnectorContext) -> Result<ConnectionReport, RunError>;

    /// Called after a successful [`test_connection`](Connector::test_connection) of a saved
    /// integration's saved settings (`ctx.integration_id` is set), to record what the test
    /// learned, e.g. pinning an SFTP server's host key when none is pinned.
    async fn after_connection_test(
        &self,
        _ctx: &ConnectorContext,
        _report: &ConnectionReport,
    ) -> Result<(), RunError> {
        Ok(())
    }

    /// A finished run of this kind in words for its details page: its counts, its file and,
    /// for a Skipped run, why (nothing new, or every contact filtered out, and by which filter).
    /// The default reads the usual keys of the run's detail (`created`, `updated`, `skipped`,
    /// `filtered`, `failed`, `file`) and the config's contact `filters`.
    fn explain_run(&self, config: &Value, status: RunStatus, detail: &Value) -> RunExplanation {
        crate::explain::default_explanation(config, status, detail)
    }

    /// The synchronization report of a run of this kind, read from the run's detail: the
    /// metrics people check after a sync (pulled, created, updated, skipped by reason, pushed,
    /// errors). `None` (the default) for a kind without one.
    fn sync_report(&self, _detail: &Value) -> Option<crate::explain::SyncReport> {
        None
    }

    /// Whether [`preview`](Connector::preview) can say what the next run would send (the
    /// screens then offer Preview next run).
    fn previews(&self) -> bool {
        false
    }

    /// What the next run of `integration` would send, worked out from the store without
    /// contacting the remote, sending anything or changing the integration's state. `rows`
    /// caps the messages and file rows returned. `None` for a kind that cannot say (the
    /// default).
    async fn preview(
        &self,
        _store: &ferry_store::Store,
        _integration: &ferry_store::Integration,
        _rows: usize,
    ) -> Result<Option<RunPreview>, RunError> {
        Ok(None)
    }

    /// Performs one run. Check [`RunContext::is_cancelled`] between units of work and stop early
    /// when it is set: return a report for the work that is complete, or
    /// [`RunError::cancelled`] to have the run queued again.
    async fn run(&self, ctx: &RunContext) -> Result<RunReport, RunError>;
}

/// Why a config is invalid, for one field (a dotted path such as `schedule.blocks` for nested
/// values, or `config` for the whole object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field that is wrong.
    pub field: String,
    /// What is wrong with it and what is expected, in words for the person editing the config.
    pub message: String,
    /// The error dictionary code: `invalid_value` unless a more specific one applies.
    pub code: &'static str,
}

impl ConfigError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
            code: "invalid_value",
        }
    }

    /// The same error with a more specific error dictionary code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

/// Deserializes a connector's config struct, turning serde's error into a [`ConfigError`].
///
/// Unknown, missing and repeated fields are reported on the field they name; other problems
/// (a wrong type, say) on `config`, with serde's description.
pub fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T, ConfigError> {
    if !config.is_object() {
        return Err(ConfigError::new(
            "config",
            "the config must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let named = ["unknown field `", "missing field `", "duplicate field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
            .filter(|name| !name.is_empty());
        // `path` is where serde was ("." at the top); a named field is inside it unless the
        // path already ends with it.
        let inside = (path != ".").then_some(path.as_str());
        let field = match (inside, named) {
            (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => p.to_string(),
            (Some(p), Some(n)) => format!("{p}.{n}"),
            (None, Some(n)) => n.to_string(),
            (Some(p), None) => p.to_string(),
            (None, None) => "config".to_string(),
        };
        ConfigError::new(field, message)
    })
}

/// How a run that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStatus {
    /// The run did its work.
    Success,
    /// The run found nothing to do (e.g. no changed contacts since the last export).
    Skipped,
}

impl ReportStatus {
    /// The run status recorded for it.
    pub fn run_status(self) -> RunStatus {
        match self {
            ReportStatus::Success => RunStatus::Success,
            ReportStatus::Skipped => RunStatus::Skipped,
        }
    }
}

/// What a finished run reports; becomes the run row in Recent Runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Success or Skipped.
    pub status: ReportStatus,
    /// Rows (contacts, notes, file lines) the run moved.
    pub rows: i64,
    /// Connector-specific facts, e.g. `{"file": "notes_20260701.csv"}`; `{}` for none.
    pub detail: Value,
}

impl RunReport {
    /// A successful run that moved `rows` rows.
    pub fn success(rows: i64) -> Self {
        RunReport {
            status: ReportStatus::Success,
            rows,
            detail: Value::Object(Default::default()),
        }
    }

    /// A run that found nothing to do.
    pub fn skipped() -> Self {
        RunReport {
            status: ReportStatus::Skipped,
            rows: 0,
            detail: Value::Object(Default::default()),
        }
    }

    /// The same report with `detail`.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Why a run (or a connection test) failed.
///
/// The reason is shown to the institution's admins (on hover in Recent Runs): write it for them,
/// say what to do next where possible, and never put secrets or internal details in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RunError {
    /// A human-readable explanation.
    pub reason: String,
    /// Whether trying again later may succeed (a timeout, a 5xx, a dropped connection), as
    /// opposed to a problem that needs a person (bad credentials, a rejected config).
    pub retryable: bool,
    /// The remote refused the credentials (an alert can tell someone to reconnect).
    pub credentials_refused: bool,
}

impl RunError {
    /// A failure that trying again will not fix.
    pub fn fatal(reason: impl Into<String>) -> Self {
        RunError {
            reason: reason.into(),
            retryable: false,
            credentials_refused: false,
        }
    }

    /// The remote refused the credentials: a person must enter or reconnect them.
    pub fn credentials_refused(reason: impl Into<String>) -> Self {
        RunError {
            reason: reason.into(),
            retryable: false,
            credentials_refused: true,
        }
    }

    /// A failure that may go away when tried again.
    pub fn retryable(reason: impl Into<String>) -> Self {
        RunError {
            reason: reason.into(),
            retryable: true,
            credentials_refused: false,
        }
    }

    /// The run stopped early because it was asked to ([`RunContext::is_cancelled`]). It is
    /// retryable: a worker that is shutting down gives such a run back to the queue.
    pub fn cancelled() -> Self {
        RunError::retryable("the run was stopped before it finished")
    }
}

impl From<StoreError> for RunError {
    /// Store failures are logged in full here and reported to people without internals.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Crypto(_) => RunError::fatal(
                "the integration's secrets could not be decrypted; enter them again (was the master key changed?)",
            ),
            StoreError::Db(e) => {
                tracing::error!(error = %e, "store error during a run");
                RunError::retryable(
                    "internal error while using Ferry's database; see the server log",
                )
            }
            other => {
                tracing::error!(error = %other, "store error during a run");
                RunError::fatal("internal error while using Ferry's database; see the server log")
            }
        }
    }
}

/// The result of a successful connection test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConnectionReport {
    /// What was checked, for people, e.g. `Connected to sftp.example.edu as ferry; /outbox is writable`.
    pub message: String,
    /// Connector-specific facts (server banner, account name); `{}` for none.
    pub detail: Value,
}

impl ConnectionReport {
    /// A report with `message` and no detail.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectionReport {
            message: message.into(),
            detail: Value::Object(Default::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        host: String,
        #[serde(default)]
        port: u16,
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = parse_config::<Cfg>(&json!({"host": "h", "prot": 22})).unwrap_err();
        assert_eq!(e.field, "prot");
        assert!(e.message.contains("unknown field"), "{e}");
        let e = parse_config::<Cfg>(&json!({"port": 22})).unwrap_err();
        assert_eq!(e.field, "host");
        let e = parse_config::<Cfg>(&json!({"host": "h", "port": "x"})).unwrap_err();
        assert_eq!(e.field, "port");
        assert!(e.message.contains("invalid type"), "{e}");
        let e = parse_config::<Cfg>(&json!([1])).unwrap_err();
        assert_eq!(e.field, "config");
        assert!(parse_config::<Cfg>(&json!({"host": "h"})).is_ok());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        sftp: Cfg,
    }

    #[test]
    fn nested_config_errors_name_the_whole_path() {
        let e =
            parse_config::<Outer>(&json!({"sftp": {"host": "h", "hostname": "x"}})).unwrap_err();
        assert_eq!(e.field, "sftp.hostname", "{e}");
        let e = parse_config::<Outer>(&json!({"sftp": {"port": 2}})).unwrap_err();
        assert_eq!(e.field, "sftp.host", "{e}");
        let e = parse_config::<Outer>(&json!({"sftp": {"host": "h", "port": 99999}})).unwrap_err();
        assert_eq!(e.field, "sftp.port", "{e}");
        let e = parse_config::<Outer>(&json!({})).unwrap_err();
        assert_eq!(e.field, "sftp", "{e}");
    }

    #[test]
    fn store_errors_hide_internals() {
        let e = RunError::from(StoreError::Db(sqlx::Error::Protocol(
            "relation secret-table-name does not exist".into(),
        )));
        assert!(e.retryable);
        assert!(!e.reason.contains("secret-table-name"), "{e}");
        let e = RunError::from(StoreError::Crypto("tag mismatch".into()));
        assert!(!e.retryable && e.reason.contains("decrypted"));
        assert!(RunError::cancelled().retryable);
    }
}
