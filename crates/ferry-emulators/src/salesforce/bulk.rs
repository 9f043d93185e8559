//! Bulk API 2.0: ingest jobs (CSV insert, update, upsert, delete) and query jobs, with their
//! state machine and CSV results.
//!
//! A job's work is done when it is closed (`UploadComplete`, or at creation for a query), but
//! its state reads `InProgress` for the first [`super::EmulatorConfig::bulk_polls_in_progress`]
//! polls, so a client must follow the states as it would at Salesforce.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::describe::FieldError;
use super::error::{ApiError, ApiResult, json_response};
use super::store::{self, Store, WriteError};
use super::{Shared, soql, time};

/// Rows of a query job's results page when `maxRecords` is not given.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Insert,
    Update,
    Upsert,
    Delete,
    Query,
    QueryAll,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
            Operation::Query => "query",
            Operation::QueryAll => "queryAll",
        }
    }
}

/// One job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    id: String,
    version: String,
    operation: Operation,
    object: &'static str,
    external_id: Option<&'static str>,
    delimiter: u8,
    delimiter_name: String,
    line_ending: String,
    /// `Open`, `UploadComplete`, `JobComplete`, `Failed`, `Aborted` (`InProgress` is shown
    /// while `polls_left` > 0).
    state: &'static str,
    polls_left: u32,
    created_ms: i64,
    data: Option<Vec<u8>>,
    error_message: Option<String>,
    /// Ingest: `(sf__Id, sf__Created, original row)`.
    successes: Vec<(String, bool, Vec<String>)>,
    /// Ingest: `(sf__Id, sf__Error, original row)`.
    failures: Vec<(String, String, Vec<String>)>,
    header: Vec<String>,
    /// Query: result rows (CSV fields).
    rows: Vec<Vec<String>>,
}

impl Job {
    fn visible_state(&self) -> &'static str {
        if matches!(self.state, "JobComplete" | "Failed") && self.polls_left > 0 {
            "InProgress"
        } else {
            self.state
        }
    }

    fn info(&self, kind: &str) -> Value {
        let processed = if kind == "query" {
            self.rows.len()
        } else {
            self.successes.len() + self.failures.len()
        };
        let mut v = json!({
            "id": self.id,
            "operation": self.operation.name(),
            "object": self.object,
            "createdById": store::make_id("005", 1),
            "createdDate": time::format(self.created_ms),
            "systemModstamp": time::format(self.created_ms),
            "state": self.visible_state(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.version.trim_start_matches('v').parse::<f64>().unwrap_or(62.0),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.delimiter_name,
            "jobType": "V2Query",
            "numberRecordsProcessed": if self.visible_state() == "JobComplete" { processed } else { 0 },
            "retries": 0,
            "totalProcessingTime": 0,
        });
        if kind == "ingest" {
            v["jobType"] = json!("V2Ingest");
            v["contentUrl"] = json!(format!(
                "services/data/{}/jobs/ingest/{}/batches",
                self.version, self.id
            ));
            v["numberRecordsFailed"] = json!(if self.visible_state() == "JobComplete" {
                self.failures.len()
            } else {
                0
            });
            if let Some(e) = self.external_id {
                v["externalIdFieldName"] = json!(e);
            }
        } else {
            v["query"] = Value::Null;
        }
        if let Some(m) = &self.error_message {
            v["errorMessage"] = json!(m);
        }
        v
    }
}

/// The jobs of the org.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    pub jobs: HashMap<String, Job>,
    seq: u64,
}

fn invalid_job(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("INVALIDJOB", message)
}

fn invalid_state(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "INVALIDJOBSTATE", message)
}

fn delimiter(name: &str) -> Option<u8> {
    Some(match name {
        "COMMA" => b',',
        "BACKQUOTE" => b'`',
        "CARET" => b'^',
        "PIPE" => b'|',
        "SEMICOLON" => b';',
        "TAB" => b'\t',
        _ => return None,
    })
}

fn body_json(body: &Bytes) -> ApiResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "the body must be an object",
        )),
        Err(e) => Err(ApiError::json_parse(&e)),
    }
}

fn check_version(v: &str) -> ApiResult<()> {
    let n = v
        .strip_prefix('v')
        .and_then(|n| n.strip_suffix(".0"))
        .and_then(|n| n.parse::<u32>().ok());
    // Bulk API 2.0 ingest since v41, query since v47; checked per kind below.
    n.filter(|n| (41..=62).contains(n))
        .map(|_| ())
        .ok_or_else(ApiError::not_found)
}

fn version_number(v: &str) -> u32 {
    v.trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `POST …/jobs/ingest`.
pub(crate) async fn create_ingest(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let b = body_json(&body)?;
        let s = |k: &str| b.get(k).and_then(Value::as_str).map(String::from);
        let mut st = shared.lock();
        let object_name = s("object").ok_or_else(|| invalid_job("object is required"))?;
        let object = st.store.object(&object_name).ok_or_else(|| {
            invalid_job(format!(
                "Entity '{object_name}' is not supported by the Bulk API."
            ))
        })?;
        let operation = match s("operation").as_deref() {
            Some("insert") => Operation::Insert,
            Some("update") => Operation::Update,
            Some("upsert") => Operation::Upsert,
            Some("delete") | Some("hardDelete") => Operation::Delete,
            other => {
                return Err(invalid_job(format!(
                    "Invalid operation: {}",
                    other.unwrap_or("(none)")
                )));
            }
        };
        let external_id = match (operation, s("externalIdFieldName")) {
            (Operation::Upsert, None) => {
                return Err(invalid_job(format!(
                    "External ID was blank for {object}. An External ID must be specified for upsert."
                )));
            }
            (Operation::Upsert, Some(f)) => {
                Some(st.store.external_field(object, &f).map_err(|_| {
                    invalid_job(format!(
                        "The field {f} is not an external ID field of {object}"
                    ))
                })?)
            }
            _ => None,
        };
        if s("contentType").is_some_and(|c| c != "CSV") {
            return Err(invalid_job("contentType must be CSV"));
        }
        let delimiter_name = s("columnDelimiter").unwrap_or_else(|| "COMMA".into());
        let delim = delimiter(&delimiter_name)
            .ok_or_else(|| invalid_job(format!("Invalid columnDelimiter: {delimiter_name}")))?;
        let line_ending = s("lineEnding").unwrap_or_else(|| "LF".into());
        if !matches!(line_ending.as_str(), "LF" | "CRLF") {
            return Err(invalid_job(format!("Invalid lineEnding: {line_ending}")));
        }
        st.jobs.seq += 1;
        let id = store::make_id("750", st.jobs.seq);
        let job = Job {
            id: id.clone(),
            version: version.clone(),
            operation,
            object,
            external_id,
            delimiter: delim,
            delimiter_name,
            line_ending,
            state: "Open",
            polls_left: 0,
            created_ms: shared.clock.now_s(),
            data: None,
            error_message: None,
            successes: Vec::new(),
            failures: Vec::new(),
            header: Vec::new(),
            rows: Vec::new(),
        };
        let info = job.info("ingest");
        st.jobs.jobs.insert(id, job);
        Ok(json_response(StatusCode::OK, &info))
    })())
}

fn answer(r: ApiResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

fn job_mut<'a>(jobs: &'a mut Jobs, id: &str, query: bool) -> ApiResult<&'a mut Job> {
    jobs.jobs
        .get_mut(id)
        .filter(|j| matches!(j.operation, Operation::Query | Operation::QueryAll) == query)
        .ok_or_else(ApiError::not_found)
}

/// `PUT …/jobs/ingest/{id}/batches` (`text/csv`): the job's data, once.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("text/csv") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "Content-Type must be text/csv",
            ));
        }
        let mut st = shared.lock();
        let job = job_mut(&mut st.jobs, &id, false)?;
        if job.state != "Open" || job.data.is_some() {
            return Err(invalid_state(
                "Data can only be uploaded once, to an Open job",
            ));
        }
        job.data = Some(body.to_vec());
        Ok(StatusCode::CREATED.into_response())
    })())
}

/// The sf__Error text of a per-row failure.
fn sf_error(e: &FieldError) -> String {
    format!("{}:{}:{} --", e.code, e.message, e.fields.join(","))
}

/// Runs an ingest job's rows against the store.
fn process(job: &mut Job, store: &mut Store, now_ms: i64) {
    let data = job.data.take().unwrap_or_default();
    let has_crlf = data.windows(2).any(|w| w == b"\r\n");
    if (job.line_ending == "LF") == has_crlf && data.contains(&b'\n') {
        job.state = "Failed";
        job.error_message = Some(format!(
            "LineEnding is invalid on user data. Current LineEnding setting is {}",
            job.line_ending
        ));
        return;
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(job.delimiter)
        .has_headers(true)
        .from_reader(data.as_slice());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(String::from).collect(),
        Err(e) => {
            job.state = "Failed";
            job.error_message = Some(format!("InvalidBatch : {e}"));
            return;
        }
    };
    if header.is_empty() || header.iter().all(String::is_empty) {
        job.state = "Failed";
        job.error_message = Some("InvalidBatch : No batch found".into());
        return;
    }
    job.header = header.clone();
    for row in reader.records() {
        let row: Vec<String> = match row {
            Ok(r) => r.iter().map(String::from).collect(),
            Err(e) => {
                job.failures
                    .push((String::new(), format!("InvalidBatch:{e} --"), Vec::new()));
                continue;
            }
        };
        let mut values = Map::new();
        let mut id: Option<String> = None;
        for (name, value) in header.iter().zip(&row) {
            if name.eq_ignore_ascii_case("Id") {
                id = Some(value.clone()).filter(|v| !v.is_empty());
                continue;
            }
            // An empty cell leaves the field alone; `#N/A` sets it to null.
            if value.is_empty() {
                continue;
            }
            let v = if value == "#N/A" {
                Value::Null
            } else {
                Value::String(value.clone())
            };
            values.insert(name.clone(), v);
        }
        let result: Result<(String, bool), FieldError> = match job.operation {
            Operation::Insert => store
                .create(job.object, &values, now_ms)
                .map(|id| (id, true)),
            Operation::Update | Operation::Delete => match &id {
                None => Err(FieldError::new(
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                    &[],
                )),
                Some(id) if job.operation == Operation::Update => store
                    .update(job.object, id, &values, now_ms)
                    .map(|id| (id, false)),
                Some(id) => store
                    .delete(job.object, id, now_ms)
                    .map(|()| (store::id18(id), false)),
            },
            Operation::Upsert => {
                let field = job.external_id.unwrap_or("Id");
                let key = values.get(field).and_then(Value::as_str).map(String::from);
                match key {
                    None => Err(FieldError::new(
                        "MISSING_ARGUMENT",
                        format!("{field} not specified"),
                        &[field],
                    )),
                    Some(key) => {
                        match store.upsert(job.object, field, &key, &values, false, now_ms) {
                            Ok(r) => Ok(r),
                            Err(WriteError::Field(e)) => Err(e),
                            Err(WriteError::Multiple(ids)) => Err(FieldError::new(
                                "DUPLICATE_EXTERNAL_ID",
                                format!(
                                    "{field}: more than one record found for external id field: [{}]",
                                    ids.join(", ")
                                ),
                                &[field],
                            )),
                        }
                    }
                }
            }
            Operation::Query | Operation::QueryAll => continue,
        };
        match result {
            Ok((id, created)) => job.successes.push((id, created, row)),
            Err(e) => job
                .failures
                .push((id.unwrap_or_default(), sf_error(&e), row)),
        }
    }
    job.state = "JobComplete";
}

/// `PATCH …/jobs/ingest/{id}` (`{"state":"UploadComplete"|"Aborted"}`).
pub(crate) async fn close_ingest(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let b = body_json(&body)?;
        let want = b.get("state").and_then(Value::as_str).unwrap_or("");
        let now = shared.clock.now_s();
        let polls = shared.config.bulk_polls_in_progress;
        let mut guard = shared.lock();
        let st = &mut *guard;
        let job = job_mut(&mut st.jobs, &id, false)?;
        match (want, job.state) {
            ("UploadComplete", "Open") => {
                if job.data.is_none() {
                    job.state = "Failed";
                    job.error_message = Some("InvalidBatch : No batch found".into());
                } else {
                    process(job, &mut st.store, now);
                }
                job.polls_left = polls;
                let mut info = job.info("ingest");
                info["state"] = json!("UploadComplete");
                Ok(json_response(StatusCode::OK, &info))
            }
            ("Aborted", "Open") => {
                job.state = "Aborted";
                job.data = None;
                Ok(json_response(StatusCode::OK, &job.info("ingest")))
            }
            ("UploadComplete" | "Aborted", other) => Err(invalid_state(format!(
                "Cannot change the state of a job from {other} to {want}"
            ))),
            _ => Err(invalid_job(format!("Invalid state: {want}"))),
        }
    })())
}

/// `GET …/jobs/ingest/{id}` and `GET …/jobs/query/{id}`: a poll counts down `InProgress`.
fn job_info(shared: &Shared, version: &str, id: &str, query: bool) -> ApiResult<Response> {
    check_version(version)?;
    let mut st = shared.lock();
    let job = job_mut(&mut st.jobs, id, query)?;
    let info = job.info(if query { "query" } else { "ingest" });
    if job.polls_left > 0 {
        job.polls_left -= 1;
    }
    Ok(json_response(StatusCode::OK, &info))
}

pub(crate) async fn get_ingest(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
) -> Response {
    answer(job_info(&shared, &version, &id, false))
}

pub(crate) async fn get_query(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
) -> Response {
    answer(job_info(&shared, &version, &id, true))
}

/// `DELETE …/jobs/ingest/{id}` and `…/jobs/query/{id}`: only a finished job.
fn delete_job(shared: &Shared, version: &str, id: &str, query: bool) -> ApiResult<Response> {
    check_version(version)?;
    let mut st = shared.lock();
    let job = job_mut(&mut st.jobs, id, query)?;
    if !matches!(job.visible_state(), "JobComplete" | "Failed" | "Aborted") {
        return Err(invalid_state(
            "Only a completed, failed or aborted job can be deleted",
        ));
    }
    st.jobs.jobs.remove(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn delete_ingest(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
) -> Response {
    answer(delete_job(&shared, &version, &id, false))
}

pub(crate) async fn delete_query(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
) -> Response {
    answer(delete_job(&shared, &version, &id, true))
}

fn csv_text(
    header: &[String],
    rows: impl Iterator<Item = Vec<String>>,
    delimiter: u8,
    crlf: bool,
) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .quote_style(csv::QuoteStyle::Always)
        .terminator(if crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(Vec::new());
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(&r);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn csv_response(text: String, extra: &[(&'static str, String)]) -> Response {
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, "text/csv")], text).into_response();
    for (k, v) in extra {
        if let Ok(v) = axum::http::HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    resp
}

/// `GET …/jobs/ingest/{id}/successfulResults|failedResults|unprocessedrecords`.
pub(crate) async fn ingest_results(
    State(shared): State<Arc<Shared>>,
    Path((version, id, which)): Path<(String, String, String)>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let mut st = shared.lock();
        let job = job_mut(&mut st.jobs, &id, false)?;
        let done = matches!(job.visible_state(), "JobComplete" | "Failed" | "Aborted");
        if !done {
            return Err(invalid_state("The job is still in progress"));
        }
        let crlf = job.line_ending == "CRLF";
        let text = match which.trim_end_matches('/') {
            "successfulResults" => {
                let mut h = vec!["sf__Id".to_string(), "sf__Created".to_string()];
                h.extend(job.header.iter().cloned());
                let rows = job.successes.iter().map(|(id, created, row)| {
                    let mut r = vec![id.clone(), created.to_string()];
                    r.extend(row.iter().cloned());
                    r
                });
                csv_text(&h, rows, job.delimiter, crlf)
            }
            "failedResults" => {
                let mut h = vec!["sf__Id".to_string(), "sf__Error".to_string()];
                h.extend(job.header.iter().cloned());
                let rows = job.failures.iter().map(|(id, error, row)| {
                    let mut r = vec![id.clone(), error.clone()];
                    r.extend(row.iter().cloned());
                    r
                });
                csv_text(&h, rows, job.delimiter, crlf)
            }
            "unprocessedrecords" => csv_text(&job.header, std::iter::empty(), job.delimiter, crlf),
            _ => return Err(ApiError::not_found()),
        };
        Ok(csv_response(text, &[]))
    })())
}

/// Renders a value as Bulk API CSV writes it.
fn csv_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => match time::parse(s) {
            Some(ms) if s.len() >= 20 && s.contains('T') => jiff::Timestamp::from_millisecond(ms)
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_else(|_| s.clone()),
            _ => s.clone(),
        },
        other => other.to_string(),
    }
}

/// `POST …/jobs/query` (`{"operation":"query"|"queryAll","query":…}`): runs the query now (a
/// snapshot) and answers the job at `UploadComplete`.
pub(crate) async fn create_query(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    answer((|| {
        check_version(&version)?;
        if version_number(&version) < 47 {
            return Err(ApiError::not_found());
        }
        let b = body_json(&body)?;
        let operation = match b.get("operation").and_then(Value::as_str) {
            Some("query") => Operation::Query,
            Some("queryAll") => Operation::QueryAll,
            other => {
                return Err(invalid_job(format!(
                    "Invalid operation: {}",
                    other.unwrap_or("(none)")
                )));
            }
        };
        let text = b
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_job("query is required"))?;
        let polls = shared.config.bulk_polls_in_progress;
        let now = shared.clock.now_s();
        let mut st = shared.lock();
        let query = soql::parse(text, |name| {
            let object = st.store.object(name)?;
            Some((object, super::api::fields_static(object)))
        })
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
        let table = st.store.table(query.object);
        let mut matched: Vec<&store::Record> = table
            .records
            .values()
            .filter(|r| operation == Operation::QueryAll || r.deleted_ms.is_none())
            .filter(|r| query.filter.as_ref().is_none_or(|f| f.matches(r)))
            .collect();
        query.sort(&mut matched);
        if let Some(limit) = query.limit {
            matched.truncate(limit);
        }
        let rows: Vec<Vec<String>> = matched
            .iter()
            .map(|r| query.fields.iter().map(|f| csv_value(&r.get(f))).collect())
            .collect();
        st.jobs.seq += 1;
        let id = store::make_id("750", st.jobs.seq);
        let job = Job {
            id: id.clone(),
            version: version.clone(),
            operation,
            object: query.object,
            external_id: None,
            delimiter: b',',
            delimiter_name: "COMMA".into(),
            line_ending: "LF".into(),
            state: "JobComplete",
            polls_left: polls,
            created_ms: now,
            data: None,
            error_message: None,
            successes: Vec::new(),
            failures: Vec::new(),
            header: query.fields.iter().map(|f| f.to_string()).collect(),
            rows,
        };
        let mut info = job.info("query");
        info["state"] = json!("UploadComplete");
        info["query"] = json!(text);
        st.jobs.jobs.insert(id, job);
        Ok(json_response(StatusCode::OK, &info))
    })())
}

/// `GET …/jobs/query/{id}/results?locator=&maxRecords=`: CSV, `Sforce-Locator` (the next
/// locator, or `null`) and `Sforce-NumberOfRecords`.
pub(crate) async fn query_results(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let mut st = shared.lock();
        let job = job_mut(&mut st.jobs, &id, true)?;
        if job.version != version {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "INVALIDJOBSTATE",
                format!(
                    "Results must be retrieved with the API version that created the job ({})",
                    job.version
                ),
            ));
        }
        if job.visible_state() != "JobComplete" {
            return Err(invalid_state("The job is not complete yet"));
        }
        let offset = match q.get("locator").filter(|l| !l.is_empty()) {
            None => 0,
            Some(l) => STANDARD
                .decode(l)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|o| *o <= job.rows.len())
                .ok_or_else(|| {
                    ApiError::bad_request("INVALID_LOCATOR", format!("Invalid locator: {l}"))
                })?,
        };
        let max = q
            .get("maxRecords")
            .and_then(|m| m.parse::<usize>().ok())
            .filter(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_RECORDS);
        let end = (offset + max).min(job.rows.len());
        let text = csv_text(
            &job.header,
            job.rows[offset..end].iter().cloned(),
            b',',
            false,
        );
        let next = if end < job.rows.len() {
            STANDARD.encode(end.to_string())
        } else {
            "null".to_string()
        };
        Ok(csv_response(
            text,
            &[
                ("sforce-locator", next),
                ("sforce-numberofrecords", (end - offset).to_string()),
            ],
        ))
    })())
}
