//! `/api/v1/runs`: Recent Runs, the read side of the runs queue.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use ferry_core::run::{RunStatus, Trigger};
use ferry_store::{Integration, Run, RunQuery, Store};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryArgs;

/// The name of the file a run uploaded (`detail.file`), when it uploaded one.
pub fn file_name(detail: &Value) -> Option<String> {
    detail
        .get("file")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// One run of an integration.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run's ID.
    pub id: i64,
    /// The integration it ran.
    pub integration_id: i64,
    /// The integration's name.
    pub integration_name: String,
    /// The integration's kind when the run was made, e.g. `contacts_export`.
    pub kind: String,
    /// The Recent Runs "Type": `Contacts`, `Conversations`, … (the kind when it
    /// has no label).
    pub type_label: String,
    /// `scheduled`, `manual` or `change`.
    #[schema(value_type = String)]
    pub trigger: Trigger,
    /// The schedule slot, for scheduled runs.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_for: Option<Timestamp>,
    /// `queued`, `running`, `success`, `skipped` (nothing to send) or `failed`.
    #[schema(value_type = String)]
    pub status: RunStatus,
    /// The status as Recent Runs shows it: `Queued`, `Running`, `Success`, `Skipped`, `Fail`.
    pub status_label: &'static str,
    /// Rows in the exported file (contacts synced, for syncs).
    pub rows: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    /// When it began; absent while queued.
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    /// When it ended (or failed); absent until then.
    pub finished_at: Option<Timestamp>,
    /// Why the run failed.
    pub error: Option<String>,
    /// The uploaded file's name (`detail.file`), when the run uploaded one.
    pub file: Option<String>,
    /// Connector-specific facts about the run.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// How many times a worker took the run up (a run whose worker stopped is retried).
    pub attempt: i64,
    #[schema(value_type = String, format = DateTime)]
    /// When it was queued.
    pub created_at: Timestamp,
    /// The synchronization report, for a kind that keeps one (EveryAction): each metric with
    /// its count, the skipped reasons one row each (`skipped:<code>`). Absent for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Vec<ReportMetric>>,
}

/// One metric of a run's synchronization report.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReportMetric {
    /// `pulled`, `created`, `updated`, `unchanged`, `skipped`, `skipped:<code>`,
    /// `opt_ins_pushed`, `opt_outs_pushed`, `created_in_everyaction`, `van_ids_written`,
    /// `welcome_messages_queued`, `retried`, `given_up` or `errors`.
    pub metric: String,
    /// The count.
    pub value: i64,
}

impl RunView {
    /// A run as the API shows it, with its integration's name and type label.
    pub fn new(r: Run, integration_name: String, type_label: String) -> RunView {
        RunView {
            report: None,
            id: r.id,
            integration_id: r.integration_id,
            integration_name,
            type_label,
            kind: r.kind,
            trigger: r.trigger,
            scheduled_for: r.scheduled_for,
            status: r.status,
            status_label: r.status.label(),
            rows: r.rows,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
            file: file_name(&r.detail),
            detail: r.detail,
            attempt: r.attempt,
            created_at: r.created_at,
        }
    }

    /// The same with the run's synchronization report, when its kind keeps one.
    fn with_report(mut self, state: &AppState) -> RunView {
        self.report = state
            .registry
            .get(&self.kind)
            .and_then(|c| c.sync_report(&self.detail))
            .map(|r| {
                r.rows
                    .into_iter()
                    .map(|row| ReportMetric {
                        metric: row.metric,
                        value: row.value,
                    })
                    .collect()
            });
        self
    }
}

/// The query parameters of `GET /api/v1/runs`.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only runs of this integration.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub integration_id: Option<String>,
    /// Only runs in this status: `queued`, `running`, `success`, `skipped` or `failed`.
    #[param(value_type = Option<d::RunStatusValue>, inline)]
    pub status: Option<String>,
    /// RFC 3339 time; only runs that started at or after it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub started_from: Option<String>,
    /// RFC 3339 time; only runs that started at or before it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub started_to: Option<String>,
    /// The cursor from the previous page's `next_cursor`.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
/// A page of runs, newest first.
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

pub(crate) fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad_request", message).field(field)
}

pub(crate) fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn parse_status(field: &str, s: &str) -> ApiResult<RunStatus> {
    s.parse::<RunStatus>().map_err(|_| {
        bad(
            field,
            format!(
                "{field} must be one of {}",
                RunStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// A page size: 1 to 500, 50 when absent.
pub(crate) fn parse_limit(v: &Option<String>) -> ApiResult<u32> {
    match present(v) {
        None => Ok(50),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| bad("limit", "limit must be between 1 and 500")),
    }
}

pub(crate) fn parse_positive_id(field: &str, s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| bad(field, format!("{field} must be a positive integer")))
}

pub(crate) fn parse_time(field: &str, s: &str) -> ApiResult<Timestamp> {
    s.parse::<Timestamp>().map_err(|_| {
        bad(
            field,
            format!("{field} must be an RFC 3339 time such as 2026-09-01T00:00:00Z"),
        )
    })
}

/// Checks that the time range is not reversed.
pub(crate) fn check_range(q: &RunQuery) -> ApiResult<()> {
    match (q.started_from, q.started_to) {
        (Some(from), Some(to)) if from > to => Err(bad(
            "started_to",
            "started_to must not be before started_from",
        )),
        _ => Ok(()),
    }
}

impl ListParams {
    fn query(&self) -> ApiResult<RunQuery> {
        let limit = parse_limit(&self.limit)?;
        let q = RunQuery {
            integration_id: present(&self.integration_id)
                .map(|s| parse_positive_id("integration_id", s))
                .transpose()?,
            status: present(&self.status)
                .map(|s| parse_status("status", s))
                .transpose()?,
            started_from: present(&self.started_from)
                .map(|s| parse_time("started_from", s))
                .transpose()?,
            started_to: present(&self.started_to)
                .map(|s| parse_time("started_to", s))
                .transpose()?,
            before: present(&self.cursor)
                .map(|s| parse_positive_id("cursor", s))
                .transpose()?,
            limit,
        };
        check_range(&q)?;
        Ok(q)
    }
}

/// One page of runs (newest first) and the cursor of the next page, if there is one.
pub(crate) async fn page(
    store: &Store,
    institution_id: i64,
    q: &RunQuery,
) -> ferry_store::Result<(Vec<Run>, Option<i64>)> {
    let runs = store.list_runs(institution_id, q).await?;
    let next = match runs.last() {
        Some(last) if runs.len() >= q.limit as usize => {
            // A full page: there is a next one only if an older run passes the filters.
            let probe = RunQuery {
                before: Some(last.id),
                limit: 1,
                ..q.clone()
            };
            let more = !store.list_runs(institution_id, &probe).await?.is_empty();
            more.then_some(last.id)
        }
        _ => None,
    };
    Ok((runs, next))
}

/// The institution's integrations by id.
pub(crate) async fn integrations_by_id(
    store: &Store,
    institution_id: i64,
) -> ferry_store::Result<HashMap<i64, Integration>> {
    Ok(store
        .list_integrations(institution_id)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect())
}

/// List runs, newest first, with cursor paging.
#[utoipa::path(get, path = "/api/v1/runs", operation_id = "list_runs", params(ListParams), responses(
    (status = 200, description = "A page of runs.", body = RunList),
    (status = 400, response = d::BadQuery),
    (status = 401, response = d::Unauthorized)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    QueryArgs(p): QueryArgs<ListParams>,
) -> ApiResult<Json<RunList>> {
    let inst = auth.institution_id();
    let q = p.query()?;
    let ((runs, next_cursor), integrations) = tokio::try_join!(
        page(&state.store, inst, &q),
        integrations_by_id(&state.store, inst)
    )?;
    Ok(Json(RunList {
        runs: runs
            .into_iter()
            .map(|r| {
                let name = integrations
                    .get(&r.integration_id)
                    .map(|i| i.name.clone())
                    .unwrap_or_default();
                let label = state.registry.label(&r.kind);
                RunView::new(r, name, label).with_report(&state)
            })
            .collect(),
        next_cursor,
    }))
}

/// One run, with the uploaded file's name.
#[utoipa::path(get, path = "/api/v1/runs/{id}", operation_id = "get_run", params(("id" = i64, Path, description = "run id")), responses(
    (status = 200, description = "The run.", body = RunView),
    (status = 401, response = d::Unauthorized),
    (status = 404, response = d::NotFound)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    let inst = auth.institution_id();
    let id = crate::api::contacts::parse_id(&id)?;
    let run = state.store.run(inst, id).await?;
    let integration = state.store.integration(inst, run.integration_id).await?;
    let label = state.registry.label(&run.kind);
    Ok(Json(
        RunView::new(run, integration.name, label).with_report(&state),
    ))
}

/// The CSV answer of a run's synchronization report (the API's and the UI's download).
pub(crate) async fn report_csv_response(
    state: &AppState,
    institution_id: i64,
    id: &str,
) -> ApiResult<axum::response::Response> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let id = crate::api::contacts::parse_id(id)?;
    let run = state.store.run(institution_id, id).await?;
    let report = state
        .registry
        .get(&run.kind)
        .and_then(|c| c.sync_report(&run.detail))
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "run {id} has no synchronization report: only sync runs (EveryAction) keep one"
                ),
            )
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"run-{id}-report.csv\""),
            ),
        ],
        report.to_csv(),
    )
        .into_response())
}

/// A run's synchronization report as CSV.
#[utoipa::path(get, path = "/api/v1/runs/{id}/report.csv", operation_id = "download_run_report", params(("id" = i64, Path, description = "run id")), responses(
    (status = 200, content_type = "text/csv", description = "header `metric,value`, then one row per metric in the report's order: `pulled`, `created`, `updated`, `unchanged`, `skipped`, one `skipped:<code>` row per reason, `opt_ins_pushed`, `opt_outs_pushed`, `created_in_everyaction`, `van_ids_written`, `welcome_messages_queued`, `retried`, `given_up`, `errors`"),
    (status = 401, response = d::Unauthorized),
    (status = 404, description = "No such run, or its kind keeps no synchronization report.", body = crate::error::ErrorBody)))]
pub async fn report_csv(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::response::Response> {
    report_csv_response(&state, auth.institution_id(), &id).await
}
