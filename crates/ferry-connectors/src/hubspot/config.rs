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
pub struct HubSpotConfig {
    /// A HubSpot account connected through OAuth (`GET /api/v1/hubspot/accounts`); without it
    /// the instance uses its `access_token` secret (a private-app token).
    #[serde(default)]
    pub account_id: Option<i64>,
    /// Ferry field ↔ HubSpot property pairs. CRM ID ↔ `hs_object_id` is always included.
    pub mappings: Vec<FieldMapping>,
    /// A contact syncs only if, for every filter, its field has one of the values.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// When an incoming instance pulls (outgoing instances push on change).
    #[serde(default)]
    pub schedule: Option<EveryMinutes>,
}

pub use crate::crm::Filter;

/// An interval schedule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EveryMinutes {
    /// Minutes between runs, 1 to 1440.
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
        for (i, m) in c.mappings.iter().enumerate() {
            if m.local.trim().is_empty() {
                return Err(err(format!("mappings[{i}].local"), "choose a Ferry field"));
            }
            if m.remote.trim().is_empty() {
                return Err(err(
                    format!("mappings[{i}].remote"),
                    "choose a HubSpot property",
                ));
            }
            check_local(&format!("mappings[{i}].local"), m.local.trim())?;
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
                return Err(err(
                    "mappings",
                    format!(
                        "{} must be mapped: every Ferry contact has first name, last name and phone",
                        required.as_str()
                    ),
                ));
            }
        }
        if !c.mappings.iter().any(|m| m.remote.trim() == "email") {
            return Err(err(
                "mappings",
                "HubSpot requires email: map its email property to an email-type Ferry field",
            ));
        }
        if let Some(m) = c
            .mappings
            .iter()
            .position(|m| (m.local.trim() == CRM_ID_FIELD) != (m.remote.trim() == ID_PROPERTY))
        {
            return Err(err(
                format!("mappings[{m}]"),
                format!(
                    "CRM ID is always mapped to {ID_PROPERTY} (the HubSpot Record ID); that pair cannot be changed"
                ),
            ));
        }
        for (i, f) in c.filters.iter().enumerate() {
            check_local(&format!("filters[{i}].field"), f.field.trim())?;
            if f.values.iter().all(|v| v.trim().is_empty()) {
                return Err(err(
                    format!("filters[{i}].values"),
                    "give at least one value",
                ));
            }
        }
        if c.account_id.is_some_and(|a| a <= 0) {
            return Err(err(
                "account_id",
                "an account ID from GET /api/v1/hubspot/accounts",
            ));
        }
        if let Some(s) = &c.schedule
            && !(1..=1440).contains(&s.every_minutes)
        {
            return Err(err("schedule.every_minutes", "between 1 and 1440 minutes"));
        }
        Ok(c)
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
