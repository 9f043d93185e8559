//! A real browser (headless Chromium through chromedriver) signs in, searches and opens a
//! contact. Without Chromium the test says it was skipped, except under `CI=true`, where it fails.

use std::time::Duration;

use ferry_sftp::server::TestServer;
use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app};
use crate::webdriver::Browser;

/// Fills in and submits the sign-in form the browser is on.
pub(crate) async fn sign_in(browser: &Browser) {
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

/// A worker beside the web app, as `ferry serve` runs one.
pub(crate) struct BackgroundWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl BackgroundWorker {
    pub(crate) fn start(
        app: &crate::helpers::TestApp,
        registry: ferry_connectors::Registry,
    ) -> BackgroundWorker {
        let worker = ferry_worker::Worker::new(
            app.store.store.clone(),
            registry,
            ferry_worker::WorkerConfig {
                poll_interval: Duration::from_millis(100),
                ..Default::default()
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
        BackgroundWorker { stop, task }
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// On Recent Runs (which refreshes itself while a run is queued or running), waits until the
/// newest run is a Success of type `type_label`; fails at once on a Fail.
async fn wait_for_newest_run_success(browser: &Browser, type_label: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Read in the page: the table refreshes itself, so an element found a moment ago may be gone.
        let text = first_run_row(browser).await;
        if text.contains("Success") {
            assert!(text.contains(type_label), "{text}");
            return;
        }
        assert!(!text.contains("Fail"), "the run failed: {text}");
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not finish: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The text of the newest row of Recent Runs (empty while there is none).
async fn first_run_row(browser: &Browser) -> String {
    let v = browser
        .execute(
            "var r = document.querySelector('#runs tbody tr'); return r ? r.innerText : '';",
            vec![],
        )
        .await
        .unwrap();
    v.as_str().unwrap_or_default().to_string()
}

/// Types into the input `css`, replacing what it holds.
pub(crate) async fn fill(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

#[tokio::test]
async fn sign_in_search_and_open_a_contact() {
    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    for (name, phone) in [
        ("Amara", "6175550301"),
        ("Bodhi", "6175550302"),
        ("Chiara", "6175550303"),
    ] {
        app.contact(name, phone).await;
    }
    let id = app.contact("Dmitri", "6175550304").await;
    app.post("/api/v1/messages", serde_json::json!({"messages": [
        {"contact_id": id, "channel": "sms", "type": "ai_agent", "direction": "outgoing", "body": "Hi Dmitri, registration opens Monday.", "sent_at": "2026-09-01T14:00:00Z"},
        {"contact_id": id, "channel": "sms", "type": "ai_agent", "direction": "incoming", "body": "Thanks! What time?", "sent_at": "2026-09-01T14:05:00Z"}
    ]})).await;

    browser.goto(&app.url("/contacts")).await.unwrap();
    assert!(
        browser.current_url().await.unwrap().contains("/login"),
        "signed-out visitors land on the sign-in page"
    );
    sign_in(&browser).await;
    browser.wait_for_text("h1", "Contacts").await.unwrap();
    browser
        .wait_for_text("#contacts", "Amara Student")
        .await
        .unwrap();

    browser
        .find("#q")
        .await
        .unwrap()
        .send_keys("dmitri")
        .await
        .unwrap();
    browser.click_on("form[role=search] button").await.unwrap();
    // Dmitri is on the unfiltered page too: wait for the search's page, not just his name.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !browser.current_url().await.unwrap().contains("q=dmitri") {
        assert!(
            std::time::Instant::now() < deadline,
            "the search did not load its page"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    browser
        .wait_for_text("#contacts", "Dmitri Student")
        .await
        .unwrap();
    let rows = browser.find_all("#contacts tbody tr").await.unwrap();
    assert_eq!(rows.len(), 1, "the search narrowed the list");

    browser.click_on("#contacts tbody a").await.unwrap();
    browser.wait_for_text("h1", "Dmitri Student").await.unwrap();
    browser
        .wait_for_text(".conversation", "registration opens Monday")
        .await
        .unwrap();
    browser
        .wait_for_text(".msg.incoming", "What time?")
        .await
        .unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .ends_with(&format!("/contacts/{id}"))
    );
    browser.quit().await.unwrap();
}

/// Seed 000's setup, through the screens: Settings > SFTP Outbound > + New Integration > New EAB
/// Notes Export, the SFTP credentials, Test Connection, the EAB fields, Save; then Run now from
/// the list's menu, and the run in Recent Runs. The file arrives on a real SFTP server.
#[tokio::test]
async fn create_test_save_and_run_an_eab_export_through_the_screens() {
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
    // A worker beside the web app, as `ferry serve` runs one.
    let worker = BackgroundWorker::start(&app, ferry_connectors::Registry::builtin(&app.base));

    // The old address leads to SFTP Outbound's generic page.
    browser.goto(&app.url("/settings/sftp")).await.unwrap();
    sign_in(&browser).await;
    browser.wait_for_text("h1", "SFTP Outbound").await.unwrap();
    browser
        .click_on("a[href='/settings/integrations/new/eab_notes_export']")
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "New EAB Notes Export")
        .await
        .unwrap();
    fill(&browser, "#name", "EAB nightly notes").await;
    fill(&browser, "#description", "Advising notes for EAB").await;
    fill(&browser, "#config-sftp-username", "eab").await;
    fill(&browser, "#config-sftp-host", "127.0.0.1").await;
    // Two mistakes: a port out of range, and no EAB institution ID.
    fill(&browser, "#config-sftp-port", "99999").await;
    fill(&browser, "#secrets-password", "sftp-pass-1").await;
    fill(&browser, "#config-sftp-directory", "inbox").await;
    fill(&browser, "#config-eab-import_version", "4").await;
    fill(&browser, "#config-eab-created_by", "Mainstay").await;
    fill(
        &browser,
        "#config-eab-note_body",
        "{first_name} asked: {message}",
    )
    .await;
    browser.find("#save").await.unwrap().click().await.unwrap();
    browser
        .wait_for_text("#form-errors", "2 things need fixing; nothing was saved.")
        .await
        .unwrap();
    browser
        .wait_for_text(
            "#config-sftp-port-error",
            "Enter a whole number from 1 to 65535",
        )
        .await
        .unwrap();
    browser
        .wait_for_text("#config-eab-institution_id-error", "Required")
        .await
        .unwrap();
    let focused = browser
        .execute("return document.activeElement.id;", vec![])
        .await
        .unwrap();
    assert_eq!(
        focused,
        json!("config-sftp-port"),
        "the first error has the focus"
    );
    let kept = browser
        .find("#secrets-password")
        .await
        .unwrap()
        .attr("placeholder")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(kept.contains("kept from your last try"), "{kept}");
    let typed = browser
        .find("#config-eab-note_body")
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        typed,
        json!("{first_name} asked: {message}"),
        "nothing typed is lost"
    );
    fill(&browser, "#config-sftp-port", &server.port().to_string()).await;
    fill(&browser, "#config-eab-institution_id", "1234").await;

    // Test Connection uses the kept password.
    browser.click_on("#test-connection").await.unwrap();
    browser
        .wait_for_text("#test-result", "Connection succeeded")
        .await
        .unwrap();
    browser
        .wait_for_text("#test-result", &server.host_key_fingerprint())
        .await
        .unwrap();

    browser.find("#save").await.unwrap().click().await.unwrap();
    browser
        .wait_for_text(".alert-ok", "The integration was created")
        .await
        .unwrap();
    let row = browser
        .wait_for_text("#instances tbody tr", "EAB nightly notes")
        .await
        .unwrap();
    let text = row.text().await.unwrap();
    assert!(text.contains("EAB Notes"), "{text}");
    assert!(text.contains("eab@127.0.0.1:"), "where it sends: {text}");
    let (_, all) = app.get("/api/v1/integrations").await;
    assert_eq!(
        all[0]["config"]["sftp"]["host_key"],
        server.host_key_fingerprint(),
        "Save pinned the key Test Connection saw"
    );
    assert_eq!(all[0]["secrets"]["password"], true);

    browser
        .click_text("#instances button", "Run now")
        .await
        .unwrap();
    browser
        .wait_for_text(".alert-ok", "A run was queued")
        .await
        .unwrap();

    // Recent Runs refreshes itself while the run is queued or running.
    browser.goto(&app.url("/runs")).await.unwrap();
    browser
        .wait_for_text("#runs tbody tr", "EAB nightly notes")
        .await
        .unwrap();
    wait_for_newest_run_success(&browser, "EAB Notes").await;
    let files: Vec<_> = std::fs::read_dir(dir.path().join("inbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("eab_notes_") && files[0].ends_with(".csv"));
    let bytes = std::fs::read_to_string(dir.path().join("inbox").join(&files[0])).unwrap();
    assert!(
        bytes.starts_with("GradesFirst Import Version=4,Institution ID=1234\r\nnote,add,EAB-77,group_id,N,N,N,09/01/2026,Mainstay,Rosa asked: Where is the FAFSA form?,"),
        "{bytes}"
    );
    browser.quit().await.unwrap();
    worker.stop().await;
}

/// Seed 002 through the generic screens: Browse Available → HubSpot → Add New (incoming) → the form,
/// connecting a HubSpot account in the OAuth pop-up, the mapping from HubSpot's properties,
/// Finish; Run now; the run in Recent Runs; the Sync Log row of a contact with a conflict; and
/// Download Logs.
#[tokio::test]
async fn a_hubspot_instance_through_the_generic_form_with_the_oauth_popup() {
    use ferry_connectors::hubspot::HubSpotSettings;
    use ferry_connectors::hubspot::oauth::OAuthApp;
    use ferry_emulators::hubspot::{
        DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, SeedContact,
    };

    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let hub = ferry_emulators::hubspot::start(EmulatorConfig::default())
        .await
        .unwrap();
    let settings = HubSpotSettings {
        api_url: hub.base_url().to_string(),
        auth_url: format!("{}/oauth/authorize", hub.base_url()),
        app: Some(OAuthApp {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string().into(),
        }),
        ..HubSpotSettings::default()
    };
    let app = crate::helpers::spawn_app_with_hubspot(Default::default(), settings.clone()).await;
    // In Ferry: Quinn, with CRM ID 999. In HubSpot: a contact with Quinn's phone under another
    // ID (a conflict), and a new person.
    let quinn = app.contact("Quinn", "6175550381").await;
    app.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/contacts/{quinn}"),
        &app.admin_token,
        Some(json!({"crm_id": "999"})),
    )
    .await;
    hub.state()
        .seed_contacts([
            SeedContact::new([
                ("firstname", "Quinn"),
                ("lastname", "Student"),
                ("phone", "(617) 555-0381"),
                ("email", "quinn@state.edu"),
            ]),
            SeedContact::new([
                ("firstname", "Rhea"),
                ("lastname", "Nwosu"),
                ("phone", "(617) 555-0382"),
                ("email", "rhea@state.edu"),
            ]),
        ])
        .unwrap();
    let worker = BackgroundWorker::start(
        &app,
        ferry_connectors::Registry::builtin_with(&app.base, &settings),
    );

    browser
        .goto(&app.url("/settings/integrations"))
        .await
        .unwrap();
    sign_in(&browser).await;
    browser.wait_for_text("h1", "Integrations").await.unwrap();
    browser
        .click_on("a[aria-label='Learn More about HubSpot']")
        .await
        .unwrap();
    browser.wait_for_text("h1", "HubSpot").await.unwrap();
    browser
        .click_on("a[href='/settings/integrations/new/hubspot_incoming']")
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "New HubSpot incoming")
        .await
        .unwrap();
    fill(&browser, "#name", "From HubSpot").await;

    // Authentication: add a new account in the pop-up.
    let main = browser.window_handle().await.unwrap();
    browser.click_on("#connect-account").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let popup = loop {
        let handles = browser.window_handles().await.unwrap();
        if let Some(h) = handles.into_iter().find(|h| *h != main) {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "no pop-up opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    browser.switch_to_window(&popup).await.unwrap();
    browser
        .wait_for_text("#account", "ferry-emulator.hubspot.com")
        .await
        .unwrap();
    browser.click_on("#connect").await.unwrap();
    // The callback page tells the wizard and closes itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while browser.window_handles().await.unwrap().len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pop-up did not close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.switch_to_window(&main).await.unwrap();
    browser
        .wait_for_text("#oauth-status", "Connected ferry-emulator.hubspot.com")
        .await
        .unwrap();
    browser
        .wait_for_text(
            "#config-account_id option:checked",
            "ferry-emulator.hubspot.com",
        )
        .await
        .unwrap();
    // The mapping's dropdowns now list HubSpot's properties.
    browser
        .wait_for_text("#config-mappings-remote-1", "Last Modified Date")
        .await
        .unwrap();
    // A filter row added without saving.
    browser.click_on("#config-filters-add").await.unwrap();
    assert_eq!(
        browser
            .find_all("#config-filters-rows tr")
            .await
            .unwrap()
            .len(),
        2
    );
    browser.click_on("#save").await.unwrap();
    browser
        .wait_for_text(".alert-ok", "The integration was created")
        .await
        .unwrap();
    browser
        .wait_for_text("#instances", "From HubSpot")
        .await
        .unwrap();
    browser
        .wait_for_text("#instances", "ferry-emulator.hubspot.com")
        .await
        .unwrap();
    let (_, all) = app.get("/api/v1/integrations").await;
    assert!(all[0]["config"]["account_id"].is_i64(), "{all}");

    browser
        .click_text("#instances button", "Run now")
        .await
        .unwrap();
    browser
        .wait_for_text(".alert-ok", "A run was queued")
        .await
        .unwrap();
    browser.goto(&app.url("/runs")).await.unwrap();
    wait_for_newest_run_success(&browser, "HubSpot incoming").await;

    browser.goto(&app.url("/sync-log")).await.unwrap();
    let row = browser
        .wait_for_text("#sync-log tbody tr", "match_conflict")
        .await
        .unwrap();
    assert!(row.text().await.unwrap().contains("From HubSpot"));
    let href = browser
        .find("#download-logs")
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let csv = browser
        .execute("var x = new XMLHttpRequest(); x.open('GET', arguments[0], false); x.send(); return x.responseText;", vec![json!(href)])
        .await
        .unwrap();
    let csv = csv.as_str().unwrap();
    assert!(
        csv.starts_with("timestamp,id,integration,direction,contact_id,contact,code,message"),
        "{csv}"
    );
    assert!(csv.contains("match_conflict"), "{csv}");
    browser.quit().await.unwrap();
    worker.stop().await;
}
