//! Connecting a Salesforce org through OAuth with PKCE against the Salesforce emulator: start
//! (a challenge on the consent URL, its verifier kept sealed with the state), consent page,
//! callback, the stored account, and instances on the generic screens checked against the
//! object's describe.

use ferry_connectors::salesforce::SalesforceSettings;
use ferry_connectors::salesforce::oauth::OAuthApp;
use ferry_emulators::salesforce::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningEmulator};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with_registry};

async fn app_with_salesforce() -> (TestApp, RunningEmulator) {
    let sf = ferry_emulators::salesforce::start(Default::default())
        .await
        .unwrap();
    let settings = SalesforceSettings {
        login_url: sf.base_url().to_string(),
        app: Some(OAuthApp {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string().into(),
        }),
        ..SalesforceSettings::default()
    };
    let app = spawn_app_with_registry(Default::default(), |base| {
        ferry_connectors::Registry::builtin(base).with_salesforce(&settings)
    })
    .await;
    (app, sf)
}

fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let rest = page
        .split(&marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {page}"));
    rest.split('"').next().unwrap().replace("&amp;", "&")
}

#[tokio::test]
async fn an_org_connects_through_oauth_with_pkce_and_its_instances_are_checked_against_describe() {
    let (app, _sf) = app_with_salesforce().await;
    let (cookie, _) = app.login().await;
    let start = app
        .http
        .get(app.url("/oauth/salesforce/start"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    assert!(
        authorize.contains("code_challenge=") && authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let page = app
        .http
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let base = authorize
        .split("/services/oauth2/authorize")
        .next()
        .unwrap();
    let form = [
        ("response_type", "code".to_string()),
        ("client_id", hidden(&page, "client_id")),
        ("redirect_uri", hidden(&page, "redirect_uri")),
        ("state", hidden(&page, "state")),
        ("code_challenge", hidden(&page, "code_challenge")),
        ("code_challenge_method", "S256".to_string()),
        ("decision", "allow".to_string()),
    ];
    assert!(
        form[2].1.ends_with("/oauth/salesforce/callback"),
        "{form:?}"
    );
    let back = app
        .http
        .post(format!("{base}/services/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    let done = app
        .http
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let page = done.text().await.unwrap();
    assert!(page.contains("data-oauth-done=\""), "{page}");

    let (status, accounts) = app.get("/api/v1/accounts?provider=salesforce").await;
    assert_eq!(status, 200);
    assert_eq!(accounts.as_array().unwrap().len(), 1, "{accounts}");
    assert!(
        accounts[0]["external_id"]
            .as_str()
            .unwrap()
            .starts_with("00D")
    );
    assert!(!accounts.to_string().contains("access_token"));
    let account = accounts[0]["id"].as_i64().unwrap();

    // The state (and its verifier) works once.
    let replay = app
        .http
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);

    // Instances with the account: the mapping is checked against the object's describe.
    let mappings = json!([
        {"local": "first_name", "remote": "FirstName"}, {"local": "last_name", "remote": "LastName"},
        {"local": "phone", "remote": "Phone"}, {"local": "email", "remote": "Email"}]);
    let (status, created) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "salesforce_outgoing", "name": "To Salesforce", "enabled": true,
                   "config": {"account_id": account, "mappings": mappings, "external_id_field": "Ferry_Id__c"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let mut bad = mappings.clone();
    bad.as_array_mut()
        .unwrap()
        .push(json!({"local": "enrollment_id", "remote": "Name"}));
    let (status, err) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "salesforce_outgoing", "name": "Bad", "config": {"account_id": account, "mappings": bad}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "config.mappings[4].remote", "{err}");
    let (status, tested) = app
        .post(
            &format!("/api/v1/integrations/{}/test-connection", created["id"]),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(tested["ok"], true, "{tested}");
}

#[tokio::test]
async fn the_generic_screens_show_salesforce() {
    let (app, _sf) = app_with_salesforce().await;
    let (cookie, _) = app.login().await;
    let page = |path: &'static str| app.page(&cookie, path);
    let (status, browse) = page("/settings/integrations").await;
    assert_eq!(status, 200);
    assert!(
        browse.contains("href=\"/settings/integrations/salesforce\""),
        "{browse}"
    );
    let (status, platform) = page("/settings/integrations/salesforce").await;
    assert_eq!(status, 200);
    assert!(
        platform.contains("href=\"/settings/integrations/new/salesforce_incoming\"")
            && platform.contains("href=\"/settings/integrations/new/salesforce_outgoing\"")
    );
    let (status, wizard) = page("/settings/integrations/new/salesforce_outgoing").await;
    assert_eq!(status, 200);
    for step in [
        "Instance Details",
        "Authentication",
        "Data Mapping",
        "JWT bearer",
        "External-ID field",
        "API limit share",
        "/oauth/salesforce/start",
        "Finish",
    ] {
        assert!(wizard.contains(step), "the form shows {step}");
    }
}
