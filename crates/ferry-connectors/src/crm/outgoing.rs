//! Outgoing: contacts changed since the watermark (the change sequence), matched by seed 002's
//! outgoing logic, looked up and written in windows (reads and writes in the CRM's full
//! batches, the name searches of a window in few requests), CRM IDs written back. Each failed
//! contact gets a Sync Log row and is retried on the next runs, up to [`MAX_ATTEMPTS`] times.
//!
//! [`MAX_ATTEMPTS`]: super::MAX_ATTEMPTS

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use ferry_core::contact::{Contact, FieldRef, value_text};
use ferry_core::mapping::ResolvedMapping;
use ferry_core::outgoing::{self, Lookup, Lookups, OutgoingDecision, OutgoingKeys};
use ferry_core::run::{SyncDirection, SyncResult};

use super::codec::ValueCodec;
use super::log::{Retries, SyncState, Tally, filters, log, passes, remote_error, resolve};
use super::{CrmClient, NameKey, NameResult, RemoteError, SyncSpec, name_key};
use crate::connector::{RunError, RunReport};
use crate::context::RunContext;

/// One contact on its way out.
struct Out {
    contact: Contact,
    properties: BTreeMap<String, String>,
    known: Lookups,
    /// The platform ID, when the CRM keeps it in an external-ID field.
    external: Option<String>,
}

impl Out {
    fn keys(&self, email: &str) -> OutgoingKeys<'_> {
        let d = &self.contact.data;
        OutgoingKeys {
            crm_id: d.crm_id.as_deref(),
            external_id: self.external.as_deref(),
            email: self.properties.get(email).map(String::as_str),
            first_name: d.first_name.as_deref(),
            last_name: d.last_name.as_deref(),
            phone: d.phone.as_ref(),
        }
    }
}

/// Pushes the contacts changed since the watermark (and those that failed before) to the CRM,
/// `window` contacts looked up together: a window's lookups are batched (IDs and emails a
/// batch a read, the names of the whole window in few searches), and the contacts decided so
/// far are written at the same time, in full batches, so that the writes go on while the name
/// searches still run; the next window's lookups start while the last writes of a window go
/// out. The watermark moves once a window is written.
pub async fn run_outgoing<C: CrmClient>(
    ctx: &RunContext,
    client: &C,
    spec: SyncSpec<'_>,
    window: usize,
) -> Result<RunReport, RunError> {
    let window = window.max(1);
    let (schema, resolved) = resolve(ctx, client, &spec, SyncDirection::Outgoing).await?;
    let filters = filters(&spec, &schema)?;
    let state = SyncState::of(ctx);
    let top = ctx.store().current_change_seq(ctx.institution_id()).await?;

    // The lookups of the next window start while the writes of the last are still going out.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut writer = Writer {
        ctx,
        client,
        tally: Tally::default(),
        retries: Retries {
            before: &state.retry,
            next: BTreeMap::new(),
        },
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
    SyncState {
        watermark,
        retry: writer.retries.next,
        deleted: None,
    }
    .save(ctx)
    .await?;
    Ok(tally.report(client))
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
/// may draw on different limits of the CRM), so that the searches need not wait for them.
#[allow(clippy::too_many_arguments)]
async fn feed<C: CrmClient>(
    ctx: &RunContext,
    client: &C,
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
        let mut skipped = Vec::new();
        let outs = prepare(client, resolved, filters, &contacts, &mut skipped);
        fed.filtered += skipped.len() as i64;
        for c in skipped {
            ctx.synced(SyncResult::skipped(
                c,
                SyncDirection::Outgoing,
                "filtered_out",
                None,
            ))
            .await?;
        }
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

/// The contacts of a window that pass the filters, with the properties they send; the IDs of
/// those the filters hold back go to `filtered`.
fn prepare<C: CrmClient>(
    client: &C,
    resolved: &[ResolvedMapping],
    filters: &[(FieldRef, Vec<String>)],
    contacts: &[Contact],
    filtered: &mut Vec<i64>,
) -> Vec<Option<Out>> {
    let mut outs: Vec<Option<Out>> = Vec::new();
    for c in contacts {
        if !passes(filters, |f| value_text(&c.value_of(f))) {
            filtered.push(c.id);
            continue;
        }
        let properties = resolved
            .iter()
            .filter(|m| m.remote.name != client.id_property())
            .filter_map(|m| {
                // A blank is not sent; a field that an UNSET cleared is cleared in the CRM
                // (set to "").
                client
                    .codec()
                    .encode(m.local_kind, m.remote.kind, &c.value_of(&m.local))
                    .or_else(|| c.was_cleared(&m.local).then(String::new))
                    .map(|v| (m.remote.name.clone(), v))
            })
            .collect();
        outs.push(Some(Out {
            contact: c.clone(),
            properties,
            known: Lookups::default(),
            external: client.external_id_property().map(|_| c.id.to_string()),
        }));
    }
    outs
}

/// A contact decided by [`outgoing::decide`], on its way to the CRM.
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
fn hand_over(tx: &ToWriterTx, email: &str, o: Out) -> bool {
    let decision = outgoing::decide(&o.keys(email), &o.known);
    tx.send(ToWriter::Contact(Box::new(Decided {
        push: Push {
            contact: o.contact,
            properties: o.properties,
        },
        decision,
    })))
    .is_ok()
}

/// Asks the CRM what seed 002's logic needs for every contact of a window — a kind of lookup
/// at a time, each in as few requests as it takes — and hands each contact to the writer as
/// soon as [`outgoing::next_lookup`] has nothing more to ask about it. Without `names`, stops
/// when only name searches are left and returns the contacts waiting for them. When the run is
/// cancelled, stops with [`RunError::cancelled`] (the writer finishes what it was handed).
async fn look_up<C: CrmClient>(
    ctx: &RunContext,
    client: &C,
    mut outs: Vec<Option<Out>>,
    tx: &ToWriterTx,
    names: bool,
) -> Result<Vec<Option<Out>>, RunError> {
    let email = client.email_property();
    let batch = client.batch_size().max(1);
    loop {
        if tx.is_closed() {
            return Ok(Vec::new()); // the writer failed; it reports why
        }
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        let mut by_id: Vec<usize> = Vec::new();
        let mut by_external: Vec<usize> = Vec::new();
        let mut by_email: Vec<usize> = Vec::new();
        let mut by_name: Vec<usize> = Vec::new();
        for (i, slot) in outs.iter_mut().enumerate() {
            let Some(o) = slot else { continue };
            match outgoing::next_lookup(&o.keys(email), &o.known) {
                Some(Lookup::ById) => by_id.push(i),
                Some(Lookup::ByExternalId) => by_external.push(i),
                Some(Lookup::ByEmail) => by_email.push(i),
                Some(Lookup::ByName) => by_name.push(i),
                None => {
                    if !hand_over(tx, email, slot.take().expect("present")) {
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
            let read = [client.id_property().to_string()];
            for chunk in ids.chunks(batch) {
                let found = client
                    .read(chunk, &read)
                    .await
                    .map_err(|e| remote_error(client, e))?;
                exists.extend(found.into_iter().map(|r| r.id));
            }
            for &i in &by_id {
                let o = outs[i].as_mut().expect("undecided");
                let id = o.contact.data.crm_id.as_deref().unwrap_or_default().trim();
                o.known.by_id_exists = Some(exists.contains(id));
            }
        } else if !by_external.is_empty() {
            let values: Vec<String> = by_external
                .iter()
                .filter_map(|&i| out(&outs, i).external.clone())
                .collect();
            let mut index: HashMap<String, String> = HashMap::new();
            for chunk in values.chunks(batch) {
                let found = client
                    .find_by_external_ids(chunk)
                    .await
                    .map_err(|e| remote_error(client, e))?;
                index.extend(found);
            }
            for &i in &by_external {
                let o = outs[i].as_mut().expect("undecided");
                let found = o.external.as_ref().and_then(|v| index.get(v)).cloned();
                o.known.by_external_id = Some(found);
            }
        } else if !by_email.is_empty() {
            let emails: BTreeSet<String> = by_email
                .iter()
                .map(|&i| out(&outs, i).properties[email].to_lowercase())
                .collect();
            let emails: Vec<String> = emails.into_iter().collect();
            let mut index: HashMap<String, String> = HashMap::new();
            for chunk in emails.chunks(batch) {
                let found = client
                    .find_by_emails(chunk)
                    .await
                    .map_err(|e| remote_error(client, e))?;
                index.extend(found);
            }
            for &i in &by_email {
                let o = outs[i].as_mut().expect("undecided");
                o.known.by_email = Some(index.get(&o.properties[email].to_lowercase()).cloned());
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
            let mut wanted: BTreeMap<NameKey, BTreeSet<String>> = BTreeMap::new();
            for &i in &by_name {
                let o = out(&outs, i);
                let phones = wanted.entry(key(o)).or_default();
                phones.extend(
                    o.contact
                        .data
                        .phone
                        .as_ref()
                        .map(|p| p.as_str().to_string()),
                );
                waiting.entry(key(o)).or_default().push(i);
            }
            // Each search's contacts go to the writer as soon as that search is through.
            let mut cancelled = false;
            let mut done = |k: NameKey, results: Vec<NameResult>| {
                if ctx.is_cancelled() {
                    cancelled = true;
                    return false;
                }
                for i in waiting.remove(&k).unwrap_or_default() {
                    let Some(o) = outs[i].as_mut() else { continue };
                    o.known.by_name = Some(results.clone());
                    if outgoing::next_lookup(&o.keys(email), &o.known).is_none()
                        && !hand_over(tx, email, outs[i].take().expect("present"))
                    {
                        return false;
                    }
                }
                true
            };
            client
                .find_by_names(&wanted, &mut done)
                .await
                .map_err(|e| remote_error(client, e))?;
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
struct Writer<'a, C> {
    ctx: &'a RunContext,
    client: &'a C,
    tally: Tally,
    /// Failed contacts and their tries before this run, and after it.
    retries: Retries<'a>,
    /// The change sequence every contact up to which is through.
    watermark: i64,
    creates: Vec<Push>,
    updates: Vec<Update<Push>>,
}

impl<C: CrmClient> Writer<'_, C> {
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
                    self.ctx.flush_synced().await?;
                    if let Some(seq) = seq {
                        // The CRM confirmed the window: the watermark moves past it (failures
                        // are in `retry`). Windows of retries move nothing: the retries are
                        // saved with the first window of changes, once all were tried.
                        self.watermark = seq;
                        SyncState {
                            watermark: seq,
                            retry: self.retries.next.clone(),
                            deleted: None,
                        }
                        .save(self.ctx)
                        .await?;
                    }
                    continue;
                }
            };
            match d.decision {
                Ok(OutgoingDecision::Update { id, write_back, .. }) => {
                    self.updates.push((d.push, id, write_back));
                    if self.updates.len() >= self.client.batch_size() {
                        self.flush_updates(false).await?;
                    }
                }
                Ok(OutgoingDecision::Create) => {
                    self.creates.push(d.push);
                    if self.creates.len() >= self.client.batch_size() {
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
        self.flush_updates(true).await?;
        self.ctx.flush_synced().await?;
        Ok(())
    }

    /// Contacts the CRM took, with their CRM IDs, for their sync status.
    async fn synced(&self, written: &[(i64, String)]) -> Result<(), RunError> {
        for (contact, id) in written {
            self.ctx
                .synced(SyncResult::synced(
                    *contact,
                    SyncDirection::Outgoing,
                    Some(id.clone()),
                ))
                .await?;
        }
        Ok(())
    }

    async fn failed(&mut self, c: &Contact, code: &str, message: String) -> Result<(), RunError> {
        // The sync status keeps the CRM ID known before (a failure may be about this one).
        self.ctx
            .synced(SyncResult::failed(
                c.id,
                SyncDirection::Outgoing,
                code,
                None,
            ))
            .await?;
        self.retries
            .failed(
                self.ctx,
                SyncDirection::Outgoing,
                c.id.to_string(),
                Some(c.id),
                code,
                message,
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
            // A CRM that answers record by record: each record succeeded or was refused.
            match self.client.create_each(&props).await {
                Ok(Some(outcomes)) => {
                    let mut created: Vec<(i64, String)> = Vec::new();
                    for (push, outcome) in group.iter().zip(outcomes) {
                        match outcome {
                            Ok(r) => created.push((push.contact.id, r.id)),
                            Err(rej) => self.failed(&push.contact, &rej.code, rej.message).await?,
                        }
                    }
                    self.tally.created += created.len() as i64;
                    self.synced(&created).await?;
                    write_back_ids(self.ctx, self.client.name(), &created).await?;
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(remote_error(self.client, e)),
            }
            match self.client.create(&props).await {
                Ok(records) => {
                    // A CRM may not keep the input order: pair records with inputs by value.
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
                    self.synced(&created).await?;
                    // At once, so that a failure further on cannot lose the new IDs.
                    write_back_ids(self.ctx, self.client.name(), &created).await?;
                }
                // The create may have happened: the run is retried, and the retry finds the new
                // contacts by email or by name and phone instead of creating them twice.
                Err(e) if e.is_transient() => return Err(remote_error(self.client, e)),
                Err(e) if group.len() > 1 => {
                    // One bad record fails its whole batch: halve until it stands alone.
                    tracing::debug!(error = %e, size = group.len(), "splitting a failed batch create");
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
                            format!("{} refused to create the contact: {e}", self.client.name()),
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Updates the contacts waiting, in batches with no CRM ID twice (a CRM may refuse such a
    /// batch); unless `all`, a batch that is not full waits for more.
    async fn flush_updates(&mut self, all: bool) -> Result<(), RunError> {
        let mut pending = Vec::new();
        let size = self.client.batch_size();
        for batch in update_batches(std::mem::take(&mut self.updates), size) {
            if all || batch.len() >= size {
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
            match self.client.update_each(&inputs).await {
                Ok(Some(outcomes)) => {
                    let mut write_back: Vec<(i64, String)> = Vec::new();
                    let mut updated: Vec<(i64, String)> = Vec::new();
                    for ((p, id, wb), outcome) in group.iter().zip(outcomes) {
                        match outcome {
                            Ok(_) => {
                                self.tally.updated += 1;
                                updated.push((p.contact.id, id.clone()));
                                if *wb {
                                    write_back.push((p.contact.id, id.clone()));
                                }
                            }
                            Err(rej) => self.failed(&p.contact, &rej.code, rej.message).await?,
                        }
                    }
                    self.synced(&updated).await?;
                    write_back_ids(self.ctx, self.client.name(), &write_back).await?;
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(remote_error(self.client, e)),
            }
            match self.client.update(&inputs).await {
                Ok(records) => {
                    // The answer leaves out the IDs the CRM did not find (merged or deleted meanwhile).
                    let done: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
                    let mut write_back: Vec<(i64, String)> = Vec::new();
                    let mut updated: Vec<(i64, String)> = Vec::new();
                    for (p, id, wb) in &group {
                        if !done.contains(id.as_str()) {
                            self.failed(
                                &p.contact,
                                "crm_id_not_found",
                                format!(
                                    "{} contact {id} was not found when it was updated",
                                    self.client.name()
                                ),
                            )
                            .await?;
                            continue;
                        }
                        self.tally.updated += 1;
                        updated.push((p.contact.id, id.clone()));
                        if *wb {
                            write_back.push((p.contact.id, id.clone()));
                        }
                    }
                    self.synced(&updated).await?;
                    write_back_ids(self.ctx, self.client.name(), &write_back).await?;
                }
                Err(e) if e.is_transient() => return Err(remote_error(self.client, e)),
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
                        format!("{} refused the update: {e}", self.client.name()),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// An update: what to send, the CRM ID, whether to write the ID back.
type Update<T> = (T, String, bool);

/// Splits updates into batches of at most `size` in which no CRM ID appears twice.
fn update_batches<T>(updates: Vec<Update<T>>, size: usize) -> Vec<Vec<Update<T>>> {
    let mut batches: Vec<(HashSet<String>, Vec<Update<T>>)> = Vec::new();
    for u in updates {
        let slot = batches
            .iter()
            .position(|(ids, b)| b.len() < size && !ids.contains(&u.1));
        let slot = slot.unwrap_or_else(|| {
            batches.push((HashSet::new(), Vec::new()));
            batches.len() - 1
        });
        batches[slot].0.insert(u.1.clone());
        batches[slot].1.push(u);
    }
    batches.into_iter().map(|(_, b)| b).collect()
}

/// "Set the CRM ID on Mainstay for next time."
async fn write_back_ids(
    ctx: &RunContext,
    crm: &str,
    pairs: &[(i64, String)],
) -> Result<(), RunError> {
    let written = ctx.store().set_crm_ids(ctx.institution_id(), pairs).await?;
    for ((contact, id), ok) in pairs.iter().zip(written) {
        if !ok {
            log(ctx, SyncDirection::Outgoing, Some(*contact), "crm_id_in_use", format!("{crm} contact {id} is this contact, but another Ferry contact already has that CRM ID")).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_of_one_crm_contact_go_in_different_batches() {
        let mut updates: Vec<(usize, String, bool)> =
            (0..150).map(|i| (i, format!("{i}"), true)).collect();
        updates.push((150, "7".into(), true));
        let batches = update_batches(updates, 100);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [100, 51]);
        for b in &batches {
            let ids: HashSet<&String> = b.iter().map(|(_, id, _)| id).collect();
            assert_eq!(ids.len(), b.len());
        }
    }
}
