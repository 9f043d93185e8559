//! Salesforce as a client of the CRM sync engine ([`crate::crm`]), which runs both syncs:
//! lookups by SOQL, writes through sObject Collections (per-record results) or, for large
//! runs, Bulk API 2.0 ingest jobs; incremental reads by SOQL on `SystemModstamp` (or a Bulk
//! API 2.0 query for a large first pull); deleted records for archiving.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use ferry_core::mapping::RemoteProperty;
use serde_json::{Map, Value};

use super::client::{COLLECTION, Client, Describe, IngestOp, SalesforceError, SaveResult, text};
use super::codec::{self, SalesforceCodec};
use super::config::{ID_FIELD, MODSTAMP_FIELD};
use crate::crm::{
    Calls, ChangesPage, CrmClient, NameKey, NameResult, NextPage, Outcome, Record, Rejection,
    RemoteError, name_key,
};

/// An incoming pull starts this far before its watermark: `SystemModstamp` is set when a
/// transaction starts, so a long transaction's records can become visible after later ones.
pub const OVERLAP_MS: i64 = 2 * 60 * 1000;

/// Rows of a Bulk API 2.0 query result page.
const BULK_PAGE: usize = 10_000;
/// Rows of a page of the bulk-mode index's query (keys only, so larger pages).
const BULK_INDEX_PAGE: usize = 50_000;

impl RemoteError for SalesforceError {
    fn is_transient(&self) -> bool {
        SalesforceError::is_transient(self)
    }

    fn is_refused_credentials(&self) -> bool {
        SalesforceError::is_refused_credentials(self)
    }

    fn existing_id(&self) -> Option<String> {
        None
    }
}

/// The codes of Salesforce's per-record refusals that have their own entry in the error
/// dictionary (`salesforce_` and the code in lower case); others are `salesforce_rejected`.
pub const KNOWN_RECORD_CODES: &[&str] = &[
    "DUPLICATES_DETECTED",
    "DUPLICATE_VALUE",
    "REQUIRED_FIELD_MISSING",
    "INVALID_FIELD",
    "INVALID_EMAIL_ADDRESS",
    "MALFORMED_ID",
    "STRING_TOO_LONG",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    "INVALID_FIELD_FOR_INSERT_UPDATE",
    "ENTITY_IS_DELETED",
    "NOT_FOUND",
];

/// The Sync Log code of a Salesforce per-record error code.
pub fn sync_code(sf_code: &str) -> String {
    if KNOWN_RECORD_CODES.contains(&sf_code) {
        format!("salesforce_{}", sf_code.to_ascii_lowercase())
    } else {
        "salesforce_rejected".to_string()
    }
}

fn rejection(code: &str, message: &str, fields: &[String]) -> Rejection {
    let fields = if fields.is_empty() {
        String::new()
    } else {
        format!(" (fields: {})", fields.join(", "))
    };
    Rejection {
        code: sync_code(code),
        message: format!("Salesforce refused the record: {code}: {message}{fields}"),
    }
}

/// One org and object, as the engine uses them.
pub struct SyncClient {
    /// The REST client.
    pub client: Client,
    /// The external-ID field holding Ferry's platform ID, if configured.
    pub external_id: Option<String>,
    /// Write through Bulk API 2.0 (a run above the threshold): batches of `bulk_batch`.
    pub bulk_writes: bool,
    /// Records per batch when writing in bulk.
    pub bulk_batch: usize,
    /// Above this many records, a first full pull reads through a Bulk API 2.0 query.
    pub bulk_threshold: usize,
    /// In bulk mode, the object's keys read once through a Bulk API 2.0 query, so that the
    /// lookups of a large run cost a few calls instead of one per few hundred contacts.
    pub index: tokio::sync::Mutex<Option<Index>>,
}

/// The keys of every record of the object, for the lookups of a large run.
#[derive(Debug, Default)]
pub struct Index {
    ids: std::collections::HashSet<String>,
    /// Email (lower-cased) → the oldest record's Id.
    emails: HashMap<String, String>,
    /// External-ID value → Id.
    external: HashMap<String, String>,
    /// First and last name → the records with their phones.
    names: HashMap<NameKey, Vec<NameResult>>,
}

impl Index {
    fn add(&mut self, id: &str, r: &Map<String, Value>, phones: &[&str], external: Option<&str>) {
        self.ids.insert(id.to_string());
        if let Some(email) = text(r.get("Email")) {
            let e = self
                .emails
                .entry(email.to_lowercase())
                .or_insert_with(|| id.to_string());
            if id < e.as_str() {
                *e = id.to_string();
            }
        }
        if let Some(x) = external.and_then(|x| text(r.get(x))) {
            self.external.insert(x, id.to_string());
        }
        let key = name_key(
            &text(r.get("FirstName")).unwrap_or_default(),
            &text(r.get("LastName")).unwrap_or_default(),
        );
        let list = self.names.entry(key).or_default();
        let mut any = false;
        for p in phones {
            if let Some(phone) = text(r.get(*p)) {
                any = true;
                list.push(NameResult {
                    id: id.to_string(),
                    phone: Some(phone),
                });
            }
        }
        if !any {
            list.push(NameResult {
                id: id.to_string(),
                phone: None,
            });
        }
    }
}

/// Where an incoming pull is: the query's next page, the last `(SystemModstamp, Id)` read
/// (to go on by keyset when a locator is gone), or a Bulk API query's job and locator.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(default)]
    t: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locator: Option<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        serde_json::to_string(self).expect("a cursor serializes")
    }
}

/// Whether `s` has the shape of a Salesforce record Id (15 or 18 letters and digits).
pub fn looks_like_id(s: &str) -> bool {
    matches!(s.len(), 15 | 18) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn record_of(r: Map<String, Value>) -> Record {
    let id = text(r.get(ID_FIELD)).unwrap_or_default();
    let modified_ms = text(r.get(MODSTAMP_FIELD)).and_then(|s| codec::parse_datetime(&s));
    Record {
        id,
        properties: r.iter().map(|(k, v)| (k.clone(), text(Some(v)))).collect(),
        modified_ms,
    }
}

/// A record's text values as Salesforce JSON, typed by describe; `""` (an UNSET) is null,
/// refused for a field that cannot be null, and a restricted picklist's value must be one of
/// its values.
fn typed(
    describe: &Describe,
    props: &BTreeMap<String, String>,
) -> Result<Map<String, Value>, Rejection> {
    let mut out = Map::new();
    for (name, v) in props {
        let Some(f) = describe.field(name) else {
            out.insert(name.clone(), Value::String(v.clone()));
            continue;
        };
        if v.is_empty() && !f.nillable {
            return Err(Rejection {
                code: "salesforce_field_not_nillable".into(),
                message: format!(
                    "UNSET cannot clear the Salesforce field {name}: it cannot be empty in Salesforce (not nillable); nothing was sent for this contact"
                ),
            });
        }
        if !v.is_empty()
            && f.restricted
            && !f.picklist.is_empty()
            && !f.picklist.iter().any(|p| p == v)
        {
            return Err(rejection(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                &format!(
                    "{name}: bad value for restricted picklist field: {v} (the values are: {})",
                    f.picklist.join(", ")
                ),
                std::slice::from_ref(name),
            ));
        }
        out.insert(name.clone(), codec::to_json(&f.sf_type, v));
    }
    Ok(out)
}

fn outcome(result: SaveResult, props: &BTreeMap<String, String>) -> Outcome {
    match result {
        SaveResult::Saved(id) => Ok(Record {
            id,
            properties: props
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
            modified_ms: None,
        }),
        SaveResult::Refused {
            code,
            message,
            fields,
        } => Err(rejection(&code, &message, &fields)),
    }
}

/// A record ready to send (its Id for an update, and its typed fields), or refused here.
type Prepared = Result<(Option<String>, Map<String, Value>), Rejection>;

fn bulk_row(m: &Map<String, Value>) -> BTreeMap<String, Option<String>> {
    m.iter()
        .map(|(k, v)| {
            let t = match v {
                Value::Null => None,
                other => text(Some(other)),
            };
            (k.clone(), t)
        })
        .collect()
}

impl SyncClient {
    /// A client for one run; `bulk_writes` for a run above the bulk threshold.
    pub fn new(
        client: Client,
        external_id: Option<String>,
        bulk_writes: bool,
        bulk_batch: usize,
        bulk_threshold: usize,
    ) -> SyncClient {
        SyncClient {
            client,
            external_id,
            bulk_writes,
            bulk_batch,
            bulk_threshold,
            index: tokio::sync::Mutex::new(None),
        }
    }

    /// The phone fields the object has.
    async fn phone_fields(&self) -> Result<Vec<&'static str>, SalesforceError> {
        let describe = self.client.describe().await?;
        Ok(["Phone", "MobilePhone", "HomePhone"]
            .into_iter()
            .filter(|p| describe.field(p).is_some())
            .collect())
    }

    /// In bulk mode, the index (read through one Bulk API 2.0 query the first time); `None`
    /// otherwise.
    async fn index(
        &self,
    ) -> Result<Option<tokio::sync::MutexGuard<'_, Option<Index>>>, SalesforceError> {
        if !self.bulk_writes {
            return Ok(None);
        }
        let mut guard = self.index.lock().await;
        if guard.is_none() {
            let phones = self.phone_fields().await?;
            let mut fields = vec![ID_FIELD, "Email", "FirstName", "LastName"];
            fields.extend(phones.iter().copied());
            if let Some(x) = self.external_id.as_deref() {
                fields.push(x);
            }
            let soql = format!("SELECT {} FROM {}", fields.join(", "), self.client.object());
            let job = self.client.bulk_query_start(&soql).await?;
            let mut index = Index::default();
            let mut locator: Option<String> = None;
            loop {
                let (rows, next) = self
                    .client
                    .bulk_query_page(&job, locator.as_deref(), BULK_INDEX_PAGE)
                    .await?;
                for r in &rows {
                    if let Some(id) = text(r.get(ID_FIELD)) {
                        index.add(&id, r, &phones, self.external_id.as_deref());
                    }
                }
                match next {
                    Some(l) => locator = Some(l),
                    None => break,
                }
            }
            *guard = Some(index);
        }
        Ok(Some(guard))
    }

    fn fields(&self, properties: &[String]) -> Vec<String> {
        let mut f: Vec<String> = properties.to_vec();
        for x in [ID_FIELD, MODSTAMP_FIELD] {
            if !f.iter().any(|p| p == x) {
                f.push(x.to_string());
            }
        }
        f
    }

    /// Writes typed records (`Ok`) in collections of 200, or in one Bulk API 2.0 job when the
    /// run writes in bulk and there are more than 200; the refusals made here stay in place.
    async fn write(
        &self,
        prepared: Vec<Prepared>,
        props: Vec<&BTreeMap<String, String>>,
        create: bool,
    ) -> Result<Vec<Outcome>, SalesforceError> {
        let sendable: Vec<usize> = (0..prepared.len())
            .filter(|&i| prepared[i].is_ok())
            .collect();
        let mut results: HashMap<usize, SaveResult> = HashMap::new();
        if self.bulk_writes && sendable.len() > COLLECTION {
            let rows: Vec<BTreeMap<String, Option<String>>> = sendable
                .iter()
                .map(|&i| {
                    let (id, m) = prepared[i].as_ref().expect("sendable");
                    let mut row = bulk_row(m);
                    if let Some(id) = id {
                        row.insert(ID_FIELD.to_string(), Some(id.clone()));
                    }
                    row
                })
                .collect();
            let op = match (create, self.external_id.as_deref()) {
                (false, _) => IngestOp::Update,
                (true, Some(x)) => IngestOp::Upsert(x),
                (true, None) => IngestOp::Insert,
            };
            let saved = self.client.bulk_ingest(op, &rows).await?;
            results.extend(sendable.iter().copied().zip(saved));
        } else {
            for chunk in sendable.chunks(COLLECTION) {
                let saved = if create {
                    let records = chunk
                        .iter()
                        .map(|&i| prepared[i].as_ref().expect("sendable").1.clone())
                        .collect();
                    self.client.collection_create(records).await?
                } else {
                    let records = chunk
                        .iter()
                        .map(|&i| {
                            let (id, m) = prepared[i].as_ref().expect("sendable");
                            (id.clone().unwrap_or_default(), m.clone())
                        })
                        .collect();
                    self.client.collection_update(records).await?
                };
                results.extend(chunk.iter().copied().zip(saved));
            }
        }
        Ok(prepared
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p {
                Err(rej) => Err(rej),
                Ok(_) => outcome(
                    results.remove(&i).unwrap_or(SaveResult::Refused {
                        code: "UNPROCESSED".into(),
                        message: "Salesforce gave no result for the record".into(),
                        fields: Vec::new(),
                    }),
                    props[i],
                ),
            })
            .collect())
    }
}

#[async_trait]
impl CrmClient for SyncClient {
    type Error = SalesforceError;
    type Codec = SalesforceCodec;

    fn name(&self) -> &'static str {
        "Salesforce"
    }

    fn id_property(&self) -> &'static str {
        ID_FIELD
    }

    fn email_property(&self) -> &'static str {
        "Email"
    }

    fn modified_property(&self) -> &'static str {
        MODSTAMP_FIELD
    }

    fn overlap_ms(&self) -> i64 {
        OVERLAP_MS
    }

    fn batch_size(&self) -> usize {
        if self.bulk_writes {
            self.bulk_batch.max(COLLECTION)
        } else {
            COLLECTION
        }
    }

    fn reconnect_hint(&self) -> &'static str {
        "reconnect the Salesforce account in the instance's Authentication step (or check the JWT bearer flow's consumer key, username and private key)"
    }

    fn codec(&self) -> &SalesforceCodec {
        &SalesforceCodec
    }

    fn calls(&self) -> Calls {
        self.client.calls()
    }

    async fn properties(&self) -> Result<Vec<RemoteProperty>, SalesforceError> {
        self.client.properties().await
    }

    async fn read(
        &self,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<Record>, SalesforceError> {
        // A CRM ID that is not a record Id cannot name a record; in a query it would fail the
        // whole list, so it is left out (not found).
        let ids: Vec<String> = ids.iter().filter(|i| looks_like_id(i)).cloned().collect();
        if properties.iter().all(|p| p == ID_FIELD)
            && let Some(guard) = self.index().await?
        {
            let index = guard.as_ref().expect("built");
            return Ok(ids
                .into_iter()
                .filter(|i| index.ids.contains(i))
                .map(|id| Record {
                    id,
                    ..Record::default()
                })
                .collect());
        }
        let rows = self
            .client
            .select_in(&self.fields(properties), ID_FIELD, &ids)
            .await?;
        Ok(rows.into_iter().map(record_of).collect())
    }

    async fn find_by_emails(
        &self,
        emails: &[String],
    ) -> Result<Vec<(String, String)>, SalesforceError> {
        if let Some(guard) = self.index().await? {
            let index = guard.as_ref().expect("built");
            return Ok(emails
                .iter()
                .filter_map(|e| {
                    let e = e.to_lowercase();
                    index.emails.get(&e).map(|id| (e, id.clone()))
                })
                .collect());
        }
        let fields = vec![ID_FIELD.to_string(), "Email".to_string()];
        let mut rows: Vec<(String, String)> = self
            .client
            .select_in(&fields, "Email", emails)
            .await?
            .into_iter()
            .filter_map(|r| Some((text(r.get("Email"))?.to_lowercase(), text(r.get(ID_FIELD))?)))
            .collect();
        // Of several records with one email the oldest (lowest Id) wins: it comes last.
        rows.sort_by(|a, b| b.1.cmp(&a.1));
        Ok(rows)
    }

    async fn find_by_names(
        &self,
        wanted: &BTreeMap<NameKey, BTreeSet<String>>,
        done: &mut (dyn FnMut(NameKey, Vec<NameResult>) -> bool + Send),
    ) -> Result<(), SalesforceError> {
        if let Some(guard) = self.index().await? {
            let index = guard.as_ref().expect("built");
            let found: Vec<(NameKey, Vec<NameResult>)> = wanted
                .keys()
                .map(|k| (k.clone(), index.names.get(k).cloned().unwrap_or_default()))
                .collect();
            drop(guard);
            for (k, results) in found {
                if !done(k, results) {
                    break;
                }
            }
            return Ok(());
        }
        // By last name (a list at a time), first names compared here; the engine checks phones.
        let mut fields = vec![
            ID_FIELD.to_string(),
            "FirstName".to_string(),
            "LastName".to_string(),
        ];
        let phones = self.phone_fields().await?;
        fields.extend(phones.iter().map(|p| p.to_string()));
        let mut by_last: BTreeMap<String, Vec<NameKey>> = BTreeMap::new();
        for k in wanted.keys() {
            by_last.entry(k.1.clone()).or_default().push(k.clone());
        }
        let lasts: Vec<String> = by_last.keys().cloned().collect();
        for chunk in lasts.chunks(super::client::IN_VALUES) {
            let rows = self.client.select_in(&fields, "LastName", chunk).await?;
            let mut found: HashMap<NameKey, Vec<NameResult>> = HashMap::new();
            for r in rows {
                let key = name_key(
                    &text(r.get("FirstName")).unwrap_or_default(),
                    &text(r.get("LastName")).unwrap_or_default(),
                );
                let id = text(r.get(ID_FIELD)).unwrap_or_default();
                let list = found.entry(key).or_default();
                let mut any = false;
                for p in &phones {
                    if let Some(phone) = text(r.get(*p)) {
                        any = true;
                        list.push(NameResult {
                            id: id.clone(),
                            phone: Some(phone),
                        });
                    }
                }
                if !any {
                    list.push(NameResult { id, phone: None });
                }
            }
            for last in chunk {
                for key in by_last.remove(last).unwrap_or_default() {
                    let results = found.remove(&key).unwrap_or_default();
                    if !done(key, results) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn external_id_property(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    async fn find_by_external_ids(
        &self,
        values: &[String],
    ) -> Result<Vec<(String, String)>, SalesforceError> {
        let Some(field) = self.external_id.as_deref() else {
            return Ok(Vec::new());
        };
        if let Some(guard) = self.index().await? {
            let index = guard.as_ref().expect("built");
            return Ok(values
                .iter()
                .filter_map(|v| index.external.get(v).map(|id| (v.clone(), id.clone())))
                .collect());
        }
        let fields = vec![ID_FIELD.to_string(), field.to_string()];
        Ok(self
            .client
            .select_in(&fields, field, values)
            .await?
            .into_iter()
            .filter_map(|r| Some((text(r.get(field))?, text(r.get(ID_FIELD))?)))
            .collect())
    }

    async fn create_each(
        &self,
        records: &[BTreeMap<String, String>],
    ) -> Result<Option<Vec<Outcome>>, SalesforceError> {
        let describe = self.client.describe().await?;
        let prepared = records
            .iter()
            .map(|p| {
                // A new record has nothing to clear: an UNSET field is left out.
                let set: BTreeMap<String, String> = p
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                typed(describe, &set).map(|m| (None, m))
            })
            .collect();
        let outcomes = self.write(prepared, records.iter().collect(), true).await?;
        // Later lookups of this run see the records it created.
        if self.bulk_writes {
            let phones = self.phone_fields().await?;
            if let Some(index) = self.index.lock().await.as_mut() {
                for (o, props) in outcomes.iter().zip(records) {
                    if let Ok(r) = o {
                        let m: Map<String, Value> = props
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                            .collect();
                        index.add(&r.id, &m, &phones, self.external_id.as_deref());
                    }
                }
            }
        }
        Ok(Some(outcomes))
    }

    async fn update_each(
        &self,
        records: &[(String, BTreeMap<String, String>)],
    ) -> Result<Option<Vec<Outcome>>, SalesforceError> {
        let describe = self.client.describe().await?;
        let prepared = records
            .iter()
            .map(|(id, p)| typed(describe, p).map(|m| (Some(id.clone()), m)))
            .collect();
        Ok(Some(
            self.write(prepared, records.iter().map(|(_, p)| p).collect(), false)
                .await?,
        ))
    }

    async fn create(
        &self,
        records: &[BTreeMap<String, String>],
    ) -> Result<Vec<Record>, SalesforceError> {
        let outcomes = self.create_each(records).await?.unwrap_or_default();
        Ok(outcomes.into_iter().filter_map(Result::ok).collect())
    }

    async fn update(
        &self,
        records: &[(String, BTreeMap<String, String>)],
    ) -> Result<Vec<Record>, SalesforceError> {
        let outcomes = self.update_each(records).await?.unwrap_or_default();
        Ok(outcomes.into_iter().filter_map(Result::ok).collect())
    }

    /// A page of the records changed at or after `since_ms`: SOQL ordered by
    /// `(SystemModstamp, Id)`, paged by `nextRecordsUrl`. When a locator is gone (Salesforce
    /// keeps few open), the pull goes on by keyset after the last `(SystemModstamp, Id)` read,
    /// so records that share a timestamp at a page edge are neither lost nor read twice. A first
    /// pull (no watermark) of more than the bulk threshold reads through a Bulk API 2.0 query.
    async fn changes(
        &self,
        since_ms: i64,
        properties: &[String],
        page: Option<&str>,
    ) -> Result<ChangesPage, SalesforceError> {
        let fields = self.fields(properties).join(", ");
        let object = self.client.object();
        let order = format!("ORDER BY {MODSTAMP_FIELD} ASC, {ID_FIELD} ASC");
        let cursor = page.and_then(|p| serde_json::from_str::<Cursor>(p).ok());
        let (records, next_url, mut cursor) = match cursor {
            Some(c) if c.job.is_some() => {
                let job = c.job.clone().expect("checked");
                let (rows, locator) = self
                    .client
                    .bulk_query_page(&job, c.locator.as_deref(), BULK_PAGE)
                    .await?;
                let records: Vec<Record> = rows.into_iter().map(record_of).collect();
                let next = locator.map(|l| {
                    NextPage::Page(
                        Cursor {
                            job: Some(job),
                            locator: Some(l),
                            ..Cursor::default()
                        }
                        .encode(),
                    )
                });
                return Ok(ChangesPage {
                    records,
                    next: next.unwrap_or(NextPage::Done),
                });
            }
            Some(c) => {
                let next = c.next.clone().unwrap_or_default();
                let page = match self.client.query_more(&next).await {
                    Ok(p) => p,
                    Err(e) if e.code() == Some("INVALID_QUERY_LOCATOR") => {
                        let id = c.id.clone().unwrap_or_default();
                        let t = codec::soql_datetime(c.t);
                        self.client
                            .query(&format!(
                                "SELECT {fields} FROM {object} WHERE {MODSTAMP_FIELD} > {t} OR ({MODSTAMP_FIELD} = {t} AND {ID_FIELD} > {}) {order}",
                                super::client::soql_string(&id)
                            ))
                            .await?
                    }
                    Err(e) => return Err(e),
                };
                (page.records, page.next_records_url, c)
            }
            None => {
                let t = codec::soql_datetime(since_ms);
                let soql =
                    format!("SELECT {fields} FROM {object} WHERE {MODSTAMP_FIELD} >= {t} {order}");
                let page = self.client.query(&soql).await?;
                if since_ms <= 0 && page.total_size as usize > self.bulk_threshold {
                    // A first full pull of many records: one Bulk API 2.0 query job.
                    let job = self.client.bulk_query_start(&soql).await?;
                    return Ok(ChangesPage {
                        records: Vec::new(),
                        next: NextPage::Page(
                            Cursor {
                                job: Some(job),
                                ..Cursor::default()
                            }
                            .encode(),
                        ),
                    });
                }
                (page.records, page.next_records_url, Cursor::default())
            }
        };
        let records: Vec<Record> = records.into_iter().map(record_of).collect();
        if let Some(last) = records.last() {
            cursor.t = last.modified_ms.unwrap_or(cursor.t);
            cursor.id = Some(last.id.clone());
        }
        let next = match next_url {
            Some(url) => {
                cursor.next = Some(url);
                NextPage::Page(cursor.encode())
            }
            None => NextPage::Done,
        };
        Ok(ChangesPage { records, next })
    }

    async fn deleted_since(
        &self,
        since_ms: i64,
    ) -> Result<Option<(Vec<String>, i64)>, SalesforceError> {
        Ok(Some(self.client.deleted(since_ms).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::client::FieldInfo;

    fn field(name: &str, sf_type: &str, nillable: bool) -> FieldInfo {
        FieldInfo {
            name: name.into(),
            label: name.into(),
            sf_type: sf_type.into(),
            nillable,
            createable: true,
            updateable: true,
            external_id: false,
            picklist: Vec::new(),
            restricted: false,
        }
    }

    #[test]
    fn unset_is_null_for_nillable_fields_and_refused_for_others() {
        let mut status = field("Enrollment_Status__c", "picklist", true);
        status.picklist = vec!["Enrolled".into()];
        status.restricted = true;
        let d = Describe {
            fields: vec![
                field("FirstName", "string", true),
                field("LastName", "string", false),
                field("HasOptedOutOfEmail", "boolean", false),
                status,
            ],
        };
        let props = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let m = typed(
            &d,
            &props(&[("FirstName", ""), ("HasOptedOutOfEmail", "true")]),
        )
        .unwrap();
        assert_eq!(m["FirstName"], Value::Null);
        assert_eq!(m["HasOptedOutOfEmail"], Value::Bool(true));
        let e = typed(&d, &props(&[("LastName", "")])).unwrap_err();
        assert_eq!(e.code, "salesforce_field_not_nillable");
        assert!(e.message.contains("LastName"), "{}", e.message);
        let e = typed(&d, &props(&[("Enrollment_Status__c", "Graduated")])).unwrap_err();
        assert_eq!(e.code, "salesforce_invalid_or_null_for_restricted_picklist");
        assert!(typed(&d, &props(&[("Enrollment_Status__c", "Enrolled")])).is_ok());
    }

    #[test]
    fn record_codes_map_to_the_dictionary() {
        assert_eq!(
            sync_code("DUPLICATES_DETECTED"),
            "salesforce_duplicates_detected"
        );
        assert_eq!(sync_code("SOMETHING_NEW"), "salesforce_rejected");
    }
}
