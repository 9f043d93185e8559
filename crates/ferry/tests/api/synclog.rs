//! The Sync Log: API with filters and paging, CSV download, the page, the error dictionary page.

use ferry_core::run::SyncDirection;
use ferry_store::{NewIntegration, NewSyncLog};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// An institution with an integration and three logged problems, the last with a formula-like
/// message. Returns (integration id, contact id).
async fn seed(app: &TestApp) -> (i64, i64) {
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap();
    let contact = app.contact("Lena", "6175550421").await;
    let integration = app
        .store
        .create_integration(
            inst.id,
            NewIntegration {
                kind: "eab_notes_export".into(),
                name: "EAB nightly".into(),
                description: String::new(),
                enabled: false,
                config: json!({}),
                secrets: None,
            },
        )
        .await
        .unwrap();
    for (direction, code, message) in [
        (
            SyncDirection::Outgoing,
            "missing_crm_id",
            "the contact has no CRM ID",
        ),
        (
            SyncDirection::Incoming,
            "match_conflict",
            "CRM ID and phone point at different contacts",
        ),
        (
            SyncDirection::Outgoing,
            "missing_crm_id",
            "=HYPERLINK(\"x\") no CRM ID",
        ),
    ] {
        app.store
            .add_sync_log(
                inst.id,
                &[NewSyncLog {
                    integration_id: Some(integration.id),
                    run_id: None,
                    direction,
                    contact_id: Some(contact),
                    code: code.into(),
                    message: message.into(),
                }],
            )
            .await
            .unwrap();
    }
    (integration.id, contact)
}

#[tokio::test]
async fn the_api_lists_filters_and_pages_newest_first() {
    let app = spawn_app().await;
    let (integration, contact) = seed(&app).await;
    let (status, all) = app.get("/api/v1/sync-log").await;
    assert_eq!(status, 200, "{all}");
    let entries = all["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries[0]["id"].as_i64() > entries[1]["id"].as_i64(),
        "newest first"
    );
    assert_eq!(entries[0]["integration_name"], "EAB nightly");
    assert_eq!(entries[0]["contact_id"], contact);
    assert_eq!(entries[0]["contact_name"], "Lena Student");
    assert_eq!(entries[1]["code"], "match_conflict");

    let (_, out) = app.get("/api/v1/sync-log?direction=outgoing").await;
    assert_eq!(out["entries"].as_array().unwrap().len(), 2);
    let (_, by) = app
        .get(&format!(
            "/api/v1/sync-log?integration_id={integration}&limit=2"
        ))
        .await;
    assert_eq!(by["entries"].as_array().unwrap().len(), 2);
    let cursor = by["next_cursor"].as_i64().expect("a second page");
    let (_, rest) = app
        .get(&format!(
            "/api/v1/sync-log?integration_id={integration}&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let (_, future) = app.get("/api/v1/sync-log?from=2099-01-01T00:00:00Z").await;
    assert_eq!(future["entries"], json!([]));

    for (query, field) in [
        ("direction=sideways", "direction"),
        ("from=yesterday", "from"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let (status, err) = app.get(&format!("/api/v1/sync-log?{query}")).await;
        assert_eq!(status, 400, "{query}: {err}");
        assert_eq!(err["error"]["field"], field, "{query}: {err}");
    }
    let (_, other) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/sync-log",
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!(
        other["entries"],
        json!([]),
        "another institution sees none of it"
    );
}

#[tokio::test]
async fn download_logs_is_csv_oldest_first_with_formulas_neutralised() {
    let app = spawn_app().await;
    seed(&app).await;
    let res = app
        .http
        .get(app.url("/api/v1/sync-log.csv?from=2020-01-01T00:00:00Z"))
        .bearer_auth(&app.viewer_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("sync-log.csv")
    );
    let body = res.text().await.unwrap();
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "timestamp,id,integration,direction,contact_id,contact,code,message"
    );
    assert_eq!(lines.len(), 4, "{body}");
    assert!(
        lines[1].ends_with(",missing_crm_id,the contact has no CRM ID"),
        "oldest first: {body}"
    );
    assert!(lines[1].contains(",EAB nightly,outgoing,"), "{body}");
    assert!(
        lines[3].ends_with(",\"'=HYPERLINK(\"\"x\"\") no CRM ID\""),
        "{body}"
    );
}

#[tokio::test]
async fn the_page_links_contacts_and_codes_and_downloads_its_range() {
    let app = spawn_app().await;
    let (_, contact) = seed(&app).await;
    let (cookie, _) = app.login().await;
    let get = |path: &'static str| app.page(&cookie, path);
    let (status, page) = get("/settings/sync-log").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("href=\"/contacts/{contact}\">Lena Student</a>")),
        "{page}"
    );
    assert!(page.contains("href=\"/errors#match_conflict\""));
    assert!(page.contains("Download Logs"));
    let (_, filtered) = get("/settings/sync-log?direction=incoming").await;
    assert!(filtered.contains("match_conflict") && !filtered.contains("missing_crm_id"));
    let (status, csv) =
        get("/settings/sync-log.csv?from=2020-01-01T00%3A00&direction=outgoing").await;
    assert_eq!(status, 200);
    assert_eq!(csv.matches("missing_crm_id").count(), 2, "{csv}");
    let (status, _) = get("/settings/sync-log.csv?from=not-a-time").await;
    assert_eq!(status, 400);
    let (status, dictionary) = get("/errors").await;
    assert_eq!(status, 200);
    assert!(dictionary.contains("id=\"missing_crm_id\""));
    assert!(dictionary.contains("id=\"sftp_host_key_changed\""));
}
