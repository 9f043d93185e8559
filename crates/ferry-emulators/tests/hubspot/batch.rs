//! Batch read, create, update, upsert, archive.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::{contact, env};

const BATCH: &str = "/crm/v3/objects/contacts/batch";

fn ids(body: &Value) -> BTreeSet<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn batch_read_by_id_and_by_email_reports_missing_ones_in_a_207() {
    let env = env().await;
    let seeded = env.seed(vec![
        contact(&[("email", "a@x.org"), ("firstname", "A")]),
        contact(&[("email", "b@x.org"), ("firstname", "B")]),
    ]);
    let r = env
        .post(
            &format!("{BATCH}/read"),
            json!({"inputs": [{"id": seeded[0]}, {"id": seeded[1]}], "properties": ["firstname"], "propertiesWithHistory": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "COMPLETE");
    assert!(r.body["startedAt"].is_string() && r.body["completedAt"].is_string());
    assert_eq!(ids(&r.body), seeded.iter().cloned().collect());
    assert!(r.body.get("errors").is_none());

    let r = env
        .post(
            &format!("{BATCH}/read"),
            json!({"idProperty": "email", "inputs": [{"id": "A@x.org"}, {"id": "nobody@x.org"}], "properties": ["email"]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(ids(&r.body), BTreeSet::from([seeded[0].clone()]));
    assert_eq!(r.body["numErrors"], 1);
    let err = &r.body["errors"][0];
    assert_eq!(err["status"], "error");
    assert_eq!(err["category"], "OBJECT_NOT_FOUND");
    assert_eq!(err["context"]["ids"], json!(["nobody@x.org"]));

    // Only unique properties identify records.
    let r = env
        .post(
            &format!("{BATCH}/read"),
            json!({"idProperty": "firstname", "inputs": [{"id": "A"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn every_batch_endpoint_refuses_more_than_100_inputs() {
    let env = env().await;
    let inputs = |n: usize, f: &dyn Fn(usize) -> Value| (0..n).map(f).collect::<Vec<_>>();
    let cases = [
        (
            "read",
            json!({"inputs": inputs(101, &|i| json!({"id": i.to_string()})), "properties": []}),
        ),
        (
            "create",
            json!({"inputs": inputs(101, &|i| json!({"properties": {"email": format!("n{i}@x.org")}}))}),
        ),
        (
            "update",
            json!({"inputs": inputs(101, &|i| json!({"id": i.to_string(), "properties": {}}))}),
        ),
        (
            "upsert",
            json!({"inputs": inputs(101, &|i| json!({"id": format!("n{i}@x.org"), "idProperty": "email", "properties": {}}))}),
        ),
        (
            "archive",
            json!({"inputs": inputs(101, &|i| json!({"id": i.to_string()}))}),
        ),
    ];
    for (action, body) in cases {
        let r = env.post(&format!("{BATCH}/{action}"), body).await;
        assert_eq!(r.status, 400, "{action}: {}", r.text);
        assert_eq!(r.body["category"], "VALIDATION_ERROR");
        assert!(r.message().contains("100"), "{}", r.message());
    }
    assert!(env.state().contacts().is_empty());
    // Exactly 100 is fine.
    let r = env
        .post(
            &format!("{BATCH}/create"),
            json!({"inputs": inputs(100, &|i| json!({"properties": {"email": format!("n{i}@x.org")}}))}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn batch_create_answers_201_in_no_particular_order_with_trace_ids() {
    let env = env().await;
    let inputs: Vec<Value> = (0..5)
        .map(|i| {
            json!({"properties": {"email": format!("p{i}@x.org"), "firstname": format!("P{i}")},
                   "associations": [], "objectWriteTraceId": format!("t{i}")})
        })
        .collect();
    let r = env
        .post(&format!("{BATCH}/create"), json!({"inputs": inputs}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    for rec in results {
        let trace = rec["objectWriteTraceId"].as_str().unwrap();
        let i = &trace[1..];
        assert_eq!(rec["properties"]["email"], format!("p{i}@x.org"));
    }
    let emails: Vec<&str> = results
        .iter()
        .map(|r| r["properties"]["email"].as_str().unwrap())
        .collect();
    assert_ne!(
        emails,
        ["p0@x.org", "p1@x.org", "p2@x.org", "p3@x.org", "p4@x.org"],
        "results are not promised in input order; the emulator does not give it"
    );
}

#[tokio::test]
async fn a_batch_create_with_one_existing_email_fails_whole() {
    let env = env().await;
    let existing = env.seed(vec![
        contact(&[("email", "b@x.org")]),
        contact(&[("email", "d@x.org")]),
    ]);
    let r = env
        .post(
            &format!("{BATCH}/create"),
            json!({"inputs": [
                {"properties": {"email": "a@x.org"}},
                {"properties": {"email": "B@x.org"}},
                {"properties": {"email": "c@x.org"}},
                {"properties": {"email": "d@x.org"}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["category"], "CONFLICT");
    assert_eq!(
        r.message(),
        format!("Contact already exists. Existing ID: {}", existing[0]),
        "the first conflict is reported"
    );
    assert_eq!(env.state().contacts().len(), 2, "nothing was created");
    assert!(env.state().contact_by_email("a@x.org").is_none());

    // Two inputs with one email, or one unknown property, fail the batch too.
    let r = env
        .post(
            &format!("{BATCH}/create"),
            json!({"inputs": [{"properties": {"email": "e@x.org"}}, {"properties": {"email": "E@x.org"}}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = env
        .post(
            &format!("{BATCH}/create"),
            json!({"inputs": [{"properties": {"email": "f@x.org"}}, {"properties": {"nope": "1"}}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.message().starts_with("Property values were not valid"));
    assert_eq!(env.state().contacts().len(), 2);
}

#[tokio::test]
async fn batch_update_updates_what_exists_and_reports_the_rest() {
    let env = env().await;
    let ids = env.seed(vec![
        contact(&[("email", "a@x.org"), ("firstname", "A")]),
        contact(&[("email", "b@x.org"), ("firstname", "B")]),
    ]);
    let before = env.state().contact(&ids[0]).unwrap();
    let r = env
        .post(
            &format!("{BATCH}/update"),
            json!({"inputs": [
                {"id": ids[0], "properties": {"firstname": "Ann"}},
                {"id": ids[1], "properties": {"lastname": "Bee", "firstname": ""}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a = env.state().contact(&ids[0]).unwrap();
    assert_eq!(a.get("firstname"), Some("Ann"));
    assert!(a.updated_at > before.updated_at);
    let b = env.state().contact(&ids[1]).unwrap();
    assert_eq!((b.get("firstname"), b.get("lastname")), (None, Some("Bee")));

    let r = env
        .post(
            &format!("{BATCH}/update"),
            json!({"inputs": [
                {"id": ids[0], "properties": {"lastname": "Ay"}},
                {"id": "999", "properties": {"lastname": "Nobody"}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(r.body["errors"][0]["context"]["ids"], json!(["999"]));
    assert_eq!(
        env.state().contact(&ids[0]).unwrap().get("lastname"),
        Some("Ay")
    );

    // Duplicate ids, email as idProperty (a known HubSpot trap), conflicts: whole batch refused.
    let r = env
        .post(
            &format!("{BATCH}/update"),
            json!({"inputs": [{"id": ids[0], "properties": {}}, {"id": ids[0], "properties": {}}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.message()
            .starts_with("Duplicate IDs found in batch input")
    );
    let r = env
        .post(
            &format!("{BATCH}/update"),
            json!({"inputs": [{"id": "a@x.org", "idProperty": "email", "properties": {"lastname": "Z"}}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("non-unique"), "{}", r.message());
    let r = env
        .post(
            &format!("{BATCH}/update"),
            json!({"inputs": [
                {"id": ids[0], "properties": {"lastname": "Should not happen"}},
                {"id": ids[1], "properties": {"email": "a@x.org"}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        env.state().contact(&ids[0]).unwrap().get("lastname"),
        Some("Ay")
    );
}

#[tokio::test]
async fn batch_upsert_by_email_creates_and_updates() {
    let env = env().await;
    let ids = env.seed(vec![contact(&[("email", "a@x.org"), ("firstname", "A")])]);
    let r = env
        .post(
            &format!("{BATCH}/upsert"),
            json!({"inputs": [
                {"id": "A@X.org", "idProperty": "email", "properties": {"firstname": "Ann"}},
                {"id": "new@x.org", "idProperty": "email", "properties": {"firstname": "Nu"}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    let updated = results.iter().find(|x| x["id"] == ids[0].as_str()).unwrap();
    assert_eq!(updated["new"], false);
    let created = results.iter().find(|x| x["id"] != ids[0].as_str()).unwrap();
    assert_eq!(created["new"], true);
    assert_eq!(created["properties"]["email"], "new@x.org");
    assert_eq!(
        env.state()
            .contact_by_email("new@x.org")
            .unwrap()
            .get("firstname"),
        Some("Nu")
    );
    assert_eq!(
        env.state().contact(&ids[0]).unwrap().get("firstname"),
        Some("Ann")
    );

    let r = env
        .post(
            &format!("{BATCH}/upsert"),
            json!({"inputs": [{"id": "x@x.org", "properties": {}}]}),
        )
        .await;
    assert_eq!(r.status, 400, "idProperty is required");
}

#[tokio::test]
async fn batch_archive_archives_and_ignores_unknown_ids() {
    let env = env().await;
    let ids = env.seed(vec![
        contact(&[("email", "a@x.org")]),
        contact(&[("email", "b@x.org")]),
    ]);
    let r = env
        .post(
            &format!("{BATCH}/archive"),
            json!({"inputs": [{"id": ids[0]}, {"id": "424242"}]}),
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
    assert!(env.state().contact(&ids[0]).unwrap().archived);
    assert!(!env.state().contact(&ids[1]).unwrap().archived);
    let r = env
        .post(
            &format!("{BATCH}/read"),
            json!({"inputs": [{"id": ids[0]}], "properties": []}),
        )
        .await;
    assert_eq!(r.status, 207, "archived contacts disappear from reads");
}
