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
use ferry_connectors::service::{
    ConnectionTest, IntegrationChange, NewIntegrationInput, ServiceError,
};
use ferry_store::Integration;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;

/// An integration instance. Secrets appear only as set or not.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    /// The integration's ID.
    pub id: i64,
    /// The kind, e.g. `contacts_export`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind as people read it, e.g. `Contacts`.
    pub type_label: String,
    /// The name people see in lists.
    pub name: String,
    /// A longer description (lists only; it changes nothing).
    pub description: String,
    /// Whether it runs by itself (on its schedule or on change); Run now works either way.
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
    /// When it was created.
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    /// When it last changed.
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
            type_label: state.registry.label(&i.kind),
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
    /// One of the kinds `/api/v1/integration-types` lists.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name people see in lists (required, at most 200 characters).
    pub name: String,
    #[serde(default)]
    /// A longer description (at most 2,000 characters).
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
    /// A new name.
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// On or off.
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    /// A JSON merge patch over the saved config.
    pub config: Option<Value>,
    #[schema(value_type = Option<Object>)]
    /// Secrets to set (a string) or remove (`null`).
    pub secrets: Option<Map<String, Value>>,
}

/// Test Connection's answer. A failed test is an answer too (`ok` false, with the reason).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestConnectionView {
    /// Whether the remote was reached and the credentials work.
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
    /// The kind to test, as in `CreateIntegration`.
    pub kind: String,
    #[schema(value_type = Object)]
    /// The whole config to test.
    pub config: Value,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    /// The secrets to test with.
    pub secrets: Option<Map<String, Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
/// A queued run.
pub struct RunQueued {
    /// The run's ID (see `GET /api/v1/runs/{id}`).
    pub run_id: i64,
}

/// Validates and stores a new integration (through the service, as every caller does).
pub(crate) async fn create_integration(
    state: &AppState,
    institution_id: i64,
    input: CreateIntegration,
) -> ApiResult<Integration> {
    let input = NewIntegrationInput {
        kind: input.kind,
        name: input.name,
        description: input.description,
        enabled: input.enabled,
        config: input.config,
        secrets: input.secrets.unwrap_or_default(),
    };
    match state.service.create(institution_id, input.clone()).await {
        Err(e @ ServiceError::Invalid { .. }) => {
            let all = state
                .service
                .create_problems(institution_id, &input)
                .await?;
            Err(ApiError::all_of(all).unwrap_or_else(|| e.into()))
        }
        other => Ok(other?),
    }
}

/// Validates and applies a change; nothing is stored unless all of it is valid.
pub(crate) async fn patch_integration(
    state: &AppState,
    institution_id: i64,
    id: i64,
    input: PatchIntegration,
) -> ApiResult<Integration> {
    let change = IntegrationChange {
        name: input.name,
        description: input.description,
        enabled: input.enabled,
        config: input.config,
        secrets: input.secrets,
    };
    match state
        .service
        .update(institution_id, id, change.clone())
        .await
    {
        Err(e @ ServiceError::Invalid { .. }) => {
            let all = state
                .service
                .update_problems(institution_id, id, &change)
                .await?;
            Err(ApiError::all_of(all).unwrap_or_else(|| e.into()))
        }
        other => Ok(other?),
    }
}

/// Tests a connection; a saved integration's unchanged settings let the connector record
/// what it learned (an SFTP export pins the host key when none is pinned).
pub(crate) async fn test_connection(
    state: &AppState,
    institution_id: i64,
    test: ConnectionTest,
) -> ApiResult<TestConnectionView> {
    let outcome = state.service.test_connection(institution_id, test).await?;
    Ok(TestConnectionView {
        ok: outcome.ok,
        host_key: outcome
            .detail
            .get("host_key")
            .and_then(Value::as_str)
            .map(str::to_string),
        message: outcome.message,
    })
}

/// Queues a manual run (or finds the one already queued).
pub(crate) async fn run_now(state: &AppState, institution_id: i64, id: i64) -> ApiResult<i64> {
    Ok(state.service.run_now(institution_id, id).await?)
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
    (status = 422, description = "`field` names what is wrong, e.g. `config.sftp.host`.", body = ErrorBody),
    (status = 504, description = "The remote (a CRM, an SFTP server) did not answer the save's check in time (`remote_timeout`); nothing was saved.", body = ErrorBody)))]
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
    (status = 422, description = "`field` names what is wrong.", body = ErrorBody),
    (status = 504, description = "The remote (a CRM, an SFTP server) did not answer the save's check in time (`remote_timeout`); nothing was saved.", body = ErrorBody)))]
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
    state.service.delete(auth.institution_id(), id).await?;
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
    let test = state
        .service
        .saved_test(inst, id, input.config, input.secrets)
        .await?;
    let view = test_connection(&state, inst, test).await?;
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
    let test = ConnectionTest {
        kind: input.kind,
        integration_id: None,
        config: input.config,
        secrets: input.secrets.unwrap_or_default(),
        saved_settings: false,
    };
    let view = test_connection(&state, auth.institution_id(), test).await?;
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
