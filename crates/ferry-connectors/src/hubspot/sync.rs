//! HubSpot as a client of the CRM sync engine ([`crate::crm`]), which runs both syncs.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use ferry_core::mapping::RemoteProperty;

use super::client::{self, BATCH, Client, HubSpotError};
use super::codec::HubSpotCodec;
use super::config::ID_PROPERTY;
use crate::crm::{
    Calls, ChangesPage, CrmClient, NameKey, NameResult, NextPage, Record, RemoteError,
};

/// The property HubSpot's incoming cursor follows.
const MODIFIED: &str = "lastmodifieddate";

/// The incoming pull starts this far before its watermark, for writes HubSpot made searchable late.
pub const OVERLAP_MS: i64 = 5 * 60 * 1000;

impl RemoteError for HubSpotError {
    fn is_transient(&self) -> bool {
        HubSpotError::is_transient(self)
    }

    fn is_refused_credentials(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    fn existing_id(&self) -> Option<String> {
        HubSpotError::existing_id(self)
    }
}

fn record(r: client::Record) -> Record {
    let modified_ms = r.get(MODIFIED).or(r.updated_at.as_deref()).and_then(|v| {
        v.parse::<i64>().ok().or_else(|| {
            v.parse::<jiff::Timestamp>()
                .ok()
                .map(|t| t.as_millisecond())
        })
    });
    Record {
        id: r.id,
        properties: r.properties,
        modified_ms,
    }
}

fn records(rs: Vec<client::Record>) -> Vec<Record> {
    rs.into_iter().map(record).collect()
}

#[async_trait]
impl CrmClient for Client {
    type Error = HubSpotError;
    type Codec = HubSpotCodec;

    fn name(&self) -> &'static str {
        "HubSpot"
    }

    fn id_property(&self) -> &'static str {
        ID_PROPERTY
    }

    fn email_property(&self) -> &'static str {
        "email"
    }

    fn modified_property(&self) -> &'static str {
        MODIFIED
    }

    fn overlap_ms(&self) -> i64 {
        OVERLAP_MS
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    fn reconnect_hint(&self) -> &'static str {
        "reconnect the HubSpot account or enter a valid access token"
    }

    fn codec(&self) -> &HubSpotCodec {
        &HubSpotCodec
    }

    fn calls(&self) -> Calls {
        Client::calls(self)
    }

    async fn properties(&self) -> Result<Vec<RemoteProperty>, HubSpotError> {
        Client::properties(self).await
    }

    async fn read(
        &self,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<Record>, HubSpotError> {
        Ok(records(self.batch_read(ids, None, properties).await?))
    }

    async fn find_by_emails(
        &self,
        emails: &[String],
    ) -> Result<Vec<(String, String)>, HubSpotError> {
        let found = self
            .batch_read(emails, Some("email"), &["email".to_string()])
            .await?;
        Ok(found
            .iter()
            .filter_map(|r| Some((r.get("email")?.to_lowercase(), r.id.clone())))
            .collect())
    }

    async fn find_by_names(
        &self,
        wanted: &BTreeMap<NameKey, BTreeSet<String>>,
        done: &mut (dyn FnMut(NameKey, Vec<NameResult>) -> bool + Send),
    ) -> Result<(), HubSpotError> {
        // HubSpot searches by name alone; the engine checks the phones.
        let names: BTreeSet<NameKey> = wanted.keys().cloned().collect();
        super::names::search_names(self, &names, done).await
    }

    async fn create(
        &self,
        records: &[BTreeMap<String, String>],
    ) -> Result<Vec<Record>, HubSpotError> {
        Ok(self::records(self.batch_create(records).await?))
    }

    async fn update(
        &self,
        records: &[(String, BTreeMap<String, String>)],
    ) -> Result<Vec<Record>, HubSpotError> {
        Ok(self::records(self.batch_update(records).await?))
    }

    /// A page of the records changed since `since_ms`, by keyset: each page is the first page of
    /// a new search for `lastmodifieddate` at or after the last time seen, sorted by it, so a
    /// record modified while the run pages moves later and is still read, and HubSpot's
    /// 10,000-result cap is never reached. When a whole page shares one millisecond, the records
    /// of that millisecond are read in record ID order before moving past it. The cursor is
    /// [`ChangesCursor`] as JSON.
    async fn changes(
        &self,
        since_ms: i64,
        properties: &[String],
        page: Option<&str>,
    ) -> Result<ChangesPage, HubSpotError> {
        // The engine hands back only cursors made here; anything else starts from `since_ms`.
        let cursor = page
            .and_then(|p| serde_json::from_str::<ChangesCursor>(p).ok())
            .unwrap_or_else(|| ChangesCursor::since(since_ms));
        let t = cursor.t.to_string();
        if let Some(after_id) = &cursor.id_after {
            // Every record of one millisecond, in ID order.
            let page = self
                .search(
                    &[(MODIFIED, "EQ", t), (ID_PROPERTY, "GT", after_id.clone())],
                    Some((ID_PROPERTY, "ASCENDING")),
                    properties,
                    None,
                )
                .await?;
            let last = page.records.last().map(|r| r.id.clone());
            let next = match (page.after, last) {
                (Some(_), Some(last)) => ChangesCursor {
                    id_after: Some(last),
                    ..cursor.clone()
                },
                _ => ChangesCursor {
                    t: cursor.t,
                    after_t: true,
                    seen: Vec::new(),
                    id_after: None,
                },
            };
            let fresh = cursor.unseen(records(page.records));
            return Ok(ChangesPage {
                records: fresh,
                next: NextPage::Page(next.encode()),
            });
        }
        let op = if cursor.after_t { "GT" } else { "GTE" };
        let page = self
            .search(
                &[(MODIFIED, op, t)],
                Some((MODIFIED, "ASCENDING")),
                properties,
                None,
            )
            .await?;
        let more = page.after.is_some();
        let all = records(page.records);
        let last_t = all.iter().filter_map(|r| r.modified_ms).max();
        let next = match last_t {
            _ if !more => NextPage::Done,
            // The whole page is one millisecond: read that millisecond by record ID.
            Some(lt) if lt <= cursor.t => {
                let mut seen = cursor.seen.clone();
                seen.extend(all.iter().map(|r| r.id.clone()));
                NextPage::Page(
                    ChangesCursor {
                        t: cursor.t,
                        after_t: false,
                        seen,
                        id_after: Some("0".into()),
                    }
                    .encode(),
                )
            }
            Some(lt) => NextPage::Page(
                ChangesCursor {
                    t: lt,
                    after_t: false,
                    seen: all
                        .iter()
                        .filter(|r| r.modified_ms == Some(lt))
                        .map(|r| r.id.clone())
                        .collect(),
                    id_after: None,
                }
                .encode(),
            ),
            // Records without a modification time cannot be paged by it.
            None => NextPage::Done,
        };
        Ok(ChangesPage {
            records: cursor.unseen(all),
            next,
        })
    }
}

/// Where an incoming pull is in HubSpot's changes: past or at `t` (epoch ms), the records of `t`
/// already read, and, while reading one millisecond in ID order, the last ID read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ChangesCursor {
    t: i64,
    #[serde(default)]
    after_t: bool,
    #[serde(default)]
    seen: Vec<String>,
    #[serde(default)]
    id_after: Option<String>,
}

impl ChangesCursor {
    fn since(t: i64) -> ChangesCursor {
        ChangesCursor {
            t,
            after_t: false,
            seen: Vec::new(),
            id_after: None,
        }
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).expect("a cursor serializes")
    }

    /// The records not already read at the cursor's millisecond.
    fn unseen(&self, records: Vec<Record>) -> Vec<Record> {
        records
            .into_iter()
            .filter(|r| !(r.modified_ms == Some(self.t) && self.seen.contains(&r.id)))
            .collect()
    }
}
