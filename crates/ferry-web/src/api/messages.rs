//! `/api/v1/messages`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferry_core::message::{Channel, Direction, MAX_BODY_BYTES, MessageType};
use ferry_store::{Message, MessageQuery, NewMessage};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, QueryArgs};

#[derive(Serialize, utoipa::ToSchema)]
/// A message.
pub struct MessageView {
    /// The message's ID.
    pub id: i64,
    /// The contact it was exchanged with.
    pub contact_id: i64,
    #[schema(value_type = String)]
    /// `sms`, `web_chat`, `email`, `whatsapp` or `voice` (calls).
    pub channel: Channel,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    /// `ai_agent`, `live_chat` or `campaign`.
    pub message_type: MessageType,
    #[schema(value_type = String)]
    /// `incoming` (from the learner) or `outgoing`.
    pub direction: Direction,
    /// The text.
    pub body: String,
    #[schema(value_type = String, format = DateTime)]
    /// When it was sent.
    pub sent_at: jiff::Timestamp,
    /// Monotonic per institution, assigned at insert.
    pub sequence: i64,
    /// For a call (channel `voice`): its duration, agent, recording and review.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallView>,
}

/// The details of a call (a `voice` message from a bulk calls file).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CallView {
    /// Seconds.
    pub duration_secs: i64,
    /// Who took or made the call.
    pub agent: String,
    /// The recording's name, if the file named one.
    pub recording_name: Option<String>,
    /// `GET /api/v1/recordings/{recording_id}` plays it; `null` until it arrived.
    pub recording_id: Option<i64>,
    /// Whether someone marked it reviewed (reviewed calls are kept by retention).
    pub reviewed: bool,
    /// When it was marked reviewed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub reviewed_at: Option<jiff::Timestamp>,
}

impl From<ferry_store::CallInfo> for CallView {
    fn from(c: ferry_store::CallInfo) -> Self {
        CallView {
            duration_secs: c.duration_secs,
            agent: c.agent,
            recording_name: c
                .recording_path
                .map(|p| p.rsplit('/').next().unwrap_or(&p).to_string()),
            recording_id: c.recording_id,
            reviewed: c.reviewed_at.is_some(),
            reviewed_at: c.reviewed_at,
        }
    }
}

/// Adds the call details to the calls among `messages`.
pub async fn with_calls(
    state: &AppState,
    institution_id: i64,
    messages: Vec<Message>,
) -> ApiResult<Vec<MessageView>> {
    let ids: Vec<i64> = messages
        .iter()
        .filter(|m| m.channel == Channel::Voice)
        .map(|m| m.id)
        .collect();
    let mut calls = if ids.is_empty() {
        Default::default()
    } else {
        state.store.call_infos(institution_id, &ids).await?
    };
    Ok(messages
        .into_iter()
        .map(|m| {
            let call = calls.remove(&m.id).map(CallView::from);
            MessageView {
                call,
                ..MessageView::from(m)
            }
        })
        .collect())
}

/// A change to a message.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagePatch {
    /// Mark a call reviewed (`true`) or not (`false`); only calls can be.
    pub reviewed: bool,
}

/// Mark a call reviewed (or not): calls not reviewed within the retention period are deleted.
#[utoipa::path(patch, path = "/api/v1/messages/{id}", operation_id = "patch_message", params(("id" = i64, Path, description = "The message's ID.")), request_body = MessagePatch, responses(
    (status = 200, description = "The message with its call details.", body = MessageView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "The message is not a call (`field` is `reviewed`).", body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    JsonBody(raw): JsonBody<serde_json::Value>,
) -> ApiResult<Json<MessageView>> {
    let inst = auth.institution_id();
    // Another institution's message is not found, whatever the body says.
    state.store.message(inst, id).await?;
    let p: MessagePatch = crate::extract::parse_json(raw.to_string().as_bytes())?;
    state
        .store
        .set_message_reviewed(inst, id, p.reviewed)
        .await?;
    let m = state.store.message(inst, id).await?;
    let mut views = with_calls(&state, inst, vec![m]).await?;
    Ok(Json(views.remove(0)))
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        MessageView {
            id: m.id,
            contact_id: m.contact_id,
            channel: m.channel,
            message_type: m.message_type,
            direction: m.direction,
            body: m.body,
            sent_at: m.sent_at,
            sequence: m.sequence,
            call: None,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
/// A message to store.
pub struct MessageInput {
    /// The contact it was exchanged with.
    pub contact_id: i64,
    /// `sms`, `web_chat`, `email` or `whatsapp`.
    #[schema(value_type = String)]
    pub channel: Channel,
    /// `ai_agent`, `live_chat` or `campaign`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub message_type: MessageType,
    /// `incoming` (from the learner) or `outgoing`.
    #[schema(value_type = String)]
    pub direction: Direction,
    /// The text.
    pub body: String,
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub sent_at: jiff::Timestamp,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
/// Messages to store together.
pub struct MessageBatch {
    /// 1 to 1,000 messages, inserted together or not at all.
    pub messages: Vec<MessageInput>,
}

#[derive(Serialize, utoipa::ToSchema)]
/// A page of messages.
pub struct MessageList {
    /// The messages.
    pub messages: Vec<MessageView>,
}

/// Record messages (all or none).
#[utoipa::path(post, path = "/api/v1/messages", operation_id = "create_messages", request_body = MessageBatch, responses(
    (status = 201, description = "The recorded messages, with their sequences.", body = MessageList),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A message is not valid; `field` names it (`messages[2].channel`).", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(batch): JsonBody<MessageBatch>,
) -> ApiResult<(StatusCode, Json<MessageList>)> {
    if batch.messages.is_empty() || batch.messages.len() > 1000 {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "messages",
            "send between 1 and 1,000 messages",
        ));
    }
    for (i, m) in batch.messages.iter().enumerate() {
        if m.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::unprocessable(
                "value_too_long",
                format!("messages[{i}].body"),
                format!("a message body is at most {MAX_BODY_BYTES} bytes"),
            ));
        }
        if m.body.trim().is_empty() {
            return Err(ApiError::unprocessable(
                "invalid_value",
                format!("messages[{i}].body"),
                "a message needs a body",
            ));
        }
    }
    let new: Vec<NewMessage> = batch
        .messages
        .into_iter()
        .map(|m| NewMessage {
            contact_id: m.contact_id,
            channel: m.channel,
            message_type: m.message_type,
            direction: m.direction,
            body: m.body,
            sent_at: m.sent_at,
        })
        .collect();
    let inserted = state
        .store
        .insert_messages(auth.institution_id(), &new)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(MessageList {
            messages: inserted.into_iter().map(Into::into).collect(),
        }),
    ))
}

/// The query parameters of `GET /api/v1/messages`.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    /// Only these channels, comma-separated (`sms,email`).
    #[param(value_type = Option<Vec<d::ChannelValue>>, inline, style = Form, explode = false)]
    pub channel: Option<String>,
    /// Only these types, comma-separated.
    #[serde(rename = "type")]
    #[param(value_type = Option<Vec<d::MessageTypeValue>>, inline, style = Form, explode = false)]
    pub message_type: Option<String>,
    /// Only these directions, comma-separated.
    #[param(value_type = Option<Vec<d::DirectionValue>>, inline, style = Form, explode = false)]
    pub direction: Option<String>,
    /// Only this contact's messages (its platform ID).
    pub contact: Option<i64>,
    /// Only messages with a larger sequence (for incremental reads).
    pub after_sequence: Option<i64>,
    /// Page size, 1-1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn list_of<T: std::str::FromStr<Err = ferry_core::UnknownValue>>(
    field: &str,
    s: &Option<String>,
) -> ApiResult<Vec<T>> {
    s.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| ApiError::bad_request("invalid_value", e.to_string()).field(field))
        })
        .collect()
}

/// Messages by sequence, filtered.
#[utoipa::path(get, path = "/api/v1/messages", operation_id = "list_messages", params(MessageParams), responses(
    (status = 200, description = "The messages.", body = MessageList),
    (status = 400, response = d::BadQuery),
    (status = 401, response = d::Unauthorized)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    QueryArgs(p): QueryArgs<MessageParams>,
) -> ApiResult<Json<MessageList>> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            ApiError::bad_request("bad_request", "limit must be between 1 and 1000").field("limit"),
        );
    }
    let q = MessageQuery {
        channels: list_of("channel", &p.channel)?,
        types: list_of("type", &p.message_type)?,
        directions: list_of("direction", &p.direction)?,
        contact_id: p.contact,
        after_sequence: p.after_sequence,
        limit,
        ..Default::default()
    };
    let messages = state.store.list_messages(auth.institution_id(), &q).await?;
    Ok(Json(MessageList {
        messages: with_calls(&state, auth.institution_id(), messages).await?,
    }))
}
