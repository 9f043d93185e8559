//! `ferry integration`: the integration lifecycle from the command line, through the same
//! [`IntegrationService`] the REST API and the web UI call, so a config refused there is refused
//! here with the same field and reason, and nothing is stored unless all of it is valid.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ferry_connectors::service::{
    IntegrationChange, IntegrationService, NewIntegrationInput, ServiceError,
};
use ferry_store::{Integration, Store};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::institution;
use crate::settings::Settings;

/// What `ferry integration create` reads: the body of `POST /api/v1/integrations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    enabled: bool,
    config: Value,
    #[serde(default)]
    secrets: Option<Map<String, Value>>,
}

/// What `ferry integration update` reads: the body of `PATCH /api/v1/integrations/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
    config: Option<Value>,
    secrets: Option<Map<String, Value>>,
}

/// The store and the service over it, for one command.
struct Lifecycle {
    store: Store,
    service: IntegrationService,
    institution_id: i64,
}

impl Lifecycle {
    async fn open(settings: &Settings, slug: &str) -> Result<Self> {
        let store = settings.connect_and_migrate().await?;
        let inst = institution(&store, slug).await?;
        let service = IntegrationService::new(store.clone(), settings.registry());
        Ok(Lifecycle {
            store,
            service,
            institution_id: inst.id,
        })
    }

    async fn close(self) {
        self.store.close().await;
    }
}

/// A refusal as one line a person can act on: the field, the reason and its code.
fn refused(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::Invalid {
            field,
            code,
            message,
        } => anyhow::anyhow!("{field}: {message} (code {code}); nothing was saved"),
        ServiceError::NotFound => {
            anyhow::anyhow!("no such integration in this institution; see `ferry integration list`")
        }
        other => anyhow::Error::new(other),
    }
}

/// A refused save as one line per problem: every mistake the checks found (`problems`, from
/// [`IntegrationService::create_problems`] or `update_problems`), else the one refusal.
fn refused_all(e: ServiceError, problems: Vec<ServiceError>) -> anyhow::Error {
    if !matches!(e, ServiceError::Invalid { .. }) || problems.len() < 2 {
        return refused(e);
    }
    let lines: Vec<String> = problems
        .into_iter()
        .map(|p| match p {
            ServiceError::Invalid {
                field,
                code,
                message,
            } => format!("  {field}: {message} (code {code})"),
            other => format!("  {other}"),
        })
        .collect();
    anyhow::anyhow!(
        "{} problems; nothing was saved:\n{}",
        lines.len(),
        lines.join("\n")
    )
}

/// A JSON document from a file, or from stdin for `-`.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the JSON document from stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid document: {e} (line {}, column {})",
            if path == Path::new("-") {
                "stdin".to_string()
            } else {
                path.display().to_string()
            },
            e.line(),
            e.column()
        )
    })
}

/// The integration as the REST API shows it: secrets only by name.
fn as_json(i: &Integration) -> Value {
    json!({
        "id": i.id,
        "type": i.kind,
        "name": i.name,
        "description": i.description,
        "enabled": i.enabled,
        "config": i.config,
        "secrets_set": i.secrets_set,
        "created_at": i.created_at.to_string(),
        "updated_at": i.updated_at.to_string(),
    })
}

/// `ferry integration types`: the kinds this build offers.
pub fn types(settings: &Settings) -> Result<()> {
    let registry = settings.registry();
    println!("{:<24}  {:<16}  LABEL", "TYPE", "CATEGORY");
    for d in registry.descriptions() {
        println!("{:<24}  {:<16}  {}", d.kind, d.category.as_str(), d.label);
    }
    Ok(())
}

/// `ferry integration list`.
pub async fn list(settings: &Settings, slug: &str) -> Result<()> {
    let l = Lifecycle::open(settings, slug).await?;
    let all = l.store.list_integrations(l.institution_id).await?;
    let registry = l.service.registry().clone();
    l.close().await;
    if all.is_empty() {
        println!(
            "no integrations yet; create one with `ferry integration create --institution {slug} --file BODY.json` \
             (see `ferry integration types`)"
        );
        return Ok(());
    }
    println!("{:>5}  {:<8}  {:<28}  NAME", "ID", "ENABLED", "TYPE");
    for i in all {
        println!(
            "{:>5}  {:<8}  {:<28}  {}",
            i.id,
            if i.enabled { "yes" } else { "no" },
            registry.label(&i.kind),
            i.name
        );
    }
    Ok(())
}

/// `ferry integration show ID`.
pub async fn show(settings: &Settings, slug: &str, id: i64) -> Result<()> {
    let l = Lifecycle::open(settings, slug).await?;
    let found = l.store.integration(l.institution_id, id).await;
    l.close().await;
    let i = found.map_err(|e| refused(e.into()))?;
    println!("{}", serde_json::to_string_pretty(&as_json(&i))?);
    Ok(())
}

/// `ferry integration create --file BODY`.
pub async fn create(settings: &Settings, slug: &str, file: &Path) -> Result<()> {
    let body: CreateBody = read_json(file)?;
    let l = Lifecycle::open(settings, slug).await?;
    let input = NewIntegrationInput {
        kind: body.kind,
        name: body.name,
        description: body.description,
        enabled: body.enabled,
        config: body.config,
        secrets: body.secrets.unwrap_or_default(),
    };
    let created = match l.service.create(l.institution_id, input.clone()).await {
        Err(e @ ServiceError::Invalid { .. }) => {
            let all = l
                .service
                .create_problems(l.institution_id, &input)
                .await
                .unwrap_or_default();
            Err(refused_all(e, all))
        }
        other => other.map_err(refused),
    };
    l.close().await;
    let i = created?;
    eprintln!(
        "created integration id={} type={} name={:?} enabled={}",
        i.id, i.kind, i.name, i.enabled
    );
    println!("{}", i.id);
    Ok(())
}

/// `ferry integration update ID --file PATCH`.
pub async fn update(settings: &Settings, slug: &str, id: i64, file: &Path) -> Result<()> {
    let body: PatchBody = read_json(file)?;
    let l = Lifecycle::open(settings, slug).await?;
    let change = IntegrationChange {
        name: body.name,
        description: body.description,
        enabled: body.enabled,
        config: body.config,
        secrets: body.secrets,
    };
    let updated = match l.service.update(l.institution_id, id, change.clone()).await {
        Err(e @ ServiceError::Invalid { .. }) => {
            let all = l
                .service
                .update_problems(l.institution_id, id, &change)
                .await
                .unwrap_or_default();
            Err(refused_all(e, all))
        }
        other => other.map_err(refused),
    };
    l.close().await;
    let i = updated?;
    println!("updated integration id={} name={:?}", i.id, i.name);
    Ok(())
}

/// `ferry integration enable ID` / `disable ID`.
pub async fn set_enabled(settings: &Settings, slug: &str, id: i64, enabled: bool) -> Result<()> {
    let l = Lifecycle::open(settings, slug).await?;
    let done = l.service.set_enabled(l.institution_id, id, enabled).await;
    l.close().await;
    let i = done.map_err(refused)?;
    println!(
        "integration id={} {:?} is {}",
        i.id,
        i.name,
        if i.enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

/// `ferry integration delete ID --yes`.
pub async fn delete(settings: &Settings, slug: &str, id: i64, yes: bool) -> Result<()> {
    if !yes {
        bail!(
            "deleting integration {id} also deletes its runs (its Sync Log rows stay); add --yes to confirm"
        );
    }
    let l = Lifecycle::open(settings, slug).await?;
    let done = l.service.delete(l.institution_id, id).await;
    l.close().await;
    done.map_err(refused)?;
    println!("deleted integration id={id}");
    Ok(())
}

/// `ferry integration test ID`: Test Connection with the saved settings.
pub async fn test(settings: &Settings, slug: &str, id: i64) -> Result<()> {
    let l = Lifecycle::open(settings, slug).await?;
    let outcome = async {
        let test = l
            .service
            .saved_test(l.institution_id, id, None, None)
            .await?;
        l.service.test_connection(l.institution_id, test).await
    }
    .await;
    l.close().await;
    let outcome = outcome.map_err(refused)?;
    if outcome.ok {
        println!("connection works: {}", outcome.message);
        Ok(())
    } else {
        bail!("connection failed: {}", outcome.message)
    }
}

/// `ferry integration run ID`: queues a manual run, as Run now does.
pub async fn run_now(settings: &Settings, slug: &str, id: i64) -> Result<()> {
    let l = Lifecycle::open(settings, slug).await?;
    let queued = l.service.run_now(l.institution_id, id).await;
    l.close().await;
    let run_id = queued.map_err(refused)?;
    eprintln!(
        "queued run {run_id}; a running `ferry serve` or `ferry worker` picks it up (or run `ferry worker --once`)"
    );
    println!("{run_id}");
    Ok(())
}
