//! `ferry demo`: a demo institution with an admin, custom fields, contacts and messages, then
//! the server. The sample data is made once (while the institution has no contacts); the admin's
//! password is reset on every run so that it can be printed.

use std::collections::HashSet;

use anyhow::{Context, Result, bail};
use ferry_connectors::IntegrationService;
use ferry_connectors::service::{IntegrationChange, NewIntegrationInput};
use ferry_core::contact::{ContactId, ContactWrite, CustomFieldDef, FieldKind, Raw};
use ferry_core::message::{Channel, Direction, MessageType};
use ferry_core::tenancy::Role;
use ferry_store::{NewMessage, Store, WriteKind};
use jiff::Timestamp;

use crate::bench::thousands;
use crate::cli::DemoArgs;
use crate::commands::generate_password;
use crate::fake::{self, Topic};
use crate::prng::Rng;
use crate::settings::Settings;

pub const DEMO_SLUG: &str = "demo";
pub const DEMO_NAME: &str = "Demo University";
pub const DEMO_EMAIL: &str = "admin@demo.ferry.test";
pub const SEED: u64 = 0x00F3_4A11_2026;

pub async fn run(settings: &Settings, args: &DemoArgs) -> Result<()> {
    settings.ensure_data_dir()?;
    let store = settings.connect_and_migrate().await?;
    let password = prepare(&store, args).await?;
    let sftp = start_sftp(settings, &store).await?;
    let outbox = sftp.root().join(SFTP_DIR);
    let port = sftp.port();
    let hub = start_hubspot(settings, &store, args.contacts).await?;
    let hub_url = hub.base_url().to_string();
    let ea = start_everyaction(settings, &store).await?;
    let ea_url = ea.api_url();
    let sf = crate::demo_salesforce::start_salesforce(settings, &store).await?;
    let sf_url = sf.base_url().to_string();
    let inst = store
        .institution_by_slug(DEMO_SLUG)
        .await?
        .context("the demo institution")?;
    let bulk_port = settings
        .sftp_listen
        .as_deref()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(2222);
    let bulk = crate::demo_bulk::prepare(settings, &store, inst.id, bulk_port).await?;
    let mut settings = settings.clone();
    settings.hubspot_override = Some(hubspot_settings(&hub_url));
    settings.salesforce_override = Some(crate::demo_salesforce::salesforce_settings(&sf_url));
    let result = crate::server::run(&settings, store, |url| {
        print_box(
            url, &password, port, &outbox, &hub_url, &ea_url, &sf_url, &bulk,
        )
    })
    .await;
    sftp.shutdown().await;
    hub.shutdown().await;
    ea.shutdown().await;
    sf.shutdown().await;
    result
}

/// The demo EveryAction emulator's API key and the demo instance's name.
const EVERYACTION_KEY: &str = "d3m0d3m0-ea00-4000-8000-000000000001";
pub const DEMO_EVERYACTION: &str = "EveryAction (demo emulator)";
/// The opt-in path the demo's EveryAction instance gives new opted-in contacts.
pub const DEMO_OPT_IN_PATH: &str = "EveryAction sign-up (demo)";
/// People in the demo's EveryAction emulator.
pub const DEMO_EVERYACTION_PEOPLE: usize = 300;
/// Of those, the ones a conservative sync takes: US, a cell phone, an email, opted in (6 in 10;
/// the others are 1 in 10 with a landline only, 1 outside the US, 2 opted out).
pub const DEMO_EVERYACTION_SYNCED: usize = 180;

/// Starts the EveryAction emulator on loopback with [`DEMO_EVERYACTION_PEOPLE`] people and
/// points the demo's (conservative) EveryAction instance at it, creating it the first time; it
/// pulls at once.
pub async fn start_everyaction(
    settings: &Settings,
    store: &Store,
) -> Result<ferry_emulators::everyaction::RunningEmulator> {
    use ferry_emulators::everyaction::{EmulatorConfig, SeedPerson};
    let ea = ferry_emulators::everyaction::start(EmulatorConfig {
        api_key: EVERYACTION_KEY.into(),
        app_name: "ferry-demo".into(),
        database_name: "Demo University Advocacy".into(),
        ..EmulatorConfig::default()
    })
    .await
    .context("starting the EveryAction emulator")?;
    let inst = store
        .institution_by_slug(DEMO_SLUG)
        .await?
        .context("the demo institution is missing")?;
    let people = contacts(&mut Rng::new(SEED ^ 0xea), DEMO_EVERYACTION_PEOPLE);
    let seeds = people.iter().enumerate().map(|(i, p)| {
        let kind = i % 10;
        let (phone, device, country, state, city) = match kind {
            1 => (format!("(604) 555-{:04}", 3000 + i), "C", "CA", "BC", "Vancouver"),
            _ => (format!("(312) 555-{:04}", 3000 + i), if kind == 0 { "L" } else { "C" }, "US", "IL", "Chicago"),
        };
        let opt_in = if kind == 2 || kind == 3 { "O" } else { "I" };
        SeedPerson::new(serde_json::json!({
            "firstName": p.first_name,
            "lastName": format!("{} (EveryAction)", p.last_name),
            "emails": [{"email": format!("everyaction.{i}@example.org")}],
            "phones": [{"phoneNumber": phone, "deviceType": device, "phoneOptInStatus": opt_in}],
            "addresses": [{"addressLine1": format!("{} Lake St", 100 + i), "city": city, "stateOrProvince": state, "zipOrPostalCode": "60601", "countryCode": country}],
        }))
    });
    ea.state()
        .seed_people(seeds)
        .map_err(|e| anyhow::anyhow!("seeding the EveryAction emulator: {e:?}"))?;
    // New opted-in people it brings get this path's welcome queued in the Outbox.
    let path = match store
        .opt_in_paths(inst.id)
        .await?
        .into_iter()
        .find(|p| p.name == DEMO_OPT_IN_PATH)
    {
        Some(p) => p,
        None => {
            store
                .create_opt_in_path(
                    inst.id,
                    &ferry_store::OptInPathInput {
                        name: DEMO_OPT_IN_PATH.into(),
                        welcome_message: "Welcome! You will get texts from your campus here. \
                                          Reply STOP at any time to opt out."
                            .into(),
                    },
                )
                .await?
        }
    };
    let config = serde_json::json!({"login": "ferry-demo", "api_host": ea.api_url(),
        "liberal": false, "opt_in_path_id": path.id});
    let mut secrets = serde_json::Map::new();
    secrets.insert("password".into(), EVERYACTION_KEY.into());
    let service = IntegrationService::new(store.clone(), settings.registry());
    let existing = store
        .list_integrations(inst.id)
        .await?
        .into_iter()
        .find(|i| i.kind == "everyaction" && i.name == DEMO_EVERYACTION);
    let id =
        match existing {
            Some(i) => {
                service
                    .update(
                        inst.id,
                        i.id,
                        IntegrationChange {
                            config: Some(config),
                            secrets: Some(secrets),
                            ..Default::default()
                        },
                    )
                    .await
                    .context("updating the demo EveryAction instance")?;
                store
                    .set_integration_state(inst.id, i.id, &serde_json::json!({}))
                    .await?;
                i.id
            }
            None => service
                .create(
                    inst.id,
                    NewIntegrationInput {
                        kind: "everyaction".into(),
                        name: DEMO_EVERYACTION.into(),
                        description:
                            "Syncs with the EveryAction emulator `ferry demo` starts on loopback."
                                .into(),
                        enabled: true,
                        config,
                        secrets,
                    },
                )
                .await
                .context("creating the demo EveryAction instance")?
                .id,
        };
    service.run_now(inst.id, id).await?;
    Ok(ea)
}

/// Ferry's HubSpot settings pointed at the demo's emulator at `hub_url`.
fn hubspot_settings(hub_url: &str) -> ferry_connectors::hubspot::HubSpotSettings {
    ferry_connectors::hubspot::HubSpotSettings {
        api_url: hub_url.to_string(),
        auth_url: format!("{hub_url}/oauth/authorize"),
        app: Some(ferry_connectors::hubspot::oauth::OAuthApp {
            client_id: ferry_emulators::hubspot::DEFAULT_CLIENT_ID.into(),
            client_secret: ferry_emulators::hubspot::DEFAULT_CLIENT_SECRET
                .to_string()
                .into(),
        }),
        ..Default::default()
    }
}

/// The demo's private-app token for its HubSpot emulator.
const HUBSPOT_TOKEN: &str = "pat-demo-ferry";
/// The demo HubSpot instances' names (found again by name on the next run).
pub const DEMO_HUBSPOT_IN: &str = "HubSpot → Ferry (demo emulator)";
pub const DEMO_HUBSPOT_OUT: &str = "Ferry → HubSpot (demo emulator)";

/// Starts the HubSpot emulator on loopback with a few hundred contacts, half of them the demo's
/// own students (same email, or same name and phone), and points an incoming and an outgoing
/// instance at it. The emulator keeps nothing between runs, so both instances start over (a
/// fresh backfill) each time.
pub async fn start_hubspot(
    settings: &Settings,
    store: &Store,
    demo_contacts: usize,
) -> Result<ferry_emulators::hubspot::RunningEmulator> {
    use ferry_emulators::hubspot::{EmulatorConfig, SeedContact};
    let hub = ferry_emulators::hubspot::start(EmulatorConfig {
        private_app_tokens: vec![HUBSPOT_TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .context("starting the HubSpot emulator")?;
    let inst = store
        .institution_by_slug(DEMO_SLUG)
        .await?
        .context("the demo institution is missing")?;
    // The same people `prepare` made (same seed, same count): those meant for HubSpot are in it
    // already, half with their email, all with their phone, so both directions match them.
    let people = contacts(&mut Rng::new(SEED), demo_contacts);
    let mut seeds: Vec<SeedContact> = Vec::new();
    for (i, p) in people
        .iter()
        .filter(|p| p.crm_id.is_none() && !p.test_user)
        .enumerate()
    {
        let mut props = vec![
            ("firstname", p.first_name.clone()),
            ("lastname", p.last_name.clone()),
            ("phone", p.phone.clone()),
        ];
        if let Some(e) = p.email.as_ref().filter(|_| i % 2 == 0) {
            props.push(("email", e.clone()));
        }
        seeds.push(SeedContact::new(props));
    }
    let mut other = Rng::new(SEED ^ 0x5eed);
    for (i, p) in contacts(&mut other, 250).iter().enumerate() {
        seeds.push(SeedContact::new([
            ("firstname", p.first_name.clone()),
            ("lastname", format!("{} (HubSpot)", p.last_name)),
            // Numbers of their own, so that no HubSpot-only person shares a demo student's phone.
            ("phone", format!("(212) 555-{:04}", 2000 + i)),
            ("email", format!("hubspot.only.{i}@example.org")),
        ]));
    }
    hub.state()
        .seed_contacts(seeds)
        .map_err(|e| anyhow::anyhow!("seeding the HubSpot emulator: {e:?}"))?;

    let mappings = serde_json::json!([
        {"local": "first_name", "remote": "firstname"},
        {"local": "last_name", "remote": "lastname"},
        {"local": "phone", "remote": "phone"},
        {"local": "email", "remote": "email"}
    ]);
    let mut secrets = serde_json::Map::new();
    secrets.insert("access_token".into(), HUBSPOT_TOKEN.into());
    let mut with_hub = settings.clone();
    with_hub.hubspot_override = Some(hubspot_settings(hub.base_url()));
    let service = IntegrationService::new(store.clone(), with_hub.registry());
    let existing = store.list_integrations(inst.id).await?;
    for (kind, name, config) in [
        (
            "hubspot_incoming",
            DEMO_HUBSPOT_IN,
            serde_json::json!({"mappings": mappings, "schedule": {"every_minutes": 5}}),
        ),
        (
            "hubspot_outgoing",
            DEMO_HUBSPOT_OUT,
            serde_json::json!({"mappings": mappings, "filters": [{"field": "hubspot_sync", "values": ["true"]}]}),
        ),
    ] {
        // Through the service, so the demo's instances pass the checks a person's would
        // (the mapping against the emulator's properties).
        match existing.iter().find(|i| i.kind == kind && i.name == name) {
            Some(i) => {
                service
                    .update(
                        inst.id,
                        i.id,
                        IntegrationChange {
                            config: Some(config),
                            secrets: Some(secrets.clone()),
                            ..Default::default()
                        },
                    )
                    .await
                    .with_context(|| format!("updating the demo instance {name:?}"))?;
                store
                    .set_integration_state(inst.id, i.id, &serde_json::json!({}))
                    .await?;
            }
            None => {
                service
                    .create(
                        inst.id,
                        NewIntegrationInput {
                            kind: kind.into(),
                            name: name.into(),
                            description:
                                "Syncs with the HubSpot emulator `ferry demo` starts on loopback."
                                    .into(),
                            enabled: true,
                            config,
                            secrets: secrets.clone(),
                        },
                    )
                    .await
                    .with_context(|| format!("creating the demo instance {name:?}"))?;
            }
        }
    }
    // The incoming instance pulls every 5 minutes; the demo starts with a pull at once.
    if let Some(i) = store
        .list_integrations(inst.id)
        .await?
        .into_iter()
        .find(|i| i.kind == "hubspot_incoming" && i.name == DEMO_HUBSPOT_IN)
    {
        service.run_now(inst.id, i.id).await?;
    }
    Ok(hub)
}

/// The demo SFTP server's account, and the directory the demo export writes to.
const SFTP_USER: &str = "demo";
const SFTP_DIR: &str = "outbox";
/// The demo EAB Notes export's name (it is found again by this name on the next run).
pub const DEMO_EXPORT: &str = "EAB Notes (demo SFTP server)";

/// Starts Ferry's own SFTP server on loopback as the demo's export target (files land in
/// DATA_DIR/sftp-demo/outbox), and points the demo EAB Notes export at it, creating the export
/// the first time. The server has a new port, password and host key on every run, so the export
/// is updated to match (and re-pins the key at its first connection).
pub async fn start_sftp(
    settings: &Settings,
    store: &Store,
) -> Result<ferry_sftp::server::TestServer> {
    let root = settings.data_dir.join("sftp-demo");
    std::fs::create_dir_all(root.join(SFTP_DIR))
        .with_context(|| format!("creating {}", root.display()))?;
    let password = generate_password();
    let server = ferry_sftp::server::TestServer::builder(&root)
        .password(SFTP_USER, &password)
        .start()
        .await
        .context("starting the demo SFTP server")?;
    let inst = store
        .institution_by_slug(DEMO_SLUG)
        .await?
        .context("the demo institution is missing")?;
    let sftp = serde_json::json!({
        "host": "127.0.0.1", "port": server.port(), "username": SFTP_USER,
        "directory": SFTP_DIR, "file_prefix": "eab_notes_",
    });
    let mut secrets = serde_json::Map::new();
    secrets.insert("password".into(), password.into());
    let existing = store
        .list_integrations(inst.id)
        .await?
        .into_iter()
        .find(|i| i.kind == "eab_notes_export" && i.name == DEMO_EXPORT);
    let service = IntegrationService::new(store.clone(), settings.registry());
    match existing {
        Some(i) => {
            // A new server, a new host key: the next connection pins it.
            let mut sftp = sftp;
            sftp["host_key"] = serde_json::Value::Null;
            service
                .update(
                    inst.id,
                    i.id,
                    IntegrationChange {
                        config: Some(serde_json::json!({ "sftp": sftp })),
                        secrets: Some(secrets),
                        ..Default::default()
                    },
                )
                .await
                .context("updating the demo export")?;
        }
        None => {
            let config = serde_json::json!({
                "sftp": sftp,
                "schedule": {"blocks": [0]},
                "filters": {"channels": ["sms", "web_chat", "email", "whatsapp"], "types": ["ai_agent", "live_chat", "campaign"], "directions": ["incoming", "outgoing"]},
                "eab": {
                    "import_version": "2", "institution_id": "1234", "group_id": "group_id",
                    "dedupe_contacts": false, "is_private": false, "student_viewable": false,
                    "show_on_student_report": true, "created_by": "Ferry", "note_reasons": "Ferry conversation",
                    "note_body": "{channel} {direction} message on {date}: {message} {url}"
                }
            });
            service
                .create(
                    inst.id,
                    NewIntegrationInput {
                        kind: "eab_notes_export".into(),
                        name: DEMO_EXPORT.into(),
                        description: "Notes for EAB, uploaded to Ferry's own SFTP server on loopback. Use Run now, then look in the outbox folder.".into(),
                        enabled: true,
                        config,
                        secrets,
                    },
                )
                .await
                .context("creating the demo export")?;
        }
    }
    Ok(server)
}

/// Creates what is missing and returns the admin's new password.
pub async fn prepare(store: &Store, args: &DemoArgs) -> Result<String> {
    let inst = match store.institution_by_slug(DEMO_SLUG).await? {
        Some(i) => i,
        None => store
            .create_institution(DEMO_SLUG, DEMO_NAME, None)
            .await
            .context("creating the demo institution")?,
    };

    let password = generate_password();
    let user = match store.user_by_email(DEMO_EMAIL).await? {
        Some(u) => {
            store.set_password(u.id, &password).await?;
            u
        }
        None => store.create_user(DEMO_EMAIL, &password).await?,
    };
    store.grant_role(user.id, inst.id, Role::Admin).await?;

    let existing: HashSet<String> = store
        .custom_fields(inst.id)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    for (name, label, kind) in CUSTOM_FIELDS {
        if !existing.contains(*name) {
            let def = CustomFieldDef {
                name: name.to_string(),
                label: label.to_string(),
                kind: *kind,
            };
            store.create_custom_field(inst.id, &def).await?;
        }
    }

    if store.count_contacts(inst.id).await? == 0 {
        eprintln!(
            "Creating {} sample contacts and {} messages in {DEMO_NAME}...",
            thousands(args.contacts as u64),
            thousands(args.messages as u64)
        );
        let mut rng = Rng::new(SEED);
        let people = contacts(&mut rng, args.contacts);
        let ids = write_contacts(store, inst.id, &people).await?;
        for (p, id) in people.iter().zip(&ids) {
            if p.archived {
                store.set_archived(inst.id, *id, true).await?;
            }
        }
        let talkers: Vec<(ContactId, &str)> = people
            .iter()
            .zip(&ids)
            .filter(|(p, _)| !p.test_user)
            .map(|(p, id)| (*id, p.call_name()))
            .collect();
        let msgs = messages(&mut rng, &talkers, args.messages, Timestamp::now());
        for chunk in msgs.chunks(2_000) {
            store.insert_messages(inst.id, chunk).await?;
        }
        tracing::info!(
            contacts = ids.len(),
            messages = msgs.len(),
            "demo data created"
        );
    } else {
        tracing::info!("the demo institution has contacts already; keeping its data");
    }
    Ok(password)
}

const CUSTOM_FIELDS: &[(&str, &str, FieldKind)] = &[
    ("graduation_year", "Graduation year", FieldKind::Number),
    ("major", "Major", FieldKind::Text),
    ("first_gen", "First-generation student", FieldKind::Boolean),
    ("advisor_email", "Advisor email", FieldKind::Email),
    ("hubspot_sync", "Sync with HubSpot", FieldKind::Boolean),
];

/// One sample contact, as the text a CSV row would hold.
#[derive(Debug, Clone)]
pub struct Person {
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    pub phone: String,
    pub email: Option<String>,
    pub enrollment_id: Option<String>,
    pub crm_id: Option<String>,
    pub opt_in: bool,
    pub test_user: bool,
    pub archived: bool,
    pub graduation_year: Option<u16>,
    pub major: Option<&'static str>,
    pub first_gen: Option<bool>,
    pub advisor_email: Option<String>,
}

impl Person {
    /// What a message calls the person.
    fn call_name(&self) -> &str {
        self.preferred_name.as_deref().unwrap_or(&self.first_name)
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("first_name", self.first_name.clone()),
            ("last_name", self.last_name.clone()),
            ("phone", self.phone.clone()),
            ("opt_in", self.opt_in.to_string()),
            ("test_user", self.test_user.to_string()),
        ];
        let mut opt = |name: &'static str, v: Option<String>| {
            if let Some(v) = v {
                f.push((name, v));
            }
        };
        opt("preferred_name", self.preferred_name.clone());
        opt("email", self.email.clone());
        opt("enrollment_id", self.enrollment_id.clone());
        opt("crm_id", self.crm_id.clone());
        opt(
            "graduation_year",
            self.graduation_year.map(|y| y.to_string()),
        );
        opt("major", self.major.map(str::to_string));
        opt(
            "first_gen",
            self.first_gen
                .map(|b| if b { "yes" } else { "no" }.to_string()),
        );
        opt("advisor_email", self.advisor_email.clone());
        // The students not yet in the SIS (no CRM ID) are the ones the demo keeps in HubSpot.
        if self.crm_id.is_none() && !self.test_user {
            f.push(("hubspot_sync", "yes".to_string()));
        }
        f
    }
}

const NICKNAMES: &[(&str, &str)] = &[
    ("Alejandro", "Alex"),
    ("Benjamin", "Ben"),
    ("Daniel", "Danny"),
    ("Gabriel", "Gabe"),
    ("Isabella", "Bella"),
    ("Joshua", "Josh"),
    ("Mohammed", "Mo"),
    ("Oluwaseun", "Seun"),
    ("Samantha", "Sam"),
    ("Sebastián", "Seba"),
    ("Valentina", "Vale"),
    ("Victoria", "Tori"),
];

/// `n` sample people with unique fictional phone numbers (555-0100 to 555-0199 in many area
/// codes), a few test users and a few to archive.
pub fn contacts(rng: &mut Rng, n: usize) -> Vec<Person> {
    let mut phones = HashSet::new();
    let mut emails = HashSet::new();
    let capacity = fake::AREA_CODES.len() * 100;
    let mut out = Vec::with_capacity(n);
    for i in 0..n.min(capacity) {
        let test_user = i % 250 == 7;
        let (first, last) = if test_user {
            ("Test".to_string(), format!("Student {}", i / 250 + 1))
        } else {
            (
                rng.pick(fake::FIRST_NAMES).to_string(),
                rng.pick(fake::LAST_NAMES).to_string(),
            )
        };
        let phone = loop {
            let area = *rng.pick(fake::AREA_CODES);
            let line = 100 + rng.below(100) as u16;
            if phones.insert((area, line)) {
                break fake::format_phone(area, 555, line, rng.next_u64());
            }
        };
        let preferred_name = NICKNAMES
            .iter()
            .find(|(full, _)| *full == first)
            .filter(|_| rng.chance(0.6))
            .map(|(_, nick)| nick.to_string());
        let email = if test_user {
            Some(format!("ferry.test{}@example.edu", i / 250 + 1))
        } else if rng.chance(0.92) {
            let base = format!("{}.{}", fake::email_part(&first), fake::email_part(&last));
            let mut candidate = format!("{base}@example.edu");
            let mut k = 2;
            while !emails.insert(candidate.clone()) {
                candidate = format!("{base}{k}@example.edu");
                k += 1;
            }
            Some(candidate)
        } else {
            None
        };
        let student = !test_user;
        out.push(Person {
            preferred_name,
            phone,
            email,
            enrollment_id: (student && rng.chance(0.85)).then(|| format!("S{:07}", 2_410_000 + i)),
            // About 5% have no CRM ID yet (not synced to the CRM).
            crm_id: (student && rng.chance(0.95)).then(|| fake::crm_id(rng)),
            opt_in: test_user || rng.chance(0.93),
            test_user,
            archived: student && rng.chance(0.015),
            graduation_year: student.then(|| 2025 + rng.below(6) as u16),
            major: (student && rng.chance(0.85)).then(|| *rng.pick(fake::MAJORS)),
            first_gen: student.then(|| rng.chance(0.35)),
            advisor_email: (student && rng.chance(0.7))
                .then(|| format!("{}@example.edu", rng.pick(fake::ADVISORS))),
            first_name: first,
            last_name: last,
        });
    }
    out
}

/// Writes the people through the same path as a CSV import; returns their platform IDs.
async fn write_contacts(
    store: &Store,
    institution_id: i64,
    people: &[Person],
) -> Result<Vec<ContactId>> {
    let schema = store.field_schema(institution_id).await?;
    let mut writes = Vec::with_capacity(people.len());
    for p in people {
        let fields = p.fields();
        let w = ContactWrite::parse(&schema, fields.iter().map(|(k, v)| (*k, Raw::Str(v))))
            .map_err(|errs| anyhow::anyhow!("sample contact {p:?} is invalid: {errs:?}"))?;
        writes.push(w);
    }
    let outcomes = store
        .apply_contact_writes(institution_id, &writes, WriteKind::Import)
        .await?;
    let mut ids = Vec::with_capacity(outcomes.len());
    for (p, o) in people.iter().zip(outcomes) {
        match o {
            Ok(a) => ids.push(a.contact_id),
            Err(e) => bail!(
                "sample contact {} {} was refused: {}",
                p.first_name,
                p.last_name,
                e.message
            ),
        }
    }
    Ok(ids)
}

fn fill(template: &str, first: &str) -> String {
    template.replace("{first}", first)
}

const MINUTE: i64 = 60_000_000;

/// About `target` messages in conversations spread over the 90 days before `now`, in
/// chronological order.
pub fn messages(
    rng: &mut Rng,
    contacts: &[(ContactId, &str)],
    target: usize,
    now: Timestamp,
) -> Vec<NewMessage> {
    if contacts.is_empty() {
        return Vec::new();
    }
    let end = now.as_microsecond();
    let start = end - 90 * 24 * 60 * MINUTE;
    let mut all: Vec<(i64, NewMessage)> = Vec::with_capacity(target + 8);
    while all.len() < target {
        let (contact_id, first) = *rng.pick(contacts);
        let channel = *rng.weighted(&[
            (60, Channel::Sms),
            (20, Channel::WebChat),
            (8, Channel::Email),
            (12, Channel::Whatsapp),
        ]);
        let topic: &Topic = rng.pick(fake::TOPICS);
        let mut t = start + rng.below((end - start - 6 * 60 * MINUTE) as u64) as i64;
        let mut push = |t: i64, kind: MessageType, dir: Direction, body: String| {
            all.push((
                t,
                NewMessage {
                    contact_id,
                    channel,
                    message_type: kind,
                    direction: dir,
                    body,
                    sent_at: Timestamp::from_microsecond(t.min(end)).expect("in range"),
                },
            ));
        };
        let campaign = rng.chance(0.55);
        let kind = if campaign {
            MessageType::Campaign
        } else {
            MessageType::AiAgent
        };
        let q = rng.below(topic.questions.len() as u64) as usize;
        if campaign {
            push(
                t,
                kind,
                Direction::Outgoing,
                fill(rng.pick::<&str>(topic.campaign), first),
            );
            if !rng.chance(0.5) {
                continue;
            }
            t += rng.range(1, 240) as i64 * MINUTE;
        }
        push(t, kind, Direction::Incoming, topic.questions[q].to_string());
        t += rng.range(5, 40) as i64 * 1_000_000;
        push(
            t,
            MessageType::AiAgent,
            Direction::Outgoing,
            fill(topic.answers[q], first),
        );
        if rng.chance(0.35) {
            t += rng.range(1, 90) as i64 * MINUTE;
            let follow = *rng.pick(fake::INCOMING_FOLLOW_UPS);
            push(
                t,
                MessageType::AiAgent,
                Direction::Incoming,
                follow.to_string(),
            );
            if follow.contains("person") || rng.chance(0.2) {
                t += rng.range(2, 20) as i64 * MINUTE;
                push(
                    t,
                    MessageType::LiveChat,
                    Direction::Outgoing,
                    fill(rng.pick::<&str>(fake::LIVE_AGENT_LINES), first),
                );
                if rng.chance(0.5) {
                    t += rng.range(1, 30) as i64 * MINUTE;
                    push(
                        t,
                        MessageType::LiveChat,
                        Direction::Incoming,
                        "Thank you so much!".to_string(),
                    );
                }
            }
        }
    }
    all.sort_by_key(|(t, _)| *t);
    all.truncate(target);
    all.into_iter().map(|(_, m)| m).collect()
}

#[allow(clippy::too_many_arguments)]
fn print_box(
    url: &str,
    password: &str,
    sftp_port: u16,
    outbox: &std::path::Path,
    hubspot: &str,
    everyaction: &str,
    salesforce: &str,
    bulk: &str,
) {
    let lines = [
        "Ferry demo is running".to_string(),
        String::new(),
        format!("  URL:      {url}"),
        format!("  Email:    {DEMO_EMAIL}"),
        format!("  Password: {password}"),
        String::new(),
        format!("  SFTP target: 127.0.0.1:{sftp_port}; files arrive in"),
        format!("  {}", outbox.display()),
        format!("  (Settings > SFTP Outbound > \"{DEMO_EXPORT}\" > Run now)"),
        String::new(),
        format!("  HubSpot emulator: {hubspot}"),
        "  (Settings > Integrations > HubSpot: both directions sync by themselves)".to_string(),
        String::new(),
        format!("  EveryAction emulator: {everyaction}"),
        format!(
            "  (\"{DEMO_EVERYACTION}\" pulled {DEMO_EVERYACTION_SYNCED} opted-in people at start;"
        ),
        "  their welcome messages wait in Settings > Outbox; opt-ins and opt-outs in Ferry"
            .to_string(),
        "  go to it every 5 minutes by day, or on Run now)".to_string(),
        String::new(),
        format!("  Salesforce emulator: {salesforce}"),
        format!(
            "  (\"{}\" pulled its {} Contacts at start;",
            crate::demo_salesforce::DEMO_SALESFORCE_IN,
            crate::demo_salesforce::DEMO_SALESFORCE_CONTACTS
        ),
        "  the outgoing instance is there, disabled: enable it to push)".to_string(),
        String::new(),
        "  Bulk File Upload: upload sample contacts and calls to Ferry's SFTP".to_string(),
        "  server (they show in Recent Runs as \"Bulk file\" runs):".to_string(),
        format!("  {bulk}"),
        String::new(),
        "The password is reset every time you run `ferry demo`.".to_string(),
        "Press Ctrl-C to stop.".to_string(),
    ];
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 2;
    let mut out = format!("╭{}╮\n", "─".repeat(width));
    for l in &lines {
        out.push_str(&format!(
            "│ {l}{} │\n",
            " ".repeat(width - 2 - l.chars().count())
        ));
    }
    out.push_str(&format!("╰{}╯", "─".repeat(width)));
    println!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::phone::Phone;

    #[test]
    fn sample_contacts_are_valid_and_unique() {
        let mut rng = Rng::new(SEED);
        let people = contacts(&mut rng, 1_000);
        assert_eq!(people.len(), 1_000);
        let mut phones = HashSet::new();
        for p in &people {
            let phone = Phone::parse(&p.phone).unwrap_or_else(|e| panic!("{e}"));
            assert!(phone.as_str().contains("55501"), "{phone}");
            assert!(phones.insert(phone), "duplicate phone {}", p.phone);
        }
        let no_crm = people.iter().filter(|p| p.crm_id.is_none()).count();
        assert!((20..=100).contains(&no_crm), "{no_crm} without CRM ID");
        assert!(people.iter().filter(|p| p.test_user).count() >= 3);
        assert!(people.iter().any(|p| p.archived));
    }

    #[test]
    fn messages_are_chronological_and_recent() {
        let mut rng = Rng::new(SEED);
        let now = Timestamp::now();
        let contacts = [(1, "Ana"), (2, "Bo")];
        let msgs = messages(&mut rng, &contacts, 500, now);
        assert_eq!(msgs.len(), 500);
        assert!(msgs.windows(2).all(|w| w[0].sent_at <= w[1].sent_at));
        assert!(msgs.iter().all(|m| m.sent_at <= now));
        let ninety_days_ago = now - jiff::SignedDuration::from_hours(90 * 24);
        assert!(msgs.iter().all(|m| m.sent_at >= ninety_days_ago));
        assert!(msgs.iter().any(|m| m.direction == Direction::Incoming));
        assert!(msgs.iter().any(|m| m.message_type == MessageType::LiveChat));
        assert!(msgs.iter().all(|m| !m.body.contains("{first}")));
    }

    #[test]
    fn every_area_code_and_format_parses() {
        for (i, area) in fake::AREA_CODES.iter().enumerate() {
            for style in 0..6 {
                let s = fake::format_phone(*area, 555, 100 + i as u16, style);
                let p = Phone::parse(&s).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(p.as_str(), format!("+1{area}555{:04}", 100 + i));
            }
        }
    }
}
