//! The emulator's answers against HubSpot's published OpenAPI documents: a representative call
//! of every emulated operation, in its success and error forms.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_emulators::hubspot::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, Faults, RateLimits,
};
use ferry_emulators::schema::{HUBSPOT_DOCUMENTS, Specs};
use reqwest::Method;
use serde_json::json;

use crate::common::{self, SEEN, contact, env_with};

const C: &str = "/crm/v3/objects/contacts";

#[tokio::test]
async fn every_emulated_operation_answers_per_the_published_schemas() {
    let env = env_with(EmulatorConfig {
        limits: RateLimits {
            search_max: 3,
            ..RateLimits::unlimited()
        },
        ..common::config()
    })
    .await;
    let ids = env.seed(vec![
        contact(&[("email", "a@x.org"), ("firstname", "A")]),
        contact(&[("email", "b@x.org")]),
    ]);
    let (a, b) = (&ids[0], &ids[1]);

    env.get(&format!("{C}?limit=1&properties=firstname,phone"))
        .await;
    env.get(&format!("{C}?limit=500")).await;
    env.call_as(None, Method::GET, C, None).await;
    let id = env.create(json!({"email": "n@x.org", "phone": ""})).await;
    env.post(C, json!({"properties": {"email": "A@x.org"}}))
        .await;
    env.post(C, json!({"properties": {"nope": "1"}})).await;
    env.get(&format!("{C}/{a}?properties=phone")).await;
    env.get(&format!("{C}/a@x.org?idProperty=email")).await;
    env.get(&format!("{C}/1")).await;
    env.patch(
        &format!("{C}/{a}"),
        json!({"properties": {"lastname": "Ay"}}),
    )
    .await;
    env.delete(&format!("{C}/{id}")).await;
    env.post(
        &format!("{C}/batch/read"),
        json!({"inputs": [{"id": a}], "properties": ["email"], "propertiesWithHistory": []}),
    )
    .await;
    env.post(
        &format!("{C}/batch/read"),
        json!({"inputs": [{"id": a}, {"id": "1"}], "properties": []}),
    )
    .await;
    env.post(
        &format!("{C}/batch/create"),
        json!({"inputs": [{"properties": {"email": "c@x.org"}, "associations": []}]}),
    )
    .await;
    env.post(
        &format!("{C}/batch/update"),
        json!({"inputs": [{"id": b, "properties": {"firstname": "B"}}]}),
    )
    .await;
    env.post(
        &format!("{C}/batch/update"),
        json!({"inputs": [{"id": b, "properties": {}}, {"id": "1", "properties": {}}]}),
    )
    .await;
    env.post(
        &format!("{C}/batch/upsert"),
        json!({"inputs": [{"id": "d@x.org", "idProperty": "email", "properties": {}}]}),
    )
    .await;
    env.post(
        &format!("{C}/batch/archive"),
        json!({"inputs": [{"id": b}]}),
    )
    .await;
    for _ in 0..3 {
        env.post(&format!("{C}/search"), json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}], "sorts": [], "properties": ["email"], "limit": 1, "after": "0"})).await;
    }
    let r = env.post(&format!("{C}/search"), json!({})).await;
    assert_eq!(r.status, 429);
    env.state().advance_clock(std::time::Duration::from_secs(1));
    env.post(&format!("{C}/search"), json!({"limit": 1000}))
        .await;
    env.get("/crm/v3/properties/contacts").await;
    env.get("/crm/v3/properties/contacts/email").await;
    env.get("/crm/v3/properties/contacts/nope").await;
    let def = json!({"name": "tier", "label": "Tier", "type": "enumeration", "fieldType": "select", "groupName": "contactinformation",
                     "options": [{"label": "Gold", "value": "gold", "hidden": false}]});
    env.post("/crm/v3/properties/contacts", def.clone()).await;
    env.post("/crm/v3/properties/contacts", def).await;

    let grant = env.state().issue_tokens(&["crm.objects.contacts.read"]);
    env.call_as(
        Some(&grant.access_token),
        Method::POST,
        C,
        Some(json!({"properties": {}})),
    )
    .await;
    env.get(&format!("/oauth/v1/access-tokens/{}", grant.access_token))
        .await;
    env.get("/oauth/v1/access-tokens/unknown").await;
    env.get(&format!("/oauth/v1/refresh-tokens/{}", grant.refresh_token))
        .await;
    let refresh = |token: String| {
        let env = &env;
        async move {
            let req = env.http.post(env.url("/oauth/v1/token")).form(&[
                ("grant_type", "refresh_token"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
                ("refresh_token", token.as_str()),
            ]);
            env.finish("POST", "/oauth/v1/token", req).await
        }
    };
    assert_eq!(refresh(grant.refresh_token.clone()).await.status, 200);
    env.delete(&format!("/oauth/v1/refresh-tokens/{}", grant.refresh_token))
        .await;
    assert_eq!(refresh(grant.refresh_token.clone()).await.status, 400);

    env.state().set_limits(RateLimits {
        ten_secondly_max: 1,
        ..RateLimits::default()
    });
    env.state()
        .advance_clock(std::time::Duration::from_secs(10));
    env.get(C).await;
    env.get(C).await;
    env.state().set_limits(RateLimits::unlimited());
    env.state().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..12 {
        env.get(C).await;
    }

    let seen = SEEN.lock().unwrap().clone();
    let expected: BTreeSet<(String, u16)> = [
        ("GET /crm/v3/objects/contacts", 200),
        ("GET /crm/v3/objects/contacts", 400),
        ("GET /crm/v3/objects/contacts", 401),
        ("GET /crm/v3/objects/contacts", 429),
        ("GET /crm/v3/objects/contacts", 500),
        ("GET /crm/v3/objects/contacts", 503),
        ("POST /crm/v3/objects/contacts", 201),
        ("POST /crm/v3/objects/contacts", 400),
        ("POST /crm/v3/objects/contacts", 403),
        ("POST /crm/v3/objects/contacts", 409),
        ("GET /crm/v3/objects/contacts/{contactId}", 200),
        ("GET /crm/v3/objects/contacts/{contactId}", 404),
        ("PATCH /crm/v3/objects/contacts/{contactId}", 200),
        ("DELETE /crm/v3/objects/contacts/{contactId}", 204),
        ("POST /crm/v3/objects/contacts/batch/read", 200),
        ("POST /crm/v3/objects/contacts/batch/read", 207),
        ("POST /crm/v3/objects/contacts/batch/create", 201),
        ("POST /crm/v3/objects/contacts/batch/update", 200),
        ("POST /crm/v3/objects/contacts/batch/update", 207),
        ("POST /crm/v3/objects/contacts/batch/upsert", 200),
        ("POST /crm/v3/objects/contacts/batch/archive", 204),
        ("POST /crm/v3/objects/contacts/search", 200),
        ("POST /crm/v3/objects/contacts/search", 400),
        ("POST /crm/v3/objects/contacts/search", 429),
        ("GET /crm/v3/properties/{objectType}", 200),
        ("POST /crm/v3/properties/{objectType}", 201),
        ("POST /crm/v3/properties/{objectType}", 409),
        ("GET /crm/v3/properties/{objectType}/{propertyName}", 200),
        ("GET /crm/v3/properties/{objectType}/{propertyName}", 404),
        ("POST /oauth/v1/token", 200),
        ("POST /oauth/v1/token", 400),
        ("GET /oauth/v1/access-tokens/{token}", 200),
        ("GET /oauth/v1/access-tokens/{token}", 404),
        ("GET /oauth/v1/refresh-tokens/{token}", 200),
        ("DELETE /oauth/v1/refresh-tokens/{token}", 204),
    ]
    .into_iter()
    .map(|(op, s)| (op.to_string(), s))
    .collect();
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "not exercised (or not valid): {missing:?}\nseen: {seen:?}"
    );
    assert_eq!(env.state().schema_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn the_emulator_records_answers_that_break_the_schemas() {
    // HubSpot documents hub_id as an int32: an account id beyond it makes the token answer
    // non-conforming, which the emulator's own check must notice.
    let env = env_with(EmulatorConfig {
        hub_id: 3_000_000_000,
        ..common::config()
    })
    .await;
    assert!(env.state().config().validate_responses, "on by default");
    let grant = env.state().issue_tokens(&[]);
    let res = env
        .http
        .get(env.url(&format!("/oauth/v1/access-tokens/{}", grant.access_token)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the answer still goes out");
    let violations = env.state().schema_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].contains("/hub_id") && violations[0].contains("int32"),
        "{violations:?}"
    );
    env.state().reset();
    assert_eq!(
        env.state().schema_violations().len(),
        1,
        "a reset does not hide them"
    );
}

#[tokio::test]
async fn answers_without_null_values_pass_the_strict_schemas() {
    let env = env_with(common::config()).await;
    let id = env
        .create(json!({"email": "a@x.org", "firstname": "A", "lastname": "B"}))
        .await;
    let res = env
        .http
        .get(env.url(&format!("{C}/{id}")))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    let raw = res.bytes().await.unwrap();
    Specs::hubspot_strict()
        .validate_response("GET", &format!("{C}/{id}"), 200, &raw)
        .unwrap();
    // A requested property without a value is null: only the documented relaxation accepts it.
    let path = format!("{C}/{id}?properties=phone");
    let res = env
        .http
        .get(env.url(&path))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    let raw = res.bytes().await.unwrap();
    assert!(
        Specs::hubspot_strict()
            .validate_response("GET", &path, 200, &raw)
            .is_err()
    );
    Specs::hubspot()
        .validate_response("GET", &path, 200, &raw)
        .unwrap();
}

#[test]
fn vendored_specs_match_shared_copies() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/hubspot");
    if !shared.is_dir() {
        eprintln!("SKIPPED: {} is not present", shared.display());
        return;
    }
    for (name, text) in HUBSPOT_DOCUMENTS {
        let original = std::fs::read_to_string(shared.join(name)).unwrap();
        assert!(
            original == text,
            "{name} differs from the shared copy; re-vendor it"
        );
    }
}
