//! The integration screens, the same for every connector (seeds 000, 001 and 002): a platform's
//! page lists its Available instance types (green **Add New**) and its Configured instances
//! (Enabled switch, edit, Run now, delete with confirmation, the last run and the next), and one
//! configuration form, drawn from the kind's schema by [`super::form`], creates and edits them.
//!
//! Routes: `/settings/integrations/{platform}`, `/settings/integrations/new/{kind}`,
//! `/settings/integrations/i/{id}` (and `/enabled`, `/run`, `/delete`), and the form's
//! fragments `/settings/integrations/test` and `/settings/integrations/remote-fields`. Every
//! save goes through the integration service, as the API's and the CLI's do.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use ferry_connectors::describe::Description;
use ferry_connectors::service::{
    ConnectionTest, IntegrationChange, NewIntegrationInput, ServiceError, patch_to,
};
use ferry_connectors::{ConnectorContext, Secrets};
use ferry_core::contact::{DefaultField, PLATFORM_ID_FIELD};
use ferry_store::Integration;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::form::{self, Errors, FormContext, OAuthOffer, Posted, RemoteFields, Renderer};
use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;

/// Where a platform's page is.
pub fn platform_url(platform: &str) -> String {
    format!("/settings/integrations/{platform}")
}

fn back(platform: &str, notice: &str) -> Response {
    Redirect::to(&format!("{}?notice={notice}", platform_url(platform))).into_response()
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "The integration was created.",
        "saved" => "Your changes were saved.",
        "deleted" => "The integration was deleted.",
        "enabled" => "The integration is enabled.",
        "disabled" => {
            "The integration is disabled; it will not run until you enable it (Run now still works)."
        }
        "queued" => "A run was queued; follow it in Recent Runs.",
        _ => return None,
    })
}

#[derive(Deserialize, Default)]
/// A notice to show once (`?notice=created`, …).
pub struct NoticeParams {
    notice: Option<String>,
    /// The run that Run now queued.
    run: Option<String>,
}

// ---- The platform page -------------------------------------------------------------------

struct Available {
    kind: &'static str,
    label: &'static str,
    title: &'static str,
    summary: &'static str,
}

struct Row {
    id: i64,
    name: String,
    description: String,
    type_label: &'static str,
    enabled: bool,
    last_run: Option<(String, String, Option<String>)>,
    /// The last run, for the link to its details.
    last_run_id: Option<i64>,
    /// Whether the connector can preview the next run.
    preview: bool,
    next_run: String,
    /// Where it sends or reads (the connector's summary) and the account it uses, if any.
    details: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "platform.html")]
struct PlatformPage {
    nav: Nav,
    name: &'static str,
    summary: &'static str,
    /// The platform's own page, if it has one.
    page: Option<&'static str>,
    available: Vec<Available>,
    rows: Vec<Row>,
    notice: Option<&'static str>,
    /// After Run now: the queued run, for the notice's link.
    queued_run: Option<i64>,
}

/// When an instance runs next, in words: the next slot of its schedule (the first run of a new
/// one), within seconds of a change, or only when run by hand.
pub(crate) fn next_run(state: &AppState, i: &Integration, has_run: bool, tz: &str) -> String {
    let Some(connector) = state.registry.get(&i.kind) else {
        return String::new();
    };
    if !i.enabled {
        return "Not while disabled (Run now still works)".to_string();
    }
    let now = jiff::Timestamp::now();
    let scheduled = connector
        .schedule(&i.config)
        .and_then(|s| s.next_slot(now.max(i.created_at)));
    let first = if has_run { "" } else { "First run: " };
    match (scheduled, connector.runs_on_change()) {
        (Some(t), false) => format!("{first}{}", fmt_time(t, tz)),
        (Some(t), true) => format!(
            "{first}within seconds of a contact change, and at {}",
            fmt_time(t, tz)
        ),
        (None, true) if has_run => "Within seconds of a contact change".to_string(),
        (None, true) => {
            "First run: within seconds (it sends every contact, then each change)".to_string()
        }
        (None, false) => "Only with Run now (no schedule)".to_string(),
    }
}

/// What the list says of an instance besides its name: the connector's summary, and for a
/// kind with an OAuth account field, the account (or that it uses no account).
fn details(
    state: &AppState,
    d: &Description,
    i: &Integration,
    accounts: &[(i64, String)],
) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(s) = state
        .registry
        .get(&i.kind)
        .and_then(|c| c.instance_summary(&i.config))
    {
        parts.push(s);
    }
    if let Some((name, _)) = form::field_with_widget(d, "oauth_account") {
        let key = name.trim_start_matches("config.");
        let at = format!("/{}", key.replace('.', "/"));
        parts.push(match i.config.pointer(&at).and_then(Value::as_i64) {
            Some(id) => accounts.iter().find(|(a, _)| *a == id).map_or_else(
                || format!("account #{id} (no longer connected)"),
                |(_, l)| l.clone(),
            ),
            None => "No connected account (access token)".to_string(),
        });
    }
    parts.join(" · ")
}

/// A platform's page: its instance types and the institution's instances of them.
pub async fn platform_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(platform): Path<String>,
    Query(p): Query<NoticeParams>,
) -> Response {
    let Some((_, info, kinds)) = state
        .registry
        .platforms()
        .into_iter()
        .find(|(_, pl, _)| pl.id == platform)
    else {
        return ui_error(ApiError::not_found());
    };
    let inst = auth.institution_id();
    let tz = auth.principal.institution.time_zone.clone();
    let all = match state.store.list_integrations(inst).await {
        Ok(all) => all,
        Err(e) => return ui_error(e.into()),
    };
    // The accounts of the platform's OAuth providers, for the rows that use one.
    let mut accounts: Vec<(i64, String)> = Vec::new();
    let mut providers: Vec<&str> = kinds.iter().filter_map(|d| d.oauth_provider).collect();
    providers.dedup();
    for p in providers {
        match state.store.crm_accounts(inst, p).await {
            Ok(list) => accounts.extend(list.into_iter().map(|a| (a.id, a.label))),
            Err(e) => return ui_error(e.into()),
        }
    }
    let mut rows = Vec::new();
    for i in all {
        let Some(d) = kinds.iter().find(|d| d.kind == i.kind) else {
            continue;
        };
        let last = match state
            .store
            .list_runs(
                inst,
                &ferry_store::RunQuery {
                    integration_id: Some(i.id),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
        {
            Ok(r) => r.into_iter().next(),
            Err(e) => return ui_error(e.into()),
        };
        rows.push(Row {
            id: i.id,
            type_label: d.label,
            last_run: last.as_ref().map(|r| {
                (
                    r.status.label().to_string(),
                    r.started_at
                        .or(r.finished_at)
                        .map(|t| fmt_time(t, &tz))
                        .unwrap_or_else(|| "not started yet".to_string()),
                    r.error.clone(),
                )
            }),
            last_run_id: last.as_ref().map(|r| r.id),
            preview: state.registry.get(&i.kind).is_some_and(|c| c.previews()),
            next_run: next_run(&state, &i, last.is_some(), &tz),
            details: details(&state, d, &i, &accounts),
            name: i.name,
            description: i.description,
            enabled: i.enabled,
        });
    }
    PlatformPage {
        nav: Nav::new(&state, &auth, info.id),
        name: info.name,
        summary: info.summary,
        page: info.page,
        available: kinds
            .iter()
            .map(|d| Available {
                kind: d.kind,
                label: d.label,
                title: d.title,
                summary: d.summary,
            })
            .collect(),
        rows,
        notice: p.notice.as_deref().and_then(notice_text),
        queued_run: p
            .run
            .as_deref()
            .and_then(|r| r.parse().ok())
            .filter(|_| p.notice.as_deref() == Some("queued")),
    }
    .into_response()
}

// ---- Row actions -------------------------------------------------------------------------

/// The institution's integration `id` with its description.
async fn instance(
    state: &AppState,
    auth: &Auth,
    id: &str,
) -> Result<(Integration, Description), Response> {
    let id = crate::api::contacts::parse_id(id).map_err(ui_error)?;
    let i = state
        .store
        .integration(auth.institution_id(), id)
        .await
        .map_err(|e| ui_error(e.into()))?;
    match state.registry.description(&i.kind) {
        Some(d) => Ok((i, d.clone())),
        None => Err(ui_error(ApiError::not_found())),
    }
}

/// The Enabled switch.
pub async fn toggle(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    let (i, d) = match instance(&state, &auth, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state
        .service
        .set_enabled(auth.institution_id(), i.id, !i.enabled)
        .await
    {
        Ok(_) => back(
            d.platform.id,
            if i.enabled { "disabled" } else { "enabled" },
        ),
        Err(e) => ui_error(e.into()),
    }
}

/// Run now.
pub async fn run(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    let (i, d) = match instance(&state, &auth, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.service.run_now(auth.institution_id(), i.id).await {
        Ok(run) => Redirect::to(&format!(
            "{}?notice=queued&run={run}",
            platform_url(d.platform.id)
        ))
        .into_response(),
        Err(e) => ui_error(e.into()),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "confirm_delete.html")]
struct DeletePage {
    nav: Nav,
    name: String,
    type_label: &'static str,
    action: String,
    cancel: String,
}

/// Asks before deleting.
pub async fn delete_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    match instance(&state, &auth, &id).await {
        Ok((i, d)) => DeletePage {
            nav: Nav::new(&state, &auth, d.platform.id),
            type_label: d.label,
            action: format!("/settings/integrations/i/{}/delete", i.id),
            name: i.name,
            cancel: platform_url(d.platform.id),
        }
        .into_response(),
        Err(r) => r,
    }
}

/// Deletes.
pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    let (i, d) = match instance(&state, &auth, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.service.delete(auth.institution_id(), i.id).await {
        Ok(()) => back(d.platform.id, "deleted"),
        Err(e) => ui_error(e.into()),
    }
}

// ---- The configuration form --------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "integration_form.html")]
struct FormPage {
    nav: Nav,
    kind: &'static str,
    heading: String,
    type_label: &'static str,
    platform_id: &'static str,
    platform_name: &'static str,
    action: String,
    id: Option<i64>,
    name: String,
    description: String,
    enabled: bool,
    submit: String,
    /// The config's cards, drawn by the renderer.
    body: String,
    /// How many problems the save had; the summary lists them with links.
    summary: Vec<(String, String, bool)>,
    egress_ips: Vec<String>,
    shows_egress: bool,
    name_error: Vec<String>,
    description_error: Vec<String>,
    focus_name: bool,
    focus_description: bool,
}

/// The institution's contact fields, as widgets offer them.
async fn field_options(state: &AppState, inst: i64) -> Result<Vec<(String, String)>, Response> {
    let customs = state
        .store
        .custom_fields(inst)
        .await
        .map_err(|e| ui_error(e.into()))?;
    let mut out: Vec<(String, String)> = vec![(PLATFORM_ID_FIELD.into(), "Platform ID".into())];
    out.extend(
        DefaultField::ALL
            .iter()
            .filter(|d| **d != DefaultField::TestUser)
            .map(|d| (d.as_str().to_string(), d.label().to_string())),
    );
    out.extend(customs.into_iter().map(|c| (c.name, c.label)));
    Ok(out)
}

/// The OAuth accounts a kind with a provider offers.
async fn oauth_offer(
    state: &AppState,
    inst: i64,
    d: &Description,
) -> Result<Option<OAuthOffer>, Response> {
    let Some(provider) = d.oauth_provider else {
        return Ok(None);
    };
    let accounts = state
        .store
        .crm_accounts(inst, provider)
        .await
        .map_err(|e| ui_error(e.into()))?;
    let configured = crate::ui::connect::provider(state, provider);
    Ok(Some(OAuthOffer {
        name: d.platform.name.to_string(),
        start_url: configured
            .as_ref()
            .filter(|p| p.is_configured())
            .map(|_| format!("/oauth/{provider}/start")),
        setup_hint: configured
            .map(|p| p.setup_hint().to_string())
            .unwrap_or_default(),
        accounts: accounts.into_iter().map(|a| (a.id, a.label)).collect(),
    }))
}

/// The remote's properties for a data mapping, read with the account or token the form names
/// (the saved secrets stand in for empty ones when editing).
async fn remote_fields(
    state: &AppState,
    inst: i64,
    d: &Description,
    id: Option<i64>,
    config: &Value,
    secrets: &Map<String, Value>,
) -> Option<RemoteFields> {
    form::field_with_widget(d, "data_mapping")?;
    let connector = state.registry.get(d.kind)?;
    let secrets = match id {
        Some(id) => match state.service.secrets_with(inst, id, secrets.clone()).await {
            Ok(s) => s,
            Err(e) => return Some(RemoteFields::Unavailable(e.to_string())),
        },
        None => secrets
            .iter()
            .filter(|(_, v)| v.as_str().is_some_and(|s| !s.is_empty()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let ctx = ConnectorContext::new(inst, id, config.clone(), Secrets::from_json(secrets))
        .with_store(state.store.clone());
    let listed = tokio::time::timeout(
        state.service.remote_timeout(),
        connector.remote_properties(&ctx),
    )
    .await;
    Some(match listed {
        Ok(Ok(Some(mut props))) => {
            props.sort_by_cached_key(|p| p.label.to_lowercase());
            RemoteFields::Listed(props.into_iter().map(|p| (p.name, p.label)).collect())
        }
        Ok(Ok(None)) => RemoteFields::Unavailable("this kind has no data mapping".into()),
        Ok(Err(e)) => RemoteFields::Unavailable(e.reason),
        Err(_) => RemoteFields::Unavailable(format!(
            "no answer within {} s",
            state.service.remote_timeout().as_secs()
        )),
    })
}

/// The values a form shows.
struct Shown {
    name: String,
    description: String,
    enabled: bool,
    config: Value,
    secrets: Map<String, Value>,
}

#[allow(clippy::too_many_arguments)]
async fn render_form(
    state: &AppState,
    auth: &Auth,
    status: StatusCode,
    d: &Description,
    id: Option<i64>,
    shown: Shown,
    errors: Errors,
    posted: Option<&Posted>,
) -> Response {
    let inst = auth.institution_id();
    let field_options = match field_options(state, inst).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let oauth = match oauth_offer(state, inst, d).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let secrets_set = match id {
        Some(id) => match state.store.integration(inst, id).await {
            Ok(i) => i.secrets_set,
            Err(e) => return ui_error(e.into()),
        },
        None => Vec::new(),
    };
    let remote = remote_fields(state, inst, d, id, &shown.config, &shown.secrets).await;
    let kept: BTreeMap<String, String> = posted
        .map(|p| {
            p.typed
                .iter()
                .map(|(n, v)| {
                    (
                        n.clone(),
                        state.store.seal_text(&kept_context(inst, d.kind, n), v),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let opt_in_paths = if form::field_with_widget(d, "opt_in_path").is_some() {
        match state.store.opt_in_paths(inst).await {
            Ok(p) => p.into_iter().map(|p| (p.id, p.name)).collect(),
            Err(e) => return ui_error(e.into()),
        }
    } else {
        Vec::new()
    };
    let ctx = FormContext {
        field_options,
        remote,
        oauth,
        opt_in_paths,
        secrets_set,
        kept,
        raw: posted.map(|p| p.raw.clone()).unwrap_or_default(),
        id,
    };
    let renderer = Renderer::new(d, &ctx, &errors, &shown.config);
    let body = renderer.render();
    let focus_name = errors.has("name");
    let focus_description = !focus_name && errors.has("description");
    // The summary: the details' errors, then the config's in the form's order, each with
    // the label of its field and a link to it.
    let mut summary: Vec<(String, String, bool)> = Vec::new();
    for (key, label) in [("name", "Name"), ("description", "Description")] {
        for m in errors.of(key) {
            summary.push((key.to_string(), labelled(label, m), true));
        }
    }
    for (key, label, m) in renderer.summary() {
        if key == "name" || key == "description" {
            continue;
        }
        match label {
            Some(l) => summary.push((form::input_id(&key), labelled(&l, &m), true)),
            None => summary.push((String::new(), m, false)),
        }
    }
    let page = FormPage {
        nav: Nav::new(state, auth, d.platform.id),
        kind: d.kind,
        heading: match id {
            Some(_) => shown.name.clone(),
            None => format!("New {}", d.title),
        },
        type_label: d.label,
        platform_id: d.platform.id,
        platform_name: d.platform.name,
        action: match id {
            Some(id) => format!("/settings/integrations/i/{id}"),
            None => format!("/settings/integrations/new/{}", d.kind),
        },
        id,
        name: shown.name,
        description: shown.description,
        enabled: shown.enabled,
        submit: d
            .config_schema
            .get("x-ferry-submit")
            .and_then(Value::as_str)
            .unwrap_or("Save")
            .to_string(),
        body,
        summary,
        shows_egress: d.category == ferry_connectors::describe::Category::SftpOutbound,
        egress_ips: state.config.egress_ips.clone(),
        name_error: errors.of("name").to_vec(),
        description_error: errors.of("description").to_vec(),
        focus_name,
        focus_description,
    };
    (status, page).into_response()
}

/// "Label: message", unless the message names the field itself ("name is required").
fn labelled(label: &str, message: &str) -> String {
    if message.to_lowercase().starts_with(&label.to_lowercase()) {
        let mut c = message.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    } else {
        format!("{label}: {message}")
    }
}

/// The context a secret typed into a failed save is sealed under: it opens only for the same
/// institution, kind and secret.
fn kept_context(inst: i64, kind: &str, name: &str) -> String {
    format!("form-secret/{inst}/{kind}/{name}")
}

/// The form of a new instance of `kind`, from the kind's default config.
pub async fn new_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(kind): Path<String>,
) -> Response {
    let Some(d) = state.registry.description(&kind).cloned() else {
        return ui_error(ApiError::not_found());
    };
    let shown = Shown {
        name: String::new(),
        description: String::new(),
        enabled: true,
        config: d.default_config.clone(),
        secrets: Map::new(),
    };
    render_form(
        &state,
        &auth,
        StatusCode::OK,
        &d,
        None,
        shown,
        Errors::default(),
        None,
    )
    .await
}

/// The form of a saved instance.
pub async fn edit_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let (i, d) = match instance(&state, &auth, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let shown = Shown {
        name: i.name,
        description: i.description,
        enabled: i.enabled,
        config: i.config,
        secrets: Map::new(),
    };
    render_form(
        &state,
        &auth,
        StatusCode::OK,
        &d,
        Some(i.id),
        shown,
        Errors::default(),
        None,
    )
    .await
}

/// The posted pairs.
fn pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads a posted form of `d`'s kind.
fn read_posted(state: &AppState, inst: i64, d: &Description, pairs: &[(String, String)]) -> Posted {
    let store = state.store.clone();
    let kind = d.kind;
    form::read(d, pairs, &move |name, sealed| {
        store.open_text(&kept_context(inst, kind, name), sealed)
    })
}

/// Creates or saves: every problem found without the remote is shown at once; then the
/// service saves (after the remote's check, whose refusal is shown the same way).
async fn save_form(
    state: &AppState,
    auth: &Auth,
    d: &Description,
    id: Option<i64>,
    body: &[u8],
) -> Response {
    let inst = auth.institution_id();
    let pairs = pairs(body);
    let posted = read_posted(state, inst, d, &pairs);
    let name = one(&pairs, "name").unwrap_or("").to_string();
    let description = one(&pairs, "description").unwrap_or("").to_string();
    let enabled = matches!(one(&pairs, "enabled"), Some("on" | "true"));
    let mut errors = posted.errors.clone();
    let problems = match state
        .service
        .problems(
            inst,
            d.kind,
            id,
            &name,
            &description,
            &posted.config,
            &posted.secrets,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return ui_error(e.into()),
    };
    for p in problems {
        add_service_error(&mut errors, &p);
    }
    let mut shown = Shown {
        name,
        description,
        enabled,
        config: posted.config.clone(),
        secrets: posted.secrets.clone(),
    };
    if errors.is_empty() {
        let saved = match id {
            None => state
                .service
                .create(
                    inst,
                    NewIntegrationInput {
                        kind: d.kind.to_string(),
                        name: shown.name.clone(),
                        description: shown.description.clone(),
                        enabled,
                        config: posted.config.clone(),
                        secrets: posted.secrets.clone(),
                    },
                )
                .await
                .map(|_| "created"),
            Some(id) => {
                let current = match state.store.integration(inst, id).await {
                    Ok(i) => i,
                    Err(e) => return ui_error(e.into()),
                };
                state
                    .service
                    .update(
                        inst,
                        id,
                        IntegrationChange {
                            name: Some(shown.name.clone()),
                            description: Some(shown.description.clone()),
                            enabled: Some(enabled),
                            config: Some(patch_to(&current.config, &posted.config)),
                            secrets: Some(posted.secrets.clone()),
                        },
                    )
                    .await
                    .map(|_| "saved")
            }
        };
        match saved {
            Ok(notice) => return back(d.platform.id, notice),
            Err(
                e @ (ServiceError::Store(_) | ServiceError::Internal(_) | ServiceError::NotFound),
            ) => {
                return ui_error(e.into());
            }
            Err(e) => add_service_error(&mut errors, &e),
        }
    }
    // What was typed stays; secrets come back sealed, never as text.
    shown.secrets = posted.secrets.clone();
    render_form(
        state,
        auth,
        StatusCode::UNPROCESSABLE_ENTITY,
        d,
        id,
        shown,
        errors,
        Some(&posted),
    )
    .await
}

fn add_service_error(errors: &mut Errors, e: &ServiceError) {
    match e {
        ServiceError::Invalid { field, message, .. } => errors.add(field, message),
        other => errors.add("config", &other.to_string()),
    }
}

/// Creates an instance of `kind` from the posted form.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Path(kind): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(d) = state.registry.description(&kind).cloned() else {
        return ui_error(ApiError::not_found());
    };
    save_form(&state, &auth, &d, None, &body).await
}

/// Saves a saved instance from the posted form.
pub async fn save(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (i, d) = match instance(&state, &auth, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    save_form(&state, &auth, &d, Some(i.id), &body).await
}

/// The kind and saved instance a form fragment is for (hidden `type` and `id`).
async fn form_of(
    state: &AppState,
    auth: &Auth,
    pairs: &[(String, String)],
) -> Result<(Description, Option<i64>), Response> {
    match one(pairs, "id").filter(|s| !s.is_empty()) {
        Some(id) => instance(state, auth, id)
            .await
            .map(|(i, d)| (d, Some(i.id))),
        None => {
            let kind = one(pairs, "type").unwrap_or("");
            state
                .registry
                .description(kind)
                .cloned()
                .map(|d| (d, None))
                .ok_or_else(|| ui_error(ApiError::not_found()))
        }
    }
}

/// Test Connection with the values in the form (saved secrets stand in for empty ones): an
/// htmx fragment. A field the test learns (an SFTP server's host key) is filled in when empty.
pub async fn test(State(state): State<AppState>, auth: Auth, body: axum::body::Bytes) -> Response {
    let inst = auth.institution_id();
    let pairs = pairs(&body);
    let (d, id) = match form_of(&state, &auth, &pairs).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let posted = read_posted(&state, inst, &d, &pairs);
    let secrets = match id {
        Some(id) => match state
            .service
            .secrets_with(inst, id, posted.secrets.clone())
            .await
        {
            Ok(s) => s,
            Err(e) => return ui_error(e.into()),
        },
        None => posted.secrets.clone(),
    };
    let outcome = state
        .service
        .test_connection(
            inst,
            ConnectionTest {
                kind: d.kind.to_string(),
                integration_id: id,
                config: posted.config.clone(),
                secrets,
                saved_settings: false,
            },
        )
        .await;
    let mut html = String::new();
    match outcome {
        Ok(o) if o.ok => {
            html.push_str(&format!(
                "<div class=\"alert alert-ok\" role=\"status\" id=\"test-outcome\"><strong>Connection succeeded.</strong> {}",
                form::esc(&o.message)
            ));
            let mut fill = String::new();
            for (input, detail, title) in form::learned_fields(&d) {
                let Some(v) = o.detail.get(&detail).and_then(Value::as_str) else {
                    continue;
                };
                let empty = one(&pairs, &input).is_none_or(|x| x.trim().is_empty());
                html.push_str(&format!(
                    "<br>{}: <code id=\"seen-{}\">{}</code>{}",
                    form::esc(&title),
                    form::esc(&detail),
                    form::esc(v),
                    if empty {
                        " (it will be saved with the integration)"
                    } else {
                        ""
                    }
                ));
                if empty {
                    fill.push_str(&format!(
                        "<input id=\"{}\" name=\"{}\" type=\"text\" autocomplete=\"off\" value=\"{}\" hx-swap-oob=\"true\">",
                        form::input_id(&input),
                        form::esc(&input),
                        form::esc(v)
                    ));
                }
            }
            html.push_str("</div>");
            html.push_str(&fill);
        }
        Ok(o) => html.push_str(&format!(
            "<div class=\"alert alert-error\" role=\"alert\" id=\"test-outcome\"><strong>Connection failed.</strong> {}</div>",
            form::esc(&o.message)
        )),
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::RemoteTimedOut { .. })) => {
            let mut errors = Errors::default();
            add_service_error(&mut errors, &e);
            let message = errors
                .all()
                .iter()
                .map(|(_, m)| m.clone())
                .collect::<Vec<_>>()
                .join(" ");
            html.push_str(&format!(
                "<div class=\"alert alert-error\" role=\"alert\" id=\"test-outcome\"><strong>Connection failed.</strong> {}</div>",
                form::esc(&message)
            ));
        }
        Err(e) => return ui_error(e.into()),
    }
    Html(html).into_response()
}

/// The data mapping again, with the remote's properties read with the credentials now in the
/// form: an htmx fragment.
pub async fn remote_fields_fragment(
    State(state): State<AppState>,
    auth: Auth,
    body: axum::body::Bytes,
) -> Response {
    let inst = auth.institution_id();
    let pairs = pairs(&body);
    let (d, id) = match form_of(&state, &auth, &pairs).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some((name, schema)) = form::field_with_widget(&d, "data_mapping") else {
        return ui_error(ApiError::not_found());
    };
    let posted = read_posted(&state, inst, &d, &pairs);
    let field_options = match field_options(&state, inst).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let ctx = FormContext {
        field_options,
        remote: remote_fields(&state, inst, &d, id, &posted.config, &posted.secrets).await,
        id,
        ..Default::default()
    };
    Html(form::render_widget(
        &d,
        &ctx,
        &posted.config,
        &name,
        &schema,
    ))
    .into_response()
}

// ---- Old addresses -----------------------------------------------------------------------

/// A screen that moved: 303 to its new address.
fn moved(to: String) -> Response {
    Redirect::to(&to).into_response()
}

/// The platform of an old list address (`/settings/sftp`): its platform page.
pub async fn old_list(State(state): State<AppState>) -> Response {
    let platform = state
        .registry
        .platforms()
        .into_iter()
        .find(|(c, _, _)| *c == ferry_connectors::describe::Category::SftpOutbound)
        .map(|(_, p, _)| p.id)
        .unwrap_or("");
    moved(platform_url(platform))
}

#[derive(Deserialize, Default)]
/// The kind an old address named (`?type=`).
pub struct TypeParam {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// An old "new" address (`…/new?type=KIND`): the kind's form.
pub async fn old_new(Query(p): Query<TypeParam>) -> Response {
    match p.kind {
        Some(k) => moved(format!("/settings/integrations/new/{k}")),
        None => moved("/settings/integrations".to_string()),
    }
}

/// An old instance address (`/settings/sftp/{id}`): the instance's form.
pub async fn old_instance(Path(id): Path<String>) -> Response {
    match id.parse::<i64>() {
        Ok(id) => moved(format!("/settings/integrations/i/{id}")),
        Err(_) => ui_error(ApiError::not_found()),
    }
}

/// An old instance address under its platform (`/settings/integrations/{platform}/{id}`).
pub async fn old_platform_instance(Path((_, id)): Path<(String, String)>) -> Response {
    old_instance(Path(id)).await
}
