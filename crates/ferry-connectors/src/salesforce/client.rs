//! A Salesforce REST client over the shared HTTP plumbing ([`crate::crm::http`]): every call
//! goes to the session's `instance_url`; `Sforce-Limit-Info` is read on every answer and a run
//! stops before it takes more than its share of the org's daily requests; a 401
//! `INVALID_SESSION_ID` renews the session once; 5xx answers and timeouts of idempotent calls
//! are retried with backoff. Describe, SOQL with `nextRecordsUrl`, sObject Collections, the
//! deleted-records list, and Bulk API 2.0 ingest and query jobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::mapping::RemoteProperty;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::SalesforceSettings;
use super::codec::{self, from_json};
use super::config::SObject;
use super::oauth::{Session, SessionSource};
use crate::crm::http::{Answer, Calls, Http, RetryPolicy, Window, retry_after_hint};

/// Records per sObject Collections call (Salesforce's maximum).
pub const COLLECTION: usize = 200;
/// Values of one `IN (…)` list a lookup sends, keeping the query's URL well under
/// Salesforce's 16,384-byte limit.
pub const IN_VALUES: usize = 300;

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SalesforceError {
    /// Salesforce answered with an error: `[{message, errorCode, fields}]`.
    #[error("Salesforce answered {status} {code}: {message}{}", hint(.code))]
    Api {
        /// The HTTP status.
        status: u16,
        /// Salesforce's `errorCode`.
        code: String,
        /// Salesforce's message.
        message: String,
        /// The fields it names.
        fields: Vec<String>,
    },
    /// The token endpoint refused: `{error, error_description}`.
    #[error("Salesforce refused the sign-in ({error}): {description}")]
    Token {
        /// The HTTP status.
        status: u16,
        /// OAuth's `error`.
        error: String,
        /// OAuth's `error_description`.
        description: String,
    },
    /// The run stopped before taking more than its share of the daily limit.
    #[error(
        "stopped before using more than {share} % of the org's daily API requests ({used} of {max} used today); the next run goes on where this one stopped, or raise the instance's API limit share"
    )]
    LimitShare {
        /// Requests used today, as Salesforce last said.
        used: u64,
        /// The org's daily limit.
        max: u64,
        /// The instance's share, in percent.
        share: u8,
    },
    /// A Bulk API 2.0 job did not complete.
    #[error("the Bulk API 2.0 job {job} ended {state}: {message}")]
    Bulk {
        /// The job's ID.
        job: String,
        /// Its final state.
        state: String,
        /// Salesforce's `errorMessage`.
        message: String,
    },
    /// The request could not be sent or answered (after the retries).
    #[error("Salesforce could not be reached: {0}")]
    Transport(String),
}

fn hint(code: &str) -> &'static str {
    match code {
        "INVALID_SESSION_ID" => " (the session was refused after a renewal)",
        "REQUEST_LIMIT_EXCEEDED" => {
            " (the org used its daily API requests; runs go on after Salesforce's 24-hour window moves)"
        }
        "MALFORMED_QUERY" => " (a SOQL query Ferry built was refused; report it)",
        _ => "",
    }
}

impl SalesforceError {
    /// The HTTP status, when Salesforce answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            SalesforceError::Api { status, .. } | SalesforceError::Token { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Salesforce's error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SalesforceError::Api { code, .. } => Some(code),
            SalesforceError::Token { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether trying again later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            SalesforceError::Api { status, .. } | SalesforceError::Token { status, .. } => {
                *status >= 500
            }
            SalesforceError::Transport(_) => true,
            _ => false,
        }
    }

    /// Whether Salesforce refused the credentials (a new session did not help).
    pub fn is_refused_credentials(&self) -> bool {
        match self {
            SalesforceError::Api { status, .. } => *status == 401,
            SalesforceError::Token { status, .. } => *status < 500,
            _ => false,
        }
    }
}

/// Salesforce's error answer.
fn api_error(status: u16, text: &str) -> SalesforceError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let first = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
    let code = first["errorCode"]
        .as_str()
        .or(first["statusCode"].as_str())
        .or(first["error"].as_str())
        .unwrap_or(if status >= 500 {
            "SERVER_ERROR"
        } else {
            "UNKNOWN"
        })
        .to_string();
    let message = first["message"]
        .as_str()
        .or(first["error_description"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(300).collect());
    let fields = first["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    SalesforceError::Api {
        status,
        code,
        message,
        fields,
    }
}

/// `api-usage=N/M` of a `Sforce-Limit-Info` header.
pub fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    // Not `per-app-api-usage=`: the part must start with it.
    let rest = header
        .split([';', ','])
        .find_map(|p| p.trim().strip_prefix("api-usage="))?;
    let (used, rest) = rest.split_once('/')?;
    let max: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((used.trim().parse().ok()?, max.parse().ok()?))
}

/// One field of the object, as `describe` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    /// The API name.
    pub name: String,
    /// The label.
    pub label: String,
    /// The describe `type` (`string`, `picklist`, `boolean`, …).
    pub sf_type: String,
    /// Whether it may be null (an UNSET can clear it).
    pub nillable: bool,
    /// Whether a create may set it.
    pub createable: bool,
    /// Whether an update may set it.
    pub updateable: bool,
    /// Whether it is an external ID.
    pub external_id: bool,
    /// The active picklist values.
    pub picklist: Vec<String>,
    /// Whether the picklist refuses other values.
    pub restricted: bool,
}

/// The object's fields.
#[derive(Debug, Clone, Default)]
pub struct Describe {
    /// Every field, in describe's order.
    pub fields: Vec<FieldInfo>,
}

impl Describe {
    /// Reads a DescribeSObjectResult.
    pub fn from_json(v: &Value) -> Describe {
        let fields = v["fields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| {
                        let b = |k: &str| f[k].as_bool().unwrap_or(false);
                        Some(FieldInfo {
                            name: f["name"].as_str()?.to_string(),
                            label: f["label"].as_str().unwrap_or("").to_string(),
                            sf_type: f["type"].as_str().unwrap_or("").to_string(),
                            nillable: b("nillable"),
                            createable: b("createable"),
                            updateable: b("updateable"),
                            external_id: b("externalId"),
                            picklist: f["picklistValues"]
                                .as_array()
                                .map(|p| {
                                    p.iter()
                                        .filter(|x| x["active"].as_bool().unwrap_or(true))
                                        .filter_map(|x| x["value"].as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default(),
                            restricted: b("restrictedPicklist"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Describe { fields }
    }

    /// A field by API name.
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The fields as the mapping screens and checks see them.
    pub fn properties(&self) -> Vec<RemoteProperty> {
        self.fields
            .iter()
            .map(|f| RemoteProperty {
                name: f.name.clone(),
                label: f.label.clone(),
                kind: codec::remote_kind(&f.sf_type),
                read_only: !(f.createable || f.updateable),
            })
            .collect()
    }
}

/// A page of a SOQL query.
#[derive(Debug, Clone, Default)]
pub struct QueryPage {
    /// Rows matched in all.
    pub total_size: u64,
    /// The page's records (their `attributes` removed).
    pub records: Vec<Map<String, Value>>,
    /// The next page's URL, when there is one.
    pub next_records_url: Option<String>,
}

/// One record's result in an sObject Collections answer or a Bulk job's results: its ID, or
/// Salesforce's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveResult {
    /// Saved (the record's ID).
    Saved(String),
    /// Refused: Salesforce's `statusCode` (or `errorCode`), message and fields.
    Refused {
        /// The code.
        code: String,
        /// The message.
        message: String,
        /// The fields named.
        fields: Vec<String>,
    },
}

/// A Bulk API 2.0 ingest operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOp<'a> {
    /// Create records.
    Insert,
    /// Update records by `Id`.
    Update,
    /// Create or update by an external-ID field.
    Upsert(&'a str),
}

/// Requests a client may send per second at most (Salesforce limits per day, not per second;
/// this only keeps a burst of concurrent runs polite).
const PER_SECOND: usize = 200;

/// The client of one org for one object.
pub struct Client {
    http: Http,
    window: Window,
    session_source: Arc<dyn SessionSource>,
    session: tokio::sync::Mutex<Option<Session>>,
    settings: SalesforceSettings,
    object: SObject,
    /// The share of the daily limit (0–1) the client stops before; `None`: no stop.
    limit_share: Option<f64>,
    usage: std::sync::Mutex<Option<(u64, u64)>>,
    describe: tokio::sync::OnceCell<Describe>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

/// What a request carries.
enum Body<'a> {
    None,
    Json(&'a Value),
    Csv(String),
}

/// SOQL's quoting of a string literal.
pub fn soql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Drops a record's `attributes`.
fn clean(mut r: Map<String, Value>) -> Map<String, Value> {
    r.remove("attributes");
    r
}

impl Client {
    /// A client of `object` signing in through `session_source`; a run stops before the org's
    /// usage passes `limit_share` (0–1) of its daily limit.
    pub fn new(
        settings: SalesforceSettings,
        session_source: Arc<dyn SessionSource>,
        object: SObject,
        limit_share: Option<f64>,
    ) -> Client {
        let policy = RetryPolicy {
            retries: settings.retries,
            backoff: settings.backoff,
            max_wait: Duration::from_secs(30),
        };
        Client {
            http: Http::new(settings.timeout, policy, retry_after_hint),
            window: Window::new(PER_SECOND, Duration::from_secs(1)),
            session_source,
            session: tokio::sync::Mutex::new(None),
            settings,
            object,
            limit_share,
            usage: std::sync::Mutex::new(None),
            describe: tokio::sync::OnceCell::new(),
        }
    }

    /// The object's API name.
    pub fn object(&self) -> &'static str {
        self.object.as_str()
    }

    /// What the client sent so far.
    pub fn calls(&self) -> Calls {
        self.http.calls()
    }

    /// The org's API usage as Salesforce last reported it: (used today, daily limit).
    pub fn usage(&self) -> Option<(u64, u64)> {
        *self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_share(&self) -> Result<(), SalesforceError> {
        let (Some(share), Some((used, max))) = (self.limit_share, self.usage()) else {
            return Ok(());
        };
        if max > 0 && (used + 1) as f64 > share * max as f64 {
            return Err(SalesforceError::LimitShare {
                used,
                max,
                share: (share * 100.0).round() as u8,
            });
        }
        Ok(())
    }

    async fn current_session(&self, renew: bool) -> Result<Session, SalesforceError> {
        let mut s = self.session.lock().await;
        if renew {
            *s = None;
            let fresh = self.session_source.renew().await?;
            *s = Some(fresh.clone());
            return Ok(fresh);
        }
        if let Some(s) = s.as_ref() {
            return Ok(s.clone());
        }
        let fresh = self.session_source.session().await?;
        *s = Some(fresh.clone());
        Ok(fresh)
    }

    fn url(&self, session: &Session, target: &str) -> String {
        if target.starts_with('/') {
            format!("{}{target}", session.instance_url)
        } else {
            format!(
                "{}/services/data/v{}/{target}",
                session.instance_url, self.settings.api_version
            )
        }
    }

    /// Sends a request: `target` is relative to `/services/data/vXX.X/`, or a path from the
    /// instance's root (`nextRecordsUrl`). Retries 5xx and timeouts when `idempotent`; renews
    /// the session once on a 401.
    async fn send(
        &self,
        method: reqwest::Method,
        target: &str,
        body: Body<'_>,
        idempotent: bool,
    ) -> Result<Answer, SalesforceError> {
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            self.check_share()?;
            let session = self.current_session(false).await?;
            let mut req = self
                .http
                .client()
                .request(method.clone(), self.url(&session, target))
                .bearer_auth(session.access_token.expose_secret())
                .header("Accept", "application/json");
            match &body {
                Body::None => {}
                Body::Json(v) => req = req.json(v),
                Body::Csv(text) => {
                    req = req.header("Content-Type", "text/csv").body(text.clone());
                }
            }
            let answer = self.http.send_once(&self.window, req).await;
            if let Ok(a) = &answer
                && let Some(u) = a
                    .headers
                    .get("sforce-limit-info")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_limit_info)
            {
                *self
                    .usage
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(u);
            }
            let err = match &answer {
                Ok(a) if a.is_success() || a.status == 300 => return Ok(a.clone()),
                Ok(a) => api_error(a.status, &a.body),
                Err(e) => SalesforceError::Transport(e.clone()),
            };
            if err.status() == Some(401) && !renewed {
                renewed = true;
                tracing::debug!("Salesforce refused the session; renewing it once");
                self.current_session(true).await?;
                continue;
            }
            let wait = match idempotent && err.is_transient() {
                true => self.http.retry_wait(attempt, answer.as_ref().ok()),
                false => None,
            };
            let Some(wait) = wait else {
                return Err(err);
            };
            attempt += 1;
            tracing::debug!(%err, ?wait, attempt, "retrying a Salesforce request");
            tokio::time::sleep(wait).await;
        }
    }

    async fn get_json(&self, target: &str) -> Result<Value, SalesforceError> {
        let a = self
            .send(reqwest::Method::GET, target, Body::None, true)
            .await?;
        Ok(serde_json::from_str(&a.body).unwrap_or(Value::Null))
    }

    /// The object's describe (read once per client).
    pub async fn describe(&self) -> Result<&Describe, SalesforceError> {
        self.describe
            .get_or_try_init(|| async {
                let v = self
                    .get_json(&format!("sobjects/{}/describe", self.object()))
                    .await?;
                Ok(Describe::from_json(&v))
            })
            .await
    }

    /// The first page of a SOQL query.
    pub async fn query(&self, soql: &str) -> Result<QueryPage, SalesforceError> {
        let q: String = form_urlencoded_q(soql);
        let v = self.get_json(&format!("query?q={q}")).await?;
        Ok(Self::page(v))
    }

    /// The page at a `nextRecordsUrl`.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage, SalesforceError> {
        let v = self.get_json(next_records_url).await?;
        Ok(Self::page(v))
    }

    fn page(v: Value) -> QueryPage {
        QueryPage {
            total_size: v["totalSize"].as_u64().unwrap_or(0),
            records: v["records"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_object().cloned().map(clean))
                        .collect()
                })
                .unwrap_or_default(),
            next_records_url: v["nextRecordsUrl"].as_str().map(str::to_string),
        }
    }

    /// Every record a SOQL query matches, through its pages.
    pub async fn query_all(&self, soql: &str) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let mut page = self.query(soql).await?;
        let mut out = std::mem::take(&mut page.records);
        while let Some(next) = page.next_records_url.take() {
            page = self.query_more(&next).await?;
            out.append(&mut page.records);
        }
        Ok(out)
    }

    fn results(v: &Value) -> Vec<SaveResult> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        if r["success"].as_bool().unwrap_or(false) {
                            SaveResult::Saved(r["id"].as_str().unwrap_or("").to_string())
                        } else {
                            let e = r["errors"].as_array().and_then(|e| e.first());
                            let e = e.unwrap_or(&Value::Null);
                            SaveResult::Refused {
                                // Collections say `statusCode`; some clients' types say
                                // `errorCode`: read both.
                                code: e["statusCode"]
                                    .as_str()
                                    .or(e["errorCode"].as_str())
                                    .unwrap_or("UNKNOWN_EXCEPTION")
                                    .to_string(),
                                message: e["message"].as_str().unwrap_or("").to_string(),
                                fields: e["fields"]
                                    .as_array()
                                    .map(|f| {
                                        f.iter()
                                            .filter_map(Value::as_str)
                                            .map(str::to_string)
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                            }
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Creates up to [`COLLECTION`] records (`allOrNone` false); one result per record, in
    /// order. Not retried after a 5xx (the create may have happened).
    pub async fn collection_create(
        &self,
        records: Vec<Map<String, Value>>,
    ) -> Result<Vec<SaveResult>, SalesforceError> {
        let records: Vec<Value> = records
            .into_iter()
            .map(|mut r| {
                r.insert("attributes".into(), json!({"type": self.object()}));
                Value::Object(r)
            })
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        let a = self
            .send(
                reqwest::Method::POST,
                "composite/sobjects",
                Body::Json(&body),
                false,
            )
            .await?;
        Ok(Self::results(
            &serde_json::from_str(&a.body).unwrap_or(Value::Null),
        ))
    }

    /// Updates up to [`COLLECTION`] records by `id` (`allOrNone` false); one result per
    /// record, in order.
    pub async fn collection_update(
        &self,
        records: Vec<(String, Map<String, Value>)>,
    ) -> Result<Vec<SaveResult>, SalesforceError> {
        let records: Vec<Value> = records
            .into_iter()
            .map(|(id, mut r)| {
                r.insert("attributes".into(), json!({"type": self.object()}));
                r.insert("id".into(), json!(id));
                Value::Object(r)
            })
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        let a = self
            .send(
                reqwest::Method::PATCH,
                "composite/sobjects",
                Body::Json(&body),
                true,
            )
            .await?;
        Ok(Self::results(
            &serde_json::from_str(&a.body).unwrap_or(Value::Null),
        ))
    }

    /// The IDs of the records deleted from `start_ms` on, and the time the answer covers.
    pub async fn deleted(&self, start_ms: i64) -> Result<(Vec<String>, i64), SalesforceError> {
        let now = jiff::Timestamp::now().as_millisecond();
        let start = codec::soql_datetime(start_ms);
        let end = codec::soql_datetime(now.max(start_ms));
        let v = self
            .get_json(&format!(
                "sobjects/{}/deleted?start={}&end={}",
                self.object(),
                form_urlencoded_q(&start),
                form_urlencoded_q(&end)
            ))
            .await?;
        let ids = v["deletedRecords"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let covered = v["latestDateCovered"]
            .as_str()
            .and_then(codec::parse_datetime)
            .unwrap_or(start_ms);
        Ok((ids, covered))
    }

    async fn poll_job(&self, kind: &str, id: &str) -> Result<Value, SalesforceError> {
        loop {
            let v = self.get_json(&format!("jobs/{kind}/{id}")).await?;
            match v["state"].as_str().unwrap_or("") {
                "JobComplete" => return Ok(v),
                state @ ("Failed" | "Aborted") => {
                    return Err(SalesforceError::Bulk {
                        job: id.to_string(),
                        state: state.to_string(),
                        message: v["errorMessage"].as_str().unwrap_or("").to_string(),
                    });
                }
                _ => tokio::time::sleep(self.settings.bulk_poll).await,
            }
        }
    }

    /// Runs a Bulk API 2.0 ingest job over `rows` (field → text; `None` is null, written
    /// `#N/A`) and reads its results back: one per row, in `rows`' order (results are paired
    /// with rows by `Id` for updates and by their values otherwise).
    pub async fn bulk_ingest(
        &self,
        op: IngestOp<'_>,
        rows: &[BTreeMap<String, Option<String>>],
    ) -> Result<Vec<SaveResult>, SalesforceError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let header: Vec<String> = rows
            .iter()
            .flat_map(|r| r.keys().cloned())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let cells = |r: &BTreeMap<String, Option<String>>| -> Vec<String> {
            header
                .iter()
                .map(|h| match r.get(h) {
                    // Not sent: an empty cell leaves the field alone.
                    None => String::new(),
                    Some(None) => "#N/A".to_string(),
                    Some(Some(v)) => v.clone(),
                })
                .collect()
        };
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let _ = w.write_record(&header);
        let all_cells: Vec<Vec<String>> = rows.iter().map(cells).collect();
        for c in &all_cells {
            let _ = w.write_record(c);
        }
        let csv_text = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
        let mut job = json!({
            "object": self.object(),
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        match op {
            IngestOp::Insert => job["operation"] = json!("insert"),
            IngestOp::Update => job["operation"] = json!("update"),
            IngestOp::Upsert(field) => {
                job["operation"] = json!("upsert");
                job["externalIdFieldName"] = json!(field);
            }
        }
        let created = self
            .send(reqwest::Method::POST, "jobs/ingest", Body::Json(&job), true)
            .await?;
        let created: Value = serde_json::from_str(&created.body).unwrap_or(Value::Null);
        let id = created["id"]
            .as_str()
            .ok_or_else(|| SalesforceError::Transport("the ingest job has no id".into()))?
            .to_string();
        self.send(
            reqwest::Method::PUT,
            &format!("jobs/ingest/{id}/batches"),
            Body::Csv(csv_text),
            true,
        )
        .await?;
        match self
            .send(
                reqwest::Method::PATCH,
                &format!("jobs/ingest/{id}"),
                Body::Json(&json!({"state": "UploadComplete"})),
                true,
            )
            .await
        {
            Ok(_) => {}
            // A retry of a close that took effect before its answer timed out: the job is
            // closed already, and polling says how it ended.
            Err(e) if e.code() == Some("INVALIDJOBSTATE") => {
                tracing::debug!(job = %id, "the ingest job was closed already");
            }
            Err(e) => return Err(e),
        }
        self.poll_job("ingest", &id).await?;

        // Results come in any order: pair each with its row.
        let index = |cells: &[String]| cells.join("\u{1f}");
        let mut by_value: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in all_cells.iter().enumerate() {
            by_value.entry(index(c)).or_default().push(i);
        }
        let id_col = header.iter().position(|h| h == "Id");
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
        if let Some(col) = id_col {
            for (i, c) in all_cells.iter().enumerate() {
                by_id.entry(c[col].clone()).or_default().push(i);
            }
        }
        let mut out: Vec<Option<SaveResult>> = vec![None; rows.len()];
        for which in ["successfulResults", "failedResults"] {
            let a = self
                .send(
                    reqwest::Method::GET,
                    &format!("jobs/ingest/{id}/{which}/"),
                    Body::None,
                    true,
                )
                .await?;
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(a.body.as_bytes());
            let result_header: Vec<String> = reader
                .headers()
                .map(|h| h.iter().map(str::to_string).collect())
                .unwrap_or_default();
            for rec in reader.records().flatten() {
                let get = |name: &str| {
                    result_header
                        .iter()
                        .position(|h| h == name)
                        .and_then(|i| rec.get(i))
                        .unwrap_or("")
                        .to_string()
                };
                let row_cells: Vec<String> = header.iter().map(|h| get(h)).collect();
                let slot = match id_col {
                    Some(col) => by_id.get_mut(&row_cells[col]).and_then(|v| v.pop()),
                    None => by_value.get_mut(&index(&row_cells)).and_then(|v| v.pop()),
                };
                let Some(slot) = slot else { continue };
                out[slot] = Some(if which == "successfulResults" {
                    SaveResult::Saved(get("sf__Id"))
                } else {
                    // `CODE:message:fields --`
                    let e = get("sf__Error");
                    let (code, rest) = e.split_once(':').unwrap_or((&e, ""));
                    let (message, fields) = rest.rsplit_once(':').unwrap_or((rest, ""));
                    SaveResult::Refused {
                        code: code.trim().to_string(),
                        message: message.trim().to_string(),
                        fields: fields
                            .trim()
                            .trim_end_matches("--")
                            .split(',')
                            .map(str::trim)
                            .filter(|f| !f.is_empty())
                            .map(str::to_string)
                            .collect(),
                    }
                });
            }
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or(SaveResult::Refused {
                    code: "UNPROCESSED".into(),
                    message: "the Bulk API job did not process the record".into(),
                    fields: Vec::new(),
                })
            })
            .collect())
    }

    /// Starts a Bulk API 2.0 query job; returns its ID once it completed.
    pub async fn bulk_query_start(&self, soql: &str) -> Result<String, SalesforceError> {
        let a = self
            .send(
                reqwest::Method::POST,
                "jobs/query",
                Body::Json(&json!({"operation": "query", "query": soql})),
                true,
            )
            .await?;
        let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
        let id = v["id"]
            .as_str()
            .ok_or_else(|| SalesforceError::Transport("the query job has no id".into()))?
            .to_string();
        self.poll_job("query", &id).await?;
        Ok(id)
    }

    /// A page of a completed query job's results (empty cells are null) and the next locator.
    pub async fn bulk_query_page(
        &self,
        job: &str,
        locator: Option<&str>,
        max_records: usize,
    ) -> Result<(Vec<Map<String, Value>>, Option<String>), SalesforceError> {
        let mut target = format!("jobs/query/{job}/results?maxRecords={max_records}");
        if let Some(l) = locator {
            target.push_str(&format!("&locator={}", form_urlencoded_q(l)));
        }
        let a = self
            .send(reqwest::Method::GET, &target, Body::None, true)
            .await?;
        let next = a
            .headers
            .get("sforce-locator")
            .and_then(|v| v.to_str().ok())
            .filter(|l| !l.is_empty() && *l != "null")
            .map(str::to_string);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(a.body.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map(|h| h.iter().map(str::to_string).collect())
            .unwrap_or_default();
        let rows = reader
            .records()
            .flatten()
            .map(|rec| {
                header
                    .iter()
                    .zip(rec.iter())
                    .map(|(h, v)| {
                        let v = if v.is_empty() { Value::Null } else { json!(v) };
                        (h.clone(), v)
                    })
                    .collect()
            })
            .collect();
        Ok((rows, next))
    }

    /// The object's fields, for the mapping.
    pub async fn properties(&self) -> Result<Vec<RemoteProperty>, SalesforceError> {
        Ok(self.describe().await?.properties())
    }

    /// `SELECT fields FROM object WHERE field IN (values)`, in lists of [`IN_VALUES`].
    pub async fn select_in(
        &self,
        fields: &[String],
        field: &str,
        values: &[String],
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let mut out = Vec::new();
        for chunk in values.chunks(IN_VALUES) {
            if chunk.is_empty() {
                continue;
            }
            let list: Vec<String> = chunk.iter().map(|v| soql_string(v)).collect();
            let soql = format!(
                "SELECT {} FROM {} WHERE {field} IN ({})",
                fields.join(", "),
                self.object(),
                list.join(", ")
            );
            out.extend(self.query_all(&soql).await?);
        }
        Ok(out)
    }
}

/// A value as its text (`None` for null), for rows read back.
pub fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(from_json)
}

/// Percent-encodes a query parameter.
pub fn form_urlencoded_q(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_is_read_with_or_without_the_per_app_part() {
        assert_eq!(parse_limit_info("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-app)"),
            Some((25, 5000))
        );
        assert_eq!(parse_limit_info("per-app-api-usage=17/250"), None);
    }

    #[test]
    fn errors_are_read_in_both_shapes() {
        let e = api_error(
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        );
        assert_eq!(e.code(), Some("INVALID_SESSION_ID"));
        assert!(e.is_refused_credentials() && !e.is_transient());
        let e = api_error(
            403,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert!(!e.is_transient() && !e.is_refused_credentials());
        assert!(e.to_string().contains("REQUEST_LIMIT_EXCEEDED"));
        let e = api_error(503, "oops");
        assert!(e.is_transient());
        let r = Client::results(&json!([
            {"id": "003A", "success": true, "errors": []},
            {"success": false, "errors": [{"statusCode": "DUPLICATES_DETECTED", "message": "Use one of these records?", "fields": []}]},
            {"success": false, "errors": [{"errorCode": "INVALID_EMAIL_ADDRESS", "message": "Email: invalid email address: x", "fields": ["Email"]}]}
        ]));
        assert_eq!(r[0], SaveResult::Saved("003A".into()));
        assert!(matches!(&r[1], SaveResult::Refused { code, .. } if code == "DUPLICATES_DETECTED"));
        assert!(
            matches!(&r[2], SaveResult::Refused { code, fields, .. } if code == "INVALID_EMAIL_ADDRESS" && fields == &["Email"])
        );
    }

    #[test]
    fn soql_strings_are_escaped() {
        assert_eq!(soql_string("O'Brien"), r"'O\'Brien'");
        assert_eq!(soql_string(r"a\b"), r"'a\\b'");
    }
}
