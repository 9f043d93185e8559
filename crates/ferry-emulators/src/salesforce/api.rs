//! The REST data API: versions, limits, describe, SOQL queries, record CRUD and upsert,
//! `updated`/`deleted`, and sObject Collections.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::describe::{self, FieldError};
use super::error::{ApiError, ApiResult, json_response, record_error};
use super::store::{self, Store, WriteError};
use super::{
    Cursor, LATEST_VERSION, MAX_BATCH_SIZE, MAX_COLLECTION, MAX_OPEN_CURSORS, MIN_BATCH_SIZE,
    Shared, soql, time,
};

fn latest() -> u32 {
    LATEST_VERSION
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(62)
}

/// `vNN.0` between v20.0 and the latest, or 404.
fn check_version(v: &str) -> ApiResult<()> {
    let ok = v
        .strip_prefix('v')
        .and_then(|n| n.strip_suffix(".0"))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (20..=latest()).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn ok(status: StatusCode, body: &Value) -> Response {
    json_response(status, body)
}

fn answer(r: ApiResult<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

fn object_of(store: &Store, name: &str) -> ApiResult<&'static str> {
    store.object(name).ok_or_else(ApiError::not_found)
}

/// `GET /services/data/`: every version from v20.0 to the latest.
pub(crate) async fn versions() -> Response {
    let list: Vec<Value> = (20..=latest())
        .map(|n| {
            let i = n - 20;
            let season = ["Winter", "Spring", "Summer"][(i % 3) as usize];
            json!({
                "label": format!("{season} '{:02}", 11 + i / 3),
                "url": format!("/services/data/v{n}.0"),
                "version": format!("{n}.0"),
            })
        })
        .collect();
    ok(StatusCode::OK, &Value::Array(list))
}

/// `GET /services/data/vXX.X/`.
pub(crate) async fn resources(Path(version): Path<String>) -> Response {
    answer(check_version(&version).map(|()| {
        let b = format!("/services/data/{version}");
        ok(
            StatusCode::OK,
            &json!({
                "sobjects": format!("{b}/sobjects"),
                "query": format!("{b}/query"),
                "queryAll": format!("{b}/queryAll"),
                "limits": format!("{b}/limits"),
                "composite": format!("{b}/composite"),
            }),
        )
    }))
}

/// `GET …/limits`.
pub(crate) async fn limits(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
) -> Response {
    answer(check_version(&version).map(|()| {
        let l = shared.lock().limits;
        ok(
            StatusCode::OK,
            &json!({"DailyApiRequests": {"Max": l.daily_max, "Remaining": l.daily_max.saturating_sub(l.used)}}),
        )
    }))
}

/// `GET …/sobjects`.
pub(crate) async fn describe_global(Path(version): Path<String>) -> Response {
    answer(check_version(&version).map(|()| {
        let list: Vec<Value> = describe::OBJECTS
            .iter()
            .map(|o| describe::global_entry(&version, o))
            .collect();
        ok(
            StatusCode::OK,
            &json!({"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION, "sobjects": list}),
        )
    }))
}

/// `GET …/sobjects/{object}`.
pub(crate) async fn basic_info(
    State(shared): State<Arc<Shared>>,
    Path((version, object)): Path<(String, String)>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let object = object_of(&shared.lock().store, &object)?;
        Ok(ok(
            StatusCode::OK,
            &json!({"objectDescribe": describe::global_entry(&version, object), "recentItems": []}),
        ))
    })())
}

/// `GET …/sobjects/{object}/describe`.
pub(crate) async fn describe(
    State(shared): State<Arc<Shared>>,
    Path((version, object)): Path<(String, String)>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let st = shared.lock();
        let object = object_of(&st.store, &object)?;
        let fields = &st.store.table(object).fields;
        Ok(ok(
            StatusCode::OK,
            &describe::describe(&version, object, fields),
        ))
    })())
}

fn record_url(version: &str, object: &str, id: &str) -> String {
    format!("/services/data/{version}/sobjects/{object}/{id}")
}

/// A record as the API renders it: `attributes` then the fields asked for (all by default).
fn render(
    version: &str,
    object: &str,
    table: &store::Table,
    r: &store::Record,
    fields: Option<&[&str]>,
) -> Value {
    let mut m = Map::new();
    m.insert(
        "attributes".into(),
        json!({"type": object, "url": record_url(version, object, &r.id)}),
    );
    match fields {
        Some(list) => {
            for f in list {
                m.insert((*f).to_string(), r.get(f));
            }
        }
        None => {
            for f in &table.fields {
                m.insert(f.name.to_string(), r.get(f.name));
            }
        }
    }
    Value::Object(m)
}

fn body_object(body: &str) -> ApiResult<Map<String, Value>> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a value that is not an object",
        )),
        Err(e) => Err(ApiError::json_parse(&e)),
    }
}

/// `POST …/sobjects/{object}`: 201 `{id, success, errors}`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path((version, object)): Path<(String, String)>,
    body: String,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let values = body_object(&body)?;
        let now = shared.clock.now_s();
        let mut st = shared.lock();
        let object = object_of(&st.store, &object)?;
        let id = st.store.create(object, &values, now)?;
        Ok(ok(
            StatusCode::CREATED,
            &json!({"id": id, "success": true, "errors": []}),
        ))
    })())
}

fn selected(
    table: &store::Table,
    q: &HashMap<String, String>,
) -> ApiResult<Option<Vec<&'static str>>> {
    let Some(list) = q.get("fields") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let f = table
            .fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{name}' on entity '{}'.", table.object),
                )
            })?;
        out.push(f.name);
    }
    Ok(Some(out))
}

/// `GET …/sobjects/{object}/{id}[?fields=a,b]`.
pub(crate) async fn read(
    State(shared): State<Arc<Shared>>,
    Path((version, object, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let st = shared.lock();
        let object = object_of(&st.store, &object)?;
        let table = st.store.table(object);
        let fields = selected(table, &q)?;
        let r = st.store.live(object, &id)?;
        Ok(ok(
            StatusCode::OK,
            &render(&version, object, table, r, fields.as_deref()),
        ))
    })())
}

/// `PATCH …/sobjects/{object}/{id}`: 204.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Path((version, object, id)): Path<(String, String, String)>,
    body: String,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let values = body_object(&body)?;
        let now = shared.clock.now_s();
        let mut st = shared.lock();
        let object = object_of(&st.store, &object)?;
        st.store.update(object, &id, &values, now)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

/// `DELETE …/sobjects/{object}/{id}`: 204.
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((version, object, id)): Path<(String, String, String)>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let now = shared.clock.now_s();
        let mut st = shared.lock();
        let object = object_of(&st.store, &object)?;
        st.store.delete(object, &id, now)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

fn multiple(version: &str, object: &str, ids: &[String]) -> Response {
    let urls: Vec<String> = ids
        .iter()
        .map(|id| record_url(version, object, id))
        .collect();
    ok(StatusCode::MULTIPLE_CHOICES, &json!(urls))
}

/// `GET …/sobjects/{object}/{field}/{value}`: the record with this external id.
pub(crate) async fn read_external(
    State(shared): State<Arc<Shared>>,
    Path((version, object, field, value)): Path<(String, String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let st = shared.lock();
        let object = object_of(&st.store, &object)?;
        let field = st.store.external_field(object, &field)?;
        let table = st.store.table(object);
        let fields = selected(table, &q)?;
        let ids = st.store.find_external(object, field, &value);
        match ids.as_slice() {
            [] => Err(ApiError::not_found()),
            [one] => {
                let r = st.store.live(object, one)?;
                Ok(ok(
                    StatusCode::OK,
                    &render(&version, object, table, r, fields.as_deref()),
                ))
            }
            _ => Ok(multiple(&version, object, &ids)),
        }
    })())
}

/// `PATCH …/sobjects/{object}/{field}/{value}[?updateOnly=true]`: 201 created, 200 updated,
/// 300 several matches.
pub(crate) async fn upsert(
    State(shared): State<Arc<Shared>>,
    Path((version, object, field, value)): Path<(String, String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let values = body_object(&body)?;
        let update_only = q.get("updateOnly").is_some_and(|v| v == "true");
        let now = shared.clock.now_s();
        let mut st = shared.lock();
        let object = object_of(&st.store, &object)?;
        match st
            .store
            .upsert(object, &field, &value, &values, update_only, now)
        {
            Ok((id, created)) => Ok(ok(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &json!({"id": id, "success": true, "errors": [], "created": created}),
            )),
            Err(WriteError::Multiple(ids)) => Ok(multiple(&version, object, &ids)),
            Err(WriteError::Field(e)) => Err(e.into()),
        }
    })())
}

fn minute_floor(ms: i64) -> i64 {
    ms.div_euclid(60_000) * 60_000
}

/// The `start`/`end` window of `updated` and `deleted` (seconds ignored, at most 30 days back).
fn window(q: &HashMap<String, String>, now_ms: i64) -> ApiResult<(i64, i64)> {
    let get = |k: &str| -> ApiResult<i64> {
        let raw = q.get(k).ok_or_else(|| {
            ApiError::bad_request("MISSING_ARGUMENT", format!("Missing parameter: {k}"))
        })?;
        time::parse(raw).map(minute_floor).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_REPLICATION_DATE",
                format!("{k}: not a valid date and time: {raw}"),
            )
        })
    };
    let (start, end) = (get("start")?, get("end")?);
    if end < start {
        return Err(ApiError::bad_request(
            "INVALID_REPLICATION_DATE",
            "EndDate can not be before StartDate",
        ));
    }
    if start < minute_floor(now_ms) - 30 * 86_400_000 {
        return Err(ApiError::bad_request(
            "INVALID_REPLICATION_DATE",
            "startDate cannot be more than 30 days ago",
        ));
    }
    Ok((start, end.min(minute_floor(now_ms))))
}

/// `GET …/sobjects/{object}/updated?start&end`: `{ids, latestDateCovered}`.
pub(crate) async fn updated(
    State(shared): State<Arc<Shared>>,
    Path((version, object)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let (start, end) = window(&q, shared.clock.now_ms())?;
        let st = shared.lock();
        let object = object_of(&st.store, &object)?;
        let ids: Vec<&str> = st
            .store
            .table(object)
            .records
            .values()
            .filter(|r| r.deleted_ms.is_none() && r.modstamp_ms >= start && r.modstamp_ms < end)
            .map(|r| r.id.as_str())
            .collect();
        Ok(ok(
            StatusCode::OK,
            &json!({"ids": ids, "latestDateCovered": time::format(end)}),
        ))
    })())
}

/// `GET …/sobjects/{object}/deleted?start&end`.
pub(crate) async fn deleted(
    State(shared): State<Arc<Shared>>,
    Path((version, object)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let (start, end) = window(&q, shared.clock.now_ms())?;
        let st = shared.lock();
        let object = object_of(&st.store, &object)?;
        let table = st.store.table(object);
        let list: Vec<Value> = table
            .records
            .values()
            .filter_map(|r| {
                let d = r.deleted_ms?;
                (d >= start && d < end).then(|| json!({"id": r.id, "deletedDate": time::format(d)}))
            })
            .collect();
        let earliest = table
            .records
            .values()
            .filter_map(|r| r.deleted_ms)
            .min()
            .unwrap_or(start);
        Ok(ok(
            StatusCode::OK,
            &json!({
                "deletedRecords": list,
                "earliestDateAvailable": time::format(minute_floor(earliest)),
                "latestDateCovered": time::format(end),
            }),
        ))
    })())
}

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        })
        .map_or(MAX_BATCH_SIZE, |n| n.clamp(MIN_BATCH_SIZE, MAX_BATCH_SIZE))
}

fn run_query(
    shared: &Shared,
    version: &str,
    headers: &HeaderMap,
    raw: Option<&str>,
    all: bool,
) -> ApiResult<Response> {
    check_version(version)?;
    let q: HashMap<String, String> =
        serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
    let soql_text = q.get("q").ok_or_else(|| {
        ApiError::bad_request("MALFORMED_QUERY", "A query string has to be specified")
    })?;
    let batch = batch_size(headers);
    let mut st = shared.lock();
    let query = {
        let store = &st.store;
        soql::parse(soql_text, |name| {
            let object = store.object(name)?;
            let fields: &'static [describe::Field] = match object {
                "Lead" => lead_fields(),
                _ => contact_fields(),
            };
            Some((object, fields))
        })
        .map_err(|e| ApiError::bad_request(e.code, e.message))?
    };
    let table = st.store.table(query.object);
    let mut matched: Vec<&store::Record> = table
        .records
        .values()
        .filter(|r| all || r.deleted_ms.is_none())
        .filter(|r| query.filter.as_ref().is_none_or(|f| f.matches(r)))
        .collect();
    query.sort(&mut matched);
    if let Some(limit) = query.limit {
        matched.truncate(limit);
    }
    let rows: Vec<Value> = matched
        .iter()
        .map(|r| render(version, query.object, table, r, Some(&query.fields)))
        .collect();
    let total = rows.len();
    if total <= batch {
        return Ok(ok(
            StatusCode::OK,
            &json!({"totalSize": total, "done": true, "records": rows}),
        ));
    }
    st.cursor_seq += 1;
    let id = store::make_id("01g", st.cursor_seq);
    let first: Vec<Value> = rows[..batch].to_vec();
    st.cursors.push_back(Cursor {
        id: id.clone(),
        rows,
        batch,
        used_ms: shared.clock.now_ms(),
    });
    while st.cursors.len() > MAX_OPEN_CURSORS {
        st.cursors.pop_front();
    }
    let kind = if all { "queryAll" } else { "query" };
    Ok(ok(
        StatusCode::OK,
        &json!({
            "totalSize": total,
            "done": false,
            "nextRecordsUrl": format!("/services/data/{version}/{kind}/{id}-{batch}"),
            "records": first,
        }),
    ))
}

/// The fields of `object` (Contact or Lead), for the SOQL parser.
pub(crate) fn fields_static(object: &str) -> &'static [describe::Field] {
    match object {
        "Lead" => lead_fields(),
        _ => contact_fields(),
    }
}

fn contact_fields() -> &'static [describe::Field] {
    static F: std::sync::OnceLock<Vec<describe::Field>> = std::sync::OnceLock::new();
    F.get_or_init(|| describe::fields("Contact").unwrap_or_default())
}

fn lead_fields() -> &'static [describe::Field] {
    static F: std::sync::OnceLock<Vec<describe::Field>> = std::sync::OnceLock::new();
    F.get_or_init(|| describe::fields("Lead").unwrap_or_default())
}

/// `GET …/query?q=`.
pub(crate) async fn query(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(run_query(
        &shared,
        &version,
        &headers,
        raw.as_deref(),
        false,
    ))
}

/// `GET …/queryAll?q=`: deleted records too.
pub(crate) async fn query_all(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(run_query(&shared, &version, &headers, raw.as_deref(), true))
}

/// `GET …/query/{locator}-{offset}`: the next page.
pub(crate) async fn query_more(
    State(shared): State<Arc<Shared>>,
    Path((version, locator)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
        let (id, offset) = locator.split_once('-').ok_or_else(invalid)?;
        let offset: usize = offset.parse().map_err(|_| invalid())?;
        let kind = if uri.path().contains("/queryAll/") {
            "queryAll"
        } else {
            "query"
        };
        let mut st = shared.lock();
        let pos = st
            .cursors
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(invalid)?;
        let now = shared.clock.now_ms();
        let idle = i64::try_from(shared.config.query_locator_idle.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(st.cursors[pos].used_ms) >= idle {
            st.cursors.remove(pos);
            return Err(invalid());
        }
        st.cursors[pos].used_ms = now;
        let c = &st.cursors[pos];
        if offset >= c.rows.len() || !offset.is_multiple_of(c.batch) {
            return Err(invalid());
        }
        let end = (offset + c.batch).min(c.rows.len());
        let page: Vec<Value> = c.rows[offset..end].to_vec();
        let total = c.rows.len();
        let mut body = json!({"totalSize": total, "done": end == total, "records": page});
        if end < total {
            body["nextRecordsUrl"] = json!(format!("/services/data/{version}/{kind}/{id}-{end}"));
        } else {
            st.cursors.remove(pos);
        }
        Ok(ok(StatusCode::OK, &body))
    })())
}

/// A collections request body: `{allOrNone, records}`.
fn collection_body(body: &str) -> ApiResult<(bool, Vec<Value>)> {
    let v: Value = serde_json::from_str(body).map_err(|e| ApiError::json_parse(&e))?;
    let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let Some(records) = v.get("records").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "The request body must have a records array",
        ));
    };
    if records.len() > MAX_COLLECTION {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            format!(
                "record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
            ),
        ));
    }
    Ok((all_or_none, records.clone()))
}

/// One record's outcome in a collections answer.
struct Outcome {
    id: Option<String>,
    created: Option<bool>,
    error: Option<FieldError>,
}

fn outcome(r: Result<(String, Option<bool>), (Option<String>, FieldError)>) -> Outcome {
    match r {
        Ok((id, created)) => Outcome {
            id: Some(id),
            created,
            error: None,
        },
        Err((id, e)) => Outcome {
            id,
            created: None,
            error: Some(e),
        },
    }
}

/// Applies `apply` to every record; with `all_or_none`, a failure restores the store and marks
/// the others rolled back.
fn collection(
    shared: &Shared,
    all_or_none: bool,
    records: &[Value],
    with_created: bool,
    mut apply: impl FnMut(&mut Store, &Value, i64) -> Outcome,
) -> Response {
    let now = shared.clock.now_s();
    let mut st = shared.lock();
    let backup = all_or_none.then(|| st.store.clone());
    let mut outcomes: Vec<Outcome> = records
        .iter()
        .map(|r| apply(&mut st.store, r, now))
        .collect();
    if let Some(backup) = backup
        && outcomes.iter().any(|o| o.error.is_some())
    {
        st.store = backup;
        for o in outcomes.iter_mut().filter(|o| o.error.is_none()) {
            o.id = None;
            o.created = None;
            o.error = Some(FieldError::new(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
                &[],
            ));
        }
    }
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let mut m = Map::new();
            if let Some(id) = &o.id {
                m.insert("id".into(), json!(id));
            }
            m.insert("success".into(), json!(o.error.is_none()));
            m.insert(
                "errors".into(),
                Value::Array(o.error.iter().map(record_error).collect()),
            );
            if with_created {
                m.insert("created".into(), json!(o.created.unwrap_or(false)));
            }
            Value::Object(m)
        })
        .collect();
    ok(StatusCode::OK, &Value::Array(results))
}

fn record_type(store: &Store, r: &Value) -> Result<&'static str, FieldError> {
    let ty = r
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| FieldError::new("INVALID_TYPE", "Must send a concrete entity type.", &[]))?;
    store.object(ty).ok_or_else(|| {
        FieldError::new(
            "INVALID_TYPE",
            format!("sObject type '{ty}' is not supported."),
            &[],
        )
    })
}

fn fields_of(r: &Value) -> Map<String, Value> {
    let mut m = r.as_object().cloned().unwrap_or_default();
    m.remove("attributes");
    m
}

/// `POST …/composite/sobjects`: create up to 200 records.
pub(crate) async fn collection_create(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    body: String,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let (all, records) = collection_body(&body)?;
        Ok(collection(
            &shared,
            all,
            &records,
            false,
            |store, r, now| {
                outcome((|| {
                    let object = record_type(store, r).map_err(|e| (None, e))?;
                    let id = store
                        .create(object, &fields_of(r), now)
                        .map_err(|e| (None, e))?;
                    Ok((id, None))
                })())
            },
        ))
    })())
}

fn object_of_id(id: &str) -> Option<&'static str> {
    describe::OBJECTS
        .into_iter()
        .find(|o| id.starts_with(describe::key_prefix(o)))
        .filter(|_| store::valid_id(id))
}

/// `PATCH …/composite/sobjects`: update up to 200 records by `id`.
pub(crate) async fn collection_update(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    body: String,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let (all, records) = collection_body(&body)?;
        Ok(collection(
            &shared,
            all,
            &records,
            false,
            |store, r, now| {
                outcome((|| {
                    let mut values = fields_of(r);
                    let id_key = values
                        .keys()
                        .find(|k| k.eq_ignore_ascii_case("id"))
                        .cloned();
                    let Some(id) = id_key
                        .and_then(|k| values.remove(&k))
                        .and_then(|v| v.as_str().map(String::from))
                    else {
                        return Err((
                            None,
                            FieldError::new(
                                "MISSING_ARGUMENT",
                                "Id not specified in an update call",
                                &[],
                            ),
                        ));
                    };
                    let object = match r.get("attributes").and_then(|a| a.get("type")) {
                        Some(_) => record_type(store, r).map_err(|e| (Some(id.clone()), e))?,
                        None => object_of_id(&id).ok_or_else(|| {
                            (
                                Some(id.clone()),
                                FieldError::new(
                                    "MALFORMED_ID",
                                    format!("malformed id {id}"),
                                    &["Id"],
                                ),
                            )
                        })?,
                    };
                    let id18 = store
                        .update(object, &id, &values, now)
                        .map_err(|e| (Some(id.clone()), e))?;
                    Ok((id18, None))
                })())
            },
        ))
    })())
}

/// `DELETE …/composite/sobjects?ids=a,b&allOrNone=false`.
pub(crate) async fn collection_delete(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let ids: Vec<Value> = q
            .get("ids")
            .map(|s| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(|x| json!(x))
                    .collect()
            })
            .unwrap_or_default();
        if ids.len() > MAX_COLLECTION {
            return Err(ApiError::bad_request(
                "EXCEEDED_ID_LIMIT",
                format!(
                    "record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
                ),
            ));
        }
        let all = q.get("allOrNone").is_some_and(|v| v == "true");
        Ok(collection(&shared, all, &ids, false, |store, r, now| {
            let id = r.as_str().unwrap_or_default().to_string();
            outcome((|| {
                let object = object_of_id(&id).ok_or_else(|| {
                    (
                        Some(id.clone()),
                        FieldError::new("MALFORMED_ID", format!("malformed id {id}"), &[]),
                    )
                })?;
                store
                    .delete(object, &id, now)
                    .map_err(|e| (Some(id.clone()), e))?;
                Ok((store::id18(&id), None))
            })())
        }))
    })())
}

/// `PATCH …/composite/sobjects/{object}/{field}`: upsert up to 200 records by external id.
pub(crate) async fn collection_upsert(
    State(shared): State<Arc<Shared>>,
    Path((version, object, field)): Path<(String, String, String)>,
    body: String,
) -> Response {
    answer((|| {
        check_version(&version)?;
        let (all, records) = collection_body(&body)?;
        let (object, field) = {
            let st = shared.lock();
            let object = object_of(&st.store, &object)?;
            let field = st.store.external_field(object, &field)?;
            if field == "Id" {
                return Err(ApiError::bad_request(
                    "INVALID_FIELD",
                    "Id is not a valid external ID field: use an update call for record Ids",
                ));
            }
            (object, field)
        };
        Ok(collection(&shared, all, &records, true, |store, r, now| {
            outcome((|| {
                let ty = record_type(store, r).map_err(|e| (None, e))?;
                if ty != object {
                    return Err((
                        None,
                        FieldError::new(
                            "INVALID_TYPE",
                            format!("every record must be of type {object}"),
                            &[],
                        ),
                    ));
                }
                let values = fields_of(r);
                let value = values
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(field))
                    .and_then(|(_, v)| match v {
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        (
                            None,
                            FieldError::new(
                                "MISSING_ARGUMENT",
                                format!("{field} not specified"),
                                &[field],
                            ),
                        )
                    })?;
                match store.upsert(object, field, &value, &values, false, now) {
                    Ok((id, created)) => Ok((id, Some(created))),
                    Err(WriteError::Field(e)) => Err((None, e)),
                    Err(WriteError::Multiple(ids)) => Err((
                        None,
                        FieldError::new(
                            "DUPLICATE_EXTERNAL_ID",
                            format!(
                                "{field}: more than one record found for external id field: [{}]",
                                ids.join(", ")
                            ),
                            &[field],
                        ),
                    )),
                }
            })())
        }))
    })())
}
