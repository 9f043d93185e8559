//! The properties API, and custom properties in writes.

use serde_json::json;

use crate::common::env;

const PROPS: &str = "/crm/v3/properties/contacts";

#[tokio::test]
async fn lists_reads_and_creates_properties() {
    let env = env().await;
    let r = env.get(PROPS).await;
    assert_eq!(r.status, 200);
    let names: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in [
        "email",
        "firstname",
        "lastname",
        "phone",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let r = env.get(&format!("{PROPS}/hs_object_id")).await;
    assert_eq!(r.body["modificationMetadata"]["readOnlyValue"], true);
    assert_eq!(r.body["type"], "number");
    assert_eq!(env.get(&format!("{PROPS}/nope")).await.status, 404);
    assert_eq!(env.get("/crm/v3/properties/wombats").await.status, 400);
    let r = env.get(&format!("{PROPS}?properties=email,phone")).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 2);

    let def = json!({"name": "student_id", "label": "Student ID", "type": "string", "fieldType": "text",
                     "groupName": "contactinformation", "hasUniqueValue": true});
    let r = env.post(PROPS, def.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some("/crm/v3/properties/contacts/student_id")
    );
    assert_eq!(r.body["hasUniqueValue"], true);
    let r = env.post(PROPS, def).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["category"], "OBJECT_ALREADY_EXISTS");

    for bad in [
        json!({"name": "x", "label": "X", "type": "number", "fieldType": "text", "groupName": "contactinformation"}),
        json!({"name": "x", "label": "X", "type": "text", "fieldType": "text", "groupName": "contactinformation"}),
        json!({"name": "x", "label": "X", "type": "string", "fieldType": "text", "groupName": "my_group"}),
        json!({"name": "X Y", "label": "X", "type": "string", "fieldType": "text", "groupName": "contactinformation"}),
        json!({"name": "x", "label": "X", "type": "enumeration", "fieldType": "select", "groupName": "contactinformation"}),
        json!({"name": "x", "type": "string", "fieldType": "text", "groupName": "contactinformation"}),
    ] {
        let r = env.post(PROPS, bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

#[tokio::test]
async fn custom_properties_are_typed_and_unique_ones_identify_contacts() {
    let env = env().await;
    for def in [
        json!({"name": "student_id", "label": "Student ID", "type": "string", "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": true}),
        json!({"name": "gpa", "label": "GPA", "type": "number", "fieldType": "number", "groupName": "contactinformation"}),
        json!({"name": "enrolled_on", "label": "Enrolled", "type": "date", "fieldType": "date", "groupName": "contactinformation"}),
        json!({"name": "opted_in", "label": "Opted in", "type": "bool", "fieldType": "booleancheckbox", "groupName": "contactinformation",
               "options": [{"label": "Yes", "value": "true", "hidden": false}, {"label": "No", "value": "false", "hidden": false}]}),
    ] {
        assert_eq!(env.post(PROPS, def).await.status, 201);
    }
    let r = env
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"student_id": "S-1", "gpa": 3.5, "enrolled_on": "1704153600000", "opted_in": "TRUE"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let p = &r.body["properties"];
    assert_eq!(
        (
            p["gpa"].as_str(),
            p["enrolled_on"].as_str(),
            p["opted_in"].as_str()
        ),
        (Some("3.5"), Some("2024-01-02"), Some("true")),
        "every value comes back a string"
    );
    let id = r.id();

    for (name, value, code) in [
        ("gpa", "high", "INVALID_NUMBER"),
        ("enrolled_on", "1704153600001", "INVALID_DATE"),
        ("opted_in", "maybe", "INVALID_BOOLEAN"),
    ] {
        let r = env
            .patch(
                &format!("/crm/v3/objects/contacts/{id}"),
                json!({"properties": {name: value}}),
            )
            .await;
        assert_eq!(r.status, 400, "{name}");
        assert!(r.message().contains(code), "{}", r.message());
    }
    let r = env
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"student_id": "s-1"}}),
        )
        .await;
    assert_eq!(r.status, 409, "unique values are unique");
    let r = env
        .get("/crm/v3/objects/contacts/S-1?idProperty=student_id&properties=gpa")
        .await;
    assert_eq!(r.id(), id);
    let r = env
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": "S-1", "idProperty": "student_id", "properties": {"gpa": "4"}}]}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "a unique custom property may identify records in batch updates: {}",
        r.text
    );
}
