//! The `/__emulator/…` administration endpoints.

use std::time::Duration;

use ferry_emulators::hubspot::{Counters, Faults, TokenGrant};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::env;

#[tokio::test]
async fn seed_dump_count_and_reset_over_http() {
    let env = env().await;
    let admin = |path: &str| env.url(&format!("/__emulator{path}"));
    let res = env
        .http
        .post(admin("/properties"))
        .json(&json!({"name": "crm_id", "label": "CRM ID", "type": "string", "fieldType": "text", "groupName": "contactinformation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = env
        .http
        .post(admin("/contacts"))
        .json(&json!({"contacts": [
            {"properties": {"email": "a@x.org", "crm_id": "A1"}, "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-02-01T00:00:00Z"},
            {"properties": {"email": "b@x.org"}, "archived": true},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let ids: Value = res.json().await.unwrap();
    assert_eq!(ids["ids"].as_array().unwrap().len(), 2);
    let res = env
        .http
        .post(admin("/contacts"))
        .json(&json!([{"properties": {"email": "A@x.org"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "seeding keeps the email rule");

    let r = env
        .get("/crm/v3/objects/contacts?properties=crm_id,email")
        .await;
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["createdAt"], "2024-01-01T00:00:00.000Z");
    assert_eq!(
        results[0]["properties"]["lastmodifieddate"],
        "2024-02-01T00:00:00.000Z"
    );
    env.patch(
        &format!(
            "/crm/v3/objects/contacts/{}",
            results[0]["id"].as_str().unwrap()
        ),
        json!({"properties": {"crm_id": "A2"}}),
    )
    .await;

    let state: Value = env
        .http
        .get(admin("/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contacts = state["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 2, "the dump includes archived contacts");
    assert_eq!(contacts[0]["properties"]["crm_id"], "A2");
    assert!(contacts[0]["updatedAt"].as_str().unwrap() > "2024-02-01");
    assert_eq!(contacts[1]["archived"], true);
    let counters: Counters = env
        .http
        .get(admin("/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters.requests_to("GET /crm/v3/objects/contacts"), 1);
    assert_eq!(
        counters.requests_to("PATCH /crm/v3/objects/contacts/{contactId}"),
        1
    );
    assert_eq!(counters.api_requests(), 2, "admin calls are not counted");
    assert_eq!(counters.statuses[&200], 2);

    let res = env.http.post(admin("/reset")).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(env.state().contacts().is_empty());
    assert_eq!(env.state().counters(), Counters::default());
    let r = env
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"crm_id": "x"}}),
        )
        .await;
    assert_eq!(r.status, 400, "custom properties are gone after a reset");
}

#[tokio::test]
async fn faults_clock_and_tokens_over_http() {
    let env = env().await;
    let admin = |path: &str| env.url(&format!("/__emulator{path}"));
    let res = env
        .http
        .put(admin("/faults"))
        .json(&json!({"seed": 9, "error_rate": 0.2, "latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let f: Faults = env
        .http
        .get(admin("/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (f.seed, f.error_rate, f.latency),
        (9, 0.2, Duration::from_millis(5))
    );
    assert_eq!(f.burst_429_len, Faults::default().burst_429_len);
    let res = env
        .http
        .put(admin("/faults"))
        .json(&json!({"error_rat": 0.2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "unknown fields are refused");
    env.state().set_faults(Faults::default());

    let grant: TokenGrant = env
        .http
        .post(admin("/oauth/tokens"))
        .json(&json!({"scopes": ["crm.objects.contacts.read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = |t: String| {
        let env = &env;
        async move {
            env.call_as(Some(&t), Method::GET, "/crm/v3/objects/contacts", None)
                .await
                .status
        }
    };
    assert_eq!(list(grant.access_token.clone()).await, 200);
    let res = env
        .http
        .post(admin("/clock/advance"))
        .json(&json!({"ms": 1_800_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(list(grant.access_token.clone()).await, 401);

    let grant = env.state().issue_tokens(&[]);
    assert_eq!(list(grant.access_token.clone()).await, 200);
    env.http.post(admin("/oauth/expire")).send().await.unwrap();
    assert_eq!(list(grant.access_token).await, 401);
}
