//! `/api/v1/integrations`: the SFTP exports' contract, validation with field names, write-only
//! secrets, Test Connection against a real SFTP server, Run now, and Recent Runs after a run.

use ferry_sftp::server::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const SFTP_USER: &str = "eab";
const SFTP_PASSWORD: &str = "s3cret-sftp-pass";

async fn sftp_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    let server = TestServer::builder(dir.path())
        .password(SFTP_USER, SFTP_PASSWORD)
        .start()
        .await
        .unwrap();
    (server, dir)
}

fn eab_request(port: u16) -> Value {
    json!({
        "type": "eab_notes_export",
        "name": "EAB notes",
        "description": "nightly",
        "enabled": true,
        "config": {
            "sftp": {"host": "127.0.0.1", "port": port, "username": SFTP_USER, "directory": "inbox", "file_prefix": "notes_"},
            "schedule": {"blocks": [0, 7]},
            "filters": {"channels": ["sms"], "types": ["ai_agent", "live_chat"], "directions": ["incoming", "outgoing"]},
            "eab": {"import_version": "3", "institution_id": "77", "group_id": "group_id", "dedupe_contacts": false,
                    "is_private": true, "student_viewable": false, "show_on_student_report": true,
                    "created_by": "Mainstay", "note_reasons": "Outreach", "note_body": "{first_name}: {message}"}
        },
        "secrets": {"password": SFTP_PASSWORD}
    })
}

async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/api/v1/integrations", body).await
}

#[tokio::test]
async fn create_read_change_and_delete_with_write_only_secrets() {
    let app = spawn_app().await;
    let (status, created) = create(&app, eab_request(2222)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["type"], "eab_notes_export");
    assert_eq!(created["type_label"], "EAB Notes");
    assert_eq!(
        created["secrets"],
        json!({"password": true, "private_key": false, "passphrase": false})
    );
    for body in [
        &created,
        &app.get(&format!("/api/v1/integrations/{id}")).await.1,
        &app.get("/api/v1/integrations").await.1,
    ] {
        assert!(
            !body.to_string().contains(SFTP_PASSWORD),
            "a secret leaked: {body}"
        );
    }

    // A merge patch: change the directory, clear the prefix, swap the password for a key.
    let key = &ferry_sftp::testing::keys().ed25519.private;
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            &app.admin_token,
            Some(json!({"enabled": false, "config": {"sftp": {"directory": "other", "file_prefix": null}},
                        "secrets": {"password": null, "private_key": key}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["config"]["sftp"]["directory"], "other");
    assert!(patched["config"]["sftp"].get("file_prefix").is_none());
    assert_eq!(
        patched["config"]["eab"]["institution_id"], "77",
        "untouched parts stay"
    );
    assert_eq!(patched["secrets"]["password"], false);
    assert_eq!(patched["secrets"]["private_key"], true);

    // Removing the last credential is refused, and nothing of that request is applied.
    let (status, err) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            &app.admin_token,
            Some(json!({"name": "renamed", "secrets": {"private_key": null}})),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "secrets");
    let (_, now) = app.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(now["name"], "EAB notes");
    assert_eq!(now["secrets"]["private_key"], true);

    // Changing the host forgets a pinned host key.
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let path = format!("/api/v1/integrations/{id}");
    let (_, pinned) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"config": {"sftp": {"host_key": fp}}})),
        )
        .await;
    assert_eq!(pinned["config"]["sftp"]["host_key"], fp);
    let (_, moved) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"config": {"sftp": {"host": "sftp2.example.edu"}}})),
        )
        .await;
    assert!(moved["config"]["sftp"].get("host_key").is_none(), "{moved}");

    let (status, _) = app
        .call(Method::DELETE, &path, &app.admin_token, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&path).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn invalid_requests_name_the_field_and_store_nothing() {
    let app = spawn_app().await;
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, u16, &str)> = vec![
        (Box::new(|v| v["type"] = json!("fax_export")), 422, "type"),
        (Box::new(|v| v["name"] = json!(" ")), 422, "name"),
        (
            Box::new(|v| v["config"]["eab"]["note_body"] = json!("Hi {nmae}")),
            422,
            "config.eab.note_body",
        ),
        (
            Box::new(|v| v["config"]["filters"]["channels"] = json!([])),
            422,
            "config.filters.channels",
        ),
        (
            Box::new(|v| v["config"]["schedule"]["blocks"] = json!([9])),
            422,
            "config.schedule.blocks",
        ),
        (
            Box::new(|v| v["config"]["sftp"]["host"] = json!("")),
            422,
            "config.sftp.host",
        ),
        (
            Box::new(|v| v["config"]["sftp"]["hostname"] = json!("x")),
            422,
            "config.sftp.hostname",
        ),
        (
            Box::new(|v| v["secrets"] = json!({"token": "x"})),
            422,
            "secrets.token",
        ),
        (
            Box::new(|v| v["secrets"] = json!({"password": 5})),
            422,
            "secrets.password",
        ),
        (Box::new(|v| v["secrets"] = json!({})), 422, "secrets"),
        (Box::new(|v| v["colour"] = json!("red")), 422, "colour"),
    ];
    for (change, status, field) in cases {
        let mut body = eab_request(22);
        change(&mut body);
        let (got, err) = create(&app, body.clone()).await;
        assert_eq!(got, status, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{body} -> {err}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, all) = app.get("/api/v1/integrations").await;
    assert_eq!(all, json!([]), "no invalid request stored anything");
}

/// The fields an error answer lists in `errors`, sorted.
fn listed_fields(err: &Value) -> Vec<String> {
    let mut out: Vec<String> = err["error"]["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");
                    assert!(!e["code"].as_str().unwrap().is_empty(), "{e}");
                    e["field"].as_str().unwrap().to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test]
async fn a_save_with_several_mistakes_lists_every_one_and_stores_nothing() {
    let app = spawn_app().await;
    let mut body = eab_request(22);
    body["name"] = json!(" ");
    body["config"]["sftp"]["host"] = json!("");
    body["config"]["schedule"]["blocks"] = json!([9]);
    body["config"]["eab"]["note_body"] = json!("Hi {nmae}");
    let (status, err) = create(&app, body).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(
        listed_fields(&err),
        [
            "config.eab.note_body",
            "config.schedule.blocks",
            "config.sftp.host",
            "name"
        ],
        "{err}"
    );
    // The first listed problem is the error itself, so older clients still see one of them.
    assert_eq!(err["error"]["field"], err["error"]["errors"][0]["field"]);
    assert_eq!(err["error"]["code"], err["error"]["errors"][0]["code"]);
    let (_, all) = app.get("/api/v1/integrations").await;
    assert_eq!(all, json!([]), "nothing stored");

    // One mistake answers as before, without a list.
    let mut body = eab_request(22);
    body["name"] = json!(" ");
    let (status, err) = create(&app, body).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "name");
    assert!(err["error"].get("errors").is_none(), "{err}");

    // An update: the patch is merged over the saved config, and all of its mistakes are listed.
    let (status, saved) = create(&app, eab_request(2222)).await;
    assert_eq!(status, 201, "{saved}");
    let id = saved["id"].as_i64().unwrap();
    let (status, err) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            &app.admin_token,
            Some(json!({"description": "x".repeat(5000),
                        "config": {"sftp": {"port": 0}, "filters": {"channels": []}}})),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(
        listed_fields(&err),
        ["config.filters.channels", "config.sftp.port", "description"],
        "{err}"
    );
    let (_, after) = app.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(
        after["description"], saved["description"],
        "nothing applied"
    );
    assert_eq!(after["config"], saved["config"], "nothing applied");
}

#[tokio::test]
async fn a_private_key_that_cannot_be_read_is_refused_on_save() {
    let app = spawn_app().await;
    let keys = ferry_sftp::testing::keys();
    let garbled = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----";
    for (secrets, field, code) in [
        (
            json!({"private_key": garbled}),
            "secrets.private_key",
            "sftp_key_unreadable",
        ),
        (
            json!({"private_key": keys.ed25519.public}),
            "secrets.private_key",
            "sftp_key_unreadable",
        ),
        (
            json!({"private_key": keys.ed25519_protected.private}),
            "secrets.passphrase",
            "sftp_key_passphrase_required",
        ),
        (
            json!({"private_key": keys.ed25519_protected.private, "passphrase": "wrong"}),
            "secrets.passphrase",
            "sftp_key_wrong_passphrase",
        ),
    ] {
        let mut body = eab_request(22);
        body["secrets"] = secrets;
        let (status, err) = create(&app, body).await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        assert_eq!(err["error"]["code"], code, "{err}");
    }
    let (_, all) = app.get("/api/v1/integrations").await;
    assert_eq!(all, json!([]));

    // A change of key is checked too; a good key with its passphrase is taken.
    let (status, created) = create(&app, eab_request(22)).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/integrations/{}", created["id"]);
    let (status, err) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"secrets": {"private_key": garbled}})),
        )
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (422, &json!("sftp_key_unreadable")),
        "{err}"
    );
    let protected = &keys.ed25519_protected;
    let (status, ok) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin_token,
            Some(json!({"secrets": {"private_key": protected.private, "passphrase": protected.passphrase}})),
        )
        .await;
    assert_eq!(status, 200, "{ok}");
}

#[tokio::test]
async fn test_connection_pins_the_key_and_reports_failures() {
    let app = spawn_app().await;
    let (server, _dir) = sftp_server().await;
    let (_, created) = create(&app, eab_request(server.port())).await;
    let id = created["id"].as_i64().unwrap();
    assert!(created["config"]["sftp"].get("host_key").is_none());

    let path = format!("/api/v1/integrations/{id}/test-connection");
    let (status, ok) = app.post(&path, json!({})).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["host_key"], server.host_key_fingerprint());
    assert!(ok["message"].as_str().unwrap().contains("inbox"), "{ok}");
    let (_, saved) = app.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(
        saved["config"]["sftp"]["host_key"],
        server.host_key_fingerprint(),
        "accept-new pinned the key"
    );

    // Unsaved values: a wrong password fails without changing what is saved.
    let (status, bad) = app
        .post(&path, json!({"secrets": {"password": "wrong"}}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(bad["ok"], false);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("authentication failed"),
        "{bad}"
    );
    let (_, missing) = app
        .post(&path, json!({"config": {"sftp": {"directory": "nope"}}}))
        .await;
    assert_eq!(missing["ok"], false);
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\" does not exist"),
        "{missing}"
    );

    // The server's key changes: the pinned key refuses it.
    server.rotate_host_key().unwrap();
    let (_, changed) = app.post(&path, json!({})).await;
    assert_eq!(changed["ok"], false);
    assert!(
        changed["message"].as_str().unwrap().contains("host key"),
        "{changed}"
    );

    // A new integration's test, before it is saved.
    let mut new = eab_request(server.port());
    new.as_object_mut()
        .unwrap()
        .retain(|k, _| ["type", "config", "secrets"].contains(&k.as_str()));
    let (status, fresh) = app.post("/api/v1/integrations/test-connection", new).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["ok"], true, "{fresh}");
    assert_eq!(fresh["host_key"], server.host_key_fingerprint());
}

#[tokio::test]
async fn run_now_queues_one_run_and_a_worker_uploads_the_file() {
    let app = spawn_app().await;
    let (server, dir) = sftp_server().await;
    let contact = app.contact("Ana", "6175550199").await;
    app.call(
        Method::PATCH,
        &format!("/api/v1/contacts/{contact}"),
        &app.admin_token,
        Some(json!({"crm_id": "EAB-1"})),
    )
    .await;
    app.post("/api/v1/messages", json!({"messages": [
        {"contact_id": contact, "channel": "sms", "type": "ai_agent", "direction": "outgoing", "body": "Hi Ana", "sent_at": "2026-09-01T14:00:00Z"}
    ]}))
    .await;
    let (_, created) = create(&app, eab_request(server.port())).await;
    let id = created["id"].as_i64().unwrap();

    let (status, queued) = app
        .post(&format!("/api/v1/integrations/{id}/runs"), json!({}))
        .await;
    assert_eq!(status, 202, "{queued}");
    let run_id = queued["run_id"].as_i64().unwrap();
    let (_, again) = app
        .post(&format!("/api/v1/integrations/{id}/runs"), json!({}))
        .await;
    assert_eq!(
        again["run_id"], run_id,
        "a second Run now finds the queued run"
    );

    let registry = ferry_connectors::Registry::builtin(&app.base);
    let worker = ferry_worker::Worker::new(app.store.store.clone(), registry, Default::default());
    assert_eq!(worker.run_once().await.unwrap(), Some(run_id));

    let (_, run) = app.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["rows"], 1);
    let file = run["file"].as_str().unwrap();
    assert!(
        file.starts_with("notes_") && file.ends_with(".csv"),
        "{file}"
    );
    let bytes = std::fs::read_to_string(dir.path().join("inbox").join(file)).unwrap();
    assert!(bytes.starts_with("GradesFirst Import Version=3,Institution ID=77\r\nnote,add,EAB-1,group_id,Y,N,Y,09/01/2026,Mainstay,Ana: Hi Ana,"), "{bytes}");
    assert!(
        bytes.contains(&format!("{}/contacts/{contact}?message=", app.base)),
        "{bytes}"
    );
    let (_, listed) = app
        .get(&format!("/api/v1/runs?integration_id={id}&status=success"))
        .await;
    assert_eq!(listed["runs"][0]["id"], run_id);

    let (status, _) = app
        .post("/api/v1/integrations/999999/runs", json!({}))
        .await;
    assert_eq!(status, 404);
}

/// The configuration screen shows the allow-list IPs from the setting and the placeholders
/// beside Note Body; a saved password shows as set, never its value.
#[tokio::test]
async fn the_configuration_screen_lists_ips_and_placeholders_and_hides_secrets() {
    let app = crate::helpers::spawn_app_with(ferry_web::WebConfig {
        egress_ips: vec!["34.197.84.241".into(), "3.233.244.171".into()],
        ..Default::default()
    })
    .await;
    let (_, created) = create(&app, eab_request(2222)).await;
    let (cookie, _) = app.login().await;
    let page = async |path: String| app.page(&cookie, &path).await.1;
    let new = page("/settings/integrations/new/eab_notes_export".into()).await;
    assert!(
        new.contains("<code>34.197.84.241</code> and <code>3.233.244.171</code>"),
        "{new}"
    );
    for placeholder in [
        "{date}",
        "{url}",
        "{first_name}",
        "{last_name}",
        "{preferred_name}",
        "{message}",
        "{channel}",
        "{type}",
        "{direction}",
        "{count}",
    ] {
        assert!(
            new.contains(&format!("<code>{placeholder}</code>")),
            "{placeholder} is listed"
        );
    }
    let edit = page(format!("/settings/integrations/i/{}", created["id"])).await;
    assert!(
        edit.contains("Set (leave empty to keep)"),
        "the form says the password is set"
    );
    assert!(!edit.contains(SFTP_PASSWORD), "and never shows it");
    let without = crate::helpers::spawn_app().await;
    let (cookie, _) = without.login().await;
    let (_, plain) = without
        .page(&cookie, "/settings/integrations/new/eab_notes_export")
        .await;
    assert!(
        plain.contains("id=\"egress-ips\"") && plain.contains("<code>FERRY_EGRESS_IPS</code>"),
        "without the setting the allow-list box says how to set it: {plain}"
    );
}

/// The row actions are the same for every kind and act only within the institution: the
/// Enabled switch of another institution's integration is Not Found.
#[tokio::test]
async fn row_actions_switch_off_and_stay_within_the_institution() {
    let app = spawn_app().await;
    let (_, created) = create(&app, eab_request(2222)).await;
    let id = created["id"].as_i64().unwrap();
    let (cookie, csrf) = app.login().await;
    let post = |path: String| {
        let req = app
            .http
            .post(app.url(&path))
            .header("cookie", &cookie)
            .form(&[("_csrf", csrf.as_str())]);
        async move {
            let res = req.send().await.unwrap();
            let to = res
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            (res.status().as_u16(), to)
        }
    };
    let enabled = || async {
        let (status, body) = app.get(&format!("/api/v1/integrations/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body["enabled"].as_bool().unwrap()
    };
    assert!(enabled().await);
    assert_eq!(
        post(format!("/settings/integrations/i/{id}/enabled")).await,
        (
            303,
            Some("/settings/integrations/sftp-outbound?notice=disabled".to_string())
        )
    );
    assert!(!enabled().await, "switched off");
    let (status, other) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/integrations",
            &app.other_admin_token,
            Some(eab_request(2222)),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    for action in ["enabled", "run", "delete"] {
        assert_eq!(
            post(format!("/settings/integrations/i/{}/{action}", other["id"]))
                .await
                .0,
            404,
            "{action}"
        );
    }
}
