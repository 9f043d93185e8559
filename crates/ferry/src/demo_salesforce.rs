//! `ferry demo`'s Salesforce org: the Salesforce emulator on loopback with a few hundred
//! Contacts, a connected account, and an incoming and an outgoing instance.

use anyhow::{Context, Result};
use ferry_connectors::IntegrationService;
use ferry_connectors::service::{IntegrationChange, NewIntegrationInput};
use ferry_store::Store;
use serde_json::{Map, Value, json};

use crate::demo::{DEMO_SLUG, contacts};
use crate::prng::Rng;
use crate::settings::Settings;

/// The demo Salesforce instances' names (found again by name on the next run).
pub const DEMO_SALESFORCE_IN: &str = "Salesforce → Ferry (demo emulator)";
pub const DEMO_SALESFORCE_OUT: &str = "Ferry → Salesforce (demo emulator)";
/// Contacts in the demo's Salesforce org.
pub const DEMO_SALESFORCE_CONTACTS: usize = 300;

/// Ferry's Salesforce settings pointed at the demo's emulator at `url` (its connected app, so
/// that Connect account works against the emulator's consent page too).
pub fn salesforce_settings(url: &str) -> ferry_connectors::salesforce::SalesforceSettings {
    ferry_connectors::salesforce::SalesforceSettings {
        login_url: url.to_string(),
        app: Some(ferry_connectors::salesforce::oauth::OAuthApp {
            client_id: ferry_emulators::salesforce::DEFAULT_CLIENT_ID.into(),
            client_secret: ferry_emulators::salesforce::DEFAULT_CLIENT_SECRET
                .to_string()
                .into(),
        }),
        bulk_poll: std::time::Duration::from_millis(200),
        ..Default::default()
    }
}

/// Starts the emulator with [`DEMO_SALESFORCE_CONTACTS`] Contacts of its own, connects the
/// demo's account to it, and points the instances at it, creating them the first time. The
/// incoming instance pulls at once (the Contacts arrive as new contacts with their Salesforce
/// Id as CRM ID) and every 5 minutes; the outgoing one is created disabled, because the demo's
/// students hold CRM IDs of another system: enabled, it pushes every contact, and those show as
/// `crm_id_not_found` in the Sync Log.
pub async fn start_salesforce(
    settings: &Settings,
    store: &Store,
) -> Result<ferry_emulators::salesforce::RunningEmulator> {
    let sf = ferry_emulators::salesforce::start(Default::default())
        .await
        .context("starting the Salesforce emulator")?;
    let inst = store
        .institution_by_slug(DEMO_SLUG)
        .await?
        .context("the demo institution is missing")?;
    let mut seeds: Vec<Map<String, Value>> = Vec::new();
    let mut other = Rng::new(crate::demo::SEED ^ 0x5a1e_5f0c);
    for (i, p) in contacts(&mut other, DEMO_SALESFORCE_CONTACTS)
        .iter()
        .enumerate()
    {
        seeds.push(row(
            &p.first_name,
            &format!("{} (Salesforce)", p.last_name),
            &format!("(646) 555-{:04}", 3000 + i),
            Some(&format!("salesforce.only.{i}@example.org")),
        ));
    }
    sf.state()
        .seed("Contact", seeds)
        .map_err(|e| anyhow::anyhow!("seeding the Salesforce emulator: {e}"))?;
    let grant = sf.state().issue_tokens(sf.base_url());
    let tokens = json!({
        "access_token": grant.access_token, "refresh_token": grant.refresh_token,
        "instance_url": grant.instance_url, "id": grant.id,
    });
    let org = grant
        .id
        .trim_end_matches('/')
        .rsplit('/')
        .nth(1)
        .unwrap_or("demo")
        .to_string();
    let account = store
        .upsert_crm_account(
            inst.id,
            "salesforce",
            &org,
            "Salesforce demo emulator",
            &tokens,
        )
        .await?;

    let mappings = json!([
        {"local": "first_name", "remote": "FirstName"},
        {"local": "last_name", "remote": "LastName"},
        {"local": "phone", "remote": "Phone"},
        {"local": "email", "remote": "Email"}
    ]);
    let mut with_sf = settings.clone();
    with_sf.salesforce_override = Some(salesforce_settings(sf.base_url()));
    let service = IntegrationService::new(store.clone(), with_sf.registry());
    let existing = store.list_integrations(inst.id).await?;
    for (kind, name, enabled, config) in [
        (
            "salesforce_incoming",
            DEMO_SALESFORCE_IN,
            true,
            json!({"account_id": account.id, "object": "Contact", "mappings": mappings, "schedule": {"every_minutes": 5}}),
        ),
        (
            "salesforce_outgoing",
            DEMO_SALESFORCE_OUT,
            false,
            json!({"account_id": account.id, "object": "Contact", "mappings": mappings}),
        ),
    ] {
        match existing.iter().find(|i| i.kind == kind && i.name == name) {
            Some(i) => {
                service
                    .update(
                        inst.id,
                        i.id,
                        IntegrationChange {
                            config: Some(config),
                            ..Default::default()
                        },
                    )
                    .await
                    .with_context(|| format!("updating the demo instance {name:?}"))?;
                store
                    .set_integration_state(inst.id, i.id, &json!({}))
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
                                "Syncs with the Salesforce emulator `ferry demo` starts on loopback."
                                    .into(),
                            enabled,
                            config,
                            secrets: Map::new(),
                        },
                    )
                    .await
                    .with_context(|| format!("creating the demo instance {name:?}"))?;
            }
        }
    }
    if let Some(i) = store
        .list_integrations(inst.id)
        .await?
        .into_iter()
        .find(|i| i.kind == "salesforce_incoming" && i.name == DEMO_SALESFORCE_IN)
    {
        service.run_now(inst.id, i.id).await?;
    }
    Ok(sf)
}

fn row(first: &str, last: &str, phone: &str, email: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("FirstName".into(), json!(first));
    m.insert("LastName".into(), json!(last));
    m.insert("Phone".into(), json!(phone));
    if let Some(e) = email {
        m.insert("Email".into(), json!(e));
    }
    m
}
