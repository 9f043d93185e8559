//! API tokens (create, list, last used, revoke) and sessions (list, end one, sign out
//! everywhere) through the API and the Security page.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn tokens_are_created_listed_used_and_revoked_through_the_api() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/v1/tokens",
            json!({"name": "crm-sync", "role": "viewer", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["status"], "active");
    assert_eq!(body["expires_at"], "2099-01-01T00:00:00Z");
    assert!(body["last_used_at"].is_null());

    let (status, me) = app.call(Method::GET, "/api/v1/me", &secret, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["role"], "viewer");

    let (status, list) = app.get("/api/v1/tokens").await;
    assert_eq!(status, 200);
    assert!(!list.to_string().contains("fry_"), "never a secret: {list}");
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(mine["name"], "crm-sync");
    assert!(
        mine["last_used_at"].is_string(),
        "the use was recorded: {mine}"
    );

    // A viewer token cannot manage tokens; another institution cannot see this one.
    let (status, _) = app
        .call(Method::GET, "/api/v1/tokens", &app.viewer_token, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!(status, 404);

    let (status, revoked) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let (status, err) = app.call(Method::GET, "/api/v1/me", &secret, None).await;
    assert_eq!(status, 401, "a revoked token stops at once: {err}");

    // Both changes are in the audit log, by the admin token.
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap();
    let log = app
        .store
        .audit_log(
            inst.id,
            &ferry_store::AuditQuery {
                kind: Some("token".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = log.entries.iter().map(|e| e.kind.as_str()).collect();
    // The two older ones are the test setup's tokens, made by the store directly.
    assert_eq!(
        kinds,
        [
            "token.revoked",
            "token.created",
            "token.created",
            "token.created"
        ]
    );
    assert!(
        log.entries[..2]
            .iter()
            .all(|e| e.actor_kind == ferry_store::ActorKind::Token
                && e.actor.ends_with(" tests")
                && e.client == "127.0.0.1"),
        "{log:?}"
    );
    assert_eq!(log.entries[3].actor_kind, ferry_store::ActorKind::System);
}

#[tokio::test]
async fn bad_token_requests_name_the_field() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"name": "", "role": "viewer"}), "name"),
        (json!({"name": "x", "role": "owner"}), "role"),
        (
            json!({"name": "x", "role": "admin", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "role": "admin", "expires_at": "next week"}),
            "expires_at",
        ),
    ] {
        let (status, err) = app.post("/api/v1/tokens", body.clone()).await;
        assert_eq!(status, 422, "{body} → {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (status, list) = app.get("/api/v1/tokens").await;
    assert_eq!(status, 200);
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "nothing was created: {list}"
    );
}

#[tokio::test]
async fn sessions_are_listed_ended_and_signed_out_everywhere() {
    let app = spawn_app().await;
    let (first, _) = app.login().await;
    let (second, csrf2) = app.login().await;
    let list = app
        .http
        .get(app.url("/api/v1/sessions"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let sessions = list.as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| s["client"] == "127.0.0.1"));
    assert!(!list.to_string().contains(second.split('=').nth(1).unwrap()));

    // End the other session (the first) from the second.
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let res = app
        .http
        .delete(app.url(&format!(
            "/api/v1/sessions/{}",
            other["id"].as_str().unwrap()
        )))
        .header("cookie", &second)
        .header("x-csrf-token", &csrf2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.page(&first, "/contacts").await.0, 303, "signed out");
    assert_eq!(app.page(&second, "/contacts").await.0, 200);

    // An API token has no sessions to sign out of.
    let (status, err) = app
        .post("/api/v1/sessions/sign-out-everywhere", json!({}))
        .await;
    assert_eq!(status, 400, "{err}");

    let (third, _) = app.login().await;
    let res = app
        .http
        .post(app.url("/api/v1/sessions/sign-out-everywhere"))
        .header("cookie", &second)
        .header("x-csrf-token", &csrf2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 2);
    assert_eq!(app.page(&second, "/contacts").await.0, 303);
    assert_eq!(app.page(&third, "/contacts").await.0, 303);
}

#[tokio::test]
async fn the_security_page_creates_and_revokes_tokens_and_signs_out_everywhere() {
    let app = spawn_app().await;
    let (cookie, csrf) = app.login().await;
    let (status, page) = app.page(&cookie, "/settings/security").await;
    assert_eq!(status, 200);
    assert!(page.contains("API tokens") && page.contains("Sessions"));
    assert!(page.contains("This session"));
    let post = |path: &str, form: Vec<(&str, &str)>| {
        let mut form = form;
        form.push(("_csrf", csrf.as_str()));
        app.http
            .post(app.url(path))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };
    let res = post(
        "/settings/security/tokens",
        vec![
            ("name", "nightly"),
            ("role", "admin"),
            ("expires_in_days", "0"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("1-3650"));
    let res = post(
        "/settings/security/tokens",
        vec![
            ("name", "nightly"),
            ("role", "admin"),
            ("expires_in_days", "30"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let secret = page
        .split("<code class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the new secret is shown once")
        .to_string();
    let (status, _) = app.call(Method::GET, "/api/v1/me", &secret, None).await;
    assert_eq!(status, 200);
    let (_, page) = app.page(&cookie, "/settings/security").await;
    assert!(!page.contains(&secret), "shown only once");
    let (_, tokens) = app.get("/api/v1/tokens").await;
    let id = tokens[0]["id"].as_i64().unwrap();
    let res = post(&format!("/settings/security/tokens/{id}/revoke"), vec![])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Revoked the token nightly.")
    );
    let (status, _) = app.call(Method::GET, "/api/v1/me", &secret, None).await;
    assert_eq!(status, 401);

    let res = post("/settings/security/sign-out-everywhere", vec![])
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(app.page(&cookie, "/contacts").await.0, 303);
}
