//! Seed 001's everyday contact work in a real browser (headless Chromium): create and edit with
//! `UNSET`, a test user, archive, menus that close on Escape and a click outside, the CSV
//! upload with its progress bar, report and failed rows, link targets that land in view below
//! the sticky top bar; axe-core on every page opened (no "serious" or "critical" violation);
//! and screenshots of the main screens into `docs/screenshots/`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser_runs::assert_no_axe_violations;
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, spawn_app};
use crate::webdriver::Browser;

async fn sign_in(browser: &Browser) {
    browser
        .find("#email")
        .await
        .unwrap()
        .send_keys(ADMIN_EMAIL)
        .await
        .unwrap();
    browser
        .find("#password")
        .await
        .unwrap()
        .send_keys(ADMIN_PASSWORD)
        .await
        .unwrap();
    browser.click_on("button[type=submit]").await.unwrap();
}

async fn fill(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await.unwrap();
    input.clear().await.unwrap();
    if !text.is_empty() {
        input.send_keys(text).await.unwrap();
    }
}

async fn js(browser: &Browser, script: &str) -> Value {
    browser.execute(script, vec![]).await.unwrap()
}

/// Waits until the page's path (and query) ends with `suffix`.
async fn wait_for_url(browser: &Browser, suffix: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = browser.current_url().await.unwrap();
        if url.ends_with(suffix) {
            return;
        }
        assert!(Instant::now() < deadline, "still at {url}, not {suffix}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves a PNG of the viewport as `docs/screenshots/<name>.png` in the repository.
pub(crate) async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot_png().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Whether the element is in the viewport, below the sticky top bar, and the element drawn at
/// its middle is itself (not covered by the bar).
async fn lands_in_view(browser: &Browser, css: &str) -> Value {
    browser
        .execute(
            "var el = document.querySelector(arguments[0]); if (!el) return 'missing'; \
             var r = el.getBoundingClientRect(); \
             var bar = document.querySelector('.topbar').getBoundingClientRect().bottom; \
             var x = r.left + Math.min(r.width / 2, 40), y = r.top + Math.min(r.height / 2, 10); \
             var hit = document.elementFromPoint(x, y); \
             return {top: r.top, bar: bar, bottom: r.bottom, height: window.innerHeight, \
                     covered: !(hit && (el === hit || el.contains(hit)))};",
            vec![json!(css)],
        )
        .await
        .unwrap()
}

fn assert_in_view(v: &Value, what: &str) {
    let top = v["top"].as_f64().unwrap_or(-1.0);
    let bar = v["bar"].as_f64().unwrap();
    let height = v["height"].as_f64().unwrap();
    assert!(
        top >= bar && top < height && v["covered"] == json!(false),
        "{what} is hidden or out of view: {v}"
    );
}

async fn messages(app: &TestApp, contact: i64, n: usize) -> i64 {
    let list: Vec<Value> = (0..n)
        .map(|i| {
            json!({"contact_id": contact, "channel": "sms", "type": "ai_agent",
                   "direction": if i % 2 == 0 { "outgoing" } else { "incoming" },
                   "body": format!("Message number {i} about registration."),
                   "sent_at": format!("2026-09-01T{:02}:{:02}:00Z", 10 + i / 60, i % 60)})
        })
        .collect();
    let (status, body) = app
        .post("/api/v1/messages", json!({"messages": list}))
        .await;
    assert_eq!(status, 201, "{body}");
    let all = body["messages"].as_array().unwrap();
    // A message early in the conversation, far above where the page opens.
    all.iter()
        .find(|m| m["body"] == "Message number 3 about registration.")
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn contacts_edit_archive_test_user_upload_and_link_targets_in_a_real_browser() {
    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    app.post(
        "/api/v1/fields",
        json!({"name": "major", "label": "Major", "kind": "text"}),
    )
    .await;
    for (name, phone) in [
        ("Amara", "6175550301"),
        ("Bodhi", "6175550302"),
        ("Chiara", "6175550303"),
        ("Dmitri", "6175550304"),
    ] {
        app.contact(name, phone).await;
    }
    let talker = app.contact("Elena", "6175550305").await;
    let early = messages(&app, talker, 60).await;

    browser.set_window_size(1280, 860).await.unwrap();
    browser.goto(&app.url("/contacts")).await.unwrap();
    sign_in(&browser).await;
    browser.wait_for_text("h1", "Contacts").await.unwrap();
    browser
        .wait_for_text("#contacts-count", "5 contacts in all")
        .await
        .unwrap();
    assert_no_axe_violations(&browser, "Contacts").await;
    screenshot(&browser, "contacts").await;

    // The count follows the search.
    fill(&browser, "#q", "am").await;
    browser.click_on("form[role=search] button").await.unwrap();
    wait_for_url(&browser, "archived=").await;
    browser
        .wait_for_text("#contacts-count", "1 contact matches")
        .await
        .unwrap();

    // Create.
    browser.click_on("#new-contact").await.unwrap();
    browser.wait_for_text("h1", "New contact").await.unwrap();
    assert_no_axe_violations(&browser, "New contact").await;
    fill(&browser, "#f-first_name", "Farah").await;
    fill(&browser, "#f-last_name", "Haddad").await;
    fill(&browser, "#f-preferred_name", "Fa").await;
    fill(&browser, "#f-phone", "(617) 555-0310").await;
    fill(&browser, "#f-crm_id", "CRM-310").await;
    fill(&browser, "#f-custom-major", "Chemistry").await;
    browser.click_on("#save").await.unwrap();
    browser
        .wait_for_text("#notice", "The contact was created.")
        .await
        .unwrap();
    browser.wait_for_text("h1", "Fa Haddad").await.unwrap();
    let url = browser.current_url().await.unwrap();
    let id: i64 = url
        .rsplit("/contacts/")
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_no_axe_violations(&browser, "a contact").await;

    // Edit: the page says how blanks and UNSET behave; a blank keeps, UNSET clears.
    browser.click_on("#edit-contact").await.unwrap();
    browser.wait_for_text("h1", "Edit Fa Haddad").await.unwrap();
    browser
        .wait_for_text("#unset-help", "keeps the value it has")
        .await
        .unwrap();
    assert_no_axe_violations(&browser, "Edit contact").await;
    fill(&browser, "#f-preferred_name", "").await;
    fill(&browser, "#f-crm_id", "UNSET").await;
    fill(&browser, "#f-custom-major", "UNSET").await;
    fill(&browser, "#f-last_name", "Haddad-Saleh").await;
    browser.click_on("#save").await.unwrap();
    browser
        .wait_for_text("#notice", "Your changes were saved.")
        .await
        .unwrap();
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["preferred_name"], "Fa", "a blank keeps the value: {c}");
    assert_eq!(c["last_name"], "Haddad-Saleh");
    assert_eq!(c["crm_id"], Value::Null, "UNSET cleared the CRM ID");
    assert!(
        c["custom"].get("major").is_none(),
        "UNSET cleared Major: {c}"
    );

    // A bad phone: nothing saved, the error beside the field, focus-able summary in view.
    browser.click_on("#edit-contact").await.unwrap();
    browser.wait_for_text("h1", "Edit").await.unwrap();
    fill(&browser, "#f-phone", "12").await;
    fill(&browser, "#f-city", "Boston").await;
    browser.click_on("#save").await.unwrap();
    browser
        .wait_for_text("#form-errors", "Nothing was saved.")
        .await
        .unwrap();
    browser.find("#f-phone-error").await.unwrap();
    assert_no_axe_violations(&browser, "Edit contact with an error").await;
    browser
        .click_on("#form-errors a[href='#f-phone']")
        .await
        .unwrap();
    assert_in_view(
        &lands_in_view(&browser, "#f-phone").await,
        "the phone field",
    );
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["city"], Value::Null, "nothing of the bad save applied");
    browser
        .goto(&app.url(&format!("/contacts/{id}")))
        .await
        .unwrap();

    // The menu closes on Escape (focus back on its button) and on a click outside.
    let open = async || {
        js(
            &browser,
            "return document.querySelector('#contact-menu').open;",
        )
        .await
    };
    browser.click_on("#contact-menu summary").await.unwrap();
    assert_eq!(open().await, json!(true));
    assert_no_axe_violations(&browser, "a contact with its menu open").await;
    browser
        .find("#contact-menu summary")
        .await
        .unwrap()
        .send_keys("\u{E00C}")
        .await
        .unwrap();
    assert_eq!(open().await, json!(false), "Escape closes the menu");
    assert_eq!(
        js(
            &browser,
            "return document.activeElement === document.querySelector('#contact-menu summary');"
        )
        .await,
        json!(true),
        "the focus is back on the menu's button"
    );
    browser.click_on("#contact-menu summary").await.unwrap();
    assert_eq!(open().await, json!(true));
    browser.click_on("h1").await.unwrap();
    assert_eq!(
        open().await,
        json!(false),
        "a click outside closes the menu"
    );

    // Test user: marked from the menu; the page says it is never synced.
    browser.click_on("#contact-menu summary").await.unwrap();
    browser.click_on("#test-user-toggle").await.unwrap();
    browser
        .wait_for_text("#notice", "no integration will sync it")
        .await
        .unwrap();
    browser
        .wait_for_text("#test-user-note", "never synced")
        .await
        .unwrap();
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["test_user"], true);
    browser.click_on("#contact-menu summary").await.unwrap();
    browser
        .wait_for_text("#test-user-toggle", "Unmark test user")
        .await
        .unwrap();

    // Archive, then un-archive.
    browser.click_on("#archive-toggle").await.unwrap();
    browser
        .wait_for_text("#notice", "The contact was archived.")
        .await
        .unwrap();
    browser
        .wait_for_text("#archived-note", "takes it out of the archive")
        .await
        .unwrap();
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["archived"], true);
    browser.click_on("#contact-menu summary").await.unwrap();
    browser.click_on("#archive-toggle").await.unwrap();
    browser
        .wait_for_text("#notice", "taken out of the archive")
        .await
        .unwrap();
    browser.click_on("#contact-menu summary").await.unwrap();
    browser.click_on("#test-user-toggle").await.unwrap();
    browser
        .wait_for_text("#notice", "no longer a test user")
        .await
        .unwrap();

    // CSV upload with a bad row: progress, report, failed rows.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fall-students.csv");
    std::fs::write(
        &file,
        "first_name,last_name,phone,major\r\n\
         Gus,Ito,6175550320,Physics\r\n\
         Hana,Bad,555,History\r\n\
         Amara,Student,6175550301,Art\r\n",
    )
    .unwrap();
    browser.goto(&app.url("/contacts")).await.unwrap();
    browser.click_on("#upload-csv").await.unwrap();
    browser
        .wait_for_text("h1", "Upload contacts")
        .await
        .unwrap();
    assert_no_axe_violations(&browser, "Upload contacts").await;
    browser
        .find("#import-file")
        .await
        .unwrap()
        .send_keys(&file.to_string_lossy())
        .await
        .unwrap();
    browser.click_on("#import-submit").await.unwrap();
    browser
        .wait_for_text("#import-report", "Import report")
        .await
        .unwrap();
    assert_eq!(
        js(
            &browser,
            "return document.querySelector('#import-bar').value;"
        )
        .await,
        json!(100),
        "the bar followed the upload to the end"
    );
    browser
        .wait_for_text("#import-bar-label", "Uploaded fall-students.csv")
        .await
        .unwrap();
    browser.wait_for_text("#report-created", "1").await.unwrap();
    browser.wait_for_text("#report-updated", "1").await.unwrap();
    browser.wait_for_text("#report-skipped", "1").await.unwrap();
    let row = browser
        .wait_for_text("#skipped-rows tbody tr", "invalid_phone")
        .await
        .unwrap();
    assert!(
        row.text().await.unwrap().starts_with('3'),
        "row 3 is Hana's"
    );
    let link = browser.find("#failed-rows").await.unwrap();
    assert_eq!(
        link.attr("download").await.unwrap().as_deref(),
        Some("fall-students-failed-rows.csv")
    );
    // The page's CSP keeps scripts from reading the data: URL; decode it here.
    let href = link.attr("href").await.unwrap().unwrap();
    let body = href
        .strip_prefix("data:text/csv;charset=utf-8,")
        .expect("a CSV data URL");
    let failed = form_urlencoded::parse(format!("x={body}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    assert_eq!(
        failed, "first_name,last_name,phone,major\r\nHana,Bad,555,History\r\n",
        "the failed rows, ready to fix and upload again"
    );
    assert_no_axe_violations(&browser, "the import report").await;
    screenshot(&browser, "contacts-upload").await;

    // The reason links to the error dictionary, whose row lands below the top bar, highlighted.
    browser
        .click_on("#skipped-rows a[href='/errors#invalid_phone']")
        .await
        .unwrap();
    wait_for_url(&browser, "/errors#invalid_phone").await;
    assert_in_view(
        &lands_in_view(&browser, "tr#invalid_phone").await,
        "the error dictionary's row",
    );
    let bg = js(
        &browser,
        "return getComputedStyle(document.querySelector('tr#invalid_phone td')).backgroundColor;",
    )
    .await;
    assert_eq!(bg, json!("rgb(255, 244, 214)"), "the target is highlighted");
    assert_no_axe_violations(&browser, "Error dictionary").await;

    // An exported message link: the message is brought into view below the bar, highlighted.
    browser
        .goto(&app.url(&format!("/contacts/{talker}?message={early}")))
        .await
        .unwrap();
    browser
        .wait_for_text(&format!("#m{early}"), "Message number 3")
        .await
        .unwrap();
    assert_in_view(
        &lands_in_view(&browser, &format!("#m{early}")).await,
        "the linked message",
    );
    assert_eq!(
        js(&browser, "return document.activeElement.id;").await,
        json!(format!("m{early}"))
    );
    assert_no_axe_violations(&browser, "a contact's conversation").await;
    browser
        .goto(&app.url(&format!("/contacts/{talker}")))
        .await
        .unwrap();
    screenshot(&browser, "contact").await;

    // Custom fields: rename, then the delete page says what happens to the values.
    browser.goto(&app.url("/settings/fields")).await.unwrap();
    assert_no_axe_violations(&browser, "Custom fields").await;
    fill(&browser, "#label-major", "Major (declared)").await;
    browser
        .click_on("button[aria-label='Rename major']")
        .await
        .unwrap();
    browser
        .wait_for_text(".alert-ok", "keeps its name")
        .await
        .unwrap();
    browser
        .click_on("a[aria-label='Delete major']")
        .await
        .unwrap();
    browser
        .wait_for_text("#field-values", "stored for 2 contacts")
        .await
        .unwrap();
    assert_no_axe_violations(&browser, "Delete a custom field").await;
    browser.quit().await.unwrap();
}

/// The upload form with JavaScript turned off in the browser: the form itself is posted
/// (multipart, its `_csrf` field before the file) and the upload page comes back whole with the
/// report in it.
#[tokio::test]
async fn csv_upload_without_javascript_in_a_real_browser() {
    let Some(browser) = crate::helpers::browser_without_javascript_or_skip().await else {
        return;
    };
    let app = crate::helpers::spawn_app_with(ferry_web::WebConfig {
        max_import_bytes: 64 * 1024,
        ..Default::default()
    })
    .await;
    app.contact("Amara", "6175550301").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("winter-students.csv");
    std::fs::write(
        &file,
        "first_name,last_name,phone\r\n\
         Gus,Ito,6175550320\r\n\
         Hana,Bad,555\r\n\
         Amara,Student,6175550301\r\n",
    )
    .unwrap();

    browser.goto(&app.url("/contacts/import")).await.unwrap();
    sign_in(&browser).await;
    let input = browser.find("#import-file").await.unwrap();
    assert_eq!(
        browser.find("h1").await.unwrap().text().await.unwrap(),
        "Upload contacts"
    );
    input.send_keys(&file.to_string_lossy()).await.unwrap();
    browser.click_on("#import-submit").await.unwrap();

    let text = |css: &'static str| {
        let browser = &browser;
        async move { browser.find(css).await.unwrap().text().await.unwrap() }
    };
    assert_eq!(text("#report-created").await, "1");
    assert_eq!(text("#report-updated").await, "0");
    assert_eq!(text("#report-unchanged").await, "1");
    assert_eq!(text("#report-skipped").await, "1");
    let rows = browser.find_all("#skipped-rows tbody tr").await.unwrap();
    assert_eq!(rows.len(), 1, "one bad row");
    let row = rows[0].text().await.unwrap();
    assert!(row.starts_with('3'), "row 3 is Hana's: {row}");
    assert!(
        row.contains("\"555\" is not a valid phone number") && row.contains("invalid_phone"),
        "the reason and its code: {row}"
    );
    assert_eq!(
        browser
            .find("#failed-rows")
            .await
            .unwrap()
            .attr("download")
            .await
            .unwrap()
            .as_deref(),
        Some("winter-students-failed-rows.csv")
    );
    // A whole page, not a bare fragment: the heading, the navigation and the form for the next
    // file are there.
    assert_eq!(text("h1").await, "Upload contacts");
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .ends_with("/contacts/import")
    );
    browser.find("nav a[href='/contacts']").await.unwrap();
    browser.find("#import-form #import-file").await.unwrap();
    // No script ran: the page's script would have shown the progress box.
    assert!(
        browser
            .find("#import-progress")
            .await
            .unwrap()
            .attr("hidden")
            .await
            .unwrap()
            .is_some(),
        "JavaScript is off in this browser"
    );
    let (_, list) = app.get("/api/v1/contacts").await;
    assert_eq!(list["contacts"].as_array().unwrap().len(), 2);

    // A file far over the limit: the browser shows the refusal, not a broken connection.
    let big = dir.path().join("everyone.csv");
    let mut csv = String::from("first_name,last_name,phone\r\n");
    for i in 0..200_000 {
        csv.push_str(&format!("A{i},B,6175550320\r\n"));
    }
    std::fs::write(&big, csv).unwrap();
    browser
        .find("#import-file")
        .await
        .unwrap()
        .send_keys(&big.to_string_lossy())
        .await
        .unwrap();
    browser.click_on("#import-submit").await.unwrap();
    let refusal = browser
        .find("#import-report .alert-error")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        refusal.contains("The file was refused and nothing was imported.")
            && refusal.contains("(64 KiB)")
            && refusal.contains("payload_too_large"),
        "{refusal}"
    );
    let (_, list) = app.get("/api/v1/contacts").await;
    assert_eq!(list["contacts"].as_array().unwrap().len(), 2);
    browser.quit().await.unwrap();
}

/// The integration screens the README shows: an SFTP export's configuration (with the IP allow
/// list section and inline SVG icons) and Recent Runs with a finished run; axe-core on both.
#[tokio::test]
async fn integration_configuration_and_recent_runs_screens() {
    use ferry_sftp::server::TestServer;
    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    let server = TestServer::builder(dir.path())
        .password("eab", "sftp-pass-1")
        .start()
        .await
        .unwrap();
    let contact = app.contact("Rosa", "6175550371").await;
    app.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/contacts/{contact}"),
        &app.admin_token,
        Some(json!({"crm_id": "EAB-77"})),
    )
    .await;
    app.post("/api/v1/messages", json!({"messages": [
        {"contact_id": contact, "channel": "sms", "type": "ai_agent", "direction": "incoming", "body": "Where is the FAFSA form?", "sent_at": "2026-09-01T14:00:00Z"}
    ]})).await;
    let (status, created) = app
        .post(
            "/api/v1/integrations",
            json!({
                "type": "eab_notes_export",
                "name": "EAB nightly notes",
                "description": "Advising notes for EAB",
                "enabled": true,
                "config": {
                    "sftp": {"host": "127.0.0.1", "port": server.port(), "username": "eab", "directory": "inbox", "host_key": server.host_key_fingerprint()},
                    "schedule": {"blocks": [0, 7]},
                    "filters": {"channels": ["sms"], "types": ["ai_agent", "live_chat"], "directions": ["incoming", "outgoing"]},
                    "eab": {"import_version": "3", "institution_id": "77", "group_id": "group_id", "dedupe_contacts": false,
                            "is_private": true, "student_viewable": false, "show_on_student_report": true,
                            "created_by": "Ferry", "note_reasons": "Advising", "note_body": "{first_name}: {message}"}
                },
                "secrets": {"password": "sftp-pass-1"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let worker = ferry_worker::Worker::new(
        app.store.store.clone(),
        ferry_connectors::Registry::builtin(&app.base),
        ferry_worker::WorkerConfig {
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));

    browser.set_window_size(1280, 860).await.unwrap();
    browser
        .goto(&app.url(&format!("/settings/integrations/i/{id}")))
        .await
        .unwrap();
    sign_in(&browser).await;
    browser
        .wait_for_text("#egress-ips", "FERRY_EGRESS_IPS")
        .await
        .unwrap();
    assert_no_axe_violations(&browser, "an integration's configuration").await;
    screenshot(&browser, "integration-configuration").await;

    browser
        .goto(&app.url("/settings/integrations/sftp-outbound"))
        .await
        .unwrap();
    // The row's icons are inline SVG, never emoji (which render as empty boxes without an
    // emoji font).
    browser
        .wait_for_text("#instances", "EAB nightly notes")
        .await
        .unwrap();
    let html = browser.page_source().await.unwrap();
    assert!(
        !html.contains('\u{1F5D1}') && !html.contains('\u{270E}'),
        "no emoji icons"
    );
    assert_eq!(
        js(
            &browser,
            "return document.querySelectorAll('#instances svg.icon').length;"
        )
        .await,
        json!(2),
        "edit and delete are SVG icons"
    );
    assert_eq!(
        js(
            &browser,
            "var b = document.querySelector('#instances .actions-cell button'); return b.getBoundingClientRect().height < 2 * parseFloat(getComputedStyle(b).lineHeight) ;"
        )
        .await,
        json!(true),
        "Run now stays on one line"
    );
    assert_no_axe_violations(&browser, "SFTP Outbound").await;
    app.post(&format!("/api/v1/integrations/{id}/runs"), json!({}))
        .await;
    browser.goto(&app.url("/runs")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = js(
            &browser,
            "var r = document.querySelector('#runs tbody tr'); return r ? r.innerText : '';",
        )
        .await;
        let text = text.as_str().unwrap_or_default().to_string();
        if text.contains("Success") {
            break;
        }
        assert!(!text.contains("Fail"), "the run failed: {text}");
        assert!(Instant::now() < deadline, "the run did not finish: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_no_axe_violations(&browser, "Recent Runs").await;
    screenshot(&browser, "recent-runs").await;
    browser.quit().await.unwrap();
    let _ = stop.send(());
    task.await.unwrap();
}
