//! `ferry bench everyaction`: the EveryAction connector against the in-process emulator.
//!
//! (a) The nightly pull of N changed records (US mobiles, opted in, with email and address):
//!     records per second from the first request to the last contact written, against Ferry's
//!     own CSV import (`ferry import contacts`) of the same rows into a fresh store in the same
//!     run (goal ≥ 0.8×).
//! (b) The push of M opt-in/opt-out changes of linked contacts with the emulator limited to R
//!     requests per second (VAN's "High" key profile: 200): API calls per change (goal ≤ 1.05)
//!     and the push's wall time against the floor the limit sets, (calls / R − 1) s (goal ≤ 1.1×).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_connectors::Registry;
use ferry_core::run::{RunStatus, Trigger};
use ferry_emulators::everyaction::{EmulatorConfig, RunningEmulator, SeedPerson};
use ferry_store::{MasterKey, NewIntegration, NewRun, SecretBox, Store};
use ferry_worker::{Worker, WorkerConfig};
use serde_json::json;

use super::thousands;
use crate::fake;
use crate::prng::Rng;

const KEY: &str = "be4c0000-ea00-4000-8000-00000000beef";
const CALLS_GOAL: f64 = 1.05;
const TIME_GOAL: f64 = 1.1;
const PULL_GOAL: f64 = 0.8;

struct Person {
    first: &'static str,
    last: &'static str,
    /// Ten digits.
    phone: String,
    email: String,
}

fn people(n: usize, seed: u64) -> Vec<Person> {
    let areas = fake::AREA_CODES;
    let exchanges: Vec<u16> = (200..1000).filter(|e| e % 100 != 11).collect();
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let first = *rng.pick(fake::FIRST_NAMES);
            let last = *rng.pick(fake::LAST_NAMES);
            let area = areas[i % areas.len()];
            let j = i / areas.len();
            let exchange = exchanges[(j / 10_000) % exchanges.len()];
            Person {
                first,
                last,
                phone: format!("{area}{exchange}{:04}", j % 10_000),
                email: format!(
                    "{}.{}.{i}@example.org",
                    fake::email_part(first),
                    fake::email_part(last)
                ),
            }
        })
        .collect()
}

fn seed(p: &Person, i: usize, opt_in: &str) -> SeedPerson {
    SeedPerson::new(json!({
        "firstName": p.first, "lastName": p.last,
        "emails": [{"email": p.email}],
        "phones": [{"phoneNumber": p.phone, "phoneType": "C", "phoneOptInStatus": opt_in}],
        "addresses": [{"addressLine1": format!("{} Main St", 1 + i % 9000), "city": "Boston",
                       "stateOrProvince": "MA", "zipOrPostalCode": "02139", "countryCode": "US"}],
    }))
}

struct Side {
    _dir: tempfile::TempDir,
    store: Store,
    inst: i64,
}

async fn fresh(name: &str) -> Result<Side> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("ferry-bench-everyaction-{name}-"))
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
        .await?
        .id;
    Ok(Side {
        _dir: dir,
        store,
        inst,
    })
}

async fn instance(side: &Side, ea: &RunningEmulator, config: serde_json::Value) -> Result<i64> {
    let mut secrets = serde_json::Map::new();
    secrets.insert("password".into(), json!(KEY));
    let mut config = config;
    config["login"] = json!("ferry-bench");
    config["api_host"] = json!(ea.api_url());
    Ok(side
        .store
        .create_integration(
            side.inst,
            NewIntegration {
                kind: "everyaction".into(),
                name: "EveryAction (bench)".into(),
                description: String::new(),
                enabled: true,
                config,
                secrets: Some(secrets),
            },
        )
        .await?
        .id)
}

/// Queues a run with `trigger` and runs it; returns it when it succeeded.
async fn run(side: &Side, id: i64, trigger: Trigger) -> Result<ferry_store::Run> {
    let worker = Worker::new(
        side.store.clone(),
        Registry::builtin("http://ferry.bench"),
        WorkerConfig::default(),
    );
    let queued = side
        .store
        .enqueue_run(&NewRun {
            institution_id: side.inst,
            integration_id: id,
            kind: "everyaction".into(),
            trigger,
            scheduled_for: (trigger == Trigger::Scheduled).then(jiff::Timestamp::now),
        })
        .await?
        .context("the run was not queued")?;
    worker.run_once().await?;
    let done = side.store.run(side.inst, queued.id).await?;
    if done.status != RunStatus::Success {
        bail!("the run ended {:?}: {:?}", done.status, done.error);
    }
    Ok(done)
}

async fn emulator(rate: u32) -> Result<RunningEmulator> {
    ferry_emulators::everyaction::start(EmulatorConfig {
        api_key: KEY.into(),
        app_name: "ferry-bench".into(),
        rate_limit_per_second: rate,
        pending_polls: 0,
        ..EmulatorConfig::default()
    })
    .await
    .context("starting the EveryAction emulator")
}

/// Runs both parts.
pub async fn everyaction(records: u64, changes: u64, rate_limit: u32) -> Result<()> {
    if records == 0 || changes == 0 || rate_limit == 0 {
        bail!("--records, --changes and --rate-limit must be at least 1");
    }
    pull(records as usize).await?;
    push(changes as usize, rate_limit).await
}

async fn pull(n: usize) -> Result<()> {
    eprintln!(
        "(a) Nightly pull of {} changed records",
        thousands(n as u64)
    );
    let people = people(n, 0xEA_0001);
    let ea = emulator(u32::MAX).await?;
    ea.state()
        .seed_people(people.iter().enumerate().map(|(i, p)| seed(p, i, "I")))
        .map_err(|e| anyhow::anyhow!("seeding the emulator: {e}"))?;

    // Baseline: the same rows as CSV through Ferry's import, into a fresh store.
    let base = fresh("import").await?;
    let mut csv = String::from(
        "first_name,last_name,phone,email,sms_opt_in,street_address,city,state,zip_code,country,crm_id\n",
    );
    for (i, p) in people.iter().enumerate() {
        csv.push_str(&format!(
            "{},{},{},{},opted_in,{} Main St,Boston,MA,02139,US,{}\n",
            p.first,
            p.last,
            p.phone,
            p.email,
            1 + i % 9000,
            100_000_001 + i
        ));
    }
    let t = Instant::now();
    let report = base
        .store
        .import_contacts_csv(base.inst, csv.into_bytes(), |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("the baseline import failed: {e}"))?;
    let import_s = t.elapsed().as_secs_f64();
    if report.created != n as u64 {
        bail!("the baseline import created {} of {n}", report.created);
    }

    let side = fresh("pull").await?;
    let id = instance(&side, &ea, json!({"liberal": false})).await?;
    let t = Instant::now();
    let done = run(&side, id, Trigger::Manual).await?;
    let pull_s = t.elapsed().as_secs_f64();
    let created = done.detail["pull"]["created"].as_u64().unwrap_or(0);
    if created != n as u64 {
        bail!("the pull created {created} of {n}: {}", done.detail);
    }
    let pull_rate = n as f64 / pull_s;
    let import_rate = n as f64 / import_s;
    let ratio = pull_rate / import_rate;
    println!(
        "pull:   {} records in {pull_s:.2} s = {pull_rate:.0} records/s ({} requests)",
        thousands(n as u64),
        done.detail["requests"]
    );
    println!(
        "import: {} rows in {import_s:.2} s = {import_rate:.0} rows/s (baseline, same run)",
        thousands(n as u64)
    );
    println!(
        "ratio pull/import: {ratio:.2}x (goal >= {PULL_GOAL}x) {}",
        if ratio >= PULL_GOAL { "OK" } else { "MISSED" }
    );
    ea.shutdown().await;
    Ok(())
}

async fn push(m: usize, rate: u32) -> Result<()> {
    eprintln!(
        "(b) Push of {} opt-in/out changes of linked contacts, emulator limited to {rate} requests/s",
        thousands(m as u64)
    );
    let people = people(m, 0xEA_0002);
    let ea = emulator(u32::MAX).await?;
    // Half opted in, half opted out in EveryAction; a liberal pull links them all.
    ea.state()
        .seed_people(
            people
                .iter()
                .enumerate()
                .map(|(i, p)| seed(p, i, if i % 2 == 0 { "I" } else { "O" })),
        )
        .map_err(|e| anyhow::anyhow!("seeding the emulator: {e}"))?;
    let side = fresh("push").await?;
    // Windows around the current hour: the scheduled run pushes and does not pull.
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap_or(jiff::tz::TimeZone::UTC);
    let hour = jiff::Timestamp::now().to_zoned(tz).hour() as u8;
    let config = json!({
        "liberal": true,
        "requests_per_second": rate,
        "push_window": {"start_hour": hour, "end_hour": (hour + 2) % 24},
        "nightly_window": {"start_hour": (hour + 12) % 24, "end_hour": (hour + 13) % 24},
    });
    let id = instance(&side, &ea, config).await?;
    let first = run(&side, id, Trigger::Manual).await?;
    let linked = first.detail["pull"]["created"].as_u64().unwrap_or(0);
    if linked != m as u64 {
        bail!("the first pull linked {linked} of {m}: {}", first.detail);
    }
    // Every contact flips in Ferry: the opted-in opt out, the opted-out opt in.
    let schema = side.store.field_schema(side.inst).await?;
    let mut writes = Vec::with_capacity(m);
    for (i, p) in people.iter().enumerate() {
        let status = if i % 2 == 0 { "opted_out" } else { "opted_in" };
        writes.push(
            ferry_core::contact::ContactWrite::parse(
                &schema,
                [
                    ("phone", ferry_core::contact::Raw::Str(&p.phone)),
                    ("sms_opt_in", ferry_core::contact::Raw::Str(status)),
                ],
            )
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        );
    }
    for chunk in writes.chunks(5_000) {
        side.store
            .apply_contact_writes(side.inst, chunk, ferry_store::WriteKind::Import)
            .await?;
    }
    ea.state().set_rate_limit(rate);
    let before = ea.state().counters();
    let t = Instant::now();
    let done = run(&side, id, Trigger::Scheduled).await?;
    let wall = t.elapsed();
    let after = ea.state().counters();
    let push = &done.detail["push"];
    let pushed = push["opt_ins_pushed"].as_u64().unwrap_or(0)
        + push["opt_outs_pushed"].as_u64().unwrap_or(0);
    if pushed != m as u64 || done.detail.get("pull").is_some() {
        bail!("the push sent {pushed} of {m}: {}", done.detail);
    }
    let calls = after.api_requests() - before.api_requests();
    let limited = after.total_429() - before.total_429();
    let per_change = calls as f64 / m as f64;
    let floor = Duration::from_secs_f64((calls as f64 / f64::from(rate) - 1.0).max(0.0));
    let ratio = wall.as_secs_f64() / floor.as_secs_f64();
    println!(
        "push:   {} changes, {} API calls = {per_change:.3} per change (goal <= {CALLS_GOAL}) {}",
        thousands(m as u64),
        thousands(calls),
        if per_change <= CALLS_GOAL {
            "OK"
        } else {
            "MISSED"
        }
    );
    if floor < Duration::from_secs(1) {
        // Under two seconds' worth of calls the limit hardly binds, and a ratio to a floor
        // near zero means nothing (10 changes gave "20803790x MISSED").
        println!(
            "        wall {:.2} s; {} calls are too few for {rate}/s to bind (floor {:.2} s): no time ratio; use --changes of at least {} for one; 429s received: {limited}",
            wall.as_secs_f64(),
            thousands(calls),
            floor.as_secs_f64(),
            thousands(2 * u64::from(rate))
        );
    } else {
        println!(
            "        wall {:.2} s, floor at {rate}/s {:.2} s: {ratio:.3}x (goal <= {TIME_GOAL}x) {}; 429s received: {limited}",
            wall.as_secs_f64(),
            floor.as_secs_f64(),
            if ratio <= TIME_GOAL { "OK" } else { "MISSED" }
        );
    }
    // The outcome: every phone in EveryAction has the status Ferry has.
    let wrong = ea
        .state()
        .people()
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            let want = if i % 2 == 0 {
                ferry_emulators::everyaction::OptIn::Out
            } else {
                ferry_emulators::everyaction::OptIn::In
            };
            p.phones.len() != 1 || p.phones[0].opt_in != want
        })
        .count();
    if wrong > 0 {
        bail!(
            "{wrong} EveryAction records do not have Ferry's opt-in status (or got a second phone)"
        );
    }
    println!("        every EveryAction record has Ferry's status, on its one phone");
    ea.shutdown().await;
    Ok(())
}
