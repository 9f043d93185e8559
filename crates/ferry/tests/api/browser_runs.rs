//! In a real browser: the first page after sign-in, the Conversations tool's filters, Preview
//! next run matching the next real run's file byte for byte, Run now's link to the run, the run
//! details page (a Success, then a Skipped run that says why), the Sync Log under Settings (its
//! old address redirecting), the API reference page; and axe-core over every page visited.

use std::time::Duration;

use ferry_sftp::server::TestServer;
use serde_json::{Value, json};

use crate::browser::{BackgroundWorker, sign_in};
use crate::helpers::{TestApp, spawn_app};
use crate::webdriver::Browser;

/// axe-core 4.14.1 (npm `axe-core`, MPL-2.0), injected into each page by the test.
const AXE: &str = include_str!("../support/axe.min.js");

const SFTP_USER: &str = "eab";
const SFTP_PASSWORD: &str = "preview-pass-1";

/// The serious and critical axe-core violations of the page the browser is on, one line each.
pub(crate) async fn axe_violations(browser: &Browser) -> Vec<String> {
    axe_violations_of(browser, "document").await
}

/// Fails the test, naming `page`, when the page the browser is on has a serious or critical
/// axe-core violation.
pub(crate) async fn assert_no_axe_violations(browser: &Browser, page: &str) {
    let violations = axe_violations(browser).await;
    assert!(
        violations.is_empty(),
        "axe-core found serious or critical violations on {page}:\n{}",
        violations.join("\n")
    );
}

/// The same for `context`, an axe-core context in JavaScript (`document`, `{exclude: [...]}`).
pub(crate) async fn axe_violations_of(browser: &Browser, context: &str) -> Vec<String> {
    let loaded = browser
        .execute("return typeof window.axe !== 'undefined';", vec![])
        .await
        .unwrap();
    if loaded != json!(true) {
        browser
            .execute(&format!("{AXE}\nreturn true;"), vec![])
            .await
            .unwrap();
    }
    let v = browser
        .execute(
            &format!("return axe.run({context}, {{resultTypes: ['violations']}}).then(function (r) {{
               return r.violations
                 .filter(function (v) {{ return v.impact === 'serious' || v.impact === 'critical'; }})
                 .map(function (v) {{
                   return v.impact + ' ' + v.id + ': ' + v.help + ' at ' +
                     v.nodes.slice(0, 5).map(function (n) {{ return n.target.join(' '); }}).join(' | ');
                 }});
             }});"),
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// Opens `path` and returns its serious and critical axe-core violations.
async fn visit_and_check(browser: &Browser, app: &TestApp, path: &str) -> Vec<String> {
    browser.goto(&app.url(path)).await.unwrap();
    browser.find("h1").await.unwrap();
    axe_violations(browser)
        .await
        .into_iter()
        .map(|v| format!("{path}: {v}"))
        .collect()
}

/// The bytes the page fetches from `url` (same origin, with the session).
async fn fetch_bytes(browser: &Browser, url: &str) -> Vec<u8> {
    let v = browser
        .execute(
            "var x = new XMLHttpRequest(); x.open('GET', arguments[0], false);
             x.overrideMimeType('text/plain; charset=x-user-defined'); x.send();
             var out = []; for (var i = 0; i < x.responseText.length; i++) out.push(x.responseText.charCodeAt(i) & 0xff);
             return [x.status, out];",
            vec![json!(url)],
        )
        .await
        .unwrap();
    assert_eq!(v[0], json!(200), "GET {url}");
    serde_json::from_value(v[1].clone()).unwrap()
}

/// Clicks the last visible element matching `css` whose text's first line is `text` (waiting for
/// it); the last one in document order is the innermost.
async fn click_by_text(browser: &Browser, css: &str, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let clicked = browser
            .execute(
                "var want = arguments[1];
                 var els = Array.from(document.querySelectorAll(arguments[0])).filter(function (e) {
                   return e.innerText && e.innerText.trim().split('\\n')[0].trim() === want && e.offsetParent !== null;
                 });
                 if (!els.length) return false;
                 els[els.length - 1].click(); return true;",
                vec![json!(css), json!(text)],
            )
            .await
            .unwrap();
        if clicked == json!(true) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing matching {css} with the text {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `css`'s text contains one of `words`; returns it.
async fn wait_for_any(browser: &Browser, css: &str, words: &[&str]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = browser
            .execute(
                "var e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                vec![json!(css)],
            )
            .await
            .unwrap();
        let text = text.as_str().unwrap_or_default().to_string();
        if words.iter().any(|w| text.contains(w)) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} never showed {words:?}: {}",
            text.chars().take(3000).collect::<String>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn eab_request(port: u16) -> Value {
    json!({
        "type": "eab_notes_export",
        "name": "EAB notes",
        "description": "nightly",
        "enabled": true,
        "config": {
            "sftp": {"host": "127.0.0.1", "port": port, "username": SFTP_USER, "directory": "inbox", "file_prefix": "notes_"},
            "schedule": {"blocks": [0]},
            "filters": {"channels": ["sms"], "types": ["ai_agent", "live_chat"], "directions": ["incoming", "outgoing"]},
            "eab": {"import_version": "3", "institution_id": "77", "group_id": "group_id", "dedupe_contacts": false,
                    "is_private": true, "student_viewable": false, "show_on_student_report": true,
                    "created_by": "Ferry", "note_reasons": "Outreach", "note_body": "{first_name} ({channel}, {direction}): {message}"}
        },
        "secrets": {"password": SFTP_PASSWORD}
    })
}

#[tokio::test]
async fn overview_conversations_preview_run_details_sync_log_and_api_reference() {
    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    let server = TestServer::builder(dir.path())
        .password(SFTP_USER, SFTP_PASSWORD)
        .start()
        .await
        .unwrap();

    // Two students with CRM IDs, one without; messages on several channels.
    let rosa = app.contact("Rosa", "6175550401").await;
    let omar = app.contact("Omar", "6175550402").await;
    let nocrm = app.contact("Nils", "6175550403").await;
    for (c, crm) in [(rosa, "EAB-1"), (omar, "EAB-2")] {
        app.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/contacts/{c}"),
            &app.admin_token,
            Some(json!({"crm_id": crm})),
        )
        .await;
    }
    let (status, body) = app.post("/api/v1/messages", json!({"messages": [
        {"contact_id": rosa, "channel": "sms", "type": "ai_agent", "direction": "outgoing", "body": "Hi Rosa, =FAFSA is due Friday, \"really\".", "sent_at": "2026-09-01T14:00:00Z"},
        {"contact_id": rosa, "channel": "sms", "type": "ai_agent", "direction": "incoming", "body": "Thanks, café at 3?", "sent_at": "2026-09-01T14:05:00Z"},
        {"contact_id": omar, "channel": "web_chat", "type": "live_chat", "direction": "incoming", "body": "Where is the library?", "sent_at": "2026-09-02T15:00:00Z"},
        {"contact_id": omar, "channel": "sms", "type": "campaign", "direction": "outgoing", "body": "Campaign blast", "sent_at": "2026-09-02T16:00:00Z"},
        {"contact_id": omar, "channel": "sms", "type": "live_chat", "direction": "outgoing", "body": "The library opens at 8.", "sent_at": "2026-09-03T12:00:00Z"},
        {"contact_id": nocrm, "channel": "sms", "type": "ai_agent", "direction": "incoming", "body": "No CRM ID here", "sent_at": "2026-09-03T13:00:00Z"}
    ]})).await;
    assert_eq!(status, 201, "{body}");
    let (status, created) = app
        .post("/api/v1/integrations", eab_request(server.port()))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let worker = BackgroundWorker::start(&app, ferry_connectors::Registry::builtin(&app.base));
    let mut violations = Vec::new();

    // Sign-in leads to the overview: each integration with its last run and next run.
    browser.goto(&app.url("/login")).await.unwrap();
    sign_in(&browser).await;
    browser.wait_for_text("h1", "Overview").await.unwrap();
    let row = browser
        .wait_for_text(&format!("#glance-{id}"), "EAB notes")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("Not run yet"), "{row}");
    assert!(row.contains("First run:"), "the next run: {row}");
    violations.extend(axe_violations(&browser).await);

    // The Conversations tool: filters and counts.
    violations.extend(visit_and_check(&browser, &app, "/conversations").await);
    let counts = browser
        .find("#counts-heading")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(counts, "6 messages match");
    browser
        .click_on("#conversation-filters input[name=channel][value=sms]")
        .await
        .unwrap();
    browser
        .click_on("#conversation-filters input[name=direction][value=incoming]")
        .await
        .unwrap();
    browser
        .click_on("#conversation-filters button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_for_text("#counts-heading", "2 messages match")
        .await
        .unwrap();
    let by = browser
        .find("#message-counts")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(by.contains("SMS: 2") && by.contains("Incoming: 2"), "{by}");
    assert!(by.contains("AI agent: 2"), "{by}");
    let table = browser
        .find("#messages")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("café at 3?") && table.contains("No CRM ID here"),
        "{table}"
    );
    assert!(
        !table.contains("Where is the library?"),
        "web chat is filtered out: {table}"
    );
    // A date range and a contact.
    browser
        .goto(&app.url(&format!(
            "/conversations?from=2026-09-02T00%3A00&to=2026-09-03T23%3A59&contact={omar}"
        )))
        .await
        .unwrap();
    browser
        .wait_for_text("#counts-heading", "3 messages match")
        .await
        .unwrap();
    let hint = browser
        .find("#contact-hint")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(hint.contains("Omar Student"), "{hint}");
    browser
        .goto(&app.url("/conversations?contact=nobody"))
        .await
        .unwrap();
    browser
        .wait_for_text(".alert-error", "Contact must be a contact's ID")
        .await
        .unwrap();

    // Preview next run, from the list of SFTP Outbound integrations.
    violations
        .extend(visit_and_check(&browser, &app, "/settings/integrations/sftp-outbound").await);
    browser
        .click_on(&format!("a[href='/settings/integrations/i/{id}/preview']"))
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "Preview next run")
        .await
        .unwrap();
    violations.extend(axe_violations(&browser).await);
    let summary = browser
        .find("#preview-summary")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        summary.contains("would send 3 rows for the 6 new messages"),
        "{summary}"
    );
    assert_eq!(
        browser
            .find("#preview-total")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "3"
    );
    let left_out = browser
        .find("#preview-left-out")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        left_out.contains("Nils Student") && left_out.contains("missing_crm_id"),
        "{left_out}"
    );
    let head = browser
        .find("#preview-head")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        head.starts_with("GradesFirst Import Version=3,Institution ID=77"),
        "{head}"
    );
    let href = browser
        .find("#preview-download")
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let preview = fetch_bytes(&browser, &href).await;
    // Previewing twice changes nothing: no watermark moved.
    assert_eq!(fetch_bytes(&browser, &href).await, preview);
    let (_, listed) = app.get(&format!("/api/v1/integrations/{id}")).await;
    assert!(
        listed["state"].get("watermark").is_none(),
        "the preview moved no watermark: {listed}"
    );

    // Run now; the notice links to the run; the run's page follows it to the end.
    browser
        .goto(&app.url("/settings/integrations/sftp-outbound"))
        .await
        .unwrap();
    browser
        .click_text("#instances button", "Run now")
        .await
        .unwrap();
    browser.click_on("#follow-run").await.unwrap();
    browser.wait_for_text("h1", "Run ").await.unwrap();
    let status = wait_for_any(&browser, "#run-status", &["Success", "Fail", "Skipped"]).await;
    assert!(status.starts_with("Success"), "{status}");
    violations.extend(axe_violations(&browser).await);
    let run_url = browser.current_url().await.unwrap();
    let facts = browser
        .find("#run-facts")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(facts.contains("Run now (manual)"), "{facts}");
    assert!(
        facts.contains("Attempts\n1") || facts.contains("Attempts 1"),
        "{facts}"
    );
    let file = browser
        .find("#run-file")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        file.starts_with("notes_") && file.ends_with(".csv"),
        "{file}"
    );
    let log = browser
        .find("#run-log")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        log.contains("missing_crm_id") && log.contains("Nils Student"),
        "{log}"
    );
    let skipped = browser
        .find("#run-counts tbody td:nth-child(3)")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(skipped, "1", "Nils's messages were left out");

    // The file on the server is the preview, byte for byte.
    let sent = std::fs::read(dir.path().join("inbox").join(&file)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&preview),
        String::from_utf8_lossy(&sent)
    );
    assert_eq!(preview, sent, "the preview is the file, byte for byte");

    // Recent Runs links each run to its page.
    violations.extend(visit_and_check(&browser, &app, "/runs").await);
    let link = browser
        .find("#runs tbody tr a")
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(run_url.ends_with(&link), "{run_url} vs {link}");

    // Now there is nothing new: the preview and the next run say so.
    browser
        .goto(&app.url(&format!("/settings/integrations/i/{id}/preview")))
        .await
        .unwrap();
    browser
        .wait_for_text("#preview-summary", "Skipped: there are no new messages")
        .await
        .unwrap();
    browser
        .goto(&app.url("/settings/integrations/sftp-outbound"))
        .await
        .unwrap();
    browser
        .click_text("#instances button", "Run now")
        .await
        .unwrap();
    browser.click_on("#follow-run").await.unwrap();
    let status = wait_for_any(&browser, "#run-status", &["Success", "Fail", "Skipped"]).await;
    assert!(
        status.contains("Skipped") && status.contains("Nothing new"),
        "{status}"
    );

    // The overview now shows the last run, linked to its page.
    browser.goto(&app.url("/")).await.unwrap();
    let row = browser
        .wait_for_text(&format!("#glance-{id}"), "Skipped")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("Nothing new"), "{row}");
    let log_link = browser
        .find(&format!("#glance-{id} a.sync-log-link"))
        .await
        .unwrap();
    assert_eq!(
        log_link.text().await.unwrap(),
        "1",
        "Nils's missing_crm_id row"
    );
    log_link.click().await.unwrap();
    browser.wait_for_text("h1", "Sync Log").await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert!(
        url.contains(&format!("/settings/sync-log?integration_id={id}&from=")),
        "{url}"
    );
    browser
        .wait_for_text("#sync-log tbody", "missing_crm_id")
        .await
        .unwrap();
    violations.extend(axe_violations(&browser).await);

    // The Sync Log's old address leads there.
    browser
        .goto(&app.url("/sync-log?direction=outgoing"))
        .await
        .unwrap();
    browser.wait_for_text("h1", "Sync Log").await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .ends_with("/settings/sync-log?direction=outgoing")
    );

    // The API reference renders Ferry's OpenAPI document from Ferry's own assets.
    browser.goto(&app.url("/api-reference")).await.unwrap();
    browser
        .wait_for_text("#api-reference", "Ferry API")
        .await
        .unwrap();
    // Drawn from the document: its title and description, a tag per group, an operation.
    let text = wait_for_any(&browser, "#api-reference", &["Who the caller is."]).await;
    assert!(text.contains("Ferry API"), "{text}");
    assert!(text.contains("Open Group - contacts"), "{text}");
    // Ferry's part of the page must be clean; the vendored viewer's own violations are
    // reported (upstream's to fix), not asserted.
    violations.extend(
        axe_violations_of(&browser, "{exclude: [['#api-reference']]}")
            .await
            .into_iter()
            .map(|v| format!("/api-reference: {v}")),
    );
    for v in axe_violations_of(&browser, "{include: [['#api-reference']]}").await {
        eprintln!("NOTE: the vendored Scalar viewer on /api-reference: {v}");
    }
    // "Try it": GET /api/v1/me from the page, with the signed-in session.
    click_by_text(
        &browser,
        "#api-reference a, #api-reference button, #api-reference li",
        "Who the caller is.",
    )
    .await;
    click_by_text(&browser, "button", "Test Request").await;
    click_by_text(&browser, "button", "Send").await;
    wait_for_any(&browser, "body", &[crate::helpers::ADMIN_EMAIL]).await;

    // Every other page the navigation reaches, checked with axe-core.
    let contact_page = format!("/contacts/{rosa}");
    let edit_page = format!("/settings/integrations/i/{id}");
    for path in [
        "/contacts",
        contact_page.as_str(),
        "/errors",
        "/settings/integrations",
        "/settings/integrations/new/eab_notes_export",
        edit_page.as_str(),
        "/settings/fields",
        "/settings/security",
        "/settings/alerts",
        "/settings/sftp-accounts",
        "/settings/bulk-files",
        "/settings/audit-log",
    ] {
        violations.extend(visit_and_check(&browser, &app, path).await);
    }
    // Signed out: the sign-in page and a page that is not there.
    browser
        .execute(
            "document.querySelector('form[action=\"/logout\"]').submit(); return true;",
            vec![],
        )
        .await
        .unwrap();
    browser.wait_for_text("h1", "Sign in").await.unwrap();
    violations.extend(
        axe_violations(&browser)
            .await
            .into_iter()
            .map(|v| format!("/login: {v}")),
    );
    browser.goto(&app.url("/nowhere")).await.unwrap();
    browser.wait_for_text("h1", "Not found").await.unwrap();
    violations.extend(
        axe_violations(&browser)
            .await
            .into_iter()
            .map(|v| format!("404: {v}")),
    );
    assert!(
        violations.is_empty(),
        "serious or critical accessibility violations:\n{}",
        violations.join("\n")
    );

    browser.quit().await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn the_sync_log_moved_under_settings_and_its_csv_gives_local_times() {
    let app = spawn_app().await;
    let (cookie, _) = app.login().await;
    for (old, new) in [
        ("/sync-log", "/settings/sync-log"),
        (
            "/sync-log?direction=incoming&from=2026-01-01T00%3A00",
            "/settings/sync-log?direction=incoming&from=2026-01-01T00%3A00",
        ),
        (
            "/sync-log.csv?direction=outgoing",
            "/settings/sync-log.csv?direction=outgoing",
        ),
    ] {
        let res = app
            .http
            .get(app.url(old))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 308, "{old}");
        assert_eq!(res.headers()["location"], new, "{old}");
    }
    let (status, page) = app.page(&cookie, "/settings/sync-log").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("href=\"/settings/sync-log\" aria-current=\"page\""),
        "the sidebar entry is under Settings"
    );
    // A Sync Log row, and its time in the CSV: the institution's zone with its offset.
    let store = &app.store.store;
    let inst = store.institution_by_slug("state-u").await.unwrap().unwrap();
    store
        .add_sync_log(
            inst.id,
            &[ferry_store::NewSyncLog {
                integration_id: None,
                run_id: None,
                direction: ferry_core::run::SyncDirection::Outgoing,
                contact_id: None,
                code: "missing_crm_id".into(),
                message: "no CRM ID".into(),
            }],
        )
        .await
        .unwrap();
    let (status, csv) = app
        .page(&cookie, "/settings/sync-log.csv?from=2020-01-01T00%3A00")
        .await;
    assert_eq!(status, 200);
    let line = csv.lines().nth(1).unwrap();
    let time = line.split(',').next().unwrap();
    let at: jiff::Timestamp = time.parse().unwrap();
    assert!(
        (jiff::Timestamp::now() - at).get_seconds().abs() < 3600,
        "{time} is about now"
    );
    let zone = jiff::tz::TimeZone::get(&inst.time_zone).unwrap();
    assert_eq!(
        time,
        at.to_zoned(zone)
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        "in {} with its offset",
        inst.time_zone
    );
    // The API's download gives the same.
    let res = app
        .http
        .get(app.url("/api/v1/sync-log.csv?from=2020-01-01T00:00:00Z"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert_eq!(
        body.lines().nth(1).unwrap().split(',').next().unwrap(),
        time
    );
}
