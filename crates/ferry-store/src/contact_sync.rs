//! A contact's sync status: per integration and direction, how the last run that touched the
//! contact ended, and the contact's ID in the other system.

use std::collections::HashMap;

use ferry_core::run::{SyncDirection, SyncOutcome, SyncResult};
use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::util::{Params, get_ts, micros};
use crate::{Result, Store, StoreError};

/// Rows per upsert statement (8 parameters each).
const CHUNK: usize = 1_000;

/// One integration's last sync of one contact, in one direction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContactSync {
    /// The integration.
    pub integration_id: i64,
    /// Its name.
    pub integration_name: String,
    /// Its kind, as `GET /api/v1/integration-types` names it.
    pub integration_kind: String,
    /// Which way the data was going.
    pub direction: SyncDirection,
    /// When the last run touched the contact.
    pub last_synced_at: Timestamp,
    /// How it ended.
    pub result: SyncOutcome,
    /// The error dictionary's code, for a failure or a skip.
    pub code: Option<String>,
    /// The contact's ID in the other system (its CRM ID), the last one known.
    pub remote_id: Option<String>,
}

fn parse<T: std::str::FromStr<Err = ferry_core::UnknownValue>>(
    row: &AnyRow,
    col: &str,
) -> Result<T> {
    row.try_get::<String, _>(col)?
        .parse()
        .map_err(|e: ferry_core::UnknownValue| StoreError::Db(sqlx::Error::Decode(e.into())))
}

fn sync_from(row: &AnyRow) -> Result<ContactSync> {
    Ok(ContactSync {
        integration_id: row.try_get("integration_id")?,
        integration_name: row.try_get("name")?,
        integration_kind: row.try_get("kind")?,
        direction: parse(row, "direction")?,
        last_synced_at: get_ts(row, "last_synced_at")?,
        result: parse(row, "result")?,
        code: row.try_get("code")?,
        remote_id: row.try_get("remote_id")?,
    })
}

/// One row per contact and direction: the latest result wins (on a tie, the later in the
/// slice); a result without a remote ID keeps the one an earlier result knew.
fn latest_per_contact(results: &[SyncResult]) -> Vec<SyncResult> {
    let mut at: HashMap<(i64, SyncDirection), usize> = HashMap::new();
    let mut out: Vec<SyncResult> = Vec::new();
    for r in results {
        match at.get(&(r.contact_id, r.direction)) {
            Some(&i) => {
                let old = &out[i];
                if r.at >= old.at {
                    let remote_id = r.remote_id.clone().or_else(|| old.remote_id.clone());
                    out[i] = SyncResult {
                        remote_id,
                        ..r.clone()
                    };
                } else if out[i].remote_id.is_none() {
                    out[i].remote_id = r.remote_id.clone();
                }
            }
            None => {
                at.insert((r.contact_id, r.direction), out.len());
                out.push(r.clone());
            }
        }
    }
    out
}

impl Store {
    /// Records what a run did with contacts, for their sync status: one upsert per 1,000 rows.
    /// Per contact, integration and direction the later result wins (an older one arriving late
    /// changes nothing), and a result without a remote ID keeps the one known before. Contacts
    /// of another institution are ignored; an integration of another institution is
    /// [`StoreError::NotFound`].
    pub async fn record_contact_syncs(
        &self,
        institution_id: i64,
        integration_id: i64,
        results: &[SyncResult],
    ) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let rows = latest_per_contact(results);
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT id FROM integrations WHERE institution_id = $1 AND id = $2")
            .bind(institution_id)
            .bind(integration_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        for chunk in rows.chunks(CHUNK) {
            let mut p = Params::new(self.backend);
            // The VALUES list is joined to the institution's contacts, so a contact ID of
            // another institution (or of a deleted contact) writes nothing. The WHERE clause
            // also keeps SQLite from reading the upsert's ON as the join's.
            let mut sql = String::from(
                "INSERT INTO contact_sync (institution_id, contact_id, integration_id, direction, last_synced_at, result, code, remote_id) SELECT c.institution_id, v.column1, ",
            );
            p.bind(&mut sql, integration_id)?;
            sql.push_str(", v.column2, v.column3, v.column4, v.column5, v.column6 FROM (VALUES ");
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                p.bind(&mut sql, r.contact_id)?;
                sql.push_str(", ");
                p.bind(&mut sql, r.direction.as_str())?;
                sql.push_str(", ");
                p.bind(&mut sql, micros(r.at))?;
                sql.push_str(", ");
                p.bind(&mut sql, r.result.as_str())?;
                sql.push_str(", ");
                p.bind(&mut sql, r.code.clone())?;
                sql.push_str(", ");
                p.bind(&mut sql, r.remote_id.clone())?;
                sql.push(')');
            }
            sql.push_str(") AS v JOIN contacts c ON c.id = v.column1 WHERE c.institution_id = ");
            p.bind(&mut sql, institution_id)?;
            sql.push_str(
                " ON CONFLICT (contact_id, integration_id, direction) DO UPDATE SET \
                 last_synced_at = excluded.last_synced_at, result = excluded.result, \
                 code = excluded.code, \
                 remote_id = COALESCE(excluded.remote_id, contact_sync.remote_id) \
                 WHERE excluded.last_synced_at >= contact_sync.last_synced_at",
            );
            sqlx::query_with(AssertSqlSafe(sql), p.args)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A contact's sync status: one row per integration and direction that touched it, by
    /// integration name.
    pub async fn contact_syncs(
        &self,
        institution_id: i64,
        contact_id: i64,
    ) -> Result<Vec<ContactSync>> {
        let rows = sqlx::query(
            "SELECT s.integration_id, i.name, i.kind, s.direction, s.last_synced_at, s.result, s.code, s.remote_id \
             FROM contact_sync s JOIN integrations i ON i.id = s.integration_id \
             WHERE s.institution_id = $1 AND s.contact_id = $2 \
             ORDER BY i.name, s.integration_id, s.direction",
        )
        .bind(institution_id)
        .bind(contact_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(sync_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(contact_id: i64, secs: i64, result: SyncOutcome, remote: Option<&str>) -> SyncResult {
        SyncResult {
            contact_id,
            direction: SyncDirection::Outgoing,
            result,
            code: None,
            remote_id: remote.map(str::to_string),
            at: Timestamp::from_second(secs).unwrap(),
        }
    }

    #[test]
    fn one_row_per_contact_the_later_wins_and_keeps_the_remote_id() {
        let rows = latest_per_contact(&[
            r(1, 10, SyncOutcome::Synced, Some("A")),
            r(2, 10, SyncOutcome::Synced, Some("B")),
            r(1, 20, SyncOutcome::Failed, None),
            r(2, 5, SyncOutcome::Failed, Some("old")),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].result, SyncOutcome::Failed);
        assert_eq!(rows[0].remote_id.as_deref(), Some("A"));
        assert_eq!(rows[1].result, SyncOutcome::Synced);
        assert_eq!(rows[1].remote_id.as_deref(), Some("B"));
    }
}
