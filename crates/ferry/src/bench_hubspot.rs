//! `ferry bench hubspot`: the initial outgoing sync of N contacts to the HubSpot emulator
//! (in-process, on loopback) limited to 100 requests per rolling 10 seconds, as HubSpot limits
//! a Free/Starter private app. A third of the contacts are in HubSpot already with their email,
//! a tenth only with their name and phone (no email), the rest are new. It prints the API calls
//! by endpoint and per contact (goal ≤ 0.03), the wall time against the floor that HubSpot's
//! rate limits set for that many calls (goal ≤ 1.1×), the 429s received (goal 0), and checks
//! the outcome: no duplicate HubSpot contacts, every Ferry contact holding the CRM ID of a
//! HubSpot record with its name, the pre-existing records found rather than created again.
//!
//! To show how much of the wall time is waiting for the limits, the same sync runs first
//! against an emulator without limits ("unthrottled"), from a fresh store and emulator.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_connectors::Registry;
use ferry_connectors::hubspot::{HubSpotSettings, Limits};
use ferry_core::run::{RunStatus, Trigger};
use ferry_emulators::hubspot::{EmulatorConfig, RateLimits, RunningEmulator, SeedContact};
use ferry_store::{MasterKey, NewIntegration, NewRun, SecretBox, Store};
use ferry_worker::{Worker, WorkerConfig};
use serde_json::json;

use super::{load_note, thousands};
use crate::fake;
use crate::prng::Rng;

/// API calls per contact we aim for (at most).
const CALLS_GOAL: f64 = 0.03;
/// Wall time over the rate limits' floor we aim for (at most).
const TIME_GOAL: f64 = 1.1;
const TOKEN: &str = "pat-na1-ferry-bench";
const SEARCH: &str = "POST /crm/v3/objects/contacts/search";

/// The people of the benchmark and where HubSpot has them.
struct Person {
    first: &'static str,
    last: &'static str,
    /// As typed in Ferry's import (styles vary; Ferry stores E.164).
    phone: String,
    email: String,
    /// In HubSpot already, and how.
    known: Known,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    ByEmail,
    ByNameOnly,
    New,
}

/// `n` people with unique phones and emails; exactly n/3 by email and n/10 by name only,
/// spread through the change order.
fn people(n: usize) -> Result<Vec<Person>> {
    let areas = fake::AREA_CODES;
    let exchanges: Vec<u16> = (200..1000).filter(|e| e % 100 != 11).collect();
    if n > areas.len() * exchanges.len() * 10_000 {
        bail!(
            "at most {} contacts can have unique phone numbers",
            areas.len() * exchanges.len() * 10_000
        );
    }
    let mut rng = Rng::new(0x4B5B_07E5);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut known = vec![Known::New; n];
    for &i in &order[..n / 3] {
        known[i] = Known::ByEmail;
    }
    for &i in &order[n / 3..n / 3 + n / 10] {
        known[i] = Known::ByNameOnly;
    }
    Ok((0..n)
        .map(|i| {
            let first = *rng.pick(fake::FIRST_NAMES);
            let last = *rng.pick(fake::LAST_NAMES);
            let area = areas[i % areas.len()];
            let j = i / areas.len();
            let line = (j % 10_000) as u16;
            let exchange = exchanges[(j / 10_000) % exchanges.len()];
            Person {
                first,
                last,
                phone: fake::format_phone(area, exchange, line, rng.next_u64()),
                email: format!(
                    "{}.{}.{i}@example.edu",
                    fake::email_part(first),
                    fake::email_part(last)
                ),
                known: known[i],
            }
        })
        .collect())
}

/// One side of the benchmark: a fresh store with the people, an emulator seeded with HubSpot's
/// share of them, and an outgoing instance that has never run.
struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    institution_id: i64,
    integration_id: i64,
    hub: RunningEmulator,
    seeded: HashMap<usize, String>,
}

async fn setup(people: &[Person], limits: RateLimits) -> Result<Setup> {
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-hubspot-")
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
    let mut csv = String::from("first_name,last_name,phone,email\n");
    for p in people {
        csv.push_str(&format!("{},{},{},{}\n", p.first, p.last, p.phone, p.email));
    }
    let report = store
        .import_contacts_csv(inst.id, csv.into_bytes(), |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("importing the contacts failed: {e}"))?;
    if report.created != people.len() as u64 {
        bail!(
            "the import created {} contacts of {}: {:?}",
            report.created,
            people.len(),
            report.errors.first()
        );
    }

    let hub = ferry_emulators::hubspot::start(EmulatorConfig {
        private_app_tokens: vec![TOKEN.into()],
        limits,
        // The emulator's own check of its answers against HubSpot's schemas is for tests; here
        // it would only add the emulator's work to the time measured.
        validate_responses: false,
        ..EmulatorConfig::default()
    })
    .await
    .context("starting the HubSpot emulator")?;
    // HubSpot's copies: by email with the phone typed another way; by name with no email.
    let mut rng = Rng::new(0x5EED_4B5B);
    let mut which = Vec::new();
    let mut seeds = Vec::new();
    for (i, p) in people.iter().enumerate() {
        let phone =
            ferry_core::phone::Phone::parse(&p.phone).map_err(|e| anyhow::anyhow!("{e}"))?;
        let digits = phone.as_str().trim_start_matches("+1").to_string();
        let typed = fake::format_phone(
            digits[0..3].parse()?,
            digits[3..6].parse()?,
            digits[6..].parse()?,
            rng.next_u64(),
        );
        let mut props = vec![
            ("firstname", p.first.to_string()),
            ("lastname", p.last.to_string()),
            ("phone", typed),
        ];
        match p.known {
            Known::ByEmail => props.push(("email", p.email.clone())),
            Known::ByNameOnly => {}
            Known::New => continue,
        }
        which.push(i);
        seeds.push(SeedContact::new(props));
    }
    let ids = hub
        .state()
        .seed_contacts(seeds)
        .map_err(|e| anyhow::anyhow!("seeding the emulator: {e}"))?;
    let seeded = which.into_iter().zip(ids).collect();

    let mut secrets = serde_json::Map::new();
    secrets.insert("access_token".into(), json!(TOKEN));
    let integration = store
        .create_integration(
            inst.id,
            NewIntegration {
                kind: "hubspot_outgoing".into(),
                name: "Ferry → HubSpot (bench)".into(),
                description: String::new(),
                enabled: true,
                config: json!({"mappings": [
                    {"local": "first_name", "remote": "firstname"},
                    {"local": "last_name", "remote": "lastname"},
                    {"local": "phone", "remote": "phone"},
                    {"local": "email", "remote": "email"}
                ]}),
                secrets: Some(secrets),
            },
        )
        .await?;
    Ok(Setup {
        _dir: dir,
        store,
        institution_id: inst.id,
        integration_id: integration.id,
        hub,
        seeded,
    })
}

/// Queues the instance's first run and has a worker run it; returns the wall time from queueing
/// to the finished run, and the run.
async fn sync(s: &Setup, limits: Limits) -> Result<(Duration, ferry_store::Run)> {
    let settings = HubSpotSettings {
        api_url: s.hub.base_url().to_string(),
        limits,
        ..HubSpotSettings::default()
    };
    let worker = Worker::new(
        s.store.clone(),
        Registry::builtin_with("http://ferry.bench", &settings),
        WorkerConfig::default(),
    );
    let t = Instant::now();
    let queued = s
        .store
        .enqueue_run(&NewRun {
            institution_id: s.institution_id,
            integration_id: s.integration_id,
            kind: "hubspot_outgoing".into(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await?
        .context("the run was not queued")?;
    let ran = worker.run_once().await?;
    let took = t.elapsed();
    if ran != Some(queued.id) {
        bail!("the worker ran {ran:?}, not the queued run {}", queued.id);
    }
    let run = s.store.run(s.institution_id, queued.id).await?;
    if run.status != RunStatus::Success {
        bail!(
            "the sync did not succeed: {:?} {}",
            run.status,
            run.error.unwrap_or_default()
        );
    }
    Ok((took, run))
}

/// Checks the outcome; returns a line per check.
async fn verify(s: &Setup, people: &[Person]) -> Result<Vec<String>> {
    let hub = s.hub.state();
    let records: HashMap<String, ferry_emulators::hubspot::ContactRecord> = hub
        .contacts()
        .into_iter()
        .filter(|r| !r.archived)
        .map(|r| (r.id.clone(), r))
        .collect();
    let mut emails: HashSet<String> = HashSet::new();
    for r in records.values() {
        if let Some(e) = r.get("email")
            && !emails.insert(e.to_lowercase())
        {
            bail!("two HubSpot contacts have the email {e}");
        }
    }
    if records.len() != people.len() {
        bail!(
            "HubSpot holds {} contacts for {} people: duplicates or missing",
            records.len(),
            people.len()
        );
    }
    // Ferry's contacts, in import order (= the people's order).
    let mut contacts = Vec::new();
    let mut after = 0;
    loop {
        let page = s
            .store
            .contacts_for_export(s.institution_id, after, 5_000)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        contacts.extend(page);
    }
    if contacts.len() != people.len() {
        bail!(
            "Ferry holds {} contacts, expected {}",
            contacts.len(),
            people.len()
        );
    }
    let mut crm_ids = HashSet::new();
    let (mut found_email, mut found_name) = (0, 0);
    for (i, (c, p)) in contacts.iter().zip(people).enumerate() {
        let crm = c
            .data
            .crm_id
            .as_deref()
            .with_context(|| format!("{} {} has no CRM ID", p.first, p.last))?;
        let r = records.get(crm).with_context(|| {
            format!(
                "{} {}'s CRM ID {crm} is no HubSpot contact",
                p.first, p.last
            )
        })?;
        let phone = c.data.phone.as_ref().map(|p| p.as_str());
        if (
            r.get("firstname"),
            r.get("lastname"),
            r.get("email"),
            r.get("phone"),
        ) != (Some(p.first), Some(p.last), Some(p.email.as_str()), phone)
        {
            bail!(
                "HubSpot contact {crm} is not {} {} <{}> {phone:?}: {:?}",
                p.first,
                p.last,
                p.email,
                r.properties
            );
        }
        if !crm_ids.insert(crm) {
            bail!("two Ferry contacts hold the CRM ID {crm}");
        }
        match (p.known, s.seeded.get(&i)) {
            (Known::ByEmail, Some(id)) if id == crm => found_email += 1,
            (Known::ByNameOnly, Some(id)) if id == crm => found_name += 1,
            (Known::New, None) => {}
            (known, seeded) => bail!(
                "{} {} ({known:?}) got CRM ID {crm}, HubSpot had {seeded:?}",
                p.first,
                p.last
            ),
        }
    }
    Ok(vec![
        format!("{} HubSpot contacts for {} Ferry contacts, no email twice", thousands(records.len() as u64), thousands(people.len() as u64)),
        "every Ferry contact holds its own CRM ID, of a HubSpot contact with its name, email and phone".to_string(),
        format!(
            "{} found by email and {} by name and phone (the HubSpot contacts seeded), {} created",
            thousands(found_email),
            thousands(found_name),
            thousands((people.len() - found_email as usize - found_name as usize) as u64)
        ),
    ])
}

/// The floor for `calls` requests with at most `max` in any rolling `window`: the first `max`
/// go at once, each further `max` one window later.
fn floor(calls: u64, max: u32, window: Duration) -> Duration {
    let batches = calls.div_ceil(u64::from(max.max(1))).saturating_sub(1);
    window * u32::try_from(batches).unwrap_or(u32::MAX)
}

pub async fn hubspot(n: u64) -> Result<()> {
    if n < 10 {
        bail!("--contacts must be at least 10");
    }
    let load = load_note();
    let n = usize::try_from(n)?;
    let people = people(n)?;
    let limits = RateLimits {
        ten_secondly_max: 100,
        ten_secondly_window: Duration::from_secs(10),
        ..RateLimits::default()
    };

    eprintln!(
        "Unthrottled: the sync with no rate limits on either side (Ferry's and the emulator's own work)..."
    );
    let free = setup(&people, RateLimits::unlimited()).await?;
    let no_limits = Limits {
        per_ten_seconds: 1_000_000,
        searches_per_second: 1_000_000,
        ..Limits::default()
    };
    let (free_time, _) = sync(&free, no_limits).await?;
    verify(&free, &people).await?;
    free.hub.shutdown().await;
    free.store.close().await;

    eprintln!("Benchmark: the sync against the emulator limited to 100 requests per 10 s...");
    let s = setup(&people, limits).await?;
    // Ferry's defaults: 100 requests per 10 s, 4 searches per second.
    let (wall, run) = sync(&s, Limits::default()).await?;
    let checks = verify(&s, &people).await?;
    let counters = s.hub.state().counters();
    s.hub.shutdown().await;
    s.store.close().await;

    let api: BTreeMap<&str, u64> = counters
        .requests
        .iter()
        .filter(|(k, _)| k.contains(" /crm/"))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let calls = counters.api_requests();
    let searches = counters.requests_to(SEARCH);
    let others = calls - searches;
    let ten_floor = floor(others, limits.ten_secondly_max, limits.ten_secondly_window);
    let search_floor = floor(searches, limits.search_max, limits.search_window);
    let floor = ten_floor.max(search_floor);
    let per_contact = calls as f64 / n as f64;
    let ratio = wall.as_secs_f64() / floor.as_secs_f64();

    let known = |k: Known| people.iter().filter(|p| p.known == k).count() as u64;
    println!();
    println!(
        "Initial outgoing HubSpot sync of {} contacts ({} in HubSpot by email, {} only by name and phone, {} new)",
        thousands(n as u64),
        thousands(known(Known::ByEmail)),
        thousands(known(Known::ByNameOnly)),
        thousands(known(Known::New))
    );
    println!(
        "to the HubSpot emulator on loopback limited to {} requests per {} s and {} searches per {} s",
        limits.ten_secondly_max,
        limits.ten_secondly_window.as_secs(),
        limits.search_max,
        limits.search_window.as_secs_f64()
    );
    println!("  ({load})");
    println!();
    println!("  {:<48} {:>8}", "API calls", "requests");
    for (endpoint, count) in &api {
        println!("  {endpoint:<48} {count:>8}");
    }
    println!("  {:<48} {:>8}", "total", calls);
    println!();
    println!(
        "  calls per contact = {per_contact:.4}  (goal <= {CALLS_GOAL}: {})",
        if per_contact <= CALLS_GOAL {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "  run: {} updated, {} created, {} failed; the client counted {} requests, {} retried; 429 answers received: {}",
        run.detail["updated"],
        run.detail["created"],
        run.detail["failed"],
        run.detail["api_calls"],
        run.detail["retries"],
        counters.total_429()
    );
    println!();
    println!(
        "  wall time (queued to finished):     {:>7.2} s",
        wall.as_secs_f64()
    );
    println!(
        "  floor of the 10-second limit:       {:>7.2} s  ({others} calls: ceil({others}/{} - 1) x {} s)",
        ten_floor.as_secs_f64(),
        limits.ten_secondly_max,
        limits.ten_secondly_window.as_secs()
    );
    println!(
        "  floor of the search limit:          {:>7.2} s  ({searches} searches: ceil({searches}/{} - 1) x {} s; Ferry itself sends at most {} a second)",
        search_floor.as_secs_f64(),
        limits.search_max,
        limits.search_window.as_secs_f64(),
        Limits::default().searches_per_second
    );
    println!(
        "  the same sync unthrottled:          {:>7.2} s  (Ferry's and the emulator's own work)",
        free_time.as_secs_f64()
    );
    println!();
    if floor.is_zero() {
        println!(
            "  wall/floor: no floor (every call fits in the first window); run more contacts, e.g. the default 10,000"
        );
    } else {
        println!(
            "  wall/floor = {ratio:.3}  (the {} limit binds; goal <= {TIME_GOAL}: {})",
            if ten_floor >= search_floor {
                "10-second"
            } else {
                "search"
            },
            if ratio <= TIME_GOAL { "met" } else { "not met" }
        );
    }
    println!();
    println!("  checked:");
    for c in checks {
        println!("    {c}");
    }
    if counters.total_429() > 0 {
        bail!(
            "the sync received {} 429 answers (by limit: {:?})",
            counters.total_429(),
            counters.rate_limited
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_of_a_rolling_window() {
        let ten = Duration::from_secs(10);
        assert_eq!(floor(0, 100, ten), Duration::ZERO);
        assert_eq!(floor(100, 100, ten), Duration::ZERO);
        assert_eq!(floor(101, 100, ten), ten);
        assert_eq!(floor(201, 100, ten), 2 * ten);
        assert_eq!(floor(11, 5, Duration::from_secs(1)), Duration::from_secs(2));
    }

    #[test]
    fn the_people_are_split_as_the_issue_says() {
        let p = people(10_000).unwrap();
        let count = |k| p.iter().filter(|x| x.known == k).count();
        assert_eq!(
            (count(Known::ByEmail), count(Known::ByNameOnly)),
            (3_333, 1_000)
        );
        let phones: HashSet<String> = p
            .iter()
            .map(|x| {
                ferry_core::phone::Phone::parse(&x.phone)
                    .unwrap()
                    .as_str()
                    .to_string()
            })
            .collect();
        assert_eq!(phones.len(), 10_000);
    }
}
