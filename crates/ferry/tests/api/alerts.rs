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
