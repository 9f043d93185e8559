//! `/api/v1/opt-in-paths` and `/api/v1/outbox`: paths with their welcome messages, the queue the
//! platform's sender reads, and a sent message joining the contact's history.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_sender_reads_the_outbox_and_a_sent_welcome_joins_the_history() {
    let app = spawn_app().await;
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap()
        .id;

    // Paths: field-level errors, then one made and changed.
    let (status, err) = app
        .post(
            "/api/v1/opt-in-paths",
            json!({"name": "Fair", "welcome_message": " "}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("welcome_message")),
        "{err}"
    );
    let (status, err) = app
        .post(
            "/api/v1/opt-in-paths",
            json!({"name": "Fair", "welcome": "Hi"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("welcome")),
        "an unknown field is refused by name: {err}"
    );
    let (status, path) = app
        .post(
            "/api/v1/opt-in-paths",
            json!({"name": "Fair", "welcome_message": "Hi from State U!"}),
        )
        .await;
    assert_eq!(status, 201, "{path}");
    let id = path["id"].as_i64().unwrap();
    let (status, dup) = app
        .post(
            "/api/v1/opt-in-paths",
            json!({"name": "Fair", "welcome_message": "Again"}),
        )
        .await;
    assert_eq!(
        (status, dup["error"]["field"].as_str()),
        (422, Some("name")),
        "{dup}"
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/opt-in-paths",
            &app.viewer_token,
            Some(json!({"name": "V", "welcome_message": "x"})),
        )
        .await;
    assert_eq!(status, 403, "viewers cannot make paths");
    let (status, changed) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/opt-in-paths/{id}"),
            &app.admin_token,
            Some(json!({"welcome_message": "Welcome to State U texts!"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Fair", "left out, kept");

    // An integration queued a welcome (the store call the EveryAction pull makes).
    let contact = app.contact("Ana", "+16175550101").await;
    app.store
        .queue_welcome(inst, contact, id, None)
        .await
        .unwrap()
        .unwrap();
    let (status, queued) = app.get("/api/v1/outbox").await;
    assert_eq!(status, 200, "{queued}");
    assert_eq!(queued.as_array().unwrap().len(), 1, "{queued}");
    assert_eq!(queued[0]["contact_id"], contact);
    assert_eq!(queued[0]["body"], "Welcome to State U texts!");
    let oid = queued[0]["id"].as_i64().unwrap();
    let (status, err) = app.get("/api/v1/outbox?status=maybe").await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("status")),
        "{err}"
    );

    // Another institution cannot see or send it.
    let (status, other) = app
        .call(Method::GET, "/api/v1/outbox", &app.other_admin_token, None)
        .await;
    assert_eq!((status, other), (200, json!([])));
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/outbox/{oid}/sent"),
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Sent (twice: a sender's retry changes nothing); it is in the contact's history.
    let (status, sent) = app
        .post(
            &format!("/api/v1/outbox/{oid}/sent"),
            json!({"sent_at": "2026-12-04T15:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["sent_at"], "2026-12-04T15:00:00Z");
    let (status, again) = app
        .call(
            Method::POST,
            &format!("/api/v1/outbox/{oid}/sent"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!((status, &again), (200, &sent));
    let (_, waiting) = app.get("/api/v1/outbox").await;
    assert_eq!(waiting, json!([]));
    let (_, done) = app.get("/api/v1/outbox?status=sent").await;
    assert_eq!(done.as_array().unwrap().len(), 1);
    let (status, history) = app
        .get(&format!("/api/v1/messages?contact={contact}"))
        .await;
    assert_eq!(status, 200, "{history}");
    let messages = history["messages"]
        .as_array()
        .or(history.as_array())
        .unwrap()
        .clone();
    assert_eq!(messages.len(), 1, "{history}");
    assert_eq!(messages[0]["id"], sent["message_id"]);
    assert_eq!(
        (
            &messages[0]["channel"],
            &messages[0]["type"],
            &messages[0]["direction"]
        ),
        (&json!("sms"), &json!("campaign"), &json!("outgoing"))
    );
}

#[tokio::test]
async fn an_everyaction_instance_names_only_an_opt_in_path_of_its_institution() {
    let app = spawn_app().await;
    let (_, path) = app
        .post(
            "/api/v1/opt-in-paths",
            json!({"name": "Web", "welcome_message": "Hi!"}),
        )
        .await;
    let path_id = path["id"].as_i64().unwrap();
    let (status, theirs) = app
        .call(
            Method::POST,
            "/api/v1/opt-in-paths",
            &app.other_admin_token,
            Some(json!({"name": "Theirs", "welcome_message": "Hello"})),
        )
        .await;
    assert_eq!(status, 201, "{theirs}");
    let theirs = theirs["id"].as_i64().unwrap();
    let request = |opt_in_path_id: serde_json::Value| {
        json!({"type": "everyaction", "name": "EveryAction",
               "config": {"login": "ferry", "opt_in_path_id": opt_in_path_id},
               "secrets": {"password": "key"}})
    };

    // Unknown here (another institution's, or none at all): 422 on the field, nothing saved.
    for unknown in [json!(theirs), json!(path_id + 1000)] {
        let (status, err) = app.post("/api/v1/integrations", request(unknown)).await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["error"]["field"], "config.opt_in_path_id", "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no opt-in path"),
            "{err}"
        );
    }
    let (_, list) = app.get("/api/v1/integrations").await;
    assert_eq!(list.as_array().map_or(0, Vec::len), 0, "{list}");

    // Its own path, or none.
    let (status, ea) = app
        .post("/api/v1/integrations", request(json!(path_id)))
        .await;
    assert_eq!(status, 201, "{ea}");
    let id = ea["id"].as_i64().unwrap();
    assert_eq!(ea["config"]["opt_in_path_id"], path_id);

    // A change to an unknown path is refused the same way; the saved one stays.
    let (status, err) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            &app.admin_token,
            Some(json!({"config": {"opt_in_path_id": theirs}})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("config.opt_in_path_id")),
        "{err}"
    );
    let (_, saved) = app.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(saved["config"]["opt_in_path_id"], path_id);
    let (status, cleared) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            &app.admin_token,
            Some(json!({"config": {"opt_in_path_id": null}})),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert!(cleared["config"]["opt_in_path_id"].is_null(), "{cleared}");
}
