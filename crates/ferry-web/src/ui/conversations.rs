//! The Conversations tool (seed 000's troubleshooting sends people to it): messages across
//! contacts, filtered by channel, type, direction, date range and contact, with counts. And
//! Preview next run on an export: what its next run would send and the first rows of its file
//! exactly as they would be written, from the connector's own preview (nothing is sent and no
//! watermark moves).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_core::message::{Channel, Direction, MessageType};
use ferry_store::{MessageCounts, MessageQuery};
use jiff::tz::TimeZone;

use super::runs::{fmt_count, parse_local};
use super::{Nav, error_page, fmt_time, ui_error};
use crate::AppState;
use crate::auth::{Auth, urlencode};
use crate::error::ApiError;

/// Messages per page.
const PAGE_SIZE: u32 = 50;
/// File rows and messages a preview shows unless asked for another number.
const PREVIEW_ROWS: usize = 20;
/// The most rows a preview shows.
const MAX_PREVIEW_ROWS: usize = 1000;

/// One checkbox of a filter.
pub(crate) struct Check {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

pub(crate) struct MessageRow {
    pub id: i64,
    pub contact_id: i64,
    pub contact: String,
    pub channel: &'static str,
    pub message_type: &'static str,
    pub direction: &'static str,
    pub sent: String,
    pub sent_iso: String,
    pub body: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations.html")]
struct ConversationsPage {
    nav: Nav,
    errors: Vec<String>,
    channels: Vec<Check>,
    types: Vec<Check>,
    directions: Vec<Check>,
    from: String,
    to: String,
    contact: String,
    contact_name: Option<String>,
    time_zone: String,
    total: String,
    by: Vec<(String, String)>,
    rows: Vec<MessageRow>,
    older_link: Option<String>,
    filtered: bool,
}

/// The filters as the form sends them (checkbox groups repeat their name).
#[derive(Default)]
struct Params {
    channel: Vec<String>,
    message_type: Vec<String>,
    direction: Vec<String>,
    from: String,
    to: String,
    contact: String,
    before: String,
}

impl Params {
    fn read(raw: Option<&str>) -> Params {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let v = v.trim().to_string();
            match k.as_ref() {
                "channel" => p.channel.push(v),
                "type" => p.message_type.push(v),
                "direction" => p.direction.push(v),
                "from" => p.from = v,
                "to" => p.to = v,
                "contact" => p.contact = v,
                "before" => p.before = v,
                _ => {}
            }
        }
        p
    }

    /// The query string of these filters (without the cursor).
    fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, list) in [
            ("channel", &self.channel),
            ("type", &self.message_type),
            ("direction", &self.direction),
        ] {
            parts.extend(list.iter().map(|v| format!("{k}={}", urlencode(v))));
        }
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("contact", &self.contact),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", urlencode(v)));
            }
        }
        parts.join("&")
    }
}

/// Reads a checkbox group; an unknown value is an error naming the group.
fn parse_list<T: std::str::FromStr>(
    values: &[String],
    label: &str,
    errors: &mut Vec<String>,
) -> Vec<T> {
    let mut out = Vec::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        match v.parse() {
            Ok(x) => out.push(x),
            Err(_) => errors.push(format!("{label}: \"{v}\" is not one of the choices.")),
        }
    }
    out
}

fn checks<T: Copy + PartialEq>(
    all: &[T],
    chosen: &[T],
    value: impl Fn(T) -> &'static str,
    label: impl Fn(T) -> &'static str,
) -> Vec<Check> {
    all.iter()
        .map(|x| Check {
            value: value(*x),
            label: label(*x),
            checked: chosen.contains(x),
        })
        .collect()
}

fn by_counts(c: &MessageCounts) -> Vec<(String, String)> {
    let mut out = Vec::new();
    out.extend(
        c.channels
            .iter()
            .map(|(k, n)| (k.label().to_string(), fmt_count(*n))),
    );
    out.extend(
        c.types
            .iter()
            .map(|(k, n)| (k.label().to_string(), fmt_count(*n))),
    );
    out.extend(
        c.directions
            .iter()
            .map(|(k, n)| (k.label().to_string(), fmt_count(*n))),
    );
    out
}

/// `GET /conversations`: messages across contacts with filters and counts.
pub async fn page(State(state): State<AppState>, auth: Auth, RawQuery(raw): RawQuery) -> Response {
    let inst = &auth.principal.institution;
    let tz = TimeZone::get(&inst.time_zone).unwrap_or(TimeZone::UTC);
    let p = Params::read(raw.as_deref());
    let mut errors = Vec::new();
    let channels: Vec<Channel> = parse_list(&p.channel, "Channel", &mut errors);
    let types: Vec<MessageType> = parse_list(&p.message_type, "Type", &mut errors);
    let directions: Vec<Direction> = parse_list(&p.direction, "Direction", &mut errors);
    let mut q = MessageQuery {
        channels: channels.clone(),
        types: types.clone(),
        directions: directions.clone(),
        newest_first: true,
        limit: PAGE_SIZE,
        ..Default::default()
    };
    for (raw, end, label) in [(&p.from, false, "From"), (&p.to, true, "To")] {
        if raw.is_empty() {
            continue;
        }
        match parse_local(raw, &tz, end) {
            Some(t) if end => q.sent_to = Some(t),
            Some(t) => q.sent_from = Some(t),
            None => errors.push(format!(
                "{label} must be a date and time such as 2026-09-01T14:00."
            )),
        }
    }
    if let (Some(f), Some(t)) = (q.sent_from, q.sent_to)
        && f > t
    {
        errors.push("To must not be before From.".to_string());
        q.sent_to = None;
    }
    let mut contact_name = None;
    if !p.contact.is_empty() {
        match p.contact.trim_start_matches('#').parse::<i64>() {
            Ok(id) if id > 0 => match state.store.contact(inst.id, id).await {
                Ok(c) => {
                    contact_name = Some(c.data.display_name());
                    q.contact_id = Some(id);
                }
                Err(ferry_store::StoreError::NotFound) => {
                    errors.push(format!("There is no contact with the ID {id}."));
                }
                Err(e) => return ui_error(e.into()),
            },
            _ => errors.push(
                "Contact must be a contact's ID (a whole number), as the contact's page shows it."
                    .to_string(),
            ),
        }
    }
    q.before_sequence = p.before.parse::<i64>().ok().filter(|b| *b > 0);
    let (messages, counts) = match tokio::try_join!(
        state.store.list_messages(inst.id, &q),
        state.store.count_messages(inst.id, &q)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    let ids: Vec<i64> = messages.iter().map(|m| m.contact_id).collect();
    let names = match state.store.contacts_by_ids(inst.id, &ids).await {
        Ok(c) => c,
        Err(e) => return ui_error(e.into()),
    };
    let filters = p.query();
    let older_link = (messages.len() >= PAGE_SIZE as usize)
        .then(|| messages.last().map(|m| m.sequence))
        .flatten()
        .map(|seq| format!("/conversations?{filters}&before={seq}"));
    let rows = messages
        .into_iter()
        .map(|m| MessageRow {
            id: m.id,
            contact_id: m.contact_id,
            contact: names
                .get(&m.contact_id)
                .map(|c| c.data.display_name())
                .unwrap_or_else(|| format!("#{}", m.contact_id)),
            channel: m.channel.label(),
            message_type: m.message_type.label(),
            direction: m.direction.label(),
            sent: fmt_time(m.sent_at, &inst.time_zone),
            sent_iso: m.sent_at.to_string(),
            body: m.body,
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = ConversationsPage {
        nav: Nav::new(&state, &auth, "conversations"),
        channels: checks(Channel::ALL, &channels, |c| c.as_str(), |c| c.label()),
        types: checks(MessageType::ALL, &types, |c| c.as_str(), |c| c.label()),
        directions: checks(Direction::ALL, &directions, |c| c.as_str(), |c| c.label()),
        errors,
        from: p.from.clone(),
        to: p.to.clone(),
        contact: p.contact.clone(),
        contact_name,
        time_zone: inst.time_zone.clone(),
        total: fmt_count(counts.total),
        by: by_counts(&counts),
        rows,
        older_link,
        filtered: !filters.is_empty(),
    };
    (status, page).into_response()
}

// ---- Preview next run ---------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "preview.html")]
struct PreviewPage {
    nav: Nav,
    name: String,
    type_label: String,
    platform_link: String,
    summary: String,
    total: String,
    file_name: Option<String>,
    file_rows: String,
    head: String,
    head_rows: u64,
    complete: bool,
    rows: Vec<MessageRow>,
    left_out: Vec<(i64, String, &'static str)>,
    csv_link: String,
    time_zone: String,
}

/// Reads `?rows=` (1 to [`MAX_PREVIEW_ROWS`], default [`PREVIEW_ROWS`]).
fn preview_rows(raw: Option<&str>) -> Result<usize, String> {
    let mut rows = PREVIEW_ROWS;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if k == "rows" {
            rows = match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_PREVIEW_ROWS).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "rows must be a whole number from 1 to {MAX_PREVIEW_ROWS}."
                    ));
                }
            }
        }
    }
    Ok(rows)
}

/// The integration and its connector's preview; `Err` is a finished error page.
async fn load_preview(
    state: &AppState,
    auth: &Auth,
    id: &str,
    rows: usize,
) -> Result<
    (
        ferry_store::Integration,
        ferry_connectors::explain::RunPreview,
    ),
    Response,
> {
    let id = crate::api::contacts::parse_id(id).map_err(super::ui_error)?;
    let i = state
        .store
        .integration(auth.institution_id(), id)
        .await
        .map_err(|e| ui_error(e.into()))?;
    let Some(connector) = state.registry.get(&i.kind).filter(|c| c.previews()) else {
        return Err(error_page(
            StatusCode::NOT_FOUND,
            "This kind of integration has no preview of its next run.",
        ));
    };
    match connector.preview(&state.store, &i, rows).await {
        Ok(Some(p)) => Ok((i, p)),
        Ok(None) => Err(error_page(
            StatusCode::NOT_FOUND,
            "This kind of integration has no preview of its next run.",
        )),
        Err(e) => Err(error_page(
            StatusCode::CONFLICT,
            &format!("The next run could not be previewed: {}", e.reason),
        )),
    }
}

/// `GET /settings/integrations/i/{id}/preview`: what the export's next run would send.
pub async fn preview_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let rows = match preview_rows(raw.as_deref()) {
        Ok(r) => r,
        Err(m) => return error_page(StatusCode::BAD_REQUEST, &m),
    };
    let (i, p) = match load_preview(&state, &auth, &id, rows).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let inst = &auth.principal.institution;
    let mut ids: Vec<i64> = p.left_out.iter().map(|(c, _)| *c).collect();
    ids.extend(p.messages.iter().map(|m| m.contact_id));
    let names = match state.store.contacts_by_ids(inst.id, &ids).await {
        Ok(c) => c,
        Err(e) => return ui_error(e.into()),
    };
    let name_of = |id: i64| {
        names
            .get(&id)
            .map(|c| c.data.display_name())
            .unwrap_or_else(|| format!("#{id}"))
    };
    let platform_link = state
        .registry
        .description(&i.kind)
        .map(|d| super::integrations::platform_url(d.platform.id))
        .unwrap_or_else(|| "/settings/integrations".to_string());
    PreviewPage {
        nav: Nav::new(&state, &auth, "integrations"),
        type_label: state.registry.label(&i.kind),
        name: i.name.clone(),
        platform_link,
        summary: p.summary.clone(),
        total: fmt_count(p.total),
        file_name: p.file_name.clone(),
        file_rows: fmt_count(p.file_rows as i64),
        head: String::from_utf8_lossy(&p.head).into_owned(),
        head_rows: p.head_rows,
        complete: p.complete(),
        rows: p
            .messages
            .iter()
            .map(|m| MessageRow {
                id: m.id,
                contact_id: m.contact_id,
                contact: name_of(m.contact_id),
                channel: m.channel.label(),
                message_type: m.message_type.label(),
                direction: m.direction.label(),
                sent: fmt_time(m.sent_at, &inst.time_zone),
                sent_iso: m.sent_at.to_string(),
                body: m.body.clone(),
            })
            .collect(),
        left_out: p
            .left_out
            .iter()
            .map(|(c, code)| (*c, name_of(*c), *code))
            .collect(),
        csv_link: format!("/settings/integrations/i/{}/preview.csv?rows={rows}", i.id),
        time_zone: inst.time_zone.clone(),
    }
    .into_response()
}

/// `GET /settings/integrations/i/{id}/preview.csv`: the first rows of the next run's file,
/// byte for byte as the run would write them.
pub async fn preview_csv(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let rows = match preview_rows(raw.as_deref()) {
        Ok(r) => r,
        Err(m) => return ui_error(ApiError::bad_request("invalid_value", m).field("rows")),
    };
    let (_, p) = match load_preview(&state, &auth, &id, rows).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = p
        .file_name
        .as_deref()
        .map(|n| format!("preview-{n}"))
        .unwrap_or_else(|| "preview.csv".to_string());
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        p.head,
    )
        .into_response()
}
