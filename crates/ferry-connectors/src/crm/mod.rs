//! The CRM sync engine: everything a two-way contact sync with a CRM does that is not the CRM's
//! own. A CRM implements [`CrmClient`] (its requests, its batch size, its [`ValueCodec`]); the
//! engine owns the rest:
//!
//! - outgoing ([`run_outgoing`]): the feed of contacts changed since the watermark (and of
//!   contacts that failed before), the filters, seed 002's matching order (CRM ID, email, first
//!   and last name with the phone, else create), creates and updates in the CRM's batches, CRM
//!   IDs written back, capped retries of failed contacts;
//! - incoming ([`run_incoming`]): the CRM's changes since a cursor, test users left alone, the
//!   filters, seed 001's matching and its UNSET and blank rules (in the store's contact writes);
//! - the Sync Log rows, the run's tally and its report, and the instance's state.
//!
//! Ferry's own bookkeeping does not echo: the CRM IDs an outgoing run writes back take no change
//! sequence, so the contacts it wrote are not sent again.

pub mod codec;
pub mod http;
mod incoming;
mod log;
mod outgoing;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use ferry_core::mapping::{FieldMapping, RemoteProperty};
pub use ferry_core::outgoing::NameResult;
use serde::Deserialize;

pub use codec::ValueCodec;
pub use http::Calls;
pub use incoming::run_incoming;
pub use log::MAX_ATTEMPTS;
pub use outgoing::run_outgoing;

/// A CRM's contact record: its ID and the properties asked for (`None`: null in the CRM).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// The CRM's record ID.
    pub id: String,
    /// Property values as the CRM sends them.
    pub properties: BTreeMap<String, Option<String>>,
    /// When the record last changed in the CRM (epoch ms), if the CRM said.
    pub modified_ms: Option<i64>,
}

impl Record {
    /// A property's value, `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// What comes after a page of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// The next page, by the CRM's cursor.
    Page(String),
    /// The CRM pages no further through this query (a cap on results): ask again from the
    /// newest change seen.
    Requery,
    /// That was all.
    Done,
}

/// A page of records changed since a cursor, oldest first.
#[derive(Debug, Clone)]
pub struct ChangesPage {
    /// The records.
    pub records: Vec<Record>,
    /// What comes next.
    pub next: NextPage,
}

/// A first and last name as a name search compares them: trimmed, lower-case.
pub type NameKey = (String, String);

/// The [`NameKey`] of a first and last name.
pub fn name_key(first: &str, last: &str) -> NameKey {
    (first.trim().to_lowercase(), last.trim().to_lowercase())
}

/// A record a CRM refused in a write that answers record by record (Salesforce's sObject
/// Collections with `allOrNone` false): the Sync Log code and the CRM's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The Sync Log code (in the error dictionary).
    pub code: String,
    /// The CRM's message, with its own code.
    pub message: String,
}

/// One record's outcome in a write that answers record by record, in request order.
pub type Outcome = Result<Record, Rejection>;

/// What the engine needs to know of a CRM's errors.
pub trait RemoteError: std::error::Error + Send + Sync + 'static {
    /// Trying again later may help (a 429, a 5xx, no answer).
    fn is_transient(&self) -> bool;
    /// The CRM refused the credentials (the run cannot go on without new ones).
    fn is_refused_credentials(&self) -> bool;
    /// For a create refused because the contact exists, the existing contact's ID.
    fn existing_id(&self) -> Option<String>;
}

/// One CRM's contacts API, as the engine uses it. Batch methods take at most
/// [`CrmClient::batch_size`] items.
#[async_trait]
pub trait CrmClient: Send + Sync {
    /// The CRM's errors.
    type Error: RemoteError;
    /// The CRM's value codec.
    type Codec: ValueCodec;

    /// The CRM's name in messages ("HubSpot").
    fn name(&self) -> &'static str;
    /// The record ID property, always paired with Ferry's CRM ID.
    fn id_property(&self) -> &'static str;
    /// The email property: required in the mapping when the CRM has it, and the key of the
    /// outgoing lookup by email.
    fn email_property(&self) -> &'static str;
    /// The property the incoming cursor follows (read with every incoming record).
    fn modified_property(&self) -> &'static str;
    /// How far before its watermark an incoming pull starts, for changes that became visible
    /// late (ms).
    fn overlap_ms(&self) -> i64;
    /// Records per read, create and update.
    fn batch_size(&self) -> usize;
    /// The next step for the admin when the CRM refused the credentials.
    fn reconnect_hint(&self) -> &'static str;
    /// The CRM's value codec.
    fn codec(&self) -> &Self::Codec;
    /// What the client sent so far.
    fn calls(&self) -> Calls;

    /// Every contact property.
    async fn properties(&self) -> Result<Vec<RemoteProperty>, Self::Error>;
    /// The records with these IDs (missing ones left out), with `properties`.
    async fn read(&self, ids: &[String], properties: &[String])
    -> Result<Vec<Record>, Self::Error>;
    /// The records with these emails: `(email lower-cased, record ID)`.
    async fn find_by_emails(&self, emails: &[String])
    -> Result<Vec<(String, String)>, Self::Error>;
    /// The records with each wanted first and last name, with their phones (a record with two
    /// phones gives two results), in as few requests as the CRM allows (any number of names).
    /// Each name comes with the phones (E.164) of the contacts that want it, for a CRM that
    /// looks people up by name and phone together; the engine keeps only results with the
    /// contact's phone. `done` gets each name's results as soon as they are complete; it
    /// returns `false` to stop.
    async fn find_by_names(
        &self,
        wanted: &BTreeMap<NameKey, BTreeSet<String>>,
        done: &mut (dyn FnMut(NameKey, Vec<NameResult>) -> bool + Send),
    ) -> Result<(), Self::Error>;
    /// The property that holds Ferry's platform ID, when the CRM has one configured (an
    /// external-ID field): outgoing matching asks it after the CRM ID and before the email.
    fn external_id_property(&self) -> Option<&str> {
        None
    }
    /// The records whose [`CrmClient::external_id_property`] holds these values:
    /// `(value, record ID)`.
    async fn find_by_external_ids(
        &self,
        _values: &[String],
    ) -> Result<Vec<(String, String)>, Self::Error> {
        Ok(Vec::new())
    }
    /// For a CRM whose batch writes answer record by record in request order: creates the
    /// records, each answered with the new record or its refusal. `None`: the CRM writes a
    /// batch whole, through [`CrmClient::create`].
    async fn create_each(
        &self,
        _records: &[BTreeMap<String, String>],
    ) -> Result<Option<Vec<Outcome>>, Self::Error> {
        Ok(None)
    }
    /// Like [`CrmClient::create_each`], for updates by ID.
    async fn update_each(
        &self,
        _records: &[(String, BTreeMap<String, String>)],
    ) -> Result<Option<Vec<Outcome>>, Self::Error> {
        Ok(None)
    }
    /// The IDs of the records deleted in the CRM from `since_ms` on, and the time (epoch ms) the
    /// answer covers up to (the next call's `since_ms`); `None` for a CRM that does not say.
    /// Incoming runs archive the contacts with those CRM IDs.
    async fn deleted_since(
        &self,
        _since_ms: i64,
    ) -> Result<Option<(Vec<String>, i64)>, Self::Error> {
        Ok(None)
    }
    /// Creates records; the answer may come in any order (the engine pairs them by value).
    async fn create(
        &self,
        records: &[BTreeMap<String, String>],
    ) -> Result<Vec<Record>, Self::Error>;
    /// Updates records by ID; the answer leaves out the IDs the CRM did not find.
    async fn update(
        &self,
        records: &[(String, BTreeMap<String, String>)],
    ) -> Result<Vec<Record>, Self::Error>;
    /// A page of the records changed at or after `since_ms`, oldest first, with `properties`;
    /// `page` is the cursor of a [`NextPage::Page`].
    async fn changes(
        &self,
        since_ms: i64,
        properties: &[String],
        page: Option<&str>,
    ) -> Result<ChangesPage, Self::Error>;
}

/// One filter: `field` (a Ferry field) must have one of `values`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// The Ferry field's name.
    pub field: String,
    /// The values that pass (compared as text, ignoring case).
    pub values: Vec<String>,
}

/// What an instance syncs: its mapping and filters.
#[derive(Debug, Clone, Copy)]
pub struct SyncSpec<'a> {
    /// Ferry field ↔ CRM property pairs (the CRM ID pair is added).
    pub mappings: &'a [FieldMapping],
    /// A contact syncs only if it passes every filter.
    pub filters: &'a [Filter],
}
