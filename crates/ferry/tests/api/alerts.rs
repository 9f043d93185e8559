use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

/// Alert settings through the API: every bad field is named, nothing of a refused save is
/// applied, the signing secret is write-only (kept when left out, removed with null), and
/// viewers cannot read or change them.
#[tokio::test]
async fn alert_settings_are_admin_only_validated_and_keep_the_secret_write_only() {
    let app = spawn_app().await;
    let put = |body| {
        app.call(
            Method::PUT,
            "/api/v1/alert-settings",
            &app.admin_token,
            Some(body),
        )
    };
    let (s, b) = app.get("/api/v1/alert-settings").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["webhook_url"].clone(), b["webhook_secret_set"].clone()),
        (json!(null), json!(false))
    );
    let good = json!({
        "webhook_url": "https://hooks.example.edu/ferry",
        "webhook_secret": "0123456789abcdef-secret",
        "emails": ["ops@example.edu"],
        "failed_rows_threshold": 25
    });
    let (s, b) = put(good.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["webhook_secret_set"], true);
    assert!(!b.to_string().contains("0123456789abcdef"), "{b}");
    for (body, field) in [
        (json!({"webhook_url": "hooks.example.edu"}), "webhook_url"),
        (
            json!({"emails": ["ops@example.edu", "nobody"]}),
            "emails[1]",
        ),
        (json!({"failed_rows_threshold": 0}), "failed_rows_threshold"),
        (json!({"webhook_secret": "short"}), "webhook_secret"),
        (json!({"webhook_secret": 12}), "webhook_secret"),
    ] {
        let (s, b) = put(body.clone()).await;
        assert_eq!(
            (s, b["error"]["field"].as_str()),
            (422, Some(field)),
            "{body} -> {b}"
        );
    }
    let (s, b) = put(json!({"emails": [], "surprise": 1})).await;
    assert_eq!(s, 422, "{b}");
    let (_, b) = app.get("/api/v1/alert-settings").await;
    assert_eq!(
        b["emails"],
        json!(["ops@example.edu"]),
        "refused saves changed nothing"
    );
    // Left out, the secret stays; null removes it.
    let (_, b) = put(json!({"webhook_url": "https://hooks.example.edu/other"})).await;
    assert_eq!(b["webhook_secret_set"], true);
    let (_, b) =
        put(json!({"webhook_url": "https://hooks.example.edu/other", "webhook_secret": null}))
            .await;
    assert_eq!(b["webhook_secret_set"], false);
    let (s, b) = app.get("/api/v1/alerts").await;
    assert_eq!((s, b), (200, json!([])));
    // Every accepted save is in the audit log, the secret only as what happened to it.
    let (s, log) = app.get("/api/v1/audit-log?kind=alerts").await;
    assert_eq!(s, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{log}");
    assert_eq!(entries[0]["detail"]["signing_secret_change"], "removed");
    assert_eq!(entries[2]["detail"]["signing_secret_change"], "set");
    assert!(!log.to_string().contains("0123456789abcdef"), "{log}");

    let viewer = app.viewer_token.clone();
    let (s, _) = app
        .call(Method::GET, "/api/v1/alert-settings", &viewer, None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .call(Method::PUT, "/api/v1/alert-settings", &viewer, Some(good))
        .await;
    assert_eq!(s, 403);
}

/// Settings → Alerts in the browser's terms (forms): a refused field is shown next to itself with
/// what was typed kept and nothing applied; the secret is write-only (kept when left empty,
/// removed on request); alerts queued by a failed run are listed with their delivery.
#[tokio::test]
async fn the_alerts_page_saves_refuses_in_place_and_lists_alerts() {
    let app = spawn_app().await;
    let (cookie, csrf) = app.login().await;
    let (status, page) = app.page(&cookie, "/settings/alerts").await;
    assert_eq!(status, 200);
    assert!(page.contains("No alert has been sent yet."), "{page}");
    assert!(page.contains("FERRY_SMTP_URL"), "says how email is enabled");
    assert!(page.contains(
        "id=\"on-run-failed\" name=\"on_run_failed\" type=\"checkbox\" value=\"true\" checked"
    ));
    let post = |form: Vec<(&'static str, &'static str)>| {
        let mut form = form;
        form.push(("_csrf", csrf.as_str()));
        let req = app
            .http
            .post(app.url("/settings/alerts"))
            .header("cookie", &cookie)
            .form(&form);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let secret = "a-signing-secret-of-32-characters";

    // A bad URL: refused next to its field, the other fields as typed, nothing saved.
    let (s, page) = post(vec![
        ("webhook_url", "ftp://hooks.example.edu"),
        ("webhook_secret", secret),
        ("emails", "ops@example.edu"),
        ("failed_rows_threshold", "25"),
    ])
    .await;
    assert_eq!(s, 422, "{page}");
    assert!(page.contains("id=\"webhook-url-error\""), "{page}");
    assert!(page.contains("aria-invalid=\"true\" autofocus"));
    assert!(page.contains("value=\"ftp://hooks.example.edu\""));
    assert!(page.contains(">ops@example.edu</textarea>"));
    assert!(page.contains("value=\"25\""));
    assert!(!page.contains(secret), "a secret is never sent back");
    let (_, saved) = app.get("/api/v1/alert-settings").await;
    assert_eq!(
        saved["webhook_url"],
        serde_json::Value::Null,
        "nothing applied"
    );
    assert_eq!(saved["on_run_failed"], true);

    // A bad address in the list; a threshold that is not a number.
    let (s, page) = post(vec![("emails", "ops@example.edu\nnot-an-address")]).await;
    assert_eq!(s, 422);
    assert!(page.contains("id=\"emails-error\""), "{page}");
    let (s, page) = post(vec![("failed_rows_threshold", "lots")]).await;
    assert_eq!(s, 422);
    assert!(page.contains("id=\"threshold-error\""), "{page}");

    // A good save: unticked boxes are off, the secret is set and not shown.
    let (s, page) = post(vec![
        ("webhook_url", "https://hooks.example.edu/ferry"),
        ("webhook_secret", secret),
        ("emails", "ops@example.edu, registrar@example.edu"),
        ("failed_rows_threshold", "1"),
        ("on_run_failed", "true"),
    ])
    .await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Saved the alert settings."));
    assert!(page.contains("A secret is set."));
    assert!(!page.contains(secret));
    let (_, saved) = app.get("/api/v1/alert-settings").await;
    assert_eq!(saved["webhook_url"], "https://hooks.example.edu/ferry");
    assert_eq!(saved["webhook_secret_set"], true);
    assert_eq!(
        saved["emails"],
        json!(["ops@example.edu", "registrar@example.edu"])
    );
    assert_eq!(saved["failed_rows_threshold"], 1);
    assert_eq!(saved["on_run_failed"], true);
    assert_eq!(saved["on_credentials_refused"], false);
    assert_eq!(
        app.store
            .alert_webhook_secret(saved_inst(&app).await)
            .await
            .unwrap()
            .as_deref(),
        Some(secret)
    );

    // Saved again with the secret left empty: kept. Then removed on request.
    let (s, _) = post(vec![
        ("webhook_url", "https://hooks.example.edu/ferry"),
        ("on_run_failed", "true"),
    ])
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        app.get("/api/v1/alert-settings").await.1["webhook_secret_set"],
        true
    );
    let (s, page) = post(vec![
        ("webhook_url", "https://hooks.example.edu/ferry"),
        ("on_run_failed", "true"),
        ("remove_secret", "true"),
    ])
    .await;
    assert_eq!(s, 200);
    assert!(page.contains("No secret is set."));
    assert_eq!(
        app.get("/api/v1/alert-settings").await.1["webhook_secret_set"],
        false
    );

    // A failed run queues an alert; the page lists it, linked to the run.
    let inst = saved_inst(&app).await;
    let integration = app
        .store
        .create_integration(
            inst,
            ferry_store::NewIntegration {
                kind: "eab_notes_export".into(),
                name: "Nightly EAB".into(),
                description: String::new(),
                enabled: true,
                config: json!({}),
                secrets: None,
            },
        )
        .await
        .unwrap();
    let run = app
        .store
        .enqueue_run(&ferry_store::NewRun {
            institution_id: inst,
            integration_id: integration.id,
            kind: integration.kind.clone(),
            trigger: ferry_core::run::Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .unwrap();
    let claimed = app.store.claim_run("w1").await.unwrap().unwrap();
    assert_eq!(claimed.id, run.id);
    assert!(
        app.store
            .finish_run(
                run.id,
                "w1",
                &ferry_store::RunOutcome {
                    status: ferry_core::run::RunStatus::Failed,
                    rows: 0,
                    error: Some("the server refused the upload".into()),
                    detail: json!({}),
                    credentials_refused: false,
                },
            )
            .await
            .unwrap()
    );
    let (_, page) = app.page(&cookie, "/settings/alerts").await;
    assert!(!page.contains("No alert has been sent yet."), "{page}");
    assert!(page.contains("A run failed"));
    assert!(page.contains(&format!("href=\"/runs/{}\"", run.id)));
    assert!(page.contains("<code>https://hooks.example.edu/ferry</code>"));
    assert!(page.contains(">Queued</span>"));
}

async fn saved_inst(app: &crate::helpers::TestApp) -> i64 {
    app.store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap()
        .id
}
