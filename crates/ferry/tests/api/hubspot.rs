//! Connecting HubSpot through OAuth against the HubSpot emulator: start, consent page,
//! callback, the stored account, its use by an instance, and the refresh of an expired token.

use ferry_connectors::hubspot::HubSpotSettings;
use ferry_connectors::hubspot::oauth::OAuthApp;
use ferry_emulators::hubspot::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, RunningEmulator,
};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with_hubspot};

async fn app_with_hubspot() -> (TestApp, RunningEmulator) {
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
    (
        spawn_app_with_hubspot(Default::default(), settings).await,
        hub,
    )
}

fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let rest = page
        .split(&marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {page}"));
    rest.split('"').next().unwrap().replace("&amp;", "&")
}

/// Goes through the consent page as a person would; returns the callback URL HubSpot sends
/// the browser back to.
async fn consent(app: &TestApp, cookie: &str, decision: &str) -> String {
    let start = app
        .http
        .get(app.url("/oauth/hubspot/start"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let page = app
        .http
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let base = authorize.split("/oauth/authorize").next().unwrap();
    let form = [
        ("client_id", hidden(&page, "client_id")),
        ("redirect_uri", hidden(&page, "redirect_uri")),
        ("scope", hidden(&page, "scope")),
        ("state", hidden(&page, "state")),
        ("decision", decision.to_string()),
    ];
    assert!(form[1].1.ends_with("/oauth/hubspot/callback"), "{form:?}");
    let back = app
        .http
        .post(format!("{base}/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    back.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn an_account_connects_through_oauth_and_refreshes_its_token() {
    let (app, hub) = app_with_hubspot().await;
    let (cookie, _) = app.login().await;
    let callback = consent(&app, &cookie, "approve").await;
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
    assert!(page.contains("ferry-emulator.hubspot.com"), "{page}");

    let (status, accounts) = app.get("/api/v1/accounts?provider=hubspot").await;
    assert_eq!(status, 200);
    assert_eq!(accounts.as_array().unwrap().len(), 1, "{accounts}");
    assert_eq!(accounts[0]["external_id"], "24681357");
    assert_eq!(accounts[0]["provider"], "hubspot");
    let (status, err) = app.get("/api/v1/accounts?provider=nowhere").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "provider");
    let (status, _) = app.get("/api/v1/accounts").await;
    assert_eq!(status, 400, "the provider is required");
    assert!(!accounts.to_string().contains("access_token"));
    let account = accounts[0]["id"].as_i64().unwrap();

    // The state works once.
    let replay = app
        .http
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("expired or was already used")
    );

    // An instance uses the account: saving checks its mapping against HubSpot with the token.
    let (status, created) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "hubspot_outgoing", "name": "To HubSpot", "enabled": true, "config": {"account_id": account, "mappings": [
                {"local": "first_name", "remote": "firstname"}, {"local": "last_name", "remote": "lastname"},
                {"local": "phone", "remote": "phone"}, {"local": "email", "remote": "email"}]}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, err) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "hubspot_incoming", "name": "Bad", "config": {"account_id": account, "mappings": [
                {"local": "first_name", "remote": "firstname"}, {"local": "last_name", "remote": "no_such_property"},
                {"local": "phone", "remote": "phone"}, {"local": "email", "remote": "email"}]}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "config.mappings[1]");

    // The access token expires: the next use refreshes it and stores the new one.
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap();
    let before = app
        .store
        .crm_account_tokens(inst.id, account)
        .await
        .unwrap();
    hub.state().expire_access_tokens();
    let (status, tested) = app
        .post(
            &format!("/api/v1/integrations/{}/test-connection", created["id"]),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(tested["ok"], true, "{tested}");
    let after = app
        .store
        .crm_account_tokens(inst.id, account)
        .await
        .unwrap();
    assert_ne!(
        before["access_token"], after["access_token"],
        "a new access token was stored"
    );
}

#[tokio::test]
async fn a_denied_consent_changes_nothing() {
    let (app, _hub) = app_with_hubspot().await;
    let (cookie, _) = app.login().await;
    let callback = consent(&app, &cookie, "deny").await;
    let res = app
        .http
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("did not grant access"));
    let (_, accounts) = app.get("/api/v1/accounts?provider=hubspot").await;
    assert_eq!(accounts, json!([]));
}

/// The generic screens for HubSpot (seed 002): Browse Available → HubSpot → Add New; the form's
/// steps; the data mapping listed from HubSpot once a token is given; Finish with a private-app
/// token creates the instance; a mapping HubSpot cannot take is refused on the page with the
/// reason, keeping what was entered and the token (sealed, never shown).
#[tokio::test]
async fn the_generic_form_creates_a_hubspot_instance_and_refuses_a_bad_mapping() {
    let hub = ferry_emulators::hubspot::start(EmulatorConfig {
        private_app_tokens: vec!["pat-wizard".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let settings = HubSpotSettings {
        api_url: hub.base_url().to_string(),
        ..HubSpotSettings::default()
    };
    let app = spawn_app_with_hubspot(Default::default(), settings).await;
    let (cookie, csrf) = app.login().await;
    let page = |path: &'static str| app.page(&cookie, path);
    let (status, browse) = page("/settings/integrations").await;
    assert_eq!(status, 200);
    assert!(browse.contains(
        "href=\"/settings/integrations/hubspot\" aria-label=\"Learn More about HubSpot\">Learn More"
    ));
    let (_, hubspot) = page("/settings/integrations/hubspot").await;
    assert!(
        hubspot.contains("href=\"/settings/integrations/new/hubspot_incoming\"")
            && hubspot.contains("Add New")
    );
    let (status, wizard) = page("/settings/integrations/new/hubspot_outgoing").await;
    assert_eq!(status, 200);
    for step in [
        "Instance Details",
        "Authentication",
        "Data Mapping",
        "Finish",
        "Developer API key",
        "always mapped",
    ] {
        assert!(wizard.contains(step), "the form shows {step}");
    }
    assert!(
        wizard.contains("id=\"oauth-setup\"") && wizard.contains("FERRY_HUBSPOT_CLIENT_ID"),
        "without an OAuth app the form says which settings enable it"
    );
    assert!(
        !wizard.contains("/oauth/hubspot/start"),
        "and offers no link"
    );

    // The mapping lists HubSpot's properties once a token is given.
    let fragment = app
        .http
        .post(app.url("/settings/integrations/remote-fields"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .form(&[
            ("type", "hubspot_outgoing"),
            ("secrets.access_token", "pat-wizard"),
            ("config.mappings.local", "first_name"),
            ("config.mappings.remote", "firstname"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        fragment.contains("value=\"lastmodifieddate\""),
        "HubSpot's properties are offered: {fragment}"
    );
    assert!(fragment.contains("always mapped"));

    let finish = |mapping: Vec<(&'static str, &'static str)>, token: &'static str| {
        let mut form: Vec<(&str, &str)> = vec![
            ("_csrf", csrf.as_str()),
            ("type", "hubspot_outgoing"),
            ("name", "Ferry to HubSpot"),
            ("enabled", "on"),
            ("secrets.access_token", token),
        ];
        for (l, r) in mapping {
            form.push(("config.mappings.local", l));
            form.push(("config.mappings.remote", r));
        }
        let req = app
            .http
            .post(app.url("/settings/integrations/new/hubspot_outgoing"))
            .header("cookie", &cookie)
            .form(&form);
        async move {
            let res = req.send().await.unwrap();
            let location = res
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            (res.status().as_u16(), location, res.text().await.unwrap())
        }
    };
    let (status, _, refused) = finish(
        vec![
            ("first_name", "firstname"),
            ("last_name", "lastname"),
            ("phone", "phone"),
            ("email", "email"),
            ("opt_in", "firstname"),
        ],
        "pat-wizard",
    )
    .await;
    assert_eq!(status, 422);
    assert!(refused.contains("firstname is mapped twice"), "{refused}");
    assert!(
        refused.contains("value=\"Ferry to HubSpot\""),
        "what was entered is kept"
    );
    assert!(
        !refused.contains("pat-wizard"),
        "the token is not sent back as text"
    );
    let kept = refused
        .split("name=\"secrets.access_token.kept\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the token is kept, sealed")
        .to_string();

    // The next try need not type the token again.
    let mut form: Vec<(&str, &str)> = vec![
        ("_csrf", csrf.as_str()),
        ("type", "hubspot_outgoing"),
        ("name", "Ferry to HubSpot"),
        ("enabled", "on"),
        ("secrets.access_token", ""),
        ("secrets.access_token.kept", kept.as_str()),
    ];
    for (l, r) in [
        ("first_name", "firstname"),
        ("last_name", "lastname"),
        ("phone", "phone"),
        ("email", "email"),
    ] {
        form.push(("config.mappings.local", l));
        form.push(("config.mappings.remote", r));
    }
    let res = app
        .http
        .post(app.url("/settings/integrations/new/hubspot_outgoing"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/settings/integrations/hubspot?notice=created"
    );
    let (_, all) = app.get("/api/v1/integrations").await;
    assert_eq!(all[0]["type"], "hubspot_outgoing");
    assert_eq!(
        all[0]["config"]["mappings"][0],
        json!({"local": "first_name", "remote": "firstname"}),
        "CRM ID ↔ Record ID is implied, not stored"
    );
    assert_eq!(all[0]["secrets"]["access_token"], true);
    let (_, listed) = page("/settings/integrations/hubspot").await;
    assert!(listed.contains("Ferry to HubSpot"), "{listed}");
    assert!(
        listed.contains("No connected account (access token)"),
        "{listed}"
    );
    assert!(
        listed.contains("First run: within seconds"),
        "the list says when the new instance first runs: {listed}"
    );
}

/// The old addresses of the HubSpot and SFTP screens answer 303 with the new ones.
#[tokio::test]
async fn old_screen_addresses_redirect() {
    let app = crate::helpers::spawn_app().await;
    let (cookie, _) = app.login().await;
    for (old, new) in [
        ("/settings/sftp", "/settings/integrations/sftp-outbound"),
        (
            "/settings/sftp/new?type=eab_notes_export",
            "/settings/integrations/new/eab_notes_export",
        ),
        ("/settings/sftp/7", "/settings/integrations/i/7"),
        (
            "/settings/integrations/hubspot/new?type=hubspot_incoming",
            "/settings/integrations/new/hubspot_incoming",
        ),
        (
            "/settings/integrations/hubspot/7",
            "/settings/integrations/i/7",
        ),
    ] {
        let res = app
            .http
            .get(app.url(old))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{old}");
        assert_eq!(res.headers()["location"].to_str().unwrap(), new, "{old}");
    }
}

/// A HubSpot that accepts connections and never answers: the save is refused with
/// `remote_timeout` once the bound has passed, and nothing is stored.
#[tokio::test]
async fn a_save_waits_for_a_silent_hubspot_only_as_long_as_the_bound() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", silent.local_addr().unwrap());
    // Holds the connections open without answering.
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let app = spawn_app_with_hubspot(
        ferry_web::WebConfig {
            remote_timeout: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        HubSpotSettings {
            api_url,
            ..HubSpotSettings::default()
        },
    )
    .await;
    let (status, err) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "hubspot_outgoing", "name": "To HubSpot", "config": {"mappings": [
                {"local": "first_name", "remote": "firstname"}, {"local": "last_name", "remote": "lastname"},
                {"local": "phone", "remote": "phone"}, {"local": "email", "remote": "email"}]}, "secrets": {"access_token": "pat-test"}}),
        )
        .await;
    assert_eq!(status, 504, "{err}");
    assert_eq!(err["error"]["code"], "remote_timeout");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("0.3 s") && message.contains("nothing was saved"),
        "{message}"
    );
    let (_, all) = app.get("/api/v1/integrations").await;
    assert_eq!(all, json!([]));
}

/// A HubSpot push, then the contact page: each contact's sync status row (the integration
/// linked, direction, last synced in the institution's zone, result, CRM ID, a link to the
/// Sync Log filtered to the integration), a failure's code linked to the error dictionary, the
/// empty state for a contact no integration touched; and the same in the contact's API view.
#[tokio::test]
async fn the_contact_page_shows_each_integrations_last_sync() {
    let hub = ferry_emulators::hubspot::start(EmulatorConfig {
        private_app_tokens: vec!["pat-sync".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let settings = HubSpotSettings {
        api_url: hub.base_url().to_string(),
        ..HubSpotSettings::default()
    };
    let app = spawn_app_with_hubspot(Default::default(), settings.clone()).await;
    let ana = app.contact("Ana", "6175550901").await;
    let (status, ben) = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Ben", "last_name": "Student", "phone": "6175550902", "crm_id": "123"}),
        )
        .await;
    assert_eq!(status, 201, "{ben}");
    let ben = ben["id"].as_i64().unwrap();
    let (status, tess) = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Tess", "last_name": "Student", "phone": "6175550903", "test_user": true}),
        )
        .await;
    assert_eq!(status, 201, "{tess}");
    let tess = tess["id"].as_i64().unwrap();
    let (status, created) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "hubspot_outgoing", "name": "Ferry to HubSpot", "enabled": true,
                   "config": {"mappings": [
                       {"local": "first_name", "remote": "firstname"},
                       {"local": "last_name", "remote": "lastname"},
                       {"local": "phone", "remote": "phone"},
                       {"local": "email", "remote": "email"}]},
                   "secrets": {"access_token": "pat-sync"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, queued) = app
        .post(&format!("/api/v1/integrations/{id}/runs"), json!({}))
        .await;
    assert_eq!(status, 202, "{queued}");
    let worker = ferry_worker::Worker::new(
        app.store.store.clone(),
        ferry_connectors::Registry::builtin_with(&app.base, &settings),
        Default::default(),
    );
    assert_eq!(worker.run_once().await.unwrap(), queued["run_id"].as_i64());

    let (_, contact) = app.get(&format!("/api/v1/contacts/{ana}")).await;
    let crm = contact["crm_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the new HubSpot ID is written back: {contact}"))
        .to_string();
    let status = &contact["sync_status"];
    assert_eq!(
        status.as_array().map(Vec::len),
        Some(1),
        "one row in the API: {contact}"
    );
    assert_eq!(status[0]["integration_id"], id);
    assert_eq!(status[0]["integration_name"], "Ferry to HubSpot");
    assert_eq!(status[0]["direction"], "outgoing");
    assert_eq!(status[0]["result"], "synced");
    assert_eq!(status[0]["remote_id"], crm.as_str());
    assert!(status[0]["code"].is_null());
    assert!(status[0]["last_synced_at"].is_string());
    let (_, listed) = app.get("/api/v1/contacts").await;
    assert!(
        listed.to_string().find("sync_status").is_none(),
        "lists leave the sync status out: {listed}"
    );

    let (cookie, _) = app.login().await;
    let (code, page) = app.page(&cookie, &format!("/contacts/{ana}")).await;
    assert_eq!(code, 200);
    let table = page
        .split("id=\"contact-sync\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("a sync status table: {page}"));
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap();
    let synced_at = app.store.contact_syncs(inst.id, ana).await.unwrap()[0].last_synced_at;
    let shown = synced_at
        .to_zoned(jiff::tz::TimeZone::get(&inst.time_zone).unwrap())
        .strftime("%b %-d, %Y %-I:%M %p %Z")
        .to_string();
    for part in [
        "<caption>Each integration's last sync of this contact (times in America/New_York)</caption>"
            .to_string(),
        "<th scope=\"col\">Integration</th>".to_string(),
        format!("<th scope=\"row\"><a href=\"/settings/integrations/i/{id}\">Ferry to HubSpot</a></th>"),
        "<td>outgoing</td>".to_string(),
        format!("<td>{shown}</td>"),
        "<td class=\"sync-result\">Synced</td>".to_string(),
        format!("<td><code>{crm}</code></td>"),
        format!("<a href=\"/settings/sync-log?integration_id={id}\">Sync Log<span class=\"visually-hidden\"> of Ferry to HubSpot</span></a>"),
    ] {
        assert!(table.contains(&part), "{part} in {table}");
    }
    assert!(
        page.find("id=\"contact-sync\"") < page.find("id=\"conversation\""),
        "the sync status comes before the conversation"
    );

    // A failure shows its code, linked to the error dictionary, and the Sync Log row below.
    let (_, page) = app.page(&cookie, &format!("/contacts/{ben}")).await;
    assert!(
        page.contains(
            "<td class=\"sync-result\">Failed <a href=\"/errors#crm_id_not_found\"><code>crm_id_not_found</code></a></td>"
        ),
        "{page}"
    );
    assert!(page.contains("(1 row about this contact below)"), "{page}");
    assert!(
        page.find("id=\"contact-sync\"") < page.find("id=\"contact-log\""),
        "the sync status comes before the Sync Log rows"
    );

    // A contact no integration touched: the empty state.
    let (_, page) = app.page(&cookie, &format!("/contacts/{tess}")).await;
    assert!(!page.contains("id=\"contact-sync\""));
    assert!(
        page.contains("id=\"sync-none\">No integration has synced this contact yet."),
        "{page}"
    );
    let (_, contact) = app.get(&format!("/api/v1/contacts/{tess}")).await;
    assert_eq!(contact["sync_status"], json!([]));

    // The OpenAPI document describes it.
    let (_, doc) = app.get("/api/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ContactView"]["properties"]["sync_status"]["type"],
        json!(["array", "null"]),
        "{}",
        schemas["ContactView"]
    );
    for field in [
        "integration_id",
        "direction",
        "last_synced_at",
        "result",
        "code",
        "remote_id",
    ] {
        assert!(
            schemas["ContactSyncView"]["properties"][field].is_object(),
            "{field} in {}",
            schemas["ContactSyncView"]
        );
    }
}
