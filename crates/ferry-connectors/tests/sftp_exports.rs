//! The three SFTP exports end to end: a fresh store (SQLite, or PostgreSQL with
//! `FERRY_TEST_DATABASE_URL`), the real worker running the real connectors, and a real SFTP
//! server on loopback — Ferry's russh test server in every test, OpenSSH's sshd in those named
//! `sshd_*` (they print SKIPPED without sshd, and fail under `CI=true`).
//!
//! Each test checks what a person would: the file on the server, byte for byte where the format
//! matters; the Recent Runs row; the integration's watermark; the Sync Log.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_connectors::sftp_export::{ExportKind, MISSING_CRM_ID, SftpExport};
use ferry_connectors::{Connector, Registry};
use ferry_core::contact::{ContactWrite, CustomFieldDef, FieldKind, Raw};
use ferry_core::run::{RunStatus, Trigger};
use ferry_sftp::ClientOptions;
use ferry_sftp::server::{TestServer, TestServerBuilder};
use ferry_sftp::testing::{SSHD_PASSWORD, Sshd, closed_port, keys, listing, wait_until};
use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::{
    Integration, IntegrationUpdate, NewIntegration, NewMessage, NewRun, Run, SyncLogEntry,
    SyncLogQuery, WriteKind,
};
use ferry_worker::{Worker, WorkerConfig};
use jiff::Timestamp;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const PUBLIC_URL: &str = "https://ferry.example.edu";
/// Central time: 04:30 UTC on March 10 is still March 9 there.
const TIME_ZONE: &str = "America/Chicago";
const USER: &str = "ferry";
const PASSWORD: &str = "ship-it-42";
const NOTE_BODY: &str = "{message} | {date} | {channel} | {type} | {direction} | {first_name} {last_name} ({preferred_name}) | {count} | {url}";
const CONVERSATIONS_HEADER: &str = "message_id,platform_id,crm_id,first_name,last_name,phone,channel,type,direction,body,sent_at,url\r\n";

// ---------------------------------------------------------------------------------------------
// Ferry: a store, an institution and a worker with the three export connectors

struct Hub {
    store: TestStore,
    inst: i64,
    worker: Worker,
}

impl Hub {
    async fn new() -> Hub {
        Hub::with_retries(0).await
    }

    /// A worker that tries a run `retries` more times at once after a retryable failure.
    async fn with_retries(retries: u32) -> Hub {
        let store = fresh_store().await;
        let inst = store
            .create_institution("state-u", "State University", Some(TIME_ZONE))
            .await
            .unwrap()
            .id;
        let mut options = ClientOptions::default();
        options.connect_timeout = Duration::from_secs(10);
        options.request_timeout = Duration::from_secs(10);
        let mut registry = Registry::empty();
        for kind in ExportKind::ALL {
            registry
                .register(Arc::new(
                    SftpExport::new(kind, PUBLIC_URL).with_client_options(options.clone()),
                ))
                .unwrap();
        }
        let config = WorkerConfig {
            worker_id: "export-tests".into(),
            retries,
            retry_backoff: Duration::from_millis(1),
            poll_interval: Duration::from_millis(10),
            ..WorkerConfig::default()
        };
        let worker = Worker::new(store.store.clone(), registry, config);
        Hub {
            store,
            inst,
            worker,
        }
    }

    async fn contact(&self, fields: &[(&str, &str)]) -> i64 {
        let schema = self.store.field_schema(self.inst).await.unwrap();
        let write =
            ContactWrite::parse(&schema, fields.iter().map(|(k, v)| (*k, Raw::Str(v)))).unwrap();
        self.store
            .apply_contact_writes(self.inst, &[write], WriteKind::Create)
            .await
            .unwrap()
            .remove(0)
            .unwrap()
            .contact_id
    }

    /// Inserts messages; returns their ids in order.
    async fn messages(&self, messages: &[NewMessage]) -> Vec<i64> {
        self.store
            .insert_messages(self.inst, messages)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect()
    }

    /// Creates an enabled integration; the config must pass the connector's validation, as
    /// it would through the API.
    async fn integration(&self, kind: ExportKind, config: Value, secrets: Value) -> i64 {
        SftpExport::new(kind, PUBLIC_URL)
            .validate_config(&config)
            .unwrap_or_else(|e| panic!("invalid test config: {e}"));
        self.store
            .create_integration(
                self.inst,
                NewIntegration {
                    kind: kind.kind().into(),
                    name: format!("{} export", kind.label()),
                    description: String::new(),
                    enabled: true,
                    config,
                    secrets: secrets.as_object().cloned(),
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn saved(&self, id: i64) -> Integration {
        self.store.integration(self.inst, id).await.unwrap()
    }

    async fn watermark(&self, id: i64) -> Option<i64> {
        self.saved(id)
            .await
            .state
            .get("watermark")
            .and_then(Value::as_i64)
    }

    async fn host_key(&self, id: i64) -> Option<String> {
        self.saved(id)
            .await
            .config
            .pointer("/sftp/host_key")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    async fn edit(&self, id: i64, change: impl FnOnce(&mut Value)) {
        let mut config = self.saved(id).await.config;
        change(&mut config);
        self.store
            .update_integration(
                self.inst,
                id,
                IntegrationUpdate {
                    config: Some(config),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    async fn set_secrets(&self, id: i64, secrets: Value) {
        self.store
            .update_integration(
                self.inst,
                id,
                IntegrationUpdate {
                    secrets: secrets.as_object().cloned(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    async fn enqueue(&self, id: i64) -> i64 {
        let kind = self.saved(id).await.kind;
        self.store
            .enqueue_run(&NewRun {
                institution_id: self.inst,
                integration_id: id,
                kind,
                trigger: Trigger::Manual,
                scheduled_for: None,
            })
            .await
            .unwrap()
            .expect("a run was queued")
            .id
    }

    /// Queues a manual run and has the worker execute it; returns the Recent Runs row.
    async fn run(&self, id: i64) -> Run {
        let run_id = self.enqueue(id).await;
        assert_eq!(self.worker.run_once().await.unwrap(), Some(run_id));
        self.store.run(self.inst, run_id).await.unwrap()
    }

    async fn sync_log(&self, id: i64) -> Vec<SyncLogEntry> {
        let mut rows = self
            .store
            .list_sync_log(
                self.inst,
                &SyncLogQuery {
                    integration_id: Some(id),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        rows.reverse(); // oldest first
        rows
    }
}

fn msg(contact_id: i64, what: &str, body: &str, sent_at: &str) -> NewMessage {
    let mut parts = what.split('/');
    let mut next = || parts.next().expect("channel/type/direction");
    NewMessage {
        contact_id,
        channel: next().parse().unwrap(),
        message_type: next().parse().unwrap(),
        direction: next().parse().unwrap(),
        body: body.to_string(),
        sent_at: sent_at.parse().unwrap(),
    }
}

/// The link to a message, written out here rather than taken from the connector.
fn url(contact: i64, message: i64) -> String {
    format!("{PUBLIC_URL}/contacts/{contact}?message={message}#m{message}")
}

/// The known data: four contacts (one without a CRM ID, one test user) and six messages.
struct Fixture {
    ana: i64,
    ben: i64,
    cara: i64,
    dev: i64,
    /// m[0] is message 1 … m[5] message 6.
    m: Vec<i64>,
}

async fn fixture(hub: &Hub) -> Fixture {
    for (name, kind) in [
        ("gpa", FieldKind::Number),
        ("housing", FieldKind::Text),
        ("note", FieldKind::Text),
    ] {
        hub.store
            .create_custom_field(
                hub.inst,
                &CustomFieldDef {
                    name: name.into(),
                    label: name.into(),
                    kind,
                },
            )
            .await
            .unwrap();
    }
    let ana = hub
        .contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("preferred_name", "Annie"),
            ("phone", "(617) 555-0101"),
            ("crm_id", "S-001"),
            ("gpa", "3.5"),
            ("housing", "On campus"),
            ("note", "=HYPERLINK(\"http://x\")"),
        ])
        .await;
    let ben = hub
        .contact(&[
            ("first_name", "Ben"),
            ("last_name", "Okafor"),
            ("phone", "(617) 555-0102"),
            ("crm_id", "S002"),
            ("housing", "Off campus"),
        ])
        .await;
    let cara = hub
        .contact(&[
            ("first_name", "Cara"),
            ("last_name", "Nguyen"),
            ("phone", "(617) 555-0103"),
            ("housing", "On campus"),
        ])
        .await;
    let dev = hub
        .contact(&[
            ("first_name", "Dev"),
            ("last_name", "Tester"),
            ("phone", "(617) 555-0104"),
            ("crm_id", "T-1"),
            ("housing", "On campus"),
            ("test_user", "true"),
        ])
        .await;
    let m = hub
        .messages(&[
            msg(
                ana,
                "sms/ai_agent/incoming",
                "Hi, I need help with \"FAFSA\"",
                "2026-03-10T04:30:00Z",
            ),
            msg(
                ben,
                "web_chat/live_chat/outgoing",
                "=SUM(A1)\nline two",
                "2026-03-10T15:00:00Z",
            ),
            msg(
                cara,
                "sms/campaign/outgoing",
                "Reminder: deadline Friday",
                "2026-03-10T16:00:00Z",
            ),
            msg(
                dev,
                "sms/ai_agent/incoming",
                "test message",
                "2026-03-10T17:00:00Z",
            ),
            msg(
                ana,
                "email/ai_agent/outgoing",
                "Sure.",
                "2026-03-11T05:59:00Z",
            ),
            msg(
                cara,
                "whatsapp/live_chat/incoming",
                "ok",
                "2026-03-11T06:00:00Z",
            ),
        ])
        .await;
    Fixture {
        ana,
        ben,
        cara,
        dev,
        m,
    }
}

/// The EAB Notes file of [`fixture`] with [`eab_config`], written out by hand.
fn expected_eab(f: &Fixture, dedupe: bool) -> String {
    let (u1, u2, u5) = (url(f.ana, f.m[0]), url(f.ben, f.m[1]), url(f.ana, f.m[4]));
    let first = "GradesFirst Import Version=3,Institution ID=1234\r\n";
    // 04:30 UTC on March 10 is 11:30 pm on March 9 in Chicago.
    let ana1 = format!(
        "note,add,S-001,group_id,Y,N,Y,03/09/2026,\"Ferry, Bot\",\"Hi, I need help with \"\"FAFSA\"\" | 03/09/2026 | SMS | AI agent | Incoming | Ana Diaz (Annie) | 1 | {u1}\",{u1},Texting\r\n"
    );
    // Not neutralised (EAB's default), quoted for the line break; no preferred name: first name.
    let ben2 = format!(
        "note,add,S002,group_id,Y,N,Y,03/10/2026,\"Ferry, Bot\",\"=SUM(A1)\nline two | 03/10/2026 | Web chat | Live chat | Outgoing | Ben Okafor (Ben) | 1 | {u2}\",{u2},Texting\r\n"
    );
    let ana5 = |count: u32| {
        format!(
            "note,add,S-001,group_id,Y,N,Y,03/11/2026,\"Ferry, Bot\",Sure. | 03/11/2026 | Email | AI agent | Outgoing | Ana Diaz (Annie) | {count} | {u5},{u5},Texting\r\n"
        )
    };
    if dedupe {
        format!("{first}{ben2}{}", ana5(2))
    } else {
        format!("{first}{ana1}{ben2}{}", ana5(1))
    }
}

// ---------------------------------------------------------------------------------------------
// Configs

fn all_filters() -> Value {
    json!({
        "channels": ["sms", "web_chat", "email", "whatsapp"],
        "types": ["ai_agent", "live_chat", "campaign"],
        "directions": ["incoming", "outgoing"],
    })
}

fn eab_config(sftp: Value, dedupe: bool) -> Value {
    json!({
        "sftp": sftp,
        "schedule": {"blocks": [0]},
        "filters": all_filters(),
        "eab": {
            "import_version": "3",
            "institution_id": "1234",
            "dedupe_contacts": dedupe,
            "is_private": true,
            "student_viewable": false,
            "show_on_student_report": true,
            "created_by": "Ferry, Bot",
            "note_reasons": "Texting",
            "note_body": NOTE_BODY,
        },
    })
}

fn conversations_config(sftp: Value, filters: Value) -> Value {
    json!({"sftp": sftp, "filters": filters})
}

fn contacts_config(sftp: Value) -> Value {
    json!({
        "sftp": sftp,
        "contacts": {
            "fields": ["id", "first_name", "last_name", "phone", "crm_id", "gpa", "housing", "note", "test_user"],
            "filters": [{"field": "housing", "values": ["On campus"]}],
        },
    })
}

fn password() -> Value {
    json!({ "password": PASSWORD })
}

// ---------------------------------------------------------------------------------------------
// SFTP servers

/// Where an export uploads: the `sftp` config section, and the local folder the files land in.
struct Remote {
    port: u16,
    user: String,
    directory: String,
    dir: PathBuf,
}

impl Remote {
    fn sftp(&self) -> Value {
        json!({
            "host": "127.0.0.1",
            "port": self.port,
            "username": self.user,
            "directory": self.directory,
        })
    }

    fn sftp_with_prefix(&self, prefix: &str) -> Value {
        let mut s = self.sftp();
        s["file_prefix"] = json!(prefix);
        s
    }

    fn files(&self) -> Vec<String> {
        listing(&self.dir)
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap()
    }
}

/// Ferry's own SFTP server, serving a temporary folder with an `outbox` directory; user
/// [`USER`] logs in with [`PASSWORD`] (and whatever `configure` adds).
/// The usual start of a test: a hub holding the fixture, and an SFTP server to export to.
async fn setup() -> (Hub, Fixture, TestSftp) {
    let hub = Hub::new().await;
    let f = fixture(&hub).await;
    (hub, f, test_sftp(|b| b).await)
}

struct TestSftp {
    server: TestServer,
    remote: Remote,
    _root: TempDir,
}

async fn test_sftp(configure: impl FnOnce(TestServerBuilder) -> TestServerBuilder) -> TestSftp {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("outbox");
    fs::create_dir(&dir).unwrap();
    let server = configure(TestServer::builder(root.path()).password(USER, PASSWORD))
        .start()
        .await
        .unwrap();
    TestSftp {
        remote: Remote {
            port: server.port(),
            user: USER.into(),
            directory: "outbox".into(),
            dir,
        },
        server,
        _root: root,
    }
}

fn sshd_remote(sshd: &Sshd) -> Remote {
    Remote {
        port: sshd.port,
        user: sshd.user.clone(),
        directory: sshd.upload_path(),
        dir: sshd.upload_dir.clone(),
    }
}

/// What [`relay`] does to a connection once the client has sent its `limit` of bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut {
    /// Holds everything more the client sends, as over a link that died: the upload stalls.
    Stall,
    /// Closes the connection, as a dropped link: the upload fails at once.
    Close,
}

/// A loopback relay to `upstream`. Its first `cut_connections` connections pass everything
/// from the server but only the first `limit` bytes from the client, then are cut as `cut`
/// says; later connections pass everything. Dropping it closes every connection.
struct Relay {
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(upstream: u16, limit: usize, cut: Cut, cut_connections: usize) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut pipes = JoinSet::new();
        let mut accepted = 0;
        while let Ok((client, _)) = listener.accept().await {
            accepted += 1;
            let limit = if accepted <= cut_connections {
                limit
            } else {
                usize::MAX
            };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            let (close, closed) = tokio::sync::oneshot::channel::<()>();
            pipes.spawn(async move {
                tokio::select! {
                    _ = tokio::io::copy(&mut from_server, &mut to_client) => {}
                    _ = closed => {}
                }
            });
            pipes.spawn(async move {
                let mut left = limit;
                let mut buf = vec![0u8; 16 * 1024];
                while left > 0 {
                    let want = left.min(buf.len());
                    match from_client.read(&mut buf[..want]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if to_server.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                            left -= n;
                        }
                    }
                }
                match cut {
                    Cut::Stall => std::future::pending::<()>().await,
                    Cut::Close => drop(close),
                }
            });
        }
    });
    Relay { port, task }
}

// ---------------------------------------------------------------------------------------------
// Checks

fn ms(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap()
}

/// The file name is `prefix`, a UTC timestamp (`YYYYMMDDTHHMMSSmmmZ`) taken during the run,
/// and `.csv`.
fn check_file_name(name: &str, prefix: &str, before: Timestamp, after: Timestamp) {
    let stamp = name
        .strip_prefix(prefix)
        .and_then(|s| s.strip_suffix(".csv"))
        .unwrap_or_else(|| panic!("{name:?} is not {prefix}<timestamp>.csv"));
    let shape_ok = stamp.len() == 19
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            18 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(
        shape_ok,
        "{name:?}: the timestamp is not YYYYMMDDTHHMMSSmmmZ"
    );
    let s = |a: usize, b: usize| &stamp[a..b];
    let at: Timestamp = format!(
        "{}-{}-{}T{}:{}:{}.{}Z",
        s(0, 4),
        s(4, 6),
        s(6, 8),
        s(9, 11),
        s(11, 13),
        s(13, 15),
        s(15, 18)
    )
    .parse()
    .unwrap();
    assert!(
        ms(before) <= at && at <= after,
        "{name}: {at} is not between {before} and {after}"
    );
}

/// A Success row for `rows` rows whose detail names the one new file on `remote`; returns the
/// file's name.
fn check_success(run: &Run, rows: i64, remote: &Remote, before: &[String]) -> String {
    assert_eq!(
        (run.status, run.rows, run.error.as_deref()),
        (RunStatus::Success, rows, None),
        "{run:?}"
    );
    let file = run.detail["file"]
        .as_str()
        .expect("detail.file")
        .to_string();
    let mut expected = before.to_vec();
    expected.push(file.clone());
    expected.sort();
    assert_eq!(remote.files(), expected, "one new file and no .part");
    assert!(
        run.detail["remote_path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("/{file}"))),
        "{}",
        run.detail
    );
    assert_eq!(
        run.detail["bytes"].as_u64(),
        Some(fs::metadata(remote.dir.join(&file)).unwrap().len())
    );
    file
}

/// A Fail row whose reason contains each of `phrases`; nothing was uploaded.
fn check_failed(run: &Run, phrases: &[&str]) {
    assert_eq!((run.status, run.rows), (RunStatus::Failed, 0), "{run:?}");
    let reason = run.error.as_deref().expect("a Fail has a reason");
    for phrase in phrases {
        assert!(reason.contains(phrase), "{phrase:?} not in {reason:?}");
    }
    assert!(run.detail.get("file").is_none(), "{}", run.detail);
}

/// The message ids a file links to, in order, each once.
fn message_ids(file: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    for part in file.split("?message=").skip(1) {
        let id: i64 = part[..part.find('#').unwrap()].parse().unwrap();
        if ids.last() != Some(&id) {
            ids.push(id);
        }
    }
    ids
}

// ---------------------------------------------------------------------------------------------
// EAB Notes

#[tokio::test]
async fn eab_notes_file_is_byte_exact_in_the_institution_time_zone() {
    let (hub, f, sftp) = setup().await;
    let id = hub
        .integration(
            ExportKind::EabNotes,
            eab_config(sftp.remote.sftp_with_prefix("acme_notes_"), false),
            password(),
        )
        .await;

    let before = Timestamp::now();
    let run = hub.run(id).await;
    let after = Timestamp::now();
    let file = check_success(&run, 3, &sftp.remote, &[]);
    check_file_name(&file, "acme_notes_", before, after);
    assert_eq!(sftp.remote.read(&file), expected_eab(&f, false));

    // The window covered every message, so all six count as sent.
    assert_eq!(hub.watermark(id).await, Some(6));
    // The first connection pinned the server's key.
    assert_eq!(
        hub.host_key(id).await,
        Some(sftp.server.host_key_fingerprint())
    );
    // Cara has no CRM ID: left out, with one Sync Log row although she had two messages.
    let log = hub.sync_log(id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].code.as_str(), log[0].contact_id, log[0].run_id),
        (MISSING_CRM_ID, Some(f.cara), Some(run.id))
    );
    // The test user is never exported (nor logged).
    assert!(!sftp.remote.read(&file).contains("T-1"));
    assert!(log.iter().all(|r| r.contact_id != Some(f.dev)));
}

#[tokio::test]
async fn eab_dedupe_sends_each_contact_once_with_its_latest_message_and_count() {
    let (hub, f, sftp) = setup().await;
    let id = hub
        .integration(
            ExportKind::EabNotes,
            eab_config(sftp.remote.sftp(), true),
            password(),
        )
        .await;
    let before = Timestamp::now();
    let run = hub.run(id).await;
    let after = Timestamp::now();
    // Ben (message 2), then Ana with her latest (message 5) and {count} = 2.
    let file = check_success(&run, 2, &sftp.remote, &[]);
    check_file_name(&file, "eab_notes_", before, after);
    assert_eq!(sftp.remote.read(&file), expected_eab(&f, true));
    assert_eq!(hub.sync_log(id).await.len(), 1, "Cara, once");
}

#[tokio::test]
async fn missing_crm_id_is_logged_once_per_contact_per_run() {
    let (hub, f, sftp) = setup().await;
    let id = hub
        .integration(
            ExportKind::EabNotes,
            eab_config(sftp.remote.sftp(), false),
            password(),
        )
        .await;
    let first = hub.run(id).await;
    let files = sftp.remote.files();

    // Only Cara wrote since: no row to send, so the run is Skipped, but she is logged again.
    hub.messages(&[
        msg(f.cara, "sms/ai_agent/incoming", "a", "2026-03-12T10:00:00Z"),
        msg(f.cara, "sms/ai_agent/incoming", "b", "2026-03-12T10:01:00Z"),
    ])
    .await;
    let second = hub.run(id).await;
    assert_eq!((second.status, second.rows), (RunStatus::Skipped, 0));
    assert_eq!(sftp.remote.files(), files, "nothing uploaded");
    assert_eq!(
        hub.watermark(id).await,
        Some(8),
        "the window was considered"
    );

    let third_msgs = hub
        .messages(&[
            msg(f.cara, "sms/ai_agent/incoming", "c", "2026-03-12T11:00:00Z"),
            msg(f.ben, "sms/ai_agent/incoming", "d", "2026-03-12T11:01:00Z"),
        ])
        .await;
    let third = hub.run(id).await;
    let file = check_success(&third, 1, &sftp.remote, &files);
    assert_eq!(message_ids(&sftp.remote.read(&file)), [third_msgs[1]]);

    let log = hub.sync_log(id).await;
    let runs: Vec<(Option<i64>, Option<i64>, &str)> = log
        .iter()
        .map(|r| (r.run_id, r.contact_id, r.code.as_str()))
        .collect();
    assert_eq!(
        runs,
        [
            (Some(first.id), Some(f.cara), MISSING_CRM_ID),
            (Some(second.id), Some(f.cara), MISSING_CRM_ID),
            (Some(third.id), Some(f.cara), MISSING_CRM_ID),
        ]
    );
}

#[tokio::test]
async fn a_run_retried_by_the_worker_logs_each_contact_once() {
    // A worker that tries again at once after a retryable failure.
    let hub = Hub::with_retries(1).await;
    let f = fixture(&hub).await;
    let sftp = test_sftp(|b| b).await;
    // The first attempt's connection drops mid-upload; the retry's goes through.
    let relay = relay(sftp.remote.port, 64 * 1024, Cut::Close, 1).await;
    let mut via_relay = sftp.remote.sftp();
    via_relay["port"] = json!(relay.port);
    let big = "x".repeat(15_000);
    let news: Vec<NewMessage> = (0..30)
        .map(|i| {
            msg(
                f.ben,
                "sms/ai_agent/incoming",
                &format!("{i} {big}"),
                "2026-03-12T10:00:00Z",
            )
        })
        .collect();
    hub.messages(&news).await;
    let id = hub
        .integration(
            ExportKind::EabNotes,
            eab_config(via_relay, false),
            password(),
        )
        .await;
    let run = hub.run(id).await;
    assert_eq!((run.status, run.rows), (RunStatus::Success, 33), "{run:?}");
    // The first attempt's upload was cut off: its .part file is left beside the real file.
    let files = sftp.remote.files();
    let file = run.detail["file"].as_str().unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&file.to_string()), "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.ends_with(".csv.part") && !f.starts_with(file)),
        "{files:?}"
    );
    let log = hub.sync_log(id).await;
    assert_eq!(
        log.iter()
            .map(|r| (r.run_id, r.contact_id, r.code.as_str()))
            .collect::<Vec<_>>(),
        [(Some(run.id), Some(f.cara), MISSING_CRM_ID)],
        "one row for Cara although two attempts read her messages"
    );
    drop(relay);
}

// ---------------------------------------------------------------------------------------------
// Conversations

#[tokio::test]
async fn conversations_file_has_the_header_columns_and_neutralised_cells() {
    let (hub, f, sftp) = setup().await;
    let id = hub
        .integration(
            ExportKind::Conversations,
            conversations_config(sftp.remote.sftp(), all_filters()),
            password(),
        )
        .await;
    let before = Timestamp::now();
    let run = hub.run(id).await;
    let after = Timestamp::now();
    let file = check_success(&run, 5, &sftp.remote, &[]);
    check_file_name(&file, "conversations_", before, after);
    let (m, a, b, c) = (&f.m, f.ana, f.ben, f.cara);
    let row = |i: usize, contact: i64, rest: &str| {
        format!("{},{contact},{rest},{}\r\n", m[i], url(contact, m[i]))
    };
    // Neutralising applies to every cell that starts with = + - or @, E.164 phones included.
    let expected = [
        CONVERSATIONS_HEADER.to_string(),
        row(0, a, "S-001,Ana,Diaz,+16175550101,sms,ai_agent,incoming,\"Hi, I need help with \"\"FAFSA\"\"\",2026-03-10T04:30:00Z"),
        // A formula-like body gets an apostrophe (neutralising is on by default here).
        row(1, b, "S002,Ben,Okafor,+16175550102,web_chat,live_chat,outgoing,\"'=SUM(A1)\nline two\",2026-03-10T15:00:00Z"),
        // No CRM ID is no problem for Conversations; the test user's message 4 is left out.
        row(2, c, ",Cara,Nguyen,+16175550103,sms,campaign,outgoing,Reminder: deadline Friday,2026-03-10T16:00:00Z"),
        row(4, a, "S-001,Ana,Diaz,+16175550101,email,ai_agent,outgoing,Sure.,2026-03-11T05:59:00Z"),
        row(5, c, ",Cara,Nguyen,+16175550103,whatsapp,live_chat,incoming,ok,2026-03-11T06:00:00Z"),
    ]
    .concat();
    assert_eq!(sftp.remote.read(&file), expected);
    assert_eq!(hub.watermark(id).await, Some(6));
    assert!(hub.sync_log(id).await.is_empty());

    // Switched off, the cell goes out as it is.
    let mut config = conversations_config(sftp.remote.sftp(), all_filters());
    config["neutralize_formulas"] = json!(false);
    let raw = hub
        .integration(ExportKind::Conversations, config, password())
        .await;
    let files = sftp.remote.files();
    let run = hub.run(raw).await;
    let file = check_success(&run, 5, &sftp.remote, &files);
    let text = sftp.remote.read(&file);
    assert!(text.contains(",\"=SUM(A1)\nline two\","), "{text}");
    assert!(!text.contains("'="), "{text}");
}

#[tokio::test]
async fn message_filters_choose_channels_types_and_directions() {
    let (hub, f, sftp) = setup().await;
    let m = &f.m;
    let cases = [
        (
            json!({"channels": ["sms"], "types": ["ai_agent", "campaign"], "directions": ["incoming", "outgoing"]}),
            vec![m[0], m[2]],
        ),
        (
            json!({"channels": ["sms", "web_chat", "email", "whatsapp"], "types": ["live_chat"], "directions": ["incoming"]}),
            vec![m[5]],
        ),
        (
            json!({"channels": ["sms", "web_chat", "email", "whatsapp"], "types": ["ai_agent", "live_chat", "campaign"], "directions": ["outgoing"]}),
            vec![m[1], m[2], m[4]],
        ),
    ];
    for (filters, want) in cases {
        let id = hub
            .integration(
                ExportKind::Conversations,
                conversations_config(sftp.remote.sftp(), filters.clone()),
                password(),
            )
            .await;
        let files = sftp.remote.files();
        let run = hub.run(id).await;
        let file = check_success(&run, want.len() as i64, &sftp.remote, &files);
        assert_eq!(message_ids(&sftp.remote.read(&file)), want, "{filters}");
    }

    // EAB Notes filter the same way: only the email.
    let mut config = eab_config(sftp.remote.sftp(), false);
    config["filters"]["channels"] = json!(["email"]);
    let id = hub
        .integration(ExportKind::EabNotes, config, password())
        .await;
    let files = sftp.remote.files();
    let run = hub.run(id).await;
    let file = check_success(&run, 1, &sftp.remote, &files);
    assert_eq!(message_ids(&sftp.remote.read(&file)), [m[4]]);
}

// ---------------------------------------------------------------------------------------------
// Contacts

#[tokio::test]
async fn contacts_file_has_the_chosen_fields_passes_the_filters_and_no_test_users() {
    let (hub, f, sftp) = setup().await;
    let id = hub
        .integration(
            ExportKind::Contacts,
            contacts_config(sftp.remote.sftp()),
            password(),
        )
        .await;
    let before = Timestamp::now();
    let run = hub.run(id).await;
    let after = Timestamp::now();
    // Ben lives off campus; Dev is a test user. Neutralising is on: the formula-like note and
    // the phones (they start with +) get an apostrophe.
    let file = check_success(&run, 2, &sftp.remote, &[]);
    check_file_name(&file, "contacts_", before, after);
    let expected = format!(
        "id,first_name,last_name,phone,crm_id,gpa,housing,note,test_user\r\n\
         {},Ana,Diaz,+16175550101,S-001,3.5,On campus,\"'=HYPERLINK(\"\"http://x\"\")\",false\r\n\
         {},Cara,Nguyen,+16175550103,,,On campus,,false\r\n",
        f.ana, f.cara
    );
    assert_eq!(sftp.remote.read(&file), expected);
    // Contacts exports are full exports: the same rows again next time.
    let files = sftp.remote.files();
    let run = hub.run(id).await;
    let again = check_success(&run, 2, &sftp.remote, &files);
    assert_eq!(sftp.remote.read(&again), expected);
}

// ---------------------------------------------------------------------------------------------
// Skipped, watermark, failures

#[tokio::test]
async fn a_run_with_nothing_to_send_is_skipped_without_connecting() {
    let hub = Hub::new().await;
    // Nothing listens here: a run that tried to connect would fail.
    let nowhere = json!({"host": "127.0.0.1", "port": closed_port(), "username": USER, "directory": "outbox"});

    let eab = hub
        .integration(
            ExportKind::EabNotes,
            eab_config(nowhere.clone(), false),
            password(),
        )
        .await;
    let run = hub.run(eab).await;
    assert_eq!(
        (run.status, run.rows, run.error.as_deref()),
        (RunStatus::Skipped, 0, None),
        "{run:?}"
    );
    assert!(run.detail.get("file").is_none(), "{}", run.detail);
    assert_eq!(hub.host_key(eab).await, None, "it never connected");

    // Messages that no filter lets through: still nothing to send.
    let ana = hub
        .contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "(617) 555-0101"),
            ("crm_id", "S-001"),
        ])
        .await;
    hub.messages(&[msg(
        ana,
        "sms/ai_agent/incoming",
        "hi",
        "2026-03-10T04:30:00Z",
    )])
    .await;
    let filters = json!({"channels": ["email"], "types": ["ai_agent"], "directions": ["incoming"]});
    let conversations = hub
        .integration(
            ExportKind::Conversations,
            conversations_config(nowhere.clone(), filters),
            password(),
        )
        .await;
    let run = hub.run(conversations).await;
    assert_eq!((run.status, run.rows), (RunStatus::Skipped, 0), "{run:?}");
    assert_eq!(hub.watermark(conversations).await, Some(1));

    // A Contacts export whose filters match no one.
    let config = json!({"sftp": nowhere, "contacts": {"fields": ["id"], "filters": [{"field": "crm_id", "values": ["nobody"]}]}});
    let contacts = hub
        .integration(ExportKind::Contacts, config, password())
        .await;
    let run = hub.run(contacts).await;
    assert_eq!((run.status, run.rows), (RunStatus::Skipped, 0), "{run:?}");
}

#[tokio::test]
async fn the_watermark_sends_only_new_messages_and_survives_failed_runs() {
    let (hub, f, sftp) = setup().await;
    let id = hub
        .integration(
            ExportKind::Conversations,
            conversations_config(sftp.remote.sftp(), all_filters()),
            password(),
        )
        .await;
    let run = hub.run(id).await;
    check_success(&run, 5, &sftp.remote, &[]);
    assert_eq!(hub.watermark(id).await, Some(6));
    assert_eq!(
        run.detail["window"],
        json!({"after_sequence": 0, "up_to_sequence": 6})
    );

    let m7 = hub
        .messages(&[msg(
            f.ana,
            "sms/ai_agent/incoming",
            "seven",
            "2026-03-12T10:00:00Z",
        )])
        .await;
    let files = sftp.remote.files();
    let run = hub.run(id).await;
    let file = check_success(&run, 1, &sftp.remote, &files);
    assert_eq!(message_ids(&sftp.remote.read(&file)), m7);
    assert_eq!(hub.watermark(id).await, Some(7));

    let m89 = hub
        .messages(&[
            msg(
                f.ben,
                "sms/ai_agent/incoming",
                "eight",
                "2026-03-12T11:00:00Z",
            ),
            msg(
                f.cara,
                "sms/ai_agent/outgoing",
                "nine",
                "2026-03-12T11:01:00Z",
            ),
        ])
        .await;
    let files = sftp.remote.files();

    // A wrong password fails the run; the watermark stays.
    hub.set_secrets(id, json!({"password": "not-it"})).await;
    let run = hub.run(id).await;
    check_failed(&run, &["authentication failed", "(sftp_auth_failed)"]);
    assert_eq!(hub.watermark(id).await, Some(7));

    // So does a directory that is not there (the connection and login work).
    hub.set_secrets(id, password()).await;
    hub.edit(id, |c| c["sftp"]["directory"] = json!("gone"))
        .await;
    let run = hub.run(id).await;
    check_failed(&run, &["does not exist", "(sftp_directory_missing)"]);
    assert_eq!(hub.watermark(id).await, Some(7));
    assert_eq!(
        sftp.remote.files(),
        files,
        "failed runs leave nothing behind"
    );

    // Fixed: the next run sends what the failed ones did not.
    hub.edit(id, |c| c["sftp"]["directory"] = json!("outbox"))
        .await;
    let run = hub.run(id).await;
    let file = check_success(&run, 2, &sftp.remote, &files);
    assert_eq!(message_ids(&sftp.remote.read(&file)), m89);
    assert_eq!(hub.watermark(id).await, Some(9));

    // And then there is nothing new.
    let files = sftp.remote.files();
    let run = hub.run(id).await;
    assert_eq!((run.status, run.rows), (RunStatus::Skipped, 0));
    assert_eq!(sftp.remote.files(), files);
}

#[tokio::test]
async fn a_worker_stopped_mid_upload_leaves_a_part_file_and_the_run_resends_the_window() {
    let hub = Hub::new().await;
    let sftp = test_sftp(|b| b).await;
    let ana = hub
        .contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "(617) 555-0101"),
            ("crm_id", "S-001"),
        ])
        .await;
    // About 1.5 MB of CSV, far more than the relay lets through.
    let body = "x".repeat(15_000);
    let new: Vec<NewMessage> = (0..100)
        .map(|i| {
            msg(
                ana,
                "sms/ai_agent/incoming",
                &format!("{i} {body}"),
                "2026-03-10T12:00:00Z",
            )
        })
        .collect();
    let ids = hub.messages(&new).await;
    let relay = relay(sftp.remote.port, 128 * 1024, Cut::Stall, usize::MAX).await;
    let mut via_relay = sftp.remote.sftp();
    via_relay["port"] = json!(relay.port);
    let id = hub
        .integration(
            ExportKind::Conversations,
            conversations_config(via_relay, all_filters()),
            password(),
        )
        .await;
    let run_id = hub.enqueue(id).await;

    // A worker takes the run; once the upload has begun, the worker is stopped.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(hub.worker.clone().run(async move {
        let _ = stopped.await;
    }));
    let dir = sftp.remote.dir.clone();
    wait_until(Duration::from_secs(20), "the .part file", || {
        listing(&dir).iter().any(|n| n.ends_with(".part"))
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .expect("the worker stops")
        .unwrap();

    // Only the .part file is there; the run went back to the queue; nothing counts as sent.
    let left = sftp.remote.files();
    assert!(
        left.len() == 1 && left[0].starts_with("conversations_") && left[0].ends_with(".csv.part"),
        "{left:?}"
    );
    let run = hub.store.run(hub.inst, run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Queued, "{run:?}");
    assert_eq!(hub.watermark(id).await, None);

    // The next attempt (here straight to the server) sends the whole window under the same
    // name, replacing the .part file.
    drop(relay);
    hub.edit(id, |c| c["sftp"]["port"] = json!(sftp.remote.port))
        .await;
    assert_eq!(hub.worker.run_once().await.unwrap(), Some(run_id));
    let run = hub.store.run(hub.inst, run_id).await.unwrap();
    assert_eq!(run.attempt, 2);
    let file = check_success(&run, 100, &sftp.remote, &[]);
    assert_eq!(format!("{file}.part"), left[0]);
    assert_eq!(message_ids(&sftp.remote.read(&file)), ids);
    assert_eq!(hub.watermark(id).await, Some(100));
}

#[tokio::test]
async fn a_full_disk_fails_the_run_without_a_file_and_keeps_the_watermark() {
    let hub = Hub::new().await;
    let f = fixture(&hub).await;
    let sftp = test_sftp(|b| b.max_file_size(200)).await;
    let id = hub
        .integration(
            ExportKind::EabNotes,
            eab_config(sftp.remote.sftp(), false),
            password(),
        )
        .await;
    let run = hub.run(id).await;
    check_failed(&run, &["(sftp_write_failed)"]);
    assert!(sftp.remote.files().is_empty(), "{:?}", sftp.remote.files());
    assert_eq!(hub.watermark(id).await, None);
    // Cara's missing CRM ID is logged by the run that sends the window, not by failed ones.
    assert!(hub.sync_log(id).await.is_empty());
    // Moved to a server with room (a new server: its key is pinned afresh).
    let sftp = test_sftp(|b| b).await;
    hub.edit(id, |c| {
        c["sftp"]["port"] = json!(sftp.remote.port);
        c["sftp"]["host_key"] = json!("");
    })
    .await;
    let run = hub.run(id).await;
    check_success(&run, 3, &sftp.remote, &[]);
    let log = hub.sync_log(id).await;
    assert_eq!(
        log.iter()
            .map(|r| (r.run_id, r.contact_id))
            .collect::<Vec<_>>(),
        [(Some(run.id), Some(f.cara))]
    );
}

#[tokio::test]
async fn a_changed_host_key_fails_the_run_until_the_pin_is_cleared() {
    let (hub, _, sftp) = setup().await;
    let id = hub
        .integration(
            ExportKind::Contacts,
            contacts_config(sftp.remote.sftp()),
            password(),
        )
        .await;
    let first_key = sftp.server.host_key_fingerprint();
    check_success(&hub.run(id).await, 2, &sftp.remote, &[]);
    assert_eq!(hub.host_key(id).await.as_deref(), Some(first_key.as_str()));

    let new_key = sftp.server.rotate_host_key().unwrap();
    let files = sftp.remote.files();
    let run = hub.run(id).await;
    check_failed(
        &run,
        &[
            "has changed",
            &first_key,
            &new_key,
            "(sftp_host_key_changed)",
        ],
    );
    assert_eq!(sftp.remote.files(), files);
    assert_eq!(
        hub.host_key(id).await.as_deref(),
        Some(first_key.as_str()),
        "a failed run does not re-pin"
    );

    // The admin clears the pin: the next run pins the new key.
    hub.edit(id, |c| c["sftp"]["host_key"] = json!("")).await;
    check_success(&hub.run(id).await, 2, &sftp.remote, &files);
    assert_eq!(hub.host_key(id).await.as_deref(), Some(new_key.as_str()));
}

#[tokio::test]
async fn wrong_password_closed_port_and_missing_directory_fail_with_a_reason() {
    let (hub, _, sftp) = setup().await;

    let id = hub
        .integration(
            ExportKind::Contacts,
            contacts_config(sftp.remote.sftp()),
            json!({"password": "wrong"}),
        )
        .await;
    check_failed(
        &hub.run(id).await,
        &[
            "authentication failed for user \"ferry\" with a password",
            "(sftp_auth_failed)",
        ],
    );

    let port = closed_port();
    let mut closed = sftp.remote.sftp();
    closed["port"] = json!(port);
    let id = hub
        .integration(ExportKind::Contacts, contacts_config(closed), password())
        .await;
    check_failed(
        &hub.run(id).await,
        &[
            &format!("connection refused by 127.0.0.1:{port}"),
            "(sftp_connection_refused)",
        ],
    );

    let mut missing = sftp.remote.sftp();
    missing["directory"] = json!("not/there");
    let id = hub
        .integration(ExportKind::Contacts, contacts_config(missing), password())
        .await;
    check_failed(
        &hub.run(id).await,
        &[
            "not/there",
            "does not exist on the server",
            "(sftp_directory_missing)",
        ],
    );
    assert!(sftp.remote.files().is_empty());
}

#[tokio::test]
async fn key_and_passphrase_key_logins_to_the_test_server() {
    let hub = Hub::new().await;
    fixture(&hub).await;
    let k = keys();
    let sftp = test_sftp(|b| {
        b.authorized_key(USER, k.ed25519.public.clone())
            .authorized_key(USER, k.ed25519_protected.public.clone())
    })
    .await;
    let mut files = Vec::new();
    for secrets in [
        json!({"private_key": k.ed25519.private}),
        json!({"private_key": k.ed25519_protected.private, "passphrase": k.ed25519_protected.passphrase}),
    ] {
        let id = hub
            .integration(
                ExportKind::Contacts,
                contacts_config(sftp.remote.sftp()),
                secrets,
            )
            .await;
        let file = check_success(&hub.run(id).await, 2, &sftp.remote, &files);
        files.push(file);
        files.sort();
    }
    // A protected key without its passphrase is refused with the reason.
    let id = hub
        .integration(
            ExportKind::Contacts,
            contacts_config(sftp.remote.sftp()),
            json!({"private_key": k.ed25519_protected.private}),
        )
        .await;
    check_failed(&hub.run(id).await, &["(sftp_key_passphrase_required)"]);
}

// ---------------------------------------------------------------------------------------------
// OpenSSH sshd

#[tokio::test]
async fn sshd_password_login_exports() {
    let Some(sshd) = Sshd::start_with_password() else {
        return;
    };
    let hub = Hub::new().await;
    fixture(&hub).await;
    let remote = sshd_remote(&sshd);
    let id = hub
        .integration(
            ExportKind::Contacts,
            contacts_config(remote.sftp()),
            json!({"password": SSHD_PASSWORD}),
        )
        .await;
    let run = hub.run(id).await;
    check_success(&run, 2, &remote, &[]);
    assert_eq!(hub.host_key(id).await, Some(sshd.host_fingerprint.clone()));
    assert!(sshd.log().contains("Accepted password"), "{}", sshd.log());
}

#[tokio::test]
async fn sshd_key_and_passphrase_key_logins_export() {
    let Some(sshd) = Sshd::start() else { return };
    let hub = Hub::new().await;
    fixture(&hub).await;
    let remote = sshd_remote(&sshd);
    let k = keys();
    let mut files = Vec::new();
    for secrets in [
        json!({"private_key": k.ed25519.private}),
        json!({"private_key": k.rsa_pkcs8.private}),
        json!({"private_key": k.ed25519_protected.private, "passphrase": k.ed25519_protected.passphrase}),
    ] {
        let id = hub
            .integration(
                ExportKind::Contacts,
                contacts_config(remote.sftp()),
                secrets,
            )
            .await;
        let run = hub.run(id).await;
        files.push(check_success(&run, 2, &remote, &files));
        files.sort();
    }
    assert!(sshd.log().contains("Accepted publickey"), "{}", sshd.log());

    // sshd refuses a wrong password and says which methods it takes.
    let id = hub
        .integration(
            ExportKind::Contacts,
            contacts_config(remote.sftp()),
            json!({"password": "wrong"}),
        )
        .await;
    check_failed(
        &hub.run(id).await,
        &["authentication failed", "(sftp_auth_failed)"],
    );
}

#[tokio::test]
async fn sshd_eab_export_is_byte_exact_and_incremental() {
    let Some(sshd) = Sshd::start() else { return };
    let hub = Hub::new().await;
    let f = fixture(&hub).await;
    let remote = sshd_remote(&sshd);
    let id = hub
        .integration(
            ExportKind::EabNotes,
            eab_config(remote.sftp(), false),
            json!({"private_key": keys().ed25519.private}),
        )
        .await;
    let before = Timestamp::now();
    let run = hub.run(id).await;
    let after = Timestamp::now();
    let file = check_success(&run, 3, &remote, &[]);
    check_file_name(&file, "eab_notes_", before, after);
    assert_eq!(remote.read(&file), expected_eab(&f, false));
    assert_eq!(hub.watermark(id).await, Some(6));

    // A missing directory fails the next run and keeps the watermark; fixed, it sends the rest.
    let m7 = hub
        .messages(&[msg(
            f.ben,
            "sms/ai_agent/incoming",
            "seven",
            "2026-03-12T10:00:00Z",
        )])
        .await;
    let missing = format!("{}/gone", remote.directory);
    hub.edit(id, |c| c["sftp"]["directory"] = json!(missing))
        .await;
    check_failed(
        &hub.run(id).await,
        &[&missing, "does not exist", "(sftp_directory_missing)"],
    );
    assert_eq!(hub.watermark(id).await, Some(6));
    let dir = remote.directory.clone();
    hub.edit(id, |c| c["sftp"]["directory"] = json!(dir)).await;
    let run = hub.run(id).await;
    let second = check_success(&run, 1, &remote, std::slice::from_ref(&file));
    assert_eq!(message_ids(&remote.read(&second)), m7);
    assert_eq!(hub.watermark(id).await, Some(7));
}

#[tokio::test]
async fn sshd_changed_host_key_fails_the_run_until_the_pin_is_cleared() {
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    let hub = Hub::new().await;
    fixture(&hub).await;
    let remote = sshd_remote(&sshd);
    let id = hub
        .integration(
            ExportKind::Contacts,
            contacts_config(remote.sftp()),
            json!({"private_key": keys().ed25519.private}),
        )
        .await;
    let first_key = sshd.host_fingerprint.clone();
    check_success(&hub.run(id).await, 2, &remote, &[]);
    assert_eq!(hub.host_key(id).await.as_deref(), Some(first_key.as_str()));

    sshd.restart_with_new_host_key();
    let new_key = sshd.host_fingerprint.clone();
    let files = remote.files();
    check_failed(
        &hub.run(id).await,
        &[&first_key, &new_key, "(sftp_host_key_changed)"],
    );
    assert_eq!(hub.host_key(id).await.as_deref(), Some(first_key.as_str()));

    hub.edit(id, |c| {
        c["sftp"].as_object_mut().unwrap().remove("host_key");
    })
    .await;
    check_success(&hub.run(id).await, 2, &remote, &files);
    assert_eq!(hub.host_key(id).await.as_deref(), Some(new_key.as_str()));
}

/// Preview next run: the file the next run would write, exactly, without sending anything or
/// moving the watermark; cut to the rows asked for; and nothing new once the run sent it.
#[tokio::test]
async fn the_preview_is_the_next_runs_file_byte_for_byte_and_moves_nothing() {
    let (hub, _f, sftp) = setup().await;
    for (kind, config) in [
        (
            ExportKind::EabNotes,
            eab_config(sftp.remote.sftp_with_prefix("preview_notes_"), false),
        ),
        (
            ExportKind::Conversations,
            conversations_config(sftp.remote.sftp(), all_filters()),
        ),
    ] {
        let id = hub.integration(kind, config, password()).await;
        let connector = SftpExport::new(kind, PUBLIC_URL);
        let integration = hub.store.integration(hub.inst, id).await.unwrap();
        let preview = connector
            .preview(&hub.store, &integration, 1000)
            .await
            .unwrap()
            .unwrap();
        assert!(preview.complete());
        // Twice: the same, and no watermark moved.
        let again = connector
            .preview(&hub.store, &integration, 1000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.head, preview.head);
        assert_eq!(hub.watermark(id).await, None);
        // The first two rows only: a prefix of the file that ends at a row's end.
        let two = connector
            .preview(&hub.store, &integration, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((two.head_rows, two.file_rows), (2, preview.file_rows));
        assert!(!two.complete());
        assert!(preview.head.starts_with(&two.head) && two.head.ends_with(b"\r\n"));
        assert_eq!(two.messages.len(), 2);

        let files = sftp.remote.files();
        let run = hub.run(id).await;
        let file = check_success(&run, preview.file_rows as i64, &sftp.remote, &files);
        assert_eq!(
            sftp.remote.read(&file).into_bytes(),
            preview.head,
            "{kind:?}: the preview is the file"
        );
        let integration = hub.store.integration(hub.inst, id).await.unwrap();
        let after = connector
            .preview(&hub.store, &integration, 1000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((after.file_rows, after.head.len()), (0, 0));
        assert!(
            after.summary.contains("no new messages"),
            "{}",
            after.summary
        );
    }
}
