//! Errors at the HTTP boundary: `{"error":{"code","message","field"?}}` with a 4xx for every
//! client mistake; internal errors are logged with a correlation id and shown only as that id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_connectors::ServiceError;
use ferry_store::{ImportError, StoreError};
use serde::Serialize;

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error dictionary code.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// The field at fault, if one is.
    pub field: Option<String>,
    /// Every problem of a rejected save when there are several (the first is this error).
    pub errors: Vec<FieldError>,
}

#[derive(Serialize, utoipa::ToSchema)]
/// Every error's body: `{"error":{"code","message","field"?}}`.
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
/// An error: its code (see `/api/v1/errors`), message and field.
pub struct ErrorDetail {
    /// A code from the error dictionary (`GET /api/v1/errors`).
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
    /// The field at fault, for validation errors (a JSON path such as `messages[2].channel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every problem of a rejected save, each on its field, when a save has more than one
    /// (an integration's create or update): the first is the error itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
/// One problem of a rejected save.
pub struct FieldError {
    /// A code from the error dictionary.
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
    /// The field at fault (a JSON path such as `config.sftp.port`).
    pub field: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            errors: Vec::new(),
        }
    }
    /// The same error on `field`.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    /// A 400: the request itself is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// A 422 on `field`: the request is well formed, a value is wrong.
    pub fn unprocessable(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
    }
    /// A 404.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such record in this institution",
        )
    }
    /// A 401: not signed in, or no valid token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in, or send Authorization: Bearer <token>",
        )
    }
    /// A 403: signed in, but the role may not do this.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs the admin role",
        )
    }
    /// Whether this is Ferry's own failure (not the request's nor a remote's): screens show
    /// such errors on an error page instead of beside the form.
    pub fn is_internal(&self) -> bool {
        self.status == StatusCode::INTERNAL_SERVER_ERROR
    }
    /// Logs the cause with a correlation id; the client sees only the id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id = correlation_id();
        tracing::error!(correlation_id = %id, error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error (correlation id {id})"),
        )
    }
}

fn correlation_id() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap_or_default();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
                errors: self.errors,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Invalid {
                field,
                code,
                message,
            } => ApiError::unprocessable(code, field, message),
            other => ApiError::internal(other),
        }
    }
}

impl From<ServiceError> for ApiError {
    /// The one place the integration lifecycle's errors become API answers. A remote that did
    /// not answer in time is a 504: the request was fine, the remote was not.
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid {
                field,
                code,
                message,
            } => ApiError::unprocessable(code, field, message),
            ServiceError::NotFound => ApiError::not_found(),
            ServiceError::RemoteTimedOut { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.code(), e.to_string())
            }
            ServiceError::Store(s) => s.into(),
            ServiceError::Internal(m) => ApiError::internal(m),
        }
    }
}

impl ApiError {
    /// A 422 that lists every problem of a save (the first is the error's own code, message
    /// and field); an empty or single list is the plain error.
    pub fn all_of(problems: Vec<ServiceError>) -> Option<Self> {
        let details: Vec<FieldError> = problems
            .iter()
            .filter_map(|p| match p {
                ServiceError::Invalid {
                    field,
                    code,
                    message,
                } => Some(FieldError {
                    code: code.to_string(),
                    message: message.clone(),
                    field: field.clone(),
                }),
                _ => None,
            })
            .collect();
        let first = problems.into_iter().next()?;
        let mut e = ApiError::from(first);
        if details.len() > 1 {
            e.errors = details;
        }
        Some(e)
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::File { code, message } => ApiError::bad_request(code, message),
            ImportError::Store(s) => s.into(),
        }
    }
}

/// A handler's result: an answer or an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// Puts the API's error answers that axum makes itself (an empty 405 for a method a path does
/// not take, a plain-text 400 for a path parameter that does not parse) into the documented
/// JSON shape. Answers that are JSON already pass untouched.
pub async fn api_error_shape(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::header;
    let api = crate::auth::is_api(req.uri().path());
    let method = req.method().clone();
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (parts, body) = res.into_parts();
    // axum's own rejections are one short line.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let mut err = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            ApiError::new(
                status,
                "method_not_allowed",
                format!("this endpoint does not take {method}; it takes {allowed}"),
            )
        }
        StatusCode::NOT_FOUND => ApiError::not_found(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "payload_too_large",
            "the request body is larger than this endpoint accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(status, "unsupported_media_type", text),
        s if s.is_client_error() => ApiError::new(
            s,
            "bad_request",
            if text.is_empty() {
                s.canonical_reason().unwrap_or("bad request").to_string()
            } else {
                text
            },
        ),
        _ => ApiError::internal(format!("{status} without a JSON body: {text}")),
    };
    err.status = status;
    let mut out = err.into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
