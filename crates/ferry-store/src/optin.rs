//! Opt-in paths and the outbox (seed 004 "Preparing for setup"): an opt-in path is a named entry
//! point with a welcome message. When an integration creates a new opted-in contact with a path,
//! the welcome message is queued in the outbox for the platform's sender, at most once per
//! contact and path. The sender lists the queue and marks a message sent; marking it sent adds
//! it to the contact's history as an outgoing campaign SMS, in the same transaction.

use ferry_core::contact::ContactId;
use ferry_core::message::{Channel, Direction, MessageType};
use jiff::Timestamp;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::messages::NewMessage;
use crate::util::{get_opt_ts, get_ts, now};
use crate::{Result, Store, StoreError};

/// The longest path name.
const MAX_NAME: usize = 100;
/// The longest welcome message (a long SMS is about ten segments).
const MAX_WELCOME: usize = 1600;

/// A named entry point with a welcome message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OptInPath {
    /// The ID.
    pub id: i64,
    /// The name people see, unique in the institution.
    pub name: String,
    /// What a contact who joins by this path is sent first.
    pub welcome_message: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A new opt-in path, or a whole replacement of one.
#[derive(Debug, Clone, PartialEq)]
pub struct OptInPathInput {
    /// The name, unique in the institution.
    pub name: String,
    /// The welcome message.
    pub welcome_message: String,
}

/// A message waiting in (or sent from) the outbox.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxMessage {
    /// The outbox ID.
    pub id: i64,
    /// The contact to send it to.
    pub contact_id: ContactId,
    /// The opt-in path it welcomes to; `None` once the path was deleted.
    pub opt_in_path_id: Option<i64>,
    /// The integration that created the contact, when it still exists.
    pub integration_id: Option<i64>,
    /// The text, as it was when queued.
    pub body: String,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When the sender marked it sent; `None` while queued.
    pub sent_at: Option<Timestamp>,
    /// The message in the contact's history, once sent.
    pub message_id: Option<i64>,
}

const PATH_COLS: &str = "id, name, welcome_message, created_at, updated_at";
const OUTBOX_COLS: &str =
    "id, contact_id, opt_in_path_id, integration_id, body, queued_at, sent_at, message_id";

fn path_from(row: &AnyRow) -> Result<OptInPath, sqlx::Error> {
    Ok(OptInPath {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        welcome_message: row.try_get("welcome_message")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn outbox_from(row: &AnyRow) -> Result<OutboxMessage, sqlx::Error> {
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        contact_id: row.try_get("contact_id")?,
        opt_in_path_id: row.try_get("opt_in_path_id")?,
        integration_id: row.try_get("integration_id")?,
        body: row.try_get("body")?,
        queued_at: get_ts(row, "queued_at")?,
        sent_at: get_opt_ts(row, "sent_at")?,
        message_id: row.try_get("message_id")?,
    })
}

/// Trims and checks a path's values.
fn checked(input: &OptInPathInput) -> Result<OptInPathInput> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err(StoreError::invalid(
            "name",
            "missing_required_field",
            "name is required",
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Err(StoreError::invalid(
            "name",
            "invalid_value",
            format!("name is longer than {MAX_NAME} characters"),
        ));
    }
    let welcome = input.welcome_message.trim();
    if welcome.is_empty() {
        return Err(StoreError::invalid(
            "welcome_message",
            "missing_required_field",
            "welcome_message is required: it is what a new contact on this path is sent first",
        ));
    }
    if welcome.chars().count() > MAX_WELCOME {
        return Err(StoreError::invalid(
            "welcome_message",
            "invalid_value",
            format!("welcome_message is longer than {MAX_WELCOME} characters"),
        ));
    }
    if name
        .chars()
        .chain(welcome.chars())
        .any(|c| c.is_control() && c != '\n')
    {
        return Err(StoreError::invalid(
            if name.chars().any(char::is_control) {
                "name"
            } else {
                "welcome_message"
            },
            "invalid_value",
            "control characters are not allowed (a line break is, in the welcome message)",
        ));
    }
    Ok(OptInPathInput {
        name: name.to_string(),
        welcome_message: welcome.to_string(),
    })
}

fn name_taken(name: &str) -> StoreError {
    StoreError::invalid(
        "name",
        "conflict",
        format!("an opt-in path named {name:?} exists; choose another name"),
    )
}

impl Store {
    /// The institution's opt-in paths, by name.
    pub async fn opt_in_paths(&self, institution_id: i64) -> Result<Vec<OptInPath>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PATH_COLS} FROM opt_in_paths WHERE institution_id = $1 ORDER BY name, id"
        )))
        .bind(institution_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(path_from).collect::<Result<_, _>>()?)
    }

    /// One opt-in path of the institution.
    pub async fn opt_in_path(&self, institution_id: i64, id: i64) -> Result<OptInPath> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PATH_COLS} FROM opt_in_paths WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(path_from(&row)?)
    }

    /// Makes an opt-in path (audited).
    pub async fn create_opt_in_path(
        &self,
        institution_id: i64,
        input: &OptInPathInput,
    ) -> Result<OptInPath> {
        let input = checked(input)?;
        let mut tx = self.begin_write().await?;
        let t = now();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO opt_in_paths (institution_id, name, welcome_message, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING {PATH_COLS}"
        )))
        .bind(institution_id)
        .bind(&input.name)
        .bind(&input.welcome_message)
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                name_taken(&input.name)
            } else {
                e.into()
            }
        })?;
        let path = path_from(&row)?;
        audit(&mut tx, institution_id, "opt_in_path.created", &path, None).await?;
        tx.commit().await?;
        Ok(path)
    }

    /// Replaces an opt-in path's name and welcome message (audited). Messages already queued
    /// keep the text they were queued with.
    pub async fn update_opt_in_path(
        &self,
        institution_id: i64,
        id: i64,
        input: &OptInPathInput,
    ) -> Result<OptInPath> {
        let input = checked(input)?;
        let mut tx = self.begin_write().await?;
        let before = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PATH_COLS} FROM opt_in_paths WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let before = path_from(&before)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE opt_in_paths SET name = $1, welcome_message = $2, updated_at = $3 \
             WHERE institution_id = $4 AND id = $5 RETURNING {PATH_COLS}"
        )))
        .bind(&input.name)
        .bind(&input.welcome_message)
        .bind(now())
        .bind(institution_id)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                name_taken(&input.name)
            } else {
                e.into()
            }
        })?;
        let path = path_from(&row)?;
        audit(
            &mut tx,
            institution_id,
            "opt_in_path.updated",
            &path,
            Some(&before),
        )
        .await?;
        tx.commit().await?;
        Ok(path)
    }

    /// Deletes an opt-in path (audited). Queued welcome messages stay queued with their text.
    pub async fn delete_opt_in_path(&self, institution_id: i64, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM opt_in_paths WHERE institution_id = $1 AND id = $2 RETURNING {PATH_COLS}"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let path = path_from(&row)?;
        audit(&mut tx, institution_id, "opt_in_path.deleted", &path, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues the path's welcome message for a contact an integration created, unless this
    /// contact was already welcomed to this path (so a retried run queues nothing twice).
    /// Returns the queued message, or `None` when it was queued before.
    pub async fn queue_welcome(
        &self,
        institution_id: i64,
        contact_id: ContactId,
        opt_in_path_id: i64,
        integration_id: Option<i64>,
    ) -> Result<Option<OutboxMessage>> {
        let mut tx = self.begin_write().await?;
        let path = sqlx::query(
            "SELECT welcome_message FROM opt_in_paths WHERE institution_id = $1 AND id = $2",
        )
        .bind(institution_id)
        .bind(opt_in_path_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            StoreError::invalid(
                "opt_in_path_id",
                "not_found",
                format!("no opt-in path {opt_in_path_id} in this institution"),
            )
        })?;
        let welcome: String = path.try_get(0)?;
        let contact = sqlx::query("SELECT id FROM contacts WHERE institution_id = $1 AND id = $2")
            .bind(institution_id)
            .bind(contact_id)
            .fetch_optional(&mut *tx)
            .await?;
        if contact.is_none() {
            return Err(StoreError::invalid(
                "contact_id",
                "not_found",
                format!("no contact {contact_id} in this institution"),
            ));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO outbox (institution_id, contact_id, opt_in_path_id, integration_id, body, queued_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (contact_id, opt_in_path_id) DO NOTHING \
             RETURNING {OUTBOX_COLS}"
        )))
        .bind(institution_id)
        .bind(contact_id)
        .bind(opt_in_path_id)
        .bind(integration_id)
        .bind(&welcome)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let queued = row.as_ref().map(outbox_from).transpose()?;
        tx.commit().await?;
        Ok(queued)
    }

    /// The outbox, oldest first: the queued messages (`sent` false) or the sent ones (`sent`
    /// true), after the ID `after`, at most `limit` (1..=1,000).
    pub async fn outbox(
        &self,
        institution_id: i64,
        sent: bool,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE institution_id = $1 AND id > $2 AND sent_at IS {} \
             ORDER BY id LIMIT $3",
            if sent { "NOT NULL" } else { "NULL" }
        )))
        .bind(institution_id)
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(outbox_from).collect::<Result<_, _>>()?)
    }

    /// One message of the outbox.
    pub async fn outbox_message(&self, institution_id: i64, id: i64) -> Result<OutboxMessage> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(outbox_from(&row)?)
    }

    /// Marks a queued message sent at `sent_at` (now when `None`) and adds it to the contact's
    /// history as an outgoing campaign SMS, in one transaction. Marking a sent message again
    /// changes nothing and returns it as it is (the sender may retry).
    pub async fn mark_outbox_sent(
        &self,
        institution_id: i64,
        id: i64,
        sent_at: Option<Timestamp>,
    ) -> Result<OutboxMessage> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE institution_id = $1 AND id = $2{}",
            if self.backend == crate::Backend::Postgres {
                " FOR UPDATE"
            } else {
                ""
            }
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let queued = outbox_from(&row)?;
        if queued.sent_at.is_some() {
            return Ok(queued);
        }
        let at = sent_at.unwrap_or_else(Timestamp::now);
        let message = self
            .insert_messages_in(
                &mut tx,
                institution_id,
                &[NewMessage {
                    contact_id: queued.contact_id,
                    channel: Channel::Sms,
                    message_type: MessageType::Campaign,
                    direction: Direction::Outgoing,
                    body: queued.body.clone(),
                    sent_at: at,
                }],
            )
            .await?;
        let message_id = message.first().map(|m| m.id);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET sent_at = $1, message_id = $2 WHERE id = $3 RETURNING {OUTBOX_COLS}"
        )))
        .bind(crate::util::micros(at))
        .bind(message_id)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let sent = outbox_from(&row)?;
        tx.commit().await?;
        Ok(sent)
    }
}

async fn audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    institution_id: i64,
    kind: &str,
    path: &OptInPath,
    before: Option<&OptInPath>,
) -> Result<()> {
    let mut detail = json!({"name": path.name, "welcome_message": path.welcome_message});
    if let Some(b) = before {
        detail["before"] = json!({"name": b.name, "welcome_message": b.welcome_message});
    }
    crate::audit::write(
        &mut **tx,
        &crate::audit::current_actor(),
        crate::NewAuditEvent {
            institution_id: Some(institution_id),
            kind: kind.into(),
            target: format!("opt-in path {} {:?}", path.id, path.name),
            detail,
        },
    )
    .await
}
