//! `GET /api/v1/integration-types`: the integration kinds this build has, as their connectors
//! describe themselves; and each kind's config schema in the OpenAPI document.

use axum::Json;
use axum::extract::State;
use ferry_connectors::Registry;
use ferry_connectors::describe::Description;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Auth;

/// One kind of integration.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationTypeView {
    /// The value of `type` when creating an integration.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The name people see (the Type column of Recent Runs).
    pub label: &'static str,
    /// One instance's name, e.g. `Contacts Export` (a form for a new one says "New …").
    pub title: &'static str,
    /// What an instance of this type does.
    pub summary: &'static str,
    /// `crm_sync`, `sftp_outbound` or `inbound_files`.
    pub category: &'static str,
    /// The category as people read it.
    pub category_label: &'static str,
    /// The platform the type belongs to.
    pub platform: PlatformView,
    /// The JSON Schema of `config`.
    #[schema(value_type = Object)]
    pub config_schema: Value,
    /// A config a new instance starts from.
    #[schema(value_type = Object)]
    pub default_config: Value,
    /// The secrets it takes (write-only).
    pub secrets: Vec<SecretView>,
    /// The OAuth provider that connects its accounts, if any.
    pub oauth_provider: Option<&'static str>,
    /// The error codes it can write besides the core's (see `/api/v1/errors`).
    pub error_codes: Vec<&'static str>,
}

/// A platform (one card on Browse Available).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlatformView {
    /// The platform's identifier in URLs.
    pub id: &'static str,
    /// The platform's name.
    pub name: &'static str,
    /// One paragraph on what Ferry does with it.
    pub summary: &'static str,
}

/// A secret a type takes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecretView {
    /// Its name under `secrets`.
    pub name: &'static str,
    /// The form's label.
    pub label: &'static str,
    /// `password`, `private_key` or `token`.
    #[schema(value_type = String)]
    pub kind: Value,
    /// The help text under the field.
    pub help: &'static str,
}

impl IntegrationTypeView {
    fn new(d: &Description) -> Self {
        IntegrationTypeView {
            kind: d.kind,
            label: d.label,
            title: d.title,
            summary: d.summary,
            category: d.category.as_str(),
            category_label: d.category.label(),
            platform: PlatformView {
                id: d.platform.id,
                name: d.platform.name,
                summary: d.platform.summary,
            },
            config_schema: d.config_schema.clone(),
            default_config: d.default_config.clone(),
            secrets: d
                .secrets
                .iter()
                .map(|s| SecretView {
                    name: s.name,
                    label: s.label,
                    kind: json!(s.kind),
                    help: s.help,
                })
                .collect(),
            oauth_provider: d.oauth_provider,
            error_codes: d.error_codes.iter().map(|e| e.code).collect(),
        }
    }
}

/// The integration types this build has, sorted by type.
#[utoipa::path(get, path = "/api/v1/integration-types", operation_id = "list_integration_types", responses(
    (status = 200, description = "Every integration type this build has.", body = Vec<IntegrationTypeView>),
    (status = 401, response = crate::api::doc::Unauthorized)))]
pub async fn list(State(state): State<AppState>, _auth: Auth) -> Json<Vec<IntegrationTypeView>> {
    Json(
        state
            .registry
            .descriptions()
            .map(IntegrationTypeView::new)
            .collect(),
    )
}

/// Publishes each kind's config schema in the OpenAPI document `doc`: a component
/// `IntegrationConfig_<type>` per kind, and `CreateIntegration` as a `oneOf` of one variant per
/// kind, told apart by `type`.
pub fn publish_config_schemas(doc: &mut Value, registry: &Registry) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(base) = schemas.get("CreateIntegration").cloned() else {
        return;
    };
    let mut variants = Vec::new();
    let mut mapping = Map::new();
    for d in registry.descriptions() {
        let config = format!("IntegrationConfig_{}", d.kind);
        let create = format!("CreateIntegration_{}", d.kind);
        schemas.insert(config.clone(), d.config_schema.clone());
        let mut variant = base.clone();
        variant["title"] = json!(d.label);
        variant["properties"]["type"] =
            json!({"type": "string", "const": d.kind, "description": d.label});
        variant["properties"]["config"] = json!({"$ref": format!("#/components/schemas/{config}")});
        let secrets: Map<String, Value> = d
            .secrets
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    json!({"type": ["string", "null"], "writeOnly": true, "description": format!("{}. {}", s.label, s.help)}),
                )
            })
            .collect();
        variant["properties"]["secrets"] = json!({
            "type": ["object", "null"],
            "description": "Secret values by name; write-only.",
            "properties": secrets,
            "additionalProperties": false,
        });
        schemas.insert(create.clone(), variant);
        let reference = format!("#/components/schemas/{create}");
        mapping.insert(d.kind.to_string(), json!(reference));
        variants.push(json!({"$ref": reference}));
    }
    schemas.insert(
        "CreateIntegration".into(),
        json!({
            "description": "A new integration instance; `type` says which kind and so the shape of `config` and `secrets` (see `/api/v1/integration-types`).",
            "oneOf": variants,
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }),
    );
}
