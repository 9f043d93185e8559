//! The Contacts list and a contact's page with its messages.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_core::contact::DefaultField;
use ferry_core::run::SyncOutcome;
use ferry_store::{ContactQuery, MessageQuery};
use serde::Deserialize;

use super::{Nav, error_page, fmt_phone, fmt_time, ui_error};
use crate::AppState;
use crate::auth::{self, Auth};

struct ContactRow {
    id: i64,
    name: String,
    phone: String,
    email: String,
    crm_id: String,
    archived: bool,
    test_user: bool,
    updated: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts.html")]
struct ContactsPage {
    nav: Nav,
    q: String,
    archived: String,
    rows: Vec<ContactRow>,
    total: i64,
    filtered: bool,
    first_link: Option<String>,
    next_link: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ContactsParams {
    q: Option<String>,
    archived: Option<String>,
    after: Option<i64>,
}

const PAGE_SIZE: u32 = 50;

/// The Contacts list: search, filters and pages.
pub async fn contacts_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<ContactsParams>,
) -> Response {
    let inst = &auth.principal.institution;
    let q = p.q.unwrap_or_default();
    let archived = p.archived.unwrap_or_default();
    let query = ContactQuery {
        q: Some(q.clone()).filter(|s| !s.trim().is_empty()),
        archived: archived.parse::<bool>().ok(),
        test_user: None,
        updated_since: None,
        after: p.after,
        limit: PAGE_SIZE,
    };
    let (page, total) = match tokio::try_join!(
        state.store.list_contacts(inst.id, &query),
        state.store.count_contacts_matching(inst.id, &query)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    let link = |after: Option<i64>| {
        let mut s = format!(
            "/contacts?q={}&archived={}",
            auth::urlencode(&q),
            auth::urlencode(&archived)
        );
        if let Some(a) = after {
            s.push_str(&format!("&after={a}"));
        }
        s
    };
    let rows = page
        .contacts
        .into_iter()
        .map(|c| ContactRow {
            id: c.id,
            name: c.data.display_name(),
            phone: c
                .data
                .phone
                .map(|p| fmt_phone(p.as_str()))
                .unwrap_or_default(),
            email: c
                .data
                .email
                .map(|e| e.as_str().to_string())
                .unwrap_or_default(),
            crm_id: c.data.crm_id.unwrap_or_default(),
            archived: c.data.archived,
            test_user: c.data.test_user,
            updated: fmt_time(c.updated_at, &inst.time_zone),
        })
        .collect();
    ContactsPage {
        nav: Nav::new(&state, &auth, "contacts"),
        first_link: p.after.map(|_| link(None)),
        next_link: page.next_after.map(|a| link(Some(a))),
        filtered: !q.trim().is_empty() || !archived.is_empty(),
        q,
        archived,
        rows,
        total,
    }
    .into_response()
}

struct CallRow {
    duration: String,
    agent: String,
    recording_id: Option<i64>,
    recording_name: Option<String>,
    reviewed: bool,
}

struct MessageRow {
    id: i64,
    call: Option<CallRow>,
    direction: &'static str,
    body: String,
    channel: &'static str,
    kind: &'static str,
    sent: String,
    highlight: bool,
}

/// One integration's dealings with a contact in one direction: its last sync (from the
/// contact's sync status), or, for an integration that only logged problems with the contact
/// (before sync status was recorded), its newest Sync Log row.
struct SyncStatus {
    integration: String,
    /// `None` for an integration deleted since it logged.
    integration_id: Option<i64>,
    direction: &'static str,
    last_time: String,
    /// Synced, Failed, Skipped, or "Problem logged" for a Sync Log row only.
    result: &'static str,
    /// The error dictionary's code, for a failure, a skip or a logged problem.
    code: Option<String>,
    remote_id: Option<String>,
    /// This contact's Sync Log rows of the integration (of those the page shows).
    problems: usize,
}

struct LogRow {
    time: String,
    integration: String,
    direction: &'static str,
    code: String,
    message: String,
    run_id: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "contact.html")]
struct ContactPage {
    nav: Nav,
    id: i64,
    notice: Option<&'static str>,
    crm_id: String,
    sync: Vec<SyncStatus>,
    /// The institution's time zone, which the page's times are in.
    time_zone: String,
    log: Vec<LogRow>,
    contact_id: i64,
    name: String,
    archived: bool,
    test_user: bool,
    fields: Vec<(String, String)>,
    messages: Vec<MessageRow>,
    truncated: bool,
}

#[derive(Deserialize, Default)]
pub struct ContactParams {
    /// A message to highlight (links from exports point here).
    message: Option<i64>,
    /// What was just done (after a form's redirect).
    saved: Option<String>,
}

const CONVERSATION_LIMIT: u32 = 500;

/// A contact's page with its messages.
pub async fn contact_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(p): Query<ContactParams>,
) -> Response {
    let inst = &auth.principal.institution;
    let Ok(id) = crate::api::contacts::parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such contact.");
    };
    let contact = match state.store.contact(inst.id, id).await {
        Ok(c) => c,
        Err(e) => return ui_error(e.into()),
    };
    let defs = match state.store.custom_fields(inst.id).await {
        Ok(d) => d,
        Err(e) => return ui_error(e.into()),
    };
    // The latest messages: read the newest page by sequence, then show them oldest first.
    let total = match state
        .store
        .list_messages(
            inst.id,
            &MessageQuery {
                contact_id: Some(id),
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
    {
        Ok(m) => m,
        Err(e) => return ui_error(e.into()),
    };
    let truncated = total.len() > CONVERSATION_LIMIT as usize;
    let start = total.len().saturating_sub(CONVERSATION_LIMIT as usize);
    let d = &contact.data;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_string());
    let mut fields = vec![
        ("Platform ID".to_string(), contact.id.to_string()),
        (
            DefaultField::FirstName.label().to_string(),
            opt(&d.first_name),
        ),
        (
            DefaultField::LastName.label().to_string(),
            opt(&d.last_name),
        ),
        (
            DefaultField::PreferredName.label().to_string(),
            opt(&d.preferred_name),
        ),
        (
            DefaultField::Phone.label().to_string(),
            d.phone
                .as_ref()
                .map(|p| fmt_phone(p.as_str()))
                .unwrap_or_else(|| "—".into()),
        ),
        (
            DefaultField::Email.label().to_string(),
            d.email
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "—".into()),
        ),
        (
            DefaultField::EnrollmentId.label().to_string(),
            opt(&d.enrollment_id),
        ),
        (DefaultField::CrmId.label().to_string(), opt(&d.crm_id)),
        (
            DefaultField::SmsOptIn.label().to_string(),
            match d.sms_opt_in.as_str() {
                "opted_in" => "Opted in",
                "opted_out" => "Opted out",
                _ => "Unknown",
            }
            .to_string(),
        ),
        (
            DefaultField::StreetAddress.label().to_string(),
            opt(&d.street_address),
        ),
        (
            DefaultField::StreetAddress2.label().to_string(),
            opt(&d.street_address_2),
        ),
        (DefaultField::City.label().to_string(), opt(&d.city)),
        (DefaultField::State.label().to_string(), opt(&d.state)),
        (DefaultField::ZipCode.label().to_string(), opt(&d.zip_code)),
        (DefaultField::Country.label().to_string(), opt(&d.country)),
    ];
    for def in &defs {
        let v = d.custom.get(&def.name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Bool(b) => if *b { "Yes" } else { "No" }.to_string(),
            other => other.to_string(),
        });
        fields.push((def.label.clone(), v.unwrap_or_else(|| "—".into())));
    }
    fields.push((
        "Created".into(),
        fmt_time(contact.created_at, &inst.time_zone),
    ));
    fields.push((
        "Updated".into(),
        fmt_time(contact.updated_at, &inst.time_zone),
    ));
    let (log, integrations, syncs) = match tokio::try_join!(
        state.store.sync_log_for_contact(inst.id, id, 200),
        crate::api::runs::integrations_by_id(&state.store, inst.id),
        state.store.contact_syncs(inst.id, id)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    let name_of = |i: Option<i64>| match i.and_then(|i| integrations.get(&i)) {
        Some(x) => x.name.clone(),
        None => "A deleted integration".to_string(),
    };
    let problems = |i: Option<i64>| log.iter().filter(|e| e.integration_id == i).count();
    let mut sync: Vec<SyncStatus> = syncs
        .iter()
        .map(|s| SyncStatus {
            integration: s.integration_name.clone(),
            integration_id: Some(s.integration_id),
            direction: s.direction.as_str(),
            last_time: fmt_time(s.last_synced_at, &inst.time_zone),
            result: match s.result {
                SyncOutcome::Synced => "Synced",
                SyncOutcome::Failed => "Failed",
                SyncOutcome::Skipped => "Skipped",
            },
            code: s.code.clone(),
            remote_id: s.remote_id.clone(),
            problems: problems(Some(s.integration_id)),
        })
        .collect();
    for e in &log {
        // Newest first: the first row of an integration is its latest.
        if !sync.iter().any(|s| s.integration_id == e.integration_id) {
            sync.push(SyncStatus {
                integration: name_of(e.integration_id),
                integration_id: e.integration_id,
                direction: e.direction.as_str(),
                last_time: fmt_time(e.timestamp, &inst.time_zone),
                result: "Problem logged",
                code: Some(e.code.clone()),
                remote_id: None,
                problems: problems(e.integration_id),
            });
        }
    }
    let log = log
        .iter()
        .map(|e| LogRow {
            time: fmt_time(e.timestamp, &inst.time_zone),
            integration: name_of(e.integration_id),
            direction: e.direction.as_str(),
            code: e.code.clone(),
            message: e.message.clone(),
            run_id: e.run_id,
        })
        .collect();
    let notice = match p.saved.as_deref() {
        Some("created") => Some("The contact was created."),
        Some("updated") => Some("Your changes were saved."),
        Some("archived") => Some("The contact was archived."),
        Some("unarchived") => Some("The contact was taken out of the archive."),
        Some("test_user") => Some("The contact is now a test user: no integration will sync it."),
        Some("real_user") => Some(
            "The contact is no longer a test user: integrations sync it again from their next run.",
        ),
        _ => None,
    };
    let call_ids: Vec<i64> = total[start..]
        .iter()
        .filter(|m| m.channel == ferry_core::message::Channel::Voice)
        .map(|m| m.id)
        .collect();
    let mut calls = if call_ids.is_empty() {
        Default::default()
    } else {
        match state.store.call_infos(inst.id, &call_ids).await {
            Ok(c) => c,
            Err(e) => return ui_error(e.into()),
        }
    };
    let messages = total[start..]
        .iter()
        .map(|m| MessageRow {
            call: calls.remove(&m.id).map(|c| CallRow {
                duration: format!("{}:{:02}", c.duration_secs / 60, c.duration_secs % 60),
                agent: c.agent,
                recording_id: c.recording_id,
                recording_name: c
                    .recording_path
                    .map(|p| p.rsplit('/').next().unwrap_or(&p).to_string()),
                reviewed: c.reviewed_at.is_some(),
            }),
            id: m.id,
            direction: m.direction.as_str(),
            body: m.body.clone(),
            channel: m.channel.label(),
            kind: m.message_type.label(),
            sent: fmt_time(m.sent_at, &inst.time_zone),
            highlight: p.message == Some(m.id),
        })
        .collect();
    ContactPage {
        nav: Nav::new(&state, &auth, "contacts"),
        id: contact.id,
        notice,
        crm_id: d.crm_id.clone().unwrap_or_default(),
        sync,
        time_zone: inst.time_zone.clone(),
        log,
        contact_id: contact.id,
        name: d.display_name(),
        archived: d.archived,
        test_user: d.test_user,
        fields,
        messages,
        truncated,
    }
    .into_response()
}
