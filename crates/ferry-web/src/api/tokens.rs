//! `/api/v1/tokens` and `/api/v1/sessions`: API tokens (create, list, revoke) and UI sessions
//! (list, end one, sign out everywhere).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use ferry_core::tenancy::Role;
use ferry_store::{ApiToken, SessionInfo};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;

/// An API token, without its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// The token's ID.
    pub id: i64,
    /// A name for people, to tell tokens apart.
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last authenticated a request, to within five minutes; absent if never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    /// When it stops being accepted; absent for never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// When it was revoked; absent while it is not.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            status: token_status(&t),
            id: t.id,
            name: t.name,
            role: t.role.to_string(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// `active`, `expired` or `revoked`.
pub(crate) fn token_status(t: &ApiToken) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if !t.is_active(Timestamp::now()) {
        "expired"
    } else {
        "active"
    }
}

/// A new token: its record and its secret, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewTokenView {
    /// The new token (without its secret).
    #[serde(flatten)]
    pub token: TokenView,
    /// Send as `Authorization: Bearer <secret>`. Ferry keeps only a hash: it cannot be shown
    /// again.
    pub secret: String,
}

/// What creating a token takes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name for people, 1-100 characters.
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// RFC 3339 time at which the token stops being accepted; absent or null for never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
}

/// Parses an RFC 3339 time for `field`.
pub(crate) fn parse_time(field: &str, s: &str) -> ApiResult<Timestamp> {
    s.trim().parse::<Timestamp>().map_err(|_| {
        ApiError::unprocessable(
            "invalid_value",
            field,
            format!("{field} must be an RFC 3339 time such as 2027-01-31T00:00:00Z"),
        )
    })
}

pub(crate) fn parse_role(s: &str) -> ApiResult<Role> {
    s.parse::<Role>().map_err(|_| {
        ApiError::unprocessable("invalid_value", "role", "role must be admin or viewer")
    })
}

/// The institution's API tokens, revoked and expired ones included, newest first.
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "list_tokens", responses(
    (status = 200, description = "The tokens (never their secrets).", body = Vec<TokenView>),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(
        state
            .store
            .api_tokens(auth.institution_id())
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Create an API token. The answer holds its secret, which is shown only this once.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "create_token", request_body = CreateToken, responses(
    (status = 201, description = "The new token with its secret.", body = NewTokenView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A value is not valid (`invalid_value`); `field` names it.", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(input): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewTokenView>)> {
    let role = parse_role(&input.role)?;
    let expires_at = match input.expires_at.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Some(parse_time("expires_at", s)?),
        _ => None,
    };
    let (token, secret) = state
        .store
        .create_api_token_with(auth.institution_id(), role, &input.name, expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenView {
            token: token.into(),
            secret,
        }),
    ))
}

/// Revoke an API token: it stops authenticating at once (revoking it again changes nothing).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revoke_token", params(("id" = i64, Path, description = "token id")), responses(
    (status = 200, description = "The revoked token.", body = TokenView),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    let id = crate::api::contacts::parse_id(&id)?;
    let token = state
        .store
        .revoke_api_token(auth.institution_id(), id)
        .await?;
    Ok(Json(token.into()))
}

/// A signed-in user's session (never its cookie).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// A handle to end the session with; not the cookie.
    pub id: String,
    /// Whose session.
    pub email: String,
    /// When the session began.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last made a request, to within five minutes.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen_at: Option<Timestamp>,
    /// When the session ends unless used.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// The address it signed in from.
    pub client: String,
    /// The browser it signed in with.
    pub user_agent: String,
    /// Whether this is the caller's own session.
    pub current: bool,
}

impl SessionView {
    pub(crate) fn new(s: SessionInfo, auth: &Auth) -> SessionView {
        SessionView {
            current: auth.principal.session_id.as_deref() == Some(s.id.as_str()),
            id: s.id,
            email: s.email,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            client: s.client,
            user_agent: s.user_agent,
        }
    }
}

/// The sessions open in this institution, most recently started first.
#[utoipa::path(get, path = "/api/v1/sessions", operation_id = "list_sessions", responses(
    (status = 200, description = "The open sessions.", body = Vec<SessionView>),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn sessions(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<SessionView>>> {
    Ok(Json(
        state
            .store
            .institution_sessions(auth.institution_id())
            .await?
            .into_iter()
            .map(|s| SessionView::new(s, &auth))
            .collect(),
    ))
}

/// End one session of this institution: its next request must sign in again.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", operation_id = "end_session", params(("id" = String, Path, description = "session id from the list")), responses(
    (status = 204, description = "The session ended."),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn end_session(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.end_session(auth.institution_id(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedOut {
    /// How many sessions were ended.
    pub sessions_ended: u64,
}

/// Sign the calling user out everywhere: every session of theirs, in every institution,
/// this one included. Only for a signed-in user (an API token has no sessions; revoke it).
#[utoipa::path(post, path = "/api/v1/sessions/sign-out-everywhere", operation_id = "sign_out_everywhere", responses(
    (status = 200, description = "Signed out; the session cookie is cleared.", body = SignedOut),
    (status = 400, description = "The caller is an API token (`bad_request`).", body = ErrorBody),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn sign_out_everywhere(State(state): State<AppState>, auth: Auth) -> ApiResult<Response> {
    let Some(user) = &auth.principal.user else {
        return Err(ApiError::bad_request(
            "bad_request",
            "an API token has no sessions: sign in to sign out everywhere, or revoke the token",
        ));
    };
    let n = state.store.end_user_sessions(user.id).await?;
    Ok((
        [(
            SET_COOKIE,
            crate::auth::clear_cookie(state.config.secure_cookies()),
        )],
        Json(SignedOut { sessions_ended: n }),
    )
        .into_response())
}
