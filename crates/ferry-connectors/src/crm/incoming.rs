//! Incoming: the records changed in the CRM since the watermark (its modification time, with an
//! overlap), applied with seed 001's matching and its UNSET and blank rules (the store's
//! contact writes). Test users are left alone. Each record that fails gets a Sync Log row and is
//! read again by the next runs, up to [`MAX_ATTEMPTS`] times.
//!
//! [`MAX_ATTEMPTS`]: super::MAX_ATTEMPTS

use std::collections::{BTreeMap, HashMap};

use ferry_core::contact::{ContactWrite, FieldRef, FieldSchema, Raw};
use ferry_core::mapping::ResolvedMapping;
use ferry_core::run::{SyncDirection, SyncResult};
use ferry_store::WriteKind;

use super::codec::ValueCodec;
use super::log::{Retries, SyncState, Tally, filters, passes, remote_error, resolve};
use super::{CrmClient, NextPage, Record, SyncSpec};
use crate::connector::{RunError, RunReport};
use crate::context::RunContext;

/// How far back the first look for deleted records goes (CRMs keep deleted records for a few
/// weeks; Salesforce answers up to 30 days back).
const DELETED_LOOKBACK_MS: i64 = 29 * 86_400_000;

/// Pulls the records changed in the CRM since the watermark (and those that failed before)
/// into Ferry.
pub async fn run_incoming<C: CrmClient>(
    ctx: &RunContext,
    client: &C,
    spec: SyncSpec<'_>,
) -> Result<RunReport, RunError> {
    let (schema, resolved) = resolve(ctx, client, &spec, SyncDirection::Incoming).await?;
    let filters = filters(&spec, &schema)?;
    let mut state = SyncState::of(ctx);
    let properties = read_properties(client, &spec);
    let retry = std::mem::take(&mut state.retry);
    let mut incoming = Incoming {
        ctx,
        client,
        schema,
        resolved,
        filters,
        test_users: ctx.store().test_user_keys(ctx.institution_id()).await?,
        retries: Retries {
            before: &retry,
            next: BTreeMap::new(),
        },
        tally: Tally::default(),
    };

    let retry_ids: Vec<String> = retry.keys().cloned().collect();
    for chunk in retry_ids.chunks(client.batch_size().max(1)) {
        let records = client
            .read(chunk, &properties)
            .await
            .map_err(|e| remote_error(client, e))?;
        incoming.apply(&records).await?;
    }

    let mut since = (state.watermark - client.overlap_ms()).max(0);
    let mut newest = state.watermark;
    let mut page: Option<String> = None;
    loop {
        if ctx.is_cancelled() {
            return Err(RunError::cancelled());
        }
        let changes = client
            .changes(since, &properties, page.as_deref())
            .await
            .map_err(|e| remote_error(client, e))?;
        let records: Vec<Record> = changes
            .records
            .into_iter()
            .filter(|r| !retry.contains_key(&r.id))
            .collect();
        incoming.apply(&records).await?;
        if let Some(m) = records.iter().filter_map(|r| r.modified_ms).max() {
            newest = newest.max(m);
        }
        state.watermark = newest;
        SyncState {
            watermark: newest,
            retry: incoming.retries.next.clone(),
            deleted: state.deleted,
        }
        .save(ctx)
        .await?;
        match changes.next {
            NextPage::Page(next) => page = Some(next),
            // The CRM pages no further: start a new query from the newest time seen.
            NextPage::Requery => {
                if newest <= since {
                    break; // more changes share one millisecond than the CRM pages through
                }
                since = newest;
                page = None;
            }
            NextPage::Done => break,
        }
    }
    state.watermark = newest;
    state.retry = incoming.retries.next;
    state.save(ctx).await?;

    // Records deleted in the CRM: their contacts are archived (a later import or sync of the
    // same person un-archives them).
    let now = jiff::Timestamp::now().as_millisecond();
    let oldest = now - DELETED_LOOKBACK_MS;
    let since = state.deleted.unwrap_or(oldest).max(oldest);
    if let Some((ids, covered)) = client
        .deleted_since(since)
        .await
        .map_err(|e| remote_error(client, e))?
    {
        let archived = ctx
            .store()
            .archive_by_crm_ids(ctx.institution_id(), &ids)
            .await?;
        incoming.tally.archived += archived.len() as i64;
        state.deleted = Some(covered.max(since));
        state.save(ctx).await?;
    }
    Ok(incoming.tally.report(client))
}

/// The CRM properties an incoming run reads: the mapped ones, the record ID and the
/// modification time.
fn read_properties<C: CrmClient>(client: &C, spec: &SyncSpec<'_>) -> Vec<String> {
    let mut names: Vec<String> = spec
        .mappings
        .iter()
        .map(|m| m.remote.trim().to_string())
        .collect();
    for extra in [client.id_property(), client.modified_property()] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    names
}

/// What an incoming run applies each page of CRM records with, and what it has counted.
struct Incoming<'a, C> {
    ctx: &'a RunContext,
    client: &'a C,
    schema: FieldSchema,
    resolved: Vec<ResolvedMapping>,
    filters: Vec<(FieldRef, Vec<String>)>,
    test_users: ferry_store::TestUserKeys,
    /// The records that failed in earlier runs (with their attempts), and in this one.
    retries: Retries<'a>,
    tally: Tally,
}

impl<C: CrmClient> Incoming<'_, C> {
    async fn apply(&mut self, records: &[Record]) -> Result<(), RunError> {
        let mut writes = Vec::new();
        let mut ids = Vec::new();
        for r in records {
            let values: Vec<(String, String)> = self
                .resolved
                .iter()
                .filter_map(|m| {
                    let raw = if m.remote.name == self.client.id_property() {
                        Some(r.id.clone())
                    } else {
                        self.client.codec().decode(
                            m.local_kind,
                            m.remote.kind,
                            r.get(&m.remote.name),
                        )
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
                Ok(a) => {
                    match a.action {
                        ferry_store::AppliedAction::Created => self.tally.created += 1,
                        ferry_store::AppliedAction::Updated => self.tally.updated += 1,
                        ferry_store::AppliedAction::Unchanged => {}
                    }
                    self.ctx
                        .synced(SyncResult::synced(
                            a.contact_id,
                            SyncDirection::Incoming,
                            Some(id),
                        ))
                        .await?;
                }
                Err(e) => {
                    self.failed(&id, e.contact_id, e.code, e.message).await?;
                }
            }
        }
        // One chunk of records is through: its contacts' sync status is written.
        self.ctx.flush_synced().await?;
        Ok(())
    }

    /// A CRM record that was not applied: logged, and retried by the next run unless it has
    /// failed too often.
    async fn failed(
        &mut self,
        id: &str,
        contact: Option<i64>,
        code: &str,
        message: String,
    ) -> Result<(), RunError> {
        if let Some(contact) = contact {
            self.ctx
                .synced(SyncResult::failed(
                    contact,
                    SyncDirection::Incoming,
                    code,
                    Some(id.to_string()),
                ))
                .await?;
        }
        let message = format!("{} contact {id}: {message}", self.client.name());
        self.retries
            .failed(
                self.ctx,
                SyncDirection::Incoming,
                id.to_string(),
                contact,
                code,
                message,
                &mut self.tally,
            )
            .await
    }
}
