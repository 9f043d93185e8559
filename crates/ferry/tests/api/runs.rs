//! Recent Runs: `/api/v1/runs`, `/api/v1/runs/{id}` and the `/runs` page, over runs made through
//! the store's queue (enqueue, claim, finish) as the worker makes them.

use std::time::Duration;

use ferry_core::run::{RunStatus, Trigger};
use ferry_core::tenancy::Role;
use ferry_store::{Integration, NewIntegration, NewRun, Run, RunOutcome};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const WORKER: &str = "test-worker";
const REASON: &str = "SFTP authentication failed: the server refused the password for \"ferry\"";
const VIEWER_EMAIL: &str = "viewer@state.edu";
const VIEWER_PASSWORD: &str = "viewer password for tests";

async fn integration(app: &TestApp, inst: i64, kind: &str, name: &str) -> Integration {
    app.store
        .create_integration(
            inst,
            NewIntegration {
                kind: kind.into(),
                name: name.into(),
                description: String::new(),
                enabled: true,
                config: json!({}),
                secrets: None,
            },
        )
        .await
        .unwrap()
}

async fn enqueue(app: &TestApp, i: &Integration) -> Run {
    app.store
        .enqueue_run(&NewRun {
            institution_id: i.institution_id,
            integration_id: i.id,
            kind: i.kind.clone(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .expect("queued")
}

/// Queues a run and has the worker take it up (it is then Running).
async fn start(app: &TestApp, i: &Integration) -> Run {
    let queued = enqueue(app, i).await;
    let claimed = app.store.claim_run(WORKER).await.unwrap().expect("claimed");
    assert_eq!(
        claimed.id, queued.id,
        "the run just queued is the one claimed"
    );
    // Distinct start times, so time filters can tell runs apart.
    tokio::time::sleep(Duration::from_millis(15)).await;
    claimed
}

async fn finish(
    app: &TestApp,
    run: &Run,
    status: RunStatus,
    rows: i64,
    error: Option<&str>,
    detail: Value,
) -> Run {
    assert!(
        app.store
            .finish_run(
                run.id,
                WORKER,
                &RunOutcome {
                    status,
                    rows,
                    error: error.map(str::to_string),
                    detail,
                    credentials_refused: false,
                },
            )
            .await
            .unwrap()
    );
    app.store.run(run.institution_id, run.id).await.unwrap()
}

/// Five runs of State University, oldest first, and one of Other College (made between C and D).
struct Seeded {
    eab: Integration,
    contacts: Integration,
    conversations: Integration,
    other_integration: Integration,
    /// EAB Notes, Success, 42 rows, a file.
    a: Run,
    /// Contacts, Fail.
    b: Run,
    /// EAB Notes, Skipped.
    c: Run,
    /// Conversations, Running.
    d: Run,
    /// Contacts, Queued.
    e: Run,
    /// Other College's run.
    other: Run,
}

async fn seed(app: &TestApp) -> Seeded {
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap();
    let other_inst = app
        .store
        .institution_by_slug("other-u")
        .await
        .unwrap()
        .unwrap();
    let eab = integration(app, inst.id, "eab_notes_export", "Nightly EAB").await;
    let contacts = integration(app, inst.id, "contacts_export", "Weekly contacts").await;
    let conversations =
        integration(app, inst.id, "conversations_export", "Conversations feed").await;
    let other_integration = integration(app, other_inst.id, "eab_notes_export", "Other EAB").await;

    let a = start(app, &eab).await;
    let a = finish(
        app,
        &a,
        RunStatus::Success,
        42,
        None,
        json!({"file": "eab_notes_20260901T180000Z.csv", "bytes": 5120}),
    )
    .await;
    let b = start(app, &contacts).await;
    let b = finish(app, &b, RunStatus::Failed, 0, Some(REASON), json!({})).await;
    let c = start(app, &eab).await;
    let c = finish(app, &c, RunStatus::Skipped, 0, None, json!({})).await;
    let other = start(app, &other_integration).await;
    let other = finish(app, &other, RunStatus::Success, 7, None, json!({})).await;
    let d = start(app, &conversations).await;
    let e = enqueue(app, &contacts).await;
    Seeded {
        eab,
        contacts,
        conversations,
        other_integration,
        a,
        b,
        c,
        d,
        e,
        other,
    }
}

fn ids(body: &Value) -> Vec<i64> {
    body["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no runs in {body}"))
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn started(r: &Run) -> String {
    r.started_at.expect("started").to_string()
}

#[tokio::test]
async fn api_lists_runs_newest_first_with_what_recent_runs_shows() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/runs",
            &app.viewer_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "viewers may read runs: {body}");
    assert_eq!(ids(&body), [s.e.id, s.d.id, s.c.id, s.b.id, s.a.id]);
    assert!(body["next_cursor"].is_null());

    let runs = body["runs"].as_array().unwrap();
    let a = &runs[4];
    assert_eq!(a["integration_id"], s.eab.id);
    assert_eq!(a["integration_name"], "Nightly EAB");
    assert_eq!(a["kind"], "eab_notes_export");
    assert_eq!(a["type_label"], "EAB Notes");
    assert_eq!(a["trigger"], "manual");
    assert_eq!(a["status"], "success");
    assert_eq!(a["status_label"], "Success");
    assert_eq!(a["rows"], 42);
    assert_eq!(a["attempt"], 1);
    assert_eq!(a["file"], "eab_notes_20260901T180000Z.csv");
    assert_eq!(a["detail"]["bytes"], 5120);
    assert_eq!(a["started_at"], started(&s.a));
    assert_eq!(
        a["finished_at"],
        s.a.finished_at.unwrap().to_string().as_str()
    );
    assert!(a["error"].is_null());

    let b = &runs[3];
    assert_eq!(
        (
            &b["status"],
            &b["status_label"],
            &b["error"],
            &b["type_label"]
        ),
        (
            &json!("failed"),
            &json!("Fail"),
            &json!(REASON),
            &json!("Contacts")
        )
    );
    assert!(b["file"].is_null(), "no file was uploaded");
    assert_eq!(runs[2]["status_label"], "Skipped");
    assert_eq!(runs[1]["status"], "running");
    assert_eq!(runs[1]["type_label"], "Conversations");
    assert!(runs[1]["finished_at"].is_null());
    assert_eq!(runs[0]["status"], "queued");
    assert!(runs[0]["started_at"].is_null());

    let (status, one) = app.get(&format!("/api/v1/runs/{}", s.a.id)).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["file"], "eab_notes_20260901T180000Z.csv");
    assert_eq!(one["integration_name"], "Nightly EAB");
    assert_eq!(one, *a, "one run reads the same as in the list");
}

#[tokio::test]
async fn api_filters_by_status_integration_and_start_time() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let list = |q: String| {
        let app = &app;
        async move {
            let (status, body) = app.get(&format!("/api/v1/runs?{q}")).await;
            assert_eq!(status, 200, "{q}: {body}");
            ids(&body)
        }
    };
    assert_eq!(list("status=failed".into()).await, [s.b.id]);
    assert_eq!(list("status=running".into()).await, [s.d.id]);
    assert_eq!(list("status=queued".into()).await, [s.e.id]);
    assert_eq!(list("status=skipped".into()).await, [s.c.id]);
    assert_eq!(
        list("status=success".into()).await,
        [s.a.id],
        "never another institution's"
    );
    assert_eq!(
        list(format!("integration_id={}", s.eab.id)).await,
        [s.c.id, s.a.id]
    );
    assert_eq!(
        list(format!("integration_id={}", s.contacts.id)).await,
        [s.e.id, s.b.id]
    );
    assert_eq!(
        list(format!("integration_id={}&status=skipped", s.eab.id)).await,
        [s.c.id]
    );
    assert!(
        list(format!("integration_id={}", s.other_integration.id))
            .await
            .is_empty(),
        "another institution's integration has no runs here"
    );
    assert_eq!(
        list(format!("started_from={}", enc(&started(&s.c)))).await,
        [s.d.id, s.c.id],
        "from is inclusive; a queued run has not started"
    );
    assert_eq!(
        list(format!("started_to={}", enc(&started(&s.b)))).await,
        [s.b.id, s.a.id],
        "to is inclusive"
    );
    assert_eq!(
        list(format!(
            "started_from={}&started_to={}",
            enc(&started(&s.b)),
            enc(&started(&s.c))
        ))
        .await,
        [s.c.id, s.b.id]
    );
    // Any RFC 3339 offset names the same instant.
    let b_ny =
        s.b.started_at
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap())
            .strftime("%Y-%m-%dT%H:%M:%S%.f%:z")
            .to_string();
    assert_eq!(
        list(format!("started_from={0}&started_to={0}", enc(&b_ny))).await,
        [s.b.id]
    );
    assert_eq!(
        list(format!(
            "integration_id={}&status=running",
            s.conversations.id
        ))
        .await,
        [s.d.id]
    );
}

#[tokio::test]
async fn api_pages_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let (_, p1) = app.get("/api/v1/runs?limit=2").await;
    assert_eq!(ids(&p1), [s.e.id, s.d.id]);
    assert_eq!(p1["next_cursor"], s.d.id);
    let (_, p2) = app
        .get(&format!("/api/v1/runs?limit=2&cursor={}", s.d.id))
        .await;
    assert_eq!(ids(&p2), [s.c.id, s.b.id]);
    assert_eq!(p2["next_cursor"], s.b.id);
    let (_, p3) = app
        .get(&format!("/api/v1/runs?limit=2&cursor={}", s.b.id))
        .await;
    assert_eq!(ids(&p3), [s.a.id]);
    assert!(p3["next_cursor"].is_null(), "the last page has no cursor");

    let (_, exact) = app.get("/api/v1/runs?limit=5").await;
    assert_eq!(ids(&exact).len(), 5);
    assert!(
        exact["next_cursor"].is_null(),
        "a full last page does not promise an empty next one"
    );

    // Paging keeps the filters.
    let (_, f1) = app
        .get(&format!("/api/v1/runs?integration_id={}&limit=1", s.eab.id))
        .await;
    assert_eq!(ids(&f1), [s.c.id]);
    assert_eq!(f1["next_cursor"], s.c.id);
    let (_, f2) = app
        .get(&format!(
            "/api/v1/runs?integration_id={}&limit=1&cursor={}",
            s.eab.id, s.c.id
        ))
        .await;
    assert_eq!(ids(&f2), [s.a.id]);
    assert!(f2["next_cursor"].is_null());
}

#[tokio::test]
async fn another_institutions_run_is_not_found() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/runs/{}", s.a.id),
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = app.get(&format!("/api/v1/runs/{}", s.other.id)).await;
    assert_eq!(status, 404);
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/runs/{}", s.other.id),
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!(
        (status, body["integration_name"].as_str()),
        (200, Some("Other EAB"))
    );
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/runs",
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!((status, ids(&body)), (200, vec![s.other.id]));
    for bad in ["abc", "0", "-3", "99999999"] {
        let (status, _) = app.get(&format!("/api/v1/runs/{bad}")).await;
        assert_eq!(status, 404, "/api/v1/runs/{bad}");
    }
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_field() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let cases = [
        ("status=done", "status"),
        ("status=Fail", "status"),
        ("status=FAILED", "status"),
        ("integration_id=abc", "integration_id"),
        ("integration_id=-1", "integration_id"),
        ("started_from=yesterday", "started_from"),
        ("started_to=2026-09-01", "started_to"),
        (
            "started_from=2026-09-02T00:00:00Z&started_to=2026-09-01T00:00:00Z",
            "started_to",
        ),
        ("cursor=x", "cursor"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("sort=asc", "sort"),
    ];
    for (q, field) in cases {
        let (status, body) = app.get(&format!("/api/v1/runs?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["error"]["field"], field, "{q}: {body}");
    }
    let (_, body) = app.get("/api/v1/runs?status=done").await;
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("queued") && msg.contains("failed"),
        "the message lists the statuses: {msg}"
    );
    // Empty parameters (as a form sends them) are no filter.
    let (status, body) = app
        .get("/api/v1/runs?status=&integration_id=&started_from=&started_to=&cursor=")
        .await;
    assert_eq!((status, ids(&body).len()), (200, 5), "{body}");
    let _ = s;
}

#[tokio::test]
async fn the_api_is_documented() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let list = &doc["paths"]["/api/v1/runs"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "integration_id",
        "status",
        "started_from",
        "started_to",
        "cursor",
        "limit",
    ] {
        assert!(params.contains(&p), "{p} is documented: {params:?}");
    }
    assert!(doc["paths"]["/api/v1/runs/{id}"]["get"].is_object());
    let view = &doc["components"]["schemas"]["RunView"]["properties"];
    for f in [
        "integration_name",
        "type_label",
        "status",
        "rows",
        "started_at",
        "finished_at",
        "error",
        "file",
        "detail",
        "attempt",
    ] {
        assert!(view[f].is_object(), "RunView.{f} is documented");
    }
}

/// A signed-in viewer (not an admin): a cookie session.
async fn viewer_cookie(app: &TestApp) -> String {
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap();
    let user = app
        .store
        .create_user(VIEWER_EMAIL, VIEWER_PASSWORD)
        .await
        .unwrap();
    app.store
        .grant_role(user.id, inst.id, Role::Viewer)
        .await
        .unwrap();
    let session = app.store.create_session(user.id, inst.id).await.unwrap();
    format!("ferry_session={session}")
}

/// The table body's markup.
fn tbody(html: &str) -> &str {
    let start = html.find("<tbody>").expect("a table body");
    let end = html[start..].find("</tbody>").unwrap() + start;
    &html[start..end]
}

/// The markup of one run's row.
fn row<'a>(html: &'a str, run: &Run) -> &'a str {
    let marker = format!("<tr id=\"run-{}\">", run.id);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("row of run {} in {html}", run.id));
    let end = html[start..].find("</tr>").unwrap() + start;
    &html[start..end]
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
}

#[tokio::test]
async fn a_viewer_sees_the_recent_runs_page() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let cookie = viewer_cookie(&app).await;
    let (status, html) = app.page(&cookie, "/runs").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>Recent Runs</h1>"));
    assert!(
        html.contains("<a href=\"/runs\" aria-current=\"page\">Recent Runs</a>"),
        "Recent Runs is in the navigation and marked current"
    );
    for h in [
        "Integration",
        "Type",
        "# Rows",
        "Started",
        "Finished",
        "Status",
    ] {
        assert!(
            html.contains(&format!(
                "<th scope=\"col\"{}>{h}</th>",
                if h == "# Rows" { " class=\"num\"" } else { "" }
            )),
            "column {h}"
        );
    }
    let body = tbody(&html);
    assert!(
        !body.contains("Other EAB"),
        "never another institution's runs"
    );
    assert_eq!(body.matches("<tr id=\"run-").count(), 5);

    let tz = "America/New_York";
    let a = row(&html, &s.a);
    assert!(a.contains("Nightly EAB") && a.contains("EAB Notes"), "{a}");
    assert!(a.contains(">42</td>"), "{a}");
    assert!(a.contains("eab_notes_20260901T180000Z.csv"), "{a}");
    assert!(
        a.contains("<span class=\"badge badge-ok\">Success</span>"),
        "{a}"
    );
    let shown = ferry_web::ui::fmt_time(s.a.started_at.unwrap(), tz);
    assert!(shown.ends_with("EST") || shown.ends_with("EDT"), "{shown}");
    assert!(
        a.contains(&format!(">{shown}</time>")),
        "started in the institution's zone: {a}"
    );
    let finished = ferry_web::ui::fmt_time(s.a.finished_at.unwrap(), tz);
    assert!(a.contains(&format!(">{finished}</time>")), "{a}");

    // Fail: the reason is on hover (title) and a keyboard-reachable disclosure whose summary is
    // described by the reason.
    let b = row(&html, &s.b);
    assert!(
        b.contains("Weekly contacts") && b.contains("Contacts"),
        "{b}"
    );
    let escaped = html_escape(REASON);
    assert!(b.contains("<details class=\"run-fail\""), "{b}");
    assert!(
        b.contains(&format!("title=\"{escaped}\"")),
        "reason on hover: {b}"
    );
    let described = format!("aria-describedby=\"run-{}-reason\"", s.b.id);
    assert!(
        b.contains("<summary class=\"badge badge-danger\"") && b.contains(&described),
        "{b}"
    );
    assert!(
        b.contains(&format!(
            "<p class=\"fail-reason\" id=\"run-{}-reason\">{escaped}</p>",
            s.b.id
        )),
        "the reason is in the disclosure: {b}"
    );
    assert!(b.contains(">Fail<"), "{b}");

    let c = row(&html, &s.c);
    assert!(
        c.contains("badge-skipped\">Skipped<") && c.contains(">0</td>"),
        "{c}"
    );
    let d = row(&html, &s.d);
    assert!(
        d.contains("badge-running\">Running<") && d.contains("Conversations feed"),
        "{d}"
    );
    assert!(d.contains(">—</td>"), "no row count while running: {d}");
    let e = row(&html, &s.e);
    assert!(e.contains(">Queued<"), "{e}");

    // Something is in progress: the table polls its fragment.
    assert!(html.contains("hx-trigger=\"every 5s\""), "{html}");
    assert!(html.contains("hx-get=\"/runs/table?"), "{html}");

    // The filter controls list the institution's integrations and the statuses.
    assert!(html.contains(&format!(
        "<option value=\"{}\">Nightly EAB (EAB Notes)</option>",
        s.eab.id
    )));
    assert!(!html.contains(&format!("<option value=\"{}\"", s.other_integration.id)));
    assert!(html.contains("<option value=\"failed\">Fail</option>"));
    assert!(html.contains("type=\"datetime-local\""));

    // The navigation link is on every page, for viewers too.
    let (_, contacts) = app.page(&cookie, "/contacts").await;
    assert!(contacts.contains("<a href=\"/runs\">Recent Runs</a>"));
}

#[tokio::test]
async fn the_page_refreshes_only_while_a_run_is_in_progress() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let cookie = viewer_cookie(&app).await;
    let polls = |html: &str| html.contains("hx-trigger=\"every 5s\"");

    let (_, html) = app.page(&cookie, "/runs?status=success").await;
    assert!(!polls(&html), "nothing listed is in progress");
    let (_, html) = app.page(&cookie, "/runs?status=queued").await;
    assert!(polls(&html), "a queued run is in progress");
    let (status, frag) = app.page(&cookie, "/runs/table?status=running").await;
    assert_eq!(status, 200);
    assert!(
        frag.starts_with("<div id=\"runs-table\""),
        "just the fragment: {frag}"
    );
    assert!(!frag.contains("<html"), "not a whole page");
    assert!(polls(&frag));
    assert!(
        frag.contains("hx-get=\"/runs/table?integration_id=&#38;status=running&#38;"),
        "the refresh keeps the filters: {frag}"
    );
    let (_, frag) = app.page(&cookie, "/runs/table?status=failed").await;
    assert!(!polls(&frag), "{frag}");
    assert!(frag.contains(REASON.split('"').next().unwrap()));

    // The running run finishes and the queued one runs: nothing polls any more.
    finish(&app, &s.d, RunStatus::Success, 3, None, json!({})).await;
    let e = app.store.claim_run(WORKER).await.unwrap().unwrap();
    assert_eq!(e.id, s.e.id);
    let (_, frag) = app.page(&cookie, "/runs/table").await;
    assert!(polls(&frag), "the claimed run is Running");
    assert!(row(&frag, &s.e).contains(">Running<"));
    finish(&app, &e, RunStatus::Skipped, 0, None, json!({})).await;
    let (_, html) = app.page(&cookie, "/runs").await;
    assert!(!polls(&html), "{html}");
    assert!(!html.contains("hx-get="), "{html}");
    assert!(row(&html, &s.d).contains(">Success<"));
}

#[tokio::test]
async fn the_page_filters_by_integration_status_and_local_start_time() {
    let app = spawn_app().await;
    let s = seed(&app).await;
    let cookie = viewer_cookie(&app).await;
    let listed = |html: &str| tbody(html).matches("<tr id=\"run-").count();

    let (_, html) = app
        .page(&cookie, &format!("/runs?integration_id={}", s.eab.id))
        .await;
    assert_eq!(listed(&html), 2);
    row(&html, &s.a);
    row(&html, &s.c);
    assert!(html.contains(&format!("<option value=\"{}\" selected>", s.eab.id)));
    assert!(html.contains("Clear filters"));

    let (_, html) = app.page(&cookie, "/runs?status=failed").await;
    assert_eq!(listed(&html), 1);
    row(&html, &s.b);
    assert!(html.contains("<option value=\"failed\" selected>Fail</option>"));

    // datetime-local values are in the institution's time zone (America/New_York).
    let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let minute = |r: &Run| {
        r.started_at
            .unwrap()
            .to_zoned(ny.clone())
            .strftime("%Y-%m-%dT%H:%M")
            .to_string()
    };
    let (from, to) = (minute(&s.a), minute(&s.d));
    let (status, html) = app
        .page(
            &cookie,
            &format!("/runs?started_from={}&started_to={}", enc(&from), enc(&to)),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        listed(&html),
        4,
        "every started run, the to-minute included: {html}"
    );
    assert!(
        html.contains(&format!("value=\"{from}\"")),
        "the form keeps the filter"
    );
    // The same wall-clock minute read as UTC would be hours away: nothing.
    let utc = |r: &Run| r.started_at.unwrap().strftime("%Y-%m-%dT%H:%M").to_string();
    let (_, html) = app
        .page(
            &cookie,
            &format!(
                "/runs?started_from={}&started_to={}",
                enc(&utc(&s.a)),
                enc(&utc(&s.d))
            ),
        )
        .await;
    assert_eq!(listed(&html), 0, "{html}");
    assert!(html.contains("No runs match these filters."));

    let (status, html) = app
        .page(&cookie, "/runs?status=bogus&started_from=soon")
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("Choose a status from the list."));
    assert!(html.contains("Started from must be a date and time"));
    assert!(html.contains("id=\"started_from\" name=\"started_from\" type=\"datetime-local\" value=\"soon\" aria-describedby=\"tz-hint\" aria-invalid=\"true\""));
}

#[tokio::test]
async fn the_page_pages_through_older_runs() {
    let app = spawn_app().await;
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap();
    let i = integration(&app, inst.id, "contacts_export", "Hourly contacts").await;
    let mut runs = Vec::new();
    for n in 0..52 {
        let queued = enqueue(&app, &i).await;
        let r = app.store.claim_run(WORKER).await.unwrap().unwrap();
        assert_eq!(r.id, queued.id);
        runs.push(finish(&app, &r, RunStatus::Success, n, None, json!({})).await);
    }
    let cookie = viewer_cookie(&app).await;
    let (_, html) = app
        .page(&cookie, &format!("/runs?integration_id={}", i.id))
        .await;
    assert_eq!(tbody(&html).matches("<tr id=\"run-").count(), 50);
    row(&html, &runs[51]);
    assert!(!html.contains(&format!("<tr id=\"run-{}\">", runs[1].id)));
    let next = format!(
        "href=\"/runs?integration_id={}&#38;status=&#38;started_from=&#38;started_to=&#38;before={}\" rel=\"next\" id=\"runs-older\"",
        i.id, runs[2].id
    );
    assert!(html.contains(&next), "{html}");
    assert!(!html.contains("Newest runs"), "already on the first page");

    let (_, html) = app
        .page(
            &cookie,
            &format!("/runs?integration_id={}&before={}", i.id, runs[2].id),
        )
        .await;
    assert_eq!(tbody(&html).matches("<tr id=\"run-").count(), 2);
    row(&html, &runs[1]);
    row(&html, &runs[0]);
    assert!(html.contains("Newest runs"));
    assert!(
        html.contains("<span class=\"disabled\">Older runs</span>"),
        "the last page"
    );
}

#[tokio::test]
async fn an_expired_session_sends_htmx_to_sign_in() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/runs/table?status=running"))
        .header("hx-request", "true")
        .header(
            "hx-current-url",
            format!("{}/runs?status=running", app.base),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "not a redirect htmx would swap into the table"
    );
    assert_eq!(
        res.headers()["hx-redirect"],
        "/login?next=/runs%3Fstatus%3Drunning"
    );
    let plain = app.http.get(app.url("/runs")).send().await.unwrap();
    assert_eq!(plain.status(), 303);
}

/// A viewer signs in, reads a failure's reason by keyboard and watches the table update itself
/// when the running run finishes. Saves a screenshot under `$FERRY_SCREENSHOT_DIR` when set.
#[tokio::test]
async fn in_a_browser_the_reason_opens_by_keyboard_and_the_table_updates() {
    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    let s = seed(&app).await;
    viewer_cookie(&app).await;
    browser.goto(&app.url("/runs")).await.unwrap();
    browser
        .find("#email")
        .await
        .unwrap()
        .send_keys(VIEWER_EMAIL)
        .await
        .unwrap();
    browser
        .find("#password")
        .await
        .unwrap()
        .send_keys(VIEWER_PASSWORD)
        .await
        .unwrap();
    browser.click_on("button[type=submit]").await.unwrap();
    browser.wait_for_text("h1", "Recent Runs").await.unwrap();
    browser.wait_for_text("#runs", "Nightly EAB").await.unwrap();

    // Keyboard: the Fail badge takes focus and Enter opens the reason.
    let summary = browser
        .find(&format!("#run-{}-status > summary", s.b.id))
        .await
        .unwrap();
    let focused = browser
        .execute(
            "arguments[0].focus(); return document.activeElement === arguments[0];",
            vec![summary.to_arg()],
        )
        .await
        .unwrap();
    assert_eq!(focused, json!(true), "the Fail badge is focusable");
    let reason = browser
        .find(&format!("#run-{}-reason", s.b.id))
        .await
        .unwrap();
    assert_eq!(reason.text().await.unwrap(), "", "closed at first");
    summary.send_keys("\u{E007}").await.unwrap();
    browser
        .wait_for_text(
            &format!("#run-{}-reason", s.b.id),
            "the server refused the password",
        )
        .await
        .unwrap();
    if let Ok(dir) = std::env::var("FERRY_SCREENSHOT_DIR") {
        let png = browser.screenshot_png().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join("recent-runs.png"), png).unwrap();
    }

    // The running run finishes; within one refresh the table shows it, and the open reason stays open.
    finish(
        &app,
        &s.d,
        RunStatus::Success,
        1234,
        None,
        json!({"file": "conversations.csv"}),
    )
    .await;
    browser
        .wait_for_text(&format!("#run-{}", s.d.id), "1,234")
        .await
        .unwrap();
    let open = browser
        .execute(
            "return document.getElementById(arguments[0]).open;",
            vec![json!(format!("run-{}-status", s.b.id))],
        )
        .await
        .unwrap();
    assert_eq!(open, json!(true), "a refresh keeps an open reason open");
    if let Ok(dir) = std::env::var("FERRY_SCREENSHOT_DIR") {
        let png = browser.screenshot_png().await.unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join("recent-runs-updated.png"),
            png,
        )
        .unwrap();
    }
    browser.quit().await.unwrap();
}
