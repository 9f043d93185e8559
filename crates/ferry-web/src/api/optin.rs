//! `/api/v1/opt-in-paths` and `/api/v1/outbox`: named entry points with a welcome message, and
//! the welcome messages queued for the platform's sender when an integration creates a new
//! opted-in contact with a path. Marking a queued message sent adds it to the contact's history
//! as an outgoing campaign SMS.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ferry_store::{OptInPath, OptInPathInput, OutboxMessage};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::api::contacts::parse_id;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, QueryArgs};

/// An opt-in path.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OptInPathView {
    /// The ID, which an integration's config names.
    pub id: i64,
    /// The name, unique in the institution.
    pub name: String,
    /// What a contact who joins by this path is sent first.
    pub welcome_message: String,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
}

impl From<OptInPath> for OptInPathView {
    fn from(p: OptInPath) -> Self {
        OptInPathView {
            id: p.id,
            name: p.name,
            welcome_message: p.welcome_message,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A new opt-in path, or the whole of a changed one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptInPathBody {
    /// The name (1 to 100 characters), unique in the institution.
    pub name: String,
    /// The welcome message (1 to 1,600 characters). Changing it does not change messages
    /// already queued.
    pub welcome_message: String,
}

/// A change to an opt-in path.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptInPathPatch {
    /// A new name (1 to 100 characters), unique in the institution.
    pub name: Option<String>,
    /// A new welcome message (1 to 1,600 characters); messages already queued keep theirs.
    pub welcome_message: Option<String>,
}

impl From<OptInPathBody> for OptInPathInput {
    fn from(b: OptInPathBody) -> Self {
        OptInPathInput {
            name: b.name,
            welcome_message: b.welcome_message,
        }
    }
}

/// A welcome message in the outbox.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboxView {
    /// The outbox ID.
    pub id: i64,
    /// The contact to send it to (see `GET /api/v1/contacts/{id}` for the phone).
    pub contact_id: i64,
    /// The opt-in path it welcomes to; `null` once that path was deleted.
    pub opt_in_path_id: Option<i64>,
    /// The integration that created the contact, while it exists.
    pub integration_id: Option<i64>,
    /// The text to send, as it was when queued.
    pub body: String,
    /// When it was queued.
    #[schema(value_type = String, format = DateTime)]
    pub queued_at: jiff::Timestamp,
    /// When it was marked sent; `null` while queued.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<jiff::Timestamp>,
    /// The message in the contact's history, once sent.
    pub message_id: Option<i64>,
}

impl From<OutboxMessage> for OutboxView {
    fn from(m: OutboxMessage) -> Self {
        OutboxView {
            id: m.id,
            contact_id: m.contact_id,
            opt_in_path_id: m.opt_in_path_id,
            integration_id: m.integration_id,
            body: m.body,
            queued_at: m.queued_at,
            sent_at: m.sent_at,
            message_id: m.message_id,
        }
    }
}

/// Which part of the outbox to list.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `queued` (the default: waiting for the sender) or `sent`.
    #[param(value_type = Option<OutboxStatusValue>, inline)]
    pub status: Option<String>,
    /// Only messages with a larger ID (the last ID of the previous page).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub after: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// Which part of the outbox.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum OutboxStatusValue {
    /// Waiting for the sender.
    Queued,
    /// Marked sent.
    Sent,
}

/// When the sender sent it.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SentBody {
    /// When it was sent (RFC 3339); now when left out.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<jiff::Timestamp>,
}

/// The institution's opt-in paths, by name.
#[utoipa::path(get, path = "/api/v1/opt-in-paths", operation_id = "list_opt_in_paths", responses(
    (status = 200, description = "The paths.", body = Vec<OptInPathView>),
    (status = 401, response = d::Unauthorized)))]
pub async fn list_paths(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<OptInPathView>>> {
    let paths = state.store.opt_in_paths(auth.institution_id()).await?;
    Ok(Json(paths.into_iter().map(Into::into).collect()))
}

/// Make an opt-in path.
#[utoipa::path(post, path = "/api/v1/opt-in-paths", operation_id = "create_opt_in_path", request_body = OptInPathBody, responses(
    (status = 201, description = "The new path.", body = OptInPathView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "`field` names what is wrong (`duplicate` for a name in use).", body = ErrorBody)))]
pub async fn create_path(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<OptInPathBody>,
) -> ApiResult<impl IntoResponse> {
    let p = state
        .store
        .create_opt_in_path(auth.institution_id(), &body.into())
        .await?;
    Ok((StatusCode::CREATED, Json(OptInPathView::from(p))))
}

/// One opt-in path.
#[utoipa::path(get, path = "/api/v1/opt-in-paths/{id}", operation_id = "get_opt_in_path", params(("id" = i64, Path, description = "path id")), responses(
    (status = 200, description = "The path.", body = OptInPathView),
    (status = 401, response = d::Unauthorized),
    (status = 404, response = d::NotFound)))]
pub async fn get_path(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<OptInPathView>> {
    let id = parse_id(&id)?;
    Ok(Json(
        state
            .store
            .opt_in_path(auth.institution_id(), id)
            .await?
            .into(),
    ))
}

/// Change an opt-in path's name or welcome message (parts left out stay as they are).
#[utoipa::path(patch, path = "/api/v1/opt-in-paths/{id}", operation_id = "update_opt_in_path", params(("id" = i64, Path, description = "path id")), request_body = OptInPathPatch, responses(
    (status = 200, description = "The path.", body = OptInPathView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "`field` names what is wrong.", body = ErrorBody)))]
pub async fn patch_path(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<OptInPathPatch>,
) -> ApiResult<Json<OptInPathView>> {
    let id = parse_id(&id)?;
    let inst = auth.institution_id();
    let current = state.store.opt_in_path(inst, id).await?;
    let input = OptInPathInput {
        name: body.name.unwrap_or(current.name),
        welcome_message: body.welcome_message.unwrap_or(current.welcome_message),
    };
    Ok(Json(
        state
            .store
            .update_opt_in_path(inst, id, &input)
            .await?
            .into(),
    ))
}

/// Delete an opt-in path; messages already queued stay queued.
#[utoipa::path(delete, path = "/api/v1/opt-in-paths/{id}", operation_id = "delete_opt_in_path", params(("id" = i64, Path, description = "path id")), responses(
    (status = 204, description = "Deleted."),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn delete_path(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    state
        .store
        .delete_opt_in_path(auth.institution_id(), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The outbox, oldest first: welcome messages waiting for the platform's sender (or, with
/// `status=sent`, those sent).
#[utoipa::path(get, path = "/api/v1/outbox", operation_id = "list_outbox", params(OutboxQuery), responses(
    (status = 200, description = "The messages.", body = Vec<OutboxView>),
    (status = 400, response = d::BadQuery),
    (status = 401, response = d::Unauthorized)))]
pub async fn list_outbox(
    State(state): State<AppState>,
    auth: Auth,
    QueryArgs(q): QueryArgs<OutboxQuery>,
) -> ApiResult<Json<Vec<OutboxView>>> {
    let sent = match q.status.as_deref().map(str::trim) {
        None | Some("") | Some("queued") => false,
        Some("sent") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_request",
                format!("status must be queued or sent, not {other:?}"),
            )
            .field("status"));
        }
    };
    let after = match q.after.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(crate::api::runs::parse_positive_id("after", s)?),
    };
    let limit = crate::api::runs::parse_limit(&q.limit)?;
    let page = state
        .store
        .outbox(auth.institution_id(), sent, after, limit)
        .await?;
    Ok(Json(page.into_iter().map(Into::into).collect()))
}

/// Mark a queued message sent: it joins the contact's history as an outgoing campaign SMS.
/// Marking it again changes nothing, so a sender may retry.
#[utoipa::path(post, path = "/api/v1/outbox/{id}/sent", operation_id = "mark_outbox_sent", params(("id" = i64, Path, description = "outbox id")), request_body(content = Option<SentBody>, description = "Optional: when it was sent."), responses(
    (status = 200, description = "The message, sent.", body = OutboxView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 413, response = d::PayloadTooLarge)))]
pub async fn mark_sent(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<OutboxView>> {
    let id = parse_id(&id)?;
    // Through body_bytes, so that a body over the limit is a 413 in the API's error shape.
    let body = crate::extract::body_bytes(req, &state).await?;
    let body: SentBody = if body.iter().all(u8::is_ascii_whitespace) {
        SentBody::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    Ok(Json(
        state
            .store
            .mark_outbox_sent(auth.institution_id(), id, body.sent_at)
            .await?
            .into(),
    ))
}
