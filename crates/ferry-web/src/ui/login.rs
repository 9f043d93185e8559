//! Signing in and out.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{error_page, ui_error};
use crate::AppState;
use crate::auth::{self};

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    email: String,
    next: String,
}

#[derive(Deserialize, Default)]
pub struct NextParam {
    next: Option<String>,
}

/// Only same-site paths are followed after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// The sign-in page.
pub async fn login_page(Query(p): Query<NextParam>) -> Response {
    LoginPage {
        error: None,
        email: String::new(),
        next: safe_next(p.next.as_deref()),
    }
    .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// Signs in. Cross-site posts are refused (login CSRF), and repeated failures are slowed.
pub async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        if origin_host != host {
            return error_page(
                StatusCode::FORBIDDEN,
                "Sign-in must come from Ferry's own sign-in page.",
            );
        }
    }
    let proxies = &state.config.trusted_proxies;
    proxies.warn_if_untrusted_proxy(addr.ip(), &headers);
    let client = proxies.client(addr.ip(), &headers);
    let attempt = crate::signin::Attempt::new(&f.email, client);
    let page = |error: &str, status: StatusCode| {
        (
            status,
            LoginPage {
                error: Some(error.to_string()),
                email: f.email.clone(),
                next: next.clone(),
            },
        )
            .into_response()
    };
    match attempt.start(&state.store, &state.config.signin).await {
        Ok(None) => {}
        Ok(Some(until)) => {
            let secs = (until.as_second() - jiff::Timestamp::now().as_second()).max(1);
            let mut res = page(
                &format!(
                    "Too many failed sign-ins from your address. Try again in {secs} seconds."
                ),
                StatusCode::TOO_MANY_REQUESTS,
            );
            res.headers_mut().insert(header::RETRY_AFTER, secs.into());
            return res;
        }
        Err(e) => return ui_error(e.into()),
    }
    let user = match state.store.verify_login(&f.email, &f.password).await {
        Ok(u) => u,
        Err(e) => return ui_error(e.into()),
    };
    let Some(user) = user else {
        if let Err(e) = attempt.failed(&state.store).await {
            return ui_error(e.into());
        }
        tracing::info!(%client, "failed sign-in");
        return page(
            "That email and password do not match.",
            StatusCode::UNAUTHORIZED,
        );
    };
    if let Err(e) = attempt.succeeded(&state.store, &state.config.signin).await {
        return ui_error(e.into());
    }
    let memberships = match state.store.memberships(user.id).await {
        Ok(m) => m,
        Err(e) => return ui_error(e.into()),
    };
    let Some(first) = memberships.first() else {
        return page(
            "This account does not belong to any institution yet. Ask an admin to add you.",
            StatusCode::FORBIDDEN,
        );
    };
    match state
        .store
        .create_session_from(
            user.id,
            first.institution.id,
            &client.to_string(),
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
        .await
    {
        Ok(cookie) => (
            [(
                header::SET_COOKIE,
                auth::session_cookie(&cookie, state.config.secure_cookies()),
            )],
            Redirect::to(&next),
        )
            .into_response(),
        Err(e) => ui_error(e.into()),
    }
}

/// Signs out (ends the session).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(c) = auth::session_cookie_of(&headers)
        && let Err(e) = state.store.delete_session(&c).await
    {
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
