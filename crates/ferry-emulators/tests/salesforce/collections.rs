//! sObject Collections: create, update, upsert, delete; per-record errors; allOrNone.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::env;

fn contact(v: Value) -> Value {
    let mut m = v.as_object().cloned().unwrap();
    m.insert("attributes".into(), json!({"type": "Contact"}));
    Value::Object(m)
}

#[tokio::test]
async fn create_reports_each_record_in_order() {
    let env = env().await;
    env.seed(
        "Contact",
        vec![json!({"LastName": "Taken", "Email": "taken@state.edu"})],
    )
    .await;
    let r = env
        .call(
            Method::POST,
            "composite/sobjects",
            Some(json!({"allOrNone": false, "records": [
                contact(json!({"LastName": "One", "Email": "one@state.edu"})),
                contact(json!({"FirstName": "NoLast"})),
                contact(json!({"LastName": "Dup", "Email": "TAKEN@state.edu"})),
                contact(json!({"LastName": "Bad", "Email": "bad@"})),
                contact(json!({"LastName": "Two", "Nope__c": 1})),
                json!({"LastName": "Typeless"}),
                contact(json!({"LastName": "Three"})),
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let res = r.body.as_array().unwrap();
    assert_eq!(res.len(), 7);
    let codes: Vec<&str> = res
        .iter()
        .map(|x| x["errors"][0]["statusCode"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "REQUIRED_FIELD_MISSING",
            "DUPLICATES_DETECTED",
            "INVALID_EMAIL_ADDRESS",
            "INVALID_FIELD",
            "INVALID_TYPE",
            "ok"
        ]
    );
    assert_eq!(res[2]["errors"][0]["message"], "Use one of these records?");
    assert_eq!(res[1]["errors"][0]["fields"], json!(["LastName"]));
    assert!(res[0]["id"].as_str().unwrap().starts_with("003"));
    assert!(res[1].get("id").is_none() && res[1]["success"] == false);
    assert_eq!(env.emu.state().records("Contact").len(), 3);
}

#[tokio::test]
async fn all_or_none_rolls_everything_back() {
    let env = env().await;
    let r = env
        .call(
            Method::POST,
            "composite/sobjects",
            Some(json!({"allOrNone": true, "records": [
                contact(json!({"LastName": "One"})),
                contact(json!({"FirstName": "NoLast"})),
            ]})),
        )
        .await;
    let res = r.body.as_array().unwrap();
    assert_eq!(
        res[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(res[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert!(env.emu.state().records("Contact").is_empty());
}

#[tokio::test]
async fn update_upsert_and_delete() {
    let env = env().await;
    let ids = env
        .seed(
            "Contact",
            vec![
                json!({"LastName": "A", "Email": "a@state.edu"}),
                json!({"LastName": "B", "Ferry_Id__c": "p-2"}),
                json!({"LastName": "S1", "Student_Id__c": "dup"}),
                json!({"LastName": "S2", "Student_Id__c": "dup"}),
            ],
        )
        .await;
    let r = env
        .call(
            Method::PATCH,
            "composite/sobjects",
            Some(json!({"records": [
                contact(json!({"id": ids[0], "FirstName": "Ana", "Email": null})),
                contact(json!({"id": ids[1], "LastName": null})),
                contact(json!({"FirstName": "no id"})),
                contact(json!({"id": "003000000000000", "LastName": "X"})),
                json!({"id": "00Qnotanid", "LastName": "X"}),
            ]})),
        )
        .await;
    let codes: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["errors"][0]["statusCode"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "REQUIRED_FIELD_MISSING",
            "MISSING_ARGUMENT",
            "NOT_FOUND",
            "MALFORMED_ID"
        ]
    );
    let a = env.emu.state().record("Contact", &ids[0]).unwrap();
    assert_eq!(
        (a.get("FirstName").as_deref(), a.get("Email")),
        (Some("Ana"), None)
    );

    let r = env
        .call(
            Method::PATCH,
            "composite/sobjects/Contact/Ferry_Id__c",
            Some(json!({"allOrNone": false, "records": [
                contact(json!({"Ferry_Id__c": "p-2", "FirstName": "Bo"})),
                contact(json!({"Ferry_Id__c": "p-3", "LastName": "C"})),
                contact(json!({"LastName": "No key"})),
            ]})),
        )
        .await;
    let res = r.body.as_array().unwrap();
    assert_eq!(
        (res[0]["created"].clone(), res[0]["id"].clone()),
        (json!(false), json!(ids[1]))
    );
    assert_eq!(res[1]["created"], true);
    assert_eq!(res[2]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    let r = env
        .call(
            Method::PATCH,
            "composite/sobjects/Contact/Student_Id__c",
            Some(json!({"records": [
                contact(json!({"Student_Id__c": "dup", "LastName": "Z"})),
            ]})),
        )
        .await;
    assert_eq!(
        r.body[0]["errors"][0]["statusCode"],
        "DUPLICATE_EXTERNAL_ID"
    );
    assert_eq!(
        env.call(
            Method::PATCH,
            "composite/sobjects/Contact/Id",
            Some(json!({"records": []}))
        )
        .await
        .status,
        400
    );

    let r = env
        .call(
            Method::DELETE,
            &format!("composite/sobjects?ids={},{}", ids[2], "003000000000000"),
            None,
        )
        .await;
    assert_eq!(r.body[0]["success"], true);
    assert_eq!(r.body[1]["errors"][0]["statusCode"], "NOT_FOUND");
    assert!(env.emu.state().record("Contact", &ids[2]).unwrap().deleted);
}

#[tokio::test]
async fn more_than_200_records_is_refused_whole() {
    let env = env().await;
    let records: Vec<Value> = (0..201)
        .map(|i| contact(json!({"LastName": format!("N{i}")})))
        .collect();
    let r = env
        .call(
            Method::POST,
            "composite/sobjects",
            Some(json!({"records": records})),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, "EXCEEDED_ID_LIMIT"));
    assert!(env.emu.state().records("Contact").is_empty());
    let r = env
        .call(
            Method::POST,
            "composite/sobjects",
            Some(json!({"records": records[..200]})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(env.emu.state().records("Contact").len(), 200);
}
