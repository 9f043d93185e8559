//! The worker against a real store (SQLite, or PostgreSQL with `FERRY_TEST_DATABASE_URL`), with
//! connectors defined here. No fixed sleeps wait for work: tests poll the store with a deadline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use ferry_connectors::describe::{Category, Description, Platform, SecretField, SecretKind};
use ferry_connectors::{
    ConfigError, ConnectionReport, Connector, ConnectorContext, Registry, RunContext, RunError,
    RunReport,
};
use ferry_core::contact::Raw;
use ferry_core::run::{RunStatus, SyncDirection, Trigger};
use ferry_core::schedule::Schedule;
use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::{
    Integration, MasterKey, NewIntegration, NewRun, Run, RunOutcome, RunQuery, SecretBox, Store,
    SyncLogEntry, SyncLogQuery,
};
use ferry_worker::{Worker, WorkerConfig};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// Connectors for the tests

/// What a test connector does when it runs.
#[derive(Clone)]
enum Behaviour {
    /// Needs the `token` secret, logs two Sync Log rows, reports 3 rows.
    Export,
    /// Logs one row, then fails for good.
    Fail,
    /// Panics.
    Panic,
    /// Finds nothing to do.
    Skip,
    /// Fails with a retryable error on the first call, succeeds after.
    FlakyOnce,
    /// Always fails with a retryable error.
    AlwaysRetryable,
    /// The remote refuses the credentials.
    Refused,
    /// Records the run id (to count executions across workers).
    Record(Arc<Mutex<Vec<i64>>>),
    /// Waits until cancelled, then reacts as told.
    WaitForCancel(OnCancel),
    /// Waits in the gate until it opens.
    Hold(Arc<Gate>),
}

/// Holds runs until opened, counting how many are inside at once and when each integration's
/// runs enter and leave.
#[derive(Default)]
struct Gate {
    inside: AtomicUsize,
    most: AtomicUsize,
    open: AtomicBool,
    /// (integration id, entered?) in order.
    events: Mutex<Vec<(i64, bool)>>,
}

#[derive(Clone, Copy)]
enum OnCancel {
    /// Reports the work done so far as a success.
    Report,
    /// Returns `RunError::cancelled()`.
    GiveUp,
    /// Ignores the request and keeps going (for an hour).
    Ignore,
}

struct TestConnector {
    kind: &'static str,
    behaviour: Behaviour,
    calls: Arc<AtomicUsize>,
    started: Arc<AtomicBool>,
    saw_cancel: Arc<AtomicBool>,
}

impl TestConnector {
    fn new(kind: &'static str, behaviour: Behaviour) -> Arc<Self> {
        Arc::new(TestConnector {
            kind,
            behaviour,
            calls: Arc::default(),
            started: Arc::default(),
            saw_cancel: Arc::default(),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Connector for TestConnector {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn label(&self) -> &'static str {
        "Test"
    }

    fn runs_on_change(&self) -> bool {
        self.kind.starts_with("onchange")
    }

    fn change_watermark(&self, state: &Value) -> Option<i64> {
        state.get("sent_up_to").and_then(Value::as_i64)
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
        match config.get("every_minutes") {
            None => Ok(()),
            Some(v) if v.is_u64() => Ok(()),
            Some(_) => Err(ConfigError::new(
                "every_minutes",
                "a whole number is required",
            )),
        }
    }

    fn schedule(&self, config: &Value) -> Option<Schedule> {
        let minutes = config.get("every_minutes")?.as_u64()?;
        Some(Schedule::EveryMinutes(u32::try_from(minutes).ok()?))
    }

    fn describe(&self) -> Description {
        Description {
            secrets: vec![SecretField {
                name: "token",
                label: "Token",
                kind: SecretKind::Token,
                help: "",
            }],
            ..Description::new(
                self.kind,
                "Test",
                Category::CrmSync,
                Platform {
                    id: "test",
                    name: "Test",
                    summary: "A connector for the worker's tests.",
                    page: None,
                },
            )
        }
    }

    async fn test_connection(&self, ctx: &ConnectorContext) -> Result<ConnectionReport, RunError> {
        ctx.secrets.require("token")?;
        Ok(ConnectionReport::new("ok"))
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, RunError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.started.store(true, Ordering::SeqCst);
        match &self.behaviour {
            Behaviour::Export => {
                if ctx.secrets().require("token")? != "s3cret" {
                    return Err(RunError::fatal("wrong token"));
                }
                // Even a careless debug print of the context shows no secret.
                tracing::info!(?ctx, "exporting");
                ctx.log(
                    None,
                    SyncDirection::Outgoing,
                    "invalid_email",
                    "bad address",
                )
                .await?;
                ctx.log(None, SyncDirection::Outgoing, "invalid_phone", "bad phone")
                    .await?;
                Ok(RunReport::success(3).with_detail(json!({"file": "export.csv"})))
            }
            Behaviour::Fail => {
                ctx.log(
                    None,
                    SyncDirection::Incoming,
                    "match_conflict",
                    "before failing",
                )
                .await?;
                Err(RunError::fatal(
                    "the remote refused the upload: 403 Forbidden",
                ))
            }
            Behaviour::Panic => panic!("a bug in the connector"),
            Behaviour::Skip => Ok(RunReport::skipped().with_detail(json!({"why": "no changes"}))),
            Behaviour::FlakyOnce if call == 1 => Err(RunError::retryable("timed out")),
            Behaviour::FlakyOnce => Ok(RunReport::success(1)),
            Behaviour::AlwaysRetryable => Err(RunError::retryable("the remote is down")),
            Behaviour::Refused => Err(RunError::credentials_refused(
                "the remote answered 401; connect the account again",
            )),
            Behaviour::Record(ids) => {
                tokio::task::yield_now().await;
                ids.lock().unwrap().push(ctx.run().id);
                Ok(RunReport::success(1))
            }
            Behaviour::Hold(gate) => {
                let id = ctx.integration().id;
                gate.events.lock().unwrap().push((id, true));
                let now = gate.inside.fetch_add(1, Ordering::SeqCst) + 1;
                gate.most.fetch_max(now, Ordering::SeqCst);
                while !gate.open.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                gate.inside.fetch_sub(1, Ordering::SeqCst);
                gate.events.lock().unwrap().push((id, false));
                Ok(RunReport::success(1))
            }
            Behaviour::WaitForCancel(on_cancel) => {
                ctx.cancel().cancelled().await;
                self.saw_cancel.store(true, Ordering::SeqCst);
                match on_cancel {
                    OnCancel::Report => {
                        Ok(RunReport::success(7).with_detail(json!({"stopped_early": true})))
                    }
                    OnCancel::GiveUp => Err(RunError::cancelled()),
                    OnCancel::Ignore => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(RunReport::success(1))
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const DEADLINE: Duration = Duration::from_secs(10);

async fn setup() -> (TestStore, i64) {
    let s = fresh_store().await;
    let inst = s
        .create_institution("state-u", "State University", None)
        .await
        .unwrap();
    (s, inst.id)
}

async fn integration(
    s: &Store,
    inst: i64,
    kind: &str,
    config: Value,
    enabled: bool,
) -> Integration {
    let mut secrets = serde_json::Map::new();
    secrets.insert("token".into(), json!("s3cret"));
    s.create_integration(
        inst,
        NewIntegration {
            kind: kind.into(),
            name: format!("{kind} {}", config),
            description: String::new(),
            enabled,
            config,
            secrets: Some(secrets),
        },
    )
    .await
    .unwrap()
}

async fn manual_run(s: &Store, i: &Integration) -> Run {
    s.enqueue_run(&NewRun {
        institution_id: i.institution_id,
        integration_id: i.id,
        kind: i.kind.clone(),
        trigger: Trigger::Manual,
        scheduled_for: None,
    })
    .await
    .unwrap()
    .unwrap()
}

/// An integration of `kind` with one queued manual run.
async fn queued(s: &Store, inst: i64, kind: &str) -> Run {
    let i = integration(s, inst, kind, json!({}), true).await;
    manual_run(s, &i).await
}

/// Like [`queued`], for an integration without secrets (readable with any master key).
async fn queued_without_secrets(s: &Store, inst: i64, kind: &str) -> Run {
    let i = s
        .create_integration(
            inst,
            NewIntegration {
                kind: kind.into(),
                name: kind.into(),
                description: String::new(),
                enabled: true,
                config: json!({}),
                secrets: None,
            },
        )
        .await
        .unwrap();
    manual_run(s, &i).await
}

fn registry(connectors: &[&Arc<TestConnector>]) -> Registry {
    let mut r = Registry::empty();
    for c in connectors {
        r.register(Arc::clone(c) as Arc<dyn Connector>).unwrap();
    }
    r
}

fn config(id: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: id.to_string(),
        poll_interval: Duration::from_millis(20),
        heartbeat_interval: Duration::from_millis(30),
        stale_after: Duration::from_secs(60),
        max_attempts: 3,
        shutdown_grace: Duration::from_millis(200),
        scheduler_interval: Duration::from_secs(3600),
        change_interval: Duration::from_secs(3600),
        change_backoff: Duration::from_secs(300),
        concurrency: 4,
        retries: 2,
        retry_backoff: Duration::from_millis(10),
        alert_interval: Duration::from_millis(20),
        alert_retry: Duration::from_millis(50),
        smtp: None,
    }
}

fn worker(s: &Store, connectors: &[&Arc<TestConnector>]) -> Worker {
    Worker::new(s.clone(), registry(connectors), config("w1"))
}

/// Starts `worker.run` in a task; send on the returned sender (or drop it) to shut it down.
fn start(worker: Worker) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    (tx, handle)
}

async fn shut_down(tx: oneshot::Sender<()>, handle: JoinHandle<()>) {
    let _ = tx.send(());
    tokio::time::timeout(DEADLINE, handle)
        .await
        .expect("the worker stops")
        .unwrap();
}

/// Polls the run until `done` holds, for at most [`DEADLINE`].
async fn wait_for(s: &Store, run: &Run, what: &str, done: impl Fn(&Run) -> bool) -> Run {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = s.run(run.institution_id, run.id).await.unwrap();
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sync_log(s: &Store, run: &Run) -> Vec<SyncLogEntry> {
    s.list_sync_log(
        run.institution_id,
        &SyncLogQuery {
            integration_id: Some(run.integration_id),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn runs_of(s: &Store, i: &Integration) -> Vec<Run> {
    s.list_runs(
        i.institution_id,
        &RunQuery {
            integration_id: Some(i.id),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Executing runs

#[tokio::test]
async fn a_manual_run_succeeds_with_rows_detail_and_sync_log() {
    let (s, inst) = setup().await;
    let export = TestConnector::new("test_export", Behaviour::Export);
    let w = worker(&s, &[&export]);
    let run = queued(&s, inst, "test_export").await;

    assert_eq!(w.run_once().await.unwrap(), Some(run.id));
    let done = s.run(inst, run.id).await.unwrap();
    assert_eq!(
        (done.status, done.rows, done.error.as_deref(), &done.detail),
        (RunStatus::Success, 3, None, &json!({"file": "export.csv"}))
    );
    assert!(done.finished_at.is_some() && done.started_at.is_some());
    assert_eq!(export.calls(), 1);
    let log = sync_log(&s, &run).await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.iter().all(|e| e.run_id == Some(run.id)));
    assert_eq!(
        log.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(),
        ["invalid_phone", "invalid_email"]
    );
    assert_eq!(w.run_once().await.unwrap(), None, "the queue is empty now");
    assert_eq!(export.calls(), 1);
}

#[tokio::test]
async fn a_failure_records_its_reason_and_the_rows_logged_before_it() {
    let (s, inst) = setup().await;
    let fail = TestConnector::new("test_fail", Behaviour::Fail);
    let w = worker(&s, &[&fail]);
    let run = queued(&s, inst, "test_fail").await;

    w.run_once().await.unwrap();
    let done = s.run(inst, run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(
        done.error.as_deref(),
        Some("the remote refused the upload: 403 Forbidden")
    );
    assert_eq!(fail.calls(), 1, "a fatal error is not retried");
    let log = sync_log(&s, &run).await;
    assert_eq!(
        log.iter()
            .map(|e| (e.code.as_str(), e.run_id))
            .collect::<Vec<_>>(),
        [("match_conflict", Some(run.id))]
    );
}

#[tokio::test]
async fn skipped_runs_are_recorded_as_skipped() {
    let (s, inst) = setup().await;
    let skip = TestConnector::new("test_skip", Behaviour::Skip);
    let w = worker(&s, &[&skip]);
    let run = queued(&s, inst, "test_skip").await;
    w.run_once().await.unwrap();
    let done = s.run(inst, run.id).await.unwrap();
    assert_eq!(
        (done.status, done.rows, done.error, done.detail),
        (RunStatus::Skipped, 0, None, json!({"why": "no changes"}))
    );
}

#[tokio::test]
async fn a_kind_without_connector_fails_with_a_clear_reason() {
    let (s, inst) = setup().await;
    let w = worker(&s, &[&TestConnector::new("test_export", Behaviour::Export)]);
    let run = queued(&s, inst, "not_installed").await;
    assert_eq!(w.run_once().await.unwrap(), Some(run.id));
    let done = s.run(inst, run.id).await.unwrap();
    assert_eq!(
        (done.status, done.error.as_deref()),
        (
            RunStatus::Failed,
            Some("no connector for kind not_installed")
        )
    );
}

#[tokio::test]
async fn retryable_errors_are_tried_again_within_the_claim() {
    let (s, inst) = setup().await;
    let flaky = TestConnector::new("test_flaky", Behaviour::FlakyOnce);
    let down = TestConnector::new("test_down", Behaviour::AlwaysRetryable);
    let w = worker(&s, &[&flaky, &down]);
    let a = queued(&s, inst, "test_flaky").await;
    let b = queued(&s, inst, "test_down").await;

    w.run_once().await.unwrap();
    w.run_once().await.unwrap();
    let a = s.run(inst, a.id).await.unwrap();
    assert_eq!((a.status, a.rows, a.attempt), (RunStatus::Success, 1, 1));
    assert_eq!(flaky.calls(), 2);
    let b = s.run(inst, b.id).await.unwrap();
    assert_eq!(
        (b.status, b.error.as_deref()),
        (RunStatus::Failed, Some("the remote is down"))
    );
    assert_eq!(down.calls(), 3, "one try and two retries");
}

#[tokio::test]
async fn a_panicking_connector_fails_its_run_and_the_worker_keeps_going() {
    let (s, inst) = setup().await;
    let panics = TestConnector::new("test_panic", Behaviour::Panic);
    let export = TestConnector::new("test_export", Behaviour::Export);
    let first = queued(&s, inst, "test_panic").await;
    let second = queued(&s, inst, "test_export").await;
    let (tx, handle) = start(worker(&s, &[&panics, &export]));

    let first = wait_for(&s, &first, "the panicking run to end", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(
        (first.status, first.error.as_deref()),
        (
            RunStatus::Failed,
            Some("internal error in connector; see the server log")
        )
    );
    let second = wait_for(&s, &second, "the next run to end", |r| r.status.is_final()).await;
    assert_eq!(second.status, RunStatus::Success);
    assert!(!handle.is_finished(), "the worker is still running");
    assert_eq!((panics.calls(), export.calls()), (1, 1));
    shut_down(tx, handle).await;
}

/// Everything logged in this test process, through one global subscriber (a thread-local one
/// would miss events whose callsites other tests' threads had registered as disabled).
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    use tracing_subscriber::fmt::MakeWriter;

    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();

    #[derive(Clone, Copy)]
    struct Buffer(&'static Mutex<Vec<u8>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            *self
        }
    }

    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::default());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(Buffer(logs))
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        logs
    })
}

#[tokio::test]
async fn secrets_reach_the_connector_but_never_the_log() {
    let logs = captured_logs();
    let (s, inst) = setup().await;
    let w = worker(
        &s,
        &[&TestConnector::new("test_secret_export", Behaviour::Export)],
    );
    let run = queued(&s, inst, "test_secret_export").await;
    w.run_once().await.unwrap();
    assert_eq!(
        s.run(inst, run.id).await.unwrap().status,
        RunStatus::Success,
        "the token reached the connector"
    );

    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let ours: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains(&format!("run_id={} kind=test_secret_export", run.id)))
        .collect();
    assert!(ours.iter().any(|l| l.contains("run claimed")), "{logged}");
    assert!(ours.iter().any(|l| l.contains("run finished")), "{logged}");
    assert!(
        ours.iter()
            .any(|l| l.contains(r#"secrets: {"token": ***}"#)),
        "{logged}"
    );
    // Every test's integration has this token; no worker of any of them logged it.
    assert!(!logged.contains("s3cret"), "{logged}");
}

// ---------------------------------------------------------------------------------------------
// Scheduling

#[tokio::test]
async fn scheduling_queues_one_run_per_slot() {
    let (s, inst) = setup().await;
    let w = worker(&s, &[&TestConnector::new("test_export", Behaviour::Export)]);
    let i = integration(&s, inst, "test_export", json!({"every_minutes": 60}), true).await;
    let schedule = Schedule::EveryMinutes(60);
    let slot = schedule
        .latest_slot(i.created_at + SignedDuration::from_hours(2))
        .unwrap();

    assert_eq!(
        w.schedule_due(slot + SignedDuration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        w.schedule_due(slot + SignedDuration::from_secs(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        w.schedule_due(slot + SignedDuration::from_mins(59))
            .await
            .unwrap(),
        0
    );
    let runs = runs_of(&s, &i).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].trigger, runs[0].scheduled_for, runs[0].status),
        (Trigger::Scheduled, Some(slot), RunStatus::Queued)
    );

    assert_eq!(
        w.schedule_due(slot + SignedDuration::from_mins(60))
            .await
            .unwrap(),
        1,
        "the next slot"
    );
    let slots: Vec<_> = runs_of(&s, &i)
        .await
        .iter()
        .map(|r| r.scheduled_for)
        .collect();
    assert_eq!(
        slots,
        [Some(slot + SignedDuration::from_hours(1)), Some(slot)]
    );
}

#[tokio::test]
async fn only_enabled_scheduled_integrations_with_a_connector_are_scheduled() {
    let (s, inst) = setup().await;
    let w = worker(&s, &[&TestConnector::new("test_export", Behaviour::Export)]);
    let enabled = integration(&s, inst, "test_export", json!({"every_minutes": 15}), true).await;
    let disabled = integration(&s, inst, "test_export", json!({"every_minutes": 15}), false).await;
    let unscheduled = integration(&s, inst, "test_export", json!({}), true).await;
    let unknown = integration(
        &s,
        inst,
        "not_installed",
        json!({"every_minutes": 15}),
        true,
    )
    .await;
    let later = Timestamp::now() + SignedDuration::from_hours(1);

    assert_eq!(w.schedule_due(later).await.unwrap(), 1);
    assert_eq!(
        w.schedule_due(later + SignedDuration::from_mins(15))
            .await
            .unwrap(),
        1
    );
    assert_eq!(runs_of(&s, &enabled).await.len(), 2);
    for i in [&disabled, &unscheduled, &unknown] {
        assert!(runs_of(&s, i).await.is_empty(), "{} was scheduled", i.name);
    }
}

#[tokio::test]
async fn a_slot_that_began_before_the_integration_existed_is_not_run() {
    let (s, inst) = setup().await;
    let w = worker(&s, &[&TestConnector::new("test_export", Behaviour::Export)]);
    // Daily at midnight UTC: today's slot began before the integration was created.
    let i = integration(
        &s,
        inst,
        "test_export",
        json!({"every_minutes": 1440}),
        true,
    )
    .await;
    let today = Schedule::EveryMinutes(1440)
        .latest_slot(i.created_at)
        .unwrap();
    assert!(today < i.created_at);

    assert_eq!(w.schedule_due(i.created_at).await.unwrap(), 0);
    assert_eq!(
        w.schedule_due(i.created_at + SignedDuration::from_mins(1))
            .await
            .unwrap(),
        0
    );
    assert!(runs_of(&s, &i).await.is_empty(), "no backfill");

    let tomorrow = today + SignedDuration::from_hours(24);
    assert_eq!(w.schedule_due(tomorrow).await.unwrap(), 1);
    assert_eq!(runs_of(&s, &i).await[0].scheduled_for, Some(tomorrow));
}

// ---------------------------------------------------------------------------------------------
// Concurrency, leases and shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_execute_each_of_20_runs_exactly_once() {
    let (s, inst) = setup().await;
    let ids = Arc::new(Mutex::new(Vec::new()));
    let recorder = TestConnector::new("test_record", Behaviour::Record(ids.clone()));
    let mut expected = Vec::new();
    for _ in 0..20 {
        expected.push(queued_without_secrets(&s, inst, "test_record").await);
    }
    // The second worker has its own connections, as a second process would (its master key
    // differs, hence integrations without secrets).
    let other_store = Store::connect(&s.url, SecretBox::new(MasterKey::generate()))
        .await
        .unwrap();
    let a = Worker::new(s.store.clone(), registry(&[&recorder]), config("w-a"));
    let b = Worker::new(other_store.clone(), registry(&[&recorder]), config("w-b"));
    let (tx_a, handle_a) = start(a);
    let (tx_b, handle_b) = start(b);

    for run in &expected {
        let done = wait_for(&s, run, "every run to end", |r| r.status.is_final()).await;
        assert_eq!(
            (done.status, done.attempt),
            (RunStatus::Success, 1),
            "{done:?}"
        );
    }
    shut_down(tx_a, handle_a).await;
    shut_down(tx_b, handle_b).await;
    let mut got = ids.lock().unwrap().clone();
    got.sort_unstable();
    let expected: Vec<i64> = expected.iter().map(|r| r.id).collect();
    assert_eq!(got, expected, "each run executed exactly once");
    other_store.close().await;
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_stops_and_records_nothing() {
    let (s, inst) = setup().await;
    let slow = TestConnector::new("test_slow", Behaviour::WaitForCancel(OnCancel::Report));
    let w = worker(&s, &[&slow]);
    let run = queued(&s, inst, "test_slow").await;
    let running = tokio::spawn({
        let w = w.clone();
        async move { w.run_once().await }
    });
    wait_until("the connector to start", || {
        slow.started.load(Ordering::SeqCst)
    })
    .await;

    // The run looks stale to another worker, which re-queues and claims it.
    let (requeued, failed) = s
        .requeue_stale_runs(Timestamp::now() + SignedDuration::from_hours(1), 10)
        .await
        .unwrap();
    assert_eq!((requeued, failed), (1, 0));
    let stolen = s.claim_run("thief").await.unwrap().unwrap();
    assert_eq!((stolen.id, stolen.attempt), (run.id, 2));

    let ran = tokio::time::timeout(DEADLINE, running)
        .await
        .expect("the first worker stops")
        .unwrap()
        .unwrap();
    assert_eq!(ran, Some(run.id));
    assert!(
        slow.saw_cancel.load(Ordering::SeqCst),
        "the connector was asked to stop"
    );
    let now = s.run(inst, run.id).await.unwrap();
    assert_eq!(
        (now.status, now.rows, now.finished_at, now.attempt),
        (RunStatus::Running, 0, None, 2),
        "the first worker's report (7 rows) was not recorded"
    );
    let outcome = RunOutcome {
        status: RunStatus::Success,
        rows: 1,
        error: None,
        detail: json!({}),
        credentials_refused: false,
    };
    assert!(
        s.finish_run(run.id, "thief", &outcome).await.unwrap(),
        "the new holder still holds the lease"
    );
}

#[tokio::test]
async fn shutdown_releases_a_run_whose_connector_ignores_cancellation() {
    let (s, inst) = setup().await;
    let stubborn = TestConnector::new("test_stubborn", Behaviour::WaitForCancel(OnCancel::Ignore));
    let run = queued(&s, inst, "test_stubborn").await;
    let (tx, handle) = start(worker(&s, &[&stubborn]));
    wait_until("the connector to start", || {
        stubborn.started.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(
        s.run(inst, run.id).await.unwrap().status,
        RunStatus::Running
    );

    shut_down(tx, handle).await;
    assert!(
        stubborn.saw_cancel.load(Ordering::SeqCst),
        "the connector was asked to stop"
    );
    let now = s.run(inst, run.id).await.unwrap();
    assert_eq!(
        (now.status, now.finished_at, now.error),
        (RunStatus::Queued, None, None)
    );
    let again = s.claim_run("another-worker").await.unwrap().unwrap();
    assert_eq!(
        (again.id, again.attempt),
        (run.id, 2),
        "another worker can take it"
    );
}

#[tokio::test]
async fn shutdown_records_the_report_of_a_connector_that_stops_in_time() {
    let (s, inst) = setup().await;
    let polite = TestConnector::new("test_polite", Behaviour::WaitForCancel(OnCancel::Report));
    let run = queued(&s, inst, "test_polite").await;
    let (tx, handle) = start(worker(&s, &[&polite]));
    wait_until("the connector to start", || {
        polite.started.load(Ordering::SeqCst)
    })
    .await;
    let claimed = s.run(inst, run.id).await.unwrap();
    let first_beat = claimed.heartbeat_at.unwrap();
    wait_for(&s, &run, "a heartbeat during the run", |r| {
        r.heartbeat_at.is_some_and(|t| t > first_beat)
    })
    .await;

    shut_down(tx, handle).await;
    let done = s.run(inst, run.id).await.unwrap();
    assert_eq!(
        (done.status, done.rows, done.detail),
        (RunStatus::Success, 7, json!({"stopped_early": true}))
    );
    assert!(polite.saw_cancel.load(Ordering::SeqCst));
}

#[tokio::test]
async fn shutdown_requeues_a_run_whose_connector_gives_up() {
    let (s, inst) = setup().await;
    let quitter = TestConnector::new("test_quitter", Behaviour::WaitForCancel(OnCancel::GiveUp));
    let run = queued(&s, inst, "test_quitter").await;
    let (tx, handle) = start(worker(&s, &[&quitter]));
    wait_until("the connector to start", || {
        quitter.started.load(Ordering::SeqCst)
    })
    .await;

    shut_down(tx, handle).await;
    assert!(quitter.saw_cancel.load(Ordering::SeqCst));
    let now = s.run(inst, run.id).await.unwrap();
    assert_eq!((now.status, now.error), (RunStatus::Queued, None));
    assert_eq!(quitter.calls(), 1, "a stopped run is not retried in place");
}

// ---------------------------------------------------------------------------------------------
// Metrics

#[derive(Default)]
struct Captured {
    counters: Mutex<BTreeMap<String, u64>>,
    histograms: Mutex<BTreeMap<String, usize>>,
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<&'static Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured: &'static Captured = Box::leak(Box::default());
        metrics::set_global_recorder(Capture(captured)).expect("no other recorder");
        captured
    })
}

struct Capture(&'static Captured);
struct Handle(&'static Captured, String);

fn key_text(key: &metrics::Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .0
            .counters
            .lock()
            .unwrap()
            .entry(self.1.clone())
            .or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.0
            .counters
            .lock()
            .unwrap()
            .insert(self.1.clone(), value);
    }
}

impl metrics::HistogramFn for Handle {
    fn record(&self, value: f64) {
        assert!(value >= 0.0);
        *self
            .0
            .histograms
            .lock()
            .unwrap()
            .entry(self.1.clone())
            .or_default() += 1;
    }
}

impl metrics::Recorder for Capture {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::new(Handle(self.0, key_text(key))))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::new(Handle(self.0, key_text(key))))
    }
}

#[tokio::test]
async fn finished_runs_are_counted_and_timed_by_kind_and_status() {
    let captured = captured();
    let (s, inst) = setup().await;
    let w = worker(
        &s,
        &[
            &TestConnector::new("metrics_ok", Behaviour::Export),
            &TestConnector::new("metrics_fail", Behaviour::Fail),
        ],
    );
    queued(&s, inst, "metrics_ok").await;
    queued(&s, inst, "metrics_fail").await;
    queued(&s, inst, "metrics_ok").await;
    while w.run_once().await.unwrap().is_some() {}

    let counters = captured.counters.lock().unwrap().clone();
    assert_eq!(
        counters.get("ferry_runs_finished_total{kind=metrics_ok,status=success}"),
        Some(&2),
        "{counters:?}"
    );
    assert_eq!(
        counters.get("ferry_runs_finished_total{kind=metrics_fail,status=failed}"),
        Some(&1),
        "{counters:?}"
    );
    let histograms = captured.histograms.lock().unwrap().clone();
    assert_eq!(
        histograms.get("ferry_run_duration_seconds{kind=metrics_ok}"),
        Some(&2),
        "{histograms:?}"
    );
}

/// An on-change kind gets a `change` run when contacts changed past its watermark: one at a
/// time, none while its last run failed recently, none when disabled.
#[tokio::test]
async fn contact_changes_queue_one_change_run_for_on_change_kinds() {
    let (s, inst) = setup().await;
    let pusher = TestConnector::new("onchange_push", Behaviour::Fail);
    let other = TestConnector::new("export", Behaviour::Export);
    let on = integration(&s, inst, "onchange_push", json!({}), true).await;
    let _off = integration(&s, inst, "onchange_push", json!({}), false).await;
    let _plain = integration(&s, inst, "export", json!({}), true).await;
    let w = worker(&s, &[&pusher, &other]);
    let now = jiff::Timestamp::now();
    assert_eq!(
        w.queue_changed(now).await.unwrap(),
        0,
        "nothing changed yet"
    );

    let schema = s.field_schema(inst).await.unwrap();
    let write = ferry_core::contact::ContactWrite::parse(
        &schema,
        [
            ("first_name", Raw::Str("Ana")),
            ("last_name", Raw::Str("Diaz")),
            ("phone", Raw::Str("6175550101")),
        ],
    )
    .unwrap();
    s.apply_contact_writes(inst, &[write], ferry_store::WriteKind::Import)
        .await
        .unwrap();
    assert_eq!(
        w.queue_changed(now).await.unwrap(),
        1,
        "one run for the enabled on-change instance"
    );
    assert_eq!(
        w.queue_changed(now).await.unwrap(),
        0,
        "a queued change run is enough"
    );
    let runs = s
        .list_runs(
            inst,
            &RunQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].integration_id, runs[0].trigger),
        (on.id, Trigger::Change)
    );

    // The run fails: no new change run until the backoff has passed.
    assert_eq!(w.run_once().await.unwrap(), Some(runs[0].id));
    assert_eq!(
        w.queue_changed(now).await.unwrap(),
        0,
        "its last run failed a moment ago"
    );
    let later = now
        .checked_add(jiff::SignedDuration::from_secs(301))
        .unwrap();
    assert_eq!(
        w.queue_changed(later).await.unwrap(),
        1,
        "after the backoff it is tried again"
    );

    // Once the watermark has caught up, nothing is queued.
    s.set_integration_state(
        inst,
        on.id,
        &json!({"sent_up_to": s.current_change_seq(inst).await.unwrap()}),
    )
    .await
    .unwrap();
    let queued = s
        .list_runs(
            inst,
            &RunQuery {
                status: Some(RunStatus::Queued),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(w.run_once().await.unwrap(), Some(queued[0].id));
    assert_eq!(
        w.queue_changed(later).await.unwrap(),
        0,
        "the watermark is current"
    );
}

/// Up to `concurrency` runs go at once, in claim order; the others wait in the queue; and two
/// runs of one integration never overlap (the second starts after the first ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_up_to_its_concurrency_at_once_and_never_one_integration_twice() {
    let (s, inst) = setup().await;
    let gate = Arc::new(Gate::default());
    let held = TestConnector::new("test_held", Behaviour::Hold(gate.clone()));
    let a = integration(&s, inst, "test_held", json!({"n": 1}), true).await;
    let b = integration(&s, inst, "test_held", json!({"n": 2}), true).await;
    let c = integration(&s, inst, "test_held", json!({"n": 3}), true).await;
    let (a1, b1, c1) = (
        manual_run(&s, &a).await,
        manual_run(&s, &b).await,
        manual_run(&s, &c).await,
    );
    let w = Worker::new(
        s.store.clone(),
        registry(&[&held]),
        WorkerConfig {
            concurrency: 2,
            ..config("w-concurrent")
        },
    );
    let (tx, handle) = start(w);
    wait_until("two runs to be inside", || {
        gate.inside.load(Ordering::SeqCst) == 2
    })
    .await;
    // A second run of `a` is queued while its first is running.
    let a2 = manual_run(&s, &a).await;
    assert_ne!(a2.id, a1.id);
    for (run, status) in [
        (&a1, RunStatus::Running),
        (&b1, RunStatus::Running),
        (&c1, RunStatus::Queued),
        (&a2, RunStatus::Queued),
    ] {
        assert_eq!(
            s.run(inst, run.id).await.unwrap().status,
            status,
            "run {}",
            run.id
        );
    }

    gate.open.store(true, Ordering::SeqCst);
    for run in [&a1, &b1, &c1, &a2] {
        let done = wait_for(&s, run, "every run to end", |r| r.status.is_final()).await;
        assert_eq!(done.status, RunStatus::Success, "{done:?}");
    }
    shut_down(tx, handle).await;
    assert_eq!(
        gate.most.load(Ordering::SeqCst),
        2,
        "never more than the concurrency"
    );
    let of_a: Vec<bool> = gate
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| *id == a.id)
        .map(|(_, entered)| *entered)
        .collect();
    assert_eq!(of_a, [true, false, true, false], "a's runs did not overlap");
}

/// An idle worker that would not poll for an hour still takes a run queued after it went idle,
/// at once: the store announces queued runs in-process, and on PostgreSQL to every process
/// through `LISTEN`/`NOTIFY` (there the run is queued through a store of its own, as another
/// process would).
#[tokio::test]
async fn a_queued_run_wakes_an_idle_worker_without_a_poll() {
    let (s, inst) = setup().await;
    let export = TestConnector::new("test_export", Behaviour::Export);
    let hour = Duration::from_secs(3600);
    let w = Worker::new(
        s.clone(),
        registry(&[&export]),
        WorkerConfig {
            poll_interval: hour,
            heartbeat_interval: hour,
            ..config("w1")
        },
    );
    let i = integration(&s, inst, "test_export", json!({}), true).await;
    let (tx, handle) = start(w);
    // The worker's first look finds the queue empty.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = match s.backend() {
        ferry_store::Backend::Postgres => Some(
            Store::connect(&s.url, SecretBox::new(MasterKey::generate()))
                .await
                .unwrap(),
        ),
        ferry_store::Backend::Sqlite => None,
    };
    let run = manual_run(other.as_ref().unwrap_or(&s), &i).await;
    let done = wait_for(&s, &run, "the announced run to finish", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(done.status, RunStatus::Success);
    shut_down(tx, handle).await;
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// A webhook receiver on loopback that answers 500 to its first request and 200 after.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl Hook {
    async fn start() -> Hook {
        let got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap();
                    seen.push((headers, body));
                    if seen.len() == 1 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Hook { url, got }
    }
}

/// Messages an SMTP sink took: recipients and DATA.
type Mails = Arc<Mutex<Vec<(Vec<String>, String)>>>;

/// An SMTP server on loopback that takes every message and keeps its DATA.
struct SmtpSink {
    addr: std::net::SocketAddr,
    mails: Mails,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mails: Mails = Arc::default();
        let kept = mails.clone();
        tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = conn.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    let mut rcpt = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let answer: &[u8] = if upper.starts_with("EHLO") {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            rcpt.push(line[8..].trim().to_string());
                            b"250 OK\r\n"
                        } else if upper.starts_with("DATA") {
                            write.write_all(b"354 go on\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            kept.lock().unwrap().push((std::mem::take(&mut rcpt), data));
                            b"250 queued\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 OK\r\n"
                        };
                        write.write_all(answer).await.unwrap();
                    }
                });
            }
        });
        SmtpSink { addr, mails }
    }
}

/// A failed run, a run over the failed-rows threshold and a refused credential each send their
/// alert to the webhook (signed, and tried again after a 500 under the same delivery ID) and
/// by email; a run that failed below the threshold says only that it failed.
#[tokio::test]
async fn alerts_reach_a_signed_webhook_and_email_and_are_retried() {
    use ferry_store::{AlertSettingsInput, SecretChange};
    let (s, inst) = setup().await;
    let hook = Hook::start().await;
    let smtp = SmtpSink::start().await;
    let secret = "0123456789abcdef-alerts";
    s.set_alert_settings(
        inst,
        &AlertSettingsInput {
            webhook_url: Some(hook.url.clone()),
            webhook_secret: SecretChange::Set(secret.into()),
            emails: vec!["ops@example.edu".into()],
            on_run_failed: true,
            failed_rows_threshold: Some(2),
            on_credentials_refused: true,
        },
    )
    .await
    .unwrap();
    let fail = TestConnector::new("test_fail", Behaviour::Fail);
    let export = TestConnector::new("test_export", Behaviour::Export);
    let refused = TestConnector::new("test_refused", Behaviour::Refused);
    let w = Worker::new(
        s.clone(),
        registry(&[&fail, &export, &refused]),
        WorkerConfig {
            smtp: Some(ferry_worker::alerts::SmtpSettings {
                url: format!("smtp://{}", smtp.addr),
                from: "Ferry <ferry@example.edu>".into(),
            }),
            ..config("w1")
        },
    );
    let mut runs = Vec::new();
    for kind in ["test_fail", "test_export", "test_refused"] {
        runs.push(queued(&s, inst, kind).await);
        w.run_once().await.unwrap();
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        w.deliver_alerts().await.unwrap();
        let alerts = s.list_alerts(inst, 100).await.unwrap();
        if alerts.len() == 6 && alerts.iter().all(|a| a.delivered_at.is_some()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts not delivered: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut alerts = s.list_alerts(inst, 100).await.unwrap();
    alerts.sort_by_key(|a| (a.run_id, a.channel.clone()));
    let summary: Vec<(Option<i64>, &str, &str)> = alerts
        .iter()
        .map(|a| (a.run_id, a.event.as_str(), a.channel.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(runs[0].id), "run_failed", "email"),
            (Some(runs[0].id), "run_failed", "webhook"),
            (Some(runs[1].id), "failed_rows", "email"),
            (Some(runs[1].id), "failed_rows", "webhook"),
            (Some(runs[2].id), "credentials_refused", "email"),
            (Some(runs[2].id), "credentials_refused", "webhook"),
        ]
    );

    // Four webhook requests: the first answered 500 and was sent again with the same ID.
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "{got:?}");
    let header = |h: &axum::http::HeaderMap, n: &str| h[n].to_str().unwrap().to_string();
    let first_id = header(&got[0].0, "x-ferry-delivery");
    let again: Vec<&(axum::http::HeaderMap, String)> = got[1..]
        .iter()
        .filter(|(h, _)| header(h, "x-ferry-delivery") == first_id)
        .collect();
    assert_eq!(again.len(), 1, "the failed delivery is sent again once");
    assert_eq!(again[0].1, got[0].1, "with the same body");
    let retried = alerts
        .iter()
        .find(|a| a.id.to_string() == header(&got[0].0, "x-ferry-delivery"))
        .unwrap();
    assert_eq!(retried.attempts, 2);
    for (headers, body) in &got {
        let expected =
            ferry_worker::alerts::signature(secret, &header(headers, "x-ferry-timestamp"), body);
        assert_eq!(header(headers, "x-ferry-signature"), expected);
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["event"], header(headers, "x-ferry-event"));
        assert_eq!(v["institution"], "state-u");
    }
    let bodies: Vec<Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    let failed = bodies.iter().find(|b| b["event"] == "run_failed").unwrap();
    assert_eq!(failed["run"]["failed_rows"], 1);
    assert!(failed["run"]["error"].as_str().unwrap().contains("403"));
    let over = bodies.iter().find(|b| b["event"] == "failed_rows").unwrap();
    assert_eq!(
        (
            over["run"]["status"].as_str(),
            over["run"]["failed_rows"].as_i64()
        ),
        (Some("success"), Some(2))
    );

    // Three emails, one per alert, to the address set.
    let mails = smtp.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert!(mails.iter().all(|(to, _)| to == &["<ops@example.edu>"]));
    assert!(
        mails
            .iter()
            .any(|(_, d)| d.contains("needs its credentials entered again"))
    );
    // The secret is in no email and in no webhook body.
    assert!(mails.iter().all(|(_, d)| !d.contains(secret)));
    assert!(got.iter().all(|(_, b)| !b.contains(secret)));
}

/// Without alert settings nothing is queued; the settings are checked field by field and keep
/// the signing secret write-only (kept when left out, removed on request).
#[tokio::test]
async fn alert_settings_are_validated_and_the_secret_is_write_only() {
    use ferry_store::{AlertSettingsInput, SecretChange, StoreError};
    let (s, inst) = setup().await;
    let fail = TestConnector::new("test_fail", Behaviour::Fail);
    let w = worker(&s, &[&fail]);
    queued(&s, inst, "test_fail").await;
    w.run_once().await.unwrap();
    assert!(s.list_alerts(inst, 100).await.unwrap().is_empty());

    let good = AlertSettingsInput {
        webhook_url: Some("https://hooks.example.edu/ferry".into()),
        webhook_secret: SecretChange::Set("0123456789abcdef".into()),
        emails: vec![],
        on_run_failed: true,
        failed_rows_threshold: None,
        on_credentials_refused: true,
    };
    let saved = s.set_alert_settings(inst, &good).await.unwrap();
    assert!(saved.webhook_secret_set);
    let bad = AlertSettingsInput {
        webhook_url: Some("not a url".into()),
        webhook_secret: SecretChange::Remove,
        ..good.clone()
    };
    match s.set_alert_settings(inst, &bad).await {
        Err(StoreError::Invalid { field, .. }) => assert_eq!(field, "webhook_url"),
        other => panic!("{other:?}"),
    }
    // Nothing of the refused save was applied.
    assert_eq!(s.alert_settings(inst).await.unwrap(), saved);
    let kept = s
        .set_alert_settings(
            inst,
            &AlertSettingsInput {
                webhook_secret: SecretChange::Keep,
                ..good.clone()
            },
        )
        .await
        .unwrap();
    assert!(kept.webhook_secret_set);
    assert_eq!(
        s.alert_webhook_secret(inst).await.unwrap().as_deref(),
        Some("0123456789abcdef")
    );
    let removed = s
        .set_alert_settings(
            inst,
            &AlertSettingsInput {
                webhook_secret: SecretChange::Remove,
                ..good
            },
        )
        .await
        .unwrap();
    assert!(!removed.webhook_secret_set);
    assert_eq!(s.alert_webhook_secret(inst).await.unwrap(), None);
}
