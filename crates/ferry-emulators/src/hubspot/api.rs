//! CRM contacts and properties endpoints (search is in `search.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult, json_response};
use super::gate::Principal;
use super::properties::{PropertyCreate, property_errors};
use super::store::{ALWAYS, Changes, Contact, Store};
use super::time::{iso, ms_to_ts};
use super::{MAX_BATCH_INPUTS, MAX_LIST_LIMIT, Shared};

pub(crate) const READ: &str = "crm.objects.contacts.read";
pub(crate) const WRITE: &str = "crm.objects.contacts.write";
const SCHEMA_READ: &str = "crm.schemas.contacts.read";
const SCHEMA_WRITE: &str = "crm.schemas.contacts.write";

/// Query parameters, with HubSpot's list conventions (`properties=a,b&properties=c`).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn flag(&self, key: &str) -> ApiResult<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::validation(format!(
                "Unable to process query parameter {key}: {v:?} is not a boolean"
            ))),
        }
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::validation(format!(
                        "Unable to process query parameter {key}: {v:?} is not an integer"
                    ))
                })
            })
            .transpose()
    }
}

pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(&e))
}

/// An id given as a JSON string or number.
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Batch results come back in no particular order (HubSpot does not promise input order);
/// a fixed scramble keeps tests reproducible while refusing to match inputs by position.
fn scramble(results: &mut [Value]) {
    results.sort_by_key(|r| {
        let id: u64 = r["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
    });
}

fn check_batch_size(n: usize) -> ApiResult<()> {
    if n > MAX_BATCH_INPUTS {
        Err(ApiError::batch_too_large(n))
    } else {
        Ok(())
    }
}

fn batch_answer(
    status_ok: StatusCode,
    started_ms: i64,
    completed_ms: i64,
    mut results: Vec<Value>,
    errors: Vec<Value>,
) -> Response {
    scramble(&mut results);
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(ms_to_ts(started_ms)),
        "completedAt": iso(ms_to_ts(completed_ms)),
    });
    if errors.is_empty() {
        json_response(status_ok, &body)
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        json_response(StatusCode::MULTI_STATUS, &body)
    }
}

/// A `StandardError` entry of a 207 answer.
fn standard_error(category: &str, message: &str, ids: &[String]) -> Value {
    json!({
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "errors": [],
        "links": {},
    })
}

fn render(c: &Contact, names: &[&str], trace: Option<&str>) -> Value {
    let mut v = c.render(names);
    if let Some(t) = trace {
        v["objectWriteTraceId"] = json!(t);
    }
    v
}

/// Names to render after a write: what was written plus the computed properties.
fn written_names(changes: &Changes) -> Vec<&str> {
    let mut names: Vec<&str> = ALWAYS.to_vec();
    for (k, _) in changes {
        if !names.contains(&k.as_str()) {
            names.push(k);
        }
    }
    names
}

fn validate(store: &Store, props: &Map<String, Value>) -> ApiResult<Changes> {
    store.validate(props).map_err(|e| property_errors(&e))
}

/// `GET /crm/v3/objects/contacts`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    p.require(&[READ])?;
    let q = Query::parse(q.as_deref());
    let limit = q.int("limit")?.unwrap_or(10);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}"
        )));
    }
    let after = match q.get("after") {
        None => 0,
        Some(a) => a.parse::<u64>().map_err(|_| {
            ApiError::validation(format!("Unable to process query parameter after: {a:?}"))
        })?,
    };
    let archived = q.flag("archived")?;
    let requested = q.list("properties");
    let st = shared.lock();
    let names = st.store.select(&requested);
    let mut page = st
        .store
        .contacts
        .range(after..)
        .map(|(_, c)| c)
        .filter(|c| c.archived() == archived);
    let results: Vec<Value> = page
        .by_ref()
        .take(limit as usize)
        .map(|c| c.render(&names))
        .collect();
    let mut body = json!({"results": results});
    if page.next().is_some() {
        let last: u64 = results
            .last()
            .and_then(|r| r["id"].as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(after);
        let next = (last + 1).to_string();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("api.hubapi.com");
        let mut params: Vec<(String, String)> = vec![
            ("limit".into(), limit.to_string()),
            ("after".into(), next.clone()),
        ];
        if !requested.is_empty() {
            params.push(("properties".into(), requested.join(",")));
        }
        if archived {
            params.push(("archived".into(), "true".into()));
        }
        let link = format!(
            "http://{host}{}?{}",
            uri.path(),
            serde_urlencoded::to_string(&params).unwrap_or_default()
        );
        body["paging"] = json!({"next": {"after": next, "link": link}});
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /crm/v3/objects/contacts/{id}`.
pub(crate) async fn get_one(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    p.require(&[READ])?;
    let q = Query::parse(q.as_deref());
    let archived = q.flag("archived")?;
    let requested = q.list("properties");
    let st = shared.lock();
    let cid = st
        .store
        .resolve(&id, q.get("idProperty"), archived)?
        .ok_or_else(ApiError::not_found)?;
    let names = st.store.select(&requested);
    Ok(json_response(
        StatusCode::OK,
        &st.store.contacts[&cid].render(&names),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectInput {
    properties: Option<Map<String, Value>>,
    #[serde(default)]
    #[allow(dead_code)]
    associations: Option<Value>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

/// `POST /crm/v3/objects/contacts`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[WRITE])?;
    let input: ObjectInput = parse_body(&body)?;
    let props = input.properties.ok_or_else(|| {
        ApiError::missing_attributes("SimplePublicObjectInputForCreate", &["properties"])
    })?;
    let now = shared.clock.now_ms();
    let delay = shared.search_delay_ms();
    let mut st = shared.lock();
    let changes = validate(&st.store, &props)?;
    if let Some(existing) = st.store.conflict(&changes, None) {
        return Err(ApiError::contact_exists(existing));
    }
    let id = st.store.insert(changes.clone(), now, delay);
    let names = written_names(&changes);
    Ok(json_response(
        StatusCode::CREATED,
        &st.store.contacts[&id].render(&names),
    ))
}

/// `PATCH /crm/v3/objects/contacts/{id}` (also `?idProperty=email`).
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[WRITE])?;
    let q = Query::parse(q.as_deref());
    let input: ObjectInput = parse_body(&body)?;
    let props = input
        .properties
        .ok_or_else(|| ApiError::missing_attributes("SimplePublicObjectInput", &["properties"]))?;
    let now = shared.clock.now_ms();
    let delay = shared.search_delay_ms();
    let mut st = shared.lock();
    let cid = st
        .store
        .resolve(&id, q.get("idProperty"), false)?
        .ok_or_else(ApiError::not_found)?;
    let changes = validate(&st.store, &props)?;
    if let Some(existing) = st.store.conflict(&changes, Some(cid)) {
        return Err(ApiError::contact_exists(existing));
    }
    st.store.update(cid, changes.clone(), now, delay);
    let names = written_names(&changes);
    Ok(json_response(
        StatusCode::OK,
        &st.store.contacts[&cid].render(&names),
    ))
}

/// `DELETE /crm/v3/objects/contacts/{id}`: 204 whether or not it existed.
pub(crate) async fn archive(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    p.require(&[WRITE])?;
    let now = shared.clock.now_ms();
    let delay = shared.search_delay_ms();
    let mut st = shared.lock();
    if let Some(cid) = st.store.resolve(&id, None, false)? {
        st.store.archive(cid, now, delay);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchRead {
    inputs: Option<Vec<IdInput>>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    id_property: Option<String>,
}

#[derive(Deserialize)]
struct IdInput {
    id: Value,
}

fn ids_of(inputs: &[IdInput]) -> ApiResult<Vec<String>> {
    inputs
        .iter()
        .map(|i| {
            id_string(&i.id)
                .ok_or_else(|| ApiError::missing_attributes("SimplePublicObjectId", &["id"]))
        })
        .collect()
}

/// `POST /crm/v3/objects/contacts/batch/read` (by id or `idProperty`); unknown ids give a 207.
pub(crate) async fn batch_read(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[READ])?;
    let archived = Query::parse(q.as_deref()).flag("archived")?;
    let input: BatchRead = parse_body(&body)?;
    let inputs = input.inputs.ok_or_else(|| {
        ApiError::missing_attributes("BatchReadInputSimplePublicObjectId", &["inputs"])
    })?;
    check_batch_size(inputs.len())?;
    let ids = ids_of(&inputs)?;
    let started = shared.clock.now_ms();
    let st = shared.lock();
    let names = st.store.select(&input.properties);
    let mut seen = HashSet::new();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match st
            .store
            .resolve(&id, input.id_property.as_deref(), archived)?
        {
            Some(cid) => {
                if seen.insert(cid) {
                    results.push(st.store.contacts[&cid].render(&names));
                }
            }
            None => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![standard_error(
            "OBJECT_NOT_FOUND",
            "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
            &missing,
        )]
    };
    Ok(batch_answer(
        StatusCode::OK,
        started,
        shared.clock.now_ms(),
        results,
        errors,
    ))
}

#[derive(Deserialize)]
struct BatchInputs<T> {
    inputs: Option<Vec<T>>,
}

fn inputs_of<T>(b: BatchInputs<T>, schema: &str) -> ApiResult<Vec<T>> {
    let inputs = b
        .inputs
        .ok_or_else(|| ApiError::missing_attributes(schema, &["inputs"]))?;
    check_batch_size(inputs.len())?;
    Ok(inputs)
}

/// Two inputs of one batch setting the same unique value.
fn duplicate_unique(store: &Store, all: &[&Changes]) -> Option<String> {
    let mut seen = HashSet::new();
    for changes in all {
        for (name, value) in changes.iter() {
            if let Some(v) = value
                && store.is_unique(name)
                && !seen.insert((name.clone(), v.to_lowercase()))
            {
                return Some(format!("{name}={v}"));
            }
        }
    }
    None
}

/// `POST /crm/v3/objects/contacts/batch/create`: all or nothing; an existing email fails the
/// whole batch with the first conflict.
pub(crate) async fn batch_create(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[WRITE])?;
    let inputs = inputs_of(
        parse_body::<BatchInputs<ObjectInput>>(&body)?,
        "BatchInputSimplePublicObjectBatchInputForCreate",
    )?;
    let started = shared.clock.now_ms();
    let delay = shared.search_delay_ms();
    let mut st = shared.lock();
    let mut validated = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let props = input.properties.as_ref().ok_or_else(|| {
            ApiError::missing_attributes("SimplePublicObjectBatchInputForCreate", &["properties"])
        })?;
        validated.push(validate(&st.store, props)?);
    }
    if let Some(dup) = duplicate_unique(&st.store, &validated.iter().collect::<Vec<_>>()) {
        return Err(ApiError::validation(format!(
            "Duplicate unique property value found in batch input: [{dup}]. Values must be unique"
        )));
    }
    for changes in &validated {
        if let Some(existing) = st.store.conflict(changes, None) {
            return Err(ApiError::contact_exists(existing));
        }
    }
    let mut results = Vec::with_capacity(inputs.len());
    for (input, changes) in inputs.iter().zip(validated) {
        let id = st.store.insert(changes.clone(), started, delay);
        results.push(render(
            &st.store.contacts[&id],
            &written_names(&changes),
            input.object_write_trace_id.as_deref(),
        ));
    }
    Ok(batch_answer(
        StatusCode::CREATED,
        started,
        shared.clock.now_ms(),
        results,
        Vec::new(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentifiedInput {
    id: Option<Value>,
    #[serde(default)]
    id_property: Option<String>,
    properties: Option<Map<String, Value>>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

impl IdentifiedInput {
    fn parts(&self, schema: &str) -> ApiResult<(String, &Map<String, Value>)> {
        let mut missing = Vec::new();
        let id = self.id.as_ref().and_then(id_string);
        if id.is_none() {
            missing.push("id");
        }
        if self.properties.is_none() {
            missing.push("properties");
        }
        match (id, &self.properties) {
            (Some(id), Some(p)) => Ok((id, p)),
            _ => Err(ApiError::missing_attributes(schema, &missing)),
        }
    }
}

fn check_duplicate_ids(keys: &[String]) -> ApiResult<()> {
    let mut seen = HashSet::new();
    let dups: Vec<String> = keys
        .iter()
        .filter(|k| !seen.insert(k.to_lowercase()))
        .cloned()
        .collect();
    if dups.is_empty() {
        Ok(())
    } else {
        Err(ApiError::duplicate_ids(&dups))
    }
}

/// `POST /crm/v3/objects/contacts/batch/update`: by id (or a custom unique property; email is
/// refused, as HubSpot does); validation errors and conflicts fail the batch, unknown ids are
/// reported in a 207 while the others are updated.
pub(crate) async fn batch_update(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[WRITE])?;
    let inputs = inputs_of(
        parse_body::<BatchInputs<IdentifiedInput>>(&body)?,
        "BatchInputSimplePublicObjectBatchInput",
    )?;
    let started = shared.clock.now_ms();
    let delay = shared.search_delay_ms();
    let mut st = shared.lock();
    let mut parts = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let (id, props) = input.parts("SimplePublicObjectBatchInput")?;
        if let Some(ip) = input.id_property.as_deref()
            && ip != "hs_object_id"
            && !st.store.def(ip).is_some_and(|d| d.has_unique_value)
        {
            return Err(ApiError::validation(format!(
                "{ip} is a non-unique property and can't be used as idProperty to update records in batch; use hs_object_id or a property with unique values"
            )));
        }
        parts.push((id, props, input));
    }
    check_duplicate_ids(
        &parts
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect::<Vec<_>>(),
    )?;
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    for (id, props, input) in &parts {
        let changes = validate(&st.store, props)?;
        match st.store.resolve(id, input.id_property.as_deref(), false)? {
            Some(cid) => resolved.push((cid, changes, *input)),
            None => missing.push(id.clone()),
        }
    }
    let mut seen = HashSet::new();
    for (cid, _, _) in &resolved {
        if !seen.insert(*cid) {
            return Err(ApiError::duplicate_ids(&[cid.to_string()]));
        }
    }
    if let Some(dup) = duplicate_unique(
        &st.store,
        &resolved.iter().map(|(_, c, _)| c).collect::<Vec<_>>(),
    ) {
        return Err(ApiError::validation(format!(
            "Duplicate unique property value found in batch input: [{dup}]. Values must be unique"
        )));
    }
    for (cid, changes, _) in &resolved {
        if let Some(existing) = st.store.conflict(changes, Some(*cid)) {
            return Err(ApiError::contact_exists(existing));
        }
    }
    let mut results = Vec::new();
    for (cid, changes, input) in resolved {
        st.store.update(cid, changes.clone(), started, delay);
        results.push(render(
            &st.store.contacts[&cid],
            &written_names(&changes),
            input.object_write_trace_id.as_deref(),
        ));
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![standard_error(
            "OBJECT_NOT_FOUND",
            "Could not update some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
            &missing,
        )]
    };
    Ok(batch_answer(
        StatusCode::OK,
        started,
        shared.clock.now_ms(),
        results,
        errors,
    ))
}

/// `POST /crm/v3/objects/contacts/batch/upsert`: by `idProperty` (email or a custom unique
/// property); results carry `"new"`.
pub(crate) async fn batch_upsert(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[WRITE])?;
    let inputs = inputs_of(
        parse_body::<BatchInputs<IdentifiedInput>>(&body)?,
        "BatchInputSimplePublicObjectBatchInputUpsert",
    )?;
    let started = shared.clock.now_ms();
    let delay = shared.search_delay_ms();
    let mut st = shared.lock();
    let mut parts = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let (id, props) = input.parts("SimplePublicObjectBatchInputUpsert")?;
        let Some(ip) = input
            .id_property
            .as_deref()
            .filter(|ip| st.store.is_unique(ip))
        else {
            return Err(ApiError::validation(format!(
                "Upsert requires idProperty naming a unique property (email or a property with unique values), got {:?}",
                input.id_property
            )));
        };
        parts.push((id, props, ip, input));
    }
    check_duplicate_ids(&parts.iter().map(|(id, ..)| id.clone()).collect::<Vec<_>>())?;
    // (existing id or None, changes, input)
    let mut plan: Vec<(Option<u64>, Changes, &IdentifiedInput)> = Vec::new();
    for (id, props, ip, input) in parts {
        let mut changes = validate(&st.store, props)?;
        let existing = st.store.resolve(&id, Some(ip), false)?;
        if existing.is_none() && !changes.iter().any(|(k, _)| k == ip) {
            let mut with_id = Map::new();
            with_id.insert(ip.to_string(), Value::String(id.clone()));
            changes.extend(validate(&st.store, &with_id)?);
        }
        plan.push((existing, changes, input));
    }
    if let Some(dup) = duplicate_unique(
        &st.store,
        &plan.iter().map(|(_, c, _)| c).collect::<Vec<_>>(),
    ) {
        return Err(ApiError::validation(format!(
            "Duplicate unique property value found in batch input: [{dup}]. Values must be unique"
        )));
    }
    for (existing, changes, _) in &plan {
        if let Some(other) = st.store.conflict(changes, *existing) {
            return Err(ApiError::contact_exists(other));
        }
    }
    let mut results = Vec::new();
    for (existing, changes, input) in plan {
        let (cid, new) = match existing {
            Some(cid) => {
                st.store.update(cid, changes.clone(), started, delay);
                (cid, false)
            }
            None => (st.store.insert(changes.clone(), started, delay), true),
        };
        let mut v = render(
            &st.store.contacts[&cid],
            &written_names(&changes),
            input.object_write_trace_id.as_deref(),
        );
        v["new"] = json!(new);
        results.push(v);
    }
    Ok(batch_answer(
        StatusCode::OK,
        started,
        shared.clock.now_ms(),
        results,
        Vec::new(),
    ))
}

/// `POST /crm/v3/objects/contacts/batch/archive`: 204, unknown ids ignored.
pub(crate) async fn batch_archive(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[WRITE])?;
    let inputs = inputs_of(
        parse_body::<BatchInputs<IdInput>>(&body)?,
        "BatchInputSimplePublicObjectId",
    )?;
    let ids = ids_of(&inputs)?;
    let now = shared.clock.now_ms();
    let delay = shared.search_delay_ms();
    let mut st = shared.lock();
    for id in ids {
        if let Some(cid) = st.store.resolve(&id, None, false)? {
            st.store.archive(cid, now, delay);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn check_object_type(object_type: &str) -> ApiResult<()> {
    if matches!(object_type, "contacts" | "contact" | "0-1") {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "Unable to infer object type from: {object_type}"
        )))
    }
}

/// `GET /crm/v3/properties/{objectType}`.
pub(crate) async fn list_properties(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    Path(object_type): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    p.require(&[READ, WRITE, SCHEMA_READ])?;
    check_object_type(&object_type)?;
    let q = Query::parse(q.as_deref());
    // Archived custom properties are not emulated: the archived list is empty.
    let archived = q.flag("archived")?;
    let only = q.list("properties");
    let st = shared.lock();
    let results: Vec<Value> = st
        .store
        .properties
        .iter()
        .filter(|_| !archived)
        .filter(|d| only.is_empty() || only.contains(&d.name))
        .map(|d| d.to_json())
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"results": results})))
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}`.
pub(crate) async fn get_property(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    Path((object_type, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    p.require(&[READ, WRITE, SCHEMA_READ])?;
    check_object_type(&object_type)?;
    let st = shared.lock();
    let def = st.store.def(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unable to find property with name {name} for object type contacts"),
        )
    })?;
    Ok(json_response(StatusCode::OK, &def.to_json()))
}

/// `POST /crm/v3/properties/{objectType}`.
pub(crate) async fn create_property(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[SCHEMA_WRITE])?;
    check_object_type(&object_type)?;
    let input: PropertyCreate = parse_body(&body)?;
    let def = input.into_def(shared.clock.now())?;
    let mut st = shared.lock();
    let def = st.store.add_property(def)?;
    let mut resp = json_response(StatusCode::CREATED, &def.to_json());
    if let Ok(v) = format!("/crm/v3/properties/contacts/{}", def.name).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Paths HubSpot does not have here.
pub(crate) async fn unknown_path(uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("No endpoint at {} (not emulated)", uri.path()),
    )
    .into_response()
}
