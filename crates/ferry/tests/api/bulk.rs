//! Bulk File Upload over HTTP: templates from a sample, Mark reviewed, recordings streamed
//! decrypted, and the screens.

use base64::Engine;
use ferry_core::message::Direction;
use ferry_store::NewCall;
use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

/// A phone system's export: a preamble line, semicolons, Windows-1252.
fn sample() -> Vec<u8> {
    let mut s = b"Call export 2026-09-01\r\nAgent;Caller Number;Start Time;Direction;Dur;Caf\xe9;Student ID\r\n".to_vec();
    s.extend_from_slice(b"Jo;6175550101;2026-09-01 14:30;in;95;x;S1\r\nAl;6175550102;2026-09-01 15:00;out;20;y;S2\r\n");
    s
}

#[tokio::test]
async fn a_template_is_made_from_a_sample() {
    let app = spawn_app().await;
    // Detection: encoding, delimiter, header row, columns with suggestions, preview.
    let res = app
        .http
        .post(app.url("/api/v1/bulk-templates/detect"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "text/csv")
        .body(sample())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let d: serde_json::Value = res.json().await.unwrap();
    assert_eq!(d["encoding"], "windows-1252");
    assert_eq!(d["delimiter"], ";");
    assert_eq!(d["header_row"], 2);
    assert_eq!(d["columns"][5]["name"], "Café");
    assert_eq!(d["columns"][1]["call_field"], "phone");
    assert_eq!(d["columns"][0]["call_field"], "agent");
    assert_eq!(d["preview"][0][0], "Jo");
    assert_eq!(d["preview"].as_array().unwrap().len(), 2);

    let b64 = base64::engine::general_purpose::STANDARD.encode(sample());
    // Columns given out of order are kept in the sample's (the agreed) order.
    let body = json!({
        "name": "Phone system calls",
        "kind": "calls",
        "folder": "/calls/",
        "file_mask": "calls_*.csv",
        "sample_base64": b64,
        "match_by": "crm_id",
        "columns": [
            {"name": "Student ID", "field": "crm_id", "required": true},
            {"name": "Direction", "field": "direction", "required": true},
            {"name": "Start Time", "field": "time", "required": true},
            {"name": "Agent", "field": "agent"},
            {"name": "Dur", "field": "duration"},
        ],
    });
    let (status, t) = app.post("/api/v1/bulk-templates", body.clone()).await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["folder"], "/calls");
    assert_eq!(t["encoding"], "windows-1252");
    assert_eq!(t["delimiter"], ";");
    assert_eq!(t["header_row"], 2);
    let names: Vec<&str> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Agent", "Start Time", "Direction", "Dur", "Student ID"]
    );
    let id = t["id"].as_i64().unwrap();

    // The same folder and mask twice.
    let (status, e) = app.post("/api/v1/bulk-templates", body.clone()).await;
    assert_eq!(status, 409, "{e}");

    // Field-level reasons.
    let mut bad = body.clone();
    bad["file_mask"] = json!("other_*.csv");
    bad["columns"][3]["field"] = json!("mood");
    let (status, e) = app.post("/api/v1/bulk-templates", bad).await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "columns[3].field");
    let mut bad = body.clone();
    bad["file_mask"] = json!("other_*.csv");
    bad["columns"][0]["name"] = json!("Nope");
    let (status, e) = app.post("/api/v1/bulk-templates", bad).await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "columns[0].name");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Student ID")
    );
    let mut bad = body.clone();
    bad["file_mask"] = json!("other_*.csv");
    bad["columns"].as_array_mut().unwrap().remove(1);
    let (status, e) = app.post("/api/v1/bulk-templates", bad).await;
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("direction"),
        "{e}"
    );
    let mut bad = body.clone();
    bad["folder"] = json!("../up");
    let (status, e) = app.post("/api/v1/bulk-templates", bad).await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "folder");

    // A contacts template without a sample maps contact fields (custom ones too).
    let (status, c) = app
        .post(
            "/api/v1/bulk-templates",
            json!({"name": "Students", "kind": "contacts", "file_mask": "students.csv",
                   "columns": [{"name": "ID", "field": "crm_id", "required": true},
                               {"name": "Mobile", "field": "phone", "required": true}]}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["folder"], "/");
    assert_eq!(c["delimiter"], ",");

    let (status, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/bulk-templates",
            &app.viewer_token,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let path = format!("/api/v1/bulk-templates/{id}");
    let (status, _) = app
        .call(Method::GET, &path, &app.other_admin_token, None)
        .await;
    assert_eq!(status, 404);
    let mut renamed = body.clone();
    renamed["name"] = json!("Renamed");
    let (status, r) = app
        .call(Method::PATCH, &path, &app.admin_token, Some(renamed))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["name"], "Renamed");
    let (status, _) = app
        .call(Method::DELETE, &path, &app.admin_token, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&path).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_template_needs_a_required_column_that_finds_the_contact() {
    let app = spawn_app().await;
    let contacts = |mask: &str, columns: serde_json::Value| json!({"name": "Students", "kind": "contacts", "file_mask": mask, "columns": columns});
    let no_key = json!([
        {"name": "First", "field": "first_name", "required": true},
        {"name": "Email", "field": "email", "required": true},
    ]);
    // Names and email only: no row could find its contact; nothing is saved.
    let (status, e) = app
        .post("/api/v1/bulk-templates", contacts("a.csv", no_key.clone()))
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["code"], "invalid_value");
    assert_eq!(e["error"]["field"], "columns");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("one of id, crm_id, phone"), "{message}");
    assert!(message.contains("email does not match"), "{message}");
    // The key mapped, but files could leave it out: the column at fault is named.
    let (status, e) = app
        .post(
            "/api/v1/bulk-templates",
            contacts(
                "a.csv",
                json!([
                    {"name": "First", "field": "first_name", "required": true},
                    {"name": "Mobile", "field": "phone", "required": false},
                ]),
            ),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "columns[1].required");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"Mobile\" required"),
        "{e}"
    );
    let (_, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(list, json!([]), "a refused template saves nothing");

    // Any one of the keys, required, is enough.
    let mut ids = Vec::new();
    for (mask, key) in [("a.csv", "phone"), ("b.csv", "crm_id"), ("c.csv", "id")] {
        let (status, t) = app
            .post(
                "/api/v1/bulk-templates",
                contacts(
                    mask,
                    json!([
                        {"name": "First", "field": "first_name", "required": true},
                        {"name": "Key", "field": key, "required": true},
                    ]),
                ),
            )
            .await;
        assert_eq!(status, 201, "{key}: {t}");
        ids.push(t["id"].as_i64().unwrap());
    }

    // A change that drops the key is refused the same way, and the template is left as it was.
    let path = format!("/api/v1/bulk-templates/{}", ids[0]);
    let (_, before) = app.get(&path).await;
    let (status, e) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin_token,
            Some(contacts("a.csv", no_key)),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "columns");
    let (_, after) = app.get(&path).await;
    assert_eq!(after, before);

    // Calls: the column of the match_by field must be required too.
    let calls = |match_by: &str, key_required: bool| {
        json!({"name": "Calls", "kind": "calls", "folder": "/calls", "file_mask": "calls_*.csv",
        "match_by": match_by,
        "columns": [
            {"name": "Number", "field": "phone", "required": key_required},
            {"name": "Direction", "field": "direction", "required": true},
            {"name": "Start", "field": "time", "required": true},
        ]})
    };
    let (status, e) = app
        .post("/api/v1/bulk-templates", calls("phone", false))
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "columns[0].required");
    let (status, e) = app
        .post("/api/v1/bulk-templates", calls("crm_id", true))
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "columns");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("crm_id"),
        "{e}"
    );
    let (status, t) = app
        .post("/api/v1/bulk-templates", calls("phone", true))
        .await;
    assert_eq!(status, 201, "{t}");
    let (_, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(list.as_array().unwrap().len(), 4);

    // The Setup screen refuses it too, with the reason over the mapping, and saves nothing.
    let (cookie, csrf) = app.login().await;
    let sample = base64::engine::general_purpose::STANDARD.encode("First,Email\nAna,a@x.edu\n");
    let res = app
        .http
        .post(app.url("/settings/bulk-files/templates"))
        .header("cookie", &cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", "No key"),
            ("kind", "contacts"),
            ("file_mask", "nokey_*.csv"),
            ("sample_base64", sample.as_str()),
            ("col_name_0", "First"),
            ("col_field_0", "first_name"),
            ("col_required_0", "1"),
            ("col_name_1", "Email"),
            ("col_field_1", "email"),
            ("col_required_1", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("email does not match contacts"), "{page}");
    let (_, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(list.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn calls_are_marked_reviewed_and_their_recordings_stream_decrypted() {
    let app = spawn_app().await;
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap()
        .id;
    let contact = app.contact("Ana", "+16175550101").await;
    let account = app
        .store
        .create_sftp_account(inst, "state-u.calls")
        .await
        .unwrap()
        .id;
    // A recording as the SFTP server stores it: encrypted in the vault.
    let audio: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = app.vault.create("sftp/rec1").await.unwrap();
    w.write(&audio).await.unwrap();
    let written = w.finish().await.unwrap();
    let rec = app
        .store
        .sftp_put_file(
            account,
            "/calls/r1.wav",
            "sftp/rec1",
            audio.len() as i64,
            &written.sha256,
        )
        .await
        .unwrap();
    let ids = app
        .store
        .insert_calls(
            inst,
            &[NewCall {
                contact_id: contact,
                direction: Direction::Incoming,
                sent_at: "2026-09-01T14:30:00Z".parse().unwrap(),
                duration_secs: 95,
                agent: "Jo".into(),
                note: "Asked about aid".into(),
                source_key: "bulk:1:2".into(),
                account_id: account,
                recording_path: Some("/calls/r1.wav".into()),
                recording_file_id: Some(rec.id),
                recording_due_at: None,
            }],
        )
        .await
        .unwrap();
    let call = ids[0].0;

    // Streamed, decrypted, with its type.
    let res = app
        .http
        .get(app.url(&format!("/api/v1/recordings/{}", rec.id)))
        .bearer_auth(&app.viewer_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/wav");
    assert_eq!(res.bytes().await.unwrap().to_vec(), audio);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{}", rec.id),
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!(status, 404);

    // The message lists its call details.
    let (status, list) = app
        .get(&format!("/api/v1/messages?contact={contact}"))
        .await;
    assert_eq!(status, 200);
    let m = &list["messages"][0];
    assert_eq!(m["channel"], "voice");
    assert_eq!(m["type"], "call");
    assert_eq!(m["call"]["duration_secs"], 95);
    assert_eq!(m["call"]["recording_id"], rec.id);
    assert_eq!(m["call"]["reviewed"], false);

    // Mark reviewed.
    let path = format!("/api/v1/messages/{call}");
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            &app.viewer_token,
            Some(json!({"reviewed": true})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, r) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"reviewed": true})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["call"]["reviewed"], true);
    let (status, e) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"reviewed": "yes"})),
        )
        .await;
    assert!(status == 400 || status == 422, "{status} {e}");
    let (status, e) = app
        .call(
            Method::PATCH,
            "/api/v1/messages/999999",
            &app.admin_token,
            Some(json!({"reviewed": true})),
        )
        .await;
    assert_eq!(status, 404, "{e}");
    let (status, sms) = app
        .post(
            "/api/v1/messages",
            json!({"messages": [{"contact_id": contact, "channel": "sms", "type": "campaign",
                "direction": "outgoing", "body": "hi", "sent_at": "2026-09-01T10:00:00Z"}]}),
        )
        .await;
    assert_eq!(status, 201, "{sms}");
    let sms_id = sms["messages"][0]["id"].as_i64().unwrap();
    let (status, e) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/messages/{sms_id}"),
            &app.admin_token,
            Some(json!({"reviewed": true})),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["field"], "reviewed");

    // The conversation page plays it and offers the action; the button toggles it.
    let (cookie, csrf) = app.login().await;
    let (status, page) = app.page(&cookie, &format!("/contacts/{contact}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("src=\"/api/v1/recordings/{}\"", rec.id)),
        "{page}"
    );
    assert!(page.contains("Mark not reviewed"), "{page}");
    let res = app
        .http
        .post(app.url(&format!("/contacts/{contact}/messages/{call}/reviewed")))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str()), ("reviewed", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, page) = app.page(&cookie, &format!("/contacts/{contact}")).await;
    assert!(page.contains(">Mark reviewed<"), "{page}");

    // Inbound files → Bulk File Upload, and Setup from a pasted sample.
    let (status, page) = app.page(&cookie, "/settings/bulk-files").await;
    assert_eq!(status, 200);
    // One sidebar entry, under Inbound files, marked as the page's; the platform page marks
    // the same entry and leads to this page.
    let sidebar = |page: &str| page.split("<main").next().unwrap().to_string();
    let entry = "<a href=\"/settings/bulk-files\" aria-current=\"page\">Bulk File Upload</a>";
    let nav = sidebar(&page);
    assert_eq!(nav.matches("Bulk File Upload</a>").count(), 1, "{nav}");
    assert!(nav.contains(entry), "{nav}");
    let inbound = nav.split("Inbound files").nth(1).unwrap();
    assert!(inbound.contains(entry), "{nav}");
    let (status, platform) = app
        .page(&cookie, "/settings/integrations/bulk-file-upload")
        .await;
    assert_eq!(status, 200);
    assert!(sidebar(&platform).contains(entry), "{platform}");
    assert!(
        platform.contains(
            "<a class=\"btn\" href=\"/settings/bulk-files\" id=\"platform-page\">Setup</a>"
        ),
        "{platform}"
    );
    assert!(page.contains("Setup from a sample"));
    assert!(page.contains("/calls/r1.wav"));
    let res = app
        .http
        .post(app.url("/settings/bulk-files/setup"))
        .header("cookie", &cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", "Students"),
            ("kind", "contacts"),
            ("folder", "/in"),
            ("file_mask", "students_*.csv"),
            (
                "sample",
                "Student ID,First Name,Mobile\nS1,Ana,6175550101\n",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("col_field_1"), "{page}");
    let b64 = page
        .split("name=\"sample_base64\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let res = app
        .http
        .post(app.url("/settings/bulk-files/templates"))
        .header("cookie", &cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", "Students"),
            ("kind", "contacts"),
            ("folder", "/in"),
            ("file_mask", "students_*.csv"),
            ("sample_base64", b64.as_str()),
            ("col_name_0", "Student ID"),
            ("col_field_0", "crm_id"),
            ("col_required_0", "1"),
            ("col_name_1", "First Name"),
            ("col_field_1", "first_name"),
            ("col_name_2", "Mobile"),
            ("col_field_2", "phone"),
            ("col_required_2", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(list[0]["name"], "Students");
    assert_eq!(list[0]["columns"].as_array().unwrap().len(), 3);

    // Deleting a template asks first, saying what becomes of the files it would have taken.
    let tid = list[0]["id"].as_i64().unwrap();
    let (_, page) = app.page(&cookie, "/settings/bulk-files").await;
    let confirm = format!("/settings/bulk-files/templates/{tid}/delete");
    assert!(page.contains(&format!("href=\"{confirm}\"")), "{page}");
    let (status, page) = app.page(&cookie, &confirm).await;
    assert_eq!(status, 200);
    assert!(page.contains("Delete the template Students?"), "{page}");
    assert!(page.contains("<code>/in/students_*.csv</code>"), "{page}");
    assert!(page.contains("bulk_no_template"), "{page}");
    let (_, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "showing the page deletes nothing"
    );
    let res = app
        .http
        .post(app.url(&confirm))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(list.as_array().unwrap().len(), 0);
}
