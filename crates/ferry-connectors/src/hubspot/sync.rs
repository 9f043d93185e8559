//! The two syncs. Outgoing: contacts changed since the watermark (the change sequence), matched
//! by seed 002's outgoing logic, written in batches of 100, CRM IDs written back. Incoming:
//! contacts modified since the watermark (`lastmodifieddate`, with an overlap), applied with the
//! shared incoming matching. Each failed contact gets a Sync Log row and is retried on the next
//! runs, up to [`MAX_ATTEMPTS`] times.

use std::collections::{BTreeMap, HashMap};

use ferry_core::contact::{Contact, ContactWrite, FieldRef, FieldSchema, Raw, value_text};
use ferry_core::mapping::{self, ResolvedMapping};
use ferry_core::outgoing::{self, Lookup, Lookups, NameResult, OutgoingDecision, OutgoingKeys};
use ferry_core::run::SyncDirection;
use ferry_store::WriteKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{BATCH, Client, HubSpotError, Record, SEARCH_CAP};
use super::config::{HubSpotConfig, ID_PROPERTY};
use crate::connector::{RunError, RunReport};
use crate::context::RunContext;

/// Tries per failed contact before it is given up (and logged as such).
pub const MAX_ATTEMPTS: u32 = 5;
/// The incoming pull starts this far before its watermark, for writes HubSpot made searchable late.
pub const OVERLAP_MS: i64 = 5 * 60 * 1000;

/// The state a HubSpot instance keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SyncState {
    /// Outgoing: the change sequence sent; incoming: the `lastmodifieddate` (ms) pulled.
    #[serde(default)]
    watermark: i64,
    /// Failed contacts (Ferry IDs outgoing, HubSpot IDs incoming) and their attempts so far.
    #[serde(default)]
    retry: BTreeMap<String, u32>,
}

fn hub_error(e: HubSpotError) -> RunError {
    let reason = format!("{e}");
    if e.is_transient() {
        RunError::retryable(reason)
    } else if e.status() == Some(401) || e.status() == Some(403) {
        RunError::fatal(format!("{reason}; reconnect the HubSpot account or enter a valid access token"))
    } else {
        RunError::fatal(reason)
    }
}

/// The mapping, checked against the institution's fields and HubSpot's properties.
async fn resolve(ctx: &RunContext, client: &Client, cfg: &HubSpotConfig, dir: SyncDirection) -> Result<(FieldSchema, Vec<ResolvedMapping>), RunError> {
    let schema = ctx.store().field_schema(ctx.institution_id()).await?;
    let props = client.properties().await.map_err(hub_error)?;
    let resolved = mapping::resolve(&cfg.mappings, &schema, &props, ID_PROPERTY, dir)
        .map_err(|e| RunError::fatal(format!("the data mapping is invalid: {e}; edit the instance's Data Mapping")))?;
    Ok((schema, resolved))
}

/// Whether a contact's values pass every filter.
fn passes(filters: &[(FieldRef, Vec<String>)], value: impl Fn(&FieldRef) -> String) -> bool {
    filters.iter().all(|(f, values)| {
        let v = value(f);
        values.iter().any(|want| want.trim().eq_ignore_ascii_case(v.trim()))
    })
}

fn filters(cfg: &HubSpotConfig, schema: &FieldSchema) -> Result<Vec<(FieldRef, Vec<String>)>, RunError> {
    cfg.filters
        .iter()
        .map(|f| {
            schema
                .resolve(f.field.trim())
                .map(|r| (r, f.values.clone()))
                .ok_or_else(|| RunError::fatal(format!("the filter field \"{}\" no longer exists", f.field)))
        })
        .collect()
}

struct Tally {
    created: i64,
    updated: i64,
    filtered: i64,
    failed: i64,
}

async fn log(ctx: &RunContext, dir: SyncDirection, contact: Option<i64>, code: &str, message: impl Into<String>) -> Result<(), RunError> {
    ctx.log(contact, dir, code, message).await.map_err(RunError::from)
}

// ---- Outgoing ----------------------------------------------------------------------------

/// One contact on its way out.
struct Out {
    contact: Contact,
    properties: BTreeMap<String, String>,
    known: Lookups,
    decision: Option<Result<OutgoingDecision, outgoing::OutgoingError>>,
}

impl Out {
    fn keys(&self) -> OutgoingKeys<'_> {
        let d = &self.contact.data;
        OutgoingKeys {
            crm_id: d.crm_id.as_deref(),
            email: self.properties.get("email").map(String::as_str),
            first_name: d.first_name.as_deref(),
            last_name: d.last_name.as_deref(),
            phone: d.phone.as_ref(),
        }
    }
}

pub(super) async fn run_outgoing(ctx: &RunContext, client: &Client, cfg: &HubSpotConfig) -> Result<RunReport, RunError> {
    let store = ctx.store();
    let inst = ctx.institution_id();
    let (schema, resolved) = resolve(ctx, client, cfg, SyncDirection::Outgoing).await?;
    let filters = filters(cfg, &schema)?;
    let mut state: SyncState = serde_json::from_value(ctx.integration().state.clone()).unwrap_or_default();
    let top = store.current_change_seq(inst).await?;
    let mut tally = Tally { created: 0, updated: 0, filtered: 0, failed: 0 };

    // Contacts that failed before go first, then everything changed since the watermark.
    let retry_ids: Vec<i64> = state.retry.keys().filter_map(|k| k.parse().ok()).collect();
    let mut retrying: Vec<Contact> = store.contacts_by_ids(inst, &retry_ids).await?.into_values().filter(|c| !c.data.test_user).collect();
    retrying.sort_by_key(|c| c.id);
    let mut retry_next: BTreeMap<String, u32> = BTreeMap::new();
    for chunk in retrying.chunks(BATCH) {
        push_batch(ctx, client, &resolved, &filters, chunk, &mut tally, &state.retry, &mut retry_next).await?;
    }
    let mut after = state.watermark;
    while after < top {
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        let page = store.contacts_for_sync(inst, after, BATCH as u32).await?;
        let page: Vec<Contact> = page.into_iter().filter(|c| c.change_seq <= top).collect();
        let Some(last) = page.last() else { break };
        let last_seq = last.change_seq;
        let fresh: Vec<Contact> = page.into_iter().filter(|c| !state.retry.contains_key(&c.id.to_string())).collect();
        push_batch(ctx, client, &resolved, &filters, &fresh, &mut tally, &state.retry, &mut retry_next).await?;
        after = last_seq;
        // HubSpot confirmed this batch: the watermark moves past it (failures are in `retry`).
        state.watermark = after;
        state.retry = retry_next.clone();
        save(ctx, &state).await?;
    }
    state.watermark = state.watermark.max(after).max(if after >= top { top } else { 0 });
    state.retry = retry_next;
    save(ctx, &state).await?;
    report(client, tally)
}

fn report(client: &Client, t: Tally) -> Result<RunReport, RunError> {
    let calls = client.calls();
    let rows = t.created + t.updated;
    let detail = json!({
        "created": t.created, "updated": t.updated, "filtered": t.filtered, "failed": t.failed,
        "api_calls": calls.requests, "retries": calls.retries, "rate_limited": calls.rate_limited,
    });
    Ok(if rows == 0 && t.failed == 0 {
        RunReport::skipped().with_detail(detail)
    } else {
        RunReport::success(rows).with_detail(detail)
    })
}

async fn save(ctx: &RunContext, state: &SyncState) -> Result<(), RunError> {
    ctx.store()
        .set_integration_state(ctx.institution_id(), ctx.integration().id, &serde_json::to_value(state).expect("state serialises"))
        .await?;
    Ok(())
}

/// Records a failed contact: a Sync Log row, and a retry unless it has had its tries.
async fn failed(ctx: &RunContext, dir: SyncDirection, key: String, contact: Option<i64>, code: &str, message: String, before: &BTreeMap<String, u32>, next: &mut BTreeMap<String, u32>, tally: &mut Tally) -> Result<(), RunError> {
    tally.failed += 1;
    let attempts = before.get(&key).copied().unwrap_or(0) + 1;
    if attempts >= MAX_ATTEMPTS {
        log(ctx, dir, contact, code, format!("{message} (tried {attempts} times; not retried again until the contact changes)")).await
    } else {
        next.insert(key, attempts);
        log(ctx, dir, contact, code, message).await
    }
}

#[allow(clippy::too_many_arguments)]
async fn push_batch(
    ctx: &RunContext,
    client: &Client,
    resolved: &[ResolvedMapping],
    filters: &[(FieldRef, Vec<String>)],
    contacts: &[Contact],
    tally: &mut Tally,
    before: &BTreeMap<String, u32>,
    next: &mut BTreeMap<String, u32>,
) -> Result<(), RunError> {
    let mut outs: Vec<Out> = Vec::new();
    for c in contacts {
        if !passes(filters, |f| value_text(&c.value_of(f))) {
            tally.filtered += 1;
            continue;
        }
        let properties = resolved
            .iter()
            .filter(|m| m.remote.name != ID_PROPERTY)
            .filter_map(|m| mapping::to_remote(m.local_kind, m.remote.kind, &c.value_of(&m.local)).map(|v| (m.remote.name.clone(), v)))
            .collect();
        outs.push(Out { contact: c.clone(), properties, known: Lookups::default(), decision: None });
    }
    // Ask HubSpot what seed 002's logic needs, a kind of lookup at a time, in batches.
    loop {
        let mut by_id: Vec<usize> = Vec::new();
        let mut by_email: Vec<usize> = Vec::new();
        let mut by_name: Vec<usize> = Vec::new();
        for (i, o) in outs.iter_mut().enumerate() {
            if o.decision.is_some() {
                continue;
            }
            match outgoing::next_lookup(&o.keys(), &o.known) {
                Some(Lookup::ById) => by_id.push(i),
                Some(Lookup::ByEmail) => by_email.push(i),
                Some(Lookup::ByName) => by_name.push(i),
                None => o.decision = Some(outgoing::decide(&o.keys(), &o.known)),
            }
        }
        if by_id.is_empty() && by_email.is_empty() && by_name.is_empty() {
            break;
        }
        if !by_id.is_empty() {
            let ids: Vec<String> = by_id.iter().map(|&i| outs[i].contact.data.crm_id.clone().unwrap_or_default().trim().to_string()).collect();
            let found = client.batch_read(&ids, None, &[ID_PROPERTY.to_string()]).await.map_err(hub_error)?;
            for &i in &by_id {
                let id = outs[i].contact.data.crm_id.clone().unwrap_or_default();
                outs[i].known.by_id_exists = Some(found.iter().any(|r| r.id == id.trim()));
            }
        }
        if !by_email.is_empty() {
            let emails: Vec<String> = by_email.iter().map(|&i| outs[i].properties["email"].clone()).collect();
            let found = client.batch_read(&emails, Some("email"), &["email".to_string()]).await.map_err(hub_error)?;
            let index: HashMap<String, String> = found
                .iter()
                .filter_map(|r| Some((r.get("email")?.to_lowercase(), r.id.clone())))
                .collect();
            for &i in &by_email {
                let e = outs[i].properties["email"].to_lowercase();
                outs[i].known.by_email = Some(index.get(&e).cloned());
            }
        }
        for &i in &by_name {
            let d = &outs[i].contact.data;
            let (first, last) = (d.first_name.clone().unwrap_or_default(), d.last_name.clone().unwrap_or_default());
            let page = client
                .search(
                    &[("firstname", "EQ", first.trim().to_string()), ("lastname", "EQ", last.trim().to_string())],
                    None,
                    &["phone".to_string(), "mobilephone".to_string()],
                    None,
                )
                .await
                .map_err(hub_error)?;
            outs[i].known.by_name = Some(
                page.records
                    .iter()
                    .flat_map(|r| {
                        ["phone", "mobilephone"].into_iter().filter_map(|p| r.get(p)).map(|p| NameResult { id: r.id.clone(), phone: Some(p.to_string()) })
                    })
                    .collect(),
            );
        }
    }

    let mut updates: Vec<(usize, String, bool)> = Vec::new();
    let mut creates: Vec<usize> = Vec::new();
    for (i, o) in outs.iter().enumerate() {
        match o.decision.clone().expect("every contact is decided") {
            Ok(OutgoingDecision::Update { id, write_back, .. }) => updates.push((i, id, write_back)),
            Ok(OutgoingDecision::Create) => creates.push(i),
            Err(e) => {
                failed(ctx, SyncDirection::Outgoing, o.contact.id.to_string(), Some(o.contact.id), e.code(), e.to_string(), before, next, tally).await?;
            }
        }
    }

    // Creates; a conflict (the email exists after all: a concurrent writer) becomes an update.
    let mut write_back: Vec<(i64, String)> = Vec::new();
    let inputs: Vec<(usize, BTreeMap<String, String>)> = creates.iter().map(|&i| (i, outs[i].properties.clone())).collect();
    let mut pending = vec![inputs];
    while let Some(group) = pending.pop() {
        if group.is_empty() {
            continue;
        }
        let props: Vec<BTreeMap<String, String>> = group.iter().map(|(_, p)| p.clone()).collect();
        match client.batch_create(&props).await {
            Ok(records) => {
                // HubSpot does not promise the input order: pair records with inputs by value.
                let mut unclaimed: Vec<&(usize, BTreeMap<String, String>)> = group.iter().collect();
                let mut created: Vec<(i64, String)> = Vec::new();
                for r in &records {
                    let same = |p: &BTreeMap<String, String>| p.iter().all(|(k, v)| r.get(k).is_none_or(|got| got.eq_ignore_ascii_case(v)));
                    if let Some(pos) = unclaimed.iter().position(|(_, p)| same(p)) {
                        let (i, _) = unclaimed.remove(pos);
                        created.push((outs[*i].contact.id, r.id.clone()));
                    }
                }
                tally.created += created.len() as i64;
                // At once, so that a failure further on cannot lose the new IDs.
                write_back_ids(ctx, &created).await?;
            }
            // The create may have happened: the run is retried, and the retry finds the new
            // contacts by email or by name and phone instead of creating them twice.
            Err(e) if e.is_transient() => return Err(hub_error(e)),
            Err(e) if group.len() > 1 => {
                // One bad record fails its whole batch: halve until it stands alone.
                tracing::debug!(error = %e, size = group.len(), "splitting a failed HubSpot batch create");
                let mut group = group;
                let second = group.split_off(group.len() / 2);
                pending.push(group);
                pending.push(second);
            }
            Err(e) => {
                let (i, _) = &group[0];
                if let Some(existing) = e.existing_id() {
                    updates.push((*i, existing, true));
                } else {
                    let c = &outs[*i].contact;
                    failed(ctx, SyncDirection::Outgoing, c.id.to_string(), Some(c.id), "crm_rejected", format!("HubSpot refused to create the contact: {e}"), before, next, tally).await?;
                }
            }
        }
    }

    let mut pending: Vec<Vec<(usize, String, bool)>> = vec![updates];
    while let Some(group) = pending.pop() {
        if group.is_empty() {
            continue;
        }
        let inputs: Vec<(String, BTreeMap<String, String>)> = group.iter().map(|(i, id, _)| (id.clone(), outs[*i].properties.clone())).collect();
        match client.batch_update(&inputs).await {
            Ok(records) => {
                // A 207 leaves out the IDs HubSpot did not find (merged or deleted meanwhile).
                let done: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
                for (i, id, wb) in &group {
                    if !done.contains(id.as_str()) {
                        let c = &outs[*i].contact;
                        failed(ctx, SyncDirection::Outgoing, c.id.to_string(), Some(c.id), "crm_id_not_found", format!("HubSpot contact {id} was not found when it was updated"), before, next, tally).await?;
                        continue;
                    }
                    tally.updated += 1;
                    if *wb {
                        write_back.push((outs[*i].contact.id, id.clone()));
                    }
                }
            }
            Err(e) if e.is_transient() => return Err(hub_error(e)),
            Err(_) if group.len() > 1 => {
                let mut group = group;
                let second = group.split_off(group.len() / 2);
                pending.push(group);
                pending.push(second);
            }
            Err(e) => {
                let c = &outs[group[0].0].contact;
                failed(ctx, SyncDirection::Outgoing, c.id.to_string(), Some(c.id), "crm_rejected", format!("HubSpot refused the update: {e}"), before, next, tally).await?;
            }
        }
    }

    write_back_ids(ctx, &write_back).await
}

/// "Set the CRM ID on Mainstay for next time."
async fn write_back_ids(ctx: &RunContext, pairs: &[(i64, String)]) -> Result<(), RunError> {
    let written = ctx.store().set_crm_ids(ctx.institution_id(), pairs).await?;
    for ((contact, id), ok) in pairs.iter().zip(written) {
        if !ok {
            log(ctx, SyncDirection::Outgoing, Some(*contact), "crm_id_in_use", format!("HubSpot contact {id} is this contact, but another Ferry contact already has that CRM ID")).await?;
        }
    }
    Ok(())
}

// ---- Incoming ----------------------------------------------------------------------------

fn modified_ms(r: &Record) -> Option<i64> {
    let v = r.get("lastmodifieddate").or(r.updated_at.as_deref())?;
    v.parse::<i64>().ok().or_else(|| v.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond()))
}

pub(super) async fn run_incoming(ctx: &RunContext, client: &Client, cfg: &HubSpotConfig) -> Result<RunReport, RunError> {
    let (schema, resolved) = resolve(ctx, client, cfg, SyncDirection::Incoming).await?;
    let filters = filters(cfg, &schema)?;
    let mut state: SyncState = serde_json::from_value(ctx.integration().state.clone()).unwrap_or_default();
    let mut tally = Tally { created: 0, updated: 0, filtered: 0, failed: 0 };
    let properties = cfg.remote_names();
    let mut retry_next = BTreeMap::new();

    let retry_ids: Vec<String> = state.retry.keys().cloned().collect();
    for chunk in retry_ids.chunks(BATCH) {
        let records = client.batch_read(chunk, None, &properties).await.map_err(hub_error)?;
        apply(ctx, &schema, &resolved, &filters, &records, &mut tally, &state.retry, &mut retry_next).await?;
    }

    let mut since = (state.watermark - OVERLAP_MS).max(0);
    let mut newest = state.watermark;
    'windows: loop {
        let mut after: Option<String> = None;
        let mut seen: u64 = 0;
        loop {
            if ctx.is_cancelled() {
                return Err(RunError::cancelled());
            }
            let page = client
                .search(&[("lastmodifieddate", "GTE", since.to_string())], Some(("lastmodifieddate", "ASCENDING")), &properties, after.as_deref())
                .await
                .map_err(hub_error)?;
            seen += page.records.len() as u64;
            let records: Vec<Record> = page.records.into_iter().filter(|r| !state.retry.contains_key(&r.id)).collect();
            apply(ctx, &schema, &resolved, &filters, &records, &mut tally, &state.retry, &mut retry_next).await?;
            if let Some(m) = records.iter().filter_map(modified_ms).max() {
                newest = newest.max(m);
            }
            state.watermark = newest;
            save(ctx, &SyncState { watermark: newest, retry: retry_next.clone() }).await?;
            match page.after {
                // Past HubSpot's 10,000-result cap, start a new query from the newest time seen.
                Some(_) if seen + super::client::SEARCH_PAGE as u64 > SEARCH_CAP => {
                    if newest <= since {
                        break 'windows; // more than 10,000 contacts share one millisecond
                    }
                    since = newest;
                    continue 'windows;
                }
                Some(a) => after = Some(a),
                None => break 'windows,
            }
        }
    }
    state.watermark = newest;
    state.retry = retry_next;
    save(ctx, &state).await?;
    report(client, tally)
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    ctx: &RunContext,
    schema: &FieldSchema,
    resolved: &[ResolvedMapping],
    filters: &[(FieldRef, Vec<String>)],
    records: &[Record],
    tally: &mut Tally,
    before: &BTreeMap<String, u32>,
    next: &mut BTreeMap<String, u32>,
) -> Result<(), RunError> {
    let dir = SyncDirection::Incoming;
    let mut writes = Vec::new();
    let mut ids = Vec::new();
    for r in records {
        let values: Vec<(String, String)> = resolved
            .iter()
            .filter_map(|m| {
                let raw = if m.remote.name == ID_PROPERTY { Some(r.id.clone()) } else { mapping::from_remote(m.local_kind, m.remote.kind, r.get(&m.remote.name)) };
                raw.map(|v| (m.local_name.clone(), v))
            })
            .collect();
        let by_name: HashMap<&str, &str> = values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let pass = passes(filters, |f| {
            let name = match f {
                FieldRef::PlatformId => "id".to_string(),
                FieldRef::Default(d) => d.as_str().to_string(),
                FieldRef::Custom(n, _) => n.clone(),
            };
            by_name.get(name.as_str()).map(|v| v.to_string()).unwrap_or_default()
        });
        if !pass {
            tally.filtered += 1;
            continue;
        }
        match ContactWrite::parse(schema, values.iter().map(|(k, v)| (k.as_str(), Raw::Str(v)))) {
            Ok(w) => {
                writes.push(w);
                ids.push(r.id.clone());
            }
            Err(errors) => {
                let e = &errors[0];
                let message = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                failed(ctx, dir, r.id.clone(), None, e.code, format!("HubSpot contact {}: {message}", r.id), before, next, tally).await?;
            }
        }
    }
    if writes.is_empty() {
        return Ok(());
    }
    let outcomes = ctx.store().apply_contact_writes(ctx.institution_id(), &writes, WriteKind::Import).await?;
    for (outcome, id) in outcomes.into_iter().zip(ids) {
        match outcome {
            Ok(a) => match a.action {
                ferry_store::AppliedAction::Created => tally.created += 1,
                ferry_store::AppliedAction::Updated => tally.updated += 1,
                ferry_store::AppliedAction::Unchanged => {}
            },
            Err(e) => {
                failed(ctx, dir, id.clone(), e.contact_id, e.code, format!("HubSpot contact {id}: {}", e.message), before, next, tally).await?;
            }
        }
    }
    Ok(())
}
