//! Settings → Audit log: who changed what, when, and failed sign-ins, with filters and pages.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_store::AuditQuery;
use serde::Deserialize;

use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::auth::{Auth, urlencode};

struct Row {
    at: String,
    actor: String,
    client: String,
    kind: String,
    target: String,
    detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit_log.html")]
struct AuditPage {
    nav: Nav,
    rows: Vec<Row>,
    kinds: Vec<(&'static str, bool)>,
    actor: String,
    from: String,
    to: String,
    error: Option<String>,
    first_link: Option<String>,
    next_link: Option<String>,
}

/// The families the filter offers.
const FAMILIES: &[&str] = &[
    "integration",
    "account",
    "token",
    "session",
    "user",
    "field",
    "institution",
    "alerts",
    "signin",
];

/// The audit log page's filters (query parameters).
#[derive(Deserialize, Default)]
pub struct Params {
    kind: Option<String>,
    actor: Option<String>,
    /// A day (YYYY-MM-DD) in the institution's zone.
    from: Option<String>,
    /// A day (YYYY-MM-DD) in the institution's zone, included.
    to: Option<String>,
    cursor: Option<i64>,
}

/// The start of `day` in `tz`, or of the day after it.
fn day_start(day: &str, tz: &str, next: bool) -> Result<jiff::Timestamp, String> {
    let date: jiff::civil::Date = day
        .trim()
        .parse()
        .map_err(|_| format!("{day:?} is not a date (YYYY-MM-DD)"))?;
    let date = if next {
        date.tomorrow().map_err(|e| e.to_string())?
    } else {
        date
    };
    date.in_tz(tz)
        .map(|z| z.timestamp())
        .map_err(|e| e.to_string())
}

/// Settings → Audit log.
pub async fn page(State(state): State<AppState>, auth: Auth, Query(p): Query<Params>) -> Response {
    let inst = &auth.principal.institution;
    let tz = inst.time_zone.as_str();
    let kind = p.kind.clone().unwrap_or_default();
    let actor = p.actor.clone().unwrap_or_default();
    let from = p.from.clone().unwrap_or_default();
    let to = p.to.clone().unwrap_or_default();
    let mut error = None;
    let mut bound = |s: &str, next: bool| {
        if s.trim().is_empty() {
            return None;
        }
        day_start(s, tz, next).map_err(|e| error = Some(e)).ok()
    };
    let since = bound(&from, false);
    let until = bound(&to, true);
    let q = AuditQuery {
        since,
        until,
        actor: Some(actor.clone()).filter(|a| !a.trim().is_empty()),
        kind: Some(kind.clone()).filter(|k| FAMILIES.contains(&k.as_str())),
        before: p.cursor,
        limit: 50,
    };
    let page = if error.is_some() {
        Default::default()
    } else {
        match state.store.audit_log(inst.id, &q).await {
            Ok(p) => p,
            Err(e) => return ui_error(e.into()),
        }
    };
    let link = |cursor: Option<i64>| {
        let mut s = format!(
            "/settings/audit-log?kind={}&actor={}&from={}&to={}",
            urlencode(&kind),
            urlencode(&actor),
            urlencode(&from),
            urlencode(&to)
        );
        if let Some(c) = cursor {
            s.push_str(&format!("&cursor={c}"));
        }
        s
    };
    let rows = page
        .entries
        .into_iter()
        .map(|e| Row {
            at: fmt_time(e.at, tz),
            actor: match e.actor_kind {
                ferry_store::ActorKind::User => e.actor,
                k if e.actor.is_empty() => k.as_str().to_string(),
                k => format!("{} {}", k.as_str(), e.actor),
            },
            client: e.client,
            kind: e.kind,
            target: e.target,
            detail: serde_json::to_string_pretty(&e.detail).unwrap_or_default(),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        AuditPage {
            nav: Nav::new(&state, &auth, "audit"),
            rows,
            kinds: FAMILIES.iter().map(|f| (*f, *f == kind)).collect(),
            first_link: p.cursor.map(|_| link(None)),
            next_link: page.next_before.map(|c| link(Some(c))),
            actor,
            from,
            to,
            error,
        },
    )
        .into_response()
}
