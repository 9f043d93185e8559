//! In a real browser: Settings → Opt-in paths (errors beside their fields, add, edit, delete
//! after the confirmation page), the EveryAction form's opt-in path select (an unknown path is
//! refused on its field), and the Outbox (a queued welcome message marked sent moves to the
//! Sent tab and joins the contact's history); axe-core over every page visited.

use std::time::Duration;

use serde_json::{Value, json};

use crate::browser::sign_in;
use crate::browser_runs::axe_violations;
use crate::helpers::{TestApp, spawn_app};
use crate::webdriver::Browser;

/// Opens `path`, waits for its heading and returns its serious and critical axe violations.
async fn visit(browser: &Browser, app: &TestApp, path: &str) -> Vec<String> {
    browser.goto(&app.url(path)).await.unwrap();
    browser.find("h1").await.unwrap();
    checked(browser, path).await
}

/// The axe violations of the page the browser is on, each prefixed with `what`.
async fn checked(browser: &Browser, what: &str) -> Vec<String> {
    axe_violations(browser)
        .await
        .into_iter()
        .map(|v| format!("{what}: {v}"))
        .collect()
}

/// The text of `css` (empty when it is not on the page).
async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .execute(
            "var e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            vec![json!(css)],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Replaces the value of the input or textarea `css` and submits its form, waiting for the
/// next page.
async fn fill(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await.unwrap();
    input.clear().await.unwrap();
    if !text.is_empty() {
        input.send_keys(text).await.unwrap();
    }
}

/// Waits until the page's URL contains `part`.
async fn wait_for_url(browser: &Browser, part: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let url = browser.current_url().await.unwrap();
        if url.contains(part) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached {part}: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn opt_in_paths_and_the_outbox_in_the_browser() {
    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut violations = Vec::new();
    browser.goto(&app.url("/login")).await.unwrap();
    sign_in(&browser).await;
    browser.find("h1").await.unwrap();

    // The screen, from the Settings navigation.
    violations.extend(visit(&browser, &app, "/contacts").await);
    browser
        .click_on("nav.sidebar a[href='/settings/opt-in-paths']")
        .await
        .unwrap();
    browser.wait_for_text("h1", "Opt-in paths").await.unwrap();
    violations.extend(checked(&browser, "opt-in paths (empty)").await);
    assert!(
        text_of(&browser, "#opt-in-paths")
            .await
            .contains("No opt-in paths yet")
    );

    // Errors are shown beside their field, and what was typed stays.
    browser
        .click_on("#path-form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_for_text("#path-name-error", "name is required")
        .await
        .unwrap();
    violations.extend(checked(&browser, "opt-in paths (name error)").await);
    fill(&browser, "#path-name", "Fall fair").await;
    browser
        .click_on("#path-form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_for_text("#path-welcome-error", "welcome_message is required")
        .await
        .unwrap();
    assert_eq!(
        browser
            .find("#path-name")
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap(),
        json!("Fall fair"),
        "the name typed is kept"
    );
    assert_eq!(
        browser
            .find("#path-welcome")
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert!(
        text_of(&browser, "#path-name-error").await.is_empty(),
        "only the field in error has one"
    );
    violations.extend(checked(&browser, "opt-in paths (welcome error)").await);

    // Added, and listed.
    fill(
        &browser,
        "#path-welcome",
        "Hi from State U! Reply STOP to opt out.",
    )
    .await;
    browser
        .click_on("#path-form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_for_text(".alert-ok", "Added the opt-in path Fall fair.")
        .await
        .unwrap();
    let (_, paths) = app.get("/api/v1/opt-in-paths").await;
    let path_id = paths[0]["id"].as_i64().expect("the path was made");
    let listed = text_of(&browser, &format!("#path-{path_id}")).await;
    assert!(
        listed.contains("Fall fair") && listed.contains("Reply STOP to opt out."),
        "{listed}"
    );
    // A second path with the same name is refused on the name.
    fill(&browser, "#path-name", "Fall fair").await;
    fill(&browser, "#path-welcome", "Again").await;
    browser
        .click_on("#path-form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_for_text("#path-name-error", "exists; choose another name")
        .await
        .unwrap();

    // Edited.
    browser
        .click_on("a[aria-label='Edit Fall fair']")
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "Edit the opt-in path Fall fair")
        .await
        .unwrap();
    violations.extend(checked(&browser, "edit opt-in path").await);
    fill(&browser, "#path-name", "").await;
    browser
        .click_on("#path-form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_for_text("#path-name-error", "name is required")
        .await
        .unwrap();
    violations.extend(checked(&browser, "edit opt-in path (error)").await);
    fill(&browser, "#path-name", "Fall fair 2026").await;
    fill(
        &browser,
        "#path-welcome",
        "Welcome to State U texts, {first}!",
    )
    .await;
    browser
        .click_on("#path-form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_for_text(".alert-ok", "Saved the opt-in path Fall fair 2026.")
        .await
        .unwrap();
    let listed = text_of(&browser, &format!("#path-{path_id}")).await;
    assert!(listed.contains("Welcome to State U texts"), "{listed}");
    let (_, path) = app.get(&format!("/api/v1/opt-in-paths/{path_id}")).await;
    assert_eq!(path["name"], "Fall fair 2026");

    // The EveryAction form offers the paths in a select; an unknown one is refused in place.
    let (status, bad) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "everyaction", "name": "EA", "config": {"login": "ferry", "opt_in_path_id": path_id + 100}, "secrets": {"password": "k"}}),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(bad["error"]["field"], "config.opt_in_path_id", "{bad}");
    let (status, ea) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "everyaction", "name": "EA", "config": {"login": "ferry", "opt_in_path_id": path_id}, "secrets": {"password": "k"}}),
        )
        .await;
    assert_eq!(status, 201, "{ea}");
    let ea_id = ea["id"].as_i64().unwrap();
    violations.extend(visit(&browser, &app, &format!("/settings/integrations/i/{ea_id}")).await);
    let options: Value = browser
        .execute(
            "return Array.from(document.querySelectorAll('select[name=\"config.opt_in_path_id\"] option')).map(function (o) { return [o.value, o.text, o.selected]; });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        options,
        json!([
            ["", "None: no welcome message", false],
            [path_id.to_string(), "Fall fair 2026", true]
        ]),
        "None and the institution's paths, the saved one selected"
    );
    browser
        .execute(
            "var s = document.querySelector('select[name=\"config.opt_in_path_id\"]');
             var o = document.createElement('option'); o.value = arguments[0]; o.text = 'gone'; s.add(o); s.value = arguments[0];
             document.getElementById('integration-form').requestSubmit();",
            vec![json!((path_id + 100).to_string())],
        )
        .await
        .unwrap();
    browser
        .wait_for_text("#config-opt_in_path_id-error", "no opt-in path")
        .await
        .unwrap();
    violations.extend(checked(&browser, "EveryAction form (unknown path)").await);
    let (_, saved) = app.get(&format!("/api/v1/integrations/{ea_id}")).await;
    assert_eq!(
        saved["config"]["opt_in_path_id"], path_id,
        "nothing was saved"
    );
    // None is saved as no path.
    browser
        .execute(
            "var s = document.querySelector('select[name=\"config.opt_in_path_id\"]'); s.value = '';
             document.getElementById('integration-form').requestSubmit();",
            vec![],
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, saved) = app.get(&format!("/api/v1/integrations/{ea_id}")).await;
        if saved["config"]
            .get("opt_in_path_id")
            .is_none_or(Value::is_null)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "None was not saved: {saved}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A welcome message queued for a new contact, seen in the Outbox and marked sent.
    let contact = app.contact("Rosa", "6175550701").await;
    let queued = app
        .store
        .queue_welcome(inst, contact, path_id, None)
        .await
        .unwrap()
        .expect("queued");
    browser
        .click_on("nav.sidebar a[href='/outbox']")
        .await
        .unwrap();
    browser.wait_for_text("h1", "Outbox").await.unwrap();
    violations.extend(checked(&browser, "outbox (queued)").await);
    let row = text_of(&browser, &format!("#outbox-{}", queued.id)).await;
    assert!(
        row.contains("Rosa Student")
            && row.contains("Fall fair 2026")
            && row.contains("Welcome to State U texts"),
        "{row}"
    );
    browser
        .click_on(&format!("#outbox-{} button[type=submit]", queued.id))
        .await
        .unwrap();
    browser
        .wait_for_text(
            "#outbox-notice",
            &format!("Marked message {} sent", queued.id),
        )
        .await
        .unwrap();
    assert!(
        text_of(&browser, "#outbox")
            .await
            .contains("Nothing is waiting to be sent"),
        "the queue is empty"
    );
    browser.click_on("#tab-sent").await.unwrap();
    wait_for_url(&browser, "status=sent").await;
    browser
        .find(&format!("#outbox-{}", queued.id))
        .await
        .unwrap();
    violations.extend(checked(&browser, "outbox (sent)").await);
    let (_, sent) = app.get("/api/v1/outbox?status=sent").await;
    assert_eq!(sent[0]["id"], queued.id, "{sent}");
    let message_id = sent[0]["message_id"].as_i64().expect("in the history");
    let (_, history) = app
        .get(&format!("/api/v1/messages?contact={contact}"))
        .await;
    let text = history.to_string();
    assert!(
        text.contains(&format!("\"id\":{message_id}")) && text.contains("Welcome to State U texts"),
        "{history}"
    );

    // Deleted after the confirmation page, which says what happens.
    violations.extend(visit(&browser, &app, "/settings/opt-in-paths").await);
    browser
        .click_on("a[aria-label='Delete Fall fair 2026']")
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "Delete the opt-in path Fall fair 2026?")
        .await
        .unwrap();
    violations.extend(checked(&browser, "delete opt-in path").await);
    assert!(
        text_of(&browser, "#path-queued")
            .await
            .contains("No message of this path is waiting"),
        "the one message was sent"
    );
    browser.click_on("#confirm-delete").await.unwrap();
    browser
        .wait_for_text(".alert-ok", "Deleted the opt-in path Fall fair 2026.")
        .await
        .unwrap();
    assert!(
        text_of(&browser, "#opt-in-paths")
            .await
            .contains("No opt-in paths yet")
    );
    let (status, _) = app.get(&format!("/api/v1/opt-in-paths/{path_id}")).await;
    assert_eq!(status, 404);

    assert!(
        violations.is_empty(),
        "axe-core found serious or critical problems:\n{}",
        violations.join("\n")
    );
    browser.quit().await.unwrap();
}
