//! Bulk File Upload end to end: files uploaded with OpenSSH `sftp -b` into Ferry's own SFTP
//! server, queued by the worker (one `file_arrived` run per file) and ingested by the
//! `bulk_upload` connector with the template of their folder and name. Runs on both stores.

use std::process::Stdio;
use std::time::Duration;

use ferry_connectors::Registry;
use ferry_core::bulk::{CallMatch, Encoding, TemplateColumn, TemplateKind};
use ferry_core::message::Channel;
use ferry_core::run::{RunStatus, Trigger};
use ferry_sftp::testing::{KeyPair, keys};
use ferry_sftpd::{HostKeyKind, ServerConfig, SftpServer};
use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::{
    ContactQuery, MessageQuery, NewBulkTemplate, NewIntegration, NewRun, Run, RunQuery,
    SftpFileStatus, SyncLogQuery,
};
use ferry_vault::{Vault, VaultKey};
use ferry_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};

const USER: &str = "state-u.uploads";

struct Fx {
    store: TestStore,
    _server: SftpServer,
    port: u16,
    vault: Vault,
    _vault_dir: tempfile::TempDir,
    work: tempfile::TempDir,
    inst: i64,
    account: i64,
    integration: i64,
    worker: Worker,
}

fn col(name: &str, field: Option<&str>, required: bool) -> TemplateColumn {
    TemplateColumn {
        name: name.into(),
        field: field.map(String::from),
        required,
    }
}

impl Fx {
    async fn new(config: Value) -> Fx {
        let store = fresh_store().await;
        let inst = store
            .create_institution("state-u", "State U", None)
            .await
            .unwrap()
            .id;
        let account = store.create_sftp_account(inst, USER).await.unwrap().id;
        let key = ferry_sftpd::parse_public_key(&keys().ed25519.public).unwrap();
        store.add_sftp_key(inst, account, &key).await.unwrap();
        let vault_dir = tempfile::tempdir().unwrap();
        let vault = Vault::local(vault_dir.path(), VaultKey::generate()).unwrap();
        let server = SftpServer::start(
            store.store.clone(),
            vault.clone(),
            "127.0.0.1:0",
            ServerConfig {
                host_keys: vec![HostKeyKind::Ed25519],
                auth_rejection_time: Duration::from_millis(10),
                defender: None,
                ..ServerConfig::default()
            },
        )
        .await
        .unwrap();
        let integration = store
            .create_integration(
                inst,
                NewIntegration {
                    kind: "bulk_upload".into(),
                    name: "Bulk File Upload".into(),
                    description: String::new(),
                    enabled: true,
                    config,
                    secrets: None,
                },
            )
            .await
            .unwrap()
            .id;
        let worker = Worker::new(
            store.store.clone(),
            Registry::builtin("http://ferry.test").with_upload_vault(vault.clone()),
            WorkerConfig {
                retry_backoff: Duration::from_millis(20),
                ..WorkerConfig::default()
            },
        );
        Fx {
            port: server.local_addr().port(),
            store,
            _server: server,
            vault,
            _vault_dir: vault_dir,
            work: tempfile::tempdir().unwrap(),
            inst,
            account,
            integration,
            worker,
        }
    }

    async fn template(
        &self,
        kind: TemplateKind,
        folder: &str,
        mask: &str,
        columns: Vec<TemplateColumn>,
    ) -> i64 {
        self.store
            .create_bulk_template(
                self.inst,
                &NewBulkTemplate {
                    name: format!("{kind} template"),
                    kind,
                    folder: folder.into(),
                    file_mask: mask.into(),
                    encoding: Encoding::Utf8,
                    delimiter: ',',
                    header_row: 1,
                    columns,
                    match_by: CallMatch::CrmId,
                    contact: json!({}),
                },
            )
            .await
            .unwrap()
            .id
    }

    /// Runs OpenSSH `sftp -b` with `batch` in the work folder; panics on failure.
    async fn sftp(&self, batch: &str) -> String {
        let key: &KeyPair = &keys().ed25519;
        let key_path = self.work.path().join("id_ed25519");
        key.write_private(&key_path);
        let batch_path = self.work.path().join("batch");
        std::fs::write(&batch_path, batch).unwrap();
        let out = tokio::process::Command::new("sftp")
            .arg("-b")
            .arg(&batch_path)
            .arg("-i")
            .arg(&key_path)
            .args(["-P", &self.port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{USER}@127.0.0.1"))
            .current_dir(self.work.path())
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run sftp (openssh-client)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "sftp failed: {text}");
        text
    }

    /// Writes `content` to a local file and uploads it to `remote`.
    async fn upload(&self, remote: &str, content: &[u8]) {
        let local = format!("local_{}", remote.replace('/', "_"));
        std::fs::write(self.work.path().join(&local), content).unwrap();
        let dir = remote.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mkdir = if dir.is_empty() {
            String::new()
        } else {
            format!("-mkdir {dir}\n")
        };
        self.sftp(&format!("{mkdir}put {local} {remote}\n")).await;
    }

    /// Queues the arrived files' runs and executes every queued run; returns the runs, newest
    /// first.
    async fn work(&self) -> Vec<Run> {
        self.worker.queue_arrived_files().await.unwrap();
        while self.worker.run_once().await.unwrap().is_some() {}
        self.runs().await
    }

    async fn runs(&self) -> Vec<Run> {
        self.store
            .list_runs(
                self.inst,
                &RunQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    async fn read(&self, path: &str) -> Option<String> {
        let f = self
            .store
            .sftp_visible_file(self.account, path)
            .await
            .unwrap()?;
        Some(String::from_utf8(self.vault.read_all(&f.object_key).await.unwrap()).unwrap())
    }

    async fn contacts(&self) -> Vec<ferry_core::contact::Contact> {
        self.store
            .list_contacts(
                self.inst,
                &ContactQuery {
                    limit: 500,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .contacts
    }

    async fn calls(&self) -> Vec<ferry_store::Message> {
        self.store
            .list_messages(
                self.inst,
                &MessageQuery {
                    channels: vec![Channel::Voice],
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    async fn contacts_template(&self) -> i64 {
        self.template(
            TemplateKind::Contacts,
            "/contacts",
            "contacts_*.csv",
            vec![
                col("Student ID", Some("crm_id"), true),
                col("First", Some("first_name"), true),
                col("Last", Some("last_name"), true),
                col("Mobile", Some("phone"), true),
                col("Email", Some("email"), false),
            ],
        )
        .await
    }

    async fn calls_template(&self) -> i64 {
        self.template(
            TemplateKind::Calls,
            "/calls",
            "calls_*.csv",
            vec![
                col("Student ID", Some("crm_id"), true),
                col("Direction", Some("direction"), true),
                col("Start", Some("time"), true),
                col("Duration", Some("duration"), false),
                col("Agent", Some("agent"), false),
                col("Notes", Some("note"), false),
                col("Recording", Some("recording"), false),
            ],
        )
        .await
    }
}

const CONTACTS: &str = "Student ID,First,Last,Extra,Mobile,Email\n\
S1,Ana,Diaz,x,(617) 555-0101,ana@state.edu\n\
S2,Bo,Li,y,617-555-0102,\n\
S3,Cy,Ng,z,not a phone,cy@state.edu\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_file_goes_through_the_import_and_is_reported_once() {
    let f = Fx::new(json!({})).await;
    f.contacts_template().await;
    f.upload("contacts/contacts_1.csv", CONTACTS.as_bytes())
        .await;

    let runs = f.work().await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run.trigger, Trigger::FileArrived);
    assert_eq!(run.kind, "bulk_upload");
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(run.rows, 3);
    assert_eq!(run.detail["file"], "contacts_1.csv");
    assert_eq!(run.detail["created"], 2);
    assert_eq!(run.detail["skipped"], 1);
    assert_eq!(run.detail["skipped_rows"][0]["row"], 4);
    assert_eq!(run.detail["skipped_rows"][0]["code"], "invalid_phone");

    let contacts = f.contacts().await;
    assert_eq!(contacts.len(), 2);
    let ana = contacts
        .iter()
        .find(|c| c.data.crm_id.as_deref() == Some("S1"))
        .unwrap();
    assert_eq!(ana.data.first_name.as_deref(), Some("Ana"));
    assert_eq!(ana.data.phone.as_ref().unwrap().as_str(), "+16175550101");

    // The report is in the account's reports/ folder, and the customer can download it.
    let report = f.read("/reports/contacts_1.csv.report.csv").await.unwrap();
    assert!(report.contains("created 2"), "{report}");
    assert!(
        report.contains("contacts_1.csv,4,skipped,invalid_phone,phone"),
        "{report}"
    );
    f.sftp("get reports/contacts_1.csv.report.csv downloaded.csv\n")
        .await;
    assert_eq!(
        std::fs::read_to_string(f.work.path().join("downloaded.csv")).unwrap(),
        report
    );
    let file = f
        .store
        .sftp_visible_file(f.account, "/contacts/contacts_1.csv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(file.status, SftpFileStatus::Ingested);
    assert_eq!(file.run_id, Some(run.id));

    // The same content under another name is ingested once: its run says so and changes nothing.
    f.upload("contacts/contacts_2.csv", CONTACTS.as_bytes())
        .await;
    let runs = f.work().await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].status, RunStatus::Skipped);
    assert_eq!(runs[0].detail["duplicate"], true);
    assert_eq!(f.contacts().await.len(), 2);
    // Nothing is queued twice.
    assert_eq!(f.worker.queue_arrived_files().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_columns_differ_is_refused_whole_and_quarantined() {
    let f = Fx::new(json!({})).await;
    f.contacts_template().await;
    // "Mobile" is missing.
    f.upload(
        "contacts/contacts_bad.csv",
        b"Student ID,First,Last\nS1,Ana,Diaz\n",
    )
    .await;
    // Required columns out of the agreed order.
    f.upload(
        "contacts/contacts_order.csv",
        b"First,Student ID,Last,Mobile\nAna,S1,Diaz,6175550101\n",
    )
    .await;
    // No template for this name.
    f.upload("contacts/people.csv", CONTACTS.as_bytes()).await;

    let runs = f.work().await;
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.status == RunStatus::Failed));
    let by_file = |name: &str| runs.iter().find(|r| r.detail["file"] == name).unwrap();
    let missing = by_file("contacts_bad.csv").error.clone().unwrap();
    assert!(missing.contains("\"Mobile\" missing"), "{missing}");
    assert!(missing.contains("quarantine/contacts_bad.csv"), "{missing}");
    let order = by_file("contacts_order.csv").error.clone().unwrap();
    assert!(
        order.contains("\"First\" comes before \"Student ID\""),
        "{order}"
    );
    let none = by_file("people.csv").error.clone().unwrap();
    assert!(none.starts_with("bulk_no_template"), "{none}");

    assert!(
        f.contacts().await.is_empty(),
        "nothing of a refused file is applied"
    );
    let moved = f
        .store
        .sftp_visible_file(f.account, "/quarantine/contacts_bad.csv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.status, SftpFileStatus::Quarantined);
    assert!(
        f.store
            .sftp_visible_file(f.account, "/contacts/contacts_bad.csv")
            .await
            .unwrap()
            .is_none()
    );
    let note = f
        .read("/quarantine/contacts_bad.csv.reason.txt")
        .await
        .unwrap();
    assert!(note.contains("\"Mobile\" missing"), "{note}");
    let report = f
        .read("/reports/contacts_bad.csv.report.csv")
        .await
        .unwrap();
    assert!(report.contains("quarantined"), "{report}");
    // The customer sees the quarantine folder.
    let listing = f.sftp("ls quarantine\n").await;
    assert!(listing.contains("contacts_bad.csv.reason.txt"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_become_voice_messages_with_their_recordings() {
    let f = Fx::new(json!({"recording_wait_minutes": 0})).await;
    f.contacts_template().await;
    f.calls_template().await;
    f.upload("contacts/contacts_1.csv", CONTACTS.as_bytes())
        .await;
    f.work().await;

    let audio1 = b"RIFF\x24\x00\x00\x00WAVEfmt first recording".to_vec();
    let audio2 = b"ID3 second recording mp3".to_vec();
    f.upload("calls/r1.wav", &audio1).await;
    let calls = "Student ID,Direction,Start,Duration,Agent,Notes,Recording\n\
S1,inbound,2026-09-01 14:30:00,1:35,Jo,Asked about aid,r1.wav\n\
S2,outbound,2026-09-01T15:00:00Z,20,Jo,,r2.mp3\n\
S9,outbound,2026-09-01 16:00,5,Jo,unknown student,\n\
S1,sideways,2026-09-01 16:00,5,Jo,,\n\
S2,inbound,2026-09-02 09:00,7,Al,no recording,r3.wav\n";
    f.upload("calls/calls_1.csv", calls.as_bytes()).await;
    let runs = f.work().await;
    let run = runs
        .iter()
        .find(|r| r.detail["file"] == "calls_1.csv")
        .unwrap();
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(run.rows, 5);
    assert_eq!(run.detail["created"], 3);
    assert_eq!(run.detail["skipped"], 2);
    let skipped = run.detail["skipped_rows"].as_array().unwrap();
    assert_eq!(skipped[0]["row"], 4);
    assert_eq!(skipped[0]["code"], "call_contact_not_found");
    assert_eq!(skipped[1]["row"], 5);
    assert_eq!(skipped[1]["field"], "direction");

    let msgs = f.calls().await;
    assert_eq!(msgs.len(), 3);
    let ids: Vec<i64> = msgs.iter().map(|m| m.id).collect();
    let infos = f.store.call_infos(f.inst, &ids).await.unwrap();
    let first = &msgs[0];
    assert_eq!(first.body, "Asked about aid");
    assert_eq!(first.direction, ferry_core::message::Direction::Incoming);
    assert_eq!(infos[&first.id].duration_secs, 95);
    assert_eq!(infos[&first.id].agent, "Jo");
    let rec1 = infos[&first.id].recording_id.expect("r1.wav arrived first");
    let stored = f.store.recording(f.inst, rec1).await.unwrap();
    assert_eq!(f.vault.read_all(&stored.object_key).await.unwrap(), audio1);
    assert_eq!(
        infos[&msgs[1].id].recording_id, None,
        "r2.mp3 has not arrived"
    );

    // With no wait, the recordings that are missing are in the Sync Log at once.
    let log = f
        .store
        .list_sync_log(
            f.inst,
            &SyncLogQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let missing: Vec<_> = log
        .iter()
        .filter(|l| l.code == "recording_missing")
        .collect();
    assert_eq!(missing.len(), 2, "{log:#?}");
    assert!(missing.iter().any(|l| l.message.contains("/calls/r2.mp3")));

    // The recording that comes later is attached to its call by its own run.
    f.upload("calls/r2.mp3", &audio2).await;
    f.work().await;
    let infos = f.store.call_infos(f.inst, &ids).await.unwrap();
    let rec2 = infos[&msgs[1].id].recording_id.expect("r2.mp3 attached");
    let stored = f.store.recording(f.inst, rec2).await.unwrap();
    assert_eq!(f.vault.read_all(&stored.object_key).await.unwrap(), audio2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_claimed_again_after_its_worker_died_writes_nothing_twice() {
    let f = Fx::new(json!({})).await;
    f.contacts_template().await;
    f.calls_template().await;
    f.upload("contacts/contacts_1.csv", CONTACTS.as_bytes())
        .await;
    f.work().await;
    f.upload(
        "calls/calls_1.csv",
        b"Student ID,Direction,Start\nS1,in,2026-09-01 14:30\nS2,out,2026-09-01 14:31\n",
    )
    .await;
    f.work().await;
    assert_eq!(f.calls().await.len(), 2);
    let file = f
        .store
        .sftp_visible_file(f.account, "/calls/calls_1.csv")
        .await
        .unwrap()
        .unwrap();

    // The worker died after writing the calls but before recording the file as ingested: the
    // run is claimed again (as a stale run is) and runs once more.
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&f.store.url)
        .await
        .unwrap();
    sqlx::query("UPDATE sftp_files SET status = 'complete', ingested_at = NULL, report = NULL WHERE id = $1")
        .bind(file.id)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET status = 'queued', lease_owner = NULL WHERE id = $1")
        .bind(file.run_id.unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    let runs = f.work().await;
    let run = runs.iter().find(|r| Some(r.id) == file.run_id).unwrap();
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_eq!(run.attempt, 2);
    assert_eq!(f.calls().await.len(), 2, "no call is written twice");
    assert_eq!(f.contacts().await.len(), 2);

    // A run that finds its file ingested already returns the stored report.
    sqlx::query("UPDATE runs SET status = 'queued', lease_owner = NULL WHERE id = $1")
        .bind(file.run_id.unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    let runs = f.work().await;
    let again = runs.iter().find(|r| Some(r.id) == file.run_id).unwrap();
    assert_eq!(again.status, RunStatus::Success);
    assert_eq!(again.detail["created"], 2);
    assert_eq!(f.calls().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_unreviewed_calls_their_recordings_and_old_files() {
    let f = Fx::new(json!({"retention_days": 30})).await;
    f.contacts_template().await;
    f.calls_template().await;
    f.upload("contacts/contacts_1.csv", CONTACTS.as_bytes())
        .await;
    f.upload("calls/r1.wav", b"RIFF kept").await;
    f.upload("calls/r2.wav", b"RIFF deleted").await;
    f.work().await;
    f.upload(
        "calls/calls_1.csv",
        b"Student ID,Direction,Start,Recording\nS1,in,2026-09-01 14:30,r1.wav\nS2,out,2026-09-01 14:31,r2.wav\nS2,out,2026-09-01 14:32,\n",
    )
    .await;
    f.work().await;
    let msgs = f.calls().await;
    assert_eq!(msgs.len(), 3);
    let ids: Vec<i64> = msgs.iter().map(|m| m.id).collect();
    let infos = f.store.call_infos(f.inst, &ids).await.unwrap();
    let rec2 = f
        .store
        .recording(f.inst, infos[&ids[1]].recording_id.unwrap())
        .await
        .unwrap();
    // Mark reviewed keeps a call.
    f.store
        .set_message_reviewed(f.inst, ids[0], true)
        .await
        .unwrap();

    // A run now deletes nothing: everything is younger than 30 days.
    let manual = NewRun {
        institution_id: f.inst,
        integration_id: f.integration,
        kind: "bulk_upload".into(),
        trigger: Trigger::Manual,
        scheduled_for: None,
    };
    f.store.enqueue_run(&manual).await.unwrap().unwrap();
    let runs = f.work().await;
    assert_eq!(runs[0].trigger, Trigger::Manual);
    assert_eq!(runs[0].detail["retention"]["calls"], 0);
    assert_eq!(f.calls().await.len(), 3);

    // 31 days later.
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&f.store.url)
        .await
        .unwrap();
    let month = 31i64 * 24 * 3600 * 1_000_000;
    sqlx::query("UPDATE calls SET imported_at = imported_at - $1")
        .bind(month)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sftp_files SET ingested_at = ingested_at - $1 WHERE ingested_at IS NOT NULL",
    )
    .bind(month)
    .execute(&mut conn)
    .await
    .unwrap();
    f.store.enqueue_run(&manual).await.unwrap().unwrap();
    let runs = f.work().await;
    let r = &runs[0];
    assert_eq!(r.status, RunStatus::Success, "{:?}", r.error);
    assert_eq!(r.detail["retention"]["calls"], 2, "{}", r.detail);
    assert_eq!(r.detail["retention"]["recordings"], 1);
    let left = f.calls().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, ids[0], "the reviewed call is kept");
    assert!(f.store.recording(f.inst, rec2.id).await.is_err());
    assert!(
        f.vault.read_all(&rec2.object_key).await.is_err(),
        "the recording's content is gone"
    );
    // The raw uploaded files are purged (the kept call's recording stays).
    let csv = f.store.sftp_files(f.inst, 100).await.unwrap();
    let calls_file = csv.iter().find(|x| x.path == "/calls/calls_1.csv").unwrap();
    assert!(calls_file.purged_at.is_some());
    assert!(f.vault.read_all(&calls_file.object_key).await.is_err());
    let kept = f
        .store
        .recording(f.inst, infos[&ids[0]].recording_id.unwrap())
        .await
        .unwrap();
    assert_eq!(
        f.vault.read_all(&kept.object_key).await.unwrap(),
        b"RIFF kept"
    );
    assert!(r.detail["retention"]["files"].as_u64().unwrap() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_exactly_the_template_columns_is_read_as_it_is() {
    let f = Fx::new(json!({})).await;
    f.contacts_template().await;
    f.upload(
        "contacts/contacts_exact.csv",
        "Student ID,First,Last,Mobile,Email\nS1,\"Ana, Jr\",Diaz,6175550101,ana@state.edu\nS2,Bo,Li,6175550102,not-an-email\n"
            .as_bytes(),
    )
    .await;
    let runs = f.work().await;
    assert_eq!(runs[0].status, RunStatus::Success, "{:?}", runs[0].error);
    assert_eq!(runs[0].detail["created"], 1);
    assert_eq!(runs[0].detail["skipped_rows"][0]["row"], 3);
    assert_eq!(runs[0].detail["skipped_rows"][0]["code"], "invalid_email");
    let contacts = f.contacts().await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].data.first_name.as_deref(), Some("Ana, Jr"));
    assert_eq!(
        contacts[0].data.email.as_ref().unwrap().to_string(),
        "ana@state.edu"
    );
}
