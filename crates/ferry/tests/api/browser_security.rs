//! A real browser on Settings → Security and Settings → Audit log: create a token, see its
//! secret once, revoke it, find both in the audit log, and sign out everywhere. Without
//! Chromium the test says it was skipped, except under `CI=true`, where it fails.

use reqwest::Method;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app};

#[tokio::test]
async fn a_token_is_created_revoked_and_audited_from_the_security_page() {
    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    browser.goto(&app.url("/settings/security")).await.unwrap();
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
    browser.wait_for_text("h1", "Security").await.unwrap();
    browser
        .wait_for_text("#sessions", "This session")
        .await
        .unwrap();

    browser
        .find("#token-name")
        .await
        .unwrap()
        .send_keys("nightly-report")
        .await
        .unwrap();
    browser
        .find("#token-days")
        .await
        .unwrap()
        .send_keys("30")
        .await
        .unwrap();
    browser.click_text("button", "Create token").await.unwrap();
    browser
        .wait_for_text("#new-token", "cannot show it again")
        .await
        .unwrap();
    let secret = browser
        .find("#new-token code")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(secret.starts_with("fry_"), "{secret}");
    let (status, _) = app.call(Method::GET, "/api/v1/me", &secret, None).await;
    assert_eq!(status, 200, "the token shown works");
    browser
        .wait_for_text("#tokens", "nightly-report")
        .await
        .unwrap();

    browser
        .click_on("button[aria-label='Revoke nightly-report']")
        .await
        .unwrap();
    browser
        .wait_for_text(".alert-ok", "Revoked the token nightly-report.")
        .await
        .unwrap();
    let (status, _) = app.call(Method::GET, "/api/v1/me", &secret, None).await;
    assert_eq!(status, 401, "revoked at once");

    browser.click_text("nav a", "Audit log").await.unwrap();
    browser.wait_for_text("h1", "Audit log").await.unwrap();
    browser
        .wait_for_text("#audit", "token.revoked")
        .await
        .unwrap();
    let audit = browser.find("#audit").await.unwrap().text().await.unwrap();
    assert!(
        audit.contains("token.created") && audit.contains(ADMIN_EMAIL),
        "{audit}"
    );
    assert!(!browser.page_source().await.unwrap().contains(&secret));

    browser.click_text("nav a", "Security").await.unwrap();
    browser.wait_for_text("h1", "Security").await.unwrap();
    browser
        .click_text("button", "Sign out everywhere")
        .await
        .unwrap();
    browser.wait_for_text("h1", "Sign in").await.unwrap();
    browser.goto(&app.url("/settings/security")).await.unwrap();
    assert!(browser.current_url().await.unwrap().contains("/login"));
    browser.quit().await.unwrap();
}
