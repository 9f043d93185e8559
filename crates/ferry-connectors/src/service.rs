//! The integration lifecycle: create, change, delete, enable or disable, Test Connection and
//! Run now. The REST API, the screens and `ferry demo` all go through [`IntegrationService`], so
//! that every path validates the config, merges write-only secrets, applies
//! [`Connector::on_config_change`] and checks with the remote the same way before it stores.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::run::{RunStatus, Trigger};
use ferry_store::{
    Integration, IntegrationUpdate, NewIntegration, NewRun, RunQuery, Store, StoreError,
};
use serde_json::{Map, Value};

use crate::connector::{ConfigError, Connector};
use crate::context::{ConnectorContext, Secrets};
use crate::registry::{Registry, ValidateError};

/// How long a save waits for the remote check (and Test Connection for the remote) by default.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(15);

/// The error dictionary code of a remote that did not answer in time.
pub const REMOTE_TIMEOUT: &str = "remote_timeout";

/// The longest name.
const MAX_NAME: usize = 200;
/// The longest description.
const MAX_DESCRIPTION: usize = 2000;
/// The longest secret value (a 16k-bit RSA key is about 12 KB).
const MAX_SECRET: usize = 32 * 1024;

/// Why a lifecycle call was refused. Nothing was stored when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A value is wrong; `field` is a path such as `name`, `type`, `config.sftp.host` or
    /// `secrets.password`.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// The error dictionary code.
        code: &'static str,
        /// What is wrong, for the person editing.
        message: String,
    },
    /// No such integration in this institution.
    #[error("no such integration in this institution")]
    NotFound,
    /// The remote did not answer within the bound; nothing was saved.
    #[error(
        "the remote system did not answer within {} s, so nothing was saved; try again later, or check that the remote is reachable",
        .waited.as_secs_f64()
    )]
    RemoteTimedOut {
        /// How long the check waited.
        waited: Duration,
    },
    /// The store failed (or refused the change, e.g. a conflict).
    #[error(transparent)]
    Store(StoreError),
    /// Something that is not the caller's fault, e.g. a connector hook that failed.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// An invalid value.
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ServiceError::Invalid {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    /// The error dictionary code of this error (`internal` for store and internal failures).
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Invalid { code, .. } => code,
            ServiceError::NotFound => "not_found",
            ServiceError::RemoteTimedOut { .. } => REMOTE_TIMEOUT,
            ServiceError::Store(_) | ServiceError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Invalid {
                field,
                code,
                message,
            } => ServiceError::Invalid {
                field,
                code,
                message,
            },
            other => ServiceError::Store(other),
        }
    }
}

impl From<ValidateError> for ServiceError {
    fn from(e: ValidateError) -> Self {
        match e {
            ValidateError::UnknownKind { .. } => {
                ServiceError::invalid("type", "invalid_value", e.to_string())
            }
            ValidateError::Config(c) => c.into(),
        }
    }
}

impl From<ConfigError> for ServiceError {
    /// A connector's field is relative to the config; secrets keep their own prefix.
    fn from(c: ConfigError) -> Self {
        let field =
            if c.field == "secrets" || c.field.starts_with("secrets.") || c.field == "config" {
                c.field
            } else {
                format!("config.{}", c.field)
            };
        ServiceError::invalid(field, c.code, c.message)
    }
}

/// A new integration.
#[derive(Debug, Clone, Default)]
pub struct NewIntegrationInput {
    /// The connector kind.
    pub kind: String,
    /// The name people see.
    pub name: String,
    /// A longer description.
    pub description: String,
    /// Whether it runs on its schedule.
    pub enabled: bool,
    /// The kind's configuration.
    pub config: Value,
    /// Secret values by name; an empty string or `null` means not given.
    pub secrets: Map<String, Value>,
}

/// A change to an integration: parts left out stay as they are.
#[derive(Debug, Clone, Default)]
pub struct IntegrationChange {
    /// A new name.
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// On or off.
    pub enabled: Option<bool>,
    /// A JSON merge patch (RFC 7386) over the saved config.
    pub config: Option<Value>,
    /// Secrets to set (a string) or remove (`null`); an empty string means not given.
    pub secrets: Option<Map<String, Value>>,
}

/// The values a Test Connection uses.
#[derive(Debug, Clone)]
pub struct ConnectionTest {
    /// The connector kind.
    pub kind: String,
    /// The saved integration, if there is one.
    pub integration_id: Option<i64>,
    /// The whole config to test.
    pub config: Value,
    /// The whole set of secrets to test with (empty strings and `null`s are left out).
    pub secrets: Map<String, Value>,
    /// Whether these are the integration's saved settings, unchanged: only then may the
    /// connector record what it learned ([`Connector::after_connection_test`]).
    pub saved_settings: bool,
}

/// A Test Connection's outcome; a failed test is an outcome too.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    /// Whether the remote was reached and the credentials work.
    pub ok: bool,
    /// What was checked, or why it failed.
    pub message: String,
    /// Connector-specific facts of a successful test (e.g. `host_key`); `{}` otherwise.
    pub detail: Value,
}

/// The integration lifecycle over a store and the connectors. Cheap to clone.
#[derive(Clone)]
pub struct IntegrationService {
    store: Store,
    registry: Registry,
    remote_timeout: Duration,
}

impl IntegrationService {
    /// A service whose remote checks wait [`DEFAULT_REMOTE_TIMEOUT`].
    pub fn new(store: Store, registry: Registry) -> Self {
        IntegrationService {
            store,
            registry,
            remote_timeout: DEFAULT_REMOTE_TIMEOUT,
        }
    }

    /// The same service with another bound on remote checks.
    pub fn with_remote_timeout(mut self, timeout: Duration) -> Self {
        self.remote_timeout = timeout;
        self
    }

    /// The bound on remote checks.
    pub fn remote_timeout(&self) -> Duration {
        self.remote_timeout
    }

    /// The connectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Validates and stores a new integration.
    pub async fn create(
        &self,
        institution_id: i64,
        input: NewIntegrationInput,
    ) -> Result<Integration, ServiceError> {
        check_text("name", &input.name, MAX_NAME, true)?;
        check_text("description", &input.description, MAX_DESCRIPTION, false)?;
        self.registry.validate(&input.kind, &input.config)?;
        self.check_references(institution_id, &input.kind, &input.config)
            .await?;
        let secrets = drop_empty(input.secrets);
        self.check_secrets(&input.kind, &secrets)?;
        let secrets: Map<String, Value> =
            secrets.into_iter().filter(|(_, v)| !v.is_null()).collect();
        self.registry.validate_secrets_set(
            &input.kind,
            &input.config,
            &Secrets::from_json(secrets.clone()),
        )?;
        self.check_remote(
            institution_id,
            &input.kind,
            None,
            &input.config,
            secrets.clone(),
        )
        .await?;
        Ok(self
            .store
            .create_integration(
                institution_id,
                NewIntegration {
                    kind: input.kind,
                    name: input.name.trim().to_string(),
                    description: input.description.trim().to_string(),
                    enabled: input.enabled,
                    config: input.config,
                    secrets: Some(secrets),
                },
            )
            .await?)
    }

    /// Every problem a save of these values would meet that can be found without the remote,
    /// each on its field, so that a form can show them all at once: the name and description,
    /// every problem of the config, the secrets' names and sizes, then (when the config is
    /// valid) whether the secrets suffice. `config` is the whole config to save; for a saved
    /// integration (`id`) the connector's [`Connector::on_config_change`] applies first and
    /// `secrets` changes the saved ones (a value sets, `null` removes, `""` keeps). Empty:
    /// only the remote's check is left, which [`IntegrationService::create`] and
    /// [`IntegrationService::update`] make.
    #[allow(clippy::too_many_arguments)]
    pub async fn problems(
        &self,
        institution_id: i64,
        kind: &str,
        id: Option<i64>,
        name: &str,
        description: &str,
        config: &Value,
        secrets: &Map<String, Value>,
    ) -> Result<Vec<ServiceError>, ServiceError> {
        let mut out = Vec::new();
        if let Err(e) = check_text("name", name, MAX_NAME, true) {
            out.push(e);
        }
        if let Err(e) = check_text("description", description, MAX_DESCRIPTION, false) {
            out.push(e);
        }
        let mut config = config.clone();
        if let Some(id) = id {
            let current = self.store.integration(institution_id, id).await?;
            if current.kind != kind {
                return Err(ServiceError::NotFound);
            }
            if let Some(c) = self.registry.get(kind) {
                c.on_config_change(&current.config, &mut config);
            }
        }
        let config_ok = match self.registry.validate_all(kind, &config) {
            Ok(errors) => {
                let ok = errors.is_empty();
                out.extend(errors.into_iter().map(ServiceError::from));
                ok
            }
            Err(e) => {
                out.push(e.into());
                false
            }
        };
        if config_ok {
            match self.check_references(institution_id, kind, &config).await {
                Ok(()) => {}
                Err(e @ ServiceError::Invalid { .. }) => out.push(e),
                Err(e) => return Err(e),
            }
        }
        let secrets = drop_empty(secrets.clone());
        match self.check_secrets(kind, &secrets) {
            Err(e) => out.push(e),
            Ok(()) if config_ok => {
                let all = match id {
                    Some(id) => self.secrets_with(institution_id, id, secrets).await?,
                    None => secrets.into_iter().filter(|(_, v)| !v.is_null()).collect(),
                };
                if let Err(e) =
                    self.registry
                        .validate_secrets_set(kind, &config, &Secrets::from_json(all))
                {
                    out.push(e.into());
                }
            }
            Ok(()) => {}
        }
        Ok(out)
    }

    /// Every problem [`IntegrationService::create`] would meet without asking the remote (see
    /// [`IntegrationService::problems`]): what an API answer lists when a create is refused.
    pub async fn create_problems(
        &self,
        institution_id: i64,
        input: &NewIntegrationInput,
    ) -> Result<Vec<ServiceError>, ServiceError> {
        self.problems(
            institution_id,
            &input.kind,
            None,
            &input.name,
            &input.description,
            &input.config,
            &input.secrets,
        )
        .await
    }

    /// Every problem [`IntegrationService::update`] would meet without asking the remote: the
    /// change's config patch is merged over the saved config first, and parts left out are
    /// the saved ones.
    pub async fn update_problems(
        &self,
        institution_id: i64,
        id: i64,
        change: &IntegrationChange,
    ) -> Result<Vec<ServiceError>, ServiceError> {
        let current = self.store.integration(institution_id, id).await?;
        let mut config = current.config.clone();
        if let Some(patch) = &change.config {
            merge_patch(&mut config, patch);
        }
        self.problems(
            institution_id,
            &current.kind,
            Some(id),
            change.name.as_deref().unwrap_or(&current.name),
            change
                .description
                .as_deref()
                .unwrap_or(&current.description),
            &config,
            &change.secrets.clone().unwrap_or_default(),
        )
        .await
    }

    /// Validates and applies a change; nothing is stored unless all of it is valid (and the
    /// remote accepted it, when the config or secrets change).
    pub async fn update(
        &self,
        institution_id: i64,
        id: i64,
        change: IntegrationChange,
    ) -> Result<Integration, ServiceError> {
        let current = self.store.integration(institution_id, id).await?;
        if let Some(name) = &change.name {
            check_text("name", name, MAX_NAME, true)?;
        }
        if let Some(d) = &change.description {
            check_text("description", d, MAX_DESCRIPTION, false)?;
        }
        let config = match &change.config {
            Some(patch) => {
                let mut config = current.config.clone();
                merge_patch(&mut config, patch);
                if let Some(c) = self.registry.get(&current.kind) {
                    c.on_config_change(&current.config, &mut config);
                }
                self.registry.validate(&current.kind, &config)?;
                self.check_references(institution_id, &current.kind, &config)
                    .await?;
                Some(config)
            }
            None => None,
        };
        let secrets = change.secrets.map(drop_empty);
        if let Some(s) = &secrets {
            self.check_secrets(&current.kind, s)?;
        }
        if config.is_some() || secrets.is_some() {
            let saved = self.store.integration_secrets(institution_id, id).await?;
            let all = apply_secrets(saved, secrets.clone().unwrap_or_default());
            if secrets.is_some() {
                self.registry.validate_secrets_set(
                    &current.kind,
                    config.as_ref().unwrap_or(&current.config),
                    &Secrets::from_json(all.clone()),
                )?;
            }
            let effective = config.as_ref().unwrap_or(&current.config);
            self.check_remote(institution_id, &current.kind, Some(id), effective, all)
                .await?;
        }
        Ok(self
            .store
            .update_integration(
                institution_id,
                id,
                IntegrationUpdate {
                    name: change.name.map(|n| n.trim().to_string()),
                    description: change.description.map(|d| d.trim().to_string()),
                    enabled: change.enabled,
                    config,
                    secrets: secrets.filter(|s| !s.is_empty()),
                },
            )
            .await?)
    }

    /// Turns an integration on or off.
    pub async fn set_enabled(
        &self,
        institution_id: i64,
        id: i64,
        enabled: bool,
    ) -> Result<Integration, ServiceError> {
        self.update(
            institution_id,
            id,
            IntegrationChange {
                enabled: Some(enabled),
                ..Default::default()
            },
        )
        .await
    }

    /// Deletes an integration and its runs (its Sync Log rows stay).
    pub async fn delete(&self, institution_id: i64, id: i64) -> Result<(), ServiceError> {
        Ok(self.store.delete_integration(institution_id, id).await?)
    }

    /// The values of a saved integration with unsaved changes over them: `config` a merge
    /// patch over the saved config, `secrets` set or removed over the saved ones. With neither,
    /// the saved settings themselves.
    pub async fn saved_test(
        &self,
        institution_id: i64,
        id: i64,
        config: Option<Value>,
        secrets: Option<Map<String, Value>>,
    ) -> Result<ConnectionTest, ServiceError> {
        let saved = self.store.integration(institution_id, id).await?;
        let saved_settings = config.is_none() && secrets.is_none();
        let mut merged = saved.config.clone();
        if let Some(p) = &config {
            merge_patch(&mut merged, p);
        }
        let secrets = self
            .secrets_with(institution_id, id, secrets.unwrap_or_default())
            .await?;
        Ok(ConnectionTest {
            kind: saved.kind,
            integration_id: Some(id),
            config: merged,
            secrets,
            saved_settings,
        })
    }

    /// The saved secrets of an integration with `changes` applied (set, or removed by `null`;
    /// empty strings are not given).
    pub async fn secrets_with(
        &self,
        institution_id: i64,
        id: i64,
        changes: Map<String, Value>,
    ) -> Result<Map<String, Value>, ServiceError> {
        let saved = self.store.integration_secrets(institution_id, id).await?;
        Ok(apply_secrets(saved, drop_empty(changes)))
    }

    /// Tests a connection, waiting at most the remote bound. A test of saved settings that
    /// succeeds lets the connector record what it learned (an SFTP server's host key).
    pub async fn test_connection(
        &self,
        institution_id: i64,
        test: ConnectionTest,
    ) -> Result<TestOutcome, ServiceError> {
        let secrets = drop_empty(test.secrets);
        self.check_secrets(&test.kind, &secrets)?;
        self.registry.validate(&test.kind, &test.config)?;
        let connector = self.connector(&test.kind)?;
        let ctx = ConnectorContext::new(
            institution_id,
            test.integration_id,
            test.config,
            Secrets::from_json(secrets),
        )
        .with_store(self.store.clone());
        let result =
            tokio::time::timeout(self.remote_timeout, connector.test_connection(&ctx)).await;
        Ok(match result {
            Ok(Ok(report)) => {
                if test.saved_settings && test.integration_id.is_some() {
                    connector
                        .after_connection_test(&ctx, &report)
                        .await
                        .map_err(|e| ServiceError::Internal(e.reason))?;
                }
                TestOutcome {
                    ok: true,
                    message: report.message,
                    detail: report.detail,
                }
            }
            Ok(Err(e)) => TestOutcome {
                ok: false,
                message: e.reason,
                detail: Value::Object(Map::new()),
            },
            Err(_) => TestOutcome {
                ok: false,
                message: format!(
                    "no answer from the remote system within {} s; check the address and that it is reachable, then test again",
                    self.remote_timeout.as_secs_f64()
                ),
                detail: Value::Object(Map::new()),
            },
        })
    }

    /// Queues a manual run (or finds the one already queued) and returns its id.
    pub async fn run_now(&self, institution_id: i64, id: i64) -> Result<i64, ServiceError> {
        let integration = self.store.integration(institution_id, id).await?;
        let queued = self
            .store
            .enqueue_run(&NewRun {
                institution_id,
                integration_id: id,
                kind: integration.kind.clone(),
                trigger: Trigger::Manual,
                scheduled_for: None,
            })
            .await?;
        if let Some(run) = queued {
            return Ok(run.id);
        }
        let existing = self
            .store
            .list_runs(
                institution_id,
                &RunQuery {
                    integration_id: Some(id),
                    status: Some(RunStatus::Queued),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await?;
        existing
            .first()
            .map(|r| r.id)
            .ok_or_else(|| ServiceError::Internal("a queued run was reported but not found".into()))
    }

    /// Checks that what a config names in the store exists in the institution: each field
    /// drawn with the `opt_in_path` widget names one of the institution's opt-in paths (or is
    /// empty).
    async fn check_references(
        &self,
        institution_id: i64,
        kind: &str,
        config: &Value,
    ) -> Result<(), ServiceError> {
        let Some(connector) = self.registry.get(kind) else {
            return Ok(());
        };
        let schema = connector.describe().config_schema;
        for path in widget_paths(&schema, "opt_in_path") {
            let pointer = format!("/{}", path.replace('.', "/"));
            let Some(v) = config.pointer(&pointer).filter(|v| !v.is_null()) else {
                continue;
            };
            let field = format!("config.{path}");
            let Some(id) = v.as_i64() else {
                return Err(ServiceError::invalid(
                    field,
                    "invalid_value",
                    "the ID of an opt-in path (GET /api/v1/opt-in-paths), or null for none",
                ));
            };
            match self.store.opt_in_path(institution_id, id).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    return Err(ServiceError::invalid(
                        field,
                        "invalid_value",
                        format!(
                            "there is no opt-in path {id} in this institution: choose one of Settings → Opt-in paths (GET /api/v1/opt-in-paths), or none"
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn connector(&self, kind: &str) -> Result<Arc<dyn Connector>, ServiceError> {
        self.registry
            .get(kind)
            .cloned()
            .ok_or_else(|| ServiceError::invalid("type", "invalid_value", "unknown kind"))
    }

    /// Checks secret values: strings (or `null` to remove), within the size limit, of names
    /// the kind takes.
    fn check_secrets(&self, kind: &str, secrets: &Map<String, Value>) -> Result<(), ServiceError> {
        self.registry
            .validate_secret_names(kind, secrets.keys().map(String::as_str))?;
        for (name, v) in secrets {
            let field = format!("secrets.{name}");
            match v {
                Value::Null => {}
                Value::String(s) if s.len() > MAX_SECRET => {
                    return Err(ServiceError::invalid(
                        field,
                        "invalid_value",
                        format!("longer than {MAX_SECRET} bytes"),
                    ));
                }
                Value::String(_) => {}
                _ => {
                    return Err(ServiceError::invalid(
                        field,
                        "invalid_value",
                        "a secret is a string (or null to remove it)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The connector's checks against the remote with the config and secrets about to be
    /// saved, within the bound: a remote that does not answer refuses the save.
    async fn check_remote(
        &self,
        institution_id: i64,
        kind: &str,
        integration_id: Option<i64>,
        config: &Value,
        secrets: Map<String, Value>,
    ) -> Result<(), ServiceError> {
        let connector = self.connector(kind)?;
        let schema = self.store.field_schema(institution_id).await?;
        let ctx = ConnectorContext::new(
            institution_id,
            integration_id,
            config.clone(),
            Secrets::from_json(secrets),
        )
        .with_store(self.store.clone());
        match tokio::time::timeout(
            self.remote_timeout,
            connector.check_with_remote(&ctx, &schema),
        )
        .await
        {
            Ok(r) => Ok(r?),
            Err(_) => Err(ServiceError::RemoteTimedOut {
                waited: self.remote_timeout,
            }),
        }
    }
}

/// The dotted config paths (`opt_in_path_id`, `a.b`) of the fields a config schema draws with
/// `widget` (`x-ferry-widget`), following `$ref`s into the schema's definitions.
fn widget_paths(schema: &Value, widget: &str) -> Vec<String> {
    fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .strip_prefix('#')
                .and_then(|p| root.pointer(p))
                .unwrap_or(s),
            None => s,
        }
    }
    fn walk(root: &Value, s: &Value, path: &str, widget: &str, out: &mut Vec<String>, depth: u8) {
        let s = resolve(root, s);
        if s.get("x-ferry-widget").and_then(Value::as_str) == Some(widget) {
            out.push(path.to_string());
            return;
        }
        if depth > 8 {
            return;
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(root, v, &p, widget, out, depth + 1);
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            for v in s.get(key).and_then(Value::as_array).into_iter().flatten() {
                walk(root, v, path, widget, out, depth + 1);
            }
        }
    }
    let mut out = Vec::new();
    walk(schema, schema, "", widget, &mut out, 0);
    out.dedup();
    out
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("made an object above");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The merge patch that turns `old` into `new` (for a form that holds the whole config):
/// `merge_patch(old, patch_to(old, new)) == new` for objects.
pub fn patch_to(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            for (k, v) in n {
                let p = match o.get(k) {
                    Some(ov) if ov.is_object() && v.is_object() => patch_to(ov, v),
                    _ => v.clone(),
                };
                patch.insert(k.clone(), p);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// `saved` with `changes` applied: a value sets, `null` removes.
fn apply_secrets(mut saved: Map<String, Value>, changes: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in changes {
        if v.is_null() {
            saved.remove(&k);
        } else {
            saved.insert(k, v);
        }
    }
    saved
}

/// Empty strings in a secrets change mean "not given" (a form's untouched password field).
fn drop_empty(secrets: Map<String, Value>) -> Map<String, Value> {
    secrets
        .into_iter()
        .filter(|(_, v)| v.as_str() != Some(""))
        .collect()
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), ServiceError> {
    if required && value.trim().is_empty() {
        return Err(ServiceError::invalid(
            field,
            "missing_required_field",
            format!("{field} is required"),
        ));
    }
    if value.chars().count() > max {
        return Err(ServiceError::invalid(
            field,
            "invalid_value",
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(ServiceError::invalid(
            field,
            "invalid_text",
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn widget_fields_are_found_through_refs() {
        let schema = serde_json::json!({
            "properties": {
                "opt_in_path_id": {"type": ["integer", "null"], "x-ferry-widget": "opt_in_path"},
                "inner": {"$ref": "#/$defs/Inner"},
                "name": {"type": "string"}
            },
            "$defs": {"Inner": {"properties": {"path": {"x-ferry-widget": "opt_in_path"}}}}
        });
        let mut got = widget_paths(&schema, "opt_in_path");
        got.sort();
        assert_eq!(got, vec!["inner.path", "opt_in_path_id"]);
        assert!(widget_paths(&schema, "template").is_empty());
    }

    #[test]
    fn patch_to_turns_the_old_config_into_the_new() {
        let old = json!({"a": 1, "s": {"h": "x", "k": "key", "d": {"z": 1}}, "gone": [1]});
        let new = json!({"a": 2, "s": {"h": "y", "d": {"q": 2}}, "n": null});
        let mut t = old.clone();
        merge_patch(&mut t, &patch_to(&old, &new));
        assert_eq!(t, json!({"a": 2, "s": {"h": "y", "d": {"q": 2}}}));
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1]});
        merge_patch(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [2], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [2], "n": {"x": 1}})
        );
    }
}
