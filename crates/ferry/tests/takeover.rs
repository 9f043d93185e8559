//! A run whose worker was killed is finished by another `ferry worker` process on the same
//! PostgreSQL database, with the default heartbeat and lease (issue 14 item 6).
//!
//! Runs only when `FERRY_TEST_DATABASE_URL` is a postgres:// URL (several worker processes
//! share a database only on PostgreSQL); otherwise it prints that it was skipped. The killed
//! worker is built with the `failpoints` feature and kills itself with SIGKILL in the middle of
//! an SFTP export (`FERRY_FAILPOINT=export.staged`), so it dies while it holds the run, every
//! time.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_core::contact::{ContactWrite, Raw};
use ferry_core::run::{RunStatus, Trigger};
use ferry_sftp::server::TestServer;
use ferry_store::{MasterKey, NewIntegration, NewRun, Run, SecretBox, Store, WriteKind};
use serde_json::json;

mod support;

use support::BIN;

const USER: &str = "ferry";
const PASSWORD: &str = "ship-it-42";

/// Longer than the default takeover bound (13 s) with room for a loaded machine, and shorter
/// than the old defaults' (65 s): with those this test fails.
const DEADLINE: Duration = Duration::from_secs(45);

/// A fresh schema in the test database, dropped at the end.
struct Schema {
    base: String,
    name: String,
    url: String,
}

impl Schema {
    async fn create(base: &str) -> Schema {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("ferry_takeover_{}_{nanos}", std::process::id());
        exec(base, &format!("CREATE SCHEMA {name}")).await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Schema {
            base: base.to_string(),
            name,
            url,
        }
    }

    async fn drop_it(self) {
        exec(&self.base, &format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }
}

async fn exec(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .expect("execute");
    conn.close().await.ok();
}

/// `ferry worker` against `url`, as a user would start it: settings through the environment
/// only, the defaults for the heartbeat and the lease. Logs go to `log`.
fn worker(url: &str, key: &str, data: &Path, log: &Path, failpoint: Option<&str>) -> Child {
    let mut c = Command::new(BIN);
    for var in [
        "FERRY_LISTEN",
        "FERRY_PUBLIC_URL",
        "FERRY_LOG_FORMAT",
        "FERRY_WORKER_HEARTBEAT_SECS",
        "FERRY_WORKER_LEASE_SECS",
        "FERRY_FAILPOINT",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c.arg("worker")
        .env("FERRY_DATABASE_URL", url)
        .env("FERRY_MASTER_KEY", key)
        .env("FERRY_DATA_DIR", data)
        .env("FERRY_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap());
    if let Some(point) = failpoint {
        c.env("FERRY_FAILPOINT", point);
    }
    c.spawn().expect("spawn ferry worker")
}

/// Polls the run until `done` holds or `deadline` passes; returns the last state seen.
async fn poll_run(
    store: &Store,
    inst: i64,
    id: i64,
    deadline: Duration,
    mut done: impl FnMut(&Run) -> bool,
) -> Run {
    let until = Instant::now() + deadline;
    loop {
        let run = store.run(inst, id).await.unwrap();
        if done(&run) || Instant::now() >= until {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_worker_process_finishes_a_killed_workers_run() {
    let Some(base) = std::env::var("FERRY_TEST_DATABASE_URL")
        .ok()
        .filter(|s| s.starts_with("postgres"))
    else {
        eprintln!(
            "note: FERRY_TEST_DATABASE_URL is not a postgres:// URL; skipping the two-worker takeover test"
        );
        return;
    };
    let schema = Schema::create(&base).await;
    let key = MasterKey::generate().to_base64();
    let store = Store::connect(&schema.url, SecretBox::new(MasterKey::parse(&key).unwrap()))
        .await
        .unwrap();
    store.migrate().await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sftp");
    let outbox = root.join("outbox");
    fs::create_dir_all(&outbox).unwrap();
    let server = TestServer::builder(&root)
        .password(USER, PASSWORD)
        .start()
        .await
        .unwrap();

    let inst = store
        .create_institution("state-u", "State U", None)
        .await
        .unwrap()
        .id;
    let schema_of = store.field_schema(inst).await.unwrap();
    let writes: Vec<ContactWrite> = (0..20)
        .map(|i| {
            let phone = format!("+1617555{i:04}");
            let first = format!("Student{i}");
            let fields = [
                ("first_name", first.as_str()),
                ("last_name", "Takeover"),
                ("phone", phone.as_str()),
            ];
            ContactWrite::parse(&schema_of, fields.iter().map(|(k, v)| (*k, Raw::Str(v)))).unwrap()
        })
        .collect();
    store
        .apply_contact_writes(inst, &writes, WriteKind::Create)
        .await
        .unwrap();
    let config = json!({
        "sftp": {"host": "127.0.0.1", "port": server.port(), "username": USER, "directory": "outbox"},
        "contacts": {"fields": ["id", "first_name", "phone"], "filters": []},
    });
    let integration = store
        .create_integration(
            inst,
            NewIntegration {
                kind: "contacts_export".into(),
                name: "Contacts".into(),
                description: String::new(),
                enabled: true,
                config,
                secrets: json!({"password": PASSWORD}).as_object().cloned(),
            },
        )
        .await
        .unwrap()
        .id;
    let run = store
        .enqueue_run(&NewRun {
            institution_id: inst,
            integration_id: integration,
            kind: "contacts_export".into(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .expect("queued")
        .id;

    // Worker A claims the run and dies holding it; worker B starts once A has claimed it.
    let (log_a, log_b) = (tmp.path().join("a.log"), tmp.path().join("b.log"));
    let mut a = worker(
        &schema.url,
        &key,
        &tmp.path().join("a"),
        &log_a,
        Some("export.staged"),
    );
    let claimed = poll_run(&store, inst, run, DEADLINE, |r| r.attempt >= 1).await;
    let mut b = worker(&schema.url, &key, &tmp.path().join("b"), &log_b, None);
    let a_status = a.wait().unwrap();
    let logs = || {
        format!(
            "worker A:\n{}\nworker B:\n{}",
            fs::read_to_string(&log_a).unwrap_or_default(),
            fs::read_to_string(&log_b).unwrap_or_default()
        )
    };
    assert_eq!(claimed.attempt, 1, "worker A claimed the run\n{}", logs());
    assert_eq!(
        a_status.signal(),
        Some(9),
        "worker A was killed by SIGKILL: {a_status}\n{}",
        logs()
    );
    let held = store.run(inst, run).await.unwrap();
    assert_eq!(
        (held.status, held.attempt),
        (RunStatus::Running, 1),
        "the dead worker still holds the run\n{}",
        logs()
    );

    let finished = poll_run(&store, inst, run, DEADLINE, |r| r.status.is_final()).await;
    b.kill().ok();
    b.wait().ok();
    let files = ferry_sftp::testing::listing(&outbox);
    let logs = logs();
    store.close().await;
    server.shutdown().await;
    schema.drop_it().await;

    assert_eq!(
        (finished.status, finished.attempt),
        (RunStatus::Success, 2),
        "worker B finished the run on the second attempt, within {DEADLINE:?}: {finished:?}\n{logs}"
    );
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".csv")).count(),
        1,
        "one export file, no leftovers: {files:?}\n{logs}"
    );
}
