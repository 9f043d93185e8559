//! `ferry bench salesforce`: the Salesforce connector against the Salesforce emulator
//! (in-process, on loopback).
//!
//! (a) The first outgoing sync of N contacts, a third of them in Salesforce already with their
//! email: API calls per contact (goal ≤ 0.005, through Bulk API 2.0) and the wall time, against
//! the same Salesforce work done alone: a bare client issuing the same Bulk API jobs (one query
//! of the keys, then the inserts and updates in jobs of the same size) with no store, matching
//! or write-back. Ferry's own share is `(Ferry − baseline) / Ferry` (goal ≤ 20 %).
//!
//! (b) An incremental pull of M changed records out of N (after a first full pull): API calls,
//! wall time, and the same pages read by the bare client alone.
//!
//! Both sides poll Bulk API jobs every 20 ms (the emulator finishes a job at once but reports it
//! in progress on the first poll), so polling costs both the same.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_connectors::Registry;
use ferry_connectors::salesforce::client::{IngestOp, SaveResult};
use ferry_connectors::salesforce::config::SObject;
use ferry_connectors::salesforce::oauth::{OAuthApp, Session, SessionSource};
use ferry_connectors::salesforce::{Client, SalesforceError, SalesforceSettings};
use ferry_core::run::{RunStatus, Trigger};
use ferry_emulators::salesforce::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, Limits, RunningEmulator,
};
use ferry_store::{MasterKey, NewIntegration, NewRun, SecretBox, Store};
use ferry_worker::{Worker, WorkerConfig};
use serde_json::{Map, Value, json};

use super::{load_note, thousands};
use crate::fake;
use crate::prng::Rng;

/// API calls per contact of the initial push we aim for (at most).
const CALLS_GOAL: f64 = 0.005;
/// Ferry's own share of the wall time we aim for (at most).
const SHARE_GOAL: f64 = 0.20;
/// Bulk API job polling on both sides.
const POLL: Duration = Duration::from_millis(20);

struct Person {
    first: &'static str,
    last: &'static str,
    phone: String,
    email: String,
    in_salesforce: bool,
}

fn people(n: usize) -> Result<Vec<Person>> {
    let areas = fake::AREA_CODES;
    let exchanges: Vec<u16> = (200..1000).filter(|e| e % 100 != 11).collect();
    if n > areas.len() * exchanges.len() * 10_000 {
        bail!("too many contacts for unique phone numbers");
    }
    let mut rng = Rng::new(0x5F0C_E5E5);
    Ok((0..n)
        .map(|i| {
            let first = *rng.pick(fake::FIRST_NAMES);
            let last = *rng.pick(fake::LAST_NAMES);
            let area = areas[i % areas.len()];
            let j = i / areas.len();
            let exchange = exchanges[(j / 10_000) % exchanges.len()];
            Person {
                first,
                last,
                phone: format!("+1{area}{exchange}{:04}", j % 10_000),
                email: format!(
                    "{}.{}.{i}@example.edu",
                    fake::email_part(first),
                    fake::email_part(last)
                ),
                in_salesforce: i % 3 == 0,
            }
        })
        .collect())
}

fn settings(base: &str) -> SalesforceSettings {
    SalesforceSettings {
        login_url: base.to_string(),
        app: Some(OAuthApp {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string().into(),
        }),
        bulk_poll: POLL,
        ..SalesforceSettings::default()
    }
}

/// A session handed over as it is, for the bare client.
struct Fixed(Session);

#[async_trait::async_trait]
impl SessionSource for Fixed {
    async fn session(&self) -> Result<Session, SalesforceError> {
        Ok(self.0.clone())
    }
    async fn renew(&self) -> Result<Session, SalesforceError> {
        Ok(self.0.clone())
    }
}

/// A bare client of the emulator's org (no limit share).
fn bare_client(sf: &RunningEmulator) -> Client {
    let grant = sf.state().issue_tokens(sf.base_url());
    Client::new(
        settings(sf.base_url()),
        Arc::new(Fixed(Session {
            instance_url: grant.instance_url,
            access_token: grant.access_token.into(),
        })),
        SObject::Contact,
        None,
    )
}

async fn emulator() -> Result<RunningEmulator> {
    ferry_emulators::salesforce::start(EmulatorConfig {
        limits: Limits {
            daily_max: 100_000_000,
            used: 0,
        },
        ..EmulatorConfig::default()
    })
    .await
    .context("starting the Salesforce emulator")
}

fn seed_row(p: &Person) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("FirstName".into(), json!(p.first));
    m.insert("LastName".into(), json!(p.last));
    m.insert("Phone".into(), json!(p.phone));
    m.insert("Email".into(), json!(p.email));
    m
}

struct Side {
    _dir: tempfile::TempDir,
    store: Store,
    inst: i64,
    account: i64,
    sf: RunningEmulator,
}

async fn side(people: &[Person], import: bool) -> Result<Side> {
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-salesforce-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let store = Store::connect(
        &ferry_store::default_sqlite_url(dir.path()),
        SecretBox::new(MasterKey::generate()),
    )
    .await?;
    store.migrate().await?;
    let inst = store
        .create_institution("bench", "Bench University", None)
        .await?;
    if import {
        let mut csv = String::from("first_name,last_name,phone,email\n");
        for p in people {
            csv.push_str(&format!("{},{},{},{}\n", p.first, p.last, p.phone, p.email));
        }
        let report = store
            .import_contacts_csv(inst.id, csv.into_bytes(), |_| {})
            .await
            .map_err(|e| anyhow::anyhow!("importing the contacts failed: {e}"))?;
        if report.created != people.len() as u64 {
            bail!("the import created {} of {}", report.created, people.len());
        }
    }
    let sf = emulator().await?;
    let grant = sf.state().issue_tokens(sf.base_url());
    let tokens = json!({
        "access_token": grant.access_token, "refresh_token": grant.refresh_token,
        "instance_url": grant.instance_url, "id": grant.id,
    });
    let account = store
        .upsert_crm_account(inst.id, "salesforce", "00D-bench", "bench org", &tokens)
        .await?
        .id;
    Ok(Side {
        _dir: dir,
        store,
        inst: inst.id,
        account,
        sf,
    })
}

async fn run_instance(s: &Side, kind: &str, config: Value) -> Result<(Duration, ferry_store::Run)> {
    let integration = s
        .store
        .create_integration(
            s.inst,
            NewIntegration {
                kind: kind.into(),
                name: format!("{kind} (bench)"),
                description: String::new(),
                enabled: true,
                config,
                secrets: None,
            },
        )
        .await?;
    run_again(s, &integration).await
}

async fn run_again(
    s: &Side,
    integration: &ferry_store::Integration,
) -> Result<(Duration, ferry_store::Run)> {
    let worker = Worker::new(
        s.store.clone(),
        Registry::builtin("http://ferry.bench").with_salesforce(&settings(s.sf.base_url())),
        WorkerConfig::default(),
    );
    let t = Instant::now();
    let queued = s
        .store
        .enqueue_run(&NewRun {
            institution_id: s.inst,
            integration_id: integration.id,
            kind: integration.kind.clone(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await?
        .context("the run was not queued")?;
    worker.run_once().await?;
    let took = t.elapsed();
    let run = s.store.run(s.inst, queued.id).await?;
    if run.status != RunStatus::Success {
        bail!(
            "the run did not succeed: {:?} {}",
            run.status,
            run.error.unwrap_or_default()
        );
    }
    Ok((took, run))
}

fn mappings() -> Value {
    json!([
        {"local": "first_name", "remote": "FirstName"},
        {"local": "last_name", "remote": "LastName"},
        {"local": "phone", "remote": "Phone"},
        {"local": "email", "remote": "Email"}
    ])
}

/// The push's Salesforce work alone: one query job of the keys, then inserts and updates in
/// jobs of `batch` rows, from precomputed rows.
async fn push_baseline(people: &[Person], batch: usize) -> Result<(Duration, u64)> {
    let sf = emulator().await?;
    sf.state()
        .seed(
            "Contact",
            people.iter().filter(|p| p.in_salesforce).map(seed_row),
        )
        .map_err(|e| anyhow::anyhow!("seeding: {e}"))?;
    let client = bare_client(&sf);
    let before = sf.state().counters().api_requests;
    let t = Instant::now();
    let job = client
        .bulk_query_start("SELECT Id, Email, FirstName, LastName, Phone FROM Contact")
        .await?;
    let mut by_email: HashMap<String, String> = HashMap::new();
    let mut locator: Option<String> = None;
    loop {
        let (rows, next) = client
            .bulk_query_page(&job, locator.as_deref(), 50_000)
            .await?;
        for r in rows {
            if let (Some(Value::String(e)), Some(Value::String(id))) = (r.get("Email"), r.get("Id"))
            {
                by_email.insert(e.to_lowercase(), id.clone());
            }
        }
        match next {
            Some(l) => locator = Some(l),
            None => break,
        }
    }
    for window in people.chunks(batch) {
        let mut inserts = Vec::new();
        let mut updates = Vec::new();
        for p in window {
            let mut row: std::collections::BTreeMap<String, Option<String>> = [
                ("FirstName", p.first.to_string()),
                ("LastName", p.last.to_string()),
                ("Phone", p.phone.clone()),
                ("Email", p.email.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Some(v)))
            .collect();
            match by_email.get(&p.email.to_lowercase()) {
                Some(id) => {
                    row.insert("Id".into(), Some(id.clone()));
                    updates.push(row);
                }
                None => inserts.push(row),
            }
        }
        for (op, rows) in [(IngestOp::Insert, inserts), (IngestOp::Update, updates)] {
            let results = client.bulk_ingest(op, &rows).await?;
            if let Some(r) = results
                .iter()
                .find(|r| matches!(r, SaveResult::Refused { .. }))
            {
                bail!("the baseline's ingest refused a row: {r:?}");
            }
        }
    }
    Ok((t.elapsed(), sf.state().counters().api_requests - before))
}

/// Runs `ferry bench salesforce`.
pub async fn salesforce(contacts: u64, changes: u64) -> Result<()> {
    if contacts == 0 || changes > contacts {
        bail!("--contacts must be at least 1 and --changes at most --contacts");
    }
    let n = contacts as usize;
    let people = people(n)?;
    println!(
        "ferry bench salesforce: {} contacts ({} in Salesforce by email), then an incremental pull of {} changed records ({})",
        thousands(contacts),
        thousands(people.iter().filter(|p| p.in_salesforce).count() as u64),
        thousands(changes),
        load_note()
    );

    // (a) The first outgoing sync.
    let s = side(&people, true).await?;
    s.sf.state()
        .seed(
            "Contact",
            people.iter().filter(|p| p.in_salesforce).map(seed_row),
        )
        .map_err(|e| anyhow::anyhow!("seeding: {e}"))?;
    let before = s.sf.state().counters().api_requests;
    let (wall, run) = run_instance(
        &s,
        "salesforce_outgoing",
        json!({"account_id": s.account, "mappings": mappings()}),
    )
    .await?;
    let calls = s.sf.state().counters().api_requests - before;
    let records = s.sf.state().records("Contact");
    if records.len() != n {
        bail!("Salesforce holds {} records for {n} people", records.len());
    }
    let with_crm = count_with_crm_id(&s).await?;
    if with_crm != n {
        bail!("{with_crm} of {n} Ferry contacts hold a CRM ID");
    }
    let (base_wall, base_calls) =
        push_baseline(&people, SalesforceSettings::default().bulk_batch).await?;
    let per_contact = calls as f64 / n as f64;
    let share = (wall.as_secs_f64() - base_wall.as_secs_f64()) / wall.as_secs_f64();
    println!();
    println!(
        "(a) first outgoing sync (Bulk API 2.0: {})",
        run.detail["bulk_writes"]
    );
    println!(
        "  run: {} created, {} updated, {} failed",
        run.detail["created"], run.detail["updated"], run.detail["failed"]
    );
    println!(
        "  API calls: {calls} ({per_contact:.5} per contact; goal <= {CALLS_GOAL}: {})",
        if per_contact <= CALLS_GOAL {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "  wall time: {:.2} s; the same Salesforce work alone: {:.2} s ({base_calls} calls)",
        wall.as_secs_f64(),
        base_wall.as_secs_f64()
    );
    println!(
        "  Ferry's own share: {:.1} % (goal <= {:.0} %: {})",
        share * 100.0,
        SHARE_GOAL * 100.0,
        if share <= SHARE_GOAL {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "  checked: {n} Salesforce records (no duplicates), every Ferry contact holds its record's Id"
    );

    // (b) An incremental pull of `changes` changed records out of N.
    let p = side(&people, false).await?;
    let day_ago = jiff::Timestamp::now().as_second() - 2 * 86_400;
    let seeds = people.iter().enumerate().map(|(i, person)| {
        let mut m = seed_row(person);
        // Spread over the past: an incremental pull's overlap re-reads only the last minutes.
        let t = jiff::Timestamp::from_second(day_ago + i as i64).unwrap_or_default();
        m.insert(
            "SystemModstamp".into(),
            json!(t.strftime("%Y-%m-%dT%H:%M:%S.000+0000").to_string()),
        );
        m
    });
    let ids =
        p.sf.state()
            .seed("Contact", seeds)
            .map_err(|e| anyhow::anyhow!("seeding: {e}"))?;
    let inc = p
        .store
        .create_integration(
            p.inst,
            NewIntegration {
                kind: "salesforce_incoming".into(),
                name: "incoming (bench)".into(),
                description: String::new(),
                enabled: true,
                config: json!({"account_id": p.account, "mappings": mappings()}),
                secrets: None,
            },
        )
        .await?;
    let (first_wall, first) = run_again(&p, &inc).await?;
    let bare = bare_client(&p.sf);
    let mut rng = Rng::new(0x0C4A_46E5);
    let mut changed: Vec<(String, Option<String>)> = Vec::new();
    let mut picked: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        picked.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for &i in &picked[..changes as usize] {
        changed.push((ids[i].clone(), Some(format!("Changed{i}"))));
    }
    let rows: Vec<std::collections::BTreeMap<String, Option<String>>> = changed
        .iter()
        .map(|(id, first)| {
            [
                ("Id".to_string(), Some(id.clone())),
                ("FirstName".to_string(), first.clone()),
            ]
            .into_iter()
            .collect()
        })
        .collect();
    bare.bulk_ingest(IngestOp::Update, &rows).await?;
    let before = p.sf.state().counters().api_requests;
    let (wall, run) = run_again(&p, &inc).await?;
    let calls = p.sf.state().counters().api_requests - before;
    if run.detail["updated"].as_u64() != Some(changes) {
        bail!(
            "the incremental pull updated {} contacts, not {changes}",
            run.detail["updated"]
        );
    }
    // The same pages read alone: from the first pull's newest record less the overlap.
    let since = day_ago + n as i64 - 1 - ferry_connectors::salesforce::sync::OVERLAP_MS / 1000;
    let since = jiff::Timestamp::from_second(since)
        .unwrap_or_default()
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    let before = p.sf.state().counters().api_requests;
    let t = Instant::now();
    let all = bare
        .query_all(&format!(
            "SELECT FirstName, LastName, Phone, Email, Id, SystemModstamp FROM Contact WHERE SystemModstamp >= {since} ORDER BY SystemModstamp ASC, Id ASC"
        ))
        .await?;
    let base_wall = t.elapsed();
    let base_calls = p.sf.state().counters().api_requests - before;
    let share = (wall.as_secs_f64() - base_wall.as_secs_f64()) / wall.as_secs_f64();
    println!();
    println!(
        "(b) incremental pull of {} changed records of {} (the first full pull took {:.2} s, {} created)",
        thousands(changes),
        thousands(contacts),
        first_wall.as_secs_f64(),
        first.detail["created"]
    );
    println!(
        "  API calls: {calls} ({:.5} per changed record); wall time: {:.2} s",
        calls as f64 / changes.max(1) as f64,
        wall.as_secs_f64()
    );
    println!(
        "  the same pages read alone: {:.2} s ({base_calls} calls, {} records)",
        base_wall.as_secs_f64(),
        all.len()
    );
    println!(
        "  Ferry's own share: {:.1} % (goal <= {:.0} %: {})",
        share * 100.0,
        SHARE_GOAL * 100.0,
        if share <= SHARE_GOAL {
            "met"
        } else {
            "not met"
        }
    );
    Ok(())
}

async fn count_with_crm_id(s: &Side) -> Result<usize> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = s.store.contacts_for_export(s.inst, after, 5_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        n += page.iter().filter(|c| c.data.crm_id.is_some()).count();
    }
    Ok(n)
}
