//! Contact property definitions (the properties API) and the type rules of property values.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::time::iso;

/// HubSpot's property data types (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Number,
    Bool,
    Enumeration,
    Date,
    DateTime,
    PhoneNumber,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "string" => Kind::String,
            "number" => Kind::Number,
            "bool" => Kind::Bool,
            "enumeration" => Kind::Enumeration,
            "date" => Kind::Date,
            "datetime" => Kind::DateTime,
            "phone_number" => Kind::PhoneNumber,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Bool => "bool",
            Kind::Enumeration => "enumeration",
            Kind::Date => "date",
            Kind::DateTime => "datetime",
            Kind::PhoneNumber => "phone_number",
        }
    }

    /// The field types HubSpot accepts for each data type.
    fn field_types(self) -> &'static [&'static str] {
        match self {
            Kind::String => &["text", "textarea", "html", "phonenumber", "file"],
            Kind::Number => &["number", "calculation_equation"],
            Kind::Bool => &["booleancheckbox"],
            Kind::Enumeration => &["select", "radio", "checkbox", "booleancheckbox"],
            Kind::Date | Kind::DateTime => &["date"],
            Kind::PhoneNumber => &["phonenumber"],
        }
    }
}

/// An option of an enumeration property.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OptionDef {
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub display_order: Option<i32>,
    #[serde(default)]
    pub hidden: bool,
}

/// One property definition.
#[derive(Debug, Clone)]
pub(crate) struct PropertyDef {
    pub name: String,
    pub label: String,
    pub kind: Kind,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<OptionDef>,
    pub display_order: i32,
    pub has_unique_value: bool,
    pub hidden: bool,
    pub form_field: bool,
    pub read_only_value: bool,
    pub calculated: bool,
    pub hubspot_defined: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl PropertyDef {
    /// The `Property` schema of the properties API.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind.as_str(),
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options.iter().enumerate().map(|(i, o)| json!({
                "label": o.label,
                "value": o.value,
                "description": o.description.clone().unwrap_or_default(),
                "displayOrder": o.display_order.unwrap_or(i as i32),
                "hidden": o.hidden,
            })).collect::<Vec<_>>(),
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "formField": self.form_field,
            "archived": false,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "dataSensitivity": "non_sensitive",
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
        });
        if self.hubspot_defined {
            v["hubspotDefined"] = json!(true);
        }
        v
    }
}

/// Property groups of contacts that exist in every account.
pub(crate) const GROUPS: [&str; 6] = [
    "contactinformation",
    "emailinformation",
    "conversioninformation",
    "sales_properties",
    "socialmediainformation",
    "analyticsinformation",
];

/// The default contact properties the emulator starts with (a subset of HubSpot's ~200).
pub(crate) fn default_properties(now: Timestamp) -> Vec<PropertyDef> {
    let p = |name: &str, label: &str, kind: Kind, field_type: &str, group: &str| PropertyDef {
        name: name.into(),
        label: label.into(),
        kind,
        field_type: field_type.into(),
        group_name: group.into(),
        description: String::new(),
        options: Vec::new(),
        display_order: -1,
        has_unique_value: false,
        hidden: false,
        form_field: true,
        read_only_value: false,
        calculated: false,
        hubspot_defined: true,
        created_at: now,
        updated_at: now,
    };
    let options = |values: &[(&str, &str)]| -> Vec<OptionDef> {
        values
            .iter()
            .enumerate()
            .map(|(i, (value, label))| OptionDef {
                label: (*label).into(),
                value: (*value).into(),
                description: None,
                display_order: Some(i as i32),
                hidden: false,
            })
            .collect()
    };
    const CI: &str = "contactinformation";
    let mut defs = vec![
        PropertyDef {
            description: "A contact's email address".into(),
            ..p("email", "Email", Kind::String, "text", CI)
        },
        PropertyDef {
            description: "A contact's first name".into(),
            ..p("firstname", "First Name", Kind::String, "text", CI)
        },
        PropertyDef {
            description: "A contact's last name".into(),
            ..p("lastname", "Last Name", Kind::String, "text", CI)
        },
        PropertyDef {
            description: "A contact's primary phone number".into(),
            ..p("phone", "Phone Number", Kind::String, "phonenumber", CI)
        },
        p(
            "mobilephone",
            "Mobile Phone Number",
            Kind::String,
            "phonenumber",
            CI,
        ),
        p("company", "Company Name", Kind::String, "text", CI),
        p("jobtitle", "Job Title", Kind::String, "text", CI),
        p("address", "Street Address", Kind::String, "text", CI),
        p("city", "City", Kind::String, "text", CI),
        p("state", "State/Region", Kind::String, "text", CI),
        p("zip", "Postal Code", Kind::String, "text", CI),
        p("country", "Country/Region", Kind::String, "text", CI),
        p("website", "Website URL", Kind::String, "text", CI),
        p("date_of_birth", "Date of birth", Kind::String, "text", CI),
        PropertyDef {
            options: options(&[
                ("subscriber", "Subscriber"),
                ("lead", "Lead"),
                ("marketingqualifiedlead", "Marketing Qualified Lead"),
                ("salesqualifiedlead", "Sales Qualified Lead"),
                ("opportunity", "Opportunity"),
                ("customer", "Customer"),
                ("evangelist", "Evangelist"),
                ("other", "Other"),
            ]),
            ..p(
                "lifecyclestage",
                "Lifecycle Stage",
                Kind::Enumeration,
                "radio",
                CI,
            )
        },
        PropertyDef {
            options: options(&[
                ("NEW", "New"),
                ("OPEN", "Open"),
                ("IN_PROGRESS", "In Progress"),
                ("OPEN_DEAL", "Open Deal"),
                ("UNQUALIFIED", "Unqualified"),
                ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
                ("CONNECTED", "Connected"),
                ("BAD_TIMING", "Bad Timing"),
            ]),
            ..p(
                "hs_lead_status",
                "Lead Status",
                Kind::Enumeration,
                "radio",
                "sales_properties",
            )
        },
        PropertyDef {
            description:
                "The unique ID for this record. This value is set automatically by HubSpot.".into(),
            read_only_value: true,
            form_field: false,
            ..p("hs_object_id", "Record ID", Kind::Number, "number", CI)
        },
        PropertyDef {
            description: "The date that a contact entered the system".into(),
            form_field: false,
            ..p("createdate", "Create Date", Kind::DateTime, "date", CI)
        },
        PropertyDef {
            description: "Most recent timestamp of any property update for this contact.".into(),
            read_only_value: true,
            calculated: true,
            form_field: false,
            ..p(
                "lastmodifieddate",
                "Last Modified Date",
                Kind::DateTime,
                "date",
                CI,
            )
        },
    ];
    for (i, d) in defs.iter_mut().enumerate() {
        d.display_order = i as i32;
    }
    defs
}

/// The `PropertyCreate` input of `POST /crm/v3/properties/{objectType}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PropertyCreate {
    name: Option<String>,
    label: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    field_type: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Option<Vec<OptionDef>>,
    #[serde(default)]
    display_order: Option<i32>,
    #[serde(default)]
    has_unique_value: Option<bool>,
    #[serde(default)]
    hidden: Option<bool>,
    #[serde(default)]
    form_field: Option<bool>,
}

impl PropertyCreate {
    /// Validates the input into a custom property definition.
    pub fn into_def(self, now: Timestamp) -> Result<PropertyDef, ApiError> {
        let mut missing = Vec::new();
        for (name, present) in [
            ("fieldType", self.field_type.is_some()),
            ("groupName", self.group_name.is_some()),
            ("label", self.label.is_some()),
            ("name", self.name.is_some()),
            ("type", self.kind.is_some()),
        ] {
            if !present {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            return Err(ApiError::missing_attributes("PropertyCreate", &missing));
        }
        let name = self.name.unwrap_or_default();
        let kind_s = self.kind.unwrap_or_default();
        let field_type = self.field_type.unwrap_or_default();
        let group_name = self.group_name.unwrap_or_default();
        if !valid_name(&name) {
            return Err(ApiError::validation(format!(
                "Property name '{name}' is invalid: names must start with a lowercase letter and contain only lowercase letters, digits and underscores (at most 100 characters)"
            )));
        }
        if name.starts_with("hs_") {
            return Err(ApiError::validation(format!(
                "Property name '{name}' is invalid: the prefix 'hs_' is reserved for HubSpot-defined properties"
            )));
        }
        let Some(kind) = Kind::parse(&kind_s) else {
            return Err(ApiError::validation(format!(
                "Invalid input JSON on line 1, column 1: Cannot deserialize value of type `PropertyType` from String \"{kind_s}\": not one of the values accepted for Enum class: [bool, date, datetime, enumeration, number, phone_number, string]"
            )));
        };
        if !kind.field_types().contains(&field_type.as_str()) {
            return Err(ApiError::validation(format!(
                "Property type '{kind_s}' can not be used with field type '{field_type}'; use one of [{}]",
                kind.field_types().join(", ")
            )));
        }
        if !GROUPS.contains(&group_name.as_str()) {
            return Err(ApiError::validation(format!(
                "Property group '{group_name}' does not exist for object type contacts"
            )));
        }
        let options = self.options.unwrap_or_default();
        if kind == Kind::Enumeration && options.is_empty() {
            return Err(ApiError::validation(format!(
                "Enumeration property '{name}' must have at least one option"
            )));
        }
        Ok(PropertyDef {
            label: self.label.unwrap_or_default(),
            kind,
            field_type,
            group_name,
            description: self.description.unwrap_or_default(),
            options,
            display_order: self.display_order.unwrap_or(-1),
            has_unique_value: self.has_unique_value.unwrap_or(false),
            hidden: self.hidden.unwrap_or(false),
            form_field: self.form_field.unwrap_or(false),
            read_only_value: false,
            calculated: false,
            hubspot_defined: false,
            created_at: now,
            updated_at: now,
            name,
        })
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 100
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// One failed property value, rendered like HubSpot's `validationResults` entries.
#[derive(Debug, Clone)]
pub(crate) struct PropError {
    pub name: String,
    pub code: &'static str,
    pub message: String,
}

impl PropError {
    pub fn new(name: &str, code: &'static str, message: String) -> PropError {
        PropError {
            name: name.into(),
            code,
            message,
        }
    }

    pub fn doesnt_exist(name: &str) -> PropError {
        PropError::new(
            name,
            "PROPERTY_DOESNT_EXIST",
            format!("Property \"{name}\" does not exist"),
        )
    }
}

/// HubSpot's 400 for invalid property values:
/// `Property values were not valid: [{"isValid":false,"message":…,"error":…,"name":…}]`.
pub(crate) fn property_errors(errors: &[PropError]) -> ApiError {
    let items: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({
                "isValid": false,
                "message": e.message,
                "error": e.code,
                "name": e.name,
                "localizedErrorMessage": e.message,
            })
        })
        .collect();
    let mut context = serde_json::Map::new();
    for e in errors {
        let entry = context
            .entry(e.code.to_string())
            .or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!(e.name));
        }
    }
    ApiError::validation(format!(
        "Property values were not valid: {}",
        Value::Array(items)
    ))
    .with("context", Value::Object(context))
}

/// Converts an input value to its stored form: `Ok(None)` clears the property.
pub(crate) fn normalize(def: &PropertyDef, raw: &Value) -> Result<Option<String>, PropError> {
    let name = def.name.as_str();
    let s = match raw {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(PropError::new(
                name,
                "INVALID_PROPERTY_VALUE",
                format!("{other} is not a valid value for property {name}: values must be strings"),
            ));
        }
    };
    if def.read_only_value {
        return Err(PropError::new(
            name,
            "READ_ONLY_VALUE",
            format!("\"{name}\" is a read only property; its value cannot be set."),
        ));
    }
    if s.is_empty() {
        return Ok(None);
    }
    // Since 2025 HubSpot refuses surrounding whitespace in non-string values.
    let strict = !matches!(def.kind, Kind::String | Kind::PhoneNumber);
    if strict && s.trim() != s {
        return Err(PropError::new(
            name,
            "INVALID_PROPERTY_VALUE",
            format!(
                "{s:?} is not a valid value for {name}: remove leading and trailing whitespace"
            ),
        ));
    }
    match def.kind {
        Kind::String | Kind::PhoneNumber => {
            if name == "email" {
                let e = s.trim().to_lowercase();
                if !valid_email(&e) {
                    return Err(PropError::new(
                        name,
                        "INVALID_EMAIL",
                        format!("Email address {s} is invalid"),
                    ));
                }
                return Ok(Some(e));
            }
            if s.chars().count() > 65_536 {
                return Err(PropError::new(
                    name,
                    "INVALID_PROPERTY_VALUE",
                    format!("value of {name} is longer than 65536 characters"),
                ));
            }
            Ok(Some(s))
        }
        Kind::Number => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Some(s)),
            _ => Err(PropError::new(
                name,
                "INVALID_NUMBER",
                format!("{s} is not a valid number."),
            )),
        },
        Kind::Bool => match s.to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => Ok(Some(v.to_string())),
            _ => Err(PropError::new(
                name,
                "INVALID_BOOLEAN",
                format!("{s} is not a valid boolean value; use true or false."),
            )),
        },
        Kind::Enumeration => {
            let values: Vec<&str> = if def.field_type == "checkbox" {
                s.split(';').collect()
            } else {
                vec![s.as_str()]
            };
            for v in values {
                if !def.options.iter().any(|o| o.value == v) {
                    let allowed: Vec<&str> = def.options.iter().map(|o| o.value.as_str()).collect();
                    return Err(PropError::new(
                        name,
                        "INVALID_OPTION",
                        format!(
                            "{v} was not one of the allowed options: [{}]",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
            Ok(Some(s))
        }
        Kind::Date => match parse_date_ms(&s) {
            Some(ms) if ms.rem_euclid(86_400_000) == 0 => {
                let ts = Timestamp::from_millisecond(ms).map_err(|e| {
                    PropError::new(
                        name,
                        "INVALID_DATE",
                        format!("{s} is not a valid date: {e}"),
                    )
                })?;
                Ok(Some(ts.strftime("%Y-%m-%d").to_string()))
            }
            Some(_) => Err(PropError::new(
                name,
                "INVALID_DATE",
                format!("{s} is not a valid date: date values must be at midnight UTC"),
            )),
            None => Err(PropError::new(
                name,
                "INVALID_DATE",
                format!("{s} is not a valid date: use YYYY-MM-DD or epoch milliseconds"),
            )),
        },
        Kind::DateTime => {
            match parse_date_ms(&s).and_then(|ms| Timestamp::from_millisecond(ms).ok()) {
                Some(ts) => Ok(Some(iso(ts))),
                None => Err(PropError::new(
                    name,
                    "INVALID_DATETIME",
                    format!("{s} is not a valid datetime: use ISO 8601 or epoch milliseconds"),
                )),
            }
        }
    }
}

/// Epoch milliseconds from `1700000000000`, `2024-01-02` or an RFC 3339 timestamp.
pub(crate) fn parse_date_ms(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts.as_millisecond());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_millisecond());
    }
    None
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        && !local.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: Kind, field_type: &str) -> PropertyDef {
        let mut d = default_properties(Timestamp::UNIX_EPOCH)[1].clone();
        d.name = "p".into();
        d.kind = kind;
        d.field_type = field_type.into();
        d
    }

    #[test]
    fn values_normalize_by_type() {
        let n = |k, ft, v: Value| normalize(&def(k, ft), &v);
        assert_eq!(
            n(Kind::String, "text", json!("x")).unwrap(),
            Some("x".into())
        );
        assert_eq!(n(Kind::String, "text", json!("")).unwrap(), None);
        assert_eq!(
            n(Kind::Number, "number", json!(12)).unwrap(),
            Some("12".into())
        );
        assert!(n(Kind::Number, "number", json!("12a")).is_err());
        assert!(n(Kind::Number, "number", json!(" 12")).is_err());
        assert_eq!(
            n(Kind::Bool, "booleancheckbox", json!(true)).unwrap(),
            Some("true".into())
        );
        assert_eq!(
            n(Kind::Date, "date", json!("1704153600000")).unwrap(),
            Some("2024-01-02".into())
        );
        assert!(n(Kind::Date, "date", json!("1704153600001")).is_err());
        assert_eq!(
            n(Kind::DateTime, "date", json!("1704153600001")).unwrap(),
            Some("2024-01-02T00:00:00.001Z".into())
        );
        assert!(n(Kind::String, "text", Value::Null).is_err());
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        let email = default_properties(Timestamp::UNIX_EPOCH)
            .into_iter()
            .find(|d| d.name == "email")
            .unwrap();
        assert_eq!(
            normalize(&email, &json!("Ana@Example.EDU")).unwrap(),
            Some("ana@example.edu".into())
        );
        let e = normalize(&email, &json!("not an email")).unwrap_err();
        assert_eq!(e.code, "INVALID_EMAIL");
    }
}
