//! Settings → Alerts: where an institution hears that a run failed, that a run's failed rows
//! passed a threshold, or that a remote refused an integration's credentials (a webhook signed
//! with HMAC-SHA256 and/or emails), and the alerts sent with how their delivery went.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_store::{AlertRecord, AlertSettingsInput, SecretChange};
use serde::Deserialize;

use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;

/// Alerts listed on the page.
const LISTED: i64 = 50;

struct AlertRow {
    when: String,
    event: &'static str,
    channel: String,
    target: String,
    run_id: Option<i64>,
    status: &'static str,
    status_class: &'static str,
    attempts: i64,
    last_error: String,
}

/// What the form shows: the saved settings, or what was typed when a save was refused.
struct FormValues {
    webhook_url: String,
    secret_set: bool,
    emails: String,
    on_run_failed: bool,
    threshold: String,
    on_credentials_refused: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "alerts.html")]
struct AlertsPage {
    nav: Nav,
    form: FormValues,
    smtp: bool,
    updated: String,
    /// Why the save was refused; empty when it was not.
    error: String,
    /// The form field the error is about (`webhook_url`, `emails`…).
    error_field: String,
    /// That field's label, for the summary above the form.
    error_label: &'static str,
    notice: Option<String>,
    alerts: Vec<AlertRow>,
}

fn event_label(event: &str) -> &'static str {
    match event {
        "run_failed" => "A run failed",
        "failed_rows" => "Failed rows passed the threshold",
        "credentials_refused" => "Credentials refused",
        _ => "Other",
    }
}

fn row(a: AlertRecord, tz: &str) -> AlertRow {
    let (status, status_class) = if a.delivered_at.is_some() {
        ("Delivered", "badge-ok")
    } else if a.gave_up_at.is_some() {
        ("Gave up", "badge-danger")
    } else if a.attempts > 0 {
        ("Retrying", "badge-warn")
    } else {
        ("Queued", "badge-muted")
    };
    AlertRow {
        when: fmt_time(a.created_at, tz),
        event: event_label(&a.event),
        channel: if a.channel == "email" {
            "Email".into()
        } else {
            "Webhook".into()
        },
        target: a.target,
        run_id: a.run_id,
        status,
        status_class,
        attempts: a.attempts,
        last_error: a.last_error.unwrap_or_default(),
    }
}

struct Outcome {
    status: StatusCode,
    error: Option<ApiError>,
    notice: Option<String>,
    typed: Option<FormValues>,
}

async fn render(state: &AppState, auth: &Auth, o: Outcome) -> Response {
    let inst = &auth.principal.institution;
    let tz = inst.time_zone.as_str();
    let (settings, alerts) = match tokio::try_join!(
        state.store.alert_settings(inst.id),
        state.store.list_alerts(inst.id, LISTED)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    let form = o.typed.unwrap_or_else(|| FormValues {
        webhook_url: settings.webhook_url.clone().unwrap_or_default(),
        secret_set: settings.webhook_secret_set,
        emails: settings.emails.join("\n"),
        on_run_failed: settings.on_run_failed,
        threshold: settings
            .failed_rows_threshold
            .map(|t| t.to_string())
            .unwrap_or_default(),
        on_credentials_refused: settings.on_credentials_refused,
    });
    let (error, error_field) = match o.error {
        // `emails[3]`: the address list as a whole is the form's field.
        Some(e) => (
            e.message,
            e.field
                .map(|f| f.split('[').next().unwrap_or_default().to_string())
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    let error_label = match error_field.as_str() {
        "webhook_url" => "Webhook URL",
        "webhook_secret" => "Signing secret",
        "emails" => "Addresses",
        "failed_rows_threshold" => "Failed rows",
        _ => "Alert settings",
    };
    let page = AlertsPage {
        nav: Nav::new(state, auth, "alerts"),
        form,
        smtp: state.config.smtp_configured,
        updated: settings
            .updated_at
            .map(|t| fmt_time(t, tz))
            .unwrap_or_default(),
        error,
        error_field,
        error_label,
        notice: o.notice,
        alerts: alerts.into_iter().map(|a| row(a, tz)).collect(),
    };
    (o.status, page).into_response()
}

/// Settings → Alerts.
pub async fn page(State(state): State<AppState>, auth: Auth) -> Response {
    let o = Outcome {
        status: StatusCode::OK,
        error: None,
        notice: None,
        typed: None,
    };
    render(&state, &auth, o).await
}

/// The settings form. Checkboxes are sent only when ticked.
#[derive(Deserialize)]
pub struct AlertsForm {
    #[serde(default)]
    webhook_url: String,
    /// Blank keeps the secret that is set.
    #[serde(default)]
    webhook_secret: String,
    #[serde(default)]
    remove_secret: Option<String>,
    /// One address per line (commas work too).
    #[serde(default)]
    emails: String,
    #[serde(default)]
    on_run_failed: Option<String>,
    #[serde(default)]
    failed_rows_threshold: String,
    #[serde(default)]
    on_credentials_refused: Option<String>,
}

/// Saves the settings; a refused field is shown next to itself with everything typed kept
/// (except the secret, which is never sent back to the browser).
pub async fn save(
    State(state): State<AppState>,
    auth: Auth,
    Form(f): Form<AlertsForm>,
) -> Response {
    let secret_set = match state.store.alert_settings(auth.institution_id()).await {
        Ok(s) => s.webhook_secret_set,
        Err(e) => return ui_error(e.into()),
    };
    let typed = FormValues {
        webhook_url: f.webhook_url.clone(),
        secret_set,
        emails: f.emails.clone(),
        on_run_failed: f.on_run_failed.is_some(),
        threshold: f.failed_rows_threshold.clone(),
        on_credentials_refused: f.on_credentials_refused.is_some(),
    };
    let refuse = |e: ApiError, typed: FormValues| Outcome {
        status: e.status,
        error: Some(e),
        notice: None,
        typed: Some(typed),
    };
    let threshold = f.failed_rows_threshold.trim();
    let failed_rows_threshold = if threshold.is_empty() {
        None
    } else {
        match threshold.parse::<i64>() {
            Ok(t) => Some(t),
            Err(_) => {
                let e = ApiError::unprocessable(
                    "invalid_value",
                    "failed_rows_threshold",
                    "the threshold must be a whole number of failed rows, or empty for never",
                );
                return render(&state, &auth, refuse(e, typed)).await;
            }
        }
    };
    let webhook_secret = if f.remove_secret.is_some() {
        SecretChange::Remove
    } else if f.webhook_secret.is_empty() {
        SecretChange::Keep
    } else {
        SecretChange::Set(f.webhook_secret.clone())
    };
    let input = AlertSettingsInput {
        webhook_url: Some(f.webhook_url.trim().to_string()).filter(|u| !u.is_empty()),
        webhook_secret,
        emails: f
            .emails
            .split(['\n', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect(),
        on_run_failed: f.on_run_failed.is_some(),
        failed_rows_threshold,
        on_credentials_refused: f.on_credentials_refused.is_some(),
    };
    match state
        .store
        .set_alert_settings(auth.institution_id(), &input)
        .await
    {
        Ok(_) => {
            let o = Outcome {
                status: StatusCode::OK,
                error: None,
                notice: Some("Saved the alert settings.".into()),
                typed: None,
            };
            render(&state, &auth, o).await
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.is_internal() {
                return ui_error(e);
            }
            render(&state, &auth, refuse(e, typed)).await
        }
    }
}
