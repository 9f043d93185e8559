//! Alerts: where an institution wants to hear that a run failed, that a run's failed rows passed
//! a threshold, or that a remote refused an integration's credentials, and the outbox of alerts
//! to deliver. Alerts are queued in the transaction that records the run's outcome, so an
//! outcome is never recorded without its alerts; delivery (by the worker) is at least once, each
//! delivery carrying its outbox ID for receivers to deduplicate.

use ferry_core::email::Email;
use ferry_core::run::RunStatus;
use jiff::Timestamp;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::runs::RunOutcome;
use crate::util::{get_bool, get_opt_ts, get_ts, micros, now};
use crate::{Backend, Result, Store, StoreError};

/// The events an alert is sent for.
pub mod event {
    /// A run failed.
    pub const RUN_FAILED: &str = "run_failed";
    /// A run's Sync Log rows (contacts that failed) reached the threshold.
    pub const FAILED_ROWS: &str = "failed_rows";
    /// The remote refused the integration's credentials (they need a person).
    pub const CREDENTIALS_REFUSED: &str = "credentials_refused";
}

/// How long a worker may take to deliver an alert it took before another may try it.
const DELIVERY_LEASE_SECS: i64 = 60;
/// Longest URL or address kept.
const MAX_TARGET: usize = 2048;
/// Most email recipients.
const MAX_EMAILS: usize = 20;

/// An institution's alert settings. The webhook's signing secret is write-only: only whether it
/// is set is shown.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertSettings {
    /// Where alerts are POSTed as JSON (`https://…`); `None` for no webhook.
    pub webhook_url: Option<String>,
    /// Whether a signing secret is set (the body's HMAC-SHA256 goes in `X-Ferry-Signature`).
    pub webhook_secret_set: bool,
    /// Who gets alerts by email.
    pub emails: Vec<String>,
    /// Alert when a run fails.
    pub on_run_failed: bool,
    /// Alert when a run logs at least this many failed rows; `None` for never.
    pub failed_rows_threshold: Option<i64>,
    /// Alert when a remote refuses an integration's credentials.
    pub on_credentials_refused: bool,
    /// When they were last changed; `None` while never set.
    pub updated_at: Option<Timestamp>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            webhook_url: None,
            webhook_secret_set: false,
            emails: Vec::new(),
            on_run_failed: true,
            failed_rows_threshold: None,
            on_credentials_refused: true,
            updated_at: None,
        }
    }
}

/// What to do with a write-only secret on a save.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SecretChange {
    /// Keep the one set (or none).
    #[default]
    Keep,
    /// Set this one.
    Set(String),
    /// Remove it.
    Remove,
}

/// New alert settings (they replace the old ones whole, except a kept secret).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertSettingsInput {
    /// See [`AlertSettings::webhook_url`]; blank means none.
    pub webhook_url: Option<String>,
    /// The webhook's signing secret.
    pub webhook_secret: SecretChange,
    /// See [`AlertSettings::emails`].
    pub emails: Vec<String>,
    /// See [`AlertSettings::on_run_failed`].
    pub on_run_failed: bool,
    /// See [`AlertSettings::failed_rows_threshold`].
    pub failed_rows_threshold: Option<i64>,
    /// See [`AlertSettings::on_credentials_refused`].
    pub on_credentials_refused: bool,
}

/// An alert taken for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAlert {
    /// The outbox ID: the same on every attempt, for receivers to deduplicate.
    pub id: i64,
    /// The institution it belongs to.
    pub institution_id: i64,
    /// `webhook` or `email`.
    pub channel: String,
    /// The URL or the address.
    pub target: String,
    /// One of [`event`]'s names.
    pub event: String,
    /// The alert's JSON body.
    pub payload: Value,
    /// Attempts before this one.
    pub attempts: i64,
}

/// An alert in the outbox, as the API lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRecord {
    /// The outbox ID.
    pub id: i64,
    /// The run it is about, if it still exists.
    pub run_id: Option<i64>,
    /// `webhook` or `email`.
    pub channel: String,
    /// The URL or the address.
    pub target: String,
    /// One of [`event`]'s names.
    pub event: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// When it was delivered; `None` while not.
    pub delivered_at: Option<Timestamp>,
    /// When Ferry stopped trying; `None` while it still tries or after a delivery.
    pub gave_up_at: Option<Timestamp>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
}

fn secret_context(institution_id: i64) -> String {
    format!("alert-webhook:{institution_id}")
}

/// Checks new settings; every problem is named by its field.
fn validate(input: &AlertSettingsInput) -> Result<(Option<String>, Vec<String>)> {
    let url = input
        .webhook_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(u) = url {
        let ok_scheme = u.starts_with("https://") || u.starts_with("http://");
        let host = u.split_once("://").map_or("", |(_, rest)| rest);
        if !ok_scheme || host.is_empty() || host.starts_with('/') || u.len() > MAX_TARGET {
            return Err(StoreError::invalid(
                "webhook_url",
                "invalid_value",
                "the webhook URL must be an http:// or https:// address, such as https://hooks.example.edu/ferry",
            ));
        }
        if u.chars().any(char::is_whitespace) {
            return Err(StoreError::invalid(
                "webhook_url",
                "invalid_value",
                "the webhook URL must not contain spaces",
            ));
        }
    }
    if let SecretChange::Set(s) = &input.webhook_secret
        && (s.len() < 16 || s.len() > 256)
    {
        return Err(StoreError::invalid(
            "webhook_secret",
            "invalid_value",
            "the signing secret must be 16 to 256 characters long",
        ));
    }
    if input.emails.len() > MAX_EMAILS {
        return Err(StoreError::invalid(
            "emails",
            "invalid_value",
            format!("at most {MAX_EMAILS} addresses"),
        ));
    }
    let mut emails = Vec::new();
    for (i, e) in input.emails.iter().enumerate() {
        let parsed = Email::parse(e.trim()).map_err(|err| {
            StoreError::invalid(
                &format!("emails[{i}]"),
                "invalid_email",
                format!("{:?} is not an email address: {err}", e.trim()),
            )
        })?;
        if !emails.contains(&parsed.as_str().to_string()) {
            emails.push(parsed.as_str().to_string());
        }
    }
    if let Some(t) = input.failed_rows_threshold
        && t < 1
    {
        return Err(StoreError::invalid(
            "failed_rows_threshold",
            "invalid_value",
            "the threshold is a number of failed rows, at least 1 (leave it empty for no such alert)",
        ));
    }
    Ok((url.map(str::to_string), emails))
}

fn settings_from(row: &AnyRow) -> Result<AlertSettings> {
    let emails: String = row.try_get("emails")?;
    Ok(AlertSettings {
        webhook_url: row.try_get("webhook_url")?,
        webhook_secret_set: row
            .try_get::<Option<Vec<u8>>, _>("webhook_secret")?
            .is_some(),
        emails: serde_json::from_str(&emails)
            .map_err(|e| StoreError::Db(sqlx::Error::Decode(e.into())))?,
        on_run_failed: get_bool(row, "on_run_failed")?,
        failed_rows_threshold: row.try_get("failed_rows_threshold")?,
        on_credentials_refused: get_bool(row, "on_credentials_refused")?,
        updated_at: Some(get_ts(row, "updated_at")?),
    })
}

const SETTINGS_COLS: &str = "webhook_url, webhook_secret, emails, on_run_failed, failed_rows_threshold, on_credentials_refused, updated_at";

impl Store {
    /// The institution's alert settings (the defaults while never set: no webhook, no emails).
    pub async fn alert_settings(&self, institution_id: i64) -> Result<AlertSettings> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SETTINGS_COLS} FROM alert_settings WHERE institution_id = $1"
        )))
        .bind(institution_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref()
            .map(settings_from)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Replaces the institution's alert settings after checking them (nothing changes when a
    /// field is refused).
    pub async fn set_alert_settings(
        &self,
        institution_id: i64,
        input: &AlertSettingsInput,
    ) -> Result<AlertSettings> {
        let (url, emails) = validate(input)?;
        let mut tx = self.begin_write().await?;
        let old: Option<Option<Vec<u8>>> =
            sqlx::query("SELECT webhook_secret FROM alert_settings WHERE institution_id = $1")
                .bind(institution_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let secret = match &input.webhook_secret {
            SecretChange::Keep => old.flatten(),
            SecretChange::Set(s) => Some(
                self.secrets
                    .seal(&secret_context(institution_id), s.as_bytes()),
            ),
            SecretChange::Remove => None,
        };
        let emails_json = serde_json::to_string(&emails).expect("strings serialize");
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO alert_settings (institution_id, webhook_url, webhook_secret, emails, on_run_failed, failed_rows_threshold, on_credentials_refused, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (institution_id) DO UPDATE SET webhook_url = $2, webhook_secret = $3, emails = $4, on_run_failed = $5, failed_rows_threshold = $6, on_credentials_refused = $7, updated_at = $8 \
             RETURNING {SETTINGS_COLS}"
        )))
        .bind(institution_id)
        .bind(url)
        .bind(secret)
        .bind(emails_json)
        .bind(input.on_run_failed)
        .bind(input.failed_rows_threshold)
        .bind(input.on_credentials_refused)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        let saved = settings_from(&row)?;
        crate::audit::write(
            &mut *tx,
            &crate::audit::current_actor(),
            crate::NewAuditEvent {
                institution_id: Some(institution_id),
                kind: "alerts.updated".into(),
                target: "alert settings".into(),
                // The signing secret only as whether one is set (and whether this save changed it).
                detail: json!({
                    "webhook_url": saved.webhook_url,
                    "signing_secret_change": match input.webhook_secret {
                        SecretChange::Keep => "kept",
                        SecretChange::Set(_) => "set",
                        SecretChange::Remove => "removed",
                    },
                    "emails": saved.emails,
                    "on_run_failed": saved.on_run_failed,
                    "failed_rows_threshold": saved.failed_rows_threshold,
                    "on_credentials_refused": saved.on_credentials_refused,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// The webhook's signing secret, decrypted, for the delivery of an alert.
    pub async fn alert_webhook_secret(&self, institution_id: i64) -> Result<Option<String>> {
        let sealed: Option<Vec<u8>> =
            sqlx::query("SELECT webhook_secret FROM alert_settings WHERE institution_id = $1")
                .bind(institution_id)
                .fetch_optional(&self.read)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .flatten();
        sealed
            .map(|s| {
                let plain = self.secrets.open(&secret_context(institution_id), &s)?;
                String::from_utf8(plain).map_err(|e| StoreError::Crypto(e.to_string()))
            })
            .transpose()
    }

    /// Queues the alerts a run's outcome calls for, in the transaction that records it.
    pub(crate) async fn queue_run_alerts(
        &self,
        tx: &mut Transaction<'static, Any>,
        run_id: i64,
        outcome: &RunOutcome,
    ) -> Result<()> {
        let Some(run) = sqlx::query(
            "SELECT r.institution_id, r.integration_id, r.kind, r.trigger_kind, i.name, s.webhook_url, s.emails, s.on_run_failed, s.failed_rows_threshold, s.on_credentials_refused, inst.slug \
             FROM runs r JOIN alert_settings s ON s.institution_id = r.institution_id \
             JOIN institutions inst ON inst.id = r.institution_id \
             LEFT JOIN integrations i ON i.id = r.integration_id WHERE r.id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut **tx)
        .await?
        else {
            return Ok(()); // no alert settings
        };
        let institution_id: i64 = run.try_get("institution_id")?;
        let failed_rows: i64 = sqlx::query("SELECT COUNT(*) FROM sync_log WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        let mut events = Vec::new();
        if outcome.credentials_refused && get_bool(&run, "on_credentials_refused")? {
            events.push(event::CREDENTIALS_REFUSED);
        } else if outcome.status == RunStatus::Failed && get_bool(&run, "on_run_failed")? {
            events.push(event::RUN_FAILED);
        }
        if let Some(t) = run.try_get::<Option<i64>, _>("failed_rows_threshold")?
            && failed_rows >= t
        {
            events.push(event::FAILED_ROWS);
        }
        if events.is_empty() {
            return Ok(());
        }
        let mut targets: Vec<(&str, String)> = Vec::new();
        if let Some(url) = run.try_get::<Option<String>, _>("webhook_url")? {
            targets.push(("webhook", url));
        }
        let emails: Vec<String> =
            serde_json::from_str(&run.try_get::<String, _>("emails")?).unwrap_or_default();
        targets.extend(emails.into_iter().map(|e| ("email", e)));
        let at = now();
        for ev in events {
            let payload = json!({
                "event": ev,
                "institution": run.try_get::<String, _>("slug")?,
                "run": {
                    "id": run_id,
                    "integration_id": run.try_get::<i64, _>("integration_id")?,
                    "integration_name": run.try_get::<Option<String>, _>("name")?,
                    "kind": run.try_get::<String, _>("kind")?,
                    "trigger": run.try_get::<String, _>("trigger_kind")?,
                    "status": outcome.status.as_str(),
                    "rows": outcome.rows,
                    "failed_rows": failed_rows,
                    "error": outcome.error,
                },
                "at": crate::util::from_micros(at).to_string(),
            })
            .to_string();
            for (channel, target) in &targets {
                sqlx::query("INSERT INTO alert_outbox (institution_id, run_id, channel, target, event, payload, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
                    .bind(institution_id)
                    .bind(run_id)
                    .bind(*channel)
                    .bind(target.clone())
                    .bind(ev)
                    .bind(payload.clone())
                    .bind(at)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// Takes up to `limit` alerts due at `now` for `worker`, which has [`DELIVERY_LEASE_SECS`]
    /// to report on each before another worker may take it again.
    pub async fn take_due_alerts(
        &self,
        worker: &str,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<PendingAlert>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE alert_outbox SET lease_owner = $1, next_attempt_at = $2 WHERE id IN \
             (SELECT id FROM alert_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $3 ORDER BY id LIMIT $4{lock}) \
             RETURNING id, institution_id, channel, target, event, payload, attempts"
        )))
        .bind(worker)
        .bind(micros(now) + DELIVERY_LEASE_SECS * 1_000_000)
        .bind(micros(now))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out: Vec<PendingAlert> = rows
            .iter()
            .map(|r| {
                Ok(PendingAlert {
                    id: r.try_get("id")?,
                    institution_id: r.try_get("institution_id")?,
                    channel: r.try_get("channel")?,
                    target: r.try_get("target")?,
                    event: r.try_get("event")?,
                    payload: serde_json::from_str(&r.try_get::<String, _>("payload")?)
                        .unwrap_or(Value::Null),
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<_>>()?;
        out.sort_by_key(|a| a.id);
        Ok(out)
    }

    /// Records an attempt to deliver an alert: delivered (`Ok`), to be tried again at
    /// `retry_at`, or given up (`retry_at` `None`).
    pub async fn alert_attempted(
        &self,
        id: i64,
        result: std::result::Result<(), String>,
        retry_at: Option<Timestamp>,
    ) -> Result<()> {
        let at = now();
        match result {
            Ok(()) => sqlx::query("UPDATE alert_outbox SET delivered_at = $1, attempts = attempts + 1, last_error = NULL, lease_owner = NULL WHERE id = $2")
                .bind(at)
                .bind(id)
                .execute(&self.write)
                .await?,
            Err(e) => match retry_at {
                Some(t) => sqlx::query("UPDATE alert_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, lease_owner = NULL WHERE id = $3")
                    .bind(e)
                    .bind(micros(t))
                    .bind(id)
                    .execute(&self.write)
                    .await?,
                None => sqlx::query("UPDATE alert_outbox SET attempts = attempts + 1, last_error = $1, gave_up_at = $2, lease_owner = NULL WHERE id = $3")
                    .bind(e)
                    .bind(at)
                    .bind(id)
                    .execute(&self.write)
                    .await?,
            },
        };
        Ok(())
    }

    /// The institution's latest alerts, newest first (at most `limit`, up to 500).
    pub async fn list_alerts(&self, institution_id: i64, limit: i64) -> Result<Vec<AlertRecord>> {
        let rows = sqlx::query("SELECT id, run_id, channel, target, event, attempts, delivered_at, gave_up_at, last_error, created_at FROM alert_outbox WHERE institution_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(institution_id)
            .bind(limit.clamp(1, 500))
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertRecord {
                    id: r.try_get("id")?,
                    run_id: r.try_get("run_id")?,
                    channel: r.try_get("channel")?,
                    target: r.try_get("target")?,
                    event: r.try_get("event")?,
                    attempts: r.try_get("attempts")?,
                    delivered_at: get_opt_ts(r, "delivered_at")?,
                    gave_up_at: get_opt_ts(r, "gave_up_at")?,
                    last_error: r.try_get("last_error")?,
                    created_at: get_ts(r, "created_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AlertSettingsInput {
        AlertSettingsInput {
            webhook_url: Some("https://hooks.example.edu/ferry".into()),
            webhook_secret: SecretChange::Set("0123456789abcdef".into()),
            emails: vec!["Ops@Example.edu".into()],
            on_run_failed: true,
            failed_rows_threshold: Some(10),
            on_credentials_refused: true,
        }
    }

    fn field_of(e: StoreError) -> String {
        match e {
            StoreError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        let (url, emails) = validate(&input()).unwrap();
        assert_eq!(url.as_deref(), Some("https://hooks.example.edu/ferry"));
        assert_eq!(emails, ["Ops@example.edu"]);
        for (bad, field) in [
            (
                AlertSettingsInput {
                    webhook_url: Some("ftp://x".into()),
                    ..input()
                },
                "webhook_url",
            ),
            (
                AlertSettingsInput {
                    webhook_secret: SecretChange::Set("short".into()),
                    ..input()
                },
                "webhook_secret",
            ),
            (
                AlertSettingsInput {
                    emails: vec!["ok@example.edu".into(), "not an address".into()],
                    ..input()
                },
                "emails[1]",
            ),
            (
                AlertSettingsInput {
                    failed_rows_threshold: Some(0),
                    ..input()
                },
                "failed_rows_threshold",
            ),
        ] {
            assert_eq!(field_of(validate(&bad).unwrap_err()), field);
        }
        // A blank URL is no webhook.
        let (url, _) = validate(&AlertSettingsInput {
            webhook_url: Some("  ".into()),
            ..input()
        })
        .unwrap();
        assert_eq!(url, None);
    }
}
