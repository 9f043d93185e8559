//! The CRM sync engine with a CRM that is not HubSpot: an in-memory one with batches of two,
//! its own ID and email properties, a page of changes at a time, and a codec that spells
//! booleans `Y`/`N`. (SQLite, or PostgreSQL with `FERRY_TEST_DATABASE_URL`.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use ferry_connectors::crm::{
    self, Calls, ChangesPage, CrmClient, Filter, NameKey, NameResult, NextPage, Record,
    RemoteError, SyncSpec, ValueCodec,
};
use ferry_connectors::{CancelSignal, RunContext, Secrets};
use ferry_core::contact::{ContactWrite, FieldKind, Raw};
use ferry_core::mapping::{FieldMapping, RemoteKind, RemoteProperty};
use ferry_core::run::Trigger;
use ferry_store::testing::fresh_store;
use ferry_store::{NewIntegration, NewRun, Store, WriteKind};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
#[error("the fake CRM refused: {0}")]
struct FakeError(String);

impl RemoteError for FakeError {
    fn is_transient(&self) -> bool {
        false
    }
    fn is_refused_credentials(&self) -> bool {
        false
    }
    fn existing_id(&self) -> Option<String> {
        None
    }
}

struct YesNo;

impl ValueCodec for YesNo {
    fn encode(&self, _: FieldKind, remote: RemoteKind, value: &Value) -> Option<String> {
        let s = ferry_core::mapping::to_remote_text(value)?;
        Some(match (remote, s.as_str()) {
            (RemoteKind::Bool, "true") => "Y".into(),
            (RemoteKind::Bool, "false") => "N".into(),
            _ => s,
        })
    }
    fn decode(&self, _: FieldKind, remote: RemoteKind, value: Option<&str>) -> Option<String> {
        let s = ferry_core::mapping::from_remote_text(value)?;
        Some(match (remote, s) {
            (RemoteKind::Bool, "Y") => "true".into(),
            (RemoteKind::Bool, "N") => "false".into(),
            _ => s.to_string(),
        })
    }
}

/// A record's change time and properties.
type Stored = (i64, BTreeMap<String, String>);

/// Records by ID; every batch call is counted.
#[derive(Default)]
struct Fake {
    records: Mutex<BTreeMap<String, Stored>>,
    batches: Mutex<Vec<(&'static str, usize)>>,
}

const BATCH: usize = 2;

impl Fake {
    fn put(&self, id: &str, modified: i64, props: &[(&str, &str)]) {
        let props = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.records
            .lock()
            .unwrap()
            .insert(id.into(), (modified, props));
    }

    fn batch(&self, what: &'static str, n: usize) {
        assert!(n <= BATCH, "{what} of {n}: more than a batch");
        self.batches.lock().unwrap().push((what, n));
    }

    fn record(&self, id: &str) -> Option<Record> {
        let all = self.records.lock().unwrap();
        let (modified, props) = all.get(id)?;
        Some(Record {
            id: id.into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
            modified_ms: Some(*modified),
        })
    }
}

#[async_trait]
impl CrmClient for Fake {
    type Error = FakeError;
    type Codec = YesNo;

    fn name(&self) -> &'static str {
        "Fake CRM"
    }
    fn id_property(&self) -> &'static str {
        "Id"
    }
    fn email_property(&self) -> &'static str {
        "Email"
    }
    fn modified_property(&self) -> &'static str {
        "Modified"
    }
    fn overlap_ms(&self) -> i64 {
        0
    }
    fn batch_size(&self) -> usize {
        BATCH
    }
    fn reconnect_hint(&self) -> &'static str {
        "sign in again"
    }
    fn codec(&self) -> &YesNo {
        &YesNo
    }
    fn calls(&self) -> Calls {
        Calls::default()
    }

    async fn properties(&self) -> Result<Vec<RemoteProperty>, FakeError> {
        let p = |name: &str, kind| RemoteProperty {
            name: name.into(),
            label: name.into(),
            kind,
            read_only: name == "Id",
        };
        Ok(vec![
            p("Id", RemoteKind::String),
            p("FirstName", RemoteKind::String),
            p("LastName", RemoteKind::String),
            p("Phone", RemoteKind::PhoneNumber),
            p("Email", RemoteKind::String),
            p("OptIn", RemoteKind::Bool),
        ])
    }

    async fn read(&self, ids: &[String], _: &[String]) -> Result<Vec<Record>, FakeError> {
        self.batch("read", ids.len());
        Ok(ids.iter().filter_map(|id| self.record(id)).collect())
    }

    async fn find_by_emails(&self, emails: &[String]) -> Result<Vec<(String, String)>, FakeError> {
        self.batch("find_by_emails", emails.len());
        let all = self.records.lock().unwrap();
        Ok(all
            .iter()
            .filter_map(|(id, (_, p))| {
                let e = p.get("Email")?.to_lowercase();
                emails.contains(&e).then(|| (e, id.clone()))
            })
            .collect())
    }

    async fn find_by_names(
        &self,
        wanted: &BTreeMap<NameKey, BTreeSet<String>>,
        done: &mut (dyn FnMut(NameKey, Vec<NameResult>) -> bool + Send),
    ) -> Result<(), FakeError> {
        let found: Vec<(NameKey, Vec<NameResult>)> = {
            let all = self.records.lock().unwrap();
            wanted
                .keys()
                .map(|k| {
                    let results = all
                        .iter()
                        .filter(|(_, (_, p))| crm::name_key(&p["FirstName"], &p["LastName"]) == *k)
                        .map(|(id, (_, p))| NameResult {
                            id: id.clone(),
                            phone: p.get("Phone").cloned(),
                        })
                        .collect();
                    (k.clone(), results)
                })
                .collect()
        };
        for (k, results) in found {
            if !done(k, results) {
                break;
            }
        }
        Ok(())
    }

    async fn create(&self, records: &[BTreeMap<String, String>]) -> Result<Vec<Record>, FakeError> {
        self.batch("create", records.len());
        let mut out = Vec::new();
        for r in records {
            let id = format!("new{}", self.records.lock().unwrap().len());
            let props: Vec<(&str, &str)> =
                r.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            self.put(&id, 0, &props);
            out.push(self.record(&id).unwrap());
        }
        Ok(out)
    }

    async fn update(
        &self,
        records: &[(String, BTreeMap<String, String>)],
    ) -> Result<Vec<Record>, FakeError> {
        self.batch("update", records.len());
        let mut out = Vec::new();
        for (id, props) in records {
            let mut all = self.records.lock().unwrap();
            let Some((_, p)) = all.get_mut(id) else {
                continue; // not found: left out of the answer
            };
            p.extend(props.clone());
            drop(all);
            out.push(self.record(id).unwrap());
        }
        Ok(out)
    }

    /// One record a page, oldest first; the cursor is the last ID given.
    async fn changes(
        &self,
        since_ms: i64,
        _: &[String],
        page: Option<&str>,
    ) -> Result<ChangesPage, FakeError> {
        let mut changed: Vec<(i64, String)> = self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, (m, _))| *m >= since_ms)
            .map(|(id, (m, _))| (*m, id.clone()))
            .collect();
        changed.sort();
        let start = page.map_or(0, |last| {
            changed.iter().position(|(_, id)| id == last).unwrap() + 1
        });
        let records: Vec<Record> = changed
            .get(start)
            .and_then(|(_, id)| self.record(id))
            .into_iter()
            .collect();
        let next = match records.last() {
            Some(r) if start + 1 < changed.len() => NextPage::Page(r.id.clone()),
            _ => NextPage::Done,
        };
        Ok(ChangesPage { records, next })
    }
}

async fn context(s: &Store, inst: i64, state: Value) -> RunContext {
    let integration = s
        .create_integration(
            inst,
            NewIntegration {
                kind: "fake_crm".into(),
                name: format!("fake {state}"),
                description: String::new(),
                enabled: true,
                config: json!({}),
                secrets: None,
            },
        )
        .await
        .unwrap();
    let run = s
        .enqueue_run(&NewRun {
            institution_id: inst,
            integration_id: integration.id,
            kind: integration.kind.clone(),
            trigger: Trigger::Manual,
            scheduled_for: None,
        })
        .await
        .unwrap()
        .unwrap();
    RunContext::new(
        s.clone(),
        integration,
        run,
        Secrets::new(),
        CancelSignal::never(),
    )
}

fn mappings() -> Vec<FieldMapping> {
    [
        ("first_name", "FirstName"),
        ("last_name", "LastName"),
        ("phone", "Phone"),
        ("email", "Email"),
        ("opt_in", "OptIn"),
    ]
    .map(|(l, r)| FieldMapping {
        local: l.into(),
        remote: r.into(),
    })
    .to_vec()
}

#[tokio::test]
async fn a_crm_other_than_hubspot_syncs_both_ways_through_the_engine() {
    let store = fresh_store().await;
    let s = &store.store;
    let inst = s
        .create_institution("state-u", "State University", None)
        .await
        .unwrap()
        .id;
    let schema = s.field_schema(inst).await.unwrap();
    let contact = |fields: &[(&'static str, &'static str)]| {
        ContactWrite::parse(&schema, fields.iter().map(|(k, v)| (*k, Raw::Str(v)))).unwrap()
    };
    let writes = [
        // Matched by email: updated, its ID written back.
        contact(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "(617) 555-0101"),
            ("email", "ana@state.edu"),
            ("opt_in", "true"),
        ]),
        // Matched by name and phone.
        contact(&[
            ("first_name", "Luis"),
            ("last_name", "Ortiz"),
            ("phone", "(617) 555-0102"),
        ]),
        // New in the CRM: created, in batches of two.
        contact(&[
            ("first_name", "Mei"),
            ("last_name", "Chen"),
            ("phone", "(617) 555-0103"),
        ]),
        contact(&[
            ("first_name", "Jo"),
            ("last_name", "Park"),
            ("phone", "(617) 555-0104"),
        ]),
        contact(&[
            ("first_name", "Kai"),
            ("last_name", "Lee"),
            ("phone", "(617) 555-0105"),
        ]),
    ];
    let ids: Vec<i64> = s
        .apply_contact_writes(inst, &writes, WriteKind::Import)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.unwrap().contact_id)
        .collect();

    let fake = Fake::default();
    fake.put(
        "a1",
        10,
        &[
            ("FirstName", "Ana"),
            ("LastName", "Diaz"),
            ("Email", "ANA@state.edu"),
        ],
    );
    fake.put(
        "l1",
        10,
        &[
            ("FirstName", "Luis"),
            ("LastName", "Ortiz"),
            ("Phone", "+16175550102"),
        ],
    );
    let filters: Vec<Filter> = Vec::new();
    let spec = SyncSpec {
        mappings: &mappings(),
        filters: &filters,
    };

    let ctx = context(s, inst, json!("out")).await;
    let report = crm::run_outgoing(&ctx, &fake, spec, 10).await.unwrap();
    ctx.flush_log().await.unwrap();
    assert_eq!(
        (
            report.detail["created"].clone(),
            report.detail["updated"].clone()
        ),
        (json!(3), json!(2)),
        "{:?}",
        report.detail
    );
    assert_eq!(
        fake.record("a1").unwrap().get("OptIn"),
        Some("Y"),
        "the codec's boolean"
    );
    let back = s.contacts_by_ids(inst, &ids).await.unwrap();
    assert_eq!(back[&ids[0]].data.crm_id.as_deref(), Some("a1"));
    assert_eq!(back[&ids[1]].data.crm_id.as_deref(), Some("l1"));
    assert!(ids[2..].iter().all(|id| {
        back[id]
            .data
            .crm_id
            .as_deref()
            .is_some_and(|c| c.starts_with("new"))
    }));
    let creates: Vec<usize> = fake
        .batches
        .lock()
        .unwrap()
        .iter()
        .filter(|(what, _)| *what == "create")
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(creates.iter().sum::<usize>(), 3, "{creates:?}");

    // Incoming: two changes since the cursor, a page each; a blank never clears a value, and
    // the codec reads the CRM's `N` as false.
    fake.put(
        "a1",
        20,
        &[
            ("FirstName", "Ana"),
            ("LastName", "Diaz"),
            ("Phone", "+16175550101"),
            ("Email", " "),
            ("OptIn", "N"),
        ],
    );
    fake.put(
        "l1",
        30,
        &[
            ("FirstName", "Luis"),
            ("LastName", "Ortiz-Paz"),
            ("Phone", "+16175550102"),
        ],
    );
    let ctx = context(s, inst, json!("in")).await;
    s.set_integration_state(inst, ctx.integration().id, &json!({"watermark": 15}))
        .await
        .unwrap();
    let ctx = RunContext::new(
        s.clone(),
        s.integration(inst, ctx.integration().id).await.unwrap(),
        ctx.run().clone(),
        Secrets::new(),
        CancelSignal::never(),
    );
    let report = crm::run_incoming(&ctx, &fake, spec).await.unwrap();
    assert_eq!(report.detail["updated"], json!(2), "{:?}", report.detail);
    let back = s.contacts_by_ids(inst, &ids).await.unwrap();
    assert!(!back[&ids[0]].data.opt_in);
    assert_eq!(
        back[&ids[0]].data.email.as_ref().map(|e| e.as_str()),
        Some("ana@state.edu"),
        "a blank does not clear"
    );
    assert_eq!(back[&ids[1]].data.last_name.as_deref(), Some("Ortiz-Paz"));
    let state = s
        .integration(inst, ctx.integration().id)
        .await
        .unwrap()
        .state;
    assert_eq!(state["watermark"], json!(30));
}
