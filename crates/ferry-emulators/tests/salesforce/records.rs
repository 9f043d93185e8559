//! Versions, describe, single-record CRUD, upsert by external id, `updated` and `deleted`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Env, Resp, V, env};

#[tokio::test]
async fn versions_need_no_session_and_are_not_counted() {
    let env = env().await;
    let r = crate::common::http()
        .get(env.url("/services/data/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("sforce-limit-info").is_none());
    let list: Vec<Value> = r.json().await.unwrap();
    assert!(list.contains(
        &json!({"label": "Winter '16", "url": "/services/data/v35.0", "version": "35.0"})
    ));
    assert_eq!(list.last().unwrap()["version"], "62.0");
    assert_eq!(env.emu.state().counters().api_requests, 0);
    // An unknown version is a 404.
    assert_eq!(env.get("/services/data/v99.0/sobjects").await.status, 404);
}

#[tokio::test]
async fn describe_reports_realistic_field_metadata() {
    let env = env().await;
    let d = env.get("sobjects/Contact/describe").await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body["keyPrefix"], "003");
    let field = |name: &str| -> Value {
        d.body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(field("LastName")["nillable"], false);
    assert_eq!(field("LastName")["length"], 80);
    assert_eq!(field("FirstName")["nillable"], true);
    assert_eq!(field("Email")["type"], "email");
    assert_eq!(field("SystemModstamp")["createable"], false);
    assert_eq!(field("SystemModstamp")["updateable"], false);
    assert_eq!(field("Ferry_Id__c")["externalId"], true);
    assert_eq!(field("Ferry_Id__c")["custom"], true);
    assert_eq!(field("Ferry_Id__c")["unique"], true);
    let status_field = field("Enrollment_Status__c");
    let statuses: Vec<&str> = status_field["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"Enrolled"));
    assert_eq!(field("Enrollment_Status__c")["restrictedPicklist"], true);
    let lead = env.get("sobjects/Lead/describe").await;
    assert_eq!(lead.body["keyPrefix"], "00Q");
    assert!(
        lead.body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Company" && f["nillable"] == false)
    );
    assert_eq!(env.get("sobjects/Opportunity/describe").await.status, 404);
    let global = env.get("sobjects").await;
    assert_eq!(global.body["sobjects"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn crud_with_salesforce_errors() {
    let env = env().await;
    let created = env
        .call(
            Method::POST,
            "sobjects/Contact",
            Some(json!({"FirstName": "Ana", "LastName": "Diaz", "Email": "ana@state.edu"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["success"], true);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("003"));

    let read = env
        .get(&format!("sobjects/Contact/{id}?fields=Name,Email"))
        .await;
    assert_eq!(
        read.body,
        json!({"attributes": {"type": "Contact", "url": format!("{V}/sobjects/Contact/{id}")}, "Name": "Ana Diaz", "Email": "ana@state.edu"})
    );
    // The 15-character id works too.
    assert_eq!(
        env.get(&format!("sobjects/Contact/{}", &id[..15]))
            .await
            .status,
        200
    );

    let cases = [
        (json!({"FirstName": "X"}), "REQUIRED_FIELD_MISSING"),
        (
            json!({"LastName": "X", "Email": "nope"}),
            "INVALID_EMAIL_ADDRESS",
        ),
        (json!({"LastName": "X", "Shoe_Size__c": 9}), "INVALID_FIELD"),
        (
            json!({"LastName": "X", "SystemModstamp": "2020-01-01T00:00:00Z"}),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (
            json!({"LastName": "X", "Enrollment_Status__c": "Napping"}),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        (
            json!({"LastName": "X", "Email": "ANA@state.edu"}),
            "DUPLICATES_DETECTED",
        ),
    ];
    for (body, code) in cases {
        let r = env
            .call(Method::POST, "sobjects/Contact", Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, code),
            "{body}: {}",
            r.body
        );
        assert!(r.body[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = env
        .call(
            Method::POST,
            "sobjects/Contact",
            Some(json!({"LastName": "X", "Email": "bad"})),
        )
        .await;
    assert_eq!(r.body[0]["fields"], json!(["Email"]));

    // Update: null clears a nillable field, not a required one.
    let r = env
        .call(
            Method::PATCH,
            &format!("sobjects/Contact/{id}"),
            Some(json!({"FirstName": null, "Phone": "617-555-0101"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let rec = env.emu.state().record("Contact", &id).unwrap();
    assert_eq!(rec.get("FirstName"), None);
    assert_eq!(rec.get("Phone").as_deref(), Some("617-555-0101"));
    let r = env
        .call(
            Method::PATCH,
            &format!("sobjects/Contact/{id}"),
            Some(json!({"LastName": null})),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, "REQUIRED_FIELD_MISSING"));
    let r = env
        .call(
            Method::PATCH,
            &format!("sobjects/Contact/{id}"),
            Some(json!({"LastName": ""})),
        )
        .await;
    assert_eq!(r.error_code(), "REQUIRED_FIELD_MISSING");
    assert_eq!(
        env.emu
            .state()
            .record("Contact", &id)
            .unwrap()
            .get("LastName")
            .as_deref(),
        Some("Diaz"),
        "nothing half-applied"
    );

    let r = env
        .call(
            Method::PATCH,
            "sobjects/Contact/003notanid",
            Some(json!({"LastName": "Y"})),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, "MALFORMED_ID"));
    let r = env
        .call(
            Method::PATCH,
            "sobjects/Contact/not-an-id",
            Some(json!({"LastName": "Y"})),
        )
        .await;
    assert_eq!(r.error_code(), "MALFORMED_ID");

    assert_eq!(
        env.call(Method::DELETE, &format!("sobjects/Contact/{id}"), None)
            .await
            .status,
        204
    );
    let gone = env.get(&format!("sobjects/Contact/{id}")).await;
    assert_eq!((gone.status, gone.error_code()), (404, "ENTITY_IS_DELETED"));
    assert!(env.emu.state().record("Contact", &id).unwrap().deleted);
    // Its email is free again.
    assert_eq!(
        env.call(
            Method::POST,
            "sobjects/Contact",
            Some(json!({"LastName": "Diaz", "Email": "ana@state.edu"}))
        )
        .await
        .status,
        201
    );
}

#[tokio::test]
async fn upsert_by_external_id_creates_updates_and_refuses_ambiguity() {
    let env = env().await;
    let path = "sobjects/Contact/Ferry_Id__c/42";
    let r = env
        .call(Method::PATCH, path, Some(json!({"LastName": "Diaz"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["created"], true);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = env
        .call(Method::PATCH, path, Some(json!({"FirstName": "Ana"})))
        .await;
    assert_eq!(
        (r.status, r.body["created"].clone(), r.body["id"].clone()),
        (200, json!(false), json!(id))
    );
    assert_eq!(env.get(path).await.body["FirstName"], "Ana");
    let r = env
        .call(
            Method::PATCH,
            "sobjects/Contact/Ferry_Id__c/43?updateOnly=true",
            Some(json!({"LastName": "X"})),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (404, "NOT_FOUND"));

    // Student_Id__c is an external id that is not unique: two matches give a 300.
    env.seed(
        "Contact",
        vec![
            json!({"LastName": "A", "Student_Id__c": "S1"}),
            json!({"LastName": "B", "Student_Id__c": "S1"}),
        ],
    )
    .await;
    let before = env.emu.state().records("Contact");
    let r = env
        .call(
            Method::PATCH,
            "sobjects/Contact/Student_Id__c/S1",
            Some(json!({"LastName": "C"})),
        )
        .await;
    assert_eq!(r.status, 300);
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    assert_eq!(
        env.emu.state().records("Contact"),
        before,
        "nothing written"
    );
    let r = env
        .call(
            Method::PATCH,
            "sobjects/Contact/LastName/Diaz",
            Some(json!({"FirstName": "Z"})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (404, "NOT_FOUND"),
        "LastName is not an external id"
    );
}

#[tokio::test]
async fn updated_and_deleted_cover_a_window() {
    let env = env().await;
    let ids = env
        .seed(
            "Contact",
            vec![json!({"LastName": "Old", "SystemModstamp": "2020-01-01T00:00:00Z"})],
        )
        .await;
    let created = env
        .call(
            Method::POST,
            "sobjects/Contact",
            Some(json!({"LastName": "New"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doomed = env
        .call(
            Method::POST,
            "sobjects/Contact",
            Some(json!({"LastName": "Doomed"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.call(Method::DELETE, &format!("sobjects/Contact/{doomed}"), None)
        .await;
    env.emu
        .state()
        .advance_clock(std::time::Duration::from_secs(120));
    let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
    let start = (now - jiff::SignedDuration::from_secs(3600))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let end = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let q = serde_urlencoded::to_string([("start", &start), ("end", &end)]).unwrap();
    let u = env.get(&format!("sobjects/Contact/updated?{q}")).await;
    assert_eq!(u.status, 200, "{}", u.body);
    assert_eq!(u.body["ids"], json!([created]));
    assert!(!u.body["ids"].as_array().unwrap().contains(&json!(ids[0])));
    assert!(
        u.body["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    let d = env.get(&format!("sobjects/Contact/deleted?{q}")).await;
    assert_eq!(d.body["deletedRecords"][0]["id"], doomed.as_str());
    let too_old =
        serde_urlencoded::to_string([("start", "2020-01-01T00:00:00Z"), ("end", &end)]).unwrap();
    assert_eq!(
        env.get(&format!("sobjects/Contact/updated?{too_old}"))
            .await
            .error_code(),
        "INVALID_REPLICATION_DATE"
    );
    assert_eq!(env.get("sobjects/Contact/updated").await.status, 400);
}

/// Salesforce answers a resource with or without a trailing slash: the REST API guide's
/// examples write `…/sobjects/Account/` and `…/query/?q=`, and simple-salesforce builds every URL
/// that way. It used to be a 404 here.
#[tokio::test]
async fn a_trailing_slash_names_the_same_resource() {
    let env = env().await;
    let created = env
        .call(
            Method::POST,
            "sobjects/Contact/",
            Some(json!({"LastName": "Slash", "Ferry_Id__c": "S-1"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let q = serde_urlencoded::to_string([("q", "SELECT Id FROM Contact")]).unwrap();
    for path in [
        format!("query/?{q}"),
        format!("queryAll/?{q}"),
        "limits/".to_string(),
        "sobjects/".to_string(),
        "sobjects/Contact/describe/".to_string(),
        format!("sobjects/Contact/{id}/"),
        "sobjects/Contact/Ferry_Id__c/S-1/".to_string(),
    ] {
        let r = env.get(&path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    }
    let r = env
        .call(
            Method::PATCH,
            &format!("sobjects/Contact/{id}/"),
            Some(json!({"FirstName": "Trailing"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        env.emu
            .state()
            .record("Contact", &id)
            .unwrap()
            .get("FirstName")
            .as_deref(),
        Some("Trailing")
    );
    // Counted under one endpoint key, with or without the slash.
    let counters = env.emu.state().counters();
    assert_eq!(
        counters.requests_to("GET /services/data/vXX.X/sobjects/Contact/{id}"),
        1
    );
    // An unknown resource is still a 404, slash or not.
    assert_eq!(
        env.get("sobjects/Contact/nope/extra/more/").await.status,
        404
    );
}

async fn create_contact(env: &Env, body: Value) -> Resp {
    env.call(Method::POST, "sobjects/Contact", Some(body)).await
}

async fn patch_contact(env: &Env, id: &str, body: Value) -> Resp {
    env.call(Method::PATCH, &format!("sobjects/Contact/{id}"), Some(body))
        .await
}

/// The unique, duplicate-rule and external-id checks look values up in an index: an update
/// that changes (or clears) an indexed value frees the old one and takes the new one.
#[tokio::test]
async fn an_update_moves_indexed_values() {
    let env = env().await;
    let a = create_contact(
        &env,
        json!({"LastName": "Diaz", "Email": "ana@state.edu",
                          "Ferry_Id__c": "F-1", "Student_Id__c": "S1"}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = a.body["id"].as_str().unwrap().to_string();
    let b = create_contact(
        &env,
        json!({"LastName": "Okafor", "Email": "ben@state.edu", "Ferry_Id__c": "F-2"}),
    )
    .await;
    assert_eq!(b.status, 201, "{}", b.body);
    let b = b.body["id"].as_str().unwrap().to_string();

    // Before: A's values conflict.
    let r = create_contact(&env, json!({"LastName": "X", "Ferry_Id__c": "f-1"})).await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "DUPLICATE_VALUE"),
        "{}",
        r.body
    );

    // A moves to new values; saving its own values again is no conflict.
    let moved = json!({"Email": "ana.diaz@state.edu", "Ferry_Id__c": "F-9", "Student_Id__c": "S2"});
    for _ in 0..2 {
        let r = patch_contact(&env, &a, moved.clone()).await;
        assert_eq!(r.status, 204, "{}", r.body);
    }

    // (a) The old values no longer conflict or match.
    let r = patch_contact(&env, &b, json!({"Ferry_Id__c": "F-1"})).await;
    assert_eq!(r.status, 204, "F-1 is free: {}", r.body);
    let r = create_contact(&env, json!({"LastName": "X", "Email": "ANA@state.edu"})).await;
    assert_eq!(r.status, 201, "ana@state.edu is free: {}", r.body);
    let r = env
        .call(
            Method::PATCH,
            "sobjects/Contact/Student_Id__c/S1?updateOnly=true",
            Some(json!({"LastName": "Y"})),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (404, "NOT_FOUND"), "{}", r.body);
    // The external id F-1 now finds B, not A.
    let r = env
        .call(
            Method::PATCH,
            "sobjects/Contact/Ferry_Id__c/f-1",
            Some(json!({"FirstName": "Ben"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["id"].clone()),
        (200, json!(b)),
        "{}",
        r.body
    );

    // (b) The new values conflict, whatever their case, and name A.
    let r = create_contact(&env, json!({"LastName": "X", "Ferry_Id__c": "f-9"})).await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "DUPLICATE_VALUE"),
        "{}",
        r.body
    );
    assert!(
        r.body[0]["message"].as_str().unwrap().contains(&a),
        "{}",
        r.body
    );
    let r = patch_contact(&env, &b, json!({"Ferry_Id__c": "F-9"})).await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "DUPLICATE_VALUE"),
        "{}",
        r.body
    );
    let r = create_contact(
        &env,
        json!({"LastName": "X", "Email": "Ana.Diaz@state.edu"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "DUPLICATES_DETECTED"),
        "{}",
        r.body
    );
    let r = env
        .call(
            Method::PATCH,
            "sobjects/Contact/Student_Id__c/s2?updateOnly=true",
            Some(json!({"FirstName": "Ana"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["id"].clone()),
        (200, json!(a)),
        "{}",
        r.body
    );

    // Clearing a value frees it too.
    let r = patch_contact(&env, &a, json!({"Email": null})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = create_contact(
        &env,
        json!({"LastName": "X", "Email": "ana.diaz@state.edu"}),
    )
    .await;
    assert_eq!(r.status, 201, "a cleared email is free: {}", r.body);
}
