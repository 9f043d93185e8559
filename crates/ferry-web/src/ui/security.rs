//! Settings → Security: API tokens (create, revoke, last used) and sessions (end one, sign
//! out everywhere).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::api::tokens::token_status;
use crate::auth::{self, Auth};
use crate::error::ApiError;

struct TokenRow {
    id: i64,
    name: String,
    role: String,
    status: &'static str,
    created: String,
    last_used: String,
    expires: String,
}

struct SessionRow {
    id: String,
    email: String,
    created: String,
    last_seen: String,
    client: String,
    user_agent: String,
    current: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "security.html")]
struct SecurityPage {
    nav: Nav,
    tokens: Vec<TokenRow>,
    sessions: Vec<SessionRow>,
    error: Option<String>,
    notice: Option<String>,
    new_secret: Option<String>,
    form_name: String,
    form_days: String,
}

#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    error: Option<String>,
    notice: Option<String>,
    new_secret: Option<String>,
    form_name: String,
    form_days: String,
}

async fn render(state: &AppState, auth: &Auth, o: Outcome) -> Response {
    let inst = &auth.principal.institution;
    let tz = inst.time_zone.as_str();
    let (tokens, sessions) = match tokio::try_join!(
        state.store.api_tokens(inst.id),
        state.store.institution_sessions(inst.id)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    let when = |t: Option<jiff::Timestamp>, none: &str| {
        t.map_or_else(|| none.to_string(), |t| fmt_time(t, tz))
    };
    let page = SecurityPage {
        nav: Nav::new(state, auth, "security"),
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                status: token_status(&t),
                id: t.id,
                role: t.role.to_string(),
                created: fmt_time(t.created_at, tz),
                last_used: when(t.last_used_at, "Never"),
                expires: when(t.expires_at, "Never"),
                name: t.name,
            })
            .collect(),
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                current: auth.principal.session_id.as_deref() == Some(s.id.as_str()),
                created: fmt_time(s.created_at, tz),
                last_seen: when(s.last_seen_at, "—"),
                id: s.id,
                email: s.email,
                client: s.client,
                user_agent: s.user_agent,
            })
            .collect(),
        error: o.error,
        notice: o.notice,
        new_secret: o.new_secret,
        form_name: o.form_name,
        form_days: o.form_days,
    };
    (o.status.unwrap_or(StatusCode::OK), page).into_response()
}

/// Settings → Security: API tokens and open sessions.
pub async fn page(State(state): State<AppState>, auth: Auth) -> Response {
    render(&state, &auth, Outcome::default()).await
}

/// The new-token form.
#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    role: String,
    #[serde(default)]
    expires_in_days: String,
}

/// Creates a token and shows its secret once.
pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    Form(f): Form<TokenForm>,
) -> Response {
    let refuse = |e: ApiError| Outcome {
        status: Some(e.status),
        error: Some(e.message),
        form_name: f.name.clone(),
        form_days: f.expires_in_days.clone(),
        ..Default::default()
    };
    let role = match crate::api::tokens::parse_role(&f.role) {
        Ok(r) => r,
        Err(e) => return render(&state, &auth, refuse(e)).await,
    };
    let days = f.expires_in_days.trim();
    let expires_at = if days.is_empty() {
        None
    } else {
        match days.parse::<i64>().ok().filter(|d| (1..=3650).contains(d)) {
            Some(d) => Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * d)),
            None => {
                let e = ApiError::unprocessable(
                    "invalid_value",
                    "expires_in_days",
                    "the expiry must be a whole number of days, 1-3650, or empty for never",
                );
                return render(&state, &auth, refuse(e)).await;
            }
        }
    };
    match state
        .store
        .create_api_token_with(auth.institution_id(), role, &f.name, expires_at)
        .await
    {
        Ok((token, secret)) => {
            let o = Outcome {
                notice: Some(format!("Created the token {}.", token.name)),
                new_secret: Some(secret),
                ..Default::default()
            };
            render(&state, &auth, o).await
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.is_internal() {
                return ui_error(e);
            }
            render(&state, &auth, refuse(e)).await
        }
    }
}

/// Revokes a token.
pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = crate::api::contacts::parse_id(&id) else {
        return super::error_page(StatusCode::NOT_FOUND, "No such token.");
    };
    match state
        .store
        .revoke_api_token(auth.institution_id(), id)
        .await
    {
        Ok(t) => {
            let o = Outcome {
                notice: Some(format!("Revoked the token {}.", t.name)),
                ..Default::default()
            };
            render(&state, &auth, o).await
        }
        Err(e) => ui_error(e.into()),
    }
}

/// Ends one session.
pub async fn end_session(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    match state.store.end_session(auth.institution_id(), &id).await {
        Ok(()) => {
            let o = Outcome {
                notice: Some("The session ended.".into()),
                ..Default::default()
            };
            render(&state, &auth, o).await
        }
        Err(e) => ui_error(e.into()),
    }
}

/// Ends every session of the signed-in user, in every institution.
pub async fn sign_out_everywhere(State(state): State<AppState>, auth: Auth) -> Response {
    let Some(user) = &auth.principal.user else {
        return super::error_page(
            StatusCode::BAD_REQUEST,
            "Only a signed-in user has sessions.",
        );
    };
    if let Err(e) = state.store.end_user_sessions(user.id).await {
        return ui_error(e.into());
    }
    (
        [(
            header::SET_COOKIE,
            auth::clear_cookie(state.config.secure_cookies()),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}
