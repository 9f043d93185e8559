//! Recent Runs: every run of the institution's integrations, with filters, paging, the reason
//! of a failed run on hover and by keyboard, and a table that refreshes itself while a run is
//! queued or running.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_core::run::RunStatus;
use ferry_store::RunQuery;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::api::runs::{file_name, integrations_by_id, page};
use crate::auth::{Auth, urlencode};

/// Rows per page.
const PAGE_SIZE: u32 = 50;
/// How often the table refreshes while a run is in progress.
const REFRESH: &str = "every 5s";

/// The filters, as the form sends them (and as the page links carry them).
#[derive(Deserialize, Default, Clone)]
pub struct RunsParams {
    integration_id: Option<String>,
    status: Option<String>,
    /// `datetime-local` (`YYYY-MM-DDTHH:MM`), in the institution's time zone.
    started_from: Option<String>,
    started_to: Option<String>,
    /// Cursor: runs older than this id.
    before: Option<String>,
}

fn value(v: &Option<String>) -> String {
    v.as_deref().map(str::trim).unwrap_or_default().to_string()
}

/// A `datetime-local` value read in `tz`. `end` makes a minute-precision value cover its whole
/// minute, so "to 14:00" includes a run that started at 14:00:30.
pub(crate) fn parse_local(s: &str, tz: &TimeZone, end: bool) -> Option<Timestamp> {
    let dt: DateTime = s.parse().ok()?;
    let ts = dt.to_zoned(tz.clone()).ok()?.timestamp();
    let minute_precision = dt.second() == 0 && dt.subsec_nanosecond() == 0;
    if end && minute_precision {
        ts.checked_add(jiff::SignedDuration::from_micros(59_999_999))
            .ok()
    } else {
        Some(ts)
    }
}

/// The filters read for the store, with a message for each one that could not be read (that
/// filter is then not applied).
struct Filters {
    query: RunQuery,
    errors: Vec<String>,
    invalid: Vec<&'static str>,
    integration_id: String,
    status: String,
    started_from: String,
    started_to: String,
    before: Option<i64>,
}

impl Filters {
    fn read(p: &RunsParams, tz: &TimeZone) -> Filters {
        let mut errors = Vec::new();
        let mut invalid = Vec::new();
        let integration_id = value(&p.integration_id);
        let status = value(&p.status);
        let started_from = value(&p.started_from);
        let started_to = value(&p.started_to);
        let mut query = RunQuery {
            limit: PAGE_SIZE,
            ..Default::default()
        };
        if !integration_id.is_empty() {
            match integration_id.parse::<i64>() {
                Ok(i) if i > 0 => query.integration_id = Some(i),
                _ => {
                    errors.push("Choose an integration from the list.".to_string());
                    invalid.push("integration_id");
                }
            }
        }
        if !status.is_empty() {
            match status.parse::<RunStatus>() {
                Ok(s) => query.status = Some(s),
                Err(_) => {
                    errors.push("Choose a status from the list.".to_string());
                    invalid.push("status");
                }
            }
        }
        for (raw, field, label, end) in [
            (&started_from, "started_from", "Started from", false),
            (&started_to, "started_to", "Started to", true),
        ] {
            if raw.is_empty() {
                continue;
            }
            match parse_local(raw, tz, end) {
                Some(t) if end => query.started_to = Some(t),
                Some(t) => query.started_from = Some(t),
                None => {
                    errors.push(format!(
                        "{label} must be a date and time such as 2026-09-01T14:00."
                    ));
                    invalid.push(field);
                }
            }
        }
        if let (Some(from), Some(to)) = (query.started_from, query.started_to)
            && from > to
        {
            errors.push("Started to must not be before Started from.".to_string());
            invalid.push("started_to");
            query.started_to = None;
        }
        let before = value(&p.before).parse::<i64>().ok().filter(|b| *b > 0);
        query.before = before;
        Filters {
            query,
            errors,
            invalid,
            integration_id,
            status,
            started_from,
            started_to,
            before,
        }
    }

    fn any(&self) -> bool {
        !(self.integration_id.is_empty()
            && self.status.is_empty()
            && self.started_from.is_empty()
            && self.started_to.is_empty())
    }

    /// `path?filters[&before=…]`.
    fn link(&self, path: &str, before: Option<i64>) -> String {
        let mut s = format!(
            "{path}?integration_id={}&status={}&started_from={}&started_to={}",
            urlencode(&self.integration_id),
            urlencode(&self.status),
            urlencode(&self.started_from),
            urlencode(&self.started_to),
        );
        if let Some(b) = before {
            s.push_str(&format!("&before={b}"));
        }
        s
    }
}

/// A time for a table cell: machine-readable and as people read it.
pub(crate) struct When {
    pub iso: String,
    pub text: String,
}

pub(crate) struct RunRow {
    pub id: i64,
    pub integration: String,
    pub type_label: String,
    pub rows: String,
    pub file: Option<String>,
    pub started: Option<When>,
    pub finished: Option<When>,
    pub status_label: &'static str,
    pub status_class: &'static str,
    /// Why the run failed (only for failed runs).
    pub reason: Option<String>,
    /// What the status word leaves out: how many failed in a Success, why a run was Skipped.
    pub note: Option<String>,
    /// The synchronization report in one line, for a finished run of a kind that has one.
    pub report: Option<String>,
}

/// The table with its pager; the part of the page that refreshes.
pub(crate) struct RunsTable {
    pub rows: Vec<RunRow>,
    /// Set while a listed run is queued or running: the fragment to poll.
    pub refresh_url: Option<String>,
    pub refresh_trigger: &'static str,
    pub first_link: Option<String>,
    pub next_link: Option<String>,
    pub filtered: bool,
}

pub(crate) struct SelectOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "runs.html")]
struct RunsPage {
    nav: Nav,
    time_zone: String,
    errors: Vec<String>,
    invalid: Vec<&'static str>,
    integrations: Vec<SelectOption>,
    statuses: Vec<SelectOption>,
    started_from: String,
    started_to: String,
    table: RunsTable,
}

impl RunsPage {
    fn is_invalid(&self, field: &str) -> bool {
        self.invalid.contains(&field)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "runs_table.html")]
struct RunsTableFragment {
    table: RunsTable,
}

/// What a run's connector says of it (the default reading when the kind is gone).
pub(crate) fn explain(
    state: &AppState,
    r: &ferry_store::Run,
    integration: Option<&ferry_store::Integration>,
) -> ferry_connectors::explain::RunExplanation {
    let config = integration
        .map(|i| i.config.clone())
        .unwrap_or(serde_json::Value::Null);
    match state.registry.get(&r.kind) {
        Some(c) => c.explain_run(&config, r.status, &r.detail),
        None => ferry_connectors::explain::default_explanation(&config, r.status, &r.detail),
    }
}

/// The words beside seed 000's status: how many failed in a Success, why a run was Skipped.
pub(crate) fn status_note(
    e: &ferry_connectors::explain::RunExplanation,
    status: RunStatus,
) -> Option<String> {
    match status {
        RunStatus::Success => e
            .failed
            .filter(|n| *n > 0)
            .map(|n| format!("{} failed", fmt_count(n))),
        RunStatus::Skipped => e.skipped_because.clone(),
        _ => None,
    }
}

pub(crate) fn status_class(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Success => "badge-ok",
        RunStatus::Running => "badge-running",
        RunStatus::Queued => "badge-muted",
        RunStatus::Skipped => "badge-skipped",
        RunStatus::Failed => "badge-danger",
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn fmt_count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Reads the filters and the page of runs; `Err` is a finished error response.
async fn load(
    state: &AppState,
    auth: &Auth,
    p: &RunsParams,
) -> Result<(Filters, RunsTable, Vec<ferry_store::Integration>), Response> {
    let inst = &auth.principal.institution;
    let tz = TimeZone::get(&inst.time_zone).unwrap_or(TimeZone::UTC);
    let filters = Filters::read(p, &tz);
    let ((runs, next), integrations) = tokio::try_join!(
        page(&state.store, inst.id, &filters.query),
        integrations_by_id(&state.store, inst.id)
    )
    .map_err(|e| ui_error(e.into()))?;
    let in_progress = runs
        .iter()
        .any(|r| matches!(r.status, RunStatus::Running | RunStatus::Queued));
    let when = |t: Option<Timestamp>| {
        t.map(|t| When {
            iso: t.to_string(),
            text: fmt_time(t, &inst.time_zone),
        })
    };
    let rows = runs
        .into_iter()
        .map(|r| RunRow {
            id: r.id,
            integration: integrations
                .get(&r.integration_id)
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            type_label: state.registry.label(&r.kind),
            rows: if r.status.is_final() {
                fmt_count(r.rows)
            } else {
                "—".to_string()
            },
            file: file_name(&r.detail),
            report: r
                .status
                .is_final()
                .then(|| super::run_details::report_of(state, &r).map(|rep| rep.summary))
                .flatten(),
            started: when(r.started_at),
            finished: when(r.finished_at),
            status_label: r.status.label(),
            status_class: status_class(r.status),
            note: status_note(
                &explain(state, &r, integrations.get(&r.integration_id)),
                r.status,
            ),
            reason: (r.status == RunStatus::Failed).then(|| {
                r.error
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .unwrap_or_else(|| "No reason was recorded.".to_string())
            }),
        })
        .collect();
    let table = RunsTable {
        rows,
        refresh_url: in_progress.then(|| filters.link("/runs/table", filters.before)),
        refresh_trigger: REFRESH,
        first_link: filters.before.map(|_| filters.link("/runs", None)),
        next_link: next.map(|n| filters.link("/runs", Some(n))),
        filtered: filters.any(),
    };
    let mut integrations: Vec<_> = integrations.into_values().collect();
    integrations.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    Ok((filters, table, integrations))
}

/// `GET /runs`: the Recent Runs page.
pub async fn runs_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<RunsParams>,
) -> Response {
    let (filters, table, integrations) = match load(&state, &auth, &p).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let status = if filters.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = RunsPage {
        nav: Nav::new(&state, &auth, "runs"),
        time_zone: auth.principal.institution.time_zone.clone(),
        integrations: integrations
            .into_iter()
            .map(|i| SelectOption {
                selected: filters.query.integration_id == Some(i.id),
                value: i.id.to_string(),
                label: format!("{} ({})", i.name, state.registry.label(&i.kind)),
            })
            .collect(),
        statuses: RunStatus::ALL
            .iter()
            .map(|s| SelectOption {
                value: s.as_str().to_string(),
                label: s.label().to_string(),
                selected: filters.query.status == Some(*s),
            })
            .collect(),
        started_from: filters.started_from.clone(),
        started_to: filters.started_to.clone(),
        errors: filters.errors,
        invalid: filters.invalid,
        table,
    };
    (status, page).into_response()
}

/// `GET /runs/table`: the table alone, for the page's self-refresh.
pub async fn runs_table(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<RunsParams>,
) -> Response {
    match load(&state, &auth, &p).await {
        Ok((_, table, _)) => RunsTableFragment { table }.into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(1234567), "1,234,567");
    }

    #[test]
    fn local_times_are_read_in_the_institution_zone() {
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            parse_local("2026-09-01T14:00", &ny, false).unwrap(),
            "2026-09-01T18:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_local("2026-01-15T14:00", &ny, false).unwrap(),
            "2026-01-15T19:00:00Z".parse::<Timestamp>().unwrap(),
            "standard time in winter"
        );
        assert_eq!(
            parse_local("2026-09-01T14:00", &ny, true).unwrap(),
            "2026-09-01T18:00:59.999999Z".parse::<Timestamp>().unwrap(),
            "an end time covers its minute"
        );
        assert!(parse_local("yesterday", &ny, false).is_none());
    }
}
