//! HubSpot's error bodies: `{"status":"error","message","correlationId","category",…}`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::rng::uuid_v4;

/// An error answer in HubSpot's shape (the `Error` schema of the published documents).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> ApiError {
        let mut body = Map::new();
        body.insert("status".into(), json!("error"));
        body.insert("message".into(), json!(message.into()));
        body.insert("correlationId".into(), json!(uuid_v4()));
        body.insert("category".into(), json!(category));
        ApiError { status, body }
    }

    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.body.insert(key.into(), value);
        self
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        )
    }

    /// The documented duplicate-email answer.
    pub fn contact_exists(id: u64) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!("Contact already exists. Existing ID: {id}"),
        )
    }

    /// HubSpot's answer to a body that does not parse (Jackson's wording with the position).
    pub fn invalid_json(e: &serde_json::Error) -> ApiError {
        ApiError::validation(format!(
            "Invalid input JSON on line {}, column {}: {}",
            e.line(),
            e.column(),
            e
        ))
    }

    /// A required attribute of an input object is missing (HubSpot's wording).
    pub fn missing_attributes(object: &str, names: &[&str]) -> ApiError {
        ApiError::validation(format!(
            "Invalid input JSON on line 1, column 1: Cannot build {object}, some of required attributes are not set [{}]",
            names.join(", ")
        ))
    }

    pub fn batch_too_large(received: usize) -> ApiError {
        ApiError::validation(format!(
            "Batch input limit exceeded: received {received} inputs, the maximum is {}",
            super::MAX_BATCH_INPUTS
        ))
    }

    pub fn duplicate_ids(ids: &[String]) -> ApiError {
        ApiError::validation(format!(
            "Duplicate IDs found in batch input: [{}]. IDs must be unique",
            ids.join(", ")
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
            Value::Object(self.body).to_string(),
        )
            .into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// A JSON answer with HubSpot's content type.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}
