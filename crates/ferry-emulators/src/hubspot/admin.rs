//! `/__emulator/…`: test-only administration (seed, dump, reset, faults, limits, counters,
//! clock, tokens). Not part of HubSpot.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{Faults, HubSpotEmulator, RateLimits, SeedContact, Shared};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/contacts", post(seed_contacts).get(dump_contacts))
        .route("/properties", post(create_property))
        .route("/state", get(state))
        .route("/reset", post(reset))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/limits", get(get_limits).put(put_limits))
        .route("/counters", get(counters))
        .route("/clock/advance", post(advance_clock))
        .route("/oauth/expire", post(expire_tokens))
        .route("/oauth/tokens", post(issue_tokens))
}

fn emulator(shared: Arc<Shared>) -> HubSpotEmulator {
    HubSpotEmulator { shared }
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    ApiError::validation(e.to_string()).into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SeedBody {
    Wrapped { contacts: Vec<SeedContact> },
    Bare(Vec<SeedContact>),
}

async fn seed_contacts(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let contacts = match serde_json::from_slice::<SeedBody>(&body) {
        Ok(SeedBody::Wrapped { contacts } | SeedBody::Bare(contacts)) => contacts,
        Err(e) => return bad_request(e),
    };
    match emulator(shared).seed_contacts(contacts) {
        Ok(ids) => (StatusCode::CREATED, Json(json!({"ids": ids}))).into_response(),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(json!({"status": "error", "message": e.message})),
        )
            .into_response(),
    }
}

async fn dump_contacts(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({"contacts": emulator(shared).contacts()})).into_response()
}

async fn create_property(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let defs = match value {
        Value::Array(list) => list,
        one => vec![one],
    };
    let emu = emulator(shared);
    for def in defs {
        if let Err(e) = emu.create_property(def) {
            return (
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                Json(json!({"status": "error", "message": e.message})),
            )
                .into_response();
        }
    }
    StatusCode::CREATED.into_response()
}

async fn state(State(shared): State<Arc<Shared>>) -> Response {
    let emu = emulator(shared);
    Json(json!({
        "contacts": emu.contacts(),
        "counters": emu.counters(),
        "faults": emu.faults(),
        "limits": emu.limits(),
        "schema_violations": emu.schema_violations(),
    }))
    .into_response()
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
            emulator(shared).set_faults(f);
            Json(f).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn get_limits(State(shared): State<Arc<Shared>>) -> Response {
    Json(emulator(shared).limits()).into_response()
}

async fn put_limits(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<RateLimits>(&body) {
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

async fn expire_tokens(State(shared): State<Arc<Shared>>) -> Response {
    emulator(shared).expire_access_tokens();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize, Default)]
struct IssueTokens {
    #[serde(default)]
    scopes: Vec<String>,
}

async fn issue_tokens(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req = if body.is_empty() {
        IssueTokens::default()
    } else {
        match serde_json::from_slice::<IssueTokens>(&body) {
            Ok(r) => r,
            Err(e) => return bad_request(e),
        }
    };
    let scopes: Vec<&str> = req.scopes.iter().map(String::as_str).collect();
    Json(emulator(shared).issue_tokens(&scopes)).into_response()
}
