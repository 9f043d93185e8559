use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn messages_are_all_or_nothing_and_filterable() {
    let app = spawn_app().await;
    let a = app.contact("Ana", "6175550101").await;
    let msg = |channel: &str, direction: &str| json!({"contact_id": a, "channel": channel, "type": "ai_agent", "direction": direction, "body": "Your FAFSA is due Friday.", "sent_at": "2026-09-01T14:00:00Z"});
    let (s, b) = app
        .post(
            "/api/v1/messages",
            json!({"messages": [msg("sms", "outgoing"), msg("web_chat", "incoming")]}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["messages"][1]["sequence"], 2);
    let (s, b) = app
        .post(
            "/api/v1/messages",
            json!({"messages": [msg("sms", "outgoing"), msg("pigeon", "incoming")]}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("messages[1].channel")),
        "{b}"
    );
    let (s, b) = app.post("/api/v1/messages", json!({"messages": [{"contact_id": 999999, "channel": "sms", "type": "campaign", "direction": "outgoing", "body": "x", "sent_at": "2026-09-01T14:00:00Z"}]})).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("messages[0].contact_id"))
    );
    let (s, _) = app
        .post(
            "/api/v1/messages",
            json!({"messages": [msg("sms", "outgoing")], "extra": 1}),
        )
        .await;
    assert_eq!(s, 422);
    let (_, all) = app.get("/api/v1/messages").await;
    assert_eq!(
        all["messages"].as_array().unwrap().len(),
        2,
        "refused batches inserted nothing"
    );
    let (_, inc) = app
        .get("/api/v1/messages?direction=incoming&channel=web_chat,sms")
        .await;
    assert_eq!(inc["messages"].as_array().unwrap().len(), 1);
    let (_, after) = app
        .get(&format!("/api/v1/messages?after_sequence=1&contact={a}"))
        .await;
    assert_eq!(after["messages"][0]["sequence"], 2);
    let (s, b) = app.get("/api/v1/messages?channel=fax").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("channel")));
}

#[tokio::test]
async fn custom_field_definitions() {
    let app = spawn_app().await;
    let (s, _) = app
        .post(
            "/api/v1/fields",
            json!({"name": "major", "label": "Major", "kind": "text"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, b) = app
        .post(
            "/api/v1/fields",
            json!({"name": "major", "label": "Again", "kind": "text"}),
        )
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("conflict")));
    let (s, b) = app
        .post(
            "/api/v1/fields",
            json!({"name": "Major Field", "label": "X", "kind": "text"}),
        )
        .await;
    assert_eq!((s, b["error"]["field"].as_str()), (422, Some("name")));
    let (s, b) = app
        .post(
            "/api/v1/fields",
            json!({"name": "size", "label": "X", "kind": "shoe"}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("kind")),
        "{b}"
    );
    let (_, list) = app.get("/api/v1/fields").await;
    assert_eq!(
        list,
        json!([{"name": "major", "label": "Major", "kind": "text"}])
    );
}
