//! Exports reach the customer's server exactly once, whatever moment the worker dies at.
//!
//! `ferry worker --once` runs real exports to OpenSSH's sshd and is killed with SIGKILL: at each
//! named point of a run (the binary is built with the `failpoints` feature for these tests, see
//! `ferry_connectors::failpoint`) and at arbitrary moments. After each kill the run's lease is
//! taken as expired and the queue is worked until it is empty, as another worker would. Then
//! every message must be in exactly one finished file, and no `.part` file may be left.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::contact::{ContactWrite, Raw};
use ferry_core::message::{Channel, Direction, MessageType};
use ferry_core::run::{RunStatus, Trigger};
use ferry_sftp::testing::{Sshd, keys};
use ferry_store::{NewIntegration, NewMessage, NewRun, Store, WriteKind};
use jiff::Timestamp;
use serde_json::{Value, json};

mod support;

use support::{Ferry, assert_success, stdout};

/// The points of an export run at which `FERRY_FAILPOINT` kills the worker, in order.
const POINTS: [&str; 5] = [
    "export.prepared",
    "export.staged",
    "export.renaming",
    "export.renamed",
    "export.saved",
];

const CONTACTS: usize = 20;

/// A data directory with one institution, its contacts and one export to `dir` on `sshd`.
struct Setup {
    f: Ferry,
    dir: PathBuf,
    inst: i64,
    integration: i64,
    contacts: Vec<i64>,
}

impl Setup {
    async fn new(sshd: &Sshd, name: &str, kind: &str) -> Setup {
        let f = Ferry::new();
        f.ok(&[
            "institution",
            "create",
            "--slug",
            "state-u",
            "--name",
            "State U",
        ]);
        let dir = sshd.upload_dir.join(name);
        fs::create_dir(&dir).unwrap();
        let store = f.keyed_store().await;
        let inst = store
            .institution_by_slug("state-u")
            .await
            .unwrap()
            .unwrap()
            .id;
        let schema = store.field_schema(inst).await.unwrap();
        let writes: Vec<ContactWrite> = (0..CONTACTS)
            .map(|i| {
                let phone = format!("+1617555{i:04}");
                let crm = format!("S{i:05}");
                let first = format!("Student{i}");
                let fields = [
                    ("first_name", first.as_str()),
                    ("last_name", "Crash"),
                    ("phone", phone.as_str()),
                    ("crm_id", crm.as_str()),
                ];
                ContactWrite::parse(&schema, fields.iter().map(|(k, v)| (*k, Raw::Str(v)))).unwrap()
            })
            .collect();
        let contacts = store
            .apply_contact_writes(inst, &writes, WriteKind::Create)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap().contact_id)
            .collect();
        let sftp = json!({
            "host": "127.0.0.1",
            "port": sshd.port,
            "username": sshd.user,
            "directory": dir.to_string_lossy(),
        });
        let config = match kind {
            "eab_notes_export" => json!({
                "sftp": sftp,
                "schedule": {"blocks": []},
                "filters": all_filters(),
                "eab": {
                    "import_version": "3",
                    "institution_id": "1234",
                    "dedupe_contacts": false,
                    "is_private": true,
                    "student_viewable": false,
                    "show_on_student_report": true,
                    "created_by": "Ferry, Bot",
                    "note_reasons": "Texting",
                    "note_body": "{message} {url}",
                },
            }),
            "conversations_export" => json!({"sftp": sftp, "filters": all_filters()}),
            "contacts_export" => json!({
                "sftp": sftp,
                "contacts": {"fields": ["id", "first_name", "crm_id"], "filters": []},
            }),
            other => panic!("no config for {other}"),
        };
        let registry = ferry_connectors::Registry::builtin("https://ferry.example.edu");
        let connector = registry
            .get(kind)
            .unwrap_or_else(|| panic!("no connector {kind}"));
        connector
            .validate_config(&config)
            .unwrap_or_else(|e| panic!("invalid test config: {e}"));
        let integration = store
            .create_integration(
                inst,
                NewIntegration {
                    kind: kind.into(),
                    name: format!("{kind} ({name})"),
                    description: String::new(),
                    enabled: true,
                    config,
                    secrets: json!({"private_key": keys().ed25519.private})
                        .as_object()
                        .cloned(),
                },
            )
            .await
            .unwrap()
            .id;
        store.close().await;
        Setup {
            f,
            dir,
            inst,
            integration,
            contacts,
        }
    }

    async fn store(&self) -> Store {
        self.f.keyed_store().await
    }

    /// Adds `n` messages spread over the contacts.
    async fn add_messages(&self, n: usize) {
        let store = self.store().await;
        let now = Timestamp::now();
        let batch: Vec<NewMessage> = (0..n)
            .map(|i| NewMessage {
                contact_id: self.contacts[i % self.contacts.len()],
                channel: Channel::Sms,
                message_type: MessageType::LiveChat,
                direction: Direction::Outgoing,
                body: format!("message {i} of a batch of {n}"),
                sent_at: now,
            })
            .collect();
        for chunk in batch.chunks(5000) {
            store.insert_messages(self.inst, chunk).await.unwrap();
        }
        store.close().await;
    }

    /// Every message id of the institution.
    async fn message_ids(&self) -> Vec<i64> {
        let store = self.store().await;
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_messages(
                    self.inst,
                    &ferry_store::MessageQuery {
                        after_sequence: after,
                        limit: 1000,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.sequence);
            ids.extend(page.iter().map(|m| m.id));
        }
        store.close().await;
        ids
    }

    async fn queue_run(&self) {
        let store = self.store().await;
        store
            .enqueue_run(&NewRun {
                institution_id: self.inst,
                integration_id: self.integration,
                kind: store
                    .integration(self.inst, self.integration)
                    .await
                    .unwrap()
                    .kind,
                trigger: Trigger::Manual,
                scheduled_for: None,
            })
            .await
            .unwrap()
            .expect("queued");
        store.close().await;
    }

    /// Runs `ferry worker --once` with `FERRY_FAILPOINT` set to `point` and checks that it died
    /// by SIGKILL there.
    fn run_until(&self, point: &str) {
        let out = self
            .f
            .cmd()
            .args(["worker", "--once"])
            .env("FERRY_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "the worker should have been killed at {point}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `ferry worker --once` and kills it after `after`; returns whether it was still
    /// running then.
    async fn run_and_kill(&self, after: Duration) -> bool {
        let mut child = tokio::process::Command::from(self.f.cmd())
            .args(["worker", "--once"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::select! {
            status = child.wait() => {
                assert!(status.unwrap().success());
                false
            }
            _ = tokio::time::sleep(after) => {
                child.kill().await.unwrap(); // SIGKILL
                true
            }
        }
    }

    /// Takes every running run's lease as expired (its worker was killed), as another worker
    /// does once the heartbeat is stale, then works the queue until it is empty.
    async fn recover(&self) {
        let store = self.store().await;
        store
            .requeue_stale_runs(Timestamp::now() + jiff::SignedDuration::from_hours(1), 100)
            .await
            .unwrap();
        store.close().await;
        for _ in 0..20 {
            let out = self.f.run(&["worker", "--once"]);
            assert_success(&out, &["worker", "--once"]);
            if stdout(&out).trim() == "no queued run" {
                return;
            }
        }
        panic!("the queue did not empty");
    }

    /// The finished files, and any other names left in the directory.
    fn files(&self) -> (Vec<PathBuf>, Vec<String>) {
        let mut finished = Vec::new();
        let mut other = Vec::new();
        for entry in fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".csv") {
                finished.push(path);
            } else {
                other.push(name);
            }
        }
        finished.sort();
        (finished, other)
    }

    /// Checks that every message is in exactly one finished file and nothing else is left.
    async fn assert_each_message_once(&self, context: &str) {
        let (files, other) = self.files();
        assert!(other.is_empty(), "{context}: left behind: {other:?}");
        let mut seen: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for file in &files {
            for id in message_ids_in(file) {
                seen.entry(id)
                    .or_default()
                    .push(file.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        let all = self.message_ids().await;
        assert!(!all.is_empty());
        for id in &all {
            match seen.get(id).map(Vec::len) {
                Some(1) => {}
                None => panic!(
                    "{context}: message {id} is in no file ({} files)",
                    files.len()
                ),
                Some(_) => panic!("{context}: message {id} is in {:?}", seen[id]),
            }
        }
        assert_eq!(
            seen.len(),
            all.len(),
            "{context}: files name unknown messages"
        );
        let state = self.state().await;
        assert!(
            state.get("delivery").is_none(),
            "{context}: a delivery is still open: {state}"
        );
    }

    async fn state(&self) -> Value {
        let store = self.store().await;
        let state = store
            .integration(self.inst, self.integration)
            .await
            .unwrap()
            .state;
        store.close().await;
        state
    }

    async fn runs(&self) -> Vec<ferry_store::Run> {
        let store = self.store().await;
        let runs = store
            .list_runs(
                self.inst,
                &ferry_store::RunQuery {
                    limit: 500,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        store.close().await;
        runs
    }
}

fn all_filters() -> Value {
    json!({
        "channels": ["sms", "web_chat", "email", "whatsapp"],
        "types": ["ai_agent", "live_chat", "campaign"],
        "directions": ["incoming", "outgoing"],
    })
}

/// The message ids a file's rows link to (`…?message=ID#mID`, in EAB and Conversations files;
/// an EAB row names its message twice, in the note and in its link column).
fn message_ids_in(file: &Path) -> Vec<i64> {
    let text = fs::read_to_string(file).unwrap();
    text.lines()
        .filter_map(|line| {
            let rest = &line[line.find("?message=")? + "?message=".len()..];
            let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap();
            Some(rest[..end].parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_worker_killed_at_any_point_of_an_eab_export_sends_each_message_once() {
    let Some(sshd) = Sshd::start() else { return };
    for point in POINTS {
        let s = Setup::new(&sshd, point, "eab_notes_export").await;
        s.add_messages(1000).await;
        s.queue_run().await;
        s.run_until(point);
        // Messages that arrive while the run is down go in a later file, not in the retried one.
        s.add_messages(7).await;
        s.recover().await;
        s.queue_run().await;
        s.recover().await;
        s.assert_each_message_once(point).await;
        // Both runs end well: the killed one on its retry, the next one with the new window
        // (or Skipped, when the retry of a run killed after its watermark took that window).
        let runs = s.runs().await;
        assert_eq!(runs.len(), 2, "{point}");
        assert!(
            runs.iter()
                .all(|r| matches!(r.status, RunStatus::Success | RunStatus::Skipped)),
            "{point}: {:?}",
            runs.iter()
                .map(|r| (r.status, &r.error))
                .collect::<Vec<_>>()
        );
        // The killed run was finished by its second attempt.
        assert_eq!(runs[1].attempt, 2, "{point}");
        let (files, _) = s.files();
        assert_eq!(files.len(), 2, "{point}: one file per window: {files:?}");
    }
}

#[tokio::test]
async fn a_file_taken_by_the_customer_before_the_retry_is_not_sent_again() {
    let Some(sshd) = Sshd::start() else { return };
    let s = Setup::new(&sshd, "taken", "eab_notes_export").await;
    s.add_messages(300).await;
    s.queue_run().await;
    s.run_until("export.renamed");
    // EAB's import picks the file up and removes it before Ferry's retry.
    let (files, _) = s.files();
    assert_eq!(files.len(), 1);
    let taken = message_ids_in(&files[0]);
    fs::remove_file(&files[0]).unwrap();
    s.recover().await;
    let (files, other) = s.files();
    assert!(files.is_empty() && other.is_empty(), "{files:?} {other:?}");
    assert_eq!(taken, s.message_ids().await);
    let runs = s.runs().await;
    assert_eq!(runs[0].status, RunStatus::Success);
    assert_eq!(runs[0].detail["delivered_by_earlier_attempt"], json!(true));
    assert_eq!(runs[0].rows, 300);
    assert!(s.state().await.get("delivery").is_none());
}

#[tokio::test]
async fn conversations_and_contacts_exports_are_not_duplicated_by_a_crash_after_the_rename() {
    let Some(sshd) = Sshd::start() else { return };
    let s = Setup::new(&sshd, "conversations", "conversations_export").await;
    s.add_messages(500).await;
    s.queue_run().await;
    s.run_until("export.renamed");
    s.recover().await;
    s.assert_each_message_once("conversations").await;
    assert_eq!(s.files().0.len(), 1);

    // A Contacts export has no window, but the same file must not be sent twice either.
    let c = Setup::new(&sshd, "contacts", "contacts_export").await;
    c.queue_run().await;
    c.run_until("export.renamed");
    c.recover().await;
    let (files, other) = c.files();
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(files.len(), 1, "{files:?}");
    let text = fs::read_to_string(&files[0]).unwrap();
    assert_eq!(text.lines().count(), 1 + CONTACTS, "{text}");
    assert!(c.state().await.get("delivery").is_none());
}

#[tokio::test]
async fn a_worker_killed_at_arbitrary_moments_sends_each_message_once() {
    let Some(sshd) = Sshd::start() else { return };
    let s = Setup::new(&sshd, "random", "eab_notes_export").await;
    s.add_messages(30_000).await;
    let mut killed = 0;
    // Moments from start-up to the end of the upload; a new window opens between kills.
    for (i, ms) in [40u64, 150, 300, 450, 600, 800, 1100, 1500, 2000, 2600]
        .into_iter()
        .enumerate()
    {
        s.queue_run().await;
        if s.run_and_kill(Duration::from_millis(ms)).await {
            killed += 1;
        }
        if i % 2 == 0 {
            s.add_messages(50).await;
        }
        // Whatever the kill left (a `.part` file, an open delivery) the next worker sorts out.
        s.recover().await;
    }
    s.queue_run().await;
    s.recover().await;
    assert!(killed > 0, "no run was killed mid-way");
    s.assert_each_message_once("random kills").await;
}

/// A contact without a CRM ID gets its one `missing_crm_id` Sync Log row even when the worker
/// was killed after the rename and the retry only finds the file delivered.
#[tokio::test]
async fn a_retry_that_finds_the_file_delivered_still_logs_contacts_without_a_crm_id() {
    let Some(sshd) = Sshd::start() else { return };
    let s = Setup::new(&sshd, "no-crm-id", "eab_notes_export").await;
    let store = s.store().await;
    let schema = store.field_schema(s.inst).await.unwrap();
    let fields = [
        ("first_name", "Nocrm"),
        ("last_name", "Student"),
        ("phone", "+16175559999"),
    ];
    let write =
        ContactWrite::parse(&schema, fields.iter().map(|(k, v)| (*k, Raw::Str(v)))).unwrap();
    let lone = store
        .apply_contact_writes(s.inst, &[write], WriteKind::Create)
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .contact_id;
    store
        .insert_messages(
            s.inst,
            &[NewMessage {
                contact_id: lone,
                channel: Channel::Sms,
                message_type: MessageType::LiveChat,
                direction: Direction::Outgoing,
                body: "a message EAB cannot file".into(),
                sent_at: Timestamp::now(),
            }],
        )
        .await
        .unwrap();
    store.close().await;
    s.add_messages(50).await;
    s.queue_run().await;
    s.run_until("export.renamed");
    s.recover().await;
    let runs = s.runs().await;
    assert_eq!(runs[0].status, RunStatus::Success);
    assert_eq!(runs[0].detail["delivered_by_earlier_attempt"], json!(true));
    let store = s.store().await;
    let log = store
        .list_sync_log(s.inst, &ferry_store::SyncLogQuery::default())
        .await
        .unwrap();
    store.close().await;
    let rows: Vec<(Option<i64>, &str)> = log
        .iter()
        .map(|e| (e.contact_id, e.code.as_str()))
        .collect();
    assert_eq!(rows, [(Some(lone), "missing_crm_id")]);
}
