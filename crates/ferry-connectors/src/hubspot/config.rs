//! The configuration of the HubSpot instances (both directions):
//! `{"mappings":[{"local","remote"}], "filters":[{"field","values"}], "schedule":{"every_minutes"}}`.

use ferry_core::contact::{DefaultField, PLATFORM_ID_FIELD, validate_custom_field_name};
use ferry_core::mapping::{CRM_ID_FIELD, FieldMapping};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::connector::{ConfigError, parse_config};

/// HubSpot's record ID property, always paired with Ferry's CRM ID.
pub const ID_PROPERTY: &str = "hs_object_id";

/// An incoming instance pulls every this many minutes unless told otherwise.
pub const DEFAULT_EVERY_MINUTES: u32 = 15;

/// A HubSpot instance's config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-ferry-sections" = [
    {"title": "Authentication", "fields": ["account_id", "@secrets", "@test"]},
    {"title": "Data Mapping", "fields": ["mappings", "filters"]},
    {"title": "Schedule", "fields": ["schedule"]},
], "x-ferry-submit" = "Finish"))]
pub struct HubSpotConfig {
    /// A HubSpot account connected through OAuth (`GET /api/v1/accounts?provider=hubspot`):
    /// select a previously used account or add a new one. Without it the instance uses its
    /// private-app access token.
    #[serde(default)]
    #[schemars(title = "HubSpot account", extend("x-ferry-widget" = "oauth_account"))]
    pub account_id: Option<i64>,
    /// Which Ferry field matches which HubSpot property. The CRM ID is always mapped to
    /// HubSpot's Record ID. First name, last name and phone must be mapped (every Ferry contact
    /// has them), and HubSpot requires email: map it to an email-type field.
    #[schemars(
        title = "Field mapping",
        extend("x-ferry-widget" = "data_mapping", "x-ferry-fixed" = {"local": "crm_id", "remote": "hs_object_id", "label": "Record ID"})
    )]
    pub mappings: Vec<FieldMapping>,
    /// A contact syncs only if, for every filtering field, it has one of the values
    /// (comma-separated); the others are counted as filtered, not as errors.
    #[serde(default)]
    #[schemars(title = "Filters (optional)", extend("x-ferry-widget" = "filter_rows"))]
    pub filters: Vec<Filter>,
    /// When an incoming instance pulls (outgoing instances push on change).
    #[serde(default)]
    #[schemars(title = "Schedule")]
    pub schedule: Option<EveryMinutes>,
}

pub use crate::crm::Filter;

/// An interval schedule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EveryMinutes {
    /// Minutes between runs, 1 to 1440.
    #[schemars(title = "Every (minutes)", range(min = 1, max = 1440))]
    pub every_minutes: u32,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(field, message)
}

fn check_local(path: &str, name: &str) -> Result<(), ConfigError> {
    if name == PLATFORM_ID_FIELD || name.parse::<DefaultField>().is_ok() {
        return Ok(());
    }
    validate_custom_field_name(name).map_err(|m| err(path, m))
}

impl HubSpotConfig {
    /// Parses and checks what can be checked without HubSpot and the institution's fields
    /// (the rest, in `ferry_core::mapping::resolve`, when the instance is saved and when it runs).
    pub fn parse(config: &Value) -> Result<HubSpotConfig, ConfigError> {
        let c: HubSpotConfig = parse_config(config)?;
        match c.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(c),
        }
    }

    /// Every problem [`HubSpotConfig::parse`] finds, each on its field (a form shows them all).
    pub fn problems(&self) -> Vec<ConfigError> {
        let c = self;
        let mut out = Vec::new();
        for (i, m) in c.mappings.iter().enumerate() {
            if m.local.trim().is_empty() {
                out.push(err(format!("mappings[{i}].local"), "choose a Ferry field"));
            } else if let Err(e) = check_local(&format!("mappings[{i}].local"), m.local.trim()) {
                out.push(e);
            }
            if m.remote.trim().is_empty() {
                out.push(err(
                    format!("mappings[{i}].remote"),
                    "choose a HubSpot property",
                ));
            }
        }
        for required in [
            DefaultField::FirstName,
            DefaultField::LastName,
            DefaultField::Phone,
        ] {
            if !c
                .mappings
                .iter()
                .any(|m| m.local.trim() == required.as_str())
            {
                out.push(err(
                    "mappings",
                    format!(
                        "{} must be mapped: every Ferry contact has first name, last name and phone",
                        required.as_str()
                    ),
                ));
            }
        }
        if !c.mappings.iter().any(|m| m.remote.trim() == "email") {
            out.push(err(
                "mappings",
                "HubSpot requires email: map its email property to an email-type Ferry field",
            ));
        }
        if let Some(m) = c
            .mappings
            .iter()
            .position(|m| (m.local.trim() == CRM_ID_FIELD) != (m.remote.trim() == ID_PROPERTY))
        {
            out.push(err(
                format!("mappings[{m}]"),
                format!(
                    "CRM ID is always mapped to {ID_PROPERTY} (the HubSpot Record ID); that pair cannot be changed"
                ),
            ));
        }
        for (i, f) in c.filters.iter().enumerate() {
            if let Err(e) = check_local(&format!("filters[{i}].field"), f.field.trim()) {
                out.push(e);
            }
            if f.values.iter().all(|v| v.trim().is_empty()) {
                out.push(err(
                    format!("filters[{i}].values"),
                    "give at least one value",
                ));
            }
        }
        if c.account_id.is_some_and(|a| a <= 0) {
            out.push(err(
                "account_id",
                "an account ID from GET /api/v1/accounts?provider=hubspot",
            ));
        }
        if let Some(s) = &c.schedule
            && !(1..=1440).contains(&s.every_minutes)
        {
            out.push(err("schedule.every_minutes", "between 1 and 1440 minutes"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"mappings": [
            {"local": "first_name", "remote": "firstname"},
            {"local": "last_name", "remote": "lastname"},
            {"local": "phone", "remote": "phone"},
            {"local": "email", "remote": "email"}
        ]})
    }

    #[test]
    fn structure_is_checked_with_field_names() {
        assert!(HubSpotConfig::parse(&base()).is_ok());
        let field = |v: Value| HubSpotConfig::parse(&v).unwrap_err().field;
        let mut v = base();
        v["mappings"].as_array_mut().unwrap().remove(2);
        assert_eq!(field(v), "mappings");
        let mut v = base();
        v["mappings"].as_array_mut().unwrap().remove(3);
        assert_eq!(field(v), "mappings");
        let mut v = base();
        v["mappings"]
            .as_array_mut()
            .unwrap()
            .push(json!({"local": "crm_id", "remote": "email2"}));
        assert_eq!(field(v), "mappings[4]");
        let mut v = base();
        v["mappings"]
            .as_array_mut()
            .unwrap()
            .push(json!({"local": "Bad Name", "remote": "x"}));
        assert_eq!(field(v), "mappings[4].local");
        let mut v = base();
        v["filters"] = json!([{"field": "opt_in", "values": [" "]}]);
        assert_eq!(field(v), "filters[0].values");
        let mut v = base();
        v["schedule"] = json!({"every_minutes": 0});
        assert_eq!(field(v), "schedule.every_minutes");
        let mut v = base();
        v["mapping"] = json!([]);
        assert_eq!(field(v), "mapping");
    }
}
