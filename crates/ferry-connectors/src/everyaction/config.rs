//! An EveryAction instance's settings. The doc comments are the form's help and the API's
//! schema (seed 004's Configure Integration and Edit Field Mappings).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connector::{ConfigError, parse_config};

/// VAN's API for US databases.
pub const DEFAULT_API_HOST: &str = "https://api.securevan.com/v4/";

/// Configure Integration.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EveryActionConfig {
    /// Login: the EveryAction API user (the application name the API key was issued to). Sent
    /// as the HTTP Basic user name; the API key goes in the Password secret.
    pub login: String,
    /// API host: the base URL of EveryAction's API, usually `https://api.securevan.com/v4/`.
    #[serde(default = "default_api_host")]
    pub api_host: String,
    /// Opt-in path for new users: the ID of an opt-in path (Settings → Opt-in paths, or
    /// `GET /api/v1/opt-in-paths`). When the sync creates a new opted-in contact, the path's
    /// welcome message is queued for it in the outbox for the platform's sender. Empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        title = "Opt-in path for new users",
        extend("x-ferry-widget" = "opt_in_path")
    )]
    pub opt_in_path_id: Option<i64>,
    /// Liberal sync. On: records sync in both directions whatever their opt-in status in
    /// EveryAction. Off (conservative sync): only records whose opt-in status is true in
    /// EveryAction are updated.
    #[serde(default)]
    pub liberal: bool,
    /// Notes for internal use only.
    #[serde(default)]
    pub notes: String,
    /// Edit Field Mappings: one row per supported field, with the EveryAction API field name
    /// and whether a record needs a value there to sync.
    #[serde(default = "default_field_mappings")]
    pub field_mappings: Vec<FieldMappingRow>,
    /// Where the EveryAction record number (VAN ID) is kept in Ferry as the Constituent ID:
    /// `crm_id`, or the name of a custom text field when the CRM ID belongs to another system.
    #[serde(default = "default_constituent_id_field")]
    pub constituent_id_field: String,
    /// The EveryAction column that says whether the phone is a mobile (value `Cell`). Empty:
    /// every valid US number counts as a mobile number.
    #[serde(default = "default_mobile_field")]
    pub mobile_field: String,
    /// The overnight window (in the institution's time zone) in which the nightly pull runs.
    #[serde(default = "default_nightly")]
    pub nightly_window: HourWindow,
    /// The daytime window (in the institution's time zone) in which new opt-ins and opt-outs
    /// are pushed to EveryAction every five minutes.
    #[serde(default = "default_push")]
    pub push_window: HourWindow,
    /// Requests per second the API key may make (its rate-limit profile: "High" is 200,
    /// "Medium" 15). Ferry stays under it; a 429 is waited out as EveryAction says.
    #[serde(default = "default_rps")]
    pub requests_per_second: u32,
}

/// Hours of the day in the institution's time zone: from `start_hour` (inclusive) to
/// `end_hour` (exclusive); a window may pass midnight (22 to 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HourWindow {
    /// The first hour (0–23).
    pub start_hour: u8,
    /// The hour the window ends (0–23), not included.
    pub end_hour: u8,
}

impl HourWindow {
    /// Whether `hour` (0–23) falls in the window.
    pub fn contains(&self, hour: u8) -> bool {
        if self.start_hour <= self.end_hour {
            (self.start_hour..self.end_hour).contains(&hour)
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }
}

/// A field the EveryAction sync supports (seed 004's list: standard fields only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EaField {
    /// Opt-in status (required by the sync).
    OptIn,
    /// Phone number (required by the sync).
    Phone,
    /// First name.
    FirstName,
    /// Last name.
    LastName,
    /// Email (required by the sync).
    Email,
    /// Street address.
    StreetAddress,
    /// Street address 2.
    StreetAddress2,
    /// City.
    City,
    /// State.
    State,
    /// Zip code.
    ZipCode,
    /// Country.
    Country,
    /// Identifier: the EveryAction record number (VAN ID), Ferry's Constituent ID.
    Identifier,
}

impl EaField {
    /// Every supported field, in the seed's order.
    pub const ALL: [EaField; 12] = [
        EaField::OptIn,
        EaField::Phone,
        EaField::FirstName,
        EaField::LastName,
        EaField::Email,
        EaField::StreetAddress,
        EaField::StreetAddress2,
        EaField::City,
        EaField::State,
        EaField::ZipCode,
        EaField::Country,
        EaField::Identifier,
    ];

    /// The EveryAction API field name a new instance starts with (Contacts export columns;
    /// `VanID`, `FirstName`, `LastName`, `Phone` and `PhoneOptInStatus` are the names seen in
    /// the wild).
    pub fn default_api_field(self) -> &'static str {
        match self {
            EaField::OptIn => "PhoneOptInStatus",
            EaField::Phone => "Phone",
            EaField::FirstName => "FirstName",
            EaField::LastName => "LastName",
            EaField::Email => "Email",
            EaField::StreetAddress => "AddressLine1",
            EaField::StreetAddress2 => "AddressLine2",
            EaField::City => "City",
            EaField::State => "State",
            EaField::ZipCode => "Zip",
            EaField::Country => "CountryCode",
            EaField::Identifier => "VanID",
        }
    }

    /// The Ferry field it fills (`None` for the identifier, which goes to the Constituent ID
    /// field).
    pub fn ferry_field(self) -> Option<&'static str> {
        Some(match self {
            EaField::OptIn => "sms_opt_in",
            EaField::Phone => "phone",
            EaField::FirstName => "first_name",
            EaField::LastName => "last_name",
            EaField::Email => "email",
            EaField::StreetAddress => "street_address",
            EaField::StreetAddress2 => "street_address_2",
            EaField::City => "city",
            EaField::State => "state",
            EaField::ZipCode => "zip_code",
            EaField::Country => "country",
            EaField::Identifier => return None,
        })
    }

    /// Why Required? may not be set on this field (seed 004's cautions), if it may not.
    pub fn required_refusal(self) -> Option<&'static str> {
        match self {
            EaField::Phone | EaField::Email | EaField::OptIn => Some(
                "Do not select Required for Phone number, Email, or Opt-in status: they must exist in both databases for any record to sync, so the sync already requires them",
            ),
            EaField::Identifier => Some(
                "Do not select Required for the Constituent ID: EveryAction provides it, so Ferry profiles do not have it until they are synced, and the sync from Ferry to EveryAction would fail",
            ),
            _ => None,
        }
    }
}

/// One row of Edit Field Mappings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMappingRow {
    /// The Ferry field.
    pub field: EaField,
    /// The field's name in EveryAction's API. Check it carefully for phone, email and opt-in
    /// status: with a wrong name the sync fails.
    pub api_field: String,
    /// Required?: a record with no value in this field is not synced (counted as skipped, with
    /// a Sync Log row). Not allowed on phone, email, opt-in status and the identifier.
    #[serde(default)]
    pub required: bool,
}

fn default_api_host() -> String {
    DEFAULT_API_HOST.to_string()
}

fn default_constituent_id_field() -> String {
    "crm_id".to_string()
}

fn default_mobile_field() -> String {
    "PhoneDeviceType".to_string()
}

fn default_nightly() -> HourWindow {
    HourWindow {
        start_hour: 2,
        end_hour: 5,
    }
}

fn default_rps() -> u32 {
    200
}

fn default_push() -> HourWindow {
    HourWindow {
        start_hour: 8,
        end_hour: 22,
    }
}

/// Every supported field with its default API name, none required.
pub fn default_field_mappings() -> Vec<FieldMappingRow> {
    EaField::ALL
        .iter()
        .map(|f| FieldMappingRow {
            field: *f,
            api_field: f.default_api_field().to_string(),
            required: false,
        })
        .collect()
}

impl EveryActionConfig {
    /// Parses and checks a config, naming the field that is wrong.
    pub fn parse(config: &Value) -> Result<EveryActionConfig, ConfigError> {
        let c: EveryActionConfig = parse_config(config)?;
        if c.login.trim().is_empty() {
            return Err(ConfigError::new(
                "login",
                "enter the EveryAction API user (application name)",
            ));
        }
        let host = c.api_host.trim();
        if !(host.starts_with("https://") || host.starts_with("http://"))
            || reqwest::Url::parse(host).is_err()
        {
            return Err(ConfigError::new(
                "api_host",
                format!("{host:?} is not a URL; use the API's base URL, e.g. {DEFAULT_API_HOST}"),
            ));
        }
        for (name, w) in [
            ("nightly_window", c.nightly_window),
            ("push_window", c.push_window),
        ] {
            if w.start_hour > 23 || w.end_hour > 23 || w.start_hour == w.end_hour {
                return Err(ConfigError::new(
                    name,
                    "hours are 0 to 23 and the window must not be empty",
                ));
            }
        }
        if c.requests_per_second == 0 {
            return Err(ConfigError::new(
                "requests_per_second",
                "at least 1 request per second",
            ));
        }
        if c.constituent_id_field.trim().is_empty() {
            return Err(ConfigError::new(
                "constituent_id_field",
                "name crm_id or a custom text field",
            ));
        }
        for (i, row) in c.field_mappings.iter().enumerate() {
            if row.api_field.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("field_mappings[{i}].api_field"),
                    "enter the field's name in EveryAction's API",
                ));
            }
            if c.field_mappings[..i].iter().any(|r| r.field == row.field) {
                return Err(ConfigError::new(
                    format!("field_mappings[{i}].field"),
                    "this field is mapped twice",
                ));
            }
            if row.required
                && let Some(why) = row.field.required_refusal()
            {
                return Err(ConfigError::new(
                    format!("field_mappings[{i}].required"),
                    why,
                ));
            }
        }
        for f in [
            EaField::Phone,
            EaField::Email,
            EaField::OptIn,
            EaField::Identifier,
        ] {
            if !c.field_mappings.iter().any(|r| r.field == f) {
                return Err(ConfigError::new(
                    "field_mappings",
                    format!(
                        "map {} (default API field {}): the sync needs it",
                        serde_json::to_value(f)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        f.default_api_field()
                    ),
                ));
            }
        }
        Ok(c)
    }

    /// The API field mapped to `field`.
    pub fn api_field(&self, field: EaField) -> Option<&str> {
        self.field_mappings
            .iter()
            .find(|r| r.field == field)
            .map(|r| r.api_field.trim())
    }

    /// The base URL, ending with `/`.
    pub fn base_url(&self) -> String {
        let h = self.api_host.trim();
        if h.ends_with('/') {
            h.to_string()
        } else {
            format!("{h}/")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_required_refusals() {
        let c = EveryActionConfig::parse(&json!({"login": "ferry"})).unwrap();
        assert_eq!(c.api_host, DEFAULT_API_HOST);
        assert!(!c.liberal);
        assert_eq!(c.field_mappings.len(), 12);
        assert_eq!(c.api_field(EaField::OptIn), Some("PhoneOptInStatus"));
        let mut rows = serde_json::to_value(default_field_mappings()).unwrap();
        rows[1]["required"] = json!(true); // phone
        let e =
            EveryActionConfig::parse(&json!({"login": "x", "field_mappings": rows})).unwrap_err();
        assert_eq!(e.field, "field_mappings[1].required");
        assert!(e.message.contains("Phone number, Email, or Opt-in status"));
        let mut rows = serde_json::to_value(default_field_mappings()).unwrap();
        rows[11]["required"] = json!(true); // identifier
        let e =
            EveryActionConfig::parse(&json!({"login": "x", "field_mappings": rows})).unwrap_err();
        assert!(e.message.contains("Constituent ID"), "{e}");
        let mut rows = serde_json::to_value(default_field_mappings()).unwrap();
        rows[7]["required"] = json!(true); // city
        assert!(EveryActionConfig::parse(&json!({"login": "x", "field_mappings": rows})).is_ok());
        let e = EveryActionConfig::parse(&json!({"login": "x", "api_host": "api.securevan.com"}))
            .unwrap_err();
        assert_eq!(e.field, "api_host");
    }

    #[test]
    fn windows_may_pass_midnight() {
        let w = HourWindow {
            start_hour: 22,
            end_hour: 2,
        };
        assert!(w.contains(23) && w.contains(0) && w.contains(1));
        assert!(!w.contains(2) && !w.contains(12));
        assert!(default_nightly().contains(2) && !default_nightly().contains(5));
    }
}
