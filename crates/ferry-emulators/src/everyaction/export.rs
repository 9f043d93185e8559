//! Changed-entity export jobs: resources, fields, change types, jobs (Pending → Complete), and
//! their CSV files, served without authentication like pre-signed blob URLs.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{VanError, VanResult, iis_not_found, json_response};
use super::gate::own_base;
use super::people::{Changer, Person};
use super::time::{date_only, iso, parse};
use super::{FILE_EXPIRY_DAYS, MAX_CHANGED_ENTITY_DAYS, Shared};
use crate::rng::token;

const DAY_MS: i64 = 86_400_000;

/// The resources VAN lists; only `Contacts` is emulated.
const RESOURCES: [&str; 4] = [
    "ActivistCodes",
    "ContactHistory",
    "Contacts",
    "ContactsActivistCodes",
];

/// Contacts columns: name, `fieldType`, `isCoreField`.
pub(crate) const CONTACT_FIELDS: [(&str, &str, bool); 16] = [
    ("VanID", "N", true),
    ("FirstName", "T", false),
    ("MiddleName", "T", false),
    ("LastName", "T", false),
    ("DateOfBirth", "D", false),
    ("Email", "T", false),
    ("Phone", "T", false),
    ("PhoneOptInStatus", "N", false),
    ("PhoneDeviceType", "T", false),
    ("AddressLine1", "T", false),
    ("AddressLine2", "T", false),
    ("City", "T", false),
    ("State", "T", false),
    ("Zip", "T", false),
    ("CountryCode", "T", false),
    ("DateCreated", "D", false),
];

/// A file of a finished job.
#[derive(Debug, Clone)]
pub(crate) struct JobFile {
    sig: String,
    body: Arc<Vec<u8>>,
}

/// An export job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    id: u64,
    resource_type: String,
    from_ms: Option<i64>,
    to_ms: i64,
    fields: Vec<String>,
    requested_ids: Option<Vec<u64>>,
    file_kb: u64,
    exclude_self: bool,
    include_inactive: bool,
    contact_mode: Option<i64>,
    created_ms: i64,
    polls: u32,
    done: Option<(Vec<JobFile>, u64)>,
    echo: Map<String, Value>,
}

pub(crate) async fn resources() -> Response {
    json_response(StatusCode::OK, &json!(RESOURCES))
}

fn check_resource(r: &str) -> VanResult<()> {
    if RESOURCES.contains(&r) {
        Ok(())
    } else {
        Err(VanError::invalid(
            format!("'resourceType' must be one of {}", RESOURCES.join(" , ")),
            "resourceType",
        ))
    }
}

pub(crate) async fn fields(
    State(shared): State<Arc<Shared>>,
    Path(resource): Path<String>,
) -> Response {
    if let Err(e) = check_resource(&resource) {
        return e.into_response();
    }
    if resource != "Contacts" {
        return json_response(
            StatusCode::OK,
            &json!([{"fieldName":"VanID","fieldType":"N","maxTextboxCharacters":null,
                     "isCoreField":true,"availableValues":null,"bulkImportFields":null}]),
        );
    }
    let ids = shared.config.opt_in_ids;
    let list: Vec<Value> = CONTACT_FIELDS
        .iter()
        .map(|(name, ty, core)| {
            let available = (*name == "PhoneOptInStatus").then(|| {
                json!([
                    {"id": ids.opt_in, "name": "Opt-In"},
                    {"id": ids.unknown, "name": "Unknown"},
                    {"id": ids.opt_out, "name": "Opt-Out"},
                ])
            });
            json!({
                "fieldName": name,
                "fieldType": ty,
                "maxTextboxCharacters": (*ty == "T").then_some(100),
                "isCoreField": core,
                "availableValues": available,
                "bulkImportFields": null,
            })
        })
        .collect();
    json_response(StatusCode::OK, &json!(list))
}

pub(crate) async fn change_types(Path(resource): Path<String>) -> Response {
    if let Err(e) = check_resource(&resource) {
        return e.into_response();
    }
    json_response(
        StatusCode::OK,
        &json!([{"changeTypeID": 1, "changeTypeName": "CreatedOrUpdated",
                 "Description": "The record was created or one of its fields changed"}]),
    )
}

fn get_bool(obj: &Map<String, Value>, key: &str) -> VanResult<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(VanError::invalid(
            format!("'{key}' must be true or false."),
            key,
        )),
    }
}

fn parse_job(obj: &Map<String, Value>, now_ms: i64) -> VanResult<Job> {
    let mut echo = Map::new();
    let resource = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| VanError::invalid("'resourceType' is required.", "resourceType"))?;
    check_resource(resource)?;
    if resource != "Contacts" {
        return Err(VanError::invalid(
            format!("The emulator exports only Contacts, not '{resource}'."),
            "resourceType",
        ));
    }
    echo.insert("resourceType".into(), json!(resource));
    let requested_ids = match obj.get("requestedIds") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| {
                    v.as_u64().ok_or_else(|| {
                        VanError::invalid("'requestedIds' must be integers.", "requestedIds")
                    })
                })
                .collect::<VanResult<Vec<u64>>>()?,
        ),
        Some(_) => {
            return Err(VanError::invalid(
                "'requestedIds' must be a list.",
                "requestedIds",
            ));
        }
    };
    let date = |key: &str| -> VanResult<Option<i64>> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse(s)
                .map(Some)
                .ok_or_else(|| VanError::invalid(format!("'{key}' is not a valid date."), key)),
            Some(_) => Err(VanError::invalid(
                format!("'{key}' is not a valid date."),
                key,
            )),
        }
    };
    let from_ms = date("dateChangedFrom")?;
    if from_ms.is_none() && requested_ids.is_none() {
        return Err(VanError::invalid(
            "'dateChangedFrom' is required.",
            "dateChangedFrom",
        ));
    }
    if let Some(from) = from_ms {
        if from < now_ms - MAX_CHANGED_ENTITY_DAYS * DAY_MS {
            return Err(VanError::invalid(
                format!(
                    "'dateChangedFrom' must be within the last {MAX_CHANGED_ENTITY_DAYS} days."
                ),
                "dateChangedFrom",
            ));
        }
        echo.insert("dateChangedFrom".into(), json!(iso(from)));
    }
    let to_ms = date("dateChangedTo")?.unwrap_or(now_ms);
    if from_ms.is_some_and(|f| to_ms < f) {
        return Err(VanError::invalid(
            "'dateChangedTo' must be after 'dateChangedFrom'.",
            "dateChangedTo",
        ));
    }
    echo.insert("dateChangedTo".into(), json!(iso(to_ms)));
    if let Some(ids) = &requested_ids {
        echo.insert("requestedIds".into(), json!(ids));
    }
    let mut fields: Vec<String> = CONTACT_FIELDS
        .iter()
        .filter(|f| f.2)
        .map(|f| f.0.to_string())
        .collect();
    let mut accepted = Vec::new();
    if let Some(Value::Array(a)) = obj.get("requestedFields") {
        for name in a.iter().filter_map(Value::as_str) {
            // Unknown names are not accepted: they are left out of the echo.
            if let Some(f) = CONTACT_FIELDS
                .iter()
                .find(|f| f.0.eq_ignore_ascii_case(name))
            {
                accepted.push(f.0.to_string());
                if !fields.iter().any(|x| x == f.0) {
                    fields.push(f.0.to_string());
                }
            }
        }
        echo.insert("requestedFields".into(), json!(accepted));
    }
    let file_kb = match obj.get("fileSizeKbLimit") {
        None | Some(Value::Null) => 40_000,
        Some(v) => v
            .as_u64()
            .filter(|k| (1_000..=100_000).contains(k))
            .ok_or_else(|| {
                VanError::invalid(
                    "'fileSizeKbLimit' must be between 1000 and 100000.",
                    "fileSizeKbLimit",
                )
            })?,
    };
    echo.insert("fileSizeKbLimit".into(), json!(file_kb));
    let exclude_self = get_bool(obj, "excludeChangesFromSelf")?.unwrap_or(false);
    echo.insert("excludeChangesFromSelf".into(), json!(exclude_self));
    let include_inactive = get_bool(obj, "includeInactive")?.unwrap_or(false);
    echo.insert("includeInactive".into(), json!(include_inactive));
    let contact_mode =
        match obj.get("contactMode") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().filter(|m| (1..=3).contains(m)).ok_or_else(|| {
                VanError::invalid("'contactMode' must be 1, 2 or 3.", "contactMode")
            })?),
        };
    if let Some(m) = contact_mode {
        echo.insert("contactMode".into(), json!(m));
    }
    Ok(Job {
        id: 0,
        resource_type: resource.to_string(),
        from_ms,
        to_ms,
        fields,
        requested_ids,
        file_kb,
        exclude_self,
        include_inactive,
        contact_mode,
        created_ms: now_ms,
        polls: 0,
        done: None,
        echo,
    })
}

pub(crate) async fn create_job(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let now = shared.clock.now_ms();
    let r = (|| -> VanResult<Response> {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            VanError::bad_request(format!("The request body could not be parsed: {e}"))
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| VanError::bad_request("The request body must be a JSON object."))?;
        let mut job = parse_job(obj, now)?;
        let mut st = shared.lock();
        job.id = st.next_job_id;
        st.next_job_id += 1;
        let mut echo = job.echo.clone();
        echo.insert("exportJobId".into(), json!(job.id));
        st.jobs.insert(job.id, job);
        Ok(json_response(StatusCode::CREATED, &Value::Object(echo)))
    })();
    match r {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Appends `s` to `out` as one CSV field (quoted when it needs to be).
fn push_csv(out: &mut String, s: &str) {
    if s.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// One column's value for a person (best phone, preferred email, best address).
fn value<'a>(
    p: &'a Person,
    field: &str,
    ids: &super::OptInIds,
    phone: Option<&'a super::Phone>,
    email: Option<&'a super::Email>,
    addr: Option<&'a super::Address>,
) -> Cow<'a, str> {
    let s = |o: Option<&'a String>| Cow::Borrowed(o.map_or("", String::as_str));
    match field {
        "VanID" => Cow::Owned(p.van_id.to_string()),
        "FirstName" => s(p.scalars.get("firstName")),
        "MiddleName" => s(p.scalars.get("middleName")),
        "LastName" => s(p.scalars.get("lastName")),
        "DateOfBirth" => s(p.scalars.get("dateOfBirth")),
        "Email" => s(email.map(|e| &e.email)),
        "Phone" => s(phone.map(|x| &x.phone_number)),
        "PhoneOptInStatus" => phone.map_or(Cow::Borrowed(""), |x| {
            Cow::Owned(ids.id(x.opt_in).to_string())
        }),
        "PhoneDeviceType" => s(phone.map(|x| &x.device_type)),
        "AddressLine1" => s(addr.and_then(|a| a.address_line1.as_ref())),
        "AddressLine2" => s(addr.and_then(|a| a.address_line2.as_ref())),
        "City" => s(addr.and_then(|a| a.city.as_ref())),
        "State" => s(addr.and_then(|a| a.state_or_province.as_ref())),
        "Zip" => s(addr.and_then(|a| a.zip_or_postal_code.as_ref())),
        "CountryCode" => s(addr.map(|a| &a.country_code)),
        "DateCreated" => Cow::Owned(date_only(p.created_ms)),
        _ => Cow::Borrowed(""),
    }
}

/// Runs a job: selects the people changed in its window (current versions) and writes the
/// files, each under `fileSizeKbLimit`.
fn run(
    shared: &Shared,
    job: &Job,
    people: &std::collections::BTreeMap<u64, Person>,
) -> (Vec<JobFile>, u64) {
    let ids = shared.config.opt_in_ids;
    let header = job
        .fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
        + "\r\n";
    let limit = usize::try_from(job.file_kb * 1024).unwrap_or(usize::MAX);
    let selected = people.values().filter(|p| {
        let in_window = match &job.requested_ids {
            Some(list) => list.contains(&p.van_id),
            None => job.from_ms.is_some_and(|f| p.modified_ms >= f) && p.modified_ms <= job.to_ms,
        };
        in_window && !(job.exclude_self && p.modified_by == Changer::ApiUser)
    });
    let mut files: Vec<Vec<u8>> = vec![header.clone().into_bytes()];
    let mut rows_in_file = 0usize;
    let mut count = 0u64;
    for p in selected {
        let (phone, email, addr) = (p.best_phone(), p.best_email(), p.best_address());
        let mut row = String::with_capacity(160);
        for (i, f) in job.fields.iter().enumerate() {
            if i > 0 {
                row.push(',');
            }
            push_csv(&mut row, &value(p, f, &ids, phone, email, addr));
        }
        row.push_str("\r\n");
        let current = files.last_mut().expect("one file");
        if rows_in_file > 0 && current.len() + row.len() > limit {
            let start = if shared.config.header_on_every_file {
                header.clone().into_bytes()
            } else {
                Vec::new()
            };
            files.push(start);
            rows_in_file = 0;
        }
        files
            .last_mut()
            .expect("one file")
            .extend_from_slice(row.as_bytes());
        rows_in_file += 1;
        count += 1;
    }
    let files = files
        .into_iter()
        .map(|body| JobFile {
            sig: token(""),
            body: Arc::new(body),
        })
        .collect();
    (files, count)
}

pub(crate) async fn get_job(
    State(shared): State<Arc<Shared>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = raw.parse::<u64>() else {
        return iis_not_found();
    };
    let mut guard = shared.lock();
    let st = &mut *guard;
    let Some(job) = st.jobs.get_mut(&id) else {
        return VanError::not_found().into_response();
    };
    if job.done.is_none() && job.polls < shared.config.pending_polls {
        job.polls += 1;
    } else if job.done.is_none() {
        let snapshot = job.clone();
        job.done = Some(run(&shared, &snapshot, &st.people));
    }
    let job = &st.jobs[&id];
    let (scheme, host) = own_base(&headers);
    let expires = iso(job.created_ms + FILE_EXPIRY_DAYS * DAY_MS);
    let (status, message, files, count) = match &job.done {
        None => ("Pending", "Created export job", Vec::new(), Value::Null),
        Some((files, count)) => (
            "Complete",
            "Finished processing export job",
            files
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    json!({
                        "downloadUrl": format!(
                            "{scheme}://{host}/blob/changed-entities/{id}/{}.csv?sig={}",
                            i + 1, f.sig
                        ),
                        "dateExpired": expires,
                    })
                })
                .collect(),
            json!(count),
        ),
    };
    json_response(
        StatusCode::OK,
        &json!({
            "exportJobId": job.id,
            "jobStatus": status,
            "resourceType": job.resource_type,
            "dateChangedFrom": job.from_ms.map(iso),
            "dateChangedTo": iso(job.to_ms),
            "files": files,
            "message": message,
            "code": null,
            "exportedRecordCount": count,
            "excludeChangesFromSelf": job.exclude_self,
            "contactMode": job.contact_mode,
            "includeInactive": job.include_inactive,
        }),
    )
}

#[derive(Deserialize)]
pub(crate) struct Sig {
    sig: Option<String>,
}

pub(crate) async fn download(
    State(shared): State<Arc<Shared>>,
    Path((job_id, file)): Path<(String, String)>,
    Query(q): Query<Sig>,
) -> Response {
    let denied = || {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/xml")],
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message></Error>",
        )
            .into_response()
    };
    let now = shared.clock.now_ms();
    let st = shared.lock();
    let found = job_id
        .parse::<u64>()
        .ok()
        .and_then(|id| st.jobs.get(&id))
        .and_then(|job| {
            let n: usize = file.strip_suffix(".csv")?.parse().ok()?;
            let (files, _) = job.done.as_ref()?;
            let f = files.get(n.checked_sub(1)?)?;
            Some((job.created_ms, f.clone()))
        });
    let Some((created, f)) = found else {
        return denied();
    };
    if q.sig.as_deref() != Some(f.sig.as_str()) || now > created + FILE_EXPIRY_DAYS * DAY_MS {
        return denied();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv")],
        f.body.as_ref().clone(),
    )
        .into_response()
}
