//! Delivering the alerts the store queued with runs' outcomes: webhooks (a JSON POST signed with
//! HMAC-SHA256) and emails (SMTP). Each alert is tried until delivered, with a growing wait
//! between attempts, and given up after [`MAX_ATTEMPTS`]; every attempt is recorded in the
//! outbox, which the API lists.

use std::time::Duration;

use ferry_store::{PendingAlert, Store, StoreError};
use hmac::{KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tracing::{info, warn};

/// Attempts before an alert is given up (about a day with the waits below).
pub const MAX_ATTEMPTS: i64 = 12;
/// The longest wait between two attempts.
const LONGEST_RETRY: SignedDuration = SignedDuration::from_secs(4 * 3600);
/// How long a webhook receiver may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);
/// Alerts taken per round.
const BATCH: i64 = 50;

/// Where alert emails go out.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// `smtp://host:25`, `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:465` (lettre's URL forms). Holds a password: never logged.
    pub url: String,
    /// The `From:` address, e.g. `Ferry <ferry@example.edu>`.
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    /// The URL may hold a password: it is not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &"(set)")
            .field("from", &self.from)
            .finish()
    }
}

/// Sends alerts: one HTTP client for webhooks and, when configured, one SMTP transport.
pub struct AlertSender {
    http: reqwest::Client,
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, lettre::message::Mailbox)>,
}

/// Why the alert sender could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AlertSetupError {
    /// The SMTP URL is not one lettre understands (the URL is not repeated: it may hold a
    /// password).
    #[error("FERRY_SMTP_URL is not a valid SMTP URL (smtp://host:port, smtps://…): {0}")]
    SmtpUrl(String),
    /// The From address is not an address.
    #[error("FERRY_ALERT_FROM is not an email address: {0}")]
    From(String),
}

impl AlertSender {
    /// A sender for webhooks, and for emails when `smtp` is set.
    pub fn new(smtp: Option<&SmtpSettings>) -> Result<AlertSender, AlertSetupError> {
        let smtp = match smtp {
            Some(s) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&s.url)
                    .map_err(|e| AlertSetupError::SmtpUrl(e.to_string()))?
                    .timeout(Some(Duration::from_secs(30)))
                    .build();
                let from = s.from.parse().map_err(|e: lettre::address::AddressError| {
                    AlertSetupError::From(e.to_string())
                })?;
                Some((transport, from))
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a default HTTP client builds");
        Ok(AlertSender { http, smtp })
    }

    /// Delivers the alerts due now; returns how many were delivered.
    /// `first_retry` is the wait after a first failed attempt; it doubles after each further one.
    pub async fn deliver_due(
        &self,
        store: &Store,
        worker_id: &str,
        first_retry: Duration,
    ) -> Result<usize, StoreError> {
        let due = store
            .take_due_alerts(worker_id, Timestamp::now(), BATCH)
            .await?;
        let mut delivered = 0;
        for alert in due {
            let result = self.send(store, &alert).await;
            let retry_at = match &result {
                Ok(()) => None,
                Err(_) if alert.attempts + 1 >= MAX_ATTEMPTS => None,
                Err(_) => Some(Timestamp::now() + retry_wait(first_retry, alert.attempts)),
            };
            match &result {
                Ok(()) => {
                    delivered += 1;
                    info!(alert_id = alert.id, channel = %alert.channel, event = %alert.event, "alert delivered");
                }
                Err(e) if retry_at.is_none() => {
                    warn!(alert_id = alert.id, channel = %alert.channel, error = %e, attempts = alert.attempts + 1, "alert given up")
                }
                Err(e) => {
                    warn!(alert_id = alert.id, channel = %alert.channel, error = %e, "alert not delivered; will try again")
                }
            }
            store.alert_attempted(alert.id, result, retry_at).await?;
        }
        Ok(delivered)
    }

    async fn send(&self, store: &Store, alert: &PendingAlert) -> Result<(), String> {
        match alert.channel.as_str() {
            "webhook" => self.post(store, alert).await,
            "email" => self.email(alert).await,
            other => Err(format!("unknown alert channel {other:?}")),
        }
    }

    /// POSTs the alert's JSON. Headers: `X-Ferry-Event`, `X-Ferry-Delivery` (the outbox ID,
    /// the same on every attempt), `X-Ferry-Timestamp` (Unix seconds) and, with a secret,
    /// `X-Ferry-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
    async fn post(&self, store: &Store, alert: &PendingAlert) -> Result<(), String> {
        let body = alert.payload.to_string();
        let timestamp = Timestamp::now().as_second().to_string();
        let mut request = self
            .http
            .post(&alert.target)
            .header("content-type", "application/json")
            .header("user-agent", "Ferry-Alerts/1")
            .header("x-ferry-event", &alert.event)
            .header("x-ferry-delivery", alert.id.to_string())
            .header("x-ferry-timestamp", &timestamp);
        let secret = store
            .alert_webhook_secret(alert.institution_id)
            .await
            .map_err(|e| format!("the signing secret could not be read: {e}"))?;
        if let Some(secret) = secret {
            request = request.header("x-ferry-signature", signature(&secret, &timestamp, &body));
        }
        let answer = request
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the webhook could not be reached: {}", without_url(&e)))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }

    async fn email(&self, alert: &PendingAlert) -> Result<(), String> {
        let Some((transport, from)) = &self.smtp else {
            return Err("no SMTP server is configured (FERRY_SMTP_URL)".into());
        };
        let to = alert
            .target
            .parse()
            .map_err(|e| format!("{:?} is not an address: {e}", alert.target))?;
        let (subject, text) = email_text(alert);
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| format!("the email could not be built: {e}"))?;
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("the SMTP server did not take the email: {e}"))
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, `"<timestamp>.<body>"`).
pub fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The wait after `attempts` failed attempts: `first`, twice that, four times… up to 4 hours.
fn retry_wait(first: Duration, attempts: i64) -> SignedDuration {
    let first = SignedDuration::try_from(first).unwrap_or(LONGEST_RETRY);
    let factor = 1i64 << attempts.clamp(0, 20);
    first
        .checked_mul(i32::try_from(factor).unwrap_or(i32::MAX))
        .unwrap_or(LONGEST_RETRY)
        .min(LONGEST_RETRY)
}

/// A transport error without the URL (which may carry a token in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "the webhook URL");
    }
    s
}

/// The subject and the plain text of an alert's email.
fn email_text(alert: &PendingAlert) -> (String, String) {
    let run = &alert.payload["run"];
    let name = run["integration_name"].as_str().unwrap_or("An integration");
    let id = run["id"].as_i64().unwrap_or_default();
    let subject = match alert.event.as_str() {
        "credentials_refused" => format!("Ferry: {name} needs its credentials entered again"),
        "failed_rows" => format!(
            "Ferry: {name} could not sync {} contacts",
            run["failed_rows"].as_i64().unwrap_or_default()
        ),
        _ => format!("Ferry: a run of {name} failed"),
    };
    let mut text = format!(
        "{subject}.\n\nInstitution: {}\nRun: {id} ({}, {})\nStatus: {}\nRows: {}\nFailed rows (Sync Log): {}\n",
        alert.payload["institution"].as_str().unwrap_or(""),
        run["kind"].as_str().unwrap_or(""),
        run["trigger"].as_str().unwrap_or(""),
        run["status"].as_str().unwrap_or(""),
        run["rows"].as_i64().unwrap_or_default(),
        run["failed_rows"].as_i64().unwrap_or_default(),
    );
    if let Some(e) = run["error"].as_str() {
        text.push_str(&format!("Reason: {e}\n"));
    }
    text.push_str("\nSee Recent Runs and the Sync Log in Ferry for the details.\n");
    (subject, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_documented_recipe() {
        // HMAC-SHA256("key", "1.{}"), computed independently with Python's hmac module.
        assert_eq!(
            signature("key", "1", "{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn waits_grow_and_are_capped() {
        let first = Duration::from_secs(30);
        assert_eq!(retry_wait(first, 0), SignedDuration::from_secs(30));
        assert_eq!(retry_wait(first, 1), SignedDuration::from_secs(60));
        assert_eq!(retry_wait(first, 30), LONGEST_RETRY);
    }
}
