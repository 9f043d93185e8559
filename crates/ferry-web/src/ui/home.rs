//! The first page after sign-in: the institution's integrations at a glance, each with its last
//! run, its next run, its failures in the last 24 hours and links to its runs and Sync Log rows.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ferry_core::run::RunStatus;
use ferry_store::{RunQuery, SyncLogQuery};
use jiff::{SignedDuration, Timestamp};

use super::runs::{explain, fmt_count, status_class, status_note};
use super::synclog::PAGE_PATH as SYNC_LOG;
use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::auth::{Auth, urlencode};

/// Rows and runs counted at most per integration and day.
const COUNT_CAP: u32 = 10_000;

pub(crate) struct LastRun {
    pub id: i64,
    pub label: &'static str,
    pub class: &'static str,
    pub note: Option<String>,
    pub when: String,
    pub error: Option<String>,
}

pub(crate) struct Glance {
    pub id: i64,
    pub name: String,
    pub type_label: String,
    pub enabled: bool,
    pub edit_link: Option<String>,
    pub last: Option<LastRun>,
    pub next_run: String,
    pub failed_runs: String,
    pub log_rows: String,
    pub has_failures: bool,
    pub runs_link: String,
    pub log_link: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    rows: Vec<Glance>,
    since: String,
    failing: usize,
    is_admin: bool,
}

fn capped(n: usize) -> String {
    if n >= COUNT_CAP as usize {
        format!("{}+", fmt_count(COUNT_CAP as i64))
    } else {
        fmt_count(n as i64)
    }
}

/// `GET /`: the institution's integrations at a glance.
pub async fn home(State(state): State<AppState>, auth: Auth) -> Response {
    let inst = &auth.principal.institution;
    let tz = &inst.time_zone;
    let mut integrations = match state.store.list_integrations(inst.id).await {
        Ok(l) => l,
        Err(e) => return ui_error(e.into()),
    };
    integrations.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    let since = Timestamp::now() - SignedDuration::from_hours(24);
    // The Sync Log's filter reads minutes in the institution's zone.
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let since_local = since.to_zoned(zone).strftime("%Y-%m-%dT%H:%M").to_string();
    let mut rows = Vec::with_capacity(integrations.len());
    for i in integrations {
        let runs = |status: Option<RunStatus>, from: Option<Timestamp>, limit: u32| RunQuery {
            integration_id: Some(i.id),
            status,
            started_from: from,
            limit,
            ..Default::default()
        };
        let (last_q, failed_q) = (
            runs(None, None, 1),
            runs(Some(RunStatus::Failed), Some(since), COUNT_CAP),
        );
        let log_q = SyncLogQuery {
            integration_id: Some(i.id),
            from: Some(since),
            limit: COUNT_CAP,
            ..Default::default()
        };
        let (last, failed, log) = match tokio::try_join!(
            state.store.list_runs(inst.id, &last_q),
            state.store.list_runs(inst.id, &failed_q),
            state.store.list_sync_log(inst.id, &log_q),
        ) {
            Ok(x) => x,
            Err(e) => return ui_error(e.into()),
        };
        let last = last.into_iter().next();
        let next_run = super::integrations::next_run(&state, &i, last.is_some(), tz);
        let last = last.map(|r| {
            let e = explain(&state, &r, Some(&i));
            LastRun {
                id: r.id,
                label: r.status.label(),
                class: status_class(r.status),
                note: status_note(&e, r.status),
                when: r
                    .finished_at
                    .or(r.started_at)
                    .map(|t| fmt_time(t, tz))
                    .unwrap_or_else(|| "not started yet".to_string()),
                error: r.error.clone().filter(|_| r.status == RunStatus::Failed),
            }
        });
        rows.push(Glance {
            has_failures: !failed.is_empty() || !log.is_empty(),
            failed_runs: capped(failed.len()),
            log_rows: capped(log.len()),
            runs_link: format!(
                "/runs?integration_id={}&status=failed&started_from={}",
                i.id,
                urlencode(&since_local)
            ),
            log_link: format!(
                "{SYNC_LOG}?integration_id={}&from={}",
                i.id,
                urlencode(&since_local)
            ),
            edit_link: auth
                .is_admin()
                .then(|| format!("/settings/integrations/i/{}", i.id)),
            type_label: state.registry.label(&i.kind),
            id: i.id,
            name: i.name,
            enabled: i.enabled,
            last,
            next_run,
        });
    }
    HomePage {
        nav: Nav::new(&state, &auth, "home"),
        failing: rows.iter().filter(|r| r.has_failures).count(),
        rows,
        since: fmt_time(since, tz),
        is_admin: auth.is_admin(),
    }
    .into_response()
}
