//! Who is calling: bearer tokens for the API, cookie sessions (with CSRF protection) for the
//! UI, and the role each route needs.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_core::tenancy::Role;
use ferry_store::Principal;

use crate::AppState;
use crate::error::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ferry_session";
/// The header htmx and scripts send the CSRF token in; plain forms send `_csrf`.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, metrics, login, static assets.
    Public,
    /// Any signed-in member of the institution (read-only).
    Viewer,
    /// Admins: every change, settings and integrations.
    Admin,
}

/// The authenticated caller, put into request extensions by [`require`].
#[derive(Debug, Clone)]
pub struct Auth {
    /// Who is calling, in which institution, with which role.
    pub principal: Principal,
    /// The session's CSRF token (UI sessions only).
    pub csrf: Option<String>,
}

impl Auth {
    /// The institution the caller acts in.
    pub fn institution_id(&self) -> i64 {
        self.principal.institution.id
    }
    /// Whether the caller may change things (role `admin`).
    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Auth>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

pub(crate) fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// For an htmx request (`HX-Request`), the page it was made from: where to come back to after
/// signing in. A redirect would make htmx swap the sign-in page into a fragment; htmx follows
/// `HX-Redirect` with a full navigation instead.
fn htmx_page(headers: &HeaderMap) -> Option<String> {
    headers.get("hx-request")?;
    let current = headers
        .get("hx-current-url")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("/");
    let path = match current.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => current,
    };
    Some(path.to_string())
}

fn denied(path: &str, htmx: Option<&str>, status: StatusCode, api: ApiError) -> Response {
    if is_api(path) {
        return api.into_response();
    }
    if status == StatusCode::UNAUTHORIZED {
        if let Some(page) = htmx {
            let to = format!("/login?next={}", urlencode(page));
            return (StatusCode::UNAUTHORIZED, [("hx-redirect", to)]).into_response();
        }
        let next = urlencode(path);
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    crate::ui::error_page(status, &api.message).into_response()
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Authenticates the caller and checks the route's access level; for cookie sessions, checks
/// the CSRF token on every unsafe method.
pub async fn require(
    State((state, access)): State<(AppState, Access)>,
    req: Request,
    next: Next,
) -> Response {
    // With the query, so that a link such as an export's `/contacts/7?message=42` opens where
    // it points after signing in.
    let path = req.uri().path_and_query().map_or_else(
        || req.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let htmx = htmx_page(req.headers());
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (auth, from_cookie) = if let Some(h) = bearer {
        let Some(token) = h.strip_prefix("Bearer ").map(str::trim) else {
            return denied(
                &path,
                htmx.as_deref(),
                StatusCode::UNAUTHORIZED,
                ApiError::unauthorized(),
            );
        };
        match state.store.authenticate_token(token).await {
            Ok(Some(p)) => (
                Auth {
                    principal: p,
                    csrf: None,
                },
                false,
            ),
            Ok(None) => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the API token is not valid",
                )
                .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else if let Some(cookie) = cookie_value(req.headers(), SESSION_COOKIE).map(str::to_string) {
        match state.store.session(&cookie).await {
            Ok(Some(s)) => (
                Auth {
                    principal: s.principal,
                    csrf: Some(s.csrf_token),
                },
                true,
            ),
            Ok(None) => {
                return denied(
                    &path,
                    htmx.as_deref(),
                    StatusCode::UNAUTHORIZED,
                    ApiError::unauthorized(),
                );
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else {
        return denied(
            &path,
            htmx.as_deref(),
            StatusCode::UNAUTHORIZED,
            ApiError::unauthorized(),
        );
    };
    if access == Access::Admin && !auth.principal.role.allows(Role::Admin) {
        return denied(
            &path,
            htmx.as_deref(),
            StatusCode::FORBIDDEN,
            ApiError::forbidden(),
        );
    }
    let mut req = req;
    if from_cookie && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        match check_csrf(
            req,
            auth.csrf.as_deref().unwrap_or_default(),
            state.config.max_import_bytes,
        )
        .await
        {
            Ok(r) => req = r,
            Err(()) => {
                return denied(
                    &path,
                    htmx.as_deref(),
                    StatusCode::FORBIDDEN,
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "the form was not sent from a Ferry page of this session; reload and try again",
                    ),
                );
            }
        }
    }
    let actor = actor_of(&state, &auth, &req);
    req.extensions_mut().insert(auth);
    // Every change the request makes through the store is audited as this actor.
    ferry_store::audit::acting_as(actor, next.run(req)).await
}

/// The client address of a request: the peer, or behind a trusted proxy the forwarded one.
pub(crate) fn client_of(state: &AppState, req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| {
            state
                .config
                .trusted_proxies
                .client(c.0.ip(), req.headers())
                .to_string()
        })
        .unwrap_or_default()
}

fn actor_of(state: &AppState, auth: &Auth, req: &Request) -> ferry_store::Actor {
    let client = client_of(state, req);
    let p = &auth.principal;
    match (&p.user, p.token_id) {
        (Some(u), _) => ferry_store::Actor::user(&u.email, &client),
        (None, Some(id)) => {
            ferry_store::Actor::token(id, p.token_name.as_deref().unwrap_or(""), &client)
        }
        (None, None) => ferry_store::Actor::anonymous(&client),
    }
}

/// Accepts the token from the header, from the `_csrf` field of a urlencoded form (the body
/// is read and handed on unchanged), or from the `_csrf` part of a `multipart/form-data` form,
/// which must be its first part (see [`multipart_csrf`]).
async fn check_csrf(req: Request, expected: &str, limit: usize) -> Result<Request, ()> {
    let same = |given: &str| {
        !expected.is_empty() && constant_time_eq(given.as_bytes(), expected.as_bytes())
    };
    if let Some(v) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if same(v) { Ok(req) } else { Err(()) };
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let (token, req) = multipart_csrf(req).await?;
        return if same(&token) { Ok(req) } else { Err(()) };
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| ())?;
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .map_err(|_| ())?
        .into_iter()
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v);
    match token {
        Some(t) if same(&t) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(()),
    }
}

/// The most of a multipart body read to find its `_csrf` part, and the longest token taken.
const CSRF_PART_PREFIX: usize = 16 * 1024;
const CSRF_PART_MAX: usize = 1024;

/// The `_csrf` part of a `multipart/form-data` body, and the request with its body whole again.
///
/// The token must be the first part, so that it is known before any file part arrives: only
/// the chunks the parser asked for until the end of that part are read (kept, and handed on
/// ahead of the rest of the body), and a file is never buffered. A first part of another name,
/// a token longer than [`CSRF_PART_MAX`], or a first part that does not end within
/// [`CSRF_PART_PREFIX`] bytes is refused.
async fn multipart_csrf(req: Request) -> Result<(String, Request), ()> {
    use axum::extract::FromRequest;
    use futures::StreamExt;

    let (parts, body) = req.into_parts();
    let rest = std::sync::Arc::new(std::sync::Mutex::new(body.into_data_stream()));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recording = RecordedStream {
        rest: rest.clone(),
        seen: seen.clone(),
    };
    let mut head = Request::new(Body::from_stream(recording));
    *head.headers_mut() = parts.headers.clone();
    // The parser, and with it the recording, is dropped at the end of this block.
    let token = {
        let mut form = axum::extract::Multipart::from_request(head, &())
            .await
            .map_err(|_| ())?;
        let mut field = form.next_field().await.map_err(|_| ())?.ok_or(())?;
        if field.name() != Some("_csrf") {
            return Err(());
        }
        let mut token = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|_| ())? {
            token.extend_from_slice(&chunk);
            if token.len() > CSRF_PART_MAX {
                return Err(());
            }
        }
        String::from_utf8(token).map_err(|_| ())?
    };
    let seen = std::mem::take(&mut *seen.lock().map_err(|_| ())?);
    let rest = std::sync::Arc::try_unwrap(rest)
        .map_err(|_| ())?
        .into_inner()
        .map_err(|_| ())?;
    let whole = futures::stream::iter(seen.into_iter().map(Ok::<_, axum::Error>)).chain(rest);
    Ok((token, Request::from_parts(parts, Body::from_stream(whole))))
}

/// A request body read through a shared handle, keeping a copy of each chunk it yields; once
/// it has yielded [`CSRF_PART_PREFIX`] bytes, it fails instead of reading more.
struct RecordedStream {
    rest: std::sync::Arc<std::sync::Mutex<axum::body::BodyDataStream>>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<axum::body::Bytes>>>,
}

impl futures::Stream for RecordedStream {
    type Item = Result<axum::body::Bytes, axum::Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Ok(mut seen) = self.seen.lock() else {
            return std::task::Poll::Ready(None);
        };
        if seen.iter().map(|b| b.len()).sum::<usize>() >= CSRF_PART_PREFIX {
            return std::task::Poll::Ready(Some(Err(axum::Error::new(
                "the _csrf part does not end early enough in the form",
            ))));
        }
        let Ok(mut rest) = self.rest.lock() else {
            return std::task::Poll::Ready(None);
        };
        let next = futures::Stream::poll_next(std::pin::Pin::new(&mut *rest), cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &next {
            seen.push(chunk.clone());
        }
        next
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value for a new session.
pub(crate) fn session_cookie(value: &str, secure: bool) -> String {
    let max_age = ferry_store_session_seconds();
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

fn ferry_store_session_seconds() -> i64 {
    12 * 3600
}

pub(crate) fn session_cookie_of(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE).map(str::to_string)
}
