//! Single-contact endpoints, list paging, the email rule, validation errors, auth.

use reqwest::Method;
use serde_json::json;

use crate::common::{contact, env};

const CONTACTS: &str = "/crm/v3/objects/contacts";

fn is_iso_millis(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.parse::<jiff::Timestamp>().is_ok()
}

#[tokio::test]
async fn create_read_update_archive() {
    let env = env().await;
    let r = env
        .post(
            CONTACTS,
            json!({"properties": {"email": "Ana.Diaz@State.edu", "firstname": "Ana", "phone": "(617) 555-0101"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.id();
    let props = &r.body["properties"];
    assert_eq!(
        props["email"], "ana.diaz@state.edu",
        "emails are stored lowercased"
    );
    assert_eq!(props["firstname"], "Ana");
    assert_eq!(props["hs_object_id"], id.as_str());
    assert!(is_iso_millis(props["createdate"].as_str().unwrap()));
    assert_eq!(props["createdate"], r.body["createdAt"]);
    assert_eq!(props["lastmodifieddate"], r.body["updatedAt"]);
    assert_eq!(r.body["archived"], false);
    assert!(id.parse::<u64>().unwrap() > i32::MAX as u64);

    // Default read: firstname, lastname, email and the computed three; strings or null.
    let r = env.get(&format!("{CONTACTS}/{id}")).await;
    assert_eq!(r.status, 200);
    let props = r.body["properties"].as_object().unwrap();
    let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname"
        ]
    );
    assert!(props["lastname"].is_null());
    assert!(props.values().all(|v| v.is_string() || v.is_null()));

    // Asking for properties: unknown names are ignored, empty ones are null.
    let r = env
        .get(&format!(
            "{CONTACTS}/{id}?properties=phone,company,no_such_thing"
        ))
        .await;
    assert_eq!(r.body["properties"]["phone"], "(617) 555-0101");
    assert!(r.body["properties"]["company"].is_null());
    assert!(r.body["properties"].get("no_such_thing").is_none());

    // By email, case-insensitively.
    let r = env
        .get(&format!("{CONTACTS}/ANA.DIAZ@state.edu?idProperty=email"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.id(), id);

    // An update moves lastmodifieddate; an empty string clears.
    let before = env.state().contact(&id).unwrap();
    let r = env
        .patch(
            &format!("{CONTACTS}/{id}"),
            json!({"properties": {"lastname": "Diaz", "phone": ""}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["properties"]["lastname"], "Diaz");
    assert!(r.body["properties"]["phone"].is_null());
    let after = env.state().contact(&id).unwrap();
    assert!(after.updated_at > before.updated_at);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.get("phone"), None);

    // PATCH by email.
    let r = env
        .patch(
            &format!("{CONTACTS}/ana.diaz@state.edu?idProperty=email"),
            json!({"properties": {"company": "State U"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Archive: 204, then gone from reads, still readable with archived=true.
    assert_eq!(env.delete(&format!("{CONTACTS}/{id}")).await.status, 204);
    let r = env.get(&format!("{CONTACTS}/{id}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["category"], "OBJECT_NOT_FOUND");
    let r = env.get(&format!("{CONTACTS}/{id}?archived=true")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["archived"], true);
    assert!(r.body["archivedAt"].is_string());
    assert_eq!(
        env.patch(
            &format!("{CONTACTS}/{id}"),
            json!({"properties": {"lastname": "X"}})
        )
        .await
        .status,
        404
    );
    // Archiving what does not exist is still a 204.
    assert_eq!(env.delete(&format!("{CONTACTS}/{id}")).await.status, 204);
    assert_eq!(env.delete(&format!("{CONTACTS}/12345")).await.status, 204);
    // The email is free again.
    env.create(json!({"email": "ana.diaz@state.edu"})).await;
}

#[tokio::test]
async fn an_existing_email_is_a_409_with_the_documented_body() {
    let env = env().await;
    let first = env.create(json!({"email": "ana@state.edu"})).await;
    let r = env
        .post(
            CONTACTS,
            json!({"properties": {"email": "ANA@State.EDU", "firstname": "A"}}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["status"], "error");
    assert_eq!(r.body["category"], "CONFLICT");
    assert_eq!(
        r.message(),
        format!("Contact already exists. Existing ID: {first}")
    );
    assert!(r.body["correlationId"].as_str().unwrap().len() == 36);
    assert_eq!(env.state().contacts().len(), 1);

    // Moving another contact onto the email conflicts too.
    let other = env.create(json!({"email": "bea@state.edu"})).await;
    let r = env
        .patch(
            &format!("{CONTACTS}/{other}"),
            json!({"properties": {"email": "ana@state.edu"}}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.message(),
        format!("Contact already exists. Existing ID: {first}")
    );
    // Writing a contact's own email is no conflict.
    let r = env
        .patch(
            &format!("{CONTACTS}/{first}"),
            json!({"properties": {"email": "Ana@state.edu"}}),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn invalid_values_are_validation_errors() {
    let env = env().await;
    let r = env
        .post(
            CONTACTS,
            json!({"properties": {"email": "a@b.org", "favourite_colour": "blue"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    assert!(
        r.message()
            .starts_with("Property values were not valid: [{"),
        "{}",
        r.message()
    );
    assert!(r.message().contains("PROPERTY_DOESNT_EXIST"));
    assert!(
        r.message()
            .contains(r#"Property \"favourite_colour\" does not exist"#)
    );
    assert_eq!(
        r.body["context"]["PROPERTY_DOESNT_EXIST"],
        json!(["favourite_colour"])
    );
    assert!(env.state().contacts().is_empty(), "nothing is written");

    let r = env
        .post(CONTACTS, json!({"properties": {"email": "not an email"}}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("INVALID_EMAIL"), "{}", r.message());

    let r = env
        .post(CONTACTS, json!({"properties": {"hs_object_id": "5"}}))
        .await;
    assert!(r.message().contains("READ_ONLY_VALUE"), "{}", r.message());
    let r = env
        .post(
            CONTACTS,
            json!({"properties": {"lifecyclestage": "friend"}}),
        )
        .await;
    assert!(r.message().contains("INVALID_OPTION"), "{}", r.message());
    let r = env
        .post(CONTACTS, json!({"properties": {"firstname": null}}))
        .await;
    assert_eq!(r.status, 400);

    let r = env.post(CONTACTS, json!({"props": {}})).await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("[properties]"), "{}", r.message());

    let res = env
        .http
        .post(env.url(CONTACTS))
        .bearer_auth(&env.token)
        .header("content-type", "application/json")
        .body("{\"properties\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid input JSON on line 1")
    );
}

#[tokio::test]
async fn list_pages_with_after_and_never_shows_archived() {
    let env = env().await;
    let ids = env.seed(
        (0..25)
            .map(|i| contact(&[("email", &format!("c{i}@x.org")), ("firstname", "C")]))
            .collect(),
    );
    env.state()
        .seed_contacts([{
            let mut c = contact(&[("email", "gone@x.org")]);
            c.archived = true;
            c
        }])
        .unwrap();
    let mut seen = Vec::new();
    let mut path = format!("{CONTACTS}?limit=10&properties=firstname");
    let mut pages = 0;
    loop {
        let r = env.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        pages += 1;
        for rec in r.body["results"].as_array().unwrap() {
            assert_eq!(rec["properties"]["firstname"], "C");
            assert!(
                rec["properties"].get("email").is_none(),
                "only what was asked"
            );
            seen.push(rec["id"].as_str().unwrap().to_string());
        }
        match r.body["paging"]["next"]["after"].as_str() {
            Some(after) => {
                let link = r.body["paging"]["next"]["link"].as_str().unwrap();
                assert!(link.contains(&format!("after={after}")), "{link}");
                path = format!("{CONTACTS}?limit=10&properties=firstname&after={after}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);

    let r = env.get(&format!("{CONTACTS}?archived=true")).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    let r = env.get(&format!("{CONTACTS}?limit=101")).await;
    assert_eq!(r.status, 400);
    let r = env.get(&format!("{CONTACTS}?limit=abc")).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn requests_need_a_valid_bearer_token() {
    let env = env().await;
    for token in [None, Some("pat-na1-wrong")] {
        let r = env.call_as(token, Method::GET, CONTACTS, None).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body["status"], "error");
        assert_eq!(r.body["category"], "INVALID_AUTHENTICATION");
        assert!(
            r.message()
                .starts_with("Authentication credentials not found")
        );
        assert!(r.header("x-hubspot-ratelimit-max").is_none());
    }
    let res = env
        .http
        .get(env.url(CONTACTS))
        .header("authorization", format!("Basic {}", env.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn too_many_properties_in_a_url_overflow_it() {
    let env = env().await;
    let names: Vec<String> = (0..900)
        .map(|i| format!("custom_property_number_{i:03}"))
        .collect();
    let r = env
        .get(&format!("{CONTACTS}?properties={}", names.join(",")))
        .await;
    assert_eq!(r.status, 414);
    assert!(r.text.contains("414"), "{}", r.text);
    // The same properties in a POST body are fine.
    let r = env
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"properties": names, "limit": 1}),
        )
        .await;
    assert_eq!(r.status, 200);
}
