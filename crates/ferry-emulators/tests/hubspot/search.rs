//! Search: operators, groups, sorting, paging, the 10,000 cap, delayed visibility.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_emulators::hubspot::{EmulatorConfig, SeedContact};
use serde_json::{Value, json};

use crate::common::{self, contact, env, env_with};

const SEARCH: &str = "/crm/v3/objects/contacts/search";

fn emails(body: &Value) -> BTreeSet<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["email"].as_str().unwrap_or("-").to_string())
        .collect()
}

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn operators_filter_as_documented() {
    let env = env().await;
    env.state()
        .create_property(json!({"name": "score", "label": "Score", "type": "number", "fieldType": "number", "groupName": "contactinformation"}))
        .unwrap();
    env.seed(vec![
        contact(&[
            ("email", "ana@state.edu"),
            ("firstname", "Ana Maria"),
            ("lastname", "Diaz"),
            ("score", "9"),
            ("phone", "+16175550101"),
        ]),
        contact(&[
            ("email", "bea@state.edu"),
            ("firstname", "Bea"),
            ("lastname", "Diaz"),
            ("score", "10"),
        ]),
        contact(&[
            ("email", "cy@other.org"),
            ("firstname", "Cy"),
            ("lastname", "Young"),
            ("score", "100"),
        ]),
        contact(&[("email", "dee@other.org"), ("firstname", "Dee")]),
    ]);
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"propertyName": "lastname", "operator": "EQ", "value": "diaz"}),
            &["ana@state.edu", "bea@state.edu"],
        ),
        (
            json!({"propertyName": "lastname", "operator": "NEQ", "value": "Diaz"}),
            &["cy@other.org", "dee@other.org"],
        ),
        (
            json!({"propertyName": "score", "operator": "GT", "value": "9"}),
            &["bea@state.edu", "cy@other.org"],
        ),
        (
            json!({"propertyName": "score", "operator": "GTE", "value": "10"}),
            &["bea@state.edu", "cy@other.org"],
        ),
        (
            json!({"propertyName": "score", "operator": "LT", "value": "10"}),
            &["ana@state.edu"],
        ),
        (
            json!({"propertyName": "score", "operator": "LTE", "value": "10"}),
            &["ana@state.edu", "bea@state.edu"],
        ),
        (
            json!({"propertyName": "score", "operator": "BETWEEN", "value": "10", "highValue": "100"}),
            &["bea@state.edu", "cy@other.org"],
        ),
        (
            json!({"propertyName": "email", "operator": "IN", "values": ["ana@state.edu", "cy@other.org"]}),
            &["ana@state.edu", "cy@other.org"],
        ),
        (
            json!({"propertyName": "firstname", "operator": "NOT_IN", "values": ["bea", "cy"]}),
            &["ana@state.edu", "dee@other.org"],
        ),
        (
            json!({"propertyName": "phone", "operator": "HAS_PROPERTY"}),
            &["ana@state.edu"],
        ),
        (
            json!({"propertyName": "lastname", "operator": "NOT_HAS_PROPERTY"}),
            &["dee@other.org"],
        ),
        (
            json!({"propertyName": "firstname", "operator": "CONTAINS_TOKEN", "value": "maria"}),
            &["ana@state.edu"],
        ),
        (
            json!({"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@other.org"}),
            &["cy@other.org", "dee@other.org"],
        ),
        (
            json!({"propertyName": "email", "operator": "NOT_CONTAINS_TOKEN", "value": "*@other.org"}),
            &["ana@state.edu", "bea@state.edu"],
        ),
    ];
    for (filter, expected) in cases {
        let r = env
            .post(SEARCH, json!({"filterGroups": [{"filters": [filter.clone()]}], "properties": ["email"], "limit": 100}))
            .await;
        assert_eq!(r.status, 200, "{filter}: {}", r.text);
        assert_eq!(emails(&r.body), set(expected), "{filter}");
        assert_eq!(r.body["total"], expected.len());
    }
    // AND within a group, OR across groups.
    let r = env
        .post(
            SEARCH,
            json!({"filterGroups": [
                {"filters": [
                    {"propertyName": "firstname", "operator": "EQ", "value": "Bea"},
                    {"propertyName": "lastname", "operator": "EQ", "value": "Diaz"}]},
                {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Dee"}]}
            ], "properties": ["email"]}),
        )
        .await;
    assert_eq!(emails(&r.body), set(&["bea@state.edu", "dee@other.org"]));
    // Free text.
    let r = env
        .post(SEARCH, json!({"query": "you", "properties": ["email"]}))
        .await;
    assert_eq!(emails(&r.body), set(&["cy@other.org"]));
    // No filters: everything, with the default properties.
    let r = env.post(SEARCH, json!({})).await;
    assert_eq!(r.body["total"], 4);
    let props = r.body["results"][0]["properties"].as_object().unwrap();
    assert!(props.contains_key("lastmodifieddate") && props.contains_key("firstname"));
}

#[tokio::test]
async fn malformed_searches_are_refused() {
    let env = env().await;
    let bad = [
        json!({"limit": 201}),
        json!({"limit": 0}),
        json!({"after": "abc"}),
        json!({"sorts": ["createdate", "email"]}),
        json!({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]}),
        json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "1"}]}]}),
        json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ"}]}]}),
        json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "IN", "values": []}]}]}),
        json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "yesterday"}]}]}),
        json!({"filterGroups": (0..7).map(|_| json!({"filters": []})).collect::<Vec<_>>()}),
    ];
    for body in bad {
        let r = env.post(SEARCH, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["category"], "VALIDATION_ERROR");
    }
    assert_eq!(env.post(SEARCH, json!({"limit": 200})).await.status, 200);
}

#[tokio::test]
async fn incremental_pull_by_lastmodifieddate_ascending() {
    let env = env().await;
    let base = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let seeded: Vec<SeedContact> = (0..30)
        .map(|i| {
            let mut c = contact(&[("email", &format!("m{i:02}@x.org"))]);
            // Newest first by id, so sorting must reorder.
            c.updated_at = Some(base + jiff::SignedDuration::from_secs(1000 - i * 10));
            c
        })
        .collect();
    env.seed(seeded);
    let since = (base + jiff::SignedDuration::from_secs(1000 - 29 * 10 + 5)).as_millisecond();
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut body = json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since.to_string()}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["email", "lastmodifieddate"],
            "limit": 7,
        });
        if let Some(a) = &after {
            body["after"] = json!(a);
        }
        let r = env.post(SEARCH, body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["total"], 29);
        for rec in r.body["results"].as_array().unwrap() {
            got.push(
                rec["properties"]["lastmodifieddate"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        after = r.body["paging"]["next"]["after"].as_str().map(String::from);
        if after.is_none() {
            break;
        }
    }
    assert_eq!(got.len(), 29);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted);

    // Descending with the string form the spec documents ("-name").
    let r = env
        .post(
            SEARCH,
            json!({"sorts": ["-lastmodifieddate"], "properties": ["email"], "limit": 1}),
        )
        .await;
    assert_eq!(emails(&r.body), set(&["m00@x.org"]));
}

#[tokio::test]
async fn paging_stops_at_10000_results() {
    let env = env().await;
    env.seed(
        (0..10_050)
            .map(|i| contact(&[("firstname", "Same"), ("lastname", &i.to_string())]))
            .collect(),
    );
    let query = |after: &str| {
        json!({"filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Same"}]}],
               "limit": 200, "after": after, "properties": ["lastname"]})
    };
    let r = env.post(SEARCH, query("9800")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total"], 10_050, "total counts every match");
    assert_eq!(r.body["results"].as_array().unwrap().len(), 200);
    assert_eq!(r.body["paging"]["next"]["after"], "10000");
    let r = env.post(SEARCH, query("10000")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    let r = env.post(SEARCH, query("9900")).await;
    assert_eq!(
        r.body["results"].as_array().unwrap().len(),
        100,
        "the page ends at the cap"
    );
}

#[tokio::test]
async fn new_writes_become_searchable_after_the_configured_delay() {
    let env = env_with(EmulatorConfig {
        search_visibility_delay: Duration::from_secs(2),
        ..common::config()
    })
    .await;
    let id = env
        .create(json!({"email": "late@x.org", "firstname": "Old"}))
        .await;
    let by_email = json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "late@x.org"}]}], "properties": ["firstname"]});
    let r = env.post(SEARCH, by_email.clone()).await;
    assert_eq!(r.body["total"], 0, "not indexed yet");
    assert_eq!(
        env.get(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        200,
        "reads by id are immediate"
    );
    env.state().advance_clock(Duration::from_secs(3));
    let r = env.post(SEARCH, by_email.clone()).await;
    assert_eq!(r.body["total"], 1);

    env.patch(
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"firstname": "New"}}),
    )
    .await;
    let r = env.post(SEARCH, by_email.clone()).await;
    assert_eq!(r.body["results"][0]["properties"]["firstname"], "Old");
    env.state().advance_clock(Duration::from_secs(3));
    let r = env.post(SEARCH, by_email).await;
    assert_eq!(r.body["results"][0]["properties"]["firstname"], "New");
}
