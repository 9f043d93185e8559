//! `/api/v1/sftp-accounts`: accounts, keys, write-only passwords, generated key pairs that log
//! in to Ferry's own SFTP server, and tenancy.

use ferry_sftp::{Auth as SftpAuth, HostKeyPolicy, SftpTarget};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// An Ed25519 public key line made by `ssh-keygen` (comment `ed25519`).
fn ed25519_pub() -> &'static str {
    &ferry_sftp::testing::keys().ed25519.public
}

#[tokio::test]
async fn create_read_change_and_delete_accounts() {
    let app = spawn_app().await;
    let (status, acc) = app
        .post(
            "/api/v1/sftp-accounts",
            json!({"username": "state-u.uploads", "public_keys": [ed25519_pub()]}),
        )
        .await;
    assert_eq!(status, 201, "{acc}");
    let id = acc["id"].as_i64().unwrap();
    assert_eq!(acc["enabled"], true);
    assert_eq!(acc["password_set"], false);
    assert_eq!(acc["keys"][0]["algorithm"], "ssh-ed25519");
    assert_eq!(acc["keys"][0]["comment"], "ed25519");
    assert!(
        acc["keys"][0]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    assert!(acc.get("password").is_none());

    // Bad input: refused whole, with the field; nothing half made.
    for (body, field) in [
        (
            json!({"username": "second", "public_keys": [ed25519_pub(), "ssh-ed25519 nope"]}),
            "public_keys[1]",
        ),
        (
            json!({"username": "second", "public_keys": [ed25519_pub(), ed25519_pub()]}),
            "public_keys[1]",
        ),
        (
            json!({"username": "second", "public_keys": ["-----BEGIN OPENSSH PRIVATE KEY-----"]}),
            "public_keys[0]",
        ),
        (
            json!({"username": "second", "password": "short"}),
            "password",
        ),
        (json!({"username": "root"}), "username"),
        (json!({"username": "../etc"}), "username"),
    ] {
        let (status, err) = app.post("/api/v1/sftp-accounts", body.clone()).await;
        assert_eq!(status, 422, "{body} → {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (_, list) = app.get("/api/v1/sftp-accounts").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "no half-made account");
    let (status, err) = app
        .post(
            "/api/v1/sftp-accounts",
            json!({"username": "state-u.uploads"}),
        )
        .await;
    assert_eq!(status, 409, "{err}");

    // Passwords are write-only.
    let (status, acc) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/sftp-accounts/{id}"),
            &app.admin_token,
            Some(json!({"password": "correct horse battery", "enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{acc}");
    assert_eq!(acc["password_set"], true);
    assert_eq!(acc["enabled"], false);
    assert!(!acc.to_string().contains("correct horse"));
    let (_, acc) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/sftp-accounts/{id}"),
            &app.admin_token,
            Some(json!({"password": null})),
        )
        .await;
    assert_eq!(acc["password_set"], false);
    assert_eq!(acc["enabled"], false, "left out: unchanged");

    // Keys: add, duplicate, remove.
    let (status, err) = app
        .post(
            &format!("/api/v1/sftp-accounts/{id}/keys"),
            json!({"public_key": ed25519_pub()}),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    let key_id = acc["keys"][0]["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sftp-accounts/{id}/keys/{key_id}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, acc) = app.get(&format!("/api/v1/sftp-accounts/{id}")).await;
    assert!(acc["keys"].as_array().unwrap().is_empty());

    // Another institution sees nothing; viewers may not look.
    for (method, path) in [
        (Method::GET, format!("/api/v1/sftp-accounts/{id}")),
        (Method::DELETE, format!("/api/v1/sftp-accounts/{id}")),
    ] {
        let (status, _) = app.call(method, &path, &app.other_admin_token, None).await;
        assert_eq!(status, 404);
    }
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/sftp-accounts/{id}/generate-key"),
            &app.other_admin_token,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/sftp-accounts",
            &app.viewer_token,
            None,
        )
        .await;
    assert_eq!(status, 403);

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sftp-accounts/{id}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/api/v1/sftp-accounts/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_key_logs_in_and_is_shown_once() {
    let app = spawn_app().await;
    let vault_dir = tempfile::tempdir().unwrap();
    let vault =
        ferry_vault::Vault::local(vault_dir.path(), ferry_vault::VaultKey::generate()).unwrap();
    let server = ferry_sftpd::SftpServer::start(
        app.store.store.clone(),
        vault,
        "127.0.0.1:0",
        ferry_sftpd::ServerConfig {
            host_keys: vec![ferry_sftpd::HostKeyKind::Ed25519],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (_, acc) = app
        .post("/api/v1/sftp-accounts", json!({"username": "state-u.drop"}))
        .await;
    let id = acc["id"].as_i64().unwrap();
    assert_eq!(
        acc["connection"]["host_keys"][0]["fingerprint"],
        server.host_keys()[0].fingerprint
    );
    for (body, algorithm) in [
        (json!({}), "ssh-ed25519"),
        (json!({"type": "rsa", "comment": "banner"}), "ssh-rsa"),
    ] {
        let res = app
            .http
            .post(app.url(&format!("/api/v1/sftp-accounts/{id}/generate-key")))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let g: Value = res.json().await.unwrap();
        assert_eq!(g["key"]["algorithm"], algorithm);
        let private = g["private_key"].as_str().unwrap().to_string();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        // The private key is nowhere afterwards.
        let (_, again) = app.get(&format!("/api/v1/sftp-accounts/{id}")).await;
        assert!(!again.to_string().contains("PRIVATE KEY"));
        // And it logs in to Ferry's SFTP server.
        let target = SftpTarget::new(
            "127.0.0.1",
            "state-u.drop",
            SftpAuth::PrivateKey {
                pem: private.into(),
                passphrase: None,
            },
        )
        .with_port(server.local_addr().port());
        let session = ferry_sftp::connect(&target, &HostKeyPolicy::AcceptNew)
            .await
            .unwrap();
        session.close().await.unwrap();
    }
    let (status, err) = app
        .post(
            &format!("/api/v1/sftp-accounts/{id}/generate-key"),
            json!({"type": "dsa"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["field"], "type");
    let (_, acc) = app.get(&format!("/api/v1/sftp-accounts/{id}")).await;
    assert_eq!(acc["keys"].as_array().unwrap().len(), 2);
    let (_, acc_last) = app.get(&format!("/api/v1/sftp-accounts/{id}")).await;
    assert!(acc_last["last_login_at"].is_string());

    // An upload shows in /api/v1/bulk-files (viewers too), never to another institution.
    let target = SftpTarget::new(
        "127.0.0.1",
        "state-u.drop",
        SftpAuth::PrivateKey {
            pem: ferry_sftp::testing::keys().ed25519.private.clone().into(),
            passphrase: None,
        },
    )
    .with_port(server.local_addr().port());
    let (_, _) = app
        .post(
            &format!("/api/v1/sftp-accounts/{id}/keys"),
            json!({"public_key": ed25519_pub()}),
        )
        .await;
    let session = ferry_sftp::connect(&target, &HostKeyPolicy::AcceptNew)
        .await
        .unwrap();
    session
        .upload(None, "contacts.csv", &b"crm_id\n1\n"[..])
        .await
        .unwrap();
    session.close().await.unwrap();
    let (status, files) = app
        .call(Method::GET, "/api/v1/bulk-files", &app.viewer_token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(files[0]["path"], "/contacts.csv");
    assert_eq!(files[0]["status"], "complete");
    assert_eq!(files[0]["size"], 9);
    assert!(files[0]["ready_at"].is_string());
    let (_, other) = app
        .call(
            Method::GET,
            "/api/v1/bulk-files",
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!(other, json!([]));
    server.shutdown().await;
}

/// Settings → SFTP accounts in the browser's terms (forms): refusals next to their field with
/// nothing saved; create with a key; generate a pair whose private key is shown once (not
/// cached) and signs in; disable, password, remove a key, delete after a confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sftp_account_screens_create_generate_disable_and_delete() {
    let app = spawn_app().await;
    let (cookie, csrf) = app.login().await;
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let mut form = form;
        form.push(("_csrf", csrf.clone()));
        let req = app
            .http
            .post(app.url(&path))
            .header("cookie", &cookie)
            .form(&form);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            (status, headers, res.text().await.unwrap())
        }
    };
    let (status, page) = app.page(&cookie, "/settings/sftp-accounts").await;
    assert_eq!(status, 200);
    assert!(page.contains("No SFTP accounts yet"), "{page}");
    assert!(page.contains("does not run in this process"), "{page}");

    // Refused: a bad username, a bad key; nothing is created, what was typed stays.
    let (s, _, page) = post(
        "/settings/sftp-accounts".into(),
        vec![
            ("username", "Bad Name!".into()),
            ("public_key", String::new()),
        ],
    )
    .await;
    assert_eq!(s, 422, "{page}");
    assert!(page.contains("id=\"username-error\""), "{page}");
    assert!(page.contains("value=\"Bad Name!\""));
    let (s, _, page) = post(
        "/settings/sftp-accounts".into(),
        vec![
            ("username", "state-u.drop".into()),
            ("public_key", "ssh-ed25519 not-a-key".into()),
        ],
    )
    .await;
    assert_eq!(s, 422, "{page}");
    assert!(page.contains("id=\"public-key-error\""), "{page}");
    assert!(page.contains("ssh-ed25519 not-a-key</textarea>"));
    let (_, list) = app.get("/api/v1/sftp-accounts").await;
    assert_eq!(list, json!([]), "nothing half-made");

    // Created with a pasted key: its page shows the key.
    let (s, headers, _) = post(
        "/settings/sftp-accounts".into(),
        vec![
            ("username", "state-u.drop".into()),
            ("public_key", ed25519_pub().to_string()),
        ],
    )
    .await;
    assert_eq!(s, 303);
    let location = headers["location"].to_str().unwrap().to_string();
    let id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();
    let fingerprint = ferry_sftp::testing::keys().ed25519.fingerprint.clone();
    let (s, page) = app.page(&cookie, &location).await;
    assert_eq!(s, 200);
    assert!(page.contains(&fingerprint), "{page}");
    assert!(page.contains("Enabled"));

    // Generate a pair: the private key is shown once, not cached, and signs in.
    let vault_dir = tempfile::tempdir().unwrap();
    let vault =
        ferry_vault::Vault::local(vault_dir.path(), ferry_vault::VaultKey::generate()).unwrap();
    let server = ferry_sftpd::SftpServer::start(
        app.store.store.clone(),
        vault,
        "127.0.0.1:0",
        ferry_sftpd::ServerConfig {
            host_keys: vec![ferry_sftpd::HostKeyKind::Ed25519],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (s, headers, page) = post(
        format!("/settings/sftp-accounts/{id}/generate-key"),
        vec![("type", "ed25519".into())],
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(headers["cache-control"], "no-store");
    let private = page
        .split("readonly>")
        .nth(1)
        .and_then(|p| p.split("</textarea>").next())
        .expect("the private key is shown")
        .replace("&#10;", "\n");
    assert!(
        private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "{private}"
    );
    assert!(page.contains("download=\"id_ed25519\""));
    let target = SftpTarget::new(
        "127.0.0.1",
        "state-u.drop",
        SftpAuth::PrivateKey {
            pem: private.clone().into(),
            passphrase: None,
        },
    )
    .with_port(server.local_addr().port());
    let session = ferry_sftp::connect(&target, &HostKeyPolicy::AcceptNew)
        .await
        .expect("the generated key signs in");
    session.close().await.unwrap();
    let (_, page) = app.page(&cookie, &location).await;
    assert!(!page.contains("PRIVATE KEY"), "shown once");
    let (_, acc) = app.get(&format!("/api/v1/sftp-accounts/{id}")).await;
    assert_eq!(acc["keys"].as_array().unwrap().len(), 2);

    // Disabled: it cannot sign in.
    let (s, _, page) = post(
        format!("/settings/sftp-accounts/{id}/enabled"),
        vec![("enabled", "false".into())],
    )
    .await;
    assert_eq!(s, 200);
    assert!(page.contains("The account is disabled"));
    assert!(
        ferry_sftp::connect(&target, &HostKeyPolicy::AcceptNew)
            .await
            .is_err()
    );
    assert_eq!(
        app.get(&format!("/api/v1/sftp-accounts/{id}")).await.1["enabled"],
        false
    );

    // A short password is refused in place; a good one is set, then removed.
    let (s, _, page) = post(
        format!("/settings/sftp-accounts/{id}/password"),
        vec![("password", "short".into())],
    )
    .await;
    assert_eq!(s, 422);
    assert!(page.contains("id=\"password-error\""), "{page}");
    assert_eq!(
        app.get(&format!("/api/v1/sftp-accounts/{id}")).await.1["password_set"],
        false
    );
    let (s, _, _) = post(
        format!("/settings/sftp-accounts/{id}/password"),
        vec![("password", "a-long-enough-password".into())],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        app.get(&format!("/api/v1/sftp-accounts/{id}")).await.1["password_set"],
        true
    );
    let (s, _, _) = post(
        format!("/settings/sftp-accounts/{id}/password"),
        vec![("password", String::new()), ("remove", "true".into())],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        app.get(&format!("/api/v1/sftp-accounts/{id}")).await.1["password_set"],
        false
    );

    // Remove the pasted key.
    let key_id = acc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["fingerprint"] == fingerprint.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (s, _, _) = post(
        format!("/settings/sftp-accounts/{id}/keys/{key_id}/delete"),
        vec![],
    )
    .await;
    assert_eq!(s, 200);
    let (_, acc) = app.get(&format!("/api/v1/sftp-accounts/{id}")).await;
    assert_eq!(acc["keys"].as_array().unwrap().len(), 1);

    // Delete: a confirmation first, then gone.
    let (s, page) = app
        .page(&cookie, &format!("/settings/sftp-accounts/{id}/delete"))
        .await;
    assert_eq!(s, 200);
    assert!(page.contains("stay on record"), "{page}");
    let (s, _, page) = post(format!("/settings/sftp-accounts/{id}/delete"), vec![]).await;
    assert_eq!(s, 200);
    assert!(page.contains("Deleted the account state-u.drop"), "{page}");
    assert_eq!(app.get("/api/v1/sftp-accounts").await.1, json!([]));
}
