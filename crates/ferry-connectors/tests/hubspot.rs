//! The HubSpot connectors against the in-repo HubSpot emulator on loopback, run by the real
//! worker: each branch of seed 002's outgoing matching, the incoming pull and its watermark, no
//! echo of Ferry's own writes, the 409 path, test users, filters, rate limits and faults.

use std::time::Duration;

use ferry_connectors::Registry;
use ferry_connectors::hubspot::{HubSpotSettings, Limits};
use ferry_core::contact::{ContactWrite, Raw};
use ferry_core::run::RunStatus;
use ferry_emulators::hubspot::{EmulatorConfig, Faults, RunningEmulator, SeedContact};
use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::{Integration, NewIntegration, NewRun, Run, SyncLogQuery, WriteKind};
use ferry_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};

const TOKEN: &str = "pat-na1-test-token";

async fn emulator(config: EmulatorConfig) -> RunningEmulator {
    ferry_emulators::hubspot::start(EmulatorConfig {
        private_app_tokens: vec![TOKEN.into()],
        ..config
    })
    .await
    .unwrap()
}

struct Setup {
    store: TestStore,
    inst: i64,
    hub: RunningEmulator,
}

impl Drop for Setup {
    /// Every answer the connector received matched HubSpot's published OpenAPI schemas.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let violations = self.hub.state().schema_violations();
            assert!(
                violations.is_empty(),
                "responses outside HubSpot's schemas: {violations:?}"
            );
        }
    }
}

async fn setup(config: EmulatorConfig) -> Setup {
    let store = fresh_store().await;
    let inst = store
        .create_institution("state-u", "State University", None)
        .await
        .unwrap()
        .id;
    Setup {
        store,
        inst,
        hub: emulator(config).await,
    }
}

fn mappings() -> Value {
    json!([
        {"local": "first_name", "remote": "firstname"},
        {"local": "last_name", "remote": "lastname"},
        {"local": "phone", "remote": "phone"},
        {"local": "email", "remote": "email"}
    ])
}

impl Setup {
    async fn instance(&self, kind: &str, config: Value) -> Integration {
        let mut secrets = serde_json::Map::new();
        secrets.insert("access_token".into(), json!(TOKEN));
        self.store
            .create_integration(
                self.inst,
                NewIntegration {
                    kind: kind.into(),
                    name: kind.into(),
                    description: String::new(),
                    enabled: true,
                    config,
                    secrets: Some(secrets),
                },
            )
            .await
            .unwrap()
    }

    fn worker(&self) -> Worker {
        self.worker_with_window(HubSpotSettings::default().outgoing_window)
    }

    /// A worker whose outgoing runs work in windows of `window` contacts.
    fn worker_with_window(&self, window: usize) -> Worker {
        let settings = HubSpotSettings {
            api_url: self.hub.base_url().to_string(),
            limits: Limits {
                backoff: Duration::from_millis(20),
                ..Limits::default()
            },
            outgoing_window: window,
            ..HubSpotSettings::default()
        };
        Worker::new(
            self.store.store.clone(),
            Registry::builtin_with("http://ferry.test", &settings),
            WorkerConfig {
                retry_backoff: Duration::from_millis(20),
                ..WorkerConfig::default()
            },
        )
    }

    /// Queues a manual run of `i` and runs it; returns the finished run.
    async fn run(&self, i: &Integration) -> Run {
        self.run_by(i, self.worker()).await
    }

    async fn run_by(&self, i: &Integration, worker: Worker) -> Run {
        let run = self
            .store
            .enqueue_run(&NewRun {
                institution_id: self.inst,
                integration_id: i.id,
                kind: i.kind.clone(),
                trigger: ferry_core::run::Trigger::Manual,
                scheduled_for: None,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(worker.run_once().await.unwrap(), Some(run.id));
        self.store.run(self.inst, run.id).await.unwrap()
    }

    async fn contact(&self, fields: &[(&str, &str)]) -> i64 {
        let schema = self.store.field_schema(self.inst).await.unwrap();
        let w =
            ContactWrite::parse(&schema, fields.iter().map(|(k, v)| (*k, Raw::Str(v)))).unwrap();
        let out = self
            .store
            .apply_contact_writes(self.inst, &[w], WriteKind::Import)
            .await
            .unwrap();
        out[0].as_ref().unwrap().contact_id
    }

    /// Runs a new outgoing instance with [`mappings`]; returns the successful run and the
    /// searches it sent.
    async fn push_counting_searches(&self) -> (Run, u64) {
        const SEARCH: &str = "POST /crm/v3/objects/contacts/search";
        let hub = self.hub.state();
        let before = hub.counters().requests_to(SEARCH);
        let out = self
            .instance("hubspot_outgoing", json!({"mappings": mappings()}))
            .await;
        let run = self.run(&out).await;
        assert_eq!(run.status, RunStatus::Success, "{run:?}");
        (run, hub.counters().requests_to(SEARCH) - before)
    }

    async fn crm_id(&self, id: i64) -> Option<String> {
        self.store.contact(self.inst, id).await.unwrap().data.crm_id
    }

    /// A contact's sync status rows: (integration, direction, result, code, remote ID).
    async fn sync_status(
        &self,
        id: i64,
    ) -> Vec<(
        i64,
        &'static str,
        &'static str,
        Option<String>,
        Option<String>,
    )> {
        self.store
            .contact_syncs(self.inst, id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.integration_id,
                    r.direction.as_str(),
                    r.result.as_str(),
                    r.code,
                    r.remote_id,
                )
            })
            .collect()
    }

    async fn log_codes(&self) -> Vec<(Option<i64>, String)> {
        let rows = self
            .store
            .list_sync_log(
                self.inst,
                &SyncLogQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        rows.into_iter().map(|r| (r.contact_id, r.code)).collect()
    }
}

fn seed(props: &[(&str, &str)]) -> SeedContact {
    SeedContact::new(props.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[tokio::test]
async fn outgoing_follows_each_branch_of_the_seed() {
    let s = setup(EmulatorConfig::default()).await;
    let ids = s
        .hub
        .state()
        .seed_contacts([
            seed(&[
                ("firstname", "Old"),
                ("lastname", "Name"),
                ("email", "ana@state.edu"),
            ]),
            seed(&[
                ("firstname", "Cleo"),
                ("lastname", "Park"),
                ("email", "cleo@state.edu"),
            ]),
            seed(&[
                ("firstname", "Dan"),
                ("lastname", "Lee"),
                ("phone", "(617) 555-0104"),
            ]),
            seed(&[
                ("firstname", "Eve"),
                ("lastname", "Moss"),
                ("phone", "617-555-0199"),
            ]),
        ])
        .unwrap();
    let (x, y, z, w) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    // A: CRM ID that exists; B: CRM ID that does not; C: email; D: name + phone; E: name, other phone.
    let a = s
        .contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "6175550101"),
            ("crm_id", x),
        ])
        .await;
    let b = s
        .contact(&[
            ("first_name", "Ben"),
            ("last_name", "Okafor"),
            ("phone", "6175550102"),
            ("crm_id", "123"),
        ])
        .await;
    let c = s
        .contact(&[
            ("first_name", "Cleo"),
            ("last_name", "Park"),
            ("phone", "6175550103"),
            ("email", "Cleo@State.edu"),
        ])
        .await;
    let d = s
        .contact(&[
            ("first_name", "Dan"),
            ("last_name", "Lee"),
            ("phone", "6175550104"),
        ])
        .await;
    let e = s
        .contact(&[
            ("first_name", "Eve"),
            ("last_name", "Moss"),
            ("phone", "6175550105"),
            ("preferred_name", ""),
        ])
        .await;
    let t = s
        .contact(&[
            ("first_name", "Tess"),
            ("last_name", "Tester"),
            ("phone", "6175550106"),
            ("test_user", "true"),
        ])
        .await;

    let out = s
        .instance("hubspot_outgoing", json!({"mappings": mappings()}))
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.rows, 4, "A, C, D updated and E created: {run:?}");
    assert_eq!(run.detail["created"], 1);
    assert_eq!(run.detail["updated"], 3);

    let hub = s.hub.state();
    assert_eq!(
        hub.contact(x).unwrap().get("firstname"),
        Some("Ana"),
        "a CRM ID match updates every mapped field"
    );
    assert_eq!(s.crm_id(a).await.as_deref(), Some(x.as_str()));
    assert_eq!(
        s.crm_id(b).await.as_deref(),
        Some("123"),
        "not found: an error, never another branch"
    );
    assert!(
        s.log_codes()
            .await
            .contains(&(Some(b), "crm_id_not_found".to_string()))
    );
    assert_eq!(
        s.crm_id(c).await.as_deref(),
        Some(y.as_str()),
        "the email match's ID is written back"
    );
    assert_eq!(
        s.crm_id(d).await.as_deref(),
        Some(z.as_str()),
        "name + matching phone"
    );
    let e_id = s
        .crm_id(e)
        .await
        .expect("the created contact's ID is written back");
    assert_ne!(&e_id, w, "same name but another phone is another person");
    assert_eq!(
        hub.contact(&e_id).unwrap().get("phone"),
        Some("+16175550105")
    );
    assert_eq!(
        hub.contacts().len(),
        5,
        "one contact created, no duplicates"
    );
    assert!(
        hub.contacts()
            .iter()
            .all(|r| r.get("firstname") != Some("Tess")),
        "test users never sync"
    );
    assert_eq!(s.crm_id(t).await, None);
    assert!(
        hub.contact(&e_id).unwrap().get("email").is_none(),
        "blank values are not sent"
    );
    // Each contact's sync status: written with its CRM ID, or failed with the Sync Log's code.
    let synced = |crm: &str| vec![(out.id, "outgoing", "synced", None, Some(crm.to_string()))];
    assert_eq!(s.sync_status(a).await, synced(x));
    assert_eq!(s.sync_status(c).await, synced(y));
    assert_eq!(s.sync_status(d).await, synced(z));
    assert_eq!(s.sync_status(e).await, synced(&e_id));
    assert_eq!(
        s.sync_status(b).await,
        vec![(
            out.id,
            "outgoing",
            "failed",
            Some("crm_id_not_found".to_string()),
            None
        )]
    );
    assert!(s.sync_status(t).await.is_empty(), "test users never sync");

    // Nothing changed: the next run only tries B again (failed contacts are retried), and the
    // write-backs did not count as changes.
    let again = s.run(&out).await;
    assert_eq!(
        (again.rows, again.detail["failed"].as_i64()),
        (0, Some(1)),
        "{again:?}"
    );
    assert_eq!(hub.contacts().len(), 5);

    // A change in Ferry goes out on the next (change) run.
    s.contact(&[("id", &c.to_string()), ("first_name", "Cleopatra")])
        .await;
    let w = s.worker();
    assert_eq!(w.queue_changed(jiff::Timestamp::now()).await.unwrap(), 1);
    w.run_once().await.unwrap();
    assert_eq!(hub.contact(y).unwrap().get("firstname"), Some("Cleopatra"));
}

#[tokio::test]
async fn incoming_pulls_changes_without_echoing_ferrys_writes() {
    let s = setup(EmulatorConfig::default()).await;
    let hub = s.hub.state();
    let ids = hub
        .seed_contacts([
            seed(&[
                ("firstname", "Ines"),
                ("lastname", "Ruiz"),
                ("phone", "(617) 555-0121"),
                ("email", "ines@state.edu"),
            ]),
            seed(&[
                ("firstname", "Jo"),
                ("lastname", "Kim"),
                ("phone", "617.555.0122"),
                ("email", "jo@state.edu"),
            ]),
            seed(&[
                ("firstname", "No"),
                ("lastname", "Phone"),
                ("email", "nophone@state.edu"),
            ]),
        ])
        .unwrap();
    // A Ferry test user whose phone HubSpot also has: the pull leaves it alone.
    let tess = s
        .contact(&[
            ("first_name", "Tess"),
            ("last_name", "Tester"),
            ("phone", "6175550129"),
            ("test_user", "true"),
        ])
        .await;
    hub.seed_contacts([seed(&[
        ("firstname", "Changed"),
        ("lastname", "ByHubSpot"),
        ("phone", "617-555-0129"),
        ("email", "tess@state.edu"),
    ])])
    .unwrap();
    let incoming = s
        .instance(
            "hubspot_incoming",
            json!({"mappings": mappings(), "schedule": {"every_minutes": 5}}),
        )
        .await;
    let run = s.run(&incoming).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.rows, 2, "{run:?}");
    let contacts = s
        .store
        .list_contacts(
            s.inst,
            &ferry_store::ContactQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ines = contacts
        .contacts
        .iter()
        .find(|c| c.data.first_name.as_deref() == Some("Ines"))
        .expect("Ines came in");
    assert_eq!(ines.data.crm_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(
        s.sync_status(ines.id).await,
        vec![(
            incoming.id,
            "incoming",
            "synced",
            None,
            Some(ids[0].clone())
        )]
    );
    assert!(
        s.sync_status(tess).await.is_empty(),
        "test users never sync"
    );
    assert_eq!(ines.data.phone.as_ref().unwrap().as_str(), "+16175550121");
    let tess = s.store.contact(s.inst, tess).await.unwrap();
    assert_eq!(
        tess.data.first_name.as_deref(),
        Some("Tess"),
        "test users never sync, in either direction"
    );
    assert_eq!(run.detail["filtered"], 1);
    assert!(
        s.log_codes()
            .await
            .iter()
            .any(|(_, code)| code == "missing_required_field"),
        "a HubSpot contact without a phone cannot become a Ferry contact: {:?}",
        s.log_codes().await
    );

    // Ferry pushes a change out; the pull that follows sees HubSpot's copy of it and changes nothing.
    s.contact(&[("id", &ines.id.to_string()), ("last_name", "Ruiz-Soto")])
        .await;
    let out = s
        .instance("hubspot_outgoing", json!({"mappings": mappings()}))
        .await;
    // The outgoing instance starts with a backfill of every contact.
    let pushed = s.run(&out).await;
    assert_eq!(pushed.status, RunStatus::Success, "{pushed:?}");
    assert_eq!(
        hub.contact(&ids[0]).unwrap().get("lastname"),
        Some("Ruiz-Soto")
    );
    let status = s.sync_status(ines.id).await;
    assert_eq!(status.len(), 2, "one row per integration: {status:?}");
    assert!(
        status.contains(&(out.id, "outgoing", "synced", None, Some(ids[0].clone()))),
        "{status:?}"
    );
    let seq = s.store.current_change_seq(s.inst).await.unwrap();
    let pulled = s.run(&incoming).await;
    assert_eq!(
        s.store.current_change_seq(s.inst).await.unwrap(),
        seq,
        "no echo: {pulled:?}"
    );
    assert_eq!(pulled.rows, 0);
}

/// Seed 002's Tips in both directions: a blank is never sent or written, `UNSET` clears.
#[tokio::test]
async fn unset_clears_in_both_directions_and_blanks_do_not() {
    let s = setup(EmulatorConfig::default()).await;
    let hub = s.hub.state();
    let mut map = mappings();
    map.as_array_mut()
        .unwrap()
        .push(json!({"local": "enrollment_id", "remote": "jobtitle"}));
    let ids = hub
        .seed_contacts([
            seed(&[
                ("firstname", "Ben"),
                ("lastname", "Blank"),
                ("phone", "6175550141"),
                ("email", "ben@state.edu"),
                ("jobtitle", "Kept by HubSpot"),
            ]),
            seed(&[
                ("firstname", "Cy"),
                ("lastname", "Cleared"),
                ("phone", "6175550142"),
                ("email", "cy@state.edu"),
                ("jobtitle", "UNSET"),
            ]),
        ])
        .unwrap();
    let ana = s
        .contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "6175550140"),
            ("email", "ana@state.edu"),
            ("enrollment_id", "E-1"),
        ])
        .await;
    // Ben has no enrollment ID in Ferry: the push must not wipe HubSpot's job title.
    let ben = s
        .contact(&[
            ("first_name", "Ben"),
            ("last_name", "Blank"),
            ("phone", "6175550141"),
            ("email", "ben@state.edu"),
        ])
        .await;
    let out = s
        .instance("hubspot_outgoing", json!({"mappings": map.clone()}))
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let ana_hub = s.crm_id(ana).await.expect("Ana was created in HubSpot");
    assert_eq!(hub.contact(&ana_hub).unwrap().get("jobtitle"), Some("E-1"));
    assert_eq!(s.crm_id(ben).await.as_deref(), Some(ids[0].as_str()));
    assert_eq!(
        hub.contact(&ids[0]).unwrap().get("jobtitle"),
        Some("Kept by HubSpot"),
        "a blank Ferry value is not sent"
    );

    // UNSET in Ferry clears HubSpot's value on the next push.
    s.contact(&[("id", &ana.to_string()), ("enrollment_id", "UNSET")])
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.rows, 1, "{run:?}");
    assert_eq!(
        hub.contact(&ana_hub).unwrap().get("jobtitle"),
        None,
        "UNSET clears the HubSpot property"
    );
    // Setting the field again ends the clearing: the value goes out as usual.
    s.contact(&[("id", &ana.to_string()), ("enrollment_id", "E-2")])
        .await;
    assert!(
        s.store
            .contact(s.inst, ana)
            .await
            .unwrap()
            .data
            .cleared
            .is_empty()
    );
    s.run(&out).await;
    assert_eq!(hub.contact(&ana_hub).unwrap().get("jobtitle"), Some("E-2"));

    // Incoming: HubSpot's UNSET clears the Ferry field; HubSpot's blanks leave Ferry's values.
    let cy = s
        .contact(&[
            ("first_name", "Cy"),
            ("last_name", "Cleared"),
            ("phone", "6175550142"),
            ("crm_id", &ids[1]),
            ("enrollment_id", "E-3"),
        ])
        .await;
    let incoming = s
        .instance(
            "hubspot_incoming",
            json!({"mappings": map, "schedule": {"every_minutes": 5}}),
        )
        .await;
    let run = s.run(&incoming).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let cy = s.store.contact(s.inst, cy).await.unwrap();
    assert_eq!(cy.data.enrollment_id, None, "HubSpot's UNSET clears");
    assert!(cy.data.cleared.contains("enrollment_id"));
    assert_eq!(cy.data.first_name.as_deref(), Some("Cy"));
    let ben = s.store.contact(s.inst, ben).await.unwrap();
    assert_eq!(ben.data.enrollment_id.as_deref(), Some("Kept by HubSpot"));
}

/// An outgoing run over many windows: each window's lookups and writes, the watermark moving
/// window by window, and a failed contact in a middle window retried by the next run.
#[tokio::test]
async fn outgoing_works_through_many_windows() {
    let s = setup(EmulatorConfig::default()).await;
    let hub = s.hub.state();
    let n = 130;
    let mut ids = Vec::new();
    let mut expected: Vec<Option<String>> = Vec::new();
    for i in 0..n {
        let (first, last) = (format!("First{i}"), format!("Last{i}"));
        let phone = format!("617555{:04}", 4000 + i);
        let email = format!("p{i}@state.edu");
        let in_hubspot = match i % 4 {
            // Already in HubSpot by email.
            0 => Some(seed(&[
                ("firstname", &first),
                ("lastname", &last),
                ("email", &email),
            ])),
            // Already in HubSpot by name and phone only.
            1 => Some(seed(&[
                ("firstname", &first),
                ("lastname", &last),
                ("phone", &phone),
            ])),
            _ => None,
        };
        expected.push(in_hubspot.map(|c| hub.seed_contacts([c]).unwrap().remove(0)));
        let mut fields = vec![
            ("first_name", first.as_str()),
            ("last_name", last.as_str()),
            ("phone", phone.as_str()),
        ];
        if i % 4 != 1 {
            fields.push(("email", email.as_str()));
        }
        ids.push(s.contact(&fields).await);
    }
    // HubSpot refuses one contact of a middle window: its lead status is not an option.
    s.contact(&[("id", &ids[70].to_string()), ("preferred_name", "Bogus")])
        .await;
    let mut map = mappings();
    let m = map.as_array_mut().unwrap();
    m.push(json!({"local": "enrollment_id", "remote": "jobtitle"}));
    m.push(json!({"local": "preferred_name", "remote": "hs_lead_status"}));
    let out = s
        .instance("hubspot_outgoing", json!({"mappings": map}))
        .await;
    let run = s.run_by(&out, s.worker_with_window(25)).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    // Contact 70 (a new one) fails; every other contact is written.
    assert_eq!(run.rows, n as i64 - 1, "{run:?}");
    assert_eq!(run.detail["failed"].as_i64(), Some(1), "{run:?}");
    let seeded = (0..n).filter(|i| i % 4 < 2).count();
    assert_eq!(
        (
            run.detail["updated"].as_i64(),
            run.detail["created"].as_i64()
        ),
        (Some(seeded as i64), Some((n - seeded - 1) as i64)),
        "{run:?}"
    );
    assert_eq!(
        hub.contacts().len(),
        n - 1,
        "one HubSpot contact per Ferry contact"
    );
    assert_eq!(s.crm_id(ids[70]).await, None);
    assert!(
        s.log_codes()
            .await
            .contains(&(Some(ids[70]), "crm_rejected".to_string())),
        "{:?}",
        s.log_codes().await
    );
    // Fixed, it goes out on the next run, which has nothing else to push.
    s.contact(&[("id", &ids[70].to_string()), ("preferred_name", "NEW")])
        .await;
    let again = s.run_by(&out, s.worker_with_window(25)).await;
    assert_eq!(again.rows, 1, "{again:?}");
    assert_eq!(hub.contacts().len(), n);
    for (i, id) in ids.iter().enumerate() {
        let crm = s
            .crm_id(*id)
            .await
            .unwrap_or_else(|| panic!("contact {i} has no CRM ID"));
        if let Some(want) = &expected[i] {
            assert_eq!(&crm, want, "contact {i}");
        }
        assert_eq!(
            hub.contact(&crm).unwrap().get("firstname"),
            Some(format!("First{i}").as_str())
        );
    }
    // Nothing changed since: the next run has nothing to push.
    let idle = s.run_by(&out, s.worker_with_window(25)).await;
    assert_eq!(idle.rows, 0, "{idle:?}");

    // Changes in the first, a middle and the last window go out, and only they.
    for i in [3, 64, 129] {
        s.contact(&[
            ("id", &ids[i].to_string()),
            ("enrollment_id", &format!("E{i}")),
        ])
        .await;
    }
    let changed = s.run_by(&out, s.worker_with_window(25)).await;
    assert_eq!(changed.rows, 3, "{changed:?}");
    for i in [3, 64, 129] {
        let crm = s.crm_id(ids[i]).await.unwrap();
        assert_eq!(
            hub.contact(&crm).unwrap().get("jobtitle"),
            Some(format!("E{i}").as_str())
        );
    }
}

#[tokio::test]
async fn a_create_conflict_becomes_an_update_and_no_duplicate() {
    let s = setup(EmulatorConfig::default()).await;
    // Two Ferry contacts share an email HubSpot does not have yet: one create succeeds, the
    // other meets "Contact already exists" and becomes an update of that contact.
    let a = s
        .contact(&[
            ("first_name", "Lia"),
            ("last_name", "Ng"),
            ("phone", "6175550131"),
            ("email", "twin@state.edu"),
        ])
        .await;
    let b = s
        .contact(&[
            ("first_name", "Lia"),
            ("last_name", "Ng"),
            ("phone", "6175550132"),
            ("email", "twin@state.edu"),
        ])
        .await;
    let out = s
        .instance("hubspot_outgoing", json!({"mappings": mappings()}))
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let hub = s.hub.state();
    assert_eq!(hub.contacts().len(), 1, "one HubSpot contact for the email");
    let ids = [s.crm_id(a).await, s.crm_id(b).await];
    assert_eq!(
        ids.iter().flatten().count(),
        1,
        "one Ferry contact holds the CRM ID: {ids:?}"
    );
    assert!(
        s.log_codes()
            .await
            .iter()
            .any(|(_, c)| c == "crm_id_in_use"),
        "{:?}",
        s.log_codes().await
    );
}

#[tokio::test]
async fn filters_hold_contacts_back_and_count_them() {
    let s = setup(EmulatorConfig::default()).await;
    let inside = s
        .contact(&[
            ("first_name", "In"),
            ("last_name", "Sync"),
            ("phone", "6175550141"),
            ("opt_in", "true"),
        ])
        .await;
    let outside = s
        .contact(&[
            ("first_name", "Out"),
            ("last_name", "Side"),
            ("phone", "6175550142"),
            ("opt_in", "false"),
        ])
        .await;
    let out = s
        .instance(
            "hubspot_outgoing",
            json!({"mappings": mappings(), "filters": [{"field": "opt_in", "values": ["true"]}]}),
        )
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.rows, 1, "{run:?}");
    assert_eq!(run.detail["filtered"], 1);
    assert_eq!(run.detail["failed"], 0, "filtered is not an error");
    let names: Vec<String> = s
        .hub
        .state()
        .contacts()
        .iter()
        .filter_map(|r| r.get("firstname").map(str::to_string))
        .collect();
    assert_eq!(names, ["In"]);
    let status = s.sync_status(inside).await;
    assert_eq!((status[0].2, status[0].3.clone()), ("synced", None));
    assert!(status[0].4.is_some(), "the new CRM ID: {status:?}");
    assert_eq!(
        s.sync_status(outside).await,
        vec![(
            out.id,
            "outgoing",
            "skipped",
            Some("filtered_out".to_string()),
            None
        )]
    );
}

#[tokio::test]
async fn faults_and_rate_limits_converge_without_duplicates_or_lost_updates() {
    let s = setup(EmulatorConfig::default()).await;
    let mut expected = Vec::new();
    for i in 0..60 {
        let email = format!("student{i}@state.edu");
        let phone = format!("617555{:04}", 2000 + i);
        let first = format!("First{i}");
        let with_email = i % 3 != 0;
        let mut fields = vec![
            ("first_name", first.as_str()),
            ("last_name", "Faulty"),
            ("phone", phone.as_str()),
        ];
        if with_email {
            fields.push(("email", email.as_str()));
        }
        expected.push((s.contact(&fields).await, first.clone()));
    }
    s.hub.state().set_faults(Faults {
        seed: 7,
        error_rate: 0.2,
        after_effect_rate: 0.5,
        burst_429_rate: 0.05,
        burst_429_len: 2,
        latency: Duration::from_millis(2),
        latency_jitter: Duration::from_millis(5),
        ..Faults::default()
    });
    let out = s
        .instance("hubspot_outgoing", json!({"mappings": mappings()}))
        .await;
    let mut runs = Vec::new();
    for _ in 0..10 {
        let run = s.run(&out).await;
        runs.push((run.status, run.error.clone()));
        let state = s.store.integration(s.inst, out.id).await.unwrap().state;
        let caught_up = state["watermark"].as_i64()
            == Some(s.store.current_change_seq(s.inst).await.unwrap())
            && state["retry"].as_object().is_none_or(|r| r.is_empty());
        if caught_up {
            break;
        }
    }
    let hub = s.hub.state();
    let all = hub.contacts();
    assert_eq!(
        all.len(),
        60,
        "every contact once, no duplicates; runs: {runs:?}"
    );
    for (id, first) in &expected {
        let crm = s
            .crm_id(*id)
            .await
            .unwrap_or_else(|| panic!("{first} has no CRM ID; runs: {runs:?}"));
        assert_eq!(
            hub.contact(&crm).unwrap().get("firstname"),
            Some(first.as_str())
        );
    }
    s.hub.state().set_faults(Faults::default());
    let before = s.hub.state().counters().total_429();
    // A normal run under the real limits: the client-side limiter keeps it clear of 429s.
    for (id, _) in expected.iter().take(30) {
        s.contact(&[("id", &id.to_string()), ("last_name", "Calm")])
            .await;
    }
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(
        s.hub.state().counters().total_429(),
        before,
        "no 429 in a normal run"
    );
}

#[tokio::test]
async fn the_name_branch_asks_for_many_names_in_few_searches() {
    let s = setup(EmulatorConfig::default()).await;
    let firsts = ["Ana", "Luis", "Maria", "John", "Mei", "Omar"];
    let lasts = ["Diaz", "Smith", "Nguyen", "Okafor", "Lee"];
    // 150 contacts without email (straight to the name search): every first and last name
    // pair five times, each with its own phone.
    let n = 150;
    let people: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            (
                firsts[i % 6].to_string(),
                lasts[(i / 6) % 5].to_string(),
                format!("617555{:04}", 3000 + i),
            )
        })
        .collect();
    let mut ids = Vec::new();
    for (first, last, phone) in &people {
        ids.push(
            s.contact(&[("first_name", first), ("last_name", last), ("phone", phone)])
                .await,
        );
    }
    // HubSpot: what each contact should match, seeded in an order that makes the oldest record
    // (lowest ID) the first one seeded.
    let hub = s.hub.state();
    let mut expected: Vec<Option<String>> = vec![None; n];
    let pretty = |p: &str| format!("({}) {}-{}", &p[0..3], &p[3..6], &p[6..]);
    for (i, (first, last, phone)) in people.iter().enumerate() {
        let one = |props: &[(&str, &str)]| hub.seed_contacts([seed(props)]).unwrap().remove(0);
        match i % 6 {
            // The same person, the phone typed another way, the name in other letter case.
            0 => {
                expected[i] = Some(one(&[
                    ("firstname", &first.to_uppercase()),
                    ("lastname", last),
                    ("phone", &pretty(phone)),
                ]))
            }
            // Two records of the same person: the oldest wins; a namesake with another phone too.
            1 => {
                one(&[
                    ("firstname", first),
                    ("lastname", last),
                    ("phone", "+1 617 555 9999"),
                ]);
                expected[i] = Some(one(&[
                    ("firstname", first),
                    ("lastname", last),
                    ("phone", phone),
                ]));
                one(&[
                    ("firstname", first),
                    ("lastname", last),
                    ("phone", &format!("+1{phone}")),
                ]);
            }
            // Found by the mobile phone.
            2 => {
                expected[i] = Some(one(&[
                    ("firstname", first),
                    ("lastname", last),
                    ("phone", "617-555-8888"),
                    ("mobilephone", phone),
                ]))
            }
            // Namesakes only: another person, to be created.
            3 => {
                one(&[
                    ("firstname", first),
                    ("lastname", last),
                    ("phone", &format!("617555{:04}", 7000 + i)),
                ]);
            }
            // The phone is this contact's but the name another (asked-for) pair's: not a match.
            4 => {
                one(&[
                    ("firstname", firsts[(i + 1) % 6]),
                    ("lastname", lasts[(i / 6 + 1) % 5]),
                    ("phone", phone),
                ]);
            }
            _ => {}
        }
    }
    let seeded: std::collections::HashSet<String> =
        hub.contacts().into_iter().map(|r| r.id).collect();

    let (run, searches) = s.push_counting_searches().await;
    eprintln!("{searches} searches for {n} name lookups");
    assert!(
        searches * 10 <= n as u64,
        "{searches} searches for {n} name lookups"
    );
    let matched = expected.iter().flatten().count() as i64;
    assert_eq!(
        (
            run.detail["updated"].as_i64(),
            run.detail["created"].as_i64()
        ),
        (Some(matched), Some(n as i64 - matched)),
        "{run:?}"
    );

    for (i, (first, last, phone)) in people.iter().enumerate() {
        let crm = s
            .crm_id(ids[i])
            .await
            .unwrap_or_else(|| panic!("contact {i} has no CRM ID"));
        match &expected[i] {
            Some(want) => assert_eq!(&crm, want, "contact {i} ({first} {last}, case {})", i % 6),
            None => {
                assert!(
                    !seeded.contains(&crm),
                    "contact {i} ({first} {last}, case {}) matched {crm}, another person",
                    i % 6
                );
                let r = hub.contact(&crm).unwrap();
                assert_eq!(
                    (r.get("firstname"), r.get("lastname")),
                    (Some(first.as_str()), Some(last.as_str()))
                );
                assert_eq!(r.get("phone"), Some(format!("+1{phone}").as_str()));
            }
        }
    }
}

#[tokio::test]
async fn a_name_search_goes_past_the_10000_result_cap() {
    use ferry_emulators::hubspot::RateLimits;
    let s = setup(EmulatorConfig {
        limits: RateLimits::unlimited(),
        validate_responses: false,
        ..EmulatorConfig::default()
    })
    .await;
    // 10,050 John Smiths; the one with the contact's phone is the newest, past the first 10,000.
    let hub = s.hub.state();
    hub.seed_contacts((0..10_050).map(|i| {
        seed(&[
            ("firstname", "John"),
            ("lastname", "Smith"),
            ("phone", &format!("+1212555{:04}", i)),
        ])
    }))
    .unwrap();
    let want = hub
        .seed_contacts([seed(&[
            ("firstname", "John"),
            ("lastname", "Smith"),
            ("phone", "(617) 555-0150"),
        ])])
        .unwrap()
        .remove(0);
    let id = s
        .contact(&[
            ("first_name", "John"),
            ("last_name", "Smith"),
            ("phone", "6175550150"),
        ])
        .await;
    let out = s
        .instance("hubspot_outgoing", json!({"mappings": mappings()}))
        .await;
    let settings = HubSpotSettings {
        api_url: s.hub.base_url().to_string(),
        limits: Limits {
            searches_per_second: 1_000,
            per_ten_seconds: 10_000,
            ..Limits::default()
        },
        ..HubSpotSettings::default()
    };
    let run = s
        .store
        .enqueue_run(&NewRun {
            institution_id: s.inst,
            integration_id: out.id,
            kind: out.kind.clone(),
            trigger: ferry_core::run::Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .unwrap();
    let worker = Worker::new(
        s.store.store.clone(),
        Registry::builtin_with("http://ferry.test", &settings),
        WorkerConfig::default(),
    );
    assert_eq!(worker.run_once().await.unwrap(), Some(run.id));
    let run = s.store.run(s.inst, run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(s.crm_id(id).await, Some(want), "{run:?}");
    assert_eq!(
        hub.counters().statuses.get(&400),
        None,
        "no page past the cap was asked for"
    );
}

#[tokio::test]
async fn lone_names_are_asked_together_and_narrowed_when_hubspot_has_many_namesakes() {
    let s = setup(EmulatorConfig::default()).await;
    // 40 contacts whose names nobody else in the run shares: the search asks for them together
    // (first names IN [...] and last names IN [...]) and drops the other combinations.
    let n = 40;
    let name = |i: usize| {
        (
            format!("First{i}"),
            format!("Last{i}"),
            format!("617555{:04}", 4000 + i),
        )
    };
    let mut ids = Vec::new();
    for i in 0..n {
        let (first, last, phone) = name(i);
        ids.push(
            s.contact(&[
                ("first_name", &first),
                ("last_name", &last),
                ("phone", &phone),
            ])
            .await,
        );
    }
    let hub = s.hub.state();
    let mut expected: Vec<Option<String>> = vec![None; n];
    for (i, want) in expected.iter_mut().enumerate() {
        let (first, last, phone) = name(i);
        if i % 2 == 0 {
            *want = Some(
                hub.seed_contacts([seed(&[
                    ("firstname", &first),
                    ("lastname", &last),
                    ("phone", &format!("+1 {phone}")),
                ])])
                .unwrap()
                .remove(0),
            );
        }
        // Ten people each whose names cross other contacts' names, one of them with this
        // contact's phone: many results for a wide search, none of them a match.
        for k in 1..=10 {
            let (_, other_last, _) = name((i + k) % n);
            let phone = if k == 1 {
                phone.clone()
            } else {
                format!("212555{:04}", i * 10 + k)
            };
            hub.seed_contacts([seed(&[
                ("firstname", &first),
                ("lastname", &other_last),
                ("phone", &phone),
            ])])
            .unwrap();
        }
    }
    let (_, searches) = s.push_counting_searches().await;
    eprintln!("{searches} searches for {n} lone names");
    assert!(
        searches * 3 <= n as u64,
        "{searches} searches for {n} name lookups"
    );
    for (i, want) in expected.iter().enumerate() {
        let crm = s.crm_id(ids[i]).await.unwrap();
        match want {
            Some(want) => assert_eq!(&crm, want, "contact {i}"),
            None => assert_eq!(
                hub.contact(&crm).unwrap().get("lastname"),
                Some(name(i).1.as_str()),
                "contact {i} created"
            ),
        }
    }
    assert_eq!(
        hub.contacts().len(),
        n / 2 + n * 10 + n / 2,
        "the odd ones created, nothing else"
    );
}

/// An incoming filter on a Ferry field the mapping leaves out would filter every contact (and
/// every run would be Skipped): it is refused on save, naming the filter. Outgoing filters read
/// Ferry's own values, so any field will do there.
#[test]
fn an_incoming_filter_on_an_unmapped_field_is_refused() {
    let registry = ferry_connectors::Registry::builtin("https://ferry.example.edu");
    let config = |field: &str| {
        json!({"mappings": mappings(), "filters": [
            {"field": "first_name", "values": ["Ana"]},
            {"field": field, "values": ["true"]},
        ]})
    };
    let e = registry
        .validate("hubspot_incoming", &config("opt_in"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("filters[1].field:") && e.contains("not in the data mapping"),
        "{e}"
    );
    assert!(
        registry
            .validate("hubspot_incoming", &config("email"))
            .is_ok()
    );
    assert!(
        registry
            .validate("hubspot_incoming", &config("crm_id"))
            .is_ok()
    );
    assert!(
        registry
            .validate("hubspot_outgoing", &config("opt_in"))
            .is_ok()
    );
}

/// Incoming pages by keyset, not by offset: a record modified while the pull pages (it moves to
/// the end of HubSpot's sort) neither hides another record nor is lost, and 120 records sharing
/// one millisecond (more than a page) are all read.
#[tokio::test]
async fn incoming_paging_loses_nothing_when_records_change_between_pages() {
    use ferry_connectors::crm::{CrmClient, NextPage};
    use ferry_connectors::hubspot::client::StaticToken;
    use std::collections::BTreeSet;
    let s = setup(EmulatorConfig {
        limits: ferry_emulators::hubspot::RateLimits::unlimited(),
        search_visibility_delay: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .await;
    let hub = s.hub.state();
    let base: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let at = |ms: i64| base + jiff::SignedDuration::from_millis(ms);
    // 150 records a millisecond apart, 120 sharing one millisecond, 30 more after them.
    let times = (0..150)
        .map(at)
        .chain((0..120).map(|_| at(500)))
        .chain((0..30).map(|i| at(1_000 + i)));
    let seeded: BTreeSet<String> = hub
        .seed_contacts(times.enumerate().map(|(i, t)| SeedContact {
            updated_at: Some(t),
            created_at: Some(t),
            ..seed(&[("email", &format!("c{i}@state.edu"))])
        }))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(seeded.len(), 300);
    let client = ferry_connectors::hubspot::Client::new(
        s.hub.base_url(),
        std::sync::Arc::new(StaticToken(TOKEN.to_string().into())),
        Default::default(),
    );
    let properties = vec!["email".to_string(), "lastmodifieddate".to_string()];
    let mut read: BTreeSet<String> = BTreeSet::new();
    let mut page: Option<String> = None;
    let mut pages = 0;
    loop {
        let changes = client
            .changes(base.as_millisecond(), &properties, page.as_deref())
            .await
            .unwrap();
        pages += 1;
        assert!(pages < 50, "paging does not end");
        if pages == 1 {
            // Between pages, a record of the first page changes in HubSpot.
            let moved = changes.records[3].id.clone();
            client
                .batch_update(&[(
                    moved,
                    [("firstname".to_string(), "Moved".to_string())].into(),
                )])
                .await
                .unwrap();
        }
        read.extend(changes.records.into_iter().map(|r| r.id));
        match changes.next {
            NextPage::Page(next) => page = Some(next),
            NextPage::Requery => panic!("keyset paging never asks to start again"),
            NextPage::Done => break,
        }
    }
    let missed: Vec<&String> = seeded.difference(&read).collect();
    assert!(missed.is_empty(), "records never read: {missed:?}");
}
