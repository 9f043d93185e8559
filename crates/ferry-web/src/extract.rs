//! Request extractors that turn every client mistake into a specific [`ApiError`].

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body: `application/json`, within the size limit, every field known and typed; errors
/// name the field by its JSON path.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            ));
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Reads the body under the route's size limit; too large is 413.
pub async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(
                    "bad_request",
                    format!("the request body cannot be read: {rej}"),
                )
            }
        })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than this endpoint accepts",
    )
}

/// Parses JSON with the failing field's path in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let msg = inner.to_string();
        let (code, field) = if msg.starts_with("unknown field") {
            // The path already ends in the unknown key.
            let name = msg.split('`').nth(1).unwrap_or("");
            (
                "unknown_field",
                Some(if path == "." { name.to_string() } else { path }),
            )
        } else if inner.is_syntax() || inner.is_eof() {
            ("bad_request", None)
        } else if msg.starts_with("missing field") {
            let name = msg.split('`').nth(1).unwrap_or("");
            let full = if path == "." {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            ("missing_required_field", Some(full))
        } else {
            ("invalid_value", Some(path).filter(|p| p != "."))
        };
        let status = if code == "bad_request" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut err = ApiError::new(
            status,
            code,
            if code == "bad_request" {
                format!("malformed JSON: {msg}")
            } else {
                msg
            },
        );
        err.field = field;
        err
    })
}

/// A query string, every parameter known and typed; errors name the parameter in `field`.
pub struct QueryArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryArgs)
            .map_err(|e| {
                let path = e.path().to_string();
                let msg = e.inner().to_string();
                // serde names an unknown or missing parameter in backquotes; any other error
                // (`true` or `false` expected, say) is about the parameter at `path`.
                let (code, field) =
                    if msg.starts_with("unknown field") || msg.starts_with("missing field") {
                        let name = msg.split('`').nth(1).map(str::to_string);
                        (
                            if msg.starts_with("unknown") {
                                "unknown_field"
                            } else {
                                "missing_required_field"
                            },
                            name,
                        )
                    } else {
                        ("invalid_value", Some(path).filter(|p| p != "."))
                    };
                let mut err = ApiError::bad_request(code, format!("bad query parameter: {msg}"));
                err.field = field;
                err
            })
    }
}
