//! A run's details page (from Recent Runs): its trigger, attempts, times, counts, file, error,
//! seed 000's status word with what it leaves out, and the Sync Log rows the run wrote. While
//! the run is queued or running the page refreshes itself.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use ferry_core::run::{RunStatus, Trigger};
use ferry_store::SyncLogQuery;

use super::runs::{When, explain, fmt_count, status_class, status_note};
use super::synclog::PAGE_PATH as SYNC_LOG;
use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::api::synclog::views;
use crate::auth::Auth;

/// The run's Sync Log rows shown at most.
const LOG_ROWS: u32 = 200;

pub(crate) struct LogRow {
    pub id: i64,
    pub time: String,
    pub direction: String,
    pub contact_id: Option<i64>,
    pub contact_name: Option<String>,
    pub code: String,
    pub message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "run.html")]
struct RunPage {
    nav: Nav,
    id: i64,
    integration: String,
    integration_link: Option<String>,
    type_label: String,
    trigger: String,
    attempts: i64,
    queued: When,
    started: Option<When>,
    finished: Option<When>,
    duration: Option<String>,
    status_label: &'static str,
    status_class: &'static str,
    note: Option<String>,
    in_progress: bool,
    rows: String,
    counts: Vec<(&'static str, String)>,
    file: Option<String>,
    error: Option<String>,
    log: Vec<LogRow>,
    log_more: bool,
    log_link: String,
    time_zone: String,
    /// The synchronization report, for a kind that has one.
    report: Option<Vec<ReportLine>>,
}

/// One row of the synchronization report as the page shows it.
pub(crate) struct ReportLine {
    /// The metric, fit for an element id (`skipped-everyaction_not_us`).
    pub anchor: String,
    pub label: String,
    pub value: String,
    /// For a skipped reason, the reason (an error dictionary code).
    pub reason: Option<String>,
}

/// The report of `run`, if its kind has one.
pub(crate) fn report_of(
    state: &AppState,
    run: &ferry_store::Run,
) -> Option<ferry_connectors::explain::SyncReport> {
    state
        .registry
        .get(&run.kind)
        .and_then(|c| c.sync_report(&run.detail))
}

/// `1 h 2 min 3 s`, `4.2 s`.
fn fmt_duration(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs_f64().max(0.0);
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let total = secs.round() as i64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h} h {m} min {s} s")
    } else {
        format!("{m} min {s} s")
    }
}

/// `GET /runs/{id}`: one run's details.
pub async fn run_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let inst = &auth.principal.institution;
    let id = match crate::api::contacts::parse_id(&id) {
        Ok(id) => id,
        Err(e) => return ui_error(e),
    };
    let run = match state.store.run(inst.id, id).await {
        Ok(r) => r,
        Err(e) => return ui_error(e.into()),
    };
    let integration = state
        .store
        .integration(inst.id, run.integration_id)
        .await
        .ok();
    let log = match state
        .store
        .list_sync_log(
            inst.id,
            &SyncLogQuery {
                run_id: Some(run.id),
                limit: LOG_ROWS + 1,
                ..Default::default()
            },
        )
        .await
    {
        Ok(l) => l,
        Err(e) => return ui_error(e.into()),
    };
    let log_more = log.len() > LOG_ROWS as usize;
    let log = match views(
        &state.store,
        inst.id,
        log.into_iter().take(LOG_ROWS as usize).collect(),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return ui_error(e.into()),
    };
    let tz = &inst.time_zone;
    let when = |t: jiff::Timestamp| When {
        iso: t.to_string(),
        text: fmt_time(t, tz),
    };
    let e = explain(&state, &run, integration.as_ref());
    let trigger = match run.trigger {
        Trigger::Manual => "Run now (manual)".to_string(),
        Trigger::Change => "Contacts changed".to_string(),
        Trigger::Scheduled => match run.scheduled_for {
            Some(t) => format!("Schedule, for the slot of {}", fmt_time(t, tz)),
            None => "Schedule".to_string(),
        },
        Trigger::FileArrived => match run.detail.get("file").and_then(|f| f.as_str()) {
            Some(name) => format!("A file arrived on Ferry's SFTP server: {name}"),
            None => "A file arrived on Ferry's SFTP server".to_string(),
        },
        Trigger::Retention => "Daily retention of inbound files".to_string(),
    };
    let report = report_of(&state, &run).map(|r| {
        r.rows
            .into_iter()
            .map(|row| ReportLine {
                anchor: row.metric.replace(':', "-"),
                reason: row
                    .is_reason
                    .then(|| row.metric.trim_start_matches("skipped:").to_string()),
                label: row.label,
                value: fmt_count(row.value),
            })
            .collect()
    });
    let count = |v: Option<i64>| v.map(fmt_count).unwrap_or_else(|| "—".to_string());
    let finished = run.status.is_final();
    RunPage {
        nav: Nav::new(&state, &auth, "runs"),
        id: run.id,
        integration: integration
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_else(|| format!("Integration #{}", run.integration_id)),
        integration_link: integration
            .as_ref()
            .filter(|_| auth.is_admin())
            .map(|i| format!("/settings/integrations/i/{}", i.id)),
        type_label: state.registry.label(&run.kind),
        trigger,
        attempts: run.attempt,
        queued: when(run.created_at),
        started: run.started_at.map(when),
        finished: run.finished_at.map(when),
        duration: run
            .started_at
            .zip(run.finished_at)
            .map(|(s, f)| fmt_duration(f.duration_since(s))),
        status_label: run.status.label(),
        status_class: status_class(run.status),
        note: status_note(&e, run.status),
        in_progress: !finished,
        rows: if finished {
            fmt_count(run.rows)
        } else {
            "—".to_string()
        },
        counts: vec![
            ("Created", count(e.created)),
            ("Updated", count(e.updated)),
            ("Skipped", count(e.skipped)),
            ("Filtered", count(e.filtered)),
            ("Failed", count(e.failed)),
        ],
        file: e.file.clone(),
        error: (run.status == RunStatus::Failed).then(|| {
            run.error
                .clone()
                .filter(|e| !e.trim().is_empty())
                .unwrap_or_else(|| "No reason was recorded.".to_string())
        }),
        log: log
            .into_iter()
            .map(|v| LogRow {
                id: v.id,
                time: fmt_time(v.timestamp, tz),
                direction: v.direction.as_str().to_string(),
                contact_id: v.contact_id,
                contact_name: v.contact_name,
                code: v.code,
                message: v.message,
            })
            .collect(),
        log_more,
        log_link: format!("{SYNC_LOG}?integration_id={}", run.integration_id),
        time_zone: tz.clone(),
        report,
    }
    .into_response()
}

/// `GET /runs/{id}/report.csv`: the run's synchronization report as CSV (`metric,value`).
pub async fn report_csv(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    match crate::api::runs::report_csv_response(&state, auth.institution_id(), &id).await {
        Ok(r) => r,
        Err(e) => ui_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(
            fmt_duration(jiff::SignedDuration::from_millis(4200)),
            "4.2 s"
        );
        assert_eq!(
            fmt_duration(jiff::SignedDuration::from_secs(3723)),
            "1 h 2 min 3 s"
        );
        assert_eq!(
            fmt_duration(jiff::SignedDuration::from_secs(62)),
            "1 min 2 s"
        );
    }
}
