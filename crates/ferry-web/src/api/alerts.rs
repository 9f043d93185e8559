//! `/api/v1/alert-settings` and `/api/v1/alerts`: where an institution hears that a run failed,
//! that a run's failed rows passed a threshold, or that a remote refused an integration's
//! credentials, and the alerts sent (webhooks signed with HMAC-SHA256, emails).

use axum::Json;
use axum::extract::State;
use ferry_store::{AlertRecord, AlertSettings, AlertSettingsInput, SecretChange};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;

/// An institution's alert settings. The webhook's signing secret is write-only.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertSettingsView {
    /// Where alerts are POSTed as JSON; `null` for no webhook.
    pub webhook_url: Option<String>,
    /// Whether a signing secret is set. With one, each POST carries `X-Ferry-Signature:
    /// sha256=<hex HMAC-SHA256 of "<X-Ferry-Timestamp>.<body>">`.
    pub webhook_secret_set: bool,
    /// Who gets alerts by email (needs the server's `FERRY_SMTP_URL`).
    pub emails: Vec<String>,
    /// Alert when a run fails.
    pub on_run_failed: bool,
    /// Alert when a run logs at least this many failed rows (Sync Log rows); `null` for never.
    pub failed_rows_threshold: Option<i64>,
    /// Alert when a remote refuses an integration's credentials.
    pub on_credentials_refused: bool,
    /// When they were last changed; `null` while never set.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<jiff::Timestamp>,
}

impl From<AlertSettings> for AlertSettingsView {
    fn from(s: AlertSettings) -> Self {
        AlertSettingsView {
            webhook_url: s.webhook_url,
            webhook_secret_set: s.webhook_secret_set,
            emails: s.emails,
            on_run_failed: s.on_run_failed,
            failed_rows_threshold: s.failed_rows_threshold,
            on_credentials_refused: s.on_credentials_refused,
            updated_at: s.updated_at,
        }
    }
}

/// New alert settings: they replace the old ones whole, except the secret when it is left out.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSettingsBody {
    /// `https://…` (or `http://…`); `null` or `""` for no webhook.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The signing secret (16 to 256 characters): left out, the one set is kept; `null`
    /// removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub webhook_secret: Option<Value>,
    /// Addresses that get alerts by email (at most 20).
    #[serde(default)]
    pub emails: Vec<String>,
    /// Alert when a run fails (default true).
    #[serde(default = "yes")]
    pub on_run_failed: bool,
    /// Alert when a run logs at least this many failed rows; `null` for never.
    #[serde(default)]
    pub failed_rows_threshold: Option<i64>,
    /// Alert when a remote refuses an integration's credentials (default true).
    #[serde(default = "yes")]
    pub on_credentials_refused: bool,
}

fn yes() -> bool {
    true
}

/// A field that is present, `null` included (`Some(Value::Null)`); absent stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An alert Ferry queued, and how its delivery went.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertView {
    /// The outbox ID, sent as `X-Ferry-Delivery` on every attempt.
    pub id: i64,
    /// The run it is about (`null` once that run is gone).
    pub run_id: Option<i64>,
    /// `webhook` or `email`.
    pub channel: String,
    /// The URL or the address.
    pub target: String,
    /// `run_failed`, `failed_rows` or `credentials_refused`.
    pub event: String,
    /// Attempts made so far (retried with a growing wait, for about a day).
    pub attempts: i64,
    /// When it was delivered; `null` while not (yet).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<jiff::Timestamp>,
    /// When Ferry stopped trying.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub gave_up_at: Option<jiff::Timestamp>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

impl From<AlertRecord> for AlertView {
    fn from(a: AlertRecord) -> Self {
        AlertView {
            id: a.id,
            run_id: a.run_id,
            channel: a.channel,
            target: a.target,
            event: a.event,
            attempts: a.attempts,
            delivered_at: a.delivered_at,
            gave_up_at: a.gave_up_at,
            last_error: a.last_error,
            created_at: a.created_at,
        }
    }
}

/// The institution's alert settings.
#[utoipa::path(get, path = "/api/v1/alert-settings", operation_id = "get_alert_settings", responses(
    (status = 200, description = "The settings.", body = AlertSettingsView),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn get_settings(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<AlertSettingsView>> {
    Ok(Json(
        state
            .store
            .alert_settings(auth.institution_id())
            .await?
            .into(),
    ))
}

/// Replace the institution's alert settings (nothing changes when a field is refused).
#[utoipa::path(put, path = "/api/v1/alert-settings", operation_id = "put_alert_settings", request_body = AlertSettingsBody, responses(
    (status = 200, description = "The new settings.", body = AlertSettingsView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A value is not valid; `field` names it.", body = ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody<AlertSettingsBody>,
) -> ApiResult<Json<AlertSettingsView>> {
    let webhook_secret = match body.webhook_secret {
        None => SecretChange::Keep,
        Some(Value::Null) => SecretChange::Remove,
        Some(Value::String(s)) => SecretChange::Set(s),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_value",
                "webhook_secret",
                "the signing secret must be a string, or null to remove it",
            ));
        }
    };
    let input = AlertSettingsInput {
        webhook_url: body.webhook_url,
        webhook_secret,
        emails: body.emails,
        on_run_failed: body.on_run_failed,
        failed_rows_threshold: body.failed_rows_threshold,
        on_credentials_refused: body.on_credentials_refused,
    };
    Ok(Json(
        state
            .store
            .set_alert_settings(auth.institution_id(), &input)
            .await?
            .into(),
    ))
}

/// The latest 100 alerts, newest first, with how their delivery went.
#[utoipa::path(get, path = "/api/v1/alerts", operation_id = "list_alerts", responses(
    (status = 200, description = "The alerts.", body = Vec<AlertView>),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<AlertView>>> {
    Ok(Json(
        state
            .store
            .list_alerts(auth.institution_id(), 100)
            .await?
            .into_iter()
            .map(AlertView::from)
            .collect(),
    ))
}
