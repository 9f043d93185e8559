//! VAN's error envelope `{"errors":[{code,text,properties?,hint?,referenceCode?}]}` and the
//! other shapes VAN answers with (match stubs, IIS HTML pages).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::rng::uuid_v4;

/// An error answer in VAN's envelope.
#[derive(Debug, Clone)]
pub(crate) struct VanError {
    pub status: StatusCode,
    detail: Box<Detail>,
}

#[derive(Debug, Clone)]
struct Detail {
    code: String,
    text: String,
    properties: Vec<String>,
    hint: Option<String>,
    reference_code: Option<String>,
}

impl VanError {
    pub fn new(status: StatusCode, code: &str, text: impl Into<String>) -> VanError {
        VanError {
            status,
            detail: Box::new(Detail {
                code: code.into(),
                text: text.into(),
                properties: Vec::new(),
                hint: None,
                reference_code: None,
            }),
        }
    }

    /// `INVALID_PARAMETER` naming the property (`phones[1].phoneNumber`).
    pub fn invalid(text: impl Into<String>, property: impl Into<String>) -> VanError {
        let mut e = VanError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", text);
        e.detail.properties.push(property.into());
        e
    }

    pub fn bad_request(text: impl Into<String>) -> VanError {
        VanError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", text)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> VanError {
        self.detail.hint = Some(hint.into());
        self
    }

    pub fn not_found() -> VanError {
        VanError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The specified resource cannot be found.",
        )
    }

    /// The 401 for a bad key, a key without the mode, or no credentials: they look the same.
    pub fn unauthorized() -> VanError {
        VanError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Invalid Database Mode",
        )
    }

    /// A 500 with a `referenceCode`.
    pub fn internal() -> VanError {
        let mut e = VanError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "An unknown error occurred",
        );
        e.detail.reference_code = Some(uuid_v4()[..8].to_uppercase());
        e
    }

    /// The body, for admin answers and tests.
    pub fn body(&self) -> Value {
        let d = &self.detail;
        let mut err = Map::new();
        err.insert("code".into(), json!(d.code));
        err.insert("text".into(), json!(d.text));
        if !d.properties.is_empty() {
            err.insert("properties".into(), json!(d.properties));
        }
        if let Some(h) = &d.hint {
            err.insert("hint".into(), json!(h));
        }
        if let Some(r) = &d.reference_code {
            err.insert("referenceCode".into(), json!(r));
        }
        json!({ "errors": [Value::Object(err)] })
    }
}

impl IntoResponse for VanError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body())
    }
}

pub(crate) type VanResult<T> = Result<T, VanError>;

/// A JSON answer with VAN's content type.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The 429: `code` is the numeric string, the wait is in the text, and there is no
/// `Retry-After`.
pub(crate) fn rate_limited(wait_ms: u64) -> Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"errors":[{"code":"429","text":format!("Rate limit exceeded. Try again in {wait_ms} ms.")}]}),
    )
}

/// `302 Found` with an absolute `Location` and the match stub.
pub(crate) fn found(location: String, van_id: u64) -> Response {
    let mut resp = json_response(
        StatusCode::FOUND,
        &json!({"vanId": van_id, "status": "Matched"}),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `404` with the Unmatched stub (not the error envelope).
pub(crate) fn unmatched() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"vanId": null, "status": "Unmatched"}),
    )
}

/// IIS's HTML 404 (non-integer ids, over-long query strings).
pub(crate) fn iis_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html")],
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\">\r\n<html><head><title>404 - File or directory not found.</title></head><body><h2>404 - File or directory not found.</h2><h3>The resource you are looking for might have been removed, had its name changed, or is temporarily unavailable.</h3></body></html>\r\n",
    )
        .into_response()
}

/// A gateway's HTML 502/503/504.
pub(crate) fn gateway_page(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let reason = code.canonical_reason().unwrap_or("Error");
    (
        code,
        [(header::CONTENT_TYPE, "text/html")],
        format!("<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>\r\n"),
    )
        .into_response()
}
