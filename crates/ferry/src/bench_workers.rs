//! `ferry bench workers`: how the run queue scales out on PostgreSQL. N integrations each get one
//! queued run whose work waits on a remote (an HTTP server in this process that answers after a
//! fixed latency and counts every call by run); then 1, 2 and 4 worker processes (`ferry bench
//! workers-child`, each with the default concurrency) take the queue from a fresh schema. It
//! prints runs per second for each, the ratio of 4 workers to 1 (goal ≥ 3×), and checks on the
//! remote's side that no run's work was done twice and none was lost.
//!
//! The runs belong to a connector kind that only the benchmark's processes register
//! (`bench_remote`): what is measured is the queue (claims, leases, heartbeats, wake-ups), not a
//! platform's API.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use ferry_connectors::describe::{Category, Description, Platform};
use ferry_connectors::{
    ConfigError, ConnectionReport, Connector, ConnectorContext, Registry, RunContext, RunError,
    RunReport,
};
use ferry_core::run::{RunStatus, Trigger};
use ferry_store::{MasterKey, NewIntegration, NewRun, SecretBox, Store};
use ferry_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::process::{Child, Command};

const KIND: &str = "bench_remote";
const MASTER_KEY_ENV: &str = "FERRY_MASTER_KEY";
/// The speed-up at 4 workers over 1 that we aim for (at least).
const GOAL: f64 = 3.0;

/// The remote: answers `POST /work/{run}` after the latency, counting calls per run.
#[derive(Clone, Default)]
struct Remote {
    calls: Arc<Mutex<HashMap<i64, u32>>>,
}

async fn start_remote(latency: Duration) -> Result<(String, Remote)> {
    let remote = Remote::default();
    let counts = remote.clone();
    let app = axum::Router::new().route(
        "/work/{run}",
        axum::routing::post(move |axum::extract::Path(run): axum::extract::Path<i64>| {
            let counts = counts.clone();
            async move {
                tokio::time::sleep(latency).await;
                *counts
                    .calls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(run)
                    .or_default() += 1;
                axum::Json(json!({"done": run}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, remote))
}

/// The benchmark's connector: a run asks the remote to do the run's work once.
struct BenchRemote {
    http: reqwest::Client,
    remote: String,
}

#[async_trait]
impl Connector for BenchRemote {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> &'static str {
        "Benchmark remote"
    }

    fn validate_config(&self, _config: &Value) -> Result<(), ConfigError> {
        Ok(())
    }

    fn describe(&self) -> Description {
        Description::new(
            KIND,
            "Benchmark remote",
            Category::CrmSync,
            Platform {
                id: "bench",
                name: "Benchmark",
                summary: "Work that waits on a remote, for `ferry bench workers` only.",
                page: None,
            },
        )
    }

    async fn test_connection(&self, _ctx: &ConnectorContext) -> Result<ConnectionReport, RunError> {
        Ok(ConnectionReport::new("the benchmark's remote"))
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, RunError> {
        let url = format!("{}/work/{}", self.remote, ctx.run().id);
        let answer = self
            .http
            .post(&url)
            .send()
            .await
            .map_err(|e| RunError::retryable(format!("the remote: {e}")))?;
        if !answer.status().is_success() {
            return Err(RunError::retryable(format!(
                "the remote answered {}",
                answer.status()
            )));
        }
        Ok(RunReport::success(1))
    }
}

/// A fresh schema in the database at `base`, migrated; returns its URL.
async fn fresh_schema(base: &str, name: &str, secrets: SecretBox) -> Result<(String, Store)> {
    let mut admin = sqlx::PgConnection::connect(base)
        .await
        .with_context(|| format!("cannot connect to {}", ferry_store::redact_url(base)))?;
    for sql in [
        "SET client_min_messages = warning".to_string(),
        format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
        format!("CREATE SCHEMA {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await?;
    }
    admin.close().await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
    let store = Store::connect(&url, secrets).await?;
    store.migrate().await?;
    Ok((url, store))
}

async fn drop_schema(base: &str, name: &str) -> Result<()> {
    let mut admin = sqlx::PgConnection::connect(base).await?;
    for sql in [
        "SET client_min_messages = warning".to_string(),
        format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await?;
    }
    admin.close().await?;
    Ok(())
}

/// One round: `runs` queued runs, `workers` processes; returns the wall time until every run
/// ended.
async fn round(
    base: &str,
    runs: u64,
    workers: usize,
    remote_url: &str,
    remote: &Remote,
) -> Result<Duration> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let secrets = SecretBox::new(MasterKey::parse(&key_hex).map_err(anyhow::Error::msg)?);
    let schema = format!("ferry_bench_workers_{}", std::process::id());
    let (url, store) = fresh_schema(base, &schema, secrets).await?;
    let inst = store
        .create_institution("bench", "Benchmark University", None)
        .await?
        .id;
    for i in 0..runs {
        let integration = store
            .create_integration(
                inst,
                NewIntegration {
                    kind: KIND.into(),
                    name: format!("Remote work {i}"),
                    description: String::new(),
                    enabled: true,
                    config: json!({}),
                    secrets: None,
                },
            )
            .await?;
        store
            .enqueue_run(&NewRun {
                institution_id: inst,
                integration_id: integration.id,
                kind: KIND.into(),
                trigger: Trigger::Manual,
                scheduled_for: None,
            })
            .await?
            .context("a run was queued twice")?;
    }
    remote
        .calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();

    let exe = std::env::current_exe().context("cannot find the ferry executable")?;
    let t = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    for _ in 0..workers {
        children.push(
            Command::new(&exe)
                .args(["--log", "warn", "bench", "workers-child", "--database-url"])
                .arg(&url)
                .args(["--remote", remote_url])
                .env(MASTER_KEY_ENV, &key_hex)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a worker process")?,
        );
    }
    let wall = loop {
        let open = store
            .count_runs(inst, &[RunStatus::Queued, RunStatus::Running])
            .await?;
        if open == 0 {
            break t.elapsed();
        }
        for c in &mut children {
            if let Some(status) = c.try_wait()? {
                bail!("a worker process ended early ({status})");
            }
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("{open} runs still open after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for c in &mut children {
        let _ = c.kill().await;
    }

    let failed = store
        .count_runs(inst, &[RunStatus::Failed, RunStatus::Skipped])
        .await?;
    store.close().await;
    drop_schema(base, &schema).await?;

    let calls = remote
        .calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let twice = calls.values().filter(|&&n| n > 1).count();
    let done = calls.len() as u64;
    if failed > 0 || twice > 0 || done != runs {
        bail!(
            "{workers} workers: {failed} runs did not succeed, {twice} runs' work was done more than once, {} runs' work never reached the remote",
            runs.saturating_sub(done)
        );
    }
    Ok(wall)
}

/// `ferry bench workers`.
pub async fn workers(runs: u64, latency_ms: u64, database_url: &str) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !database_url.starts_with("postgres") {
        bail!("bench workers needs PostgreSQL: --database-url postgres://…");
    }
    let latency = Duration::from_millis(latency_ms);
    let (remote_url, remote) = start_remote(latency).await?;
    eprintln!(
        "{runs} queued runs, each waiting {latency_ms} ms on the remote; every worker runs up to {} at once",
        WorkerConfig::default().concurrency
    );
    let mut rates: Vec<(usize, f64)> = Vec::new();
    for workers in [1usize, 2, 4] {
        let wall = round(database_url, runs, workers, &remote_url, &remote).await?;
        let rate = runs as f64 / wall.as_secs_f64();
        println!(
            "{workers} worker process{}: {runs} runs in {:.2} s, {rate:.1} runs/s; every run's work done exactly once",
            if workers == 1 { "" } else { "es" },
            wall.as_secs_f64()
        );
        rates.push((workers, rate));
    }
    let one = rates[0].1;
    for (workers, rate) in &rates[1..] {
        println!("{workers} workers / 1: {:.2}x", rate / one);
    }
    let four = rates[2].1 / one;
    println!(
        "goal: >= {GOAL:.1}x at 4 workers, 0 runs done twice, none lost: {}",
        if four >= GOAL { "met" } else { "NOT met" }
    );
    Ok(())
}

/// `ferry bench workers-child`: a worker process of the benchmark, until killed.
pub async fn workers_child(database_url: &str, remote: &str) -> Result<()> {
    let key =
        std::env::var(MASTER_KEY_ENV).with_context(|| format!("{MASTER_KEY_ENV} is not set"))?;
    let key = MasterKey::parse(&key).map_err(anyhow::Error::msg)?;
    let store = Store::connect(database_url, SecretBox::new(key)).await?;
    let mut registry = Registry::empty();
    registry
        .register(Arc::new(BenchRemote {
            http: reqwest::Client::new(),
            remote: remote.to_string(),
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let worker = Worker::new(store, registry, WorkerConfig::default());
    worker.run(std::future::pending()).await;
    Ok(())
}
