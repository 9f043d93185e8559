use crate::helpers::{ADMIN_EMAIL, spawn_app, spawn_app_with};

#[tokio::test]
async fn sign_in_failures_are_generic_and_limited() {
    // A long first wait, so that the test does not depend on its own speed.
    let app = spawn_app_with(ferry_web::WebConfig {
        signin: ferry_core::signin::Policy {
            first_account_delay_secs: 600,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let attempt = |password: &'static str| {
        app.http
            .post(app.url("/login"))
            .form(&[("email", ADMIN_EMAIL), ("password", password)])
            .send()
    };
    let res = attempt("wrong password").await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("do not match"));
    for _ in 0..3 {
        attempt("wrong password").await.unwrap();
    }
    let res = attempt("correct horse battery staple").await.unwrap();
    assert_eq!(
        res.status(),
        429,
        "after 4 failures the same client waits, even with the right password"
    );
    assert!(res.headers().contains_key("retry-after"));
    // A cross-site sign-in post is refused.
    let other = crate::helpers::spawn_app().await;
    let res = other
        .http
        .post(other.url("/login"))
        .header("origin", "http://evil.example")
        .form(&[
            ("email", ADMIN_EMAIL),
            ("password", "correct horse battery staple"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn ui_pages_render_for_a_session() {
    let app = spawn_app().await;
    let id = app.contact("Zora", "6175550177").await;
    app.post("/api/v1/messages", serde_json::json!({"messages": [{"contact_id": id, "channel": "sms", "type": "live_chat", "direction": "incoming", "body": "Is housing <open>?", "sent_at": "2026-09-01T14:00:00Z"}]})).await;
    let (_, msgs) = app.get("/api/v1/messages").await;
    let mid = msgs["messages"][0]["id"].as_i64().unwrap();
    let (cookie, csrf) = app.login().await;
    let page = async |path: String| app.page(&cookie, &path).await.1;
    let list = page("/contacts?q=zora".into()).await;
    assert!(list.contains("Zora Student"));
    assert!(
        list.contains("(617) 555-0177"),
        "US phones are shown as people write them"
    );
    let detail = page(format!("/contacts/{id}?message={mid}")).await;
    assert!(
        detail.contains("Is housing &#60;open&#62;?") && !detail.contains("<open>"),
        "message bodies are escaped"
    );
    assert!(detail.contains(&format!("id=\"m{mid}\"")) && detail.contains("highlight"));
    // An export's link opens the message after signing in: the query survives the detour.
    let link = format!("/contacts/{id}?message={mid}");
    let anon = app.http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(anon.status(), 303);
    let to = anon.headers()["location"].to_str().unwrap().to_string();
    let next = reqwest::Url::parse(&format!("http://x{to}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert_eq!(next, link);
    let signed_in = app
        .http
        .post(app.url("/login"))
        .form(&[
            ("email", crate::helpers::ADMIN_EMAIL),
            ("password", crate::helpers::ADMIN_PASSWORD),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.headers()["location"].to_str().unwrap(), link);
    assert!(
        detail.contains("Sep 1, 2026 10:00 AM EDT"),
        "times show in the institution's zone"
    );
    let fields = page("/settings/fields".into()).await;
    assert!(fields.contains("Add a field"));
    let res = app
        .http
        .post(app.url("/settings/fields"))
        .header("cookie", &cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", "major"),
            ("label", "Major"),
            ("kind", "text"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Added Major."));
    let res = app
        .http
        .post(app.url("/settings/fields"))
        .header("cookie", &cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", "Bad Name"),
            ("label", "X"),
            ("kind", "text"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("not a valid field name"));
}
