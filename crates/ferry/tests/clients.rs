//! The emulators, driven by the Python clients people use against the real services
//! (`tests/clients/*.py`): simple-salesforce, hubspot-api-client and parsons' NGPVAN connector.
//! Each script asserts what it reads back and exits non-zero on a mismatch; these tests start
//! the emulator in-process on 127.0.0.1:0, run the script, and check the emulator's side too.
//!
//! The clients come from `tests/clients/requirements.txt`
//! (`python3 -m pip install -r crates/ferry/tests/clients/requirements.txt`). Without them a
//! test fails when `CI` is set and is skipped, loudly, otherwise.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ferry_emulators::{everyaction, hubspot, salesforce};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Whether `python3 -c IMPORT` works. When it does not: a panic under CI, else a skip line.
fn client_installed(import: &str, package: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", import])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    let msg = format!(
        "python3 cannot `{import}`: pip install {package} \
         (python3 -m pip install -r crates/ferry/tests/clients/requirements.txt)"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
    false
}

/// Runs `python3 tests/clients/NAME ARGS…` and asserts it exits 0 and says it passed.
async fn run_script(name: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("python3")
        .arg(script(name))
        .args(args)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{name} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_against_the_salesforce_emulator() {
    if !client_installed("import simple_salesforce", "simple-salesforce") {
        return;
    }
    // simple-salesforce only speaks https: serve TLS with a certificate the script trusts.
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let material =
        salesforce::tls::self_signed(&["localhost"], &[IpAddr::from([127, 0, 0, 1])]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &material.cert_pem).unwrap();
    // The connected app's certificate for the JWT bearer flow: the emulator crate's test pair.
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferry-emulators/tests/salesforce/fixtures");
    let jwt_key = fixtures.join("connected-app.key");
    let emulator = salesforce::SalesforceEmulator::new(salesforce::EmulatorConfig {
        tls: true,
        jwt_certificate: Some(std::fs::read_to_string(fixtures.join("connected-app.crt")).unwrap()),
        ..salesforce::EmulatorConfig::default()
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = {
        let emulator = emulator.clone();
        tokio::spawn(async move {
            emulator
                .serve_tls(listener, &material, async move {
                    let _ = stopped.await;
                })
                .await
        })
    };

    let base = format!("https://{addr}");
    run_script(
        "salesforce_simple_salesforce.py",
        &[
            &base,
            ca.to_str().unwrap(),
            salesforce::DEFAULT_CLIENT_ID,
            salesforce::DEFAULT_CLIENT_SECRET,
            salesforce::DEFAULT_USERNAME,
            jwt_key.to_str().unwrap(),
        ],
    )
    .await;

    // The emulator's side.
    let contacts = emulator.records("Contact");
    assert_eq!(
        contacts.len(),
        2_351,
        "2,345 by Bulk API 2.0, 4 by REST, 1 by bulk upsert, 1 by a collection"
    );
    let deleted: Vec<_> = contacts
        .iter()
        .filter(|r| r.deleted)
        .filter_map(|r| r.get("Ferry_Id__c"))
        .collect();
    assert_eq!(
        deleted,
        ["F-1", "N-1"],
        "deleted by REST and by Bulk API 2.0"
    );
    let counters = emulator.counters();
    assert!(
        counters.requests_to("GET /services/data/vXX.X/query/{locator}") >= 2,
        "query_more and query_all followed nextRecordsUrl: {counters:?}"
    );
    assert_eq!(
        counters.requests_to("PUT /services/data/vXX.X/jobs/ingest/{id}/batches"),
        4,
        "four Bulk API 2.0 uploads (insert, upsert, delete, update): {counters:?}"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_api_client_against_the_hubspot_emulator() {
    if !client_installed("import hubspot", "hubspot-api-client") {
        return;
    }
    let token = "pat-na1-ferry-clients-test";
    let hs = hubspot::start(hubspot::EmulatorConfig {
        private_app_tokens: vec![token.into()],
        ..hubspot::EmulatorConfig::default()
    })
    .await
    .unwrap();

    // An OAuth app's grant, as if its consent page had been approved: the script refreshes it.
    let grant = hs.state().issue_tokens(&[]);
    let app = &hs.state().config().oauth;
    run_script(
        "hubspot_api_client.py",
        &[
            hs.base_url(),
            token,
            &app.client_id,
            &app.client_secret,
            &grant.refresh_token,
        ],
    )
    .await;

    let contacts = hs.state().contacts();
    assert_eq!(contacts.len(), 302, "1 + 3 batches of 100 + 1 upserted");
    assert_eq!(contacts.iter().filter(|c| c.archived).count(), 1);
    let ada = hs.state().contact_by_email("ada@example.org").unwrap();
    assert_eq!(
        ada.properties.get("lastname").map(String::as_str),
        Some("King")
    );
    assert_eq!(
        ada.properties.get("ferry_status").map(String::as_str),
        Some("paused")
    );
    assert_eq!(
        contacts
            .iter()
            .filter(|c| c.properties.get("firstname").map(String::as_str) == Some("Updated"))
            .count(),
        40
    );
    assert_eq!(
        hs.state().schema_violations(),
        Vec::<String>::new(),
        "every answer matched HubSpot's published schemas"
    );
    hs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parsons_against_the_everyaction_emulator() {
    if !client_installed("from parsons import VAN", "parsons[ngpvan]") {
        return;
    }
    let key = "8b3f7e2a-1c4d-4e5f-9a6b-0c1d2e3f4a5b";
    let ea = everyaction::start(everyaction::EmulatorConfig {
        api_key: key.into(),
        ..everyaction::EmulatorConfig::default()
    })
    .await
    .unwrap();

    run_script("everyaction_parsons.py", &[ea.base_url(), key]).await;

    let people = ea.state().people();
    assert_eq!(
        people.len(),
        6,
        "Ada and five more, no duplicate from the second upsert"
    );
    let ada = &people[0];
    assert_eq!(
        ada.scalars.get("firstName").map(String::as_str),
        Some("Augusta Ada")
    );
    let emails: Vec<&str> = ada.emails.iter().map(|e| e.email.as_str()).collect();
    assert_eq!(
        emails,
        ["ada@example.org", "ada@math.example.org"],
        "the same email is not appended twice; a new one is"
    );
    ea.shutdown().await;
}
