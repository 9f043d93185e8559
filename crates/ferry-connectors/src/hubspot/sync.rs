//! HubSpot as a client of the CRM sync engine ([`crate::crm`]), which runs both syncs.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use ferry_core::mapping::RemoteProperty;

use super::client::{self, BATCH, Client, HubSpotError, SEARCH_CAP, SEARCH_PAGE};
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

    /// A page of HubSpot's search by `lastmodifieddate`. The page cursor is the records seen so
    /// far and HubSpot's `after`: past HubSpot's 10,000-result cap, the engine asks again.
    async fn changes(
        &self,
        since_ms: i64,
        properties: &[String],
        page: Option<&str>,
    ) -> Result<ChangesPage, HubSpotError> {
        let (seen, after) = match page.and_then(|p| p.split_once(':')) {
            Some((seen, after)) => (seen.parse::<u64>().unwrap_or(0), Some(after)),
            None => (0, None),
        };
        let page = self
            .search(
                &[(MODIFIED, "GTE", since_ms.to_string())],
                Some((MODIFIED, "ASCENDING")),
                properties,
                after,
            )
            .await?;
        let seen = seen + page.records.len() as u64;
        let next = match page.after {
            Some(_) if seen + SEARCH_PAGE as u64 > SEARCH_CAP => NextPage::Requery,
            Some(a) => NextPage::Page(format!("{seen}:{a}")),
            None => NextPage::Done,
        };
        Ok(ChangesPage {
            records: records(page.records),
            next,
        })
    }
}
