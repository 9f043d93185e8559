//! Settings → Integrations (Browse Available), the HubSpot page (Available Integrations and the
//! configured instances) and the configuration wizard of seed 002: Instance Details →
//! Authentication → Data Mapping → Finish. The wizard's steps are sections of one form; the
//! mapping's dropdowns load HubSpot's properties once the account or token is given.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_connectors::{ConnectorContext, Secrets};
use ferry_core::contact::DefaultField;
use ferry_core::mapping::{FieldMapping, RemoteProperty};
use ferry_store::Integration;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::instances::List;
use super::{Nav, ui_error};
use crate::AppState;
use crate::api::integrations::{
    CreateIntegration, PatchIntegration, create_integration, patch_integration,
};
use crate::auth::Auth;
use crate::error::ApiError;

const KINDS: [(&str, &str, &str); 2] = [
    (
        "hubspot_incoming",
        "HubSpot → Ferry",
        "Incoming: contacts created or changed in HubSpot come into Ferry every few minutes.",
    ),
    (
        "hubspot_outgoing",
        "Ferry → HubSpot",
        "Outgoing: contacts created or changed in Ferry go to HubSpot within seconds.",
    ),
];

fn kind_label(kind: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, l, _)| *l)
}

/// The HubSpot page's instance list and its row actions.
const LIST: List = List {
    base: "/settings/integrations/hubspot",
    nav: "integrations",
    label: kind_label,
    consequence: "Contacts already synced stay in HubSpot and in Ferry.",
};

// ---- Browse Available --------------------------------------------------------------------

// ---- The HubSpot page --------------------------------------------------------------------

struct Row {
    id: i64,
    name: String,
    description: String,
    direction: &'static str,
    enabled: bool,
    account: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "hubspot.html")]
struct HubSpotPage {
    nav: Nav,
    kinds: Vec<(&'static str, &'static str, &'static str)>,
    rows: Vec<Row>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct NoticeParams {
    notice: Option<String>,
}

fn notice_text(code: &str) -> Option<String> {
    Some(
        match code {
            "created" => "The instance was created.",
            "saved" => "Your changes were saved.",
            "deleted" => "The instance was deleted.",
            "enabled" => "The instance is enabled.",
            "disabled" => "The instance is disabled; it will not sync until you enable it.",
            "queued" => "A run was queued; follow it in Recent Runs.",
            _ => return None,
        }
        .to_string(),
    )
}

pub async fn page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<NoticeParams>,
) -> Response {
    let inst = auth.institution_id();
    let (all, accounts) = match tokio::try_join!(
        state.store.list_integrations(inst),
        state.store.crm_accounts(inst, "hubspot")
    ) {
        Ok(r) => r,
        Err(e) => return ui_error(e.into()),
    };
    let rows = all
        .into_iter()
        .filter(|i| i.kind.starts_with("hubspot_"))
        .map(|i| {
            let account = match i.config.get("account_id").and_then(Value::as_i64) {
                Some(a) => accounts
                    .iter()
                    .find(|x| x.id == a)
                    .map_or_else(|| format!("account #{a} (removed)"), |x| x.label.clone()),
                None => "Private-app token".to_string(),
            };
            Row {
                id: i.id,
                direction: kind_label(&i.kind).unwrap_or("HubSpot"),
                name: i.name,
                description: i.description,
                enabled: i.enabled,
                account,
            }
        })
        .collect();
    HubSpotPage {
        nav: Nav::new(&auth, "integrations"),
        kinds: KINDS.to_vec(),
        rows,
        notice: p.notice.as_deref().and_then(notice_text),
    }
    .into_response()
}

pub async fn toggle(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    LIST.toggle(&state, &auth, &id).await
}

pub async fn run(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    LIST.run(&state, &auth, &id).await
}

pub async fn delete_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    LIST.delete_page(&state, &auth, &id).await
}

pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    LIST.delete(&state, &auth, &id).await
}

// ---- The wizard --------------------------------------------------------------------------

/// The wizard's values as the browser sends them.
#[derive(Debug, Clone, Default)]
struct WizardForm {
    id: Option<i64>,
    kind: String,
    name: String,
    description: String,
    enabled: bool,
    account_id: String,
    access_token: String,
    developer_api_key: String,
    api_key: String,
    local: Vec<String>,
    remote: Vec<String>,
    filter_field: Vec<String>,
    filter_values: Vec<String>,
    every_minutes: String,
}

impl WizardForm {
    fn parse(body: &[u8]) -> WizardForm {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let mut f = WizardForm::default();
        for (k, v) in pairs {
            match k.as_str() {
                "id" => f.id = v.parse().ok(),
                "type" => f.kind = v,
                "name" => f.name = v,
                "description" => f.description = v,
                "enabled" => f.enabled = v == "on",
                "account_id" => f.account_id = v,
                "access_token" => f.access_token = v,
                "developer_api_key" => f.developer_api_key = v,
                "api_key" => f.api_key = v,
                "local" => f.local.push(v),
                "remote" => f.remote.push(v),
                "filter_field" => f.filter_field.push(v),
                "filter_values" => f.filter_values.push(v),
                "every_minutes" => f.every_minutes = v,
                _ => {}
            }
        }
        f
    }

    fn of(i: &Integration) -> WizardForm {
        let c = &i.config;
        let (local, remote) = c["mappings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (
                            m["local"].as_str().unwrap_or("").to_string(),
                            m["remote"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .unzip()
            })
            .unwrap_or_default();
        let (filter_field, filter_values) = c["filters"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| {
                        let values: Vec<&str> = f["values"]
                            .as_array()
                            .map(|v| v.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        (
                            f["field"].as_str().unwrap_or("").to_string(),
                            values.join(", "),
                        )
                    })
                    .unzip()
            })
            .unwrap_or_default();
        WizardForm {
            id: Some(i.id),
            kind: i.kind.clone(),
            name: i.name.clone(),
            description: i.description.clone(),
            enabled: i.enabled,
            account_id: c["account_id"]
                .as_i64()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            local,
            remote,
            filter_field,
            filter_values,
            every_minutes: c["schedule"]["every_minutes"]
                .as_u64()
                .map(|m| m.to_string())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// The mapping pairs, without empty rows (CRM ID ↔ Record ID first, always).
    fn mappings(&self) -> Vec<FieldMapping> {
        let mut out = vec![FieldMapping {
            local: "crm_id".into(),
            remote: "hs_object_id".into(),
        }];
        for (l, r) in self.local.iter().zip(&self.remote) {
            if !l.trim().is_empty() || !r.trim().is_empty() {
                if l.trim() == "crm_id" && r.trim() == "hs_object_id" {
                    continue;
                }
                out.push(FieldMapping {
                    local: l.trim().to_string(),
                    remote: r.trim().to_string(),
                });
            }
        }
        out
    }

    fn config(&self) -> Value {
        let mut c = json!({ "mappings": self.mappings() });
        if let Ok(a) = self.account_id.trim().parse::<i64>() {
            c["account_id"] = json!(a);
        }
        let filters: Vec<Value> = self
            .filter_field
            .iter()
            .zip(self.filter_values.iter().chain(std::iter::repeat(&String::new())))
            .filter(|(f, _)| !f.trim().is_empty())
            .map(|(f, v)| json!({"field": f.trim(), "values": v.split(',').map(str::trim).filter(|x| !x.is_empty()).collect::<Vec<_>>()}))
            .collect();
        if !filters.is_empty() {
            c["filters"] = json!(filters);
        }
        if let Ok(m) = self.every_minutes.trim().parse::<u32>() {
            c["schedule"] = json!({"every_minutes": m});
        }
        c
    }

    fn secrets(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in [
            ("access_token", &self.access_token),
            ("developer_api_key", &self.developer_api_key),
            ("api_key", &self.api_key),
        ] {
            if !v.trim().is_empty() {
                m.insert(k.into(), json!(v.trim()));
            }
        }
        if !self.account_id.trim().is_empty()
            && self.access_token.trim().is_empty()
            && self.id.is_some()
        {
            // Switching to an account: the private-app token is no longer needed.
            m.insert("access_token".into(), Value::Null);
        }
        m
    }

    /// A starting mapping for a new instance: the four pairs every instance needs.
    fn starter(kind: &str) -> WizardForm {
        WizardForm {
            kind: kind.to_string(),
            enabled: true,
            local: ["first_name", "last_name", "phone", "email"]
                .map(String::from)
                .to_vec(),
            remote: ["firstname", "lastname", "phone", "email"]
                .map(String::from)
                .to_vec(),
            every_minutes: if kind == "hubspot_incoming" {
                "15".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }
}

struct MappingRow {
    index: usize,
    local: String,
    remote: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "hubspot_wizard.html")]
struct WizardPage {
    nav: Nav,
    form: WizardForm,
    kind_label: &'static str,
    incoming: bool,
    accounts: Vec<(i64, String)>,
    token_set: bool,
    error: Option<String>,
    mapping: MappingFragment,
    filters: Vec<(String, String)>,
    field_options: Vec<(String, String)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "hubspot_mapping.html")]
struct MappingFragment {
    rows: Vec<MappingRow>,
    field_options: Vec<(String, String)>,
    properties: Vec<RemoteProperty>,
    /// Why HubSpot's properties could not be listed (the dropdown then offers what is saved).
    properties_error: Option<String>,
}

impl WizardPage {
    fn is_account(&self, id: &i64) -> bool {
        self.form.account_id == id.to_string()
    }
}

impl MappingFragment {
    fn known(&self, name: &str) -> bool {
        self.properties.iter().any(|p| p.name == name)
    }

    fn is_fixed(&self, row: &MappingRow) -> bool {
        row.local == "crm_id" && row.remote == "hs_object_id"
    }
}

async fn field_options(state: &AppState, inst: i64) -> Result<Vec<(String, String)>, Response> {
    let customs = state
        .store
        .custom_fields(inst)
        .await
        .map_err(|e| ui_error(e.into()))?;
    let mut out: Vec<(String, String)> = vec![("id".into(), "Platform ID".into())];
    out.extend(
        DefaultField::ALL
            .iter()
            .filter(|d| **d != DefaultField::TestUser)
            .map(|d| (d.as_str().to_string(), d.label().to_string())),
    );
    out.extend(customs.into_iter().map(|c| (c.name, c.label)));
    Ok(out)
}

/// HubSpot's contact properties, read through the connector with the account or token the
/// form names (the saved token stands in for an empty token field when editing).
async fn properties(
    state: &AppState,
    inst: i64,
    form: &WizardForm,
) -> Result<Vec<RemoteProperty>, String> {
    let account = form.account_id.trim().parse::<i64>().ok();
    let secrets = if account.is_some() {
        Secrets::new()
    } else if !form.access_token.trim().is_empty() {
        let mut m = Map::new();
        m.insert("access_token".into(), Value::from(form.access_token.trim()));
        Secrets::from_json(m)
    } else if let Some(id) = form.id {
        Secrets::from_json(
            state
                .store
                .integration_secrets(inst, id)
                .await
                .map_err(|e| e.to_string())?,
        )
    } else {
        return Err("choose an account or enter an access token first".into());
    };
    let connector = state
        .registry
        .get(&form.kind)
        .ok_or_else(|| format!("unknown integration type {:?}", form.kind))?;
    let ctx = ConnectorContext::new(inst, form.id, json!({ "account_id": account }), secrets)
        .with_store(state.store.clone());
    match connector.remote_properties(&ctx).await {
        Ok(Some(props)) => Ok(props),
        Ok(None) => Err(format!("{} has no data mapping", form.kind)),
        Err(e) => Err(e.reason),
    }
}

async fn mapping_fragment(
    state: &AppState,
    inst: i64,
    form: &WizardForm,
    field_options: Vec<(String, String)>,
) -> MappingFragment {
    let (mut properties, properties_error) = match properties(state, inst, form).await {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    properties.sort_by_cached_key(|p| p.label.to_lowercase());
    let rows = form
        .mappings()
        .into_iter()
        .chain(std::iter::once(FieldMapping {
            local: String::new(),
            remote: String::new(),
        }))
        .enumerate()
        .map(|(index, m)| MappingRow {
            index,
            local: m.local,
            remote: m.remote,
        })
        .collect();
    MappingFragment {
        rows,
        field_options,
        properties,
        properties_error,
    }
}

async fn render(
    state: &AppState,
    auth: &Auth,
    status: StatusCode,
    form: WizardForm,
    error: Option<String>,
) -> Response {
    let inst = auth.institution_id();
    let accounts = match state.store.crm_accounts(inst, "hubspot").await {
        Ok(a) => a.into_iter().map(|a| (a.id, a.label)).collect(),
        Err(e) => return ui_error(e.into()),
    };
    let field_options = match field_options(state, inst).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let token_set = match form.id {
        Some(id) => state
            .store
            .integration(inst, id)
            .await
            .map(|i| i.secrets_set.iter().any(|s| s == "access_token"))
            .unwrap_or(false),
        None => false,
    };
    let mut filters: Vec<(String, String)> = form
        .filter_field
        .iter()
        .zip(
            form.filter_values
                .iter()
                .chain(std::iter::repeat(&String::new())),
        )
        .filter(|(f, _)| !f.trim().is_empty())
        .map(|(f, v)| (f.clone(), v.clone()))
        .collect();
    filters.push((String::new(), String::new()));
    let mapping = mapping_fragment(state, inst, &form, field_options.clone()).await;
    (
        status,
        WizardPage {
            nav: Nav::new(auth, "integrations"),
            kind_label: kind_label(&form.kind).unwrap_or("HubSpot"),
            incoming: form.kind == "hubspot_incoming",
            accounts,
            token_set,
            error,
            mapping,
            filters,
            field_options,
            form,
        },
    )
        .into_response()
}

#[derive(Deserialize, Default)]
pub struct NewParams {
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn new_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<NewParams>,
) -> Response {
    match p.kind.as_deref() {
        Some(k @ ("hubspot_incoming" | "hubspot_outgoing")) => {
            render(&state, &auth, StatusCode::OK, WizardForm::starter(k), None).await
        }
        _ => ui_error(ApiError::bad_request(
            "invalid_value",
            "choose HubSpot incoming or outgoing",
        )),
    }
}

pub async fn edit_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    match LIST.instance(&state, &auth, &id).await {
        Ok(i) => render(&state, &auth, StatusCode::OK, WizardForm::of(&i), None).await,
        Err(r) => r,
    }
}

/// The mapping step re-rendered (after the account or token changed, or a row was added or
/// removed): an htmx fragment.
pub async fn mapping(
    State(state): State<AppState>,
    auth: Auth,
    body: axum::body::Bytes,
) -> Response {
    let mut form = WizardForm::parse(&body);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if let Some((_, i)) = pairs.iter().find(|(k, _)| k == "remove_row")
        && let Ok(i) = i.parse::<usize>()
        && i < form.local.len()
        && i < form.remote.len()
    {
        form.local.remove(i);
        form.remote.remove(i);
    }
    let inst = auth.institution_id();
    let field_options = match field_options(&state, inst).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    mapping_fragment(&state, inst, &form, field_options)
        .await
        .into_response()
}

/// Finish: creates or saves the instance through the same checks as the API.
pub async fn finish(
    State(state): State<AppState>,
    auth: Auth,
    body: axum::body::Bytes,
) -> Response {
    let form = WizardForm::parse(&body);
    let inst = auth.institution_id();
    let result = match form.id {
        None => {
            if !matches!(form.kind.as_str(), "hubspot_incoming" | "hubspot_outgoing") {
                return ui_error(ApiError::bad_request(
                    "invalid_value",
                    "unknown instance type",
                ));
            }
            create_integration(
                &state,
                inst,
                CreateIntegration {
                    kind: form.kind.clone(),
                    name: form.name.clone(),
                    description: form.description.clone(),
                    enabled: form.enabled,
                    config: form.config(),
                    secrets: Some(form.secrets()),
                },
            )
            .await
            .map(|_| "created")
        }
        Some(id) => {
            let config = form.config();
            // The form holds the whole config: what it leaves out is removed.
            let mut patch = config.clone();
            for key in ["account_id", "filters", "schedule"] {
                if patch.get(key).is_none() {
                    patch[key] = Value::Null;
                }
            }
            patch_integration(
                &state,
                inst,
                id,
                PatchIntegration {
                    name: Some(form.name.clone()),
                    description: Some(form.description.clone()),
                    enabled: Some(form.enabled),
                    config: Some(patch),
                    secrets: Some(form.secrets()),
                },
            )
            .await
            .map(|_| "saved")
        }
    };
    match result {
        Ok(notice) => LIST.back(notice),
        Err(e) if e.is_internal() => ui_error(e),
        Err(e) => {
            let message = match &e.field {
                Some(f) => format!("{f}: {}", e.message),
                None => e.message.clone(),
            };
            let mut form = form;
            // Write-only: a typed token is not sent back in the page.
            form.access_token.clear();
            render(&state, &auth, e.status, form, Some(message)).await
        }
    }
}
