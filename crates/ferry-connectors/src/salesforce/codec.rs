//! How Salesforce spells values: JSON strings, booleans and numbers; dates `YYYY-MM-DD`;
//! datetimes `2024-01-02T03:04:05.000+0000`; picklists their value. The engine hands the
//! client text ([`SalesforceCodec`]); the client types each value by the field's describe
//! type when it builds a request ([`to_json`]), and `""` (an UNSET) becomes `null`.

use ferry_core::contact::FieldKind;
use ferry_core::mapping::{RemoteKind, from_remote_text, to_remote_text};
use serde_json::Value;

use crate::crm::ValueCodec;

/// Salesforce's [`ValueCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SalesforceCodec;

/// The kind of a describe `type`.
pub fn remote_kind(sf_type: &str) -> RemoteKind {
    match sf_type {
        "string" | "textarea" | "email" | "url" | "id" | "reference" | "encryptedstring" => {
            RemoteKind::String
        }
        "double" | "int" | "long" | "currency" | "percent" => RemoteKind::Number,
        "date" => RemoteKind::Date,
        "datetime" => RemoteKind::DateTime,
        "boolean" => RemoteKind::Bool,
        "picklist" | "multipicklist" | "combobox" => RemoteKind::Enumeration,
        "phone" => RemoteKind::PhoneNumber,
        _ => RemoteKind::Other,
    }
}

/// A Salesforce datetime (`2024-01-02T03:04:05.000+0000`, or with `Z` / `+00:00`) in epoch ms.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond());
    }
    // `+0000` has no colon, which RFC 3339 wants.
    let (head, tail) = s.split_at(s.len().checked_sub(5)?);
    if (tail.starts_with('+') || tail.starts_with('-'))
        && tail[1..].bytes().all(|b| b.is_ascii_digit())
    {
        let fixed = format!("{head}{}:{}", &tail[..3], &tail[3..]);
        return fixed
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond());
    }
    None
}

/// Epoch ms as a SOQL datetime literal (`2024-01-02T03:04:05.000Z`).
pub fn soql_datetime(ms: i64) -> String {
    let t = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A JSON value of a record as the text the engine works with (`None` for null).
pub fn from_json(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// A text value as the JSON Salesforce takes for a field of describe type `sf_type`; `""` is
/// `null` (an UNSET clears the field).
pub fn to_json(sf_type: &str, text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    match remote_kind(sf_type) {
        RemoteKind::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Value::Bool(true),
            "false" | "no" | "n" | "0" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        RemoteKind::Number => serde_json::from_str::<serde_json::Number>(text.trim())
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(text.to_string())),
        _ => Value::String(text.to_string()),
    }
}

impl ValueCodec for SalesforceCodec {
    fn encode(&self, local: FieldKind, remote: RemoteKind, value: &Value) -> Option<String> {
        let s = to_remote_text(value)?;
        if local == FieldKind::Date && remote == RemoteKind::DateTime {
            return Some(format!("{s}T00:00:00.000Z"));
        }
        Some(s)
    }

    fn decode(&self, local: FieldKind, remote: RemoteKind, value: Option<&str>) -> Option<String> {
        let s = from_remote_text(value)?;
        if local == FieldKind::Date && remote == RemoteKind::DateTime {
            let ms = parse_datetime(s)?;
            let t = jiff::Timestamp::from_millisecond(ms).ok()?;
            return Some(t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string());
        }
        Some(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_convert_by_type_both_ways() {
        use FieldKind as F;
        use RemoteKind as R;
        let c = SalesforceCodec;
        assert_eq!(
            c.encode(F::Date, R::Date, &json!("2026-09-01")).as_deref(),
            Some("2026-09-01")
        );
        assert_eq!(
            c.decode(F::Date, R::DateTime, Some("2026-09-01T23:30:00.000+0000"))
                .as_deref(),
            Some("2026-09-01")
        );
        assert_eq!(c.encode(F::Text, R::String, &json!("  ")), None);
        assert_eq!(
            c.decode(F::Text, R::String, Some("UNSET")).as_deref(),
            Some("UNSET")
        );
        assert_eq!(to_json("boolean", "true"), json!(true));
        assert_eq!(to_json("double", "3.5"), json!(3.5));
        assert_eq!(to_json("string", ""), Value::Null);
        assert_eq!(to_json("picklist", "Enrolled"), json!("Enrolled"));
        assert_eq!(from_json(&json!(false)).as_deref(), Some("false"));
        assert_eq!(from_json(&Value::Null), None);
    }

    #[test]
    fn datetimes_parse_in_salesforce_spellings() {
        let ms = 1_704_164_645_000;
        assert_eq!(parse_datetime("2024-01-02T03:04:05.000+0000"), Some(ms));
        assert_eq!(parse_datetime("2024-01-02T03:04:05Z"), Some(ms));
        assert_eq!(parse_datetime("2024-01-02T03:04:05.000+00:00"), Some(ms));
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(soql_datetime(ms), "2024-01-02T03:04:05.000Z");
        assert_eq!(remote_kind("phone"), RemoteKind::PhoneNumber);
        assert_eq!(remote_kind("anyType"), RemoteKind::Other);
    }
}
