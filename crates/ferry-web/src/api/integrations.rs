//! `/api/v1/integrations`: integration instances (create, list, read, change, delete), Test
//! Connection and Run now. The SFTP Outbound screens call the same functions.
//!
//! Secrets are write-only: a request may set (`"password": "…"`) or remove (`"password": null`)
//! one, and answers only say which are set.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ferry_connectors::{ConfigError, ConnectorContext, Secrets, ValidateError};
use ferry_core::run::{RunStatus, Trigger};
use ferry_store::{Integration, IntegrationUpdate, NewIntegration, NewRun, RunQuery};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;

/// The longest name.
const MAX_NAME: usize = 200;
/// The longest description.
const MAX_DESCRIPTION: usize = 2000;
/// The longest secret value (a 16k-bit RSA key is about 12 KB).
const MAX_SECRET: usize = 32 * 1024;

/// An integration instance. Secrets appear only as set or not.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    pub id: i64,
    /// The kind, e.g. `eab_notes_export`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind as people read it, e.g. `EAB Notes`.
    pub type_label: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    /// The kind's configuration.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Every secret the kind takes, and whether it is set. Values are never shown.
    pub secrets: BTreeMap<String, bool>,
    /// Connector-owned state, such as an export's watermark (the last message sequence sent).
    #[schema(value_type = Object)]
    pub state: Value,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl IntegrationView {
    pub(crate) fn new(state: &AppState, i: Integration) -> IntegrationView {
        let mut secrets: BTreeMap<String, bool> = state
            .registry
            .description(&i.kind)
            .map(|d| d.secret_names().map(|n| (n.to_string(), false)).collect())
            .unwrap_or_default();
        for name in &i.secrets_set {
            secrets.insert(name.clone(), true);
        }
        IntegrationView {
            id: i.id,
            type_label: crate::api::runs::type_label(&state.registry, &i.kind),
            kind: i.kind,
            name: i.name,
            description: i.description,
            enabled: i.enabled,
            config: i.config,
            secrets,
            state: i.state,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// A new integration instance.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegration {
    /// `contacts_export`, `conversations_export` or `eab_notes_export`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Whether it runs on its schedule (default false).
    #[serde(default)]
    pub enabled: bool,
    /// The kind's configuration (see the kind's documentation).
    #[schema(value_type = Object)]
    pub config: Value,
    /// Secret values by name, e.g. `{"password": "…"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Map<String, Value>>,
}

/// A change: parts left out stay as they are. `config` is a JSON merge patch (RFC 7386): keys
/// given replace, `null` removes (e.g. `{"sftp":{"host_key":null}}` re-pins the host key on the
/// next connection). A secret given replaces it; `null` removes it.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchIntegration {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Map<String, Value>>,
}

/// Test Connection's answer. A failed test is an answer too (`ok` false, with the reason).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestConnectionView {
    pub ok: bool,
    /// The server's host key fingerprint (`SHA256:…`), when the connection got that far.
    pub host_key: Option<String>,
    /// What was checked, or why it failed.
    pub message: String,
}

/// Unsaved values to test instead of the saved ones (the configuration screen before Save).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestConnectionInput {
    /// A merge patch over the saved config.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Secrets to test with, over the saved ones.
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Map<String, Value>>,
}

/// A new integration's Test Connection, before it is saved.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestNewConnectionInput {
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub config: Value,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Map<String, Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunQueued {
    pub run_id: i64,
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
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

fn validate_error(e: ValidateError) -> ApiError {
    match e {
        ValidateError::UnknownKind { .. } => {
            ApiError::unprocessable("invalid_value", "type", e.to_string())
        }
        ValidateError::Config(c) => config_error(c),
    }
}

fn config_error(c: ConfigError) -> ApiError {
    let field = if c.field == "secrets" || c.field.starts_with("secrets.") {
        c.field
    } else if c.field == "config" {
        "config".to_string()
    } else {
        format!("config.{}", c.field)
    };
    ApiError::unprocessable(c.code, field, c.message)
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> ApiResult<()> {
    if required && value.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "missing_required_field",
            field,
            format!("{field} is required"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::unprocessable(
            "invalid_value",
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(ApiError::unprocessable(
            "invalid_text",
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

/// Checks secret values: strings (or `null` to remove), within the size limit, of names the
/// kind takes.
fn check_secrets(state: &AppState, kind: &str, secrets: &Map<String, Value>) -> ApiResult<()> {
    state
        .registry
        .validate_secret_names(kind, secrets.keys().map(String::as_str))
        .map_err(validate_error)?;
    for (name, v) in secrets {
        let field = format!("secrets.{name}");
        match v {
            Value::Null => {}
            Value::String(s) if s.len() > MAX_SECRET => {
                return Err(ApiError::unprocessable(
                    "invalid_value",
                    field,
                    format!("longer than {MAX_SECRET} bytes"),
                ));
            }
            Value::String(_) => {}
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_value",
                    field,
                    "a secret is a string (or null to remove it)",
                ));
            }
        }
    }
    Ok(())
}

/// Empty strings in a secrets change mean "not given" (a form's untouched password field).
fn drop_empty(secrets: Option<Map<String, Value>>) -> Option<Map<String, Value>> {
    secrets.map(|m| {
        m.into_iter()
            .filter(|(_, v)| v.as_str() != Some(""))
            .collect()
    })
}

/// The connector's checks against the remote (a CRM's properties for a data mapping), with the
/// config and secrets about to be saved.
async fn check_remote(
    state: &AppState,
    institution_id: i64,
    kind: &str,
    integration_id: Option<i64>,
    config: &Value,
    secrets: Map<String, Value>,
) -> ApiResult<()> {
    let Some(connector) = state.registry.get(kind).cloned() else {
        return Ok(());
    };
    let schema = state.store.field_schema(institution_id).await?;
    let ctx = ConnectorContext::new(
        institution_id,
        integration_id,
        config.clone(),
        Secrets::from_json(secrets),
    )
    .with_store(state.store.clone());
    connector
        .check_with_remote(&ctx, &schema)
        .await
        .map_err(config_error)
}

/// Validates and stores a new integration.
pub(crate) async fn create_integration(
    state: &AppState,
    institution_id: i64,
    input: CreateIntegration,
) -> ApiResult<Integration> {
    check_text("name", &input.name, MAX_NAME, true)?;
    check_text("description", &input.description, MAX_DESCRIPTION, false)?;
    state
        .registry
        .validate(&input.kind, &input.config)
        .map_err(validate_error)?;
    let secrets = drop_empty(input.secrets).unwrap_or_default();
    check_secrets(state, &input.kind, &secrets)?;
    let secrets: Map<String, Value> = secrets.into_iter().filter(|(_, v)| !v.is_null()).collect();
    state
        .registry
        .validate_secrets_set(
            &input.kind,
            &input.config,
            &Secrets::from_json(secrets.clone()),
        )
        .map_err(validate_error)?;
    check_remote(
        state,
        institution_id,
        &input.kind,
        None,
        &input.config,
        secrets.clone(),
    )
    .await?;
    Ok(state
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

/// Validates and applies a change; nothing is stored unless all of it is valid.
pub(crate) async fn patch_integration(
    state: &AppState,
    institution_id: i64,
    id: i64,
    input: PatchIntegration,
) -> ApiResult<Integration> {
    let current = state.store.integration(institution_id, id).await?;
    if let Some(name) = &input.name {
        check_text("name", name, MAX_NAME, true)?;
    }
    if let Some(d) = &input.description {
        check_text("description", d, MAX_DESCRIPTION, false)?;
    }
    let config = match &input.config {
        Some(patch) => {
            let mut config = current.config.clone();
            merge_patch(&mut config, patch);
            if let Some(c) = state.registry.get(&current.kind) {
                c.on_config_change(&current.config, &mut config);
            }
            state
                .registry
                .validate(&current.kind, &config)
                .map_err(validate_error)?;
            Some(config)
        }
        None => None,
    };
    let secrets = drop_empty(input.secrets);
    if let Some(s) = &secrets {
        check_secrets(state, &current.kind, s)?;
    }
    if config.is_some() || secrets.is_some() {
        // The secrets as they will be after this change.
        let mut all = state.store.integration_secrets(institution_id, id).await?;
        for (k, v) in secrets.clone().unwrap_or_default() {
            if v.is_null() {
                all.remove(&k);
            } else {
                all.insert(k, v);
            }
        }
        if secrets.is_some() {
            state
                .registry
                .validate_secrets_set(
                    &current.kind,
                    config.as_ref().unwrap_or(&current.config),
                    &Secrets::from_json(all.clone()),
                )
                .map_err(validate_error)?;
        }
        let effective = config.clone().unwrap_or_else(|| current.config.clone());
        check_remote(
            state,
            institution_id,
            &current.kind,
            Some(id),
            &effective,
            all,
        )
        .await?;
    }
    Ok(state
        .store
        .update_integration(
            institution_id,
            id,
            IntegrationUpdate {
                name: input.name.map(|n| n.trim().to_string()),
                description: input.description.map(|d| d.trim().to_string()),
                enabled: input.enabled,
                config,
                secrets: secrets.filter(|s| !s.is_empty()),
            },
        )
        .await?)
}

/// Tests a connection with `config` and `secrets`; pins the host key of a saved integration
/// that has none pinned (OpenSSH's accept-new) when the test succeeds with its saved settings.
pub(crate) async fn test_connection(
    state: &AppState,
    institution_id: i64,
    kind: &str,
    integration_id: Option<i64>,
    config: Value,
    secrets: Secrets,
    pin: bool,
) -> ApiResult<TestConnectionView> {
    state
        .registry
        .validate(kind, &config)
        .map_err(validate_error)?;
    let connector = state
        .registry
        .get(kind)
        .ok_or_else(|| ApiError::unprocessable("invalid_value", "type", "unknown kind"))?
        .clone();
    let ctx = ConnectorContext::new(institution_id, integration_id, config, secrets)
        .with_store(state.store.clone());
    Ok(match connector.test_connection(&ctx).await {
        Ok(report) => {
            let host_key = report
                .detail
                .get("host_key")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let (true, Some(id), Some(fp)) = (pin, integration_id, host_key.as_deref()) {
                ferry_connectors::sftp_export::pin_host_key(&state.store, institution_id, id, fp)
                    .await
                    .map_err(|e| ApiError::internal(e.reason))?;
            }
            TestConnectionView {
                ok: true,
                host_key,
                message: report.message,
            }
        }
        Err(e) => TestConnectionView {
            ok: false,
            host_key: None,
            message: e.reason,
        },
    })
}

/// Queues a manual run (or finds the one already queued).
pub(crate) async fn run_now(state: &AppState, institution_id: i64, id: i64) -> ApiResult<i64> {
    let integration = state.store.integration(institution_id, id).await?;
    let queued = state
        .store
        .enqueue_run(&NewRun {
            institution_id,
            integration_id: id,
            kind: integration.kind.clone(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await?;
    match queued {
        Some(run) => Ok(run.id),
        None => {
            let existing = state
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
                .ok_or_else(|| ApiError::internal("a queued run was reported but not found"))
        }
    }
}

/// The saved secrets with `changes` applied (for testing unsaved values).
async fn secrets_with(
    state: &AppState,
    institution_id: i64,
    id: i64,
    changes: Option<Map<String, Value>>,
) -> ApiResult<Secrets> {
    let mut saved = state.store.integration_secrets(institution_id, id).await?;
    for (k, v) in drop_empty(changes).unwrap_or_default() {
        if v.is_null() {
            saved.remove(&k);
        } else {
            saved.insert(k, v);
        }
    }
    Ok(Secrets::from_json(saved))
}

/// List the institution's integrations.
#[utoipa::path(get, path = "/api/v1/integrations", operation_id = "list_integrations", responses(
    (status = 200, description = "The integrations.", body = Vec<IntegrationView>),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<IntegrationView>>> {
    let all = state.store.list_integrations(auth.institution_id()).await?;
    Ok(Json(
        all.into_iter()
            .map(|i| IntegrationView::new(&state, i))
            .collect(),
    ))
}

/// Create an integration.
#[utoipa::path(post, path = "/api/v1/integrations", operation_id = "create_integration", request_body = CreateIntegration, responses(
    (status = 201, description = "The new integration.", body = IntegrationView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "`field` names what is wrong, e.g. `config.eab.note_body`.", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(input): JsonBody<CreateIntegration>,
) -> ApiResult<impl IntoResponse> {
    let i = create_integration(&state, auth.institution_id(), input).await?;
    Ok((StatusCode::CREATED, Json(IntegrationView::new(&state, i))))
}

/// One integration.
#[utoipa::path(get, path = "/api/v1/integrations/{id}", operation_id = "get_integration", params(("id" = i64, Path, description = "integration id")), responses(
    (status = 200, description = "The integration.", body = IntegrationView),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationView>> {
    let id = crate::api::contacts::parse_id(&id)?;
    let i = state.store.integration(auth.institution_id(), id).await?;
    Ok(Json(IntegrationView::new(&state, i)))
}

/// Change an integration.
#[utoipa::path(patch, path = "/api/v1/integrations/{id}", operation_id = "update_integration", params(("id" = i64, Path, description = "integration id")), request_body = PatchIntegration, responses(
    (status = 200, description = "The integration.", body = IntegrationView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "`field` names what is wrong.", body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<PatchIntegration>,
) -> ApiResult<Json<IntegrationView>> {
    let id = crate::api::contacts::parse_id(&id)?;
    let i = patch_integration(&state, auth.institution_id(), id, input).await?;
    Ok(Json(IntegrationView::new(&state, i)))
}

/// Delete an integration and its runs (its Sync Log rows stay).
#[utoipa::path(delete, path = "/api/v1/integrations/{id}", operation_id = "delete_integration", params(("id" = i64, Path, description = "integration id")), responses(
    (status = 204, description = "Deleted."),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = crate::api::contacts::parse_id(&id)?;
    state
        .store
        .delete_integration(auth.institution_id(), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Test the connection with the saved settings, or with unsaved ones given in the body. A
/// saved integration with no pinned host key pins the server's key when its saved settings
/// connect.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/test-connection", operation_id = "test_integration_connection", params(("id" = i64, Path, description = "integration id")), request_body(content = Option<TestConnectionInput>, description = "Optional: unsaved values to test; an empty body tests the saved settings."), responses(
    (status = 200, description = "The test's outcome (a failed test is an answer too).", body = TestConnectionView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 413, response = d::PayloadTooLarge),
    (status = 422, description = "`field` names what is wrong.", body = ErrorBody)))]
pub async fn test_saved(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<TestConnectionView>> {
    let id = crate::api::contacts::parse_id(&id)?;
    let inst = auth.institution_id();
    // Through body_bytes, so that a body over the limit is a 413 in the API's error shape.
    let body = crate::extract::body_bytes(req, &state).await?;
    let input: TestConnectionInput = if body.iter().all(u8::is_ascii_whitespace) {
        TestConnectionInput::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let saved = state.store.integration(inst, id).await?;
    let unchanged = input.config.is_none() && input.secrets.is_none();
    let mut config = saved.config.clone();
    if let Some(p) = &input.config {
        merge_patch(&mut config, p);
    }
    let secrets = secrets_with(&state, inst, id, input.secrets).await?;
    let view = test_connection(
        &state,
        inst,
        &saved.kind,
        Some(id),
        config,
        secrets,
        unchanged,
    )
    .await?;
    Ok(Json(view))
}

/// Test the connection of an integration that is not saved yet.
#[utoipa::path(post, path = "/api/v1/integrations/test-connection", operation_id = "test_new_integration_connection", request_body = TestNewConnectionInput, responses(
    (status = 200, description = "The test's outcome (a failed test is an answer too).", body = TestConnectionView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "`field` names what is wrong.", body = ErrorBody)))]
pub async fn test_new(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(input): JsonBody<TestNewConnectionInput>,
) -> ApiResult<Json<TestConnectionView>> {
    let secrets = drop_empty(input.secrets).unwrap_or_default();
    check_secrets(&state, &input.kind, &secrets)?;
    let view = test_connection(
        &state,
        auth.institution_id(),
        &input.kind,
        None,
        input.config,
        Secrets::from_json(secrets),
        false,
    )
    .await?;
    Ok(Json(view))
}

/// Run now: queue a manual run (the run already queued, if there is one).
#[utoipa::path(post, path = "/api/v1/integrations/{id}/runs", operation_id = "run_integration", params(("id" = i64, Path, description = "integration id")), responses(
    (status = 202, description = "The run is queued.", body = RunQueued),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn run(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunQueued>)> {
    let id = crate::api::contacts::parse_id(&id)?;
    let run_id = run_now(&state, auth.institution_id(), id).await?;
    Ok((StatusCode::ACCEPTED, Json(RunQueued { run_id })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
