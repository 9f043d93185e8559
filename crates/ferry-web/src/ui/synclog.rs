//! The Sync Log page (seed 001/002 "View error logs"): every per-contact problem of the
//! institution's integrations with filters, a link to each contact and to the error dictionary,
//! and Download Logs for a time range. Also the error dictionary page.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_core::run::SyncDirection;
use ferry_store::SyncLogQuery;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::runs::parse_local;
use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::api::runs::integrations_by_id;
use crate::api::synclog::{SyncLogView, csv, page};
use crate::auth::{Auth, urlencode};

const PAGE_SIZE: u32 = 50;

/// Where the Sync Log lives: under Settings, as seed 001 says (`settings/sync-log`).
pub const PAGE_PATH: &str = "/settings/sync-log";

/// The Sync Log's old address: a permanent redirect (308) to [`PAGE_PATH`] with the same filters.
pub async fn old_page(RawQuery(q): RawQuery) -> Redirect {
    Redirect::permanent(&with_query(PAGE_PATH, q))
}

/// Download Logs' old address: a permanent redirect (308) to the new one, same filters.
pub async fn old_csv(RawQuery(q): RawQuery) -> Redirect {
    Redirect::permanent(&with_query(&format!("{PAGE_PATH}.csv"), q))
}

fn with_query(path: &str, q: Option<String>) -> String {
    match q.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// The filters as the form sends them; times are `datetime-local` in the institution's zone.
#[derive(Deserialize, Default, Clone)]
pub struct LogParams {
    integration_id: Option<String>,
    direction: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
}

fn value(v: &Option<String>) -> String {
    v.as_deref().map(str::trim).unwrap_or_default().to_string()
}

/// The query the filters describe, and a message per filter that could not be read.
fn read(p: &LogParams, tz: &TimeZone, limit: u32) -> (SyncLogQuery, Vec<String>) {
    let mut errors = Vec::new();
    let mut q = SyncLogQuery {
        limit,
        ..Default::default()
    };
    let integration_id = value(&p.integration_id);
    if !integration_id.is_empty() {
        match integration_id.parse::<i64>() {
            Ok(i) if i > 0 => q.integration_id = Some(i),
            _ => errors.push("Choose an integration from the list.".to_string()),
        }
    }
    let direction = value(&p.direction);
    if !direction.is_empty() {
        match direction.parse::<SyncDirection>() {
            Ok(d) => q.direction = Some(d),
            Err(_) => errors.push("The direction is incoming or outgoing.".to_string()),
        }
    }
    for (raw, end, slot, label) in [
        (value(&p.from), false, &mut q.from, "From"),
        (value(&p.to), true, &mut q.to, "To"),
    ] {
        if !raw.is_empty() {
            match parse_local(&raw, tz, end) {
                Some(t) => *slot = Some(t),
                None => errors.push(format!("{label} is not a date and time.")),
            }
        }
    }
    if let (Some(f), Some(t)) = (q.from, q.to)
        && f > t
    {
        errors.push("To must not be before From.".to_string());
        q.to = None;
    }
    q.before = value(&p.before).parse::<i64>().ok().filter(|b| *b > 0);
    (q, errors)
}

struct Row {
    view: SyncLogView,
    time: String,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "sync_log.html")]
struct LogPage {
    nav: Nav,
    rows: Vec<Row>,
    errors: Vec<String>,
    integrations: Vec<Choice>,
    directions: Vec<Choice>,
    from: String,
    to: String,
    time_zone: String,
    filtered: bool,
    older_link: Option<String>,
    download_link: String,
}

/// The Sync Log page: filters, pages and Download Logs.
pub async fn sync_log_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<LogParams>,
) -> Response {
    let inst = &auth.principal.institution;
    let tz = TimeZone::get(&inst.time_zone).unwrap_or(TimeZone::UTC);
    let (q, errors) = read(&p, &tz, PAGE_SIZE);
    let ((rows, next), integrations) = match tokio::try_join!(
        page(&state.store, inst.id, &q),
        integrations_by_id(&state.store, inst.id)
    ) {
        Ok(r) => r,
        Err(e) => return ui_error(e.into()),
    };
    let mut integrations: Vec<_> = integrations.into_values().collect();
    integrations.sort_by(|a, b| a.name.cmp(&b.name));
    let filters = [
        ("integration_id", value(&p.integration_id)),
        ("direction", value(&p.direction)),
        ("from", value(&p.from)),
        ("to", value(&p.to)),
    ];
    let query_of = |extra: Option<(&str, String)>| {
        filters
            .iter()
            .cloned()
            .chain(extra)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", urlencode(&v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    LogPage {
        nav: Nav::new(&state, &auth, "sync_log"),
        rows: rows
            .into_iter()
            .map(|view| Row {
                time: fmt_time(view.timestamp, &inst.time_zone),
                view,
            })
            .collect(),
        errors,
        integrations: integrations
            .iter()
            .map(|i| Choice {
                value: i.id.to_string(),
                label: i.name.clone(),
                selected: q.integration_id == Some(i.id),
            })
            .collect(),
        directions: SyncDirection::ALL
            .iter()
            .map(|d| Choice {
                value: d.as_str().to_string(),
                label: match d {
                    SyncDirection::Incoming => "Incoming (into Ferry)".to_string(),
                    SyncDirection::Outgoing => "Outgoing (from Ferry)".to_string(),
                },
                selected: q.direction == Some(*d),
            })
            .collect(),
        from: value(&p.from),
        to: value(&p.to),
        time_zone: inst.time_zone.clone(),
        filtered: filters.iter().any(|(_, v)| !v.is_empty()),
        older_link: next
            .map(|n| format!("{PAGE_PATH}?{}", query_of(Some(("before", n.to_string()))))),
        download_link: format!("{PAGE_PATH}.csv?{}", query_of(None)),
    }
    .into_response()
}

/// Download Logs: the rows of the filters' time range as CSV.
pub async fn sync_log_csv(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<LogParams>,
) -> Response {
    let inst = &auth.principal.institution;
    let tz = TimeZone::get(&inst.time_zone).unwrap_or(TimeZone::UTC);
    let (mut q, errors) = read(&p, &tz, PAGE_SIZE);
    if let Some(e) = errors.first() {
        return super::error_page(StatusCode::BAD_REQUEST, e);
    }
    q.before = None;
    match csv(&state.store, inst.id, q, "sync-log.csv", &inst.time_zone).await {
        Ok(r) => r,
        Err(e) => ui_error(e),
    }
}

struct Code {
    code: &'static str,
    meaning: &'static str,
    next_step: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "errors.html")]
struct ErrorsPage {
    nav: Nav,
    codes: Vec<Code>,
}

/// The error dictionary: every code with its meaning and the next step.
pub async fn errors_page(State(state): State<AppState>, auth: Auth) -> Response {
    ErrorsPage {
        nav: Nav::new(&state, &auth, "errors"),
        codes: state
            .registry
            .dictionary()
            .into_iter()
            .map(|e| Code {
                code: e.code,
                meaning: e.meaning,
                next_step: e.next_step,
            })
            .collect(),
    }
    .into_response()
}
