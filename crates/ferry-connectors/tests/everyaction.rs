//! The EveryAction connector against the in-repo EveryAction emulator on loopback, run by the
//! real worker: Test Connection, the nightly pull's rules (conservative and liberal, US
//! mobile numbers, required fields, the 48-hour window, changes by Ferry's own API user),
//! the Constituent ID, and 429s.

use std::time::Duration;

use ferry_connectors::everyaction::EveryAction;
use ferry_connectors::{Connector, ConnectorContext, Registry, Secrets};
use ferry_core::contact::SmsOptIn;
use ferry_core::run::RunStatus;
use ferry_emulators::everyaction::{self, EmulatorConfig, Faults, RunningEmulator, SeedPerson};
use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::{ContactQuery, Integration, NewIntegration, NewRun, Run, SyncLogQuery};
use ferry_worker::{Worker, WorkerConfig};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const KEY: &str = "6b1f0c2e-1d3a-4f5b-9c7d-8e9f0a1b2c3d";

struct Setup {
    store: TestStore,
    inst: i64,
    ea: RunningEmulator,
}

async fn setup() -> Setup {
    let store = fresh_store().await;
    let inst = store
        .create_institution("state-u", "State University", None)
        .await
        .unwrap()
        .id;
    let ea = everyaction::start(EmulatorConfig {
        api_key: KEY.into(),
        app_name: "ferry".into(),
        database_name: "State U Advocacy".into(),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    Setup { store, inst, ea }
}

fn person(first: &str, phone: &str, opt_in: &str) -> Value {
    json!({
        "firstName": first, "lastName": "Rivera",
        "emails": [{"email": format!("{}@example.org", first.to_lowercase())}],
        "phones": [{"phoneNumber": phone, "phoneType": "C", "phoneOptInStatus": opt_in}],
        "addresses": [{"addressLine1": "12 Main St", "city": "Boston", "stateOrProvince": "MA", "zipOrPostalCode": "02139", "countryCode": "US"}],
    })
}

impl Setup {
    fn config(&self, liberal: bool) -> Value {
        json!({"login": "ferry", "api_host": self.ea.api_url(), "liberal": liberal})
    }

    fn secrets(key: &str) -> Secrets {
        let mut s = Secrets::new();
        s.insert("password", key);
        s
    }

    async fn instance(&self, config: Value) -> Integration {
        let mut secrets = serde_json::Map::new();
        secrets.insert("password".into(), json!(KEY));
        self.store
            .create_integration(
                self.inst,
                NewIntegration {
                    kind: "everyaction".into(),
                    name: "EveryAction".into(),
                    description: String::new(),
                    enabled: true,
                    config,
                    secrets: Some(secrets),
                },
            )
            .await
            .unwrap()
    }

    async fn run(&self, i: &Integration) -> Run {
        let worker = Worker::new(
            self.store.store.clone(),
            Registry::builtin("http://ferry.test"),
            WorkerConfig {
                retry_backoff: Duration::from_millis(20),
                ..WorkerConfig::default()
            },
        );
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

    async fn contacts(&self) -> Vec<ferry_core::contact::Contact> {
        self.store
            .list_contacts(
                self.inst,
                &ContactQuery {
                    limit: 500,
                    ..ContactQuery::default()
                },
            )
            .await
            .unwrap()
            .contacts
    }

    async fn log_codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self
            .store
            .list_sync_log(
                self.inst,
                &SyncLogQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.code)
            .collect();
        codes.sort();
        codes
    }

    /// A contact's sync status rows: (direction, result, code, remote ID), by direction.
    async fn sync_status(
        &self,
        id: i64,
    ) -> Vec<(&'static str, &'static str, Option<String>, Option<String>)> {
        self.store
            .contact_syncs(self.inst, id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.direction.as_str(), r.result.as_str(), r.code, r.remote_id))
            .collect()
    }
}

#[tokio::test]
async fn test_connection_names_the_database_or_the_reason() {
    let s = setup().await;
    let ea = EveryAction::default();
    let ok = ea
        .test_connection(&ConnectorContext::new(
            s.inst,
            None,
            s.config(false),
            Setup::secrets(KEY),
        ))
        .await
        .unwrap();
    assert!(ok.message.contains("State U Advocacy"), "{}", ok.message);
    assert_eq!(ok.detail["username"], "ferry");
    let err = ea
        .test_connection(&ConnectorContext::new(
            s.inst,
            None,
            s.config(false),
            Setup::secrets("not-the-key"),
        ))
        .await
        .unwrap_err();
    assert!(err.reason.contains("401"), "{}", err.reason);
    assert!(
        err.reason.contains("Invalid Database Mode"),
        "{}",
        err.reason
    );
    assert!(!err.retryable);
    // The key itself is never in the answer.
    assert!(!err.reason.contains("not-the-key"));
}

#[tokio::test]
async fn the_nightly_pull_follows_seed_004s_rules() {
    let s = setup().await;
    let emu = s.ea.state();
    let long_ago = Timestamp::now() - SignedDuration::from_hours(49);
    let mut landline = person("Cy", "6175550103", "I");
    landline["phones"][0]["phoneType"] = json!("H");
    landline["phones"][0]["deviceType"] = json!("L");
    let mut canadian = person("Dee", "6045550104", "I");
    canadian["addresses"][0]["countryCode"] = json!("CA");
    let mut no_email = person("Eve", "6175550105", "I");
    no_email["emails"] = json!([]);
    let ids = emu
        .seed_people([
            SeedPerson::new(person("Ana", "6175550101", "I")),
            SeedPerson::new(person("Ben", "6175550102", "O")),
            SeedPerson::new(landline),
            SeedPerson::new(canadian),
            SeedPerson::new(no_email),
            SeedPerson::new(person("Fay", "6175550106", "I")).modified_at(long_ago),
        ])
        .unwrap();

    // Conservative: only Ana.
    let i = s.instance(s.config(false)).await;
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.rows, 5, "Fay changed 49 hours ago and is not pulled");
    assert_eq!(run.detail["pull"]["created"], 1, "{}", run.detail);
    assert_eq!(run.detail["pull"]["skipped"]["everyaction_not_opted_in"], 1);
    let contacts = s.contacts().await;
    assert_eq!(contacts.len(), 1);
    let ana = &contacts[0].data;
    assert_eq!(
        ana.crm_id.as_deref(),
        Some(ids[0].to_string().as_str()),
        "VAN ID as Constituent ID"
    );
    assert_eq!(ana.sms_opt_in, SmsOptIn::OptedIn);
    assert_eq!(ana.email.as_ref().unwrap().as_str(), "ana@example.org");
    assert_eq!(ana.phone.as_ref().unwrap().as_str(), "+16175550101");
    assert_eq!(ana.city.as_deref(), Some("Boston"));
    assert_eq!(ana.country.as_deref(), Some("US"));
    assert_eq!(
        s.log_codes().await,
        [
            "everyaction_missing_email",
            "everyaction_not_us",
            "everyaction_not_us_mobile"
        ]
    );

    // Liberal: Ben too, opted out; Ana matched by phone and unchanged.
    let i = s.instance(s.config(true)).await;
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(
        (
            run.detail["pull"]["created"].as_u64(),
            run.detail["pull"]["unchanged"].as_u64()
        ),
        (Some(1), Some(1)),
        "{}",
        run.detail
    );
    let ben = s
        .contacts()
        .await
        .into_iter()
        .find(|c| c.data.first_name.as_deref() == Some("Ben"))
        .unwrap();
    assert_eq!(ben.data.sms_opt_in, SmsOptIn::OptedOut);
    assert!(!ben.data.opt_in);
    // Nothing was written to EveryAction, and the export excluded Ferry's own changes.
    let c = emu.counters();
    assert_eq!(c.requests_to("POST /v4/changedEntityExportJobs"), 2);
    assert_eq!(c.requests_to("POST /v4/people/{vanId}"), 0);
}

#[tokio::test]
async fn a_required_field_left_empty_skips_the_record_with_a_log_row() {
    let s = setup().await;
    let mut no_city = person("Gus", "6175550107", "I");
    no_city["addresses"][0]["city"] = Value::Null;
    s.ea.state()
        .seed_people([
            SeedPerson::new(no_city),
            SeedPerson::new(person("Hal", "6175550108", "I")),
        ])
        .unwrap();
    let mut config = s.config(false);
    let mut rows =
        serde_json::to_value(ferry_connectors::everyaction::config::default_field_mappings())
            .unwrap();
    rows[7]["required"] = json!(true); // city
    config["field_mappings"] = rows;
    let i = s.instance(config).await;
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.detail["pull"]["created"], 1);
    assert_eq!(
        run.detail["pull"]["skipped"]["everyaction_required_field_empty"],
        1
    );
    assert_eq!(s.log_codes().await, ["everyaction_required_field_empty"]);
}

#[tokio::test]
async fn rate_limit_answers_are_waited_out_by_their_hint() {
    let s = setup().await;
    s.ea.state()
        .seed_people([SeedPerson::new(person("Ivy", "6175550109", "I"))])
        .unwrap();
    // Two requests a second: the pull's third request within a second gets VAN's 429.
    s.ea.state().set_rate_limit(2);
    let i = s.instance(s.config(false)).await;
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.detail["pull"]["created"], 1);
    let limited = s.ea.state().counters().rate_limited;
    assert!(limited >= 1, "the limit sent no 429");
    assert_eq!(run.detail["rate_limited"].as_u64(), Some(limited));
    // An injected 5xx is retried as well.
    s.ea.state().set_rate_limit(1_000);
    s.ea.state().set_faults(Faults {
        seed: 3,
        error_rate: 0.3,
        ..Faults::default()
    });
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
}

impl Setup {
    async fn write(&self, fields: &[(&str, &str)]) -> i64 {
        let schema = self.store.field_schema(self.inst).await.unwrap();
        let w = ferry_core::contact::ContactWrite::parse(
            &schema,
            fields
                .iter()
                .map(|(k, v)| (*k, ferry_core::contact::Raw::Str(v))),
        )
        .unwrap();
        let out = self
            .store
            .apply_contact_writes(self.inst, &[w], ferry_store::WriteKind::Import)
            .await
            .unwrap();
        out[0].as_ref().unwrap().contact_id
    }

    async fn crm_id(&self, id: i64) -> Option<String> {
        self.store.contact(self.inst, id).await.unwrap().data.crm_id
    }
}

#[tokio::test]
async fn opt_ins_and_opt_outs_are_pushed_by_van_id_by_phone_or_as_new_records() {
    let s = setup().await;
    let emu = s.ea.state();
    let long_ago = Timestamp::now() - SignedDuration::from_hours(60);
    let ids = emu
        .seed_people([
            SeedPerson::new(person("Ana", "6175550101", "I")),
            SeedPerson::new(person("Dot", "6175550104", "I")).modified_at(long_ago),
        ])
        .unwrap();
    let i = s.instance(s.config(false)).await;
    // The first run starts the push's watermark and pulls Ana.
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.detail["pull"]["created"], 1, "{}", run.detail);
    let ana = s.contacts().await[0].id;
    assert_eq!(s.crm_id(ana).await, Some(ids[0].to_string()));

    // In Ferry: Ana opts out; Bo opts in with an email, Cal without; Dot (in EveryAction,
    // not linked) opts out.
    s.write(&[("phone", "6175550101"), ("sms_opt_in", "opted_out")])
        .await;
    let bo = s
        .write(&[
            ("first_name", "Bo"),
            ("last_name", "Li"),
            ("phone", "6175550111"),
            ("email", "bo@example.org"),
            ("sms_opt_in", "opted_in"),
        ])
        .await;
    let cal = s
        .write(&[
            ("first_name", "Cal"),
            ("last_name", "Ng"),
            ("phone", "6175550112"),
            ("sms_opt_in", "opted_in"),
        ])
        .await;
    let dot = s
        .write(&[
            ("first_name", "Dot"),
            ("last_name", "Rivera"),
            ("phone", "6175550104"),
            ("sms_opt_in", "opted_out"),
        ])
        .await;
    let before = emu.counters();
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let push = &run.detail["push"];
    assert_eq!(push["opt_ins_pushed"], 1, "{push}");
    assert_eq!(push["opt_outs_pushed"], 2, "{push}");
    assert_eq!(push["created_in_everyaction"], 1);
    assert_eq!(push["van_ids_written"], 2);
    assert_eq!(push["skipped"]["everyaction_opt_in_without_email"], 1);
    assert_eq!(
        run.detail["pull"]["pulled"], 0,
        "Ferry's own writes do not come back"
    );

    let a = emu.person(ids[0]).unwrap();
    assert_eq!(
        a.phones.len(),
        1,
        "only the changed phone was sent, and it changed in place"
    );
    assert_eq!(a.phones[0].opt_in, ferry_emulators::everyaction::OptIn::Out);
    let d = emu.person(ids[1]).unwrap();
    assert_eq!(d.phones[0].opt_in, ferry_emulators::everyaction::OptIn::Out);
    assert_eq!(
        s.crm_id(dot).await,
        Some(ids[1].to_string()),
        "linked by name and phone"
    );
    let bo_van: u64 = s.crm_id(bo).await.unwrap().parse().unwrap();
    let b = emu.person(bo_van).unwrap();
    assert_eq!(b.get("firstName"), Some("Bo"));
    assert_eq!(b.emails[0].email, "bo@example.org");
    assert_eq!(b.phones[0].opt_in, ferry_emulators::everyaction::OptIn::In);
    assert_eq!(s.crm_id(cal).await, None);
    let after = emu.counters();
    let sent = |k: &str| after.requests_to(k) - before.requests_to(k);
    assert_eq!(sent("POST /v4/people/findOrCreate"), 1);
    assert_eq!(sent("POST /v4/people/find"), 1);
    assert_eq!(sent("POST /v4/people/{vanId}"), 2);
    assert!(
        s.log_codes()
            .await
            .contains(&"everyaction_opt_in_without_email".to_string())
    );
    // Each contact's sync status: pulled and pushed with its VAN ID, or skipped with the code.
    let van = |id: u64| Some(id.to_string());
    assert_eq!(
        s.sync_status(ana).await,
        [
            ("incoming", "synced", None, van(ids[0])),
            ("outgoing", "synced", None, van(ids[0]))
        ]
    );
    assert_eq!(
        s.sync_status(bo).await,
        [("outgoing", "synced", None, van(bo_van))]
    );
    assert_eq!(
        s.sync_status(dot).await,
        [("outgoing", "synced", None, van(ids[1]))]
    );
    assert_eq!(
        s.sync_status(cal).await,
        [(
            "outgoing",
            "skipped",
            Some("everyaction_opt_in_without_email".to_string()),
            None
        )]
    );

    // Nothing changed since: nothing is sent.
    let before = emu.counters();
    let run = s.run(&i).await;
    assert_eq!(run.detail["push"]["opt_outs_pushed"], 0, "{}", run.detail);
    assert_eq!(
        emu.counters().requests_to("POST /v4/people/{vanId}"),
        before.requests_to("POST /v4/people/{vanId}")
    );
}

#[tokio::test]
async fn a_push_retried_after_a_lost_answer_makes_no_duplicate() {
    let s = setup().await;
    let i = s.instance(s.config(false)).await;
    s.run(&i).await; // starts the watermark
    let eve = s
        .write(&[
            ("first_name", "Eve"),
            ("last_name", "Ko"),
            ("phone", "6175550121"),
            ("email", "eve@example.org"),
            ("sms_opt_in", "opted_in"),
        ])
        .await;
    // The first attempt's findOrCreate reached EveryAction, then the answer was lost (a
    // gateway timeout after the write): the run fails and is retried.
    s.ea.state().set_faults(Faults {
        error_rate: 1.0,
        after_effect_rate: 1.0,
        ..Faults::default()
    });
    let failed = EveryAction::new(ferry_connectors::everyaction::Limits {
        retries: 0,
        ..Default::default()
    });
    let ctx_run = s
        .store
        .enqueue_run(&NewRun {
            institution_id: s.inst,
            integration_id: i.id,
            kind: i.kind.clone(),
            trigger: ferry_core::run::Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .unwrap();
    let ctx = ferry_connectors::RunContext::new(
        s.store.store.clone(),
        s.store.integration(s.inst, i.id).await.unwrap(),
        ctx_run,
        Setup::secrets(KEY),
        ferry_connectors::CancelSignal::never(),
    );
    let err = failed.run(&ctx).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert_eq!(s.ea.state().people().len(), 1, "the write happened");
    s.ea.state().set_faults(Faults::default());
    // The retry (the same queued run, attempted again).
    let ctx = ferry_connectors::RunContext::new(
        s.store.store.clone(),
        s.store.integration(s.inst, i.id).await.unwrap(),
        ctx.run().clone(),
        Setup::secrets(KEY),
        ferry_connectors::CancelSignal::never(),
    );
    let report = EveryAction::default().run(&ctx).await.unwrap();
    let push = &report.detail["push"];
    assert_eq!(push["opt_ins_pushed"], 1, "{}", report.detail);
    assert_eq!(
        push["created_in_everyaction"], 0,
        "matched, not created again"
    );
    let people = s.ea.state().people();
    assert_eq!(people.len(), 1, "no duplicate");
    assert_eq!(s.crm_id(eve).await, Some(people[0].van_id.to_string()));
    assert_eq!(people[0].phones.len(), 1);
    assert_eq!(
        people[0].phones[0].opt_in,
        ferry_emulators::everyaction::OptIn::In
    );
}

#[tokio::test]
async fn test_users_stay_alone_archived_contacts_come_back_and_unset_and_blanks_follow_seed_001() {
    let s = setup().await;
    // In Ferry: a test user with Ana's phone, an archived Ben with a city, Cy with a last name.
    s.write(&[
        ("first_name", "Tess"),
        ("last_name", "User"),
        ("phone", "6175550101"),
        ("test_user", "true"),
    ])
    .await;
    let ben = s
        .write(&[
            ("first_name", "Ben"),
            ("last_name", "Old"),
            ("phone", "6175550102"),
            ("city", "Salem"),
        ])
        .await;
    s.store.set_archived(s.inst, ben, true).await.unwrap();
    let cy = s
        .write(&[
            ("first_name", "Cy"),
            ("last_name", "Keep"),
            ("phone", "6175550103"),
        ])
        .await;
    let mut ben_ea = person("Ben", "6175550102", "I");
    ben_ea["addresses"][0]["city"] = Value::Null; // blank in EveryAction: skipped, not cleared
    let mut cy_ea = person("Cy", "6175550103", "I");
    cy_ea["lastName"] = json!("UNSET");
    s.ea.state()
        .seed_people([
            SeedPerson::new(person("Ana", "6175550101", "I")),
            SeedPerson::new(ben_ea),
            SeedPerson::new(cy_ea),
        ])
        .unwrap();
    let i = s.instance(s.config(false)).await;
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(
        run.detail["pull"]["skipped"]["everyaction_test_user"], 1,
        "{}",
        run.detail
    );
    let tess = s
        .contacts()
        .await
        .into_iter()
        .find(|c| c.data.test_user)
        .unwrap();
    assert_eq!(
        tess.data.first_name.as_deref(),
        Some("Tess"),
        "test users never sync"
    );
    let ben = s.store.contact(s.inst, ben).await.unwrap();
    assert!(
        !ben.data.archived,
        "EveryAction brought the archived contact again"
    );
    assert_eq!(
        ben.data.city.as_deref(),
        Some("Salem"),
        "a blank is skipped"
    );
    assert_eq!(ben.data.last_name.as_deref(), Some("Rivera"));
    let cy = s.store.contact(s.inst, cy).await.unwrap();
    assert_eq!(cy.data.last_name, None, "UNSET from EveryAction clears");
}

#[tokio::test]
async fn new_opted_in_contacts_get_the_opt_in_paths_welcome_once() {
    let s = setup().await;
    let emu = s.ea.state();
    emu.seed_people([
        SeedPerson::new(person("Ana", "6175550101", "I")),
        SeedPerson::new(person("Ben", "6175550102", "O")),
    ])
    .unwrap();
    let path = s
        .store
        .create_opt_in_path(
            s.inst,
            &ferry_store::OptInPathInput {
                name: "Advocacy day".into(),
                welcome_message: "Welcome! Reply STOP to opt out.".into(),
            },
        )
        .await
        .unwrap();
    let mut config = s.config(true);
    config["opt_in_path_id"] = json!(path.id);
    let i = s.instance(config).await;
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.detail["pull"]["created"], 2, "{}", run.detail);
    assert_eq!(
        run.detail["pull"]["welcome_messages_queued"], 1,
        "{}",
        run.detail
    );
    let queued = s.store.outbox(s.inst, false, None, 100).await.unwrap();
    assert_eq!(queued.len(), 1, "only the opted-in new contact: {queued:?}");
    let ana = s
        .contacts()
        .await
        .into_iter()
        .find(|c| c.data.first_name.as_deref() == Some("Ana"))
        .unwrap();
    assert_eq!(queued[0].contact_id, ana.id);
    assert_eq!(queued[0].body, "Welcome! Reply STOP to opt out.");
    assert_eq!(queued[0].integration_id, Some(i.id));

    // Another run finds Ana again (matched, not created): nothing more is queued.
    emu.seed_people([SeedPerson::new(person("Cy", "6175550103", "I"))])
        .unwrap();
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let queued = s.store.outbox(s.inst, false, None, 100).await.unwrap();
    assert_eq!(queued.len(), 2, "Ana once, and the new Cy: {queued:?}");

    // A path deleted meanwhile: the run still succeeds and says so once in the Sync Log.
    s.store.delete_opt_in_path(s.inst, path.id).await.unwrap();
    emu.seed_people([
        SeedPerson::new(person("Dee", "6175550104", "I")),
        SeedPerson::new(person("Eve", "6175550105", "I")),
    ])
    .unwrap();
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.detail["pull"]["welcome_messages_queued"], 0);
    let codes = s.log_codes().await;
    assert_eq!(
        codes.iter().filter(|c| *c == "opt_in_path_missing").count(),
        1,
        "{codes:?}"
    );
}

impl Setup {
    /// The push's retries in the instance's state: contact ID → attempts.
    async fn retries(&self, i: &Integration) -> std::collections::BTreeMap<i64, u64> {
        let state = self.store.integration(self.inst, i.id).await.unwrap().state;
        state["push"]["retries"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.parse().unwrap(), v["attempts"].as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Sync Log messages about `contact` with `code`.
    async fn log_of(&self, contact: i64, code: &str) -> Vec<String> {
        self.store
            .list_sync_log(
                self.inst,
                &SyncLogQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.contact_id == Some(contact) && r.code == code)
            .map(|r| r.message)
            .collect()
    }
}

#[tokio::test]
async fn a_refused_contact_is_retried_on_the_next_pushes_and_given_up_after_five_attempts() {
    let s = setup().await;
    let emu = s.ea.state();
    // Hal's EveryAction record, changed long ago (not pulled); Ferry links Hal to a wrong VAN ID.
    let long_ago = Timestamp::now() - SignedDuration::from_hours(60);
    let hal_van = emu
        .seed_people([SeedPerson::new(person("Hal", "6175550143", "I")).modified_at(long_ago)])
        .unwrap()[0];
    let i = s.instance(s.config(false)).await;
    assert_eq!(s.run(&i).await.status, RunStatus::Success); // starts the watermark

    // Gil and Hal opt out in Ferry, linked to VAN IDs EveryAction does not have: refused (404).
    let gil = s
        .write(&[
            ("first_name", "Gil"),
            ("last_name", "Ray"),
            ("phone", "6175550142"),
            ("crm_id", "900001"),
            ("sms_opt_in", "opted_out"),
        ])
        .await;
    let hal = s
        .write(&[
            ("first_name", "Hal"),
            ("last_name", "Rivera"),
            ("phone", "6175550143"),
            ("crm_id", "900002"),
            ("sms_opt_in", "opted_out"),
        ])
        .await;
    let run = s.run(&i).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let push = &run.detail["push"];
    assert_eq!(push["errors"], 2, "{push}");
    assert_eq!(push["retry_pending"], 2, "{push}");
    assert_eq!(push["opt_outs_pushed"], 0, "{push}");
    assert_eq!(
        s.retries(&i).await,
        [(gil, 1), (hal, 1)].into_iter().collect()
    );
    let logged = s.log_of(gil, "everyaction_refused").await;
    assert!(
        logged.iter().any(|m| m.contains("attempt 1 of 5")),
        "{logged:?}"
    );
    assert_eq!(
        s.sync_status(gil).await,
        [(
            "outgoing",
            "failed",
            Some("everyaction_refused".to_string()),
            None
        )],
        "the sync status says the push failed, with the Sync Log's code"
    );

    // EveryAction answers 5xx (after the client's retries): the attempt counts and the push
    // stops there, to go on with the next run.
    emu.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let flaky = EveryAction::new(ferry_connectors::everyaction::Limits {
        retries: 0,
        ..Default::default()
    });
    let queued = s
        .store
        .enqueue_run(&NewRun {
            institution_id: s.inst,
            integration_id: i.id,
            kind: i.kind.clone(),
            trigger: ferry_core::run::Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .unwrap();
    let ctx = ferry_connectors::RunContext::new(
        s.store.store.clone(),
        s.store.integration(s.inst, i.id).await.unwrap(),
        queued,
        Setup::secrets(KEY),
        ferry_connectors::CancelSignal::never(),
    );
    let err = flaky.run(&ctx).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert_eq!(
        s.retries(&i).await,
        [(gil, 2), (hal, 1)].into_iter().collect(),
        "Gil's attempt counted; the push stopped before Hal"
    );
    emu.set_faults(Faults::default());
    // The queued run left behind is the next run's.
    let worker = Worker::new(
        s.store.store.clone(),
        Registry::builtin("http://ferry.test"),
        WorkerConfig::default(),
    );
    assert!(worker.run_once().await.unwrap().is_some());

    // Hal's VAN ID is corrected in Ferry: his retry goes through; Gil is refused again.
    let hal_text = hal.to_string();
    let hal_van_text = hal_van.to_string();
    s.write(&[("id", hal_text.as_str()), ("crm_id", hal_van_text.as_str())])
        .await;
    let run = s.run(&i).await;
    let push = &run.detail["push"];
    assert!(push["retried"].as_u64().unwrap() >= 1, "{push}");
    assert_eq!(push["retried_ok"], 1, "{push}");
    assert_eq!(push["opt_outs_pushed"], 1, "{push}");
    assert_eq!(
        emu.person(hal_van).unwrap().phones[0].opt_in,
        ferry_emulators::everyaction::OptIn::Out,
        "Hal's opt-out reached EveryAction on the retry"
    );
    let retries = s.retries(&i).await;
    assert!(!retries.contains_key(&hal), "{retries:?}");
    let mut attempts = retries[&gil];
    assert!(attempts >= 3, "{retries:?}");

    // Gil is tried on each push until the fifth attempt, then given up with a Sync Log row.
    let mut gave_up_run = None;
    for _ in 0..5 {
        let run = s.run(&i).await;
        assert_eq!(run.status, RunStatus::Success, "{run:?}");
        if run.detail["push"]["gave_up"] == 1 {
            gave_up_run = Some(run);
            break;
        }
        let now = s.retries(&i).await[&gil];
        assert_eq!(now, attempts + 1, "one attempt per push");
        attempts = now;
    }
    let run = gave_up_run.expect("Gil was given up");
    assert_eq!(attempts, 4, "given up on the fifth attempt");
    assert_eq!(run.detail["push"]["retry_pending"], 0, "{}", run.detail);
    assert!(s.retries(&i).await.is_empty());
    let report = ferry_connectors::everyaction::sync_report(&run.detail);
    assert_eq!(report.get("given_up"), Some(1));
    assert_eq!(report.get("errors"), Some(1));
    let gave_up = s.log_of(gil, "everyaction_gave_up").await;
    assert_eq!(gave_up.len(), 1, "{gave_up:?}");
    assert!(gave_up[0].contains("5 times"), "{}", gave_up[0]);

    // Not tried again until its status changes.
    let before = emu.counters();
    let run = s.run(&i).await;
    assert_eq!(run.detail["push"]["retried"], 0, "{}", run.detail);
    assert_eq!(
        emu.counters().requests_to("POST /v4/people/{vanId}"),
        before.requests_to("POST /v4/people/{vanId}")
    );
}
