//! `/__emulator/…`: test-only administration (seed, dump, reset, faults, limits, counters,
//! clock, sessions, tokens). Not part of Salesforce.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::{Faults, Limits, SalesforceEmulator, Shared};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/records/{object}", post(seed).get(dump))
        .route("/reset", post(reset))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/limits", get(get_limits).put(put_limits))
        .route("/counters", get(counters))
        .route("/clock/advance", post(advance_clock))
        .route("/sessions/expire", post(expire_sessions))
        .route("/oauth/tokens", post(issue_tokens))
}

fn emulator(shared: Arc<Shared>) -> SalesforceEmulator {
    SalesforceEmulator { shared }
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    ApiError::bad_request("JSON_PARSER_ERROR", e.to_string()).into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SeedBody {
    Wrapped { records: Vec<Map<String, Value>> },
    Bare(Vec<Map<String, Value>>),
}

async fn seed(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let records = match serde_json::from_slice::<SeedBody>(&body) {
        Ok(SeedBody::Wrapped { records } | SeedBody::Bare(records)) => records,
        Err(e) => return bad_request(e),
    };
    match emulator(shared).seed(&object, records) {
        Ok(ids) => (StatusCode::CREATED, Json(json!({"ids": ids}))).into_response(),
        Err(e) => ApiError::bad_request(&e.code, e.message).into_response(),
    }
}

async fn dump(State(shared): State<Arc<Shared>>, Path(object): Path<String>) -> Response {
    Json(json!({"records": emulator(shared).records(&object)})).into_response()
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    emulator(shared).reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(emulator(shared).faults()).into_response()
}

async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            emulator(shared).set_faults(f.clone());
            Json(f).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn get_limits(State(shared): State<Arc<Shared>>) -> Response {
    Json(emulator(shared).limits()).into_response()
}

async fn put_limits(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Limits>(&body) {
        Ok(l) => {
            emulator(shared).set_limits(l);
            Json(l).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn counters(State(shared): State<Arc<Shared>>) -> Response {
    Json(emulator(shared).counters()).into_response()
}

#[derive(Deserialize)]
struct Advance {
    ms: u64,
}

async fn advance_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Advance>(&body) {
        Ok(a) => {
            emulator(shared).advance_clock(Duration::from_millis(a.ms));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn expire_sessions(State(shared): State<Arc<Shared>>) -> Response {
    emulator(shared).expire_sessions();
    StatusCode::NO_CONTENT.into_response()
}

async fn issue_tokens(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let scheme = if shared.config.tls { "https" } else { "http" };
    Json(emulator(shared).issue_tokens(&format!("{scheme}://{host}"))).into_response()
}
