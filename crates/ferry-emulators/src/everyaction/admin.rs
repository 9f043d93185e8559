//! `/__emulator/…`: test-only administration (seed and dump people, flip opt-ins, reset,
//! faults, limits, counters, clock). Not part of VAN.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::VanError;
use super::people::OptIn;
use super::{EmulatorError, EveryActionEmulator, Faults, SeedPerson, Shared};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/people", post(seed).get(dump))
        .route("/people/{van_id}/optIn", post(opt_in))
        .route("/reset", post(reset))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/limits", get(get_limits).put(put_limits))
        .route("/counters", get(counters))
        .route("/clock", get(get_clock).put(put_clock))
        .route("/clock/advance", post(advance))
}

fn emulator(shared: Arc<Shared>) -> EveryActionEmulator {
    EveryActionEmulator { shared }
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    VanError::bad_request(e.to_string()).into_response()
}

fn refused(e: EmulatorError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(e.body),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SeedBody {
    Wrapped { people: Vec<SeedPerson> },
    Bare(Vec<SeedPerson>),
}

async fn seed(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let people = match serde_json::from_slice::<SeedBody>(&body) {
        Ok(SeedBody::Wrapped { people } | SeedBody::Bare(people)) => people,
        Err(e) => return bad_request(e),
    };
    match emulator(shared).seed_people(people) {
        Ok(ids) => (StatusCode::CREATED, Json(json!({"vanIds": ids}))).into_response(),
        Err(e) => refused(e),
    }
}

async fn dump(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({"people": emulator(shared).people()})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptInBody {
    phone_number: String,
    status: String,
}

async fn opt_in(
    State(shared): State<Arc<Shared>>,
    Path(van_id): Path<u64>,
    body: Bytes,
) -> Response {
    let b: OptInBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    let Some(status) = OptIn::from_code(&b.status) else {
        return bad_request("status must be one of I, U, O");
    };
    match emulator(shared).set_opt_in(van_id, &b.phone_number, status) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e),
    }
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
            emulator(shared.clone()).set_faults(f);
            Json(f).into_response()
        }
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    rate_limit_per_second: u32,
}

async fn get_limits(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({"rate_limit_per_second": emulator(shared).rate_limit()})).into_response()
}

async fn put_limits(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Limits>(&body) {
        Ok(l) => {
            emulator(shared).set_rate_limit(l.rate_limit_per_second);
            Json(json!({"rate_limit_per_second": l.rate_limit_per_second})).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn counters(State(shared): State<Arc<Shared>>) -> Response {
    Json(emulator(shared).counters()).into_response()
}

async fn get_clock(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({"now": emulator(shared).now()})).into_response()
}

#[derive(Deserialize)]
struct ClockBody {
    now: Timestamp,
    #[serde(default)]
    frozen: bool,
}

async fn put_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<ClockBody>(&body) {
        Ok(c) => {
            let emu = emulator(shared);
            if c.frozen {
                emu.freeze_clock(c.now);
            } else {
                emu.set_now(c.now);
            }
            Json(json!({"now": emu.now()})).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn advance(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let Some(ms) = v.get("ms").and_then(Value::as_u64) else {
        return bad_request("expected {\"ms\": N}");
    };
    let emu = emulator(shared);
    emu.advance_clock(Duration::from_millis(ms));
    Json(json!({"now": emu.now()})).into_response()
}
