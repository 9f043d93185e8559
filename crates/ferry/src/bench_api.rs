//! `ferry bench api-under-import`: the latency of single-contact writes (`PATCH
//! /api/v1/contacts/{id}`) and reads (`GET /api/v1/contacts/{id}`) from 32 HTTP connections to
//! Ferry's API, first on their own for a while, then while an N-row CSV import (1,000,000 by
//! default) runs in the same server process. It prints p50 and p99 of both, with and without
//! the import (goal: p99 of writes during the import ≤ 250 ms on SQLite).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_connectors::Registry;
use ferry_core::tenancy::Role;
use ferry_store::{MasterKey, SecretBox, Store};
use ferry_web::{AppState, WebConfig};
use serde_json::json;

use super::{load_note, thousands, write_csv};

/// Contacts the clients write and read (imported before the measurement).
const TARGETS: u64 = 10_000;
/// The p99 of single writes during the import we aim for (at most).
const GOAL: Duration = Duration::from_millis(250);

/// Latencies of one kind of request.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn quantile(&mut self, q: f64) -> Duration {
        self.0.sort_unstable();
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[i]
    }
}

/// Runs `clients` connections, each writing then reading a contact in turn, until `stop`.
async fn load(
    base: String,
    token: String,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Result<(Latencies, Latencies, u64)> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (base, token, stop) = (base.to_string(), token.to_string(), stop.clone());
        tasks.spawn(async move {
            // One client per task: its own connection, kept alive.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let (mut writes, mut reads, mut errors) = (Vec::new(), Vec::new(), 0u64);
            let mut n: u64 = c as u64;
            while !stop.load(Ordering::Relaxed) {
                let id = 1 + (n * 7919) % TARGETS;
                n += 1;
                let t = Instant::now();
                let r = http
                    .patch(format!("{base}/api/v1/contacts/{id}"))
                    .bearer_auth(&token)
                    .json(&json!({"first_name": format!("Name{n}")}))
                    .send()
                    .await?;
                if r.status().is_success() {
                    writes.push(t.elapsed());
                } else {
                    errors += 1;
                }
                let _ = r.bytes().await;
                let t = Instant::now();
                let r = http
                    .get(format!("{base}/api/v1/contacts/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await?;
                if r.status().is_success() {
                    reads.push(t.elapsed());
                } else {
                    errors += 1;
                }
                let _ = r.bytes().await;
            }
            anyhow::Ok((writes, reads, errors))
        });
    }
    let (mut writes, mut reads, mut errors) = (Latencies::default(), Latencies::default(), 0);
    while let Some(done) = tasks.join_next().await {
        let (w, r, e) = done??;
        writes.0.extend(w);
        reads.0.extend(r);
        errors += e;
    }
    Ok((writes, reads, errors))
}

/// Splits a generated CSV into its first `first` rows and the rest, each with the header.
fn split_csv(path: &Path, first: u64) -> Result<(Vec<u8>, Vec<u8>)> {
    let data = std::fs::read(path)?;
    let mut lines = data.split_inclusive(|&b| b == b'\n');
    let header = lines.next().context("an empty CSV")?.to_vec();
    let (mut head, mut rest) = (header.clone(), header);
    for (i, line) in lines.enumerate() {
        if (i as u64) < first {
            head.extend_from_slice(line);
        } else {
            rest.extend_from_slice(line);
        }
    }
    Ok((head, rest))
}

/// `ferry bench api-under-import`.
pub async fn api_under_import(rows: u64, clients: usize, seconds: u64) -> Result<()> {
    if rows == 0 || clients == 0 {
        bail!("--rows and --clients must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-api-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    eprintln!(
        "Generating {} + {} contact rows...",
        thousands(TARGETS),
        thousands(rows)
    );
    let csv = dir.path().join("contacts.csv");
    {
        let csv = csv.clone();
        tokio::task::spawn_blocking(move || write_csv(&csv, TARGETS + rows)).await??;
    }
    let (targets_csv, import_csv) = split_csv(&csv, TARGETS)?;
    std::fs::remove_file(&csv)?;

    let store_dir = dir.path().join("store");
    crate::settings::create_private_dir(&store_dir)?;
    let store = Store::connect(
        &ferry_store::default_sqlite_url(&store_dir),
        SecretBox::new(MasterKey::generate()),
    )
    .await?;
    store.migrate().await?;
    let inst = store
        .create_institution("bench", "Bench University", None)
        .await?
        .id;
    let report = store
        .import_contacts_csv(inst, targets_csv, |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("the first import failed: {e}"))?;
    if report.created != TARGETS {
        bail!("the first import created {} contacts", report.created);
    }
    let (_, token) = store.create_api_token(inst, Role::Admin, "bench").await?;

    let state = AppState::new(
        store.clone(),
        WebConfig::default(),
        Registry::builtin("http://ferry.bench"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ferry_web::serve(listener, state, async move {
        let _ = server_stopped.await;
    }));

    eprintln!("{}", load_note());
    eprintln!("Baseline: {clients} connections writing and reading contacts for {seconds} s...");
    let stop = Arc::new(AtomicBool::new(false));
    let baseline = tokio::spawn(load(base.clone(), token.clone(), clients, stop.clone()));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut w0, mut r0, e0) = baseline.await??;

    eprintln!(
        "Under import: the same load while {} rows are imported...",
        thousands(rows)
    );
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(load(base.clone(), token.clone(), clients, stop.clone()));
    let t = Instant::now();
    let report = store.import_contacts_csv(inst, import_csv, |_| {}).await;
    let import_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut w1, mut r1, e1) = during.await??;
    let report = report.map_err(|e| anyhow::anyhow!("the import failed: {e}"))?;
    if report.created != rows {
        bail!("the import created {} of {rows} contacts", report.created);
    }
    let _ = stop_server.send(());
    let _ = server.await;
    store.close().await;
    if e0 + e1 > 0 {
        bail!("{} requests failed", e0 + e1);
    }

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!(
        "{clients} connections; import of {} rows took {:.1} s",
        thousands(rows),
        import_time.as_secs_f64()
    );
    println!();
    println!(
        "  {:<28} {:>9} {:>10} {:>10}",
        "", "requests", "p50 ms", "p99 ms"
    );
    for (label, l) in [
        ("writes, alone", &mut w0),
        ("writes, during the import", &mut w1),
        ("reads, alone", &mut r0),
        ("reads, during the import", &mut r1),
    ] {
        let n = l.0.len();
        println!(
            "  {label:<28} {:>9} {:>10.1} {:>10.1}",
            thousands(n as u64),
            ms(l.quantile(0.5)),
            ms(l.quantile(0.99))
        );
    }
    let p99 = w1.quantile(0.99);
    println!();
    println!(
        "  p99 of writes during the import: {:.1} ms (goal <= {} ms: {})",
        ms(p99),
        GOAL.as_millis(),
        if p99 <= GOAL { "met" } else { "NOT met" }
    );
    Ok(())
}
