//! `/api/v1/bulk-files`: what institutions' accounts uploaded to Ferry's own SFTP server, each
//! upload with where it stands (uploading, partial, complete, empty, duplicate, ingested).

use axum::Json;
use axum::extract::{Path, State};
use ferry_store::SftpFile;
use jiff::Timestamp;
use serde::Serialize;

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::ApiResult;

/// The most uploads one answer lists.
const LIMIT: i64 = 500;

/// One upload (one attempt: a name uploaded twice is two records).
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkFileView {
    /// The upload's ID.
    pub id: i64,
    /// The SFTP account that uploaded it.
    pub account_id: i64,
    /// Its path in the account's folder, e.g. `/inbox/calls.csv`.
    pub path: String,
    /// `uploading`, `partial` (the connection ended before a clean close: never ingested),
    /// `complete`, `empty` (reported, not ingested), `duplicate` (the same content as an earlier
    /// file), `ingested` or `quarantined` (refused: moved to `quarantine/` with the reason).
    pub status: String,
    /// Whether the account still sees it (a later upload of the name, or a removal, hides it).
    pub visible: bool,
    /// Bytes (of plaintext: files are stored encrypted).
    pub size: i64,
    /// SHA-256 of the content, once complete.
    pub sha256: Option<String>,
    /// When it became ready for ingestion (complete under a name that is not temporary).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ready_at: Option<Timestamp>,
    /// When the upload began.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When its status last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The run that ingests it (Recent Runs), once queued.
    pub run_id: Option<i64>,
    /// The template it was read with.
    pub template_id: Option<i64>,
    /// When its ingestion ended (`ingested`, `quarantined`, or a `duplicate` reported).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ingested_at: Option<Timestamp>,
    /// When retention deleted its content.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub purged_at: Option<Timestamp>,
    /// Written by Ferry (a report or a quarantine note), not uploaded.
    pub by_ferry: bool,
    /// The file's report (only on `GET /api/v1/bulk-files/{id}`): rows, created, updated,
    /// unchanged, skipped with row and reason, or why it was quarantined.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
}

impl From<SftpFile> for BulkFileView {
    fn from(f: SftpFile) -> Self {
        BulkFileView {
            id: f.id,
            account_id: f.account_id,
            path: f.path,
            status: f.status.as_str().to_string(),
            visible: f.visible,
            size: f.size,
            sha256: f.sha256,
            ready_at: f.ready_at,
            created_at: f.created_at,
            updated_at: f.updated_at,
            run_id: f.run_id,
            template_id: f.template_id,
            ingested_at: f.ingested_at,
            purged_at: f.purged_at,
            by_ferry: f.by_ferry,
            report: None,
        }
    }
}

/// The institution's uploads, newest first (at most 500).
#[utoipa::path(get, path = "/api/v1/bulk-files", operation_id = "list_bulk_files", responses(
    (status = 200, description = "The uploads, newest first.", body = Vec<BulkFileView>),
    (status = 401, response = d::Unauthorized)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<BulkFileView>>> {
    Ok(Json(
        state
            .store
            .sftp_files(auth.institution_id(), LIMIT)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// One upload with its report.
#[utoipa::path(get, path = "/api/v1/bulk-files/{id}", operation_id = "get_bulk_file", params(("id" = i64, Path, description = "The upload's ID.")), responses(
    (status = 200, description = "The upload and its report.", body = BulkFileView),
    (status = 401, response = d::Unauthorized),
    (status = 404, response = d::NotFound)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<BulkFileView>> {
    let (file, report) = state.store.bulk_file(auth.institution_id(), id).await?;
    Ok(Json(BulkFileView {
        report,
        ..file.into()
    }))
}
