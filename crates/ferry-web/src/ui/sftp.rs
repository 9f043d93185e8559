//! Settings → SFTP Outbound (seed 000): the list of export instances with their Enabled toggle
//! and actions, "+ New Integration", and the configuration screen with Test Connection.
//!
//! The screens build the same requests as the API (`api::integrations`) and go through the same
//! validation, so a form error names the same field an API client would see.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_connectors::service::ConnectionTest;
use ferry_connectors::sftp_export::ExportKind;
use ferry_connectors::sftp_export::eab::Placeholder;
use ferry_core::contact::DefaultField;
use ferry_core::message::{Channel, Direction, MessageType};
use ferry_core::schedule::block_label;
use ferry_store::Integration;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::instances::List;
use super::{Nav, fmt_time, ui_error};
use crate::AppState;
use crate::api::integrations::{
    CreateIntegration, PatchIntegration, create_integration, merge_patch, patch_integration,
    test_connection,
};
use crate::auth::Auth;
use crate::error::ApiError;

/// The note body a new EAB export starts with.
const DEFAULT_NOTE_BODY: &str = "{channel} {direction} message on {date}: {message} {url}";

/// The form's values, as strings the way the browser sends them.
#[derive(Debug, Clone, Default)]
pub struct SftpForm {
    kind: String,
    name: String,
    description: String,
    enabled: bool,
    host: String,
    port: String,
    username: String,
    password: String,
    private_key: String,
    passphrase: String,
    clear_password: bool,
    clear_private_key: bool,
    clear_passphrase: bool,
    host_key: String,
    repin: bool,
    directory: String,
    file_prefix: String,
    blocks: Vec<String>,
    channels: Vec<String>,
    types: Vec<String>,
    directions: Vec<String>,
    fields: Vec<String>,
    filter_fields: Vec<String>,
    filter_values: Vec<String>,
    neutralize: bool,
    eab_import_version: String,
    eab_institution_id: String,
    eab_group_id: String,
    eab_dedupe_contacts: bool,
    eab_is_private: bool,
    eab_student_viewable: bool,
    eab_show_on_student_report: bool,
    eab_created_by: String,
    eab_note_reasons: String,
    eab_note_body: String,
}

fn s(v: &Value, p: &str) -> String {
    match v.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn b(v: &Value, p: &str) -> bool {
    v.pointer(p).and_then(Value::as_bool).unwrap_or(false)
}

fn list(v: &Value, p: &str) -> Vec<String> {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl SftpForm {
    /// A new instance's starting values.
    fn new_of(kind: ExportKind) -> SftpForm {
        SftpForm {
            kind: kind.kind().to_string(),
            enabled: true,
            port: "22".into(),
            blocks: vec!["0".into()],
            channels: Channel::ALL
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            types: MessageType::ALL
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            directions: Direction::ALL
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            fields: ["id", "first_name", "last_name", "phone", "email", "crm_id"]
                .map(String::from)
                .to_vec(),
            neutralize: kind != ExportKind::EabNotes,
            eab_group_id: "group_id".into(),
            eab_note_body: DEFAULT_NOTE_BODY.into(),
            ..Default::default()
        }
    }

    /// The values of a saved instance (secrets stay empty: they are write-only).
    fn of(i: &Integration) -> SftpForm {
        let c = &i.config;
        let kind = ExportKind::from_kind(&i.kind).unwrap_or(ExportKind::EabNotes);
        let filters = c
            .pointer("/contacts/filters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        SftpForm {
            kind: i.kind.clone(),
            name: i.name.clone(),
            description: i.description.clone(),
            enabled: i.enabled,
            host: s(c, "/sftp/host"),
            port: match s(c, "/sftp/port") {
                p if p.is_empty() => "22".into(),
                p => p,
            },
            username: s(c, "/sftp/username"),
            host_key: s(c, "/sftp/host_key"),
            directory: s(c, "/sftp/directory"),
            file_prefix: s(c, "/sftp/file_prefix"),
            blocks: list(c, "/schedule/blocks"),
            channels: list(c, "/filters/channels"),
            types: list(c, "/filters/types"),
            directions: list(c, "/filters/directions"),
            fields: list(c, "/contacts/fields"),
            filter_fields: filters.iter().map(|f| s(f, "/field")).collect(),
            filter_values: filters
                .iter()
                .map(|f| list(f, "/values").join(", "))
                .collect(),
            neutralize: c
                .get("neutralize_formulas")
                .and_then(Value::as_bool)
                .unwrap_or(kind != ExportKind::EabNotes),
            eab_import_version: s(c, "/eab/import_version"),
            eab_institution_id: s(c, "/eab/institution_id"),
            eab_group_id: s(c, "/eab/group_id"),
            eab_dedupe_contacts: b(c, "/eab/dedupe_contacts"),
            eab_is_private: b(c, "/eab/is_private"),
            eab_student_viewable: b(c, "/eab/student_viewable"),
            eab_show_on_student_report: b(c, "/eab/show_on_student_report"),
            eab_created_by: s(c, "/eab/created_by"),
            eab_note_reasons: s(c, "/eab/note_reasons"),
            eab_note_body: s(c, "/eab/note_body"),
            ..Default::default()
        }
    }

    /// The values a browser posted (repeated names for checkbox groups).
    fn parse(body: &[u8]) -> SftpForm {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let mut f = SftpForm::default();
        for (k, v) in pairs {
            let on = v == "on" || v == "true";
            match k.as_str() {
                "type" => f.kind = v,
                "name" => f.name = v,
                "description" => f.description = v,
                "enabled" => f.enabled = on,
                "host" => f.host = v,
                "port" => f.port = v,
                "username" => f.username = v,
                "password" => f.password = v,
                "private_key" => f.private_key = v,
                "passphrase" => f.passphrase = v,
                "clear_password" => f.clear_password = on,
                "clear_private_key" => f.clear_private_key = on,
                "clear_passphrase" => f.clear_passphrase = on,
                "host_key" => f.host_key = v,
                "repin" => f.repin = on,
                "directory" => f.directory = v,
                "file_prefix" => f.file_prefix = v,
                "blocks" => f.blocks.push(v),
                "channels" => f.channels.push(v),
                "types" => f.types.push(v),
                "directions" => f.directions.push(v),
                "fields" => f.fields.push(v),
                "filter_field" => f.filter_fields.push(v),
                "filter_values" => f.filter_values.push(v),
                "neutralize_formulas" => f.neutralize = on,
                "eab_import_version" => f.eab_import_version = v,
                "eab_institution_id" => f.eab_institution_id = v,
                "eab_group_id" => f.eab_group_id = v,
                "eab_dedupe_contacts" => f.eab_dedupe_contacts = on,
                "eab_is_private" => f.eab_is_private = on,
                "eab_student_viewable" => f.eab_student_viewable = on,
                "eab_show_on_student_report" => f.eab_show_on_student_report = on,
                "eab_created_by" => f.eab_created_by = v,
                "eab_note_reasons" => f.eab_note_reasons = v,
                "eab_note_body" => f.eab_note_body = v,
                _ => {}
            }
        }
        f
    }

    fn export_kind(&self) -> Option<ExportKind> {
        ExportKind::from_kind(&self.kind)
    }

    /// The config the form describes, whole; optional values left empty are `null` so that,
    /// applied as a merge patch, they clear what was saved.
    fn config(&self, kind: ExportKind) -> Value {
        let opt = |v: &str| {
            let v = v.trim();
            if v.is_empty() { Value::Null } else { json!(v) }
        };
        // A port that is not a number is sent as text, so that validation names the field.
        let port = match self.port.trim() {
            "" => json!(22),
            p => p
                .parse::<u64>()
                .map(|n| json!(n))
                .unwrap_or_else(|_| json!(p)),
        };
        let blocks: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| {
                b.parse::<u64>()
                    .map(|n| json!(n))
                    .unwrap_or_else(|_| json!(b))
            })
            .collect();
        let host_key = if self.repin {
            Value::Null
        } else {
            opt(&self.host_key)
        };
        let mut config = json!({
            "sftp": {
                "host": self.host.trim(),
                "port": port,
                "username": self.username.trim(),
                "directory": opt(&self.directory),
                "file_prefix": opt(&self.file_prefix),
                "host_key": host_key,
            },
            "schedule": { "blocks": blocks },
            "neutralize_formulas": self.neutralize,
        });
        match kind {
            ExportKind::Contacts => {
                let filters: Vec<Value> = self
                    .filter_fields
                    .iter()
                    .zip(
                        self.filter_values
                            .iter()
                            .chain(std::iter::repeat(&String::new())),
                    )
                    .filter(|(f, _)| !f.trim().is_empty())
                    .map(|(f, v)| {
                        let values: Vec<&str> = v
                            .split(',')
                            .map(str::trim)
                            .filter(|x| !x.is_empty())
                            .collect();
                        json!({ "field": f.trim(), "values": values })
                    })
                    .collect();
                config["contacts"] = json!({ "fields": self.fields, "filters": filters });
                config["filters"] = Value::Null;
                config["eab"] = Value::Null;
            }
            ExportKind::Conversations | ExportKind::EabNotes => {
                config["filters"] = json!({
                    "channels": self.channels,
                    "types": self.types,
                    "directions": self.directions,
                });
                config["contacts"] = Value::Null;
                config["eab"] = if kind == ExportKind::EabNotes {
                    json!({
                        "import_version": self.eab_import_version.trim(),
                        "institution_id": self.eab_institution_id.trim(),
                        "group_id": self.eab_group_id.trim(),
                        "dedupe_contacts": self.eab_dedupe_contacts,
                        "is_private": self.eab_is_private,
                        "student_viewable": self.eab_student_viewable,
                        "show_on_student_report": self.eab_show_on_student_report,
                        "created_by": self.eab_created_by.trim(),
                        "note_reasons": self.eab_note_reasons.trim(),
                        "note_body": self.eab_note_body,
                    })
                } else {
                    Value::Null
                };
            }
        }
        config
    }

    /// The config for a new instance: the form's, without the `null`s.
    fn new_config(&self, kind: ExportKind) -> Value {
        let mut config = json!({});
        merge_patch(&mut config, &self.config(kind));
        config
    }

    /// The secrets change: typed values replace, ticked "remove" boxes clear.
    fn secrets(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (name, value, clear) in [
            ("password", &self.password, self.clear_password),
            ("private_key", &self.private_key, self.clear_private_key),
            ("passphrase", &self.passphrase, self.clear_passphrase),
        ] {
            if !value.is_empty() {
                m.insert(name.into(), json!(value));
            } else if clear {
                m.insert(name.into(), Value::Null);
            }
        }
        m
    }

    fn has(&self, list: &[String], v: &str) -> bool {
        list.iter().any(|x| x == v)
    }
}

/// The form input an API error's field belongs to.
fn input_of(field: &str) -> String {
    let f = field.strip_prefix("config.").unwrap_or(field);
    let f = f.split('[').next().unwrap_or(f);
    match f {
        "sftp.host" => "host",
        "sftp.port" => "port",
        "sftp.username" => "username",
        "sftp.directory" => "directory",
        "sftp.file_prefix" => "file_prefix",
        "sftp.host_key" => "host_key",
        "schedule.blocks" | "schedule" => "blocks",
        "filters.channels" | "filters" => "channels",
        "filters.types" => "types",
        "filters.directions" => "directions",
        "contacts.fields" | "contacts" => "fields",
        "contacts.filters" => "filter_field",
        "secrets" | "secrets.password" => "password",
        "secrets.private_key" => "private_key",
        "secrets.passphrase" => "passphrase",
        other => return other.replace("eab.", "eab_"),
    }
    .to_string()
}

// ---- List --------------------------------------------------------------------------------

struct Row {
    id: i64,
    name: String,
    description: String,
    type_label: &'static str,
    enabled: bool,
    schedule: String,
    destination: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "sftp_list.html")]
struct ListPage {
    nav: Nav,
    rows: Vec<Row>,
    kinds: Vec<(&'static str, &'static str)>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct NoticeParams {
    notice: Option<String>,
}

fn schedule_summary(config: &Value) -> String {
    let mut blocks: Vec<u8> = list(config, "/schedule/blocks")
        .iter()
        .filter_map(|b| b.parse().ok())
        .collect();
    blocks.sort_unstable();
    if blocks.is_empty() {
        "Run by hand only".into()
    } else {
        let labels: Vec<String> = blocks.into_iter().map(block_label).collect();
        format!("{} (Eastern)", labels.join(", "))
    }
}

fn destination(config: &Value) -> String {
    let host = s(config, "/sftp/host");
    let dir = s(config, "/sftp/directory");
    let user = s(config, "/sftp/username");
    if dir.is_empty() {
        format!("{user}@{host}")
    } else {
        format!("{user}@{host}:{dir}")
    }
}

fn notice_text(code: &str) -> Option<String> {
    Some(
        match code {
            "created" => "The integration was created.",
            "saved" => "Your changes were saved.",
            "deleted" => "The integration was deleted.",
            "enabled" => "The integration is enabled; it runs in its schedule's blocks.",
            "disabled" => "The integration is disabled; it will not run on its schedule.",
            "queued" => "A run was queued; follow it in Recent Runs.",
            _ => return None,
        }
        .to_string(),
    )
}

pub async fn list_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<NoticeParams>,
) -> Response {
    let all = match state.store.list_integrations(auth.institution_id()).await {
        Ok(all) => all,
        Err(e) => return ui_error(e.into()),
    };
    let rows = all
        .iter()
        .filter_map(|i| {
            let kind = ExportKind::from_kind(&i.kind)?;
            Some(Row {
                id: i.id,
                name: i.name.clone(),
                description: i.description.clone(),
                type_label: kind.label(),
                enabled: i.enabled,
                schedule: schedule_summary(&i.config),
                destination: destination(&i.config),
            })
        })
        .collect();
    ListPage {
        nav: Nav::new(&auth, "sftp"),
        rows,
        kinds: ExportKind::ALL
            .iter()
            .map(|k| (k.kind(), k.label()))
            .collect(),
        notice: p.notice.as_deref().and_then(notice_text),
    }
    .into_response()
}

/// The SFTP Outbound list and its row actions.
const LIST: List = List {
    base: "/settings/sftp",
    nav: "sftp",
    label: |kind| ExportKind::from_kind(kind).map(ExportKind::label),
    consequence: "Files already on the server stay there.",
};

pub async fn toggle(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    LIST.toggle(&state, &auth, &id).await
}

pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    LIST.delete(&state, &auth, &id).await
}

pub async fn run(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    LIST.run(&state, &auth, &id).await
}

// ---- Configuration screen ----------------------------------------------------------------

struct Choice {
    value: String,
    label: String,
    checked: bool,
}

struct FilterRow {
    field: String,
    values: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "sftp_form.html")]
struct FormPage {
    nav: Nav,
    id: Option<i64>,
    kind: ExportKind,
    kind_label: &'static str,
    form: SftpForm,
    error: Option<String>,
    error_input: String,
    password_set: bool,
    private_key_set: bool,
    passphrase_set: bool,
    egress_ips: Vec<String>,
    blocks: Vec<Choice>,
    channels: Vec<Choice>,
    types: Vec<Choice>,
    directions: Vec<Choice>,
    fields: Vec<Choice>,
    field_options: Vec<(String, String)>,
    filters: Vec<FilterRow>,
    placeholders: Vec<(String, &'static str)>,
    last_run: Option<String>,
}

impl FormPage {
    fn invalid(&self, input: &str) -> bool {
        self.error_input == input
    }
    fn is_eab(&self) -> bool {
        self.kind == ExportKind::EabNotes
    }
    fn is_contacts(&self) -> bool {
        self.kind == ExportKind::Contacts
    }
    fn action(&self) -> String {
        match self.id {
            Some(id) => format!("/settings/sftp/{id}"),
            None => "/settings/sftp".to_string(),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct NewParams {
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn render_form(
    state: &AppState,
    auth: &Auth,
    status: StatusCode,
    id: Option<i64>,
    form: SftpForm,
    error: Option<ApiError>,
) -> Response {
    let Some(kind) = form.export_kind() else {
        return ui_error(ApiError::not_found());
    };
    let inst = auth.institution_id();
    let (secrets_set, last_run) = match id {
        Some(id) => match state.store.integration(inst, id).await {
            Ok(i) => {
                let last = state
                    .store
                    .list_runs(
                        inst,
                        &ferry_store::RunQuery {
                            integration_id: Some(id),
                            limit: 1,
                            ..Default::default()
                        },
                    )
                    .await
                    .ok()
                    .and_then(|r| r.into_iter().next())
                    .map(|r| {
                        let when = r
                            .started_at
                            .map(|t| fmt_time(t, &auth.principal.institution.time_zone))
                            .unwrap_or_else(|| "not started".into());
                        format!("{} · {when}", r.status.label())
                    });
                (i.secrets_set, last)
            }
            Err(e) => return ui_error(e.into()),
        },
        None => (Vec::new(), None),
    };
    let set = |n: &str| secrets_set.iter().any(|s| s == n);
    let customs = match state.store.custom_fields(inst).await {
        Ok(c) => c,
        Err(e) => return ui_error(e.into()),
    };
    let mut field_options: Vec<(String, String)> = vec![("id".into(), "Platform ID".into())];
    field_options.extend(
        DefaultField::ALL
            .iter()
            .map(|d| (d.as_str().to_string(), d.label().to_string())),
    );
    field_options.push(("archived".into(), "Archived".into()));
    field_options.extend(customs.iter().map(|c| (c.name.clone(), c.label.clone())));
    let choices = |all: Vec<(String, String)>, chosen: &[String]| -> Vec<Choice> {
        all.into_iter()
            .map(|(value, label)| Choice {
                checked: form.has(chosen, &value),
                value,
                label,
            })
            .collect()
    };
    let mut filters: Vec<FilterRow> = form
        .filter_fields
        .iter()
        .zip(
            form.filter_values
                .iter()
                .chain(std::iter::repeat(&String::new())),
        )
        .filter(|(f, _)| !f.trim().is_empty())
        .map(|(f, v)| FilterRow {
            field: f.clone(),
            values: v.clone(),
        })
        .collect();
    filters.push(FilterRow {
        field: String::new(),
        values: String::new(),
    });
    let page = FormPage {
        nav: Nav::new(auth, "sftp"),
        id,
        kind,
        kind_label: kind.label(),
        error_input: error
            .as_ref()
            .and_then(|e| e.field.as_deref())
            .map(input_of)
            .unwrap_or_default(),
        error: error.map(|e| match e.field {
            Some(f) => format!("{f}: {}", e.message),
            None => e.message,
        }),
        password_set: set("password"),
        private_key_set: set("private_key"),
        passphrase_set: set("passphrase"),
        egress_ips: state.config.egress_ips.clone(),
        blocks: choices(
            (0u8..8).map(|b| (b.to_string(), block_label(b))).collect(),
            &form.blocks,
        ),
        channels: choices(
            Channel::ALL
                .iter()
                .map(|c| (c.as_str().to_string(), c.label().to_string()))
                .collect(),
            &form.channels,
        ),
        types: choices(
            MessageType::ALL
                .iter()
                .map(|c| (c.as_str().to_string(), c.label().to_string()))
                .collect(),
            &form.types,
        ),
        directions: choices(
            Direction::ALL
                .iter()
                .map(|d| {
                    let label = match d {
                        Direction::Incoming => "Incoming (from the learner)",
                        Direction::Outgoing => "Outgoing (AI agent or Live Chat agent)",
                    };
                    (d.as_str().to_string(), label.to_string())
                })
                .collect(),
            &form.directions,
        ),
        fields: choices(field_options.clone(), &form.fields),
        field_options,
        filters,
        placeholders: Placeholder::ALL
            .iter()
            .map(|p| (format!("{{{}}}", p.as_str()), p.description()))
            .collect(),
        last_run,
        form,
    };
    (status, page).into_response()
}

pub async fn new_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<NewParams>,
) -> Response {
    let Some(kind) = p.kind.as_deref().and_then(ExportKind::from_kind) else {
        return ui_error(ApiError::bad_request(
            "invalid_value",
            "choose the kind of integration: Contacts, Conversations or EAB Notes",
        ));
    };
    render_form(
        &state,
        &auth,
        StatusCode::OK,
        None,
        SftpForm::new_of(kind),
        None,
    )
    .await
}

pub async fn edit_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let i = match LIST.instance(&state, &auth, &id).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    render_form(
        &state,
        &auth,
        StatusCode::OK,
        Some(i.id),
        SftpForm::of(&i),
        None,
    )
    .await
}

/// A client mistake to show in the form, or (a server error) the error page.
#[allow(clippy::result_large_err)] // the Err is a handler's early return
fn form_error(e: ApiError) -> Result<ApiError, Response> {
    if e.is_internal() {
        Err(ui_error(e))
    } else {
        Ok(e)
    }
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: axum::body::Bytes,
) -> Response {
    let form = SftpForm::parse(&body);
    let Some(kind) = form.export_kind() else {
        return ui_error(ApiError::bad_request(
            "invalid_value",
            "unknown integration type",
        ));
    };
    let input = CreateIntegration {
        kind: kind.kind().to_string(),
        name: form.name.clone(),
        description: form.description.clone(),
        enabled: form.enabled,
        config: form.new_config(kind),
        secrets: Some(form.secrets()),
    };
    match create_integration(&state, auth.institution_id(), input).await {
        Ok(_) => LIST.back("created"),
        Err(e) => match form_error(e) {
            Ok(e) => render_form(&state, &auth, e.status, None, form, Some(e)).await,
            Err(r) => r,
        },
    }
}

pub async fn save(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let current = match LIST.instance(&state, &auth, &id).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let id = current.id;
    let mut form = SftpForm::parse(&body);
    form.kind = current.kind.clone();
    let Some(kind) = form.export_kind() else {
        return ui_error(ApiError::not_found());
    };
    let change = PatchIntegration {
        name: Some(form.name.clone()),
        description: Some(form.description.clone()),
        enabled: Some(form.enabled),
        config: Some(form.config(kind)),
        secrets: Some(form.secrets()),
    };
    match patch_integration(&state, auth.institution_id(), id, change).await {
        Ok(_) => LIST.back("saved"),
        Err(e) => match form_error(e) {
            Ok(e) => render_form(&state, &auth, e.status, Some(id), form, Some(e)).await,
            Err(r) => r,
        },
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "sftp_test.html")]
struct TestResult {
    ok: bool,
    message: String,
    host_key: Option<String>,
    /// Set the form's host key to the one seen, so that Save pins it.
    pin: bool,
}

/// Test Connection on the configuration screen, with the values in the form (saved secrets
/// stand in for the ones left empty). An htmx fragment.
pub async fn test(State(state): State<AppState>, auth: Auth, body: axum::body::Bytes) -> Response {
    let mut form = SftpForm::parse(&body);
    let inst = auth.institution_id();
    let id = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    if let Some(id) = id {
        match state.store.integration(inst, id).await {
            Ok(i) => form.kind = i.kind,
            Err(e) => return ui_error(e.into()),
        }
    }
    let Some(kind) = form.export_kind() else {
        return ui_error(ApiError::bad_request(
            "invalid_value",
            "unknown integration type",
        ));
    };
    // Saved secrets stand in for the ones left empty.
    let secrets = match id {
        Some(id) => match state.service.secrets_with(inst, id, form.secrets()).await {
            Ok(s) => s,
            Err(e) => return ui_error(e.into()),
        },
        None => form.secrets(),
    };
    let test = ConnectionTest {
        kind: kind.kind().to_string(),
        integration_id: id,
        config: form.new_config(kind),
        secrets,
        saved_settings: false,
    };
    let result = test_connection(&state, inst, test).await;
    let page = match result {
        Ok(v) => TestResult {
            pin: v.ok && (form.host_key.trim().is_empty() || form.repin),
            ok: v.ok,
            message: v.message,
            host_key: v.host_key,
        },
        Err(e) if !e.is_internal() => TestResult {
            ok: false,
            message: match e.field {
                Some(f) => format!("{f}: {}", e.message),
                None => e.message,
            },
            host_key: None,
            pin: false,
        },
        Err(e) => return ui_error(e),
    };
    page.into_response()
}

/// Asks before deleting.
pub async fn delete_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    LIST.delete_page(&state, &auth, &id).await
}
