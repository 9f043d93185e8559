//! What both directions share: the instance's state, the run's tally and report, Sync Log rows
//! with capped retries, the mapping and the filters.

use std::collections::BTreeMap;

use ferry_core::contact::{FieldRef, FieldSchema};
use ferry_core::mapping::{self, ResolvedMapping};
use ferry_core::run::SyncDirection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{CrmClient, RemoteError, SyncSpec};
use crate::connector::{RunError, RunReport};
use crate::context::RunContext;

/// Tries per failed contact before it is given up (and logged as such).
pub const MAX_ATTEMPTS: u32 = 5;

/// The state a CRM instance keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SyncState {
    /// Outgoing: the change sequence sent; incoming: the CRM's modification time (ms) pulled.
    #[serde(default)]
    pub watermark: i64,
    /// Failed contacts (Ferry IDs outgoing, CRM IDs incoming) and their attempts so far.
    #[serde(default)]
    pub retry: BTreeMap<String, u32>,
    /// Incoming, for a CRM that lists deleted records: the time (ms) they were read up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<i64>,
}

impl SyncState {
    pub fn of(ctx: &RunContext) -> SyncState {
        ctx.state()
    }

    pub async fn save(&self, ctx: &RunContext) -> Result<(), RunError> {
        ctx.save_state(self).await
    }
}

/// What a run did to contacts.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub created: i64,
    pub updated: i64,
    pub filtered: i64,
    pub failed: i64,
    /// Contacts archived because the CRM deleted their records.
    pub archived: i64,
}

impl Tally {
    /// The run's report: its counts and the client's calls.
    pub fn report<C: CrmClient>(&self, client: &C) -> RunReport {
        let calls = client.calls();
        let rows = self.created + self.updated + self.archived;
        let detail = json!({
            "created": self.created, "updated": self.updated, "filtered": self.filtered,
            "archived": self.archived,
            "failed": self.failed, "api_calls": calls.requests, "retries": calls.retries,
            "rate_limited": calls.rate_limited,
        });
        if rows == 0 && self.failed == 0 {
            RunReport::skipped().with_detail(detail)
        } else {
            RunReport::success(rows).with_detail(detail)
        }
    }
}

/// A CRM error as the run's: transient ones are retried, refused credentials name the next step.
pub(super) fn remote_error<C: CrmClient>(client: &C, e: C::Error) -> RunError {
    let reason = format!("{e}");
    if e.is_transient() {
        RunError::retryable(reason)
    } else if e.is_refused_credentials() {
        RunError::credentials_refused(format!("{reason}; {}", client.reconnect_hint()))
    } else {
        RunError::fatal(reason)
    }
}

/// The mapping, checked against the institution's fields and the CRM's properties.
pub(super) async fn resolve<C: CrmClient>(
    ctx: &RunContext,
    client: &C,
    spec: &SyncSpec<'_>,
    dir: SyncDirection,
) -> Result<(FieldSchema, Vec<ResolvedMapping>), RunError> {
    let schema = ctx.store().field_schema(ctx.institution_id()).await?;
    let props = client
        .properties()
        .await
        .map_err(|e| remote_error(client, e))?;
    let resolved = mapping::resolve(
        spec.mappings,
        &schema,
        &props,
        client.id_property(),
        Some(client.email_property()),
        dir,
    )
    .map_err(|e| {
        RunError::fatal(format!(
            "the data mapping is invalid: {e}; edit the instance's Data Mapping"
        ))
    })?;
    Ok((schema, resolved))
}

/// The filters, each on a field of the institution.
pub(super) type Filters = Vec<(FieldRef, Vec<String>)>;

pub(super) fn filters(spec: &SyncSpec<'_>, schema: &FieldSchema) -> Result<Filters, RunError> {
    spec.filters
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

/// Whether a contact's values pass every filter.
pub(super) fn passes(
    filters: &[(FieldRef, Vec<String>)],
    value: impl Fn(&FieldRef) -> String,
) -> bool {
    filters.iter().all(|(f, values)| {
        let v = value(f);
        values
            .iter()
            .any(|want| want.trim().eq_ignore_ascii_case(v.trim()))
    })
}

/// A Sync Log row.
pub(super) async fn log(
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

/// The contacts that failed before this run (with their tries), and those to retry after it.
pub(super) struct Retries<'a> {
    pub before: &'a BTreeMap<String, u32>,
    pub next: BTreeMap<String, u32>,
}

impl Retries<'_> {
    /// Records a failed contact: a Sync Log row, and a retry unless it has had its tries.
    #[allow(clippy::too_many_arguments)]
    pub async fn failed(
        &mut self,
        ctx: &RunContext,
        dir: SyncDirection,
        key: String,
        contact: Option<i64>,
        code: &str,
        message: String,
        tally: &mut Tally,
    ) -> Result<(), RunError> {
        tally.failed += 1;
        let attempts = self.before.get(&key).copied().unwrap_or(0) + 1;
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
            self.next.insert(key, attempts);
            log(ctx, dir, contact, code, message).await
        }
    }
}
