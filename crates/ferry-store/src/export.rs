//! Streaming reads for file exports: a window of messages joined with their contacts, handed
//! out in batches so that an export of millions of messages keeps a flat, small memory.
//!
//! On SQLite the rows come from a read-only rusqlite connection of their own in a blocking task
//! (sqlx's `Any` layer costs several times more per row); on PostgreSQL from a sqlx stream. Both
//! run the same SQL.

use ferry_core::message::{Channel, Direction, MessageType};
use futures::TryStreamExt;
use jiff::Timestamp;
use sqlx::Row;
use tokio::sync::mpsc;

use crate::util::from_micros;
use crate::{Result, Store, StoreError};

/// Rows per batch handed to the consumer.
pub const EXPORT_BATCH: usize = 1024;

/// Which messages an export takes: sequence above `after_seq` up to `up_to_seq`, whose channel,
/// type and direction are among those listed, from contacts that are not test users.
#[derive(Debug, Clone)]
pub struct MessageWindow {
    /// Exclusive: the last sequence the previous export took.
    pub after_seq: i64,
    /// Inclusive: the sequence the export stops at, fixed when it starts.
    pub up_to_seq: i64,
    /// The channels taken; an empty list takes no message.
    pub channels: Vec<Channel>,
    /// The message types taken; an empty list takes no message.
    pub types: Vec<MessageType>,
    /// The directions taken; an empty list takes no message.
    pub directions: Vec<Direction>,
    /// One row per contact: its latest message in the window (highest sequence), with
    /// [`ExportMessage::count`] = its messages in the window.
    pub dedupe_contacts: bool,
}

/// A message with the contact fields exports use.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportMessage {
    /// The message's ID.
    pub id: i64,
    /// The message's place in its institution's message sequence.
    pub seq: i64,
    /// The contact it was sent to or received from.
    pub contact_id: i64,
    /// The contact's CRM ID; `None` when it has none.
    pub crm_id: Option<String>,
    /// The contact's first name; `None` when it has none.
    pub first_name: Option<String>,
    /// The contact's last name; `None` when it has none.
    pub last_name: Option<String>,
    /// The contact's preferred name; `None` when it has none.
    pub preferred_name: Option<String>,
    /// The contact's phone (E.164); `None` when it has none.
    pub phone: Option<String>,
    /// Where the message was sent or received.
    pub channel: Channel,
    /// Who or what produced it.
    pub message_type: MessageType,
    /// From or to the learner.
    pub direction: Direction,
    /// The message text.
    pub body: String,
    /// When it was sent or received.
    pub sent_at: Timestamp,
    /// Messages this row stands for: 1, or with dedupe the contact's messages in the window.
    pub count: i64,
}

/// Batches of an export's rows in sequence order. Dropping it stops the reader.
pub struct ExportStream {
    rx: mpsc::Receiver<Result<Vec<ExportMessage>>>,
}

impl ExportStream {
    /// The next batch; `None` at the end.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<ExportMessage>>> {
        self.rx.recv().await
    }
}

const EXPORT_COLS: &str = "m.id, m.seq, m.contact_id, c.crm_id, c.first_name, c.last_name, c.preferred_name, c.phone, m.channel, m.type, m.direction, m.body, m.sent_at";

/// `col IN ('a','b')` from enum values (a fixed, validated set, so they are written inline).
fn in_list<'a>(col: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    let list: Vec<String> = values.into_iter().map(|v| format!("'{v}'")).collect();
    if list.is_empty() {
        "FALSE".to_string()
    } else {
        format!("{col} IN ({})", list.join(", "))
    }
}

/// The statement; `$1` institution, `$2` after, `$3` up to.
fn window_sql(w: &MessageWindow) -> String {
    let filters = format!(
        "m.institution_id = $1 AND m.seq > $2 AND m.seq <= $3 AND {} AND {} AND {} AND c.test_user = FALSE",
        in_list("m.channel", w.channels.iter().map(|c| c.as_str())),
        in_list("m.type", w.types.iter().map(|t| t.as_str())),
        in_list("m.direction", w.directions.iter().map(|d| d.as_str())),
    );
    if w.dedupe_contacts {
        format!(
            "WITH w AS (SELECT m.contact_id, MAX(m.seq) AS last_seq, COUNT(*) AS cnt FROM messages m \
             JOIN contacts c ON c.id = m.contact_id WHERE {filters} GROUP BY m.contact_id) \
             SELECT {EXPORT_COLS}, w.cnt FROM w JOIN messages m ON m.institution_id = $1 AND m.seq = w.last_seq \
             JOIN contacts c ON c.id = m.contact_id ORDER BY m.seq"
        )
    } else {
        format!(
            "SELECT {EXPORT_COLS}, 1 AS cnt FROM messages m JOIN contacts c ON c.id = m.contact_id \
             WHERE {filters} ORDER BY m.seq"
        )
    }
}

/// Reads one row of [`window_sql`]'s columns with `$get` (rusqlite's `get` or sqlx's `try_get`),
/// `$err` turning a bad enum value into the backend's error.
macro_rules! export_row {
    ($row:ident . $get:ident, $err:expr) => {
        ExportMessage {
            id: $row.$get(0)?,
            seq: $row.$get(1)?,
            contact_id: $row.$get(2)?,
            crm_id: $row.$get(3)?,
            first_name: $row.$get(4)?,
            last_name: $row.$get(5)?,
            preferred_name: $row.$get(6)?,
            phone: $row.$get(7)?,
            channel: {
                let v: String = $row.$get(8)?;
                enum_value(&v).map_err($err)?
            },
            message_type: {
                let v: String = $row.$get(9)?;
                enum_value(&v).map_err($err)?
            },
            direction: {
                let v: String = $row.$get(10)?;
                enum_value(&v).map_err($err)?
            },
            body: $row.$get(11)?,
            sent_at: from_micros($row.$get(12)?),
            count: $row.$get(13)?,
        }
    };
}

fn enum_value<T: std::str::FromStr<Err = ferry_core::UnknownValue>>(
    s: &str,
) -> std::result::Result<T, String> {
    s.parse()
        .map_err(|e: ferry_core::UnknownValue| e.to_string())
}

impl Store {
    /// Streams the messages of `window` for institution `institution_id`, in sequence order.
    pub fn export_messages(&self, institution_id: i64, window: &MessageWindow) -> ExportStream {
        let (tx, rx) = mpsc::channel(4);
        let sql = window_sql(window);
        let (after, up_to) = (window.after_seq, window.up_to_seq);
        match &self.bulk {
            Some(bulk) => {
                let bulk = bulk.clone();
                tokio::task::spawn_blocking(move || {
                    let result = (|| -> Result<()> {
                        let conn = bulk.open_reader()?;
                        let mut stmt = conn.prepare(&sql)?;
                        let mut rows =
                            stmt.query(rusqlite::params![institution_id, after, up_to])?;
                        let mut batch = Vec::with_capacity(EXPORT_BATCH);
                        while let Some(row) = rows.next()? {
                            let bad = |e: String| {
                                StoreError::Sqlite(rusqlite::Error::InvalidColumnType(
                                    0,
                                    e,
                                    rusqlite::types::Type::Text,
                                ))
                            };
                            batch.push(export_row!(row.get, bad));
                            if batch.len() == EXPORT_BATCH {
                                let full =
                                    std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
                                if tx.blocking_send(Ok(full)).is_err() {
                                    return Ok(()); // the consumer went away
                                }
                            }
                        }
                        if !batch.is_empty() {
                            let _ = tx.blocking_send(Ok(batch));
                        }
                        Ok(())
                    })();
                    if let Err(e) = result {
                        let _ = tx.blocking_send(Err(e));
                    }
                });
            }
            None => {
                let pool = self.read.clone();
                tokio::spawn(async move {
                    let result = async {
                        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(institution_id)
                            .bind(after)
                            .bind(up_to)
                            .fetch(&pool);
                        let mut batch = Vec::with_capacity(EXPORT_BATCH);
                        while let Some(row) = rows.try_next().await? {
                            let bad = |e: String| StoreError::Db(sqlx::Error::Decode(e.into()));
                            batch.push(export_row!(row.try_get, bad));
                            if batch.len() == EXPORT_BATCH {
                                let full =
                                    std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
                                if tx.send(Ok(full)).await.is_err() {
                                    return Ok(());
                                }
                            }
                        }
                        if !batch.is_empty() {
                            let _ = tx.send(Ok(batch)).await;
                        }
                        Ok::<(), StoreError>(())
                    }
                    .await;
                    if let Err(e) = result {
                        let _ = tx.send(Err(e)).await;
                    }
                });
            }
        }
        ExportStream { rx }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_filter_selects_nothing() {
        assert_eq!(in_list("m.channel", []), "FALSE");
        assert_eq!(
            in_list("m.channel", ["sms", "email"]),
            "m.channel IN ('sms', 'email')"
        );
    }
}
