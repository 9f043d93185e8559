//! `/api/v1/sync-log`: every per-contact problem an integration met, newest first, and the same
//! rows as a CSV download for a time range.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ferry_core::export::CsvWriter;
use ferry_core::run::SyncDirection;
use ferry_store::{Store, SyncLogEntry, SyncLogQuery};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::api::doc as d;
use crate::api::runs::{
    bad, integrations_by_id, parse_limit, parse_positive_id, parse_time, present,
};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::QueryArgs;

/// Rows a CSV download holds at most; a larger range is refused with the advice to narrow it.
pub const MAX_CSV_ROWS: usize = 200_000;

/// One Sync Log row.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SyncLogView {
    /// The row's ID.
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    /// When the problem happened.
    pub timestamp: Timestamp,
    /// The integration that wrote it; absent once the integration was deleted.
    pub integration_id: Option<i64>,
    /// The integration's name (empty once the integration was deleted).
    pub integration_name: String,
    /// The run that wrote it.
    pub run_id: Option<i64>,
    /// `incoming` (into Ferry) or `outgoing` (from Ferry).
    #[schema(value_type = String)]
    pub direction: SyncDirection,
    /// The contact the problem is about, if it is known.
    pub contact_id: Option<i64>,
    /// The contact's name, if the contact still exists.
    pub contact_name: Option<String>,
    /// A code from the error dictionary (`GET /api/v1/errors`).
    pub code: String,
    /// What happened, for people.
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
/// A page of Sync Log rows, newest first.
pub struct SyncLogList {
    /// The rows.
    pub entries: Vec<SyncLogView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// The query parameters of the Sync Log and its CSV download.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SyncLogParams {
    /// RFC 3339 time; rows at or after it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339 time; rows at or before it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Only rows of this integration.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub integration_id: Option<String>,
    /// `incoming` (into Ferry) or `outgoing` (from Ferry).
    #[param(value_type = Option<d::SyncDirectionValue>, inline)]
    pub direction: Option<String>,
    /// Only rows this run wrote (`GET /api/v1/runs/{id}`).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub run_id: Option<String>,
    /// The cursor from the previous page's `next_cursor` (the CSV download starts before it).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub cursor: Option<String>,
    /// Page size, 1-500 (default 50); the CSV download holds every row of the range.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

impl SyncLogParams {
    pub(crate) fn query(&self) -> ApiResult<SyncLogQuery> {
        let limit = parse_limit(&self.limit)?;
        let q = SyncLogQuery {
            from: present(&self.from)
                .map(|s| parse_time("from", s))
                .transpose()?,
            to: present(&self.to).map(|s| parse_time("to", s)).transpose()?,
            integration_id: present(&self.integration_id)
                .map(|s| parse_positive_id("integration_id", s))
                .transpose()?,
            direction: present(&self.direction)
                .map(|s| {
                    s.parse::<SyncDirection>()
                        .map_err(|_| bad("direction", "direction must be incoming or outgoing"))
                })
                .transpose()?,
            run_id: present(&self.run_id)
                .map(|s| parse_positive_id("run_id", s))
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

pub(crate) fn check_range(q: &SyncLogQuery) -> ApiResult<()> {
    match (q.from, q.to) {
        (Some(from), Some(to)) if from > to => Err(bad("to", "to must not be before from")),
        _ => Ok(()),
    }
}

/// Rows with their integration's and contact's names.
pub(crate) async fn views(
    store: &Store,
    institution_id: i64,
    entries: Vec<SyncLogEntry>,
) -> ferry_store::Result<Vec<SyncLogView>> {
    let integrations = integrations_by_id(store, institution_id).await?;
    let ids: Vec<i64> = entries.iter().filter_map(|e| e.contact_id).collect();
    let contacts = store.contacts_by_ids(institution_id, &ids).await?;
    let names: HashMap<i64, String> = contacts
        .into_iter()
        .map(|(id, c)| (id, c.data.display_name()))
        .collect();
    Ok(entries
        .into_iter()
        .map(|e| SyncLogView {
            id: e.id,
            timestamp: e.timestamp,
            integration_name: e
                .integration_id
                .and_then(|i| integrations.get(&i))
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            integration_id: e.integration_id,
            run_id: e.run_id,
            direction: e.direction,
            contact_name: e.contact_id.and_then(|c| names.get(&c).cloned()),
            contact_id: e.contact_id,
            code: e.code,
            message: e.message,
        })
        .collect())
}

/// A page of rows and the next page's cursor.
pub(crate) async fn page(
    store: &Store,
    institution_id: i64,
    q: &SyncLogQuery,
) -> ferry_store::Result<(Vec<SyncLogView>, Option<i64>)> {
    // One more row than asked tells whether there is a next page.
    let mut probe = q.clone();
    probe.limit = q.limit + 1;
    let mut rows = store.list_sync_log(institution_id, &probe).await?;
    let more = rows.len() > q.limit as usize;
    rows.truncate(q.limit as usize);
    let next = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok((views(store, institution_id, rows).await?, next))
}

/// The Sync Log, newest first, with cursor paging.
#[utoipa::path(get, path = "/api/v1/sync-log", operation_id = "list_sync_log", params(SyncLogParams), responses(
    (status = 200, description = "A page of the Sync Log.", body = SyncLogList),
    (status = 400, response = d::BadQuery),
    (status = 401, response = d::Unauthorized)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    QueryArgs(p): QueryArgs<SyncLogParams>,
) -> ApiResult<Json<SyncLogList>> {
    let q = p.query()?;
    let (entries, next_cursor) = page(&state.store, auth.institution_id(), &q).await?;
    Ok(Json(SyncLogList {
        entries,
        next_cursor,
    }))
}

/// The Sync Log rows of a range as CSV (oldest first):
/// `timestamp,id,integration,direction,contact_id,contact,code,message`.
pub(crate) async fn csv(
    store: &Store,
    institution_id: i64,
    mut q: SyncLogQuery,
    file_name: &str,
    time_zone: &str,
) -> ApiResult<Response> {
    let tz = jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    q.limit = 5_000;
    let mut all = Vec::new();
    loop {
        let rows = store.list_sync_log(institution_id, &q).await?;
        let done = rows.len() < q.limit as usize;
        q.before = rows.last().map(|r| r.id);
        all.extend(rows);
        if all.len() > MAX_CSV_ROWS {
            return Err(ApiError::bad_request(
                "too_many_rows",
                format!(
                    "the range holds more than {MAX_CSV_ROWS} rows; download a shorter time range"
                ),
            ));
        }
        if done {
            break;
        }
    }
    all.reverse();
    let rows = views(store, institution_id, all).await?;
    let mut w = CsvWriter::new(Vec::new(), true);
    let io = |e: std::io::Error| ApiError::internal(e);
    w.write_row(&[
        "timestamp",
        "id",
        "integration",
        "direction",
        "contact_id",
        "contact",
        "code",
        "message",
    ])
    .map_err(io)?;
    for r in rows {
        w.write_row(&[
            csv_time(r.timestamp, &tz),
            r.id.to_string(),
            r.integration_name,
            r.direction.as_str().to_string(),
            r.contact_id.map(|c| c.to_string()).unwrap_or_default(),
            r.contact_name.unwrap_or_default(),
            r.code,
            r.message,
        ])
        .map_err(io)?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        w.into_inner(),
    )
        .into_response())
}

/// A CSV timestamp: the time in the institution's zone with its offset
/// (`2026-09-01T10:00:00-04:00`), as the page shows it, and still exact for a machine.
pub(crate) fn csv_time(t: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Download the Sync Log rows of a time range as CSV (Download Logs).
#[utoipa::path(get, path = "/api/v1/sync-log.csv", operation_id = "download_sync_log", params(SyncLogParams), responses(
    (status = 200, content_type = "text/csv", description = "header `timestamp,id,integration,direction,contact_id,contact,code,message`, oldest first; `timestamp` is in the institution's time zone with its offset (`2026-09-01T10:00:00-04:00`)"),
    (status = 400, description = "A query parameter is not valid (`field` names it), or the range holds too many rows (`too_many_rows`).", body = ErrorBody),
    (status = 401, response = d::Unauthorized)))]
pub async fn download(
    State(state): State<AppState>,
    auth: Auth,
    QueryArgs(p): QueryArgs<SyncLogParams>,
) -> ApiResult<Response> {
    let q = p.query()?;
    csv(
        &state.store,
        auth.institution_id(),
        q,
        "sync-log.csv",
        &auth.principal.institution.time_zone,
    )
    .await
}
