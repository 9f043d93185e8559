use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn create_read_patch_archive() {
    let app = spawn_app().await;
    let (s, f) = app
        .post(
            "/api/v1/fields",
            json!({"name": "gpa", "label": "GPA", "kind": "number"}),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let (s, c) = app.post("/api/v1/contacts", json!({"first_name": "Ana", "last_name": "Diaz", "phone": "(617) 555-0101", "email": "Ana@Example.edu", "custom": {"gpa": "3.9"}, "opt_in": true})).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["phone"], "+16175550101");
    assert_eq!(c["email"], "Ana@example.edu");
    assert_eq!(c["custom"]["gpa"], json!(3.9));
    assert_eq!(c["opt_in"], true);
    let id = c["id"].as_i64().unwrap();

    let (s, c) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/contacts/{id}"),
            &app.admin_token,
            Some(json!({"preferred_name": "Annie", "first_name": "", "custom": {"gpa": "UNSET"}})),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["preferred_name"], "Annie");
    assert_eq!(c["first_name"], "Ana", "a blank value is skipped");
    assert!(
        c["custom"].get("gpa").is_none(),
        "UNSET cleared the custom field"
    );

    let (s, c) = app
        .post(&format!("/api/v1/contacts/{id}/archive"), json!({}))
        .await;
    assert_eq!((s, c["archived"].as_bool()), (200, Some(true)));
    let (s, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!((s, c["archived"].as_bool()), (200, Some(true)));
    let (s, _) = app.get("/api/v1/contacts/999999").await;
    assert_eq!(s, 404);
    let (s, _) = app.get("/api/v1/contacts/abc").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn bad_input_gets_a_specific_error_and_changes_nothing() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/fields",
        json!({"name": "start_date", "label": "Start", "kind": "date"}),
    )
    .await;
    let cases = [
        (
            json!({"first_name": "A", "last_name": "B", "phone": "12"}),
            422,
            "invalid_phone",
            Some("phone"),
        ),
        (
            json!({"first_name": "A", "last_name": "B", "phone": "6175550101", "email": "nope"}),
            422,
            "invalid_email",
            Some("email"),
        ),
        (
            json!({"first_name": "A", "phone": "6175550101"}),
            422,
            "missing_required_field",
            Some("last_name"),
        ),
        (
            json!({"first_name": "A", "last_name": "B", "phone": "6175550101", "shoe": 9}),
            422,
            "unknown_field",
            Some("shoe"),
        ),
        (
            json!({"first_name": "A", "last_name": "B", "phone": "6175550101", "custom": {"shoe": 9}}),
            422,
            "unknown_field",
            Some("custom.shoe"),
        ),
        (
            json!({"first_name": "A", "last_name": "B", "phone": "6175550101", "custom": {"start_date": "soon"}}),
            422,
            "invalid_date",
            Some("custom.start_date"),
        ),
        (
            json!({"first_name": "A", "last_name": "B", "phone": "6175550101", "email": "UNSET"}),
            422,
            "unset_not_allowed",
            Some("email"),
        ),
        (
            json!({"first_name": ["A"], "last_name": "B", "phone": "6175550101"}),
            422,
            "invalid_value",
            Some("first_name"),
        ),
        (
            json!({"first_name": "A", "last_name": "B", "phone": "6175550101", "opt_in": "perhaps"}),
            422,
            "invalid_boolean",
            Some("opt_in"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, b) = app.post("/api/v1/contacts", body.clone()).await;
        assert_eq!(
            (s, b["error"]["code"].as_str(), b["error"]["field"].as_str()),
            (status, Some(code), field),
            "{body} -> {b}"
        );
    }
    // Malformed JSON, wrong content type, oversize body.
    let res = app
        .http
        .post(app.url("/api/v1/contacts"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body("{\"first_name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "bad_request"
    );
    let res = app
        .http
        .post(app.url("/api/v1/contacts"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let huge = format!("{{\"first_name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let res = app
        .http
        .post(app.url("/api/v1/contacts"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );

    let (_, list) = app.get("/api/v1/contacts").await;
    assert_eq!(
        list["contacts"].as_array().unwrap().len(),
        0,
        "nothing was written"
    );

    // Conflicts are 409 with the code.
    app.contact("Ana", "6175550101").await;
    let (s, b) = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Dup", "last_name": "B", "phone": "617.555.0101"}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("phone_in_use"))
    );
    // Bad query parameters.
    let (s, b) = app.get("/api/v1/contacts?limit=0").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("limit")));
    let (s, b) = app.get("/api/v1/contacts?colour=red").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("unknown_field"))
    );
    let (s, _) = app.get("/api/v1/contacts?updated_since=yesterday").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn list_filters_and_cursor_paging() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.contact(&format!("Kim{i}"), &format!("61755502{i:02}"))
            .await;
    }
    let (_, p1) = app.get("/api/v1/contacts?limit=3").await;
    assert_eq!(p1["contacts"].as_array().unwrap().len(), 3);
    let cursor = p1["next_cursor"].as_i64().unwrap();
    let (_, p2) = app
        .get(&format!("/api/v1/contacts?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(p2["contacts"][0]["first_name"], "Kim3");
    let (_, q) = app.get("/api/v1/contacts?q=kim6").await;
    assert_eq!(q["contacts"].as_array().unwrap().len(), 1);
    let id = q["contacts"][0]["id"].as_i64().unwrap();
    app.post(&format!("/api/v1/contacts/{id}/archive"), json!({}))
        .await;
    let (_, a) = app.get("/api/v1/contacts?archived=true").await;
    assert_eq!(a["contacts"].as_array().unwrap().len(), 1);
    let (_, t) = app.get("/api/v1/contacts?test_user=true").await;
    assert_eq!(t["contacts"].as_array().unwrap().len(), 0);
    let (_, u) = app
        .get("/api/v1/contacts?updated_since=2000-01-01T00:00:00Z&limit=100")
        .await;
    assert_eq!(u["contacts"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn csv_import_over_the_api() {
    let app = spawn_app().await;
    let existing = app.contact("Old", "6175550101").await;
    app.post(&format!("/api/v1/contacts/{existing}/archive"), json!({}))
        .await;
    let csv = "\u{feff}first_name,last_name,phone,crm_id\nOld,Timer,617-555-0101,\nNew,Person,6175550102,C-2\nBad,Phone,12,\nShort,Row\n";
    let res = app
        .http
        .post(app.url("/api/v1/contacts/import"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (
            r["created"].as_u64(),
            r["updated"].as_u64(),
            r["skipped"].as_u64()
        ),
        (Some(1), Some(1), Some(2)),
        "{r}"
    );
    assert_eq!(r["errors"][0]["row"], 4);
    assert_eq!(r["errors"][0]["code"], "invalid_phone");
    assert_eq!(r["errors"][1]["code"], "ragged_row");
    let (_, c) = app.get(&format!("/api/v1/contacts/{existing}")).await;
    assert_eq!(c["archived"], false, "re-importing un-archived the contact");
    assert_eq!(c["last_name"], "Timer");

    for (body, ct, status, code) in [
        (
            "first_name,shoe\nA,1\n".as_bytes().to_vec(),
            "text/csv",
            400,
            "unknown_field",
        ),
        (
            b"first_name,phone\n\xff,1\n".to_vec(),
            "text/csv",
            400,
            "invalid_encoding",
        ),
        (
            "{}".as_bytes().to_vec(),
            "application/json",
            415,
            "unsupported_media_type",
        ),
    ] {
        let res = app
            .http
            .post(app.url("/api/v1/contacts/import"))
            .bearer_auth(&app.admin_token)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
        assert_eq!(
            res.json::<serde_json::Value>().await.unwrap()["error"]["code"],
            code
        );
    }
    let (_, list) = app.get("/api/v1/contacts").await;
    assert_eq!(list["contacts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn opt_in_status_and_address_over_the_api() {
    let app = spawn_app().await;
    let (s, c) = app
        .post(
            "/api/v1/contacts",
            json!({"first_name": "Ana", "last_name": "Diaz", "phone": "6175550101",
                   "sms_opt_in": "opted_in", "street_address": "12 Main St", "city": "Boston",
                   "state": "MA", "zip_code": "02139", "country": "US"}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["sms_opt_in"], "opted_in");
    assert_eq!(c["opt_in"], true);
    assert!(c["sms_opt_in_changed_at"].is_string());
    assert_eq!(c["zip_code"], "02139");
    assert!(c["street_address_2"].is_null());
    let id = c["id"].as_i64().unwrap();
    let path = format!("/api/v1/contacts/{id}");
    let (s, e) = app
        .call(
            reqwest::Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"sms_opt_in": "maybe", "city": "Salem"})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["code"], "invalid_opt_in_status");
    assert_eq!(e["error"]["field"], "sms_opt_in");
    let (s, e) = app
        .call(
            reqwest::Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"city": "UNSET"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("unset_not_allowed"))
    );
    let (_, c) = app.get(&path).await;
    assert_eq!(c["city"], "Boston", "refused writes change nothing");
    let (s, c) = app
        .call(
            reqwest::Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"opt_in": false})),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        c["sms_opt_in"], "opted_out",
        "opt_in=false from opted_in is an opt-out"
    );
}
