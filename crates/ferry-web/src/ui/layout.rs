//! The layout every page shares: the navigation, times and phones as people read them, error
//! pages, and the static assets.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::{self, Auth};
use crate::error::ApiError;

/// What the layout needs on every page.
pub struct Nav {
    /// The institution's name.
    pub institution: String,
    /// The signed-in user's email.
    pub user: String,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
    /// Whether the Settings entries are shown.
    pub is_admin: bool,
    /// The navigation entry the page highlights.
    pub active: &'static str,
    /// The sidebar's integrations: every registered platform by category, (id, name, the
    /// address its entry opens: the platform's own page if it has one, else its platform page).
    pub platforms: Vec<(&'static str, Vec<NavPlatform>)>,
}

/// A platform's sidebar entry: (id, name, address).
pub type NavPlatform = (&'static str, &'static str, String);

impl Nav {
    pub(crate) fn new(state: &AppState, auth: &Auth, active: &'static str) -> Nav {
        let mut platforms: Vec<(&'static str, Vec<NavPlatform>)> = Vec::new();
        for (category, p, _) in state.registry.platforms() {
            let entry = (
                p.id,
                p.name,
                p.page
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("/settings/integrations/{}", p.id)),
            );
            match platforms.last_mut() {
                Some((label, list)) if *label == category.label() => list.push(entry),
                _ => platforms.push((category.label(), vec![entry])),
            }
        }
        Nav {
            platforms,
            institution: auth.principal.institution.name.clone(),
            user: auth
                .principal
                .user
                .as_ref()
                .map(|u| u.email.clone())
                .unwrap_or_default(),
            csrf: auth.csrf.clone().unwrap_or_default(),
            is_admin: auth.is_admin(),
            active,
        }
    }
}

/// A phone as people read it: `(617) 555-0101` for US numbers, E.164 otherwise.
pub fn fmt_phone(e164: &str) -> String {
    match e164.strip_prefix("+1") {
        Some(d) if d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()) => {
            format!("({}) {}-{}", &d[..3], &d[3..6], &d[6..])
        }
        _ => e164.to_string(),
    }
}

/// A time in the institution's zone, as people read it.
pub fn fmt_time(t: jiff::Timestamp, tz: &str) -> String {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    t.to_zoned(zone)
        .strftime("%b %-d, %Y %-I:%M %p %Z")
        .to_string()
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

/// A full error page for UI routes.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed".to_string(),
        StatusCode::NOT_FOUND => "Not found".to_string(),
        s => s.canonical_reason().unwrap_or("Error").to_string(),
    };
    (
        status,
        ErrorPage {
            title,
            message: message.to_string(),
        },
    )
        .into_response()
}

pub(crate) fn ui_error(e: ApiError) -> Response {
    error_page(e.status, &e.message)
}

/// The answer to an unknown address: a JSON 404 under `/api/`, a page elsewhere.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if auth::is_api(uri.path()) {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; see /api/openapi.json",
        )
        .into_response()
    } else {
        error_page(StatusCode::NOT_FOUND, "There is no page at this address.")
    }
}

// ---- Static assets ----------------------------------------------------------------------

const CSS: &str = include_str!("../../assets/ferry.css");
const HTMX: &str = include_str!("../../assets/htmx.min.js");
const OAUTH_JS: &str = include_str!("../../assets/oauth.js");
const FORM_JS: &str = include_str!("../../assets/form.js");
const SCALAR_JS: &str = include_str!("../../assets/scalar-api-reference.js");
const API_REFERENCE_JS: &str = include_str!("../../assets/api-reference.js");
const UI_JS: &str = include_str!("../../assets/ui.js");
const IMPORT_JS: &str = include_str!("../../assets/import.js");

/// The static assets (stylesheet, htmx, the pages' scripts).
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, ct) = match file.as_str() {
        "ferry.css" => (CSS, "text/css; charset=utf-8"),
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "oauth.js" => (OAUTH_JS, "text/javascript; charset=utf-8"),
        "form.js" => (FORM_JS, "text/javascript; charset=utf-8"),
        "scalar-api-reference.js" => (SCALAR_JS, "text/javascript; charset=utf-8"),
        "api-reference.js" => (API_REFERENCE_JS, "text/javascript; charset=utf-8"),
        "ui.js" => (UI_JS, "text/javascript; charset=utf-8"),
        "import.js" => (IMPORT_JS, "text/javascript; charset=utf-8"),
        _ => return error_page(StatusCode::NOT_FOUND, "No such file."),
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
