//! `/api/v1/audit-log`: who changed what, when, and every failed sign-in.

use axum::Json;
use axum::extract::State;
use ferry_store::{AuditEntry, AuditQuery};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::api::doc as d;
use crate::api::runs::{bad, parse_limit, parse_positive_id, parse_time, present};
use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::QueryArgs;

/// One event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    /// Later events have larger ids.
    pub id: i64,
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `user`, `token`, `cli`, `system` (the worker) or `anonymous` (failed sign-ins).
    pub actor_kind: String,
    /// The user's email, the token as `#ID name`, the operating-system user of the command
    /// line; empty for `system` and `anonymous`.
    pub actor: String,
    /// The client address of a web request, when known.
    pub client: String,
    /// What happened, as `family.verb`: `integration.created`, `integration.updated`,
    /// `integration.enabled`, `integration.disabled`, `integration.deleted`,
    /// `account.connected`, `account.reconnected`, `token.created`, `token.revoked`,
    /// `session.ended`, `session.signed_out_everywhere`, `user.created`,
    /// `user.role_granted`, `user.password_changed`, `field.created`, `institution.created`,
    /// `signin.failed`.
    pub kind: String,
    /// What it happened to, for people.
    pub target: String,
    /// What changed (`changes`: `{"path": {"from", "to"}}`), or the new record's values.
    /// Secrets appear only by name (`secrets_set`, `secrets_removed`) or as `[redacted]`.
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        AuditEntryView {
            id: e.id,
            at: e.at,
            actor_kind: e.actor_kind.as_str().to_string(),
            actor: e.actor,
            client: e.client,
            kind: e.kind,
            target: e.target,
            detail: e.detail,
        }
    }
}

/// One page of events, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditList {
    /// The entries, newest first.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// The query parameters of `GET /api/v1/audit-log`.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// RFC 3339 time; only events at or after it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339 time; only events before it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Only events by this actor: an email, a token as `#ID name`, or either prefixed by its
    /// kind (`user:ana@state.edu`, `token:#3 crm-sync`, `cli:root`). Case-insensitive.
    pub actor: Option<String>,
    /// Only events of this kind (`token.revoked`) or family (`token`).
    pub kind: Option<String>,
    /// The cursor from the previous page's `next_cursor`.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

impl AuditParams {
    pub(crate) fn query(&self) -> ApiResult<AuditQuery> {
        let q = AuditQuery {
            since: present(&self.since)
                .map(|s| parse_time("since", s))
                .transpose()?,
            until: present(&self.until)
                .map(|s| parse_time("until", s))
                .transpose()?,
            actor: present(&self.actor).map(str::to_string),
            kind: present(&self.kind).map(str::to_string),
            before: present(&self.cursor)
                .map(|s| parse_positive_id("cursor", s))
                .transpose()?,
            limit: parse_limit(&self.limit)?,
        };
        if let (Some(a), Some(b)) = (q.since, q.until)
            && a > b
        {
            return Err(bad("until", "until must not be before since"));
        }
        Ok(q)
    }
}

/// The institution's audit log, newest first: every change of integrations, connected
/// accounts, API tokens, sessions, users and roles, and custom fields (who, when, what
/// changed, secrets redacted), and every failed sign-in to one of its users.
#[utoipa::path(get, path = "/api/v1/audit-log", operation_id = "list_audit_log", params(AuditParams), responses(
    (status = 200, description = "One page of events.", body = AuditList),
    (status = 400, description = "A query parameter is not valid; `field` names it.", body = ErrorBody),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    QueryArgs(p): QueryArgs<AuditParams>,
) -> ApiResult<Json<AuditList>> {
    let q = p.query()?;
    let page = state.store.audit_log(auth.institution_id(), &q).await?;
    Ok(Json(AuditList {
        entries: page.entries.into_iter().map(Into::into).collect(),
        next_cursor: page.next_before,
    }))
}
