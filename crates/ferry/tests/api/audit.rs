//! The audit log: configuration changes through the API are recorded with who, when and what
//! changed (secrets by name only), failed sign-ins too; `GET /api/v1/audit-log` pages and
//! filters them, and the page shows them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, TestApp, spawn_app};

const SFTP_PASSWORD: &str = "s3cret-sftp-pass";
const NEW_PASSWORD: &str = "an0ther-secret-pass";

fn eab_request() -> Value {
    json!({
        "type": "eab_notes_export",
        "name": "EAB notes",
        "description": "nightly",
        "enabled": true,
        "config": {
            "sftp": {"host": "127.0.0.1", "port": 2222, "username": "eab", "directory": "inbox", "file_prefix": "notes_"},
            "schedule": {"blocks": [0, 7]},
            "filters": {"channels": ["sms"], "types": ["ai_agent", "live_chat"], "directions": ["incoming", "outgoing"]},
            "eab": {"import_version": "3", "institution_id": "77", "group_id": "group_id", "dedupe_contacts": false,
                    "is_private": true, "student_viewable": false, "show_on_student_report": true,
                    "created_by": "Mainstay", "note_reasons": "Outreach", "note_body": "{first_name}: {message}"}
        },
        "secrets": {"password": SFTP_PASSWORD}
    })
}

async fn audit(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/audit-log{query}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn kinds(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn integration_changes_are_audited_with_what_changed_and_no_secret() {
    let app = spawn_app().await;
    let (status, created) = app.post("/api/v1/integrations", eab_request()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let path = format!("/api/v1/integrations/{id}");
    let patch = |body: Value| app.call(Method::PATCH, &path, &app.admin_token, Some(body));
    let (status, _) = patch(
        json!({"config": {"sftp": {"directory": "other"}}, "secrets": {"password": NEW_PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = patch(json!({"enabled": false})).await;
    assert_eq!(status, 200);
    // A refused change records nothing.
    let (status, _) = patch(json!({"name": "renamed", "secrets": {"password": null}})).await;
    assert_eq!(status, 422);
    let (status, _) = app
        .call(Method::DELETE, &path, &app.admin_token, None)
        .await;
    assert_eq!(status, 204);

    let page = audit(&app, "?kind=integration").await;
    assert_eq!(
        kinds(&page),
        [
            "integration.deleted",
            "integration.disabled",
            "integration.updated",
            "integration.created"
        ]
    );
    let text = page.to_string();
    assert!(
        !text.contains(SFTP_PASSWORD) && !text.contains(NEW_PASSWORD),
        "a secret reached the audit log: {text}"
    );
    let e = &page["entries"];
    assert_eq!(e[3]["detail"]["secrets_set"], json!(["password"]));
    assert_eq!(e[3]["detail"]["config"]["sftp"]["directory"], "inbox");
    assert_eq!(
        e[2]["detail"]["changes"]["config.sftp.directory"],
        json!({"from": "inbox", "to": "other"})
    );
    assert_eq!(e[2]["detail"]["secrets_set"], json!(["password"]));
    assert_eq!(
        e[1]["detail"]["changes"],
        json!({"enabled": {"from": true, "to": false}})
    );
    for entry in e.as_array().unwrap() {
        assert_eq!(entry["actor_kind"], "token");
        assert_eq!(entry["actor"], "#1 tests");
        assert_eq!(entry["client"], "127.0.0.1");
        assert!(entry["target"].as_str().unwrap().contains("EAB notes"));
        assert!(entry["at"].is_string());
    }
}

#[tokio::test]
async fn the_audit_log_pages_filters_and_names_bad_parameters() {
    let app = spawn_app().await;
    for i in 0..3 {
        let (status, _) = app
            .post(
                "/api/v1/fields",
                json!({"name": format!("f{i}"), "label": format!("F{i}"), "kind": "text"}),
            )
            .await;
        assert_eq!(status, 201);
    }
    // A failed sign-in is in the log of the user's institution.
    let res = app
        .http
        .post(app.url("/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", "wrong password")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let page = audit(&app, "?kind=signin.failed").await;
    assert_eq!(page["entries"][0]["actor_kind"], "anonymous");
    assert_eq!(page["entries"][0]["detail"]["email"], ADMIN_EMAIL);
    assert!(!page.to_string().contains("wrong password"));

    let first = audit(&app, "?kind=field&limit=2").await;
    assert_eq!(kinds(&first), ["field.created", "field.created"]);
    let cursor = first["next_cursor"].as_i64().expect("a second page");
    let second = audit(&app, &format!("?kind=field&limit=2&cursor={cursor}")).await;
    assert_eq!(kinds(&second), ["field.created"]);
    assert!(second["next_cursor"].is_null());
    let by_actor = audit(&app, "?actor=token%3A%231%20tests").await;
    assert_eq!(kinds(&by_actor).len(), 3);
    let nobody = audit(&app, "?actor=someone%40else.edu").await;
    assert!(kinds(&nobody).is_empty());
    let future = audit(&app, "?since=2999-01-01T00:00:00Z").await;
    assert!(kinds(&future).is_empty());
    let past = audit(&app, "?until=2000-01-01T00:00:00Z").await;
    assert!(kinds(&past).is_empty());

    for (q, field) in [
        ("?since=yesterday", "since"),
        (
            "?since=2026-09-02T00:00:00Z&until=2026-09-01T00:00:00Z",
            "until",
        ),
        ("?limit=0", "limit"),
        ("?cursor=-3", "cursor"),
        ("?colour=red", "colour"),
    ] {
        let (status, err) = app.get(&format!("/api/v1/audit-log{q}")).await;
        assert_eq!(status, 400, "{q}: {err}");
        assert_eq!(err["error"]["field"], field, "{q}: {err}");
    }
    let (status, _) = app
        .call(Method::GET, "/api/v1/audit-log", &app.viewer_token, None)
        .await;
    assert_eq!(status, 403, "admins only");
    let (_, other) = app
        .call(
            Method::GET,
            "/api/v1/audit-log",
            &app.other_admin_token,
            None,
        )
        .await;
    assert!(
        !other.to_string().contains("field.created"),
        "nothing crosses institutions: {other}"
    );

    // The page shows the same, filtered.
    let (cookie, _) = app.login().await;
    let (status, html) = app.page(&cookie, "/settings/audit-log?kind=field").await;
    assert_eq!(status, 200);
    assert!(html.contains("field.created") && html.contains("field f2"));
    assert!(!html.contains("signin.failed</code>"));
    let (status, html) = app.page(&cookie, "/settings/audit-log?from=someday").await;
    assert_eq!(status, 400);
    assert!(html.contains("is not a date"));
}
