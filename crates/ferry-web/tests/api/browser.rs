//! A real browser (headless Chromium through chromedriver) signs in, searches and opens a
//! contact. Without Chromium the test says it was skipped, except under `CI=true`, where it fails.

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app};

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
    browser
        .find("button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    browser
        .find("form[role=search] button")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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

    browser
        .find("#contacts tbody a")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
