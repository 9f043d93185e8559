//! The people endpoints, `apiKeyProfiles` and `echoes`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{VanError, VanResult, found, iis_not_found, json_response, unmatched};
use super::gate::{base_with_port, own_base};
use super::people::{self, Changer, EXPANDS, PersonInput};
use super::time::iso;
use super::{DEFAULT_TOP, MAX_TOP, Shared};

fn body_json(body: &Bytes) -> VanResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| VanError::bad_request(format!("The request body could not be parsed: {e}")))
}

fn person_location(headers: &HeaderMap, van_id: u64) -> String {
    let (scheme, host) = own_base(headers);
    format!("{scheme}://{host}/v4/people/{van_id}")
}

/// Query pairs, decoded.
fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    raw.map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(&q).unwrap_or_default())
        .unwrap_or_default()
}

fn unwrap<T: IntoResponse>(r: VanResult<T>) -> Response {
    match r {
        Ok(t) => t.into_response(),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn api_key_profiles(State(shared): State<Arc<Shared>>) -> Response {
    let c = &shared.config;
    let key_ref: String = c
        .api_key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "items": [{
                "databaseName": c.database_name,
                "hasMyVoters": false,
                "hasMyCampaign": true,
                "committeeName": c.committee_name,
                "committeeId": 1,
                "stateId": null,
                "apiKeyTypeName": "Custom Integration",
                "keyReference": key_ref,
                "userFirstName": c.user_first_name,
                "userLastName": c.user_last_name,
                "username": c.app_name,
                "userId": 1,
            }],
            "nextPageLink": null,
            "count": 1,
        }),
    )
}

pub(crate) async fn echo(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    unwrap(body_json(&body).map(|v| {
        json_response(
            StatusCode::CREATED,
            &json!({"message": v.get("message").cloned().unwrap_or(Value::Null),
                    "dateSent": iso(shared.clock.now_ms())}),
        )
    }))
}

/// The match: a body `vanId` that exists wins; below the minimum nothing matches; among
/// several matches, criteria with a name pick the lowest `vanId`, others the highest.
fn match_person(shared: &Shared, input: &PersonInput) -> VanResult<Option<u64>> {
    let st = shared.lock();
    if let Some(id) = input.van_id {
        if id == 0 {
            return Err(VanError::internal());
        }
        if let Ok(id) = u64::try_from(id)
            && st.people.contains_key(&id)
        {
            return Ok(Some(id));
        }
    }
    if !input.meets_minimum(shared.config.phone_alone_matches) {
        return Ok(None);
    }
    let mut matches = st
        .people
        .values()
        .filter(|p| input.agrees_with(p))
        .map(|p| p.van_id);
    let named = input.criteria().names;
    Ok(if named {
        matches.next()
    } else {
        matches.next_back()
    })
}

pub(crate) async fn find(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = (|| {
        let input = people::parse_input(&body_json(&body)?)?;
        Ok(match match_person(&shared, &input)? {
            Some(id) => found(person_location(&headers, id), id),
            None => unmatched(),
        })
    })();
    unwrap(r)
}

pub(crate) async fn find_or_create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = (|| {
        let mut input = people::parse_input(&body_json(&body)?)?;
        if let Some(id) = match_person(&shared, &input)? {
            return Ok(found(person_location(&headers, id), id));
        }
        // An unknown body vanId is ignored.
        input.van_id = None;
        let now = shared.clock.now_ms();
        let id = shared
            .lock()
            .create(&input, &shared.config, now, Changer::ApiUser);
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"vanId": id, "status": "UnmatchedStored"}),
        ))
    })();
    unwrap(r)
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = (|| {
        let input = people::parse_input(&body_json(&body)?)?;
        // A plausible body vanId is echoed back blindly as a match (the notes).
        if let Some(id) = input.van_id.and_then(|i| u64::try_from(i).ok())
            && id > 0
        {
            return Ok(found(person_location(&headers, id), id));
        }
        let now = shared.clock.now_ms();
        let id = shared
            .lock()
            .create(&input, &shared.config, now, Changer::ApiUser);
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"vanId": id, "status": "Stored"}),
        ))
    })();
    unwrap(r)
}

/// A path id: non-integers get IIS's HTML 404, unknown or non-positive ids VAN's envelope.
fn path_id(raw: &str) -> Result<u64, Box<Response>> {
    let Ok(id) = raw.parse::<i64>() else {
        return Err(Box::new(iis_not_found()));
    };
    u64::try_from(id)
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Box::new(VanError::not_found().into_response()))
}

pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match path_id(&raw) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let r = (|| {
        let input = people::parse_input(&body_json(&body)?)?;
        let now = shared.clock.now_ms();
        let mut guard = shared.lock();
        let st = &mut *guard;
        let p = st.people.get_mut(&id).ok_or_else(VanError::not_found)?;
        p.merge(
            &input,
            &mut st.ids,
            shared.config.same_phone_updates_in_place,
            now,
            Changer::ApiUser,
        );
        Ok(found(person_location(&headers, id), id))
    })();
    unwrap(r)
}

/// `$expand` values, checked against `allowed`.
fn expands(pairs: &[(String, String)], allowed: &[&str]) -> VanResult<Vec<String>> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        if k != "$expand" {
            continue;
        }
        for e in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some(known) = allowed.iter().find(|a| a.eq_ignore_ascii_case(e)) else {
                return Err(VanError::invalid(
                    format!("'{e}' is not a valid value for $expand."),
                    "$expand",
                )
                .with_hint(format!("Valid values are: {}", allowed.join(", "))));
            };
            out.push(known.to_string());
        }
    }
    Ok(out)
}

pub(crate) async fn get_person(
    State(shared): State<Arc<Shared>>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let id = match path_id(&raw) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let r = (|| {
        let pairs = query_pairs(query);
        let exp = expands(&pairs, &EXPANDS)?;
        // My Campaign refuses these two.
        if exp.iter().any(|e| e == "scores") {
            return Err(VanError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "May not request 'scores'",
            ));
        }
        if exp.iter().any(|e| e == "pollingLocation") {
            return Err(VanError::invalid(
                "'pollingLocation' is not available in this database mode.",
                "$expand",
            ));
        }
        let st = shared.lock();
        let p = st.people.get(&id).ok_or_else(VanError::not_found)?;
        let exp: Vec<&str> = exp.iter().map(String::as_str).collect();
        Ok(json_response(StatusCode::OK, &p.render(&exp)))
    })();
    unwrap(r)
}

const SEARCH_PARAMS: [&str; 11] = [
    "firstName",
    "lastName",
    "middleName",
    "streetAddress",
    "city",
    "stateOrProvince",
    "zipOrPostalCode",
    "phoneNumber",
    "email",
    "commonName",
    "officialName",
];

/// `$top` and `$skip`, with VAN's 400s.
pub(crate) fn paging(pairs: &[(String, String)]) -> VanResult<(i64, i64)> {
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let top = match get("$top") {
        None => DEFAULT_TOP,
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| VanError::invalid("'$top' must be an integer.", "$top"))?,
    };
    if top <= 0 {
        return Err(VanError::invalid("'$top' must be greater than 0.", "$top"));
    }
    if top > MAX_TOP {
        return Err(VanError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!(
                "'$top' must be less than or equal to the maximum result size for this end point: {MAX_TOP}"
            ),
        )
        .with_hint(format!("Use $top={MAX_TOP} or fewer and page with $skip.")));
    }
    let skip = match get("$skip") {
        None => 0,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| VanError::invalid("'$skip' must be 0 or greater.", "$skip"))?,
    };
    Ok((top, skip))
}

fn prefix(hay: Option<&str>, needle: &str) -> bool {
    hay.is_some_and(|h| people::fold(h).starts_with(&people::fold(needle)))
}

pub(crate) async fn search(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let r = (|| {
        let pairs = query_pairs(query);
        let crit: Vec<(&str, &str)> = pairs
            .iter()
            .filter(|(k, v)| SEARCH_PARAMS.contains(&k.as_str()) && !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if crit.is_empty() {
            return Err(VanError::bad_request(
                "This endpoint requires at least one search parameter to be set.",
            ));
        }
        if let Some((_, p)) = crit.iter().find(|(k, _)| *k == "phoneNumber")
            && !people::search_phone_valid(p)
        {
            return Err(VanError::invalid(
                "'phoneNumber' is not a valid phone number.",
                "phoneNumber",
            ));
        }
        let (top, skip) = paging(&pairs)?;
        let exp = expands(&pairs, &["addresses", "emails", "phones", "districts"])?;
        let exp: Vec<&str> = exp.iter().map(String::as_str).collect();
        let st = shared.lock();
        let hits: Vec<&people::Person> = st
            .people
            .values()
            .filter(|p| {
                crit.iter().all(|(k, v)| match *k {
                    "phoneNumber" => p.best_phone().is_some_and(|b| b.phone_number == *v),
                    "email" => p.emails.iter().any(|e| e.email.eq_ignore_ascii_case(v)),
                    "streetAddress" => p
                        .addresses
                        .iter()
                        .any(|a| prefix(a.address_line1.as_deref(), v)),
                    "city" => p.addresses.iter().any(|a| prefix(a.city.as_deref(), v)),
                    "stateOrProvince" => p
                        .addresses
                        .iter()
                        .any(|a| prefix(a.state_or_province.as_deref(), v)),
                    "zipOrPostalCode" => p
                        .addresses
                        .iter()
                        .any(|a| prefix(a.zip_or_postal_code.as_deref(), v)),
                    "commonName" | "officialName" => {
                        prefix(p.get("firstName"), v) || prefix(p.get("lastName"), v)
                    }
                    k => prefix(p.get(k), v),
                })
            })
            .collect();
        let count = hits.len() as i64;
        let items: Vec<Value> = hits
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(top).unwrap_or(0))
            .map(|p| p.render(&exp))
            .collect();
        let next = (skip + top < count).then(|| {
            let mut q: Vec<(String, String)> = pairs
                .iter()
                .filter(|(k, _)| k != "$top" && k != "$skip")
                .cloned()
                .collect();
            q.push(("$top".into(), top.to_string()));
            q.push(("$skip".into(), (skip + top).to_string()));
            let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
            // VAN writes `$` unescaped in its links.
            let qs = qs.replace("%24", "$");
            format!("{}/v4/people?{qs}", base_with_port(&headers))
        });
        Ok(json_response(
            StatusCode::OK,
            &json!({"items": items, "nextPageLink": next, "count": count}),
        ))
    })();
    unwrap(r)
}

pub(crate) async fn unknown_path() -> Response {
    VanError::not_found().into_response()
}
