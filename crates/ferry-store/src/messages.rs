//! Messages. Each takes the next value of its institution's message sequence at insert; exports
//! advance on that sequence, never on timestamps.

use ferry_core::contact::ContactId;
use ferry_core::message::{Channel, Direction, MessageType};
use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::util::{Filter, Params, get_ts, micros, now};
use crate::{Result, Store, StoreError};

/// A stored message between the platform and a contact.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Message {
    /// The ID.
    pub id: i64,
    /// The contact it was sent to or received from.
    pub contact_id: ContactId,
    /// Where it was sent or received.
    pub channel: Channel,
    /// Who or what produced it.
    #[serde(rename = "type")]
    pub message_type: MessageType,
    /// From or to the learner.
    pub direction: Direction,
    /// The text.
    pub body: String,
    /// When it was sent or received, as the source says (exports do not order by it).
    pub sent_at: Timestamp,
    /// Its place in the institution's message sequence, taken at insert.
    pub sequence: i64,
}

/// A message to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// The contact, which must belong to the institution.
    pub contact_id: ContactId,
    /// Where it was sent or received.
    pub channel: Channel,
    /// Who or what produced it.
    pub message_type: MessageType,
    /// From or to the learner.
    pub direction: Direction,
    /// The text.
    pub body: String,
    /// When it was sent or received.
    pub sent_at: Timestamp,
}

/// Filters for listing messages; ordered by sequence.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Only these channels; empty: every channel.
    pub channels: Vec<Channel>,
    /// Only these types; empty: every type.
    pub types: Vec<MessageType>,
    /// Only these directions; empty: every direction.
    pub directions: Vec<Direction>,
    /// Only this contact's messages.
    pub contact_id: Option<ContactId>,
    /// Only messages with a larger sequence.
    pub after_sequence: Option<i64>,
    /// Only messages with a sequence at most this (an export's upper bound).
    pub up_to_sequence: Option<i64>,
    /// Only messages with a smaller sequence (a cursor for pages going newest first).
    pub before_sequence: Option<i64>,
    /// Only messages sent or received at or after this.
    pub sent_from: Option<Timestamp>,
    /// Only messages sent or received at or before this.
    pub sent_to: Option<Timestamp>,
    /// Newest first (by sequence) instead of oldest first.
    pub newest_first: bool,
    /// Page size, clamped to 1..=10,000.
    pub limit: u32,
}

/// How many messages match a [`MessageQuery`] (its cursor and limit aside), in all and by
/// channel, type and direction.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MessageCounts {
    /// Every matching message.
    pub total: i64,
    /// By channel, in the order of [`Channel::ALL`]; channels with none are left out.
    pub channels: Vec<(Channel, i64)>,
    /// By type, in the order of [`MessageType::ALL`]; types with none are left out.
    pub types: Vec<(MessageType, i64)>,
    /// By direction, in the order of [`Direction::ALL`]; directions with none are left out.
    pub directions: Vec<(Direction, i64)>,
}

/// A (channel, type, direction) group and its count.
type Kinds = (Channel, MessageType, Direction, i64);

/// The filters of `q` but its cursor, on `f`.
fn message_filters(f: &mut Filter, q: &MessageQuery) -> Result<(), sqlx::Error> {
    f.and_in("channel", q.channels.iter().map(|c| c.as_str()))?;
    f.and_in("type", q.types.iter().map(|c| c.as_str()))?;
    f.and_in("direction", q.directions.iter().map(|c| c.as_str()))?;
    if let Some(c) = q.contact_id {
        f.and(" AND contact_id = $?", c)?;
    }
    if let Some(a) = q.after_sequence {
        f.and(" AND seq > $?", a)?;
    }
    if let Some(u) = q.up_to_sequence {
        f.and(" AND seq <= $?", u)?;
    }
    if let Some(t) = q.sent_from {
        f.and(" AND sent_at >= $?", micros(t))?;
    }
    if let Some(t) = q.sent_to {
        f.and(" AND sent_at <= $?", micros(t))?;
    }
    Ok(())
}

const MESSAGE_COLS: &str = "id, contact_id, channel, type, direction, body, sent_at, seq";

fn parse<T: std::str::FromStr<Err = ferry_core::UnknownValue>>(
    row: &AnyRow,
    col: &str,
) -> Result<T, sqlx::Error> {
    row.try_get::<String, _>(col)?
        .parse()
        .map_err(|e: ferry_core::UnknownValue| sqlx::Error::Decode(e.into()))
}

fn message_from(row: &AnyRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: row.try_get("id")?,
        contact_id: row.try_get("contact_id")?,
        channel: parse(row, "channel")?,
        message_type: parse(row, "type")?,
        direction: parse(row, "direction")?,
        body: row.try_get("body")?,
        sent_at: get_ts(row, "sent_at")?,
        sequence: row.try_get("seq")?,
    })
}

impl Store {
    /// Inserts messages in one transaction. Every contact must belong to the institution;
    /// otherwise nothing is inserted and the error names the first bad index.
    pub async fn insert_messages(
        &self,
        institution_id: i64,
        messages: &[NewMessage],
    ) -> Result<Vec<Message>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let out = self
            .insert_messages_in(&mut tx, institution_id, messages)
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// [`Store::insert_messages`] inside the caller's transaction.
    pub(crate) async fn insert_messages_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        institution_id: i64,
        messages: &[NewMessage],
    ) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(messages.len());
        if messages.is_empty() {
            return Ok(out);
        }
        let mut contact_ids: Vec<i64> = messages.iter().map(|m| m.contact_id).collect();
        contact_ids.sort_unstable();
        contact_ids.dedup();
        let mut known = std::collections::HashSet::new();
        for ids in contact_ids.chunks(500) {
            let mut p = Params::new(self.backend);
            let mut sql = String::from("SELECT id FROM contacts WHERE institution_id = ");
            p.bind(&mut sql, institution_id)?;
            sql.push_str(" AND id IN (");
            p.bind_list(&mut sql, ids.iter().copied())?;
            sql.push(')');
            for row in sqlx::query_with(AssertSqlSafe(sql), p.args)
                .fetch_all(&mut *tx)
                .await?
            {
                known.insert(row.try_get::<i64, _>(0)?);
            }
        }
        if let Some((i, m)) = messages
            .iter()
            .enumerate()
            .find(|(_, m)| !known.contains(&m.contact_id))
        {
            return Err(StoreError::invalid(
                &format!("messages[{i}].contact_id"),
                "not_found",
                format!("no contact {} in this institution", m.contact_id),
            ));
        }
        let row = sqlx::query("UPDATE institutions SET message_seq = message_seq + $1 WHERE id = $2 RETURNING message_seq").bind(messages.len() as i64).bind(institution_id).fetch_one(&mut *tx).await?;
        let last: i64 = row.try_get(0)?;
        let mut seq = last - messages.len() as i64;
        let created = now();
        for batch in messages.chunks(500) {
            let mut sql = String::from(
                "INSERT INTO messages (institution_id, contact_id, channel, type, direction, body, sent_at, seq, created_at) VALUES ",
            );
            let mut p = Params::new(self.backend);
            for (i, m) in batch.iter().enumerate() {
                seq += 1;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                p.bind_list(&mut sql, [institution_id, m.contact_id])?;
                sql.push_str(", ");
                p.bind_list(
                    &mut sql,
                    [
                        m.channel.as_str(),
                        m.message_type.as_str(),
                        m.direction.as_str(),
                    ],
                )?;
                sql.push_str(", ");
                p.bind(&mut sql, m.body.clone())?;
                sql.push_str(", ");
                p.bind_list(&mut sql, [micros(m.sent_at), seq, created])?;
                sql.push(')');
            }
            sql.push_str(&format!(" RETURNING {MESSAGE_COLS}"));
            let rows = sqlx::query_with(AssertSqlSafe(sql), p.args)
                .fetch_all(&mut *tx)
                .await?;
            let mut inserted = rows
                .iter()
                .map(message_from)
                .collect::<Result<Vec<_>, _>>()?;
            inserted.sort_by_key(|m| m.sequence);
            out.extend(inserted);
        }
        Ok(out)
    }

    /// Messages matching the filters, by sequence.
    pub async fn list_messages(
        &self,
        institution_id: i64,
        q: &MessageQuery,
    ) -> Result<Vec<Message>> {
        let mut f = Filter::new(
            self.backend,
            &format!("SELECT {MESSAGE_COLS} FROM messages WHERE institution_id ="),
            institution_id,
        )?;
        message_filters(&mut f, q)?;
        if let Some(b) = q.before_sequence {
            f.and(" AND seq < $?", b)?;
        }
        f.push(&format!(
            " ORDER BY seq{} LIMIT {}",
            if q.newest_first { " DESC" } else { "" },
            q.limit.clamp(1, 10_000)
        ));
        let rows = f.fetch_all(&self.read).await?;
        Ok(rows.iter().map(message_from).collect::<Result<_, _>>()?)
    }

    /// How many messages match the filters of `q` (its cursor and limit are not used).
    pub async fn count_messages(
        &self,
        institution_id: i64,
        q: &MessageQuery,
    ) -> Result<MessageCounts> {
        let mut f = Filter::new(
            self.backend,
            "SELECT channel, type, direction, COUNT(*) AS n FROM messages WHERE institution_id =",
            institution_id,
        )?;
        message_filters(&mut f, q)?;
        f.push(" GROUP BY channel, type, direction");
        let rows = f.fetch_all(&self.read).await?;
        let mut by = Vec::with_capacity(rows.len());
        for row in &rows {
            let n: i64 = row.try_get("n")?;
            by.push((
                parse::<Channel>(row, "channel")?,
                parse::<MessageType>(row, "type")?,
                parse::<Direction>(row, "direction")?,
                n,
            ));
        }
        let sum = |keep: &dyn Fn(&Kinds) -> bool| -> i64 {
            by.iter().filter(|r| keep(r)).map(|r| r.3).sum()
        };
        Ok(MessageCounts {
            total: sum(&|_| true),
            channels: Channel::ALL
                .iter()
                .map(|c| (*c, sum(&|r| r.0 == *c)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            types: MessageType::ALL
                .iter()
                .map(|t| (*t, sum(&|r| r.1 == *t)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            directions: Direction::ALL
                .iter()
                .map(|d| (*d, sum(&|r| r.2 == *d)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        })
    }

    /// One message of the institution.
    pub async fn message(&self, institution_id: i64, id: i64) -> Result<Message> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(message_from(&row)?)
    }

    /// The highest message sequence of an institution (0 before the first message).
    pub async fn current_message_seq(&self, institution_id: i64) -> Result<i64> {
        let row = sqlx::query("SELECT message_seq FROM institutions WHERE id = $1")
            .bind(institution_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.ok_or(StoreError::NotFound)?.try_get(0)?)
    }
}
