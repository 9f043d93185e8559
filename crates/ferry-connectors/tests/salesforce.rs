//! The Salesforce connectors against the in-repo Salesforce emulator on loopback, run by the
//! real worker: both OAuth flows and refresh, seed 002's outgoing matching order with the
//! external-ID field, collections and Bulk API 2.0 writes giving the same outcome, paging
//! through records that share a `SystemModstamp`, UNSET on nillable and non-nillable fields,
//! duplicate rules, API limits, expired sessions and deleted records.

use std::time::Duration;

use ferry_connectors::Registry;
use ferry_connectors::describe::Pkce;
use ferry_connectors::salesforce::SalesforceSettings;
use ferry_connectors::salesforce::oauth::OAuthApp;
use ferry_core::contact::{ContactWrite, Raw};
use ferry_core::run::RunStatus;
use ferry_emulators::salesforce::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, EmulatorConfig, Limits,
    RunningEmulator,
};
use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::{Integration, NewIntegration, NewRun, Run, SyncLogQuery, WriteKind};
use ferry_worker::{Worker, WorkerConfig};
use serde_json::{Map, Value, json};

struct Setup {
    store: TestStore,
    inst: i64,
    sf: RunningEmulator,
    /// The connected account the instances use.
    account: i64,
}

fn settings(base: &str) -> SalesforceSettings {
    SalesforceSettings {
        login_url: base.to_string(),
        app: Some(OAuthApp {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string().into(),
        }),
        backoff: Duration::from_millis(10),
        bulk_poll: Duration::from_millis(10),
        ..SalesforceSettings::default()
    }
}

async fn setup_with(config: EmulatorConfig) -> Setup {
    let store = fresh_store().await;
    let inst = store
        .create_institution("state-u", "State University", None)
        .await
        .unwrap()
        .id;
    let sf = ferry_emulators::salesforce::start(config).await.unwrap();
    let grant = sf.state().issue_tokens(sf.base_url());
    let tokens = json!({
        "access_token": grant.access_token,
        "refresh_token": grant.refresh_token,
        "instance_url": grant.instance_url,
        "id": grant.id,
    });
    let account = store
        .upsert_crm_account(inst, "salesforce", "00D-test", "test org", &tokens)
        .await
        .unwrap()
        .id;
    Setup {
        store,
        inst,
        sf,
        account,
    }
}

async fn setup() -> Setup {
    setup_with(EmulatorConfig::default()).await
}

fn mappings() -> Value {
    json!([
        {"local": "first_name", "remote": "FirstName"},
        {"local": "last_name", "remote": "LastName"},
        {"local": "phone", "remote": "Phone"},
        {"local": "email", "remote": "Email"}
    ])
}

fn rec(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

impl Setup {
    fn registry(&self) -> Registry {
        Registry::builtin("http://ferry.test").with_salesforce(&settings(self.sf.base_url()))
    }

    fn worker(&self) -> Worker {
        Worker::new(
            self.store.store.clone(),
            self.registry(),
            WorkerConfig {
                retry_backoff: Duration::from_millis(20),
                max_attempts: 1,
                ..WorkerConfig::default()
            },
        )
    }

    async fn instance(&self, kind: &str, mut config: Value) -> Integration {
        if config.get("account_id").is_none() && config.get("jwt").is_none() {
            config["account_id"] = json!(self.account);
        }
        self.instance_with(kind, config, None).await
    }

    async fn instance_with(
        &self,
        kind: &str,
        config: Value,
        secrets: Option<Map<String, Value>>,
    ) -> Integration {
        self.registry().validate(kind, &config).unwrap();
        self.store
            .create_integration(
                self.inst,
                NewIntegration {
                    kind: kind.into(),
                    name: kind.into(),
                    description: String::new(),
                    enabled: true,
                    config,
                    secrets,
                },
            )
            .await
            .unwrap()
    }

    /// Queues a manual run of `i` and runs it; returns the finished run.
    async fn run(&self, i: &Integration) -> Run {
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
        assert_eq!(self.worker().run_once().await.unwrap(), Some(run.id));
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

    async fn crm_id(&self, id: i64) -> Option<String> {
        self.store.contact(self.inst, id).await.unwrap().data.crm_id
    }

    async fn log(&self) -> Vec<(Option<i64>, String, String)> {
        let rows = self
            .store
            .list_sync_log(
                self.inst,
                &SyncLogQuery {
                    limit: 500,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| (r.contact_id, r.code, r.message))
            .collect()
    }

    fn record(&self, id: &str) -> ferry_emulators::salesforce::Record {
        self.sf
            .state()
            .record("Contact", id)
            .expect("the record exists")
    }

    fn requests_to(&self, suffix: &str) -> u64 {
        self.sf
            .state()
            .counters()
            .requests
            .iter()
            .filter(|(k, _)| k.ends_with(suffix))
            .map(|(_, n)| n)
            .sum()
    }
}

#[tokio::test]
async fn the_web_server_flow_with_pkce_connects_an_org_and_refreshes_its_session() {
    let s = setup().await;
    let registry = s.registry();
    let provider = registry.oauth_provider("salesforce").unwrap();
    assert!(provider.uses_pkce() && provider.is_configured());
    let pkce = Pkce::generate().unwrap();
    let redirect = "http://ferry.test/oauth/salesforce/callback";
    let url = provider
        .authorize_url_pkce(redirect, "st4te", &pkce.challenge)
        .unwrap();
    assert!(url.contains("code_challenge_method=S256"), "{url}");

    // The consent page, then its form's "Allow".
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let form = [
        ("response_type", "code"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("redirect_uri", redirect),
        ("state", "st4te"),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("decision", "allow"),
    ];
    let code_for = |location: &str| -> String {
        let (_, q) = location.split_once('?').unwrap();
        form_pairs(q)["code"].clone()
    };
    let allow = http
        .post(format!("{}/services/oauth2/authorize", s.sf.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(allow.status(), 302);
    let location = allow.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        form_pairs(location.split_once('?').unwrap().1)["state"],
        "st4te"
    );

    // A wrong verifier is refused; the code is then used up, so sign in again.
    let wrong = provider
        .connect_pkce(
            redirect,
            &code_for(&location),
            "not-the-verifier-0123456789-abcdefghijkl",
        )
        .await
        .unwrap_err();
    assert!(wrong.contains("invalid_grant"), "{wrong}");
    let allow = http
        .post(format!("{}/services/oauth2/authorize", s.sf.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = allow.headers()["location"].to_str().unwrap().to_string();
    let account = provider
        .connect_pkce(redirect, &code_for(&location), &pkce.verifier)
        .await
        .unwrap();
    assert!(account.external_id.starts_with("00D"), "{account:?}");
    assert!(account.tokens["refresh_token"].is_string());
    let stored = s
        .store
        .upsert_crm_account(
            s.inst,
            "salesforce",
            &account.external_id,
            &account.label,
            &account.tokens,
        )
        .await
        .unwrap();

    // The account works for an instance; once its session expires, one refresh and on.
    s.sf.state()
        .seed(
            "Contact",
            [rec(&[
                ("FirstName", "Ana"),
                ("LastName", "Diaz"),
                ("Phone", "(617) 555-0101"),
            ])],
        )
        .unwrap();
    let inc = s
        .instance(
            "salesforce_incoming",
            json!({"account_id": stored.id, "mappings": mappings()}),
        )
        .await;
    assert_eq!(s.run(&inc).await.status, RunStatus::Success);
    let before = s.store.crm_account_tokens(s.inst, stored.id).await.unwrap();
    s.sf.state().expire_sessions();
    let run = s.run(&inc).await;
    assert!(
        matches!(run.status, RunStatus::Success | RunStatus::Skipped),
        "{run:?}"
    );
    let after = s.store.crm_account_tokens(s.inst, stored.id).await.unwrap();
    assert_ne!(
        before["access_token"], after["access_token"],
        "refreshed and stored"
    );
    assert_eq!(
        before["refresh_token"], after["refresh_token"],
        "the refresh token stays"
    );

    // A revoked refresh token: the run fails and says to reconnect the account.
    let refresh = after["refresh_token"].as_str().unwrap().to_string();
    http.post(format!("{}/services/oauth2/revoke", s.sf.base_url()))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    let run = s.run(&inc).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let reason = run.error.unwrap_or_default();
    assert!(
        reason.contains("reconnect the Salesforce account"),
        "{reason}"
    );
}

fn form_pairs(q: &str) -> std::collections::HashMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://x/?{q}")).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn the_jwt_bearer_flow_signs_in_server_to_server() {
    let (private, public) = ferry_emulators::salesforce::jwt::generate_key_pair().unwrap();
    let (other, _) = ferry_emulators::salesforce::jwt::generate_key_pair().unwrap();
    let s = setup_with(EmulatorConfig {
        jwt_certificate: Some(public),
        ..EmulatorConfig::default()
    })
    .await;
    s.sf.state()
        .seed(
            "Contact",
            [rec(&[
                ("FirstName", "Jo"),
                ("LastName", "Wu"),
                ("Phone", "6175550177"),
            ])],
        )
        .unwrap();
    let config = json!({
        "jwt": {"consumer_key": DEFAULT_CLIENT_ID, "username": DEFAULT_USERNAME},
        "mappings": mappings(),
    });
    let secrets = |key: &str| {
        let mut m = Map::new();
        m.insert("jwt_private_key".into(), json!(key));
        Some(m)
    };
    let inc = s
        .instance_with("salesforce_incoming", config.clone(), secrets(&private))
        .await;
    let run = s.run(&inc).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let contacts = s
        .store
        .list_contacts(s.inst, &Default::default())
        .await
        .unwrap();
    assert_eq!(contacts.contacts.len(), 1);

    // Another key: Salesforce refuses the assertion, and the run says what to check.
    let bad = s
        .instance_with("salesforce_incoming", config, secrets(&other))
        .await;
    let run = s.run(&bad).await;
    assert_eq!(run.status, RunStatus::Failed);
    let reason = run.error.unwrap_or_default();
    assert!(reason.contains("invalid_grant"), "{reason}");
}

#[tokio::test]
async fn outgoing_matches_by_id_then_external_id_then_email_then_name_and_phone_else_creates() {
    let s = setup().await;
    // A Ferry contact whose platform ID the external-ID field holds must exist first.
    let b = s
        .contact(&[
            ("first_name", "Ben"),
            ("last_name", "Okafor"),
            ("phone", "6175550102"),
        ])
        .await;
    let ids =
        s.sf.state()
            .seed(
                "Contact",
                [
                    rec(&[
                        ("FirstName", "Old"),
                        ("LastName", "Name"),
                        ("Email", "x@state.edu"),
                    ]),
                    rec(&[("LastName", "Okafor"), ("Ferry_Id__c", &b.to_string())]),
                    rec(&[
                        ("FirstName", "Cleo"),
                        ("LastName", "Park"),
                        ("Email", "cleo@state.edu"),
                    ]),
                    rec(&[
                        ("FirstName", "Dan"),
                        ("LastName", "Lee"),
                        ("Phone", "(617) 555-0104"),
                    ]),
                    rec(&[
                        ("FirstName", "Eve"),
                        ("LastName", "Moss"),
                        ("Phone", "617-555-0199"),
                    ]),
                ],
            )
            .unwrap();
    let a = s
        .contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "6175550101"),
            ("crm_id", &ids[0]),
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
        ])
        .await;
    let f = s
        .contact(&[
            ("first_name", "Fay"),
            ("last_name", "Ng"),
            ("phone", "6175550106"),
            ("crm_id", "not-an-id"),
        ])
        .await;
    let out = s
        .instance(
            "salesforce_outgoing",
            json!({"mappings": mappings(), "external_id_field": "Ferry_Id__c"}),
        )
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");

    // A: by Id (its fields updated); B: by the external ID; C: by email; D: by name and phone.
    assert_eq!(s.record(&ids[0]).get("FirstName").as_deref(), Some("Ana"));
    assert_eq!(s.crm_id(a).await.as_deref(), Some(ids[0].as_str()));
    assert_eq!(s.crm_id(b).await.as_deref(), Some(ids[1].as_str()));
    assert_eq!(s.record(&ids[1]).get("FirstName").as_deref(), Some("Ben"));
    assert_eq!(s.crm_id(c).await.as_deref(), Some(ids[2].as_str()));
    assert_eq!(s.crm_id(d).await.as_deref(), Some(ids[3].as_str()));
    assert_eq!(
        s.record(&ids[3]).get("Ferry_Id__c").as_deref(),
        Some(d.to_string().as_str()),
        "the platform ID is written to the external-ID field"
    );
    // E: same name, another phone: created, with the new Id written back.
    let e_id = s.crm_id(e).await.expect("created and written back");
    assert!(!ids.contains(&e_id));
    assert_eq!(
        s.record(&e_id).get("Phone").as_deref(),
        Some("+16175550105")
    );
    assert_eq!(s.record(&ids[4]).get("FirstName").as_deref(), Some("Eve"));
    // F: a CRM ID that names no record: a Sync Log error, nothing created.
    let log = s.log().await;
    assert!(
        log.iter()
            .any(|(id, code, _)| *id == Some(f) && code == "crm_id_not_found"),
        "{log:?}"
    );
    assert_eq!(s.sf.state().records("Contact").len(), 6);
    // Writes went through sObject Collections.
    assert!(s.requests_to("/composite/sobjects") >= 2);
    assert_eq!(s.requests_to("/jobs/ingest"), 0);
}

/// Pushes the same contacts to a fresh org with the given bulk threshold; returns the org's
/// records (without their Ids and timestamps), the Ferry contacts' CRM IDs, Sync Log codes and
/// the emulator's counters.
type PushOutcome = (
    Vec<Vec<(String, String)>>,
    usize,
    Vec<String>,
    u64,
    u64,
    u64,
);

async fn push_all(threshold: u32) -> PushOutcome {
    push_all_with(threshold, ferry_emulators::salesforce::Faults::default())
        .await
        .0
}

/// Pushes 700 contacts with the given faults; also gives the emulator's counters.
async fn push_all_with(
    threshold: u32,
    faults: ferry_emulators::salesforce::Faults,
) -> (PushOutcome, ferry_emulators::salesforce::Counters) {
    let s = setup_with(EmulatorConfig {
        faults,
        ..EmulatorConfig::default()
    })
    .await;
    // 700 contacts: a third already in Salesforce by email, one with a bad email.
    let mut existing = Vec::new();
    for i in 0..700 {
        let email = if i == 7 {
            "not an email@".to_string()
        } else {
            format!("p{i}@state.edu")
        };
        if i % 3 == 0 {
            existing.push(rec(&[("LastName", "Before"), ("Email", &email)]));
        }
        let phone = format!("617555{i:04}");
        let schema = s.store.field_schema(s.inst).await.unwrap();
        let fields = [
            ("first_name", format!("F{i}")),
            ("last_name", format!("L{i}")),
            ("phone", phone),
            ("email", email.clone()),
        ];
        // Ferry refuses the bad email: the contact goes in without it, and Salesforce never
        // sees it; use a valid-looking one Salesforce refuses instead.
        let fields: Vec<(&str, String)> = fields
            .iter()
            .map(|(k, v)| {
                let v = if *k == "email" && i == 7 {
                    "p7@state..edu".to_string()
                } else {
                    v.clone()
                };
                (*k, v)
            })
            .collect();
        let w = ContactWrite::parse(
            &schema,
            fields.iter().map(|(k, v)| (*k, Raw::Str(v.as_str()))),
        );
        let w = match w {
            Ok(w) => w,
            Err(_) => ContactWrite::parse(
                &schema,
                fields
                    .iter()
                    .filter(|(k, _)| *k != "email")
                    .map(|(k, v)| (*k, Raw::Str(v.as_str()))),
            )
            .unwrap(),
        };
        s.store
            .apply_contact_writes(s.inst, &[w], WriteKind::Import)
            .await
            .unwrap();
    }
    s.sf.state().seed("Contact", existing).unwrap();
    let out = s
        .instance(
            "salesforce_outgoing",
            json!({"mappings": mappings(), "bulk_threshold": threshold}),
        )
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    let mut records: Vec<Vec<(String, String)>> =
        s.sf.state()
            .records("Contact")
            .into_iter()
            .map(|r| {
                let mut f: Vec<(String, String)> = ["FirstName", "LastName", "Email", "Phone"]
                    .iter()
                    .filter_map(|k| r.get(k).map(|v| (k.to_string(), v)))
                    .collect();
                f.sort();
                f
            })
            .collect();
    records.sort();
    let all = s
        .store
        .list_contacts(s.inst, &Default::default())
        .await
        .unwrap();
    let with_crm = all
        .contacts
        .iter()
        .filter(|c| c.data.crm_id.is_some())
        .count();
    let mut codes: Vec<String> = s.log().await.into_iter().map(|(_, c, _)| c).collect();
    codes.sort();
    (
        (
            records,
            with_crm,
            codes,
            s.requests_to("/jobs/ingest"),
            s.requests_to("/composite/sobjects"),
            s.requests_to("vXX.X/query"),
        ),
        s.sf.state().counters(),
    )
}

#[tokio::test]
async fn collections_and_bulk_api_writes_give_the_same_outcome() {
    let (by_collections, crm_a, codes_a, ingest_a, coll_a, soql_a) = push_all(10_000).await;
    let (by_bulk, crm_b, codes_b, ingest_b, coll_b, soql_b) = push_all(100).await;
    assert!(soql_a > 0, "collections mode looks contacts up by SOQL");
    assert_eq!(
        soql_b, 0,
        "bulk mode's lookups come from one Bulk API query job, not SOQL pages"
    );
    assert_eq!(ingest_a, 0);
    assert!(coll_a > 0);
    assert!(
        ingest_b >= 2,
        "creates and updates each went in one ingest job"
    );
    assert_eq!(coll_b, 0, "no collection call in bulk mode");
    assert_eq!(by_collections.len(), 700);
    assert_eq!(by_collections, by_bulk);
    assert_eq!(crm_a, crm_b);
    assert_eq!(codes_a, codes_b);

    // The first ingest job's close takes effect but its answer is lost (a 500 after the
    // fact): the retried close gets 409 INVALIDJOBSTATE, and the run goes on to poll the job
    // instead of failing or uploading the rows again.
    let ((by_retry, crm_c, codes_c, _, _, _), counters) = push_all_with(
        100,
        ferry_emulators::salesforce::Faults {
            error_rate: 1.0,
            after_effect_rate: 1.0,
            only: Some("PATCH /services/data/vXX.X/jobs/ingest/{id}".into()),
            max_errors: Some(1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(counters.injected_errors, 1);
    assert_eq!(counters.statuses.get(&409), Some(&1), "{counters:?}");
    assert_eq!(by_retry, by_collections);
    assert_eq!(crm_c, crm_a);
    assert_eq!(codes_c, codes_a);
}

#[tokio::test]
async fn unset_clears_nillable_fields_and_is_a_sync_log_error_for_others() {
    let s = setup().await;
    let ids =
        s.sf.state()
            .seed(
                "Contact",
                [
                    rec(&[
                        ("FirstName", "Ana"),
                        ("LastName", "Diaz"),
                        ("Phone", "6175550101"),
                    ]),
                    rec(&[
                        ("FirstName", "Ben"),
                        ("LastName", "Okafor"),
                        ("Phone", "6175550102"),
                    ]),
                ],
            )
            .unwrap();
    let a = s
        .contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "6175550101"),
            ("crm_id", &ids[0]),
        ])
        .await;
    let b = s
        .contact(&[
            ("first_name", "Ben"),
            ("last_name", "Okafor"),
            ("phone", "6175550102"),
            ("crm_id", &ids[1]),
        ])
        .await;
    let out = s
        .instance("salesforce_outgoing", json!({"mappings": mappings()}))
        .await;
    assert_eq!(s.run(&out).await.status, RunStatus::Success);
    // UNSET the first name of A (nillable in Salesforce) and the last name of B (not).
    s.contact(&[("id", &a.to_string()), ("first_name", "UNSET")])
        .await;
    s.contact(&[
        ("id", &b.to_string()),
        ("last_name", "UNSET"),
        ("first_name", "Benny"),
    ])
    .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(s.record(&ids[0]).get("FirstName"), None, "cleared (null)");
    assert_eq!(s.record(&ids[0]).get("LastName").as_deref(), Some("Diaz"));
    let log = s.log().await;
    let (_, _, message) = log
        .iter()
        .find(|(id, code, _)| *id == Some(b) && code == "salesforce_field_not_nillable")
        .unwrap_or_else(|| panic!("{log:?}"));
    assert!(message.contains("LastName"), "{message}");
    assert_eq!(
        s.record(&ids[1]).get("FirstName").as_deref(),
        Some("Ben"),
        "nothing half-applied"
    );
}

#[tokio::test]
async fn a_duplicate_rule_refusal_is_a_sync_log_row_with_salesforces_code() {
    let s = setup().await;
    let a = s
        .contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "6175550101"),
            ("email", "twin@state.edu"),
        ])
        .await;
    let b = s
        .contact(&[
            ("first_name", "Anna"),
            ("last_name", "Dias"),
            ("phone", "6175550102"),
            ("email", "twin@state.edu"),
        ])
        .await;
    let out = s
        .instance("salesforce_outgoing", json!({"mappings": mappings()}))
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    // Both were new: one is created, the other refused by the duplicate rule.
    let created = [s.crm_id(a).await, s.crm_id(b).await];
    assert_eq!(created.iter().filter(|c| c.is_some()).count(), 1);
    let log = s.log().await;
    let (_, _, message) = log
        .iter()
        .find(|(_, code, _)| code == "salesforce_duplicates_detected")
        .unwrap_or_else(|| panic!("{log:?}"));
    assert!(message.contains("DUPLICATES_DETECTED"), "{message}");
    assert_eq!(s.sf.state().records("Contact").len(), 1);
}

#[tokio::test]
async fn a_run_stops_before_its_share_of_the_daily_limit_and_on_request_limit_exceeded() {
    let s = setup().await;
    for i in 0..5 {
        s.contact(&[
            ("first_name", &format!("F{i}")),
            ("last_name", "L"),
            ("phone", &format!("61755501{i:02}")),
        ])
        .await;
    }
    let out = s
        .instance("salesforce_outgoing", json!({"mappings": mappings()}))
        .await;
    s.sf.state().set_limits(Limits {
        daily_max: 1_000,
        used: 798,
    });
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let reason = run.error.unwrap_or_default();
    assert!(reason.contains("80 %"), "{reason}");
    assert!(
        s.sf.state().limits().used <= 800,
        "never past 80 %: {:?}",
        s.sf.state().limits()
    );

    // Another integration used the rest: Salesforce refuses, and the run says so.
    s.sf.state().set_limits(Limits {
        daily_max: 1_000,
        used: 1_000,
    });
    let out = s
        .instance(
            "salesforce_outgoing",
            json!({"mappings": mappings(), "api_limit_share": 100}),
        )
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Failed);
    let reason = run.error.unwrap_or_default();
    assert!(reason.contains("REQUEST_LIMIT_EXCEEDED"), "{reason}");
    assert!(s.sf.state().counters().limit_exceeded >= 1);
}

/// Seeds 4,500 Contacts that share one SystemModstamp (phones `{phone_prefix}0000`…) and runs
/// an incoming instance over them by SOQL pages: the instance and its run.
async fn pull_4500_on_one_systemmodstamp(
    s: &Setup,
    last_name: &str,
    phone_prefix: &str,
) -> (Integration, Run) {
    let stamp = "2026-12-01T10:00:00.000+0000";
    let records: Vec<Map<String, Value>> = (0..4_500)
        .map(|i| {
            let mut r = rec(&[
                ("FirstName", &format!("F{i}")),
                ("LastName", last_name),
                ("Phone", &format!("{phone_prefix}{i:04}")),
            ]);
            r.insert("SystemModstamp".into(), json!(stamp));
            r
        })
        .collect();
    s.sf.state().seed("Contact", records).unwrap();
    let inc = s
        .instance(
            "salesforce_incoming",
            json!({"mappings": mappings(), "bulk_threshold": 100_000}),
        )
        .await;
    let run = s.run(&inc).await;
    (inc, run)
}

#[tokio::test]
async fn incoming_pages_through_records_that_share_a_systemmodstamp() {
    let s = setup().await;
    let (inc, run) = pull_4500_on_one_systemmodstamp(&s, "Same", "617555").await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.rows, 4_500, "{run:?}");
    assert!(s.requests_to("/query") >= 1);
    let pages: u64 =
        s.sf.state()
            .counters()
            .requests
            .iter()
            .filter(|(k, _)| k.contains("/query/"))
            .map(|(_, n)| n)
            .sum();
    assert_eq!(pages, 2, "three pages of at most 2,000");
    assert_eq!(s.store.count_contacts(s.inst).await.unwrap(), 4_500);

    // A second pull reads again only what changed since (here: the overlap, nothing new).
    let run = s.run(&inc).await;
    assert!(matches!(
        run.status,
        RunStatus::Success | RunStatus::Skipped
    ));
    assert_eq!(run.detail["created"], 0);
}

#[tokio::test]
async fn a_pull_whose_query_locators_expire_goes_on_by_keyset_without_losing_or_repeating() {
    // Every locator expires at once, as one unused for 15 minutes does: each `nextRecordsUrl`
    // answers INVALID_QUERY_LOCATOR and the pull must go on after the last
    // (SystemModstamp, Id) it read, with 4,500 records sharing one SystemModstamp.
    let s = setup_with(EmulatorConfig {
        query_locator_idle: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .await;
    let (_, run) = pull_4500_on_one_systemmodstamp(&s, "Keyset", "617557").await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.detail["created"], 4_500, "{run:?}");
    assert_eq!(s.store.count_contacts(s.inst).await.unwrap(), 4_500);
    let refused =
        s.sf.state()
            .counters()
            .statuses
            .get(&400)
            .copied()
            .unwrap_or(0);
    assert_eq!(
        refused, 2,
        "both follow-up pages were refused: the locator was gone"
    );
    assert_eq!(
        s.requests_to("/query"),
        3,
        "the first query and two keyset queries"
    );
}

#[tokio::test]
async fn a_large_first_pull_reads_through_a_bulk_api_query() {
    let s = setup().await;
    let records: Vec<Map<String, Value>> = (0..300)
        .map(|i| {
            rec(&[
                ("FirstName", &format!("F{i}")),
                ("LastName", "Bulk"),
                ("Phone", &format!("617556{i:04}")),
            ])
        })
        .collect();
    s.sf.state().seed("Contact", records).unwrap();
    let inc = s
        .instance(
            "salesforce_incoming",
            json!({"mappings": mappings(), "bulk_threshold": 100}),
        )
        .await;
    let run = s.run(&inc).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.detail["created"], 300, "{run:?}");
    assert_eq!(s.requests_to("/jobs/query"), 1);
}

#[tokio::test]
async fn records_deleted_in_salesforce_archive_their_contacts() {
    let s = setup().await;
    let five_minutes_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_mins(5))
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        .to_string();
    let mut gone = rec(&[("FirstName", "Gus"), ("LastName", "Gone")]);
    gone.insert("IsDeleted".into(), json!(true));
    gone.insert("SystemModstamp".into(), json!(five_minutes_ago));
    let ids =
        s.sf.state()
            .seed(
                "Contact",
                [
                    gone,
                    rec(&[
                        ("FirstName", "Stay"),
                        ("LastName", "Here"),
                        ("Phone", "6175550111"),
                    ]),
                ],
            )
            .unwrap();
    let g = s
        .contact(&[
            ("first_name", "Gus"),
            ("last_name", "Gone"),
            ("phone", "6175550110"),
            ("crm_id", &ids[0]),
        ])
        .await;
    let inc = s
        .instance("salesforce_incoming", json!({"mappings": mappings()}))
        .await;
    let run = s.run(&inc).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.detail["archived"], 1, "{run:?}");
    assert!(s.store.contact(s.inst, g).await.unwrap().data.archived);
}

#[tokio::test]
async fn expired_sessions_are_renewed_once_mid_run() {
    let s = setup_with(EmulatorConfig {
        faults: ferry_emulators::salesforce::Faults {
            session_expiry_rate: 0.3,
            seed: 7,
            ..Default::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    for i in 0..30 {
        s.contact(&[
            ("first_name", &format!("F{i}")),
            ("last_name", "Expiry"),
            ("phone", &format!("61755502{i:02}")),
            ("email", &format!("e{i}@state.edu")),
        ])
        .await;
    }
    let out = s
        .instance("salesforce_outgoing", json!({"mappings": mappings()}))
        .await;
    let run = s.run(&out).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert!(s.sf.state().counters().expired_sessions >= 1);
    assert_eq!(s.sf.state().records("Contact").len(), 30);
}

#[tokio::test]
async fn the_describe_drives_the_mapping_checks() {
    let s = setup().await;
    let registry = s.registry();
    let c = registry.get("salesforce_outgoing").unwrap();
    let ctx = |config: Value| {
        ferry_connectors::ConnectorContext::new(
            s.inst,
            None,
            config,
            ferry_connectors::Secrets::new(),
        )
        .with_store(s.store.store.clone())
    };
    let schema = s.store.field_schema(s.inst).await.unwrap();
    let mut m = mappings();
    m.as_array_mut()
        .unwrap()
        .push(json!({"local": "enrollment_id", "remote": "Name"}));
    let e = c
        .check_with_remote(
            &ctx(json!({"account_id": s.account, "mappings": m})),
            &schema,
        )
        .await
        .unwrap_err();
    assert_eq!(e.field, "mappings[4].remote");
    assert!(e.message.contains("cannot be written"), "{e:?}");
    let e = c
        .check_with_remote(
            &ctx(json!({"account_id": s.account, "mappings": mappings(), "external_id_field": "Title"})),
            &schema,
        )
        .await
        .unwrap_err();
    assert_eq!(e.field, "external_id_field");
    c.check_with_remote(
        &ctx(json!({"account_id": s.account, "mappings": mappings(), "external_id_field": "Ferry_Id__c"})),
        &schema,
    )
    .await
    .unwrap();
    // Outgoing screens offer only writable fields; incoming ones every field.
    let out_props = c
        .remote_properties(&ctx(
            json!({"account_id": s.account, "mappings": mappings()}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(!out_props.iter().any(|p| p.name == "SystemModstamp"));
    let inc_props = registry
        .get("salesforce_incoming")
        .unwrap()
        .remote_properties(&ctx(
            json!({"account_id": s.account, "mappings": mappings()}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(inc_props.iter().any(|p| p.name == "SystemModstamp"));
    let report = c
        .test_connection(&ctx(
            json!({"account_id": s.account, "mappings": mappings()}),
        ))
        .await
        .unwrap();
    assert!(
        report.message.contains("Contact object"),
        "{}",
        report.message
    );
}
