//! OAuth: consent page, code exchange, expiry, refresh, token info, scopes.

use std::time::Duration;

use ferry_emulators::hubspot::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, OAuthClient,
};
use reqwest::Method;
use serde_json::Value;

use crate::common::{self, Env, Resp, env, env_with};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/hubspot/callback";
const SCOPES: &str = "crm.objects.contacts.read crm.objects.contacts.write";

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .unwrap()
        .into_iter()
        .collect()
}

fn authorize_url(env: &Env, params: &[(&str, &str)]) -> String {
    let q = serde_urlencoded::to_string(params).unwrap();
    env.url(&format!("/oauth/authorize?{q}"))
}

async fn authorize(env: &Env, scope: &str) -> String {
    let page = env
        .http
        .get(authorize_url(
            env,
            &[
                ("client_id", DEFAULT_CLIENT_ID),
                ("redirect_uri", REDIRECT),
                ("scope", scope),
                ("state", "st-123"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/oauth/authorize\">"),
        "{html}"
    );
    assert!(html.contains("id=\"connect\""));
    // Submit the form as a browser would: its hidden fields plus the button.
    let mut fields: Vec<(String, String)> = html
        .match_indices("<input type=\"hidden\" name=\"")
        .map(|(at, _)| {
            let rest = &html[at + 27..];
            let name = &rest[..rest.find('"').unwrap()];
            let v = &rest[rest.find("value=\"").unwrap() + 7..];
            let value = &v[..v.find('"').unwrap()];
            (name.to_string(), value.replace("&amp;", "&"))
        })
        .collect();
    fields.push(("decision".into(), "approve".into()));
    let res = env
        .http
        .post(env.url("/oauth/authorize"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(&location);
    assert_eq!(q["state"], "st-123");
    q["code"].clone()
}

async fn token(env: &Env, params: &[(&str, &str)]) -> Resp {
    let req = env.http.post(env.url("/oauth/v1/token")).form(params);
    env.finish("POST", "/oauth/v1/token", req).await
}

async fn exchange(env: &Env, code: &str) -> Resp {
    token(
        env,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", REDIRECT),
            ("code", code),
        ],
    )
    .await
}

async fn refresh(env: &Env, refresh_token: &str) -> Resp {
    token(
        env,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap()
}

#[tokio::test]
async fn authorization_code_flow_expiry_and_refresh() {
    let env = env().await;
    let code = authorize(&env, SCOPES).await;
    let r = exchange(&env, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 1800);
    assert_eq!(r.body["hub_id"], env.state().config().hub_id);
    let access = str_of(&r.body, "access_token").to_string();
    let refresh_token = str_of(&r.body, "refresh_token").to_string();

    let r = env
        .call_as(Some(&access), Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-hubspot-ratelimit-max").is_some());
    assert!(
        r.header("x-hubspot-ratelimit-daily").is_none(),
        "no daily headers for OAuth apps"
    );

    // A code works once.
    let r = exchange(&env, &code).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["status"], "BAD_AUTH_CODE");

    // After expires_in the token is refused with EXPIRED_AUTHENTICATION.
    env.state().advance_clock(Duration::from_secs(1801));
    let r = env
        .call_as(Some(&access), Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["category"], "EXPIRED_AUTHENTICATION");
    assert!(
        r.message()
            .starts_with("The OAuth token used to make this call expired")
    );

    // Refresh: a new access token, the same refresh token.
    let r = refresh(&env, &refresh_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(str_of(&r.body, "refresh_token"), refresh_token);
    let access2 = str_of(&r.body, "access_token").to_string();
    assert_ne!(access2, access);
    let r = env
        .call_as(
            Some(&access2),
            Method::GET,
            "/crm/v3/objects/contacts",
            None,
        )
        .await;
    assert_eq!(r.status, 200);

    // Token information.
    let r = env.get(&format!("/oauth/v1/access-tokens/{access2}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["hub_id"], env.state().config().hub_id);
    assert!(r.body["expires_in"].as_i64().unwrap() > 1700);
    assert!(
        r.body["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "crm.objects.contacts.write")
    );
    assert_eq!(
        env.get(&format!("/oauth/v1/access-tokens/{access}"))
            .await
            .status,
        404
    );
    let r = env
        .get(&format!("/oauth/v1/refresh-tokens/{refresh_token}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["client_id"], DEFAULT_CLIENT_ID);

    // Revoking the refresh token ends refreshes.
    assert_eq!(
        env.delete(&format!("/oauth/v1/refresh-tokens/{refresh_token}"))
            .await
            .status,
        204
    );
    let r = refresh(&env, &refresh_token).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["status"], "BAD_REFRESH_TOKEN");
}

#[tokio::test]
async fn short_lifetimes_for_tests_and_expiring_on_demand() {
    let env = env_with(EmulatorConfig {
        access_token_lifetime: Duration::from_secs(5),
        ..common::config()
    })
    .await;
    let grant = env.state().issue_tokens(&[]);
    assert_eq!(grant.expires_in, 5);
    let list = |t: String| {
        let env = &env;
        async move {
            env.call_as(Some(&t), Method::GET, "/crm/v3/objects/contacts", None)
                .await
                .status
        }
    };
    assert_eq!(list(grant.access_token.clone()).await, 200);
    env.state().expire_access_tokens();
    assert_eq!(list(grant.access_token.clone()).await, 401);
    let r = refresh(&env, &grant.refresh_token).await;
    assert_eq!(r.body["expires_in"], 5);
}

#[tokio::test]
async fn token_endpoint_errors() {
    let env = env().await;
    let code = authorize(&env, SCOPES).await;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("grant_type", "password")], "BAD_GRANT_TYPE"),
        (
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "other"),
                ("client_secret", DEFAULT_CLIENT_SECRET),
                ("redirect_uri", REDIRECT),
                ("code", &code),
            ],
            "BAD_CLIENT_ID",
        ),
        (
            &[
                ("grant_type", "authorization_code"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", "nope"),
                ("redirect_uri", REDIRECT),
                ("code", &code),
            ],
            "BAD_CLIENT_SECRET",
        ),
        (
            &[
                ("grant_type", "authorization_code"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
                ("redirect_uri", "http://elsewhere/cb"),
                ("code", &code),
            ],
            "BAD_REDIRECT_URI",
        ),
    ];
    for (params, status) in cases {
        let r = token(&env, params).await;
        assert_eq!(r.status, 400, "{status}");
        assert_eq!(r.body["status"], status);
        assert!(r.body["message"].is_string() && r.body["correlationId"].is_string());
    }
    // The failed attempts did not burn the code.
    assert_eq!(exchange(&env, &code).await.status, 200);
    // Codes expire.
    let code = authorize(&env, SCOPES).await;
    env.state().advance_clock(Duration::from_secs(601));
    assert_eq!(exchange(&env, &code).await.body["status"], "BAD_AUTH_CODE");
}

#[tokio::test]
async fn the_consent_page_checks_the_app_and_can_be_declined() {
    let env = env_with(EmulatorConfig {
        oauth: OAuthClient {
            redirect_uris: vec![REDIRECT.to_string()],
            ..OAuthClient::default()
        },
        ..common::config()
    })
    .await;
    let page = |client: &str, redirect: &str, scope: &str| {
        env.http
            .get(authorize_url(
                &env,
                &[
                    ("client_id", client),
                    ("redirect_uri", redirect),
                    ("scope", scope),
                ],
            ))
            .send()
    };
    assert_eq!(page("nope", REDIRECT, SCOPES).await.unwrap().status(), 400);
    assert_eq!(
        page(DEFAULT_CLIENT_ID, "http://evil/cb", SCOPES)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        page(DEFAULT_CLIENT_ID, REDIRECT, "crm.objects.deals.read")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        page(DEFAULT_CLIENT_ID, REDIRECT, SCOPES)
            .await
            .unwrap()
            .status(),
        200
    );

    let res = env
        .http
        .post(env.url("/oauth/authorize"))
        .form(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", SCOPES),
            ("state", "s"),
            ("decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let q = query_of(res.headers()["location"].to_str().unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "s");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn scopes_limit_what_a_token_may_do() {
    let env = env().await;
    let code = authorize(&env, "crm.objects.contacts.read").await;
    let r = exchange(&env, &code).await;
    let access = str_of(&r.body, "access_token").to_string();
    let r = env
        .call_as(Some(&access), Method::GET, "/crm/v3/objects/contacts", None)
        .await;
    assert_eq!(r.status, 200);
    let r = env
        .call_as(
            Some(&access),
            Method::POST,
            "/crm/v3/objects/contacts",
            Some(serde_json::json!({"properties": {"email": "a@x.org"}})),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["category"], "MISSING_SCOPES");
    assert_eq!(
        r.body["errors"][0]["context"]["requiredGranularScopes"],
        serde_json::json!(["crm.objects.contacts.write"])
    );
    let r = env
        .call_as(
            Some(&access),
            Method::POST,
            "/crm/v3/properties/contacts",
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(r.status, 403);
}
