//! Walks the whole route table: every route but the public ones needs auth, admin routes refuse
//! viewers, nothing crosses institutions, and cookie sessions need the CSRF token to change things.

use ferry_web::auth::Access;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

fn concrete(path: &str, id: i64) -> String {
    path.replace("{id}", &id.to_string())
        .replace("{key_id}", &id.to_string())
        .replace("{file}", "ferry.css")
}

#[tokio::test]
async fn every_route_enforces_its_access_rule() {
    let app = spawn_app().await;
    let id = app.contact("Marker", "6175550150").await;
    let state = ferry_web::AppState::new(
        app.store.store.clone(),
        Default::default(),
        ferry_connectors::Registry::builtin(&app.base),
    );
    let table = ferry_web::routes::table(&state);
    assert!(table.len() >= 20, "the table lists every route");
    let (cookie, _csrf) = app.login().await;

    for spec in &table {
        let path = concrete(spec.path, id);
        let method = Method::from_bytes(spec.method.as_str().as_bytes()).unwrap();
        let api = spec.path.starts_with("/api/");
        let send = |token: Option<&str>| {
            let mut req = app.http.request(method.clone(), app.url(&path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if method == Method::POST || method == Method::PATCH {
                req = req.header("content-type", "application/json").body("{}");
            }
            req.send()
        };
        let anon = send(None).await.unwrap();
        match spec.access {
            Access::Public => assert!(
                anon.status() != 401 && anon.status() != 403,
                "{} {path} is public, got {}",
                spec.method,
                anon.status()
            ),
            _ if api => assert_eq!(anon.status(), 401, "{} {path} needs auth", spec.method),
            _ => {
                assert_eq!(
                    anon.status(),
                    303,
                    "{} {path} redirects to sign-in",
                    spec.method
                );
                assert!(
                    anon.headers()["location"]
                        .to_str()
                        .unwrap()
                        .starts_with("/login?next=")
                );
            }
        }
        if spec.access == Access::Public {
            continue;
        }
        let bad = send(Some("fry_invalid")).await.unwrap();
        assert_eq!(
            bad.status(),
            401,
            "{} {path} refuses a bad token",
            spec.method
        );

        let viewer = send(Some(&app.viewer_token)).await.unwrap();
        match spec.access {
            Access::Admin => {
                assert_eq!(viewer.status(), 403, "{} {path} is admin-only", spec.method)
            }
            _ => assert!(
                viewer.status() != 401 && viewer.status() != 403,
                "{} {path} is open to viewers, got {}",
                spec.method,
                viewer.status()
            ),
        }

        // An admin of another institution never reaches this institution's records.
        let other = send(Some(&app.other_admin_token)).await.unwrap();
        let status = other.status();
        let body = other.text().await.unwrap();
        if spec.path.contains("{id}") {
            assert!(
                status == 404 || status == 303,
                "{} {path} from another institution: {status} {body}",
                spec.method
            );
        }
        assert!(
            !body.contains("Marker"),
            "{} {path} leaked another institution's contact",
            spec.method
        );

        // A cookie session cannot change anything without the CSRF token.
        if method != Method::GET {
            let res = app
                .http
                .request(method.clone(), app.url(&path))
                .header("cookie", &cookie)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                403,
                "{} {path} needs the CSRF token",
                spec.method
            );
        }
    }
}

#[tokio::test]
async fn cookie_sessions_with_the_csrf_token_work_and_logout_ends_them() {
    let app = spawn_app().await;
    let (cookie, csrf) = app.login().await;
    let res = app
        .http
        .post(app.url("/api/v1/contacts"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(
            &serde_json::json!({"first_name": "Via", "last_name": "Cookie", "phone": "6175550160"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .http
        .post(app.url("/api/v1/contacts"))
        .header("cookie", &cookie)
        .header("x-csrf-token", "wrong")
        .json(&serde_json::json!({"first_name": "No", "last_name": "Csrf", "phone": "6175550161"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let res = app
        .http
        .get(app.url("/contacts"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the session is gone");
}

#[tokio::test]
async fn health_metrics_openapi_and_headers() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    app.get("/api/v1/me").await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ferry_http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("route=\"/api/v1/me\""),
        "metrics are labelled by route pattern"
    );
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/contacts",
        "/api/v1/contacts/{id}",
        "/api/v1/contacts/import",
        "/api/v1/messages",
        "/api/v1/fields",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let (status, body) = app.get("/api/v1/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, dict) = app.get("/api/v1/errors").await;
    assert_eq!(status, 200);
    assert!(
        dict.as_array()
            .unwrap()
            .iter()
            .any(|e| e["code"] == "match_conflict")
    );
}

#[tokio::test]
async fn errors_axum_makes_itself_come_in_the_documented_shape() {
    let app = spawn_app().await;
    let (_, dict) = app.get("/api/v1/errors").await;
    let known = |code: &Value| dict.as_array().unwrap().iter().any(|e| e["code"] == *code);
    let token = app.admin_token.clone();
    for (method, path, status, code, field) in [
        (
            Method::DELETE,
            "/api/v1/contacts",
            405,
            "method_not_allowed",
            None,
        ),
        (
            Method::GET,
            "/api/v1/contacts/%FF",
            400,
            "bad_request",
            None,
        ),
        (
            Method::GET,
            "/api/v1/contacts?archived=maybe",
            400,
            "invalid_value",
            Some("archived"),
        ),
        (
            Method::GET,
            "/api/v1/contacts?colour=red",
            400,
            "unknown_field",
            Some("colour"),
        ),
    ] {
        let (got, body) = app.call(method.clone(), path, &token, None).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(known(&body["error"]["code"]), "{code} is in the dictionary");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{method} {path}: {body}"
        );
        assert_eq!(
            body["error"]["field"].as_str(),
            field,
            "{method} {path}: {body}"
        );
    }
}
