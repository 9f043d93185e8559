//! The two syncs. Outgoing: contacts changed since the watermark (the change sequence), matched
//! by seed 002's outgoing logic, looked up and written in windows of up to 10,000 (reads and
//! writes in full batches of 100, the name searches of a window in few requests), CRM IDs
//! written back. Incoming:
//! contacts modified since the watermark (`lastmodifieddate`, with an overlap), applied with the
//! shared incoming matching. Each failed contact gets a Sync Log row and is retried on the next
//! runs, up to [`MAX_ATTEMPTS`] times.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use ferry_core::contact::{Contact, ContactWrite, FieldRef, FieldSchema, Raw, value_text};
use ferry_core::mapping::{self, ResolvedMapping};
use ferry_core::outgoing::{self, Lookup, Lookups, NameResult, OutgoingDecision, OutgoingKeys};
use ferry_core::run::SyncDirection;
use ferry_store::WriteKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{
    BATCH, Client, Filter, HubSpotError, MAX_FILTER_GROUPS, MAX_FILTERS, MAX_IN_VALUES, Record,
    SEARCH_CAP, SEARCH_PAGE,
};
use super::config::{HubSpotConfig, ID_PROPERTY};
use crate::connector::{RunError, RunReport};
use crate::context::RunContext;

/// Tries per failed contact before it is given up (and logged as such).
pub const MAX_ATTEMPTS: u32 = 5;
/// The incoming pull starts this far before its watermark, for writes HubSpot made searchable late.
pub const OVERLAP_MS: i64 = 5 * 60 * 1000;
/// Outgoing contacts looked up together: a window's lookups are batched (IDs and emails 100 a
/// read, the names of the whole window in few searches), and the contacts decided so far are
/// written at the same time, in full batches of 100, so that the writes, which draw on the
/// 10-second limit, go on while the name searches, which HubSpot limits separately, still run;
/// the next window's lookups start while the last writes of a window go out. The watermark
/// moves once a window is written. (The default of [`super::HubSpotSettings::outgoing_window`].)
pub const WINDOW: usize = 10_000;

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
        RunError::fatal(format!(
            "{reason}; reconnect the HubSpot account or enter a valid access token"
        ))
    } else {
        RunError::fatal(reason)
    }
}

/// The mapping, checked against the institution's fields and HubSpot's properties.
async fn resolve(
    ctx: &RunContext,
    client: &Client,
    cfg: &HubSpotConfig,
    dir: SyncDirection,
) -> Result<(FieldSchema, Vec<ResolvedMapping>), RunError> {
    let schema = ctx.store().field_schema(ctx.institution_id()).await?;
    let props = client.properties().await.map_err(hub_error)?;
    let resolved =
        mapping::resolve(&cfg.mappings, &schema, &props, ID_PROPERTY, dir).map_err(|e| {
            RunError::fatal(format!(
                "the data mapping is invalid: {e}; edit the instance's Data Mapping"
            ))
        })?;
    Ok((schema, resolved))
}

/// Whether a contact's values pass every filter.
fn passes(filters: &[(FieldRef, Vec<String>)], value: impl Fn(&FieldRef) -> String) -> bool {
    filters.iter().all(|(f, values)| {
        let v = value(f);
        values
            .iter()
            .any(|want| want.trim().eq_ignore_ascii_case(v.trim()))
    })
}

fn filters(
    cfg: &HubSpotConfig,
    schema: &FieldSchema,
) -> Result<Vec<(FieldRef, Vec<String>)>, RunError> {
    cfg.filters
        .iter()
        .map(|f| {
            schema
                .resolve(f.field.trim())
                .map(|r| (r, f.values.clone()))
                .ok_or_else(|| {
                    RunError::fatal(format!("the filter field \"{}\" no longer exists", f.field))
                })
        })
        .collect()
}

struct Tally {
    created: i64,
    updated: i64,
    filtered: i64,
    failed: i64,
}

async fn log(
    ctx: &RunContext,
    dir: SyncDirection,
    contact: Option<i64>,
    code: &str,
    message: impl Into<String>,
) -> Result<(), RunError> {
    ctx.log(contact, dir, code, message)
        .await
        .map_err(RunError::from)
}

// ---- Outgoing ----------------------------------------------------------------------------

/// One contact on its way out.
struct Out {
    contact: Contact,
    properties: BTreeMap<String, String>,
    known: Lookups,
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

pub(super) async fn run_outgoing(
    ctx: &RunContext,
    client: &Client,
    cfg: &HubSpotConfig,
    window: usize,
) -> Result<RunReport, RunError> {
    let window = window.max(1);
    let (schema, resolved) = resolve(ctx, client, cfg, SyncDirection::Outgoing).await?;
    let filters = filters(cfg, &schema)?;
    let state: SyncState =
        serde_json::from_value(ctx.integration().state.clone()).unwrap_or_default();
    let top = ctx.store().current_change_seq(ctx.institution_id()).await?;

    // The lookups of the next window start while the writes of the last are still going out.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut writer = Writer {
        ctx,
        client,
        tally: Tally {
            created: 0,
            updated: 0,
            filtered: 0,
            failed: 0,
        },
        before: &state.retry,
        next: BTreeMap::new(),
        watermark: state.watermark,
        creates: Vec::new(),
        updates: Vec::new(),
    };
    let (fed, written) = tokio::join!(
        feed(ctx, client, &resolved, &filters, &state, top, window, tx),
        writer.run(rx)
    );
    // A failed write stops the lookups (they find nobody listening): its error is the cause.
    written?;
    let fed = fed?;
    let mut tally = writer.tally;
    tally.filtered += fed.filtered;
    let watermark = writer
        .watermark
        .max(fed.after)
        .max(if fed.after >= top { top } else { 0 });
    save(
        ctx,
        &SyncState {
            watermark,
            retry: writer.next,
        },
    )
    .await?;
    report(client, tally)
}

/// What [`feed`] did.
struct Fed {
    /// Contacts held back by the filters.
    filtered: i64,
    /// The change sequence it read up to.
    after: i64,
}

/// What the lookups send the writer: decided contacts, and the end of each window.
enum ToWriter {
    Contact(Box<Decided>),
    /// Every contact of a window was sent; for a window of changes, the change sequence its last
    /// contact had (the watermark once its writes are through).
    WindowEnd(Option<i64>),
}

type ToWriterTx = tokio::sync::mpsc::UnboundedSender<ToWriter>;

/// Reads the contacts to push a window at a time — contacts that failed before first, then
/// every contact changed since the watermark — looks each window up and hands it to the writer.
/// A window's lookups by ID and email run while the previous window's name searches do (they
/// draw on different HubSpot limits), so that the searches need not wait for them.
#[allow(clippy::too_many_arguments)]
async fn feed(
    ctx: &RunContext,
    client: &Client,
    resolved: &[ResolvedMapping],
    filters: &[(FieldRef, Vec<String>)],
    state: &SyncState,
    top: i64,
    window: usize,
    tx: ToWriterTx,
) -> Result<Fed, RunError> {
    let store = ctx.store();
    let inst = ctx.institution_id();
    let mut fed = Fed {
        filtered: 0,
        after: state.watermark,
    };
    let retry_ids: Vec<i64> = state.retry.keys().filter_map(|k| k.parse().ok()).collect();
    let mut retrying: Vec<Contact> = store
        .contacts_by_ids(inst, &retry_ids)
        .await?
        .into_values()
        .filter(|c| !c.data.test_user)
        .collect();
    retrying.sort_by_key(|c| c.id);
    let mut retry_windows: VecDeque<Vec<Contact>> =
        retrying.chunks(window).map(<[Contact]>::to_vec).collect();
    // The window whose names are still to be searched, and the mark that ends it.
    let mut pending: Option<(Vec<Option<Out>>, Option<i64>)> = None;
    loop {
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        let next = if let Some(w) = retry_windows.pop_front() {
            Some((w, None))
        } else if fed.after < top {
            let page = store
                .contacts_for_sync(inst, fed.after, window as u32)
                .await?;
            let page: Vec<Contact> = page.into_iter().filter(|c| c.change_seq <= top).collect();
            match page.last().map(|c| c.change_seq) {
                Some(last_seq) => {
                    fed.after = last_seq;
                    Some((
                        page.into_iter()
                            .filter(|c| !state.retry.contains_key(&c.id.to_string()))
                            .collect(),
                        Some(last_seq),
                    ))
                }
                None => None,
            }
        } else {
            None
        };
        let Some((contacts, mark)) = next else { break };
        let outs = prepare(resolved, filters, &contacts, &mut fed.filtered);
        let searching = async {
            let Some((outs, mark)) = pending.take() else {
                return Ok::<_, RunError>(None);
            };
            look_up(ctx, client, outs, &tx, true).await?;
            Ok(Some(mark))
        };
        let (keys, names) = tokio::join!(look_up(ctx, client, outs, &tx, false), searching);
        if let Some(mark) = names?
            && tx.send(ToWriter::WindowEnd(mark)).is_err()
        {
            return Ok(fed); // the writer failed; it reports why
        }
        pending = Some((keys?, mark));
    }
    if let Some((outs, mark)) = pending {
        look_up(ctx, client, outs, &tx, true).await?;
        // A failed send: the writer failed, and reports why.
        let _ = tx.send(ToWriter::WindowEnd(mark));
    }
    Ok(fed)
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
        .set_integration_state(
            ctx.institution_id(),
            ctx.integration().id,
            &serde_json::to_value(state).expect("state serialises"),
        )
        .await?;
    Ok(())
}

/// Records a failed contact: a Sync Log row, and a retry unless it has had its tries.
#[allow(clippy::too_many_arguments)]
async fn failed(
    ctx: &RunContext,
    dir: SyncDirection,
    key: String,
    contact: Option<i64>,
    code: &str,
    message: String,
    before: &BTreeMap<String, u32>,
    next: &mut BTreeMap<String, u32>,
    tally: &mut Tally,
) -> Result<(), RunError> {
    tally.failed += 1;
    let attempts = before.get(&key).copied().unwrap_or(0) + 1;
    if attempts >= MAX_ATTEMPTS {
        log(
            ctx,
            dir,
            contact,
            code,
            format!(
                "{message} (tried {attempts} times; not retried again until the contact changes)"
            ),
        )
        .await
    } else {
        next.insert(key, attempts);
        log(ctx, dir, contact, code, message).await
    }
}

/// The contacts of a window that pass the filters, with the properties they send.
fn prepare(
    resolved: &[ResolvedMapping],
    filters: &[(FieldRef, Vec<String>)],
    contacts: &[Contact],
    filtered: &mut i64,
) -> Vec<Option<Out>> {
    let mut outs: Vec<Option<Out>> = Vec::new();
    for c in contacts {
        if !passes(filters, |f| value_text(&c.value_of(f))) {
            *filtered += 1;
            continue;
        }
        let properties = resolved
            .iter()
            .filter(|m| m.remote.name != ID_PROPERTY)
            .filter_map(|m| {
                // A blank is not sent; a field that an UNSET cleared is cleared in HubSpot
                // (HubSpot clears a property set to "").
                mapping::to_remote(m.local_kind, m.remote.kind, &c.value_of(&m.local))
                    .or_else(|| c.was_cleared(&m.local).then(String::new))
                    .map(|v| (m.remote.name.clone(), v))
            })
            .collect();
        outs.push(Some(Out {
            contact: c.clone(),
            properties,
            known: Lookups::default(),
        }));
    }
    outs
}

/// A contact decided by [`outgoing::decide`], on its way to HubSpot.
struct Decided {
    push: Push,
    decision: Result<OutgoingDecision, outgoing::OutgoingError>,
}

/// What is sent for a contact.
struct Push {
    contact: Contact,
    properties: BTreeMap<String, String>,
}

fn out(outs: &[Option<Out>], i: usize) -> &Out {
    outs[i].as_ref().expect("undecided")
}

/// Decides `o` and hands it to the writer; `false` when the writer has stopped.
fn hand_over(tx: &ToWriterTx, o: Out) -> bool {
    let decision = outgoing::decide(&o.keys(), &o.known);
    tx.send(ToWriter::Contact(Box::new(Decided {
        push: Push {
            contact: o.contact,
            properties: o.properties,
        },
        decision,
    })))
    .is_ok()
}

/// Asks HubSpot what seed 002's logic needs for every contact of a window — a kind of lookup
/// at a time, each in as few requests as it takes — and hands each contact to the writer as
/// soon as [`outgoing::next_lookup`] has nothing more to ask about it. Without `names`, stops
/// when only name searches are left and returns the contacts waiting for them. When the run is
/// cancelled, stops with [`RunError::cancelled`] (the writer finishes what it was handed).
async fn look_up(
    ctx: &RunContext,
    client: &Client,
    mut outs: Vec<Option<Out>>,
    tx: &ToWriterTx,
    names: bool,
) -> Result<Vec<Option<Out>>, RunError> {
    loop {
        if tx.is_closed() {
            return Ok(Vec::new()); // the writer failed; it reports why
        }
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        let mut by_id: Vec<usize> = Vec::new();
        let mut by_email: Vec<usize> = Vec::new();
        let mut by_name: Vec<usize> = Vec::new();
        for (i, slot) in outs.iter_mut().enumerate() {
            let Some(o) = slot else { continue };
            match outgoing::next_lookup(&o.keys(), &o.known) {
                Some(Lookup::ById) => by_id.push(i),
                Some(Lookup::ByEmail) => by_email.push(i),
                Some(Lookup::ByName) => by_name.push(i),
                None => {
                    if !hand_over(tx, slot.take().expect("present")) {
                        return Ok(Vec::new());
                    }
                }
            }
        }
        if !by_id.is_empty() {
            let ids: BTreeSet<String> = by_id
                .iter()
                .filter_map(|&i| out(&outs, i).contact.data.crm_id.as_deref())
                .map(|id| id.trim().to_string())
                .collect();
            let ids: Vec<String> = ids.into_iter().collect();
            let mut exists: HashSet<String> = HashSet::new();
            for chunk in ids.chunks(BATCH) {
                let found = client
                    .batch_read(chunk, None, &[ID_PROPERTY.to_string()])
                    .await
                    .map_err(hub_error)?;
                exists.extend(found.into_iter().map(|r| r.id));
            }
            for &i in &by_id {
                let o = outs[i].as_mut().expect("undecided");
                let id = o.contact.data.crm_id.as_deref().unwrap_or_default().trim();
                o.known.by_id_exists = Some(exists.contains(id));
            }
        } else if !by_email.is_empty() {
            let emails: BTreeSet<String> = by_email
                .iter()
                .map(|&i| out(&outs, i).properties["email"].to_lowercase())
                .collect();
            let emails: Vec<String> = emails.into_iter().collect();
            let mut index: HashMap<String, String> = HashMap::new();
            for chunk in emails.chunks(BATCH) {
                let found = client
                    .batch_read(chunk, Some("email"), &["email".to_string()])
                    .await
                    .map_err(hub_error)?;
                index.extend(
                    found
                        .iter()
                        .filter_map(|r| Some((r.get("email")?.to_lowercase(), r.id.clone()))),
                );
            }
            for &i in &by_email {
                let o = outs[i].as_mut().expect("undecided");
                o.known.by_email = Some(index.get(&o.properties["email"].to_lowercase()).cloned());
            }
        } else if names && !by_name.is_empty() {
            let key = |o: &Out| {
                let d = &o.contact.data;
                name_key(
                    d.first_name.as_deref().unwrap_or_default(),
                    d.last_name.as_deref().unwrap_or_default(),
                )
            };
            let mut waiting: HashMap<NameKey, Vec<usize>> = HashMap::new();
            for &i in &by_name {
                waiting.entry(key(out(&outs, i))).or_default().push(i);
            }
            let wanted: BTreeSet<NameKey> = waiting.keys().cloned().collect();
            // Each search's contacts go to the writer as soon as that search is through.
            let mut cancelled = false;
            search_names(client, &wanted, |k, results| {
                if ctx.is_cancelled() {
                    cancelled = true;
                    return false;
                }
                for i in waiting.remove(&k).unwrap_or_default() {
                    let Some(o) = outs[i].as_mut() else { continue };
                    o.known.by_name = Some(results.clone());
                    if outgoing::next_lookup(&o.keys(), &o.known).is_none()
                        && !hand_over(tx, outs[i].take().expect("present"))
                    {
                        return false;
                    }
                }
                true
            })
            .await
            .map_err(hub_error)?;
            if cancelled {
                return Err(RunError::cancelled());
            }
        } else {
            outs.retain(Option::is_some);
            return Ok(outs);
        }
    }
}

/// Writes decided contacts in full batches as they come, and what is left at the end of each
/// window; then moves the watermark past the window.
struct Writer<'a> {
    ctx: &'a RunContext,
    client: &'a Client,
    tally: Tally,
    /// Failed contacts and their tries before this run, and after it.
    before: &'a BTreeMap<String, u32>,
    next: BTreeMap<String, u32>,
    /// The change sequence every contact up to which is through.
    watermark: i64,
    creates: Vec<Push>,
    updates: Vec<Update<Push>>,
}

impl Writer<'_> {
    async fn run(
        &mut self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<ToWriter>,
    ) -> Result<(), RunError> {
        while let Some(message) = rx.recv().await {
            let d = match message {
                ToWriter::Contact(d) => *d,
                ToWriter::WindowEnd(seq) => {
                    self.flush_creates().await?;
                    self.flush_updates(true).await?;
                    if let Some(seq) = seq {
                        // HubSpot confirmed the window: the watermark moves past it (failures
                        // are in `retry`). Windows of retries move nothing: the retries are
                        // saved with the first window of changes, once all were tried.
                        self.watermark = seq;
                        save(
                            self.ctx,
                            &SyncState {
                                watermark: seq,
                                retry: self.next.clone(),
                            },
                        )
                        .await?;
                    }
                    continue;
                }
            };
            match d.decision {
                Ok(OutgoingDecision::Update { id, write_back, .. }) => {
                    self.updates.push((d.push, id, write_back));
                    if self.updates.len() >= BATCH {
                        self.flush_updates(false).await?;
                    }
                }
                Ok(OutgoingDecision::Create) => {
                    self.creates.push(d.push);
                    if self.creates.len() >= BATCH {
                        self.flush_creates().await?;
                    }
                }
                Err(e) => {
                    self.failed(&d.push.contact, e.code(), e.to_string())
                        .await?
                }
            }
        }
        self.flush_creates().await?;
        self.flush_updates(true).await
    }

    async fn failed(&mut self, c: &Contact, code: &str, message: String) -> Result<(), RunError> {
        failed(
            self.ctx,
            SyncDirection::Outgoing,
            c.id.to_string(),
            Some(c.id),
            code,
            message,
            self.before,
            &mut self.next,
            &mut self.tally,
        )
        .await
    }

    /// Creates the contacts waiting; a conflict (the email exists after all: a concurrent
    /// writer) becomes an update.
    async fn flush_creates(&mut self) -> Result<(), RunError> {
        let mut pending = vec![std::mem::take(&mut self.creates)];
        while let Some(group) = pending.pop() {
            if group.is_empty() {
                continue;
            }
            let props: Vec<BTreeMap<String, String>> =
                group.iter().map(|p| p.properties.clone()).collect();
            match self.client.batch_create(&props).await {
                Ok(records) => {
                    // HubSpot does not promise the input order: pair records with inputs by value.
                    let mut unclaimed: Vec<&Push> = group.iter().collect();
                    let mut created: Vec<(i64, String)> = Vec::new();
                    for r in &records {
                        let same = |p: &Push| {
                            p.properties.iter().all(|(k, v)| {
                                r.get(k).is_none_or(|got| got.eq_ignore_ascii_case(v))
                            })
                        };
                        if let Some(pos) = unclaimed.iter().position(|p| same(p)) {
                            created.push((unclaimed.remove(pos).contact.id, r.id.clone()));
                        }
                    }
                    self.tally.created += created.len() as i64;
                    // At once, so that a failure further on cannot lose the new IDs.
                    write_back_ids(self.ctx, &created).await?;
                }
                // The create may have happened: the run is retried, and the retry finds the new
                // contacts by email or by name and phone instead of creating them twice.
                Err(e) if e.is_transient() => return Err(hub_error(e)),
                Err(e) if group.len() > 1 => {
                    // One bad record fails its whole batch: halve until it stands alone.
                    tracing::debug!(error = %e, size = group.len(), "splitting a failed HubSpot batch create");
                    let mut group = group;
                    let second = group.split_off(group.len() / 2);
                    pending.push(second);
                    pending.push(group);
                }
                Err(e) => {
                    let push = group.into_iter().next().expect("one contact");
                    if let Some(existing) = e.existing_id() {
                        self.updates.push((push, existing, true));
                    } else {
                        self.failed(
                            &push.contact,
                            "crm_rejected",
                            format!("HubSpot refused to create the contact: {e}"),
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Updates the contacts waiting, in batches with no HubSpot ID twice (HubSpot refuses such
    /// a batch); unless `all`, a batch that is not full waits for more.
    async fn flush_updates(&mut self, all: bool) -> Result<(), RunError> {
        let mut pending = Vec::new();
        for batch in update_batches(std::mem::take(&mut self.updates)) {
            if all || batch.len() >= BATCH {
                pending.push(batch);
            } else {
                self.updates.extend(batch);
            }
        }
        pending.reverse();
        while let Some(group) = pending.pop() {
            if group.is_empty() {
                continue;
            }
            let inputs: Vec<(String, BTreeMap<String, String>)> = group
                .iter()
                .map(|(p, id, _)| (id.clone(), p.properties.clone()))
                .collect();
            match self.client.batch_update(&inputs).await {
                Ok(records) => {
                    // A 207 leaves out the IDs HubSpot did not find (merged or deleted meanwhile).
                    let done: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
                    let mut write_back: Vec<(i64, String)> = Vec::new();
                    for (p, id, wb) in &group {
                        if !done.contains(id.as_str()) {
                            self.failed(
                                &p.contact,
                                "crm_id_not_found",
                                format!("HubSpot contact {id} was not found when it was updated"),
                            )
                            .await?;
                            continue;
                        }
                        self.tally.updated += 1;
                        if *wb {
                            write_back.push((p.contact.id, id.clone()));
                        }
                    }
                    write_back_ids(self.ctx, &write_back).await?;
                }
                Err(e) if e.is_transient() => return Err(hub_error(e)),
                Err(_) if group.len() > 1 => {
                    let mut group = group;
                    let second = group.split_off(group.len() / 2);
                    pending.push(second);
                    pending.push(group);
                }
                Err(e) => {
                    let (p, _, _) = &group[0];
                    self.failed(
                        &p.contact,
                        "crm_rejected",
                        format!("HubSpot refused the update: {e}"),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// An update: what to send, the HubSpot ID, whether to write the ID back.
type Update<T> = (T, String, bool);

/// Splits updates into batches of at most [`BATCH`] in which no HubSpot ID appears twice.
fn update_batches<T>(updates: Vec<Update<T>>) -> Vec<Vec<Update<T>>> {
    let mut batches: Vec<(HashSet<String>, Vec<Update<T>>)> = Vec::new();
    for u in updates {
        let slot = batches
            .iter()
            .position(|(ids, b)| b.len() < BATCH && !ids.contains(&u.1));
        let slot = slot.unwrap_or_else(|| {
            batches.push((HashSet::new(), Vec::new()));
            batches.len() - 1
        });
        batches[slot].0.insert(u.1.clone());
        batches[slot].1.push(u);
    }
    batches.into_iter().map(|(_, b)| b).collect()
}

// ---- The name search ---------------------------------------------------------------------
//
// Seed 002: "search HubSpot for contacts with the same First name and Last name", then check
// their phones. Searching once per contact spends HubSpot's scarcest budget (a few searches a
// second) one contact at a time; instead the names a window needs are asked in few searches.
// A search may OR up to six filter groups; each group asks for a set of first names crossed
// with a set of last names. A group with one name on a side (a "star": `lastname EQ Diaz AND
// firstname IN [ana, luis, …]`) returns exactly the pairs asked for; a wider group (`lastname
// IN […] AND firstname IN […]`) also returns the other combinations, which are dropped here.
// Every record is matched to the pair it belongs to by its own first and last name, compared
// as HubSpot's EQ compares them (case-insensitively).

/// A first and last name as the search compares them: trimmed, lower-case.
type NameKey = (String, String);

fn name_key(first: &str, last: &str) -> NameKey {
    (first.trim().to_lowercase(), last.trim().to_lowercase())
}

/// Stars with fewer pairs than this are pooled into wider groups.
const MIN_STAR: usize = 4;
/// A search of wider groups that reports more results than this many per pair asked (and more
/// than a page) is not paged through: its wider groups are halved and asked again.
const WIDE_RESULTS_PER_PAIR: u64 = 3;
/// Properties a name search reads: the names to match records to pairs, the phones to check.
const NAME_SEARCH_PROPERTIES: [&str; 4] = ["firstname", "lastname", "phone", "mobilephone"];

/// One filter group of a name search: records whose first name is one of `first` and whose
/// last name is one of `last`, asked for the sake of `pairs`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NameGroup {
    first: BTreeSet<String>,
    last: BTreeSet<String>,
    pairs: Vec<NameKey>,
}

impl NameGroup {
    fn of(pairs: Vec<NameKey>) -> NameGroup {
        NameGroup {
            first: pairs.iter().map(|(f, _)| f.clone()).collect(),
            last: pairs.iter().map(|(_, l)| l.clone()).collect(),
            pairs,
        }
    }

    /// Whether the group returns only the pairs asked for (one name on a side).
    fn exact(&self) -> bool {
        self.first.len() == 1 || self.last.len() == 1
    }

    fn filters(&self) -> Vec<Filter> {
        let side = |property: &str, names: &BTreeSet<String>| match names.iter().next() {
            Some(only) if names.len() == 1 => Filter::value(property, "EQ", only.clone()),
            _ => Filter::one_of(property, names),
        };
        vec![side("firstname", &self.first), side("lastname", &self.last)]
    }

    /// Two groups with half the pairs each (by last name, so that each has fewer names).
    fn halve(mut self) -> [NameGroup; 2] {
        self.pairs.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        let second = self.pairs.split_off(self.pairs.len() / 2);
        [NameGroup::of(self.pairs), NameGroup::of(second)]
    }
}

/// The groups that ask for `wanted`, every pair in exactly one: stars chosen greedily (the name,
/// first or last, shared by the most pairs not yet asked for, with those partners), at most
/// [`MAX_IN_VALUES`] names a side; the pairs left in small stars pooled into wider groups.
fn plan_name_groups(wanted: &BTreeSet<NameKey>) -> Vec<NameGroup> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Uncovered partners of each first name (side 0) and last name (side 1).
    let mut partners: [HashMap<&str, BTreeSet<&str>>; 2] = [HashMap::new(), HashMap::new()];
    for (f, l) in wanted {
        partners[0]
            .entry(f.as_str())
            .or_default()
            .insert(l.as_str());
        partners[1]
            .entry(l.as_str())
            .or_default()
            .insert(f.as_str());
    }
    let mut heap: BinaryHeap<(usize, Reverse<(usize, &str)>)> = (0..2)
        .flat_map(|side| {
            partners[side]
                .iter()
                .map(move |(name, p)| (p.len(), Reverse((side, *name))))
        })
        .collect();
    let mut groups: Vec<NameGroup> = Vec::new();
    let mut pooled: Vec<NameKey> = Vec::new();
    while let Some((count, Reverse((side, name)))) = heap.pop() {
        let now = partners[side].get(name).map_or(0, BTreeSet::len);
        if now == 0 {
            continue;
        }
        if now < count {
            heap.push((now, Reverse((side, name))));
            continue;
        }
        let taken = std::mem::take(partners[side].get_mut(name).expect("counted above"));
        for other in &taken {
            if let Some(p) = partners[1 - side].get_mut(other) {
                p.remove(name);
            }
        }
        let pairs: Vec<NameKey> = taken
            .iter()
            .map(|other| {
                if side == 0 {
                    (name.to_string(), other.to_string())
                } else {
                    (other.to_string(), name.to_string())
                }
            })
            .collect();
        if pairs.len() < MIN_STAR {
            pooled.extend(pairs);
        } else {
            groups.extend(
                pairs
                    .chunks(MAX_IN_VALUES)
                    .map(|c| NameGroup::of(c.to_vec())),
            );
        }
    }
    pooled.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    groups.extend(
        pooled
            .chunks(MAX_IN_VALUES)
            .map(|c| NameGroup::of(c.to_vec())),
    );
    groups
}

/// HubSpot's contacts with each wanted first and last name, with their phones (a record with
/// two phones gives two results), in as few searches as it takes. `done` gets each pair's
/// results as soon as the search that asked for it is through; it returns `false` to stop.
async fn search_names(
    client: &Client,
    wanted: &BTreeSet<NameKey>,
    mut done: impl FnMut(NameKey, Vec<NameResult>) -> bool,
) -> Result<(), HubSpotError> {
    let mut queue: VecDeque<NameGroup> = plan_name_groups(wanted).into();
    while !queue.is_empty() {
        // Exact groups first (they never need halving), six a search.
        let exact = queue.iter().take(MAX_FILTER_GROUPS).all(NameGroup::exact);
        let batch: Vec<NameGroup> = std::iter::from_fn(|| queue.pop_front())
            .take(MAX_FILTER_GROUPS)
            .collect();
        let pairs: usize = batch.iter().map(|g| g.pairs.len()).sum();
        let limit =
            (!exact).then(|| (SEARCH_PAGE as u64).max(WIDE_RESULTS_PER_PAIR * pairs as u64));
        match search_name_groups(client, &batch, limit).await? {
            Some(found) => {
                for (k, results) in found {
                    if !done(k, results) {
                        return Ok(());
                    }
                }
            }
            None => {
                // Mostly other people's names: ask again in narrower groups.
                for g in batch.into_iter().rev() {
                    if g.exact() {
                        queue.push_front(g);
                    } else {
                        let [a, b] = g.halve();
                        queue.push_front(b);
                        queue.push_front(a);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Runs one search of up to [`MAX_FILTER_GROUPS`] groups to the end; returns the results of
/// each pair the groups ask for, every record filed under its own first and last name. With
/// `limit`, gives up (`None`) when the first page reports more results than that. Past
/// HubSpot's 10,000-result cap, the search starts again after the last record seen (results
/// come in record ID order).
async fn search_name_groups(
    client: &Client,
    groups: &[NameGroup],
    limit: Option<u64>,
) -> Result<Option<HashMap<NameKey, Vec<NameResult>>>, HubSpotError> {
    let mut found: HashMap<NameKey, Vec<NameResult>> = groups
        .iter()
        .flat_map(|g| g.pairs.iter().map(|k| (k.clone(), Vec::new())))
        .collect();
    let properties: Vec<String> = NAME_SEARCH_PROPERTIES
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut past: Option<String> = None;
    loop {
        let filters: Vec<Vec<Filter>> = groups
            .iter()
            .map(|g| {
                let mut f = g.filters();
                if let Some(id) = &past {
                    f.push(Filter::value(ID_PROPERTY, "GT", id.clone()));
                }
                f
            })
            .collect();
        debug_assert!(
            filters.len() <= MAX_FILTER_GROUPS
                && filters.iter().map(Vec::len).sum::<usize>() <= MAX_FILTERS
        );
        let mut after: Option<String> = None;
        let mut seen: u64 = 0;
        loop {
            let page = client
                .search_groups(
                    &filters,
                    Some((ID_PROPERTY, "ASCENDING")),
                    &properties,
                    after.as_deref(),
                )
                .await?;
            if let Some(limit) = limit.filter(|_| past.is_none() && after.is_none())
                && page.total > limit
            {
                return Ok(None);
            }
            seen += page.records.len() as u64;
            for r in &page.records {
                let key = name_key(
                    r.get("firstname").unwrap_or_default(),
                    r.get("lastname").unwrap_or_default(),
                );
                let Some(results) = found.get_mut(&key) else {
                    continue;
                };
                for phone in ["phone", "mobilephone"]
                    .into_iter()
                    .filter_map(|p| r.get(p))
                {
                    results.push(NameResult {
                        id: r.id.clone(),
                        phone: Some(phone.to_string()),
                    });
                }
            }
            let last = page.records.last().map(|r| r.id.clone());
            match (page.after, last) {
                (Some(_), Some(last)) if seen + SEARCH_PAGE as u64 > SEARCH_CAP => {
                    past = Some(last);
                    break;
                }
                (Some(a), Some(_)) => after = Some(a),
                _ => return Ok(Some(found)),
            }
        }
    }
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
    v.parse::<i64>().ok().or_else(|| {
        v.parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond())
    })
}

pub(super) async fn run_incoming(
    ctx: &RunContext,
    client: &Client,
    cfg: &HubSpotConfig,
) -> Result<RunReport, RunError> {
    let (schema, resolved) = resolve(ctx, client, cfg, SyncDirection::Incoming).await?;
    let filters = filters(cfg, &schema)?;
    let mut state: SyncState =
        serde_json::from_value(ctx.integration().state.clone()).unwrap_or_default();
    let properties = cfg.remote_names();
    let retry = std::mem::take(&mut state.retry);
    let mut incoming = Incoming {
        ctx,
        schema,
        resolved,
        filters,
        test_users: ctx.store().test_user_keys(ctx.institution_id()).await?,
        before: &retry,
        next: BTreeMap::new(),
        tally: Tally {
            created: 0,
            updated: 0,
            filtered: 0,
            failed: 0,
        },
    };

    let retry_ids: Vec<String> = retry.keys().cloned().collect();
    for chunk in retry_ids.chunks(BATCH) {
        let records = client
            .batch_read(chunk, None, &properties)
            .await
            .map_err(hub_error)?;
        incoming.apply(&records).await?;
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
                .search(
                    &[("lastmodifieddate", "GTE", since.to_string())],
                    Some(("lastmodifieddate", "ASCENDING")),
                    &properties,
                    after.as_deref(),
                )
                .await
                .map_err(hub_error)?;
            seen += page.records.len() as u64;
            let records: Vec<Record> = page
                .records
                .into_iter()
                .filter(|r| !retry.contains_key(&r.id))
                .collect();
            incoming.apply(&records).await?;
            if let Some(m) = records.iter().filter_map(modified_ms).max() {
                newest = newest.max(m);
            }
            state.watermark = newest;
            save(
                ctx,
                &SyncState {
                    watermark: newest,
                    retry: incoming.next.clone(),
                },
            )
            .await?;
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
    state.retry = incoming.next;
    save(ctx, &state).await?;
    report(client, incoming.tally)
}

/// What an incoming run applies each page of HubSpot records with, and what it has counted.
struct Incoming<'a> {
    ctx: &'a RunContext,
    schema: FieldSchema,
    resolved: Vec<ResolvedMapping>,
    filters: Vec<(FieldRef, Vec<String>)>,
    test_users: ferry_store::TestUserKeys,
    /// The records that failed in earlier runs (with their attempts), and in this one.
    before: &'a BTreeMap<String, u32>,
    next: BTreeMap<String, u32>,
    tally: Tally,
}

impl Incoming<'_> {
    async fn apply(&mut self, records: &[Record]) -> Result<(), RunError> {
        let mut writes = Vec::new();
        let mut ids = Vec::new();
        for r in records {
            let values: Vec<(String, String)> = self
                .resolved
                .iter()
                .filter_map(|m| {
                    let raw = if m.remote.name == ID_PROPERTY {
                        Some(r.id.clone())
                    } else {
                        mapping::from_remote(m.local_kind, m.remote.kind, r.get(&m.remote.name))
                    };
                    raw.map(|v| (m.local_name.clone(), v))
                })
                .collect();
            let by_name: HashMap<&str, &str> = values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            // Test users never sync: a record that matches one is left alone (counted as filtered).
            let test_users = &self.test_users;
            let is_test_user = test_users.crm_ids.contains(&r.id)
                || by_name
                    .get("id")
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|id| test_users.ids.contains(&id))
                || by_name
                    .get("phone")
                    .and_then(|p| ferry_core::phone::Phone::parse(p).ok())
                    .is_some_and(|p| test_users.phones.contains(p.as_str()));
            if is_test_user {
                self.tally.filtered += 1;
                continue;
            }
            let pass = passes(&self.filters, |f| {
                by_name
                    .get(f.name())
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            });
            if !pass {
                self.tally.filtered += 1;
                continue;
            }
            match ContactWrite::parse(
                &self.schema,
                values.iter().map(|(k, v)| (k.as_str(), Raw::Str(v))),
            ) {
                Ok(w) => {
                    writes.push(w);
                    ids.push(r.id.clone());
                }
                Err(errors) => {
                    let e = &errors[0];
                    let message = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.failed(&r.id, None, e.code, message).await?;
                }
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        let outcomes = self
            .ctx
            .store()
            .apply_contact_writes(self.ctx.institution_id(), &writes, WriteKind::Import)
            .await?;
        for (outcome, id) in outcomes.into_iter().zip(ids) {
            match outcome {
                Ok(a) => match a.action {
                    ferry_store::AppliedAction::Created => self.tally.created += 1,
                    ferry_store::AppliedAction::Updated => self.tally.updated += 1,
                    ferry_store::AppliedAction::Unchanged => {}
                },
                Err(e) => {
                    self.failed(&id, e.contact_id, e.code, e.message).await?;
                }
            }
        }
        Ok(())
    }

    /// A HubSpot record that was not applied: logged, and retried by the next run unless it has
    /// failed too often.
    async fn failed(
        &mut self,
        id: &str,
        contact: Option<i64>,
        code: &str,
        message: String,
    ) -> Result<(), RunError> {
        failed(
            self.ctx,
            SyncDirection::Incoming,
            id.to_string(),
            contact,
            code,
            format!("HubSpot contact {id}: {message}"),
            self.before,
            &mut self.next,
            &mut self.tally,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeSet<NameKey> {
        pairs.into_iter().map(|(f, l)| name_key(&f, &l)).collect()
    }

    /// Every pair asked for exactly once, by a group whose names include it, within HubSpot's
    /// limits (with the extra `hs_object_id GT` filter a search past the 10,000 cap adds).
    fn check(wanted: &BTreeSet<NameKey>, groups: &[NameGroup]) {
        let mut seen = BTreeSet::new();
        for g in groups {
            assert!(!g.pairs.is_empty());
            assert!(
                g.first.len() <= MAX_IN_VALUES && g.last.len() <= MAX_IN_VALUES,
                "{g:?}"
            );
            assert!(MAX_FILTER_GROUPS * (g.filters().len() + 1) <= MAX_FILTERS);
            for p in &g.pairs {
                assert!(
                    g.first.contains(&p.0) && g.last.contains(&p.1),
                    "{p:?} in {g:?}"
                );
                assert!(seen.insert(p.clone()), "{p:?} asked for twice");
            }
        }
        assert_eq!(&seen, wanted);
    }

    #[test]
    fn names_shared_by_many_pairs_make_exact_groups() {
        // 12 first names x 9 last names, most combinations wanted (as in a big institution).
        let w = wanted((0..12).flat_map(|f| {
            (0..9)
                .filter(move |l| (f + l) % 5 != 0)
                .map(move |l| (format!("First{f}"), format!("Last{l}")))
        }));
        let groups = plan_name_groups(&w);
        check(&w, &groups);
        assert!(groups.iter().all(NameGroup::exact), "{groups:?}");
        assert!(
            groups.len() <= 12,
            "one group per name at most: {}",
            groups.len()
        );
        // A star says its one name with EQ, its others with IN (lower-cased).
        let star = &groups[0];
        let filters = star.filters();
        assert!(
            filters.iter().any(|f| f.json()["operator"] == "EQ")
                && filters.iter().any(|f| f.json()["operator"] == "IN"),
            "{filters:?}"
        );
    }

    #[test]
    fn lone_pairs_are_pooled_into_wider_groups_that_halve() {
        let mut pairs: Vec<(String, String)> = (0..250)
            .map(|i| (format!("Only{i}"), format!("Lone{i}")))
            .collect();
        // Five Diazes: one exact group.
        pairs.extend(
            ["Ana", "Luis", "Maria", "Jo", "Mei"].map(|f| (f.to_string(), " DIAZ ".to_string())),
        );
        let w = wanted(pairs);
        let groups = plan_name_groups(&w);
        check(&w, &groups);
        let (exact, wide): (Vec<&NameGroup>, Vec<&NameGroup>) =
            groups.iter().partition(|g| g.exact());
        assert_eq!(exact.len(), 1);
        assert_eq!(
            exact[0].filters()[1],
            Filter::value("lastname", "EQ", "diaz")
        );
        assert_eq!(
            wide.iter().map(|g| g.pairs.len()).collect::<Vec<_>>(),
            [100, 100, 50],
            "lone pairs, 100 a group"
        );
        let [a, b] = wide[2].clone().halve();
        check(
            &wide[2].pairs.iter().cloned().collect(),
            &[a.clone(), b.clone()],
        );
        assert_eq!((a.pairs.len(), b.pairs.len()), (25, 25));
    }

    #[test]
    fn a_name_with_more_than_100_partners_is_split() {
        let w = wanted((0..250).map(|i| (format!("First{i}"), "Smith".to_string())));
        let groups = plan_name_groups(&w);
        check(&w, &groups);
        assert_eq!(
            groups.iter().map(|g| g.pairs.len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert!(groups.iter().all(NameGroup::exact));
    }

    #[test]
    fn updates_of_one_hubspot_contact_go_in_different_batches() {
        let mut updates: Vec<(usize, String, bool)> =
            (0..150).map(|i| (i, format!("{i}"), true)).collect();
        updates.push((150, "7".into(), true));
        let batches = update_batches(updates);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [100, 51]);
        for b in &batches {
            let ids: HashSet<&String> = b.iter().map(|(_, id, _)| id).collect();
            assert_eq!(ids.len(), b.len());
        }
    }
}
