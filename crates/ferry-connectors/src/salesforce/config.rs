//! The configuration of the Salesforce instances (both directions): the account (OAuth, or the
//! JWT bearer flow), the object, the mapping, the filters, the schedule and the limits.

use ferry_core::contact::{DefaultField, PLATFORM_ID_FIELD, validate_custom_field_name};
use ferry_core::mapping::{CRM_ID_FIELD, FieldMapping};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::connector::{ConfigError, parse_config};
pub use crate::crm::Filter;

/// Salesforce's record ID field, always paired with Ferry's CRM ID.
pub const ID_FIELD: &str = "Id";
/// The field the incoming cursor follows.
pub const MODSTAMP_FIELD: &str = "SystemModstamp";
/// An incoming instance pulls every this many minutes unless told otherwise.
pub const DEFAULT_EVERY_MINUTES: u32 = 15;
/// The share of the org's daily API requests a run may reach before it stops, in percent.
pub const DEFAULT_API_LIMIT_SHARE: u8 = 80;
/// Above this many records a run writes (outgoing) or reads at first (incoming) through Bulk
/// API 2.0 instead of sObject Collections and SOQL pages.
pub const DEFAULT_BULK_THRESHOLD: u32 = 10_000;

/// The object an instance syncs contacts with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(extend("x-ferry-labels" = {"Contact": "Contact", "Lead": "Lead"}))]
pub enum SObject {
    /// Salesforce Contacts (the default).
    #[default]
    Contact,
    /// Salesforce Leads.
    Lead,
}

impl SObject {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            SObject::Contact => "Contact",
            SObject::Lead => "Lead",
        }
    }
}

/// Which login host a JWT bearer assertion is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoginHost {
    /// Production orgs: `https://login.salesforce.com`.
    #[default]
    Login,
    /// Sandboxes: `https://test.salesforce.com`.
    Test,
}

impl LoginHost {
    /// The assertion's audience.
    pub fn audience(self) -> &'static str {
        match self {
            LoginHost::Login => "https://login.salesforce.com",
            LoginHost::Test => "https://test.salesforce.com",
        }
    }
}

/// Server-to-server access through the OAuth 2.0 JWT bearer flow: a connected app with a
/// certificate, and a user pre-authorized for it. The private key is the instance's
/// `jwt_private_key` secret.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtBearer {
    /// The connected app's consumer key (the assertion's issuer); required for the flow.
    #[serde(default)]
    #[schemars(title = "Consumer key")]
    pub consumer_key: Option<String>,
    /// The Salesforce username Ferry acts as (pre-authorized for the connected app); required
    /// for the flow.
    #[serde(default)]
    #[schemars(title = "Username")]
    pub username: Option<String>,
    /// A sandbox org: the assertion is for `https://test.salesforce.com` instead of
    /// `https://login.salesforce.com`.
    #[serde(default)]
    #[schemars(title = "Sandbox")]
    pub sandbox: Option<bool>,
}

impl JwtBearer {
    /// The consumer key, trimmed.
    pub fn consumer_key(&self) -> &str {
        self.consumer_key.as_deref().unwrap_or("").trim()
    }

    /// The login host the assertion is for.
    pub fn login_host(&self) -> LoginHost {
        if self.sandbox == Some(true) {
            LoginHost::Test
        } else {
            LoginHost::Login
        }
    }

    /// The username, trimmed.
    pub fn username(&self) -> &str {
        self.username.as_deref().unwrap_or("").trim()
    }
}

/// An interval schedule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EveryMinutes {
    /// Minutes between runs, 1 to 1440.
    #[schemars(title = "Every (minutes)", range(min = 1, max = 1440))]
    pub every_minutes: u32,
}

/// A Salesforce instance's config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-ferry-sections" = [
    {"title": "Authentication", "fields": ["account_id", "jwt", "@secrets", "@test"]},
    {"title": "Data Mapping", "fields": ["object", "external_id_field", "mappings", "filters"]},
    {"title": "Schedule and limits", "fields": ["schedule", "api_limit_share", "bulk_threshold"]},
], "x-ferry-submit" = "Finish"))]
pub struct SalesforceConfig {
    /// A Salesforce org connected through OAuth (`GET /api/v1/accounts?provider=salesforce`):
    /// select a previously used account or add a new one. Leave it empty to use the JWT bearer
    /// flow below.
    #[serde(default)]
    #[schemars(title = "Salesforce account", extend("x-ferry-widget" = "oauth_account"))]
    pub account_id: Option<i64>,
    /// For server-to-server access without a connected account: the JWT bearer flow.
    #[serde(default)]
    #[schemars(title = "JWT bearer flow (optional)")]
    pub jwt: Option<JwtBearer>,
    /// The object contacts sync with: Contact (default) or Lead.
    #[serde(default)]
    #[schemars(title = "Object")]
    pub object: SObject,
    /// An external-ID field of the object that holds Ferry's platform ID (for example
    /// `Ferry_Id__c`): outgoing matching looks it up after the Salesforce Id and before the
    /// email, and Ferry writes it on every record it sends.
    #[serde(default)]
    #[schemars(title = "External-ID field (optional)")]
    pub external_id_field: Option<String>,
    /// Which Ferry field matches which Salesforce field. The CRM ID is always mapped to the
    /// record Id. First name, last name and phone must be mapped (every Ferry contact has
    /// them); LastName is required by Salesforce. Only createable and updateable fields can
    /// be written.
    #[schemars(
        title = "Field mapping",
        extend("x-ferry-widget" = "data_mapping", "x-ferry-fixed" = {"local": "crm_id", "remote": "Id", "label": "Record ID"})
    )]
    pub mappings: Vec<FieldMapping>,
    /// A contact syncs only if, for every filtering field, it has one of the values; the others
    /// are counted as filtered, not as errors.
    #[serde(default)]
    #[schemars(title = "Filters (optional)", extend("x-ferry-widget" = "filter_rows"))]
    pub filters: Vec<Filter>,
    /// When an incoming instance pulls (outgoing instances push on change).
    #[serde(default)]
    #[schemars(title = "Schedule")]
    pub schedule: Option<EveryMinutes>,
    /// A run stops before the org's API requests of the day reach this share of its daily
    /// limit, in percent (80 by default), leaving the rest to the org's other integrations.
    #[serde(default)]
    #[schemars(title = "API limit share (%)", range(min = 1, max = 100))]
    pub api_limit_share: Option<u8>,
    /// Above this many records, writes go through a Bulk API 2.0 ingest job and a first full
    /// pull through a Bulk API 2.0 query (10,000 by default).
    #[serde(default)]
    #[schemars(title = "Bulk API threshold", range(min = 1))]
    pub bulk_threshold: Option<u32>,
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

/// A Salesforce API name: letters, digits and underscores, starting with a letter.
pub fn is_api_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SalesforceConfig {
    /// Parses and checks what can be checked without Salesforce and the institution's fields
    /// (the rest against `describe` when the instance is saved and when it runs).
    pub fn parse(config: &Value) -> Result<SalesforceConfig, ConfigError> {
        let c: SalesforceConfig = parse_config(config)?;
        match c.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(c),
        }
    }

    /// The share of the daily limit a run may use (0–1).
    pub fn limit_share(&self) -> f64 {
        f64::from(self.api_limit_share.unwrap_or(DEFAULT_API_LIMIT_SHARE)) / 100.0
    }

    /// Records above which Bulk API 2.0 is used.
    pub fn bulk_threshold(&self) -> usize {
        self.bulk_threshold.unwrap_or(DEFAULT_BULK_THRESHOLD) as usize
    }

    /// The external-ID field, trimmed, when one is set.
    pub fn external_id(&self) -> Option<&str> {
        self.external_id_field
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The mapping with the external-ID field paired with the platform ID (when it is set and
    /// not mapped already).
    pub fn effective_mappings(&self) -> Vec<FieldMapping> {
        let mut m = self.mappings.clone();
        if let Some(x) = self.external_id()
            && !m.iter().any(|p| p.remote.trim() == x)
        {
            m.push(FieldMapping {
                local: PLATFORM_ID_FIELD.to_string(),
                remote: x.to_string(),
            });
        }
        m
    }

    /// Every problem [`SalesforceConfig::parse`] finds, each on its field.
    pub fn problems(&self) -> Vec<ConfigError> {
        let c = self;
        let mut out = Vec::new();
        for (i, m) in c.mappings.iter().enumerate() {
            if m.local.trim().is_empty() {
                out.push(err(format!("mappings[{i}].local"), "choose a Ferry field"));
            } else if let Err(e) = check_local(&format!("mappings[{i}].local"), m.local.trim()) {
                out.push(e);
            }
            let remote = m.remote.trim();
            if remote.is_empty() {
                out.push(err(
                    format!("mappings[{i}].remote"),
                    "choose a Salesforce field",
                ));
            } else if !is_api_name(remote) {
                out.push(err(
                    format!("mappings[{i}].remote"),
                    format!("{remote:?} is not a Salesforce field's API name"),
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
        if let Some(m) = c
            .mappings
            .iter()
            .position(|m| (m.local.trim() == CRM_ID_FIELD) != (m.remote.trim() == ID_FIELD))
        {
            out.push(err(
                format!("mappings[{m}]"),
                "CRM ID is always mapped to Id (the Salesforce record Id); that pair cannot be changed",
            ));
        }
        if let Some(x) = c.external_id() {
            if !is_api_name(x) {
                out.push(err(
                    "external_id_field",
                    format!("{x:?} is not a Salesforce field's API name"),
                ));
            } else if let Some(i) = c
                .mappings
                .iter()
                .position(|m| m.remote.trim() == x && m.local.trim() != PLATFORM_ID_FIELD)
            {
                out.push(err(
                    format!("mappings[{i}]"),
                    format!(
                        "{x} is the external-ID field, which holds Ferry's platform ID; map it to \"id\" or remove the pair"
                    ),
                ));
            }
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
                "an account ID from GET /api/v1/accounts?provider=salesforce",
            ));
        }
        if c.account_id.is_some() && c.jwt.is_some() {
            out.push(err(
                "jwt",
                "choose either a connected account or the JWT bearer flow, not both",
            ));
        }
        if let Some(j) = &c.jwt {
            if j.consumer_key().is_empty() {
                out.push(err(
                    "jwt.consumer_key",
                    "enter the connected app's consumer key",
                ));
            }
            if j.username().is_empty() {
                out.push(err(
                    "jwt.username",
                    "enter the Salesforce username Ferry acts as",
                ));
            }
        }
        if let Some(s) = &c.schedule
            && !(1..=1440).contains(&s.every_minutes)
        {
            out.push(err("schedule.every_minutes", "between 1 and 1440 minutes"));
        }
        if let Some(s) = c.api_limit_share
            && !(1..=100).contains(&s)
        {
            out.push(err("api_limit_share", "a percentage between 1 and 100"));
        }
        if c.bulk_threshold == Some(0) {
            out.push(err("bulk_threshold", "at least 1 record"));
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
            {"local": "first_name", "remote": "FirstName"},
            {"local": "last_name", "remote": "LastName"},
            {"local": "phone", "remote": "Phone"},
            {"local": "email", "remote": "Email"}
        ]})
    }

    #[test]
    fn structure_is_checked_with_field_names() {
        let c = SalesforceConfig::parse(&base()).unwrap();
        assert_eq!(c.object, SObject::Contact);
        assert_eq!(c.limit_share(), 0.8);
        assert_eq!(c.bulk_threshold(), 10_000);
        let field = |v: Value| SalesforceConfig::parse(&v).unwrap_err().field;
        let mut v = base();
        v["mappings"].as_array_mut().unwrap().remove(2);
        assert_eq!(field(v), "mappings");
        let mut v = base();
        v["mappings"]
            .as_array_mut()
            .unwrap()
            .push(json!({"local": "crm_id", "remote": "Email2"}));
        assert_eq!(field(v), "mappings[4]");
        let mut v = base();
        v["mappings"]
            .as_array_mut()
            .unwrap()
            .push(json!({"local": "enrollment_id", "remote": "Student Id"}));
        assert_eq!(field(v), "mappings[4].remote");
        let mut v = base();
        v["object"] = json!("Account");
        assert_eq!(field(v), "object");
        let mut v = base();
        v["api_limit_share"] = json!(0);
        assert_eq!(field(v), "api_limit_share");
        let mut v = base();
        v["account_id"] = json!(3);
        v["jwt"] = json!({"consumer_key": "k", "username": "u"});
        assert_eq!(field(v), "jwt");
        let mut v = base();
        v["jwt"] = json!({"consumer_key": " ", "username": "u"});
        assert_eq!(field(v), "jwt.consumer_key");
        let mut v = base();
        v["external_id_field"] = json!("Email");
        assert_eq!(field(v), "mappings[3]");
    }

    #[test]
    fn the_external_id_field_is_paired_with_the_platform_id() {
        let mut v = base();
        v["external_id_field"] = json!("Ferry_Id__c");
        let c = SalesforceConfig::parse(&v).unwrap();
        let m = c.effective_mappings();
        assert_eq!(m.len(), 5);
        assert_eq!(m[4].local, "id");
        assert_eq!(m[4].remote, "Ferry_Id__c");
    }
}
